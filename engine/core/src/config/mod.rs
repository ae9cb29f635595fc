//! The configuration: one TOML file, every setting also a flag (flags win), resolved with
//! defaults into a [`Config`], and its `[route]` section compiled into a route [`Program`].
//!
//! A config that is wrong in any way is refused at load with `file:line:column: reason` (or the
//! flag at fault): syntax, unknown keys, values out of range, per-core tables for cores not in
//! use, unknown routes or async groups, bad templates or regexes, call cycles. The reference is
//! `docs/configuration.md`.

mod error;
mod flags;
mod raw;
mod resolve;
mod values;

#[cfg(test)]
mod tests;

pub use error::ConfigError;
pub use flags::{CoreFlag, Overrides};
pub use values::{ByteSize, CoreList, Listen, Shares};

use crate::route::{self, LogLevel, Program, Transport};
use error::Source;
use raw::RawFile;
use resolve::Resolver;
use serde::{Serialize, Serializer};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::{Range, RangeInclusive};
use std::path::Path;
use std::time::Duration;
use toml::Spanned;

/// A loaded config: the resolved settings and the compiled routes.
#[derive(Debug)]
pub struct Loaded {
    /// Every setting, file and flags and defaults resolved.
    pub config: Config,
    /// The compiled `[route]` section.
    pub program: Program,
    /// Legal but suspicious things (`file:line:col: ...`), to log at startup.
    pub warnings: Vec<String>,
}

/// The effective configuration.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Config {
    /// `[server]`: sockets, shards, per-core tuning.
    pub server: ServerConfig,
    /// `[repo]`: the message repository.
    pub repo: RepoConfig,
    /// `[control]`: the JSON-RPC / metrics endpoint.
    pub control: ControlConfig,
    /// `[log]`.
    pub log: LogConfig,
    /// `[gateway]`: reserved for the SIP/MSRP gateway.
    pub gateway: GatewayConfig,
    /// The `[route]` section as written (compiled form: [`Loaded::program`]); kept so that
    /// [`Config::to_toml_string`] prints a config that loads again.
    #[serde(skip)]
    pub route: toml::Table,
}

/// `[server]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerConfig {
    /// Addresses to listen on; every shard binds each (SO_REUSEPORT).
    pub listen: Vec<Listen>,
    /// Number of shards (executors).
    pub shards: usize,
    /// Cores to pin shard `i` to (`cores[i]`); `None`: not pinned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cores: Option<CoreList>,
    /// Datagrams read per receive call (recvmmsg batch).
    pub udp_batch: u32,
    /// SO_RCVBUF of UDP sockets; `None`: [`defaults::SOCKET_RECV_BUFFER`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub socket_recv_buffer: Option<ByteSize>,
    /// SO_SNDBUF; `None`: the kernel's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub socket_send_buffer: Option<ByteSize>,
    /// Spin this long before parking an idle executor; `None`: park at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spin_before_park_us: Option<u64>,
    /// Receive-coalescing window: while traffic flows, a shard that emptied its UDP sockets
    /// waits this long and reads again, so one wake-up serves every datagram of the window
    /// (less CPU per request, up to this much added latency). 0: wake for each datagram.
    pub udp_coalesce_us: u64,
    /// io_uring buffer memory per executor; `None`: glommio's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub io_memory: Option<ByteSize>,
    /// Seconds before an idle TCP connection is closed.
    pub tcp_idle_timeout_s: u64,
    /// Seconds a SIP message may take to arrive whole over TCP from its first byte; a peer
    /// trickling a message (slowloris) is cut off then, whatever the idle timeout.
    pub tcp_message_timeout_s: u64,
    /// Most TCP connections (SIP and MSRP, accepted by any shard) open at once; one past it is
    /// closed at once and counted (`connections_refused`). `None`: as many as the open-files
    /// limit allows, at most [`defaults::MAX_CONNECTIONS`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u64>,
    /// Most of them on one shard; 0: only `max_connections` bounds a shard.
    pub max_connections_per_shard: u64,
    /// Largest header section accepted on a TCP connection.
    pub tcp_max_head: ByteSize,
    /// Largest body accepted on a TCP connection.
    pub tcp_max_body: ByteSize,
    /// Largest UDP datagram accepted (and the size of each receive buffer).
    pub max_udp_payload: ByteSize,
    /// Async task-queue groups -> shares. Always has `default`. Group ids in the route program
    /// are indexes in this map's (sorted) key order.
    pub task_queue_shares: BTreeMap<String, u32>,
    /// `[server.core.N]` overrides; N is a core of `cores`, or a shard number when unpinned.
    #[serde(
        serialize_with = "string_keys",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub core: BTreeMap<usize, CoreOverride>,
}

