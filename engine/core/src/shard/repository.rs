//! The repository service: a shard's partition of the message repository and the operations the
//! routes and the control methods run on it (push, pull, async_pull, rm, check, expiry). The
//! [`Repository`] keeps the one set of counters; the service mirrors them into the shard's
//! metrics after every change, so `/metrics`, `repo.stats` and the repository never disagree.

use super::boundary::{Deferred, Out, RepoOp, Work};
use super::{Cx, ShardCore};
use crate::config;
use crate::metrics::ShardStats;
use crate::repo::{
    ItemView, ListCursor, LocalSocket, MessageRef, PushOutcome, ReceiveContext, RepoConfig,
    Repository, StoredMessage,
};
use crate::route::{
    ActionResult, AsyncPullResult, CheckResult, LogLevel, PullResult, PushResult, RmResult, RouteId,
};
use crate::transport::{ConnId, RxContext, Transport};
use serde_json::{json, Value};
use sipshard_parser::sip::Message;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// One shard's repository partition and its counters.
#[derive(Debug)]
pub struct RepoService {
    repo: Repository,
    stats: Arc<ShardStats>,
    expired: Vec<StoredMessage>,
}

impl RepoService {
    /// An empty partition sized by `[repo]`, whose time starts at `now_ms`.
    pub fn new(config: &config::RepoConfig, stats: Arc<ShardStats>, now_ms: u64) -> RepoService {
        let repo = Repository::new(
            RepoConfig {
                max_items: config.max_items as usize,
                max_bytes: config.max_bytes.bytes() as usize,
                expire_ms: config.expire.saturating_mul(1000),
                tick_ms: config.timer_interval.max(1),
                capacity_hint: config.hash_size as usize,
            },
            now_ms,
        );
        RepoService {
            repo,
            stats,
            expired: Vec::new(),
        }
    }

    /// Items stored now.
    pub fn len(&self) -> usize {
        self.repo.len()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.repo.is_empty()
    }

    /// When the earliest item expires (see [`Repository::next_deadline`]).
    pub fn next_deadline(&self) -> Option<u64> {
        self.repo.next_deadline()
    }

    /// Stores `msg`, received with `ctx`, under (its Call-ID, `msgid`) for `expire_ms`. On a
    /// retransmission, `stored_msgid` gets the msgid its first copy is stored under.
    pub fn push(
        &mut self,
        msg: &Message<'_, '_>,
        ctx: ReceiveContext,
        msgid: &[u8],
        expire_ms: u64,
        now_ms: u64,
        stored_msgid: &mut Vec<u8>,
    ) -> Option<PushResult> {
        let m = MessageRef::from_parsed(msg, ctx)?;
        let r = match self.repo.push(&m, msgid, Some(expire_ms), now_ms) {
            PushOutcome::Stored => PushResult::Stored,
            PushOutcome::Duplicate => PushResult::Duplicate,
            PushOutcome::Retransmission => {
                if let Some(id) = self.repo.retransmitted_msgid(&m) {
                    stored_msgid.extend_from_slice(id);
                }
                PushResult::Retransmission
            }
            PushOutcome::Full(_) => PushResult::Full,
        };
        self.publish();
        Some(r)
    }

    /// Takes an item (a copy when `remove` is false).
    pub fn pull(&mut self, callid: &[u8], msgid: &[u8], remove: bool) -> Option<StoredMessage> {
        let item = self.repo.pull(callid, msgid, remove);
        if item.is_none() {
            self.stats.pull_not_found.fetch_add(1, Relaxed);
        }
        self.publish();
        item
    }

    /// Removes an item.
    pub fn rm(&mut self, callid: &[u8], msgid: &[u8]) -> RmResult {
        let removed = self.repo.rm(callid, msgid);
        self.publish();
        if removed {
            RmResult::Removed
        } else {
            RmResult::NotFound
        }
    }

