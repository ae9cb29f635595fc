//! The gateway's flows (`docs/gateway.md`): sessions set up from either side, messages both
//! ways, and every way a session ends. Each public method is one input; what it sends goes
//! to the [`Io`], and every session it touched is re-armed on the wheel before it returns.

use super::session::{GwSession, Origin, Pending, Settle, State, Unacked};
use super::sip::{self as gsip, Next, Way};
use super::{Effect, EventFields, Gateway, InviteIn, Io, MessageIn, SipReply, TxUse};
use crate::dialog::Dialog;
use crate::gateway::Inbound;
use crate::msrp::endpoint::{frame_session_id, EndpointEvent, FrameFate};
use crate::msrp::reassembly::Limits;
use crate::msrp::session::{MsgId, Session, SessionConfig, SessionEvent};
use crate::route::{
    GwEvent, MsgToMsrpResult, MsrpAnswerResult, ReplyMode, SendMessage, SendMessageResult,
};
use crate::sdp::{self, Setup};
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

    // ----- msg_to_msrp -----

    /// A SIP MESSAGE for the session `m.key`. `waiting` names the run holding the MESSAGE
    /// (its shard and token) when the action is `sync`. Returns the result and the MESSAGE's
    /// answer, or `None` when the answer waits for the MSRP side (an [`Effect::Settle`]).
    pub fn msg_to_msrp(
        &mut self,
        m: MessageIn,
        waiting: Option<(usize, Token)>,
        io: &mut Io<'_>,
    ) -> Option<(MsgToMsrpResult, SipReply)> {
        if m.key.is_empty() {
            return Some((MsgToMsrpResult::Error, SipReply::code(500)));
        }
        self.stats.gw_sip_to_msrp.fetch_add(1, Relaxed);
        if m.body.len() as u64 > self.cfg.max_message_size.0 {
            return Some((MsgToMsrpResult::Error, SipReply::code(413)));
        }
        let up = self
            .sessions
            .get(&m.key[..])
            .is_some_and(|s| s.state == State::Up);
        if !up && m.body.len() as u64 > self.cfg.queue_max_bytes.0 {
            // It could never wait in the queue: refused before any session is set up for it.
            self.stats.gw_queue_full.fetch_add(1, Relaxed);
            return Some((
                MsgToMsrpResult::Full,
                SipReply {
                    code: 503,
                    retry_after: Some(self.cfg.setup_timeout.min(u64::from(u32::MAX)) as u32),
                    response: None,
                },
            ));
        }
        let settle = match (m.mode, waiting) {
            (ReplyMode::Sync, Some((from, token))) => Settle::Sync {
                from,
                token,
                deadline_ms: io
                    .now_ms
                    .saturating_add(self.cfg.sync_timeout.saturating_mul(1000)),
            },
            _ => Settle::Async,
        };
        let key: Box<[u8]> = m.key.clone().into();
        if !self.sessions.contains_key(&key) {
            if let Err(r) = self.offer(&key, &m, io) {
                return Some(r);
            }
        }
        let pending = Pending {
            call_id: m.call_id.into(),
            settle,
        };
        let sess = self.sessions.get_mut(&key).expect("made above");
        sess.last_sip_ms = io.now_ms;
        if sess.state == State::Up {
            self.send_msrp(&key, &m.content_type, &m.body, pending, io);
        } else {
            let item = super::queue::Queued {
                content_type: m.content_type,
                body: m.body,
                queued_ms: io.now_ms,
                owner: pending,
            };
            if sess.queue.push(item).is_err() {
                self.stats.gw_queue_full.fetch_add(1, Relaxed);
                return Some((
                    MsgToMsrpResult::Full,
                    SipReply {
                        code: 503,
                        retry_after: Some(self.cfg.setup_timeout.min(u64::from(u32::MAX)) as u32),
                        response: None,
                    },
                ));
            }
            self.stats.gw_queued.fetch_add(1, Relaxed);
        }
        self.rearm(&key);
        match settle {
            Settle::Async | Settle::Answered => {
                Some((MsgToMsrpResult::Queued, SipReply::code(202)))
            }
            Settle::Sync { .. } => None,
        }
    }

    /// Sets up a session for a MESSAGE: our INVITE with an SDP offer, the coordinates for the
    /// way back mirrored.
    fn offer(
        &mut self,
        key: &[u8],
        m: &MessageIn,
        io: &mut Io<'_>,
    ) -> Result<(), (MsgToMsrpResult, SipReply)> {
        let error = |code| (MsgToMsrpResult::Error, SipReply::code(code));
        if self.sessions.len() as u64 >= self.cfg.max_sessions {
            tracing::warn!(
                shard = self.me,
                "gateway: the shard holds its maximum of sessions"
            );
            return Err((
                MsgToMsrpResult::Full,
                SipReply {
                    code: 503,
                    retry_after: Some(60),
                    response: None,
                },
            ));
        }
        let Some(local) = self.msrp_local() else {
            return Err(error(500));
        };
        let (way, route) = self.way(&m.ruri, 0).map_err(|e| {
            tracing::warn!(
                shard = self.me,
                "gateway: cannot send the INVITE for `{}`: {e}",
                text(&m.ruri)
            );
            error(503)
        })?;
        let msrp_id = self.mint.new_id();
        let path = format!("msrp://{local}/{msrp_id};tcp");
        let types = types_of(&m.types);
        let mut body = Vec::with_capacity(256);
        sdp::write(
            &sdp::Description {
                address: local.ip(),
                port: local.port(),
                path: path.as_bytes(),
                accept_types: &types,
                accept_wrapped_types: &[],
                max_size: Some(self.cfg.max_message_size.0),
                setup: Setup::Actpass,
                session_id: io.now_ms,
            },
            &mut body,
        );
        let call_id = self.mint.call_id();
        let tag = self.mint.call_id();
        let branch = self.mint.branch();
        let contact = format!("sip:{}", way.via.1);
        let routes: Vec<&[u8]> = route.iter().map(Vec::as_slice).collect();
        let mut invite = Vec::with_capacity(body.len() + 512);
        sip_write::write_request(
            &Request {
                method: "INVITE",
                uri: &m.ruri,
                from: &gsip::name_addr(&m.from),
                from_tag: tag.as_bytes(),
                to: &gsip::name_addr(&m.to),
                call_id: call_id.as_bytes(),
                cseq: 1,
                via: way.via,
                branch: branch.as_bytes(),
                route: &routes,
                contact: Some(contact.as_bytes()),
                extra: &[],
                content_type: Some(b"application/sdp"),
                body: &body,
            },
            &mut invite,
        );
        let id: Box<[u8]> = msrp_id.into_bytes().into();
        let mut s = GwSession::new(Origin::Message, id.clone(), &self.cfg, io.now_ms);
        s.msg_from = m.to.clone().into();
        s.msg_to = m.from.clone().into();
        s.msg_ruri = m.from.clone().into();
        s.target = m.ruri.clone().into();
        s.types = m.types.clone().into();
        s.invite = Some(invite.clone());
        self.by_msrp.insert(id.clone(), key.into());
        self.by_call
            .insert(call_id.clone().into_bytes().into(), key.into());
        self.sessions.insert(key.into(), s);
        // The session exists before the INVITE leaves: its transaction (made now, or once the
        // Request-URI's name is resolved) is recorded in it.
        let use_ = TxUse::Invite { key: key.into() };
        if self.dispatch(&way, invite, Some(use_), io).is_err() {
            self.sessions.remove(key);
            self.by_msrp.remove(&id);
            self.by_call.remove(call_id.as_bytes());
            return Err(error(503));
        }
        self.stats.gw_sessions_created.fetch_add(1, Relaxed);
        self.publish();
        Ok(())
    }

    /// Sends a request of ours the way `way` says: in a client transaction for `use_` (none:
    /// an ACK, sent as it is), at once to an address, or once the driver has resolved the
    /// name. What it was for comes back when it cannot be sent at all.
    fn dispatch(
        &mut self,
        way: &Way,
        bytes: Vec<u8>,
        use_: Option<TxUse>,
        io: &mut Io<'_>,
    ) -> Result<(), Option<TxUse>> {
        let v4 = way.via.1.is_ipv4();
        let dest = match &way.next {
            Next::Addr(a) => *a,
            Next::Name { host, port } => {
                let key = (host.clone(), *port);
                let cached = self
                    .resolved
                    .get(&key)
                    .filter(|(_, until)| *until > io.now_ms)
                    .and_then(|(addrs, _)| addrs.iter().find(|a| a.is_ipv4() == v4).copied());
                match cached {
                    Some(a) => a,
                    None => {
                        let waiting = self.resolving.entry(key).or_default();
                        if waiting.len() >= MAX_WAITING_PER_NAME {
                            return Err(use_);
                        }
                        if waiting.is_empty() {
                            io.outs.push(Out::Resolve {
                                name: host.clone(),
                                port: *port,
                            });
                        }
                        waiting.push(Waiter {
                            bytes,
                            use_,
                            transport: way.transport,
                            listen: way.listen,
                            v4,
                        });
                        return Ok(());
                    }
                }
            }
        };
        self.send_to(dest, way.transport, way.listen, bytes, use_, io)
    }

    fn send_to(
        &mut self,
        dest: std::net::SocketAddr,
        transport: Transport,
        listen: u16,
        bytes: Vec<u8>,
        use_: Option<TxUse>,
        io: &mut Io<'_>,
    ) -> Result<(), Option<TxUse>> {
        let hop = match transport {
            Transport::Udp => Hop::Datagram { listen, dest },
            Transport::Tcp => {
                let conn = ConnId {
                    shard: self.me as u16,
                    listen,
                    peer: dest,
                };
                // Opened unless this shard holds one to `dest` already; the request queues on
                // it meanwhile.
                io.outs.push(Out::Connect { conn });
                Hop::Stream(conn)
            }
        };
        let Some(use_) = use_ else {
            io.outs.push(hop.send(bytes));
            return Ok(());
        };
        let Some(tx) = io.txs.send_request(io.now_ms, bytes, hop, io.outs) else {
            return Err(Some(use_));
        };
        if let TxUse::Invite { key } = &use_ {
            if let Some(s) = self.sessions.get_mut(key) {
                s.invite_tx = Some(tx);
            }
        }
        self.by_tx.insert(tx, use_);
        Ok(())
    }

    /// The driver resolved `name` (RFC 3263: SRV, then A/AAAA): the requests waiting for it
    /// leave; with no address of their family, they fail as a transport error would (503).
    pub fn on_resolved(
        &mut self,
        name: &str,
        port: Option<u16>,
        addrs: Vec<std::net::SocketAddr>,
        io: &mut Io<'_>,
    ) {
        let key = (name.to_owned(), port);
        let waiters = self.resolving.remove(&key).unwrap_or_default();
        if addrs.is_empty() {
            tracing::info!(shard = self.me, "gateway: `{name}` did not resolve");
        } else {
            if self.resolved.len() >= MAX_RESOLVED {
                let now = io.now_ms;
                self.resolved.retain(|_, (_, until)| *until > now);
                if self.resolved.len() >= MAX_RESOLVED {
                    self.resolved.clear();
                }
            }
            self.resolved
                .insert(key, (addrs.clone(), io.now_ms + RESOLVED_TTL_MS));
        }
        for w in waiters {
            let sent = match addrs.iter().find(|a| a.is_ipv4() == w.v4) {
                Some(&dest) => self.send_to(dest, w.transport, w.listen, w.bytes, w.use_, io),
                None => Err(w.use_),
            };
            if let Err(use_) = sent {
                self.fail_unsent(use_, io);
            }
        }
    }

    /// A request that could not be sent: its session or message fails as after a 503.
    fn fail_unsent(&mut self, use_: Option<TxUse>, io: &mut Io<'_>) {
        match use_ {
            Some(TxUse::Invite { key }) => {
                self.setup_failed(&key, 503, b"Service Unavailable", io);
            }
            Some(TxUse::Message(inb)) => self.report_inbound(&inb, 503, io),
            _ => {}
        }
    }

    /// Sends a message on an up session.
    fn send_msrp(
        &mut self,
        key: &[u8],
        content_type: &[u8],
        body: &[u8],
        pending: Pending,
        io: &mut Io<'_>,
    ) {
        let Some(sess) = self.sessions.get_mut(key) else {
            return;
        };
        let (Some(conn), Some(ms)) = (sess.conn, self.endpoint.session(&sess.msrp_id)) else {
            return;
        };
        let mut frames = Vec::new();
        let id = ms.send(io.now_ms, content_type, body, &mut frames);
        sess.in_flight.insert(id, pending);
        sess.last_sent_ms = io.now_ms;
        write_frames(&self.stats, conn, frames, io);
    }

    /// The session's connection is bound: what waited goes out (an empty SEND binds it when
    /// we are the active side and nothing waited).
    fn flush(&mut self, key: &[u8], bind: bool, io: &mut Io<'_>) {
        let Some(sess) = self.sessions.get_mut(key) else {
            return;
        };
        let (Some(conn), Some(ms)) = (sess.conn, self.endpoint.session(&sess.msrp_id)) else {
            return;
        };
        let mut frames = Vec::new();
        if bind && sess.queue.is_empty() {
            ms.send(io.now_ms, b"", b"", &mut frames);
        }
        while let Some(q) = sess.queue.pop() {
            self.stats.gw_queued.fetch_sub(1, Relaxed);
            let id = ms.send(io.now_ms, &q.content_type, &q.body, &mut frames);
            sess.in_flight.insert(id, q.owner);
        }
        sess.last_sent_ms = io.now_ms;
        write_frames(&self.stats, conn, frames, io);
    }

    // ----- msrp_answer -----

    /// An MSRP user's INVITE for the session `a.key`: our 200 with an SDP answer (the
    /// response comes back whole, for the shard holding the INVITE's transaction to send),
    /// 488 for an offer we cannot take.
    pub fn msrp_answer(&mut self, a: InviteIn, io: &mut Io<'_>) -> (MsrpAnswerResult, SipReply) {
        let mut h = [EMPTY_HEADER; MAX_HEADERS];
        let Some(inv) = parse_sip(&a.invite, &mut h) else {
            return (MsrpAnswerResult::Error, SipReply::code(400));
        };
        let refuse = (MsrpAnswerResult::Refused, SipReply::code(488));
        if a.key.is_empty() {
            return (MsrpAnswerResult::Error, SipReply::code(500));
        }
        let offer = match sdp::find_msrp(inv.body()) {
            Ok(o) if !o.tls => o,
            _ => return refuse,
        };
        let ours = types_of(&a.types);
        if sdp::common_types(&ours, &offer.accept_types).is_empty() {
            return refuse;
        }
        let Some(local) = self.msrp_local() else {
            return (MsrpAnswerResult::Error, SipReply::code(500));
        };
        let key: Box<[u8]> = a.key.clone().into();
        // RFC 4975 §5.4 / RFC 6135: the offerer is active unless it says passive.
        let we_connect = offer.setup == Some(Setup::Passive);
        let remote_path = offer.path.join(&b' ');
        let connect_to = if we_connect {
            match offer.path.first().and_then(|u| gsip::msrp_addr(u)) {
                Some(addr) => Some(addr),
                None => return refuse,
            }
        } else {
            None
        };
        let to_tag = self.mint.call_id();
        let Ok(dialog) = Dialog::as_uas(&inv, to_tag.as_bytes()) else {
            return (MsrpAnswerResult::Error, SipReply::code(400));
        };
        let replacing = self.sessions.contains_key(&key);
        if self.sessions.len() as u64 - u64::from(replacing) >= self.cfg.max_sessions {
            return (
                MsrpAnswerResult::Error,
                SipReply {
                    code: 503,
                    retry_after: Some(60),
                    response: None,
                },
            );
        }
        if replacing {
            // A new INVITE for a key in use: the MSRP user started over; the old session
            // goes, and its messages with it (only now that the new one can be made).
            self.end(&key, Ending::new("replaced", 480), io);
        }
        let msrp_id = self.mint.new_id();
        let path = format!("msrp://{local}/{msrp_id};tcp");
        let mut body = Vec::with_capacity(256);
        sdp::write(
            &sdp::Description {
                address: local.ip(),
                port: local.port(),
                path: path.as_bytes(),
                accept_types: &ours,
                accept_wrapped_types: &[],
                max_size: Some(self.cfg.max_message_size.0),
                setup: if we_connect {
                    Setup::Active
                } else {
                    Setup::Passive
                },
                session_id: io.now_ms,
            },
            &mut body,
        );
        let contact_addr = self
            .net
            .sip
            .get(usize::from(a.rx.listen))
            .map(|&(_, addr)| addr)
            .filter(|addr| !addr.ip().is_unspecified())
            .unwrap_or(a.rx.local);
        let contact = format!("<sip:{contact_addr}>");
        let mut response = Vec::with_capacity(body.len() + 512);
        sip_write::write_response_with_body(
            &inv,
            a.rx.source,
            200,
            b"OK",
            to_tag.as_bytes(),
            &[("Contact", contact.as_bytes())],
            Some((b"application/sdp", &body)),
            &mut response,
        );
        let mut s = GwSession::new(
            Origin::Invite,
            msrp_id.as_bytes().into(),
            &self.cfg,
            io.now_ms,
        );
        s.msg_from = a.from.into();
        s.msg_to = a.to.into();
        s.msg_ruri = a.ruri.into();
        s.types = a.types.clone().into();
        // RFC 3261 §13.3.1.4: the 2xx is retransmitted until its ACK whatever the transport
        // (a hop further on may be UDP).
        let hop = match (a.rx.transport, a.rx.conn) {
            (Transport::Tcp, Some(conn)) => Some(Hop::Stream(conn)),
            (Transport::Tcp, None) => None,
            (Transport::Udp, _) => Some(Hop::Datagram {
                listen: a.rx.listen,
                dest: sip_write::udp_response_destination(inv.top_via().as_ref(), a.rx.source),
            }),
        };
        if let Some(hop) = hop {
            let t1 = self.cfg.t1_ms;
            s.unacked = Some(Unacked {
                bytes: response.clone(),
                hop,
                next_ms: io.now_ms + t1,
                interval_ms: t1,
                give_up_ms: io.now_ms + 64 * t1,
            });
        }
        self.by_call
            .insert(dialog.call_id.clone().into(), key.clone());
        s.dialog = Some(dialog);
        let ms = Session::new(
            self.session_config(),
            path.as_bytes(),
            &remote_path,
            id_prefix(&msrp_id),
        )
        .accepting(&ours);
        match connect_to {
            Some(addr) => {
                let conn = self.new_conn();
                io.outs.push(Out::MsrpConnect { conn, addr });
                self.endpoint.add(msrp_id.as_bytes(), ms, Some(conn));
                s.conn = Some(conn);
                s.opened = true;
                s.state = State::Up;
            }
            None => self.endpoint.add(msrp_id.as_bytes(), ms, None),
        }
        let up = s.state == State::Up;
        self.by_msrp
            .insert(msrp_id.into_bytes().into(), key.clone());
        self.sessions.insert(key.clone(), s);
        self.stats.gw_sessions_created.fetch_add(1, Relaxed);
        if up {
            self.flush(&key, true, io);
        }
        self.rearm(&key);
        self.publish();
        (
            MsrpAnswerResult::Answered,
            SipReply {
                code: 200,
                retry_after: None,
                response: Some(response),
            },
        )
    }

    // ----- SIP: transactions, dialogs -----

    /// What a transaction of the shard reports.
    pub fn on_tx_event(&mut self, e: TxEvent, io: &mut Io<'_>) {
        match e {
            TxEvent::Response { tx, code, bytes } => match self.by_tx.get(&tx) {
                Some(TxUse::Invite { key }) => {
                    let key = key.clone();
                    self.on_invite_response(&key, code, &bytes, io);
                }
                Some(TxUse::Abandoned { .. }) if (200..300).contains(&code) => {
                    if let Some(TxUse::Abandoned { invite }) = self.by_tx.remove(&tx) {
                        self.end_orphan_dialog(&invite, &bytes, io);
                    }
                }
                Some(TxUse::Message(_)) if code >= 200 => {
                    if let Some(TxUse::Message(inb)) = self.by_tx.remove(&tx) {
                        self.report_inbound(&inb, code, io);
                    }
                }
                Some(_) if code >= 200 => {
                    tracing::debug!(
                        shard = self.me,
                        "gateway: a request of ours was answered {code}"
                    );
                }
                _ => {}
            },
            TxEvent::Timeout { tx } => match self.by_tx.remove(&tx) {
                Some(TxUse::Invite { key }) => {
                    self.setup_failed(&key, 408, b"Request Timeout", io);
                }
                Some(TxUse::Message(inb)) => self.report_inbound(&inb, 408, io),
                _ => {}
            },
            TxEvent::Terminated { tx } => {
                self.by_tx.remove(&tx);
            }
            TxEvent::Ack { bytes } => self.on_ack(&bytes, io),
            TxEvent::AckTimeout { .. } => {}
        }
    }

    fn on_invite_response(&mut self, key: &[u8], code: u16, bytes: &[u8], io: &mut Io<'_>) {
        let Some(sess) = self.sessions.get_mut(key) else {
            return;
        };
        sess.last_sip_ms = io.now_ms;
        if code < 200 {
            sess.provisional = true;
            return;
        }
        let mut h = [EMPTY_HEADER; MAX_HEADERS];
        let Some(resp) = parse_sip(bytes, &mut h) else {
            return;
        };
        if code >= 300 {
            sess.invite = None;
            sess.invite_tx = None;
            let reason = match resp.start_line() {
                psip::StartLine::Response { reason, .. } => reason.to_vec(),
                _ => reason_phrase(code).as_bytes().to_vec(),
            };
            self.setup_failed(key, code, &reason, io);
            return;
        }
        if sess.dialog.is_some() {
            // A retransmitted 2xx: its ACK was lost (RFC 3261 §13.2.2.4).
            self.send_in_dialog(key, "ACK", io);
            return;
        }
        let Some(invite) = sess.invite.take() else {
            return;
        };
        let mut hi = [EMPTY_HEADER; MAX_HEADERS];
        let Some(inv) = parse_sip(&invite, &mut hi) else {
            return;
        };
        let dialog = match Dialog::as_uac(&inv, &resp) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(
                    shard = self.me,
                    "gateway: a 2xx to our INVITE makes no dialog ({e:?})"
                );
                let mut ack = Vec::new();
                if sip_write::write_ack(&inv, &resp, &mut ack) {
                    if let Ok((way, _)) = self.way(&gsip_target(&inv), 0) {
                        let _ = self.dispatch(&way, ack, None, io);
                    }
                }
                self.setup_failed(key, 502, b"Bad Gateway", io);
                return;
            }
        };
        let sess = self.sessions.get_mut(key).expect("looked up above");
        sess.dialog = Some(dialog);
        sess.invite_tx = None;
        let types = sess.types.clone();
        self.send_in_dialog(key, "ACK", io);
        // The answer's MSRP stream.
        let ours: Vec<Vec<u8>> = types_of(&types).into_iter().map(<[u8]>::to_vec).collect();
        let ours: Vec<&[u8]> = ours.iter().map(Vec::as_slice).collect();
        let answer = match sdp::find_msrp(resp.body()) {
            Ok(a) if !a.tls && !sdp::common_types(&ours, &a.accept_types).is_empty() => a,
            _ => {
                self.setup_failed(key, 488, b"Not Acceptable Here", io);
                return;
            }
        };
        let remote_path = answer.path.join(&b' ');
        let we_connect = answer.setup != Some(Setup::Active);
        let addr = answer.path.first().and_then(|u| gsip::msrp_addr(u));
        if we_connect && addr.is_none() {
            self.setup_failed(key, 488, b"Not Acceptable Here", io);
            return;
        }
        let Some(local) = self.msrp_local() else {
            return;
        };
        let sess = self.sessions.get_mut(key).expect("looked up above");
        let msrp_id = sess.msrp_id.clone();
        let path = format!("msrp://{local}/{};tcp", text(&msrp_id));
        let ms = Session::new(
            self.session_config(),
            path.as_bytes(),
            &remote_path,
            id_prefix(&text(&msrp_id)),
        )
        .accepting(&ours);
        if let (true, Some(addr)) = (we_connect, addr) {
            let conn = self.new_conn();
            io.outs.push(Out::MsrpConnect { conn, addr });
            self.endpoint.add(&msrp_id, ms, Some(conn));
            let sess = self.sessions.get_mut(key).expect("looked up above");
            sess.conn = Some(conn);
            sess.opened = true;
            sess.state = State::Up;
            self.flush(key, true, io);
        } else {
            self.endpoint.add(&msrp_id, ms, None);
            let sess = self.sessions.get_mut(key).expect("looked up above");
            sess.state = State::Connecting;
        }
        self.rearm(key);
    }

    /// A 2xx came for an INVITE whose session had ended: the dialog it makes is ended at once
    /// (ACK, then BYE), as RFC 3261 §15 has a caller do.
    fn end_orphan_dialog(&mut self, invite: &[u8], response: &[u8], io: &mut Io<'_>) {
        let (mut h1, mut h2) = ([EMPTY_HEADER; MAX_HEADERS], [EMPTY_HEADER; MAX_HEADERS]);
        let (Some(inv), Some(resp)) = (parse_sip(invite, &mut h1), parse_sip(response, &mut h2))
        else {
            return;
        };
        let Ok(mut d) = Dialog::as_uac(&inv, &resp) else {
            return;
        };
        let cseq = d.local_seq;
        for method in ["ACK", "BYE"] {
            let Ok((way, _)) = self.way(d.next_hop_uri(), 0) else {
                return;
            };
            let branch = self.mint.branch();
            let mut out = Vec::new();
            d.write_request(
                method,
                way.via,
                branch.as_bytes(),
                None,
                (method == "ACK").then_some(cseq),
                &[],
                None,
                b"",
                &mut out,
            );
            let use_ = (method != "ACK").then_some(TxUse::Other);
            let _ = self.dispatch(&way, out, use_, io);
        }
    }

    /// Sends `method` (ACK or BYE) in the session's dialog.
    fn send_in_dialog(&mut self, key: &[u8], method: &str, io: &mut Io<'_>) {
        let Some(sess) = self.sessions.get(key) else {
            return;
        };
        let Some(d) = &sess.dialog else {
            return;
        };
        let uri = d.next_hop_uri().to_vec();
        let way = match self.way(&uri, 0) {
            Ok((w, _)) => w,
            Err(e) => {
                tracing::warn!(
                    shard = self.me,
                    "gateway: cannot send {method} to `{}`: {e}",
                    text(&uri)
                );
                return;
            }
        };
        let branch = self.mint.branch();
        let sess = self.sessions.get_mut(key).expect("looked up above");
        let d = sess.dialog.as_mut().expect("looked up above");
        let cseq = (method == "ACK").then_some(d.local_seq);
        let mut out = Vec::with_capacity(512);
        d.write_request(
            method,
            way.via,
            branch.as_bytes(),
            None,
            cseq,
            &[],
            None,
            b"",
            &mut out,
        );
        let use_ = (method != "ACK").then_some(TxUse::Other);
        let _ = self.dispatch(&way, out, use_, io);
    }

    /// Whether `msg` (a request with a To tag) is in one of our dialogs; if so it is handled
    /// here: BYE ends the session, a re-INVITE is refused 488 (the session's media do not
    /// change), anything else 405; a request for a dialog that is gone gets 481.
    pub fn on_dialog_request(
        &mut self,
        msg: &Message<'_, '_>,
        rx: &RxContext,
        tx: Option<TxId>,
        ours: bool,
        io: &mut Io<'_>,
    ) -> bool {
        let Some(call_id) = msg.call_id() else {
            return false;
        };
        let Some(key) = self.by_call.get(call_id).cloned() else {
            if ours && msg.method() != Some(b"ACK") {
                respond(msg, rx, tx, 481, io);
                return true;
            }
            return false;
        };
        let Some(sess) = self.sessions.get_mut(&key) else {
            return false;
        };
        let Some(d) = sess.dialog.as_mut() else {
            return false;
        };
        if !d.matches(msg) {
            if ours {
                respond(msg, rx, tx, 481, io);
                return true;
            }
            return false;
        }
        if msg.method() == Some(b"ACK") {
            sess.unacked = None;
            self.rearm(&key);
            return true;
        }
        if !d.accept_remote_cseq(msg) {
            respond(msg, rx, tx, 500, io);
            return true;
        }
        sess.last_sip_ms = io.now_ms;
        match msg.method() {
            Some(b"BYE") => {
                respond(msg, rx, tx, 200, io);
                self.end(
                    &key,
                    Ending {
                        cause: "bye",
                        code: 480,
                        tell_sip: false,
                    },
                    io,
                );
            }
            Some(b"INVITE") => respond(msg, rx, tx, 488, io),
            Some(b"OPTIONS") => respond(msg, rx, tx, 200, io),
            _ => respond(msg, rx, tx, 405, io),
        }
        self.rearm(&key);
        true
    }

    /// An ACK that matched no transaction of ours: the ACK for a 2xx of a dialog.
    pub fn on_ack(&mut self, bytes: &[u8], _io: &mut Io<'_>) {
        let mut h = [EMPTY_HEADER; MAX_HEADERS];
        let Some(ack) = parse_sip(bytes, &mut h) else {
            return;
        };
        let Some(key) = ack.call_id().and_then(|c| self.by_call.get(c)).cloned() else {
            return;
        };
        if let Some(sess) = self.sessions.get_mut(&key) {
            if sess.dialog.as_ref().is_some_and(|d| d.matches(&ack)) {
                sess.unacked = None;
                self.rearm(&key);
            }
        }
    }

    // ----- MSRP -----

    /// A whole MSRP frame read on `conn` for a session of this shard (or for none: it is
    /// answered 481 here).
    pub fn on_msrp_frame(&mut self, conn: MsrpConn, bytes: &[u8], io: &mut Io<'_>) {
        let mut h = [msrp::EMPTY_HEADER; 32];
        let limits = msrp::Limits {
            max_frame: usize::MAX,
            max_headers_bytes: usize::MAX,
        };
        let frame = match msrp::parse(bytes, &mut h, &limits) {
            Ok(Status::Complete(f)) => f,
            Ok(Status::Partial) => return,
            Err(e) => {
                self.stats.msrp_errors.fetch_add(1, Relaxed);
                if let Some(r) = bad_frame_response(bytes, e) {
                    write_frames(&self.stats, conn, vec![r], io);
                }
                return;
            }
        };
        self.stats.msrp_frames_in.fetch_add(1, Relaxed);
        let id = frame_session_id(&frame).map(<[u8]>::to_vec);
        let bound_before = id.as_ref().and_then(|i| self.endpoint.connection(i));
        let mut out = Vec::new();
        let mut events = Vec::new();
        let fate = self
            .endpoint
            .on_frame(io.now_ms, conn, &frame, &mut out, &mut events);
        write_frames(&self.stats, conn, out, io);
        let key = id.as_ref().and_then(|i| self.by_msrp.get(&i[..])).cloned();
        if let (FrameFate::Taken, Some(key)) = (fate, &key) {
            if let Some(sess) = self.sessions.get_mut(key) {
                sess.msrp_seen = true;
                if bound_before.is_none() && sess.conn.is_none() {
                    // The far side connected and bound the session (we are passive).
                    sess.conn = Some(conn);
                    sess.state = State::Up;
                    self.flush(key, false, io);
                }
            }
        }
        self.on_endpoint_events(events, io);
        if let Some(key) = key {
            self.rearm(&key);
        }
    }

    /// The connection `conn` closed or failed: its sessions end.
    pub fn on_msrp_closed(&mut self, conn: MsrpConn, io: &mut Io<'_>) {
        let mut events = Vec::new();
        let ended = self.endpoint.on_connection_closed(conn, &mut events);
        self.on_endpoint_events(events, io);
        for id in ended {
            if let Some(key) = self.by_msrp.get(&id[..]).cloned() {
                self.connection_lost(&key, io);
            }
        }
        // A connection we opened that never bound (a failed connect) ends its session too.
        let unbound: Vec<Box<[u8]>> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.conn == Some(conn))
            .map(|(k, _)| k.clone())
            .collect();
        for key in unbound {
            self.connection_lost(&key, io);
        }
    }

    /// A session's connection is gone. If nothing ever came on it (the connect failed), the
    /// session was never set up; otherwise it ends for a transport loss.
    fn connection_lost(&mut self, key: &[u8], io: &mut Io<'_>) {
        match self.sessions.get(key) {
            Some(s) if !s.msrp_seen => {
                self.setup_failed(key, 503, b"MSRP connection failed", io);
            }
            Some(_) => self.end(key, Ending::new("transport", 480), io),
            None => {}
        }
    }

    fn on_endpoint_events(&mut self, events: Vec<EndpointEvent>, io: &mut Io<'_>) {
        for EndpointEvent { session, event } in events {
            let Some(key) = self.by_msrp.get(&session[..]).cloned() else {
                continue;
            };
            match event {
                SessionEvent::Received {
                    message_id,
                    content_type,
                    body,
                    reports,
                    from_path,
                } => {
                    if body.is_empty() {
                        // A bind or a keepalive: no message, so the session stays idle.
                        continue;
                    }
                    if let Some(sess) = self.sessions.get_mut(&key) {
                        sess.last_msrp_ms = io.now_ms;
                    }
                    let inb = Inbound {
                        msrp_id: session.into(),
                        message_id,
                        total: body.len() as u64,
                        reports,
                        from_path,
                    };
                    self.send_as_sip(&key, inb, &content_type, &body, io);
                }
                SessionEvent::Delivered(msg) => self.settle_msg(&key, msg, 200, io),
                SessionEvent::Failed { msg, code } => self.settle_msg(&key, msg, code, io),
            }
        }
    }

    /// The outcome of a message we sent on the MSRP side (an MSRP status).
    fn settle_msg(&mut self, key: &[u8], msg: MsgId, msrp_code: u16, io: &mut Io<'_>) {
        let Some(sess) = self.sessions.get_mut(key) else {
            return;
        };
        let Some(p) = sess.in_flight.remove(&msg) else {
            return;
        };
        let code = gsip::sip_status_of_msrp(msrp_code);
        let fields = self.fields(key);
        settle(&self.stats, fields, p, code, io);
    }

    /// An MSRP message becomes a SIP MESSAGE with the session's coordinates.
    fn send_as_sip(
        &mut self,
        key: &[u8],
        inb: Inbound,
        content_type: &[u8],
        body: &[u8],
        io: &mut Io<'_>,
    ) {
        let Some(sess) = self.sessions.get(key) else {
            return;
        };
        self.stats.gw_msrp_to_sip.fetch_add(1, Relaxed);
        let (ruri, from, to) = (
            sess.msg_ruri.clone(),
            sess.msg_from.clone(),
            sess.msg_to.clone(),
        );
        let (way, route) = match self.way(&ruri, body.len()) {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(
                    shard = self.me,
                    "gateway: cannot send a MESSAGE to `{}`: {e}",
                    text(&ruri)
                );
                self.report_inbound(&inb, 503, io);
                return;
            }
        };
        let call_id = self.mint.call_id();
        let tag = self.mint.call_id();
        let branch = self.mint.branch();
        let routes: Vec<&[u8]> = route.iter().map(Vec::as_slice).collect();
        let mut out = Vec::with_capacity(body.len() + 512);
        sip_write::write_request(
            &Request {
                method: "MESSAGE",
                uri: &ruri,
                from: &gsip::name_addr(&from),
                from_tag: tag.as_bytes(),
                to: &gsip::name_addr(&to),
                call_id: call_id.as_bytes(),
                cseq: 1,
                via: way.via,
                branch: branch.as_bytes(),
                route: &routes,
                contact: None,
                extra: &[],
                content_type: Some(if content_type.is_empty() {
                    b"text/plain"
                } else {
                    content_type
                }),
                body,
            },
            &mut out,
        );
        if let Err(use_) = self.dispatch(&way, out, Some(TxUse::Message(Box::new(inb))), io) {
            self.fail_unsent(use_, io);
        }
    }

    /// Reports the SIP side's final answer to a message the MSRP side sent, as it asked.
    fn report_inbound(&mut self, inb: &Inbound, sip_code: u16, io: &mut Io<'_>) {
        if (200..300).contains(&sip_code) {
            self.stats.gw_delivered.fetch_add(1, Relaxed);
        } else {
            self.stats.gw_failed.fetch_add(1, Relaxed);
        }
        let Some(key) = self.by_msrp.get(&inb.msrp_id).cloned() else {
            return;
        };
        let Some(conn) = self.sessions.get(&key).and_then(|s| s.conn) else {
            return;
        };
        let Some(ms) = self.endpoint.session(&inb.msrp_id) else {
            return;
        };
        let code = gsip::msrp_status_of_sip(sip_code);
        let mut frames = Vec::new();
        ms.report(
            &inb.from_path,
            &inb.message_id,
            inb.total,
            inb.reports,
            code,
            reason_phrase(code).as_bytes(),
            &mut frames,
        );
        write_frames(&self.stats, conn, frames, io);
    }

    // ----- endings -----

    fn fields(&self, key: &[u8]) -> EventFields {
        let mut f = EventFields {
            key: key.to_vec(),
            ..EventFields::default()
        };
        if let Some(s) = self.sessions.get(key) {
            let (from, to, ruri) = match s.origin {
                Origin::Message => (&s.msg_to, &s.msg_from, &s.target),
                Origin::Invite => (&s.msg_from, &s.msg_to, &s.msg_ruri),
            };
            f.from_uri = from.to_vec();
            f.to_uri = to.to_vec();
            f.ruri = ruri.to_vec();
        }
        f
    }

    /// The session could not be set up: `gw:setup_failed`, then the session ends and its
    /// messages fail with the mapped code.
    fn setup_failed(&mut self, key: &[u8], code: u16, reason: &[u8], io: &mut Io<'_>) {
        if !self.sessions.contains_key(key) {
            return;
        }
        self.stats.gw_setup_failed.fetch_add(1, Relaxed);
        // Only a session we set up for a MESSAGE has a sender waiting to be told; an MSRP
        // user whose session never came up (it did not connect) has sent nothing.
        if self.sessions.get(key).map(|s| s.origin) == Some(Origin::Message) {
            let mut fields = self.fields(key);
            fields.code = Some(code);
            fields.reason = reason.to_vec();
            fields.cause = "setup_failed";
            io.effects.push(Effect::Event {
                event: GwEvent::SetupFailed,
                fields,
            });
        }
        self.end(
            key,
            Ending::new("setup_failed", gsip::sip_status_of_setup(code)),
            io,
        );
    }

    /// Ends a session: its MSRP side (undelivered messages fail, our connection closes), its
    /// SIP side (BYE, or CANCEL of a pending INVITE), `gw:session_ended`.
    fn end(&mut self, key: &[u8], how: Ending, io: &mut Io<'_>) {
        let fields = self.fields(key);
        let Some(mut sess) = self.sessions.remove(key) else {
            return;
        };
        self.stats.gw_sessions_ended.fetch_add(1, Relaxed);
        if let Some((id, _)) = sess.timer.take() {
            self.wheel.cancel(id);
        }
        self.by_msrp.remove(&sess.msrp_id);
        let mut events = Vec::new();
        self.endpoint.remove(&sess.msrp_id, 481, &mut events);
        let mut failed: Vec<(MsgId, u16)> = events
            .into_iter()
            .filter_map(|e| match e.event {
                SessionEvent::Failed { msg, code } => Some((msg, code)),
                _ => None,
            })
            .collect();
        failed.sort();
        for (msg, msrp_code) in failed {
            if let Some(p) = sess.in_flight.remove(&msg) {
                let code = gsip::sip_status_of_msrp(msrp_code);
                settle(&self.stats, fields.clone(), p, code, io);
            }
        }
        let mut rest: Vec<(MsgId, Pending)> = sess.in_flight.drain().collect();
        rest.sort_by_key(|(m, _)| *m);
        for (_, p) in rest {
            settle(&self.stats, fields.clone(), p, how.code, io);
        }
        for q in sess.queue.drain() {
            self.stats.gw_queued.fetch_sub(1, Relaxed);
            settle(&self.stats, fields.clone(), q.owner, how.code, io);
        }
        if let (true, Some(conn)) = (sess.opened, sess.conn) {
            io.outs.push(Out::MsrpClose { conn });
        }
        // The SIP side.
        if let Some(d) = &sess.dialog {
            self.by_call.remove(&d.call_id[..]);
        } else if let Some(invite) = &sess.invite {
            let mut h = [EMPTY_HEADER; MAX_HEADERS];
            if let Some(c) = parse_sip(invite, &mut h).and_then(|m| m.call_id()) {
                self.by_call.remove(c);
            }
        }
        if how.tell_sip {
            if sess.dialog.is_some() {
                // Put back for a moment: the BYE is written by the dialog.
                self.sessions.insert(key.into(), sess);
                self.send_in_dialog(key, "BYE", io);
                self.sessions.remove(key);
            } else if let (Some(invite), Some(tx)) = (sess.invite.take(), sess.invite_tx) {
                // Still inviting: CANCEL once a provisional came (RFC 3261 §9.1); a 2xx that
                // crosses it gets ACK and BYE.
                if sess.provisional {
                    self.cancel(&invite, io);
                }
                self.by_tx.insert(tx, TxUse::Abandoned { invite });
            }
        }
        let mut f = fields;
        f.cause = how.cause;
        io.effects.push(Effect::Event {
            event: GwEvent::SessionEnded,
            fields: f,
        });
        self.publish();
    }

    fn cancel(&mut self, invite: &[u8], io: &mut Io<'_>) {
        let mut h = [EMPTY_HEADER; MAX_HEADERS];
        let Some(inv) = parse_sip(invite, &mut h) else {
            return;
        };
        let mut out = Vec::new();
        if !gsip::write_cancel(&inv, &mut out) {
            return;
        }
        if let Ok((way, _)) = self.way(&gsip_target(&inv), 0) {
            let _ = self.dispatch(&way, out, Some(TxUse::Other), io);
        }
    }

    // ----- timers -----

    /// Puts the session's one wheel entry at its earliest deadline.
    fn rearm(&mut self, key: &[u8]) {
        let Some(sess) = self.sessions.get_mut(key) else {
            return;
        };
        let mut d = sess.next_deadline(&self.cfg);
        if let Some(t) = self.endpoint.session_timeout(&sess.msrp_id) {
            d = d.min(t);
        }
        match sess.timer {
            Some((_, at)) if at == d => return,
            Some((id, _)) => {
                self.wheel.cancel(id);
            }
            None => {}
        }
        let id = self.wheel.insert(d, key.into());
        sess.timer = Some((id, d));
    }

    /// Does what is due at `io.now_ms`.
    pub fn handle_timeout(&mut self, io: &mut Io<'_>) {
        let mut fired = Vec::new();
        self.wheel.advance(io.now_ms, &mut fired);
        for e in fired {
            if let Some(s) = self.sessions.get_mut(&e.value) {
                if s.timer.map(|(id, _)| id) == Some(e.id) {
                    s.timer = None;
                }
            }
            self.on_timer(&e.value, io);
        }
    }

    fn on_timer(&mut self, key: &[u8], io: &mut Io<'_>) {
        let now = io.now_ms;
        let s = 1000u64;
        let Some(sess) = self.sessions.get_mut(key) else {
            return;
        };
        if now
            >= sess
                .created_ms
                .saturating_add(self.cfg.session_lifetime * s)
        {
            self.end(key, Ending::new("lifetime", 480), io);
            return;
        }
        if now
            >= sess
                .last_sip_ms
                .max(sess.last_msrp_ms)
                .saturating_add(self.cfg.idle_timeout * s)
        {
            self.end(key, Ending::new("idle", 480), io);
            return;
        }
        if sess.state != State::Up
            && now >= sess.created_ms.saturating_add(self.cfg.setup_timeout * s)
        {
            self.setup_failed(key, 408, b"Request Timeout", io);
            return;
        }
        if let Some(u) = &mut sess.unacked {
            if now >= u.give_up_ms {
                // No ACK for our 2xx (RFC 3261 §13.3.1.4): the dialog is ended.
                sess.unacked = None;
                self.end(key, Ending::new("no_ack", 480), io);
                return;
            }
            if now >= u.next_ms {
                io.outs.push(u.hop.send(u.bytes.clone()));
                u.interval_ms = (u.interval_ms * 2).min(self.cfg.t2_ms);
                u.next_ms = now + u.interval_ms;
            }
        }
        let fields = self.fields(key);
        let sess = self.sessions.get_mut(key).expect("looked up above");
        let mut late: Vec<Pending> = sess
            .queue
            .expire(now)
            .into_iter()
            .map(|q| q.owner)
            .collect();
        for _ in &late {
            self.stats.gw_queued.fetch_sub(1, Relaxed);
        }
        let due = |p: &Pending| matches!(p.settle, Settle::Sync { deadline_ms, .. } if deadline_ms <= now);
        let held = sess.queue.take_where(due);
        for _ in &held {
            self.stats.gw_queued.fetch_sub(1, Relaxed);
        }
        late.extend(held.into_iter().map(|q| q.owner));
        for p in sess.in_flight.values_mut() {
            if due(p) {
                // Answered 408 now; the MSRP side's late outcome changes nothing.
                late.push(p.clone());
                p.settle = Settle::Answered;
            }
        }
        for p in late {
            settle(&self.stats, fields.clone(), p, 408, io);
        }
        let msrp_id = sess.msrp_id.clone();
        let keepalive = self.cfg.keepalive > 0
            && sess.state == State::Up
            && now >= sess.last_sent_ms.saturating_add(self.cfg.keepalive * s);
        if self
            .endpoint
            .session_timeout(&msrp_id)
            .is_some_and(|t| t <= now)
        {
            let mut events = Vec::new();
            self.endpoint
                .handle_session_timeout(&msrp_id, now, &mut events);
            self.on_endpoint_events(events, io);
        }
        if keepalive {
            self.flush(key, true, io);
        }
        self.rearm(key);
    }

    // ----- route actions and control -----

    /// `send_message`: a MESSAGE of our own, in a client transaction whose outcome is only
    /// logged.
    pub fn send_message(&mut self, req: &SendMessage<'_>, io: &mut Io<'_>) -> SendMessageResult {
        let (way, route) = match self.way(req.ruri, req.body.len()) {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(
                    shard = self.me,
                    "send_message: cannot send to `{}`: {e}",
                    text(req.ruri)
                );
                return SendMessageResult::Error;
            }
        };
        let call_id = self.mint.call_id();
        let tag = self.mint.call_id();
        let branch = self.mint.branch();
        let routes: Vec<&[u8]> = route.iter().map(Vec::as_slice).collect();
        let mut out = Vec::with_capacity(req.body.len() + 512);
        sip_write::write_request(
            &Request {
                method: "MESSAGE",
                uri: req.ruri,
                from: &gsip::name_addr(req.from),
                from_tag: tag.as_bytes(),
                to: &gsip::name_addr(req.to),
                call_id: call_id.as_bytes(),
                cseq: 1,
                via: way.via,
                branch: branch.as_bytes(),
                route: &routes,
                contact: None,
                extra: &[],
                content_type: Some(req.content_type),
                body: req.body,
            },
            &mut out,
        );
        match self.dispatch(&way, out, Some(TxUse::Other), io) {
            Ok(()) => SendMessageResult::Sent,
            Err(_) => SendMessageResult::Error,
        }
    }

    /// `gw.list_sessions` on this shard: at most `limit` sessions, by key.
    pub fn list(&self, now_ms: u64, limit: usize) -> Vec<Value> {
        let mut v: Vec<(&Box<[u8]>, &GwSession)> = self.sessions.iter().collect();
        v.sort_by(|a, b| a.0.cmp(b.0));
        v.into_iter()
            .take(limit)
            .map(|(k, s)| s.listing(k, self.me, now_ms))
            .collect()
    }

    /// `gw.end_session`: ends the session `key` if this shard holds it.
    pub fn end_session(&mut self, key: &[u8], io: &mut Io<'_>) -> bool {
        if !self.sessions.contains_key(key) {
            return false;
        }
        self.end(key, Ending::new("ended_by_control", 480), io);
        true
    }

    /// `gw.stats` on this shard.
    pub fn stats_json(&self) -> Value {
        let queued: usize = self.sessions.values().map(|s| s.queue.len()).sum();
        let in_flight: usize = self.sessions.values().map(|s| s.in_flight.len()).sum();
        let up = self
            .sessions
            .values()
            .filter(|s| s.state == State::Up)
            .count();
        json!({
            "sessions": self.sessions.len(),
            "sessions_up": up,
            "queued": queued,
            "in_flight": in_flight,
            "transactions": self.by_tx.len(),
        })
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
