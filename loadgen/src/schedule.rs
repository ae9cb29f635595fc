//! The open-loop schedule: when each call is meant to start.
//!
//! This is what keeps the load generator honest. Call `g` of the run is due at
//! `start + g / rate`, whatever the server does; thread `i` of `n` owns calls `i, i + n, ...`.
//! Latency is measured from that intended time, not from when the thread got round to sending,
//! so a stalled server (or a stalled load generator) shows up in the latencies instead of
//! silently lowering the offered rate (coordinated omission, as wrk2 avoids it).

use std::time::{Duration, Instant};

/// One thread's share of the schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    start: Instant,
    rate: f64,
    thread: u64,
    threads: u64,
    /// The next local call number.
    next_local: u64,
    /// No call is due at or after this offset from `start`.
    window: Option<Duration>,
    /// No call with global number at or past this.
    limit: Option<u64>,
}

/// A call that is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    /// Global call number across all threads (0-based).
    pub seq: u64,
    /// When it is meant to start.
    pub intended: Instant,
}

impl Schedule {
    /// Thread `thread` of `threads`, `rate` calls per second in all, calls due before
    /// `start + window` (if bounded by time) and numbered below `limit` (if bounded by count).
    pub fn new(
        start: Instant,
        rate: f64,
        thread: usize,
        threads: usize,
        window: Option<Duration>,
        limit: Option<u64>,
    ) -> Schedule {
        Schedule {
            start,
            rate,
            thread: thread as u64,
            threads: threads as u64,
            next_local: 0,
            window,
            limit,
        }
    }

    /// The intended start of global call `seq`.
    pub fn intended(&self, seq: u64) -> Instant {
        self.start + Duration::from_secs_f64(seq as f64 / self.rate)
    }

    /// The next call of this thread, due or not, or `None` when the schedule is over.
    pub fn peek(&self) -> Option<Due> {
        let seq = self.next_local * self.threads + self.thread;
        if self.limit.is_some_and(|l| seq >= l) {
            return None;
        }
        let intended = self.intended(seq);
        if self
            .window
            .is_some_and(|w| intended.duration_since(self.start) >= w)
        {
            return None;
        }
        Some(Due { seq, intended })
    }

    /// Takes the next call if it is due at `now`.
    pub fn next_due(&mut self, now: Instant) -> Option<Due> {
        let d = self.peek()?;
        if d.intended <= now {
            self.next_local += 1;
            Some(d)
        } else {
            None
        }
    }

    /// Whether every call has been taken.
    pub fn finished(&self) -> bool {
        self.peek().is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_interleave_and_cover_every_call() {
        let start = Instant::now();
        let far = start + Duration::from_secs(100);
        let mut seen = Vec::new();
        for t in 0..3 {
            let mut s = Schedule::new(start, 1000.0, t, 3, None, Some(10));
            while let Some(d) = s.next_due(far) {
                assert_eq!(
                    d.intended,
                    start + Duration::from_secs_f64(d.seq as f64 / 1000.0)
                );
                seen.push(d.seq);
            }
            assert!(s.finished());
        }
        seen.sort();
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn nothing_before_its_time_and_window_bounds() {
        let start = Instant::now();
        let mut s = Schedule::new(start, 10.0, 0, 1, Some(Duration::from_secs(1)), None);
        assert_eq!(s.next_due(start).map(|d| d.seq), Some(0));
        assert_eq!(s.next_due(start), None);
        let mut n = 1;
        while s.next_due(start + Duration::from_secs(5)).is_some() {
            n += 1;
        }
        assert_eq!(n, 10, "1 s at 10/s is 10 calls");
    }
}
