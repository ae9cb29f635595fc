//! Any MSRP byte stream on a gateway session's connection, through the whole shard core (the
//! harness: an MSRP user's INVITE answered by `msrp_answer`, then the fuzzer's frames, with
//! `SESS` standing for the session's id so frames reach it): nothing panics, every frame
//! gets at most one response, and the session's SIP side keeps working.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sipshard_core::shard::harness::Harness;
use sipshard_core::transport::MsrpConn;
use sipshard_parser::msrp::{self, Framer};
use sipshard_parser::Status;

const CONFIG: &str = r#"
[gateway]
msrp_listen = ["192.0.2.1:2855"]
max_message_size = 8192
[route.request]
[[route.request.rules]]
match = { method = "INVITE" }
actions = [ { msrp_answer = { key = "$tu|$fu", content_types = "text/plain", from = "$fu", to = "$tu", ruri = "$ru" } } ]
[[route.request.rules]]
actions = [ { reply = { code = 405 } } ]
"#;

const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 198.51.100.3\r\ns=-\r\nc=IN IP4 198.51.100.3\r\nt=0 0\r\n\
m=message 7777 TCP/MSRP *\r\na=accept-types:text/plain\r\n\
a=path:msrp://198.51.100.3:7777/carolsess;tcp\r\na=setup:actpass\r\n";

fn invite() -> Vec<u8> {
    format!(
        "INVITE sip:dave@198.51.100.2 SIP/2.0\r\nVia: SIP/2.0/UDP 198.51.100.3:5060;branch=z9hG4bKf1\r\n\
Max-Forwards: 70\r\nFrom: <sip:carol@198.51.100.3>;tag=c1\r\nTo: <sip:dave@198.51.100.2>\r\n\
Call-ID: fuzz-1\r\nCSeq: 1 INVITE\r\nContact: <sip:carol@198.51.100.3>\r\n\
Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{OFFER}",
        OFFER.len()
    )
    .into_bytes()
}

fuzz_target!(|data: &[u8]| {
    let mut h = Harness::new(2, CONFIG).expect("config");
    h.datagram(0, "198.51.100.3:5060".parse().unwrap(), &invite());
    let sent = h.take_sent();
    let Some(ok) = sent.iter().find(|s| s.status() == Some(200)) else {
        panic!("the INVITE is answered 200");
    };
    let text = String::from_utf8_lossy(&ok.bytes).into_owned();
    let path = text
        .lines()
        .find_map(|l| l.strip_prefix("a=path:"))
        .expect("our path")
        .trim()
        .to_owned();
    let id = path
        .rsplit('/')
        .next()
        .and_then(|s| s.split(';').next())
        .expect("a session id")
        .to_owned();
    let input: Vec<u8> = {
        let mut v = Vec::with_capacity(data.len());
        let mut i = 0;
        while i < data.len() {
            if data[i..].starts_with(b"SESS") {
                v.extend_from_slice(id.as_bytes());
                i += 4;
            } else {
                v.push(data[i]);
                i += 1;
            }
        }
        v
    };
    let conn = MsrpConn { shard: 1, id: 1 << 31 };
    let mut rest = &input[..];
    let mut frames = 0usize;
    while !rest.is_empty() {
        let mut framer = Framer::new(msrp::Limits {
            max_frame: 16 << 10,
            max_headers_bytes: 4 << 10,
        });
        let len = match framer.frame_len(rest) {
            Ok(Status::Complete(n)) => n,
            _ => break,
        };
        h.msrp_frame(1, conn, &rest[..len]);
        rest = &rest[len..];
        frames += 1;
        h.advance(1000);
    }
    let responses = h
        .take_sent()
        .iter()
        .filter(|s| s.bytes.starts_with(b"MSRP "))
        .count();
    // Responses and REPORTs: at most one response per frame, one REPORT per message.
    assert!(responses <= 2 * frames.max(1) + 1, "{responses} for {frames} frames");
    // The SIP side still answers.
    h.datagram(0, "198.51.100.3:5060".parse().unwrap(), b"OPTIONS sip:gw@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 198.51.100.3:5060;branch=z9hG4bKo1\r\nMax-Forwards: 70\r\nFrom: <sip:carol@198.51.100.3>;tag=o\r\nTo: <sip:gw@192.0.2.1>\r\nCall-ID: fuzz-o\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n");
    assert!(h.take_sent().iter().any(|s| s.status() == Some(405)));
});
