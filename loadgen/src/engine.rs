//! The per-thread sender/receiver: schedule, transactions, timers.
//!
//! One engine runs on each load thread and owns everything it touches: its share of the
//! schedule, its sockets, the table of outstanding transactions (keyed by Call-ID + CSeq, as the
//! replies are matched) and a timer heap for timeouts and RFC 3261 retransmissions. It never
//! blocks on the server: due requests are queued and sent in batches, replies are drained
//! without blocking, and the thread sleeps in `ppoll` only until the next thing is due. Once a
//! second it hands its counters to the main thread and starts afresh.

use crate::config::{Config, Transport as TransportKind};
use crate::scenario::{
    build_request, message_body, sdp_offer, RequestParams, ScenarioKind, TemplateVars,
    TriggerMethod,
};
use crate::schedule::{Due, Schedule};
use crate::stats::Stats;
use crate::tcp::TcpTransport;
use crate::transport::{Outgoing, Transport};
use crate::udp::UdpTransport;
use hashbrown::{Equivalent, HashMap};
use sipshard_parser::sip::{self, Framing, EMPTY_HEADER};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// RFC 3261 T1.
pub const T1: Duration = Duration::from_millis(500);
/// RFC 3261 T2.
pub const T2: Duration = Duration::from_secs(4);
/// A wait shorter than this is spent polling instead of sleeping in `ppoll` (above roughly
/// 30,000 calls/s per thread the thread then never sleeps).
pub const SPIN_BELOW: Duration = Duration::from_micros(30);
/// How often a thread hands its counters to the main thread.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// What a load thread tells the main thread.
#[derive(Debug)]
pub enum Update {
    /// Counters of the last interval (since the previous update).
    Interval {
        /// Which thread.
        thread: usize,
        /// The delta.
        stats: Box<Stats>,
    },
    /// The thread is done; its last delta.
    Done {
        /// Which thread.
        thread: usize,
        /// The delta.
        stats: Box<Stats>,
        /// When the thread sent its last scheduled call.
        schedule_done: Instant,
    },
    /// The thread could not start.
    Failed {
        /// Which thread.
        thread: usize,
        /// Why.
        error: String,
    },
}

/// What an outstanding entry waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// The scenario's first request (OPTIONS, MESSAGE, the parked MESSAGE, INVITE).
    First,
    /// park-pull's trigger.
    Trigger,
    /// park-pull's `200 Pulled` for the parked MESSAGE.
    Pulled,
    /// park-expire's 408 for the parked MESSAGE.
    Expired,
    /// invite's BYE.
    Bye,
}

#[derive(Debug)]
struct Pending {
    key: (Rc<str>, u32),
    step: Step,
    metric: usize,
    origin: Instant,
    measured: bool,
    conn: usize,
    /// A request we sent (a transaction) or a reply we merely expect.
    txn: Option<Txn>,
    call_seq: u64,
    from_tag: Box<str>,
    /// The entry of the same call outstanding beside this one (park-pull's trigger and its
    /// `200 Pulled`), so that a call whose pull fails counts as one failure, not two.
    sibling: Option<u64>,
    /// Its call has already been counted as failed (by the sibling).
    call_failed: bool,
}

