//! The shard core: everything one shard does with its inputs, with no runtime inside (as
//! quinn-proto's `Endpoint`). The driver feeds it datagrams, framed stream messages, work from
//! other shards, control calls and the time; it answers with [`Out`]s to carry out and, through
//! [`ShardCore::poll_timeout`], when to wake it next.
//!
//! [`ShardCore`] is a thin dispatcher: it decides who owns an input and hands it to the service
//! that owns the state. Each service is one field, so the owner of any state is one hop away:
//!
//! | field | module | owns |
//! |---|---|---|
//! | `own` | [`ownership`] | which shard owns a Call-ID or an id |
//! | (none) | [`ingress`] | the strict parse and the checks above it, error responses |
//! | `remote` | [`remote`] | route runs waiting for another shard, with their deadlines |
//! | `repo` | [`repository`] | the repository partition and its counters |
//! | `tags`, `uid` | [`crate::sip_write`], [`crate::route::UidGen`] | To tags and `$uid`s minted here |
//! | `transactions` | [`crate::transaction`] | SIP transactions this shard runs (the gateway's user agent) |
//! | `gateway` | [`crate::gateway`] (driven from `gateway`) | gateway sessions whose keys this shard owns |
//! | (none) | [`control`] | the control methods, which shards they run on, how results merge |
//!
//! Route runs go through [`host`], the route `Host` over these services.

pub mod boundary;
pub mod control;
mod gateway;
pub mod harness;
mod host;
mod ingress;
pub mod latency;
pub mod ownership;
pub mod remote;
pub mod repository;
pub mod shared;

#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod tests;

pub use boundary::{Deferred, Out, RemoteOp, RepoOp, Token, Work};
pub use control::{ControlCall, RpcError};
pub use ownership::Ownership;
pub use shared::SharedState;

use crate::config::Loaded;
use crate::metrics::ShardStats;
use crate::route::{LogLevel, UidGen};
use crate::sip_write::ToTags;
use crate::transaction::{Timers, Transactions, TxEvent};
use crate::transport::{RxContext, Transport};
use latency::LatencyKind;
use remote::RemoteOps;
use repository::RepoService;
use sipshard_parser::sip::{FrameError, EMPTY_HEADER};
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// Header array size for messages the server handles.
pub const MAX_HEADERS: usize = 96;

/// SIP transactions one shard holds at most.
pub const MAX_TRANSACTIONS: usize = 100_000;

/// What one turn of the core reads from outside: the config of this turn and the time.
#[derive(Clone, Copy)]
pub(crate) struct Cx<'a> {
    pub(crate) loaded: &'a Loaded,
    pub(crate) generation: u64,
    pub(crate) now_ms: u64,
}

/// One shard's protocol state.
pub struct ShardCore {
    own: Ownership,
    shared: Arc<SharedState>,
    stats: Arc<ShardStats>,
    listen: Vec<(Transport, SocketAddr)>,
    repo: RepoService,
    remote: RemoteOps,
    uid: UidGen,
    tags: ToTags,
    transactions: Transactions,
    gateway: Option<crate::gateway::Gateway>,
    /// The config generation the gateway's settings come from.
    gw_generation: u64,
    /// What the gateway asked for and the core has not done yet.
    effects: Vec<crate::gateway::Effect>,
    /// This shard's latency distributions (`ctl shard.latency`).
    latency: latency::Latency,
}

impl ShardCore {
    /// Shard `id` of `shards`, with the listen addresses (index = listen id), whose time
    /// starts at `now_ms`.
    pub fn new(
        id: usize,
        shards: usize,
        shared: Arc<SharedState>,
        stats: Arc<ShardStats>,
        listen: Vec<(Transport, SocketAddr)>,
        now_ms: u64,
    ) -> Self {
        let repo = shared.with(|l, _| RepoService::new(&l.config.repo, stats.clone(), now_ms));
        ShardCore {
            own: Ownership::new(id, shards, shared.hasher().clone(), shared.boot()),
            uid: UidGen::new(shared.boot(), id as u16),
            tags: ToTags::new(shared.boot(), id as u16),
            remote: RemoteOps::new(now_ms),
            transactions: Transactions::new(Timers::default(), MAX_TRANSACTIONS, now_ms),
            gateway: None,
            gw_generation: 0,
            effects: Vec::new(),
            latency: latency::Latency::default(),
            repo,
            listen,
            stats,
            shared,
        }
    }

    /// Who owns what, as this shard sees it.
    pub fn ownership(&self) -> &Ownership {
        &self.own
    }

    /// Repository items stored now.
    pub fn items(&self) -> u64 {
        self.repo.len() as u64
    }