    /// Whether an item (or, without msgid, any item of the Call-ID) is stored.
    pub fn check(&self, callid: &[u8], msgid: Option<&[u8]>) -> CheckResult {
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

    /// Takes every item expired at `now_ms`; give the vector back with
    /// [`RepoService::recycle`] to keep the steady state free of allocation.
    pub fn expire(&mut self, now_ms: u64) -> Vec<StoredMessage> {
        let mut out = std::mem::take(&mut self.expired);
        if self.repo.tick(now_ms, &mut out) > 0 {
            self.publish();
        }
        out
    }

    /// Takes every item (the server is stopping).
    pub fn take_all(&mut self) -> Vec<StoredMessage> {
        let mut out = Vec::with_capacity(self.repo.len());
        if self.repo.take_all(&mut out) > 0 {
            self.publish();
        }
        out
    }

    /// Hands back the (drained) vector [`RepoService::expire`] returned.
    pub fn recycle(&mut self, mut v: Vec<StoredMessage>) {
        v.clear();
        self.expired = v;
    }

    /// `repo.stats` of this shard.
    pub fn stats_json(&self, shard: usize) -> Value {
        let s = self.repo.stats();
        json!({
            "shard": shard,
            "items": s.items, "bytes": s.bytes, "stored": s.stored,
            "duplicates": s.duplicates, "retransmissions": s.retransmissions,
            "full": s.full, "pulled": s.pulled, "removed": s.removed, "expired": s.expired,
        })
    }

    /// One page of `repo.list`.
    pub fn list_json(&self, cursor: u64, limit: usize, shard: usize, now_ms: u64) -> Value {
        let page = self.repo.list(ListCursor::from_u64(cursor), limit);
        let items: Vec<Value> = page
            .items
            .iter()
            .map(|v| item_json(v, shard, now_ms, false))
            .collect();
        json!({ "items": items, "next": page.next.map(ListCursor::to_u64) })
    }

    /// `repo.get`: one item with its message.
    pub fn get_json(
        &self,
        callid: &[u8],
        msgid: &[u8],
        shard: usize,
        now_ms: u64,
    ) -> Option<Value> {
        self.repo
            .get(callid, msgid)
            .map(|v| item_json(&v, shard, now_ms, true))
    }

    /// Mirrors the repository's counters into the shard's metrics.
    fn publish(&self) {
        let s = self.repo.stats();
        let st = &self.stats;
        st.stored.store(s.stored, Relaxed);
        st.duplicates.store(s.duplicates, Relaxed);
        st.retransmissions.store(s.retransmissions, Relaxed);
        st.full.store(s.full, Relaxed);
        st.pulled.store(s.pulled, Relaxed);
        st.removed.store(s.removed, Relaxed);
        st.expired.store(s.expired, Relaxed);
        st.items.store(s.items as u64, Relaxed);
        st.bytes.store(s.bytes as u64, Relaxed);
    }
}

fn item_json(v: &ItemView<'_>, shard: usize, now_ms: u64, with_message: bool) -> Value {
    let ctx = v.context();
    let mut o = json!({
        "callid": text(v.call_id()),
        "msgid": text(v.msgid()),
        "cseq": format!("{} {}", v.cseq(), text(v.cseq_method())),
        "branch": v.branch().map(text),
        "source": ctx.source.to_string(),
        "transport": ctx.transport.as_str(),
        "age_ms": now_ms.saturating_sub(ctx.received_ms),
        "expires_in_ms": v.deadline_ms().saturating_sub(now_ms),
        "bytes": v.bytes(),
        "shard": shard,
    });
    if with_message {
        o["message"] = json!(text(v.message()));
    }
    o
}

/// Text for JSON: control output is for people, so bytes that are not UTF-8 are shown replaced.
fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The receive context the repository keeps for a message received with `rx` on `shard`: the
/// socket (a stream's connection lives on the shard that reads it) and the sender.
pub(crate) fn receive_context(rx: &RxContext, shard: usize) -> ReceiveContext {
    ReceiveContext {
        source: rx.source,
        local: LocalSocket {
            shard: rx.conn.map_or(shard as u16, |c| c.shard),
            listen: rx.listen,
        },
        transport: rx.transport,
        received_ms: rx.received_ms,
    }
}

/// The receive context of a stored item again, to answer it as if it had just arrived.
pub(crate) fn rx_of_item(ctx: ReceiveContext, listen: &[(Transport, SocketAddr)]) -> RxContext {
    let LocalSocket {
        shard,
        listen: index,
    } = ctx.local;
    RxContext {
        listen: index,
        transport: ctx.transport,
        source: ctx.source,
        local: listen.get(usize::from(index)).map_or(ctx.source, |l| l.1),
        conn: (ctx.transport == Transport::Tcp).then_some(ConnId {
            shard,
            listen: index,
            peer: ctx.source,
        }),
        received_ms: ctx.received_ms,
    }
}

/// The repository operations that also run routes (on a pulled or expired item), so they need
/// the whole shard, not just the partition.
impl ShardCore {
    /// Runs a repository operation this shard owns.
    pub(super) fn repo_op(&mut self, cx: Cx<'_>, op: RepoOp, outs: &mut Vec<Out>) -> ActionResult {
        match op {
            RepoOp::Pull {
                callid,
                msgid,
                route,
                remove,
            } => ActionResult::Pull(self.pull_and_run(cx, &callid, &msgid, route, remove, outs)),
            RepoOp::AsyncPull {
                callid,
                msgid,
                group,
                route,
                remove,
            } => {
                if self.repo.check(&callid, Some(&msgid)) == CheckResult::NotFound {
                    return ActionResult::AsyncPull(AsyncPullResult::NotFound);
                }
                self.stats.async_queued.fetch_add(1, Relaxed);
                let task = Deferred::AsyncPull {
                    callid,
                    msgid,
                    route,
                    remove,
                };
                outs.push(Out::Queue {
                    group,
                    work: Work::Deferred {
                        generation: cx.generation,
                        task,
                    },
                });
                ActionResult::AsyncPull(AsyncPullResult::Queued)
            }
            RepoOp::Rm { callid, msgid } => ActionResult::Rm(self.repo.rm(&callid, &msgid)),
            RepoOp::Check { callid, msgid } => {
                ActionResult::Check(self.repo.check(&callid, msgid.as_deref()))
            }
        }
    }

