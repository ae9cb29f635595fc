//! How sessions end: failed setups, every ending with its outcomes, and the timers that
//! end them (one wheel entry per session).

use super::*;

impl Gateway {
    // ----- endings -----

    pub(super) fn fields(&self, key: &[u8]) -> EventFields {
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
    pub(super) fn setup_failed(&mut self, key: &[u8], code: u16, reason: &[u8], io: &mut Io<'_>) {
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
    pub(super) fn end(&mut self, key: &[u8], how: Ending, io: &mut Io<'_>) {
        let fields = self.fields(key);
        let Some((key_rc, mut sess)) = self.sessions.remove_entry(key) else {
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
                self.sessions.insert(key_rc, sess);
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

    pub(super) fn cancel(&mut self, invite: &[u8], io: &mut Io<'_>) {
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
    pub(super) fn rearm(&mut self, key: &[u8]) {
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
        let Some((key_rc, _)) = self.sessions.get_key_value(key) else {
            return;
        };
        let id = self.wheel.insert(d, key_rc.clone());
        let Some(sess) = self.sessions.get_mut(key) else {
            return;
        };
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

    pub(super) fn on_timer(&mut self, key: &[u8], io: &mut Io<'_>) {
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
}
