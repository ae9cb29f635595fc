//! The short soak (issue 10): `sipshard-soak` for about 20 s against `sipshard serve` with
//! docs/examples/siprepo.toml on two shards (parks over UDP and TCP, same- and cross-shard
//! pulls, rm, checks, expiries, retransmissions), plus a few sessions through a second server
//! running docs/examples/msrp-gateway.toml. The soak itself checks that every parked message got
//! exactly one outcome and that the server's counters agree; this test asserts its verdict.
//! The 30-minute run is `bench/soak/run.sh` (docs/loadgen.md, "Soak").

use sipshard_tests::{command, examples, rand_u64, Server};
use std::time::{Duration, Instant};

#[test]
fn a_short_soak_finds_exactly_one_outcome_per_park() {
    let repo = Server::start(
        &examples().join("siprepo.toml"),
        &["--shards", "2", "--repo-expire", "3"],
    );
    assert_eq!(
        repo.tcp.map(|t| t.port()),
        Some(repo.udp.port()),
        "UDP and TCP on one port"
    );
    let gw = Server::start(
        &examples().join("msrp-gateway.toml"),
        &["--shards", "2", "--msrp-listen", "127.0.0.1:0"],
    );
    let dir = std::env::temp_dir().join(format!("sipshard-soak-{:x}", rand_u64()));
    let mut child = command("sipshard-soak")
        .args(["--target", &repo.udp.to_string()])
        .args(["--control", &repo.control.to_string()])
        .args(["--pid", &repo.pid().to_string()])
        .args(["--duration", "15", "--rate", "200", "--expire", "3", "-q"])
        .args(["--gateway-target", &gw.udp.to_string()])
        .args(["--gateway-control", &gw.control.to_string()])
        .args(["--gateway-sessions", "4", "--gateway-messages", "5"])
        .arg("--out")
        .arg(&dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start sipshard-soak");
    // 15 s of traffic, then 3 s of expiry and 3 s of margin: a bound far above that.
    let deadline = Instant::now() + Duration::from_secs(180);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("sipshard-soak still running after 180 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(status.success(), "{status}\n{stdout}\n{stderr}");
    let report = std::fs::read_to_string(dir.join("report.txt")).unwrap();
    let line = |key: &str| {
        report
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("no `{key}` line in\n{report}"))
            .trim()
            .to_string()
    };
    assert_eq!(line("duplicates:"), "0", "{report}");
    assert_eq!(line("missing:"), "0", "{report}");
    assert_eq!(line("verdict:"), "PASS", "{report}");
    assert!(
        line("gateway:").starts_with("4/4 sessions clean"),
        "{report}"
    );
    for f in ["report.svg", "samples.csv"] {
        let len = std::fs::metadata(dir.join(f)).map_or(0, |m| m.len());
        assert!(len > 0, "{f} written");
    }
    gw.stop();
    repo.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
