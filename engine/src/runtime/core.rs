//! The per-shard state machine: what a shard does with a message, a tick, a result from another
//! shard or a control request. No glommio here: input is bytes, time and events; output is a list
//! of [`Out`]s (datagrams, TCP writes, work for other shards, queued work) that the driver
//! carries out. This is where the route program meets the repository: [`ShardCore`] implements
//! the route [`Host`] over its partition.

use super::metrics::ShardStats;
use super::net::Transport;
use crate::config::{self, Loaded, Overrides};
use crate::control::RpcError;
use crate::proto::repo::{
    self, ListCursor, LocalSocket, MessageRef, PushOutcome, ReceiveContext, RepoConfig, Repository,
    StoredMessage,
};
use crate::response;
use crate::route::{
    self, ActionResult, AsyncPullRequest, AsyncPullResult, CheckResult, ForwardResult, HeaderEdit,
    Host, LogLevel, Outcome, Program, PullRequest, PullResult, PushResult, Reply, RmResult,
    RouteId, Suspended, Target, UidGen,
};
use crossbeam_epoch::{self as epoch, Atomic, Owned};
use serde_json::{json, Value};
use sipshard_parser::sip::{self, Framing, HeaderKind, Message, Verdict, EMPTY_HEADER};
use sipshard_parser::Status;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

/// Header array size for messages the server handles.
pub const MAX_HEADERS: usize = 96;

/// A TCP connection, as any shard can name it: the shard that reads it, the listen address it
/// was accepted on, and the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnRef {
    /// The shard owning the connection.
    pub shard: u16,
    /// Index of the listen address.
    pub listen: u16,
    /// The peer's address.
    pub peer: SocketAddr,
}

/// Where a message came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxContext {
    /// Index of the listen address it arrived on.
    pub listen: u16,
    /// Transport.
    pub transport: Transport,
    /// Sender.
    pub source: SocketAddr,
    /// Local address.
    pub local: SocketAddr,
    /// The connection, for TCP.
    pub conn: Option<ConnRef>,
    /// Receive time (ms on the server's clock).
    pub received_ms: u64,
}

/// Something the driver must do.
#[derive(Debug)]
pub enum Out {
    /// Send a datagram from the socket of listen address `listen`.
    Udp {
        /// Listen index.
        listen: u16,
        /// Destination.
        dest: SocketAddr,
        /// Bytes.
        bytes: Vec<u8>,
    },
    /// Write to a TCP connection (possibly another shard's).
    Tcp {
        /// The connection.
        conn: ConnRef,
        /// Bytes.
        bytes: Vec<u8>,
    },
    /// Move work to another shard.
    Shard {
        /// Destination shard.
        to: usize,
        /// The work.
        work: Work,
    },
    /// Run work later in task-queue group `group` of this shard.
    Queue {
        /// Group index (as `Program::groups`).
        group: usize,
        /// The work.
        work: Work,
    },
}

/// Work that travels between shards (or waits in a task queue). Owns everything it needs.
#[derive(Debug)]
pub enum Work {
    /// A SIP message, for the shard that owns its Call-ID.
    Sip {
        /// The message.
        bytes: Vec<u8>,
        /// Where it came from.
        rx: RxContext,
    },
    /// A repository operation for the shard that owns `callid`; answer with `Done`.
    Remote {
        /// Token of the suspended run on the asking shard.
        token: u64,
        /// The asking shard.
        from: usize,
        /// Config generation the route ids belong to.
        generation: u64,
        /// The operation.
        op: RemoteOp,
    },
    /// The answer to a `Remote`.
    Done {
        /// Token of the suspended run.
        token: u64,
        /// The result.
        result: ActionResult,
    },
    /// A queued `async_pull`, run in its group on the owner.
    AsyncPull {
        /// Config generation.
        generation: u64,
        /// Call-ID.
        callid: Vec<u8>,
        /// msgid.
        msgid: Vec<u8>,
        /// Route to run.
        route: RouteId,
        /// Remove the item.
        remove: bool,
    },
}

/// A repository operation run on the owner of a Call-ID for another shard.
#[derive(Debug)]
pub enum RemoteOp {
    /// `pull`.
    Pull {
        /// Call-ID.
        callid: Vec<u8>,
        /// msgid.
        msgid: Vec<u8>,
        /// Route.
        route: RouteId,
        /// Remove.
        remove: bool,
    },
    /// `async_pull`.
    AsyncPull {
        /// Call-ID.
        callid: Vec<u8>,
        /// msgid.
        msgid: Vec<u8>,
        /// Group index.
        group: usize,
        /// Route.
        route: RouteId,
        /// Remove.
        remove: bool,
    },
    /// `rm`.
    Rm {
        /// Call-ID.
        callid: Vec<u8>,
        /// msgid.
        msgid: Vec<u8>,
    },
    /// `check`.
    Check {
        /// Call-ID.
        callid: Vec<u8>,
        /// msgid, or any item of the Call-ID.
        msgid: Option<Vec<u8>>,
    },
}

