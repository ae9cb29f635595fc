//! Command-line flags that override the config file: one flag per setting, flags win.

use super::raw::RawCore;
use super::values::{ByteSize, CoreList, Listen, Shares};
use crate::route::LogLevel;
use std::net::SocketAddr;
use std::str::FromStr;

/// Flags overriding the config file. Flatten into a clap command with `#[command(flatten)]`.
///
/// Every setting has a flag; per-core settings use `--core N:KEY=VALUE`.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "Config overrides (flags win over the file)")]
pub struct Overrides {
    /// Listen on TRANSPORT:IP:PORT (udp or tcp); repeat for several. Replaces the file's server.listen.
    #[arg(long = "listen", value_name = "TRANSPORT:IP:PORT")]
    pub listen: Vec<Listen>,
    /// Replace the port of every listen address (tests use it to pick a free port).
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,
    /// Number of shards (one executor per shard). File: server.shards.
    #[arg(long, value_name = "N")]
    pub shards: Option<i64>,
    /// CPU cores to pin shards to, like "0-3,6". File: server.cores.
    #[arg(long, value_name = "LIST")]
    pub cores: Option<CoreList>,
    /// Datagrams read per receive call. File: server.udp_batch.
    #[arg(long, value_name = "N")]
    pub udp_batch: Option<i64>,
    /// SO_RCVBUF of each socket, like 4MiB. File: server.socket_recv_buffer.
    #[arg(long, value_name = "BYTES")]
    pub socket_recv_buffer: Option<ByteSize>,
    /// SO_SNDBUF of each socket. File: server.socket_send_buffer.
    #[arg(long, value_name = "BYTES")]
    pub socket_send_buffer: Option<ByteSize>,
    /// Microseconds an idle executor spins before parking. File: server.spin_before_park_us.
    #[arg(long, value_name = "US")]
    pub spin_before_park_us: Option<i64>,
    /// Receive-coalescing window: while traffic flows, a shard that emptied its UDP socket
    /// waits this many microseconds and reads again, so one wake-up serves the window's
    /// datagrams (less CPU, up to this much latency; 0: none). File: server.udp_coalesce_us.
    #[arg(long, value_name = "US")]
    pub udp_coalesce_us: Option<i64>,
    /// io_uring buffer memory per executor. File: server.io_memory.
    #[arg(long, value_name = "BYTES")]
    pub io_memory: Option<ByteSize>,
    /// Async task-queue groups and their shares, like "default=100,bulk=10" (replaces the
    /// file's map). File: server.task_queue_shares.
    #[arg(long, value_name = "GROUP=SHARES,...")]
    pub task_queue_shares: Option<Shares>,
    /// A per-core setting, like "2:udp_batch=64" or "2:socket_recv_buffer=8MiB"; repeatable.
    /// File: server.core.N tables.
    #[arg(long = "core", value_name = "N:KEY=VALUE")]
    pub core: Vec<CoreFlag>,
    /// Seconds a message may take to arrive whole over TCP. File: server.tcp_message_timeout_s.
    #[arg(long, value_name = "SECS")]
    pub tcp_message_timeout_s: Option<i64>,
    /// Most TCP connections open at once, all shards. File: server.max_connections.
    #[arg(long, value_name = "N")]
    pub max_connections: Option<i64>,
    /// Most TCP connections open at once on one shard (0: no bound of its own). File:
    /// server.max_connections_per_shard.
    #[arg(long, value_name = "N")]
    pub max_connections_per_shard: Option<i64>,
    /// Seconds before an idle TCP connection is closed. File: server.tcp_idle_timeout_s.
    #[arg(long, value_name = "SECS")]
    pub tcp_idle_timeout_s: Option<i64>,
    /// Largest SIP header section accepted on TCP. File: server.tcp_max_head.
    #[arg(long, value_name = "BYTES")]
    pub tcp_max_head: Option<ByteSize>,
    /// Largest SIP body accepted on TCP. File: server.tcp_max_body.
    #[arg(long, value_name = "BYTES")]
    pub tcp_max_body: Option<ByteSize>,
    /// Largest UDP datagram accepted. File: server.max_udp_payload.
    #[arg(long, value_name = "BYTES")]
    pub max_udp_payload: Option<ByteSize>,
    /// Initial repository capacity per shard. File: repo.hash_size.
    #[arg(long, value_name = "N")]
    pub repo_hash_size: Option<i64>,
    /// Seconds a pushed message is kept. File: repo.expire.
    #[arg(long, value_name = "SECS")]
    pub repo_expire: Option<i64>,
    /// Milliseconds between expiry ticks. File: repo.timer_interval.
    #[arg(long, value_name = "MS")]
    pub repo_timer_interval: Option<i64>,
    /// Accepted for compatibility, no effect. File: repo.timer_procs.
    #[arg(long, value_name = "N")]
    pub repo_timer_procs: Option<i64>,
    /// Most items stored per shard. File: repo.max_items.
    #[arg(long, value_name = "N")]
    pub repo_max_items: Option<i64>,
    /// Most bytes stored per shard. File: repo.max_bytes.
    #[arg(long, value_name = "BYTES")]
    pub repo_max_bytes: Option<ByteSize>,
    /// Control endpoint address (JSON-RPC and metrics); enables it. File: control.listen.
    #[arg(long, value_name = "IP:PORT", conflicts_with = "no_control")]
    pub control: Option<SocketAddr>,
    /// The token control callers must send as `Authorization: Bearer TOKEN` (prefer the
    /// environment variable or the file: a flag shows in `ps`). File: control.token_file.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "SIPSHARD_CONTROL_TOKEN",
        hide_env_values = true
    )]
    pub control_token: Option<String>,
    /// Disable the control endpoint. File: control.enabled = false.
    #[arg(long)]
    pub no_control: bool,
    /// Log level: error, warn, info, debug or trace. File: log.level.
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<LogLevel>,
    /// MSRP listen address of the gateway. File: gateway.msrp_listen.
    #[arg(long, value_name = "IP:PORT")]
    pub msrp_listen: Option<SocketAddr>,
    /// SIP URI every request the gateway originates goes to. File: gateway.outbound_proxy.
    #[arg(long, value_name = "URI")]
    pub outbound_proxy: Option<String>,
    /// Gateway session table size hint, log2. File: gateway.hash_size.
    #[arg(long, value_name = "N")]
    pub gateway_hash_size: Option<i64>,
    /// Gateway cleanup interval in seconds (accepted; sessions expire on the timing wheel). File: gateway.cleanup_interval.
    #[arg(long, value_name = "SECS")]
    pub gateway_cleanup_interval: Option<i64>,
}

