use super::*;

const TO: &str = "msrp://bob.example.com:8888/9di4eae923wzd;tcp";
const FROM: &str = "msrp://alicepc.example.com:7777/iau39soe2843z;tcp";

fn send(tid: &str, body: &str, flag: char) -> Vec<u8> {
    format!(
        "MSRP {tid} SEND\r\nTo-Path: {TO}\r\nFrom-Path: {FROM}\r\nMessage-ID: 12339sdqwer\r\n\
         Byte-Range: 1-{}/{}\r\nContent-Type: text/plain\r\n\r\n{body}\r\n-------{tid}{flag}\r\n",
        body.len(),
        body.len()
    )
    .into_bytes()
}

fn no_body(start: &str, tid: &str, extra: &str) -> Vec<u8> {
    format!("MSRP {tid} {start}\r\nTo-Path: {TO}\r\nFrom-Path: {FROM}\r\n{extra}-------{tid}$\r\n")
        .into_bytes()
}

fn ok(buf: &[u8]) -> (Frame<'_, '_>, usize) {
    let headers = Box::leak(Box::new([EMPTY_HEADER; 32]));
    match parse(buf, headers, &Limits::default()) {
        Ok(Status::Complete(f)) => {
            let len = f.len;
            (f, len)
        }
        other => panic!("{:?} for {:?}", other, String::from_utf8_lossy(buf)),
    }
}

fn err(buf: &[u8]) -> Error {
    let mut headers = [EMPTY_HEADER; 32];
    match parse(buf, &mut headers, &Limits::default()) {
        Err(e) => e,
        other => panic!("{:?} for {:?}", other, String::from_utf8_lossy(buf)),
    }
}

fn partial(buf: &[u8]) {
    let mut headers = [EMPTY_HEADER; 32];
    assert_eq!(
        parse(buf, &mut headers, &Limits::default()),
        Ok(Status::Partial),
        "{:?}",
        String::from_utf8_lossy(buf)
    );
}

#[test]
fn simple_send() {
    let m = send("d93kswow", "Hi, I'm Alice!", '$');
    let (f, len) = ok(&m);
    assert_eq!(len, m.len());
    assert_eq!(f.transaction_id, b"d93kswow");
    assert_eq!(f.method(), Some(Method::Send));
    assert!(f.is_request());
    assert_eq!(f.body, Some(&b"Hi, I'm Alice!"[..]));
    assert_eq!(f.flag, Flag::Complete);
    assert_eq!(f.to_path().collect::<Vec<_>>(), vec![TO.as_bytes()]);
    assert_eq!(f.from_path().collect::<Vec<_>>(), vec![FROM.as_bytes()]);
    assert_eq!(f.message_id(), Some(&b"12339sdqwer"[..]));
    assert_eq!(f.content_type(), Some(&b"text/plain"[..]));
    assert_eq!(
        f.byte_range(),
        Some(Ok(ByteRange {
            start: 1,
            end: Some(14),
            total: Some(14)
        }))
    );
    assert_eq!(f.header("content-type"), Some(&b"text/plain"[..]));
    assert_eq!(f.header("X-Unknown"), None);
    assert_eq!(f.success_report(), None);
    assert_eq!(f.headers.len(), 5);
}

#[test]
fn trailing_bytes_left_alone() {
    let mut m = send("abcd", "x", '+');
    let one = m.len();
    m.extend_from_slice(&send("efgh", "y", '$'));
    let (f, len) = ok(&m);
    assert_eq!(len, one);
    assert_eq!(f.flag, Flag::More);
    let (g, len2) = ok(&m[len..]);
    assert_eq!(len2, m.len() - one);
    assert_eq!(g.transaction_id, b"efgh");
}

#[test]
fn flags() {
    for (c, fl) in [('+', Flag::More), ('$', Flag::Complete), ('#', Flag::Abort)] {
        let m = send("abcd1234", "chunk", c);
        assert_eq!(ok(&m).0.flag, fl);
        assert_eq!(fl.as_byte(), c as u8);
    }
}

#[test]
fn body_with_dash_lines() {
    let body = "line\r\n-------\r\n-------othertid$\r\n--------abcd1234$\r\n-------abcd12345$\r\n\
                -------abcd1234\r\n-------abcd1234$x\r\n-------abcd1234$\rX\r\n-------\r\nend";
    let m = send("abcd1234", body, '$');
    let (f, len) = ok(&m);
    assert_eq!(len, m.len());
    assert_eq!(f.body, Some(body.as_bytes()));
}