#[derive(Debug)]
struct Txn {
    bytes: Option<Vec<u8>>,
    branch: Box<str>,
    invite: bool,
    interval: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKind {
    Timeout,
    Retransmit,
}

/// Runs one load thread to the end of its schedule and the last reply or timeout.
pub fn run_thread(
    cfg: Arc<Config>,
    thread: usize,
    start: Instant,
    run_id: u32,
    stop: Arc<AtomicBool>,
    tx: Sender<Update>,
) {
    if let Some(cores) = &cfg.cores {
        pin_to(cores[thread % cores.len()]);
    }
    // Sleep precisely: the default 50 µs timer slack would blur the schedule.
    // SAFETY: PR_SET_TIMERSLACK only changes this thread's timer slack.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong);
    }
    let conns = cfg.connections / cfg.threads + usize::from(thread < cfg.connections % cfg.threads);
    let transport: Result<Box<dyn Transport>, std::io::Error> = match cfg.transport {
        TransportKind::Udp => UdpTransport::open(cfg.target, conns, cfg.batch, cfg.sockbuf)
            .map(|t| Box::new(t) as Box<dyn Transport>),
        TransportKind::Tcp => TcpTransport::open(cfg.target, conns, cfg.sockbuf)
            .map(|t| Box::new(t) as Box<dyn Transport>),
    };
    let transport = match transport {
        Ok(t) => t,
        Err(e) => {
            let _ = tx.send(Update::Failed {
                thread,
                error: format!("cannot open {:?} to {}: {e}", cfg.transport, cfg.target),
            });
            return;
        }
    };
    let limit = cfg
        .requests
        .map(|r| r + (cfg.warmup.as_secs_f64() * cfg.rate).ceil() as u64);
    let schedule = Schedule::new(
        start,
        cfg.rate,
        thread,
        cfg.threads,
        cfg.send_window(),
        limit,
    );
    let msg_body = message_body(cfg.body_size);
    let mut e = Engine {
        metrics: cfg.scenario.metrics(),
        stats: Stats::new(cfg.scenario.metrics()),
        measure_from: start + cfg.warmup,
        retransmit: cfg.retransmit && !transport.reliable(),
        cfg,
        thread,
        schedule,
        state: State {
            pending: HashMap::new(),
            index: HashMap::new(),
            timers: BinaryHeap::new(),
            timeouts: VecDeque::new(),
            next_id: 0,
            branch_seq: 0,
            out: Vec::new(),
        },
        locals: (0..transport.conns())
            .map(|c| transport.local_addr(c))
            .collect(),
        local_text: (0..transport.conns())
            .map(|c| transport.local_addr(c).to_string())
            .collect(),
        run_hex: format!("{run_id:08x}"),
        transport,
        rx_bytes: Vec::new(),
        rx_ends: Vec::new(),
        msg_body,
        local_calls: 0,
    };
    let schedule_done = e.run(start, &stop, &tx);
    let stats = Box::new(std::mem::replace(&mut e.stats, Stats::new(e.metrics)));
    let _ = tx.send(Update::Done {
        thread,
        stats,
        schedule_done,
    });
}

fn pin_to(core: usize) {
    // SAFETY: cpu_set_t is a plain bitmask; CPU_SET stays within it for core < CPU_SETSIZE, and
    // sched_setaffinity(0, ..) affects only the calling thread.
    unsafe {
        if core >= libc::CPU_SETSIZE as usize {
            return;
        }
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// A reply's (Call-ID, CSeq number), looked up in the index without copying the Call-ID.
struct KeyRef<'a>(&'a str, u32);

impl Hash for KeyRef<'_> {
    fn hash<H: Hasher>(&self, h: &mut H) {
        // As `(Rc<str>, u32)` hashes: field by field (an `Rc<str>` hashes as its `str`).
        self.0.hash(h);
        self.1.hash(h);
    }
}

impl Equivalent<(Rc<str>, u32)> for KeyRef<'_> {
    fn equivalent(&self, key: &(Rc<str>, u32)) -> bool {
        *key.0 == *self.0 && key.1 == self.1
    }
}

impl State {
    fn add_timeout(&mut self, deadline: Instant, id: u64) {
        if self
            .timeouts
            .back()
            .is_none_or(|&(last, _)| last <= deadline)
        {
            self.timeouts.push_back((deadline, id));
        } else {
            self.timers
                .push(Reverse((deadline, id, TimerKind::Timeout)));
        }
    }
}