/// `--core N:KEY=VALUE`: one per-core setting, parsed with the same rules as a
/// `[server.core.N]` table.
#[derive(Debug, Clone)]
pub struct CoreFlag {
    /// The core (or shard, when `cores` is not set) the setting is for.
    pub core: usize,
    /// The flag as typed, for error messages.
    pub text: String,
    pub(crate) raw: RawCore,
}

impl FromStr for CoreFlag {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (n, kv) = s
            .split_once(':')
            .ok_or_else(|| format!("`{s}` is not N:KEY=VALUE (like 2:udp_batch=64)"))?;
        let core: usize = n
            .trim()
            .parse()
            .map_err(|_| format!("`{s}`: `{n}` is not a core number"))?;
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| format!("`{s}` is not N:KEY=VALUE (like 2:udp_batch=64)"))?;
        let (k, v) = (k.trim(), v.trim());
        // The value as TOML (numbers, inline tables), else as a string (sizes like 4MiB).
        let as_toml = toml::from_str::<RawCore>(&format!("{k} = {v}"));
        let quoted = toml::Value::String(v.to_owned()).to_string();
        let raw = match as_toml {
            Ok(r) => r,
            Err(e) => {
                let looks_typed = v
                    .starts_with(|c: char| c.is_ascii_digit() || "{[\"'-+".contains(c))
                    && !v.ends_with(|c: char| c.is_ascii_alphabetic());
                match toml::from_str::<RawCore>(&format!("{k} = {quoted}")) {
                    Ok(r) => r,
                    Err(e2) => {
                        let msg = if looks_typed {
                            e.message()
                        } else {
                            e2.message()
                        };
                        return Err(format!("`{s}`: {}", msg.trim()));
                    }
                }
            }
        };
        Ok(CoreFlag {
            core,
            text: format!("--core {s}"),
            raw,
        })
    }
}
