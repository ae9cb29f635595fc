//! Every timer of RFC 3261 §17 on the virtual clock: each fires when the RFC says, and only then.

use super::*;
use crate::sip_write;
use sipshard_parser::sip::{parse, Framing, EMPTY_HEADER};

pub(super) const PEER: &str = "198.51.100.9:5060";

pub(super) fn udp() -> Hop {
    Hop::Datagram {
        listen: 0,
        dest: PEER.parse().unwrap(),
    }
}

pub(super) fn tcp() -> Hop {
    Hop::Stream(ConnId {
        shard: 0,
        listen: 1,
        peer: PEER.parse().unwrap(),
    })
}

/// A request with top Via branch `branch` (an RFC 3261 one when it starts with the cookie).
pub(super) fn request(method: &str, branch: &str) -> Vec<u8> {
    format!(
        "{method} sip:bob@example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.1:5060;branch={branch}\r\n\
         Route: <sip:proxy.example.com;lr>\r\n\
         Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>\r\n\
         Call-ID: {branch}@example.com\r\nCSeq: 7 {method}\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// A response to `req` with `code` (and a To tag).
pub(super) fn response(req: &[u8], code: u16) -> Vec<u8> {
    let mut h = [EMPTY_HEADER; 32];
    let msg = parse(req, &mut h, Framing::Datagram)
        .unwrap()
        .complete()
        .unwrap();
    let mut out = Vec::new();
    let reason = sip_write::reason_phrase(code).as_bytes();
    sip_write::write_response(
        &msg,
        PEER.parse().unwrap(),
        code,
        reason,
        b"b9",
        &[],
        &mut out,
    );
    out
}

/// The transactions, their clock, and what they sent and reported, with the time.
pub(super) struct Bench {
    pub(super) t: Transactions,
    pub(super) now: u64,
    pub(super) sent: Vec<(u64, Vec<u8>)>,
    pub(super) events: Vec<(u64, TxEvent)>,
}

impl Bench {
    pub(super) fn new() -> Bench {
        Bench {
            t: Transactions::new(Timers::default(), 10_000, 0),
            now: 0,
            sent: Vec::new(),
            events: Vec::new(),
        }
    }

    fn collect(&mut self, outs: Vec<Out>, events: Vec<TxEvent>) {
        for o in outs {
            let bytes = match o {
                Out::Datagram { bytes, .. } | Out::Stream { bytes, .. } => bytes,
                other => panic!("a transaction sent {other:?}"),
            };
            self.sent.push((self.now, bytes));
        }
        self.events
            .extend(events.into_iter().map(|e| (self.now, e)));
    }

    pub(super) fn send(&mut self, req: Vec<u8>, hop: Hop) -> Option<TxId> {
        let mut outs = Vec::new();
        let id = self.t.send_request(self.now, req, hop, &mut outs);
        self.collect(outs, Vec::new());
        id
    }

    pub(super) fn receive_response(&mut self, bytes: &[u8]) -> bool {
        let mut h = [EMPTY_HEADER; 32];
        let msg = parse(bytes, &mut h, Framing::Datagram)
            .unwrap()
            .complete()
            .unwrap();
        let (mut outs, mut events) = (Vec::new(), Vec::new());
        let matched = self.t.on_response(self.now, &msg, &mut outs, &mut events);
        self.collect(outs, events);
        matched
    }

    pub(super) fn receive_request(&mut self, bytes: &[u8], hop: Hop) -> RequestMatch {
        let mut h = [EMPTY_HEADER; 32];
        let msg = parse(bytes, &mut h, Framing::Datagram)
            .unwrap()
            .complete()
            .unwrap();
        let (mut outs, mut events) = (Vec::new(), Vec::new());
        let m = self
            .t
            .on_request(self.now, &msg, hop, &mut outs, &mut events);
        self.collect(outs, events);
        m
    }

    pub(super) fn respond(&mut self, tx: TxId, code: u16, bytes: Vec<u8>) -> bool {
        let (mut outs, mut events) = (Vec::new(), Vec::new());
        let ok = self
            .t
            .respond(self.now, tx, code, bytes, &mut outs, &mut events);
        self.collect(outs, events);
        ok
    }

    /// Moves the clock to `to`, stopping at every deadline on the way.
    pub(super) fn run_to(&mut self, to: u64) {
        while let Some(d) = self.t.next_deadline().filter(|&d| d <= to) {
            self.now = self.now.max(d);
            let (mut outs, mut events) = (Vec::new(), Vec::new());
            self.t.handle_timeout(self.now, &mut outs, &mut events);
            self.collect(outs, events);
        }
        self.now = to;
    }

    /// The times at which something starting with `prefix` was sent.
    pub(super) fn sent_at(&self, prefix: &str) -> Vec<u64> {
        self.sent
            .iter()
            .filter(|(_, b)| b.starts_with(prefix.as_bytes()))
            .map(|(t, _)| *t)
            .collect()
    }

    fn event_kinds(&self) -> Vec<(u64, String)> {
        self.events
            .iter()
            .map(|(t, e)| {
                let k = match e {
                    TxEvent::Response { code, .. } => format!("response {code}"),
                    TxEvent::Timeout { .. } => "timeout".into(),
                    TxEvent::AckTimeout { .. } => "ack timeout".into(),
                    TxEvent::Ack { .. } => "ack".into(),
                    TxEvent::Terminated { .. } => "terminated".into(),
                };
                (*t, k)
            })
            .collect()
    }
}

#[test]
fn non_invite_client_retransmits_with_timer_e_and_gives_up_at_timer_f() {
    let mut b = Bench::new();
    b.send(request("MESSAGE", "z9hG4bK1"), udp()).unwrap();
    b.run_to(40_000);
    // E: T1, doubling, capped at T2 (500, 1000, 2000, 4000, 4000...); F at 64·T1 = 32 s.
    assert_eq!(
        b.sent_at("MESSAGE"),
        vec![0, 500, 1500, 3500, 7500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500]
    );
    assert_eq!(
        b.event_kinds(),
        vec![(32_000, "timeout".into()), (32_000, "terminated".into())]
    );
    assert!(b.t.is_empty());
    assert_eq!(b.t.next_deadline(), None);
}

#[test]
fn non_invite_client_in_proceeding_retransmits_every_t2_then_waits_timer_k() {
    let mut b = Bench::new();
    let req = request("MESSAGE", "z9hG4bK2");
    b.send(req.clone(), udp()).unwrap();
    b.run_to(700);
    assert!(b.receive_response(&response(&req, 100)));
    b.run_to(6000);
    // E fired at 500 (next 1000 later: 1500), then every T2 once proceeding.
    assert_eq!(b.sent_at("MESSAGE"), vec![0, 500, 1500, 5500]);
    assert!(b.receive_response(&response(&req, 202)));
    // A retransmitted final response is absorbed.
    b.run_to(6100);
    assert!(b.receive_response(&response(&req, 202)));
    b.run_to(60_000);
    assert_eq!(b.sent_at("MESSAGE"), vec![0, 500, 1500, 5500]);
    assert_eq!(
        b.event_kinds(),
        vec![
            (700, "response 100".into()),
            (6000, "response 202".into()),
            // Timer K: T4 after the final response.
            (11_000, "terminated".into()),
        ]
    );
}

#[test]
fn invite_client_retransmits_with_timer_a_until_timer_b() {
    let mut b = Bench::new();
    b.send(request("INVITE", "z9hG4bK3"), udp()).unwrap();
    b.run_to(40_000);
    // A doubles without a cap: 500, 1000, 2000, 4000, 8000, 16000.
    assert_eq!(
        b.sent_at("INVITE"),
        vec![0, 500, 1500, 3500, 7500, 15_500, 31_500]
    );
    assert_eq!(
        b.event_kinds(),
        vec![(32_000, "timeout".into()), (32_000, "terminated".into())]
    );
}

#[test]
fn invite_client_acks_an_error_and_absorbs_its_retransmissions_for_timer_d() {
    let mut b = Bench::new();
    let req = request("INVITE", "z9hG4bK4");
    b.send(req.clone(), udp()).unwrap();
    b.run_to(600);
    assert!(b.receive_response(&response(&req, 180)));
    b.run_to(40_000);
    // A provisional response stops the retransmissions, and timer B with them.
    assert_eq!(b.sent_at("INVITE"), vec![0, 500]);
    assert!(b.receive_response(&response(&req, 486)));
    let acks = b.sent_at("ACK");
    assert_eq!(acks, vec![40_000]);
    let ack = &b
        .sent
        .iter()
        .find(|(_, m)| m.starts_with(b"ACK"))
        .unwrap()
        .1;
    let mut h = [EMPTY_HEADER; 32];
    let ack = parse(ack, &mut h, Framing::Datagram)
        .unwrap()
        .complete()
        .unwrap();
    ack.validate().unwrap();
    assert_eq!(ack.branch(), Some(&b"z9hG4bK4"[..]));
    assert_eq!(ack.to_tag(), Some(&b"b9"[..]));
    assert_eq!(
        ack.cseq().map(|c| (c.number, c.method)),
        Some((7, &b"ACK"[..]))
    );
    assert_eq!(ack.routes().count(), 1);
    // The error again: the ACK again, the user hears nothing more.
    b.run_to(41_000);
    assert!(b.receive_response(&response(&req, 486)));
    assert_eq!(b.sent_at("ACK"), vec![40_000, 41_000]);
    b.run_to(100_000);
    assert_eq!(
        b.event_kinds(),
        vec![
            (600, "response 180".into()),
            (40_000, "response 486".into()),
            // Timer D: 32 s.
            (72_000, "terminated".into()),
        ]
    );
}

#[test]
fn invite_client_hands_every_2xx_to_the_user_until_timer_m() {
    let mut b = Bench::new();
    let req = request("INVITE", "z9hG4bK5");
    b.send(req.clone(), udp()).unwrap();
    b.run_to(800);
    assert!(b.receive_response(&response(&req, 200)));
    b.run_to(3000);
    assert!(b.receive_response(&response(&req, 200)));
    b.run_to(100_000);
    assert_eq!(b.sent_at("INVITE"), vec![0, 500]);
    assert!(b.sent_at("ACK").is_empty(), "a 2xx is ACKed by the dialog");
    assert_eq!(
        b.event_kinds(),
        vec![
            (800, "response 200".into()),
            (3000, "response 200".into()),
            (32_800, "terminated".into()),
        ]
    );
}

#[test]
fn over_a_stream_nothing_is_retransmitted_and_nothing_waits() {
    let mut b = Bench::new();
    let req = request("MESSAGE", "z9hG4bK6");
    b.send(req.clone(), tcp()).unwrap();
    b.run_to(10_000);
    assert_eq!(b.sent_at("MESSAGE"), vec![0]);
    assert!(b.receive_response(&response(&req, 200)));
    assert_eq!(
        b.event_kinds(),
        vec![
            (10_000, "response 200".into()),
            (10_000, "terminated".into())
        ]
    );
    // Timer F still bounds a stream request that is never answered.
    b.send(request("MESSAGE", "z9hG4bK7"), tcp()).unwrap();
    b.run_to(60_000);
    assert_eq!(b.event_kinds().last().unwrap().1, "terminated");
    assert_eq!(b.event_kinds()[2], (42_000, "timeout".into()));
}

#[test]
fn responses_match_by_branch_and_method_only() {
    let mut b = Bench::new();
    let req = request("INVITE", "z9hG4bK8");
    b.send(req.clone(), udp()).unwrap();
    // Same branch, another method (a CANCEL's response): not the INVITE's.
    let cancel = request("CANCEL", "z9hG4bK8");
    assert!(!b.receive_response(&response(&cancel, 200)));
    assert!(!b.receive_response(&response(&request("INVITE", "z9hG4bK9"), 200)));
    // A second request with a live branch is refused; one without the cookie gets none.
    assert_eq!(b.send(req, udp()), None);
    assert_eq!(b.send(request("MESSAGE", "old-branch"), udp()), None);
    assert!(b.events.is_empty());
}

#[test]
fn non_invite_server_answers_retransmissions_from_the_transaction_until_timer_j() {
    let mut b = Bench::new();
    let req = request("MESSAGE", "z9hG4bKs1");
    let RequestMatch::New(tx) = b.receive_request(&req, udp()) else {
        panic!()
    };
    // Before any response a retransmission is absorbed.
    b.run_to(500);
    assert_eq!(
        b.receive_request(&req, udp()),
        RequestMatch::Retransmission(tx)
    );
    assert!(b.sent.is_empty());
    b.run_to(1000);
    assert!(b.respond(tx, 200, response(&req, 200)));
    assert!(
        !b.respond(tx, 500, response(&req, 500)),
        "one final response"
    );
    b.run_to(2000);
    assert_eq!(
        b.receive_request(&req, udp()),
        RequestMatch::Retransmission(tx)
    );
    assert_eq!(b.sent_at("SIP/2.0 200"), vec![1000, 2000]);
    b.run_to(100_000);
    // Timer J: 64·T1 after the final response.
    assert_eq!(b.event_kinds(), vec![(33_000, "terminated".into())]);
    assert!(matches!(
        b.receive_request(&req, udp()),
        RequestMatch::New(_)
    ));
}

#[test]
fn invite_server_sends_trying_retransmits_its_error_with_timer_g_until_the_ack() {
    let mut b = Bench::new();
    let req = request("INVITE", "z9hG4bKs2");
    let RequestMatch::New(tx) = b.receive_request(&req, udp()) else {
        panic!()
    };
    assert_eq!(b.sent_at("SIP/2.0 100"), vec![0]);
    b.run_to(300);
    b.receive_request(&req, udp());
    assert_eq!(b.sent_at("SIP/2.0 100"), vec![0, 300]);
    b.run_to(1000);
    assert!(b.respond(tx, 486, response(&req, 486)));
    b.run_to(9000);
    // G: T1, doubling, capped at T2.
    assert_eq!(b.sent_at("SIP/2.0 486"), vec![1000, 1500, 2500, 4500, 8500]);
    let ack = request("ACK", "z9hG4bKs2");
    assert_eq!(b.receive_request(&ack, udp()), RequestMatch::Ack);
    b.run_to(100_000);
    assert_eq!(b.sent_at("SIP/2.0 486").len(), 5, "the ACK stops timer G");
    // Absorbed ACK (no event); timer I: T4 after it.
    assert_eq!(b.event_kinds(), vec![(14_000, "terminated".into())]);
}

#[test]
fn invite_server_reports_a_missing_ack_at_timer_h() {
    let mut b = Bench::new();
    let req = request("INVITE", "z9hG4bKs3");
    let RequestMatch::New(tx) = b.receive_request(&req, udp()) else {
        panic!()
    };
    assert!(b.respond(tx, 603, response(&req, 603)));
    b.run_to(100_000);
    assert_eq!(
        b.event_kinds(),
        vec![
            (32_000, "ack timeout".into()),
            (32_000, "terminated".into())
        ]
    );
}

#[test]
fn invite_server_after_a_2xx_absorbs_the_invite_and_passes_the_ack_on() {
    let mut b = Bench::new();
    let req = request("INVITE", "z9hG4bKs4");
    let RequestMatch::New(tx) = b.receive_request(&req, udp()) else {
        panic!()
    };
    assert!(b.respond(tx, 200, response(&req, 200)));
    b.run_to(1000);
    assert_eq!(
        b.receive_request(&req, udp()),
        RequestMatch::Retransmission(tx)
    );
    assert_eq!(
        b.sent_at("SIP/2.0 200"),
        vec![0],
        "the dialog retransmits a 2xx, not us"
    );
    assert_eq!(
        b.receive_request(&request("ACK", "z9hG4bKs4"), udp()),
        RequestMatch::Ack
    );
    b.run_to(100_000);
    // Timer L: 64·T1 after the 2xx.
    assert_eq!(
        b.event_kinds(),
        vec![(1000, "ack".into()), (32_000, "terminated".into())]
    );
}

#[test]
fn requests_without_an_rfc3261_branch_are_stateless() {
    let mut b = Bench::new();
    assert_eq!(
        b.receive_request(&request("MESSAGE", "1234"), udp()),
        RequestMatch::Stateless
    );
    assert_eq!(
        b.receive_request(&request("ACK", "z9hG4bKnone"), udp()),
        RequestMatch::Ack
    );
    assert_eq!(b.event_kinds(), vec![(0, "ack".into())]);
    assert!(b.t.is_empty());
}

#[test]
fn a_cancel_finds_its_invite_and_acks_and_full_tables_are_refused() {
    /// Runs `f` on `bytes` parsed.
    fn parsed<R>(bytes: &[u8], f: impl FnOnce(&sipshard_parser::sip::Message<'_, '_>) -> R) -> R {
        let mut h = [EMPTY_HEADER; 32];
        f(&parse(bytes, &mut h, Framing::Datagram)
            .unwrap()
            .complete()
            .unwrap())
    }
    let mut b = Bench::new();
    let inv = request("INVITE", "z9hG4bKc1");
    let RequestMatch::New(tx) = b.receive_request(&inv, udp()) else {
        panic!()
    };
    let cancel = request("CANCEL", "z9hG4bKc1");
    assert_eq!(parsed(&cancel, |m| b.t.invite_for_cancel(m)), Some(tx));
    let other = request("CANCEL", "z9hG4bKc2");
    assert_eq!(parsed(&other, |m| b.t.invite_for_cancel(m)), None);
    // The CANCEL has a transaction of its own.
    assert!(matches!(b.receive_request(&cancel, udp()), RequestMatch::New(c) if c != tx));
    // A 2xx sent again while accepted passes through.
    assert!(b.respond(tx, 200, response(&inv, 200)));
    assert!(b.respond(tx, 200, response(&inv, 200)));
    assert_eq!(b.sent_at("SIP/2.0 200").len(), 2);
    // An ACK is never a client transaction.
    assert_eq!(b.send(request("ACK", "z9hG4bKc3"), udp()), None);
    // A full table refuses new transactions.
    let mut small = Transactions::new(Timers::default(), 1, 0);
    let (mut outs, mut events) = (Vec::new(), Vec::new());
    let mut receive = |bytes: &[u8]| {
        parsed(bytes, |m| {
            small.on_request(0, m, udp(), &mut outs, &mut events)
        })
    };
    assert!(matches!(
        receive(&request("MESSAGE", "z9hG4bKf1")),
        RequestMatch::New(_)
    ));
    assert_eq!(
        receive(&request("MESSAGE", "z9hG4bKf2")),
        RequestMatch::Full
    );
    let mut outs = Vec::new();
    assert_eq!(
        small.send_request(0, request("MESSAGE", "z9hG4bKf3"), udp(), &mut outs),
        None
    );
}
