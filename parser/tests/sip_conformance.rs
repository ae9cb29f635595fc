//! Conformance of the SIP parser against third-party vectors: RFC 4475 and RFC 5118 torture
//! messages (every verdict and the response each rejection maps to) and the realistic corpora
//! (every message parses, fields agree with an independent naive extraction and with the
//! corpora's own indexes).
//!
//! Vectors live outside the project: `../shared/vectors` from the workspace root, or
//! `$SIPSHARD_VECTORS`.

use sipshard_parser::sip::{
    self, find_call_id, frame, FrameOptions, Framed, Framing, Header, HeaderKind, Host, Message,
    Method, Verdict, EMPTY_HEADER,
};
use sipshard_parser::Status;
use std::path::PathBuf;

fn vectors() -> Option<PathBuf> {
    let p = std::env::var_os("SIPSHARD_VECTORS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/vectors"))
        });
    if p.join("rfc4475/INDEX.tsv").is_file() {
        Some(p)
    } else {
        eprintln!("skipped: vectors not found at {}", p.display());
        None
    }
}

fn index(path: &std::path::Path) -> Vec<(String, String, String)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut it = l.splitn(3, '\t');
            (
                it.next().unwrap().to_string(),
                it.next().unwrap_or("").to_string(),
                it.next().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// A naive, independent reading of a message's header section: unfold, split lines, find
/// `name: value` for the given long/compact names. Used as the oracle for field extraction.
fn naive_header(buf: &[u8], names: &[&str]) -> Option<String> {
    let text = String::from_utf8_lossy(buf);
    let head = text.split("\r\n\r\n").next().unwrap();
    let mut unfolded = String::new();
    for line in head.split("\r\n") {
        if line.starts_with(' ') || line.starts_with('\t') {
            unfolded.push(' ');
            unfolded.push_str(line.trim());
        } else {
            unfolded.push('\n');
            unfolded.push_str(line);
        }
    }
    unfolded.lines().skip(2).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        names
            .iter()
            .any(|x| n.trim().eq_ignore_ascii_case(x))
            .then(|| v.trim().to_string())
    })
}

fn parse<'h, 'b>(buf: &'b [u8], h: &'h mut [Header<'b>]) -> Result<Message<'h, 'b>, sip::Error> {
    sip::parse_strict(buf, h, Framing::Datagram)
        .map(|s| s.complete().expect("datagram never partial"))
}

fn check_fields(name: &str, buf: &[u8], m: &Message<'_, '_>) {
    let s = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned());
    assert_eq!(
        s(m.call_id()),
        naive_header(buf, &["call-id", "i"]),
        "{name}: Call-ID"
    );
    assert_eq!(
        s(find_call_id(buf)),
        naive_header(buf, &["call-id", "i"]),
        "{name}: fast Call-ID"
    );
    let cseq = naive_header(buf, &["cseq"]).unwrap();
    let c = m.cseq().unwrap();
    let mut parts = cseq.split_whitespace();
    assert_eq!(
        u64::from(c.number),
        parts.next().unwrap().parse::<u64>().unwrap(),
        "{name}"
    );
    assert_eq!(c.method, parts.next().unwrap().as_bytes(), "{name}");
    let first = String::from_utf8_lossy(buf)
        .lines()
        .next()
        .unwrap()
        .to_string();
    match m.start_line() {
        sip::StartLine::Request { method, uri } => {
            let mut p = first.splitn(3, ' ');
            assert_eq!(method, p.next().unwrap().as_bytes());
            assert_eq!(uri, p.next().unwrap().as_bytes());
        }
        sip::StartLine::Response { code, .. } => {
            assert_eq!(code.to_string(), first.split(' ').nth(1).unwrap());
        }
    }
    // Every header line of the naive split is one entry of the parsed array.
    let text = String::from_utf8_lossy(&buf[..m.head_len()]).into_owned();
    let lines = text
        .split("\r\n")
        .skip(1)
        .filter(|l| !l.is_empty() && !l.starts_with(' ') && !l.starts_with('\t'))
        .count();
    assert_eq!(m.headers().len(), lines, "{name}: header count");
}