/// A `[server.core.N]` table: what differs on that core.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[allow(missing_docs)]
pub struct CoreOverride {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub udp_batch: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub socket_recv_buffer: Option<ByteSize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub socket_send_buffer: Option<ByteSize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spin_before_park_us: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub udp_coalesce_us: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub io_memory: Option<ByteSize>,
    /// Shares for some groups on this core (groups are defined in `[server]`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub task_queue_shares: BTreeMap<String, u32>,
}

/// The tuning of one shard: `[server]` with its core's overrides applied.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct CoreTuning {
    /// The core to pin to, `None` when unpinned.
    pub core: Option<usize>,
    pub udp_batch: u32,
    pub socket_recv_buffer: Option<ByteSize>,
    pub socket_send_buffer: Option<ByteSize>,
    pub spin_before_park: Option<Duration>,
    pub udp_coalesce: Duration,
    pub io_memory: Option<ByteSize>,
    pub task_queue_shares: BTreeMap<String, u32>,
}

impl ServerConfig {
    /// The core shard `shard` is pinned to.
    pub fn core_of(&self, shard: usize) -> Option<usize> {
        self.cores.as_ref().and_then(|c| c.0.get(shard).copied())
    }

    /// The resolved tuning of shard `shard` (`0..shards`).
    pub fn tuning(&self, shard: usize) -> CoreTuning {
        let core = self.core_of(shard);
        let key = core.unwrap_or(shard);
        let o = self.core.get(&key).cloned().unwrap_or_default();
        let mut shares = self.task_queue_shares.clone();
        shares.extend(o.task_queue_shares);
        CoreTuning {
            core,
            udp_batch: o.udp_batch.unwrap_or(self.udp_batch),
            socket_recv_buffer: o.socket_recv_buffer.or(self.socket_recv_buffer),
            socket_send_buffer: o.socket_send_buffer.or(self.socket_send_buffer),
            spin_before_park: o
                .spin_before_park_us
                .or(self.spin_before_park_us)
                .map(Duration::from_micros),
            udp_coalesce: Duration::from_micros(o.udp_coalesce_us.unwrap_or(self.udp_coalesce_us)),
            io_memory: o.io_memory.or(self.io_memory),
            task_queue_shares: shares,
        }
    }

    /// The listen addresses of one transport.
    pub fn listen_on(&self, transport: Transport) -> impl Iterator<Item = SocketAddr> + '_ {
        self.listen
            .iter()
            .filter(move |l| l.transport == transport)
            .map(|l| l.addr)
    }
}

/// `[repo]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RepoConfig {
    /// Initial capacity of each shard's table (seed: number of hash slots).
    pub hash_size: u32,
    /// Seconds an item is kept when `push` names no `expire`.
    pub expire: u64,
    /// Milliseconds between timing-wheel ticks (seed: seconds between table scans).
    pub timer_interval: u64,
    /// Accepted, no effect: each shard expires its own partition.
    pub timer_procs: u32,
    /// Most items per shard.
    pub max_items: u64,
    /// Most bytes (stored messages) per shard.
    pub max_bytes: ByteSize,
}

impl RepoConfig {
    /// `expire` as a duration.
    pub fn expire(&self) -> Duration {
        Duration::from_secs(self.expire)
    }

    /// `timer_interval` as a duration.
    pub fn tick(&self) -> Duration {
        Duration::from_millis(self.timer_interval)
    }
}

/// `[control]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ControlConfig {
    /// Where the JSON-RPC and metrics endpoint listens (HTTP).
    pub listen: SocketAddr,
    /// Whether it runs at all.
    pub enabled: bool,
    /// A file holding the token callers must send (`Authorization: Bearer TOKEN`); required
    /// when `listen` is not a loopback address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_file: Option<String>,
    /// The token itself (from `token_file`, `--control-token` or `SIPSHARD_CONTROL_TOKEN`);
    /// never printed.
    #[serde(skip)]
    pub token: Option<String>,
    /// Whether `GET /metrics` is served without the token (when there is one).
    pub metrics_open: bool,
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogConfig {
    /// The least severe level written.
    pub level: LogLevel,
}