struct State {
    pending: HashMap<u64, Pending>,
    index: HashMap<(Rc<str>, u32), u64>,
    /// Retransmissions, and timeouts that would break `timeouts`' order.
    timers: BinaryHeap<Reverse<(Instant, u64, TimerKind)>>,
    /// Timeouts in deadline order. Nearly all are pushed in that order (a fixed timeout from a
    /// schedule that only moves forward), so a queue does what the heap would in O(1).
    timeouts: VecDeque<(Instant, u64)>,
    next_id: u64,
    branch_seq: u64,
    out: Vec<Outgoing>,
}

struct Engine {
    cfg: Arc<Config>,
    metrics: &'static [&'static str],
    stats: Stats,
    measure_from: Instant,
    retransmit: bool,
    thread: usize,
    schedule: Schedule,
    state: State,
    transport: Box<dyn Transport>,
    /// Our address on each socket, and as `ip:port` text for the requests.
    locals: Vec<SocketAddr>,
    local_text: Vec<String>,
    /// `{run_id:08x}`, the start of every Call-ID, tag and branch.
    run_hex: String,
    /// Replies read in one pass, back to back, and where each ends.
    rx_bytes: Vec<u8>,
    rx_ends: Vec<usize>,
    /// The MESSAGE body (`--body-size`).
    msg_body: Vec<u8>,
    local_calls: u64,
}

/// Everything about a reply the engine needs, borrowed from the receive buffer.
struct Reply<'a> {
    code: u16,
    call_id: &'a str,
    cseq: u32,
    to_tag: Option<&'a str>,
    msgid: Option<&'a str>,
}

fn parse_reply(buf: &[u8]) -> Result<Option<Reply<'_>>, &'static str> {
    let mut headers = [EMPTY_HEADER; 64];
    let msg = match sip::parse(buf, &mut headers, Framing::Datagram) {
        Ok(s) => s.complete().ok_or("reply: incomplete")?,
        Err(_) => return Err("reply: unparseable SIP"),
    };
    let Some(code) = msg.status_code() else {
        return Ok(None);
    };
    let call_id = msg.call_id().ok_or("reply: no Call-ID")?;
    let cseq = msg.cseq().ok_or("reply: no CSeq")?;
    // Not UTF-8: then not one of ours either; it is counted as unmatched.
    Ok(Some(Reply {
        code,
        call_id: std::str::from_utf8(call_id).unwrap_or(""),
        cseq: cseq.number,
        to_tag: msg.to_tag().and_then(|t| std::str::from_utf8(t).ok()),
        msgid: msg
            .header("X-Repo-Msgid")
            .and_then(|t| std::str::from_utf8(t).ok()),
    }))
}

