//! The MSRP side of sessions: frames in, connections closed, what the MSRP sessions report,
//! and MSRP messages sent on as SIP MESSAGEs with their REPORTs.

use super::*;

impl Gateway {
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
        let unbound: Vec<Key> = self
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
    pub(super) fn connection_lost(&mut self, key: &[u8], io: &mut Io<'_>) {
        match self.sessions.get(key) {
            Some(s) if !s.msrp_seen => {
                self.setup_failed(key, 503, b"MSRP connection failed", io);
            }
            Some(_) => self.end(key, Ending::new("transport", 480), io),
            None => {}
        }
    }

    pub(super) fn on_endpoint_events(&mut self, events: Vec<EndpointEvent>, io: &mut Io<'_>) {
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
                        received_ms: io.now_ms,
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
    pub(super) fn settle_msg(&mut self, key: &[u8], msg: MsgId, msrp_code: u16, io: &mut Io<'_>) {
        let Some(sess) = self.sessions.get_mut(key) else {
            return;
        };
        let Some(p) = sess.in_flight.remove(&msg) else {
            return;
        };
        let waiting = sess.state == State::Up && !sess.queue.is_empty();
        let code = gsip::sip_status_of_msrp(msrp_code);
        let fields = self.fields(key);
        settle(&self.stats, fields, p, code, io);
        if waiting {
            // Room on the MSRP side again: what waited for it goes out.
            self.flush(key, false, io);
        }
    }

    /// An MSRP message becomes a SIP MESSAGE with the session's coordinates.
    pub(super) fn send_as_sip(
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
        let (content_type, body) = match self.cfg.cpim {
            Cpim::Wrap if cpim::is_cpim(content_type) => {
                cpim::unwrap(body).unwrap_or((content_type, body))
            }
            _ => (content_type, body),
        };
        let (ruri, from, to) = (
            sess.msg_ruri.clone(),
            sess.msg_from.clone(),
            sess.msg_to.clone(),
        );
        let (way, route) = match self.way(&ruri, body.len()) {
            Ok(w) => w,
            Err(e) => {
                if let Some(n) = self.refusal() {
                    tracing::warn!(
                        shard = self.me,
                        "gateway: cannot send a MESSAGE to `{}`: {e} ({n} refusals so far)",
                        text(&ruri)
                    );
                }
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
    pub(super) fn report_inbound(&mut self, inb: &Inbound, sip_code: u16, io: &mut Io<'_>) {
        if (200..300).contains(&sip_code) {
            self.stats.gw_delivered.fetch_add(1, Relaxed);
            io.effects.push(Effect::Delivered {
                kind: LatencyKind::GwMsrpToSip,
                after_ms: io.now_ms.saturating_sub(inb.received_ms),
            });
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
}
