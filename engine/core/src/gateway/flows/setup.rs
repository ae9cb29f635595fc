//! Sessions set up from either side: a MESSAGE for a key with no session (our INVITE), an
//! MSRP user's INVITE (our answer); and how requests of ours leave (at once, or once a name
//! is resolved).

use super::*;

impl Gateway {
    // ----- msg_to_msrp -----

    /// A SIP MESSAGE for the session `m.key`. `waiting` names the run holding the MESSAGE
    /// (its shard and token) when the action is `sync`. Returns the result and the MESSAGE's
    /// answer, or `None` when the answer waits for the MSRP side (an [`Effect::Settle`]).
    pub fn msg_to_msrp(
        &mut self,
        mut m: MessageIn,
        waiting: Option<(usize, Token)>,
        io: &mut Io<'_>,
    ) -> Option<(MsgToMsrpResult, SipReply)> {
        if m.key.is_empty() {
            return Some((MsgToMsrpResult::Error, SipReply::code(500)));
        }
        if self.cfg.cpim == Cpim::Wrap && !cpim::is_cpim(&m.content_type) {
            m.body = cpim::wrap(&m.from, &m.to, &m.content_type, &m.body);
            m.content_type = cpim::CPIM.to_vec();
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
        let key: Key = m.key.clone().into();
        if !self.sessions.contains_key(&key) {
            if let Err(r) = self.offer(&key, &m, io) {
                return Some(r);
            }
        }
        let pending = Pending {
            call_id: m.call_id.into(),
            settle,
            received_ms: io.now_ms,
        };
        let sess = self.sessions.get_mut(&key).expect("made above");
        sess.last_sip_ms = io.now_ms;
        let room = (sess.in_flight.len() as u64) < self.cfg.max_in_flight && sess.queue.is_empty();
        if sess.state == State::Up && room {
            self.send_msrp(&key, &m.content_type, &m.body, pending, io);
        } else {
            let item = crate::gateway::queue::Queued {
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
    pub(super) fn offer(
        &mut self,
        key: &Key,
        m: &MessageIn,
        io: &mut Io<'_>,
    ) -> Result<(), (MsgToMsrpResult, SipReply)> {
        let error = |code| (MsgToMsrpResult::Error, SipReply::code(code));
        if self.sessions.len() as u64 >= self.cfg.max_sessions {
            if let Some(n) = self.refusal() {
                tracing::warn!(
                    shard = self.me,
                    "gateway: the shard holds its maximum of {} sessions; new ones are \
                     refused ({n} refusals so far)",
                    self.cfg.max_sessions
                );
            }
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
            if let Some(n) = self.refusal() {
                tracing::warn!(
                    shard = self.me,
                    "gateway: cannot send the INVITE for `{}`: {e} ({n} refusals so far)",
                    text(&m.ruri)
                );
            }
            error(503)
        })?;
        let (msrp_id, _, body) =
            self.describe(local, &types_of(&m.types), Setup::Actpass, io.now_ms);
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
        self.by_msrp.insert(id.clone(), key.clone());
        self.by_call
            .insert(call_id.clone().into_bytes().into(), key.clone());
        self.sessions.insert(key.clone(), Box::new(s));
        // The session exists before the INVITE leaves: its transaction (made now, or once the
        // Request-URI's name is resolved) is recorded in it.
        let use_ = TxUse::Invite { key: key.clone() };
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
    pub(super) fn dispatch(
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

    pub(super) fn send_to(
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
    pub(super) fn fail_unsent(&mut self, use_: Option<TxUse>, io: &mut Io<'_>) {
        match use_ {
            Some(TxUse::Invite { key }) => {
                self.setup_failed(&key, 503, b"Service Unavailable", io);
            }
            Some(TxUse::Message(inb)) => self.report_inbound(&inb, 503, io),
            _ => {}
        }
    }

    /// Sends a message on an up session.
    pub(super) fn send_msrp(
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
    pub(super) fn flush(&mut self, key: &[u8], bind: bool, io: &mut Io<'_>) {
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
        while (sess.in_flight.len() as u64) < self.cfg.max_in_flight {
            let Some(q) = sess.queue.pop() else {
                break;
            };
            self.stats.gw_queued.fetch_sub(1, Relaxed);
            let id = ms.send(io.now_ms, &q.content_type, &q.body, &mut frames);
            sess.in_flight.insert(id, q.owner);
        }
        sess.last_sent_ms = io.now_ms;
        write_frames(&self.stats, conn, frames, io);
    }

    /// A new MSRP session: its id, our `a=path` for it, and our SDP (an offer or an answer, by
    /// `setup`) listing `types` as the `cpim` setting says.
    fn describe(
        &mut self,
        local: std::net::SocketAddr,
        types: &[&[u8]],
        setup: Setup,
        now_ms: u64,
    ) -> (String, String, Vec<u8>) {
        let msrp_id = self.mint.new_id();
        let path = format!("msrp://{local}/{msrp_id};tcp");
        let (accept, wrapped, _) = advertised(self.cfg.cpim, types);
        let mut body = Vec::with_capacity(256);
        sdp::write(
            &sdp::Description {
                address: local.ip(),
                port: local.port(),
                path: path.as_bytes(),
                accept_types: &accept,
                accept_wrapped_types: &wrapped,
                max_size: Some(self.cfg.max_message_size.0),
                setup,
                session_id: now_ms,
            },
            &mut body,
        );
        (msrp_id, path, body)
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
        if !common(self.cfg.cpim, &ours, &offer.accept_types) {
            return refuse;
        }
        let Some(local) = self.msrp_local() else {
            return (MsrpAnswerResult::Error, SipReply::code(500));
        };
        let key: Key = a.key.clone().into();
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
        let setup = if we_connect {
            Setup::Active
        } else {
            Setup::Passive
        };
        let (msrp_id, path, body) = self.describe(local, &ours, setup, io.now_ms);
        let (_, _, takes) = advertised(self.cfg.cpim, &ours);
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
            s.unacked = Some(Box::new(Unacked {
                bytes: response.clone(),
                hop,
                next_ms: io.now_ms + t1,
                interval_ms: t1,
                give_up_ms: io.now_ms + 64 * t1,
            }));
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
        .accepting(&takes);
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
        self.sessions.insert(key.clone(), Box::new(s));
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
}
