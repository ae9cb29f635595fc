//! `gw-msrp-to-sip`: MSRP users carol_i write to SIP users dave_i through the gateway.
//!
//! We are carol_i's SIP user agent (INVITE with an SDP offer to the server, `msrp_answer`
//! answers, we ACK), carol_i's MSRP client (we connect to the gateway's `a=path`, bind with an
//! empty SEND, then send the load's SENDs) and dave_i (the gateway's MESSAGEs come to the
//! INVITE's Request-URI, our UDP socket; we answer 200). One connection per session, as a real
//! client has.
//!
//! Set-up: a session is up when the bind SEND is answered 200. Load: call `seq` is a SEND
//! (transaction `txn<seq>`, body `gwl:m<seq>:...`) on the session whose turn it is; its MSRP
//! 200 and the MESSAGE it becomes are matched on the number. Bodies stay small enough for the
//! MESSAGE to fit a datagram (the gateway sends larger ones over TCP, which dave does not
//! take; `--body-size` is checked for that).

use super::net::Net;
use super::wire::{self, INVITE, LOAD};
use super::{local_user, setup_timeout, user_for_call, users_of, Delivery, Flow, Ledger, Setup};
use crate::config::Config;
use crate::peer::{msrp::path_addr, sdp};
use crate::schedule::Due;
use crate::stats::Stats;
use sipshard_parser::msrp::{self, Limits, Method, StartLine};
use sipshard_parser::sip::{self, Framing, EMPTY_HEADER};
use sipshard_parser::Status;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const MSRP_LIMITS: Limits = Limits {
    max_frame: usize::MAX,
    max_headers_bytes: usize::MAX,
};
/// A connect on loopback either succeeds at once or not at all.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// INVITE sent.
    Invited,
    /// Connected, bind SEND sent.
    Binding,
    /// The bind was answered 200: SENDs may go.
    Up,
    /// Refused, or ended by the gateway.
    Down,
}

struct User {
    global: u64,
    state: State,
    failed: bool,
    /// Our MSRP URI (From-Path).
    our_path: String,
    /// The gateway's `a=path` (To-Path).
    gw_path: String,
    conn: Option<usize>,
    last_seq: Option<u64>,
}

/// The flow; see the module documentation.
pub struct MsrpToSip {
    net: Net,
    run: String,
    thread: usize,
    threads: usize,
    target: SocketAddr,
    local: String,
    body_size: usize,
    users: Vec<User>,
    by_conn: HashMap<usize, usize>,
    ledger: Ledger,
    setup: Setup,
    body: Vec<u8>,
    frame: Vec<u8>,
}

impl MsrpToSip {
    /// The thread's sockets and users.
    pub fn new(cfg: &Config, thread: usize, run: &str) -> std::io::Result<MsrpToSip> {
        let net = Net::open(false, cfg.sockbuf, Stats::new(cfg.scenario.metrics()))?;
        let local = net.udp_local.to_string();
        let users: Vec<User> = users_of(cfg.sessions, thread, cfg.threads)
            .into_iter()
            .map(|u| User {
                global: u,
                state: State::Invited,
                failed: false,
                // Nobody connects to it (we are active), but it names us in To-Paths.
                our_path: format!("msrp://{local}/{};tcp", wire::session_id(run, u)),
                gw_path: String::new(),
                conn: None,
                last_seq: None,
            })
            .collect();
        Ok(MsrpToSip {
            setup: Setup::new(users.len(), setup_timeout(cfg)),
            net,
            run: run.to_owned(),
            thread,
            threads: cfg.threads,
            target: cfg.target,
            local,
            body_size: cfg.body_size,
            users,
            by_conn: HashMap::new(),
            ledger: Ledger::new(cfg.timeout, 1, Some(0)),
            body: Vec::new(),
            frame: Vec::new(),
        })
    }

    fn local_user(&self, u: u64) -> Option<usize> {
        local_user(u, self.thread, self.threads, self.users.len())
    }

