//! The SIP side of sessions: what our transactions report, the answers to our INVITE,
//! ACK, BYE and CANCEL in dialogs, and the far side's requests in them.

use super::*;

impl Gateway {
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

    pub(super) fn on_invite_response(
        &mut self,
        key: &[u8],
        code: u16,
        bytes: &[u8],
        io: &mut Io<'_>,
    ) {
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
            Ok(a) if !a.tls && common(self.cfg.cpim, &ours, &a.accept_types) => a,
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
        .accepting(&advertised(self.cfg.cpim, &ours).2);
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
    pub(super) fn end_orphan_dialog(&mut self, invite: &[u8], response: &[u8], io: &mut Io<'_>) {
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
    pub(super) fn send_in_dialog(&mut self, key: &[u8], method: &str, io: &mut Io<'_>) {
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
}
