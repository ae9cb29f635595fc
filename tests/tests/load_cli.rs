//! `sipshard-load` as an operator or a script meets it: the exit status says whether the calls
//! went through (0), some failed (1) or the tool could not run (2); `report` overlays runs and
//! `.hgrm` files and refuses a latency the runs do not have.

use sipshard_tests::{command, examples, rand_u64, Server};
use std::path::PathBuf;
use std::process::Output;

/// A scratch folder, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let p = std::env::temp_dir().join(format!("sipshard-load-cli-{name}-{:x}", rand_u64()));
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `sipshard-load TARGET -q ARGS...`, 20 calls at 200/s.
fn load(target: &str, args: &[&str]) -> Output {
    command("sipshard-load")
        .arg(target)
        .args(["-q", "--rate", "200", "--requests", "20"])
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn a_run_whose_calls_fail_exits_1_unless_max_failures_allows_them() {
    // A port where nothing listens: the kernel refuses each datagram, every call times out.
    let closed = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    // A socket that takes everything and answers nothing.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap().to_string();
    for target in [&closed, &silent_addr] {
        let out = load(target, &["--timeout", "300ms"]);
        assert_eq!(out.status.code(), Some(1), "{target}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        let line = err
            .lines()
            .find(|l| l.contains("calls failed"))
            .unwrap_or_else(|| panic!("{}", text(&out)));
        assert!(
            line.contains("20 of 20 calls failed, more than --max-failures 0")
                && line.contains("timeouts: options 20"),
            "{line}"
        );
        // The report is still printed: the failure is in the numbers, not a crash.
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("failed calls: 20"),
            "{}",
            text(&out)
        );
        // The threshold is "more than N".
        let out = load(target, &["--timeout", "300ms", "--max-failures", "19"]);
        assert_eq!(out.status.code(), Some(1), "{target}: {}", text(&out));
        let out = load(target, &["--timeout", "300ms", "--max-failures", "20"]);
        assert_eq!(out.status.code(), Some(0), "{target}: {}", text(&out));
    }
    // A ramp at which no rate meets the SLO (every call a timeout) is 1 as well.
    let out = load(
        &silent_addr,
        &[
            "--ramp",
            "100:100:200",
            "--duration",
            "200ms",
            "--timeout",
            "200ms",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no rate met the SLO"),
        "{}",
        text(&out)
    );
    drop(silent);
    // Over TCP nothing can be sent at all: the tool cannot run, which is 2, not 1.
    let refused = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let out = load(&refused, &["--transport", "tcp"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&refused),
        "{}",
        text(&out)
    );
}

#[test]
fn runs_against_sipshard_exit_0_and_a_park_that_never_expires_exits_1() {
    let srv = Server::start(&examples().join("siprepo.toml"), &["--shards", "2"]);
    let target = srv.udp.to_string();
    for scenario in ["options", "message", "park-pull", "invite"] {
        let out = load(&target, &["--scenario", scenario, "--timeout", "5s"]);
        assert_eq!(out.status.code(), Some(0), "{scenario}: {}", text(&out));
        assert!(out.stderr.is_empty(), "{scenario}: {}", text(&out));
    }
    // The example keeps items 180 s whatever the MESSAGE's Expires says, so no 408 comes
    // within --expire + --timeout: every call fails (docs/loadgen.md, park-expire).
    let out = load(
        &target,
        &[
            "--scenario",
            "park-expire",
            "--expire",
            "1s",
            "--timeout",
            "1s",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("timeouts: expire 20") && err.contains("--repo-expire"),
        "{}",
        text(&out)
    );
    // --help says what the server needs.
    let help = command("sipshard-load").arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    let park_expire = help
        .lines()
        .find(|l| l.contains("park-expire:"))
        .expect("park-expire in --help");
    assert!(park_expire.contains("--repo-expire"), "{park_expire}");
    // A ramp against it that meets its SLO exits 0 too.
    let out = load(
        &target,
        &[
            "--ramp",
            "100:100:200",
            "--duration",
            "200ms",
            "--slo",
            "1s",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn report_overlays_a_run_and_a_hgrm_file() {
    let srv = Server::start(&examples().join("siprepo.toml"), &["--shards", "1"]);
    let dir = Scratch::new("report");
    let run = dir.0.join("client");
    let out = command("sipshard-load")
        .arg(srv.udp.to_string())
        .args([
            "--scenario",
            "message",
            "--rate",
            "400",
            "--requests",
            "200",
            "-q",
        ])
        .arg("--out")
        .arg(&run)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // A server-side distribution, written by the writer the server uses.
    let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
    for us in 1..=500u64 {
        h.record(us * 2).unwrap();
    }
    let hgrm = dir.0.join("server-message.hgrm");
    let mut f = std::fs::File::create(&hgrm).unwrap();
    sipshard_core::hgrm::write_hgrm(&h, 1000.0, &mut f).unwrap();
    drop(f);

    let svg = dir.0.join("both.svg");
    let out = command("sipshard-load")
        .arg("report")
        .arg(&run)
        .arg(&hgrm)
        .arg("--svg")
        .arg(&svg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let table = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].contains("p99 ms"), "units in the header: {table}");
    let client = lines
        .iter()
        .find(|l| l.starts_with("client "))
        .expect(&table);
    assert!(client.contains(" message "), "{table}");
    let server: Vec<&str> = lines
        .iter()
        .find(|l| l.starts_with("server-message "))
        .expect(&table)
        .split_whitespace()
        .collect();
    // No rates or timeouts in a .hgrm; 500 values, the median 0.5 ms.
    assert_eq!(&server[1..6], &["-", "-", "-", "-", "500"], "{table}");
    assert_eq!(server[6], "0.500", "{table}");
    let drawn = std::fs::read_to_string(&svg).unwrap();
    assert!(drawn.starts_with("<svg"));
    assert!(
        drawn.contains("client message"),
        "legend names the run's series"
    );
    assert!(
        drawn.contains("server-message"),
        "legend names the file's series"
    );

    // A latency no run has: refused, naming those there are, and no SVG.
    let none = dir.0.join("none.svg");
    let out = command("sipshard-load")
        .arg("report")
        .arg(&run)
        .arg(&hgrm)
        .args(["--metric", "nope", "--svg"])
        .arg(&none)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--metric nope") && err.contains("message"),
        "{}",
        text(&out)
    );
    assert!(out.stdout.is_empty(), "{}", text(&out));
    assert!(!none.exists());
}
