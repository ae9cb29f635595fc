//! Load runs against the in-process responder on loopback: the books balance, the percentiles
//! are ordered, the files parse and agree with what was printed, and a stalled server shows up
//! in the tail (no coordinated omission). No timing is asserted beyond large-margin checks.

use sipshard_load::config::Config;
use sipshard_load::report::{parse_hgrm, Summary};
use sipshard_load::responder::{reply_to_stored, Responder, ResponderConfig};
use sipshard_load::run_and_report;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::time::Duration;

fn responder(cfg: ResponderConfig) -> Responder {
    Responder::start("127.0.0.1:0".parse().unwrap(), cfg).unwrap()
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("sipshard-load-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run(target: SocketAddr, extra: &[&str]) -> (Summary, String) {
    let mut flags = vec![target.to_string(), "-q".to_string()];
    flags.extend(extra.iter().map(|s| s.to_string()));
    let cfg = Config::from_flags(flags).unwrap();
    let mut out = Vec::new();
    let s = run_and_report(&cfg, &mut out).unwrap();
    (s, String::from_utf8(out).unwrap())
}

fn check_books(s: &Summary) {
    assert_eq!(
        s.sent,
        s.answered + s.timeouts,
        "sent = answered + timeouts: {s:#?}"
    );
    for m in &s.metrics {
        let p = m.percentiles();
        assert!(m.min_ms <= p[0], "{m:?}");
        for w in p.windows(2) {
            assert!(w[0] <= w[1], "percentiles not monotonic: {m:?}");
        }
        assert!(p[4] <= m.max_ms, "{m:?}");
    }
}

#[test]
fn options_reports_balance_and_files_agree() {
    let r = responder(ResponderConfig::default());
    let dir = TempDir::new("options");
    let out = dir.0.to_str().unwrap();
    let (s, text) = run(
        r.addr(),
        &[
            "--rate",
            "1000",
            "--requests",
            "400",
            "--timeout",
            "2s",
            "--out",
            out,
        ],
    );
    check_books(&s);
    assert_eq!(s.calls, 400);
    assert_eq!(s.sent, 400);
    assert_eq!(s.answered + s.timeouts, 400);
    assert_eq!(s.metrics[0].count + s.metrics[0].timeouts, 400);
    let codes: u64 = s.replies_by_code.values().sum();
    assert_eq!(codes, s.answered);

    // The .hgrm parses and describes the same histogram.
    let hgrm = std::fs::read_to_string(dir.0.join("options.hgrm")).unwrap();
    let rows = parse_hgrm(&hgrm).unwrap();
    let last = rows.last().unwrap();
    assert_eq!(last.total_count, s.metrics[0].count);
    assert_eq!(last.quantile, 1.0);
    assert!((last.value - s.metrics[0].max_ms).abs() < 1e-9);
    for w in rows.windows(2) {
        assert!(w[0].value <= w[1].value && w[0].total_count <= w[1].total_count);
    }
    assert!(hgrm.contains("#[Max     = "));

    // JSON is the printed summary.
    let json: Summary =
        serde_json::from_str(&std::fs::read_to_string(dir.0.join("summary.json")).unwrap())
            .unwrap();
    // Floats of the spectrum may differ in the last bit after a JSON round trip.
    let (mut a, mut b) = (json.clone(), s.clone());
    for (ma, mb) in a.metrics.iter_mut().zip(b.metrics.iter_mut()) {
        assert_eq!(ma.spectrum.len(), mb.spectrum.len());
        for (x, y) in ma.spectrum.iter().zip(&mb.spectrum) {
            assert!((x.0 - y.0).abs() < 1e-9 && (x.1 - y.1).abs() < 1e-9);
        }
        ma.spectrum.clear();
        mb.spectrum.clear();
    }
    assert_eq!(a, b);
    assert_eq!(
        std::fs::read_to_string(dir.0.join("summary.txt")).unwrap(),
        text
    );
    let row = text.lines().find(|l| l.starts_with("options ")).unwrap();
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols[1], json.metrics[0].count.to_string());
    assert_eq!(cols[5], format!("{:.3}", json.metrics[0].p99_ms));
    assert_eq!(cols[8], format!("{:.3}", json.metrics[0].max_ms));

    assert!(std::fs::read_to_string(dir.0.join("latency.hlog"))
        .unwrap()
        .contains("#[StartTime"));
    assert!(std::fs::read_to_string(dir.0.join("spectrum.svg"))
        .unwrap()
        .starts_with("<svg"));
    r.stop();
}

#[test]
fn park_pull_measures_three_latencies() {
    let r = responder(ResponderConfig {
        park: true,
        ..Default::default()
    });
    let (s, _) = run(
        r.addr(),
        &[
            "--scenario",
            "park-pull",
            "--rate",
            "500",
            "--requests",
            "200",
        ],
    );
    check_books(&s);
    assert_eq!(s.sent, 400, "MESSAGE + trigger per call");
    for m in &s.metrics {
        assert_eq!(m.count + m.timeouts, 200, "{}", m.name);
    }
    assert_eq!(
        s.metrics[2].count, 200,
        "every parked MESSAGE came back pulled"
    );
    assert_eq!(s.replies_by_code["202"], 200);
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    assert_eq!(s.failed_calls, 0);
}

