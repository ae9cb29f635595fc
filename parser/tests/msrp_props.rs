//! Property tests for the MSRP parser: round trips of generated frames, robustness on random
//! bytes, and independence from how the bytes are split into reads.

use proptest::prelude::*;
use sipshard_parser::msrp::{
    frame_len, parse, ByteRange, Flag, Framer, Limits, Method, StartLine, EMPTY_HEADER,
};
use sipshard_parser::Status;

const IDENT_CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-+%=";

fn ident() -> impl Strategy<Value = String> {
    (
        0usize..62,
        proptest::collection::vec(0usize..IDENT_CHARS.len(), 3..=31),
    )
        .prop_map(|(first, rest)| {
            let mut s = String::new();
            s.push(IDENT_CHARS[first] as char);
            for i in rest {
                s.push(IDENT_CHARS[i] as char);
            }
            s
        })
}

fn uri() -> impl Strategy<Value = String> {
    (
        prop_oneof![Just("msrp"), Just("msrps")],
        "[a-z][a-z0-9.]{0,20}",
        proptest::option::of(1u16..65535),
        "[A-Za-z0-9]{1,16}",
    )
        .prop_map(|(scheme, host, port, session)| match port {
            Some(p) => format!("{scheme}://{host}:{p}/{session};tcp"),
            None => format!("{scheme}://{host};tcp"),
        })
}

fn path() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec(uri(), 1..4)
}

fn flag() -> impl Strategy<Value = Flag> {
    prop_oneof![Just(Flag::More), Just(Flag::Complete), Just(Flag::Abort)]
}

fn byte_range() -> impl Strategy<Value = ByteRange> {
    (
        1u64..1_000_000,
        proptest::option::of(0u64..1000),
        any::<bool>(),
    )
        .prop_map(|(start, len, total_known)| {
            let end = len.map(|l| start - 1 + l);
            let total = if total_known {
                Some(end.unwrap_or(start) + 7)
            } else {
                None
            };
            ByteRange { start, end, total }
        })
}

/// Body pieces: text, CRLFs and lines of dashes (with no, another, or a near-miss tid).
fn body(tid: String) -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        "[ -~]{0,20}".prop_map(String::into_bytes),
        Just(b"\r\n".to_vec()),
        Just(b"\r\n-------\r\n".to_vec()),
        Just(b"\r\n-------othertid$\r\n".to_vec()),
        Just(format!("\r\n-------{tid}").into_bytes()),
        Just(format!("\r\n-------{tid}x$\r\n").into_bytes()),
        Just(format!("\r\n-------{tid}$ \r\n").into_bytes()),
        Just(format!("\r\n--------{tid}$\r\n").into_bytes()),
        proptest::collection::vec(any::<u8>(), 0..8).prop_map(move |mut v| {
            // Random bytes, but never forming the real end-line.
            v.retain(|&b| b != b'-');
            v
        }),
    ];
    proptest::collection::vec(piece, 0..12)
        .prop_map(|v| v.concat())
        .prop_filter("body must not contain its own end-line", move |b| {
            // The body sits between the empty line's CRLF and the CRLF before the end-line.
            let mut framed = b"\r\n".to_vec();
            framed.extend_from_slice(b);
            framed.extend_from_slice(b"\r\n");
            !contains_end_line(&framed, tid.as_bytes())
        })
}

fn contains_end_line(hay: &[u8], tid: &[u8]) -> bool {
    let mut needle = b"\r\n-------".to_vec();
    needle.extend_from_slice(tid);
    let n = needle.len();
    (0..hay.len()).any(|i| {
        hay.get(i..i + n) == Some(&needle[..])
            && matches!(hay.get(i + n), Some(b'+' | b'$' | b'#'))
            && hay.get(i + n + 1..i + n + 3) == Some(&b"\r\n"[..])
    })
}

fn fmt_br(br: &ByteRange) -> String {
    let end = br.end.map_or("*".to_string(), |e| e.to_string());
    let total = br.total.map_or("*".to_string(), |t| t.to_string());
    format!("{}-{end}/{total}", br.start)
}

#[derive(Debug, Clone)]
struct Parts {
    tid: String,
    method: Option<&'static str>,
    code: u16,
    to: Vec<String>,
    from: Vec<String>,
    message_id: Option<String>,
    byte_range: Option<ByteRange>,
    body: Option<Vec<u8>>,
    flag: Flag,
}

fn parts() -> impl Strategy<Value = Parts> {
    ident().prop_flat_map(|tid| {
        (
            Just(tid.clone()),
            prop_oneof![
                Just(Some("SEND")),
                Just(Some("REPORT")),
                Just(Some("AUTH")),
                Just(Some("XYZZY")),
                Just(None)
            ],
            100u16..1000,
            path(),
            path(),
            proptest::option::of(ident()),
            proptest::option::of(byte_range()),
            proptest::option::of(body(tid)),
            flag(),
        )
            .prop_map(
                |(tid, method, code, to, from, message_id, byte_range, body, flag)| Parts {
                    tid,
                    method,
                    code,
                    to,
                    from,
                    message_id,
                    byte_range,
                    // Responses have no body.
                    body: if method.is_some() { body } else { None },
                    flag,
                },
            )
    })
}