    /// Route runs waiting for another shard's answer now.
    pub fn waiting_remote(&self) -> usize {
        self.remote.len()
    }

    /// A datagram received by this shard (one whole message). Returns whether it was processed
    /// here (`false`: handed to its owner).
    pub fn on_datagram(
        &mut self,
        now_ms: u64,
        bytes: Vec<u8>,
        rx: RxContext,
        outs: &mut Vec<Out>,
    ) -> bool {
        self.on_message(now_ms, bytes, rx, outs)
    }

    /// A message framed out of a stream this shard reads. Returns whether it was processed
    /// here (`false`: handed to its owner).
    pub fn on_stream_message(
        &mut self,
        now_ms: u64,
        bytes: Vec<u8>,
        rx: RxContext,
        outs: &mut Vec<Out>,
    ) -> bool {
        self.on_message(now_ms, bytes, rx, outs)
    }

    /// The response to send before closing a stream that cannot be framed (`None` when the
    /// stream carries responses, which are never answered).
    pub fn on_framing_error(&mut self, buf: &[u8], e: FrameError) -> Option<Vec<u8>> {
        self.stats.tcp_framing_errors.fetch_add(1, Relaxed);
        ingress::framing_error_reply(buf, e, &mut self.tags)
    }

    /// The time the driver measured for the call that just returned (a message, work from
    /// another shard, an MSRP frame), recorded under what that call processed.
    pub fn record_processing(&mut self, ns: u64) {
        self.latency.record_processing(ns);
    }

    /// Work from another shard or a task queue.
    pub fn on_work(&mut self, now_ms: u64, work: Work, outs: &mut Vec<Out>) {
        self.latency.set_kind(LatencyKind::Remote);
        self.with_config(now_ms, |core, cx| match work {
            Work::Sip { bytes, rx } => {
                core.stats.forwarded_in.fetch_add(1, Relaxed);
                core.handle_sip(cx, &bytes, rx, outs);
            }
            Work::Remote {
                token,
                from,
                generation,
                op,
            } => {
                core.stats.cross_shard_ops.fetch_add(1, Relaxed);
                // Always answered, refusal included: the asker's waiting run ends on the answer
                // instead of waiting for its deadline. A gateway operation names no route, so
                // a reload does not matter to it; it may answer later (a `sync` MESSAGE).
                let (result, reply) = match op {
                    RemoteOp::Gateway(op) => match core.gateway_op(cx, op, token, from, outs) {
                        Some((r, reply)) => (Some(r), Some(reply)),
                        None => return,
                    },
                    RemoteOp::Repo(op) if generation == cx.generation => {
                        (Some(core.repo_op(cx, op, outs)), None)
                    }
                    RemoteOp::Repo(op) => {
                        core.log(
                            LogLevel::Warn,
                            &format!(
                                "config reloaded while a cross-shard `{}` was in flight; refused",
                                op.name()
                            ),
                        );
                        (None, None)
                    }
                };
                outs.push(Out::Shard {
                    to: from,
                    work: Work::Done {
                        token,
                        result,
                        reply,
                    },
                });
            }
            Work::Done {
                token,
                result,
                reply,
            } => core.resume(cx, token, result, reply, outs),
            Work::Msrp { conn, bytes } => {
                core.with_gw(cx, outs, |gw, io| gw.on_msrp_frame(conn, &bytes, io));
            }
            Work::MsrpClosed { conn } => {
                core.with_gw(cx, outs, |gw, io| gw.on_msrp_closed(conn, io));
            }
            Work::Deferred { generation, task } => {
                if generation != cx.generation {
                    core.log(
                        LogLevel::Warn,
                        "config reloaded before a queued async_pull ran; dropped",
                    );
                    return;
                }
                core.run_deferred(cx, task, outs);
            }
        });
    }

    /// Does what is due at `now_ms`: expires repository items (running `repo:expired`) and
    /// drops runs whose remote answer is overdue.
    pub fn handle_timeout(&mut self, now_ms: u64, outs: &mut Vec<Out>) {
        let dropped = self.remote.expire(now_ms, self.own.me());
        if dropped > 0 {
            self.stats
                .remote_timeouts
                .fetch_add(dropped as u64, Relaxed);
        }
        let mut events = Vec::new();
        self.transactions.handle_timeout(now_ms, outs, &mut events);
        self.with_config(now_ms, |core, cx| {
            core.on_transaction_events(cx, events, outs);
            core.with_gw(cx, outs, |gw, io| gw.handle_timeout(io));
            core.expire_items(cx, outs);
            core.drain_effects(cx, outs);
        });
    }