#[test]
fn body_containing_blank_lines_and_crlf_edges() {
    for body in ["", "\r\n", "\r\n\r\n", "a\r\n\r\nb", "\n", "\r", "-------"] {
        let m = send("abcd", body, '$');
        let (f, len) = ok(&m);
        assert_eq!(len, m.len());
        assert_eq!(f.body, Some(body.as_bytes()), "{body:?}");
    }
}

#[test]
fn empty_send_and_responses() {
    let m = no_body("SEND", "abcd", "Message-ID: abcd\r\nByte-Range: 1-0/0\r\n");
    let (f, len) = ok(&m);
    assert_eq!(len, m.len());
    assert_eq!(f.body, None);
    assert_eq!(
        f.byte_range(),
        Some(Ok(ByteRange {
            start: 1,
            end: Some(0),
            total: Some(0)
        }))
    );
    let m = no_body("200 OK", "abcd", "");
    let (f, _) = ok(&m);
    assert_eq!(
        f.start,
        StartLine::Response {
            code: 200,
            comment: Some(b"OK")
        }
    );
    assert_eq!(f.code(), Some(200));
    let m = no_body("413", "abcd", "");
    assert_eq!(
        ok(&m).0.start,
        StartLine::Response {
            code: 413,
            comment: None
        }
    );
    let m = no_body("AUTH", "abcd", "");
    assert_eq!(ok(&m).0.method(), Some(Method::Auth));
}

#[test]
fn unknown_method() {
    let m = no_body("FOO", "abcd", "");
    assert_eq!(ok(&m).0.method(), Some(Method::Other(b"FOO")));
    assert_eq!(err(&no_body("Foo", "abcd", "")), Error::BadMethod);
    assert_eq!(err(&no_body("SE-ND", "abcd", "")), Error::BadMethod);
}

#[test]
fn tid_limits() {
    let t4 = "a.-z";
    let t32 = "A1234567890123456789012345678901";
    assert_eq!(t32.len(), 32);
    assert_eq!(ok(&send(t4, "x", '$')).0.transaction_id, t4.as_bytes());
    assert_eq!(ok(&send(t32, "x", '$')).0.transaction_id, t32.as_bytes());
    assert_eq!(err(&send("abc", "x", '$')), Error::BadTransactionId);
    let t33 = format!("{t32}x");
    assert_eq!(err(&send(&t33, "x", '$')), Error::BadTransactionId);
    assert_eq!(err(&send(".abcd", "x", '$')), Error::BadTransactionId);
    assert_eq!(err(&send("ab/cd", "x", '$')), Error::BadTransactionId);
    assert!(ok(&send("a+%=", "x", '$')).1 > 0);
    // Error found early, without waiting for the rest.
    let mut headers = [EMPTY_HEADER; 4];
    assert_eq!(
        parse(
            format!("MSRP {t33}").as_bytes(),
            &mut headers,
            &Limits::default()
        ),
        Err(Error::BadTransactionId)
    );
}

#[test]
fn end_line_must_match_tid() {
    // End-line with another tid is body data: stays partial.
    let m = format!(
        "MSRP abcd SEND\r\nTo-Path: {TO}\r\nFrom-Path: {FROM}\r\nContent-Type: a/b\r\n\r\nx\r\n-------abce$\r\n"
    );
    partial(m.as_bytes());
}

#[test]
fn start_line_errors() {
    assert_eq!(err(b"HTTP/1.1 200 OK\r\n"), Error::NotMsrp);
    assert_eq!(err(b"msrp abcd SEND\r\n"), Error::NotMsrp);
    assert_eq!(err(b"MSRP abcd 20 OK\r\n"), Error::BadStatusCode);
    assert_eq!(err(b"MSRP abcd 2000\r\n"), Error::BadStatusCode);
    assert_eq!(err(b"MSRP abcd 200 O\x01K\r\n"), Error::BadStartLine);
    assert_eq!(err(b"MSRP abcd SEND\rX"), Error::BadStartLine);
    assert_eq!(err(b"MSRP abcd SEND\n"), Error::BadMethod);
    assert_eq!(err(b"MSRP abcd  SEND\r\n"), Error::BadMethod);
    partial(b"");
    partial(b"MS");
    partial(b"MSRP ab");
    partial(b"MSRP abcd SEND\r");
}

