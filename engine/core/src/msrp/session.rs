//! One MSRP session's endpoint (RFC 4975): what it sends and what it makes of the frames its
//! peer sends. Sending: a message becomes SEND chunks of at most `chunk_size` bytes, each a
//! transaction that must be answered within `transaction_timeout_ms` (30 s: else 408); the
//! message is delivered once every chunk got its 200, failed at the first error. Receiving:
//! each SEND is answered as its Failure-Report asks (`yes`: always, `partial`: errors only,
//! `no`: never), chunks are reassembled, and a REPORT is never answered. Unknown methods get
//! 501.
//!
//! Sans-IO and small: the bytes to write come out in `out`, what happened as
//! [`SessionEvent`]s, and [`Session::poll_timeout`] says when the earliest transaction times
//! out (the gateway keeps one wheel entry per session, not one wheel per session).

use super::reassembly::{Chunked, Limits, Reassembly};
use super::write::{self, Chunk, Report, Reports};
use sipshard_parser::msrp::{Frame, Method, ReportRequest, StartLine};
use std::collections::HashMap;

/// A session's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionConfig {
    /// The largest chunk body sent (RFC 4975 §7.1: messages over 2048 bytes should be chunked
    /// so that others can interleave).
    pub chunk_size: usize,
    /// How long a SEND waits for its response.
    pub transaction_timeout_ms: u64,
    /// Limits on what is reassembled.
    pub reassembly: Limits,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            chunk_size: 2048,
            transaction_timeout_ms: 30_000,
            reassembly: Limits {
                max_message: 1 << 20,
                max_partial: 16,
            },
        }
    }
}

/// A message this session sent, as its user names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MsgId(pub u64);

/// What the session tells its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// A whole message arrived.
    Received {
        /// Its Message-ID.
        message_id: Vec<u8>,
        /// Its Content-Type.
        content_type: Vec<u8>,
        /// Its bytes.
        body: Vec<u8>,
        /// What its sender asked to have reported (for [`Session::report`]).
        reports: Reports,
        /// The last chunk's From-Path: where REPORTs for it go (RFC 4975 §7.1.2), through any
        /// relays on the way.
        from_path: Vec<u8>,
    },
    /// Every chunk of a message we sent was answered 200.
    Delivered(MsgId),
    /// A message we sent failed: an error response, a failure REPORT, a timeout (408), or the
    /// session ended before it was answered.
    Failed {
        /// The message.
        msg: MsgId,
        /// The MSRP status code.
        code: u16,
    },
}

/// A SEND waiting for its response.
#[derive(Debug)]
struct InFlight {
    tid: Vec<u8>,
    msg: MsgId,
    deadline_ms: u64,
}

/// A message we sent, until its outcome.
#[derive(Debug)]
struct Sent {
    message_id: Vec<u8>,
    unanswered: usize,
}

/// One MSRP session.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    /// Our MSRP URI (From-Path of what we send).
    local: Vec<u8>,
    /// The far side's path (To-Path of what we send).
    remote: Vec<u8>,
    /// Prefix of our transaction ids and Message-IDs (unique per session).
    /// Inline, not on the heap: idle sessions are many.
    prefix: ([u8; 16], u8),
    next: u64,
    in_flight: Vec<InFlight>,
    sent: HashMap<MsgId, Sent>,
    reassembly: Reassembly,
    /// The types we take (our `a=accept-types`); empty: any.
    /// Space separated, in one allocation.
    accept_types: Box<[u8]>,
}

impl Session {
    /// A session from `local` (our URI) to `remote` (the far side's `a=path`, URIs separated by
    /// SP); `prefix` (letters and digits, at most 16) starts every id we make.
    pub fn new(config: SessionConfig, local: &[u8], remote: &[u8], prefix: &[u8]) -> Session {
        Session {
            config,
            local: local.to_vec(),
            remote: remote.to_vec(),
            prefix: {
                let mut p = [0u8; 16];
                let n = prefix.len().min(16);
                p[..n].copy_from_slice(&prefix[..n]);
                (p, n as u8)
            },
            next: 0,
            in_flight: Vec::new(),
            sent: HashMap::new(),
            reassembly: Reassembly::new(config.reassembly),
            accept_types: Box::default(),
        }
    }

    /// Takes only messages of these types (wildcards as in `a=accept-types`); others get 415.
    pub fn accepting(mut self, types: &[&[u8]]) -> Session {
        self.accept_types = types.join(&b' ').into();
        self
    }

    /// Our URI.
    pub fn local(&self) -> &[u8] {
        &self.local
    }

    /// Messages sent and not yet delivered or failed.
    pub fn pending(&self) -> usize {
        self.sent.len()
    }

    /// When the earliest SEND times out, or the partial message left longest is abandoned.
    pub fn poll_timeout(&self) -> Option<u64> {
        let stale = self
            .reassembly
            .oldest_ms()
            .map(|t| t.saturating_add(self.config.transaction_timeout_ms + 1));
        self.in_flight
            .iter()
            .map(|t| t.deadline_ms)
            .chain(stale)
            .min()
    }