impl Engine {
    fn run(&mut self, start: Instant, stop: &AtomicBool, tx: &Sender<Update>) -> Instant {
        let mut next_flush = start + INTERVAL;
        let mut schedule_done: Option<Instant> = None;
        let mut fds: Vec<libc::pollfd> = Vec::new();
        loop {
            let mut now = Instant::now();
            // 1. Start every call that is due (bounded, so replies are still read in a burst).
            let mut started = 0;
            while started < 4 * self.cfg.batch.max(16) {
                let Some(due) = self.schedule.next_due(now) else {
                    break;
                };
                self.start_call(due, now);
                started += 1;
            }
            if schedule_done.is_none() && self.schedule.finished() {
                schedule_done = Some(now);
            }
            // 2. Send.
            self.transport.send(&mut self.state.out, &mut self.stats);
            // 3. Receive.
            let mut bytes = std::mem::take(&mut self.rx_bytes);
            let mut ends = std::mem::take(&mut self.rx_ends);
            bytes.clear();
            ends.clear();
            self.transport.recv(
                &mut |m| {
                    bytes.extend_from_slice(m);
                    ends.push(bytes.len());
                },
                &mut self.stats,
            );
            let got_replies = !ends.is_empty();
            if got_replies {
                now = Instant::now();
                let mut start = 0;
                for &end in &ends {
                    self.on_message(&bytes[start..end], now);
                    start = end;
                }
            }
            self.rx_bytes = bytes;
            self.rx_ends = ends;
            // 4. Timers.
            self.fire_timers(now);
            // 5. Hand over counters.
            if now >= next_flush {
                let stats = Box::new(std::mem::replace(&mut self.stats, Stats::new(self.metrics)));
                let _ = tx.send(Update::Interval {
                    thread: self.thread,
                    stats,
                });
                while next_flush <= now {
                    next_flush += INTERVAL;
                }
            }
            let stopping = stop.load(Ordering::Relaxed);
            if stopping {
                self.abandon();
            }
            if (self.schedule.finished() || stopping)
                && self.state.pending.is_empty()
                && self.state.out.is_empty()
            {
                return schedule_done.unwrap_or(now);
            }
            if got_replies || !self.state.out.is_empty() && started > 0 {
                continue;
            }
            // 6. Sleep until the next call, timer or flush, or until a socket is ready.
            let mut wake = next_flush;
            if let Some(d) = self.schedule.peek() {
                wake = wake.min(d.intended);
            }
            if let Some(Reverse((t, _, _))) = self.state.timers.peek() {
                wake = wake.min(*t);
            }
            if let Some((t, _)) = self.state.timeouts.front() {
                wake = wake.min(*t);
            }
            let now = Instant::now();
            if wake <= now + SPIN_BELOW {
                // Too soon to be worth a sleep: going to sleep and waking costs more than the
                // wait, and wakes late. Keep polling the sockets instead.
                std::hint::spin_loop();
                continue;
            }
            let wait = (wake - now).min(Duration::from_millis(100));
            fds.clear();
            self.transport
                .poll_fds(&mut fds, !self.state.out.is_empty());
            let ts = libc::timespec {
                tv_sec: wait.as_secs() as libc::time_t,
                tv_nsec: wait.subsec_nanos() as libc::c_long,
            };
            // SAFETY: `fds` is a live array of pollfd of the given length; `ts` outlives the call.
            unsafe {
                libc::ppoll(
                    fds.as_mut_ptr(),
                    fds.len() as libc::nfds_t,
                    &ts,
                    std::ptr::null(),
                );
            }
        }
    }

    /// On --stop: count what is outstanding as timeouts so the books balance.
    fn abandon(&mut self) {
        let ids: Vec<u64> = self.state.pending.keys().copied().collect();
        for id in ids {
            self.time_out(id, true);
        }
        self.state.out.clear();
    }

    fn branch(&mut self) -> String {
        self.state.branch_seq += 1;
        let mut num = itoa::Buffer::new();
        let mut seq = itoa::Buffer::new();
        let thread = num.format(self.thread);
        let seq = seq.format(self.state.branch_seq);
        // Exact capacity: turning it into a `Box<str>` later then costs no reallocation.
        let mut b = String::with_capacity(8 + self.run_hex.len() + thread.len() + seq.len() + 2);
        b.push_str("z9hG4bK-");
        b.push_str(&self.run_hex);
        b.push('-');
        b.push_str(thread);
        b.push('-');
        b.push_str(seq);
        b
    }

