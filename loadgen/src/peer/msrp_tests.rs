use super::*;

const WAIT: Duration = Duration::from_secs(5);
/// Long enough for bytes on loopback to have arrived, when checking that none did.
const QUIET: Duration = Duration::from_millis(200);

/// `a` listens and accepts, `b` connects.
fn pair() -> (MsrpPeer, MsrpPeer) {
    let mut a = MsrpPeer::listen().unwrap();
    let mut b = MsrpPeer::listen().unwrap();
    b.connect(a.addr()).unwrap();
    a.accept(WAIT).unwrap();
    (a, b)
}

fn body(len: usize) -> Vec<u8> {
    (0..len).map(|i| b'a' + (i % 26) as u8).collect()
}

#[test]
fn chunked_message_reassembled_and_answered() {
    let (mut a, mut b) = pair();
    assert!(a.path().starts_with("msrp://127.0.0.1:"));
    assert!(a.path().ends_with(&format!("/{};tcp", a.session_id())));
    assert_eq!(path_addr(&a.path()), Some(a.addr()));

    let msg = body(10 * 1024);
    let id = b
        .send_message(&a.path(), "text/plain", &msg, 2048, true, "yes")
        .unwrap();
    let got = a.recv_message(WAIT).expect("message");
    assert_eq!(got.message_id, id);
    assert_eq!(got.body, msg);
    assert_eq!(got.content_type, "text/plain");
    assert_eq!(got.chunks, 5);
    assert_eq!(got.from_path, b.path());
    assert_eq!(got.to_path, a.path());
    assert!(got.success_report);
    assert_eq!(b.wait_response(&id, WAIT), Some(200));
    for tid in &b.sent[&id] {
        assert_eq!(b.responses.get(tid), Some(&200));
    }
}

#[test]
fn chunks_written_as_rfc_4975_says() {
    let (mut a, mut b) = pair();
    let msg = body(5000);
    b.send_message(&a.path(), "text/plain", &msg, 2048, false, "")
        .unwrap();
    let mut ranges = Vec::new();
    for _ in 0..3 {
        let f = a.recv_frame(WAIT).expect("chunk");
        assert_eq!(f.method(), Some("SEND"));
        assert!(f.raw.ends_with(
            format!(
                "-------{}{}\r\n",
                f.transaction_id,
                char::from(f.flag.as_byte())
            )
            .as_bytes()
        ));
        ranges.push((f.header("Byte-Range").unwrap().to_owned(), f.flag));
    }
    assert_eq!(
        ranges,
        [
            ("1-2048/5000".to_owned(), Flag::More),
            ("2049-4096/5000".to_owned(), Flag::More),
            ("4097-5000/5000".to_owned(), Flag::Complete),
        ]
    );
    // recv_frame answers nothing.
    assert_eq!(b.recv_frame(QUIET), None);
}

#[test]
fn interleaved_messages() {
    let (mut a, mut b) = pair();
    let msgs = [body(3000), b"second message, interleaved ".repeat(100)];
    let ids = ["m1xx", "m2xx"];
    let (to, from) = (a.path(), b.path());
    // (transaction, message, first byte, end): chunks of the two taking turns.
    let plan = [
        ("t1aa", 0, 0, 1000),
        ("t2aa", 1, 0, 1500),
        ("t3aa", 0, 1000, 3000),
        ("t4aa", 1, 1500, msgs[1].len()),
    ];
    let mut wire = Vec::new();
    for (tid, k, s, e) in plan {
        let m = &msgs[k];
        wire.extend(write_chunk(&Chunk {
            transaction_id: tid,
            to_path: &to,
            from_path: &from,
            message_id: ids[k],
            start: s as u64 + 1,
            total: m.len() as u64,
            content_type: "text/plain",
            body: &m[s..e],
            flag: if e == m.len() {
                Flag::Complete
            } else {
                Flag::More
            },
            success_report: false,
            failure_report: "",
        }));
    }
    b.send_bytes(&wire).unwrap();
    for k in 0..2 {
        let got = a.recv_message(WAIT).expect("message");
        assert_eq!(got.message_id, ids[k]);
        assert_eq!(got.body, msgs[k]);
        assert_eq!(got.chunks, 2);
    }
    for (tid, ..) in plan {
        assert_eq!(b.wait_response(tid, WAIT), Some(200), "{tid}");
    }
}

#[test]
fn chunks_out_of_order() {
    let (mut a, mut b) = pair();
    let msg = body(300);
    let (to, from) = (a.path(), b.path());
    let chunk = |tid, s: usize, e: usize, flag| {
        write_chunk(&Chunk {
            transaction_id: tid,
            to_path: &to,
            from_path: &from,
            message_id: "ooo1",
            start: s as u64 + 1,
            total: 300,
            content_type: "text/plain",
            body: &msg[s..e],
            flag,
            success_report: false,
            failure_report: "",
        })
    };
    b.send_bytes(&chunk("c3aa", 200, 300, Flag::Complete))
        .unwrap();
    b.send_bytes(&chunk("c1aa", 0, 100, Flag::More)).unwrap();
    assert!(a.recv_message(QUIET).is_none(), "bytes 101-200 are missing");
    b.send_bytes(&chunk("c2aa", 100, 200, Flag::More)).unwrap();
    let got = a.recv_message(WAIT).expect("message");
    assert_eq!(got.body, msg);
    assert_eq!(got.chunks, 3);
}