    fn id(&mut self, kind: u8) -> Vec<u8> {
        self.next += 1;
        let mut id = self.prefix.0[..usize::from(self.prefix.1)].to_vec();
        id.push(kind);
        id.extend_from_slice(format!("{:x}", self.next).as_bytes());
        // RFC 4975 idents are at least 4 characters.
        while id.len() < 4 {
            id.push(b'0');
        }
        id
    }

    /// Sends a message (as chunks when it is larger than `chunk_size`); its outcome comes as
    /// [`SessionEvent::Delivered`] or [`SessionEvent::Failed`]. An empty body is an empty SEND
    /// (RFC 4975 §7.1: the active side binds the connection with one).
    pub fn send(
        &mut self,
        now_ms: u64,
        content_type: &[u8],
        body: &[u8],
        out: &mut Vec<Vec<u8>>,
    ) -> MsgId {
        let message_id = self.id(b'm');
        let msg = MsgId(self.next);
        let parts: Vec<(usize, usize)> =
            write::chunks(body.len(), self.config.chunk_size).collect();
        let n = parts.len();
        for (i, (off, len)) in parts.into_iter().enumerate() {
            // RFC 4975 §7.1: the body must not hold the end-line; a transaction id it holds
            // (after CRLF and seven dashes) is passed over for the next.
            let chunk = &body[off..off + len];
            let mut tid = self.id(b't');
            while holds_end_line(chunk, &tid) {
                tid = self.id(b't');
            }
            let mut bytes = Vec::with_capacity(len + 256);
            write::write_send(
                &Chunk {
                    transaction_id: &tid,
                    to_path: &self.remote,
                    from_path: &self.local,
                    message_id: &message_id,
                    start: off as u64 + 1,
                    total: body.len() as u64,
                    content_type,
                    body: chunk,
                    flag: if i + 1 == n {
                        sipshard_parser::msrp::Flag::Complete
                    } else {
                        sipshard_parser::msrp::Flag::More
                    },
                    reports: Reports::default(),
                },
                &mut bytes,
            );
            out.push(bytes);
            self.in_flight.push(InFlight {
                tid,
                msg,
                deadline_ms: now_ms + self.config.transaction_timeout_ms,
            });
        }
        self.sent.insert(
            msg,
            Sent {
                message_id,
                unanswered: n,
            },
        );
        msg
    }

    /// A frame the peer sent on this session.
    pub fn on_frame(
        &mut self,
        now_ms: u64,
        frame: &Frame<'_, '_>,
        out: &mut Vec<Vec<u8>>,
        events: &mut Vec<SessionEvent>,
    ) {
        match frame.start {
            StartLine::Response { code, .. } => {
                self.on_response(frame.transaction_id, code, events)
            }
            StartLine::Request {
                method: Method::Send,
            } => self.on_send(now_ms, frame, out, events),
            StartLine::Request {
                method: Method::Report,
            } => self.on_report(frame, events),
            StartLine::Request { .. } => {
                if wants_response(frame, 501) {
                    write::write_response(frame, 501, b"Not Implemented", &self.local, push(out));
                }
            }
        }
    }

    fn on_response(&mut self, tid: &[u8], code: u16, events: &mut Vec<SessionEvent>) {
        let Some(i) = self.in_flight.iter().position(|t| t.tid == tid) else {
            return;
        };
        let t = self.in_flight.swap_remove(i);
        if code == 200 {
            let done = self.sent.get_mut(&t.msg).is_some_and(|s| {
                s.unanswered -= 1;
                s.unanswered == 0
            });
            if done {
                self.sent.remove(&t.msg);
                events.push(SessionEvent::Delivered(t.msg));
            }
        } else {
            self.fail(t.msg, code, events);
        }
    }

    fn on_send(
        &mut self,
        now_ms: u64,
        frame: &Frame<'_, '_>,
        out: &mut Vec<Vec<u8>>,
        events: &mut Vec<SessionEvent>,
    ) {
        let (Some(message_id), Some(Ok(range))) = (frame.message_id(), frame.byte_range()) else {
            // RFC 4975 §7.1.1: a SEND without them cannot be placed in any message.
            if wants_response(frame, 400) {
                write::write_response(frame, 400, b"Bad Request", &self.local, push(out));
            }
            return;
        };
        // RFC 4975 §7.3: a type we did not offer to take is refused (the first chunk carries
        // it; a later chunk's type is the message's).
        if let (Some(ct), false) = (frame.content_type(), self.accept_types.is_empty()) {
            let ty = ct.split(|&c| c == b';').next().unwrap_or(ct).trim_ascii();
            if !self
                .accept_types
                .split(|&c| c == b' ')
                .any(|a| crate::sdp::type_matches(a, ty))
            {
                if wants_response(frame, 415) {
                    write::write_response(
                        frame,
                        415,
                        b"Unsupported Media Type",
                        &self.local,
                        push(out),
                    );
                }
                return;
            }
        }
        let got = self.reassembly.add(
            now_ms,
            message_id,
            range,
            frame.flag,
            frame.content_type(),
            frame.body.unwrap_or_default(),
        );
        let (code, comment): (u16, &[u8]) = match &got {
            Chunked::TooLarge => (413, b"Message Too Large"),
            Chunked::Invalid => (400, b"Bad Request"),
            _ => (200, b"OK"),
        };
        if wants_response(frame, code) {
            write::write_response(frame, code, comment, &self.local, push(out));
        }
        if let Chunked::Complete {
            message_id,
            content_type,
            body,
        } = got
        {
            // An empty SEND binds or keeps a connection alive; it is no message.
            if body.is_empty() && frame.body.is_none() {
                return;
            }
            let reports = Reports {
                success: frame.success_report() == Some(Ok(ReportRequest::Yes)),
                failure: match frame.failure_report() {
                    Some(Ok(r)) => r,
                    _ => ReportRequest::Yes,
                },
            };
            let from_path = frame
                .headers
                .get(1)
                .map(|h| h.value.to_vec())
                .unwrap_or_default();
            events.push(SessionEvent::Received {
                message_id,
                content_type,
                body,
                reports,
                from_path,
            });
        }
    }

