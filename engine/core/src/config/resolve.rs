//! Resolving a parsed config file and the command-line flags into a [`Config`]: every value
//! taken from its flag when given, else the file, else the default; checked against its range;
//! an error names the flag, or the file, line and column, and what is wrong.

use super::error::{At, ConfigError, Source};
use super::raw::{self, Int, RawCore, RawFile, Size};
use super::*;

pub(super) struct Resolver<'a> {
    pub(super) s: &'a Source<'a>,
    pub(super) flags: &'a Overrides,
    pub(super) warnings: Vec<String>,
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

    pub(super) fn resolve(&mut self, raw: &RawFile) -> Res<Config> {
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
            udp_coalesce_us: self
                .int(
                    pick(
                        f.udp_coalesce_us,
                        "udp-coalesce-us",
                        sv.udp_coalesce_us.as_ref(),
                    ),
                    "udp_coalesce_us",
                    COALESCE_US,
                    " µs",
                )?
                .unwrap_or(0),
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
            tcp_message_timeout_s: self
                .int(
                    pick(
                        f.tcp_message_timeout_s,
                        "tcp-message-timeout-s",
                        sv.tcp_message_timeout_s.as_ref(),
                    ),
                    "tcp_message_timeout_s",
                    1..=3600,
                    " s",
                )?
                .unwrap_or(defaults::TCP_MESSAGE_TIMEOUT_S),
            max_connections: self.int(
                pick(
                    f.max_connections,
                    "max-connections",
                    sv.max_connections.as_ref(),
                ),
                "max_connections",
                1..=10_000_000,
                "",
            )?,
            max_connections_per_shard: self
                .int(
                    pick(
                        f.max_connections_per_shard,
                        "max-connections-per-shard",
                        sv.max_connections_per_shard.as_ref(),
                    ),
                    "max_connections_per_shard",
                    0..=10_000_000,
                    "",
                )?
                .unwrap_or(0),
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
        let listen_at = pick(f.control, "control", ct.listen.as_ref());
        let token_file = ct.token_file.as_ref().map(|t| t.get_ref().clone());
        let token = match (&f.control_token, &ct.token_file) {
            (Some(t), _) => Some(t.clone()),
            (None, Some(p)) => {
                let at = At::File(p.span());
                match std::fs::read_to_string(p.get_ref()) {
                    Ok(t) => Some(t.trim().to_string()),
                    Err(e) => return self.err(&at, "token_file", format!("cannot be read: {e}")),
                }
            }
            (None, None) => None,
        };
        if token.as_deref() == Some("") {
            let at = match &ct.token_file {
                Some(p) if f.control_token.is_none() => At::File(p.span()),
                _ => At::Flag("--control-token".into()),
            };
            return self.err(&at, "token_file", "holds an empty token".into());
        }
        let control = ControlConfig {
            listen: listen_at
                .as_ref()
                .map(|(a, _)| *a)
                .unwrap_or_else(|| defaults::CONTROL_LISTEN.parse().expect("default control")),
            enabled: if f.no_control {
                false
            } else if f.control.is_some() {
                true
            } else {
                ct.enabled.unwrap_or(true)
            },
            token_file,
            token,
            metrics_open: ct.metrics_open.unwrap_or(false),
        };
        if control.enabled && !control.listen.ip().is_loopback() && control.token.is_none() {
            let at = listen_at.map_or(At::Flag("--control".into()), |(_, at)| at);
            return self.err(
                &at,
                "listen",
                format!(
                    "{} is not a loopback address, and without a token anyone who reaches it \
                     could read and change this server: set [control] token_file (or \
                     SIPSHARD_CONTROL_TOKEN) so that callers must send \
                     `Authorization: Bearer TOKEN`",
                    control.listen
                ),
            );
        }

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
            msrp_listen: match (&f.msrp_listen, &gw.msrp_listen) {
                (Some(a), _) => vec![*a],
                (None, Some(l)) => l.get_ref().clone(),
                (None, None) => vec![defaults::MSRP_LISTEN.parse().expect("default MSRP listen")],
            },
            outbound_proxy: match f.outbound_proxy.clone().map(|v| (v, At::Flag("--outbound-proxy".into()))).or_else(|| gw.outbound_proxy.as_ref().map(|v| (v.get_ref().clone(), At::File(v.span())))) {
                None => None,
                Some((uri, at)) => match crate::locate::next_hop(uri.as_bytes()) {
                    Ok(hop) if matches!(hop.target, crate::locate::Target::Addr(_)) => Some(uri),
                    Ok(_) => return self.err(&at, "outbound_proxy", "must name an IP address (sip:192.0.2.10:5060;lr): names are not resolved for the proxy".into()),
                    Err(e) => return self.err(&at, "outbound_proxy", format!("is not a usable SIP URI: {e}")),
                },
            },
            t1_ms: self.int(pick(None, "", gw.t1_ms.as_ref()), "t1_ms", 1..=60_000, " ms")?.unwrap_or(500),
            t2_ms: self.int(pick(None, "", gw.t2_ms.as_ref()), "t2_ms", 1..=600_000, " ms")?.unwrap_or(4000),
            t4_ms: self.int(pick(None, "", gw.t4_ms.as_ref()), "t4_ms", 1..=600_000, " ms")?.unwrap_or(5000),
            chunk_size: self.size(pick(None, "", gw.chunk_size.as_ref()), "chunk_size", 64..=1 << 20)?.unwrap_or(ByteSize(2048)),
            max_message_size: self.size(pick(None, "", gw.max_message_size.as_ref()), "max_message_size", 1..=64 << 20)?.unwrap_or(ByteSize::mib(1)),
            msrp_transaction_timeout: self.int(pick(None, "", gw.msrp_transaction_timeout.as_ref()), "msrp_transaction_timeout", 1..=3600, " s")?.unwrap_or(30),
            setup_timeout: self.int(pick(None, "", gw.setup_timeout.as_ref()), "setup_timeout", 1..=3600, " s")?.unwrap_or(32),
            session_lifetime: self.int(pick(None, "", gw.session_lifetime.as_ref()), "session_lifetime", 1..=31_536_000, " s")?.unwrap_or(43_200),
            idle_timeout: self.int(pick(None, "", gw.idle_timeout.as_ref()), "idle_timeout", 1..=31_536_000, " s")?.unwrap_or(7200),
            sync_timeout: self.int(pick(None, "", gw.sync_timeout.as_ref()), "sync_timeout", 1..=3600, " s")?.unwrap_or(30),
            keepalive: self.int(pick(None, "", gw.keepalive.as_ref()), "keepalive", 0..=86_400, " s")?.unwrap_or(0),
            queue_max_messages: self.int(pick(None, "", gw.queue_max_messages.as_ref()), "queue_max_messages", 1..=1_000_000, "")?.unwrap_or(64),
            queue_max_bytes: self.size(pick(None, "", gw.queue_max_bytes.as_ref()), "queue_max_bytes", 1..=1 << 32)?.unwrap_or(ByteSize::kib(256)),
            queue_max_age: self.int(pick(None, "", gw.queue_max_age.as_ref()), "queue_max_age", 1..=86_400, " s")?.unwrap_or(60),
            cpim: gw.cpim.unwrap_or_default(),
            max_transactions: self.int(pick(None, "", gw.max_transactions.as_ref()), "max_transactions", 1..=100_000_000, "")?.unwrap_or(500_000),
            max_in_flight: self.int(pick(None, "", gw.max_in_flight.as_ref()), "max_in_flight", 1..=1_000_000, "")?.unwrap_or(256),
            max_sessions: self.int(pick(None, "", gw.max_sessions.as_ref()), "max_sessions", 1..=100_000_000, "")?.unwrap_or(200_000),
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
        if let Some(v) = self.int(
            int(&t.udp_coalesce_us),
            "udp_coalesce_us",
            COALESCE_US,
            " µs",
        )? {
            o.udp_coalesce_us = Some(v);
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
/// Up to 10 ms: a window longer than that is a latency no SIP peer should pay.
const COALESCE_US: RangeInclusive<i64> = 0..=10_000;
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