#[test]
fn dashes_in_the_body_survive() {
    let (mut a, mut b) = pair();
    let mut msg = b"-------\r\nfirst line\r\n-------\r\n-------abcd$\r\n".to_vec();
    msg.extend(b"\r\n-------".repeat(500));
    let id = b
        .send_message(&a.path(), "text/plain", &msg, 2048, false, "yes")
        .unwrap();
    let got = a.recv_message(WAIT).expect("message");
    assert_eq!(got.body, msg);
    assert_eq!(b.wait_response(&id, WAIT), Some(200));
}

#[test]
fn empty_send_binds_and_is_no_message() {
    let (mut a, mut b) = pair();
    let id = b.send_message(&a.path(), "", b"", 2048, false, "").unwrap();
    assert!(a.recv_message(QUIET).is_none());
    assert_eq!(b.wait_response(&id, WAIT), Some(200));
}

#[test]
fn reports_recorded_not_answered() {
    let (mut a, mut b) = pair();
    let report = format!(
        "MSRP rep1 REPORT\r\nTo-Path: {}\r\nFrom-Path: {}\r\nMessage-ID: abcd\r\n\
         Byte-Range: 1-10/10\r\nStatus: 000 200 OK\r\n-------rep1$\r\n",
        a.path(),
        b.path()
    );
    b.send_bytes(report.as_bytes()).unwrap();
    let r = a.wait_report("abcd", WAIT).expect("report");
    assert_eq!((r.namespace, r.code), (0, 200));
    assert_eq!(r.byte_range.as_deref(), Some("1-10/10"));
    assert_eq!(a.reports().len(), 1);
    assert_eq!(b.recv_frame(QUIET), None);
}

#[test]
fn failure_report_no_gets_no_response() {
    let (mut a, mut b) = pair();
    b.send_message(&a.path(), "text/plain", b"quiet", 2048, false, "no")
        .unwrap();
    assert_eq!(a.recv_message(WAIT).expect("message").body, b"quiet");
    assert_eq!(b.recv_frame(QUIET), None);
}

#[test]
fn errors_answered() {
    let (mut a, mut b) = pair();
    let unknown = format!(
        "MSRP unk1 FOO\r\nTo-Path: {}\r\nFrom-Path: {}\r\n-------unk1$\r\n",
        a.path(),
        b.path()
    );
    b.send_bytes(unknown.as_bytes()).unwrap();
    assert!(a.recv_message(QUIET).is_none());
    assert_eq!(b.wait_response("unk1", WAIT), Some(501));

    let id = b
        .send_message(
            "msrp://127.0.0.1:1/wrongsession;tcp",
            "text/plain",
            b"x",
            2048,
            false,
            "",
        )
        .unwrap();
    assert!(a.recv_message(QUIET).is_none());
    assert_eq!(b.wait_response(&id, WAIT), Some(481));

    a.set_reply_code(413);
    let id = b
        .send_message(&a.path(), "text/plain", b"x", 2048, false, "")
        .unwrap();
    assert!(a.recv_message(QUIET).is_none());
    assert_eq!(b.wait_response(&id, WAIT), Some(413));
}

#[test]
fn bad_frames_dropped_and_abort_seen() {
    let (mut a, mut b) = pair();
    // Frames fine but not valid (no To-Path; body without Content-Type): dropped.
    b.send_bytes(b"MSRP bad1 SEND\r\nFrom-Path: msrp://h:1/x;tcp\r\n-------bad1$\r\n")
        .unwrap();
    let no_type = format!(
        "MSRP bad2 SEND\r\nTo-Path: {}\r\nFrom-Path: {}\r\nMessage-ID: m123\r\n\r\nbody\r\n-------bad2$\r\n",
        a.path(),
        b.path()
    );
    b.send_bytes(no_type.as_bytes()).unwrap();
    let aborted = write_chunk(&Chunk {
        transaction_id: "abt1",
        to_path: &a.path(),
        from_path: &b.path(),
        message_id: "gone",
        start: 1,
        total: 100,
        content_type: "text/plain",
        body: b"half",
        flag: Flag::Abort,
        success_report: false,
        failure_report: "",
    });
    b.send_bytes(&aborted).unwrap();
    b.send_message(&a.path(), "text/plain", b"after", 2048, false, "")
        .unwrap();
    assert_eq!(a.recv_message(WAIT).expect("message").body, b"after");
    assert_eq!(a.dropped_frames(), 2);
    assert_eq!(a.aborted(), ["gone".to_owned()]);
}

#[test]
fn close_is_seen() {
    let (mut a, mut b) = pair();
    assert!(a.is_connected());
    a.close();
    assert!(!a.is_connected());
    assert!(b.wait_closed(WAIT));
    assert!(b.send_bytes(b"x").is_err());

    let (mut a, mut b) = pair();
    b.reset();
    assert!(a.wait_closed(WAIT));
    let mut lonely = MsrpPeer::listen().unwrap();
    assert!(lonely.accept(QUIET).is_err());
    assert!(lonely.recv_message(QUIET).is_none());
}
