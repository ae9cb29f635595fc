use super::*;
use crate::peer::sdp;

const WAIT: Duration = Duration::from_secs(5);
/// Long enough for a datagram on loopback to have arrived, when checking that none did.
const QUIET: Duration = Duration::from_millis(200);

#[test]
fn message_answered_and_response_seen() {
    let mut a = SipUa::bind().unwrap();
    let mut b = SipUa::bind().unwrap();
    let mut spec = MessageSpec::text(&a.uri("alice"), &b.uri("bob"), "hello bob");
    spec.headers.push(("X-Test".into(), "1".into()));
    let h = a.send_message(b.addr(), &spec).unwrap();

    let req = b.wait_request("MESSAGE", WAIT).expect("MESSAGE");
    assert_eq!(req.transport, Transport::Udp);
    assert_eq!(req.source, a.addr());
    assert_eq!(req.body_text(), "hello bob");
    assert_eq!(req.content_type().as_deref(), Some("text/plain"));
    assert_eq!(req.request_uri(), Some(b.uri("bob")));
    assert_eq!(req.from_uri(), Some(a.uri("alice")));
    assert_eq!(req.to_uri(), Some(b.uri("bob")));
    assert_eq!(req.from_tag().as_deref(), Some(h.from_tag.as_str()));
    assert_eq!(req.to_tag(), None);
    assert_eq!(req.call_id(), Some(h.call_id.clone()));
    assert_eq!(req.cseq(), Some((h.cseq, "MESSAGE".to_owned())));
    assert_eq!(req.header("x-test").as_deref(), Some("1"));
    assert_eq!(req.header("Max-Forwards").as_deref(), Some("70"));
    assert!(req.branch().unwrap().starts_with("z9hG4bK"));
    // The parser's own strict check: what we write is well-formed.
    assert_eq!(req.with_message(|m| m.validate()), Some(Ok(())));

    let tag = b.respond(&req, 200, "OK", &[], None).unwrap().unwrap();
    let resp = a.wait_response(&h.call_id, WAIT).expect("response");
    assert_eq!(resp.status(), Some(200));
    assert_eq!(resp.reason().as_deref(), Some("OK"));
    assert_eq!(resp.to_tag(), Some(tag));
    assert_eq!(resp.from_tag(), Some(h.from_tag.clone()));
    assert_eq!(resp.cseq(), Some((h.cseq, "MESSAGE".to_owned())));
    assert_eq!(resp.branch(), Some(h.branch.clone()));
    assert_eq!(resp.with_message(|m| m.validate()), Some(Ok(())));
}

#[test]
fn retransmission_delivered_once_and_answered_again() {
    let mut a = SipUa::bind().unwrap();
    let mut b = SipUa::bind().unwrap();
    let spec = MessageSpec::text(&a.uri("alice"), &b.uri("bob"), "once");
    let h = a.send_message(b.addr(), &spec).unwrap();
    let req = b.wait_request("MESSAGE", WAIT).unwrap();
    b.respond(&req, 202, "Accepted", &[], None).unwrap();
    let first = a.wait_response(&h.call_id, WAIT).unwrap();

    a.retransmit(&h).unwrap();
    assert!(b.recv(QUIET).is_none(), "a retransmission is not delivered");
    assert_eq!(b.absorbed_retransmissions(), 1);
    let again = a
        .wait_response(&h.call_id, WAIT)
        .expect("response sent again");
    assert_eq!(again.bytes, first.bytes);

    // Absorbing off: the test sees every copy.
    b.set_absorb_retransmissions(false);
    a.retransmit(&h).unwrap();
    let copy = b.wait_request("MESSAGE", WAIT).unwrap();
    assert_eq!(copy.bytes, req.bytes);
}

#[test]
fn invite_ok_ack_bye() {
    let mut a = SipUa::bind().unwrap();
    let mut b = SipUa::bind().unwrap();
    let offer = sdp::offer(4000, "msrp://127.0.0.1:4000/aaaa1111;tcp", "text/plain");
    let inv = a
        .send_invite(
            b.addr(),
            &InviteSpec {
                ruri: b.uri("bob"),
                from: a.uri("alice"),
                to: b.uri("bob"),
                sdp: offer.clone().into_bytes(),
                ..InviteSpec::default()
            },
        )
        .unwrap();

    let got = b.wait_request("INVITE", WAIT).expect("INVITE");
    assert_eq!(got.body(), offer.as_bytes());
    assert_eq!(got.content_type().as_deref(), Some("application/sdp"));
    assert_eq!(got.contact_uri(), Some(format!("sip:{}", a.addr())));
    b.respond(&got, 100, "Trying", &[], None).unwrap();
    let answer = sdp::answer(
        "msrp://127.0.0.1:5000/bbbb2222;tcp",
        "text/plain",
        "passive",
    );
    let mut db = b.answer_invite_with_sdp(&got, answer.as_bytes()).unwrap();

    let ok = a.wait_final(&inv.call_id, WAIT).expect("200");
    assert_eq!(ok.status(), Some(200));
    assert_eq!(
        sdp::read_path(ok.body()).as_deref(),
        Some("msrp://127.0.0.1:5000/bbbb2222;tcp")
    );
    assert_eq!(ok.to_tag().as_deref(), Some(db.local_tag.as_str()));
    let mut da = a.ack(&inv, &ok).unwrap();
    assert_eq!(da.remote_target, format!("sip:{}", b.addr()));
    assert_eq!(da.next_hop, b.addr());
    assert_eq!(db.next_hop, a.addr());

    let ack = b.wait_request("ACK", WAIT).expect("ACK");
    assert_eq!(ack.cseq(), Some((inv.cseq, "ACK".to_owned())));
    assert_eq!(ack.request_uri(), Some(format!("sip:{}", b.addr())));
    assert_eq!(ack.to_tag(), Some(db.local_tag.clone()));
    assert_eq!(ack.from_tag(), Some(inv.from_tag.clone()));
    assert_ne!(ack.branch(), Some(inv.branch.clone()));

    // The callee's side of the dialog works too: a MESSAGE in it.
    let m = b
        .request_in_dialog(&mut db, "MESSAGE", &[], Some(("text/plain", b"hi")))
        .unwrap();
    let got_m = a.wait_request("MESSAGE", WAIT).expect("in-dialog MESSAGE");
    assert_eq!(got_m.from_tag(), Some(db.local_tag.clone()));
    assert_eq!(got_m.to_tag(), Some(da.local_tag.clone()));
    assert_eq!(got_m.request_uri(), Some(format!("sip:{}", a.addr())));
    assert_eq!(got_m.cseq(), Some((1, "MESSAGE".to_owned())));
    a.ok(&got_m).unwrap();
    assert_eq!(
        b.wait_final(&m.call_id, WAIT).and_then(|r| r.status()),
        Some(200)
    );

    let bye = a.bye(&mut da).unwrap();
    let got_bye = b.wait_request("BYE", WAIT).expect("BYE");
    assert_eq!(got_bye.cseq(), Some((inv.cseq + 1, "BYE".to_owned())));
    assert_eq!(got_bye.call_id(), Some(inv.call_id.clone()));
    assert_eq!(got_bye.to_tag(), Some(db.local_tag.clone()));
    b.ok(&got_bye).unwrap();
    let done = a.wait_final(&bye.call_id, WAIT).expect("200 to BYE");
    assert_eq!(done.cseq(), Some((inv.cseq + 1, "BYE".to_owned())));
}

