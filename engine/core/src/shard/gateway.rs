//! The gateway service inside the shard core: its inputs (MSRP frames, connections that
//! close, the SIP requests and responses of its transactions and dialogs), the operations
//! other shards send it, and what it asks back ([`Effect`]s: answers to waiting runs, event
//! routes). The sessions themselves live in [`crate::gateway::Gateway`].

use super::boundary::{Out, RemoteOp, Token, Work};
use super::latency::LatencyKind;
use super::{Cx, ShardCore};
use crate::gateway::{self, Effect, EventFields, Gateway, GwOp, Io, SipReply};
use crate::msrp::endpoint::session_id_of;
use crate::route::{ActionResult, GwEvent, LogLevel, MsgToMsrpResult, MsrpAnswerResult, ReplyMode};
use crate::sip_write::{self, reason_phrase};
use crate::transaction::{Hop, RequestMatch, Timers, TxId};
use crate::transport::{MsrpConn, RxContext, Transport};
use sipshard_parser::sip::{self, Framing, Message, EMPTY_HEADER};
use sipshard_parser::Status;
use std::sync::atomic::Ordering::Relaxed;

impl ShardCore {
    /// Starts the gateway on this shard: MSRP sessions on `net`'s listeners, ids minted from
    /// `seed` (the driver draws it from the operating system), transactions for the requests
    /// it takes, and routing by the tags it mints.
    pub fn with_gateway(mut self, net: gateway::Net, seed: [u8; 32], now_ms: u64) -> ShardCore {
        let cfg = self.shared.with(|l, _| l.config.gateway.clone());
        self.transactions.set_timers(Timers {
            t1_ms: cfg.t1_ms,
            t2_ms: cfg.t2_ms,
            t4_ms: cfg.t4_ms,
        });
        self.transactions.set_max(cfg.max_transactions as usize);
        self.own.route_by_tags();
        self.gw_generation = self.shared.generation();
        self.gateway = Some(Gateway::new(
            self.own.me(),
            &cfg,
            net,
            seed,
            self.shared.hasher().clone(),
            self.stats.clone(),
            now_ms,
        ));
        self
    }

    /// Gateway sessions held now (0 without a gateway).
    pub fn gateway_sessions(&self) -> usize {
        self.gateway.as_ref().map_or(0, Gateway::len)
    }

    /// A whole MSRP frame read on `conn`, which this shard holds. Returns whether it was
    /// processed here (`false`: handed to the shard its To-Path's session id names).
    pub fn on_msrp_frame(
        &mut self,
        now_ms: u64,
        conn: MsrpConn,
        bytes: Vec<u8>,
        outs: &mut Vec<Out>,
    ) -> bool {
        let owner = to_path_session(&bytes)
            .and_then(|id| self.own.of_session_id(id))
            .unwrap_or(self.own.me());
        if owner != self.own.me() {
            outs.push(Out::Shard {
                to: owner,
                work: Work::Msrp { conn, bytes },
            });
            return false;
        }
        self.latency.set_kind(LatencyKind::Msrp);
        self.with_config(now_ms, |core, cx| {
            core.with_gw(cx, outs, |gw, io| gw.on_msrp_frame(conn, &bytes, io))
        });
        true
    }

    /// An MSRP connection this shard holds closed or failed: every shard with a session on it
    /// is told.
    pub fn on_msrp_closed(&mut self, now_ms: u64, conn: MsrpConn, outs: &mut Vec<Out>) {
        for to in (0..self.own.shards()).filter(|&s| s != self.own.me()) {
            outs.push(Out::Shard {
                to,
                work: Work::MsrpClosed { conn },
            });
        }
        self.with_config(now_ms, |core, cx| {
            core.with_gw(cx, outs, |gw, io| gw.on_msrp_closed(conn, io))
        });
    }

