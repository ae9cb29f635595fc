//! Model-based test of the gateway's sessions: random interleavings of SIP users' MESSAGEs
//! (async and sync, retransmitted), the far side's answers to the gateway's INVITEs (200, 486,
//! ringing forever), answers to its SENDs (200, 415, none), BYEs, connections lost and clock
//! jumps, over 1 to 3 shards. The test plays the far side and keeps the model: what became of
//! each MESSAGE from the far side's point of view. Whatever the interleaving:
//!
//! - every MESSAGE gets one final response, and the same again for each copy sent after it
//!   (async: 202; sync: 200 only if its SEND was answered 200 in time, else an error);
//! - an async MESSAGE is either delivered (its SEND answered 200 in time) or reported through
//!   `gw:delivery_failed`, exactly once, never both;
//! - no MESSAGE is sent twice on the MSRP side;
//! - once every connection is gone and the clock has moved past every deadline, no session
//!   and no transaction is left.

use super::tests::{addr, answer, frames_on, sdp, with_frame};
use crate::shard::harness::{Dest, Harness, Sent};
use crate::transport::MsrpConn;
use proptest::prelude::*;
use sipshard_parser::msrp::{Method, StartLine};
use sipshard_parser::sip::{self, Framing, EMPTY_HEADER};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

const CONFIG: &str = r#"
[gateway]
msrp_listen = ["192.0.2.1:2855"]

[route.request]
[[route.request.rules]]
match = { method = "MESSAGE", header_present = "X-Sync" }
actions = [ { msg_to_msrp = { key = "$fu|$tu", content_types = "text/plain", mode = "sync" } } ]
[[route.request.rules]]
match = { method = "MESSAGE" }
actions = [ { msg_to_msrp = { key = "$fu|$tu", content_types = "text/plain" } } ]

[route."gw:delivery_failed"]
rules = [ { actions = [ { send_message = { ruri = "sip:report@198.51.100.9:5060", from = "sip:gw@192.0.2.1", to = "sip:report@198.51.100.9", body = "$gw(msgid)" } } ] } ]
"#;

const PAIRS: usize = 3;
const REPORTER: &str = "198.51.100.9:5060";
/// The SEND transaction timeout: a 200 later than this is not counted as a delivery.
const MSRP_TIMEOUT_MS: u64 = 30_000;
/// 64·T1: a sender retransmits a MESSAGE no later than this after sending it.
const TIMER_F_MS: u64 = 32_000;

fn alice(p: usize) -> SocketAddr {
    addr(&format!("198.51.100.1:{}", 5060 + p))
}
fn bob(p: usize) -> SocketAddr {
    addr(&format!("198.51.100.2:{}", 5060 + p))
}
fn bob_msrp(p: usize) -> SocketAddr {
    addr(&format!("198.51.100.2:{}", 7000 + p))
}

