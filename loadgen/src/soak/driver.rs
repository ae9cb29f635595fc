//! The traffic: one thread, non-blocking std sockets under `poll(2)`, parks sent on an open-loop
//! schedule and every follow-up (retransmission, trigger, `repo.rm`, `repo.get`) on a timer
//! heap, every answer read, parsed with sipshard-parser and written into the [`Ledger`].
//!
//! Names carry the bookkeeping, so nothing has to be looked up by string: a park's Call-ID is
//! `sk<run>-<seq>@soak`, a trigger's is the same (a same-shard pull) or `sk<run>-<seq>t@soak`
//! (a fresh Call-ID, hashed to any shard: often a cross-shard pull). The CSeq method tells a
//! park's answers (MESSAGE) from a trigger's (OPTIONS).

use super::control::{Done, Job, JobKind, Pool};
use super::ledger::{Entry, Ledger, Origin, Plan, RmAnswer};
use sipshard_parser::sip::{self, FrameOptions, Framed, Framing};
use sipshard_parser::Status;
use socket2::{Domain, Protocol, Socket, Type};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Shares of the traffic mix, each in 0..=1.
#[derive(Debug, Clone, Copy)]
pub struct Mix {
    /// Items pulled by a trigger.
    pub pull: f64,
    /// Items removed with `repo.rm` (the rest, `1 - pull - rm`, is left to expire).
    pub rm: f64,
    /// Of the pull triggers, those that carry the parked Call-ID (same shard).
    pub same_callid: f64,
    /// Parks retransmitted once after their 202 (before their action).
    pub retransmit: f64,
    /// Parks (and triggers) sent over TCP.
    pub tcp: f64,
    /// Items checked with `repo.get` before their action, and after a pull or rm.
    pub check: f64,
}

/// What the driver does.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// The server's SIP address (UDP and TCP).
    pub target: SocketAddr,
    /// Parks per second.
    pub rate: f64,
    /// How long parks are sent.
    pub duration: Duration,
    /// The server's repository expiry.
    pub expire_ms: u64,
    /// How long after an item's expiry the soak waits before it judges the item.
    pub margin_ms: u64,
    /// How much earlier than its expiry a 408 may come.
    pub tolerance_ms: u64,
    /// The longest wait between an item's 202 and its action.
    pub hold_max_ms: u64,
    /// The mix.
    pub mix: Mix,
    /// UDP sockets to send from.
    pub udp_sockets: usize,
    /// TCP connections to send over.
    pub tcp_connections: usize,
    /// Bytes of each MESSAGE body.
    pub body_size: usize,
    /// Control calls in parallel.
    pub control_workers: usize,
    /// The server's control endpoint.
    pub control: SocketAddr,
    /// Seed of the mix's random draws.
    pub seed: u64,
    /// This run's id, in every Call-ID.
    pub run: String,
}

/// Gauges the sampler reads while the driver runs.
#[derive(Debug, Default)]
pub struct Live {
    /// Parks sent.
    pub parks: AtomicU64,
    /// SIP requests sent (parks, retransmissions, triggers).
    pub requests: AtomicU64,
    /// SIP responses received.
    pub responses: AtomicU64,
    /// Items the soak believes are in the server.
    pub in_server: AtomicU64,
    /// Ledger entries not judged yet.
    pub ledger: AtomicU64,
    /// Control calls queued or in flight.
    pub control: AtomicU64,
    /// `200 Pulled` received.
    pub pulled: AtomicU64,
    /// 408 received.
    pub expired: AtomicU64,
    /// `repo.rm` answered removed.
    pub removed: AtomicU64,
    /// Set once the last park was sent.
    pub traffic_done: AtomicBool,
}

