//! Who may use the control endpoint: off loopback the server refuses to start without a token;
//! with one, JSON-RPC (and `/metrics` unless `metrics_open`) needs `Authorization: Bearer`, and
//! `sipshard ctl` sends it from `--token`, `--token-file` or `SIPSHARD_CONTROL_TOKEN`.

use sipshard_tests::{command, examples, http_full, Server};
use std::path::PathBuf;

const TOKEN: &str = "s3cret-token-for-tests";

/// A temp dir holding the token file and a copy of the example naming it.
fn config_with_token(name: &str, extra: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("sipshard-ctl-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let token = dir.join("token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    let text = std::fs::read_to_string(examples().join("siprepo.toml")).unwrap();
    let text = text.replace(
        "[control]\n",
        &format!("[control]\ntoken_file = \"{}\"\n{extra}", token.display()),
    );
    assert!(text.contains("token_file"));
    let cfg = dir.join("sipshard.toml");
    std::fs::write(&cfg, text).unwrap();
    (cfg, token)
}

const STATS: &str = r#"{"jsonrpc":"2.0","id":1,"method":"repo.stats"}"#;

#[test]
fn off_loopback_without_a_token_the_server_refuses_to_start() {
    // The server stops at its config, before binding anything.
    let out = command("sipshard")
        .args(["serve", "-c"])
        .arg(examples().join("siprepo.toml"))
        .args(["--port", "0", "--control", "192.0.2.1:5080"])
        .env_remove("SIPSHARD_CONTROL_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--control"), "{err}");
    assert!(err.contains("192.0.2.1:5080"), "{err}");
    assert!(err.contains("token_file"), "{err}");
}

#[test]
fn with_a_token_callers_must_send_it() {
    let (cfg, token_file) = config_with_token("auth", "");
    let srv = Server::start(&cfg, &["--shards", "1"]);
    let addr = srv.control;
    let (code, head, _) = http_full(addr, "POST", "/", "", STATS);
    assert_eq!(code, 401);
    assert!(head.contains("WWW-Authenticate: Bearer"), "{head}");
    let (code, _, _) = http_full(addr, "POST", "/", "Authorization: Bearer wrong\r\n", STATS);
    assert_eq!(code, 401);
    let (code, _, _) = http_full(addr, "GET", "/metrics", "", "");
    assert_eq!(code, 401, "metrics need the token unless metrics_open");
    let auth = format!("Authorization: bearer {TOKEN}\r\n");
    let (code, _, body) = http_full(addr, "POST", "/", &auth, STATS);
    assert_eq!(code, 200);
    assert!(body.contains("\"items\""), "{body}");
    let (code, _, body) = http_full(addr, "GET", "/metrics", &auth, "");
    assert_eq!(code, 200);
    assert!(body.contains("sipshard_received_total"));

    let ctl = |args: &[&str], env: Option<&str>| {
        let mut c = command("sipshard");
        c.args(["ctl", "--control", &addr.to_string()])
            .args(args)
            .arg("repo.stats")
            .env_remove("SIPSHARD_CONTROL_TOKEN");
        if let Some(t) = env {
            c.env("SIPSHARD_CONTROL_TOKEN", t);
        }
        c.output().unwrap()
    };
    let out = ctl(&[], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
    let out = ctl(&["--token-file", token_file.to_str().unwrap()], None);
    assert!(out.status.success(), "{out:?}");
    let out = ctl(&["--token", TOKEN], None);
    assert!(out.status.success(), "{out:?}");
    let out = ctl(&[], Some(TOKEN));
    assert!(out.status.success(), "{out:?}");
    let out = ctl(&[], Some("nope"));
    assert_eq!(out.status.code(), Some(1));
    // The token is never printed back.
    let out = ctl(&["--token", TOKEN], None);
    let shown = command("sipshard")
        .args(["ctl", "--control", &addr.to_string(), "--token", TOKEN])
        .arg("config.show")
        .output()
        .unwrap();
    assert!(out.status.success() && shown.status.success());
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.contains("token_file"), "{shown}");
    assert!(!shown.contains(TOKEN), "{shown}");
    drop(srv);
    let _ = std::fs::remove_dir_all(cfg.parent().unwrap());
}

#[test]
fn metrics_may_stay_open_with_a_token() {
    let (cfg, _) = config_with_token("open", "metrics_open = true\n");
    let srv = Server::start(&cfg, &["--shards", "1"]);
    let (code, _, body) = http_full(srv.control, "GET", "/metrics", "", "");
    assert_eq!(code, 200);
    assert!(body.contains("sipshard_received_total"));
    let (code, _, _) = http_full(srv.control, "POST", "/", "", STATS);
    assert_eq!(code, 401, "JSON-RPC still needs the token");
    drop(srv);
    let _ = std::fs::remove_dir_all(cfg.parent().unwrap());
}

#[test]
fn a_caller_trickling_its_request_is_cut_off() {
    use std::io::{Read, Write};
    let srv = Server::start(&examples().join("siprepo.toml"), &["--shards", "1"]);
    let mut s = std::net::TcpStream::connect(srv.control).unwrap();
    s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\n").unwrap();
    // The server gives a request 10 s; the read waits up to 30 s for the close.
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let mut b = [0u8; 64];
    assert_eq!(
        s.read(&mut b).unwrap(),
        0,
        "the server closed the connection"
    );
    // Other callers were served meanwhile.
    assert!(srv.ctl("repo.stats", serde_json::json!({}))["items"].is_number());
}
