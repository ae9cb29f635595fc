//! `gw-sip-to-msrp`: SIP users alice_i write to MSRP users bob_i through the gateway.
//!
//! We are alice_i (MESSAGEs over UDP to the server), bob_i's SIP user agent (answering the
//! gateway's INVITE with an SDP answer that names our MSRP listener, `a=setup:passive`, so the
//! gateway connects) and bob_i's MSRP client (answering every SEND 200). All users of a thread
//! share its UDP socket and listener: the Request-URI (`bob<i>`) and the MSRP session id in
//! the To-Path (`<run>u<i>`) say whose a message is.
//!
//! Set-up: one MESSAGE per user (body `gwl:s<i>:`) makes the gateway set up the session; the
//! session is up when that message arrives as a SEND. Load: call `seq` is a MESSAGE with body
//! `gwl:m<seq>:...` from the user whose turn it is; its 202 and its SEND are matched on the
//! number. Sessions that the gateway ends mid-run (BYE, a closed connection) are counted as
//! errors; a later MESSAGE for them makes the gateway set them up again, which we follow.

use super::net::Net;
use super::wire::{self, Request, LOAD, SETUP};
use super::{local_user, setup_timeout, user_for_call, users_of, Delivery, Flow, Ledger, Setup};
use crate::config::Config;
use crate::peer::sdp;
use crate::schedule::Due;
use crate::stats::Stats;
use sipshard_parser::msrp::{self, Flag, Limits, Method, ReportRequest, StartLine};
use sipshard_parser::sip::{self, Framing, EMPTY_HEADER};
use sipshard_parser::Status;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

const MSRP_LIMITS: Limits = Limits {
    max_frame: usize::MAX,
    max_headers_bytes: usize::MAX,
};

struct User {
    global: u64,
    alice: String,
    bob: String,
    up: bool,
    failed: bool,
    /// The highest call number delivered, to see deliveries out of order.
    last_seq: Option<u64>,
}

/// The flow; see the module documentation.
pub struct SipToMsrp {
    net: Net,
    run: String,
    thread: usize,
    threads: usize,
    target: SocketAddr,
    /// Our UDP `ip:port`.
    local: String,
    /// `msrp://127.0.0.1:<listener port>/`.
    msrp_prefix: String,
    body_size: usize,
    users: Vec<User>,
    /// The user each connection carries (learned from its first SEND).
    by_conn: HashMap<usize, usize>,
    /// The number of a message whose first chunk came and whose last has not, by Message-ID.
    chunked: HashMap<Vec<u8>, (u8, u64)>,
    ledger: Ledger,
    setup: Setup,
    cid: Vec<u8>,
    branch: Vec<u8>,
    body: Vec<u8>,
}

impl SipToMsrp {
    /// The thread's sockets and users.
    pub fn new(cfg: &Config, thread: usize, run: &str) -> std::io::Result<SipToMsrp> {
        let net = Net::open(true, cfg.sockbuf, Stats::new(cfg.scenario.metrics()))?;
        let local = net.udp_local.to_string();
        let listen = net
            .listen_addr
            .ok_or_else(|| std::io::Error::other("no MSRP listener"))?;
        let users: Vec<User> = users_of(cfg.sessions, thread, cfg.threads)
            .into_iter()
            .map(|u| User {
                global: u,
                alice: format!("sip:alice{u}@{local}"),
                bob: format!("sip:bob{u}@{local}"),
                up: false,
                failed: false,
                last_seq: None,
            })
            .collect();
        Ok(SipToMsrp {
            setup: Setup::new(users.len(), setup_timeout(cfg)),
            msrp_prefix: format!("msrp://{listen}/"),
            local,
            net,
            run: run.to_owned(),
            thread,
            threads: cfg.threads,
            target: cfg.target,
            body_size: cfg.body_size,
            users,
            by_conn: HashMap::new(),
            chunked: HashMap::new(),
            ledger: Ledger::new(cfg.timeout, 1, Some(0)),
            cid: Vec::new(),
            branch: Vec::new(),
            body: Vec::new(),
        })
    }

    fn local_user(&self, u: u64) -> Option<usize> {
        local_user(u, self.thread, self.threads, self.users.len())
    }