#[test]
fn rfc4475_verdicts_and_fields() {
    let Some(v) = vectors() else { return };
    let dir = v.join("rfc4475");
    let rows = index(&dir.join("INDEX.tsv"));
    assert_eq!(rows.len(), 50);
    for (name, verdict, _) in rows {
        let buf = std::fs::read(dir.join(&name)).unwrap();
        let mut h = [EMPTY_HEADER; 64];
        let r = parse(&buf, &mut h);
        match verdict.as_str() {
            "valid" => {
                let m = r.unwrap_or_else(|e| panic!("{name}: rejected: {e}"));
                if name != "insuf.dat" {
                    check_fields(&name, &buf, &m);
                }
            }
            "invalid" => {
                let e = r.err().unwrap_or_else(|| panic!("{name}: accepted"));
                let expected = match name.as_str() {
                    "badvers.dat" => Verdict::Reply(505),
                    "mismatch02.dat" => Verdict::Reply(501),
                    "scalarlg.dat" | "bigcode.dat" => Verdict::Drop,
                    _ => Verdict::Reply(400),
                };
                assert_eq!(e.verdict(), expected, "{name}: {e}");
            }
            other => panic!("unknown verdict {other}"),
        }
    }
}

#[test]
fn rfc4475_details() {
    let Some(v) = vectors() else { return };
    let read = |n: &str| std::fs::read(v.join("rfc4475").join(n)).unwrap();

    let b = read("wsinv.dat");
    let mut h = [EMPTY_HEADER; 64];
    let m = parse(&b, &mut h).unwrap();
    assert_eq!(m.from_tag(), Some(&b"98asjd8"[..]));
    assert_eq!(m.to_tag(), Some(&b"1918181833n"[..]));
    assert_eq!(m.max_forwards(), Some(68));
    assert_eq!(m.branch(), Some(&b"390skdjuw"[..]));
    let branches: Vec<_> = m.vias().map(|v| v.branch().unwrap().to_vec()).collect();
    assert_eq!(
        branches,
        [&b"390skdjuw"[..], b"z9hG4bK9ikj8", b"z9hG4bK30239"]
    );
    assert_eq!(m.body().len(), 150);
    assert_eq!(
        &*m.from().unwrap().display_name_text().unwrap(),
        b"J Rosenberg \\\""
    );

    let b = read("esc02.dat");
    let mut h = [EMPTY_HEADER; 64];
    let m = parse(&b, &mut h).unwrap();
    assert_eq!(m.method_kind(), Some(Method::Other(b"RE%47IST%45R")));
    assert!(m
        .headers()
        .iter()
        .any(|h| h.name == b"C%6Fntact" && h.kind == HeaderKind::Other));

    let b = read("escnull.dat");
    let mut h = [EMPTY_HEADER; 64];
    let m = parse(&b, &mut h).unwrap();
    let user = m.to().unwrap().uri.user.unwrap();
    assert!(user.windows(3).any(|w| w == b"%00"));
    assert!(sip::percent_decode(user).contains(&0));

    let b = read("dblreq.dat");
    let mut h = [EMPTY_HEADER; 64];
    let m = parse(&b, &mut h).unwrap();
    assert_eq!(m.method(), Some(&b"REGISTER"[..]));
    assert!(m.trailing().starts_with(b"\r\nINVITE "));

    let b = read("inv2543.dat");
    let mut h = [EMPTY_HEADER; 64];
    let m = parse(&b, &mut h).unwrap();
    assert_eq!(m.content_length(), None);
    assert_eq!(m.body(), &b[m.head_len()..]);
    assert!(!m.body().is_empty());
    assert_eq!(m.branch(), None);

    let b = read("mpart01.dat");
    let mut h = [EMPTY_HEADER; 64];
    let m = parse(&b, &mut h).unwrap();
    assert_eq!(m.body().len(), 553);

    let b = read("mcl01.dat");
    let mut h = [EMPTY_HEADER; 64];
    assert!(parse(&b, &mut h).unwrap().content_length_conflict());

    let b = read("multi01.dat");
    let mut h = [EMPTY_HEADER; 64];
    let m = parse(&b, &mut h).unwrap();
    assert_eq!(m.count_of(HeaderKind::CallId), 2);

    let b = read("insuf.dat");
    let mut h = [EMPTY_HEADER; 64];
    let m = parse(&b, &mut h).unwrap();
    assert!(m.call_id().is_none() && m.from().is_none() && m.to().is_none());

    let b = read("semiuri.dat");
    let mut h = [EMPTY_HEADER; 64];
    let m = parse(&b, &mut h).unwrap();
    assert_eq!(
        m.request_uri().unwrap().user,
        Some(&b"user;par=u%40example.net"[..])
    );

    let b = read("noreason.dat");
    let mut h = [EMPTY_HEADER; 64];
    let m = parse(&b, &mut h).unwrap();
    assert_eq!(
        m.start_line(),
        sip::StartLine::Response {
            code: 100,
            reason: b""
        }
    );

    let b = read("transports.dat");
    let mut h = [EMPTY_HEADER; 64];
    let m = parse(&b, &mut h).unwrap();
    let transports: Vec<_> = m.vias().map(|v| v.transport.to_vec()).collect();
    assert!(transports.len() >= 4, "{transports:?}");

    // cparam01: unknownparam outside <> is a header param; cparam02: inside, a URI param.
    let b = read("cparam01.dat");
    let mut h = [EMPTY_HEADER; 64];
    let m = parse(&b, &mut h).unwrap();
    let c = m.contacts().next().unwrap();
    assert!(c.param("unknownparam").is_some() && c.uri.param("unknownparam").is_none());
    let b = read("cparam02.dat");
    let mut h = [EMPTY_HEADER; 64];
    let m = parse(&b, &mut h).unwrap();
    let c = m.contacts().next().unwrap();
    assert!(c.param("unknownparam").is_none() && c.uri.param("unknownparam").is_some());
    let b = read("regescrt.dat");
    let mut h = [EMPTY_HEADER; 64];
    let m = parse(&b, &mut h).unwrap();
    assert!(!m.contacts().next().unwrap().uri.headers.is_empty());
}

