//! The gateway end to end: `sipshard serve` with `docs/examples/msrp-gateway.toml` (2 shards,
//! loopback, ephemeral ports) between the project's own peers, a SIP user agent and an MSRP
//! endpoint (`sipshard_load::peer`), playing the SIP user and the MSRP user.

use serde_json::json;
use sipshard_load::peer::msrp::{write_chunk, Chunk, MsrpPeer};
use sipshard_load::peer::sdp;
use sipshard_load::peer::sip::{InviteSpec, MessageSpec, SipUa, Transport as SipTransport};
use sipshard_parser::msrp::Flag;
use sipshard_tests::{examples, Server};
use std::path::PathBuf;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(300);

fn example() -> PathBuf {
    examples().join("msrp-gateway.toml")
}

/// The example with `msg_to_msrp` in `sync` mode, written next to the test's temp files.
fn sync_example(name: &str) -> PathBuf {
    let text = std::fs::read_to_string(example()).unwrap();
    assert!(text.contains("mode = \"async\""));
    let p = std::env::temp_dir().join(format!(
        "sipshard-gw-sync-{name}-{}.toml",
        std::process::id()
    ));
    std::fs::write(&p, text.replace("mode = \"async\"", "mode = \"sync\"")).unwrap();
    p
}

fn start(config: &std::path::Path) -> Server {
    Server::start(config, &["--shards", "2", "--msrp-listen", "127.0.0.1:0"])
}

/// Alice (SIP) and bob (SIP UA for his MSRP client, and the MSRP client itself).
struct PageModeSide {
    alice: SipUa,
    bob_sip: SipUa,
    bob_msrp: MsrpPeer,
}

impl PageModeSide {
    fn new() -> Self {
        PageModeSide {
            alice: SipUa::bind().unwrap(),
            bob_sip: SipUa::bind().unwrap(),
            bob_msrp: MsrpPeer::listen().unwrap(),
        }
    }

    fn message(&self, body: &str) -> MessageSpec {
        MessageSpec::text(&self.alice.uri("alice"), &self.bob_sip.uri("bob"), body)
    }

    /// Bob's UA answers the gateway's INVITE (his client passive: the gateway connects) and
    /// his MSRP client accepts the connection.
    fn answer_invite(&mut self, srv: &Server) {
        let inv = self
            .bob_sip
            .wait_request("INVITE", WAIT)
            .expect("the gateway's INVITE");
        let offer = inv.body().to_vec();
        let path = sdp::read_path(&offer).expect("a=path in the offer");
        let msrp = srv.msrp.unwrap();
        assert!(path.starts_with(&format!("msrp://{msrp}/")), "{path}");
        assert_eq!(sdp::read_setup(&offer).as_deref(), Some("actpass"));
        let answer = sdp::answer(&self.bob_msrp.path(), "text/plain", "passive");
        self.bob_sip
            .answer_invite_with_sdp(&inv, answer.as_bytes())
            .unwrap();
        assert!(
            self.bob_sip.wait_request("ACK", WAIT).is_some(),
            "the 2xx is ACKed"
        );
        self.bob_msrp.accept(WAIT).expect("the gateway connects");
    }
}