#[derive(Debug, Clone)]
enum Op {
    Message {
        pair: usize,
        sync: bool,
        shard: usize,
    },
    Retransmit {
        which: usize,
        shard: usize,
    },
    AnswerInvite {
        pair: usize,
        how: u8,
    },
    AnswerSends {
        pair: usize,
        how: u8,
    },
    Close {
        pair: usize,
    },
    Bye {
        pair: usize,
        shard: usize,
    },
    Advance {
        ms: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let pair = 0..PAIRS;
    let shard = 0..3usize;
    prop_oneof![
        5 => (pair.clone(), any::<bool>(), shard.clone())
            .prop_map(|(pair, sync, shard)| Op::Message { pair, sync, shard }),
        1 => (0..32usize, shard.clone()).prop_map(|(which, shard)| Op::Retransmit { which, shard }),
        3 => (pair.clone(), 0..4u8).prop_map(|(pair, how)| Op::AnswerInvite { pair, how }),
        4 => (pair.clone(), 0..4u8).prop_map(|(pair, how)| Op::AnswerSends { pair, how }),
        1 => pair.clone().prop_map(|pair| Op::Close { pair }),
        1 => (pair, shard).prop_map(|(pair, shard)| Op::Bye { pair, shard }),
        2 => (0..40_000u64).prop_map(|ms| Op::Advance { ms }),
    ]
}

/// A MESSAGE a SIP user sent.
#[derive(Debug)]
struct Msg {
    pair: usize,
    sync: bool,
    bytes: String,
    copies: usize,
    /// Copies sent once it had its final response: each is answered again (RFC 3261
    /// §17.2.2); one sent while it waits for its answer is absorbed.
    copies_after_final: usize,
    /// When it was first sent: its sender retransmits it only until timer F (64·T1).
    sent_ms: u64,
    finals: Vec<u16>,
    sends: usize,
    delivered: bool,
    reported: usize,
}

/// The far side of one pair: bob's UA and MSRP client.
#[derive(Debug, Default)]
struct Far {
    invites: Vec<Vec<u8>>,
    /// The INVITE we answered 200 and its To tag (for a BYE).
    dialog: Option<(Vec<u8>, String)>,
    conn: Option<MsrpConn>,
    /// SENDs waiting for an answer: the frame and when it was sent.
    sends: Vec<(Vec<u8>, u64)>,
}

struct World {
    h: Harness,
    msgs: BTreeMap<String, Msg>,
    order: Vec<String>,
    far: Vec<Far>,
    next: usize,
    /// Call-IDs of the `gw:delivery_failed` reports seen.
    reports: BTreeSet<String>,
}

fn parsed<R>(bytes: &[u8], f: impl FnOnce(&sip::Message<'_, '_>) -> R) -> Option<R> {
    let mut h = [EMPTY_HEADER; 64];
    let m = sip::parse(bytes, &mut h, Framing::Datagram)
        .ok()?
        .complete()?;
    Some(f(&m))
}

impl World {
    fn message(&mut self, pair: usize, sync: bool) -> String {
        self.next += 1;
        let id = format!("m{}p{pair}", self.next);
        let extra = if sync { "X-Sync: 1\r\n" } else { "" };
        let bytes = format!(
            "MESSAGE sip:bob@{b} SIP/2.0\r\nVia: SIP/2.0/UDP {a};branch=z9hG4bK{id}\r\n\
Max-Forwards: 70\r\nFrom: <sip:alice{pair}@{a}>;tag=t{id}\r\nTo: <sip:bob@{b}>\r\n\
Call-ID: {id}\r\nCSeq: 1 MESSAGE\r\n{extra}Content-Type: text/plain\r\nContent-Length: {}\r\n\r\n{id}",
            id.len(),
            a = alice(pair),
            b = bob(pair),
        );
        self.msgs.insert(
            id.clone(),
            Msg {
                pair,
                sync,
                bytes,
                copies: 0,
                copies_after_final: 0,
                sent_ms: self.h.now_ms(),
                finals: Vec::new(),
                sends: 0,
                delivered: false,
                reported: 0,
            },
        );
        self.order.push(id.clone());
        id
    }

    /// Takes in everything the shards sent, as the far side and the SIP users see it.
    fn absorb(&mut self) {
        for (conn, a) in self.h.take_msrp_connects() {
            let pair = (0..PAIRS).find(|&p| bob_msrp(p) == a).expect("a bob");
            self.far[pair].conn = Some(conn);
        }
        // A connection the gateway closed carries no answers any more.
        for conn in self.h.take_msrp_closes() {
            for far in &mut self.far {
                if far.conn == Some(conn) {
                    far.conn = None;
                    far.sends.clear();
                }
            }
        }
        let sent = self.h.take_sent();
        let now = self.h.now_ms();
        for s in &sent {
            match s.dest {
                Dest::Msrp(conn) => {
                    let Some(pair) = (0..PAIRS).find(|&p| self.far[p].conn == Some(conn)) else {
                        continue;
                    };
                    for f in frames_on(std::slice::from_ref(s), conn) {
                        let is_send = with_frame(&f, |fr| {
                            matches!(
                                fr.start,
                                StartLine::Request {
                                    method: Method::Send
                                }
                            )
                        });
                        if !is_send {
                            continue;
                        }
                        let body = with_frame(&f, |fr| fr.body.unwrap_or_default().to_vec());
                        if let Some(m) = self.msgs.get_mut(&String::from_utf8_lossy(&body)[..]) {
                            m.sends += 1;
                        }
                        self.far[pair].sends.push((f, now));
                    }
                }
                _ => self.sip(s),
            }
        }
    }

