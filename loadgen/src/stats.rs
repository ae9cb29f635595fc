//! Counters and latency histograms.
//!
//! Each thread records into its own [`Stats`] (no sharing, no locks on the hot path) and hands
//! the main thread a delta once a second; the main thread merges the deltas into the interval
//! shown on the progress line and logged, and into the run's totals. Latencies are recorded in
//! microseconds in HdrHistograms (3 significant digits, up to one hour).

use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::time::Duration;

/// Highest latency a histogram holds, in microseconds (one hour); larger values are clamped.
pub const MAX_MICROS: u64 = 3_600_000_000;

/// A fresh latency histogram (microseconds, 3 significant digits).
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("static histogram bounds are valid")
}

/// One latency the scenario defines (e.g. `park`, `trigger`).
#[derive(Debug, Clone)]
pub struct Metric {
    /// Its name.
    pub name: &'static str,
    /// Answered, in microseconds.
    pub hist: Histogram<u64>,
    /// Expected replies that never came within --timeout.
    pub timeouts: u64,
}

impl Metric {
    /// Records one latency.
    pub fn record(&mut self, d: Duration) {
        let us = (d.as_micros() as u64).clamp(1, MAX_MICROS);
        self.hist.saturating_record(us);
    }
}

/// What a thread (or the whole run) counted.
#[derive(Debug, Clone)]
pub struct Stats {
    /// Calls started (measured ones only).
    pub calls: u64,
    /// Requests sent that expect a reply (new transactions; not ACK, not retransmissions).
    pub sent: u64,
    /// Retransmissions.
    pub retransmits: u64,
    /// Final replies to our transactions.
    pub answered: u64,
    /// Transactions with no final reply within --timeout.
    pub timeouts: u64,
    /// Measured calls that failed, each counted once however many of its steps went wrong: one
    /// that waited in vain for a reply (a timeout, also where the request could not be sent),
    /// got a final reply its scenario does not expect, or was never sent (a gateway session
    /// down). Requests cut short by Ctrl-C are not failures. `--max-failures` judges this.
    pub failed: u64,
    /// Matched replies by status code, provisional ones and those for expectations (`200 Pulled`,
    /// `408`) included.
    pub codes: BTreeMap<u16, u64>,
    /// Errors by kind (send, parse, unmatched reply...).
    pub errors: BTreeMap<&'static str, u64>,
    /// The scenario's latencies.
    pub metrics: Vec<Metric>,
    /// How late requests left compared with their intended time, microseconds: the load
    /// generator's own lag (large values mean it could not keep up with --rate).
    pub send_lag: Histogram<u64>,
    /// Calls started during --warmup (not measured).
    pub warmup_calls: u64,
}

impl Stats {
    /// Empty stats for a scenario with these latencies.
    pub fn new(metric_names: &[&'static str]) -> Stats {
        Stats {
            calls: 0,
            sent: 0,
            retransmits: 0,
            answered: 0,
            timeouts: 0,
            failed: 0,
            codes: BTreeMap::new(),
            errors: BTreeMap::new(),
            metrics: metric_names
                .iter()
                .map(|&name| Metric {
                    name,
                    hist: new_histogram(),
                    timeouts: 0,
                })
                .collect(),
            send_lag: new_histogram(),
            warmup_calls: 0,
        }
    }

    /// Counts an error.
    pub fn error(&mut self, kind: &'static str) {
        *self.errors.entry(kind).or_default() += 1;
    }

    /// Counts a reply code.
    pub fn code(&mut self, code: u16) {
        *self.codes.entry(code).or_default() += 1;
    }

    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &Stats) {
        self.calls += other.calls;
        self.sent += other.sent;
        self.retransmits += other.retransmits;
        self.answered += other.answered;
        self.timeouts += other.timeouts;
        self.failed += other.failed;
        self.warmup_calls += other.warmup_calls;
        for (k, v) in &other.codes {
            *self.codes.entry(*k).or_default() += v;
        }
        for (k, v) in &other.errors {
            *self.errors.entry(k).or_default() += v;
        }
        for (m, o) in self.metrics.iter_mut().zip(&other.metrics) {
            m.hist.add(&o.hist).expect("histograms share their bounds");
            m.timeouts += o.timeouts;
        }
        self.send_lag
            .add(&other.send_lag)
            .expect("histograms share their bounds");
    }

    /// Replies by class: (1xx, 2xx, 3xx-6xx).
    pub fn classes(&self) -> (u64, u64, u64) {
        let mut c = (0, 0, 0);
        for (&code, &n) in &self.codes {
            match code {
                100..=199 => c.0 += n,
                200..=299 => c.1 += n,
                _ => c.2 += n,
            }
        }
        c
    }

    /// A value at a quantile of a metric counting its timeouts as infinitely slow; `None` when
    /// the quantile falls among the timeouts or nothing was expected.
    pub fn quantile_with_timeouts(&self, metric: usize, q: f64) -> Option<u64> {
        let m = &self.metrics[metric];
        let n = m.hist.len();
        let all = n + m.timeouts;
        if all == 0 || n == 0 {
            return None;
        }
        let answered_share = n as f64 / all as f64;
        if q > answered_share {
            return None;
        }
        Some(m.hist.value_at_quantile((q / answered_share).min(1.0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_adds_everything() {
        let mut a = Stats::new(&["x"]);
        let mut b = Stats::new(&["x"]);
        a.sent = 2;
        b.sent = 3;
        b.failed = 1;
        a.code(200);
        b.code(200);
        b.code(100);
        b.error("send");
        a.metrics[0].record(Duration::from_millis(1));
        b.metrics[0].record(Duration::from_millis(3));
        b.metrics[0].timeouts = 1;
        a.merge(&b);
        assert_eq!(a.sent, 5);
        assert_eq!(a.failed, 1);
        assert_eq!(a.codes[&200], 2);
        assert_eq!(a.classes(), (1, 2, 0));
        assert_eq!(a.errors["send"], 1);
        assert_eq!(a.metrics[0].hist.len(), 2);
        assert_eq!(a.metrics[0].timeouts, 1);
    }

    #[test]
    fn timeouts_count_as_slowest() {
        let mut s = Stats::new(&["x"]);
        for _ in 0..98 {
            s.metrics[0].record(Duration::from_micros(100));
        }
        s.metrics[0].timeouts = 2;
        assert!(s.quantile_with_timeouts(0, 0.5).unwrap() <= 101);
        assert_eq!(s.quantile_with_timeouts(0, 0.99), None);
    }
}