    fn start_call(&mut self, due: Due, now: Instant) {
        let measured = due.intended >= self.measure_from;
        if measured {
            self.stats.calls += 1;
            let lag = now.saturating_duration_since(due.intended);
            self.stats
                .send_lag
                .saturating_record((lag.as_micros() as u64).max(1));
        } else {
            self.stats.warmup_calls += 1;
        }
        let cpc = self.cfg.calls_per_callid;
        let mut num = itoa::Buffer::new();
        let digits = num.format(due.seq / cpc);
        let mut call_id = String::with_capacity(self.run_hex.len() + 1 + digits.len() + 14);
        call_id.push_str(&self.run_hex);
        call_id.push('-');
        call_id.push_str(digits);
        call_id.push_str("@sipshard-load");
        let cseq = ((due.seq % cpc) * 2 + 1) as u32;
        let conn = (self.local_calls % self.locals.len() as u64) as usize;
        self.local_calls += 1;
        let digits = num.format(due.seq);
        let mut from_tag = String::with_capacity(self.run_hex.len() + digits.len());
        from_tag.push_str(&self.run_hex);
        from_tag.push_str(digits);
        let branch = self.branch();
        let local = self.locals[conn];
        let (method, bytes) = if let Some(t) = &self.cfg.template {
            let bytes = t.render(&TemplateVars {
                call_id: &call_id,
                cseq,
                branch: &branch,
                from_tag: &from_tag,
                seq: due.seq,
                local,
                remote: self.cfg.target,
                transport: self.cfg.transport.via_token(),
            });
            (template_method(&bytes), bytes)
        } else {
            let mut extra = Vec::new();
            let sdp;
            let (method, body) = match self.cfg.scenario {
                ScenarioKind::Options => ("OPTIONS", None),
                ScenarioKind::Message | ScenarioKind::ParkPull => {
                    ("MESSAGE", Some(&self.msg_body[..]))
                }
                ScenarioKind::ParkExpire => {
                    extra.push(format!(
                        "Expires: {}",
                        self.cfg.expire.as_secs_f64().ceil() as u64
                    ));
                    ("MESSAGE", Some(&self.msg_body[..]))
                }
                ScenarioKind::Invite => {
                    sdp = sdp_offer(local, due.seq);
                    ("INVITE", Some(&sdp[..]))
                }
                // Run by crate::gw, never by this engine (run::run_with_stop sends them there).
                ScenarioKind::GwSipToMsrp
                | ScenarioKind::GwMsrpToSip
                | ScenarioKind::GwIdleSessions => ("OPTIONS", None),
            };
            let ctype = if method == "INVITE" {
                "application/sdp"
            } else {
                "text/plain"
            };
            let bytes = build_request(&RequestParams {
                method,
                ruri: &self.cfg.ruri,
                local: &self.local_text[conn],
                transport: self.cfg.transport.via_token(),
                call_id: &call_id,
                cseq,
                branch: &branch,
                from_tag: &from_tag,
                to_tag: None,
                extra: &extra,
                body: body.map(|b| (ctype, b)),
            });
            (method == "INVITE", bytes)
        };
        let invite = method;
        self.send_txn(
            TxnStart {
                key: (Rc::from(call_id), cseq),
                step: Step::First,
                metric: 0,
                origin: due.intended,
                measured,
                conn,
                call_seq: due.seq,
                from_tag: from_tag.into(),
                branch: branch.into(),
                invite,
            },
            bytes,
            now,
        );
    }

    fn send_txn(&mut self, t: TxnStart, bytes: Vec<u8>, now: Instant) -> u64 {
        if t.measured {
            self.stats.sent += 1;
        }
        let id = self.state.next_id;
        self.state.next_id += 1;
        let keep = self.retransmit.then(|| bytes.clone());
        self.state.out.push(Outgoing {
            conn: t.conn,
            bytes,
        });
        let deadline = t.origin.max(now) + self.timeout_for(t.step);
        self.state.add_timeout(deadline, id);
        if keep.is_some() {
            self.state
                .timers
                .push(Reverse((now + T1, id, TimerKind::Retransmit)));
        }
        self.index_insert(t.key.clone(), id);
        self.state.pending.insert(
            id,
            Pending {
                key: t.key,
                step: t.step,
                metric: t.metric,
                origin: t.origin,
                measured: t.measured,
                conn: t.conn,
                txn: Some(Txn {
                    bytes: keep,
                    branch: t.branch,
                    invite: t.invite,
                    interval: T1,
                }),
                call_seq: t.call_seq,
                from_tag: t.from_tag,
                sibling: None,
                call_failed: false,
            },
        );
        id
    }