    /// Sends user `k`'s MESSAGE with number `n` of `kind`.
    fn send_message(&mut self, kind: u8, n: u64, k: usize) {
        self.cid.clear();
        wire::call_id(kind, n, &self.run, &mut self.cid);
        self.branch.clear();
        wire::branch(&self.run, kind, n, &mut self.branch);
        self.body.clear();
        wire::body(kind, n, self.body_size, &mut self.body);
        let u = &self.users[k];
        // The Call-ID before its `@` is unique in the run, and a valid tag.
        let tag_len = self.cid.len() - b"@sipshard-load".len();
        let mut out = Vec::with_capacity(400 + self.body.len());
        wire::request(
            &Request {
                method: "MESSAGE",
                ruri: &u.bob,
                local: &self.local,
                branch: &self.branch,
                from: &u.alice,
                from_tag: &self.cid[..tag_len],
                to: &u.bob,
                to_tag: None,
                call_id: &self.cid,
                cseq: 1,
                contact: false,
                body: Some(("text/plain", &self.body)),
            },
            &mut out,
        );
        self.net.send_udp(out, self.target);
    }

    fn came_up(&mut self, k: usize) {
        let u = &mut self.users[k];
        if !u.up {
            u.up = true;
            let was_failed = std::mem::take(&mut u.failed);
            self.setup.came_up(was_failed);
        }
    }

    /// A request from the gateway: its INVITE for bob, the ACK, a BYE, a MESSAGE (the
    /// set-up failure notice the example config sends to alice).
    fn on_request(&mut self, m: &sip::Message<'_, '_>, from: SocketAddr) {
        let mut out = Vec::with_capacity(600);
        match m.method().unwrap_or_default() {
            b"INVITE" => {
                let user = m
                    .request_uri()
                    .and_then(|u| wire::user_number(u.raw, "bob"))
                    .and_then(|u| self.local_user(u));
                let Some(k) = user else {
                    self.net
                        .stats
                        .error("INVITE for nobody we know (answered 404)");
                    wire::response(m, 404, "Not Found", b"nobody", None, None, &mut out);
                    self.net.send_udp(out, from);
                    return;
                };
                let global = self.users[k].global;
                let path = format!(
                    "{}{};tcp",
                    self.msrp_prefix,
                    wire::session_id(&self.run, global)
                );
                let answer = sdp::answer(&path, "text/plain", "passive");
                let tag = format!("b{global}");
                wire::response(
                    m,
                    200,
                    "OK",
                    tag.as_bytes(),
                    Some(&self.local),
                    Some(("application/sdp", answer.as_bytes())),
                    &mut out,
                );
            }
            b"ACK" => return,
            b"BYE" => {
                let k = m
                    .to()
                    .and_then(|t| wire::user_number(t.uri.raw, "bob"))
                    .and_then(|u| self.local_user(u));
                if let Some(k) = k {
                    self.users[k].up = false;
                }
                self.net
                    .stats
                    .error("BYE from the gateway (a session ended mid-run)");
                wire::response(m, 200, "OK", b"bye", None, None, &mut out);
            }
            b"MESSAGE" => {
                self.net
                    .stats
                    .error("MESSAGE from the gateway (a set-up failure notice)");
                wire::response(m, 200, "OK", b"note", None, None, &mut out);
            }
            _ => {
                self.net.stats.error("unexpected request from the gateway");
                wire::response(m, 405, "Method Not Allowed", b"x", None, None, &mut out);
            }
        }
        self.net.send_udp(out, from);
    }

    /// A whole message arrived as SEND(s) on connection `conn` for user `k`.
    fn on_message(&mut self, k: usize, kind: u8, n: u64, now: Instant) {
        match kind {
            SETUP if n == self.users[k].global => self.came_up(k),
            LOAD => {
                if let Delivery::Expected(user) = self.ledger.delivered(n, now, &mut self.net.stats)
                {
                    let u = &mut self.users[user];
                    if u.last_seq.is_some_and(|last| last > n) {
                        self.net.stats.error("delivered out of order");
                    }
                    u.last_seq = Some(u.last_seq.map_or(n, |l| l.max(n)));
                    if user != k {
                        self.net.stats.error("delivered in another user's session");
                    }
                }
            }
            _ => self.net.stats.error("SEND with a body that is not ours"),
        }
    }
}

