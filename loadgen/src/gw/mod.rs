//! The gateway scenarios: load through sipshard's SIP MESSAGE <-> MSRP gateway, with the load
//! generator playing both ends (docs/loadgen.md, "The gateway scenarios").
//!
//! - `gw-sip-to-msrp` ([`sip_to_msrp`]): SIP users alice_i send MESSAGEs to bob_i; the gateway
//!   INVITEs bob_i (we answer, passive), connects to our MSRP listener and delivers each MESSAGE
//!   as a SEND. Latency: MESSAGE due -> its SEND read (`delivery`), and MESSAGE due -> its
//!   final reply, 202 expected (`reply`).
//! - `gw-msrp-to-sip` ([`msrp_to_sip`]): MSRP users carol_i INVITE dave_i through the gateway and
//!   connect to its `a=path`; each SEND becomes a MESSAGE to dave_i, which we answer 200.
//!   Latency: SEND due -> MESSAGE read (`delivery`), and SEND due -> its MSRP response, 200
//!   expected (`msrp-reply`).
//! - `gw-idle-sessions` ([`idle`]): INVITEs answered by `msrp_answer`, ACKed and then left
//!   alone, to measure what an idle session costs the server.
//!
//! Why a loop of its own instead of the engine's: a delivery arrives on the other side of the
//! gateway, in a message the gateway wrote, so a call is not one transaction with its reply;
//! and requests come from the server (INVITE, MESSAGE, BYE) and must be answered. The parts
//! that make the engine honest are kept: the same open-loop [`Schedule`], latencies from each
//! call's intended time, bounded waits (every call times out after `--timeout`), the same
//! [`Stats`] and one-second [`Update`]s, so reports, `--out` files and `--ramp` work unchanged.
//!
//! A run has two phases. Set-up first, unmeasured: every thread establishes its share of the
//! `--sessions` (a window of them at a time) and says so; a thread that cannot fails the run
//! with the reasons. Then, once all threads are ready, the main thread picks the common start
//! and the scheduled load runs on the established sessions.

pub mod idle;
pub mod msrp_to_sip;
pub mod net;
pub mod sip_to_msrp;
pub mod wire;

use crate::config::Config;
use crate::engine::{Update, INTERVAL, SPIN_BELOW};
use crate::scenario::ScenarioKind;
use crate::schedule::{Due, Schedule};
use crate::stats::Stats;
use net::{Framed, Net, Ready};
use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Sessions a thread sets up at once: enough to keep the gateway busy, few enough that a burst
/// of INVITEs and connections does not overflow a socket buffer or the listen backlog.
pub const SETUP_WINDOW: usize = 256;
/// The least time a session is given to come up, whatever `--timeout` says.
pub const MIN_SETUP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the main thread waits for every thread's set-up, beyond the sessions' own timeouts
/// (threads report on their own; this only bounds a thread that hangs).
const SETUP_GRACE: Duration = Duration::from_secs(10);

/// What a gateway scenario does on its thread. The driver (`drive`) owns the loop; a flow
/// reacts to what arrives and says what is due.
pub trait Flow {
    /// The thread's sockets (and its counters, `net().stats`).
    fn net(&mut self) -> &mut Net;
    /// A SIP message read from the UDP socket.
    fn on_sip(&mut self, msg: &[u8], from: SocketAddr, now: Instant);
    /// An MSRP frame read on connection `conn`.
    fn on_frame(&mut self, conn: usize, frame: &[u8], now: Instant);
    /// Connection `conn` was closed by the far end (or failed).
    fn on_closed(&mut self, conn: usize, now: Instant);
    /// Set-up: starts what may start and expires what took too long; `Some` once every session
    /// is up (a line for the operator) or some could not be (why).
    fn setup(&mut self, now: Instant) -> Option<Result<String, String>>;
    /// Starts scheduled call `due`.
    fn start_call(&mut self, due: Due, measured: bool, now: Instant);
    /// Times out what waited too long.
    fn fire_timers(&mut self, now: Instant);
    /// The next time [`Flow::fire_timers`] has something to do.
    fn next_timer(&self) -> Option<Instant>;
    /// No call is outstanding. (Bytes still queued do not count: a peer that stops reading
    /// must not keep the run from ending; the calls they carried time out.)
    fn idle(&self) -> bool;
    /// On stop: everything outstanding counts as timed out.
    fn abandon(&mut self);
}

