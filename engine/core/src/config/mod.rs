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
mod values;

#[cfg(test)]
mod tests;

pub use error::ConfigError;
pub use flags::{CoreFlag, Overrides};
pub use values::{ByteSize, CoreList, Listen, Shares};

use crate::route::{self, LogLevel, Program, Transport};
use error::{At, Source};
use raw::{Int, RawCore, RawFile, Size};
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
    /// SO_RCVBUF; `None`: the kernel's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub socket_recv_buffer: Option<ByteSize>,
    /// SO_SNDBUF; `None`: the kernel's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub socket_send_buffer: Option<ByteSize>,
    /// Spin this long before parking an idle executor; `None`: park at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spin_before_park_us: Option<u64>,
    /// io_uring buffer memory per executor; `None`: glommio's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub io_memory: Option<ByteSize>,
    /// Seconds before an idle TCP connection is closed.
    pub tcp_idle_timeout_s: u64,
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
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogConfig {
    /// The least severe level written.
    pub level: LogLevel,
}

/// `[gateway]`, reserved for the SIP/MSRP gateway issue: read and checked, not used yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GatewayConfig {
    /// log2 of the initial session-table capacity (seed: log2 of the bucket count).
    pub hash_size: u32,
    /// Seconds between session sweeps in the seed; sessions here will sit on the timing wheel.
    pub cleanup_interval: u64,
}

/// Defaults.
pub mod defaults {
    use super::ByteSize;

    /// `[server] listen`.
    pub const LISTEN: &[&str] = &["udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"];
    /// `[server] udp_batch`.
    pub const UDP_BATCH: u32 = 32;
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

struct Resolver<'a> {
    s: &'a Source<'a>,
    flags: &'a Overrides,
    warnings: Vec<String>,
}

/// A value and where it came from: the flag when given, else the file.
fn pick<T: Clone>(flag: Option<T>, name: &str, file: Option<&Spanned<T>>) -> Option<(T, At)> {
    match flag {
        Some(v) => Some((v, At::Flag(format!("--{name}")))),
        None => file.map(|v| (v.get_ref().clone(), At::File(v.span()))),
    }
}

type Res<T> = std::result::Result<T, ConfigError>;