    fn fail(&mut self, k: usize, why: &'static str) {
        let u = &mut self.users[k];
        if u.state != State::Up {
            self.net.stats.error(why);
        }
        u.state = State::Down;
    }

    /// A response to one of our INVITEs: ACK it (a retransmitted 2xx again, as its ACK may have
    /// been lost), and on the first 2xx connect and bind.
    fn on_invite_response(&mut self, m: &sip::Message<'_, '_>, k: usize, code: u16) {
        if code < 200 {
            return;
        }
        let mut br = Vec::new();
        wire::branch(&self.run, b'a', self.users[k].global, &mut br);
        let dave = format!("sip:dave{}@{}", self.users[k].global, self.local);
        match wire::ack(m, &self.local, &br, &dave) {
            Some(ack) => self.net.send_udp(ack, self.target),
            None => self
                .net
                .stats
                .error("a final reply to INVITE we cannot ACK"),
        }
        if !(200..300).contains(&code) {
            self.net.stats.code(code);
            return self.fail(k, "INVITE refused");
        }
        if self.users[k].state != State::Invited {
            return;
        }
        let Some(path) = sdp::read_path(m.body()) else {
            return self.fail(k, "200 to INVITE without a=path");
        };
        // The first URI is the next hop (RFC 4975 §6.2): with no relays, the gateway itself.
        let Some(addr) = path.split(' ').next().and_then(path_addr) else {
            return self.fail(k, "a=path without an IP address");
        };
        let conn = match self.net.connect(addr, CONNECT_TIMEOUT) {
            Ok(c) => c,
            Err(_) => return self.fail(k, "cannot connect to the gateway's a=path"),
        };
        let u = &mut self.users[k];
        u.gw_path = path;
        u.conn = Some(conn);
        u.state = State::Binding;
        self.by_conn.insert(conn, k);
        self.frame.clear();
        wire::bind(u.global, &u.gw_path, &u.our_path, &mut self.frame);
        self.net.write(conn, &self.frame);
    }

    /// A request from the gateway: a MESSAGE for dave (a delivery), a BYE.
    fn on_request(&mut self, m: &sip::Message<'_, '_>, from: SocketAddr, now: Instant) {
        let mut out = Vec::with_capacity(400);
        match m.method().unwrap_or_default() {
            b"MESSAGE" => {
                wire::response(m, 200, "OK", b"dave", None, None, &mut out);
                self.net.send_udp(out, from);
                let Some((LOAD, n)) = wire::read_body(m.body()) else {
                    self.net.stats.error("MESSAGE with a body that is not ours");
                    return;
                };
                let Delivery::Expected(user) = self.ledger.delivered(n, now, &mut self.net.stats)
                else {
                    return;
                };
                let k = m
                    .request_uri()
                    .and_then(|u| wire::user_number(u.raw, "dave"))
                    .and_then(|u| self.local_user(u));
                if k != Some(user) {
                    self.net.stats.error("delivered to another user");
                }
                let u = &mut self.users[user];
                if u.last_seq.is_some_and(|last| last > n) {
                    self.net.stats.error("delivered out of order");
                }
                u.last_seq = Some(u.last_seq.map_or(n, |l| l.max(n)));
            }
            b"BYE" => {
                wire::response(m, 200, "OK", b"bye", None, None, &mut out);
                self.net.send_udp(out, from);
                self.net
                    .stats
                    .error("BYE from the gateway (a session ended mid-run)");
                let k = m
                    .call_id()
                    .and_then(|c| wire::read_call_id(c, &self.run))
                    .and_then(|(_, u)| self.local_user(u));
                if let Some(k) = k {
                    self.users[k].state = State::Down;
                }
            }
            b"ACK" => {}
            _ => {
                self.net.stats.error("unexpected request from the gateway");
                wire::response(m, 405, "Method Not Allowed", b"x", None, None, &mut out);
                self.net.send_udp(out, from);
            }
        }
    }
}