#[test]
fn park_expire_measures_the_408() {
    let r = responder(ResponderConfig {
        park: true,
        expire: Some(Duration::from_millis(200)),
        ..Default::default()
    });
    let (s, _) = run(
        r.addr(),
        &[
            "--scenario",
            "park-expire",
            "--expire",
            "200ms",
            "--rate",
            "500",
            "--requests",
            "100",
        ],
    );
    check_books(&s);
    assert_eq!(s.metrics[1].name, "expire");
    assert_eq!(s.metrics[1].count, 100);
    assert_eq!(s.replies_by_code["408"], 100);
    assert_eq!(s.failed_calls, 0);
}

#[test]
fn invite_calls_complete() {
    let r = responder(ResponderConfig::default());
    let (s, _) = run(
        r.addr(),
        &[
            "--scenario",
            "invite",
            "--rate",
            "500",
            "--requests",
            "100",
            "--threads",
            "2",
        ],
    );
    check_books(&s);
    assert_eq!(s.sent, 200, "INVITE + BYE per call");
    assert_eq!(s.failed_calls, 0, "{s:#?}");
    assert_eq!(s.metrics[0].count, 100);
    assert_eq!(s.metrics[1].count, 100);
}

#[test]
fn unanswered_requests_are_timeouts_not_dropped() {
    // A socket that never answers.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (s, text) = run(
        silent.local_addr().unwrap(),
        &[
            "--rate",
            "500",
            "--requests",
            "50",
            "--timeout",
            "200ms",
            "--retransmit",
        ],
    );
    check_books(&s);
    assert_eq!(s.sent, 50);
    assert_eq!(s.timeouts, 50);
    assert_eq!(s.failed_calls, 50);
    assert!(text.contains("failed calls: 50"), "{text}");
    assert_eq!(s.metrics[0].timeouts, 50);
    assert_eq!(s.metrics[0].p99_with_timeouts_ms, None);
    assert!(text.contains("timeout"));
}

/// A UDP server that parks every MESSAGE (202 with `X-Repo-Msgid`) and answers every other
/// request `other`, and never sends a parked MESSAGE back; until `stop` or 20 s.
fn parks_and_answers(
    other: (u16, &'static str),
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> (SocketAddr, std::thread::JoinHandle<()>) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let addr = sock.local_addr().unwrap();
    let h = std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        let end = std::time::Instant::now() + Duration::from_secs(20);
        while !stop.load(std::sync::atomic::Ordering::Relaxed) && std::time::Instant::now() < end {
            let Ok((n, from)) = sock.recv_from(&mut buf) else {
                continue;
            };
            let req = &buf[..n];
            let reply = if req.starts_with(b"MESSAGE ") {
                reply_to_stored(req, 202, "Stored", &["X-Repo-Msgid: 1".to_string()])
            } else {
                reply_to_stored(req, other.0, other.1, &[])
            };
            if let Some(r) = reply {
                let _ = sock.send_to(&r, from);
            }
        }
    });
    (addr, h)
}

#[test]
fn a_call_whose_pull_fails_is_one_failed_call() {
    // The trigger is refused (404) and the parked MESSAGE never comes back: two things go
    // wrong in each call, which still counts once.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (addr, server) = parks_and_answers((404, "Not Found"), stop.clone());
    let (s, _) = run(
        addr,
        &[
            "--scenario",
            "park-pull",
            "--rate",
            "500",
            "--requests",
            "40",
            "--timeout",
            "300ms",
        ],
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    server.join().unwrap();
    check_books(&s);
    assert_eq!(s.replies_by_code["404"], 40, "{s:#?}");
    assert_eq!(s.errors["trigger not answered 2xx"], 40, "{s:#?}");
    assert_eq!(s.metrics[2].timeouts, 40, "no 200 Pulled: {s:#?}");
    assert_eq!(s.failed_calls, 40, "{s:#?}");
}

#[test]
fn a_refused_park_is_a_failed_call() {
    // The responder without --park answers MESSAGE 200, which park-pull does not expect.
    let r = responder(ResponderConfig::default());
    let (s, _) = run(
        r.addr(),
        &[
            "--scenario",
            "park-pull",
            "--rate",
            "500",
            "--requests",
            "30",
        ],
    );
    check_books(&s);
    assert_eq!(s.timeouts, 0);
    assert_eq!(s.errors["park refused (MESSAGE not answered 202)"], 30);
    assert_eq!(s.failed_calls, 30);
    r.stop();
}

#[test]
fn requests_cut_short_by_a_stop_are_timeouts_not_failures() {
    // Ctrl-C: what is outstanding is counted as timed out so the books balance, but the calls
    // did not fail, so a good run stopped early still exits 0.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let cfg = Config::from_flags([
        silent.local_addr().unwrap().to_string().as_str(),
        "-q",
        "--rate",
        "200",
        "--duration",
        "10s",
        "--timeout",
        "30s",
    ])
    .unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s2 = stop.clone();
    let stopper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        s2.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let mut out = Vec::new();
    let s = sipshard_load::run::run_and_report_with_stop(&cfg, &mut out, stop).unwrap();
    stopper.join().unwrap();
    check_books(&s);
    assert!(s.timeouts > 0, "{s:#?}");
    assert_eq!(s.failed_calls, 0, "{s:#?}");
}