/// What all shards share: the current config and route program (swapped on reload without
/// stopping anyone: readers pin an epoch, the old program is freed once none holds it), the
/// Call-ID hash seed and the boot id.
pub struct SharedState {
    current: Atomic<Loaded>,
    generation: AtomicU64,
    config_path: Option<PathBuf>,
    overrides: Overrides,
    hasher: std::collections::hash_map::RandomState,
    boot: u64,
    started: Instant,
}

impl SharedState {
    /// Shares `loaded`; `config_path` and `overrides` are what a reload reads again.
    pub fn new(loaded: Loaded, config_path: Option<PathBuf>, overrides: Overrides) -> Self {
        SharedState {
            current: Atomic::new(loaded),
            generation: AtomicU64::new(0),
            config_path,
            overrides,
            hasher: std::collections::hash_map::RandomState::new(),
            boot: UidGen::boot_prefix(),
            started: Instant::now(),
        }
    }

    /// Runs `f` with the current config and its generation.
    pub fn with<R>(&self, f: impl FnOnce(&Loaded, u64) -> R) -> R {
        let guard = epoch::pin();
        let generation = self.generation.load(Ordering::Acquire);
        let p = self.current.load(Ordering::Acquire, &guard);
        // SAFETY: the pointer is never null (set in `new`, replaced by `reload` with another
        // non-null one) and the pointee is freed only through `defer_destroy`, after every
        // thread pinned now (we are) has unpinned.
        #[allow(unsafe_code)]
        let loaded = unsafe { p.deref() };
        f(loaded, generation)
    }

    /// The generation of the current config (bumped by every reload).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Loads the config file again and swaps it in for every shard. `[server]` changes (sockets,
    /// shards, cores) need a restart and are reported as warnings; routes and `[repo] expire`
    /// apply to the next message.
    pub fn reload(&self) -> Result<Vec<String>, String> {
        let Some(path) = &self.config_path else {
            return Err("no config file to reload (started without --config)".into());
        };
        let new = config::load(path, &self.overrides).map_err(|e| e.to_string())?;
        let mut warnings = new.warnings.clone();
        self.with(|old, _| {
            if old.config.server != new.config.server {
                warnings.push("[server] changed: restart sipshard for it to take effect".into());
            }
            if old.config.repo.max_items != new.config.repo.max_items
                || old.config.repo.max_bytes != new.config.repo.max_bytes
                || old.config.repo.timer_interval != new.config.repo.timer_interval
            {
                warnings
                    .push("[repo] max_items, max_bytes and timer_interval apply at restart".into());
            }
        });
        let guard = epoch::pin();
        let old = self.current.swap(Owned::new(new), Ordering::AcqRel, &guard);
        self.generation.fetch_add(1, Ordering::AcqRel);
        // SAFETY: `old` came out of `current` and is no longer reachable from it; readers that
        // still hold it are pinned, so destruction waits for them.
        #[allow(unsafe_code)]
        unsafe {
            guard.defer_destroy(old)
        };
        Ok(warnings)
    }

    /// The shard owning a Call-ID.
    pub fn owner_of_callid(&self, callid: &[u8], shards: usize) -> usize {
        if shards <= 1 {
            return 0;
        }
        (self.hasher.hash_one(callid) % shards as u64) as usize
    }

    /// Time since start.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }
}

impl Drop for SharedState {
    fn drop(&mut self) {
        // SAFETY: we have `&mut self`: no reader can hold the pointer any more.
        #[allow(unsafe_code)]
        unsafe {
            let p = self.current.swap(
                epoch::Shared::null(),
                Ordering::AcqRel,
                epoch::unprotected(),
            );
            if !p.is_null() {
                drop(p.into_owned());
            }
        }
    }
}

/// A run waiting for another shard's answer.
struct Pending {
    suspended: Suspended,
    bytes: Vec<u8>,
    rx: RxContext,
    generation: u64,
}

/// The state a shard's routes act on (everything but the shared config).
struct State {
    id: usize,
    shards: usize,
    shared: Arc<SharedState>,
    stats: Arc<ShardStats>,
    repo: Repository,
    uid: UidGen,
    listen: Vec<(Transport, SocketAddr)>,
    pending: HashMap<u64, Pending>,
    next_token: u64,
    next_tag: u64,
}

/// One shard's protocol state.
pub struct ShardCore {
    st: State,
    expired: Vec<StoredMessage>,
}

impl ShardCore {
    /// A shard `id` of `shards`, with the listen addresses (index = listen id).
    pub fn new(
        id: usize,
        shards: usize,
        shared: Arc<SharedState>,
        stats: Arc<ShardStats>,
        listen: Vec<(Transport, SocketAddr)>,
        now_ms: u64,
    ) -> Self {
        let repo_config = shared.with(|l, _| {
            let r = &l.config.repo;
            RepoConfig {
                max_items: r.max_items as usize,
                max_bytes: r.max_bytes.bytes() as usize,
                expire_ms: r.expire.saturating_mul(1000),
                tick_ms: r.timer_interval.max(1),
                capacity_hint: r.hash_size as usize,
            }
        });
        let uid = UidGen::new(shared.boot, id as u16);
        ShardCore {
            st: State {
                id,
                shards,
                stats,
                repo: Repository::new(repo_config, now_ms),
                uid,
                listen,
                pending: HashMap::new(),
                next_token: 0,
                next_tag: 0,
                shared,
            },
            expired: Vec::new(),
        }
    }

