//! Shared inputs for the benchmarks.
//!
//! Every input is a realistic message as it would arrive on the wire: CRLF line endings, a
//! correct `Content-Length` (SIP) or end-line (MSRP), sipshard-style host names. The sizes are
//! checked by the unit tests below (within ±10% of the nominal size), and so is the fact that
//! `sipshard-parser` accepts every one of them.

/// Appends `Content-Length`, the empty line and `body` to a SIP head (start line and headers,
/// each ending in CRLF).
fn sip_with_body(head: &str, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(head.len() + body.len() + 24);
    m.extend_from_slice(head.as_bytes());
    m.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    m.extend_from_slice(body);
    m
}

/// A ~300 B SIP MESSAGE with a short `text/plain` body.
pub fn sip_message() -> Vec<u8> {
    sip_with_body(
        "MESSAGE sip:bob@example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776sgdkse\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@example.com>;tag=49583\r\n\
         To: <sip:bob@example.com>\r\n\
         Call-ID: asd88asd77a@192.0.2.10\r\n\
         CSeq: 1 MESSAGE\r\n\
         Content-Type: text/plain\r\n",
        b"Watson, come here.",
    )
}

const INVITE_HEAD: &str = "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
     Via: SIP/2.0/UDP shard3.sipshard.example.com;branch=z9hG4bK-s3-a1b2c3d4\r\n\
     Via: SIP/2.0/UDP edge1.example.com:5060;branch=z9hG4bK2d4790.1\r\n\
     Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds;rport=5060\r\n\
     Max-Forwards: 68\r\n\
     Route: <sip:core.sipshard.example.com;lr>\r\n\
     To: Bob <sip:bob@biloxi.example.com>\r\n\
     From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
     Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
     CSeq: 314159 INVITE\r\n\
     Contact: <sip:alice@pc33.atlanta.example.com>\r\n\
     Supported: replaces, 100rel\r\n\
     Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO\r\n\
     User-Agent: sipshard-loadgen/0.1\r\n";

/// A ~650 B INVITE without a body (three Vias, Route, Contact, Supported, Allow, User-Agent).
pub fn sip_invite() -> Vec<u8> {
    sip_with_body(INVITE_HEAD, b"")
}

/// A ~1.3 KB INVITE with an SDP offer (audio and video).
pub fn sip_invite_sdp() -> Vec<u8> {
    let head = format!(
        "{INVITE_HEAD}Session-Expires: 1800;refresher=uac\r\nContent-Type: application/sdp\r\n"
    );
    let sdp = "v=0\r\n\
         o=alice 2890844526 2890844526 IN IP4 pc33.atlanta.example.com\r\n\
         s=sipshard call\r\n\
         c=IN IP4 192.0.2.101\r\n\
         t=0 0\r\n\
         a=group:BUNDLE 0 1\r\n\
         m=audio 49172 RTP/AVP 111 0 8 101\r\n\
         a=mid:0\r\n\
         a=rtpmap:111 opus/48000/2\r\n\
         a=fmtp:111 minptime=10;useinbandfec=1\r\n\
         a=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\n\
         a=fmtp:101 0-16\r\n\
         a=ptime:20\r\n\
         a=sendrecv\r\n\
         m=video 51372 RTP/AVP 96 97\r\n\
         a=mid:1\r\n\
         a=rtpmap:96 VP8/90000\r\n\
         a=rtpmap:97 H264/90000\r\n\
         a=fmtp:97 profile-level-id=42e01f;packetization-mode=1\r\n\
         a=rtcp-fb:96 nack pli\r\n\
         a=sendrecv\r\n";
    sip_with_body(&head, sdp.as_bytes())
}

/// `n` bytes of printable, line-broken text (deterministic; never contains `-------`).
fn text_body(n: usize) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "sipshard", "routes", "every", "message", "to", "the", "shard", "that", "owns", "its",
        "call", "and", "relays", "chat", "over", "msrp", "without", "copying", "a", "byte",
    ];
    let mut out = Vec::with_capacity(n + 16);
    let mut col = 0;
    let mut i = 0usize;
    while out.len() < n {
        let w = WORDS[(i * 7 + i / 3) % WORDS.len()];
        i += 1;
        if col + w.len() + 1 > 72 {
            out.extend_from_slice(b"\r\n");
            col = 0;
        } else if col > 0 {
            out.push(b' ');
            col += 1;
        }
        out.extend_from_slice(w.as_bytes());
        col += w.len();
    }
    out.truncate(n);
    // Do not end in half a CRLF.
    if let Some(last) = out.last_mut() {
        if *last == b'\r' {
            *last = b'.';
        }
    }
    out
}