#[test]
fn path_order() {
    let m = format!("MSRP abcd 200 OK\r\nFrom-Path: {FROM}\r\nTo-Path: {TO}\r\n-------abcd$\r\n");
    assert_eq!(err(m.as_bytes()), Error::ToPathNotFirst);
    let m = format!("MSRP abcd 200 OK\r\nTo-Path: {TO}\r\nMessage-ID: abcd\r\nFrom-Path: {FROM}\r\n-------abcd$\r\n");
    assert_eq!(err(m.as_bytes()), Error::FromPathNotSecond);
    let m = format!("MSRP abcd 200 OK\r\nTo-Path: {TO}\r\n-------abcd$\r\n");
    assert_eq!(err(m.as_bytes()), Error::FromPathNotSecond);
    assert_eq!(
        err(b"MSRP abcd 200 OK\r\n-------abcd$\r\n"),
        Error::ToPathNotFirst
    );
    let m = no_body("SEND", "abcd", &format!("To-Path: {TO}\r\n"));
    assert_eq!(err(&m), Error::DuplicatePath);
    let m =
        format!("MSRP abcd 200 OK\r\nTo-Path: http://x\r\nFrom-Path: {FROM}\r\n-------abcd$\r\n");
    assert_eq!(err(m.as_bytes()), Error::BadPath);
    let m =
        format!("MSRP abcd 200 OK\r\nTo-Path: {TO}  {TO}\r\nFrom-Path: {FROM}\r\n-------abcd$\r\n");
    assert_eq!(err(m.as_bytes()), Error::BadPath);
    // Names are case-insensitive; multi-URI paths iterate.
    let m = format!(
        "MSRP abcd 200 OK\r\nto-path: {TO} msrps://relay.example.net:9000/aeiug;tcp\r\nFROM-PATH: {FROM}\r\n\
         Use-Path: msrps://a.example.org:9000/x;tcp msrps://b;tcp\r\n-------abcd$\r\n"
    );
    let (f, _) = ok(m.as_bytes());
    assert_eq!(f.to_path().count(), 2);
    assert_eq!(
        f.use_path().map(|u| u.collect::<Vec<_>>()),
        Some(vec![
            &b"msrps://a.example.org:9000/x;tcp"[..],
            &b"msrps://b;tcp"[..]
        ])
    );
}

#[test]
fn header_syntax() {
    for bad in [
        "Message-ID:abcd\r\n",
        "Message-ID abcd\r\n",
        "Mess age-ID: abcd\r\n",
        ": abcd\r\n",
        "1X: abcd\r\n",
        "X-A: a\x01b\r\n",
        "X-A: a\nb\r\n",
        " X-A: b\r\n",
    ] {
        let m = no_body("SEND", "abcd", bad);
        assert_eq!(err(&m), Error::BadHeader, "{bad:?}");
    }
    let m = no_body(
        "SEND",
        "abcd",
        "X-Custom: anything \u{e9} goes\r\nX-Empty: \r\n",
    );
    let (f, _) = ok(&m);
    assert_eq!(
        f.header("x-custom"),
        Some("anything \u{e9} goes".as_bytes())
    );
    assert_eq!(f.header("X-EMPTY"), Some(&b""[..]));
}

#[test]
fn content_type_iff_body() {
    let m = no_body("SEND", "abcd", "Content-Type: text/plain\r\n");
    assert_eq!(err(&m), Error::ContentTypeWithoutBody);
    let m = no_body("SEND", "abcd", "Message-ID: abcd\r\n\r\nhello\r\n");
    assert_eq!(err(&m), Error::BodyWithoutContentType);
    let m = no_body(
        "200 OK",
        "abcd",
        "Content-Type: text/plain\r\n\r\nhello\r\n",
    );
    assert_eq!(err(&m), Error::ResponseWithBody);
    // Empty line straight before the end-line: no data CRLF.
    let m = no_body("SEND", "abcd", "Content-Type: text/plain\r\n\r\n");
    assert_eq!(err(&m), Error::MissingBodyData);
}

