//! `sipshard-soak`: a long run against `sipshard serve` with docs/examples/siprepo.toml that
//! checks from outside that every parked message got exactly one outcome, that the server's
//! counters agree with what was sent, and how its memory, descriptors and queues behave over
//! time (issue 10, "Soak"; docs/loadgen.md, "Soak").
//!
//! - [`driver`]: the traffic (parks over UDP and TCP, triggers, retransmissions, `repo.rm`,
//!   `repo.get`) on one thread, and the answers into the ledger.
//! - [`ledger`]: one entry per park and the verdict on it.
//! - [`control`]: JSON-RPC and `/metrics` over HTTP; the workers making control calls.
//! - [`sampler`]: RSS, descriptors, CPU and per-shard queues once a second.
//! - [`gateway`]: optional gateway sessions against a second server.
//! - [`report`]: report.txt and report.svg.

pub mod control;
pub mod driver;
pub mod gateway;
pub mod ledger;
pub mod report;
pub mod sampler;

use crate::config::{parse_duration, parse_rate};
use clap::Parser;
use driver::{Driver, DriverConfig, DriverStats, Live, Mix};
use ledger::Ledger;
use report::{Check, ReportInput};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `sipshard-soak`: exactly one outcome per parked message, counters that agree, and resources
/// over time, against a running `sipshard serve -c docs/examples/siprepo.toml`.
#[derive(Debug, Clone, Parser)]
#[command(name = "sipshard-soak", version)]
pub struct Args {
    /// The server's SIP address (UDP and TCP on the same port).
    #[arg(long)]
    pub target: SocketAddr,
    /// The server's control endpoint.
    #[arg(long)]
    pub control: SocketAddr,
    /// Bearer token for the control endpoint(s), when the server requires one (default:
    /// `$SIPSHARD_CONTROL_TOKEN`, if set).
    #[arg(long)]
    pub control_token: Option<String>,
    /// The server's process id: RSS, descriptors and CPU are read from /proc/PID.
    #[arg(long)]
    pub pid: Option<u32>,
    /// How long parks are sent (then the soak waits for the last items to expire).
    #[arg(long, value_parser = parse_duration, default_value = "60")]
    pub duration: Duration,
    /// Parks per second.
    #[arg(long, value_parser = parse_rate, default_value = "200")]
    pub rate: f64,
    /// The server's repository expiry, seconds (default: read from `ctl config.show`).
    #[arg(long)]
    pub expire: Option<u64>,
    /// Seconds after an item's expiry before it is judged (a late or second outcome is
    /// looked for until then).
    #[arg(long, default_value_t = 3.0)]
    pub margin: f64,
    /// Where report.txt, report.svg and samples.csv go.
    #[arg(long, default_value = "soak-report")]
    pub out: PathBuf,
    /// % of items pulled by a trigger.
    #[arg(long, default_value_t = 60.0)]
    pub pull: f64,
    /// % of items removed with `repo.rm` (the rest is left to expire).
    #[arg(long, default_value_t = 15.0)]
    pub rm: f64,
    /// % of pull triggers that carry the parked Call-ID (same shard); the others carry a
    /// fresh one (any shard: cross-shard pulls).
    #[arg(long, default_value_t = 30.0)]
    pub same_callid: f64,
    /// % of parks retransmitted once (same bytes, same branch) after their 202.
    #[arg(long, default_value_t = 10.0)]
    pub retransmit: f64,
    /// % of parks and triggers sent over TCP.
    #[arg(long, default_value_t = 20.0)]
    pub tcp: f64,
    /// % of items checked with `repo.get` before their action (and after a pull or rm).
    #[arg(long, default_value_t = 5.0)]
    pub check: f64,
    /// Longest wait between an item's 202 and its trigger or rm, ms (default: a third of the
    /// expiry, at most 2000).
    #[arg(long)]
    pub hold_max: Option<u64>,
    /// UDP sockets to send from.
    #[arg(long, default_value_t = 8)]
    pub udp_sockets: usize,
    /// TCP connections to send over.
    #[arg(long, default_value_t = 4)]
    pub tcp_connections: usize,
    /// Control calls in parallel.
    #[arg(long, default_value_t = 4)]
    pub control_workers: usize,
    /// MESSAGE body bytes.
    #[arg(long, default_value_t = 64)]
    pub body_size: usize,
    /// Seed of the mix (default: from the clock; printed in the report).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Seconds after the start where the steady state begins (default: expiry + margin, at most
    /// half the duration).
    #[arg(long)]
    pub warmup: Option<f64>,
    /// Descriptors the server may hold at the end beyond what it held before the soak.
    #[arg(long, default_value_t = 4)]
    pub fd_slack: u64,
    /// A second sipshard running docs/examples/msrp-gateway.toml: drive gateway sessions
    /// against it too (SIP side; the gateway's MSRP address comes from its INVITEs).
    #[arg(long)]
    pub gateway_target: Option<SocketAddr>,
    /// The gateway server's control endpoint (to check its sessions are gone at the end).
    #[arg(long, requires = "gateway_target")]
    pub gateway_control: Option<SocketAddr>,
    /// Gateway sessions to run, one after the other, spread over the duration.
    #[arg(long, default_value_t = 10)]
    pub gateway_sessions: u64,
    /// MESSAGEs per gateway session.
    #[arg(long, default_value_t = 5)]
    pub gateway_messages: u64,
    /// No progress line every second.
    #[arg(short, long)]
    pub quiet: bool,
}

