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

/// `sipshard ctl` against `srv`: (exit code, stdout, stderr).
fn ctl(srv: &Server, args: &[&str]) -> (i32, String, String) {
    let out = command("sipshard")
        .args(["ctl", "--control", &srv.control.to_string()])
        .args(args)
        .env_remove("SIPSHARD_CONTROL_TOKEN")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Parks one MESSAGE over UDP; its (Call-ID, msgid).
fn park(srv: &Server) -> (String, String) {
    let c = sipshard_tests::UdpClient::new(srv.udp);
    let cid = format!("ops-{:x}", sipshard_tests::rand_u64());
    c.send_request("MESSAGE", &cid, 1, "");
    let r = c.recv();
    assert_eq!(r.code, 202);
    (cid, r.header("X-Repo-Msgid").unwrap().to_string())
}

#[test]
fn ctl_parameters_are_checked_like_the_config() {
    let srv = Server::start(&examples().join("siprepo.toml"), &["--shards", "2"]);
    let (cid, msgid) = park(&srv);
    let (c, m) = (format!("callid={cid}"), format!("msgid={msgid}"));
    let cases: &[(&[&str], i32, &str)] = &[
        (
            &["repo.pull", &c, &m],
            1,
            "missing parameter `route` of repo.pull",
        ),
        (
            &["repo.stats", "foo=1"],
            1,
            "unknown parameter `foo` of repo.stats",
        ),
        (
            &["repo.list", "limit=abc"],
            2,
            "`limit` must be an unsigned integer",
        ),
        (
            &["repo.pull", &c, &m, "route=STORED", "remove=maybe"],
            2,
            "`remove` must be true or false",
        ),
        (
            &["repo.pull", &c, &m, "route=repo:expired"],
            1,
            "`repo:expired` is an event route",
        ),
        (
            &["repo.pull", &c, &m, "route=NOPE"],
            1,
            "unknown route `NOPE` (routes: ",
        ),
        (
            &["repo.get", &c],
            1,
            "missing parameter `msgid` of repo.get",
        ),
    ];
    for (args, code, says) in cases {
        let (status, _, err) = ctl(&srv, args);
        assert_eq!(status, *code, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    // JSON-RPC callers get the same checks: a number where a string goes.
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"repo.get","params":{"callid":5,"msgid":"x"}}"#;
    let v = sipshard_tests::http(srv.control, "POST", "/", body);
    assert!(
        v.contains("-32602") && v.contains("must be a string"),
        "{v}"
    );
    // A Call-ID of digits stays a string for ctl.
    let (status, _, err) = ctl(&srv, &["repo.get", "callid=12345", "msgid=1"]);
    assert!(status == 1 && err.contains("not found"), "{err}");
    // As the help says: remove=false keeps the item, and by default a pull removes it.
    let (status, out, err) = ctl(
        &srv,
        &["repo.pull", &c, &m, "route=PULL_OK", "remove=false"],
    );
    assert_eq!(status, 0, "{err}");
    assert!(out.contains("pulled"), "{out}");
    assert_eq!(srv.ctl("repo.stats", serde_json::json!({}))["items"], 1);
    let (status, _, err) = ctl(&srv, &["repo.pull", &c, &m, "route=PULL_OK"]);
    assert_eq!(status, 0, "{err}");
    assert_eq!(srv.ctl("repo.stats", serde_json::json!({}))["items"], 0);
}

#[test]
fn ctl_lists_its_methods_and_the_server_says_what_it_is() {
    let srv = Server::start(&examples().join("siprepo.toml"), &["--shards", "1"]);
    // No method: the list, with each method's parameters.
    let (status, out, _) = ctl(&srv, &[]);
    assert_eq!(status, 0);
    assert!(
        out.contains(
            "repo.pull callid=STRING msgid=STRING route=STRING [remove=true|false (default true)]"
        ),
        "{out}"
    );
    assert!(
        out.contains("system.listMethods") && out.contains("core.version"),
        "{out}"
    );
    let (status, out, _) = ctl(&srv, &["system.listMethods"]);
    assert_eq!(status, 0);
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    for m in [
        "repo.stats",
        "repo.pull",
        "gw.stats",
        "config.show",
        "core.version",
    ] {
        assert!(names.contains(&m), "{names:?}");
    }
    let (_, out, _) = ctl(&srv, &["core.version"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    // The configuration as TOML, not as an escaped JSON string.
    let (status, out, _) = ctl(&srv, &["config.show"]);
    assert_eq!(status, 0);
    assert!(out.starts_with("# generation 0\n"), "{out}");
    assert!(
        out.contains("\n[server]\n") && !out.contains("\\n"),
        "{out}"
    );
    // The build and the start time in the metrics.
    let m = srv.metrics();
    assert!(m.contains(&format!(
        "sipshard_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    )));
    assert!(m.contains("\nprocess_start_time_seconds "));
}

#[test]
fn ctl_into_a_closed_pipe_does_not_panic() {
    let srv = Server::start(&examples().join("siprepo.toml"), &["--shards", "1"]);
    let bin = sipshard_tests::bin_path("sipshard");
    for method in ["system.listMethods", "repo.stats", "config.show"] {
        // `true` reads nothing and exits: the output is a closed pipe by the time it is written.
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!(
                "set -o pipefail; '{}' ctl --control {} {method} | true",
                bin.display(),
                srv.control
            ))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{method}: {err}");
        assert_eq!(out.status.code(), Some(0), "{method}: {err}");
    }
}

#[test]
fn logs_have_no_colour_codes_unless_on_a_terminal() {
    let out = command("sipshard")
        .args(["serve", "-c"])
        .arg(examples().join("siprepo.toml"))
        .args([
            "--port",
            "0",
            "--control",
            "127.0.0.1:0",
            "--log-level",
            "debug",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = out.id();
    // Its stderr is a pipe: plain text. Stop it once it is up, and read what it logged.
    let mut out = out;
    {
        use std::io::BufRead;
        let stdout = out.stdout.take().unwrap();
        let mut lines = std::io::BufReader::new(stdout).lines();
        assert!(lines.any(|l| l.map(|l| l == "sipshard: ready").unwrap_or(false)));
    }
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let done = out.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&done.stderr);
    assert!(err.contains("stopped;"), "{err}");
    assert!(!err.contains('\u{1b}'), "{err}");
}

#[test]
fn the_example_405_says_which_methods_are_allowed() {
    let srv = Server::start(&examples().join("siprepo.toml"), &["--shards", "1"]);
    let c = sipshard_tests::UdpClient::new(srv.udp);
    c.send_request("OPTIONS", "allow-1", 1, "");
    let r = c.recv();
    assert_eq!(r.code, 405);
    assert_eq!(
        r.header("Allow"),
        Some("INVITE, MESSAGE"),
        "RFC 3261 §21.4.6"
    );
}

/// How many values a `.hgrm` text holds (its last row's total count).
fn hgrm_count(text: &str) -> u64 {
    let rows = sipshard_core::hgrm::parse_hgrm(text).unwrap_or_else(|e| panic!("{e}: {text}"));
    rows.last().map_or(0, |r| r.total_count)
}

#[test]
fn the_servers_own_latency_is_a_hgrm_the_load_generator_reads() {
    let srv = Server::start(&examples().join("siprepo.toml"), &["--shards", "2"]);
    let dir = std::env::temp_dir().join(format!("sipshard-latency-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let run = dir.join("client");
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
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let c = sipshard_tests::UdpClient::new(srv.udp);
    for i in 0..10 {
        c.send_request("OPTIONS", &format!("lat-{i}"), 1, "");
        assert_eq!(c.recv().code, 405);
    }
    // Every message, on whichever shard owned it, once.
    let (status, all, err) = ctl(&srv, &["shard.latency"]);
    assert_eq!(status, 0, "{err}");
    assert_eq!(hgrm_count(&all), 210, "{all}");
    let (_, message, _) = ctl(&srv, &["shard.latency", "kind=message"]);
    assert_eq!(hgrm_count(&message), 200);
    let (_, other, _) = ctl(&srv, &["shard.latency", "kind=request"]);
    assert_eq!(hgrm_count(&other), 10);
    let (status, _, err) = ctl(&srv, &["shard.latency", "kind=nope"]);
    assert!(status == 1 && err.contains("unknown kind `nope`"), "{err}");
    // Beside the client's run, in one report.
    let file = dir.join("server-message.hgrm");
    std::fs::write(&file, &message).unwrap();
    let out = command("sipshard-load")
        .arg("report")
        .arg(&run)
        .arg(&file)
        .arg("--svg")
        .arg(dir.join("both.svg"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let table = String::from_utf8_lossy(&out.stdout);
    let row: Vec<&str> = table
        .lines()
        .find(|l| l.starts_with("server-message "))
        .unwrap_or_else(|| panic!("{table}"))
        .split_whitespace()
        .collect();
    assert_eq!(row[5], "200", "{table}");
    // reset=true starts over.
    let (status, _, _) = ctl(&srv, &["shard.latency", "reset=true"]);
    assert_eq!(status, 0);
    let (_, after, _) = ctl(&srv, &["shard.latency"]);
    assert_eq!(hgrm_count(&after), 0, "{after}");
    let _ = std::fs::remove_dir_all(&dir);
}
