//! Model-based test of the shard core (as sled tests its trees): random sequences of parks,
//! retransmissions, pulls, removals, checks, clock moves and reloads over 1 to 4 shards, run on
//! the harness and on a trivially correct model of the repository (a map from (Call-ID, msgid)
//! to the sender and the tick the item expires at). After every operation the harness must
//! have sent exactly what the model says, nothing more: so every parked message gets exactly
//! one outcome (pulled, removed or expired), and the shards' item counts match the model.

use super::harness::{Harness, Sent};
use super::tests::{client, config_with_expire, request, trigger, CONFIG};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// The repository's timer tick in `CONFIG` (`timer_interval`).
const TICK_MS: u64 = 100;

#[derive(Debug, Clone)]
enum Op {
    Park {
        shard: usize,
    },
    Retransmit {
        park: usize,
        shard: usize,
    },
    Pull {
        park: usize,
        shard: usize,
        bogus: bool,
    },
    Rm {
        park: usize,
        shard: usize,
    },
    Check {
        park: usize,
        shard: usize,
    },
    Advance {
        ms: u64,
    },
    Reload {
        expire_s: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let shard = 0..4usize;
    let park = 0..64usize;
    prop_oneof![
        4 => shard.clone().prop_map(|shard| Op::Park { shard }),
        1 => (park.clone(), shard.clone()).prop_map(|(park, shard)| Op::Retransmit { park, shard }),
        3 => (park.clone(), shard.clone(), prop::bool::weighted(0.1))
            .prop_map(|(park, shard, bogus)| Op::Pull { park, shard, bogus }),
        1 => (park.clone(), shard.clone()).prop_map(|(park, shard)| Op::Rm { park, shard }),
        1 => (park, shard).prop_map(|(park, shard)| Op::Check { park, shard }),
        2 => (0..4000u64).prop_map(|ms| Op::Advance { ms }),
        1 => (1..=3u64).prop_map(|expire_s| Op::Reload { expire_s }),
    ]
}

/// A message parked by the test: what to resend, and which stored item it is now, if any.
struct Parked {
    bytes: Vec<u8>,
    callid: String,
    source: SocketAddr,
    item: Option<String>,
}

/// The model: live items by (Call-ID, msgid), each with its sender and the tick it expires at.
#[derive(Default)]
struct Model {
    now: u64,
    expire_s: u64,
    live: BTreeMap<(String, String), (SocketAddr, u64)>,
}

impl Model {
    fn store(&mut self, callid: &str, msgid: &str, source: SocketAddr) {
        let deadline = self.now + self.expire_s * 1000;
        let fires = deadline.div_ceil(TICK_MS) * TICK_MS;
        let old = self
            .live
            .insert((callid.to_owned(), msgid.to_owned()), (source, fires));
        assert!(old.is_none(), "msgid {msgid} given twice");
    }
}

/// (peer, status) pairs, sorted: what one operation sent.
fn outcome(sent: &[Sent]) -> Vec<(SocketAddr, u16)> {
    let mut v: Vec<_> = sent
        .iter()
        .map(|s| (s.peer(), s.status().unwrap_or(0)))
        .collect();
    v.sort();
    v
}

fn run(shards: usize, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut h = Harness::new(shards, CONFIG).expect("config");
    let mut m = Model {
        expire_s: 2,
        ..Model::default()
    };
    let mut parked: Vec<Parked> = Vec::new();
    let mut next_port = 10_000u16;
    let mut port = || {
        next_port += 1;
        next_port
    };
    for (step, op) in ops.iter().enumerate() {
        let mut want: Vec<(SocketAddr, u16)> = Vec::new();
        match *op {
            Op::Park { shard } => {
                let p = port();
                let callid = format!("m{p}@example.com");
                let bytes = request("MESSAGE", &callid, 1, p, "");
                h.datagram(shard % shards, client(p), &bytes);
                let sent = h.take_sent();
                prop_assert_eq!(outcome(&sent), vec![(client(p), 202)], "step {}", step);
                let msgid = sent[0].header("X-Repo-Msgid").expect("msgid");
                m.store(&callid, &msgid, client(p));
                parked.push(Parked {
                    bytes,
                    callid,
                    source: client(p),
                    item: Some(msgid),
                });
                continue;
            }
            Op::Retransmit { park, shard } => {
                let n = parked.len().max(1);
                let Some(p) = parked.get_mut(park % n) else {
                    continue;
                };
                let live = p
                    .item
                    .as_ref()
                    .is_some_and(|id| m.live.contains_key(&(p.callid.clone(), id.clone())));
                h.datagram(shard % shards, p.source, &p.bytes);
                let sent = h.take_sent();
                prop_assert_eq!(outcome(&sent), vec![(p.source, 202)], "step {}", step);
                let msgid = sent[0].header("X-Repo-Msgid").expect("msgid");
                if live {
                    // Absorbed: answered with the msgid the first copy is stored under.
                    prop_assert_eq!(Some(&msgid), p.item.as_ref());
                    let rtx = sent[0].header("X-Repo-Retransmission");
                    prop_assert_eq!(rtx.as_deref(), Some("1"));
                } else {
                    // Its item is gone: stored again, as a new item.
                    prop_assert_eq!(sent[0].header("X-Repo-Retransmission"), None);
                    m.store(&p.callid, &msgid, p.source);
                    p.item = Some(msgid);
                }
                continue;
            }
            Op::Pull { park, shard, .. } | Op::Rm { park, shard } | Op::Check { park, shard }
                if !parked.is_empty() =>
            {
                let (kind, bogus) = match *op {
                    Op::Pull { bogus, .. } => ("Pull", bogus),
                    Op::Rm { .. } => ("Rm", false),
                    _ => ("Check", false),
                };
                let p = &parked[park % parked.len()];
                let msgid = match (&p.item, bogus) {
                    (Some(id), false) => id.clone(),
                    _ => "no-such-msgid".to_owned(),
                };
                let key = (p.callid.clone(), msgid.clone());
                let tp = port();
                h.datagram(
                    shard % shards,
                    client(tp),
                    &trigger(kind, &p.callid, &msgid, u32::from(tp), tp),
                );
                match m.live.get(&key).copied() {
                    Some((source, _)) => {
                        want.push((client(tp), 200));
                        if kind == "Pull" {
                            want.push((source, 200));
                        }
                        if kind != "Check" {
                            m.live.remove(&key);
                        }
                    }
                    None => want.push((client(tp), 404)),
                }
            }
            Op::Pull { .. } | Op::Rm { .. } | Op::Check { .. } => continue,
            Op::Advance { ms } => {
                h.advance(ms);
                m.now += ms;
                let now = m.now;
                let due: Vec<_> = m
                    .live
                    .iter()
                    .filter(|(_, (_, fires))| *fires <= now)
                    .map(|(k, (source, _))| (k.clone(), *source))
                    .collect();
                for (k, source) in due {
                    m.live.remove(&k);
                    want.push((source, 408));
                }
            }
            Op::Reload { expire_s } => {
                h.reload(&config_with_expire(expire_s)).expect("reload");
                m.expire_s = expire_s;
            }
        }
        want.sort();
        prop_assert_eq!(outcome(&h.take_sent()), want, "step {}: {:?}", step, op);
        let items: u64 = (0..shards).map(|i| h.core(i).items()).sum();
        prop_assert_eq!(items, m.live.len() as u64, "step {}", step);
        prop_assert!((0..shards).all(|i| h.core(i).waiting_remote() == 0));
    }
    // In the end everything still parked expires, once each.
    h.advance(10_000);
    let mut want: Vec<_> = m.live.values().map(|(source, _)| (*source, 408)).collect();
    want.sort();
    prop_assert_eq!(outcome(&h.take_sent()), want);
    prop_assert!((0..shards).all(|i| h.core(i).items() == 0));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn every_parked_message_gets_exactly_one_outcome(
        shards in 1..=4usize,
        ops in prop::collection::vec(op(), 1..200),
    ) {
        run(shards, &ops)?;
    }
}