    /// The driver's answer to an [`Out::Resolve`] of this shard: the addresses (none: the
    /// name did not resolve).
    pub fn on_resolved(
        &mut self,
        now_ms: u64,
        name: &str,
        port: Option<u16>,
        addrs: Vec<std::net::SocketAddr>,
        outs: &mut Vec<Out>,
    ) {
        self.with_config(now_ms, |core, cx| {
            core.with_gw(cx, outs, |gw, io| gw.on_resolved(name, port, addrs, io))
        });
    }

    /// Runs `f` on the gateway with this turn's [`Io`], then what it asked for.
    pub(super) fn with_gw(
        &mut self,
        cx: Cx<'_>,
        outs: &mut Vec<Out>,
        f: impl FnOnce(&mut Gateway, &mut Io<'_>),
    ) {
        if self.gateway.is_none() {
            return;
        }
        if self.gw_generation != cx.generation {
            // A reloaded [gateway] applies from now on (the listeners stay as they were).
            let c = &cx.loaded.config.gateway;
            if let Some(gw) = self.gateway.as_mut() {
                gw.set_config(c);
            }
            self.transactions.set_timers(Timers {
                t1_ms: c.t1_ms,
                t2_ms: c.t2_ms,
                t4_ms: c.t4_ms,
            });
            self.transactions.set_max(c.max_transactions as usize);
            self.gw_generation = cx.generation;
        }
        self.gw_call(cx.now_ms, outs, f);
        self.drain_effects(cx, outs);
    }

    /// Runs `f` on the gateway with an [`Io`] of the time and `outs`; what it asks of the
    /// core waits in `effects` (a route run calling the gateway must not run routes inside
    /// itself: the caller drains them once the run is over). `None` without a gateway.
    pub(super) fn gw_call<R>(
        &mut self,
        now_ms: u64,
        outs: &mut Vec<Out>,
        f: impl FnOnce(&mut Gateway, &mut Io<'_>) -> R,
    ) -> Option<R> {
        let gw = self.gateway.as_mut()?;
        let mut io = Io {
            now_ms,
            txs: &mut self.transactions,
            outs,
            effects: &mut self.effects,
        };
        Some(f(gw, &mut io))
    }

    /// Carries out what the gateway asked for, until it asks nothing more (an event route may
    /// call the gateway again).
    pub(super) fn drain_effects(&mut self, cx: Cx<'_>, outs: &mut Vec<Out>) {
        loop {
            let effects = std::mem::take(&mut self.effects);
            if effects.is_empty() {
                return;
            }
            for e in effects {
                match e {
                    Effect::Settle {
                        from,
                        token,
                        result,
                        reply,
                    } => {
                        let result = Some(ActionResult::MsgToMsrp(result));
                        if from == self.own.me() {
                            self.resume(cx, token, result, Some(reply), outs);
                        } else {
                            outs.push(Out::Shard {
                                to: from,
                                work: Work::Done {
                                    token,
                                    result,
                                    reply: Some(reply),
                                },
                            });
                        }
                    }
                    Effect::Event { event, fields } => self.run_gw_event(cx, event, &fields, outs),
                    Effect::Delivered { kind, after_ms } => {
                        self.latency.record_delivery(kind, after_ms)
                    }
                }
            }
        }
    }

    /// A gateway operation another shard sent: its result and the reply for the request, or
    /// `None` when the answer comes later (a `sync` MESSAGE).
    pub(super) fn gateway_op(
        &mut self,
        cx: Cx<'_>,
        op: GwOp,
        token: Token,
        from: usize,
        outs: &mut Vec<Out>,
    ) -> Option<(ActionResult, SipReply)> {
        if self.gateway.is_none() {
            let r = match op {
                GwOp::MsgToMsrp(_) => ActionResult::MsgToMsrp(MsgToMsrpResult::Error),
                GwOp::MsrpAnswer(_) => ActionResult::MsrpAnswer(MsrpAnswerResult::Error),
            };
            return Some((r, SipReply::code(500)));
        }
        let mut r = None;
        self.with_gw(cx, outs, |gw, io| {
            r = match op {
                GwOp::MsgToMsrp(m) => {
                    let waiting = (m.mode == ReplyMode::Sync).then_some((from, token));
                    gw.msg_to_msrp(*m, waiting, io)
                        .map(|(res, rep)| (ActionResult::MsgToMsrp(res), rep))
                }
                GwOp::MsrpAnswer(a) => {
                    let (res, rep) = gw.msrp_answer(*a, io);
                    Some((ActionResult::MsrpAnswer(res), rep))
                }
            }
        });
        r
    }

    /// Sends an operation on a key another shard owns, for a run that suspends on it.
    pub(super) fn send_gateway_op(
        &mut self,
        cx: Cx<'_>,
        owner: usize,
        op: GwOp,
        timeout_ms: u64,
        outs: &mut Vec<Out>,
    ) -> Token {
        let token = self
            .remote
            .reserve_for(cx.now_ms, owner, op.name(), timeout_ms);
        self.stats.cross_shard_ops.fetch_add(1, Relaxed);
        outs.push(Out::Shard {
            to: owner,
            work: Work::Remote {
                token,
                from: self.own.me(),
                generation: cx.generation,
                op: RemoteOp::Gateway(op),
            },
        });
        token
    }

    /// With the gateway on, a request that has a server transaction is its transaction's (a
    /// retransmission is answered again from it, never routed twice), an ACK is the
    /// transaction layer's or a dialog's, and a request in one of the gateway's dialogs goes to
    /// the gateway. Returns whether it was handled; if not, the route runs. Transactions are
    /// made only for requests the gateway or a route answers (`server_tx`), so what a route
    /// forwards statelessly stays stateless, retransmissions included.
    pub(super) fn gw_request(
        &mut self,
        cx: Cx<'_>,
        msg: &Message<'_, '_>,
        rx: RxContext,
        outs: &mut Vec<Out>,
    ) -> bool {
        if msg.method() == Some(b"ACK") || self.transactions.server_for(msg).is_some() {
            let _ = self.server_tx(cx.now_ms, msg, &rx, outs);
            self.drain_effects(cx, outs);
            return true;
        }
        if let Some(tag) = msg.to_tag() {
            let ours = self.own.is_minted_tag(tag);
            let known = match (&self.gateway, msg.call_id()) {
                (Some(g), Some(c)) => g.has_dialog(c),
                _ => false,
            };
            if ours || known {
                let Ok(tx) = self.server_tx(cx.now_ms, msg, &rx, outs) else {
                    return true;
                };
                let mut handled = false;
                self.with_gw(cx, outs, |gw, io| {
                    handled = gw.on_dialog_request(msg, &rx, tx, ours, io);
                });
                if handled {
                    return true;
                }
            }
        }
        if msg.method() == Some(b"CANCEL") && self.transactions.invite_for_cancel(msg).is_some() {
            // The INVITEs the gateway takes are answered at once; a CANCEL that matches one
            // is answered and changes nothing (RFC 3261 §9.2).
            self.reply_code(cx.now_ms, msg, &rx, 200, None, outs);
            return true;
        }
        false
    }

    /// The server transaction of `msg`, made now if it has none (a retransmission of one that
    /// exists is answered from it; an ACK goes to its transaction or its dialog). `Err` when
    /// the layer holds its maximum: the request was answered 503 here.
    pub(super) fn server_tx(
        &mut self,
        now_ms: u64,
        msg: &Message<'_, '_>,
        rx: &RxContext,
        outs: &mut Vec<Out>,
    ) -> Result<Option<TxId>, ()> {
        let hop = match (rx.transport, rx.conn) {
            (Transport::Tcp, Some(c)) => Hop::Stream(c),
            (Transport::Tcp, None) => return Ok(None),
            (Transport::Udp, _) => Hop::Datagram {
                listen: rx.listen,
                dest: sip_write::udp_response_destination(msg.top_via().as_ref(), rx.source),
            },
        };
        let mut events = Vec::new();
        let m = self
            .transactions
            .on_request(now_ms, msg, hop, outs, &mut events);
        self.stats
            .sip_transactions
            .store(self.transactions.len() as u64, Relaxed);
        if !events.is_empty() {
            self.gw_call(now_ms, outs, |gw, io| {
                for e in events {
                    gw.on_tx_event(e, io);
                }
            });
        }
        match m {
            RequestMatch::New(tx) | RequestMatch::Retransmission(tx) => Ok(Some(tx)),
            RequestMatch::Ack | RequestMatch::Stateless => Ok(None),
            RequestMatch::Full => {
                let mut out = Vec::new();
                sip_write::write_response(
                    msg,
                    rx.source,
                    503,
                    b"Service Unavailable",
                    self.tags.fresh(),
                    &[("Retry-After", b"5")],
                    &mut out,
                );
                outs.extend(Out::to_sender(rx, msg.top_via().as_ref(), out));
                Err(())
            }
        }
    }

    /// Answers `msg` with `code` (and `Retry-After`), through its server transaction when it
    /// has one.
    pub(super) fn reply_code(
        &mut self,
        now_ms: u64,
        msg: &Message<'_, '_>,
        rx: &RxContext,
        code: u16,
        retry_after: Option<u32>,
        outs: &mut Vec<Out>,
    ) {
        let mut out = Vec::with_capacity(384);
        let mut ra = Vec::new();
        let mut headers: Vec<(&str, &[u8])> = Vec::new();
        if let Some(s) = retry_after {
            crate::wire::dec(&mut ra, s);
            headers.push(("Retry-After", &ra));
        }
        let to = sip_write::Answering::new(msg, rx.source);
        sip_write::write_answer(
            &to,
            code,
            reason_phrase(code).as_bytes(),
            self.tags.fresh(),
            &headers,
            None,
            &mut out,
        );
        self.respond_to(now_ms, &to, rx, code, out, outs);
    }

    /// Sends the gateway's answer to the request a run is routing.
    pub(super) fn send_gw_reply(
        &mut self,
        now_ms: u64,
        msg: &Message<'_, '_>,
        rx: &RxContext,
        reply: SipReply,
        outs: &mut Vec<Out>,
    ) {
        match reply.response {
            Some(bytes) => {
                let to = sip_write::Answering::new(msg, rx.source);
                self.respond_to(now_ms, &to, rx, reply.code, bytes, outs);
            }
            None => self.reply_code(now_ms, msg, rx, reply.code, reply.retry_after, outs),
        }
    }

    /// Sends a response to `msg`: through its server transaction while that takes one (so a
    /// retransmission is answered again), else straight to the sender (RFC 3261 §18.2.2).
    pub(super) fn respond_to(
        &mut self,
        now_ms: u64,
        to: &sip_write::Answering<'_, '_, '_>,
        rx: &RxContext,
        code: u16,
        bytes: Vec<u8>,
        outs: &mut Vec<Out>,
    ) {
        let msg = to.req;
        if self.gateway.is_some() && msg.method() != Some(b"ACK") {
            // Made now when the request has none, so that its retransmissions get this
            // answer again.
            let tx = match self.transactions.server_for(msg) {
                Some(tx) => Some(tx),
                None => self.server_tx(now_ms, msg, rx, outs).ok().flatten(),
            };
            if let Some(tx) = tx {
                let mut events = Vec::new();
                if self
                    .transactions
                    .respond(now_ms, tx, code, bytes.clone(), outs, &mut events)
                {
                    return;
                }
            }
        }
        outs.extend(Out::to_sender(rx, to.top_via.as_ref(), bytes));
    }

    /// Runs a `gw:*` event route on a MESSAGE standing for the session (From, To and
    /// Request-URI of the side that started it), with the event's fields as `$gw(...)`.
    fn run_gw_event(
        &mut self,
        cx: Cx<'_>,
        event: GwEvent,
        fields: &EventFields,
        outs: &mut Vec<Out>,
    ) {
        let Some(route) = cx.loaded.program.gw_event(event) else {
            return;
        };
        let bytes = event_message(fields);
        let mut headers = [EMPTY_HEADER; super::MAX_HEADERS];
        let msg = match sip::parse(&bytes, &mut headers, Framing::Datagram) {
            Ok(Status::Complete(m)) => m,
            _ => {
                self.log(
                    LogLevel::Warn,
                    "a gateway event's URIs do not make a SIP message; its route does not run",
                );
                return;
            }
        };
        let unspecified = std::net::SocketAddr::from(([0, 0, 0, 0], 0));
        let rx = RxContext {
            listen: 0,
            transport: Transport::Udp,
            source: unspecified,
            local: unspecified,
            conn: None,
            received_ms: cx.now_ms,
        };
        self.run_event_route(cx, &msg, rx, route, fields, outs);
    }
}

/// The message an event route runs on.
fn event_message(f: &EventFields) -> Vec<u8> {
    let uri = |u: &[u8]| -> Vec<u8> {
        let u = gateway_uri(u);
        if u.is_empty() {
            b"sip:unknown@invalid".to_vec()
        } else {
            u.to_vec()
        }
    };
    let mut b = Vec::with_capacity(256);
    b.extend_from_slice(b"MESSAGE ");
    b.extend_from_slice(&uri(&f.ruri));
    b.extend_from_slice(b" SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKgwevent\r\nFrom: <");
    b.extend_from_slice(&uri(&f.from_uri));
    b.extend_from_slice(b">;tag=gw\r\nTo: <");
    b.extend_from_slice(&uri(&f.to_uri));
    b.extend_from_slice(b">\r\nCall-ID: gw-event-");
    b.extend(
        f.key
            .iter()
            .map(|&c| if c.is_ascii_alphanumeric() { c } else { b'.' }),
    );
    b.extend_from_slice(b"\r\nCSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n");
    b
}

/// A URI as the gateway keeps it, without angle brackets.
fn gateway_uri(u: &[u8]) -> &[u8] {
    let u = u.trim_ascii();
    u.strip_prefix(b"<")
        .and_then(|r| r.strip_suffix(b">"))
        .unwrap_or(u)
}

/// The session id of the first To-Path URI of a frame, read off its head without a full
/// parse (the owner parses it).
fn to_path_session(bytes: &[u8]) -> Option<&[u8]> {
    // Built once: this runs for every MSRP frame.
    static END: std::sync::OnceLock<memchr::memmem::Finder<'static>> = std::sync::OnceLock::new();
    let end = END.get_or_init(|| memchr::memmem::Finder::new(b"\r\n\r\n"));
    let head = &bytes[..end.find(bytes).unwrap_or(bytes.len())];
    let line = head
        .split(|&c| c == b'\n')
        .find_map(|l| l.strip_prefix(b"To-Path:"))?;
    let first = line.trim_ascii().split(|&c| c == b' ').next()?;
    session_id_of(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_to_path_session_of_a_frame_is_read_off_its_head() {
        let f = b"MSRP t1 SEND\r\nTo-Path: msrp://192.0.2.1:2855/1xabc;tcp msrp://r/2;tcp\r\nFrom-Path: msrp://h/x;tcp\r\n-------t1$\r\n";
        assert_eq!(to_path_session(f), Some(&b"1xabc"[..]));
        assert_eq!(to_path_session(b"MSRP t1 SEND\r\nFrom-Path: x\r\n"), None);
    }

    #[test]
    fn an_event_message_parses_whatever_the_key() {
        let f = EventFields {
            key: b"sip:a@h|sip:b@h".to_vec(),
            from_uri: b"sip:a@h".to_vec(),
            to_uri: b"<sip:b@h>".to_vec(),
            ..EventFields::default()
        };
        let bytes = event_message(&f);
        let mut h = [EMPTY_HEADER; 16];
        let m = sip::parse(&bytes, &mut h, Framing::Datagram)
            .unwrap()
            .complete()
            .unwrap();
        assert_eq!(m.from().unwrap().uri.raw, b"sip:a@h");
        assert_eq!(m.to().unwrap().uri.raw, b"sip:b@h");
    }
}