    /// The shard that owns the message in `bytes` (this one when it has no Call-ID: it is
    /// answered here).
    pub fn owner_of(&self, bytes: &[u8]) -> usize {
        match sip::find_call_id(bytes) {
            Some(c) => self.owner_of_callid(c),
            None => self.st.id,
        }
    }

    /// The shard that owns a Call-ID.
    pub fn owner_of_callid(&self, callid: &[u8]) -> usize {
        self.st.shared.owner_of_callid(callid, self.st.shards)
    }

    /// Items stored now.
    pub fn items(&self) -> u64 {
        self.st.repo.len() as u64
    }

    /// Handles a SIP message this shard owns.
    pub fn on_sip(&mut self, now_ms: u64, bytes: Vec<u8>, rx: RxContext, outs: &mut Vec<Out>) {
        let st = &mut self.st;
        let shared = st.shared.clone();
        shared.with(|loaded, generation| {
            st.handle_sip(&loaded.program, generation, now_ms, &bytes, rx, outs)
        });
    }

    /// Handles work from another shard or a task queue.
    pub fn on_work(&mut self, now_ms: u64, work: Work, outs: &mut Vec<Out>) {
        let st = &mut self.st;
        let shared = st.shared.clone();
        shared.with(|loaded, generation| {
            let program = &loaded.program;
            match work {
                Work::Sip { bytes, rx } => {
                    st.handle_sip(program, generation, now_ms, &bytes, rx, outs)
                }
                Work::Remote {
                    token,
                    from,
                    generation: g,
                    op,
                } => {
                    let result = if g != generation {
                        st.log(
                            LogLevel::Warn,
                            "config reloaded while a cross-shard operation was in flight; dropped",
                        );
                        None
                    } else {
                        Some(st.remote_op(program, generation, now_ms, op, outs))
                    };
                    if let Some(result) = result {
                        outs.push(Out::Shard {
                            to: from,
                            work: Work::Done { token, result },
                        });
                    }
                }
                Work::Done { token, result } => {
                    let Some(p) = st.pending.remove(&token) else {
                        return;
                    };
                    if p.generation != generation {
                        st.log(
                            LogLevel::Warn,
                            "config reloaded while a route waited for another shard; dropped",
                        );
                        return;
                    }
                    st.resume(program, generation, now_ms, p, result, outs);
                }
                Work::AsyncPull {
                    generation: g,
                    callid,
                    msgid,
                    route,
                    remove,
                } => {
                    if g != generation {
                        st.log(
                            LogLevel::Warn,
                            "config reloaded before an async_pull ran; dropped",
                        );
                        return;
                    }
                    if st.pull_local(
                        program, generation, now_ms, &callid, &msgid, route, remove, outs,
                    ) == PullResult::NotFound
                    {
                        st.log(
                            LogLevel::Info,
                            "async_pull: the item was gone by the time its task ran",
                        );
                    }
                }
            }
        });
    }

    /// Advances the repository's timing wheel; expired items run `repo:expired`.
    pub fn tick(&mut self, now_ms: u64, outs: &mut Vec<Out>) {
        let mut expired = std::mem::take(&mut self.expired);
        self.st.repo.tick(now_ms, &mut expired);
        if !expired.is_empty() {
            let st = &mut self.st;
            let shared = st.shared.clone();
            shared.with(|loaded, generation| {
                for item in expired.drain(..) {
                    st.stats.expired.fetch_add(1, Ordering::Relaxed);
                    if let Some(route) = loaded.program.repo_expired() {
                        st.run_item(&loaded.program, generation, now_ms, &item, route, outs);
                    }
                }
            });
            self.st.update_gauges();
        }
        self.expired = expired;
    }

    /// The reply to send before closing a TCP connection whose stream cannot be framed.
    pub fn framing_error_reply(
        &self,
        buf: &[u8],
        e: sipshard_parser::sip::FrameError,
    ) -> Option<Vec<u8>> {
        if buf.starts_with(b"SIP/") {
            return None;
        }
        let code = e.status_code();
        let reason = if code == 513 {
            "Message Too Large"
        } else {
            "Bad Request"
        };
        let mut out = Vec::new();
        response::write_error_response(buf, code, reason, e.reason(), "", &mut out);
        Some(out)
    }

    /// Runs a control method on this shard's state; what it sends goes to `outs`.
    pub fn control(
        &mut self,
        now_ms: u64,
        method: &str,
        params: &Value,
        outs: &mut Vec<Out>,
    ) -> Result<Value, RpcError> {
        let st = &mut self.st;
        let shared = st.shared.clone();
        shared.with(|loaded, generation| {
            st.control(
                &loaded.program,
                &loaded.config,
                generation,
                now_ms,
                method,
                params,
                outs,
            )
        })
    }