    /// Makes `a` and `b` siblings: outstanding together for one call.
    fn link(&mut self, a: u64, b: u64) {
        for (x, y) in [(a, b), (b, a)] {
            if let Some(e) = self.state.pending.get_mut(&x) {
                e.sibling = Some(y);
            }
        }
    }

    fn timeout_for(&self, _step: Step) -> Duration {
        self.cfg.timeout
    }

    fn index_insert(&mut self, key: (Rc<str>, u32), id: u64) {
        if let Some(old) = self.state.index.insert(key, id) {
            // A Call-ID + CSeq still outstanding was reused (--calls-per-callid wrapping onto a
            // slow call): the older one can no longer be matched.
            if let Some(p) = self.state.pending.get(&old) {
                if p.measured {
                    self.stats
                        .error("call reused a Call-ID + CSeq still outstanding");
                }
            }
            self.time_out(old, false);
        }
    }

    fn expect(
        &mut self,
        p: &Pending,
        step: Step,
        metric: usize,
        origin: Instant,
        now: Instant,
    ) -> u64 {
        let id = self.state.next_id;
        self.state.next_id += 1;
        let deadline = origin.max(now) + self.cfg.timeout;
        self.state.add_timeout(deadline, id);
        self.state.index.insert(p.key.clone(), id);
        self.state.pending.insert(
            id,
            Pending {
                key: p.key.clone(),
                step,
                metric,
                origin,
                measured: p.measured,
                conn: p.conn,
                txn: None,
                call_seq: p.call_seq,
                from_tag: p.from_tag.clone(),
                sibling: None,
                call_failed: false,
            },
        );
        id
    }

    fn remove(&mut self, id: u64) -> Option<Pending> {
        let p = self.state.pending.remove(&id)?;
        if self.state.index.get(&p.key) == Some(&id) {
            self.state.index.remove(&p.key);
        }
        Some(p)
    }

    /// Entry `id` waited in vain; `abandoned` when the run was stopped under it (Ctrl-C), which
    /// is a timeout for the books but not the call's failure.
    fn time_out(&mut self, id: u64, abandoned: bool) {
        let Some(p) = self.remove(id) else {
            return;
        };
        if p.measured {
            if p.txn.is_some() {
                self.stats.timeouts += 1;
            }
            self.stats.metrics[p.metric].timeouts += 1;
            if !abandoned {
                self.fail(&p);
            }
        }
    }

    /// Counts `p`'s call as failed, once per call.
    fn fail(&mut self, p: &Pending) {
        if !p.measured || p.call_failed {
            return;
        }
        self.stats.failed += 1;
        if let Some(s) = p.sibling.and_then(|s| self.state.pending.get_mut(&s)) {
            s.call_failed = true;
        }
    }