/// What the driver counted besides the ledger.
#[derive(Debug, Default, Clone)]
pub struct DriverStats {
    /// SIP requests sent (parks, retransmissions, triggers).
    pub requests: u64,
    /// SIP responses read.
    pub responses: u64,
    /// Of those, how many came over UDP.
    pub responses_udp: u64,
    /// Sends that failed.
    pub send_errors: u64,
    /// Responses the soak could not place (another run's, or unparseable).
    pub unmatched: u64,
    /// Answers for an item already judged.
    pub late: u64,
    /// Parks sent later than their schedule by more than 100 ms (the soak itself too slow).
    pub behind: u64,
    /// Worst lateness of a park against its schedule, ms.
    pub max_lag_ms: u64,
    /// Times a due request waited for the pacing budget (after a stall).
    pub paced: u64,
    /// TCP connections the server closed.
    pub tcp_closed: u64,
    /// Seconds the traffic lasted.
    pub traffic_s: f64,
    /// Seconds until the last item was judged.
    pub total_s: f64,
}

/// The random draws, from a seed (SplitMix64: reproducible mixes, no dependency).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    /// The next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
}

/// Paces the requests: a token bucket refilled at twice the mix's mean request rate, holding
/// a few milliseconds' worth. In steady state it never binds; after a stall (a busy shared
/// machine, a page fault) it spreads the backlog at twice the normal rate instead of sending
/// it in one burst that would overflow the server's socket buffer: losses on loopback are not
/// what a soak is after.
#[derive(Debug, Clone)]
pub struct Budget {
    tokens: f64,
    cap: f64,
    per_us: f64,
    last_us: u64,
}

impl Budget {
    /// `per_s` requests a second at most, in bursts of at most `cap`.
    pub fn new(per_s: f64, cap: f64) -> Self {
        Budget {
            tokens: cap,
            cap,
            per_us: per_s / 1e6,
            last_us: 0,
        }
    }

    fn refill(&mut self, now_us: u64) {
        let dt = now_us.saturating_sub(self.last_us) as f64;
        self.tokens = (self.tokens + dt * self.per_us).min(self.cap);
        self.last_us = self.last_us.max(now_us);
    }