#[test]
fn byte_range_values() {
    let br = |s: &str| syntax::parse_byte_range(s.as_bytes());
    assert_eq!(
        br("1-*/*"),
        Ok(ByteRange {
            start: 1,
            end: None,
            total: None
        })
    );
    assert_eq!(
        br("138-148/148"),
        Ok(ByteRange {
            start: 138,
            end: Some(148),
            total: Some(148)
        })
    );
    assert_eq!(
        br("1-*/8"),
        Ok(ByteRange {
            start: 1,
            end: None,
            total: Some(8)
        })
    );
    for bad in [
        "0-1/1",
        "1-2",
        "1/2-3",
        "a-1/1",
        "1-x/1",
        "1-1/",
        "-1/1",
        "5-3/8",
        "1-9/8",
        "1-2/3 ",
        "99999999999999999999-*/*",
        "*-1/1",
    ] {
        assert_eq!(br(bad), Err(Error::BadByteRange), "{bad}");
        let m = no_body("SEND", "abcd", &format!("Byte-Range: {bad}\r\n"));
        assert_eq!(err(&m), Error::BadByteRange, "{bad}");
        assert_eq!(Error::BadByteRange.status_code(), 400);
    }
}

#[test]
fn reports_and_status() {
    let m = no_body(
        "SEND",
        "abcd",
        "Success-Report: yes\r\nFailure-Report: partial\r\n",
    );
    let (f, _) = ok(&m);
    assert_eq!(f.success_report(), Some(Ok(ReportRequest::Yes)));
    assert_eq!(f.failure_report(), Some(Ok(ReportRequest::Partial)));
    let m = no_body("SEND", "abcd", "Success-Report: partial\r\n");
    assert_eq!(err(&m), Error::BadReportHeader);
    let m = no_body("SEND", "abcd", "Failure-Report: maybe\r\n");
    assert_eq!(err(&m), Error::BadReportHeader);
    let m = no_body(
        "REPORT",
        "abcd",
        "Message-ID: abcd\r\nStatus: 000 200 OK\r\n",
    );
    let (f, _) = ok(&m);
    assert_eq!(
        f.status(),
        Some(Ok(ReportStatus {
            namespace: 0,
            code: 200,
            reason: Some(b"OK")
        }))
    );
    for bad in ["000200", "00 200", "000 20", "000 200x", "abc 200"] {
        let m = no_body("REPORT", "abcd", &format!("Status: {bad}\r\n"));
        assert_eq!(err(&m), Error::BadStatusHeader, "{bad}");
    }
    let m = no_body("REPORT", "abcd", "Message-ID: a\r\n");
    assert_eq!(err(&m), Error::BadMessageId);
}

#[test]
fn auth_headers() {
    let m = no_body(
        "401 Unauthorized",
        "49fh",
        "WWW-Authenticate: Digest realm=\"x\"\r\nExpires: 900\r\nMin-Expires: 10\r\nMax-Expires: 99999999999\r\n",
    );
    let (f, _) = ok(&m);
    assert_eq!(f.www_authenticate(), Some(&b"Digest realm=\"x\""[..]));
    assert_eq!(f.expires(), Some(Ok(900)));
    assert_eq!(f.min_expires(), Some(Ok(10)));
    assert_eq!(f.max_expires(), Some(Err(Error::BadHeaderValue)));
    assert_eq!(f.authorization(), None);
}

#[test]
fn byte_by_byte_matches_whole() {
    let bodies = [
        "Hi",
        "a\r\n-------abcd1234\r\n-------other$\r\n-------abcd1234!\r\nz",
        "",
    ];
    for body in bodies {
        let m = send("abcd1234", body, '+');
        let (whole, _) = ok(&m);
        let mut framer = Framer::default();
        for i in 0..m.len() {
            let mut headers = [EMPTY_HEADER; 16];
            assert_eq!(
                framer.parse(&m[..i], &mut headers),
                Ok(Status::Partial),
                "at {i}"
            );
        }
        let mut headers = [EMPTY_HEADER; 16];
        let got = framer.parse(&m, &mut headers).unwrap().complete().unwrap();
        assert_eq!(got, whole);
        // Stateless parse of every prefix is Partial too.
        for i in 0..m.len() {
            partial(&m[..i]);
        }
    }
}