impl Flow for MsrpToSip {
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
            return self.on_request(&m, from, now);
        };
        let user = m
            .call_id()
            .and_then(|c| wire::read_call_id(c, &self.run))
            .filter(|&(kind, _)| kind == INVITE)
            .and_then(|(_, u)| self.local_user(u));
        match user {
            Some(k) => self.on_invite_response(&m, k, code),
            None => self
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
            StartLine::Response { code, .. } => {
                if let Some(seq) = wire::read_txn(f.transaction_id) {
                    self.ledger.answer(
                        seq,
                        code,
                        200,
                        "SEND not answered 200",
                        now,
                        &mut self.net.stats,
                    );
                } else if let Some(k) = wire::read_bind(f.transaction_id)
                    .and_then(|u| self.local_user(u))
                    .filter(|&k| self.by_conn.get(&conn) == Some(&k))
                {
                    if code != 200 {
                        return self.fail(k, "bind SEND refused");
                    }
                    let u = &mut self.users[k];
                    if u.state == State::Binding {
                        u.state = State::Up;
                        let was_failed = std::mem::take(&mut u.failed);
                        self.setup.came_up(was_failed);
                    }
                } else {
                    self.net.stats.error("MSRP: a response to nothing we sent");
                }
            }
            StartLine::Request {
                method: Method::Report,
            } => {
                if f.status().and_then(Result::ok).map(|s| s.code) != Some(200) {
                    self.net.stats.error("failure REPORT from the gateway");
                }
            }
            StartLine::Request { method } => {
                // The gateway sends SENDs only when dave writes to carol, which we never do.
                self.net
                    .stats
                    .error("MSRP: unexpected request from the gateway");
                let (code, comment) = if method == Method::Send {
                    (200, "OK")
                } else {
                    (501, "Not Implemented")
                };
                self.frame.clear();
                wire::msrp_response(
                    f.transaction_id,
                    code,
                    comment,
                    f.header("To-Path").unwrap_or_default(),
                    f.header("From-Path").unwrap_or_default(),
                    &mut self.frame,
                );
                self.net.write(conn, &self.frame);
            }
        }
    }

    fn on_closed(&mut self, conn: usize, _now: Instant) {
        if let Some(k) = self.by_conn.remove(&conn) {
            self.users[k].state = State::Down;
            self.users[k].conn = None;
        }
        self.net
            .stats
            .error("MSRP connection closed by the gateway");
    }

    fn setup(&mut self, now: Instant) -> Option<Result<String, String>> {
        let users = &mut self.users;
        self.setup.expire(now, |k| {
            let u = &mut users[k];
            if u.state == State::Up {
                return false;
            }
            u.failed = true;
            true
        });
        while let Some(k) = self.setup.next_to_start(now) {
            let u = &self.users[k];
            let port = self.net.udp_local.port();
            let inv = wire::invite(&self.run, u.global, &self.local, port, &u.our_path);
            self.net.send_udp(inv, self.target);
        }
        self.setup.outcome(now)
    }

    fn start_call(&mut self, due: Due, measured: bool, now: Instant) {
        let k = user_for_call(due.seq, self.threads, self.users.len());
        let u = &self.users[k];
        let Some(conn) = u.conn.filter(|_| u.state == State::Up) else {
            // Nothing can carry it; counted as a call that was not sent.
            if measured {
                self.net.stats.calls += 1;
                self.net.stats.failed += 1;
            }
            self.net.stats.error("session down: SEND not sent");
            return;
        };
        self.body.clear();
        wire::body(LOAD, due.seq, self.body_size, &mut self.body);
        self.frame.clear();
        wire::send(
            due.seq,
            &u.gw_path,
            &u.our_path,
            &self.body,
            &mut self.frame,
        );
        self.net.write(conn, &self.frame);
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
    use crate::peer::sip::{MessageSpec, SipUa};

    const WAIT: Duration = Duration::from_secs(5);

    /// Pumps the flow until `done` holds or the wait runs out.
    fn pump_until(f: &mut MsrpToSip, mut done: impl FnMut(&mut MsrpToSip) -> bool) -> bool {
        let mut io = super::super::Pump::default();
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if done(f) {
                // What the last pass queued goes out, as the driver's next pass would send it.
                f.net.flush();
                return true;
            }
            io.pump(f, Duration::from_millis(5));
        }
        done(f)
    }

    /// The flow against a hand-driven stand-in for the gateway: we answer its INVITE with our
    /// MSRP listener's path, take its bind and its SEND, and deliver the SEND as a MESSAGE.
    #[test]
    fn one_send_through_a_stand_in_gateway() {
        let mut gw = SipUa::bind().unwrap();
        let mut gw_msrp = MsrpPeer::listen().unwrap();
        let cfg = Config::from_flags([
            gw.addr().to_string().as_str(),
            "--scenario",
            "gw-msrp-to-sip",
            "--sessions",
            "1",
        ])
        .unwrap();
        let mut f = MsrpToSip::new(&cfg, 0, "0000abcd").unwrap();
        assert!(f.setup(Instant::now()).is_none());
        f.net.flush();
        let inv = gw.wait_request("INVITE", WAIT).expect("carol's INVITE");
        let offer = inv.body().to_vec();
        assert_eq!(sdp::read_setup(&offer).as_deref(), Some("actpass"));
        let carol_path = sdp::read_path(&offer).expect("a=path");
        let answer = sdp::answer(&gw_msrp.path(), "text/plain", "passive");
        gw.answer_invite_with_sdp(&inv, answer.as_bytes()).unwrap();
        // The flow ACKs, connects and binds.
        assert!(pump_until(&mut f, |f| f.by_conn.len() == 1));
        assert!(gw.wait_request("ACK", WAIT).is_some());
        gw_msrp.accept(WAIT).unwrap();
        let bind = gw_msrp.recv_frame(WAIT).expect("the bind SEND");
        assert_eq!(bind.body, None);
        assert_eq!(bind.to_path(), Some(gw_msrp.path().as_str()));
        assert_eq!(bind.from_path(), Some(carol_path.as_str()));
        gw_msrp.respond(&bind, 200, "OK").unwrap();
        let mut result = None;
        assert!(pump_until(&mut f, |f| {
            result = f.setup(Instant::now());
            result.is_some()
        }));
        assert!(result.unwrap().is_ok());
        // A load call: the SEND, its 200, and its delivery as a MESSAGE to dave.
        let due = Due {
            seq: 7,
            intended: Instant::now(),
        };
        f.start_call(due, true, Instant::now());
        f.net.flush();
        let send = gw_msrp.recv_frame(WAIT).expect("the load SEND");
        assert_eq!(send.transaction_id, "txn7");
        gw_msrp.respond(&send, 200, "OK").unwrap();
        let dave = inv.request_uri().unwrap();
        let mut msg = MessageSpec::text(&inv.from_uri().unwrap(), &dave, &send.body_text());
        msg.ruri = dave.clone();
        let dest: SocketAddr = dave.split('@').nth(1).unwrap().parse().unwrap();
        let m = gw.send_message(dest, &msg).unwrap();
        assert!(pump_until(&mut f, |f| f.ledger.is_empty()));
        let ok = gw.wait_final(&m.call_id, WAIT).expect("dave's 200");
        assert_eq!(ok.status(), Some(200));
        let s = &f.net.stats;
        assert_eq!((s.sent, s.answered, s.timeouts), (1, 1, 0));
        assert_eq!(s.metrics[0].hist.len(), 1, "delivered");
        assert_eq!(s.metrics[1].hist.len(), 1, "MSRP 200");
        assert!(s.errors.is_empty(), "{:?}", s.errors);
    }
}