/// What a thread says after its set-up.
type ReadyMsg = (usize, Result<String, String>);

/// Starts the load threads of a gateway scenario, waits until all have set up their sessions,
/// and returns them with the common start instant. Writes one line per thread to `progress`
/// (unless `--quiet`).
/// On a failed set-up the threads are told to quit and the reasons are returned.
pub fn start(
    cfg: &Arc<Config>,
    run_id: u32,
    stop: &Arc<AtomicBool>,
    tx: &Sender<Update>,
    progress: &mut dyn Write,
) -> Result<(Vec<JoinHandle<()>>, Instant), String> {
    let (ready_tx, ready_rx) = mpsc::channel::<ReadyMsg>();
    let mut handles = Vec::new();
    let mut gos = Vec::new();
    for t in 0..cfg.threads {
        let (go_tx, go_rx) = mpsc::channel::<Option<Instant>>();
        gos.push(go_tx);
        let (cfg, stop, tx, ready) = (cfg.clone(), stop.clone(), tx.clone(), ready_tx.clone());
        let h = std::thread::Builder::new()
            .name(format!("gw-load-{t}"))
            .spawn(move || thread_main(cfg, t, run_id, stop, tx, ready, go_rx))
            .map_err(|e| format!("cannot start a load thread: {e}"))?;
        handles.push(h);
    }
    drop(ready_tx);
    // Each thread's set-up is bounded (every session has a deadline, a window at a time);
    // this bounds a thread that hangs all the same.
    let windows = (cfg.sessions / cfg.threads.max(1))
        .div_ceil(SETUP_WINDOW)
        .max(1) as u32;
    let bound = Instant::now() + setup_timeout(cfg) * windows + SETUP_GRACE;
    let mut failures = Vec::new();
    let mut reported = 0;
    while reported < cfg.threads {
        let wait = bound.saturating_duration_since(Instant::now());
        match ready_rx.recv_timeout(wait.min(Duration::from_millis(200))) {
            Ok((t, Ok(line))) => {
                reported += 1;
                if !cfg.quiet {
                    let _ = writeln!(progress, "[set-up] thread {t}: {line}");
                }
            }
            Ok((t, Err(e))) => {
                reported += 1;
                failures.push(format!("thread {t}: {e}"));
            }
            Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < bound => {
                if stop.load(Ordering::Relaxed) {
                    failures.push("interrupted during the set-up".into());
                    break;
                }
            }
            Err(_) => {
                failures.push(format!(
                    "{} thread(s) did not finish the set-up",
                    cfg.threads - reported
                ));
                break;
            }
        }
    }
    if !failures.is_empty() {
        stop.store(true, Ordering::Relaxed);
        for g in &gos {
            let _ = g.send(None);
        }
        for h in handles {
            let _ = h.join();
        }
        return Err(format!("gateway set-up failed: {}", failures.join("; ")));
    }
    // As the engine's runs do: a little head start so every thread is waiting when it is due.
    let start = Instant::now() + Duration::from_millis(20);
    for g in &gos {
        let _ = g.send(Some(start));
    }
    Ok((handles, start))
}

/// How long one session may take to come up.
pub fn setup_timeout(cfg: &Config) -> Duration {
    cfg.timeout.max(MIN_SETUP_TIMEOUT)
}

