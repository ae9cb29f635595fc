//! What a run reports: the progress line, the final summary, and the report files.
//!
//! Everything an operator reads comes from here, so the printed summary and `summary.json` are
//! both built from one [`Summary`] and cannot disagree. The `.hgrm` files use HdrHistogram's
//! own percentile-distribution text format (what wrk2 and HdrHistogram's plotter read), the
//! interval log is HdrHistogram's standard `.hlog`, and the SVG is the latency-by-percentile
//! spectrum (see [`crate::svg`]).

use crate::config::Config;
use crate::run::RunResult;
use crate::stats::Stats;
// The server writes the same files: one writer and reader for both (sipshard-core's hgrm).
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
pub use sipshard_core::hgrm::{parse_hgrm, write_hgrm, HgrmRow};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::Path;
use std::time::Duration;

/// Histograms hold microseconds; reports are in milliseconds.
pub const MICROS_PER_MS: f64 = 1000.0;

/// The quantiles the summary shows, with their labels.
pub const QUANTILES: [(&str, f64); 5] = [
    ("p50", 0.5),
    ("p90", 0.9),
    ("p99", 0.99),
    ("p99.9", 0.999),
    ("p99.99", 0.9999),
];

/// One latency of the run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MetricSummary {
    /// The latency's name (`options`, `park`, `trigger`, ...).
    pub name: String,
    /// Replies recorded.
    pub count: u64,
    /// Expected replies that never came.
    pub timeouts: u64,
    /// Smallest, ms.
    pub min_ms: f64,
    /// Mean, ms.
    pub mean_ms: f64,
    /// Median, ms.
    pub p50_ms: f64,
    /// 90th percentile, ms.
    pub p90_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// 99.9th percentile, ms.
    pub p99_9_ms: f64,
    /// 99.99th percentile, ms.
    pub p99_99_ms: f64,
    /// Largest, ms.
    pub max_ms: f64,
    /// p99 counting timeouts as infinitely slow; null when a timeout falls in the top 1%.
    pub p99_with_timeouts_ms: Option<f64>,
    /// (quantile, ms) points of the percentile spectrum, for plots and `report`.
    pub spectrum: Vec<(f64, f64)>,
}

impl MetricSummary {
    /// The summary's percentiles in [`QUANTILES`] order.
    pub fn percentiles(&self) -> [f64; 5] {
        [
            self.p50_ms,
            self.p90_ms,
            self.p99_ms,
            self.p99_9_ms,
            self.p99_99_ms,
        ]
    }
}

/// The run, as printed and as written to `summary.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    /// Scenario name.
    pub scenario: String,
    /// udp or tcp.
    pub transport: String,
    /// The server.
    pub target: String,
    /// Load threads.
    pub threads: usize,
    /// Sockets / connections in all.
    pub connections: usize,
    /// `--rate`.
    pub offered_rate: f64,
    /// Calls actually started per second over the measured window.
    pub sent_rate: f64,
    /// First requests answered per second over the measured window.
    pub achieved_rate: f64,
    /// The measured window (after warmup), seconds.
    pub measured_secs: f64,
    /// Calls started (measured).
    pub calls: u64,
    /// Requests sent expecting a reply (transactions).
    pub sent: u64,
    /// Final replies to them.
    pub answered: u64,
    /// Transactions never answered within --timeout.
    pub timeouts: u64,
    /// Calls that failed, once each (see `Stats::failed`); `--max-failures` judges it.
    #[serde(default)]
    pub failed_calls: u64,
    /// Retransmissions (--retransmit).
    pub retransmits: u64,
    /// Calls made during --warmup (not measured).
    pub warmup_calls: u64,
    /// Matched replies by status code.
    pub replies_by_code: BTreeMap<String, u64>,
    /// Errors by kind.
    pub errors: BTreeMap<String, u64>,
    /// How late requests left against their schedule, ms.
    #[serde(deserialize_with = "send_lag_any")]
    pub send_lag_ms: SendLag,
    /// Each latency the scenario defines.
    pub metrics: Vec<MetricSummary>,
}

