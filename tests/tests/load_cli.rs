//! `sipshard-load` as an operator or a script meets it: `report` overlays runs and `.hgrm`
//! files and refuses a latency the runs do not have.

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