#[test]
fn rfc5118_wire_verdicts_and_fields() {
    let Some(v) = vectors() else { return };
    let dir = v.join("rfc5118");
    let rows = index(&dir.join("INDEX.tsv"));
    assert_eq!(rows.len(), 12);
    for (name, verdict, _) in rows {
        let buf = std::fs::read(dir.join("wire").join(format!("{name}.sip"))).unwrap();
        let mut h = [EMPTY_HEADER; 64];
        match (verdict.as_str(), parse(&buf, &mut h)) {
            ("valid", Ok(m)) => {
                check_fields(&name, &buf, &m);
                let ru = m.request_uri().unwrap();
                match name.as_str() {
                    "port-ambiguous" => {
                        assert_eq!(ru.port, None);
                        assert_eq!(ru.host, Some(Host::V6(b"[2001:db8::10:5070]")));
                    }
                    "port-unambiguous" => {
                        assert_eq!(ru.port, Some(5070));
                        assert_eq!(ru.host, Some(Host::V6(b"[2001:db8::10]")));
                    }
                    "via-received-param-with-delim" => {
                        assert_eq!(
                            m.top_via().unwrap().received(),
                            Some(&b"[2001:db8::9:255]"[..])
                        )
                    }
                    "via-received-param-no-delim" => {
                        assert_eq!(
                            m.top_via().unwrap().received(),
                            Some(&b"2001:db8::9:255"[..])
                        )
                    }
                    _ => {}
                }
            }
            ("invalid", Err(e)) => assert_eq!(e.verdict(), Verdict::Reply(400), "{name}"),
            (v, r) => panic!("{name}: verdict {v} but got {r:?}"),
        }
    }
}