/// How late requests left against their schedule, ms (`send_lag_ms` in `summary.json`).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct SendLag {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

/// Reads `send_lag_ms` as written now, or as the `[p50, p99, max]` array that runs written
/// before it had labels hold, so `report` still lays those beside new ones.
fn send_lag_any<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SendLag, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Labelled(SendLag),
        Unlabelled([f64; 3]),
    }
    Ok(match Either::deserialize(d)? {
        Either::Labelled(l) => l,
        Either::Unlabelled([p50, p99, max]) => SendLag { p50, p99, max },
    })
}

fn ms(us: u64) -> f64 {
    us as f64 / MICROS_PER_MS
}

/// (quantile, ms) points of a histogram's percentile spectrum (5 ticks per half distance).
pub fn spectrum(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    h.iter_quantiles(5)
        .map(|v| {
            let q = (v.quantile_iterated_to() * 1e12).round() / 1e12;
            (q, ms(v.value_iterated_to()))
        })
        .collect()
}

impl Summary {
    /// Summarises a run.
    pub fn new(cfg: &Config, r: &RunResult) -> Summary {
        let t = &r.total;
        let secs = r.measured.as_secs_f64().max(1e-9);
        let metrics = t
            .metrics
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let h = &m.hist;
                let q = |q: f64| {
                    if h.is_empty() {
                        0.0
                    } else {
                        ms(h.value_at_quantile(q))
                    }
                };
                MetricSummary {
                    name: m.name.to_string(),
                    count: h.len(),
                    timeouts: m.timeouts,
                    min_ms: if h.is_empty() { 0.0 } else { ms(h.min()) },
                    mean_ms: (h.mean() / MICROS_PER_MS * 1e3).round() / 1e3,
                    p50_ms: q(0.5),
                    p90_ms: q(0.9),
                    p99_ms: q(0.99),
                    p99_9_ms: q(0.999),
                    p99_99_ms: q(0.9999),
                    max_ms: if h.is_empty() { 0.0 } else { ms(h.max()) },
                    p99_with_timeouts_ms: t.quantile_with_timeouts(i, 0.99).map(ms),
                    spectrum: spectrum(h),
                }
            })
            .collect();
        let lag = |q: f64| {
            if t.send_lag.is_empty() {
                0.0
            } else {
                ms(t.send_lag.value_at_quantile(q))
            }
        };
        Summary {
            scenario: cfg.scenario.name().to_string(),
            transport: cfg.transport.via_token().to_ascii_lowercase(),
            target: cfg.target.to_string(),
            threads: cfg.threads,
            connections: cfg.connections,
            offered_rate: cfg.rate,
            sent_rate: round3(t.calls as f64 / secs),
            achieved_rate: round3(t.metrics[0].hist.len() as f64 / secs),
            measured_secs: round3(secs),
            calls: t.calls,
            sent: t.sent,
            answered: t.answered,
            timeouts: t.timeouts,
            failed_calls: t.failed,
            retransmits: t.retransmits,
            warmup_calls: t.warmup_calls,
            replies_by_code: t.codes.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            errors: t.errors.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            send_lag_ms: SendLag {
                p50: lag(0.5),
                p99: lag(0.99),
                max: if t.send_lag.is_empty() {
                    0.0
                } else {
                    ms(t.send_lag.max())
                },
            },
            metrics,
        }
    }
}

fn round3(v: f64) -> f64 {
    (v * 1e3).round() / 1e3
}