fn thread_main(
    cfg: Arc<Config>,
    thread: usize,
    run_id: u32,
    stop: Arc<AtomicBool>,
    tx: Sender<Update>,
    ready: Sender<ReadyMsg>,
    go: Receiver<Option<Instant>>,
) {
    if let Some(cores) = &cfg.cores {
        pin_to(cores[thread % cores.len()]);
    }
    // Sleep precisely, as the engine's threads do.
    // SAFETY: PR_SET_TIMERSLACK only changes this thread's timer slack.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong);
    }
    let run = format!("{run_id:08x}");
    let ctx = Ctx {
        cfg: &cfg,
        thread,
        stop: &stop,
        tx: &tx,
    };
    let made = match cfg.scenario {
        ScenarioKind::GwSipToMsrp => {
            sip_to_msrp::SipToMsrp::new(&cfg, thread, &run).map(|f| drive(f, &ctx, &ready, &go))
        }
        ScenarioKind::GwMsrpToSip => {
            msrp_to_sip::MsrpToSip::new(&cfg, thread, &run).map(|f| drive(f, &ctx, &ready, &go))
        }
        ScenarioKind::GwIdleSessions => {
            idle::IdleSessions::new(&cfg, thread, &run).map(|f| drive(f, &ctx, &ready, &go))
        }
        other => Err(std::io::Error::other(format!(
            "{} is not a gateway scenario",
            other.name()
        ))),
    };
    if let Err(e) = made {
        let _ = ready.send((thread, Err(format!("cannot open sockets: {e}"))));
    }
}

/// What the driver needs of the run.
struct Ctx<'a> {
    cfg: &'a Config,
    thread: usize,
    stop: &'a AtomicBool,
    tx: &'a Sender<Update>,
}

/// Runs a flow: set-up, report, wait for the start, load, report.
fn drive<F: Flow>(
    mut f: F,
    ctx: &Ctx<'_>,
    ready: &Sender<ReadyMsg>,
    go: &Receiver<Option<Instant>>,
) {
    let mut io = Pump::default();
    let result = loop {
        let now = Instant::now();
        if let Some(r) = f.setup(now) {
            f.net().flush();
            break r;
        }
        if ctx.stop.load(Ordering::Relaxed) {
            break Err("interrupted".into());
        }
        io.pump(&mut f, Duration::from_millis(1));
    };
    let stats = &f.net().stats;
    let (errors, codes) = (&stats.errors, &stats.codes);
    let result = result.map_err(|e| {
        if errors.is_empty() {
            e
        } else {
            format!("{e} (seen meanwhile: {errors:?}, refusals by code: {codes:?})")
        }
    });
    let ok = result.is_ok();
    let _ = ready.send((ctx.thread, result));
    if !ok {
        return;
    }
    let Ok(Some(start)) = go.recv() else {
        return;
    };
    let metrics = ctx.cfg.scenario.metrics();
    // The set-up is not part of the run's books.
    f.net().stats = Stats::new(metrics);
    let schedule_done = load(&mut f, ctx, start, &mut io);
    let stats = Box::new(std::mem::replace(&mut f.net().stats, Stats::new(metrics)));
    let _ = ctx.tx.send(Update::Done {
        thread: ctx.thread,
        stats,
        schedule_done,
    });
}

/// The scheduled phase; returns when the last call was started.
fn load<F: Flow>(f: &mut F, ctx: &Ctx<'_>, start: Instant, io: &mut Pump) -> Instant {
    let cfg = ctx.cfg;
    let metrics = cfg.scenario.metrics();
    let measure_from = start + cfg.warmup;
    let limit = cfg
        .requests
        .map(|r| r + (cfg.warmup.as_secs_f64() * cfg.rate).ceil() as u64);
    let mut schedule = Schedule::new(
        start,
        cfg.rate,
        ctx.thread,
        cfg.threads,
        cfg.send_window(),
        limit,
    );
    let mut next_flush = start + INTERVAL;
    let mut schedule_done = None;
    loop {
        let now = Instant::now();
        let mut started = 0;
        while started < 256 {
            let Some(due) = schedule.next_due(now) else {
                break;
            };
            f.start_call(due, due.intended >= measure_from, now);
            started += 1;
        }
        if schedule_done.is_none() && schedule.finished() {
            schedule_done = Some(now);
        }
        let got = io.pump(f, Duration::ZERO);
        let now = Instant::now();
        f.fire_timers(now);
        if now >= next_flush {
            let stats = Box::new(std::mem::replace(&mut f.net().stats, Stats::new(metrics)));
            let _ = ctx.tx.send(Update::Interval {
                thread: ctx.thread,
                stats,
            });
            while next_flush <= now {
                next_flush += INTERVAL;
            }
        }
        let stopping = ctx.stop.load(Ordering::Relaxed);
        if stopping {
            f.abandon();
        }
        if (schedule.finished() || stopping) && f.idle() {
            f.net().flush();
            return schedule_done.unwrap_or(now);
        }
        if got || started > 0 {
            continue;
        }
        let mut wake = next_flush;
        if let Some(d) = schedule.peek() {
            wake = wake.min(d.intended);
        }
        if let Some(t) = f.next_timer() {
            wake = wake.min(t);
        }
        let now = Instant::now();
        if wake <= now + SPIN_BELOW {
            std::hint::spin_loop();
            continue;
        }
        io.pump(f, (wake - now).min(Duration::from_millis(100)));
    }
}