#[test]
fn framer_reset_and_stream() {
    let mut stream = send("abcd", "one", '+');
    stream.extend_from_slice(&no_body("200 OK", "abcd", ""));
    stream.extend_from_slice(&send("efgh", "two\r\n-------abcd$", '$'));
    let mut framer = Framer::default();
    let mut at = 0;
    let mut tids = vec![];
    while at < stream.len() {
        let mut end = at;
        let len = loop {
            end = (end + 7).min(stream.len());
            match framer.frame_len(&stream[at..end]).unwrap() {
                Status::Complete(l) => break l,
                Status::Partial => assert!(end < stream.len()),
            }
        };
        tids.push(framer.transaction_id().unwrap().to_vec());
        let mut headers = [EMPTY_HEADER; 16];
        let f = framer.parse(&stream[at..end], &mut headers).unwrap();
        assert_eq!(f.complete().unwrap().len, len);
        framer.reset();
        assert_eq!(framer.transaction_id(), None);
        at += len;
    }
    assert_eq!(
        tids,
        vec![b"abcd".to_vec(), b"abcd".to_vec(), b"efgh".to_vec()]
    );
}

#[test]
fn frame_too_large() {
    let limits = Limits {
        max_frame: 300,
        ..Limits::default()
    };
    let mut headers = [EMPTY_HEADER; 16];
    let small = send("abcd", "x", '$');
    assert!(small.len() < 300);
    assert!(parse(&small, &mut headers, &limits).unwrap().is_complete());
    let big = send("abcd", &"y".repeat(400), '$');
    for cut in [100, 299, 300, 301, big.len()] {
        let r = parse(&big[..cut], &mut headers, &limits);
        if cut < 300 {
            assert_eq!(r, Ok(Status::Partial), "{cut}");
        } else {
            assert_eq!(r, Err(Error::FrameTooLarge), "{cut}");
        }
    }
    assert_eq!(Error::FrameTooLarge.status_code(), 413);
    // A frame exactly max_frame long is accepted.
    let exact = Limits {
        max_frame: small.len(),
        ..Limits::default()
    };
    assert!(parse(&small, &mut headers, &exact).unwrap().is_complete());
    let under = Limits {
        max_frame: small.len() - 1,
        ..Limits::default()
    };
    assert_eq!(
        parse(&small, &mut headers, &under),
        Err(Error::FrameTooLarge)
    );
    // Larger than the default limit works when configured.
    let huge = send("abcd", &"z".repeat(3 << 20), '$');
    let limits = Limits {
        max_frame: 4 << 20,
        ..Limits::default()
    };
    assert_eq!(
        parse(&huge, &mut headers, &limits)
            .unwrap()
            .complete()
            .unwrap()
            .len,
        huge.len()
    );
    assert_eq!(
        parse(&huge, &mut headers, &Limits::default()),
        Err(Error::FrameTooLarge)
    );
}

#[test]
fn headers_too_large() {
    let limits = Limits {
        max_headers_bytes: 150,
        ..Limits::default()
    };
    let mut headers = [EMPTY_HEADER; 16];
    let long = no_body("SEND", "abcd", &format!("X-Pad: {}\r\n", "p".repeat(200)));
    assert_eq!(
        parse(&long, &mut headers, &limits),
        Err(Error::HeadersTooLarge)
    );
    // Detected before the end-line arrives.
    assert_eq!(
        parse(&long[..170], &mut headers, &limits),
        Err(Error::HeadersTooLarge)
    );
    // A long body does not count.
    let m = send("abcd", &"b".repeat(500), '$');
    let hdr = m.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let limits = Limits {
        max_headers_bytes: hdr,
        ..Limits::default()
    };
    assert!(parse(&m, &mut headers, &limits).unwrap().is_complete());
    let limits = Limits {
        max_headers_bytes: hdr - 1,
        ..Limits::default()
    };
    assert_eq!(
        parse(&m, &mut headers, &limits),
        Err(Error::HeadersTooLarge)
    );
    // Start line longer than the limit.
    let limits = Limits {
        max_headers_bytes: 20,
        ..Limits::default()
    };
    assert_eq!(
        parse(b"MSRP abcd 200 a long comment here", &mut headers, &limits),
        Err(Error::HeadersTooLarge)
    );
    // Too many headers for the array.
    let mut few = [EMPTY_HEADER; 3];
    assert_eq!(
        parse(&m, &mut few, &Limits::default()),
        Err(Error::TooManyHeaders)
    );
}