#[test]
fn a_message_sets_up_a_session_and_its_send_is_delivered_answered_202() {
    let srv = start(&example());
    let mut p = PageModeSide::new();
    let m = p
        .alice
        .send_message(srv.udp, &p.message("hello bob"))
        .unwrap();
    let r = p.alice.wait_final(&m.call_id, WAIT).expect("an answer");
    assert_eq!(r.status(), Some(202));
    p.answer_invite(&srv);
    let got = p.bob_msrp.recv_message(WAIT).expect("the SEND");
    assert_eq!(got.body, b"hello bob");
    assert_eq!(got.content_type, "text/plain");
    // The next MESSAGE goes out on the same session: no second INVITE.
    let body = "a line of dashes follows\r\n-------\r\nand the message goes on";
    let m = p.alice.send_message(srv.udp, &p.message(body)).unwrap();
    assert_eq!(
        p.alice.wait_final(&m.call_id, WAIT).unwrap().status(),
        Some(202)
    );
    let got = p.bob_msrp.recv_message(WAIT).expect("the second SEND");
    assert_eq!(got.body, body.as_bytes(), "seven dashes delivered intact");
    assert!(p.bob_sip.wait_request("INVITE", QUIET).is_none());
    // A long message is chunked out.
    let long: String = (0..10_240)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    let m = p.alice.send_message(srv.udp, &p.message(&long)).unwrap();
    assert_eq!(
        p.alice.wait_final(&m.call_id, WAIT).unwrap().status(),
        Some(202)
    );
    let got = p.bob_msrp.recv_message(WAIT).expect("the long message");
    assert_eq!(got.body, long.as_bytes());
    assert_eq!(got.chunks, 5, "2048-byte chunks");
    // A retransmitted MESSAGE is answered again and delivered once.
    let m = p
        .alice
        .send_message(srv.udp, &p.message("only once"))
        .unwrap();
    assert_eq!(
        p.alice.wait_final(&m.call_id, WAIT).unwrap().status(),
        Some(202)
    );
    p.alice.retransmit(&m).unwrap();
    assert_eq!(
        p.alice.wait_final(&m.call_id, WAIT).unwrap().status(),
        Some(202)
    );
    assert_eq!(p.bob_msrp.recv_message(WAIT).unwrap().body, b"only once");
    assert!(p.bob_msrp.recv_message(QUIET).is_none(), "delivered once");
    let stats = srv.ctl("gw.stats", json!({}));
    assert_eq!(stats["sessions"], 1);
    assert_eq!(stats["gw_delivered"], 4);
    srv.stop();
}

#[test]
fn a_sync_message_is_answered_200_only_after_the_msrp_200() {
    let cfg = sync_example("200");
    let srv = start(&cfg);
    let mut p = PageModeSide::new();
    let m = p
        .alice
        .send_message(srv.udp, &p.message("hold me"))
        .unwrap();
    p.answer_invite(&srv);
    let send = p.bob_msrp.recv_frame(WAIT).expect("the SEND");
    assert_eq!(send.method(), Some("SEND"));
    assert!(
        p.alice.wait_final(&m.call_id, QUIET).is_none(),
        "no answer before the MSRP 200"
    );
    p.bob_msrp.respond(&send, 200, "OK").unwrap();
    assert_eq!(
        p.alice.wait_final(&m.call_id, WAIT).unwrap().status(),
        Some(200)
    );
    // The connection killed with a message in flight: BYE, the session gone, and the held
    // MESSAGE answered 480.
    let m = p
        .alice
        .send_message(srv.udp, &p.message("in flight"))
        .unwrap();
    assert!(p.bob_msrp.recv_frame(WAIT).is_some());
    p.bob_msrp.reset();
    assert!(
        p.bob_sip.wait_request("BYE", WAIT).is_some(),
        "BYE for the lost connection"
    );
    assert_eq!(
        p.alice.wait_final(&m.call_id, WAIT).unwrap().status(),
        Some(480)
    );
    assert_eq!(srv.ctl("gw.list_sessions", json!({}))["count"], 0);
    srv.stop();
    let _ = std::fs::remove_file(cfg);
}

#[test]
fn an_invite_answered_486_tells_the_sender() {
    let srv = start(&example());
    let mut p = PageModeSide::new();
    let m = p
        .alice
        .send_message(srv.udp, &p.message("are you there?"))
        .unwrap();
    assert_eq!(
        p.alice.wait_final(&m.call_id, WAIT).unwrap().status(),
        Some(202)
    );
    let inv = p.bob_sip.wait_request("INVITE", WAIT).unwrap();
    p.bob_sip
        .respond(&inv, 486, "Busy Here", &[], None)
        .unwrap();
    let told = p
        .alice
        .wait_request("MESSAGE", WAIT)
        .expect("gw:setup_failed tells alice");
    let text = told.body_text();
    assert!(
        text.contains("not delivered") && text.contains("486"),
        "{text}"
    );
    p.alice.ok(&told).unwrap();
    assert_eq!(srv.ctl("gw.list_sessions", json!({}))["count"], 0);
    srv.stop();
}

