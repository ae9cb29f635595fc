//! `gw-idle-sessions`: many gateway sessions, created as cheaply as possible and left idle, to
//! measure what one costs the server (bench/e2e/gateway-idle.sh reads its RSS around a run).
//!
//! Call `seq` is `carol<seq>`'s INVITE to `dave<seq>` with an MSRP offer (`a=setup:actpass`), at
//! `--rate`, `--sessions` of them. `msrp_answer` answers 200 (passive: it waits for carol to
//! connect); we ACK, so the gateway stops retransmitting the 200 and drops the copy it keeps for
//! that, and connect nothing. Such a session is ended by the gateway's set-up timeout
//! (`[gateway] setup_timeout`, 32 s by default), so the idle test runs the server with a longer
//! one; binding each session with an MSRP connection instead would measure sockets and kernel
//! buffers (and need 100,000 descriptors on each side) rather than the gateway's own state.
//!
//! Latency `invite`: INVITE due -> its 200. There is no set-up phase: the INVITEs are the load.

use super::net::Net;
use super::wire::{self, INVITE};
use super::Flow;
use super::Ledger;
use crate::config::Config;
use crate::schedule::Due;
use crate::stats::Stats;
use sipshard_parser::sip::{self, Framing, EMPTY_HEADER};
use sipshard_parser::Status;
use std::net::SocketAddr;
use std::time::Instant;

/// The flow; see the module documentation.
pub struct IdleSessions {
    net: Net,
    run: String,
    target: SocketAddr,
    local: String,
    ledger: Ledger,
}

impl IdleSessions {
    /// The thread's socket.
    pub fn new(cfg: &Config, _thread: usize, run: &str) -> std::io::Result<IdleSessions> {
        let net = Net::open(false, cfg.sockbuf, Stats::new(cfg.scenario.metrics()))?;
        Ok(IdleSessions {
            local: net.udp_local.to_string(),
            net,
            run: run.to_owned(),
            target: cfg.target,
            ledger: Ledger::new(cfg.timeout, 0, None),
        })
    }
}

impl Flow for IdleSessions {
    fn net(&mut self) -> &mut Net {
        &mut self.net
    }

    fn on_sip(&mut self, msg: &[u8], from: SocketAddr, now: Instant) {
        let mut h = [EMPTY_HEADER; 64];
        let m = match sip::parse(msg, &mut h, Framing::Datagram) {
            Ok(Status::Complete(m)) => m,
            _ => {
                self.net.stats.error("SIP: unparseable message");
                return;
            }
        };
        let Some(code) = m.status_code() else {
            // Nothing is expected from the gateway here; a BYE would mean it ended a session.
            let mut out = Vec::with_capacity(300);
            if m.method() == Some(&b"BYE"[..]) {
                self.net
                    .stats
                    .error("BYE from the gateway (a session ended)");
                wire::response(&m, 200, "OK", b"bye", None, None, &mut out);
            } else if m.method() != Some(&b"ACK"[..]) {
                self.net.stats.error("unexpected request from the gateway");
                wire::response(&m, 405, "Method Not Allowed", b"x", None, None, &mut out);
            }
            if !out.is_empty() {
                self.net.send_udp(out, from);
            }
            return;
        };
        let Some((INVITE, n)) = m.call_id().and_then(|c| wire::read_call_id(c, &self.run)) else {
            self.net
                .stats
                .error("unmatched reply (late, duplicate or retransmitted)");
            return;
        };
        if code >= 200 {
            let mut br = Vec::new();
            wire::branch(&self.run, b'a', n, &mut br);
            let dave = format!("sip:dave{n}@{}", self.local);
            match wire::ack(&m, &self.local, &br, &dave) {
                Some(ack) => self.net.send_udp(ack, self.target),
                None => self
                    .net
                    .stats
                    .error("a final reply to INVITE we cannot ACK"),
            }
            if !self.ledger.awaits_answer(n) {
                // A 2xx sent again: our ACK was late or lost. ACKed again above.
                self.net
                    .stats
                    .error("200 to INVITE retransmitted (ACKed again)");
                return;
            }
        }
        self.ledger.answer(
            n,
            code,
            200,
            "INVITE not answered 200",
            now,
            &mut self.net.stats,
        );
    }

    fn on_frame(&mut self, _conn: usize, _frame: &[u8], _now: Instant) {}

    fn on_closed(&mut self, _conn: usize, _now: Instant) {}

    fn setup(&mut self, _now: Instant) -> Option<Result<String, String>> {
        Some(Ok("nothing to set up (the INVITEs are the load)".into()))
    }

    fn start_call(&mut self, due: Due, measured: bool, now: Instant) {
        let path = format!(
            "msrp://{}/{};tcp",
            self.local,
            wire::session_id(&self.run, due.seq)
        );
        let port = self.net.udp_local.port();
        let inv = wire::invite(&self.run, due.seq, &self.local, port, &path);
        self.net.send_udp(inv, self.target);
        self.ledger
            .open(due.seq, due.intended, measured, 0, now, &mut self.net.stats);
    }

    fn fire_timers(&mut self, now: Instant) {
        self.ledger.expire(now, &mut self.net.stats);
    }

    fn next_timer(&self) -> Option<Instant> {
        self.ledger.next_deadline()
    }

    fn idle(&self) -> bool {
        self.ledger.is_empty()
    }

    fn abandon(&mut self) {
        self.ledger.abandon(&mut self.net.stats);
    }
}
