//! The gateway's flows (`docs/gateway.md`): sessions set up from either side, messages both
//! ways, and every way a session ends. Each public method is one input; what it sends goes
//! to the [`Io`], and every session it touched is re-armed on the wheel before it returns.
//!
//! - [`setup`]: `msg_to_msrp` and `msrp_answer`, and how our requests leave (names resolved).
//! - [`dialogs`]: the SIP side: transaction events, the INVITE's answers, requests in dialogs.
//! - [`frames`]: the MSRP side: frames, closed connections, MSRP messages sent on as MESSAGEs.
//! - [`endings`]: failed setups, every way a session ends, the timers.
//! - [`control`]: `send_message` and the control methods.

mod control;
mod dialogs;
mod endings;
mod frames;
mod setup;

use super::cpim;
use super::session::{GwSession, Origin, Pending, Settle, State, Unacked};
use super::sip::{self as gsip, Next, Way};
use super::{Effect, EventFields, Gateway, InviteIn, Io, Key, MessageIn, SipReply, TxUse};
use crate::config::Cpim;
use crate::dialog::Dialog;
use crate::gateway::Inbound;
use crate::msrp::endpoint::{frame_session_id, EndpointEvent, FrameFate};
use crate::msrp::reassembly::Limits;
use crate::msrp::session::{MsgId, Session, SessionConfig, SessionEvent};
use crate::route::{
    GwEvent, MsgToMsrpResult, MsrpAnswerResult, ReplyMode, SendMessage, SendMessageResult,
};
use crate::sdp::{self, Setup};
use crate::shard::latency::LatencyKind;
use crate::shard::{Out, Token};
use crate::sip_write::{self, reason_phrase, Request};
use crate::transaction::{Hop, TxEvent, TxId};
use crate::transport::{ConnId, MsrpConn, RxContext, Transport};
use serde_json::{json, Value};
use sipshard_parser::msrp;
use sipshard_parser::sip::{self as psip, Framing, Message, EMPTY_HEADER};
use sipshard_parser::Status;
use std::sync::atomic::Ordering::Relaxed;

const MAX_HEADERS: usize = 64;

/// Requests that may wait for one name to be resolved (past it they fail at once).
const MAX_WAITING_PER_NAME: usize = 1024;
/// Names whose addresses are kept.
const MAX_RESOLVED: usize = 4096;
/// How long resolved addresses are used (the driver's resolver caches by the records' TTLs;
/// this only spares asking it for every request).
const RESOLVED_TTL_MS: u64 = 30_000;

/// A request waiting for its Request-URI's name to be resolved.
#[derive(Debug)]
pub(super) struct Waiter {
    bytes: Vec<u8>,
    use_: Option<TxUse>,
    transport: Transport,
    listen: u16,
    /// The family of our Via: the address picked must be of it.
    v4: bool,
}

/// How a session ends: why (`$gw(cause)`), and the SIP code its undelivered MESSAGEs get.
#[derive(Debug, Clone, Copy)]
struct Ending {
    cause: &'static str,
    code: u16,
    /// Send a BYE (or CANCEL) to the SIP side: not when the SIP side ended it.
    tell_sip: bool,
}

impl Ending {
    const fn new(cause: &'static str, code: u16) -> Ending {
        Ending {
            cause,
            code,
            tell_sip: true,
        }
    }
}

/// Parses a whole SIP message kept as bytes.
fn parse_sip<'h, 'b>(
    bytes: &'b [u8],
    headers: &'h mut [psip::Header<'b>],
) -> Option<Message<'h, 'b>> {
    match psip::parse(bytes, headers, Framing::Datagram) {
        Ok(Status::Complete(m)) => Some(m),
        _ => None,
    }
}

/// Lists of MIME types.
type Types<'a> = Vec<&'a [u8]>;

