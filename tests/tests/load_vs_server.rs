//! `sipshard-load` against the real `sipshard serve` (docs/examples/siprepo.toml): every SIP
//! scenario runs, the report files are written, and what the load generator counted agrees with
//! what the server counted.

use serde_json::{json, Value};
use sipshard_tests::{command, examples, rand_u64, Server};
use std::path::{Path, PathBuf};

struct Run {
    dir: PathBuf,
    summary: Value,
    text: String,
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn load(srv: &Server, scenario: &str, calls: u64, extra: &[&str]) -> Run {
    let dir = std::env::temp_dir().join(format!("sipshard-load-{scenario}-{:x}", rand_u64()));
    let out = command("sipshard-load")
        .arg(srv.udp.to_string())
        .args(["--scenario", scenario, "--rate", "400", "-q"])
        .args(["--requests", &calls.to_string(), "--timeout", "5s", "--out"])
        .arg(&dir)
        .args(extra)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{scenario}: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    Run { dir, summary, text }
}

/// Checks an `.hgrm` file: the standard columns, values and percentiles never decreasing.
fn check_hgrm(path: &Path) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut last = (0.0f64, 0.0f64);
    let mut rows = 0;
    for l in text.lines() {
        let cols: Vec<&str> = l.split_whitespace().collect();
        if cols.len() != 4 || cols[0].parse::<f64>().is_err() {
            continue;
        }
        let (v, p) = (
            cols[0].parse::<f64>().unwrap(),
            cols[1].parse::<f64>().unwrap(),
        );
        assert!(
            v >= last.0 && p >= last.1,
            "{}: not monotonic at {l}",
            path.display()
        );
        last = (v, p);
        rows += 1;
    }
    assert!(rows > 5, "{}: too few rows", path.display());
    assert!(text.contains("#[Max"), "{}: no footer", path.display());
}

fn code(s: &Value, c: &str) -> u64 {
    s["replies_by_code"][c].as_u64().unwrap_or(0)
}

#[test]
fn every_scenario_runs_against_sipshard_and_counts_agree() {
    let srv = Server::start(&examples().join("siprepo.toml"), &["--shards", "2"]);
    let calls = 200;

    let r = load(&srv, "options", calls, &[]);
    assert_eq!(r.summary["timeouts"], 0);
    assert_eq!(code(&r.summary, "405"), calls);

    let r = load(&srv, "message", calls, &[]);
    assert_eq!(r.summary["answered"], r.summary["sent"]);
    assert_eq!(code(&r.summary, "202"), calls);
    check_hgrm(&r.dir.join("message.hgrm"));
    assert!(r.dir.join("latency.hlog").is_file());
    assert!(std::fs::read_to_string(r.dir.join("spectrum.svg"))
        .unwrap()
        .starts_with("<svg"));
    let p50 = r.summary["metrics"][0]["p50_ms"].as_f64().unwrap();
    assert!(
        r.text.contains(&format!("{p50:.3}")),
        "printed summary matches JSON"
    );

    let r = load(&srv, "park-pull", calls, &[]);
    assert_eq!(r.summary["timeouts"], 0);
    assert_eq!(code(&r.summary, "202"), calls);
    assert_eq!(
        code(&r.summary, "200"),
        2 * calls,
        "trigger 200 + 200 Pulled"
    );
    for m in ["park", "trigger", "pulled"] {
        check_hgrm(&r.dir.join(format!("{m}.hgrm")));
    }

    let r = load(&srv, "invite", calls, &[]);
    assert_eq!(r.summary["timeouts"], 0);
    assert_eq!(code(&r.summary, "202"), calls, "INVITEs are parked");

    let stats = srv.ctl("repo.stats", json!({}));
    // message + park-pull + invite parked; park-pull pulled its own.
    assert_eq!(stats["stored"], 3 * calls);
    assert_eq!(stats["pulled"], calls);
    assert_eq!(stats["items"], 2 * calls);
}

#[test]
fn park_expire_scenario_sees_every_408() {
    let srv = Server::start(
        &examples().join("siprepo.toml"),
        &[
            "--shards",
            "2",
            "--repo-expire",
            "1",
            "--repo-timer-interval",
            "20",
        ],
    );
    let calls = 100;
    let r = load(&srv, "park-expire", calls, &["--expire", "1s"]);
    assert_eq!(r.summary["timeouts"], 0);
    assert_eq!(code(&r.summary, "202"), calls);
    assert_eq!(code(&r.summary, "408"), calls);
    let stats = srv.ctl("repo.stats", json!({}));
    assert_eq!(
        (stats["expired"].as_u64(), stats["items"].as_u64()),
        (Some(calls), Some(0))
    );
}
