//! What an operator meets: a server owns its addresses (a second one on the same port refuses
//! to start, naming the address), and errors say which setting to change.

use sipshard_tests::{command, examples, Server};

/// Runs `sipshard serve` expecting it to refuse to start; returns its stderr.
fn refused(args: &[&str]) -> String {
    let out = command("sipshard")
        .args(["serve", "-c"])
        .arg(examples().join("siprepo.toml"))
        .args(["--log-level", "warn"])
        .args(args)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_second_server_on_the_same_port_refuses_to_start() {
    let first = Server::start(&examples().join("siprepo.toml"), &["--shards", "2"]);
    let port = first.udp.port().to_string();
    // SO_REUSEPORT would let it join the first one's group and take part of its traffic.
    let err = refused(&["--port", &port, "--control", "127.0.0.1:0"]);
    assert!(
        err.contains(&format!("127.0.0.1:{port}")) && err.contains("--port"),
        "{err}"
    );
    assert!(err.contains("another process holds it"), "{err}");
    // The control port, the same.
    let control = first.control.to_string();
    let err = refused(&["--port", "0", "--control", &control]);
    assert!(err.contains(&control) && err.contains("--control"), "{err}");
    // The first one still has all its traffic.
    let c = sipshard_tests::UdpClient::new(first.udp);
    for i in 0..10 {
        c.send_request("MESSAGE", &format!("own-{i}"), 1, "");
        assert_eq!(c.recv().code, 202);
    }
    assert_eq!(first.ctl("repo.stats", serde_json::json!({}))["items"], 10);
}

#[test]
fn a_port_held_by_another_program_is_named() {
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = other.local_addr().unwrap().port().to_string();
    let err = refused(&["--port", &port, "--control", "127.0.0.1:0"]);
    assert!(err.contains(&format!("tcp 127.0.0.1:{port}")), "{err}");
}