    /// Whether a final reply with `code` is what the scenario waits for at `step`. The first
    /// request of `options` and `message`, and invite's BYE, take any final reply: they measure
    /// the server's answer, whatever it is (sipshard's repository answers OPTIONS 405, parks
    /// INVITEs with 202 and so holds no dialog for the BYE, which it answers 405).
    fn expected(&self, step: Step, code: u16) -> Result<(), &'static str> {
        let ok = match step {
            Step::First => match self.cfg.scenario {
                ScenarioKind::ParkPull | ScenarioKind::ParkExpire => code == 202,
                ScenarioKind::Invite => (200..300).contains(&code),
                _ => true,
            },
            Step::Trigger | Step::Pulled => (200..300).contains(&code),
            Step::Bye => true,
            Step::Expired => code == 408,
        };
        if ok {
            return Ok(());
        }
        // The first request's refusals are counted by kind in next_step; a BYE is never here.
        Err(match step {
            Step::First | Step::Bye => "",
            Step::Trigger => "trigger not answered 2xx",
            Step::Pulled => "parked MESSAGE answered, but not 2xx (200 Pulled)",
            Step::Expired => "parked MESSAGE answered, but not 408 (expired)",
        })
    }

    fn fire_timers(&mut self, now: Instant) {
        while let Some(&(t, id)) = self.state.timeouts.front() {
            if t > now {
                break;
            }
            self.state.timeouts.pop_front();
            self.time_out(id, false);
        }
        while let Some(Reverse((t, id, kind))) = self.state.timers.peek().copied() {
            if t > now {
                break;
            }
            self.state.timers.pop();
            match kind {
                TimerKind::Timeout => {
                    // Ids are never reused: a timeout for a live id is that entry's.
                    self.time_out(id, false);
                }
                TimerKind::Retransmit => self.retransmit(id, now),
            }
        }
    }

    fn retransmit(&mut self, id: u64, now: Instant) {
        let Some(p) = self.state.pending.get_mut(&id) else {
            return;
        };
        let Some(txn) = p.txn.as_mut() else {
            return;
        };
        let Some(bytes) = &txn.bytes else {
            return;
        };
        self.state.out.push(Outgoing {
            conn: p.conn,
            bytes: bytes.clone(),
        });
        txn.interval = if txn.invite {
            txn.interval * 2
        } else {
            (txn.interval * 2).min(T2)
        };
        let next = now + txn.interval;
        if p.measured {
            self.stats.retransmits += 1;
        }
        self.state
            .timers
            .push(Reverse((next, id, TimerKind::Retransmit)));
    }

    fn on_message(&mut self, buf: &[u8], now: Instant) {
        let reply = match parse_reply(buf) {
            Ok(Some(r)) => r,
            Ok(None) => {
                self.stats.error("request from server (ignored)");
                return;
            }
            Err(kind) => {
                self.stats.error(kind);
                return;
            }
        };
        let Some(&id) = self.state.index.get(&KeyRef(reply.call_id, reply.cseq)) else {
            self.stats
                .error("unmatched reply (late, duplicate or retransmitted)");
            return;
        };
        let measured = self.state.pending[&id].measured;
        let is_txn = self.state.pending[&id].txn.is_some();
        if reply.code < 200 {
            if measured {
                self.stats.code(reply.code);
            }
            if let Some(txn) = self.state.pending.get_mut(&id).and_then(|p| p.txn.as_mut()) {
                // RFC 3261 §17.1.1.2 / §17.1.2.2: a provisional reply stops INVITE
                // retransmissions and slows the others to T2.
                if txn.invite {
                    txn.bytes = None;
                } else {
                    txn.interval = T2;
                }
            }
            return;
        }
        if !is_txn && reply.code == 202 {
            // A retransmitted 202 for the parked MESSAGE, not the reply we now wait for.
            if measured {
                self.stats.error("duplicate 202 for a parked MESSAGE");
            }
            return;
        }
        let p = self.remove(id).expect("indexed entries are pending");
        if p.measured {
            self.stats.code(reply.code);
            if is_txn {
                self.stats.answered += 1;
            }
            self.stats.metrics[p.metric].record(now.saturating_duration_since(p.origin));
        }
        if let Err(kind) = self.expected(p.step, reply.code) {
            if p.measured && !kind.is_empty() {
                self.stats.error(kind);
            }
            self.fail(&p);
        }
        self.next_step(p, &reply, now);
    }

    fn next_step(&mut self, p: Pending, reply: &Reply, now: Instant) {
        match (self.cfg.scenario, p.step) {
            (ScenarioKind::ParkPull, Step::First) => {
                if reply.code != 202 {
                    if p.measured {
                        self.stats.error("park refused (MESSAGE not answered 202)");
                    }
                    return;
                }
                if reply.msgid.is_none() && p.measured {
                    self.stats.error("202 without X-Repo-Msgid");
                }
                // The pulled MESSAGE comes back on the parked MESSAGE's Call-ID and CSeq.
                let pulled = self.expect(&p, Step::Pulled, 2, now, now);
                let trigger_cid = format!("{}-t", p.key.0);
                let mut extra = vec![format!("X-Pull-CallID: {}", p.key.0)];
                if let Some(id) = &reply.msgid {
                    extra.push(format!("X-Pull-Msgid: {id}"));
                }
                let (method, body) = match self.cfg.trigger {
                    TriggerMethod::Options => ("OPTIONS", None),
                    TriggerMethod::Message => ("MESSAGE", Some(message_body(16))),
                };
                let trigger = self.send_followup(
                    &p,
                    method,
                    (trigger_cid, p.key.1),
                    None,
                    &extra,
                    body.as_deref().map(|b| ("text/plain", b)),
                    Step::Trigger,
                    1,
                    now,
                );
                self.link(pulled, trigger);
            }
            (ScenarioKind::ParkExpire, Step::First) => {
                if reply.code != 202 {
                    if p.measured {
                        self.stats.error("park refused (MESSAGE not answered 202)");
                    }
                    return;
                }
                let origin = p.origin + self.cfg.expire;
                self.expect(&p, Step::Expired, 1, origin, now);
            }
            (ScenarioKind::Invite, Step::First) => {
                let Some(txn) = &p.txn else { return };
                let to_tag = reply.to_tag;
                // ACK: for a 2xx a new transaction (new branch); for an error, the INVITE's own
                // branch (RFC 3261 §17.1.1.3, §13.2.2.4).
                let branch = if (200..300).contains(&reply.code) {
                    self.branch()
                } else {
                    txn.branch.to_string()
                };
                let ack = build_request(&RequestParams {
                    method: "ACK",
                    ruri: &self.cfg.ruri,
                    local: &self.local_text[p.conn],
                    transport: self.cfg.transport.via_token(),
                    call_id: &p.key.0,
                    cseq: p.key.1,
                    branch: &branch,
                    from_tag: &p.from_tag,
                    to_tag,
                    extra: &[],
                    body: None,
                });
                self.state.out.push(Outgoing {
                    conn: p.conn,
                    bytes: ack,
                });
                if !(200..300).contains(&reply.code) {
                    if p.measured {
                        self.stats.error("INVITE rejected");
                    }
                    return;
                }
                let key = (p.key.0.to_string(), p.key.1 + 1);
                self.send_followup(&p, "BYE", key, to_tag, &[], None, Step::Bye, 1, now);
            }
            _ => {}
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn send_followup(
        &mut self,
        p: &Pending,
        method: &str,
        key: (String, u32),
        to_tag: Option<&str>,
        extra: &[String],
        body: Option<(&str, &[u8])>,
        step: Step,
        metric: usize,
        now: Instant,
    ) -> u64 {
        let branch = self.branch();
        let bytes = build_request(&RequestParams {
            method,
            ruri: &self.cfg.ruri,
            local: &self.local_text[p.conn],
            transport: self.cfg.transport.via_token(),
            call_id: &key.0,
            cseq: key.1,
            branch: &branch,
            from_tag: &p.from_tag,
            to_tag,
            extra,
            body,
        });
        self.send_txn(
            TxnStart {
                key: (Rc::from(key.0), key.1),
                step,
                metric,
                origin: now,
                measured: p.measured,
                conn: p.conn,
                call_seq: p.call_seq,
                from_tag: p.from_tag.clone(),
                branch: branch.into(),
                invite: false,
            },
            bytes,
            now,
        )
    }
}

struct TxnStart {
    key: (Rc<str>, u32),
    step: Step,
    metric: usize,
    origin: Instant,
    measured: bool,
    conn: usize,
    call_seq: u64,
    from_tag: Box<str>,
    branch: Box<str>,
    invite: bool,
}

/// Whether a rendered template is an INVITE (for the retransmission rules).
fn template_method(bytes: &[u8]) -> bool {
    bytes.starts_with(b"INVITE ")
}