/// Scratch for one pass over the sockets, kept between passes so a pass allocates little.
#[derive(Default)]
struct Pump {
    ready: Ready,
    bytes: Vec<u8>,
    ends: Vec<(usize, SocketAddr)>,
}

impl Pump {
    /// Sends what is queued, waits up to `wait` for input, and hands what came to the flow.
    /// Returns whether anything came.
    fn pump<F: Flow>(&mut self, f: &mut F, wait: Duration) -> bool {
        f.net().flush();
        f.net().wait(wait, &mut self.ready);
        let mut got = false;
        let now = Instant::now();
        if self.ready.udp {
            self.bytes.clear();
            self.ends.clear();
            f.net().recv_udp(&mut self.bytes, &mut self.ends);
            let mut from = 0;
            for &(end, src) in &self.ends {
                f.on_sip(&self.bytes[from..end], src, now);
                from = end;
            }
            got |= !self.ends.is_empty();
        }
        if self.ready.listener {
            // Connections are bound to a session by their first SEND; nothing to do yet.
            got |= !f.net().accept().is_empty();
        }
        for k in 0..self.ready.conns.len() {
            let i = self.ready.conns[k];
            let open = f.net().read_conn(i);
            loop {
                match f.net().next_frame(i) {
                    Framed::Frame(frame) => {
                        got = true;
                        f.on_frame(i, &frame, now);
                    }
                    Framed::None => break,
                    Framed::Broken => {
                        f.on_closed(i, now);
                        break;
                    }
                }
            }
            if !open {
                got = true;
                f.on_closed(i, now);
            }
        }
        got
    }
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

/// The global user numbers of thread `thread` of `threads` out of `sessions`: `thread`,
/// `thread + threads`, ... (as the schedule deals calls out).
pub fn users_of(sessions: usize, thread: usize, threads: usize) -> Vec<u64> {
    (thread..sessions)
        .step_by(threads.max(1))
        .map(|u| u as u64)
        .collect()
}

/// The index among a thread's users of global user `u`, if it is the thread's.
pub fn local_user(u: u64, thread: usize, threads: usize, count: usize) -> Option<usize> {
    let threads = threads.max(1) as u64;
    if u % threads != thread as u64 {
        return None;
    }
    let k = usize::try_from(u / threads).ok()?;
    (k < count).then_some(k)
}

/// The thread's user for scheduled call `seq`: calls go round the thread's users in turn.
pub fn user_for_call(seq: u64, threads: usize, count: usize) -> usize {
    ((seq / threads.max(1) as u64) % count.max(1) as u64) as usize
}

/// One outstanding call.
#[derive(Debug, Clone, Copy)]
struct Entry {
    intended: Instant,
    measured: bool,
    user: usize,
    answered: bool,
    delivered: bool,
    /// Counted in `Stats::failed` already (a refusal), so its delivery's timeout is not again.
    failed: bool,
}

/// The calls of a thread still waiting for their answer (202, MSRP 200, 200 to INVITE) and,
/// in the two message scenarios, their delivery on the far side; their timeouts in deadline
/// order (deadlines come in schedule order, so a queue does what a heap would). Each call is
/// counted once: answered or timed out, delivered or timed out (`sent = answered + timeouts`).
pub struct Ledger {
    pending: HashMap<u64, Entry>,
    deadlines: VecDeque<(Instant, u64)>,
    timeout: Duration,
    answer_metric: usize,
    delivery_metric: Option<usize>,
}

/// Whether a delivery came in order, for [`Ledger::delivered`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// A call waited for it; it belongs to this user (the flow's index).
    Expected(usize),
    /// Nothing waited for it: late (after its timeout) or a duplicate. Counted as an error.
    Unexpected,
}