#[test]
fn php_sip_streams_split_and_parse() {
    let Some(v) = vectors() else { return };
    let dir = v.join("corpus/php-sip-streams");
    for (file, count) in [
        ("generic-227-messages", 227),
        ("lioneagle-sipparser-26-messages", 26),
    ] {
        let buf = std::fs::read(dir.join(format!("{file}.txt"))).unwrap();
        let idx = std::fs::read_to_string(dir.join(format!("{file}.index.tsv"))).unwrap();
        let rows: Vec<Vec<&str>> = idx
            .lines()
            .skip(1)
            .map(|l| l.split('\t').collect())
            .collect();
        assert_eq!(rows.len(), count);
        let opts = FrameOptions {
            require_content_length: false,
            ..FrameOptions::default()
        };
        let mut pos = 0;
        let mut n = 0;
        while pos < buf.len() {
            match frame(&buf[pos..], &opts).unwrap() {
                Status::Complete(Framed::Keepalive(k)) => pos += k,
                Status::Complete(Framed::Message { len, .. }) => {
                    let row = &rows[n];
                    assert_eq!(pos.to_string(), row[1], "{file} #{n} offset");
                    assert_eq!(len.to_string(), row[2], "{file} #{n} length");
                    let msg = &buf[pos..pos + len];
                    let mut h = [EMPTY_HEADER; 96];
                    let m = parse(msg, &mut h)
                        .unwrap_or_else(|e| panic!("{file} #{n}: {e}: {}", row[3]));
                    assert_eq!(m.call_id().unwrap(), row[4].as_bytes());
                    let c = m.cseq().unwrap();
                    assert_eq!(
                        format!("{} {}", c.number, String::from_utf8_lossy(c.method)),
                        row[5]
                    );
                    assert_eq!(m.content_length().is_some(), row[6] == "yes");
                    pos += len;
                    n += 1;
                }
                Status::Partial => panic!("{file}: partial at {pos}"),
            }
        }
        assert_eq!(n, count);
    }
}

#[test]
fn pcap_corpus_parses() {
    let Some(v) = vectors() else { return };
    let dir = v.join("corpus/pkts-pcap-extracted");
    let rows = index(&dir.join("INDEX.tsv"));
    assert!(rows.len() >= 50);
    for (file, start_line, rest) in rows {
        let cols: Vec<&str> = rest.split('\t').collect();
        let (call_id, cseq, body_octets) = (cols[0], cols[1], cols[3]);
        let buf = std::fs::read(dir.join(&file)).unwrap();
        if file.starts_with("fragmented_tcp_sip") {
            // Several messages back to back: frame strictly, parse each.
            let mut pos = 0;
            let mut n = 0;
            while pos < buf.len() {
                match frame(&buf[pos..], &FrameOptions::default()).unwrap() {
                    Status::Complete(Framed::Keepalive(k)) => pos += k,
                    Status::Complete(Framed::Message { len, .. }) => {
                        let mut h = [EMPTY_HEADER; 64];
                        let mut hs = [EMPTY_HEADER; 64];
                        let m = parse(&buf[pos..pos + len], &mut h).unwrap();
                        let s = sip::parse(&buf[pos..], &mut hs, Framing::Stream).unwrap();
                        assert_eq!(s.complete().unwrap().len(), len);
                        if n == 0 {
                            assert_eq!(m.call_id().unwrap(), call_id.as_bytes());
                        }
                        pos += len;
                        n += 1;
                    }
                    Status::Partial => panic!("{file}: partial at {pos}"),
                }
            }
            assert!(n >= 2, "{file}: {n} messages");
            continue;
        }
        let mut h = [EMPTY_HEADER; 64];
        let m = parse(&buf, &mut h).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(String::from_utf8_lossy(&buf).starts_with(&start_line));
        assert_eq!(m.call_id().unwrap(), call_id.as_bytes(), "{file}");
        let c = m.cseq().unwrap();
        assert_eq!(
            format!("{} {}", c.number, String::from_utf8_lossy(c.method)),
            cseq
        );
        assert_eq!(m.body().len().to_string(), body_octets, "{file}");
    }
}
