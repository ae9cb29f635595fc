//! Model-based test of the transaction layer: random interleavings of many client and server
//! transactions (INVITE and not, UDP and TCP), responses of every class in any order, duplicated
//! requests and ACKs, and clock moves. What RFC 3261 promises is checked on the whole record:
//! every transaction ends exactly once and says nothing after; a client reports one outcome
//! (its final response, or a timeout exactly 64·T1 after it started, or for an INVITE that got a
//! provisional response, 3 minutes after that); a request is retransmitted
//! only on an unreliable transport, only while no response stops it, at the RFC's intervals; and
//! in the end nothing is left, not even a timer.

use super::tests::{request, response, tcp, udp, Bench};
use super::*;
use proptest::prelude::*;
use std::collections::BTreeMap;

#[derive(Debug, Clone)]
enum Op {
    Send { invite: bool, reliable: bool },
    Answer { which: usize, code: u16 },
    Receive { invite: bool, reliable: bool },
    Again { which: usize },
    Respond { which: usize, code: u16 },
    Ack { which: usize },
    Advance { ms: u64 },
}

fn code() -> impl Strategy<Value = u16> {
    prop::sample::select(vec![100u16, 180, 183, 200, 202, 302, 404, 486, 503, 603])
}

fn op() -> impl Strategy<Value = Op> {
    let which = 0..16usize;
    prop_oneof![
        2 => (any::<bool>(), any::<bool>()).prop_map(|(invite, reliable)| Op::Send { invite, reliable }),
        3 => (which.clone(), code()).prop_map(|(which, code)| Op::Answer { which, code }),
        2 => (any::<bool>(), any::<bool>()).prop_map(|(invite, reliable)| Op::Receive { invite, reliable }),
        1 => which.clone().prop_map(|which| Op::Again { which }),
        2 => (which.clone(), code()).prop_map(|(which, code)| Op::Respond { which, code }),
        1 => which.prop_map(|which| Op::Ack { which }),
        3 => (0..20_000u64).prop_map(|ms| Op::Advance { ms }),
    ]
}

struct ClientRec {
    tx: TxId,
    request: Vec<u8>,
    invite: bool,
    reliable: bool,
    start: u64,
    /// When a response arrived that stops the request's retransmission.
    stopped: Option<u64>,
}

struct ServerRec {
    tx: TxId,
    request: Vec<u8>,
    hop: Hop,
}

fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    let timers = Timers::default();
    let mut b = Bench::new();
    let mut clients: Vec<ClientRec> = Vec::new();
    let mut servers: Vec<ServerRec> = Vec::new();
    let mut n = 0u32;
    for op in ops {
        n += 1;
        match *op {
            Op::Send { invite, reliable } => {
                let method = if invite { "INVITE" } else { "MESSAGE" };
                let req = request(method, &format!("z9hG4bKc{n}"));
                let hop = if reliable { tcp() } else { udp() };
                let tx = b.send(req.clone(), hop).expect("a fresh branch");
                clients.push(ClientRec {
                    tx,
                    request: req,
                    invite,
                    reliable,
                    start: b.now,
                    stopped: None,
                });
            }
            Op::Answer { which, code } if !clients.is_empty() => {
                let i = which % clients.len();
                let c = &mut clients[i];
                let live = !b
                    .events
                    .iter()
                    .any(|(_, e)| *e == TxEvent::Terminated { tx: c.tx });
                let matched = b.receive_response(&response(&c.request, code));
                prop_assert_eq!(
                    matched,
                    live,
                    "a response matches exactly a live transaction"
                );
                if live && c.stopped.is_none() && (c.invite || code >= 200) {
                    c.stopped = Some(b.now);
                }
            }
            Op::Receive { invite, reliable } => {
                let method = if invite { "INVITE" } else { "MESSAGE" };
                let req = request(method, &format!("z9hG4bKs{n}"));
                let hop = if reliable { tcp() } else { udp() };
                let RequestMatch::New(tx) = b.receive_request(&req, hop) else {
                    return Err(TestCaseError::fail("a fresh branch makes a transaction"));
                };
                servers.push(ServerRec {
                    tx,
                    request: req,
                    hop,
                });
            }
            Op::Again { which } if !servers.is_empty() => {
                let s = &servers[which % servers.len()];
                let m = b.receive_request(&s.request.clone(), s.hop);
                prop_assert!(matches!(
                    m,
                    RequestMatch::New(_) | RequestMatch::Retransmission(_)
                ));
                if let RequestMatch::New(tx) = m {
                    // Its transaction had ended: this one is new.
                    let i = which % servers.len();
                    servers[i].tx = tx;
                }
            }
            Op::Respond { which, code } if !servers.is_empty() => {
                let s = &servers[which % servers.len()];
                let bytes = response(&s.request, code);
                b.respond(s.tx, code, bytes);
            }
            Op::Ack { which } if !servers.is_empty() => {
                let s = &servers[which % servers.len()];
                let branch = s.request.split(|&c| c == b'=').nth(1).unwrap_or_default();
                let branch = String::from_utf8_lossy(branch);
                let branch = branch.split("\r\n").next().unwrap_or_default().to_owned();
                let m = b.receive_request(&request("ACK", &branch), s.hop);
                prop_assert_eq!(m, RequestMatch::Ack);
            }
            Op::Advance { ms } => b.run_to(b.now + ms),
            _ => {}
        }
    }
    // Long enough for every timer of every transaction.
    b.run_to(b.now + 200_000);
    prop_assert!(b.t.is_empty(), "transactions left: {}", b.t.len());
    prop_assert_eq!(b.t.next_deadline(), None);

    // Per transaction: its events in order.
    let mut by_tx: BTreeMap<TxId, Vec<(u64, &TxEvent)>> = BTreeMap::new();
    for (t, e) in &b.events {
        let tx = match e {
            TxEvent::Response { tx, .. }
            | TxEvent::Timeout { tx }
            | TxEvent::AckTimeout { tx }
            | TxEvent::Terminated { tx } => *tx,
            TxEvent::Ack { .. } => continue,
        };
        by_tx.entry(tx).or_default().push((*t, e));
    }
    for (tx, events) in &by_tx {
        let ends = events
            .iter()
            .filter(|(_, e)| matches!(e, TxEvent::Terminated { .. }))
            .count();
        prop_assert_eq!(ends, 1, "{:?} ends once", tx);
        prop_assert!(
            matches!(events.last(), Some((_, TxEvent::Terminated { .. }))),
            "{:?} says nothing after its end",
            tx
        );
    }
    for c in &clients {
        let events = by_tx.get(&c.tx).cloned().unwrap_or_default();
        prop_assert!(!events.is_empty(), "every client transaction ends");
        let finals: Vec<u16> = events
            .iter()
            .filter_map(|(_, e)| match e {
                TxEvent::Response { code, .. } if *code >= 200 => Some(*code),
                _ => None,
            })
            .collect();
        let timeouts: Vec<u64> = events
            .iter()
            .filter(|(_, e)| matches!(e, TxEvent::Timeout { .. }))
            .map(|(t, _)| *t)
            .collect();
        // One outcome: a final response (INVITE: 2xx may repeat, each for the dialog to ACK),
        // or a timeout exactly 64·T1 after the start.
        if let Some(&first) = finals.first() {
            prop_assert!(timeouts.is_empty());
            if (200..300).contains(&first) && c.invite {
                prop_assert!(finals.iter().all(|f| (200..300).contains(f)));
            } else {
                prop_assert_eq!(finals.len(), 1, "{:?}", finals);
            }
        } else if let (true, Some(provisional)) = (c.invite, c.stopped) {
            // An INVITE that got a provisional response ends after timer C.
            prop_assert_eq!(timeouts, vec![provisional + 180_000]);
        } else {
            prop_assert_eq!(timeouts, vec![c.start + timers.timeout_ms()]);
        }
        // Retransmissions: none on a stream; otherwise only before a stopping response, each
        // interval T1·2^k (non-INVITE: capped at T2).
        let sends: Vec<u64> = b
            .sent
            .iter()
            .filter(|(_, m)| m == &c.request)
            .map(|(t, _)| *t)
            .collect();
        prop_assert_eq!(sends[0], c.start);
        if c.reliable {
            prop_assert_eq!(sends.len(), 1);
            continue;
        }
        let stop = c.stopped.unwrap_or(u64::MAX);
        for pair in sends.windows(2) {
            let gap = pair[1] - pair[0];
            let allowed =
                (0..8).any(|k| gap == timers.t1_ms << k) && (c.invite || gap <= timers.t2_ms);
            prop_assert!(allowed, "gap {} in {:?}", gap, sends);
            prop_assert!(
                pair[1] <= stop,
                "retransmitted at {} after a response at {}",
                pair[1],
                stop
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn every_transaction_ends_once_with_one_outcome_at_the_rfc_times(
        ops in prop::collection::vec(op(), 1..120),
    ) {
        run(&ops)?;
    }
}