impl Ledger {
    /// A ledger whose answers are recorded in metric `answer_metric` and deliveries (if any) in
    /// `delivery_metric`.
    pub fn new(timeout: Duration, answer_metric: usize, delivery_metric: Option<usize>) -> Ledger {
        Ledger {
            pending: HashMap::new(),
            deadlines: VecDeque::new(),
            timeout,
            answer_metric,
            delivery_metric,
        }
    }

    /// A call was sent now (due at `intended`) for the flow's user `user`.
    pub fn open(
        &mut self,
        seq: u64,
        intended: Instant,
        measured: bool,
        user: usize,
        now: Instant,
        stats: &mut Stats,
    ) {
        if measured {
            stats.calls += 1;
            stats.sent += 1;
            let lag = now.saturating_duration_since(intended);
            stats
                .send_lag
                .saturating_record((lag.as_micros() as u64).max(1));
        } else {
            stats.warmup_calls += 1;
        }
        self.pending.insert(
            seq,
            Entry {
                intended,
                measured,
                user,
                answered: false,
                delivered: self.delivery_metric.is_none(),
                failed: false,
            },
        );
        // max() of two non-decreasing sequences: the queue stays in order.
        self.deadlines
            .push_back((intended.max(now) + self.timeout, seq));
    }

    /// Whether call `seq` is still waiting for its answer.
    pub fn awaits_answer(&self, seq: u64) -> bool {
        self.pending.get(&seq).is_some_and(|e| !e.answered)
    }

    /// A reply with `code` to call `seq`. A final one other than `expected` is counted as the
    /// error `refused`, and its delivery given up (it cannot come).
    pub fn answer(
        &mut self,
        seq: u64,
        code: u16,
        expected: u16,
        refused: &'static str,
        now: Instant,
        stats: &mut Stats,
    ) {
        let Some(e) = self.pending.get_mut(&seq) else {
            stats.error("unmatched reply (late, duplicate or retransmitted)");
            return;
        };
        if e.measured {
            stats.code(code);
        }
        if code < 200 {
            return;
        }
        if e.answered {
            stats.error("duplicate final reply");
            return;
        }
        e.answered = true;
        if e.measured {
            stats.answered += 1;
            stats.metrics[self.answer_metric].record(now.saturating_duration_since(e.intended));
        }
        if code != expected {
            stats.error(refused);
            if e.measured && !e.failed {
                e.failed = true;
                stats.failed += 1;
            }
            if !e.delivered {
                e.delivered = true;
                if let (true, Some(d)) = (e.measured, self.delivery_metric) {
                    stats.metrics[d].timeouts += 1;
                }
            }
        }
        if e.delivered {
            self.pending.remove(&seq);
        }
    }

    /// Call `seq`'s message arrived on the far side now.
    pub fn delivered(&mut self, seq: u64, now: Instant, stats: &mut Stats) -> Delivery {
        let Some(d) = self.delivery_metric else {
            return Delivery::Unexpected;
        };
        let Some(e) = self.pending.get_mut(&seq).filter(|e| !e.delivered) else {
            stats.error("delivery nothing waited for (late or duplicate)");
            return Delivery::Unexpected;
        };
        e.delivered = true;
        if e.measured {
            stats.metrics[d].record(now.saturating_duration_since(e.intended));
        }
        let user = e.user;
        if e.answered {
            self.pending.remove(&seq);
        }
        Delivery::Expected(user)
    }