impl Flow for SipToMsrp {
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
            return self.on_request(&m, from);
        };
        match m.call_id().and_then(|c| wire::read_call_id(c, &self.run)) {
            Some((LOAD, n)) => self.ledger.answer(
                n,
                code,
                202,
                "MESSAGE not answered 202",
                now,
                &mut self.net.stats,
            ),
            Some((SETUP, _)) if code >= 300 => {
                self.net.stats.code(code);
                self.net.stats.error("set-up MESSAGE refused");
            }
            Some((SETUP, _)) => {}
            _ => self
                .net
                .stats
                .error("unmatched reply (late, duplicate or retransmitted)"),
        }
    }

    fn on_frame(&mut self, conn: usize, bytes: &[u8], now: Instant) {
        let mut h = [msrp::EMPTY_HEADER; 32];
        let f = match msrp::parse(bytes, &mut h, &MSRP_LIMITS) {
            Ok(Status::Complete(f)) => f,
            _ => {
                self.net.stats.error("MSRP: unparseable frame");
                return;
            }
        };
        match f.start {
            StartLine::Request {
                method: Method::Send,
            } => {}
            StartLine::Request {
                method: Method::Report,
            } => {
                if f.status().and_then(Result::ok).map(|s| s.code) != Some(200) {
                    self.net.stats.error("failure REPORT from the gateway");
                }
                return;
            }
            StartLine::Request { .. } => {
                self.net
                    .stats
                    .error("MSRP: unexpected method from the gateway");
                let mut out = Vec::with_capacity(200);
                let (to, from) = (f.header("To-Path"), f.header("From-Path"));
                wire::msrp_response(
                    f.transaction_id,
                    501,
                    "Not Implemented",
                    to.unwrap_or_default(),
                    from.unwrap_or_default(),
                    &mut out,
                );
                self.net.write(conn, &out);
                return;
            }
            StartLine::Response { .. } => {
                self.net.stats.error("MSRP: a response to nothing we sent");
                return;
            }
        }
        let user = f
            .to_path()
            .last()
            .and_then(|u| wire::read_session_id(u, &self.run))
            .and_then(|u| self.local_user(u));
        let (code, comment) = if user.is_some() {
            (200, "OK")
        } else {
            (481, "Session Does Not Exist")
        };
        // RFC 4975 §7.1.2: `no` wants no response at all, `partial` only an error.
        let wanted = match f.failure_report().and_then(Result::ok) {
            Some(ReportRequest::No) => false,
            Some(ReportRequest::Partial) => code != 200,
            _ => true,
        };
        if wanted {
            let mut out = Vec::with_capacity(200);
            wire::msrp_response(
                f.transaction_id,
                code,
                comment,
                f.header("To-Path").unwrap_or_default(),
                f.header("From-Path").unwrap_or_default(),
                &mut out,
            );
            self.net.write(conn, &out);
        }
        let Some(k) = user else {
            self.net.stats.error("SEND for a session that is not ours");
            return;
        };
        self.by_conn.entry(conn).or_insert(k);
        let body = f.body.unwrap_or_default();
        let start = f.byte_range().and_then(Result::ok).map_or(1, |r| r.start);
        let message_id = f.message_id().unwrap_or_default();
        let number = if start == 1 && !body.is_empty() {
            let Some(number) = wire::read_body(body) else {
                self.net.stats.error("SEND with a body that is not ours");
                return;
            };
            if f.flag == Flag::More {
                self.chunked.insert(message_id.to_vec(), number);
                return;
            }
            number
        } else if body.is_empty() && start == 1 {
            // An empty SEND: a bind or a keepalive, no message.
            return;
        } else {
            match f.flag {
                Flag::More => return,
                Flag::Abort => {
                    self.chunked.remove(message_id);
                    self.net.stats.error("message aborted by the gateway");
                    return;
                }
                Flag::Complete => match self.chunked.remove(message_id) {
                    Some(n) => n,
                    None => {
                        self.net.stats.error("last chunk of a message not begun");
                        return;
                    }
                },
            }
        };
        self.on_message(k, number.0, number.1, now);
    }

    fn on_closed(&mut self, conn: usize, _now: Instant) {
        if let Some(k) = self.by_conn.remove(&conn) {
            self.users[k].up = false;
        }
        self.net
            .stats
            .error("MSRP connection closed by the gateway");
    }

    fn setup(&mut self, now: Instant) -> Option<Result<String, String>> {
        let users = &mut self.users;
        self.setup.expire(now, |k| {
            let u = &mut users[k];
            if u.up {
                return false;
            }
            u.failed = true;
            true
        });
        while let Some(k) = self.setup.next_to_start(now) {
            let global = self.users[k].global;
            self.send_message(SETUP, global, k);
        }
        self.setup.outcome(now)
    }

    fn start_call(&mut self, due: Due, measured: bool, now: Instant) {
        let k = user_for_call(due.seq, self.threads, self.users.len());
        self.send_message(LOAD, due.seq, k);
        self.ledger
            .open(due.seq, due.intended, measured, k, now, &mut self.net.stats);
    }

    fn fire_timers(&mut self, now: Instant) {
        self.ledger.expire(now, &mut self.net.stats);
    }

    fn next_timer(&self) -> Option<Instant> {
        self.ledger.next_deadline().or(self.setup.next_deadline())
    }

    fn idle(&self) -> bool {
        self.ledger.is_empty()
    }

    fn abandon(&mut self) {
        self.ledger.abandon(&mut self.net.stats);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::msrp::MsrpPeer;
    use crate::peer::sip::SipUa;
    use std::time::Duration;

    const WAIT: Duration = Duration::from_secs(5);

    /// The flow against a hand-driven stand-in for the gateway: a MESSAGE comes in, we play the
    /// gateway (202, INVITE to bob, connect, SEND), and the flow answers and records.
    #[test]
    fn one_message_through_a_stand_in_gateway() {
        let mut gw = SipUa::bind().unwrap();
        let cfg = Config::from_flags([
            gw.addr().to_string().as_str(),
            "--scenario",
            "gw-sip-to-msrp",
            "--sessions",
            "1",
        ])
        .unwrap();
        let mut f = SipToMsrp::new(&cfg, 0, "0000abcd").unwrap();
        let t0 = Instant::now();
        assert!(f.setup(t0).is_none());
        f.net.flush();
        // The set-up MESSAGE: 202, then our INVITE to bob.
        let m = gw.wait_request("MESSAGE", WAIT).expect("set-up MESSAGE");
        assert_eq!(m.body_text().split(':').nth(1), Some("s0"));
        gw.respond(&m, 202, "Accepted", &[], None).unwrap();
        let bob = m.request_uri().unwrap();
        let dest: SocketAddr = bob.split('@').nth(1).unwrap().parse().unwrap();
        let inv = gw
            .send_invite(
                dest,
                &crate::peer::sip::InviteSpec {
                    ruri: bob.clone(),
                    from: m.from_uri().unwrap(),
                    to: bob.clone(),
                    sdp: sdp::offer(9, "msrp://127.0.0.1:9/gw1;tcp", "text/plain").into_bytes(),
                    ..Default::default()
                },
            )
            .unwrap();
        let mut io = super::super::Pump::default();
        let deadline = Instant::now() + WAIT;
        let mut ok = None;
        while ok.is_none() && Instant::now() < deadline {
            io.pump(&mut f, Duration::from_millis(5));
            ok = gw.wait_final(&inv.call_id, Duration::from_millis(5));
        }
        let ok = ok.expect("200 to the INVITE");
        assert_eq!(ok.status(), Some(200));
        let path = sdp::read_path(ok.body()).expect("a=path");
        assert_eq!(sdp::read_setup(ok.body()).as_deref(), Some("passive"));
        // The gateway connects and delivers the set-up message; the session is up.
        let mut conn = MsrpPeer::listen().unwrap();
        conn.connect_path(&path).unwrap();
        let mut body = Vec::new();
        wire::body(SETUP, 0, 10, &mut body);
        let id = conn
            .send_message(&path, "text/plain", &body, 2048, false, "")
            .unwrap();
        let deadline = Instant::now() + WAIT;
        let mut result = None;
        while result.is_none() && Instant::now() < deadline {
            io.pump(&mut f, Duration::from_millis(5));
            result = f.setup(Instant::now());
        }
        assert!(result.expect("set-up done").is_ok());
        f.net.flush();
        assert_eq!(conn.wait_response(&id, WAIT), Some(200));
        // A load call: its 202 and its delivery are recorded.
        let due = Due {
            seq: 0,
            intended: Instant::now(),
        };
        f.start_call(due, true, Instant::now());
        f.net.flush();
        let m = gw.wait_request("MESSAGE", WAIT).expect("load MESSAGE");
        gw.respond(&m, 202, "Accepted", &[], None).unwrap();
        let id = conn
            .send_message(&path, "text/plain", m.body(), 2048, false, "")
            .unwrap();
        let deadline = Instant::now() + WAIT;
        while !f.ledger.is_empty() && Instant::now() < deadline {
            io.pump(&mut f, Duration::from_millis(5));
        }
        assert!(f.ledger.is_empty());
        f.net.flush();
        assert_eq!(conn.wait_response(&id, WAIT), Some(200));
        let s = &f.net.stats;
        assert_eq!((s.sent, s.answered, s.timeouts), (1, 1, 0));
        assert_eq!(s.metrics[0].hist.len(), 1, "delivered");
        assert_eq!(s.metrics[1].hist.len(), 1, "202");
        assert!(s.errors.is_empty(), "{:?}", s.errors);
    }
}
