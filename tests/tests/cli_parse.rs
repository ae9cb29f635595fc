//! `sipshard parse` driven as a user would: on the third-party vectors, on stdin, in text and
//! JSON Lines, checking verdicts, the fields printed and the exit status.

use serde_json::Value;
use sipshard_tests::{command, vectors};
use std::io::Write;
use std::process::Stdio;

fn json_lines(out: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn streams_split_into_the_indexed_messages() {
    let Some(v) = vectors() else { return };
    for (file, count) in [
        ("generic-227-messages", 227),
        ("lioneagle-sipparser-26-messages", 26),
    ] {
        let dir = v.join("corpus/php-sip-streams");
        let out = command("sipshard")
            .args(["parse", "--stream", "--json"])
            .arg(dir.join(format!("{file}.txt")))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{file}");
        let lines = json_lines(&out.stdout);
        assert_eq!(lines.len(), count, "{file}");
        let index = std::fs::read_to_string(dir.join(format!("{file}.index.tsv"))).unwrap();
        for (row, obj) in index.lines().skip(1).zip(&lines) {
            let cols: Vec<&str> = row.split('\t').collect();
            assert_eq!(obj["verdict"], "ok");
            assert_eq!(obj["offset"].as_u64().unwrap().to_string(), cols[1]);
            assert_eq!(obj["call_id"], cols[4]);
            assert_eq!(obj["cseq"], cols[5]);
        }
    }
}

#[test]
fn rfc4475_verdicts_and_exit_status() {
    let Some(v) = vectors() else { return };
    let dir = v.join("rfc4475");
    let index = std::fs::read_to_string(dir.join("INDEX.tsv")).unwrap();
    for row in index.lines().skip(1) {
        let mut cols = row.split('\t');
        let (name, verdict) = (cols.next().unwrap(), cols.next().unwrap());
        let out = command("sipshard")
            .args(["parse", "--json"])
            .arg(dir.join(name))
            .output()
            .unwrap();
        let lines = json_lines(&out.stdout);
        assert_eq!(lines.len(), 1, "{name}");
        let obj = &lines[0];
        if verdict == "valid" {
            assert_eq!(out.status.code(), Some(0), "{name}");
            assert_eq!(obj["verdict"], "ok", "{name}");
        } else {
            assert_eq!(out.status.code(), Some(1), "{name}");
            assert_eq!(obj["verdict"], "rejected", "{name}");
            let want = match name {
                "badvers.dat" => "505",
                "mismatch02.dat" => "501",
                "bigcode.dat" | "scalarlg.dat" => "drop",
                _ => "400",
            };
            assert_eq!(obj["response"], want, "{name}");
            assert!(!obj["error"].as_str().unwrap().is_empty());
        }
    }
}

#[test]
fn text_output_names_the_routing_fields() {
    let Some(v) = vectors() else { return };
    let out = command("sipshard")
        .arg("parse")
        .arg(v.join("rfc4475/wsinv.dat"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let line = String::from_utf8(out.stdout).unwrap();
    for want in [
        "kind=request",
        "method=INVITE",
        "call_id=wsinv.ndaksdj@192.0.2.1",
        "cseq=9 INVITE",
        "from_tag=98asjd8",
        "to_tag=1918181833n",
        "branch=390skdjuw",
        "content_length=150",
        "body_length=150",
        "headers=14",
    ] {
        assert!(line.contains(want), "missing {want} in {line}");
    }
}

#[test]
fn stdin_and_mixed_results() {
    let mut child = command("sipshard")
        .args(["parse", "--json", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(
            b"SIP/2.0 200 OK\r\nCall-ID: abc\r\nCSeq: 4 MESSAGE\r\nContent-Length: 0\r\n\r\n",
        )
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let obj = &json_lines(&out.stdout)[0];
    assert_eq!(obj["kind"], "response");
    assert_eq!(obj["status"], 200);
    assert_eq!(obj["call_id"], "abc");
}

#[test]
fn msrp_vectors_and_streams() {
    let Some(v) = vectors() else { return };
    let dir = v.join("msrp");
    let index = std::fs::read_to_string(dir.join("INDEX.tsv")).unwrap();
    for row in index.lines().skip(1) {
        let mut cols = row.split('\t');
        let (name, verdict) = (cols.next().unwrap(), cols.next().unwrap());
        let out = command("sipshard")
            .args(["parse", "--msrp", "--json"])
            .arg(dir.join(name))
            .output()
            .unwrap();
        let lines = json_lines(&out.stdout);
        let ok = out.status.code() == Some(0);
        assert_eq!(ok, verdict == "valid", "{name}: {lines:?}");
        if ok {
            let tid = lines[0]["transaction_id"].as_str().unwrap();
            assert!(name.contains(&format!("-{tid}-")), "{name}: {tid}");
        }
    }
    for (file, count) in [
        ("rfc4975-s11.1-session-4-messages.msrp", 4),
        ("rfc4975-s11.4-cpim-2-chunks.msrp", 2),
        ("rfc4976-s3-relay-8-messages.msrp", 8),
        ("rfc4976-s5.1-auth-12-messages.msrp", 12),
    ] {
        let out = command("sipshard")
            .args(["parse", "--msrp", "--stream", "--json"])
            .arg(dir.join("streams").join(file))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{file}");
        let lines = json_lines(&out.stdout);
        assert_eq!(lines.len(), count, "{file}");
    }
}
