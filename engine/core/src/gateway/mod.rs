//! The SIP MESSAGE <-> MSRP gateway: one service per shard owning the sessions whose keys
//! hash to that shard (`docs/gateway.md` has both flows, the mappings and the timers).
//!
//! - `msg_to_msrp`: a SIP MESSAGE goes into the session of its key; with none, one is set up
//!   (our INVITE with an SDP offer) and the MESSAGE waits in the session's bounded queue.
//! - `msrp_answer`: an MSRP user's INVITE is answered with our SDP; its SENDs become SIP
//!   MESSAGEs with the From, To and Request-URI the route gave.
//!
//! Sans-IO like the rest of the core: every entry point takes an [`Io`] (the time, the shard's
//! SIP transactions, where transmissions go, and [`Effect`]s for the shard core: answers to
//! runs waiting on other shards, event routes to run). Each session has one entry on the
//! service's timing wheel, at the earliest of its deadlines, re-armed after every input.
//!
//! Ownership: the shard owning `hash(key)` holds the session. The Call-IDs and tags the gateway
//! mints carry that shard, and so does the MSRP session id, so every later message of the
//! session (a response, the far side's ACK or BYE, an MSRP frame) reaches it in one hop.

mod cpim;
mod flows;
pub mod queue;
mod session;
mod sip;

#[cfg(test)]
mod model_tests;
#[cfg(test)]
pub(crate) mod tests;

pub use flows::bad_frame_response;

use crate::config::GatewayConfig;
use crate::metrics::ShardStats;
use crate::msrp::endpoint::Endpoint;
use crate::msrp::write::Reports;
use crate::route::{GwEvent, MsgToMsrpResult, ReplyMode};
use crate::shard::ownership::IdMint;
use crate::shard::{Out, Token};
use crate::transaction::{Transactions, TxId};
use crate::transport::{MsrpConn, RxContext, Transport};
use crate::wheel::TimingWheel;
use session::GwSession;
use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// A gateway operation, run by the shard owning its key.
#[derive(Debug)]
pub enum GwOp {
    /// `msg_to_msrp`.
    MsgToMsrp(Box<MessageIn>),
    /// `msrp_answer`.
    MsrpAnswer(Box<InviteIn>),
}

impl GwOp {
    /// The action's name.
    pub fn name(&self) -> &'static str {
        match self {
            GwOp::MsgToMsrp(_) => "msg_to_msrp",
            GwOp::MsrpAnswer(_) => "msrp_answer",
        }
    }

    /// The session key.
    pub fn key(&self) -> &[u8] {
        match self {
            GwOp::MsgToMsrp(m) => &m.key,
            GwOp::MsrpAnswer(a) => &a.key,
        }
    }
}

/// A SIP MESSAGE handed to `msg_to_msrp`: what the session owner needs of it.
#[derive(Debug, Clone)]
#[allow(missing_docs)]
pub struct MessageIn {
    pub key: Vec<u8>,
    /// The types to offer (space separated).
    pub types: Vec<u8>,
    pub mode: ReplyMode,
    /// The MESSAGE's From URI, To URI and Request-URI.
    pub from: Vec<u8>,
    pub to: Vec<u8>,
    pub ruri: Vec<u8>,
    pub call_id: Vec<u8>,
    pub content_type: Vec<u8>,
    pub body: Vec<u8>,
}

/// An INVITE handed to `msrp_answer`.
#[derive(Debug, Clone)]
#[allow(missing_docs)]
pub struct InviteIn {
    pub key: Vec<u8>,
    pub types: Vec<u8>,
    /// From, To and Request-URI of the MESSAGEs its SENDs become.
    pub from: Vec<u8>,
    pub to: Vec<u8>,
    pub ruri: Vec<u8>,
    /// The whole INVITE, and where it came from.
    pub invite: Vec<u8>,
    pub rx: RxContext,
}

/// How the shard that runs a request's route answers it on the gateway's behalf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipReply {
    /// The status code.
    pub code: u16,
    /// `Retry-After` seconds, for a 503.
    pub retry_after: Option<u32>,
    /// The whole response, when the gateway wrote it (a 200 with our SDP); else the shard
    /// writes one with `code`.
    pub response: Option<Vec<u8>>,
}

impl SipReply {
    /// A response with `code` and nothing else.
    pub fn code(code: u16) -> SipReply {
        SipReply {
            code,
            retry_after: None,
            response: None,
        }
    }
}

/// What the gateway asks of its shard core.
#[derive(Debug)]
pub enum Effect {
    /// A `sync` MESSAGE's outcome, for the run waiting under `token` on shard `from`.
    Settle {
        /// The shard holding the MESSAGE's transaction.
        from: usize,
        /// The waiting run.
        token: Token,
        /// The action's result.
        result: MsgToMsrpResult,
        /// The MESSAGE's response.
        reply: SipReply,
    },
    /// Run an event route.
    Event {
        /// Which.
        event: GwEvent,
        /// Its `$gw(...)` fields.
        fields: EventFields,
    },
    /// A message was delivered across the gateway this long after it arrived.
    Delivered {
        /// Which way it went.
        kind: crate::shard::latency::LatencyKind,
        /// Its arrival to the far side's confirmation.
        after_ms: u64,
    },
}

