//! SIPp (Debian package `sip-tester`, installed by `.ci/run`) drives `sipshard serve`: MESSAGEs
//! at a fixed rate parked by `docs/examples/siprepo.toml` (every one answered 202), and the
//! gateway's SIP side with `docs/examples/msrp-gateway.toml` (SIPp as the SIP user sending
//! MESSAGEs and as the MSRP user's SIP UA answering the gateway's INVITE).
//!
//! Without `sipp` on the PATH the test prints "skipped" and passes, unless
//! `SIPSHARD_REQUIRE_SIPP=1` (set by `.ci/run`), where a missing SIPp is a failure.

use serde_json::json;
use sipshard_tests::{examples, Server};
use std::process::Command;

/// Whether SIPp can run; without it the test is skipped, unless `SIPSHARD_REQUIRE_SIPP` is set.
fn sipp_available() -> bool {
    if Command::new("sipp").arg("-v").output().is_err() {
        assert!(
            std::env::var_os("SIPSHARD_REQUIRE_SIPP").is_none(),
            "sipp not found but SIPSHARD_REQUIRE_SIPP is set"
        );
        eprintln!("skipped: sipp not found (apt-get install sip-tester)");
        return false;
    }
    true
}

#[test]
fn sipp_messages_at_a_fixed_rate_are_all_parked() {
    if !sipp_available() {
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

/// The gateway's SIP side driven by SIPp: one SIPp plays the MSRP user's SIP UA (answers the
/// gateway's INVITE with an SDP answer naming the test's MSRP endpoint), another sends the SIP
/// user's MESSAGEs; every MESSAGE is answered 202 and arrives as a SEND.
#[test]
fn sipp_messages_reach_an_msrp_user_through_the_gateway() {
    if !sipp_available() {
        return;
    }
    use sipshard_load::peer::msrp::MsrpPeer;
    let srv = Server::start(
        &examples().join("msrp-gateway.toml"),
        &["--shards", "2", "--msrp-listen", "127.0.0.1:0"],
    );
    let free = || {
        std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (uas_port, uac_port) = (free(), free());
    let mut bob_msrp = MsrpPeer::listen().unwrap();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/sipp");
    let common = [
        "-timeout",
        "30s",
        "-timeout_error",
        "-nostdin",
        "-trace_err",
    ];
    let mut uas = Command::new("sipp")
        .args(["-sf", &format!("{dir}/gw_msrp_ua.xml"), "-i", "127.0.0.1"])
        .args(["-p", &uas_port.to_string(), "-m", "1", "-t", "u1"])
        .args(["-key", "msrp_path", &bob_msrp.path()])
        .args(common)
        .current_dir(std::env::temp_dir())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("run sipp (UAS)");
    let calls = 20;
    let bob_uri = format!("sip:bob@127.0.0.1:{uas_port}");
    let mut uac = Command::new("sipp")
        .args(["-sf", &format!("{dir}/gw_message.xml"), "-i", "127.0.0.1"])
        .args(["-p", &uac_port.to_string(), "-m", &calls.to_string()])
        .args(["-r", "10", "-t", "u1", "-key", "bob_uri", &bob_uri])
        .args(common)
        .arg(srv.udp.to_string())
        .current_dir(std::env::temp_dir())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("run sipp (UAC)");
    bob_msrp
        .accept(std::time::Duration::from_secs(10))
        .expect("the gateway connects to the MSRP user");
    let mut bodies = Vec::new();
    while bodies.len() < calls {
        match bob_msrp.recv_message(std::time::Duration::from_secs(10)) {
            Some(m) => bodies.push(String::from_utf8_lossy(&m.body).into_owned()),
            None => break,
        }
    }
    assert_eq!(uas.wait().unwrap().code(), Some(0), "SIPp UAS failed");
    assert_eq!(
        uac.wait().unwrap().code(),
        Some(0),
        "SIPp UAC: not every MESSAGE got 202"
    );
    assert_eq!(
        bodies.len(),
        calls,
        "every MESSAGE arrives as a SEND: {bodies:?}"
    );
    assert!(bodies.iter().all(|b| b.starts_with("SIPp message ")));
    assert_eq!(
        srv.ctl("gw.stats", json!({}))["sessions"],
        1,
        "one session for all"
    );
    srv.stop();
}