    fn sip(&mut self, s: &Sent) {
        let Some((status, method, call_id)) = parsed(&s.bytes, |m| {
            (
                m.status_code(),
                m.method().map(<[u8]>::to_vec),
                m.call_id().unwrap_or_default().to_vec(),
            )
        }) else {
            return;
        };
        let call_id = String::from_utf8_lossy(&call_id).into_owned();
        if let Some(code) = status {
            if code >= 200 {
                if let Some(m) = self.msgs.get_mut(&call_id) {
                    m.finals.push(code);
                }
            }
            return;
        }
        let method = method.unwrap_or_default();
        let peer = s.peer();
        if peer == addr(REPORTER) && method == b"MESSAGE" {
            // A retransmission (the same Call-ID) is the same report.
            if self.reports.insert(call_id) {
                let body = parsed(&s.bytes, |m| m.body().to_vec()).unwrap_or_default();
                if let Some(m) = self.msgs.get_mut(&String::from_utf8_lossy(&body)[..]) {
                    m.reported += 1;
                }
            }
            let ok = answer(&s.bytes, 200, "r", "", b"");
            self.h.datagram(0, peer, &ok);
            return;
        }
        let Some(pair) = (0..PAIRS).find(|&p| bob(p) == peer) else {
            return;
        };
        match &method[..] {
            b"INVITE" => self.far[pair].invites.push(s.bytes.clone()),
            b"BYE" | b"CANCEL" => {
                let ok = answer(&s.bytes, 200, "", "", b"");
                self.h.datagram(0, peer, &ok);
            }
            _ => {}
        }
    }

    fn run(&mut self, op: &Op) {
        let shards = self.h.shards();
        match *op {
            Op::Message { pair, sync, shard } => {
                let id = self.message(pair, sync);
                let m = self.msgs.get_mut(&id).expect("made");
                m.copies += 1;
                let bytes = m.bytes.clone();
                self.h
                    .datagram(shard % shards, alice(pair), bytes.as_bytes());
            }
            Op::Retransmit { which, shard } => {
                let Some(id) = self.order.get(which).cloned() else {
                    return;
                };
                let now = self.h.now_ms();
                let m = self.msgs.get_mut(&id).expect("made");
                if now >= m.sent_ms + TIMER_F_MS {
                    return;
                }
                m.copies += 1;
                if !m.finals.is_empty() {
                    m.copies_after_final += 1;
                }
                let (bytes, pair) = (m.bytes.clone(), m.pair);
                self.h
                    .datagram(shard % shards, alice(pair), bytes.as_bytes());
            }
            Op::AnswerInvite { pair, how } => {
                let Some(inv) = self.far[pair].invites.pop() else {
                    return;
                };
                let tag = format!("b{pair}x{}", self.next);
                let (code, body) = match how {
                    0 | 1 => {
                        let path = format!("msrp://{}/bob{pair};tcp", bob_msrp(pair));
                        (200, sdp(&path, "passive", "text/plain"))
                    }
                    2 => (486, Vec::new()),
                    _ => (180, Vec::new()),
                };
                let contact = format!("Contact: <sip:bob@{}>\r\n", bob(pair));
                let resp = answer(&inv, code, &tag, &contact, &body);
                if code == 200 {
                    self.far[pair].dialog = Some((inv, tag));
                }
                self.h.datagram(0, bob(pair), &resp);
            }
            Op::AnswerSends { pair, how } => {
                let (Some(conn), sends) = (
                    self.far[pair].conn,
                    std::mem::take(&mut self.far[pair].sends),
                ) else {
                    return;
                };
                let now = self.h.now_ms();
                for (f, at) in sends {
                    let code = match how {
                        0 | 1 => 200,
                        2 => 415,
                        _ => continue,
                    };
                    if code == 200 && now < at + MSRP_TIMEOUT_MS {
                        let body = with_frame(&f, |fr| fr.body.unwrap_or_default().to_vec());
                        if let Some(m) = self.msgs.get_mut(&String::from_utf8_lossy(&body)[..]) {
                            m.delivered = true;
                        }
                    }
                    let resp = with_frame(&f, |fr| {
                        let mut out = Vec::new();
                        crate::msrp::write::write_response(
                            fr,
                            code,
                            b"",
                            b"msrp://x/y;tcp",
                            &mut out,
                        );
                        out
                    });
                    self.h.msrp_frame(usize::from(conn.shard), conn, &resp);
                }
            }
            Op::Close { pair } => {
                if let Some(conn) = self.far[pair].conn.take() {
                    self.far[pair].sends.clear();
                    self.h.msrp_closed(conn);
                }
            }
            Op::Bye { pair, shard } => {
                let Some((inv, tag)) = self.far[pair].dialog.take() else {
                    return;
                };
                let Some((call_id, from_tag, from)) = parsed(&inv, |m| {
                    (
                        String::from_utf8_lossy(m.call_id().unwrap_or_default()).into_owned(),
                        String::from_utf8_lossy(m.from_tag().unwrap_or_default()).into_owned(),
                        String::from_utf8_lossy(m.from().map(|f| f.uri.raw).unwrap_or_default())
                            .into_owned(),
                    )
                }) else {
                    return;
                };
                let bye = format!(
                    "BYE sip:gw@192.0.2.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {b};branch=z9hG4bKbye{tag}\r\n\
Max-Forwards: 70\r\nFrom: <sip:bob@{b}>;tag={tag}\r\nTo: <{from}>;tag={from_tag}\r\nCall-ID: {call_id}\r\n\
CSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
                    b = bob(pair)
                );
                self.h.datagram(shard % shards, bob(pair), bye.as_bytes());
            }
            Op::Advance { ms } => self.h.advance(ms),
        }
        self.absorb();
    }