/// An MSRP SEND whose body is `body_len` bytes of text.
fn msrp_send(body_len: usize) -> Vec<u8> {
    let tid = "a786hjs2";
    let body = text_body(body_len);
    let mut m = format!(
        "MSRP {tid} SEND\r\n\
         To-Path: msrp://relay.sipshard.example.com:2855/9di4eae923wzd;tcp\r\n\
         From-Path: msrp://alicepc.example.com:7777/iau39soe2843z;tcp\r\n\
         Message-ID: 87652491\r\n\
         Byte-Range: 1-{body_len}/{body_len}\r\n\
         Success-Report: yes\r\n\
         Content-Type: text/plain\r\n\r\n"
    )
    .into_bytes();
    m.extend_from_slice(&body);
    m.extend_from_slice(format!("\r\n-------{tid}$\r\n").as_bytes());
    m
}

/// An MSRP SEND with a 1 KiB body.
pub fn msrp_send_1k() -> Vec<u8> {
    msrp_send(1024)
}

/// An MSRP SEND with a 64 KiB body.
pub fn msrp_send_64k() -> Vec<u8> {
    msrp_send(64 * 1024)
}

/// The SIP inputs, each with the name used in benchmark ids.
pub fn sip_inputs() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("message_300B", sip_message()),
        ("invite_650B", sip_invite()),
        ("invite_sdp_1300B", sip_invite_sdp()),
    ]
}

/// The MSRP inputs, each with the name used in benchmark ids.
pub fn msrp_inputs() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("send_1KiB", msrp_send_1k()),
        ("send_64KiB", msrp_send_64k()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use sipshard_parser::msrp;
    use sipshard_parser::sip::{self, Framing, EMPTY_HEADER};
    use sipshard_parser::Status;

    fn within_10pct(len: usize, nominal: usize) -> bool {
        len * 10 >= nominal * 9 && len * 10 <= nominal * 11
    }

    #[test]
    fn sip_sizes() {
        for (buf, nominal) in [
            (sip_message(), 300),
            (sip_invite(), 650),
            (sip_invite_sdp(), 1300),
        ] {
            assert!(
                within_10pct(buf.len(), nominal),
                "{} B, want ~{nominal}",
                buf.len()
            );
        }
    }

    #[test]
    fn sip_inputs_parse() {
        for (name, buf) in sip_inputs() {
            let mut headers = [EMPTY_HEADER; 32];
            let m = match sip::parse(&buf, &mut headers, Framing::Datagram) {
                Ok(Status::Complete(m)) => m,
                other => panic!("{name}: {other:?}"),
            };
            assert_eq!(m.len(), buf.len(), "{name}");
            assert!(m.trailing().is_empty(), "{name}");
            assert_eq!(m.content_length(), Some(m.body().len() as u32), "{name}");
            assert!(m.call_id().is_some() && m.cseq().is_some(), "{name}");
            assert!(m.from_tag().is_some() && m.branch().is_some(), "{name}");
            assert!(m.max_forwards().is_some(), "{name}");
            assert_eq!(sip::find_call_id(&buf), m.call_id(), "{name}");
            // Also parses as a stream message (Content-Length present and right).
            let mut headers = [EMPTY_HEADER; 32];
            let s = sip::parse(&buf, &mut headers, Framing::Stream).unwrap();
            assert_eq!(s.complete().map(|m| m.len()), Some(buf.len()), "{name}");
        }
    }

    #[test]
    fn msrp_sizes_and_parse() {
        for ((name, buf), body_len) in msrp_inputs().into_iter().zip([1024, 64 * 1024]) {
            assert!(
                within_10pct(buf.len(), body_len + 300),
                "{name}: {} B",
                buf.len()
            );
            let mut headers = [msrp::EMPTY_HEADER; 32];
            let f = match msrp::parse(&buf, &mut headers, &msrp::Limits::default()) {
                Ok(Status::Complete(f)) => f,
                other => panic!("{name}: {other:?}"),
            };
            assert_eq!(f.len, buf.len(), "{name}");
            assert_eq!(f.body.map(<[u8]>::len), Some(body_len), "{name}");
            assert_eq!(f.flag, msrp::Flag::Complete, "{name}");

            // The same frame fed in 1500-byte pieces.
            let mut framer = msrp::Framer::default();
            let mut end = 0;
            let len = loop {
                end = (end + 1500).min(buf.len());
                let mut headers = [msrp::EMPTY_HEADER; 32];
                match framer.parse(&buf[..end], &mut headers) {
                    Ok(Status::Complete(f)) => break f.len,
                    Ok(Status::Partial) => assert!(end < buf.len(), "{name}"),
                    Err(e) => panic!("{name}: {e:?}"),
                }
            };
            assert_eq!(len, buf.len(), "{name}");
        }
    }
}