/// What our SDP lists for the types `ours` (`a=accept-types`, `a=accept-wrapped-types`), and
/// what our MSRP sessions take: with `cpim = "wrap"`, CPIM around our types.
fn advertised<'a>(cpim: Cpim, ours: &[&'a [u8]]) -> (Types<'a>, Types<'a>, Types<'a>) {
    match cpim {
        Cpim::Pass => (ours.to_vec(), Vec::new(), ours.to_vec()),
        Cpim::Wrap => {
            let mut takes = ours.to_vec();
            takes.push(cpim::CPIM);
            (vec![cpim::CPIM], ours.to_vec(), takes)
        }
    }
}

/// Whether the far side's `a=accept-types` leave something to send it.
fn common(cpim: Cpim, ours: &[&[u8]], theirs: &[&[u8]]) -> bool {
    let (accept, _, _) = advertised(cpim, ours);
    !sdp::common_types(&accept, theirs).is_empty() || !sdp::common_types(ours, theirs).is_empty()
}

fn types_of(list: &[u8]) -> Vec<&[u8]> {
    list.split(|c| c.is_ascii_whitespace())
        .filter(|t| !t.is_empty())
        .collect()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

impl Gateway {
    fn session_config(&self) -> SessionConfig {
        SessionConfig {
            chunk_size: self.cfg.chunk_size.0 as usize,
            transaction_timeout_ms: self.cfg.msrp_transaction_timeout.saturating_mul(1000),
            reassembly: Limits {
                max_message: self.cfg.max_message_size.0,
                max_partial: 16,
            },
        }
    }

    /// Where a request of ours to `uri` goes (the outbound proxy if there is one), and its
    /// Route; `body` is the size of its body (a large request goes over TCP).
    fn way(&self, uri: &[u8], body: usize) -> Result<(Way, Option<Vec<u8>>), gsip::NoWay> {
        // The headers of a request of ours take about this much besides the body.
        let size = body + 600;
        match &self.cfg.outbound_proxy {
            Some(p) => {
                let way = gsip::way_to(p.as_bytes(), size, &self.net.sip)?;
                Ok((way, Some(gsip::name_addr(p.as_bytes()))))
            }
            None => Ok((gsip::way_to(uri, size, &self.net.sip)?, None)),
        }
    }

    fn msrp_local(&self) -> Option<std::net::SocketAddr> {
        self.net.msrp.first().copied()
    }

    fn new_conn(&mut self) -> MsrpConn {
        self.next_conn = self.next_conn.wrapping_add(1);
        MsrpConn {
            shard: self.me as u16,
            id: self.next_conn,
        }
    }

    fn publish(&self) {
        self.stats
            .gw_sessions
            .store(self.sessions.len() as u64, Relaxed);
    }
}

/// The prefix of the transaction ids and Message-IDs of a session: the tail of its random id.
fn id_prefix(msrp_id: &str) -> &[u8] {
    let b = msrp_id.as_bytes();
    &b[b.len().saturating_sub(12)..]
}

/// The Request-URI of a request of ours (for the way of its ACK or CANCEL).
fn gsip_target(req: &Message<'_, '_>) -> Vec<u8> {
    match req.start_line() {
        psip::StartLine::Request { uri, .. } => uri.to_vec(),
        psip::StartLine::Response { .. } => Vec::new(),
    }
}

fn write_frames(
    stats: &crate::metrics::ShardStats,
    conn: MsrpConn,
    frames: Vec<Vec<u8>>,
    io: &mut Io<'_>,
) {
    if frames.is_empty() {
        return;
    }
    stats
        .msrp_frames_out
        .fetch_add(frames.len() as u64, Relaxed);
    let bytes = if frames.len() == 1 {
        frames.into_iter().next().expect("one")
    } else {
        frames.concat()
    };
    io.outs.push(Out::MsrpWrite { conn, bytes });
}

/// Tells a MESSAGE's sender what became of it: a held one gets its answer (`code`), an
/// answered one a `gw:delivery_failed` when it failed.
fn settle(
    stats: &crate::metrics::ShardStats,
    fields: EventFields,
    p: Pending,
    code: u16,
    io: &mut Io<'_>,
) {
    let ok = code == 200;
    // A held MESSAGE answered at its deadline was counted then; its late outcome is not.
    if p.settle != Settle::Answered {
        if ok {
            stats.gw_delivered.fetch_add(1, Relaxed);
            io.effects.push(Effect::Delivered {
                kind: LatencyKind::GwSipToMsrp,
                after_ms: io.now_ms.saturating_sub(p.received_ms),
            });
        } else {
            stats.gw_failed.fetch_add(1, Relaxed);
        }
    }
    match p.settle {
        Settle::Sync { from, token, .. } => io.effects.push(Effect::Settle {
            from,
            token,
            result: if ok {
                MsgToMsrpResult::Delivered
            } else {
                MsgToMsrpResult::Failed
            },
            reply: SipReply::code(code),
        }),
        Settle::Async if !ok => {
            let mut f = fields;
            f.code = Some(code);
            f.reason = reason_phrase(code).as_bytes().to_vec();
            f.cause = "delivery_failed";
            f.msgid = p.call_id.to_vec();
            io.effects.push(Effect::Event {
                event: GwEvent::DeliveryFailed,
                fields: f,
            });
        }
        Settle::Async | Settle::Answered => {}
    }
}

/// Answers a request in one of our dialogs, through its transaction when it has one.
fn respond(msg: &Message<'_, '_>, rx: &RxContext, tx: Option<TxId>, code: u16, io: &mut Io<'_>) {
    let mut out = Vec::with_capacity(256);
    sip_write::write_response(
        msg,
        rx.source,
        code,
        reason_phrase(code).as_bytes(),
        b"",
        &[],
        &mut out,
    );
    match tx {
        Some(tx) => {
            let mut events = Vec::new();
            io.txs
                .respond(io.now_ms, tx, code, out, io.outs, &mut events);
        }
        None => io
            .outs
            .extend(Out::to_sender(rx, msg.top_via().as_ref(), out)),
    }
}

/// The response to a frame that does not parse (RFC 4975 §7.3: 400, or 413 for a frame
/// larger than we take), when it is a request other than REPORT whose paths can be read.
pub fn bad_frame_response(bytes: &[u8], e: msrp::Error) -> Option<Vec<u8>> {
    let head_end = memchr::memmem::find(bytes, b"\r\n\r\n").unwrap_or(bytes.len());
    let head = &bytes[..head_end];
    let mut lines = head
        .split(|&c| c == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let start = lines.next()?;
    let mut parts = start.splitn(3, |&c| c == b' ');
    let (Some(b"MSRP"), Some(tid), Some(method)) = (parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    if method.first().is_some_and(u8::is_ascii_digit) || method == b"REPORT" {
        return None;
    }
    let mut to = None;
    let mut from = None;
    for l in lines {
        if let Some(v) = l.strip_prefix(b"To-Path:") {
            to = v.trim_ascii().split(|&c| c == b' ').next();
        } else if let Some(v) = l.strip_prefix(b"From-Path:") {
            from = v.trim_ascii().split(|&c| c == b' ').next();
        }
    }
    let (to, from) = (to?, from?);
    let code = e.status_code();
    let mut out = Vec::with_capacity(200);
    out.extend_from_slice(b"MSRP ");
    out.extend_from_slice(tid);
    out.extend_from_slice(format!(" {code} {}\r\nTo-Path: ", reason_phrase_msrp(code)).as_bytes());
    out.extend_from_slice(from);
    out.extend_from_slice(b"\r\nFrom-Path: ");
    out.extend_from_slice(to);
    out.extend_from_slice(b"\r\n-------");
    out.extend_from_slice(tid);
    out.extend_from_slice(b"$\r\n");
    Some(out)
}

fn reason_phrase_msrp(code: u16) -> &'static str {
    match code {
        413 => "Message Too Large",
        _ => "Bad Request",
    }
}
