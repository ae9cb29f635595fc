//! A shard's MSRP sessions and the connections they are bound to (RFC 4975 §5.4, §7.3): a frame
//! is for the session its To-Path names; a session takes frames from one connection only (the
//! first that sends it one binds it; another gets 506); a frame for no session gets 481; a
//! connection that closes ends every session bound to it. Responses and REPORTs are never
//! answered with errors. Which shard owns a session id is the caller's to decide
//! ([`crate::shard::Ownership::of_session_id`]) before handing a frame here.

use super::session::{Session, SessionEvent};
use super::write;
use sipshard_parser::msrp::{Frame, Method, ReportRequest, StartLine};
use std::collections::HashMap;

/// What happened on one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointEvent {
    /// The session.
    pub session: Vec<u8>,
    /// What happened.
    pub event: SessionEvent,
}

/// What became of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameFate {
    /// Its session took it.
    Taken,
    /// No such session: answered 481 (a request), or dropped (a response).
    Unknown,
    /// The session is bound to another connection: answered 506 (a request), or dropped.
    OtherConnection,
}

struct Entry<C> {
    session: Session,
    conn: Option<C>,
}

/// The MSRP sessions of one shard, by session id; `C` names a connection.
pub struct Endpoint<C> {
    /// Boxed: a shard may hold 100,000s of idle sessions, and a table of large entries
    /// carries its spare capacity at their size.
    sessions: HashMap<Box<[u8]>, Box<Entry<C>>>,
    /// Our URI for answers to frames of no session.
    local: Vec<u8>,
}

/// The session id of an MSRP URI: the path segment after the authority, before `;`
/// (`msrp://host:port/SESSION;tcp`).
pub fn session_id_of(uri: &[u8]) -> Option<&[u8]> {
    let rest = uri
        .strip_prefix(b"msrp://")
        .or_else(|| uri.strip_prefix(b"msrps://"))?;
    let slash = rest.iter().position(|&c| c == b'/')?;
    let id = &rest[slash + 1..];
    let end = id.iter().position(|&c| c == b';').unwrap_or(id.len());
    Some(&id[..end]).filter(|i| !i.is_empty())
}

/// The session id a frame is for: that of the first URI of its To-Path.
pub fn frame_session_id<'b>(frame: &Frame<'_, 'b>) -> Option<&'b [u8]> {
    session_id_of(frame.to_path().next()?)
}

impl<C: Copy + Eq> Endpoint<C> {
    /// No sessions; `local` is the URI answers to unknown sessions come from.
    pub fn new(local: &[u8]) -> Endpoint<C> {
        Endpoint {
            sessions: HashMap::new(),
            local: local.to_vec(),
        }
    }

    /// Sessions now.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Adds a session under `id`, bound to `conn` if we opened the connection for it (the
    /// active side), else bound by the first frame that arrives for it.
    pub fn add(&mut self, id: &[u8], session: Session, conn: Option<C>) {
        self.sessions
            .insert(id.into(), Box::new(Entry { session, conn }));
    }

    /// The session `id`, to send on or report through.
    pub fn session(&mut self, id: &[u8]) -> Option<&mut Session> {
        self.sessions.get_mut(id).map(|e| &mut e.session)
    }

    /// The connection session `id` is bound to.
    pub fn connection(&self, id: &[u8]) -> Option<C> {
        self.sessions.get(id).and_then(|e| e.conn)
    }

    /// Removes a session (ended by its user), failing what it had not delivered with `code`.
    pub fn remove(&mut self, id: &[u8], code: u16, events: &mut Vec<EndpointEvent>) {
        if let Some(mut e) = self.sessions.remove(id) {
            let mut ev = Vec::new();
            e.session.close(code, &mut ev);
            push_events(id, ev, events);
        }
    }

    /// A frame read from connection `conn`; answers (to write on `conn`) go to `out`.
    pub fn on_frame(
        &mut self,
        now_ms: u64,
        conn: C,
        frame: &Frame<'_, '_>,
        out: &mut Vec<Vec<u8>>,
        events: &mut Vec<EndpointEvent>,
    ) -> FrameFate {
        let is_request = matches!(frame.start, StartLine::Request { .. });
        // REPORTs are never answered, nor requests that said Failure-Report: no (RFC 4975
        // §7.1.2, §7.3).
        let answerable = is_request
            && !matches!(
                frame.start,
                StartLine::Request {
                    method: Method::Report
                }
            )
            && !matches!(frame.failure_report(), Some(Ok(ReportRequest::No)));
        let entry = frame_session_id(frame).and_then(|id| {
            let id = id.to_vec();
            self.sessions.get_mut(&id[..]).map(|e| (id, e))
        });
        let Some((id, entry)) = entry else {
            if answerable {
                let mut b = Vec::new();
                write::write_response(frame, 481, b"Session Does Not Exist", &self.local, &mut b);
                out.push(b);
            }
            return FrameFate::Unknown;
        };
        match entry.conn {
            Some(bound) if bound != conn => {
                if answerable {
                    let mut b = Vec::new();
                    write::write_response(
                        frame,
                        506,
                        b"Wrong Connection",
                        entry.session.local(),
                        &mut b,
                    );
                    out.push(b);
                }
                return FrameFate::OtherConnection;
            }
            // The first request on a connection binds the session to it (§5.4).
            None if is_request => entry.conn = Some(conn),
            _ => {}
        }
        let mut ev = Vec::new();
        entry.session.on_frame(now_ms, frame, out, &mut ev);
        push_events(&id, ev, events);
        FrameFate::Taken
    }

    /// The connection `conn` closed or failed: every session bound to it ends, failing what it
    /// had not delivered (481: the session is gone). Returns the ended sessions' ids.
    pub fn on_connection_closed(
        &mut self,
        conn: C,
        events: &mut Vec<EndpointEvent>,
    ) -> Vec<Vec<u8>> {
        let mut ended: Vec<Vec<u8>> = self
            .sessions
            .iter()
            .filter(|(_, e)| e.conn == Some(conn))
            .map(|(id, _)| id.to_vec())
            .collect();
        ended.sort();
        for id in &ended {
            self.remove(id, 481, events);
        }
        ended
    }

    /// When session `id`'s earliest timer is due. The gateway keeps one entry per session on
    /// its shard's wheel and re-arms it from this after every input to the session (a scan of
    /// all sessions per wake-up would cost O(sessions)).
    pub fn session_timeout(&self, id: &[u8]) -> Option<u64> {
        self.sessions.get(id).and_then(|e| e.session.poll_timeout())
    }

    /// Fires session `id`'s timers due at `now_ms`.
    pub fn handle_session_timeout(
        &mut self,
        id: &[u8],
        now_ms: u64,
        events: &mut Vec<EndpointEvent>,
    ) {
        if let Some(e) = self.sessions.get_mut(id) {
            let mut ev = Vec::new();
            e.session.handle_timeout(now_ms, &mut ev);
            push_events(id, ev, events);
        }
    }
}

fn push_events(id: &[u8], ev: Vec<SessionEvent>, events: &mut Vec<EndpointEvent>) {
    events.extend(ev.into_iter().map(|event| EndpointEvent {
        session: id.to_vec(),
        event,
    }));
}