    /// Sends a request of this shard's own in a client transaction (retransmitted and timed
    /// out per RFC 3261 §17.1); its responses are taken by the transaction before any route
    /// sees them. `None` when no transaction can be made (see
    /// [`Transactions::send_request`]).
    pub fn send_request(
        &mut self,
        now_ms: u64,
        request: Vec<u8>,
        hop: crate::transaction::Hop,
        outs: &mut Vec<Out>,
    ) -> Option<crate::transaction::TxId> {
        self.transactions.send_request(now_ms, request, hop, outs)
    }

    /// What the transaction layer reports goes to its user, the gateway.
    fn on_transaction_events(&mut self, cx: Cx<'_>, events: Vec<TxEvent>, outs: &mut Vec<Out>) {
        self.stats
            .sip_transactions
            .store(self.transactions.len() as u64, Relaxed);
        if events.is_empty() {
            return;
        }
        if self.gateway.is_none() {
            for e in events {
                tracing::debug!(
                    shard = self.own.me(),
                    "transaction event with no user: {e:?}"
                );
            }
            return;
        }
        self.with_gw(cx, outs, |gw, io| {
            for e in events {
                gw.on_tx_event(e, io);
            }
        });
    }

    /// When [`ShardCore::handle_timeout`] next has work (ms on the shard's clock); `None` when
    /// nothing is scheduled. The driver sleeps until then, or until an input arrives.
    pub fn poll_timeout(&self) -> Option<u64> {
        [
            self.repo.next_deadline(),
            self.remote.next_deadline(),
            self.transactions.next_deadline(),
            self.gateway.as_ref().and_then(|g| g.next_deadline()),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn on_message(
        &mut self,
        now_ms: u64,
        bytes: Vec<u8>,
        rx: RxContext,
        outs: &mut Vec<Out>,
    ) -> bool {
        let owner = self.own.of_message(&bytes);
        if owner != self.own.me() {
            self.stats.forwarded_out.fetch_add(1, Relaxed);
            outs.push(Out::Shard {
                to: owner,
                work: Work::Sip { bytes, rx },
            });
            return false;
        }
        self.with_config(now_ms, |core, cx| core.handle_sip(cx, &bytes, rx, outs));
        true
    }

    fn handle_sip(&mut self, cx: Cx<'_>, bytes: &[u8], rx: RxContext, outs: &mut Vec<Out>) {
        let mut headers = [EMPTY_HEADER; MAX_HEADERS];
        self.latency.set_kind(LatencyKind::Rejected);
        let Some(msg) = ingress::admit(bytes, &mut headers, &rx, &mut self.tags, &self.stats, outs)
        else {
            return;
        };
        self.latency.set_kind(match msg.method() {
            None => LatencyKind::Response,
            Some(b"MESSAGE") => LatencyKind::Message,
            Some(b"INVITE") => LatencyKind::Invite,
            Some(_) => LatencyKind::Request,
        });
        let program = &cx.loaded.program;
        if msg.is_request() {
            if self.gateway.is_some() && self.gw_request(cx, &msg, rx, outs) {
                return;
            }
            self.run_route(cx, &msg, rx, program.request(), outs);
            self.drain_effects(cx, outs);
            return;
        }
        // Responses: the transaction layer takes those to its own client transactions; the
        // rest go to `route.response`.
        let mut events = Vec::new();
        if self
            .transactions
            .on_response(cx.now_ms, &msg, outs, &mut events)
        {
            self.on_transaction_events(cx, events, outs);
            return;
        }
        match program.response() {
            Some(route) => self.run_route(cx, &msg, rx, route, outs),
            None => {
                self.stats.dropped_responses.fetch_add(1, Relaxed);
            }
        }
    }

    /// Runs `f` with this turn's config and time.
    fn with_config<R>(&mut self, now_ms: u64, f: impl FnOnce(&mut ShardCore, Cx<'_>) -> R) -> R {
        let shared = self.shared.clone();
        shared.with(|loaded, generation| {
            f(
                self,
                Cx {
                    loaded,
                    generation,
                    now_ms,
                },
            )
        })
    }

    fn log(&self, level: LogLevel, msg: &str) {
        let shard = self.own.me();
        match level {
            LogLevel::Error => tracing::error!(shard, "{msg}"),
            LogLevel::Warn => tracing::warn!(shard, "{msg}"),
            LogLevel::Info => tracing::info!(shard, "{msg}"),
            LogLevel::Debug => tracing::debug!(shard, "{msg}"),
            LogLevel::Trace => tracing::trace!(shard, "{msg}"),
        }
    }
}