/// What a soak run found.
pub struct SoakResult {
    /// The text report.
    pub text: String,
    /// Whether everything checked out.
    pub pass: bool,
}

/// The repository expiry in the server's effective config (`[repo] expire`).
pub fn expire_from_config(toml: &str) -> Option<u64> {
    let mut in_repo = false;
    for l in toml.lines() {
        let l = l.trim();
        if l.starts_with('[') {
            in_repo = l == "[repo]";
        } else if in_repo {
            if let Some(v) = l.strip_prefix("expire") {
                let v = v.trim_start().strip_prefix('=')?;
                return v.split('#').next()?.trim().parse().ok();
            }
        }
    }
    None
}

/// `Udp: ... RcvbufErrors` of /proc/net/snmp (datagrams the kernel dropped, machine-wide).
pub fn udp_rcvbuf_errors() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/net/snmp").ok()?;
    let mut lines = s.lines().filter(|l| l.starts_with("Udp:"));
    let head: Vec<&str> = lines.next()?.split_whitespace().collect();
    let vals: Vec<&str> = lines.next()?.split_whitespace().collect();
    let i = head.iter().position(|h| *h == "RcvbufErrors")?;
    vals.get(i)?.parse().ok()
}

fn pct(flag: &str, v: f64) -> Result<f64, String> {
    if (0.0..=100.0).contains(&v) {
        Ok(v / 100.0)
    } else {
        Err(format!("--{flag}: {v} is not a percentage (0..100)"))
    }
}