#[test]
fn a_stalled_server_shows_in_the_tail() {
    // 300 ms without replies in the middle of a 2 s run at 500/s: ~150 requests wait up to
    // 300 ms. Measured from their intended send times, p99 must show it.
    let r = responder(ResponderConfig {
        stall: Some((Duration::from_millis(800), Duration::from_millis(300))),
        ..Default::default()
    });
    let (s, _) = run(
        r.addr(),
        &["--rate", "500", "--duration", "2s", "--timeout", "3s"],
    );
    check_books(&s);
    assert_eq!(s.timeouts, 0);
    let m = &s.metrics[0];
    assert!(m.p99_ms >= 150.0, "stall not visible: p99 {} ms", m.p99_ms);
    assert!(m.max_ms >= 250.0, "stall not visible: max {} ms", m.max_ms);
    assert!(
        m.p50_ms < 150.0,
        "most requests were not stalled: p50 {} ms",
        m.p50_ms
    );
}

#[test]
fn tcp_transport_round_trips() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            let n = match conn.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            buf.extend_from_slice(&chunk[..n]);
            let opts = sipshard_parser::sip::FrameOptions::default();
            while let Ok(sipshard_parser::Status::Complete(
                sipshard_parser::sip::Framed::Message { len, .. },
            )) = sipshard_parser::sip::frame(&buf, &opts)
            {
                let reply = reply_to_stored(&buf[..len], 200, "OK", &[]).unwrap();
                conn.write_all(&reply).unwrap();
                buf.drain(..len);
            }
        }
    });
    let (s, _) = run(
        addr,
        &[
            "--transport",
            "tcp",
            "--scenario",
            "message",
            "--rate",
            "500",
            "--requests",
            "100",
        ],
    );
    check_books(&s);
    assert_eq!(s.answered, 100);
    assert_eq!(s.transport, "tcp");
    server.join().unwrap();
}

#[test]
fn park_pull_over_tcp_comes_back_on_the_parking_connection() {
    // Three threads with a connection each: each pulled MESSAGE must come back on the
    // connection that parked it, or the thread waiting for it never sees it (a timeout there,
    // an unmatched reply in another thread).
    let r = responder(ResponderConfig {
        park: true,
        ..Default::default()
    });
    let (s, _) = run(
        r.addr(),
        &[
            "--transport",
            "tcp",
            "--threads",
            "3",
            "--connections",
            "3",
            "--scenario",
            "park-pull",
            "--rate",
            "600",
            "--requests",
            "150",
            "--timeout",
            "3s",
        ],
    );
    check_books(&s);
    assert_eq!(s.transport, "tcp");
    assert_eq!(s.timeouts, 0, "{s:#?}");
    assert_eq!(s.metrics[2].name, "pulled");
    assert_eq!(s.metrics[2].count, 150);
    assert_eq!(s.replies_by_code["202"], 150);
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    // The MESSAGE and its trigger, over TCP.
    assert_eq!(r.received(), 300);
}

#[test]
fn binary_runs_and_compares() {
    let r = responder(ResponderConfig::default());
    let bin = env!("CARGO_BIN_EXE_sipshard-load");
    let a = TempDir::new("bin-a");
    let b = TempDir::new("bin-b");
    for (dir, rate) in [(&a, "300"), (&b, "600")] {
        let out = std::process::Command::new(bin)
            .args([
                &r.addr().to_string(),
                "-q",
                "--requests",
                "150",
                "--rate",
                rate,
                "--out",
            ])
            .arg(&dir.0)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let json: Summary =
            serde_json::from_str(&std::fs::read_to_string(dir.0.join("summary.json")).unwrap())
                .unwrap();
        assert!(text.contains(&format!("answered {}", json.answered)));
        assert!(text.contains(&format!("{:.3}", json.metrics[0].p50_ms)));
    }
    let svg = a.0.join("compare.svg");
    let out = std::process::Command::new(bin)
        .arg("report")
        .arg(&a.0)
        .arg(&b.0)
        .arg("--svg")
        .arg(&svg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        table.lines().filter(|l| l.contains("options")).count(),
        2,
        "{table}"
    );
    assert!(std::fs::read_to_string(&svg).unwrap().starts_with("<svg"));
    // A bad flag is refused with a message, not a panic.
    let out = std::process::Command::new(bin)
        .args(["--rate", "fast"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    r.stop();
}