/// Carol (an MSRP client and her SIP UA) and dave (SIP).
struct SessionModeSide {
    carol_sip: SipUa,
    carol_msrp: MsrpPeer,
    dave: SipUa,
    gw_path: String,
}

impl SessionModeSide {
    /// Carol INVITEs dave through the gateway, which answers; she connects (passive gateway).
    fn new(srv: &Server) -> Self {
        let mut carol_sip = SipUa::bind().unwrap();
        let mut carol_msrp = MsrpPeer::listen().unwrap();
        let dave = SipUa::bind().unwrap();
        let offer = sdp::offer(
            carol_msrp.addr().port(),
            &carol_msrp.path(),
            "text/plain text/html",
        );
        let inv = carol_sip
            .send_invite(
                srv.udp,
                &InviteSpec {
                    ruri: dave.uri("dave"),
                    from: carol_sip.uri("carol"),
                    to: dave.uri("dave"),
                    sdp: offer.into_bytes(),
                    ..InviteSpec::default()
                },
            )
            .unwrap();
        let ok = carol_sip.wait_final(&inv.call_id, WAIT).expect("an answer");
        assert_eq!(ok.status(), Some(200), "{}", ok.text());
        carol_sip.ack(&inv, &ok).unwrap();
        let gw_path = sdp::read_path(ok.body()).expect("our a=path");
        assert_eq!(sdp::read_setup(ok.body()).as_deref(), Some("passive"));
        carol_msrp.connect_path(&gw_path).unwrap();
        SessionModeSide {
            carol_sip,
            carol_msrp,
            dave,
            gw_path,
        }
    }
}

#[test]
fn an_msrp_users_sends_arrive_as_messages_and_the_answers_are_reported() {
    let srv = start(&example());
    let mut s = SessionModeSide::new(&srv);
    let body = "hi dave\r\n-------\r\nstill me";
    let id = s
        .carol_msrp
        .send_message(&s.gw_path, "text/plain", body.as_bytes(), 2048, true, "yes")
        .unwrap();
    let msg = s
        .dave
        .wait_request("MESSAGE", WAIT)
        .expect("a MESSAGE for dave");
    assert_eq!(msg.body(), body.as_bytes());
    assert_eq!(msg.content_type().as_deref(), Some("text/plain"));
    assert!(msg.from_uri().unwrap().contains("carol"));
    s.dave.ok(&msg).unwrap();
    assert_eq!(s.carol_msrp.wait_response(&id, WAIT), Some(200));
    let report = s
        .carol_msrp
        .wait_report(&id, WAIT)
        .expect("a success REPORT, as asked");
    assert_eq!((report.namespace, report.code), (0, 200));
    // A MESSAGE answered 404: a failure REPORT 000 404.
    let id = s
        .carol_msrp
        .send_message(
            &s.gw_path,
            "text/plain",
            b"nobody home?",
            2048,
            false,
            "yes",
        )
        .unwrap();
    let msg = s.dave.wait_request("MESSAGE", WAIT).unwrap();
    s.dave.respond(&msg, 404, "Not Found", &[], None).unwrap();
    let report = s
        .carol_msrp
        .wait_report(&id, WAIT)
        .expect("a failure REPORT");
    assert_eq!((report.namespace, report.code), (0, 404));
    // Dave writes back: his MESSAGE (From dave, To carol) finds carol's session.
    let back = MessageSpec::text(
        &s.dave.uri("dave"),
        &s.carol_sip.uri("carol"),
        "hello carol",
    );
    let m = s.dave.send_message(srv.udp, &back).unwrap();
    assert_eq!(
        s.dave.wait_final(&m.call_id, WAIT).unwrap().status(),
        Some(202)
    );
    assert_eq!(
        s.carol_msrp.recv_message(WAIT).unwrap().body,
        b"hello carol"
    );
    assert!(
        s.carol_sip.wait_request("INVITE", QUIET).is_none(),
        "no second session"
    );
    srv.stop();
}

