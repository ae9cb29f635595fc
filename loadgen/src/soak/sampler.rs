//! Once a second: the server's memory, descriptors and CPU from `/proc/PID`, its per-shard
//! items and queue depths from `ctl shard.stats`, and the driver's own gauges.
//!
//! The queue depth is `pending_cross_shard`: route runs of a shard waiting for another shard's
//! answer (the only per-shard queue the server reports; the mesh's channels and outboxes are not
//! exposed, their overflow shows as `mesh_dropped`).

use super::control;
use super::driver::Live;
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One second's look.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    /// Seconds since the start.
    pub t_s: f64,
    /// The server's resident memory (VmRSS), kB.
    pub rss_kb: Option<u64>,
    /// The server's open file descriptors.
    pub fds: Option<u64>,
    /// The server's CPU since the last sample, % of one core.
    pub cpu_pct: Option<f64>,
    /// Items stored, per shard.
    pub items: Vec<u64>,
    /// Route runs waiting for another shard, per shard.
    pub pending: Vec<u64>,
    /// Open TCP connections (all shards).
    pub tcp_connections: Option<u64>,
    /// Parks sent so far.
    pub parks: u64,
    /// Items the soak believes are in the server.
    pub in_server: u64,
    /// Ledger entries not judged yet.
    pub ledger: u64,
    /// Control calls queued or in flight.
    pub control: u64,
    /// `200 Pulled` so far.
    pub pulled: u64,
    /// 408 so far.
    pub expired: u64,
    /// Removed so far.
    pub removed: u64,
    /// Whether the parks were all sent by then.
    pub traffic_done: bool,
}

impl Sample {
    /// Items stored, all shards.
    pub fn items_total(&self) -> Option<u64> {
        (!self.items.is_empty()).then(|| self.items.iter().sum())
    }
    /// The deepest shard queue.
    pub fn pending_max(&self) -> Option<u64> {
        self.pending.iter().copied().max()
    }
}

/// `VmRSS` of a process, kB.
pub fn rss_kb(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Open descriptors of a process.
pub fn fds(pid: u32) -> Option<u64> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64)
}

/// utime + stime of a process (every thread), seconds.
pub fn cpu_s(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command (which may hold spaces) start at field 3 (state).
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1);
    Some(ticks as f64 / hz as f64)
}

/// Takes one sample. `last_cpu` is the previous (time, CPU seconds), updated.
pub fn sample(
    start: Instant,
    pid: Option<u32>,
    control: SocketAddr,
    live: &Live,
    last_cpu: &mut CpuReading,
) -> Sample {
    let t_s = start.elapsed().as_secs_f64();
    let mut s = Sample {
        t_s,
        ..Sample::default()
    };
    if let Some(pid) = pid {
        s.rss_kb = rss_kb(pid);
        s.fds = fds(pid);
        if let Some(c) = cpu_s(pid) {
            if let Some((t0, c0)) = *last_cpu {
                if t_s > t0 {
                    s.cpu_pct = Some(100.0 * (c - c0) / (t_s - t0));
                }
            }
            *last_cpu = Some((t_s, c));
        }
    }
    if let Ok(v) = control::rpc(control, "shard.stats", json!({})) {
        let shards = v["shards"].as_array().cloned().unwrap_or_default();
        let get = |sh: &Value, k: &str| sh.get(k).and_then(Value::as_u64).unwrap_or(0);
        s.items = shards.iter().map(|sh| get(sh, "items")).collect();
        s.pending = shards
            .iter()
            .map(|sh| get(sh, "pending_cross_shard"))
            .collect();
        s.tcp_connections = Some(shards.iter().map(|sh| get(sh, "tcp_connections")).sum());
    }
    s.parks = live.parks.load(Relaxed);
    s.in_server = live.in_server.load(Relaxed);
    s.ledger = live.ledger.load(Relaxed);
    s.control = live.control.load(Relaxed);
    s.pulled = live.pulled.load(Relaxed);
    s.expired = live.expired.load(Relaxed);
    s.removed = live.removed.load(Relaxed);
    s.traffic_done = live.traffic_done.load(Relaxed);
    s
}

/// The last CPU reading: (seconds since the start, CPU seconds of the server).
pub type CpuReading = Option<(f64, f64)>;

