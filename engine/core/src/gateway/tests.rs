//! The gateway's flows end to end through the shard core, on the harness (no sockets, a
//! virtual clock): both directions, the status mappings, the timers, and sessions meeting on
//! their owner shard.

use crate::shard::harness::{Dest, Harness, Sent, HARNESS_MSRP};
use crate::transport::MsrpConn;
use sipshard_parser::msrp::{self as pmsrp, StartLine};
use sipshard_parser::sip::{self, Framing, EMPTY_HEADER};
use sipshard_parser::Status;
use std::net::SocketAddr;

pub(crate) const CONFIG: &str = r#"
[gateway]
msrp_listen = ["192.0.2.1:2855"]

[route.request]
[[route.request.rules]]
match = { method = "INVITE" }
actions = [ { msrp_answer = { key = "$tu|$fu", content_types = "text/plain", from = "$fu", to = "$tu", ruri = "$ru" } } ]
[[route.request.rules]]
match = { method = "MESSAGE", header_present = "X-Sync" }
actions = [ { msg_to_msrp = { key = "$fu|$tu", content_types = "text/plain", mode = "sync" } } ]
[[route.request.rules]]
match = { method = "MESSAGE" }
actions = [ { msg_to_msrp = { key = "$fu|$tu", content_types = "text/plain" } } ]
[[route.request.rules]]
actions = [ { reply = { code = 405, reason = "Method Not Allowed" } } ]

[route."gw:setup_failed"]
rules = [ { actions = [ { send_message = { ruri = "$gw(from_uri)", from = "$gw(to_uri)", to = "$gw(from_uri)", body = "not delivered: $gw(code) $gw(reason)" } } ] } ]
"#;

pub(crate) const ALICE: &str = "198.51.100.1:5060";
pub(crate) const BOB: &str = "198.51.100.2:5060";
pub(crate) const BOB_MSRP: &str = "198.51.100.2:7000";

