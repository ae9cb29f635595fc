//! One gateway session: the SIP side's coordinates, the dialog of its MSRP leg, its MSRP
//! session id and connection, the messages waiting for it, and its clocks. The service in
//! [`super::Gateway`] owns every session of its shard and drives them; this module holds the
//! state and the rules that need nothing else (which deadline is next, what a listing shows).

use super::queue::{MessageQueue, QueueLimits};
use crate::config::GatewayConfig;
use crate::dialog::Dialog;
use crate::msrp::session::MsgId;
use crate::shard::Token;
use crate::transaction::{Hop, TxId};
use crate::transport::MsrpConn;
use crate::wheel::TimerId;
use serde_json::{json, Value};
use std::collections::HashMap;

/// Where a session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// Our INVITE is out (`msg_to_msrp` made the session); messages queue.
    Inviting,
    /// The SIP side is done (our 2xx sent, or theirs ACKed) and the MSRP connection is not
    /// bound yet; messages queue.
    Connecting,
    /// The MSRP connection is bound: messages go straight out.
    Up,
}

impl State {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            State::Inviting => "inviting",
            State::Connecting => "connecting",
            State::Up => "up",
        }
    }
}

/// Who made the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// `msg_to_msrp`: a SIP MESSAGE; we sent the INVITE.
    Message,
    /// `msrp_answer`: the MSRP user's INVITE; we answered it.
    Invite,
}

/// How the sender of a SIP MESSAGE learns what became of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Settle {
    /// It was answered 202 already; a failure runs `gw:delivery_failed`.
    Async,
    /// Its transaction is held on shard `from`, whose run waits under `token`, until
    /// `deadline_ms` at the latest.
    Sync {
        from: usize,
        token: Token,
        deadline_ms: u64,
    },
    /// Its sender has had its answer (a held MESSAGE answered 408 at its deadline): the
    /// outcome changes nothing.
    Answered,
}

/// A SIP MESSAGE on its way to the MSRP side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pending {
    /// The MESSAGE's Call-ID (`$gw(msgid)` when it fails).
    pub call_id: Box<[u8]>,
    pub settle: Settle,
    /// When the MESSAGE arrived, for its delivery time.
    pub received_ms: u64,
}

/// Our 2xx to the MSRP user's INVITE, retransmitted until its ACK (RFC 3261 §13.3.1.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unacked {
    pub bytes: Vec<u8>,
    pub hop: Hop,
    pub next_ms: u64,
    pub interval_ms: u64,
    pub give_up_ms: u64,
}

/// One gateway session.
#[derive(Debug)]
pub(crate) struct GwSession {
    pub state: State,
    pub origin: Origin,
    /// From, To and Request-URI of the MESSAGEs made of the MSRP side's SENDs.
    pub msg_from: Box<[u8]>,
    pub msg_to: Box<[u8]>,
    pub msg_ruri: Box<[u8]>,
    /// The Request-URI our INVITE went to (`Origin::Message`).
    pub target: Box<[u8]>,
    /// The types we take, space separated (our `a=accept-types`).
    pub types: Box<[u8]>,
    pub dialog: Option<Dialog>,
    /// Our INVITE while it has no final response (for its ACK, and a CANCEL).
    pub invite: Option<Vec<u8>>,
    pub invite_tx: Option<TxId>,
    /// A provisional response came: a CANCEL may end the INVITE.
    pub provisional: bool,
    pub unacked: Option<Box<Unacked>>,
    /// Our MSRP session id.
    pub msrp_id: Box<[u8]>,
    pub conn: Option<MsrpConn>,
    /// We opened `conn` (and close it when the session ends).
    pub opened: bool,
    /// A frame came from the MSRP side: the connection works.
    pub msrp_seen: bool,
    pub queue: MessageQueue<Pending>,
    pub in_flight: HashMap<MsgId, Pending>,
    pub created_ms: u64,
    /// The last message from the SIP side, and from the MSRP side.
    pub last_sip_ms: u64,
    pub last_msrp_ms: u64,
    /// The last frame we wrote (for the keepalive).
    pub last_sent_ms: u64,
    pub timer: Option<(TimerId, u64)>,
}