fn render(p: &Parts) -> Vec<u8> {
    let mut s = match p.method {
        Some(m) => format!("MSRP {} {m}\r\n", p.tid).into_bytes(),
        None => format!("MSRP {} {} Some Comment\r\n", p.tid, p.code).into_bytes(),
    };
    s.extend_from_slice(format!("To-Path: {}\r\n", p.to.join(" ")).as_bytes());
    s.extend_from_slice(format!("From-Path: {}\r\n", p.from.join(" ")).as_bytes());
    if let Some(m) = &p.message_id {
        s.extend_from_slice(format!("Message-ID: {m}\r\n").as_bytes());
    }
    if let Some(br) = &p.byte_range {
        s.extend_from_slice(format!("Byte-Range: {}\r\n", fmt_br(br)).as_bytes());
    }
    if let Some(b) = &p.body {
        s.extend_from_slice(b"Content-Type: application/octet-stream\r\n\r\n");
        s.extend_from_slice(b);
        s.extend_from_slice(b"\r\n");
    }
    s.extend_from_slice(format!("-------{}", p.tid).as_bytes());
    s.push(p.flag.as_byte());
    s.extend_from_slice(b"\r\n");
    s
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn msrp_round_trip(p in parts(), trailing in proptest::collection::vec(any::<u8>(), 0..16)) {
        let mut buf = render(&p);
        let len = buf.len();
        buf.extend_from_slice(&trailing);
        let mut headers = [EMPTY_HEADER; 8];
        let f = match parse(&buf, &mut headers, &Limits::default()) {
            Ok(Status::Complete(f)) => f,
            other => panic!("{other:?} for {:?}", String::from_utf8_lossy(&buf)),
        };
        prop_assert_eq!(f.len, len);
        prop_assert_eq!(f.transaction_id, p.tid.as_bytes());
        match (f.start, p.method) {
            (StartLine::Request { method }, Some(m)) => {
                prop_assert_eq!(method.as_bytes(), m.as_bytes());
                if m == "XYZZY" {
                    prop_assert_eq!(method, Method::Other(b"XYZZY"));
                }
            }
            (StartLine::Response { code, comment }, None) => {
                prop_assert_eq!(code, p.code);
                prop_assert_eq!(comment, Some(&b"Some Comment"[..]));
            }
            (s, m) => panic!("{s:?} vs {m:?}"),
        }
        prop_assert_eq!(f.to_path().collect::<Vec<_>>(), p.to.iter().map(|s| s.as_bytes()).collect::<Vec<_>>());
        prop_assert_eq!(f.from_path().collect::<Vec<_>>(), p.from.iter().map(|s| s.as_bytes()).collect::<Vec<_>>());
        prop_assert_eq!(f.message_id(), p.message_id.as_deref().map(str::as_bytes));
        prop_assert_eq!(f.byte_range(), p.byte_range.map(Ok));
        prop_assert_eq!(f.body, p.body.as_deref());
        prop_assert_eq!(f.content_type().is_some(), p.body.is_some());
        prop_assert_eq!(f.flag, p.flag);
        prop_assert_eq!(frame_len(&buf, &Limits::default()), Ok(Status::Complete(len)));
    }

    #[test]
    fn msrp_split_points_agree(p in parts(), cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8)) {
        let buf = render(&p);
        let mut whole_headers = [EMPTY_HEADER; 8];
        let whole = parse(&buf, &mut whole_headers, &Limits::default());
        let mut ends: Vec<usize> = cuts.iter().map(|c| c.index(buf.len())).collect();
        ends.sort_unstable();
        ends.push(buf.len());
        let mut framer = Framer::default();
        for &end in &ends {
            let mut headers = [EMPTY_HEADER; 8];
            let got = framer.parse(&buf[..end], &mut headers);
            if end < buf.len() {
                prop_assert_eq!(got, Ok(Status::Partial));
                let mut hs = [EMPTY_HEADER; 8];
                prop_assert_eq!(parse(&buf[..end], &mut hs, &Limits::default()), Ok(Status::Partial));
            } else {
                prop_assert_eq!(got, whole);
            }
        }
    }

    #[test]
    fn msrp_random_bytes_never_panic(buf in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut headers = [EMPTY_HEADER; 8];
        let _ = parse(&buf, &mut headers, &Limits::default());
        let _ = frame_len(&buf, &Limits::default());
    }

    #[test]
    fn msrp_mutated_frames_never_panic(
        p in parts(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        max_frame in 0usize..400,
        max_headers in 0usize..400,
        cut in any::<prop::sample::Index>(),
    ) {
        let mut buf = render(&p);
        for (i, b) in edits {
            let at = i.index(buf.len());
            buf[at] = b;
        }
        let limits = Limits { max_frame, max_headers_bytes: max_headers };
        let mut headers = [EMPTY_HEADER; 4];
        let whole = parse(&buf, &mut headers, &limits);
        if let Ok(Status::Complete(f)) = whole {
            prop_assert!(f.len <= buf.len() && f.len <= max_frame);
            let _ = (f.byte_range(), f.status(), f.expires(), f.success_report(), f.failure_report());
        }
        // Incremental feeding agrees with the whole-buffer result.
        let mid = cut.index(buf.len() + 1);
        let mut framer = Framer::new(limits);
        let mut hs = [EMPTY_HEADER; 4];
        match framer.parse(&buf[..mid], &mut hs) {
            Ok(Status::Partial) => {
                let mut hs2 = [EMPTY_HEADER; 4];
                prop_assert_eq!(framer.parse(&buf, &mut hs2), whole);
            }
            Ok(Status::Complete(f)) => prop_assert_eq!(Ok(Status::Complete(f)), whole),
            // An error on a prefix means the whole is rejected too.
            Err(e) => prop_assert!(whole.is_err(), "{:?} vs {:?}", e, whole),
        }
    }
}