/// The line printed every second.
pub fn progress_line(
    elapsed: Duration,
    interval: Duration,
    current: &Stats,
    total: &Stats,
    warming_up: bool,
) -> String {
    // Each thread hands over exactly one delta per INTERVAL; dividing by the wall time between
    // two progress lines would only add the jitter of the main thread's wake-ups.
    let _ = interval;
    let secs = crate::engine::INTERVAL.as_secs_f64();
    let (c1, c2, c3) = current.classes();
    let first = &total.metrics[0];
    let p = |q: f64| {
        if first.hist.is_empty() {
            "-".to_string()
        } else {
            format!("{:.3}", ms(first.hist.value_at_quantile(q)))
        }
    };
    let offered = (current.calls + current.warmup_calls) as f64 / secs;
    let achieved = current.metrics[0].hist.len() as f64 / secs;
    format!(
        "[{:>5.1}s]{} offered {:>8.0}/s achieved {:>8.0}/s | 1xx {} 2xx {} 3xx-6xx {} | timeouts {} | {} p50 {} ms p99 {} ms",
        elapsed.as_secs_f64(),
        if warming_up { " warmup" } else { "" },
        offered,
        achieved,
        c1,
        c2,
        c3,
        total.timeouts,
        first.name,
        p(0.5),
        p(0.99),
    )
}

/// The summary as printed at the end of a run (and saved as `summary.txt`).
pub fn render_text(s: &Summary) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "sipshard-load: {} over {} to {}, {} thread(s), {} {}",
        s.scenario,
        s.transport,
        s.target,
        s.threads,
        s.connections,
        if s.transport == "tcp" {
            "connection(s)"
        } else {
            "socket(s)"
        }
    );
    let _ = writeln!(
        o,
        "rate: offered {:.3}/s  sent {:.3}/s  achieved {:.3}/s  over {:.3} s",
        s.offered_rate, s.sent_rate, s.achieved_rate, s.measured_secs
    );
    let _ = writeln!(
        o,
        "requests: calls {}  sent {}  answered {}  timeouts {}  retransmissions {}  (warmup calls {})",
        s.calls, s.sent, s.answered, s.timeouts, s.retransmits, s.warmup_calls
    );
    let _ = writeln!(o, "failed calls: {}", s.failed_calls);
    let codes: Vec<String> = s
        .replies_by_code
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let _ = writeln!(
        o,
        "replies by code: {}",
        if codes.is_empty() {
            "none".to_string()
        } else {
            codes.join("  ")
        }
    );
    if s.errors.is_empty() {
        let _ = writeln!(o, "errors: none");
    } else {
        let _ = writeln!(o, "errors:");
        for (k, v) in &s.errors {
            let _ = writeln!(o, "  {v:>10}  {k}");
        }
    }
    let _ = writeln!(
        o,
        "send lag (ms): p50 {:.3}  p99 {:.3}  max {:.3}",
        s.send_lag_ms.p50, s.send_lag_ms.p99, s.send_lag_ms.max
    );
    let _ = writeln!(o);
    let _ = write!(o, "{:<10} {:>10} {:>9}", "latency ms", "count", "timeouts");
    for (label, _) in QUANTILES {
        let _ = write!(o, " {label:>10}");
    }
    let _ = writeln!(o, " {:>10}", "max");
    for m in &s.metrics {
        let _ = write!(o, "{:<10} {:>10} {:>9}", m.name, m.count, m.timeouts);
        for v in m.percentiles() {
            let _ = write!(o, " {v:>10.3}");
        }
        let _ = writeln!(o, " {:>10.3}", m.max_ms);
    }
    let with_timeouts: Vec<&MetricSummary> = s.metrics.iter().filter(|m| m.timeouts > 0).collect();
    for m in with_timeouts {
        let _ = writeln!(
            o,
            "note: {}: {} timeout(s) are not in its percentiles; counting them as slowest, p99 = {}",
            m.name,
            m.timeouts,
            m.p99_with_timeouts_ms
                .map_or("a timeout".to_string(), |v| format!("{v:.3} ms"))
        );
    }
    o
}