    /// Takes one token if there is one.
    pub fn take(&mut self, now_us: u64) -> bool {
        self.refill(now_us);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// When the next token is there.
    pub fn ready_at(&self, now_us: u64) -> u64 {
        let t = self.tokens + now_us.saturating_sub(self.last_us) as f64 * self.per_us;
        if t >= 1.0 {
            now_us
        } else {
            now_us + ((1.0 - t) / self.per_us).ceil() as u64
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Action {
    Retransmit,
    Trigger,
    Rm,
    CheckBefore,
}

/// What an answer leads to.
enum Next {
    Retransmit,
    Action,
    CheckAfter,
}

struct Conn {
    s: TcpStream,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
    closed: bool,
}

/// The traffic and its ledger.
pub struct Driver {
    cfg: DriverConfig,
    start: Instant,
    udp: Vec<UdpSocket>,
    udp_addrs: Vec<SocketAddr>,
    tcp: Vec<Conn>,
    ledger: Ledger,
    timers: BinaryHeap<Reverse<(u64, u64, Action)>>,
    pool: Option<Pool>,
    control_in_flight: u64,
    stats: DriverStats,
    live: Arc<Live>,
    body: String,
}

fn udp_socket() -> io::Result<UdpSocket> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    // Best effort: capped by net.core.{r,w}mem_max.
    let _ = s.set_recv_buffer_size(4 << 20);
    let _ = s.set_send_buffer_size(4 << 20);
    s.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

impl Driver {
    /// Opens the sockets and connections (so that the sampler's first look at the server's
    /// descriptors already counts them).
    pub fn new(cfg: DriverConfig, live: Arc<Live>) -> io::Result<Driver> {
        let udp = (0..cfg.udp_sockets.max(1))
            .map(|_| udp_socket())
            .collect::<io::Result<Vec<_>>>()?;
        let udp_addrs = udp
            .iter()
            .map(UdpSocket::local_addr)
            .collect::<io::Result<Vec<_>>>()?;
        let tcp = (0..cfg.tcp_connections)
            .map(|_| {
                let s = TcpStream::connect_timeout(&cfg.target, Duration::from_secs(5))?;
                s.set_nodelay(true)?;
                s.set_nonblocking(true)?;
                Ok(Conn {
                    s,
                    rbuf: Vec::new(),
                    wbuf: Vec::new(),
                    closed: false,
                })
            })
            .collect::<io::Result<Vec<_>>>()?;
        let body = {
            let mut b = String::from("soak ");
            while b.len() < cfg.body_size {
                b.push('x');
            }
            b
        };
        Ok(Driver {
            ledger: Ledger::new(cfg.expire_ms, cfg.tolerance_ms),
            pool: None,
            start: Instant::now(),
            cfg,
            udp,
            udp_addrs,
            tcp,
            timers: BinaryHeap::new(),
            control_in_flight: 0,
            stats: DriverStats::default(),
            live,
            body,
        })
    }

    fn now_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    fn callid(&self, seq: u64) -> String {
        format!("sk{}-{seq}@soak", self.cfg.run)
    }

    /// The sequence number in one of our Call-IDs (`sk<run>-<seq>[t]@soak`).
    fn seq_of(&self, callid: &[u8]) -> Option<u64> {
        let s = std::str::from_utf8(callid).ok()?;
        let rest = s.strip_prefix("sk")?.strip_prefix(self.cfg.run.as_str())?;
        let rest = rest.strip_prefix('-')?.strip_suffix("@soak")?;
        rest.strip_suffix('t').unwrap_or(rest).parse().ok()
    }

    fn via(&self, origin: Origin) -> String {
        match origin {
            Origin::Udp(i) => format!("UDP {}", self.udp_addrs[usize::from(i)]),
            Origin::Tcp(i) => format!(
                "TCP {}",
                self.tcp[usize::from(i)]
                    .s
                    .local_addr()
                    .unwrap_or(self.cfg.target)
            ),
        }
    }

    fn park_bytes(&self, seq: u64, origin: Origin) -> Vec<u8> {
        let cid = self.callid(seq);
        format!(
            "MESSAGE sip:repo@{t} SIP/2.0\r\nVia: SIP/2.0/{via};branch=z9hG4bK-sk{run}-{seq}-p;rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:soak@127.0.0.1>;tag=s{seq}\r\nTo: <sip:repo@{t}>\r\n\
             Call-ID: {cid}\r\nCSeq: 1 MESSAGE\r\nContent-Type: text/plain\r\n\
             Content-Length: {len}\r\n\r\n{body}",
            t = self.cfg.target,
            via = self.via(origin),
            run = self.cfg.run,
            len = self.body.len(),
            body = self.body,
        )
        .into_bytes()
    }

    fn trigger_bytes(&self, seq: u64, origin: Origin, same: bool, msgid: &str) -> Vec<u8> {
        let parked = self.callid(seq);
        let cid = if same {
            parked.clone()
        } else {
            format!("sk{}-{seq}t@soak", self.cfg.run)
        };
        format!(
            "OPTIONS sip:repo@{t} SIP/2.0\r\nVia: SIP/2.0/{via};branch=z9hG4bK-sk{run}-{seq}-t;rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:soak@127.0.0.1>;tag=t{seq}\r\nTo: <sip:repo@{t}>\r\n\
             Call-ID: {cid}\r\nCSeq: 2 OPTIONS\r\nX-Pull-CallID: {parked}\r\nX-Pull-Msgid: {msgid}\r\n\
             Content-Length: 0\r\n\r\n",
            t = self.cfg.target,
            via = self.via(origin),
            run = self.cfg.run,
        )
        .into_bytes()
    }

    fn send(&mut self, origin: Origin, bytes: &[u8]) -> bool {
        self.stats.requests += 1;
        let ok = match origin {
            Origin::Udp(i) => {
                let s = &self.udp[usize::from(i)];
                let mut tries = 0;
                loop {
                    match s.send_to(bytes, self.cfg.target) {
                        Ok(_) => break true,
                        Err(e) if e.kind() == ErrorKind::WouldBlock && tries < 1000 => {
                            tries += 1;
                            std::thread::sleep(Duration::from_micros(50));
                        }
                        Err(_) => break false,
                    }
                }
            }
            Origin::Tcp(i) => {
                let c = &mut self.tcp[usize::from(i)];
                if c.closed {
                    false
                } else {
                    c.wbuf.extend_from_slice(bytes);
                    flush(c);
                    !c.closed
                }
            }
        };
        if !ok {
            self.stats.send_errors += 1;
        }
        ok
    }

    /// Draws where a message of item `seq` goes out (`offset` moves a trigger to another
    /// socket or connection than its park's).
    fn pick_origin(&self, r: &mut Rng, seq: u64, offset: u64) -> Origin {
        if !self.tcp.is_empty() && r.chance(self.cfg.mix.tcp) {
            Origin::Tcp(((seq + offset) % self.tcp.len() as u64) as u16)
        } else {
            Origin::Udp(((seq + offset) % self.udp.len() as u64) as u16)
        }
    }

    fn send_park(&mut self, seq: u64) {
        // Every draw about an item comes from its own generator, so a seed gives the same mix
        // whatever the timing.
        let mut r = Rng::new(self.cfg.seed ^ seq.wrapping_mul(0xD1B5_4A32_D192_ED03));
        let m = self.cfg.mix;
        let origin = self.pick_origin(&mut r, seq, 0);
        let u = r.unit();
        let plan = if u < m.pull {
            Plan::Pull {
                same_callid: r.chance(m.same_callid),
            }
        } else if u < m.pull + m.rm {
            Plan::Rm
        } else {
            Plan::Expire
        };
        let rtx = r.chance(m.retransmit);
        let check = r.chance(m.check);
        let mut e = Entry::new(seq, self.now_us() / 1000, origin, plan, rtx, check);
        e.trigger_origin = self.pick_origin(&mut r, seq, 1);
        e.hold_ms = r.next_u64() % (self.cfg.hold_max_ms + 1);
        self.ledger.push(e);
        let bytes = self.park_bytes(seq, origin);
        self.send(origin, &bytes);
    }

    fn at(&mut self, delay_ms: u64, seq: u64, a: Action) {
        let due = self.now_us() + delay_ms * 1000;
        self.timers.push(Reverse((due, seq, a)));
    }

    /// The item is stored (and its retransmission answered, if any): plan what comes next.
    fn start_action(&mut self, seq: u64) {
        let Some(e) = self.ledger.get_mut(seq) else {
            return;
        };
        let (plan, check, hold) = (e.plan, e.check, e.hold_ms);
        match (plan, check) {
            (Plan::Expire, true) => self.control(seq, JobKind::CheckBefore),
            (Plan::Expire, false) => {}
            (_, true) => self.at(hold, seq, Action::CheckBefore),
            (Plan::Rm, false) => self.at(hold, seq, Action::Rm),
            (Plan::Pull { .. }, false) => self.at(hold, seq, Action::Trigger),
        }
    }

    fn control(&mut self, seq: u64, kind: JobKind) {
        let callid = self.callid(seq);
        let now = self.now_us() / 1000;
        let Some(msgid) = self.ledger.update(seq, |e| {
            e.control_pending += 1;
            if kind == JobKind::Rm {
                e.rm_sent = true;
                e.action_ms = Some(now);
            }
            e.msgid.as_deref().unwrap_or("").to_string()
        }) else {
            return;
        };
        self.control_in_flight += 1;
        if let Some(p) = &self.pool {
            p.send(Job {
                seq,
                kind,
                callid,
                msgid,
            });
        }
    }

    fn fire(&mut self, seq: u64, a: Action) {
        match a {
            Action::Retransmit => {
                let Some(origin) = self.ledger.update(seq, |e| {
                    e.rtx_sent += 1;
                    e.origin
                }) else {
                    return;
                };
                let bytes = self.park_bytes(seq, origin);
                self.send(origin, &bytes);
            }
            Action::Trigger => {
                let now = self.now_us() / 1000;
                let Some((same, msgid, origin)) = self.ledger.update(seq, |e| {
                    e.trigger_sent = true;
                    e.action_ms = Some(now);
                    let same = matches!(e.plan, Plan::Pull { same_callid: true });
                    let msgid = e.msgid.as_deref().unwrap_or("").to_string();
                    (same, msgid, e.trigger_origin)
                }) else {
                    return;
                };
                let bytes = self.trigger_bytes(seq, origin, same, &msgid);
                self.send(origin, &bytes);
            }
            Action::Rm => self.control(seq, JobKind::Rm),
            Action::CheckBefore => self.control(seq, JobKind::CheckBefore),
        }
    }

    fn on_done(&mut self, d: Done) {
        self.control_in_flight = self.control_in_flight.saturating_sub(1);
        if self.ledger.retired(d.seq) {
            self.ledger.violation(
                Some(d.seq),
                "control",
                format!("a {:?} answer came after the item was judged", d.kind),
            );
            return;
        }
        let mut next = None;
        let mut removed = false;
        let now_ms = self.now_us() / 1000;
        self.ledger.update(d.seq, |e| {
            e.control_pending = e.control_pending.saturating_sub(1);
            match d.kind {
                JobKind::Rm => {
                    e.rm_answer = Some(match &d.result {
                        Ok(v) => match v.get("result").and_then(|r| r.as_str()) {
                            Some("removed") => RmAnswer::Removed,
                            Some("not_found") => RmAnswer::NotFound,
                            _ => RmAnswer::Error(v.to_string()),
                        },
                        Err(s) => RmAnswer::Error(s.clone()),
                    });
                    removed = e.rm_answer == Some(RmAnswer::Removed);
                    if removed && e.check {
                        next = Some(JobKind::CheckAfter);
                    }
                }
                JobKind::CheckBefore | JobKind::CheckAfter => {
                    let found = match &d.result {
                        Ok(v) => v.get("message").is_some(),
                        Err(s) if s == "not found" => false,
                        // Neither: count as "found" for the after-check (a failure shows) and
                        // as "not found" for the before-check.
                        Err(_) => d.kind == JobKind::CheckAfter,
                    };
                    if d.kind == JobKind::CheckBefore {
                        e.check_before = Some(found);
                        e.check_before_ms = Some(now_ms);
                    } else {
                        e.check_after = Some(found);
                    }
                }
            }
        });
        if removed {
            self.live.removed.fetch_add(1, Relaxed);
        }
        if let Some(k) = next {
            self.control(d.seq, k);
        }
        if d.kind == JobKind::CheckBefore {
            match self.ledger.get_mut(d.seq).map(|e| e.plan) {
                Some(Plan::Rm) => self.fire(d.seq, Action::Rm),
                Some(Plan::Pull { .. }) => self.fire(d.seq, Action::Trigger),
                _ => {}
            }
        }
    }

    fn on_response(&mut self, bytes: &[u8], at: Origin) {
        self.stats.responses += 1;
        if matches!(at, Origin::Udp(_)) {
            self.stats.responses_udp += 1;
        }
        let mut h = [sip::EMPTY_HEADER; 32];
        let m = match sip::parse(bytes, &mut h, Framing::Datagram) {
            Ok(Status::Complete(m)) if !m.is_request() => m,
            _ => {
                self.unmatched(format!(
                    "unparseable: {:.120}",
                    String::from_utf8_lossy(bytes)
                ));
                return;
            }
        };
        let code = m.status_code().unwrap_or(0);
        let Some(seq) = m.call_id().and_then(|c| self.seq_of(c)) else {
            self.unmatched(format!(
                "Call-ID {:?}",
                String::from_utf8_lossy(m.call_id().unwrap_or_default())
            ));
            return;
        };
        let method = m.cseq().map(|c| c.method).unwrap_or_default();
        if code < 200 {
            return;
        }
        if self.ledger.retired(seq) || seq >= self.ledger.next_seq() {
            self.stats.late += 1;
            self.ledger.violation(
                Some(seq),
                "late answer",
                format!(
                    "{code} to {} came after the item was judged (expiry + margin)",
                    String::from_utf8_lossy(method)
                ),
            );
            return;
        }
        if method == b"OPTIONS" {
            self.ledger.update(seq, |e| e.trigger_answers.push(code));
            return;
        }
        let rtx_marker = m.header("X-Repo-Retransmission").is_some();
        let msgid = m
            .header("X-Repo-Msgid")
            .map(|v| String::from_utf8_lossy(v).into_owned());
        let pulled_marker = m.header("X-Repo-Pulled") == Some(b"1");
        let now_ms = self.now_us() / 1000;
        let mut then = None;
        self.ledger.update(seq, |e| {
            if at != e.origin {
                e.wrong_origin += 1;
            }
            match code {
                202 if rtx_marker => {
                    e.rtx_answers += 1;
                    match (&e.msgid, &msgid) {
                        (Some(a), Some(b)) if **a != **b => e.msgid_mismatch = true,
                        (None, Some(b)) => e.msgid = Some(b.as_str().into()),
                        _ => {}
                    }
                    if e.rtx && e.rtx_answers == 1 {
                        then = Some(Next::Action);
                    }
                }
                202 => {
                    e.stored += 1;
                    if e.stored == 1 {
                        if e.msgid.is_none() {
                            e.msgid = msgid.as_deref().map(Into::into);
                        }
                        then = Some(if e.rtx {
                            Next::Retransmit
                        } else {
                            Next::Action
                        });
                    }
                }
                200 if pulled_marker => {
                    e.pulled += 1;
                    if e.pulled == 1 && e.check {
                        then = Some(Next::CheckAfter);
                    }
                }
                408 => {
                    e.expired += 1;
                    e.expired_ms.get_or_insert(now_ms);
                }
                503 => e.refused += 1,
                c => {
                    e.other += 1;
                    if e.other_codes.len() < 4 {
                        e.other_codes.push(c);
                    }
                }
            }
        });
        match then {
            Some(Next::CheckAfter) => self.control(seq, JobKind::CheckAfter),
            // As a client that lost the first 202 would, a little later.
            Some(Next::Retransmit) => self.at(10, seq, Action::Retransmit),
            Some(Next::Action) => self.start_action(seq),
            None => {}
        }
        match code {
            200 if pulled_marker => self.live.pulled.fetch_add(1, Relaxed),
            408 => self.live.expired.fetch_add(1, Relaxed),
            _ => 0,
        };
    }

    fn unmatched(&mut self, what: String) {
        self.stats.unmatched += 1;
        self.ledger.violation(None, "unmatched answer", what);
    }

    fn read_udp(&mut self, i: usize) {
        let mut buf = [0u8; 65536];
        for _ in 0..512 {
            match self.udp[i].recv_from(&mut buf) {
                Ok((n, _)) => {
                    let bytes = buf[..n].to_vec();
                    self.on_response(&bytes, Origin::Udp(i as u16));
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) => {
                    self.ledger
                        .violation(None, "socket", format!("udp#{i} recv: {e}"));
                    return;
                }
            }
        }
    }

    fn read_tcp(&mut self, i: usize) {
        let mut chunk = [0u8; 65536];
        loop {
            let c = &mut self.tcp[i];
            match c.s.read(&mut chunk) {
                Ok(0) => {
                    c.closed = true;
                    self.stats.tcp_closed += 1;
                    self.ledger
                        .violation(None, "tcp closed", format!("the server closed tcp#{i}"));
                    break;
                }
                Ok(n) => c.rbuf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    c.closed = true;
                    self.stats.tcp_closed += 1;
                    self.ledger
                        .violation(None, "tcp closed", format!("tcp#{i}: {e}"));
                    break;
                }
            }
        }
        loop {
            let c = &mut self.tcp[i];
            match sip::frame(&c.rbuf, &FrameOptions::default()) {
                Ok(Status::Complete(Framed::Message { len, .. })) => {
                    let msg: Vec<u8> = c.rbuf.drain(..len).collect();
                    self.on_response(&msg, Origin::Tcp(i as u16));
                }
                Ok(Status::Complete(Framed::Keepalive(k))) => {
                    c.rbuf.drain(..k);
                }
                Ok(Status::Partial) => break,
                Err(e) => {
                    c.rbuf.clear();
                    c.closed = true;
                    self.ledger
                        .violation(None, "tcp framing", format!("tcp#{i}: {e:?}"));
                    break;
                }
            }
        }
    }

    fn publish(&self) {
        let l = &self.live;
        l.requests.store(self.stats.requests, Relaxed);
        l.responses.store(self.stats.responses, Relaxed);
        l.in_server.store(self.ledger.in_server, Relaxed);
        l.ledger.store(self.ledger.live() as u64, Relaxed);
        l.control.store(self.control_in_flight, Relaxed);
    }

    /// Runs the traffic from `start` and waits out every item; returns the ledger and the
    /// counts.
    pub fn run(mut self, start: Instant) -> (Ledger, DriverStats) {
        self.pool = Some(Pool::start(self.cfg.control, self.cfg.control_workers));
        self.start = start;
        let total = (self.cfg.rate * self.cfg.duration.as_secs_f64()).floor() as u64;
        let interval_us = 1e6 / self.cfg.rate;
        let settle_ms = self.cfg.expire_ms + self.cfg.margin_ms;
        // Whatever happens, the run ends: everything still open then is judged as it is.
        let hard_end_ms = self.cfg.duration.as_millis() as u64 + settle_ms + 30_000;
        let m = self.cfg.mix;
        let per_s = 2.0 * self.cfg.rate * (1.0 + m.retransmit + m.pull);
        let mut budget = Budget::new(per_s, (per_s * 0.002).max(16.0));
        let mut next = 0u64;
        let mut fds: Vec<libc::pollfd> = Vec::new();
        let mut last_publish = 0;
        loop {
            let now = self.now_us();
            while next < total {
                let due = (next as f64 * interval_us) as u64;
                if due > now {
                    break;
                }
                if !budget.take(now) {
                    self.stats.paced += 1;
                    break;
                }
                let lag_ms = (now - due) / 1000;
                self.stats.max_lag_ms = self.stats.max_lag_ms.max(lag_ms);
                if lag_ms > 100 {
                    self.stats.behind += 1;
                }
                self.send_park(next);
                next += 1;
                self.live.parks.store(next, Relaxed);
                if next == total {
                    self.stats.traffic_s = self.now_us() as f64 / 1e6;
                    self.live.traffic_done.store(true, Relaxed);
                }
            }
            if total == 0 {
                self.live.traffic_done.store(true, Relaxed);
            }
            while let Some(&Reverse((due, seq, a))) = self.timers.peek() {
                if due > now {
                    break;
                }
                let sends = matches!(a, Action::Retransmit | Action::Trigger);
                if sends && !budget.take(now) {
                    self.stats.paced += 1;
                    break;
                }
                self.timers.pop();
                self.fire(seq, a);
            }
            while let Some(d) = self.pool.as_ref().and_then(|p| p.done.try_recv().ok()) {
                self.on_done(d);
            }
            let now_ms = self.now_us() / 1000;
            let hard = now_ms >= hard_end_ms;
            self.ledger.retire_while(|e| {
                hard || (now_ms >= e.sent_ms + settle_ms && e.control_pending == 0)
            });
            if now_ms >= last_publish + 100 {
                self.publish();
                last_publish = now_ms;
            }
            if next >= total && self.ledger.live() == 0 && self.control_in_flight == 0 {
                break;
            }
            if hard {
                self.ledger.retire_all();
                break;
            }
            // Sleep until the next park or timer is due and may go (5 ms at most), or an answer
            // comes.
            let now = self.now_us();
            let gate = budget.ready_at(now);
            let mut wake = now + 5_000;
            if next < total {
                wake = wake.min(((next as f64 * interval_us) as u64).max(gate));
            }
            if let Some(&Reverse((due, _, _))) = self.timers.peek() {
                wake = wake.min(due.max(gate));
            }
            let timeout_ms = wake.saturating_sub(now).div_ceil(1000) as i32;
            fds.clear();
            for s in &self.udp {
                fds.push(libc::pollfd {
                    fd: s.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                });
            }
            for c in &self.tcp {
                let mut events = 0;
                if !c.closed {
                    events = libc::POLLIN;
                    if !c.wbuf.is_empty() {
                        events |= libc::POLLOUT;
                    }
                }
                fds.push(libc::pollfd {
                    fd: c.s.as_raw_fd(),
                    events,
                    revents: 0,
                });
            }
            // SAFETY: `fds` is a valid, initialised array of `fds.len()` pollfds.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
            if n <= 0 {
                continue;
            }
            let nu = self.udp.len();
            let ready: Vec<(usize, i16)> = fds
                .iter()
                .enumerate()
                .filter(|(_, f)| f.revents != 0)
                .map(|(k, f)| (k, f.revents))
                .collect();
            for (k, r) in ready {
                if k < nu {
                    self.read_udp(k);
                } else {
                    let i = k - nu;
                    if r & libc::POLLOUT != 0 {
                        flush(&mut self.tcp[i]);
                    }
                    if r & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
                        self.read_tcp(i);
                    }
                }
            }
        }
        self.stats.total_s = self.now_us() as f64 / 1e6;
        if self.stats.traffic_s == 0.0 {
            self.stats.traffic_s = self.stats.total_s;
        }
        self.publish();
        if let Some(p) = self.pool.take() {
            p.stop();
        }
        (self.ledger, self.stats)
    }
}

/// Writes what is queued on a connection, as far as the socket takes it.
fn flush(c: &mut Conn) {
    while !c.wbuf.is_empty() && !c.closed {
        match c.s.write(&c.wbuf) {
            Ok(0) => c.closed = true,
            Ok(n) => {
                c.wbuf.drain(..n);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => c.closed = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_paces_a_backlog() {
        // 1000 a second, bursts of 10.
        let mut b = Budget::new(1000.0, 10.0);
        let sent = (0..100).filter(|_| b.take(0)).count();
        assert_eq!(sent, 10, "a burst of at most 10");
        assert_eq!(b.ready_at(0), 1000, "the next token in 1 ms");
        assert!(b.take(1000) && !b.take(1000));
        // After a long pause, the bucket holds 10 again, not more.
        let sent = (0..100).filter(|_| b.take(1_000_000)).count();
        assert_eq!(sent, 10);
    }

    #[test]
    fn the_rng_is_reproducible_and_fair() {
        let (mut a, mut b) = (Rng::new(42), Rng::new(42));
        assert_eq!(a.next_u64(), b.next_u64());
        let hits = (0..10_000).filter(|_| a.chance(0.25)).count();
        assert!((2_000..3_000).contains(&hits), "{hits}");
    }
}
