//! Ingress: the one place a received message is judged before anything acts on it. A strict
//! parse, then the checks RFC 3261 and RFC 4475 put above the parser; a request that fails gets
//! its error response here (400 with a `Warning` saying why, 505, 501, 513), a response that
//! fails is dropped (RFC 3261 §18.1.2), and nothing else sees either.

use super::boundary::Out;
use crate::metrics::ShardStats;
use crate::sip_write::{self, ToTags};
use crate::transport::RxContext;
use sipshard_parser::sip::{self, FrameError, Framing, Header, HeaderKind, Message, Verdict};
use sipshard_parser::Status;
use std::sync::atomic::Ordering;

/// Headers a request must have, and those that may appear only once (RFC 4475 §3.3.1, §3.3.8,
/// §3.3.9): (kind, required, single-valued).
const CHECKED: [(HeaderKind, bool, bool); 6] = [
    (HeaderKind::Via, true, false),
    (HeaderKind::From, true, true),
    (HeaderKind::To, true, true),
    (HeaderKind::CallId, true, true),
    (HeaderKind::CSeq, true, true),
    (HeaderKind::MaxForwards, false, true),
];

/// Parses `bytes` (one whole message, framed by the transport) and checks it. Returns the
/// message when it may be routed; otherwise the refusal is counted and, for a request other
/// than ACK, its error response is pushed to `outs`.
pub(crate) fn admit<'h, 'b>(
    bytes: &'b [u8],
    headers: &'h mut [Header<'b>],
    rx: &RxContext,
    tags: &mut ToTags,
    stats: &ShardStats,
    outs: &mut Vec<Out>,
) -> Option<Message<'h, 'b>> {
    let msg = match sip::parse_strict(bytes, headers, Framing::Datagram) {
        Ok(Status::Complete(m)) => m,
        // The transport hands over whole messages (a datagram, or what the stream framer
        // cut out), so the parser does not answer `Partial` for them; were it to, there would
        // be nothing to answer yet.
        Ok(Status::Partial) => return None,
        Err(e) => {
            stats.parse_error(e.label());
            match e.verdict() {
                Verdict::Drop => {
                    stats.dropped_responses.fetch_add(1, Ordering::Relaxed);
                }
                Verdict::Reply(code) if !bytes.starts_with(b"ACK ") => {
                    refuse(bytes, None, code, e.reason(), rx, tags, outs);
                }
                Verdict::Reply(_) => {}
            }
            return None;
        }
    };
    if !msg.is_request() {
        return Some(msg);
    }
    // `parse_strict` checked that every present header decodes, so presence and count are
    // all that is left to see: one pass over the header array.
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
    let Some(problem) = problem else {
        return Some(msg);
    };
    stats.parse_error("header_value");
    if msg.method() != Some(b"ACK") {
        let via = msg.top_via();
        refuse(bytes, via.as_ref(), 400, problem, rx, tags, outs);
    }
    None
}

fn refuse(
    bytes: &[u8],
    top_via: Option<&sip::Via<'_>>,
    code: u16,
    why: &str,
    rx: &RxContext,
    tags: &mut ToTags,
    outs: &mut Vec<Out>,
) {
    let mut out = Vec::with_capacity(512);
    sip_write::write_error_response(bytes, code, why, tags.fresh(), &mut out);
    outs.extend(Out::to_sender(rx, top_via, out));
}

/// The response to send before closing a stream whose bytes cannot be framed (400, or 513 for
/// a head or body over the limits); `None` when the stream carries responses, which are never
/// answered.
pub(crate) fn framing_error_reply(buf: &[u8], e: FrameError, tags: &mut ToTags) -> Option<Vec<u8>> {
    if buf.starts_with(b"SIP/") {
        return None;
    }
    let mut out = Vec::with_capacity(512);
    sip_write::write_error_response(buf, e.status_code(), e.reason(), tags.fresh(), &mut out);
    Some(out)
}