/// The one line that says why a run failed, when more than `max` calls failed (`--max-failures`):
/// how many, the timeouts by latency and the commonest errors.
pub fn failure_line(s: &Summary, max: u64) -> Option<String> {
    if s.failed_calls <= max {
        return None;
    }
    let mut line = format!(
        "{} of {} calls failed, more than --max-failures {max}",
        s.failed_calls, s.calls
    );
    let timeouts: Vec<String> = s
        .metrics
        .iter()
        .filter(|m| m.timeouts > 0)
        .map(|m| format!("{} {}", m.name, m.timeouts))
        .collect();
    if !timeouts.is_empty() {
        let _ = write!(line, "; timeouts: {}", timeouts.join(", "));
    }
    let mut errors: Vec<(&String, &u64)> = s.errors.iter().collect();
    errors.sort_by(|a, b| b.1.cmp(a.1));
    if !errors.is_empty() {
        let shown: Vec<String> = errors
            .iter()
            .take(3)
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let more = if errors.len() > 3 { ", ..." } else { "" };
        let _ = write!(line, "; errors: {}{more}", shown.join(", "));
    }
    let expiries_lost = s
        .metrics
        .iter()
        .any(|m| m.name == "expire" && m.timeouts > 0);
    if s.scenario == "park-expire" && expiries_lost {
        // The usual cause, and not one the numbers show: sipshard ignores the MESSAGE's Expires.
        line.push_str(
            "; park-expire: is the server's expiry --expire? (sipshard: serve --repo-expire SECS)",
        );
    }
    Some(line)
}

/// Writes the report files into `dir`.
pub fn write_dir(
    dir: &Path,
    cfg: &Config,
    r: &RunResult,
    s: &Summary,
    text: &str,
) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("summary.txt"), text)?;
    let json = serde_json::to_string_pretty(s).map_err(io::Error::other)?;
    std::fs::write(dir.join("summary.json"), json)?;
    for m in &r.total.metrics {
        let mut f =
            io::BufWriter::new(std::fs::File::create(dir.join(format!("{}.hgrm", m.name)))?);
        write_hgrm(&m.hist, MICROS_PER_MS, &mut f)?;
        f.flush()?;
    }
    write_interval_log(&dir.join("latency.hlog"), cfg, r)?;
    let series: Vec<(String, Vec<(f64, f64)>)> = s
        .metrics
        .iter()
        .filter(|m| !m.spectrum.is_empty())
        .map(|m| (m.name.clone(), m.spectrum.clone()))
        .collect();
    let title = format!(
        "sipshard-load {} over {} at {}/s: latency by percentile",
        s.scenario, s.transport, s.offered_rate
    );
    crate::svg::write_spectrum(&dir.join("spectrum.svg"), &title, &series)
}

fn write_interval_log(path: &Path, cfg: &Config, r: &RunResult) -> io::Result<()> {
    let mut f = io::BufWriter::new(std::fs::File::create(path)?);
    let mut ser = V2DeflateSerializer::new();
    let mut log = IntervalLogWriterBuilder::new()
        .add_comment(&format!(
            "sipshard-load {} over {} to {} at {}/s; values in microseconds; tags are latency names",
            cfg.scenario.name(),
            cfg.transport.via_token(),
            cfg.target,
            cfg.rate
        ))
        .with_start_time(r.started_at)
        .with_base_time(r.started_at)
        .with_max_value_divisor(MICROS_PER_MS)
        .begin_log_with(&mut f, &mut ser)?;
    for iv in &r.intervals {
        for m in &iv.stats.metrics {
            if m.hist.is_empty() {
                continue;
            }
            log.write_histogram(&m.hist, iv.start, iv.length, Tag::new(m.name))
                .map_err(|e| io::Error::other(format!("{e:?}")))?;
        }
    }
    drop(log);
    f.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_lag_is_labelled_and_old_runs_still_read() {
        let lag = SendLag {
            p50: 0.01,
            p99: 0.2,
            max: 3.0,
        };
        let json = serde_json::to_value(lag).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"p50": 0.01, "p99": 0.2, "max": 3.0})
        );
        #[derive(Deserialize)]
        struct Holder {
            #[serde(deserialize_with = "send_lag_any")]
            send_lag_ms: SendLag,
        }
        for text in [
            r#"{"send_lag_ms": {"p50": 0.01, "p99": 0.2, "max": 3.0}}"#,
            r#"{"send_lag_ms": [0.01, 0.2, 3.0]}"#,
        ] {
            let h: Holder = serde_json::from_str(text).unwrap();
            assert_eq!(h.send_lag_ms, lag, "{text}");
        }
    }
}