#[test]
fn chunks_of_two_interleaved_messages_arrive_as_two_whole_messages() {
    let srv = start(&example());
    let mut s = SessionModeSide::new(&srv);
    let a: Vec<u8> = (0..6000).map(|i| b'a' + (i % 26) as u8).collect();
    let b: Vec<u8> = (0..5000).map(|i| b'A' + (i % 26) as u8).collect();
    let from = s.carol_msrp.path();
    let chunk =
        |tid: &str, mid: &str, body: &[u8], off: usize, len: usize, total: usize, last: bool| {
            write_chunk(&Chunk {
                transaction_id: tid,
                to_path: &s.gw_path,
                from_path: &from,
                message_id: mid,
                start: off as u64 + 1,
                total: total as u64,
                content_type: "text/plain",
                body: &body[off..off + len],
                flag: if last { Flag::Complete } else { Flag::More },
                success_report: false,
                failure_report: "yes",
            })
        };
    let frames = [
        chunk("ta000001", "msgA0001", &a, 0, 2048, a.len(), false),
        chunk("tb000001", "msgB0001", &b, 0, 2048, b.len(), false),
        chunk("ta000002", "msgA0001", &a, 2048, 2048, a.len(), false),
        chunk("tb000002", "msgB0001", &b, 2048, 2952, b.len(), true),
        chunk("ta000003", "msgA0001", &a, 4096, 1904, a.len(), true),
    ];
    for f in &frames {
        s.carol_msrp.send_bytes(f).unwrap();
    }
    let mut got = Vec::new();
    for _ in 0..2 {
        let m = s
            .dave
            .wait_request("MESSAGE", WAIT)
            .expect("a reassembled MESSAGE");
        assert!(
            matches!(m.transport, SipTransport::Tcp(_)),
            "a MESSAGE over 1300 bytes comes over TCP (RFC 3261 §18.1.1)"
        );
        got.push(m.body().to_vec());
        s.dave.ok(&m).unwrap();
    }
    got.sort_by_key(Vec::len);
    assert_eq!(got, vec![b.clone(), a.clone()]);
    srv.stop();
}

#[test]
fn a_report_an_unknown_method_and_a_body_without_content_type_get_the_rfcs_answer() {
    let srv = start(&example());
    let mut s = SessionModeSide::new(&srv);
    let from = s.carol_msrp.path();
    let to = s.gw_path.clone();
    // A REPORT is never answered.
    s.carol_msrp
        .send_bytes(format!("MSRP rep00001 REPORT\r\nTo-Path: {to}\r\nFrom-Path: {from}\r\nMessage-ID: abcd0001\r\nByte-Range: 1-4/4\r\nStatus: 000 200 OK\r\n-------rep00001$\r\n").as_bytes())
        .unwrap();
    // An unknown method: 501.
    s.carol_msrp
        .send_bytes(format!("MSRP unk00001 FROBNICATE\r\nTo-Path: {to}\r\nFrom-Path: {from}\r\n-------unk00001$\r\n").as_bytes())
        .unwrap();
    // A body without Content-Type: 400.
    s.carol_msrp
        .send_bytes(format!("MSRP bad00001 SEND\r\nTo-Path: {to}\r\nFrom-Path: {from}\r\nMessage-ID: abcd0002\r\nByte-Range: 1-3/3\r\n\r\nxyz\r\n-------bad00001$\r\n").as_bytes())
        .unwrap();
    let mut codes = Vec::new();
    while let Some(f) = s.carol_msrp.recv_frame(Duration::from_secs(2)) {
        codes.push((f.transaction_id.clone(), f.code()));
        if codes.len() == 2 {
            break;
        }
    }
    codes.sort();
    assert_eq!(
        codes,
        vec![
            ("bad00001".to_owned(), Some(400)),
            ("unk00001".to_owned(), Some(501))
        ]
    );
    assert!(
        s.carol_msrp.recv_frame(QUIET).is_none(),
        "the REPORT is not answered"
    );
    // Nothing crashed: the session still carries messages.
    let id = s
        .carol_msrp
        .send_message(&s.gw_path, "text/plain", b"still here", 2048, false, "yes")
        .unwrap();
    let m = s.dave.wait_request("MESSAGE", WAIT).unwrap();
    s.dave.ok(&m).unwrap();
    assert_eq!(s.carol_msrp.wait_response(&id, WAIT), Some(200));
    srv.stop();
}