    /// Call `seq` waited in vain; `abandoned` when the run was stopped under it (Ctrl-C), a
    /// timeout for the books but not a failed call.
    fn time_out(&mut self, seq: u64, abandoned: bool, stats: &mut Stats) {
        let Some(e) = self.pending.remove(&seq) else {
            return;
        };
        if !e.measured {
            return;
        }
        if !e.answered {
            stats.timeouts += 1;
            stats.metrics[self.answer_metric].timeouts += 1;
        }
        if let (false, Some(d)) = (e.delivered, self.delivery_metric) {
            stats.metrics[d].timeouts += 1;
        }
        if !abandoned && !e.failed {
            stats.failed += 1;
        }
    }

    /// Times out the calls whose deadline has passed.
    pub fn expire(&mut self, now: Instant, stats: &mut Stats) {
        while let Some(&(t, seq)) = self.deadlines.front() {
            if t > now {
                break;
            }
            self.deadlines.pop_front();
            self.time_out(seq, false, stats);
        }
        if self.pending.is_empty() {
            self.deadlines.clear();
        }
    }

    /// The next deadline, if a call waits.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.front().map(|&(t, _)| t)
    }

    /// Nothing waits.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Everything waiting times out now.
    pub fn abandon(&mut self, stats: &mut Stats) {
        let seqs: Vec<u64> = self.pending.keys().copied().collect();
        for s in seqs {
            self.time_out(s, true, stats);
        }
        self.deadlines.clear();
    }
}

/// A set-up in progress: sessions are started a window at a time and each has a deadline.
#[derive(Debug)]
pub struct Setup {
    /// The next user to start.
    pub next: usize,
    /// Users up.
    pub up: usize,
    /// Users given up on (a later success still counts: see [`Setup::came_up`]).
    pub failed: usize,
    deadlines: VecDeque<(Instant, usize)>,
    started: Option<Instant>,
    timeout: Duration,
    total: usize,
}

impl Setup {
    /// A set-up of `total` sessions, each given `timeout`.
    pub fn new(total: usize, timeout: Duration) -> Setup {
        Setup {
            next: 0,
            up: 0,
            failed: 0,
            deadlines: VecDeque::new(),
            started: None,
            timeout,
            total,
        }
    }

    /// The next user to start now, while the window has room.
    pub fn next_to_start(&mut self, now: Instant) -> Option<usize> {
        self.started.get_or_insert(now);
        let outstanding = self.next - self.up - self.failed;
        if self.next >= self.total || outstanding >= SETUP_WINDOW {
            return None;
        }
        self.deadlines.push_back((now + self.timeout, self.next));
        self.next += 1;
        Some(self.next - 1)
    }

    /// Users whose deadline passed are handed to `failed`, which flags one that is not up and
    /// says so (`true`); those are counted as failed.
    pub fn expire(&mut self, now: Instant, mut failed: impl FnMut(usize) -> bool) {
        while let Some(&(t, k)) = self.deadlines.front() {
            if t > now {
                break;
            }
            self.deadlines.pop_front();
            if failed(k) {
                self.failed += 1;
            }
        }
    }

    /// A user came up; `was_failed` when its deadline had passed already.
    pub fn came_up(&mut self, was_failed: bool) {
        self.up += 1;
        if was_failed {
            self.failed -= 1;
        }
    }

    /// The outcome once every session is up or failed. The set-up is over then: its
    /// deadlines are dropped, so they do not wake the load phase.
    pub fn outcome(&mut self, now: Instant) -> Option<Result<String, String>> {
        if self.up + self.failed < self.total {
            return None;
        }
        self.deadlines.clear();
        let secs = now
            .saturating_duration_since(self.started.unwrap_or(now))
            .as_secs_f64();
        if self.failed == 0 {
            Some(Ok(format!("{} sessions up in {secs:.2} s", self.total)))
        } else {
            Some(Err(format!(
                "{} of {} sessions not up within {:?}",
                self.failed, self.total, self.timeout
            )))
        }
    }