    fn on_report(&mut self, frame: &Frame<'_, '_>, events: &mut Vec<SessionEvent>) {
        // Never answered (RFC 4975 §7.1.2). A failure REPORT for one of ours fails it.
        let (Some(id), Some(Ok(status))) = (frame.message_id(), frame.status()) else {
            return;
        };
        if status.namespace != 0 || status.code == 200 {
            return;
        }
        let msg = self
            .sent
            .iter()
            .find(|(_, s)| s.message_id == id)
            .map(|(m, _)| *m);
        if let Some(msg) = msg {
            self.fail(msg, status.code, events);
        }
    }

    fn fail(&mut self, msg: MsgId, code: u16, events: &mut Vec<SessionEvent>) {
        if self.sent.remove(&msg).is_some() {
            self.in_flight.retain(|t| t.msg != msg);
            events.push(SessionEvent::Failed { msg, code });
        }
    }

    /// Fails every SEND unanswered at `now_ms` with 408.
    pub fn handle_timeout(&mut self, now_ms: u64, events: &mut Vec<SessionEvent>) {
        while let Some(t) = self.in_flight.iter().find(|t| t.deadline_ms <= now_ms) {
            let msg = t.msg;
            self.fail(msg, 408, events);
        }
        // Partial messages idle as long as a transaction may take are abandoned.
        let before = now_ms.saturating_sub(self.config.transaction_timeout_ms);
        self.reassembly.drop_stale(before);
    }

    /// Reports the outcome of a message received on this session to its sender, as it asked:
    /// a success REPORT for 200 only with `Success-Report: yes`, a failure REPORT for anything
    /// else unless `Failure-Report: no`. `false` when nothing is to be sent. The REPORT goes to
    /// `to_path`, the message's From-Path (as [`SessionEvent::Received`] gives it), and covers
    /// the whole message (`1-total`).
    #[allow(clippy::too_many_arguments)]
    pub fn report(
        &mut self,
        to_path: &[u8],
        message_id: &[u8],
        total: u64,
        reports: Reports,
        code: u16,
        reason: &[u8],
        out: &mut Vec<Vec<u8>>,
    ) -> bool {
        let wanted = if code == 200 {
            reports.success
        } else {
            reports.failure != ReportRequest::No
        };
        if !wanted {
            return false;
        }
        let tid = self.id(b'r');
        let mut bytes = Vec::with_capacity(256);
        write::write_report(
            &Report {
                transaction_id: &tid,
                to_path,
                from_path: &self.local,
                message_id,
                total,
                code,
                reason,
            },
            &mut bytes,
        );
        out.push(bytes);
        true
    }

    /// Ends the session: every message not yet delivered fails with `code` (RFC 4975 has no
    /// code for a lost session; the gateway uses 481 for a closed connection).
    pub fn close(&mut self, code: u16, events: &mut Vec<SessionEvent>) {
        let mut msgs: Vec<MsgId> = self.sent.keys().copied().collect();
        msgs.sort();
        for msg in msgs {
            self.fail(msg, code, events);
        }
    }
}

/// Whether a response with `code` goes back for this request (RFC 4975 §7.1.2: Failure-Report
/// `no` wants none, `partial` only errors).
fn wants_response(frame: &Frame<'_, '_>, code: u16) -> bool {
    match frame.failure_report() {
        Some(Ok(ReportRequest::No)) => false,
        Some(Ok(ReportRequest::Partial)) => code != 200,
        _ => true,
    }
}

/// Whether `body` holds the end-line of transaction `tid` (`CRLF "-------" tid`), counting
/// the CRLF that precedes the body on the wire.
fn holds_end_line(body: &[u8], tid: &[u8]) -> bool {
    let mut needle = Vec::with_capacity(9 + tid.len());
    needle.extend_from_slice(b"\r\n-------");
    needle.extend_from_slice(tid);
    body.starts_with(&needle[2..]) || memchr::memmem::find(body, &needle).is_some()
}

/// A fresh buffer appended to `out`, for one frame.
fn push(out: &mut Vec<Vec<u8>>) -> &mut Vec<u8> {
    out.push(Vec::with_capacity(160));
    out.last_mut().expect("just pushed")
}