    /// Merges the per-shard results of a method sent to every shard.
    pub fn merge(method: &str, parts: Vec<Value>) -> Result<Value, RpcError> {
        match method {
            "repo.stats" => {
                let mut total = serde_json::Map::new();
                for p in &parts {
                    if let Value::Object(o) = p {
                        for (k, v) in o {
                            if k == "shard" {
                                continue;
                            }
                            let sum = total.get(k).and_then(Value::as_u64).unwrap_or(0)
                                + v.as_u64().unwrap_or(0);
                            total.insert(k.clone(), json!(sum));
                        }
                    }
                }
                total.insert("shards".into(), Value::Array(parts));
                Ok(Value::Object(total))
            }
            "shard.stats" => Ok(json!({ "shards": parts })),
            _ => parts
                .into_iter()
                .next()
                .ok_or_else(|| RpcError::server("no shard answered")),
        }
    }
}

fn repo_transport(t: Transport) -> repo::Transport {
    match t {
        Transport::Udp => repo::Transport::Udp,
        Transport::Tcp => repo::Transport::Tcp,
    }
}

/// Packs the shard and listen index into the repository's two-byte local socket.
fn pack_local(shard: usize, listen: u16) -> LocalSocket {
    LocalSocket(((shard as u16) << 8) | (listen & 0xff))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

impl State {
    fn log(&self, level: LogLevel, msg: &str) {
        let shard = self.id;
        match level {
            LogLevel::Error => tracing::error!(shard, "{msg}"),
            LogLevel::Warn => tracing::warn!(shard, "{msg}"),
            LogLevel::Info => tracing::info!(shard, "{msg}"),
            LogLevel::Debug => tracing::debug!(shard, "{msg}"),
            LogLevel::Trace => tracing::trace!(shard, "{msg}"),
        }
    }

    fn update_gauges(&self) {
        self.stats
            .items
            .store(self.repo.len() as u64, Ordering::Relaxed);
        self.stats
            .bytes
            .store(self.repo.bytes() as u64, Ordering::Relaxed);
    }

    fn next_to_tag(&mut self) -> String {
        self.next_tag += 1;
        format!(
            "ss{:x}.{}.{:x}",
            self.shared.boot & 0xffff_ffff,
            self.id,
            self.next_tag
        )
    }

    fn rx_of_item(&self, ctx: ReceiveContext) -> RxContext {
        let listen = ctx.local.0 & 0xff;
        let shard = ctx.local.0 >> 8;
        let transport = match ctx.transport {
            repo::Transport::Udp => Transport::Udp,
            repo::Transport::Tcp => Transport::Tcp,
        };
        let local = self
            .listen
            .get(usize::from(listen))
            .map(|l| l.1)
            .unwrap_or(ctx.source);
        RxContext {
            listen,
            transport,
            source: ctx.source,
            local,
            conn: (transport == Transport::Tcp).then_some(ConnRef {
                shard,
                listen,
                peer: ctx.source,
            }),
            received_ms: ctx.received_ms,
        }
    }

    /// Sends an answer for a message that came in with `rx`.
    fn send_to_sender(
        &mut self,
        rx: &RxContext,
        top_via: Option<&sip::Via<'_>>,
        bytes: Vec<u8>,
        outs: &mut Vec<Out>,
    ) {
        match rx.transport {
            Transport::Udp => {
                let dest = response::udp_response_destination(top_via, rx.source);
                if !response::is_unicast(dest.ip()) {
                    self.log(LogLevel::Debug, "not answering to a non-unicast address");
                    return;
                }
                outs.push(Out::Udp {
                    listen: rx.listen,
                    dest,
                    bytes,
                });
            }
            Transport::Tcp => {
                if let Some(conn) = rx.conn {
                    outs.push(Out::Tcp { conn, bytes });
                }
            }
        }
    }

    fn handle_sip(
        &mut self,
        program: &Program,
        generation: u64,
        now_ms: u64,
        bytes: &[u8],
        rx: RxContext,
        outs: &mut Vec<Out>,
    ) {
        let mut headers = [EMPTY_HEADER; MAX_HEADERS];
        let msg = match sip::parse_strict(bytes, &mut headers, Framing::Datagram) {
            Ok(Status::Complete(m)) => m,
            Ok(Status::Partial) => return,
            Err(e) => {
                self.stats.parse_error(e.label());
                match e.verdict() {
                    Verdict::Drop => {
                        self.stats.dropped_responses.fetch_add(1, Ordering::Relaxed);
                    }
                    Verdict::Reply(code) => {
                        if bytes.starts_with(b"ACK ") {
                            return;
                        }
                        let reason = match code {
                            505 => "Version Not Supported",
                            501 => "Not Implemented",
                            _ => "Bad Request",
                        };
                        let tag = self.next_to_tag();
                        let mut out = Vec::new();
                        response::write_error_response(
                            bytes,
                            code,
                            reason,
                            e.reason(),
                            &tag,
                            &mut out,
                        );
                        self.send_to_sender(&rx, None, out, outs);
                    }
                }
                return;
            }
        };
        if !msg.is_request() {
            match program.response() {
                Some(route) => {
                    self.run_route(program, generation, now_ms, &msg, bytes, rx, route, outs);
                }
                None => {
                    self.stats.dropped_responses.fetch_add(1, Ordering::Relaxed);
                }
            }
            return;
        }
        // Checks above the parser (RFC 4475 §3.3.1, §3.3.8, §3.3.9), in one pass over the
        // header array: `parse_strict` already checked that every present header decodes, so
        // presence and count are all that is left to see. (kind, required, single-valued)
        const CHECKED: [(HeaderKind, bool, bool); 6] = [
            (HeaderKind::Via, true, false),
            (HeaderKind::From, true, true),
            (HeaderKind::To, true, true),
            (HeaderKind::CallId, true, true),
            (HeaderKind::CSeq, true, true),
            (HeaderKind::MaxForwards, false, true),
        ];
        let mut counts = [0usize; CHECKED.len()];
        for h in msg.headers() {
            if let Some(i) = CHECKED.iter().position(|c| c.0 == h.kind) {
                counts[i] += 1;
            }
        }
        let checked = || CHECKED.iter().zip(counts);
        let problem = if checked().any(|(c, n)| c.1 && n == 0) {
            Some("missing Via, From, To, Call-ID or CSeq")
        } else if checked().any(|(c, n)| c.2 && n > 1) {
            Some("a single-value header appears more than once")
        } else if msg.content_length_conflict() {
            Some("conflicting Content-Length headers")
        } else {
            None
        };
        if let Some(problem) = problem {
            self.stats.parse_error("header_value");
            if msg.method() != Some(b"ACK") {
                let tag = self.next_to_tag();
                let mut out = Vec::new();
                response::write_error_response(bytes, 400, "Bad Request", problem, &tag, &mut out);
                let via = msg.top_via();
                self.send_to_sender(&rx, via.as_ref(), out, outs);
            }
            return;
        }
        self.run_route(
            program,
            generation,
            now_ms,
            &msg,
            bytes,
            rx,
            program.request(),
            outs,
        );
    }

    /// Runs `route` on `msg` and keeps the run if it waits for another shard.
    #[allow(clippy::too_many_arguments)]
    fn run_route(
        &mut self,
        program: &Program,
        generation: u64,
        now_ms: u64,
        msg: &Message<'_, '_>,
        bytes: &[u8],
        rx: RxContext,
        route: RouteId,
        outs: &mut Vec<Out>,
    ) {
        let mut host = MsgHost {
            st: self,
            program,
            generation,
            now_ms,
            msg,
            rx,
            outs,
            token: None,
        };
        let outcome = route::run(program, route, &mut host);
        let token = host.token;
        self.finish(outcome, token, bytes, rx, generation);
    }

    fn finish(
        &mut self,
        outcome: Outcome,
        token: Option<u64>,
        bytes: &[u8],
        rx: RxContext,
        generation: u64,
    ) {
        match outcome {
            Outcome::Suspended(suspended) => {
                let Some(token) = token else {
                    self.log(
                        LogLevel::Error,
                        "a route suspended without a pending operation",
                    );
                    return;
                };
                self.pending.insert(
                    token,
                    Pending {
                        suspended,
                        bytes: bytes.to_vec(),
                        rx,
                        generation,
                    },
                );
            }
            Outcome::Failed(e) => self.log(LogLevel::Error, &format!("route failed: {e}")),
            _ => {}
        }
    }

    fn resume(
        &mut self,
        program: &Program,
        generation: u64,
        now_ms: u64,
        p: Pending,
        result: ActionResult,
        outs: &mut Vec<Out>,
    ) {
        let mut headers = [EMPTY_HEADER; MAX_HEADERS];
        let Ok(Status::Complete(msg)) = sip::parse(&p.bytes, &mut headers, Framing::Datagram)
        else {
            return;
        };
        let mut host = MsgHost {
            st: self,
            program,
            generation,
            now_ms,
            msg: &msg,
            rx: p.rx,
            outs,
            token: None,
        };
        let outcome = route::resume(program, p.suspended, result, &mut host);
        let token = host.token;
        self.finish(outcome, token, &p.bytes, p.rx, generation);
    }

    /// Runs `route` on a stored item as if it had just arrived from its original sender.
    fn run_item(
        &mut self,
        program: &Program,
        generation: u64,
        now_ms: u64,
        item: &StoredMessage,
        route: RouteId,
        outs: &mut Vec<Out>,
    ) {
        let bytes = item.message();
        let rx = self.rx_of_item(item.context());
        let mut headers = [EMPTY_HEADER; MAX_HEADERS];
        match sip::parse(bytes, &mut headers, Framing::Datagram) {
            Ok(Status::Complete(msg)) => {
                self.run_route(program, generation, now_ms, &msg, bytes, rx, route, outs);
            }
            _ => self.log(LogLevel::Error, "a stored message no longer parses"),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn pull_local(
        &mut self,
        program: &Program,
        generation: u64,
        now_ms: u64,
        callid: &[u8],
        msgid: &[u8],
        route: RouteId,
        remove: bool,
        outs: &mut Vec<Out>,
    ) -> PullResult {
        match self.repo.pull(callid, msgid, remove) {
            None => {
                self.stats.pull_not_found.fetch_add(1, Ordering::Relaxed);
                PullResult::NotFound
            }
            Some(item) => {
                self.stats.pulled.fetch_add(1, Ordering::Relaxed);
                self.update_gauges();
                self.run_item(program, generation, now_ms, &item, route, outs);
                PullResult::Pulled
            }
        }
    }

    fn remote_op(
        &mut self,
        program: &Program,
        generation: u64,
        now_ms: u64,
        op: RemoteOp,
        outs: &mut Vec<Out>,
    ) -> ActionResult {
        match op {
            RemoteOp::Pull {
                callid,
                msgid,
                route,
                remove,
            } => ActionResult::Pull(self.pull_local(
                program, generation, now_ms, &callid, &msgid, route, remove, outs,
            )),
            RemoteOp::AsyncPull {
                callid,
                msgid,
                group,
                route,
                remove,
            } => ActionResult::AsyncPull(
                self.queue_async(generation, callid, msgid, group, route, remove, outs),
            ),
            RemoteOp::Rm { callid, msgid } => ActionResult::Rm(self.rm_local(&callid, &msgid)),
            RemoteOp::Check { callid, msgid } => {
                ActionResult::Check(self.check_local(&callid, msgid.as_deref()))
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn queue_async(
        &mut self,
        generation: u64,
        callid: Vec<u8>,
        msgid: Vec<u8>,
        group: usize,
        route: RouteId,
        remove: bool,
        outs: &mut Vec<Out>,
    ) -> AsyncPullResult {
        if !self.repo.check(&callid, &msgid) {
            return AsyncPullResult::NotFound;
        }
        self.stats.async_queued.fetch_add(1, Ordering::Relaxed);
        outs.push(Out::Queue {
            group,
            work: Work::AsyncPull {
                generation,
                callid,
                msgid,
                route,
                remove,
            },
        });
        AsyncPullResult::Queued
    }

    fn rm_local(&mut self, callid: &[u8], msgid: &[u8]) -> RmResult {
        if self.repo.rm(callid, msgid) {
            self.stats.removed.fetch_add(1, Ordering::Relaxed);
            self.update_gauges();
            RmResult::Removed
        } else {
            RmResult::NotFound
        }
    }

    fn check_local(&self, callid: &[u8], msgid: Option<&[u8]>) -> CheckResult {
        let found = match msgid {
            Some(m) => self.repo.check(callid, m),
            None => self.repo.check_callid(callid),
        };
        if found {
            CheckResult::Found
        } else {
            CheckResult::NotFound
        }
    }

    fn new_token(&mut self) -> u64 {
        self.next_token += 1;
        self.next_token
    }

    #[allow(clippy::too_many_arguments)]
    fn control(
        &mut self,
        program: &Program,
        config: &config::Config,
        generation: u64,
        now_ms: u64,
        method: &str,
        params: &Value,
        outs: &mut Vec<Out>,
    ) -> Result<Value, RpcError> {
        let str_param = |k: &str| -> Result<Vec<u8>, RpcError> {
            params
                .get(k)
                .and_then(Value::as_str)
                .map(|s| s.as_bytes().to_vec())
                .ok_or_else(|| RpcError::invalid_params(format!("missing string parameter `{k}`")))
        };
        match method {
            "repo.stats" => {
                let s = self.repo.stats();
                Ok(json!({
                    "shard": self.id,
                    "items": s.items, "bytes": s.bytes, "stored": s.stored,
                    "duplicates": s.duplicates, "retransmissions": s.retransmissions,
                    "full": s.full, "pulled": s.pulled, "removed": s.removed, "expired": s.expired,
                }))
            }
            "shard.stats" => {
                let mut m = serde_json::Map::new();
                m.insert("shard".into(), json!(self.id));
                for (name, _, v) in self.stats.counters() {
                    m.insert(name.into(), json!(v));
                }
                m.insert(
                    "parse_errors".into(),
                    json!(self.stats.parse_errors_total()),
                );
                m.insert("pending_cross_shard".into(), json!(self.pending.len()));
                Ok(Value::Object(m))
            }
            "repo.list" => {
                let cursor = params.get("cursor").and_then(Value::as_u64).unwrap_or(0);
                let limit = params
                    .get("limit")
                    .and_then(Value::as_u64)
                    .unwrap_or(100)
                    .clamp(1, 1000) as usize;
                let page = self.repo.list(ListCursor::from_u64(cursor), limit);
                let items: Vec<Value> = page
                    .items
                    .iter()
                    .map(|v| self.item_json(v, now_ms, false))
                    .collect();
                Ok(json!({ "items": items, "next": page.next.map(ListCursor::to_u64) }))
            }
            "repo.get" => {
                let (c, m) = (str_param("callid")?, str_param("msgid")?);
                match self.repo.get(&c, &m) {
                    Some(v) => Ok(self.item_json(&v, now_ms, true)),
                    None => Err(RpcError::server("not found")),
                }
            }
            "repo.rm" => {
                let (c, m) = (str_param("callid")?, str_param("msgid")?);
                Ok(json!({ "result": self.rm_local(&c, &m).name() }))
            }
            "repo.pull" => {
                let (c, m) = (str_param("callid")?, str_param("msgid")?);
                let route_name = params.get("route").and_then(Value::as_str).unwrap_or("");
                let route = program.route_id(route_name).ok_or_else(|| {
                    RpcError::invalid_params(format!("unknown route `{route_name}`"))
                })?;
                let remove = params
                    .get("remove")
                    .and_then(Value::as_bool)
                    .unwrap_or(true);
                let r = self.pull_local(program, generation, now_ms, &c, &m, route, remove, outs);
                Ok(json!({ "result": r.name() }))
            }
            "config.show" => {
                Ok(json!({ "config": config.to_toml_string(), "generation": generation }))
            }
            "config.reload" => match self.shared.reload() {
                Ok(warnings) => Ok(json!({
                    "reloaded": true,
                    "generation": self.shared.generation(),
                    "warnings": warnings,
                })),
                Err(e) => Err(RpcError::server(format!("reload refused: {e}"))),
            },
            "core.uptime" => Ok(json!({
                "uptime_s": self.shared.uptime().as_secs_f64(),
                "shards": self.shards,
            })),
            other => Err(RpcError::method_not_found(other)),
        }
    }

    fn item_json(&self, v: &repo::ItemView<'_>, now_ms: u64, with_message: bool) -> Value {
        let ctx = v.context();
        let mut o = json!({
            "callid": text(v.call_id()),
            "msgid": text(v.msgid()),
            "cseq": format!("{} {}", v.cseq(), text(v.cseq_method())),
            "branch": v.branch().map(text),
            "source": ctx.source.to_string(),
            "transport": match ctx.transport { repo::Transport::Udp => "udp", repo::Transport::Tcp => "tcp" },
            "age_ms": now_ms.saturating_sub(ctx.received_ms),
            "expires_in_ms": v.deadline_ms().saturating_sub(now_ms),
            "bytes": v.bytes(),
            "shard": self.id,
        });
        if with_message {
            o["message"] = json!(text(v.message()));
        }
        o
    }
}

/// The route host for one message on one shard.
struct MsgHost<'s, 'p, 'm, 'h, 'b> {
    st: &'s mut State,
    program: &'p Program,
    generation: u64,
    now_ms: u64,
    msg: &'m Message<'h, 'b>,
    rx: RxContext,
    outs: &'s mut Vec<Out>,
    /// The token of the cross-shard operation the run waits for, if it suspends.
    token: Option<u64>,
}

impl MsgHost<'_, '_, '_, '_, '_> {
    fn remote(&mut self, owner: usize, op: RemoteOp) {
        let token = self.st.new_token();
        self.token = Some(token);
        self.outs.push(Out::Shard {
            to: owner,
            work: Work::Remote {
                token,
                from: self.st.id,
                generation: self.generation,
                op,
            },
        });
    }

    fn owner(&self, callid: &[u8]) -> usize {
        self.st.shared.owner_of_callid(callid, self.st.shards)
    }
}

impl Host for MsgHost<'_, '_, '_, '_, '_> {
    fn message(&self) -> &Message<'_, '_> {
        self.msg
    }

    fn source(&self) -> SocketAddr {
        self.rx.source
    }

    fn transport(&self) -> route::Transport {
        match self.rx.transport {
            Transport::Udp => route::Transport::Udp,
            Transport::Tcp => route::Transport::Tcp,
        }
    }

    fn shard(&self) -> u16 {
        self.st.id as u16
    }

    fn write_uid(&mut self, out: &mut Vec<u8>) {
        self.st.uid.write_next(out);
    }

    fn reply(&mut self, reply: &Reply<'_>) {
        if !self.msg.is_request() || self.msg.method() == Some(b"ACK") {
            return;
        }
        let headers: Vec<(String, String)> = reply
            .headers
            .iter()
            .map(|(n, v)| (n.as_str().to_string(), text(v)))
            .collect();
        let refs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let tag = self.st.next_to_tag();
        let mut out = Vec::with_capacity(512);
        response::write_response(
            self.msg,
            self.rx.source,
            reply.code,
            &String::from_utf8_lossy(reply.reason),
            &tag,
            &refs,
            &mut out,
        );
        let via = self.msg.top_via();
        self.st
            .send_to_sender(&self.rx, via.as_ref(), out, self.outs);
    }

    fn forward(&mut self, to: Target, edits: &[HeaderEdit]) -> Poll<ForwardResult> {
        if to.transport != route::Transport::Udp {
            self.log(
                LogLevel::Warn,
                b"forward over TCP is not supported yet; use udp:",
            );
            return Poll::Ready(ForwardResult::Error);
        }
        let Some(listen) = self
            .st
            .listen
            .iter()
            .position(|(t, a)| *t == Transport::Udp && a.is_ipv4() == to.addr.is_ipv4())
        else {
            return Poll::Ready(ForwardResult::Error);
        };
        if self.msg.max_forwards() == Some(0) {
            return Poll::Ready(ForwardResult::Error);
        }
        let local = self.st.listen[listen].1;
        let mut out = Vec::with_capacity(self.msg.len() + 128);
        let head_end = self.msg.head_len();
        let bytes = self.msg.as_bytes();
        // Start line as received.
        let sl = memchr::memchr(b'\n', bytes).map_or(0, |i| i + 1);
        out.extend_from_slice(&bytes[..sl]);
        let mut branch = Vec::new();
        self.st.uid.write_next(&mut branch);
        out.extend_from_slice(format!("Via: SIP/2.0/UDP {local};branch=z9hG4bK-ss-").as_bytes());
        out.extend_from_slice(&branch);
        out.extend_from_slice(b"\r\n");
        for h in self.msg.headers() {
            if edits.iter().any(|e| e.name.matches(h)) {
                continue;
            }
            out.extend_from_slice(h.name);
            out.extend_from_slice(b": ");
            if h.kind == HeaderKind::MaxForwards {
                let mf = self.msg.max_forwards().unwrap_or(70).saturating_sub(1);
                out.extend_from_slice(mf.to_string().as_bytes());
            } else {
                out.extend_from_slice(h.value);
            }
            out.extend_from_slice(b"\r\n");
        }
        for e in edits {
            if let Some(v) = &e.value {
                out.extend_from_slice(e.name.as_str().as_bytes());
                out.extend_from_slice(b": ");
                out.extend_from_slice(v);
                out.extend_from_slice(b"\r\n");
            }
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&bytes[head_end..]);
        self.outs.push(Out::Udp {
            listen: listen as u16,
            dest: to.addr,
            bytes: out,
        });
        Poll::Ready(ForwardResult::Sent)
    }

    fn push(
        &mut self,
        msgid: &[u8],
        expire: Option<Duration>,
        stored_msgid: &mut Vec<u8>,
    ) -> Poll<PushResult> {
        let ctx = ReceiveContext {
            source: self.rx.source,
            local: pack_local(
                self.rx.conn.map_or(self.st.id, |c| usize::from(c.shard)),
                self.rx.listen,
            ),
            transport: repo_transport(self.rx.transport),
            received_ms: self.rx.received_ms,
        };
        let Some(m) = MessageRef::from_parsed(self.msg, ctx) else {
            self.log(LogLevel::Error, b"push: the message has no Call-ID or CSeq");
            return Poll::Ready(PushResult::Full);
        };
        let expire_ms = expire.map(|d| d.as_millis() as u64);
        let r = match self.st.repo.push(&m, msgid, expire_ms, self.now_ms) {
            PushOutcome::Stored => {
                self.st.stats.stored.fetch_add(1, Ordering::Relaxed);
                PushResult::Stored
            }
            PushOutcome::Duplicate => {
                self.st.stats.duplicates.fetch_add(1, Ordering::Relaxed);
                PushResult::Duplicate
            }
            PushOutcome::Retransmission => {
                self.st
                    .stats
                    .retransmissions
                    .fetch_add(1, Ordering::Relaxed);
                if let Some(id) = self.st.repo.retransmitted_msgid(&m) {
                    stored_msgid.extend_from_slice(id);
                }
                PushResult::Retransmission
            }
            PushOutcome::Full(_) => {
                self.st.stats.full.fetch_add(1, Ordering::Relaxed);
                PushResult::Full
            }
        };
        self.st.update_gauges();
        Poll::Ready(r)
    }

    fn pull(&mut self, req: &PullRequest<'_>) -> Poll<PullResult> {
        let owner = self.owner(req.callid);
        if owner != self.st.id {
            self.remote(
                owner,
                RemoteOp::Pull {
                    callid: req.callid.to_vec(),
                    msgid: req.msgid.to_vec(),
                    route: req.route,
                    remove: req.remove,
                },
            );
            return Poll::Pending;
        }
        Poll::Ready(self.st.pull_local(
            self.program,
            self.generation,
            self.now_ms,
            req.callid,
            req.msgid,
            req.route,
            req.remove,
            self.outs,
        ))
    }

    fn async_pull(&mut self, req: &AsyncPullRequest<'_>) -> Poll<AsyncPullResult> {
        let owner = self.owner(req.callid);
        let (callid, msgid) = (req.callid.to_vec(), req.msgid.to_vec());
        let (group, route, remove) = (req.group.index(), req.route, req.remove);
        if owner != self.st.id {
            let op = RemoteOp::AsyncPull {
                callid,
                msgid,
                group,
                route,
                remove,
            };
            self.remote(owner, op);
            return Poll::Pending;
        }
        Poll::Ready(self.st.queue_async(
            self.generation,
            callid,
            msgid,
            group,
            route,
            remove,
            self.outs,
        ))
    }

    fn rm(&mut self, callid: &[u8], msgid: &[u8]) -> Poll<RmResult> {
        let owner = self.owner(callid);
        if owner != self.st.id {
            self.remote(
                owner,
                RemoteOp::Rm {
                    callid: callid.to_vec(),
                    msgid: msgid.to_vec(),
                },
            );
            return Poll::Pending;
        }
        Poll::Ready(self.st.rm_local(callid, msgid))
    }

    fn check(&mut self, callid: &[u8], msgid: Option<&[u8]>) -> Poll<CheckResult> {
        let owner = self.owner(callid);
        if owner != self.st.id {
            self.remote(
                owner,
                RemoteOp::Check {
                    callid: callid.to_vec(),
                    msgid: msgid.map(<[u8]>::to_vec),
                },
            );
            return Poll::Pending;
        }
        Poll::Ready(self.st.check_local(callid, msgid))
    }

    fn log(&mut self, level: LogLevel, message: &[u8]) {
        self.st.log(level, &String::from_utf8_lossy(message));
    }
}