/// `[gateway]`: the SIP MESSAGE <-> MSRP gateway (used when a route calls `msrp_answer` or
/// `msg_to_msrp`). Times are in seconds unless the name says otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GatewayConfig {
    /// log2 of the initial session-table capacity (seed: log2 of the bucket count).
    pub hash_size: u32,
    /// Seconds between session sweeps in the seed; accepted, unused: every session's
    /// deadlines sit on its shard's timing wheel, so nothing sweeps.
    pub cleanup_interval: u64,
    /// Where the MSRP listener binds (each address also names us in `a=path`, so it must not
    /// be a wildcard).
    pub msrp_listen: Vec<SocketAddr>,
    /// A SIP URI every request the gateway originates is sent to (as its first Route, loose
    /// routing); without it, the Request-URI says where.
    pub outbound_proxy: Option<String>,
    /// RFC 3261 T1, T2, T4 in milliseconds.
    pub t1_ms: u64,
    #[allow(missing_docs)]
    pub t2_ms: u64,
    #[allow(missing_docs)]
    pub t4_ms: u64,
    /// Largest SEND chunk body written.
    pub chunk_size: ByteSize,
    /// Largest MSRP message taken (reassembled) or sent; also our `a=max-size`.
    pub max_message_size: ByteSize,
    /// How long a SEND waits for its response (then 408).
    pub msrp_transaction_timeout: u64,
    /// How long a session may take to be set up (INVITE to a bound MSRP connection).
    pub setup_timeout: u64,
    /// How long a session lives from its creation.
    pub session_lifetime: u64,
    /// How long a session lives without a message in either direction.
    pub idle_timeout: u64,
    /// How long a `sync` MESSAGE is held for the MSRP side's answer (then 408).
    pub sync_timeout: u64,
    /// Seconds between empty SENDs on an idle bound session; 0: none.
    pub keepalive: u64,
    /// Messages a session queues while it is set up.
    pub queue_max_messages: u64,
    /// Bytes a session queues while it is set up.
    pub queue_max_bytes: ByteSize,
    /// How long a message may wait in the queue.
    pub queue_max_age: u64,
    /// Sessions one shard holds at most.
    pub max_sessions: u64,
    /// SIP transactions one shard holds at most (past it new requests get 503). Over UDP a
    /// MESSAGE's transaction lives 64·T1 (32 s) after its answer, to answer retransmissions:
    /// a shard taking N MESSAGEs/s holds about 32·N.
    pub max_transactions: u64,
    /// Messages one session has out on the MSRP side, unanswered, at most; more wait in its
    /// queue (a far side that stops answering slows its senders instead of growing memory).
    pub max_in_flight: u64,
    /// What becomes of `message/cpim` (RFC 3862): passed through as it is, or wrapped around
    /// what goes to the MSRP side and unwrapped from what comes from it.
    pub cpim: Cpim,
}

/// `[gateway] cpim`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Cpim {
    /// Bodies go through unchanged both ways.
    #[default]
    Pass,
    /// MESSAGE bodies go to the MSRP side wrapped in `message/cpim`, and CPIM messages from it
    /// go to the SIP side unwrapped.
    Wrap,
}

/// Defaults.
pub mod defaults {
    use super::ByteSize;

    /// `[server] listen`.
    pub const LISTEN: &[&str] = &["udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"];
    /// `[server] udp_batch`.
    pub const UDP_BATCH: u32 = 32;
    /// `[server] tcp_message_timeout_s`.
    pub const TCP_MESSAGE_TIMEOUT_S: u64 = 10;
    /// `[server] socket_recv_buffer` when unset: a shard that stalls 10 ms at 100,000
    /// datagrams/s of 400 bytes must queue 400 KB; this leaves room for ten times that.
    pub const SOCKET_RECV_BUFFER: ByteSize = ByteSize::mib(4);
    /// `[server] max_connections` when unset, if the open-files limit allows it.
    pub const MAX_CONNECTIONS: u64 = 16_384;
    /// `[server] tcp_idle_timeout_s`.
    pub const TCP_IDLE_TIMEOUT_S: u64 = 120;
    /// `[server] tcp_max_head`.
    pub const TCP_MAX_HEAD: ByteSize = ByteSize::kib(32);
    /// `[server] tcp_max_body`.
    pub const TCP_MAX_BODY: ByteSize = ByteSize::mib(1);
    /// `[server] max_udp_payload`.
    pub const MAX_UDP_PAYLOAD: ByteSize = ByteSize(65_535);
    /// Shares of the `default` task-queue group.
    pub const DEFAULT_GROUP_SHARES: u32 = 100;
    /// `[repo] hash_size`.
    pub const REPO_HASH_SIZE: u32 = 256;
    /// `[repo] expire`, seconds.
    pub const REPO_EXPIRE: u64 = 180;
    /// `[repo] timer_interval`, milliseconds.
    pub const REPO_TIMER_INTERVAL: u64 = 100;
    /// `[repo] max_items`.
    pub const REPO_MAX_ITEMS: u64 = 1_000_000;
    /// `[repo] max_bytes`.
    pub const REPO_MAX_BYTES: ByteSize = ByteSize::mib(512);
    /// `[control] listen`.
    pub const CONTROL_LISTEN: &str = "127.0.0.1:5080";
    /// `[gateway] msrp_listen` (RFC 4975 §15.5's registered port).
    pub const MSRP_LISTEN: &str = "127.0.0.1:2855";
    /// `[gateway] hash_size` (log2).
    pub const GATEWAY_HASH_SIZE: u32 = 10;
    /// `[gateway] cleanup_interval`, seconds.
    pub const GATEWAY_CLEANUP_INTERVAL: u64 = 60;
}