pub(crate) fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A MESSAGE from alice to bob (at his address), with `extra` header lines.
pub(crate) fn message(call_id: &str, body: &str, extra: &str) -> Vec<u8> {
    format!(
        "MESSAGE sip:bob@{BOB} SIP/2.0\r\nVia: SIP/2.0/UDP {ALICE};branch=z9hG4bK{call_id}\r\n\
Max-Forwards: 70\r\nFrom: <sip:alice@{ALICE}>;tag=a{call_id}\r\nTo: <sip:bob@{BOB}>\r\n\
Call-ID: {call_id}\r\nCSeq: 1 MESSAGE\r\n{extra}Content-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// What the far side's UA answers to a request: Via, From, To (+ tag), Call-ID, CSeq copied.
pub(crate) fn answer(req: &[u8], code: u16, tag: &str, extra: &str, body: &[u8]) -> Vec<u8> {
    let mut h = [EMPTY_HEADER; 64];
    let m = sip::parse(req, &mut h, Framing::Datagram)
        .unwrap()
        .complete()
        .unwrap();
    let mut out = format!("SIP/2.0 {code} Whatever\r\n").into_bytes();
    for hd in m.headers() {
        let name = String::from_utf8_lossy(hd.name);
        let lname = name.to_ascii_lowercase();
        if ["via", "from", "call-id", "cseq"].contains(&lname.as_str()) {
            out.extend_from_slice(format!("{name}: ").as_bytes());
            out.extend_from_slice(hd.value);
            out.extend_from_slice(b"\r\n");
        } else if lname == "to" {
            out.extend_from_slice(b"To: ");
            out.extend_from_slice(hd.value);
            if !tag.is_empty() && m.to_tag().is_none() {
                out.extend_from_slice(format!(";tag={tag}").as_bytes());
            }
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(extra.as_bytes());
    if body.is_empty() {
        out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    } else {
        out.extend_from_slice(
            format!(
                "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        );
        out.extend_from_slice(body);
    }
    out
}

pub(crate) fn sdp(path: &str, setup: &str, types: &str) -> Vec<u8> {
    format!(
        "v=0\r\no=- 1 1 IN IP4 198.51.100.2\r\ns=-\r\nc=IN IP4 198.51.100.2\r\nt=0 0\r\n\
m=message 7000 TCP/MSRP *\r\na=accept-types:{types}\r\na=path:{path}\r\na=setup:{setup}\r\n"
    )
    .into_bytes()
}

pub(crate) fn method(s: &Sent) -> Option<String> {
    let mut h = [EMPTY_HEADER; 64];
    let m = sip::parse(&s.bytes, &mut h, Framing::Datagram)
        .ok()?
        .complete()?;
    m.method().map(|m| String::from_utf8_lossy(m).into_owned())
}

pub(crate) fn find<'a>(sent: &'a [Sent], what: &str) -> Vec<&'a Sent> {
    sent.iter()
        .filter(|s| match what.parse::<u16>() {
            Ok(code) => s.status() == Some(code),
            Err(_) => method(s).as_deref() == Some(what),
        })
        .collect()
}

pub(crate) fn body(s: &Sent) -> Vec<u8> {
    let mut h = [EMPTY_HEADER; 64];
    let m = sip::parse(&s.bytes, &mut h, Framing::Datagram)
        .unwrap()
        .complete()
        .unwrap();
    m.body().to_vec()
}

/// The MSRP frames of what was sent on `conn`, split.
pub(crate) fn frames_on(sent: &[Sent], conn: MsrpConn) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for s in sent.iter().filter(|s| s.dest == Dest::Msrp(conn)) {
        let mut rest = &s.bytes[..];
        while !rest.is_empty() {
            let n = match pmsrp::frame_len(rest, &pmsrp::Limits::DEFAULT) {
                Ok(Status::Complete(n)) => n,
                other => panic!("not a whole frame: {other:?}"),
            };
            out.push(rest[..n].to_vec());
            rest = &rest[n..];
        }
    }
    out
}

pub(crate) fn with_frame<R>(bytes: &[u8], f: impl FnOnce(&pmsrp::Frame<'_, '_>) -> R) -> R {
    let mut h = [pmsrp::EMPTY_HEADER; 32];
    let frame = pmsrp::parse(bytes, &mut h, &pmsrp::Limits::DEFAULT)
        .unwrap()
        .complete()
        .unwrap();
    f(&frame)
}

/// The 200 the far side answers a SEND with.
pub(crate) fn ok_for(send: &[u8]) -> Vec<u8> {
    with_frame(send, |f| {
        let mut out = Vec::new();
        crate::msrp::write::write_response(
            f,
            200,
            b"OK",
            format!("msrp://{BOB_MSRP}/bobsess;tcp").as_bytes(),
            &mut out,
        );
        out
    })
}

pub(crate) fn is_send(frame: &[u8]) -> bool {
    with_frame(frame, |f| {
        matches!(
            f.start,
            StartLine::Request {
                method: pmsrp::Method::Send
            }
        )
    })
}

/// Alice's MESSAGE goes in; bob's UA answers the INVITE with `setup` and the gateway connects.
/// Returns the MSRP connection it opened and everything sent up to then.
pub(crate) fn set_up(h: &mut Harness, call_id: &str, extra: &str) -> (MsrpConn, Vec<Sent>) {
    h.datagram(0, addr(ALICE), &message(call_id, "hello bob", extra));
    let sent = h.take_sent();
    let invite = find(&sent, "INVITE");
    assert_eq!(invite.len(), 1, "one INVITE: {sent:#?}");
    assert_eq!(invite[0].peer(), addr(BOB));
    let path = format!("msrp://{BOB_MSRP}/bobsess;tcp");
    let ok = answer(
        &invite[0].bytes,
        200,
        "b1",
        &format!("Contact: <sip:bob@{BOB}>\r\n"),
        &sdp(&path, "passive", "text/plain"),
    );
    // The 200 may be read by any shard; it goes to the one that sent the INVITE.
    h.datagram(h.shards() - 1, addr(BOB), &ok);
    let connects = h.take_msrp_connects();
    assert_eq!(connects.len(), 1);
    assert_eq!(connects[0].1, addr(BOB_MSRP));
    let mut all = sent;
    all.extend(h.take_sent());
    (connects[0].0, all)
}

#[test]
fn a_message_sets_up_a_session_and_is_delivered_as_a_send_answered_202_at_once() {
    let mut h = Harness::new(2, CONFIG).unwrap();
    let (conn, sent) = set_up(&mut h, "m1", "");
    let accepted = find(&sent, "202");
    assert_eq!(accepted.len(), 1);
    assert_eq!(accepted[0].peer(), addr(ALICE));
    assert_eq!(find(&sent, "ACK").len(), 1, "the 2xx is ACKed");
    let frames = frames_on(&sent, conn);
    assert_eq!(frames.len(), 1, "the queued message binds the connection");
    with_frame(&frames[0], |f| {
        assert_eq!(f.body, Some(&b"hello bob"[..]));
        assert_eq!(f.content_type(), Some(&b"text/plain"[..]));
        assert_eq!(
            f.to_path().next(),
            Some(format!("msrp://{BOB_MSRP}/bobsess;tcp").as_bytes())
        );
    });
    h.msrp_frame(usize::from(conn.shard), conn, &ok_for(&frames[0]));
    let delivered: u64 = (0..2)
        .map(|i| {
            h.stats(i)
                .gw_delivered
                .load(std::sync::atomic::Ordering::Relaxed)
        })
        .sum();
    assert_eq!(delivered, 1);
    // Its delivery time, on the virtual clock (nothing advanced it), is in shard.latency.
    let lat = h
        .control(
            "shard.latency",
            serde_json::json!({ "kind": "gw_sip_to_msrp" }),
        )
        .unwrap();
    assert_eq!(lat["count"], 1, "{lat}");
    // A second MESSAGE for the same key goes straight out on the session.
    h.datagram(1, addr(ALICE), &message("m2", "again", ""));
    let sent = h.take_sent();
    assert_eq!(find(&sent, "INVITE").len(), 0);
    assert_eq!(find(&sent, "202").len(), 1);
    let frames = frames_on(&sent, conn);
    assert_eq!(frames.len(), 1);
    with_frame(&frames[0], |f| assert_eq!(f.body, Some(&b"again"[..])));
}

#[test]
fn a_sync_message_is_answered_200_only_after_the_msrp_200() {
    let mut h = Harness::new(2, CONFIG).unwrap();
    let (conn, sent) = set_up(&mut h, "s1", "X-Sync: 1\r\n");
    assert!(find(&sent, "202").is_empty() && find(&sent, "200").is_empty());
    let frames = frames_on(&sent, conn);
    // A retransmission while it is held is absorbed by the MESSAGE's transaction.
    h.datagram(0, addr(ALICE), &message("s1", "hello bob", "X-Sync: 1\r\n"));
    let sent = h.take_sent();
    assert!(sent.is_empty(), "held: nothing yet {sent:#?}");
    h.msrp_frame(usize::from(conn.shard), conn, &ok_for(&frames[0]));
    let sent = h.take_sent();
    let ok = find(&sent, "200");
    assert_eq!(ok.len(), 1, "{sent:#?}");
    assert_eq!(ok[0].peer(), addr(ALICE));
    // Answered from the transaction when retransmitted again.
    h.datagram(0, addr(ALICE), &message("s1", "hello bob", "X-Sync: 1\r\n"));
    assert_eq!(find(&h.take_sent(), "200").len(), 1);
}

#[test]
fn a_sync_message_whose_send_fails_gets_the_mapped_error() {
    let mut h = Harness::new(1, CONFIG).unwrap();
    let (conn, sent) = set_up(&mut h, "s2", "X-Sync: 1\r\n");
    let frames = frames_on(&sent, conn);
    let refused = with_frame(&frames[0], |f| {
        let mut out = Vec::new();
        crate::msrp::write::write_response(f, 415, b"Unsupported", b"msrp://x/y;tcp", &mut out);
        out
    });
    h.msrp_frame(0, conn, &refused);
    assert_eq!(find(&h.take_sent(), "415").len(), 1);
}

#[test]
fn a_retransmitted_message_is_delivered_once() {
    let mut h = Harness::new(2, CONFIG).unwrap();
    let (conn, _) = set_up(&mut h, "r1", "");
    h.datagram(1, addr(ALICE), &message("r1", "hello bob", ""));
    let sent = h.take_sent();
    assert_eq!(
        find(&sent, "202").len(),
        1,
        "answered again from its transaction"
    );
    assert!(frames_on(&sent, conn).is_empty(), "not sent twice");
}

#[test]
fn an_invite_answered_486_runs_setup_failed_and_the_sender_is_told() {
    let mut h = Harness::new(2, CONFIG).unwrap();
    h.datagram(0, addr(ALICE), &message("f1", "are you there", ""));
    let sent = h.take_sent();
    let invite = find(&sent, "INVITE")[0].bytes.clone();
    h.datagram(0, addr(BOB), &answer(&invite, 486, "b2", "", b""));
    let sent = h.take_sent();
    assert_eq!(find(&sent, "ACK").len(), 1, "the 486 is ACKed");
    let told = find(&sent, "MESSAGE");
    assert_eq!(told.len(), 1, "{sent:#?}");
    assert_eq!(told[0].peer(), addr(ALICE));
    let text = String::from_utf8(body(told[0])).unwrap();
    assert!(text.contains("486"), "{text}");
    assert_eq!(
        h.core(0).gateway_sessions() + h.core(1).gateway_sessions(),
        0
    );
}

#[test]
fn a_sync_message_whose_invite_fails_gets_its_code_and_407_becomes_500() {
    for (code, want) in [(486u16, 486u16), (407, 500), (404, 404)] {
        let mut h = Harness::new(1, CONFIG).unwrap();
        h.datagram(0, addr(ALICE), &message("f2", "x", "X-Sync: 1\r\n"));
        let invite = find(&h.take_sent(), "INVITE")[0].bytes.clone();
        h.datagram(0, addr(BOB), &answer(&invite, code, "b", "", b""));
        assert_eq!(find(&h.take_sent(), &want.to_string()).len(), 1, "{code}");
    }
}

#[test]
fn an_answer_without_a_common_type_gets_ack_then_bye_and_the_messages_fail() {
    let mut h = Harness::new(1, CONFIG).unwrap();
    h.datagram(0, addr(ALICE), &message("n1", "x", "X-Sync: 1\r\n"));
    let invite = find(&h.take_sent(), "INVITE")[0].bytes.clone();
    let path = format!("msrp://{BOB_MSRP}/bobsess;tcp");
    let ok = answer(
        &invite,
        200,
        "b3",
        &format!("Contact: <sip:bob@{BOB}>\r\n"),
        &sdp(&path, "passive", "image/png"),
    );
    h.datagram(0, addr(BOB), &ok);
    let sent = h.take_sent();
    let (ack, bye) = (find(&sent, "ACK"), find(&sent, "BYE"));
    assert_eq!((ack.len(), bye.len()), (1, 1), "{sent:#?}");
    let pos = |s: &Sent| sent.iter().position(|x| std::ptr::eq(x, s)).unwrap();
    assert!(pos(ack[0]) < pos(bye[0]));
    assert_eq!(find(&sent, "488").len(), 1, "the held MESSAGE gets 488");
    assert!(h.take_msrp_connects().is_empty());
}

#[test]
fn the_connection_closing_sends_bye_and_reports_the_queue() {
    let mut h = Harness::new(2, CONFIG).unwrap();
    let (conn, sent) = set_up(&mut h, "c1", "");
    // The far side answers the first SEND: the connection works.
    let first = frames_on(&sent, conn);
    h.msrp_frame(usize::from(conn.shard), conn, &ok_for(&first[0]));
    // A sync message in flight when the connection goes.
    h.datagram(0, addr(ALICE), &message("c2", "in flight", "X-Sync: 1\r\n"));
    h.take_sent();
    h.msrp_closed(conn);
    let sent = h.take_sent();
    assert_eq!(find(&sent, "BYE").len(), 1, "{sent:#?}");
    assert_eq!(find(&sent, "480").len(), 1, "the held MESSAGE: 480");
    assert_eq!(
        h.core(0).gateway_sessions() + h.core(1).gateway_sessions(),
        0
    );
}

#[test]
fn a_long_message_goes_out_in_chunks_with_range_end_star() {
    let mut h = Harness::new(1, CONFIG).unwrap();
    let (conn, _) = set_up(&mut h, "l1", "");
    let long: String = (0..10_240)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    h.datagram(0, addr(ALICE), &message("l2", &long, ""));
    let frames = frames_on(&h.take_sent(), conn);
    assert_eq!(frames.len(), 5);
    let mut got = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        with_frame(f, |f| {
            let r = f.byte_range().unwrap().unwrap();
            assert_eq!(r.start, got.len() as u64 + 1);
            assert_eq!(r.end, None, "range end *");
            assert_eq!(r.total, Some(10_240));
            assert_eq!(
                f.flag,
                if i == 4 {
                    pmsrp::Flag::Complete
                } else {
                    pmsrp::Flag::More
                }
            );
            got.extend_from_slice(f.body.unwrap());
        });
    }
    assert_eq!(got, long.as_bytes());
}

/// An INVITE from carol (MSRP user) to dave, read by shard `shard`.
pub(crate) fn carol_invite(shard: usize, h: &mut Harness, setup: &str) -> Vec<u8> {
    let offer = String::from_utf8(sdp(
        "msrp://198.51.100.3:7777/carolsess;tcp",
        setup,
        "text/plain text/html",
    ))
    .unwrap();
    let inv = format!(
        "INVITE sip:dave@{BOB} SIP/2.0\r\nVia: SIP/2.0/UDP 198.51.100.3:5060;branch=z9hG4bKinv1\r\n\
Max-Forwards: 70\r\nFrom: <sip:carol@198.51.100.3>;tag=c1\r\nTo: <sip:dave@{BOB}>\r\n\
Call-ID: inv-carol-1\r\nCSeq: 1 INVITE\r\nContact: <sip:carol@198.51.100.3:5060>\r\n\
Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{offer}",
        offer.len()
    );
    h.datagram(shard, addr("198.51.100.3:5060"), inv.as_bytes());
    inv.into_bytes()
}

fn our_path(ok: &Sent) -> String {
    let b = body(ok);
    let text = String::from_utf8(b).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("a=path:"))
        .unwrap()
        .trim()
        .to_owned()
}

fn send_frame(
    tid: &str,
    to: &str,
    msg_id: &str,
    range: &str,
    flag: char,
    body: &str,
    extra: &str,
) -> Vec<u8> {
    format!(
        "MSRP {tid} SEND\r\nTo-Path: {to}\r\nFrom-Path: msrp://198.51.100.3:7777/carolsess;tcp\r\n\
Message-ID: {msg_id}\r\nByte-Range: {range}\r\n{extra}Content-Type: text/plain\r\n\r\n{body}\r\n-------{tid}{flag}\r\n"
    )
    .into_bytes()
}

#[test]
fn an_msrp_users_sends_become_messages_and_the_sip_answer_is_reported() {
    let mut h = Harness::new(2, CONFIG).unwrap();
    let inv = carol_invite(0, &mut h, "actpass");
    let sent = h.take_sent();
    let ok = find(&sent, "200");
    assert_eq!(ok.len(), 1, "{sent:#?}");
    let ok = ok[0].clone();
    let path = our_path(&ok);
    assert!(String::from_utf8(body(&ok))
        .unwrap()
        .contains("a=setup:passive"));
    // Carol ACKs (to whichever shard); the gateway stops retransmitting its 200.
    let tag = ok.header("To").unwrap();
    let tag = tag.split("tag=").nth(1).unwrap().to_owned();
    let ack = format!(
        "ACK sip:dave@{BOB} SIP/2.0\r\nVia: SIP/2.0/UDP 198.51.100.3:5060;branch=z9hG4bKack1\r\n\
Max-Forwards: 70\r\nFrom: <sip:carol@198.51.100.3>;tag=c1\r\nTo: <sip:dave@{BOB}>;tag={tag}\r\n\
Call-ID: inv-carol-1\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
    );
    h.datagram(1, addr("198.51.100.3:5060"), ack.as_bytes());
    h.advance(5_000);
    assert!(
        find(&h.take_sent(), "200").is_empty(),
        "no 2xx retransmission after the ACK"
    );
    let _ = inv;
    // Carol connects (to shard 1) and sends, asking for a success report.
    let conn = MsrpConn { shard: 1, id: 77 };
    h.msrp_frame(
        1,
        conn,
        &send_frame(
            "tx01",
            &path,
            "msg00001",
            "1-5/5",
            '$',
            "hi d!",
            "Success-Report: yes\r\n",
        ),
    );
    let sent = h.take_sent();
    let frames = frames_on(&sent, conn);
    assert_eq!(frames.len(), 1, "the SEND's 200 {sent:#?}");
    with_frame(&frames[0], |f| assert_eq!(f.code(), Some(200)));
    let msg = find(&sent, "MESSAGE");
    assert_eq!(msg.len(), 1);
    assert_eq!(msg[0].peer(), addr(BOB), "to the R-URI the route gave");
    assert_eq!(body(msg[0]), b"hi d!");
    assert!(msg[0]
        .header("From")
        .unwrap()
        .contains("sip:carol@198.51.100.3"));
    // Dave's UA accepts it: a success REPORT goes back, as asked.
    h.datagram(0, addr(BOB), &answer(&msg[0].bytes, 200, "d", "", b""));
    let frames = frames_on(&h.take_sent(), conn);
    assert_eq!(frames.len(), 1);
    with_frame(&frames[0], |f| {
        assert!(matches!(
            f.start,
            StartLine::Request {
                method: pmsrp::Method::Report
            }
        ));
        assert_eq!(f.status().unwrap().unwrap().code, 200);
    });
}

#[test]
fn a_message_answered_404_is_a_failure_report_000_404() {
    let mut h = Harness::new(2, CONFIG).unwrap();
    carol_invite(1, &mut h, "actpass");
    let path = our_path(find(&h.take_sent(), "200")[0]);
    let conn = MsrpConn { shard: 0, id: 5 };
    h.msrp_frame(
        0,
        conn,
        &send_frame("tx01", &path, "msg00009", "1-3/3", '$', "yo!", ""),
    );
    let msg = find(&h.take_sent(), "MESSAGE")[0].bytes.clone();
    h.datagram(1, addr(BOB), &answer(&msg, 404, "d", "", b""));
    let frames = frames_on(&h.take_sent(), conn);
    assert_eq!(frames.len(), 1);
    with_frame(&frames[0], |f| {
        let st = f.status().unwrap().unwrap();
        assert_eq!((st.namespace, st.code), (0, 404));
        assert_eq!(f.message_id(), Some(&b"msg00009"[..]));
    });
}

#[test]
fn interleaved_chunks_of_two_messages_become_two_whole_messages() {
    let mut h = Harness::new(1, CONFIG).unwrap();
    carol_invite(0, &mut h, "actpass");
    let path = our_path(find(&h.take_sent(), "200")[0]);
    let conn = MsrpConn { shard: 0, id: 9 };
    for f in [
        send_frame("txa1", &path, "msgA0001", "1-4/8", '+', "AAAA", ""),
        send_frame("txb1", &path, "msgB0001", "1-3/6", '+', "bbb", ""),
        send_frame("txa2", &path, "msgA0001", "5-8/8", '$', "aaaa", ""),
        send_frame("txb2", &path, "msgB0001", "4-6/6", '$', "BBB", ""),
    ] {
        h.msrp_frame(0, conn, &f);
    }
    let sent = h.take_sent();
    let bodies: Vec<Vec<u8>> = find(&sent, "MESSAGE").into_iter().map(body).collect();
    assert_eq!(bodies, vec![b"AAAAaaaa".to_vec(), b"bbbBBB".to_vec()]);
}

#[test]
fn a_message_and_a_send_for_one_session_meet_on_its_owner() {
    // Dave (SIP) writes back to carol: key dave|carol is the key of carol's session.
    for shards in [1usize, 2, 3] {
        let mut h = Harness::new(shards, CONFIG).unwrap();
        carol_invite(0, &mut h, "actpass");
        let path = our_path(find(&h.take_sent(), "200")[0]);
        let conn = MsrpConn {
            shard: (shards - 1) as u16,
            id: 1,
        };
        // Carol binds with an empty SEND.
        h.msrp_frame(shards - 1, conn, format!("MSRP txe1 SEND\r\nTo-Path: {path}\r\nFrom-Path: msrp://198.51.100.3:7777/carolsess;tcp\r\nMessage-ID: empty001\r\nByte-Range: 1-0/0\r\n-------txe1$\r\n").as_bytes());
        h.take_sent();
        let from_dave = format!(
            "MESSAGE sip:carol@198.51.100.3 SIP/2.0\r\nVia: SIP/2.0/UDP {BOB};branch=z9hG4bKd1\r\n\
Max-Forwards: 70\r\nFrom: <sip:dave@{BOB}>;tag=d1\r\nTo: <sip:carol@198.51.100.3>\r\n\
Call-ID: dave-1\r\nCSeq: 1 MESSAGE\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"
        );
        for reader in 0..shards {
            h.datagram(
                reader,
                addr(BOB),
                from_dave
                    .replace("dave-1", &format!("dave-1-{reader}"))
                    .replace("z9hG4bKd1", &format!("z9hG4bKd1{reader}"))
                    .as_bytes(),
            );
            let sent = h.take_sent();
            assert_eq!(find(&sent, "INVITE").len(), 0, "no second session");
            let frames = frames_on(&sent, conn);
            assert_eq!(frames.len(), 1, "{shards} shards, read by {reader}");
            assert!(is_send(&frames[0]));
        }
    }
}

#[test]
fn setup_and_sync_deadlines_answer_408() {
    let mut h = Harness::new(1, CONFIG).unwrap();
    h.datagram(0, addr(ALICE), &message("t1", "x", "X-Sync: 1\r\n"));
    let invite = find(&h.take_sent(), "INVITE")[0].bytes.clone();
    // Bob's UA rings (180) and never answers.
    h.datagram(0, addr(BOB), &answer(&invite, 180, "b", "", b""));
    h.advance(29_999);
    assert!(find(&h.take_sent(), "408").is_empty());
    h.advance(1);
    let sent = h.take_sent();
    assert_eq!(
        find(&sent, "408").len(),
        1,
        "sync_timeout (30 s): {sent:#?}"
    );
    h.advance(2_000);
    let sent = h.take_sent();
    assert_eq!(
        find(&sent, "CANCEL").len(),
        1,
        "setup_timeout (32 s) cancels the INVITE"
    );
    assert_eq!(h.core(0).gateway_sessions(), 0);
}

#[test]
fn a_bye_from_the_far_side_ends_the_session() {
    let mut h = Harness::new(2, CONFIG).unwrap();
    let (_, sent) = set_up(&mut h, "b1", "");
    let invite = find(&sent, "INVITE")[0].bytes.clone();
    let mut hd = [EMPTY_HEADER; 64];
    let inv = sip::parse(&invite, &mut hd, Framing::Datagram)
        .unwrap()
        .complete()
        .unwrap();
    let call_id = String::from_utf8_lossy(inv.call_id().unwrap()).into_owned();
    let from_tag = String::from_utf8_lossy(inv.from_tag().unwrap()).into_owned();
    let bye = format!(
        "BYE sip:gw@192.0.2.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {BOB};branch=z9hG4bKbye1\r\nMax-Forwards: 70\r\n\
From: <sip:bob@{BOB}>;tag=b1\r\nTo: <sip:alice@{ALICE}>;tag={from_tag}\r\nCall-ID: {call_id}\r\n\
CSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
    );
    h.datagram(0, addr(BOB), bye.as_bytes());
    let sent = h.take_sent();
    assert_eq!(find(&sent, "200").len(), 1);
    assert_eq!(find(&sent, "BYE").len(), 0, "no BYE back");
    assert_eq!(h.take_msrp_closes().len(), 1, "our connection closes");
    assert_eq!(
        h.core(0).gateway_sessions() + h.core(1).gateway_sessions(),
        0
    );
}

#[test]
fn sessions_are_listed_with_every_field_and_ended_by_control() {
    let mut h = Harness::new(2, CONFIG).unwrap();
    set_up(&mut h, "g1", "");
    let list = h
        .control("gw.list_sessions", serde_json::json!({}))
        .unwrap();
    let s = &list["sessions"][0];
    for k in [
        "key",
        "from",
        "to",
        "ruri",
        "state",
        "created_s_ago",
        "sip_idle_s",
        "msrp_idle_s",
        "queued",
        "msrp_session_id",
        "connection",
        "owner_shard",
    ] {
        assert!(!s[k].is_null(), "{k} in {s}");
    }
    assert_eq!(s["state"], "up");
    let key = s["key"].as_str().unwrap().to_owned();
    let r = h
        .control("gw.end_session", serde_json::json!({ "key": key }))
        .unwrap();
    assert_eq!(r["ended"], true);
    assert_eq!(find(&h.take_sent(), "BYE").len(), 1);
    let stats = h.control("gw.stats", serde_json::json!({})).unwrap();
    assert_eq!(stats["sessions"], 0);
}

#[test]
fn harness_msrp_address_is_what_the_offer_names() {
    let mut h = Harness::new(1, CONFIG).unwrap();
    h.datagram(0, addr(ALICE), &message("o1", "x", ""));
    let invite = find(&h.take_sent(), "INVITE")[0].clone();
    let text = String::from_utf8(body(&invite)).unwrap();
    assert!(
        text.contains(&format!("a=path:msrp://{HARNESS_MSRP}/")),
        "{text}"
    );
    assert!(text.contains("a=setup:actpass"));
    assert!(text.contains("m=message 2855 TCP/MSRP *"));
}

#[test]
fn a_request_uri_with_a_name_waits_for_the_resolver() {
    let mut h = Harness::new(2, CONFIG).unwrap();
    let msg = String::from_utf8(message("n1", "by name", ""))
        .unwrap()
        .replacen(
            &format!("MESSAGE sip:bob@{BOB} "),
            "MESSAGE sip:bob@bob.example ",
            1,
        );
    h.datagram(0, addr(ALICE), msg.as_bytes());
    let sent = h.take_sent();
    assert_eq!(find(&sent, "202").len(), 1);
    assert!(
        find(&sent, "INVITE").is_empty(),
        "nothing leaves before the name resolves"
    );
    let asked = h.take_resolves();
    assert_eq!(asked.len(), 1);
    let (shard, name, port) = asked[0].clone();
    assert_eq!((name.as_str(), port), ("bob.example", None));
    h.resolved(shard, &name, port, &[addr(BOB)]);
    let invite = find(&h.take_sent(), "INVITE")
        .first()
        .map(|s| (s.peer(), s.bytes.clone()))
        .expect("the INVITE, once resolved");
    assert_eq!(invite.0, addr(BOB));
    assert!(String::from_utf8_lossy(&invite.1).starts_with("INVITE sip:bob@bob.example SIP/2.0"));
    // A name that does not resolve fails the setup: gw:setup_failed tells the sender.
    let mut h = Harness::new(1, CONFIG).unwrap();
    h.datagram(0, addr(ALICE), msg.as_bytes());
    h.take_sent();
    let (shard, name, port) = h.take_resolves()[0].clone();
    h.resolved(shard, &name, port, &[]);
    let told = find(&h.take_sent(), "MESSAGE").len();
    assert_eq!(told, 1, "the sender is told");
    assert_eq!(h.core(0).gateway_sessions(), 0);
}

#[test]
fn a_connection_that_never_worked_is_a_failed_setup() {
    let mut h = Harness::new(1, CONFIG).unwrap();
    let (conn, _) = set_up(&mut h, "k1", "");
    h.msrp_closed(conn);
    let sent = h.take_sent();
    let told = find(&sent, "MESSAGE");
    assert_eq!(told.len(), 1, "gw:setup_failed tells the sender {sent:#?}");
    assert!(String::from_utf8_lossy(&body(told[0])).contains("503"));
    assert_eq!(find(&sent, "BYE").len(), 1);
}

#[test]
fn a_send_of_a_type_we_did_not_offer_gets_415() {
    let mut h = Harness::new(1, CONFIG).unwrap();
    carol_invite(0, &mut h, "actpass");
    let path = our_path(find(&h.take_sent(), "200")[0]);
    let conn = MsrpConn { shard: 0, id: 3 };
    let png = String::from_utf8(send_frame(
        "tx01", &path, "msg00001", "1-3/3", '$', "PNG", "",
    ))
    .unwrap()
    .replace("Content-Type: text/plain", "Content-Type: image/png");
    h.msrp_frame(0, conn, png.as_bytes());
    let sent = h.take_sent();
    let frames = frames_on(&sent, conn);
    assert_eq!(frames.len(), 1);
    with_frame(&frames[0], |f| assert_eq!(f.code(), Some(415)));
    assert!(find(&sent, "MESSAGE").is_empty());
}

#[test]
fn the_gateway_refuses_a_wildcard_msrp_listen_address() {
    let cfg = CONFIG.replace("192.0.2.1:2855", "0.0.0.0:2855");
    let e = Harness::new(1, &cfg).err().expect("refused").to_string();
    assert!(e.contains("wildcard"), "{e}");
}

#[test]
fn with_cpim_wrap_messages_go_wrapped_and_come_back_unwrapped() {
    let cfg = CONFIG.replace(
        "msrp_listen = [\"192.0.2.1:2855\"]",
        "msrp_listen = [\"192.0.2.1:2855\"]\ncpim = \"wrap\"",
    );
    let mut h = Harness::new(1, &cfg).unwrap();
    h.datagram(0, addr(ALICE), &message("w1", "hello bob", ""));
    let sent = h.take_sent();
    let offer = String::from_utf8(body(find(&sent, "INVITE")[0])).unwrap();
    assert!(offer.contains("a=accept-types:message/cpim\r\n"), "{offer}");
    assert!(
        offer.contains("a=accept-wrapped-types:text/plain\r\n"),
        "{offer}"
    );
    let (conn, sent) = {
        let invite = find(&sent, "INVITE")[0].bytes.clone();
        let path = format!("msrp://{BOB_MSRP}/bobsess;tcp");
        let ok = answer(
            &invite,
            200,
            "b1",
            &format!("Contact: <sip:bob@{BOB}>\r\n"),
            &sdp(&path, "passive", "message/cpim"),
        );
        h.datagram(0, addr(BOB), &ok);
        (h.take_msrp_connects()[0].0, h.take_sent())
    };
    let frames = frames_on(&sent, conn);
    with_frame(&frames[0], |f| {
        assert_eq!(f.content_type(), Some(&b"message/cpim"[..]));
        let b = String::from_utf8_lossy(f.body.unwrap()).into_owned();
        assert!(
            b.starts_with(&format!(
                "From: <sip:alice@{ALICE}>\r\nTo: <sip:bob@{BOB}>\r\n\r\n"
            )),
            "{b}"
        );
        assert!(
            b.ends_with("Content-Type: text/plain\r\n\r\nhello bob"),
            "{b}"
        );
    });
    // Bob answers in CPIM: the MESSAGE to alice carries the content, unwrapped.
    let ours = with_frame(&frames[0], |f| {
        String::from_utf8_lossy(f.from_path().next().unwrap()).into_owned()
    });
    let cpim =
        "From: <sip:bob@h>\r\nTo: <sip:alice@h>\r\n\r\nContent-Type: text/html\r\n\r\n<b>hi</b>";
    let send = format!(
        "MSRP txw00001 SEND\r\nTo-Path: {ours}\r\nFrom-Path: msrp://{BOB_MSRP}/bobsess;tcp\r\n\
Message-ID: msgw0001\r\nByte-Range: 1-{n}/{n}\r\nContent-Type: message/cpim\r\n\r\n{cpim}\r\n-------txw00001$\r\n",
        n = cpim.len()
    );
    h.msrp_frame(0, conn, send.as_bytes());
    let msg = find(&h.take_sent(), "MESSAGE")[0].clone();
    assert_eq!(msg.header("Content-Type").as_deref(), Some("text/html"));
    assert_eq!(body(&msg), b"<b>hi</b>");
}

#[test]
fn a_far_side_that_stops_answering_holds_messages_in_the_queue_not_in_flight() {
    let cfg = CONFIG.replace(
        "msrp_listen = [\"192.0.2.1:2855\"]",
        "msrp_listen = [\"192.0.2.1:2855\"]\nmax_in_flight = 2\nqueue_max_messages = 3",
    );
    let mut h = Harness::new(1, &cfg).unwrap();
    let (conn, sent) = set_up(&mut h, "i0", "");
    let mut out = frames_on(&sent, conn);
    for i in 1..=5 {
        h.datagram(0, addr(ALICE), &message(&format!("i{i}"), "x", ""));
    }
    let sent = h.take_sent();
    out.extend(frames_on(&sent, conn));
    assert_eq!(out.len(), 2, "two in flight");
    assert_eq!(
        find(&sent, "202").len(),
        4,
        "one more goes out, three queue"
    );
    assert_eq!(find(&sent, "503").len(), 1, "the next finds the queue full");
    // One answered: one queued message goes out.
    h.msrp_frame(0, conn, &ok_for(&out[0]));
    assert_eq!(frames_on(&h.take_sent(), conn).len(), 1);
}

#[test]
fn with_the_gateway_on_a_forwarded_request_stays_stateless() {
    // Transactions are made for what the gateway or a route answers: a request a route
    // forwards has none, so its retransmission is forwarded again, not absorbed.
    let cfg = CONFIG.replace(
        "[route.request]\n",
        "[route.request]\n[[route.request.rules]]\nmatch = { method = \"OPTIONS\" }\nactions = [ { forward = { to = \"udp:198.51.100.50:5060\" } } ]\n",
    );
    let mut h = Harness::new(2, &cfg).unwrap();
    let options = format!(
        "OPTIONS sip:bob@{BOB} SIP/2.0\r\nVia: SIP/2.0/UDP {ALICE};branch=z9hG4bKopt1\r\n\
Max-Forwards: 70\r\nFrom: <sip:alice@{ALICE}>;tag=o1\r\nTo: <sip:bob@{BOB}>\r\n\
Call-ID: opt-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    for _ in 0..2 {
        h.datagram(0, addr(ALICE), options.as_bytes());
        let sent = h.take_sent();
        assert_eq!(
            find(&sent, "OPTIONS").len(),
            1,
            "forwarded each time: {sent:#?}"
        );
    }
    let txs: u64 = (0..2)
        .map(|i| {
            h.stats(i)
                .sip_transactions
                .load(std::sync::atomic::Ordering::Relaxed)
        })
        .sum();
    assert_eq!(txs, 0);
}

#[test]
fn shutdown_ends_every_session_with_bye_and_answers_what_is_held() {
    let mut h = Harness::new(2, CONFIG).unwrap();
    // One session up, one whose INVITE is unanswered, and a sync MESSAGE held on the first.
    let (conn, _) = set_up(&mut h, "sd1", "X-Sync: 1\r\n");
    let to_carol = String::from_utf8(message("sd2", "never set up", "X-Sync: 1\r\n"))
        .unwrap()
        .replace("To: <sip:bob@", "To: <sip:carol@");
    h.datagram(0, addr(ALICE), to_carol.as_bytes());
    assert_eq!(find(&h.take_sent(), "INVITE").len(), 1);
    assert_eq!(h.shutdown(), 0, "no parked items");
    let sent = h.take_sent();
    assert_eq!(find(&sent, "BYE").len(), 1, "the dialog ends: {sent:#?}");
    // Both held MESSAGEs are answered: 503 for the one still queued (never sent on), and
    // for the one out on MSRP what its session's loss maps to (480), as when ended by hand.
    let mut codes: Vec<u16> = sent.iter().filter_map(Sent::status).collect();
    codes.sort();
    assert_eq!(codes, [480, 503]);
    assert!(sent
        .iter()
        .filter(|s| s.status().is_some())
        .all(|s| s.peer() == addr(ALICE)));
    assert_eq!(h.take_msrp_closes(), vec![conn]);
    assert_eq!(
        h.core(0).gateway_sessions() + h.core(1).gateway_sessions(),
        0
    );
}