#[test]
fn large_body_scanned_once() {
    // 64 KiB body in 1000 pieces: each call only looks at new bytes (checked by time budget
    // loosely; mainly that results agree).
    let body: String = (0..65536)
        .map(|i| if i % 61 == 60 { '-' } else { 'q' })
        .collect();
    let m = send("abcd", &body, '$');
    let mut framer = Framer::default();
    let step = m.len() / 1000 + 1;
    let mut end = 0;
    let mut got = None;
    while end < m.len() {
        end = (end + step).min(m.len());
        if let Status::Complete(l) = framer.frame_len(&m[..end]).unwrap() {
            got = Some(l);
            break;
        }
    }
    assert_eq!(got, Some(m.len()));
    // Later calls return the cached result.
    assert_eq!(framer.frame_len(&m), Ok(Status::Complete(m.len())));
}

#[test]
fn error_reasons_nonempty() {
    let all = [
        Error::NotMsrp,
        Error::BadTransactionId,
        Error::BadMethod,
        Error::BadStatusCode,
        Error::BadStartLine,
        Error::BadHeader,
        Error::TooManyHeaders,
        Error::ToPathNotFirst,
        Error::FromPathNotSecond,
        Error::DuplicatePath,
        Error::BadPath,
        Error::BadMessageId,
        Error::BadByteRange,
        Error::BadReportHeader,
        Error::BadStatusHeader,
        Error::BadHeaderValue,
        Error::BodyWithoutContentType,
        Error::ContentTypeWithoutBody,
        Error::MissingBodyData,
        Error::ResponseWithBody,
        Error::HeadersTooLarge,
        Error::FrameTooLarge,
    ];
    for e in all {
        assert!(!e.reason().is_empty());
        assert_eq!(e.to_string(), e.reason());
        assert!(matches!(e.status_code(), 400 | 413));
    }
}

#[test]
fn garbage_never_panics() {
    let seeds: [&[u8]; 6] = [
        b"MSRP abcd SEND\r\n-------abcd$\r\n",
        b"MSRP abcd SEND\r\n\r\n\r\n-------abcd$\r\n",
        b"MSRP abcd 999\r\n-------abcd#\r\n",
        b"MSRP abcd SEND\r\nTo-Path: msrp://a\r\nFrom-Path: msrp://b\r\n\r\n-------abcd$\r\n",
        b"MSRP abcd SEND\r\nTo-Path: msrp://a\r\nFrom-Path: msrp://b\r\n\r-------abcd$\r\n",
        b"MSRP abcd SEND\r\nTo-Path: msrp://a\r\nFrom-Path: msrp://b\r\n\n\r\n-------abcd$\r\n",
    ];
    for s in seeds {
        for i in 0..=s.len() {
            let mut headers = [EMPTY_HEADER; 4];
            let _ = parse(&s[..i], &mut headers, &Limits::default());
            let _ = frame_len(&s[..i], &Limits::default());
        }
    }
    // The bare start line followed by the end-line: no headers at all.
    assert_eq!(err(seeds[0]), Error::ToPathNotFirst);
    assert_eq!(
        frame_len(seeds[0], &Limits::default()),
        Ok(Status::Complete(seeds[0].len()))
    );
}

#[test]
fn many_small_reads_are_linear() {
    // A 1 MiB body fed 64 bytes at a time: 16k calls. A framer rescanning the body on every
    // call would touch ~8 GiB here; resuming keeps it at ~1 MiB.
    let body = "0123456789abcdef-------\r\n".repeat(40_000);
    let m = send("abcd", &body, '$');
    let limits = Limits {
        max_frame: 2 << 20,
        ..Limits::default()
    };
    let mut framer = Framer::new(limits);
    let start = std::time::Instant::now();
    let mut end = 0;
    let len = loop {
        end = (end + 64).min(m.len());
        if let Status::Complete(l) = framer.frame_len(&m[..end]).unwrap() {
            break l;
        }
    };
    assert_eq!(len, m.len());
    assert!(start.elapsed() < std::time::Duration::from_secs(5));
    let mut headers = [EMPTY_HEADER; 8];
    let f = framer.parse(&m, &mut headers).unwrap().complete().unwrap();
    assert_eq!(f.body.map(<[u8]>::len), Some(body.len()));
}