impl Resolver<'_> {
    fn err<T>(&self, at: &At, key: &str, msg: String) -> Res<T> {
        Err(match at {
            At::File(_) => self.s.at(at, format!("`{key}` {msg}")),
            At::Flag(_) => self.s.at(at, msg),
        })
    }

    fn int(
        &self,
        v: Option<(i64, At)>,
        key: &str,
        range: RangeInclusive<i64>,
        unit: &str,
    ) -> Res<Option<u64>> {
        let Some((n, at)) = v else { return Ok(None) };
        if !range.contains(&n) {
            return self.err(
                &at,
                key,
                format!(
                    "must be {}..={}{unit} (got {n})",
                    range.start(),
                    range.end()
                ),
            );
        }
        Ok(Some(n as u64))
    }

    fn size(
        &self,
        v: Option<(ByteSize, At)>,
        key: &str,
        range: RangeInclusive<u64>,
    ) -> Res<Option<ByteSize>> {
        let Some((n, at)) = v else { return Ok(None) };
        if !range.contains(&n.0) {
            return self.err(
                &at,
                key,
                format!(
                    "must be {}..={} bytes (got {n})",
                    ByteSize(*range.start()),
                    ByteSize(*range.end())
                ),
            );
        }
        Ok(Some(n))
    }

    /// `[server] task_queue_shares` from the file, checked.
    fn shares(&self, map: &Spanned<raw::OrderedShares>) -> Res<BTreeMap<String, u32>> {
        let mut out = BTreeMap::new();
        for (g, n) in &map.get_ref().0 {
            check_group_name(g.get_ref()).map_err(|m| self.s.at_span(g.span(), m))?;
            let at = At::File(n.span());
            let v = self.int(Some((*n.get_ref(), at)), "task_queue_shares", SHARES, "")?;
            out.insert(g.get_ref().clone(), v.unwrap_or(1) as u32);
        }
        Ok(out)
    }

    fn resolve(&mut self, raw: &RawFile) -> Res<Config> {
        let f = self.flags;
        let empty_server = raw::RawServer::default();
        let sv = raw.server.as_ref().unwrap_or(&empty_server);

        // listen
        let mut listen: Vec<Listen> = if !f.listen.is_empty() {
            f.listen.clone()
        } else if let Some(l) = &sv.listen {
            if l.get_ref().is_empty() {
                return Err(self.s.at_span(
                    l.span(),
                    "`listen` is empty: sipshard would receive nothing",
                ));
            }
            let mut out = Vec::new();
            for a in l.get_ref() {
                out.push(
                    a.get_ref()
                        .parse::<Listen>()
                        .map_err(|e| self.s.at_span(a.span(), e))?,
                );
            }
            out
        } else {
            defaults::LISTEN
                .iter()
                .map(|s| s.parse().expect("default listen"))
                .collect()
        };
        if let Some(port) = f.port {
            for l in &mut listen {
                l.addr.set_port(port);
            }
        }
        for (i, l) in listen.iter().enumerate() {
            if listen[..i].contains(l) {
                let at = match (&sv.listen, f.listen.is_empty(), f.port) {
                    (_, _, Some(p)) => At::Flag(format!("--port {p}")),
                    (Some(s), true, None) => At::File(s.span()),
                    _ => At::Flag("--listen".to_owned()),
                };
                return self.err(&at, "listen", format!("names {l} twice"));
            }
        }
        if listen.len() > MAX_LISTEN {
            let at = match (&sv.listen, f.listen.is_empty()) {
                (Some(s), true) => At::File(s.span()),
                _ => At::Flag("--listen".to_owned()),
            };
            return self.err(
                &at,
                "listen",
                format!(
                    "names {} addresses; at most {MAX_LISTEN} (every shard binds each)",
                    listen.len()
                ),
            );
        }

        // shards and cores
        let cores = pick(f.cores.clone(), "cores", sv.cores.as_ref());
        let shards_in = pick(f.shards, "shards", sv.shards.as_ref());
        let shards_v = self.int(shards_in.clone(), "shards", 1..=MAX_SHARDS, "")?;
        let shards = match (&cores, shards_v) {
            (Some((c, _)), Some(n)) if n as usize != c.0.len() => {
                let at = shards_in.map(|s| s.1).expect("shards given");
                return self.err(
                    &at,
                    "shards",
                    format!(
                        "is {n} but cores \"{c}\" names {} cores: with cores set, shards must \
                         equal the number of cores (or be left out)",
                        c.0.len()
                    ),
                );
            }
            (Some((c, at)), _) if c.0.len() > MAX_SHARDS as usize => {
                return self.err(at, "cores", format!("names more than {MAX_SHARDS} cores"))
            }
            (Some((c, _)), _) => c.0.len(),
            (None, Some(n)) => n as usize,
            (None, None) => std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
        };
        let cores = cores.map(|c| c.0 .0);

        // task-queue groups
        let mut task_queue_shares = BTreeMap::new();
        if let Some(sh) = &f.task_queue_shares {
            for (g, n) in &sh.0 {
                let at = At::Flag("--task-queue-shares".to_owned());
                check_group_name(g).map_err(|m| self.s.at(&at, m))?;
                let n = self.int(Some((i64::from(*n), at)), "task_queue_shares", SHARES, "")?;
                task_queue_shares.insert(g.clone(), n.unwrap_or(1) as u32);
            }
        } else if let Some(map) = &sv.task_queue_shares {
            task_queue_shares = self.shares(map)?;
        }
        task_queue_shares
            .entry("default".to_owned())
            .or_insert(defaults::DEFAULT_GROUP_SHARES);

        // per-core tables: file, then flags over them
        let mut core: BTreeMap<usize, (CoreOverride, At)> = BTreeMap::new();
        if let Some(tables) = &sv.core {
            for (k, t) in &tables.0 {
                let n: usize = k.get_ref().parse().map_err(|_| {
                    self.s.at_span(
                        k.span(),
                        format!(
                            "[server.core.{}]: the key must be a core number",
                            k.get_ref()
                        ),
                    )
                })?;
                let mut o = CoreOverride::default();
                self.core_override(&mut o, t.get_ref(), None, &task_queue_shares)?;
                core.insert(n, (o, At::File(k.span())));
            }
        }
        for cf in &f.core {
            let entry = core
                .entry(cf.core)
                .or_insert_with(|| (CoreOverride::default(), At::Flag(cf.text.clone())));
            self.core_override(&mut entry.0, &cf.raw, Some(&cf.text), &task_queue_shares)?;
            if matches!(entry.1, At::File(_)) {
                entry.1 = At::Flag(cf.text.clone());
            }
        }
        for (n, (_, at)) in &core {
            let ok = match &cores {
                Some(c) => c.contains(n),
                None => *n < shards,
            };
            if !ok {
                let why = match &cores {
                    Some(c) => format!("core {n} is not in cores = \"{}\"", CoreList(c.clone())),
                    None => format!(
                        "there is no shard {n} (shards = {shards}); without `cores`, N in \
                         [server.core.N] is a shard number, 0..{shards}"
                    ),
                };
                return Err(self.s.at(at, format!("[server.core.{n}]: {why}")));
            }
        }

        let server = ServerConfig {
            listen,
            shards,
            cores: cores.map(CoreList),
            udp_batch: self
                .int(
                    pick(f.udp_batch, "udp-batch", sv.udp_batch.as_ref()),
                    "udp_batch",
                    UDP_BATCH,
                    "",
                )?
                .map(|v| v as u32)
                .unwrap_or(defaults::UDP_BATCH),
            socket_recv_buffer: self.size(
                pick(
                    f.socket_recv_buffer,
                    "socket-recv-buffer",
                    sv.socket_recv_buffer.as_ref(),
                ),
                "socket_recv_buffer",
                SOCKET_BUFFER,
            )?,
            socket_send_buffer: self.size(
                pick(
                    f.socket_send_buffer,
                    "socket-send-buffer",
                    sv.socket_send_buffer.as_ref(),
                ),
                "socket_send_buffer",
                SOCKET_BUFFER,
            )?,
            spin_before_park_us: self.int(
                pick(
                    f.spin_before_park_us,
                    "spin-before-park-us",
                    sv.spin_before_park_us.as_ref(),
                ),
                "spin_before_park_us",
                SPIN_US,
                " µs",
            )?,
            io_memory: self.size(
                pick(f.io_memory, "io-memory", sv.io_memory.as_ref()),
                "io_memory",
                IO_MEMORY,
            )?,
            tcp_idle_timeout_s: self
                .int(
                    pick(
                        f.tcp_idle_timeout_s,
                        "tcp-idle-timeout-s",
                        sv.tcp_idle_timeout_s.as_ref(),
                    ),
                    "tcp_idle_timeout_s",
                    1..=7 * 86_400,
                    " s",
                )?
                .unwrap_or(defaults::TCP_IDLE_TIMEOUT_S),
            tcp_max_head: self
                .size(
                    pick(f.tcp_max_head, "tcp-max-head", sv.tcp_max_head.as_ref()),
                    "tcp_max_head",
                    256..=16 << 20,
                )?
                .unwrap_or(defaults::TCP_MAX_HEAD),
            tcp_max_body: self
                .size(
                    pick(f.tcp_max_body, "tcp-max-body", sv.tcp_max_body.as_ref()),
                    "tcp_max_body",
                    0..=256 << 20,
                )?
                .unwrap_or(defaults::TCP_MAX_BODY),
            max_udp_payload: self
                .size(
                    pick(
                        f.max_udp_payload,
                        "max-udp-payload",
                        sv.max_udp_payload.as_ref(),
                    ),
                    "max_udp_payload",
                    512..=65_535,
                )?
                .unwrap_or(defaults::MAX_UDP_PAYLOAD),
            task_queue_shares,
            core: core.into_iter().map(|(k, (o, _))| (k, o)).collect(),
        };

        let empty_repo = raw::RawRepo::default();
        let rp = raw.repo.as_ref().unwrap_or(&empty_repo);
        let timer_procs = pick(
            f.repo_timer_procs,
            "repo-timer-procs",
            rp.timer_procs.as_ref(),
        );
        let repo = RepoConfig {
            hash_size: self
                .int(
                    pick(f.repo_hash_size, "repo-hash-size", rp.hash_size.as_ref()),
                    "hash_size",
                    1..=1 << 24,
                    "",
                )?
                .map(|v| v as u32)
                .unwrap_or(defaults::REPO_HASH_SIZE),
            expire: self
                .int(
                    pick(f.repo_expire, "repo-expire", rp.expire.as_ref()),
                    "expire",
                    1..=31_536_000,
                    " s",
                )?
                .unwrap_or(defaults::REPO_EXPIRE),
            timer_interval: self
                .int(
                    pick(
                        f.repo_timer_interval,
                        "repo-timer-interval",
                        rp.timer_interval.as_ref(),
                    ),
                    "timer_interval",
                    1..=60_000,
                    " ms",
                )?
                .unwrap_or(defaults::REPO_TIMER_INTERVAL),
            timer_procs: self
                .int(timer_procs.clone(), "timer_procs", 1..=1024, "")?
                .map(|v| v as u32)
                .unwrap_or(1),
            max_items: self
                .int(
                    pick(f.repo_max_items, "repo-max-items", rp.max_items.as_ref()),
                    "max_items",
                    1..=1_000_000_000,
                    "",
                )?
                .unwrap_or(defaults::REPO_MAX_ITEMS),
            max_bytes: self
                .size(
                    pick(f.repo_max_bytes, "repo-max-bytes", rp.max_bytes.as_ref()),
                    "max_bytes",
                    1..=1 << 40,
                )?
                .unwrap_or(defaults::REPO_MAX_BYTES),
        };
        if let Some((n, at)) = timer_procs {
            if n != 1 {
                let msg = format!(
                    "timer_procs = {n} has no effect: each shard expires its own partition on \
                     its timing wheel"
                );
                self.warnings.push(match at {
                    At::File(span) => self.s.warning(span, &msg),
                    At::Flag(flag) => format!("{flag}: {msg}"),
                });
            }
        }

        let empty_control = raw::RawControl::default();
        let ct = raw.control.as_ref().unwrap_or(&empty_control);
        let control = ControlConfig {
            listen: f
                .control
                .or(ct.listen.as_ref().map(|l| *l.get_ref()))
                .unwrap_or_else(|| defaults::CONTROL_LISTEN.parse().expect("default control")),
            enabled: if f.no_control {
                false
            } else if f.control.is_some() {
                true
            } else {
                ct.enabled.unwrap_or(true)
            },
        };

        let log = LogConfig {
            level: f
                .log_level
                .or(raw.log.as_ref().and_then(|l| l.level))
                .unwrap_or(LogLevel::Info),
        };

        let empty_gw = raw::RawGateway::default();
        let gw = raw.gateway.as_ref().unwrap_or(&empty_gw);
        let gateway = GatewayConfig {
            hash_size: self
                .int(
                    pick(
                        f.gateway_hash_size,
                        "gateway-hash-size",
                        gw.hash_size.as_ref(),
                    ),
                    "hash_size",
                    1..=24,
                    " (log2 of the table size)",
                )?
                .map(|v| v as u32)
                .unwrap_or(defaults::GATEWAY_HASH_SIZE),
            cleanup_interval: self
                .int(
                    pick(
                        f.gateway_cleanup_interval,
                        "gateway-cleanup-interval",
                        gw.cleanup_interval.as_ref(),
                    ),
                    "cleanup_interval",
                    1..=86_400,
                    " s",
                )?
                .unwrap_or(defaults::GATEWAY_CLEANUP_INTERVAL),
        };

        Ok(Config {
            server,
            repo,
            control,
            log,
            gateway,
            route: toml::Table::new(),
        })
    }

    /// Applies a `[server.core.N]` table (or a `--core` flag, `flag` = its text) onto `o`.
    fn core_override(
        &self,
        o: &mut CoreOverride,
        t: &RawCore,
        flag: Option<&str>,
        groups: &BTreeMap<String, u32>,
    ) -> Res<()> {
        let at = |span: Range<usize>| match flag {
            Some(f) => At::Flag(f.to_owned()),
            None => At::File(span),
        };
        let int = |v: &Option<Int>| v.as_ref().map(|v| (*v.get_ref(), at(v.span())));
        let size = |v: &Option<Size>| v.as_ref().map(|v| (*v.get_ref(), at(v.span())));
        if let Some(v) = self.int(int(&t.udp_batch), "udp_batch", UDP_BATCH, "")? {
            o.udp_batch = Some(v as u32);
        }
        if let Some(v) = self.size(
            size(&t.socket_recv_buffer),
            "socket_recv_buffer",
            SOCKET_BUFFER,
        )? {
            o.socket_recv_buffer = Some(v);
        }
        if let Some(v) = self.size(
            size(&t.socket_send_buffer),
            "socket_send_buffer",
            SOCKET_BUFFER,
        )? {
            o.socket_send_buffer = Some(v);
        }
        if let Some(v) = self.int(
            int(&t.spin_before_park_us),
            "spin_before_park_us",
            SPIN_US,
            " µs",
        )? {
            o.spin_before_park_us = Some(v);
        }
        if let Some(v) = self.size(size(&t.io_memory), "io_memory", IO_MEMORY)? {
            o.io_memory = Some(v);
        }
        if let Some(map) = &t.task_queue_shares {
            for (g, n) in &map.get_ref().0 {
                let gat = at(g.span());
                if !groups.contains_key(g.get_ref()) {
                    let known: Vec<&str> = groups.keys().map(String::as_str).collect();
                    return Err(self.s.at(
                        &gat,
                        format!(
                            "unknown async group `{}` (groups are defined by [server] \
                             task_queue_shares: {})",
                            g.get_ref(),
                            known.join(", ")
                        ),
                    ));
                }
                let v = self.int(
                    Some((*n.get_ref(), at(n.span()))),
                    "task_queue_shares",
                    SHARES,
                    "",
                )?;
                o.task_queue_shares
                    .insert(g.get_ref().clone(), v.unwrap_or(1) as u32);
            }
        }
        Ok(())
    }
}

const MAX_SHARDS: i64 = 1024;
/// Listen addresses: every shard holds a socket for each, so this bounds descriptors per shard.
const MAX_LISTEN: usize = 64;
const UDP_BATCH: RangeInclusive<i64> = 1..=1024;
const SHARES: RangeInclusive<i64> = 1..=1000;
const SPIN_US: RangeInclusive<i64> = 0..=1_000_000;
const SOCKET_BUFFER: RangeInclusive<u64> = 1024..=(i32::MAX as u64);
const IO_MEMORY: RangeInclusive<u64> = 64 * 1024..=1 << 40;

fn check_group_name(g: &str) -> std::result::Result<(), String> {
    if g.is_empty()
        || !g
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
    {
        return Err(format!(
            "async group name `{g}`: use letters, digits, `_` and `-`"
        ));
    }
    Ok(())
}