    fn check_running(&self) {
        for (id, m) in &self.msgs {
            assert!(
                m.finals.len() <= m.copies,
                "{id}: more answers than copies {m:?}"
            );
            assert!(m.sends <= 1, "{id}: sent twice on the MSRP side {m:?}");
            assert!(m.reported <= 1, "{id}: reported twice {m:?}");
            if !m.sync {
                assert!(
                    m.finals.iter().all(|&c| c == 202),
                    "{id}: async answers 202 {m:?}"
                );
            }
            if let Some(first) = m.finals.first() {
                assert!(
                    m.finals.iter().all(|c| c == first),
                    "{id}: answers differ {m:?}"
                );
            }
        }
    }

    fn check_end(&self) {
        self.check_running();
        for (id, m) in &self.msgs {
            assert_eq!(
                m.finals.len(),
                1 + m.copies_after_final,
                "{id}: answered once, and again for each later copy {m:?}"
            );
            if m.sync {
                if m.finals[0] == 200 {
                    assert!(m.delivered, "{id}: 200 without a delivery {m:?}");
                } else {
                    assert!(m.finals[0] >= 400, "{id}: {m:?}");
                }
            } else {
                assert!(
                    m.delivered ^ (m.reported == 1),
                    "{id}: delivered or reported, exactly one {m:?}"
                );
            }
        }
        let sessions: usize = (0..self.h.shards())
            .map(|i| self.h.core(i).gateway_sessions())
            .sum();
        assert_eq!(sessions, 0, "sessions left");
        let txs: u64 = (0..self.h.shards())
            .map(|i| {
                self.h
                    .stats(i)
                    .sip_transactions
                    .load(std::sync::atomic::Ordering::Relaxed)
            })
            .sum();
        assert_eq!(txs, 0, "transactions left");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn every_message_gets_one_outcome_and_nothing_is_left(
        shards in 1..=3usize,
        ops in prop::collection::vec(op(), 1..60),
    ) {
        let mut w = World {
            h: Harness::new(shards, CONFIG).unwrap(),
            msgs: BTreeMap::new(),
            order: Vec::new(),
            far: (0..PAIRS).map(|_| Far::default()).collect(),
            next: 0,
            reports: BTreeSet::new(),
        };
        for op in &ops {
            w.run(op);
            w.check_running();
        }
        // The end: every connection goes, the far side answers no more, and the clock moves
        // past every deadline (setup, sync, queue age, transactions).
        for pair in 0..PAIRS {
            w.run(&Op::Close { pair });
        }
        w.run(&Op::Advance { ms: 600_000 });
        w.check_end();
    }
}