#[test]
fn failure_to_invite_is_acked_in_its_transaction() {
    let mut a = SipUa::bind().unwrap();
    let mut b = SipUa::bind().unwrap();
    let spec = InviteSpec {
        ruri: b.uri("bob"),
        from: a.uri("alice"),
        to: b.uri("bob"),
        ..InviteSpec::default()
    };
    let inv = a.send_invite(b.addr(), &spec).unwrap();
    let got = b.wait_request("INVITE", WAIT).unwrap();
    b.respond(&got, 486, "Busy Here", &[], None).unwrap();
    let busy = a.wait_final(&inv.call_id, WAIT).unwrap();
    assert!(a.ack(&inv, &busy).is_err());
    a.ack_failure(&inv, &busy).unwrap();
    let ack = b.wait_request("ACK", WAIT).unwrap();
    assert_eq!(ack.branch(), Some(inv.branch.clone()));
    assert_eq!(ack.to_tag(), busy.to_tag());
}

#[test]
fn tcp_both_ways_and_skipped_messages_kept() {
    let mut a = SipUa::bind().unwrap();
    let mut b = SipUa::bind().unwrap();
    let mut body = String::new();
    while body.len() < 5000 {
        body.push_str("line of text\r\n-------\r\n");
    }
    let opt = MessageSpec {
        ruri: b.uri("bob"),
        from: a.uri("alice"),
        to: b.uri("bob"),
        ..MessageSpec::default()
    };
    a.send_request(b.addr(), true, "OPTIONS", &opt).unwrap();
    let h = a
        .send_message_tcp(
            b.addr(),
            &MessageSpec::text(&a.uri("a"), &b.uri("b"), &body),
        )
        .unwrap();
    assert!(matches!(h.transport, Transport::Tcp(_)));

    let req = b.wait_request("MESSAGE", WAIT).expect("MESSAGE over TCP");
    assert!(matches!(req.transport, Transport::Tcp(_)));
    assert_eq!(req.body_text(), body);
    assert!(req.header("Via").unwrap().starts_with("SIP/2.0/TCP "));
    b.ok(&req).unwrap();
    let resp = a
        .wait_response(&h.call_id, WAIT)
        .expect("response over TCP");
    assert_eq!(resp.transport, h.transport);
    assert_eq!(resp.status(), Some(200));

    // The OPTIONS read past on the way is still there.
    let options = b.recv(WAIT).expect("OPTIONS kept");
    assert_eq!(options.method().as_deref(), Some("OPTIONS"));
}

#[test]
fn bad_input_is_skipped() {
    let mut b = SipUa::bind().unwrap();
    let mut a = SipUa::bind().unwrap();
    let raw = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    for junk in [
        &b"\r\n\r\n"[..],
        b"garbage",
        b"MESSAGE sip:x SIP/2.0\r\nCSeq: one MESSAGE\r\n\r\n",
        b"",
    ] {
        raw.send_to(junk, b.addr()).unwrap();
    }
    // A TCP stream that cannot be framed (no Content-Length) is dropped.
    let mut t = TcpStream::connect(b.addr()).unwrap();
    t.write_all(b"MESSAGE sip:x SIP/2.0\r\nVia: SIP/2.0/TCP h\r\n\r\nabc")
        .unwrap();
    assert!(b.recv(QUIET).is_none());
    let h = a
        .send_message(b.addr(), &MessageSpec::text(&a.uri("a"), &b.uri("b"), "ok"))
        .unwrap();
    let m = b.recv(WAIT).expect("a good message after the junk");
    assert_eq!(m.call_id(), Some(h.call_id));
    let mut rest = Vec::new();
    t.set_read_timeout(Some(WAIT)).unwrap();
    assert_eq!(t.read_to_end(&mut rest).unwrap(), 0, "connection closed");
}
