//! One load run, start to finish, and `--ramp`.
//!
//! This is the main thread's side: it starts the load threads on a common start instant,
//! merges the per-second deltas they send into the interval shown on the progress line and
//! written to the interval log, adds them up into the run's totals, and hands the result to the
//! report writers. `--ramp` is a loop of runs.

use crate::config::Config;
use crate::engine::{run_thread, Update, INTERVAL};
use crate::report::{self, Summary};
use crate::stats::Stats;
use std::io::Write;
use std::sync::atomic::AtomicBool;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime};

/// Why a run could not be made.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A thread could not open its sockets.
    #[error("{0}")]
    Start(String),
    /// Writing the reports failed.
    #[error("writing reports to {path}: {source}")]
    Report {
        /// Where.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// One second of the run, all threads merged.
#[derive(Debug, Clone)]
pub struct Interval {
    /// Seconds since the start of the run when the interval began.
    pub start: Duration,
    /// Its length.
    pub length: Duration,
    /// What was counted.
    pub stats: Stats,
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// Everything measured (warmup excluded).
    pub total: Stats,
    /// Per-second intervals (warmup included, for the interval log).
    pub intervals: Vec<Interval>,
    /// From the end of the warmup to the last scheduled call.
    pub measured: Duration,
    /// Wall-clock start.
    pub started_at: SystemTime,
}

/// Runs the load described by `cfg`, printing a progress line per second to `progress`.
pub fn run(cfg: &Config, progress: &mut dyn Write) -> Result<RunResult, RunError> {
    run_with_stop(cfg, progress, Arc::new(AtomicBool::new(false)))
}

/// As [`run`]; setting `stop` ends the run early (outstanding requests count as timeouts).
pub fn run_with_stop(
    cfg: &Config,
    progress: &mut dyn Write,
    stop: Arc<AtomicBool>,
) -> Result<RunResult, RunError> {
    let cfg = Arc::new(cfg.clone());
    let metrics = cfg.scenario.metrics();
    let run_id = run_id();
    let (tx, rx) = mpsc::channel();
    let (handles, start) = if cfg.scenario.is_gateway() {
        // Sessions are set up first; the start is known once every thread has its sessions.
        crate::gw::start(&cfg, run_id, &stop, &tx, progress).map_err(RunError::Start)?
    } else {
        // A little head start so every thread has its sockets before the first call is due.
        let start = Instant::now() + Duration::from_millis(20);
        let mut handles = Vec::new();
        for t in 0..cfg.threads {
            let (cfg, stop, tx) = (cfg.clone(), stop.clone(), tx.clone());
            handles.push(
                std::thread::Builder::new()
                    .name(format!("load-{t}"))
                    .spawn(move || run_thread(cfg, t, start, run_id, stop, tx))
                    .expect("spawning a load thread"),
            );
        }
        (handles, start)
    };
    let started_at = SystemTime::now() + start.saturating_duration_since(Instant::now());
    drop(tx);

    let mut total = Stats::new(metrics);
    let mut current = Stats::new(metrics);
    let mut intervals = Vec::new();
    let mut done = 0;
    let mut failure = None;
    let mut schedule_done = start;
    let mut next_print = start + INTERVAL + Duration::from_millis(50);
    let mut printed_at = start;
    let measure_from = start + cfg.warmup;
    loop {
        let now = Instant::now();
        let wait = next_print.saturating_duration_since(now);
        match rx.recv_timeout(wait) {
            Ok(Update::Interval { stats, .. }) => current.merge(&stats),
            Ok(Update::Done {
                stats,
                schedule_done: sd,
                ..
            }) => {
                current.merge(&stats);
                schedule_done = schedule_done.max(sd);
                done += 1;
            }
            Ok(Update::Failed { error, .. }) => {
                failure.get_or_insert(error);
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
                done += 1;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => done = cfg.threads,
        }
        let now = Instant::now();
        let finished = done >= cfg.threads;
        if now >= next_print || finished {
            total.merge(&current);
            if !cfg.quiet && now >= next_print {
                let _ = writeln!(
                    progress,
                    "{}",
                    report::progress_line(
                        now.duration_since(start),
                        now.duration_since(printed_at),
                        &current,
                        &total,
                        now < measure_from
                    )
                );
            }
            intervals.push(Interval {
                start: printed_at.saturating_duration_since(start),
                length: now.duration_since(printed_at),
                stats: std::mem::replace(&mut current, Stats::new(metrics)),
            });
            printed_at = now;
            while next_print <= now {
                next_print += INTERVAL;
            }
        }
        if finished {
            break;
        }
    }
    for h in handles {
        let _ = h.join();
    }
    if let Some(e) = failure {
        return Err(RunError::Start(e));
    }
    let scheduled = Duration::from_secs_f64(total.calls as f64 / cfg.rate);
    let measured = schedule_done
        .saturating_duration_since(measure_from)
        .max(scheduled);
    Ok(RunResult {
        total,
        intervals,
        measured,
        started_at,
    })
}

fn run_id() -> u32 {
    let t = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let mut x = t.as_nanos() as u64 ^ (u64::from(std::process::id()) << 32);
    // splitmix64 finaliser: spread the bits.
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (x ^ (x >> 31)) as u32
}

/// Runs, prints the summary to `out`, and writes the report files when `--out` is set.
pub fn run_and_report(cfg: &Config, out: &mut dyn Write) -> Result<Summary, RunError> {
    run_and_report_with_stop(cfg, out, Arc::new(AtomicBool::new(false)))
}

/// As [`run_and_report`]; setting `stop` ends the run early and still reports (Ctrl-C).
pub fn run_and_report_with_stop(
    cfg: &Config,
    out: &mut dyn Write,
    stop: Arc<AtomicBool>,
) -> Result<Summary, RunError> {
    let mut stderr = std::io::stderr();
    let result = run_with_stop(cfg, &mut stderr, stop)?;
    let summary = Summary::new(cfg, &result);
    let text = report::render_text(&summary);
    let _ = out.write_all(text.as_bytes());
    if let Some(dir) = &cfg.out {
        report::write_dir(dir, cfg, &result, &summary, &text).map_err(|source| {
            RunError::Report {
                path: dir.display().to_string(),
                source,
            }
        })?;
    }
    Ok(summary)
}

/// One step of `--ramp`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RampStep {
    /// Offered rate.
    pub rate: f64,
    /// Achieved rate.
    pub achieved: f64,
    /// The worst p99 over the scenario's latencies, timeouts counted as over, ms (None: a
    /// timeout fell within the top 1%).
    pub worst_p99_ms: Option<f64>,
    /// Whether it met --slo.
    pub pass: bool,
}

/// `--ramp`: runs at each rate until p99 breaks the SLO; returns every step and the highest
/// passing rate.
pub fn ramp(
    cfg: &Config,
    out: &mut dyn Write,
    stop: Arc<AtomicBool>,
) -> Result<(Vec<RampStep>, Option<f64>), RunError> {
    let ramp = cfg.ramp.expect("ramp set");
    let mut steps = Vec::new();
    let mut best = None;
    for rate in ramp.rates() {
        let mut c = cfg.clone();
        c.rate = rate;
        c.ramp = None;
        c.out = cfg.out.as_ref().map(|d| d.join(format!("rate-{rate}")));
        let _ = writeln!(out, "== ramp: {rate}/s ==");
        let summary = run_and_report_with_stop(&c, out, stop.clone())?;
        if stop.load(std::sync::atomic::Ordering::Relaxed) {
            break;
        }
        let worst = summary
            .metrics
            .iter()
            .map(|m| m.p99_with_timeouts_ms)
            .try_fold(0.0f64, |acc, v| v.map(|v| acc.max(v)));
        let slo_ms = cfg.slo.as_secs_f64() * 1e3;
        let pass = worst.is_some_and(|w| w <= slo_ms);
        steps.push(RampStep {
            rate,
            achieved: summary.achieved_rate,
            worst_p99_ms: worst,
            pass,
        });
        if !pass {
            break;
        }
        best = Some(rate);
    }
    let _ = writeln!(out, "\n== ramp result (SLO: p99 <= {:?}) ==", cfg.slo);
    let _ = writeln!(
        out,
        "{:>12} {:>12} {:>14}  ok",
        "offered/s", "achieved/s", "worst p99 ms"
    );
    for s in &steps {
        let p99 = s
            .worst_p99_ms
            .map_or("timeouts".to_string(), |v| format!("{v:.3}"));
        let _ = writeln!(
            out,
            "{:>12.0} {:>12.0} {:>14}  {}",
            s.rate,
            s.achieved,
            p99,
            if s.pass { "yes" } else { "NO" }
        );
    }
    match best {
        Some(b) => {
            let _ = writeln!(out, "highest rate meeting the SLO: {b}/s");
        }
        None => {
            let _ = writeln!(out, "no rate met the SLO");
        }
    }
    if let Some(dir) = &cfg.out {
        std::fs::create_dir_all(dir)
            .and_then(|()| {
                let json = serde_json::json!({ "slo_ms": cfg.slo.as_secs_f64() * 1e3,
                    "steps": steps, "highest_passing_rate": best });
                std::fs::write(
                    dir.join("ramp.json"),
                    serde_json::to_string_pretty(&json).expect("json"),
                )
            })
            .map_err(|source| RunError::Report {
                path: dir.display().to_string(),
                source,
            })?;
    }
    Ok((steps, best))
}
