//! The config file as written: every key optional, kept with its span so that a value that is
//! wrong for a reason only the resolver sees (a range, a core that is not in `cores`) is still
//! reported at its line. Unknown keys are refused by serde, at their line.

use super::values::{ByteSize, CoreList};
use crate::route::raw::{OrderedMap, RawRoutes, Str};
use crate::route::LogLevel;
use serde::Deserialize;
use std::net::SocketAddr;
use toml::Spanned;

pub(crate) type Int = Spanned<i64>;
pub(crate) type Size = Spanned<ByteSize>;
pub(crate) type OrderedShares = OrderedMap<Str, Int>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFile {
    pub server: Option<RawServer>,
    pub repo: Option<RawRepo>,
    pub control: Option<RawControl>,
    pub log: Option<RawLog>,
    pub gateway: Option<RawGateway>,
    pub route: Option<RawRoutes>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawServer {
    pub listen: Option<Spanned<Vec<Str>>>,
    pub shards: Option<Int>,
    pub cores: Option<Spanned<CoreList>>,
    pub udp_batch: Option<Int>,
    pub socket_recv_buffer: Option<Size>,
    pub socket_send_buffer: Option<Size>,
    pub spin_before_park_us: Option<Int>,
    pub udp_coalesce_us: Option<Int>,
    pub io_memory: Option<Size>,
    pub task_queue_shares: Option<Spanned<OrderedShares>>,
    pub tcp_idle_timeout_s: Option<Int>,
    pub tcp_message_timeout_s: Option<Int>,
    pub max_connections: Option<Int>,
    pub max_connections_per_shard: Option<Int>,
    pub tcp_max_head: Option<Size>,
    pub tcp_max_body: Option<Size>,
    pub max_udp_payload: Option<Size>,
    pub core: Option<OrderedMap<Str, Spanned<RawCore>>>,
}

/// `[server.core.N]`: the per-core subset of `[server]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCore {
    pub udp_batch: Option<Int>,
    pub socket_recv_buffer: Option<Size>,
    pub socket_send_buffer: Option<Size>,
    pub spin_before_park_us: Option<Int>,
    pub udp_coalesce_us: Option<Int>,
    pub io_memory: Option<Size>,
    pub task_queue_shares: Option<Spanned<OrderedShares>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRepo {
    pub hash_size: Option<Int>,
    pub expire: Option<Int>,
    pub timer_interval: Option<Int>,
    pub timer_procs: Option<Int>,
    pub max_items: Option<Int>,
    pub max_bytes: Option<Size>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawControl {
    pub listen: Option<Spanned<SocketAddr>>,
    pub enabled: Option<bool>,
    pub token_file: Option<Str>,
    pub metrics_open: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLog {
    pub level: Option<LogLevel>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGateway {
    pub hash_size: Option<Int>,
    pub cleanup_interval: Option<Int>,
    pub msrp_listen: Option<Spanned<Vec<std::net::SocketAddr>>>,
    pub outbound_proxy: Option<Str>,
    pub t1_ms: Option<Int>,
    pub t2_ms: Option<Int>,
    pub t4_ms: Option<Int>,
    pub chunk_size: Option<Size>,
    pub max_message_size: Option<Size>,
    pub msrp_transaction_timeout: Option<Int>,
    pub setup_timeout: Option<Int>,
    pub session_lifetime: Option<Int>,
    pub idle_timeout: Option<Int>,
    pub sync_timeout: Option<Int>,
    pub keepalive: Option<Int>,
    pub queue_max_messages: Option<Int>,
    pub queue_max_bytes: Option<Size>,
    pub queue_max_age: Option<Int>,
    pub max_sessions: Option<Int>,
    pub max_in_flight: Option<Int>,
    pub max_transactions: Option<Int>,
    pub cpim: Option<super::Cpim>,
}
