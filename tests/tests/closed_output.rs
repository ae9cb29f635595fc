//! Logging never takes the server down: with its output a closed pipe (`sipshard serve ... 2>&1
//! | head -1`), every later write fails, and SIGTERM must still stop it.

use sipshard_tests::{command, examples};
use std::io::BufRead;
use std::process::Stdio;
use std::time::{Duration, Instant};

#[test]
fn sigterm_stops_a_server_whose_output_is_a_closed_pipe() {
    let mut child = command("sipshard")
        .arg("serve")
        .arg("-c")
        .arg(examples().join("siprepo.toml"))
        .args([
            "--port",
            "0",
            "--control",
            "127.0.0.1:0",
            "--log-level",
            "info",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start sipshard");
    let mut out = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    for _ in 0..20 {
        line.clear();
        if out.read_line(&mut line).unwrap_or(0) == 0 || line.trim() == "sipshard: ready" {
            break;
        }
    }
    assert_eq!(line.trim(), "sipshard: ready");
    // Both pipes closed: from now on every write the server makes fails (EPIPE).
    drop(out);
    drop(child.stderr.take());
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break Some(s);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let status = status.expect("the server stopped on SIGTERM");
    assert!(status.success(), "{status}");
}
