//! The server as a process: logging never takes it down (with its output a closed pipe, as in
//! `sipshard serve ... 2>&1 | head -1`, every later write fails, and SIGTERM must still stop
//! it), and it raises its own limit of open files.

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

/// The soft limit of open files is raised to the hard limit at start: every TCP connection
/// takes two descriptors, and a soft limit of 1,024 refused connections at about 500.
#[test]
fn the_open_files_limit_is_raised_to_the_hard_limit() {
    let hard: u64 = match std::process::Command::new("sh")
        .args(["-c", "ulimit -Hn"])
        .output()
    {
        Ok(o) => match String::from_utf8_lossy(&o.stdout).trim().parse() {
            Ok(n) => n,
            // "unlimited": nothing to compare against.
            Err(_) => return,
        },
        Err(_) => return,
    };
    if hard <= 256 {
        eprintln!("skipped: the hard limit of open files ({hard}) leaves nothing to raise");
        return;
    }
    let bin = sipshard_tests::bin_path("sipshard");
    let config = examples().join("siprepo.toml");
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -Sn 256 && exec '{}' serve -c '{}' --port 0 --control 127.0.0.1:0 --log-level error",
            bin.display(),
            config.display()
        ))
        .stdout(Stdio::piped())
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
    let limits =
        std::fs::read_to_string(format!("/proc/{}/limits", child.id())).unwrap_or_default();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(line.trim(), "sipshard: ready");
    let soft: u64 = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .expect("Max open files in /proc/PID/limits");
    assert_eq!(soft, hard, "{limits}");
}