#[test]
fn the_session_listing_shows_every_field() {
    let srv = start(&example());
    let mut s = SessionModeSide::new(&srv);
    // Carol binds the connection (RFC 4975 §5.4: her first SEND).
    s.carol_msrp
        .send_message(&s.gw_path, "text/plain", b"", 2048, false, "yes")
        .unwrap();
    assert!(
        s.carol_msrp.recv_frame(WAIT).is_some(),
        "the bind is answered"
    );
    let list = srv.ctl("gw.list_sessions", json!({}));
    assert_eq!(list["count"], 1);
    let sess = &list["sessions"][0];
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
        assert!(!sess[k].is_null(), "{k} missing in {sess}");
    }
    assert!(sess["key"].as_str().unwrap().contains("dave"));
    let metrics = srv.metrics();
    assert!(metrics.contains("gw_sessions"), "{metrics}");
    srv.stop();
}

#[test]
fn a_request_uri_naming_a_host_is_resolved_by_the_system_resolver() {
    let srv = start(&example());
    let mut p = PageModeSide::new();
    let port = p.bob_sip.addr().port();
    let mut spec = p.message("by name");
    spec.ruri = format!("sip:bob@localhost:{port}");
    spec.to = spec.ruri.clone();
    let m = p.alice.send_message(srv.udp, &spec).unwrap();
    assert_eq!(
        p.alice.wait_final(&m.call_id, WAIT).unwrap().status(),
        Some(202)
    );
    p.answer_invite(&srv);
    assert_eq!(p.bob_msrp.recv_message(WAIT).unwrap().body, b"by name");
    srv.stop();
}

/// Connections to the MSRP port that never send a frame are closed after `setup_timeout`
/// (no session could be waiting for them by then), and past `max_connections` at once: a
/// peer cannot hold the gateway's descriptors.
#[test]
fn msrp_connections_that_never_bind_are_closed() {
    use std::io::Read;
    let text = std::fs::read_to_string(example()).unwrap();
    let p = std::env::temp_dir().join(format!("sipshard-gw-bind-{}.toml", std::process::id()));
    std::fs::write(
        &p,
        text.replace("[gateway]\n", "[gateway]\nsetup_timeout = 1\n"),
    )
    .unwrap();
    let srv = Server::start(
        &p,
        &[
            "--shards",
            "2",
            "--msrp-listen",
            "127.0.0.1:0",
            "--max-connections",
            "4",
        ],
    );
    let msrp = srv.msrp.unwrap();
    let fds = sipshard_tests::open_fds(srv.pid());
    let mut held: Vec<std::net::TcpStream> = (0..6)
        .map(|_| std::net::TcpStream::connect(msrp).unwrap())
        .collect();
    // Every one ends: two at once (past the limit), four after a second of silence. A read
    // waits 10 s at most, so a connection left open fails the test.
    for s in &mut held {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut b = [0u8; 16];
        match s.read(&mut b) {
            Ok(0) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            other => panic!("the connection is still open: {other:?}"),
        }
    }
    drop(held);
    let m = srv.metrics();
    assert_eq!(
        sipshard_tests::metric_sum(&m, "sipshard_connections_refused_total"),
        2
    );
    assert!(sipshard_tests::wait_until(20, || {
        sipshard_tests::open_fds(srv.pid()) <= fds
            && sipshard_tests::metric_sum(&srv.metrics(), "sipshard_msrp_connections") == 0
    }));
    let _ = std::fs::remove_file(&p);
}