    /// The next deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.front().map(|&(t, _)| t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_are_dealt_out_like_calls() {
        let all: Vec<Vec<u64>> = (0..3).map(|t| users_of(10, t, 3)).collect();
        assert_eq!(all[0], vec![0, 3, 6, 9]);
        assert_eq!(all[1], vec![1, 4, 7]);
        assert_eq!(all[2], vec![2, 5, 8]);
        for (t, users) in all.iter().enumerate() {
            for (k, &u) in users.iter().enumerate() {
                assert_eq!(local_user(u, t, 3, users.len()), Some(k));
                assert_eq!(local_user(u, (t + 1) % 3, 3, 4), None);
            }
        }
        assert_eq!(local_user(12, 0, 3, 4), None, "past the thread's users");
        // Thread 1's calls are 1, 4, 7...: they go round its 3 users.
        let users: Vec<usize> = [1, 4, 7, 10]
            .iter()
            .map(|&s| user_for_call(s, 3, 3))
            .collect();
        assert_eq!(users, vec![0, 1, 2, 0]);
    }

    #[test]
    fn ledger_books_balance() {
        let t0 = Instant::now();
        let mut s = Stats::new(&["delivery", "202"]);
        let mut l = Ledger::new(Duration::from_secs(1), 1, Some(0));
        for seq in 0..4 {
            l.open(seq, t0, true, 0, t0, &mut s);
        }
        l.open(9, t0, false, 0, t0, &mut s);
        // 0: answered then delivered. 1: delivered first. 2: refused. 3: nothing.
        l.answer(0, 202, 202, "no", t0, &mut s);
        assert_eq!(l.delivered(0, t0, &mut s), Delivery::Expected(0));
        assert_eq!(l.delivered(1, t0, &mut s), Delivery::Expected(0));
        l.answer(1, 100, 202, "no", t0, &mut s);
        l.answer(1, 202, 202, "no", t0, &mut s);
        l.answer(2, 503, 202, "refused", t0, &mut s);
        assert_eq!(l.delivered(0, t0, &mut s), Delivery::Unexpected);
        l.expire(t0 + Duration::from_secs(2), &mut s);
        assert!(l.is_empty());
        assert_eq!((s.calls, s.sent, s.answered, s.timeouts), (4, 4, 3, 1));
        assert_eq!(s.warmup_calls, 1);
        assert_eq!(s.metrics[1].hist.len(), 3);
        assert_eq!(s.metrics[0].hist.len(), 2);
        assert_eq!(s.metrics[0].timeouts, 2, "the refused one and the lost one");
        assert_eq!(s.metrics[1].timeouts, 1);
        assert_eq!(s.codes[&202], 2);
        assert_eq!(s.codes[&100], 1);
        assert_eq!(s.errors["refused"], 1);
        assert_eq!(
            s.errors["delivery nothing waited for (late or duplicate)"],
            1
        );
        assert_eq!(s.failed, 2, "the refused one and the lost one, once each");
        l.open(5, t0, true, 0, t0, &mut s);
        l.abandon(&mut s);
        assert_eq!(
            (s.timeouts, s.failed),
            (2, 2),
            "cut short by a stop: a timeout, not a failed call"
        );
    }

    #[test]
    fn setup_window_and_deadlines() {
        let t0 = Instant::now();
        let mut s = Setup::new(SETUP_WINDOW + 2, Duration::from_secs(1));
        let mut n = 0;
        while s.next_to_start(t0).is_some() {
            n += 1;
        }
        assert_eq!(n, SETUP_WINDOW, "the window is full");
        // User 5 comes up; the window has room for one more.
        s.came_up(false);
        assert_eq!(s.next_to_start(t0), Some(SETUP_WINDOW));
        assert!(s.outcome(t0).is_none());
        // Every other one started times out.
        s.expire(t0 + Duration::from_secs(2), |k| k != 5);
        assert_eq!(s.failed, SETUP_WINDOW);
        assert_eq!(s.next_to_start(t0), Some(SETUP_WINDOW + 1));
        s.expire(t0 + Duration::from_secs(4), |_| true);
        let out = s.outcome(t0).unwrap().unwrap_err();
        let want = format!("{} of {}", SETUP_WINDOW + 1, SETUP_WINDOW + 2);
        assert!(out.starts_with(&want), "{out}");
        // A late success still counts.
        s.came_up(true);
        assert_eq!(s.failed, SETUP_WINDOW);
    }
}