impl Default for Config {
    /// Every default, no routes.
    fn default() -> Config {
        let s = Source {
            path: Path::new("<defaults>"),
            src: "",
        };
        Resolver {
            s: &s,
            flags: &Overrides::default(),
            warnings: Vec::new(),
        }
        .resolve(&RawFile::default())
        .expect("the defaults are valid")
    }
}

impl Config {
    /// The effective config as TOML (for `--print-config`): loading it again gives the same
    /// config and routes.
    pub fn to_toml_string(&self) -> String {
        let mut out = String::from(
            "# sipshard effective configuration: file, flags and defaults resolved.\n\n",
        );
        out.push_str(&toml::to_string(self).expect("config serializes"));
        if !self.route.is_empty() {
            out.push('\n');
        }
        for (name, route) in &self.route {
            let name = key(name);
            out.push_str(&format!("[route.{name}]\n"));
            let Some(t) = route.as_table() else {
                out.push_str(&format!("# not a table: {route}\n\n"));
                continue;
            };
            let rules = t.get("rules").and_then(|r| r.as_array());
            for (k, v) in t {
                if k != "rules" || rules.is_none_or(|r| r.is_empty()) {
                    out.push_str(&format!("{} = {v}\n", key(k)));
                }
            }
            for rule in rules.into_iter().flatten() {
                out.push_str(&format!("\n[[route.{name}.rules]]\n"));
                let Some(rule) = rule.as_table() else {
                    continue;
                };
                for (k, v) in rule {
                    match v.as_array() {
                        Some(actions) if k == "actions" && !actions.is_empty() => {
                            out.push_str("actions = [\n");
                            for a in actions {
                                out.push_str(&format!("  {a},\n"));
                            }
                            out.push_str("]\n");
                        }
                        _ => out.push_str(&format!("{} = {v}\n", key(k))),
                    }
                }
            }
            out.push('\n');
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
        out
    }
}

/// A TOML key, quoted when it is not a bare key.
fn key(k: &str) -> String {
    if !k.is_empty()
        && k.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
    {
        k.to_owned()
    } else {
        toml::Value::String(k.to_owned()).to_string()
    }
}

fn string_keys<S: Serializer, V: Serialize>(
    m: &BTreeMap<usize, V>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.collect_map(m.iter().map(|(k, v)| (k.to_string(), v)))
}

/// Reads, resolves and compiles the config file at `path`, with `overrides` winning.
pub fn load(path: &Path, overrides: &Overrides) -> std::result::Result<Loaded, ConfigError> {
    let src = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    load_str(path, &src, overrides)
}

/// [`load`] on text already read; `path` is only used in messages.
pub fn load_str(
    path: &Path,
    src: &str,
    overrides: &Overrides,
) -> std::result::Result<Loaded, ConfigError> {
    let s = Source { path, src };
    let raw: RawFile =
        toml::from_str(src).map_err(|e| s.at_span(e.span().unwrap_or(0..0), e.message()))?;
    let mut r = Resolver {
        s: &s,
        flags: overrides,
        warnings: Vec::new(),
    };
    let mut config = r.resolve(&raw)?;
    let mut warnings = r.warnings;

    let routes = raw.route.unwrap_or_default();
    let groups: Vec<String> = config.server.task_queue_shares.keys().cloned().collect();
    let (program, w) =
        route::compile(&routes, &groups, src).map_err(|e| s.at_span(e.span, e.message))?;
    warnings.extend(w.iter().map(|w| s.warning(w.span.clone(), &w.message)));
    if program.uses_gateway() {
        // Each MSRP listen address names us in our `a=path`, which the far side connects to.
        if let Some(a) = config
            .gateway
            .msrp_listen
            .iter()
            .find(|a| a.ip().is_unspecified())
        {
            let span = raw
                .gateway
                .as_ref()
                .and_then(|g| g.msrp_listen.as_ref())
                .map(|l| l.span())
                .unwrap_or(0..0);
            return Err(s.at_span(
                span,
                format!(
                    "msrp_listen {a} is a wildcard, but it is also the address our a=path gives \
                     the far side to connect to: listen on a specific address"
                ),
            ));
        }
        if config.gateway.msrp_listen.is_empty() {
            return Err(s.at_span(
                0..0,
                "the routes use the gateway, which needs an msrp_listen address",
            ));
        }
    }

    // Keep the route section as written, for `--print-config`.
    if let Ok(mut doc) = src.parse::<toml::Table>() {
        if let Some(toml::Value::Table(t)) = doc.remove("route") {
            config.route = t;
        }
    }
    Ok(Loaded {
        config,
        program,
        warnings,
    })
}