/// The fields of a gateway event (`$gw(name)`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct EventFields {
    pub key: Vec<u8>,
    pub from_uri: Vec<u8>,
    pub to_uri: Vec<u8>,
    pub ruri: Vec<u8>,
    pub code: Option<u16>,
    pub reason: Vec<u8>,
    pub cause: &'static str,
    pub msgid: Vec<u8>,
}

/// What one call into the gateway works with.
pub struct Io<'a> {
    /// The time, ms on the shard's clock.
    pub now_ms: u64,
    /// The shard's SIP transactions.
    pub txs: &'a mut Transactions,
    /// Transmissions.
    pub outs: &'a mut Vec<Out>,
    /// Asks for the shard core.
    pub effects: &'a mut Vec<Effect>,
}

/// What a client transaction of the gateway is for.
#[derive(Debug)]
enum TxUse {
    /// A session's INVITE.
    Invite { key: Key },
    /// The INVITE of a session that ended before its final response: a 2xx still makes a
    /// dialog, which is ended at once.
    Abandoned { invite: Vec<u8> },
    /// A MESSAGE made of an MSRP message: its final response is reported on the session.
    Message(Box<Inbound>),
    /// A BYE, a CANCEL, a `send_message`: the response is logged.
    Other,
}

/// An MSRP message sent on as a SIP MESSAGE, until its final response.
#[derive(Debug)]
struct Inbound {
    /// When the message was whole.
    received_ms: u64,
    msrp_id: Box<[u8]>,
    message_id: Vec<u8>,
    total: u64,
    reports: Reports,
    from_path: Vec<u8>,
}

/// Where the gateway listens (fixed for the server's life).
#[derive(Debug, Clone)]
pub struct Net {
    /// The SIP listen addresses, by listen index (requests leave from a UDP one).
    pub sip: Vec<(Transport, SocketAddr)>,
    /// The MSRP listen addresses (the first of a family names us in `a=path`).
    pub msrp: Vec<SocketAddr>,
}

/// The gateway of one shard.
pub struct Gateway {
    me: usize,
    cfg: GatewayConfig,
    net: Net,
    mint: IdMint,
    stats: Arc<ShardStats>,
    sessions: HashMap<Key, Box<GwSession>>,
    /// MSRP session id -> key.
    by_msrp: HashMap<Box<[u8]>, Key>,
    /// Dialog Call-ID -> key.
    by_call: HashMap<Box<[u8]>, Key>,
    by_tx: HashMap<TxId, TxUse>,
    endpoint: Endpoint<MsrpConn>,
    /// One entry per session: its key, at its earliest deadline.
    wheel: TimingWheel<Key>,
    next_conn: u32,
    /// Requests waiting for a name (and port) to be resolved.
    resolving: HashMap<(String, Option<u16>), Vec<flows::Waiter>>,
    /// Names resolved lately: their addresses, and until when they are used.
    resolved: HashMap<(String, Option<u16>), (Vec<SocketAddr>, u64)>,
    /// Refusals a sender can cause at will (a full table, a Request-URI we cannot send to):
    /// logged the 1st, 2nd, 4th, 8th... time, so that a flood of them does not flood the log.
    refusals: Cell<u64>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("shard", &self.me)
            .field("sessions", &self.sessions.len())
            .finish()
    }
}

/// A session key, shared by the tables that lead to its session (one allocation per session,
/// however many tables name it: a shard holds 100,000s of idle sessions).
type Key = std::rc::Rc<[u8]>;

/// Resolution of the session deadlines.
const TICK_MS: u64 = 10;

impl Gateway {
    /// The gateway of shard `me`, listening on `net`, minting ids from `seed` (drawn by the
    /// driver from the operating system) and the process's keyed `hasher`.
    pub fn new(
        me: usize,
        cfg: &GatewayConfig,
        net: Net,
        seed: [u8; 32],
        hasher: RandomState,
        stats: Arc<ShardStats>,
        now_ms: u64,
    ) -> Gateway {
        let local = net
            .msrp
            .first()
            .map(|a| format!("msrp://{a}/gw;tcp"))
            .unwrap_or_default();
        Gateway {
            me,
            cfg: cfg.clone(),
            net,
            mint: IdMint::new(me as u16, seed, hasher),
            stats,
            sessions: HashMap::with_capacity(1 << cfg.hash_size.min(16)),
            by_msrp: HashMap::new(),
            by_call: HashMap::new(),
            by_tx: HashMap::new(),
            endpoint: Endpoint::new(local.as_bytes()),
            wheel: TimingWheel::new(TICK_MS, now_ms),
            next_conn: 0,
            resolving: HashMap::new(),
            resolved: HashMap::new(),
            refusals: Cell::new(0),
        }
    }

    /// Counts a refusal; `Some(how many so far)` when this one is to be logged.
    fn refusal(&self) -> Option<u64> {
        let n = self.refusals.get() + 1;
        self.refusals.set(n);
        n.is_power_of_two().then_some(n)
    }

    /// Takes a reloaded `[gateway]` section: it applies to sessions created from now on
    /// (and to the deadlines of all at their next re-arm).
    pub fn set_config(&mut self, cfg: &GatewayConfig) {
        self.cfg = cfg.clone();
    }

    /// Sessions held now.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Whether a dialog of a session here has this Call-ID.
    pub fn has_dialog(&self, call_id: &[u8]) -> bool {
        self.by_call.contains_key(call_id)
    }

    /// When [`Gateway::handle_timeout`] next has work.
    pub fn next_deadline(&self) -> Option<u64> {
        self.wheel.next_deadline()
    }
}