impl GwSession {
    pub(crate) fn new(
        origin: Origin,
        msrp_id: Box<[u8]>,
        cfg: &GatewayConfig,
        now_ms: u64,
    ) -> Self {
        GwSession {
            state: match origin {
                Origin::Message => State::Inviting,
                Origin::Invite => State::Connecting,
            },
            origin,
            msg_from: Box::default(),
            msg_to: Box::default(),
            msg_ruri: Box::default(),
            target: Box::default(),
            types: Box::default(),
            dialog: None,
            invite: None,
            invite_tx: None,
            provisional: false,
            unacked: None,
            msrp_id,
            conn: None,
            opened: false,
            msrp_seen: false,
            queue: MessageQueue::new(queue_limits(cfg)),
            in_flight: HashMap::new(),
            created_ms: now_ms,
            last_sip_ms: now_ms,
            last_msrp_ms: now_ms,
            last_sent_ms: now_ms,
            timer: None,
        }
    }

    /// The earliest of the session's own deadlines (the MSRP session's transaction timeouts
    /// are added by the caller, which holds the MSRP session).
    pub(crate) fn next_deadline(&self, cfg: &GatewayConfig) -> u64 {
        let s = 1000u64;
        let mut d = self
            .created_ms
            .saturating_add(cfg.session_lifetime.saturating_mul(s));
        d = d.min(
            self.last_sip_ms
                .max(self.last_msrp_ms)
                .saturating_add(cfg.idle_timeout.saturating_mul(s)),
        );
        if self.state != State::Up {
            d = d.min(
                self.created_ms
                    .saturating_add(cfg.setup_timeout.saturating_mul(s)),
            );
        }
        if let Some(q) = self.queue.next_deadline() {
            d = d.min(q);
        }
        let held = self
            .queue
            .iter()
            .map(|q| &q.owner)
            .chain(self.in_flight.values())
            .filter_map(|p| match p.settle {
                Settle::Sync { deadline_ms, .. } => Some(deadline_ms),
                Settle::Async | Settle::Answered => None,
            })
            .min();
        if let Some(h) = held {
            d = d.min(h);
        }
        if let Some(u) = &self.unacked {
            d = d.min(u.next_ms.min(u.give_up_ms));
        }
        if cfg.keepalive > 0 && self.state == State::Up {
            d = d.min(
                self.last_sent_ms
                    .saturating_add(cfg.keepalive.saturating_mul(s)),
            );
        }
        d
    }

    /// The fields of `gw.list_sessions`; times are ms on the shard's clock, shown as ages.
    pub(crate) fn listing(&self, key: &[u8], shard: usize, now_ms: u64) -> Value {
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let (from, to, ruri) = match self.origin {
            Origin::Message => (&self.msg_to, &self.msg_from, &self.target),
            Origin::Invite => (&self.msg_from, &self.msg_to, &self.msg_ruri),
        };
        json!({
            "key": text(key),
            "from": text(from),
            "to": text(to),
            "ruri": text(ruri),
            "origin": match self.origin { Origin::Message => "sip", Origin::Invite => "msrp" },
            "state": self.state.as_str(),
            "created_s_ago": now_ms.saturating_sub(self.created_ms) / 1000,
            "sip_idle_s": now_ms.saturating_sub(self.last_sip_ms) / 1000,
            "msrp_idle_s": now_ms.saturating_sub(self.last_msrp_ms) / 1000,
            "queued": self.queue.len(),
            "in_flight": self.in_flight.len(),
            "msrp_session_id": text(&self.msrp_id),
            "connection": self.conn.map(|c| c.to_string()),
            "call_id": self.dialog.as_ref().map(|d| text(&d.call_id)),
            "owner_shard": shard,
        })
    }
}

pub(crate) fn queue_limits(cfg: &GatewayConfig) -> QueueLimits {
    QueueLimits {
        max_messages: cfg.queue_max_messages as usize,
        max_bytes: cfg.queue_max_bytes.0 as usize,
        max_age_ms: cfg.queue_max_age.saturating_mul(1000),
    }
}