    /// Takes an item and runs `route` on it as if it had just arrived from its sender.
    pub(super) fn pull_and_run(
        &mut self,
        cx: Cx<'_>,
        callid: &[u8],
        msgid: &[u8],
        route: RouteId,
        remove: bool,
        outs: &mut Vec<Out>,
    ) -> PullResult {
        match self.repo.pull(callid, msgid, remove) {
            None => PullResult::NotFound,
            Some(item) => {
                self.run_item(cx, &item, route, outs);
                PullResult::Pulled
            }
        }
    }

    /// Runs the second half of an `async_pull`.
    pub(super) fn run_deferred(&mut self, cx: Cx<'_>, task: Deferred, outs: &mut Vec<Out>) {
        match task {
            Deferred::AsyncPull {
                callid,
                msgid,
                route,
                remove,
            } => {
                if self.pull_and_run(cx, &callid, &msgid, route, remove, outs)
                    == PullResult::NotFound
                {
                    self.log(
                        LogLevel::Info,
                        "async_pull: the item was gone by the time its task ran",
                    );
                }
            }
        }
    }

    /// The server is stopping: every parked item goes through `repo:shutdown` (or, without
    /// it, `repo:expired`) so its caller is answered instead of left waiting. Returns how many.
    pub fn on_shutdown(&mut self, now_ms: u64, outs: &mut Vec<Out>) -> usize {
        self.with_config(now_ms, |core, cx| {
            let items = core.repo.take_all();
            let program = &cx.loaded.program;
            if let Some(route) = program.repo_shutdown().or(program.repo_expired()) {
                for item in &items {
                    core.run_item(cx, item, route, outs);
                }
            }
            core.drain_effects(cx, outs);
            // Gateway sessions end as if ended by hand: BYE (or CANCEL) to the SIP side,
            // messages still held answered 503 or reported through gw:delivery_failed.
            core.with_gw(cx, outs, |gw, io| gw.end_all(io));
            items.len()
        })
    }

    /// Expires what is due and runs `repo:expired` on each item.
    pub(super) fn expire_items(&mut self, cx: Cx<'_>, outs: &mut Vec<Out>) {
        let mut expired = self.repo.expire(cx.now_ms);
        if let Some(route) = cx.loaded.program.repo_expired() {
            for item in &expired {
                self.run_item(cx, item, route, outs);
            }
        }
        expired.clear();
        self.repo.recycle(expired);
    }
}
