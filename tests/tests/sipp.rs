//! SIPp (Debian package `sip-tester`, installed by `.ci/run`) sends MESSAGEs at a fixed rate to
//! `sipshard serve` with `docs/examples/siprepo.toml`; every one must be answered 202.
//!
//! Without `sipp` on the PATH the test prints "skipped" and passes, unless
//! `SIPSHARD_REQUIRE_SIPP=1` (set by `.ci/run`), where a missing SIPp is a failure.

use serde_json::json;
use sipshard_tests::{examples, Server};
use std::process::Command;

#[test]
fn sipp_messages_at_a_fixed_rate_are_all_parked() {
    if Command::new("sipp").arg("-v").output().is_err() {
        assert!(
            std::env::var_os("SIPSHARD_REQUIRE_SIPP").is_none(),
            "sipp not found but SIPSHARD_REQUIRE_SIPP is set"
        );
        eprintln!("skipped: sipp not found (apt-get install sip-tester)");
        return;
    }
    let srv = Server::start(&examples().join("siprepo.toml"), &["--shards", "2"]);
    // A free local port for SIPp (it binds 5060 by default).
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let calls = 400;
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/sipp/message_202.xml");
    let out = Command::new("sipp")
        .args(["-sf", scenario, "-i", "127.0.0.1", "-p", &port.to_string()])
        .args(["-r", "200", "-m", &calls.to_string(), "-t", "u1"])
        .args([
            "-timeout",
            "60s",
            "-timeout_error",
            "-nostdin",
            "-trace_err",
        ])
        .arg(srv.udp.to_string())
        .current_dir(std::env::temp_dir())
        .output()
        .expect("run sipp");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "sipp reported failed calls:\n{}\n{}",
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    let stats = srv.ctl("repo.stats", json!({}));
    assert_eq!(stats["stored"], calls);
    assert_eq!(stats["items"], calls);
}