/// The sampling thread.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<(Vec<Sample>, CpuReading)>,
}

impl Sampler {
    /// Samples every second from `start` until stopped.
    pub fn start(
        start: Instant,
        pid: Option<u32>,
        control: SocketAddr,
        live: Arc<Live>,
        verbose: bool,
    ) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("soak-sampler".into())
            .spawn(move || {
                let mut out = Vec::new();
                let mut last_cpu = None;
                let mut k = 0u64;
                while !stop2.load(Relaxed) {
                    let s = sample(start, pid, control, &live, &mut last_cpu);
                    if verbose {
                        eprintln!("{}", progress_line(&s));
                    }
                    out.push(s);
                    k += 1;
                    let due = start + Duration::from_secs(k);
                    while !stop2.load(Relaxed) && Instant::now() < due {
                        std::thread::sleep(
                            due.saturating_duration_since(Instant::now())
                                .min(Duration::from_millis(50)),
                        );
                    }
                }
                (out, last_cpu)
            })
            .expect("spawn the sampler");
        Sampler { stop, thread }
    }

    /// Stops it; returns the samples and the last CPU reading.
    pub fn stop(self) -> (Vec<Sample>, CpuReading) {
        self.stop.store(true, Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

/// The line printed each second.
pub fn progress_line(s: &Sample) -> String {
    format!(
        "[{:6.1}s] parks {} in server {} (soak) {} (server) | pulled {} expired {} removed {} | \
         rss {} kB fds {} cpu {}% | queue max {} | control backlog {}",
        s.t_s,
        s.parks,
        s.in_server,
        opt(s.items_total()),
        s.pulled,
        s.expired,
        s.removed,
        opt(s.rss_kb),
        opt(s.fds),
        opt(s.cpu_pct.map(|c| format!("{c:.0}"))),
        opt(s.pending_max()),
        s.control,
    )
}

/// samples.csv: one row per sample.
pub fn csv(samples: &[Sample]) -> String {
    let shards = samples.iter().map(|s| s.items.len()).max().unwrap_or(0);
    let mut out = String::from("t_s,rss_kb,fds,cpu_pct,items");
    for i in 0..shards {
        let _ = write!(out, ",items_s{i}");
    }
    for i in 0..shards {
        let _ = write!(out, ",queue_s{i}");
    }
    out.push_str(
        ",tcp_connections,parks_sent,in_server_soak,ledger_open,control_backlog,pulled,expired,removed,traffic_done\n",
    );
    let o = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
    for s in samples {
        let _ = write!(
            out,
            "{:.3},{},{},{},{}",
            s.t_s,
            o(s.rss_kb),
            o(s.fds),
            s.cpu_pct.map(|c| format!("{c:.1}")).unwrap_or_default(),
            o(s.items_total())
        );
        for i in 0..shards {
            let _ = write!(out, ",{}", o(s.items.get(i).copied()));
        }
        for i in 0..shards {
            let _ = write!(out, ",{}", o(s.pending.get(i).copied()));
        }
        let _ = writeln!(
            out,
            ",{},{},{},{},{},{},{},{},{}",
            o(s.tcp_connections),
            s.parks,
            s.in_server,
            s.ledger,
            s.control,
            s.pulled,
            s.expired,
            s.removed,
            u8::from(s.traffic_done)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_our_own_process() {
        let me = std::process::id();
        assert!(rss_kb(me).unwrap() > 0);
        assert!(fds(me).unwrap() >= 3);
        assert!(cpu_s(me).is_some());
    }

    #[test]
    fn csv_has_a_column_per_shard() {
        let s = Sample {
            t_s: 1.0,
            rss_kb: Some(100),
            items: vec![3, 4],
            pending: vec![0, 1],
            ..Sample::default()
        };
        let text = csv(&[s]);
        let mut lines = text.lines();
        let head = lines.next().unwrap();
        assert!(
            head.starts_with("t_s,rss_kb,fds,cpu_pct,items,items_s0,items_s1,queue_s0,queue_s1,")
        );
        let row = lines.next().unwrap();
        assert!(row.starts_with("1.000,100,,,7,3,4,0,1,"), "{row}");
        assert_eq!(
            head.split(',').count(),
            row.split(',').count(),
            "{head}\n{row}"
        );
    }
}