/// Runs a soak as the flags say; writes the report files and returns the text and verdict.
pub fn run(args: &Args) -> Result<SoakResult, String> {
    let mix = Mix {
        pull: pct("pull", args.pull)?,
        rm: pct("rm", args.rm)?,
        same_callid: pct("same-callid", args.same_callid)?,
        retransmit: pct("retransmit", args.retransmit)?,
        tcp: pct("tcp", args.tcp)?,
        check: pct("check", args.check)?,
    };
    if mix.pull + mix.rm > 1.0 {
        return Err("--pull + --rm is over 100%".into());
    }
    if !(args.margin >= 0.5 && args.margin.is_finite()) {
        return Err("--margin: at least 0.5 s".into());
    }
    if let Some(t) = args
        .control_token
        .clone()
        .or_else(|| std::env::var("SIPSHARD_CONTROL_TOKEN").ok())
        .filter(|t| !t.is_empty())
    {
        control::set_token(t);
    }
    let config = control::rpc(args.control, "config.show", json!({}))
        .map_err(|e| format!("control {}: config.show: {e}", args.control))?;
    let server_expire = config["config"].as_str().and_then(expire_from_config);
    let expire = match (args.expire, server_expire) {
        (Some(a), Some(s)) if a != s => {
            return Err(format!(
                "--expire {a} but the server's [repo] expire is {s}"
            ))
        }
        (Some(a), _) => a,
        (None, Some(s)) => s,
        (None, None) => {
            return Err("cannot read [repo] expire from config.show: give --expire".into())
        }
    };
    let expire_ms = expire * 1000;
    let margin_ms = (args.margin * 1000.0) as u64;
    let hold_max_ms = args.hold_max.unwrap_or((expire_ms / 3).min(2000));
    if hold_max_ms * 2 > expire_ms {
        return Err(format!(
            "--hold-max {hold_max_ms} ms leaves too little of the {expire} s expiry: actions would race it"
        ));
    }
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    let run_id = crate::peer::random_token(6);
    std::fs::create_dir_all(&args.out).map_err(|e| format!("--out {}: {e}", args.out.display()))?;

    let rss_before = args.pid.and_then(sampler::rss_kb);
    let fds_before = args.pid.and_then(sampler::fds);
    let udp_errors_before = udp_rcvbuf_errors();
    let cfg = DriverConfig {
        target: args.target,
        rate: args.rate,
        duration: args.duration,
        expire_ms,
        margin_ms,
        tolerance_ms: 250,
        hold_max_ms,
        mix,
        udp_sockets: args.udp_sockets,
        tcp_connections: args.tcp_connections,
        body_size: args.body_size,
        control_workers: args.control_workers,
        control: args.control,
        seed,
        run: run_id.clone(),
    };
    let live = Arc::new(Live::default());
    let driver = Driver::new(cfg, Arc::clone(&live))
        .map_err(|e| format!("sockets to {}: {e}", args.target))?;
    let start = Instant::now();
    let sampler = sampler::Sampler::start(
        start,
        args.pid,
        args.control,
        Arc::clone(&live),
        !args.quiet,
    );
    let gw = args.gateway_target.map(|t| {
        let g = gateway::GatewayConfig {
            target: t,
            control: args.gateway_control,
            sessions: args.gateway_sessions,
            messages: args.gateway_messages,
            spread: args.duration,
        };
        std::thread::Builder::new()
            .name("soak-gateway".into())
            .spawn(move || gateway::run(&g))
            .expect("spawn the gateway driver")
    });
    let (ledger, stats) = driver.run(start);
    let gw = gw.map(|h| {
        h.join()
            .unwrap_or_else(|_| gateway::GatewayResult::panicked())
    });
    // Our connections are closed: the server's descriptors should come back to where they
    // were before the soak.
    let mut fds_end = args.pid.and_then(sampler::fds);
    let deadline = Instant::now() + Duration::from_secs(5);
    while let (Some(end), Some(before)) = (fds_end, fds_before) {
        if end <= before + args.fd_slack || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        fds_end = args.pid.and_then(sampler::fds);
    }
    let (mut samples, mut last_cpu) = sampler.stop();
    samples.push(sampler::sample(
        start,
        args.pid,
        args.control,
        &live,
        &mut last_cpu,
    ));
    let udp_errors = match (udp_errors_before, udp_rcvbuf_errors()) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };

    let mut extra = Vec::new();
    let checks = server_checks(args.control, &ledger, &stats, &mut extra);
    for c in checks.iter().filter(|c| !c.ok) {
        extra.push(format!(
            "{} {}: server {}, soak {}",
            c.source, c.name, c.got, c.want
        ));
    }
    if let (Some(end), Some(before)) = (fds_end, fds_before) {
        if end > before + args.fd_slack {
            extra.push(format!(
                "descriptors: the server holds {end} after the soak closed its connections, {before} before it (slack {})",
                args.fd_slack
            ));
        }
    }
    let warmup = args.warmup.unwrap_or_else(|| {
        ((expire_ms + margin_ms) as f64 / 1e3).min(args.duration.as_secs_f64() / 2.0)
    });
    let res = report::resources(&samples, warmup, rss_before, fds_before, fds_end);
    let mut notes = Vec::new();
    if let (Some(s), Some((t, w))) = (res.rss_slope_kb_min, res.rss_warm) {
        let minutes = (stats.traffic_s - t).max(0.0) / 60.0;
        notes.push(format!(
            "RSS trend after warm-up: {s:+.1} kB/min, {:+.1}% of the warm-up RSS over the {:.1} min of steady traffic{}",
            100.0 * s * minutes / w.max(1) as f64,
            minutes,
            if minutes < 5.0 {
                " (too short to tell a leak from the allocator settling)"
            } else {
                " (a leak shows as steady growth over a long run)"
            }
        ));
    }
    if stats.behind > 0 {
        notes.push(format!(
            "the soak fell behind its schedule: {} parks more than 100 ms late (max {} ms); the rate offered was lower than asked",
            stats.behind, stats.max_lag_ms
        ));
    }
    if let Some(d) = udp_errors.filter(|&d| d > 0) {
        notes.push(format!(
            "the kernel dropped {d} UDP datagrams for full receive buffers during the run (/proc/net/snmp RcvbufErrors, machine-wide): missing answers may be losses on loopback, not the server's"
        ));
    }
    if let Some(g) = &gw {
        for v in &g.violations {
            extra.push(format!("gateway: {v}"));
        }
    }

    let t = &ledger.tally;
    let mut header = vec![
        format!("run: sk{run_id} (seed {seed})"),
        format!(
            "target: {} (UDP + TCP), control {}, pid {}",
            args.target,
            args.control,
            args.pid.map_or_else(|| "-".into(), |p| p.to_string())
        ),
        format!(
            "traffic: {:.0} s at {} parks/s, expire {expire} s, margin {:.1} s, hold up to {hold_max_ms} ms; traffic took {:.1} s, all judged after {:.1} s",
            args.duration.as_secs_f64(),
            args.rate,
            args.margin,
            stats.traffic_s,
            stats.total_s
        ),
        format!(
            "mix: pull {}% (same Call-ID {}% of them), rm {}%, expire {}%; retransmit {}%, tcp {}%, check {}%",
            args.pull,
            args.same_callid,
            args.rm,
            100.0 - args.pull - args.rm,
            args.retransmit,
            args.tcp,
            args.check
        ),
    ];
    header.push(format!(
        "plans: {}",
        t.plans
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let mut counts = vec![
        (
            "parks".into(),
            format!(
                "{} ({} over UDP, {} over TCP)",
                t.parks,
                t.parks - t.parks_tcp,
                t.parks_tcp
            ),
        ),
        (
            "retransmissions".into(),
            format!("{} sent, {} answered 202 again", t.rtx_sent, t.rtx_answers),
        ),
        (
            "triggers".into(),
            format!("{} ({} answered 404)", t.triggers, t.triggers_404),
        ),
        (
            "raced expiry".into(),
            format!(
                "{} (a trigger or rm that came after the item expired: allowed)",
                t.raced_expiry
            ),
        ),
        (
            "checks".into(),
            format!(
                "repo.get before the action {} (found {}), after a pull or rm {} (found {})",
                t.checks_before, t.checks_before_found, t.checks_after, t.checks_after_found
            ),
        ),
        (
            "sip".into(),
            format!(
                "{} requests sent, {} responses received ({} over UDP)",
                stats.requests, stats.responses, stats.responses_udp
            ),
        ),
        ("late answers".into(), stats.late.to_string()),
        ("unmatched answers".into(), stats.unmatched.to_string()),
        ("send errors".into(), stats.send_errors.to_string()),
        (
            "tcp connections closed".into(),
            stats.tcp_closed.to_string(),
        ),
        (
            "send lag".into(),
            format!(
                "max {} ms, {} parks more than 100 ms late, {} waits for the pacing budget",
                stats.max_lag_ms, stats.behind, stats.paced
            ),
        ),
        (
            "udp receive-buffer drops".into(),
            udp_errors.map_or_else(|| "-".into(), |d| d.to_string()),
        ),
    ];
    if let Some(g) = &gw {
        counts.push(("gateway".into(), g.summary()));
    }
    let input = ReportInput {
        header,
        ledger: &ledger,
        counts,
        checks: &checks,
        res: &res,
        notes,
        extra_violations: extra,
    };
    let text = report::text(&input);
    let pass = report::violation_count(&input) == 0;
    let write = |name: &str, data: &str| {
        std::fs::write(args.out.join(name), data)
            .map_err(|e| format!("{}: {e}", args.out.join(name).display()))
    };
    write("report.txt", &text)?;
    write("samples.csv", &sampler::csv(&samples))?;
    report::write_svg(
        &args.out.join("report.svg"),
        &format!(
            "sipshard soak: {} parks/s for {:.0} s, expire {expire} s",
            args.rate,
            args.duration.as_secs_f64()
        ),
        &samples,
    )
    .map_err(|e| e.to_string())?;
    Ok(SoakResult { text, pass })
}

/// The server's counters (`repo.stats` and `/metrics`) against the ledger.
fn server_checks(
    control: SocketAddr,
    ledger: &Ledger,
    stats: &DriverStats,
    extra: &mut Vec<String>,
) -> Vec<Check> {
    let t = &ledger.tally;
    let mut out = Vec::new();
    // The repository's counters, as both `repo.stats` and `/metrics` report them.
    let repo = [
        ("stored", t.stored_answers),
        ("retransmissions", t.rtx_answers),
        ("pulled", t.pulled_answers),
        ("removed", t.removed),
        ("expired", t.expired_answers),
        ("full", t.refused_answers),
        ("duplicates", 0),
    ];
    match control::rpc(control, "repo.stats", json!({})) {
        Ok(v) => {
            let g = |k: &str| v.get(k).and_then(Value::as_u64);
            for (name, want) in repo.into_iter().chain([("items", 0), ("bytes", 0)]) {
                out.push(Check::eq("repo.stats", name, want, g(name)));
            }
        }
        Err(e) => extra.push(format!("repo.stats: {e}")),
    }
    match control::metrics(control) {
        Ok(m) => {
            let g = |k: &str| control::metric_sum(&m, k);
            let fresh_pulls = t
                .plans
                .get("pull, fresh Call-ID")
                .copied()
                .unwrap_or_default();
            // The repository's counters are `sipshard_repo_<name>_total`; servers before that
            // name called them `sipshard_<name>_total`: the first name present counts.
            for (name, want) in repo.into_iter().chain([("pull_not_found", t.triggers_404)]) {
                let new = format!("sipshard_repo_{name}_total");
                let old = format!("sipshard_{name}_total");
                let (metric, got) = match g(&new) {
                    Some(v) => (new, Some(v)),
                    None => (old.clone(), g(&old)),
                };
                out.push(Check::eq("/metrics", &metric, want, got));
            }
            for (name, want) in [
                ("sipshard_repo_items", 0),
                ("sipshard_repo_bytes", 0),
                ("sipshard_received_total", stats.requests),
                // Every answer the server sent (datagrams, and messages queued on TCP
                // connections) came back here.
                ("sipshard_sent_total", stats.responses),
                ("sipshard_remote_timeouts_total", 0),
                ("sipshard_mesh_dropped_total", 0),
                ("sipshard_send_errors_total", 0),
                ("sipshard_parse_errors_total", 0),
                ("sipshard_tcp_framing_errors_total", 0),
            ] {
                out.push(Check::eq("/metrics", name, want, g(name)));
            }
            // Checked where the server has them.
            for name in [
                "sipshard_udp_drops_total",
                "sipshard_connections_refused_total",
            ] {
                if let Some(v) = g(name) {
                    out.push(Check::eq("/metrics", name, 0, Some(v)));
                }
            }
            let (fin, fout) = (
                g("sipshard_forwarded_in_total"),
                g("sipshard_forwarded_out_total"),
            );
            out.push(Check {
                source: "/metrics",
                name: "forwarded_in = forwarded_out".into(),
                want: fout.map_or_else(|| "absent".into(), |v| v.to_string()),
                got: fin.map_or_else(|| "absent".into(), |v| v.to_string()),
                ok: fin.is_some() && fin == fout,
            });
            // With a few dozen fresh-Call-ID triggers, some must have crossed shards.
            if fresh_pulls >= 32 {
                let x = g("sipshard_cross_shard_ops_total");
                out.push(Check {
                    source: "/metrics",
                    name: "sipshard_cross_shard_ops_total".into(),
                    want: "> 0".into(),
                    got: x.map_or_else(|| "absent".into(), |v| v.to_string()),
                    ok: x.is_some_and(|v| v > 0),
                });
            }
        }
        Err(e) => extra.push(format!("/metrics: {e}")),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_expiry_from_the_effective_config() {
        let toml = "[server]\nexpire = 9\n\n[repo]\nhash_size = 256\nexpire = 30 # s\n[log]\n";
        assert_eq!(expire_from_config(toml), Some(30));
        assert_eq!(expire_from_config("[repo]\nmax_items = 3\n"), None);
    }

    #[test]
    fn flags_parse() {
        let a = Args::try_parse_from([
            "sipshard-soak",
            "--target",
            "127.0.0.1:5060",
            "--control",
            "127.0.0.1:5080",
            "--duration",
            "20",
            "--rate",
            "2k",
        ])
        .unwrap();
        assert_eq!(a.duration, Duration::from_secs(20));
        assert_eq!(a.rate, 2000.0);
        assert!(a.gateway_target.is_none());
    }
}
