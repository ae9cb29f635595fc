//! Tests of the repository: one per outcome, then the repository against a trivially correct
//! model on a virtual clock.

use super::*;
use proptest::prelude::*;
use sipshard_parser::sip::{parse, Framing, EMPTY_HEADER};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV6};

fn ctx(port: u16, received_ms: u64) -> ReceiveContext {
    ReceiveContext {
        source: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)), port),
        local: LocalSocket {
            shard: 0,
            listen: 3,
        },
        transport: Transport::Udp,
        received_ms,
    }
}

/// A MESSAGE request with these fields.
fn message(call_id: &str, cseq: u32, method: &str, branch: Option<&str>, body: &str) -> Vec<u8> {
    let via_params = branch.map(|b| format!(";branch={b}")).unwrap_or_default();
    format!(
        "{method} sip:bob@example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.7:5060{via_params}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@example.com>;tag=1928301774\r\n\
         To: <sip:bob@example.com>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq} {method}\r\n\
         Content-Type: text/plain\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Parses `buf` and pushes it, as the runtime does.
fn push(repo: &mut Repository, buf: &[u8], msgid: &str, now: u64) -> PushOutcome {
    push_with(repo, buf, msgid, None, ctx(5060, now), now)
}

fn push_with(
    repo: &mut Repository,
    buf: &[u8],
    msgid: &str,
    expire: Option<u64>,
    context: ReceiveContext,
    now: u64,
) -> PushOutcome {
    let mut headers = [EMPTY_HEADER; 32];
    let parsed = parse(buf, &mut headers, Framing::Datagram)
        .unwrap()
        .complete()
        .unwrap();
    let m = MessageRef::from_parsed(&parsed, context).unwrap();
    repo.push(&m, msgid.as_bytes(), expire, now)
}

fn retransmitted_msgid(repo: &Repository, buf: &[u8]) -> Option<Vec<u8>> {
    let mut headers = [EMPTY_HEADER; 32];
    let parsed = parse(buf, &mut headers, Framing::Datagram)
        .unwrap()
        .complete()
        .unwrap();
    let m = MessageRef::from_parsed(&parsed, ctx(5060, 0)).unwrap();
    repo.retransmitted_msgid(&m).map(<[u8]>::to_vec)
}

fn repo() -> Repository {
    Repository::new(
        RepoConfig {
            expire_ms: 1000,
            tick_ms: 10,
            ..RepoConfig::default()
        },
        0,
    )
}

#[test]
fn item_overhead_layout() {
    // The slab entry (wheel links, generation, deadline, item) stays at 48 bytes.
    assert_eq!(std::mem::size_of::<Item>(), 24);
    assert_eq!(std::mem::size_of::<Option<Item>>(), 24);
}

#[test]
fn push_pull_remove() {
    let mut r = repo();
    let m = message("a@h", 1, "MESSAGE", Some("z9hG4bK1"), "hello");
    assert_eq!(push(&mut r, &m, "m1", 5), PushOutcome::Stored);
    assert!(r.check_callid(b"a@h"));
    assert!(r.check(b"a@h", b"m1"));
    assert!(!r.check(b"a@h", b"m2"));
    assert!(!r.check_callid(b"b@h"));
    let p = r.pull(b"a@h", b"m1", true).unwrap();
    assert_eq!(p.message(), &m[..]);
    assert_eq!(p.msgid(), b"m1");
    assert_eq!(p.call_id(), b"a@h");
    assert_eq!(p.context(), ctx(5060, 5));
    assert_eq!(p.deadline_ms(), 1005);
    assert_eq!(p.view().cseq(), 1);
    assert_eq!(p.view().cseq_method(), b"MESSAGE");
    assert_eq!(p.view().branch(), Some(&b"z9hG4bK1"[..]));
    assert!(r.pull(b"a@h", b"m1", true).is_none());
    assert!(!r.check_callid(b"a@h"));
    assert_eq!(r.len(), 0);
    assert_eq!(r.bytes(), 0);
    // The pulled item's timer was cancelled.
    let mut out = Vec::new();
    assert_eq!(r.tick(10_000, &mut out), 0);
    let s = r.stats();
    assert_eq!((s.stored, s.pulled, s.expired, s.items), (1, 1, 0, 0));
}

#[test]
fn pull_keep_returns_a_copy() {
    let mut r = repo();
    let m = message("a@h", 1, "MESSAGE", Some("z9hG4bK1"), "hello");
    assert_eq!(push(&mut r, &m, "m1", 0), PushOutcome::Stored);
    let p = r.pull(b"a@h", b"m1", false).unwrap();
    assert_eq!(p.message(), &m[..]);
    assert!(r.check(b"a@h", b"m1"));
    assert_eq!(r.get(b"a@h", b"m1").unwrap().message(), &m[..]);
    assert_eq!(r.stats().pulled, 1);
    assert_eq!(r.bytes(), m.len() + 2);
}

#[test]
fn duplicate_keeps_the_old_item() {
    let mut r = repo();
    let a = message("a@h", 1, "MESSAGE", Some("z9hG4bK1"), "first");
    let b = message("a@h", 2, "MESSAGE", Some("z9hG4bK2"), "second");
    assert_eq!(push(&mut r, &a, "m", 0), PushOutcome::Stored);
    assert_eq!(push(&mut r, &b, "m", 0), PushOutcome::Duplicate);
    assert_eq!(r.get(b"a@h", b"m").unwrap().message(), &a[..]);
    assert_eq!(r.stats().duplicates, 1);
    assert_eq!(r.len(), 1);
}

#[test]
fn retransmissions_are_absorbed() {
    let mut r = repo();
    let a = message("a@h", 1, "INVITE", Some("z9hG4bK1"), "");
    assert_eq!(push(&mut r, &a, "m1", 0), PushOutcome::Stored);
    // Same message, new msgid (the config makes a fresh one per message).
    assert_eq!(push(&mut r, &a, "m2", 0), PushOutcome::Retransmission);
    // ... and the msgid it was stored under is there for the answer.
    assert_eq!(retransmitted_msgid(&r, &a).as_deref(), Some(&b"m1"[..]));
    let other = message("a@h", 9, "INVITE", Some("z9hG4bK9"), "");
    assert_eq!(retransmitted_msgid(&r, &other), None);
    // A new transaction: other branch, or other CSeq, or other method.
    let b = message("a@h", 1, "INVITE", Some("z9hG4bK2"), "");
    let c = message("a@h", 2, "INVITE", Some("z9hG4bK1"), "");
    let d = message("a@h", 1, "CANCEL", Some("z9hG4bK1"), "");
    assert_eq!(push(&mut r, &b, "m3", 0), PushOutcome::Stored);
    assert_eq!(push(&mut r, &c, "m4", 0), PushOutcome::Stored);
    assert_eq!(push(&mut r, &d, "m5", 0), PushOutcome::Stored);
    // Same fields under another Call-ID is not a retransmission.
    let e = message("b@h", 1, "INVITE", Some("z9hG4bK1"), "");
    assert_eq!(push(&mut r, &e, "m6", 0), PushOutcome::Stored);
    // Without a branch, CSeq alone decides.
    let f = message("c@h", 7, "MESSAGE", None, "x");
    let g = message("c@h", 7, "MESSAGE", None, "y");
    assert_eq!(push(&mut r, &f, "m7", 0), PushOutcome::Stored);
    assert_eq!(push(&mut r, &g, "m8", 0), PushOutcome::Retransmission);
    let s = r.stats();
    assert_eq!((s.stored, s.retransmissions, s.items), (6, 2, 6));
}

#[test]
fn retransmission_scan_is_bounded() {
    let mut r = repo();
    let first = message("a@h", 0, "MESSAGE", Some("z9hG4bK0"), "");
    assert_eq!(push(&mut r, &first, "m0", 0), PushOutcome::Stored);
    for i in 1..RETRANSMISSION_SCAN as u32 {
        let m = message("a@h", i, "MESSAGE", Some(&format!("z9hG4bK{i}")), "");
        assert_eq!(push(&mut r, &m, &format!("m{i}"), 0), PushOutcome::Stored);
    }
    // The oldest is still among the newest RETRANSMISSION_SCAN.
    assert_eq!(push(&mut r, &first, "x", 0), PushOutcome::Retransmission);
    let m = message("a@h", 99, "MESSAGE", Some("z9hG4bK99"), "");
    assert_eq!(push(&mut r, &m, "m99", 0), PushOutcome::Stored);
    // Now it is not: stored again (harmless, and it keeps a push O(1)).
    assert_eq!(push(&mut r, &first, "x", 0), PushOutcome::Stored);
}

#[test]
fn full_by_items_and_by_bytes() {
    // Same length as the messages pushed below.
    let m = message("c0@h", 1, "MESSAGE", Some("z9hG4bK1"), "hello");
    let mut r = Repository::new(
        RepoConfig {
            max_items: 2,
            max_bytes: 3 * (m.len() + 2),
            ..RepoConfig::default()
        },
        0,
    );
    for (i, want) in [
        PushOutcome::Stored,
        PushOutcome::Stored,
        PushOutcome::Full(FullReason::Items),
    ]
    .into_iter()
    .enumerate()
    {
        let m = message(&format!("c{i}@h"), 1, "MESSAGE", Some("z9hG4bK1"), "hello");
        assert_eq!(push(&mut r, &m, "m1", 0), want);
    }
    assert_eq!(r.len(), 2);
    let mut r = Repository::new(
        RepoConfig {
            max_bytes: 2 * (m.len() + 2) + 1,
            ..RepoConfig::default()
        },
        0,
    );
    for (i, want) in [
        PushOutcome::Stored,
        PushOutcome::Stored,
        PushOutcome::Full(FullReason::Bytes),
    ]
    .into_iter()
    .enumerate()
    {
        let m = message(&format!("c{i}@h"), 1, "MESSAGE", Some("z9hG4bK1"), "hello");
        assert_eq!(push(&mut r, &m, "m1", 0), want);
    }
    assert_eq!(r.bytes(), 2 * (m.len() + 2));
    assert_eq!(r.stats().full, 1);
    // Room again after a removal.
    assert!(r.rm(b"c0@h", b"m1"));
    let m = message("c9@h", 1, "MESSAGE", Some("z9hG4bK1"), "hello");
    assert_eq!(push(&mut r, &m, "m1", 0), PushOutcome::Stored);
}

#[test]
fn rm_says_whether_it_removed() {
    let mut r = repo();
    let m = message("a@h", 1, "MESSAGE", Some("z9hG4bK1"), "hello");
    assert!(!r.rm(b"a@h", b"m1"));
    assert_eq!(push(&mut r, &m, "m1", 0), PushOutcome::Stored);
    assert!(r.rm(b"a@h", b"m1"));
    assert!(!r.rm(b"a@h", b"m1"));
    assert_eq!(r.stats().removed, 1);
    assert!(r.pull(b"a@h", b"m1", false).is_none());
    assert!(r.get(b"a@h", b"m1").is_none());
}

#[test]
fn call_id_lists_survive_any_removal_order() {
    let mut r = repo();
    for i in 0..40u32 {
        let m = message("a@h", i, "MESSAGE", Some(&format!("z9hG4bK{i}")), "x");
        assert_eq!(push(&mut r, &m, &format!("m{i}"), 0), PushOutcome::Stored);
    }
    // Newest, oldest, middle ones.
    for i in [39u32, 0, 20, 21, 38, 1, 5] {
        assert!(r.rm(b"a@h", format!("m{i}").as_bytes()));
    }
    for i in 0..40u32 {
        let gone = [39u32, 0, 20, 21, 38, 1, 5].contains(&i);
        assert_eq!(r.check(b"a@h", format!("m{i}").as_bytes()), !gone, "m{i}");
    }
    assert!(r.check_callid(b"a@h"));
    for i in 0..40u32 {
        r.rm(b"a@h", format!("m{i}").as_bytes());
    }
    assert!(!r.check_callid(b"a@h"));
    assert!(r.is_empty());
    assert_eq!(r.bytes(), 0);
}

#[test]
fn expiry_hands_items_back_at_the_first_tick_after_the_deadline() {
    let mut r = repo();
    let a = message("a@h", 1, "MESSAGE", Some("z9hG4bK1"), "a");
    let b = message("a@h", 2, "MESSAGE", Some("z9hG4bK2"), "b");
    let c = message("c@h", 1, "MESSAGE", Some("z9hG4bK3"), "c");
    // Two items of one Call-ID expiring in the same tick (the case that hung siprepo's timer).
    assert_eq!(push(&mut r, &a, "m1", 100), PushOutcome::Stored);
    assert_eq!(push(&mut r, &b, "m2", 100), PushOutcome::Stored);
    assert_eq!(
        push_with(&mut r, &c, "m3", Some(5), ctx(1, 100), 100),
        PushOutcome::Stored
    );
    let mut out = Vec::new();
    assert_eq!(r.tick(104, &mut out), 0);
    assert_eq!(r.tick(110, &mut out), 1);
    assert_eq!(out[0].msgid(), b"m3");
    assert_eq!(out[0].context(), ctx(1, 100));
    out.clear();
    assert_eq!(r.tick(1099, &mut out), 0);
    assert_eq!(r.tick(1100, &mut out), 2);
    let mut ids: Vec<&[u8]> = out.iter().map(|e| e.msgid()).collect();
    ids.sort_unstable();
    assert_eq!(ids, vec![&b"m1"[..], b"m2"]);
    assert!(r.is_empty());
    assert!(!r.check_callid(b"a@h"));
    assert_eq!(r.stats().expired, 3);
    assert_eq!(r.next_deadline(), None);
}

#[test]
fn contexts_round_trip() {
    let mut r = repo();
    let m = message("a@h", 1, "MESSAGE", Some("z9hG4bK1"), "a");
    let v6 = ReceiveContext {
        source: SocketAddr::V6(SocketAddrV6::new(
            "fe80::1:2:3".parse().unwrap(),
            5061,
            7,
            42,
        )),
        local: LocalSocket {
            shard: 1023,
            listen: 65535,
        },
        transport: Transport::Tcp,
        // Received after the deadline (a clock the caller keeps elsewhere): still exact.
        received_ms: u64::MAX - 3,
    };
    assert_eq!(
        push_with(&mut r, &m, "m1", None, v6, 10),
        PushOutcome::Stored
    );
    assert_eq!(r.get(b"a@h", b"m1").unwrap().context(), v6);
    assert_eq!(r.pull(b"a@h", b"m1", true).unwrap().context(), v6);
}

#[test]
fn keys_outside_the_message_are_copied() {
    let mut r = repo();
    let bytes = b"opaque bytes".to_vec();
    let call_id = b"elsewhere@h".to_vec();
    let method = b"FOO".to_vec();
    let branch = b"z9hG4bKx".to_vec();
    let m = MessageRef {
        bytes: &bytes,
        call_id: &call_id,
        cseq: 4_000_000_000,
        cseq_method: &method,
        branch: Some(&branch),
        context: ctx(9, 0),
    };
    assert_eq!(r.push(&m, b"id", None, 0), PushOutcome::Stored);
    assert_eq!(
        r.bytes(),
        bytes.len() + 2 + call_id.len() + method.len() + branch.len()
    );
    let v = r.get(b"elsewhere@h", b"id").unwrap();
    assert_eq!(v.message(), &bytes[..]);
    assert_eq!(v.call_id(), &call_id[..]);
    assert_eq!(v.cseq(), 4_000_000_000);
    assert_eq!(v.cseq_method(), b"FOO");
    assert_eq!(v.branch(), Some(&branch[..]));
    assert_eq!(v.bytes(), r.bytes());
    assert_eq!(r.push(&m, b"id2", None, 0), PushOutcome::Retransmission);
}

#[test]
fn list_pages_are_stable() {
    let mut r = repo();
    for i in 0..10 {
        let m = message(&format!("c{i}@h"), 1, "MESSAGE", Some("z9hG4bK1"), "x");
        assert_eq!(push(&mut r, &m, "m", 0), PushOutcome::Stored);
    }
    let p1 = r.list(ListCursor::START, 4);
    assert_eq!(p1.items.len(), 4);
    let seen1: Vec<Vec<u8>> = p1.items.iter().map(|v| v.call_id().to_vec()).collect();
    let next = p1.next.unwrap();
    // Changes between pages: remove a listed and an unlisted item, add one.
    assert!(r.rm(&seen1[0], b"m"));
    let unlisted = r.list(next, 1).items[0].call_id().to_vec();
    assert!(r.rm(&unlisted, b"m"));
    let m = message("new@h", 1, "MESSAGE", Some("z9hG4bK1"), "x");
    assert_eq!(push(&mut r, &m, "m", 0), PushOutcome::Stored);
    let cursor = ListCursor::from_u64(next.to_u64());
    let mut seen: Vec<Vec<u8>> = seen1.clone();
    let mut cursor = Some(cursor);
    while let Some(c) = cursor {
        let p = r.list(c, 3);
        seen.extend(p.items.iter().map(|v| v.call_id().to_vec()));
        cursor = p.next;
    }
    let set: BTreeSet<Vec<u8>> = seen.iter().cloned().collect();
    assert_eq!(set.len(), seen.len(), "an item was listed twice");
    for i in 0..10 {
        let c = format!("c{i}@h").into_bytes();
        if c != unlisted {
            assert!(set.contains(&c), "c{i}@h missing");
        }
    }
    assert!(r.list(ListCursor::from_u64(u64::MAX), 10).items.is_empty());
}

// ---------------------------------------------------------------------------------------------
// The model.

const CALL_IDS: [&str; 4] = ["a@h", "b@h", "c@host.example", "d"];
const METHODS: [&str; 3] = ["MESSAGE", "INVITE", "X-CUSTOM"];

#[derive(Debug, Clone)]
enum Op {
    Push {
        call: usize,
        msgid: u8,
        cseq: u32,
        method: usize,
        branch: Option<u32>,
        expire: Option<u64>,
        pad: usize,
        inline: bool,
        v6: bool,
        tcp: bool,
        age: u64,
    },
    /// Push again the keys of the n-th stored item (a retransmission unless it is too old in
    /// its Call-ID), under a new msgid.
    Replay {
        pick: usize,
        msgid: u8,
    },
    Pull {
        call: usize,
        msgid: u8,
        remove: bool,
    },
    Rm {
        call: usize,
        msgid: u8,
    },
    Check {
        call: usize,
        msgid: u8,
    },
    Tick(u64),
}

/// Operations; `crowded` makes one Call-ID hold many items (past [`RETRANSMISSION_SCAN`]) with
/// few retransmission key clashes and short clock steps.
fn op(crowded: bool) -> impl Strategy<Value = Op> {
    let (narrow_cseq, tick_weights) = if crowded {
        (0, (1, 0, 0))
    } else {
        (1, (6, 2, 1))
    };
    let push = (
        (
            // Mostly one Call-ID, so that its list grows.
            prop_oneof![2 => Just(0), 1 => 0..CALL_IDS.len()],
            any::<u8>(),
            prop_oneof![narrow_cseq => 1u32..3, 1 => 0u32..1_000_000],
        ),
        (
            0..METHODS.len(),
            prop_oneof![
                Just(None),
                (0u32..3).prop_map(Some),
                any::<u32>().prop_map(Some)
            ],
            prop_oneof![
                Just(None),
                (0u64..3000).prop_map(Some),
                // Past the wheel's top level (46.6 h at 10 ms): the overflow list.
                (0u64..20 * 86_400_000).prop_map(Some)
            ],
        ),
        (
            0usize..400,
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            0u64..50,
        ),
    )
        .prop_map(
            |((call, msgid, cseq), (method, branch, expire), (pad, inline, v6, tcp, age))| {
                Op::Push {
                    call,
                    msgid,
                    cseq,
                    method,
                    branch,
                    expire,
                    pad,
                    inline,
                    v6,
                    tcp,
                    age,
                }
            },
        );
    prop_oneof![
        6 => push,
        2 => (any::<usize>(), any::<u8>()).prop_map(|(pick, msgid)| Op::Replay { pick, msgid }),
        2 => (0..CALL_IDS.len(), any::<u8>(), any::<bool>())
            .prop_map(|(call, msgid, remove)| Op::Pull { call, msgid, remove }),
        1 => (0..CALL_IDS.len(), any::<u8>()).prop_map(|(call, msgid)| Op::Rm { call, msgid }),
        1 => (0..CALL_IDS.len(), any::<u8>()).prop_map(|(call, msgid)| Op::Check { call, msgid }),
        3 => prop_oneof![
            tick_weights.0 => 0u64..30,
            tick_weights.1 => 0u64..2000,
            tick_weights.2 => 0u64..30 * 86_400_000
        ]
        .prop_map(Op::Tick),
    ]
}

/// A message carrying the given keys, and where they are in it.
struct Built {
    bytes: Vec<u8>,
    call_id: std::ops::Range<usize>,
    method: std::ops::Range<usize>,
    branch: Option<std::ops::Range<usize>>,
}

fn build(call_id: &str, cseq: u32, method: &str, branch: Option<&str>, pad: usize) -> Built {
    let mut b = Vec::new();
    b.extend_from_slice(method.as_bytes());
    b.extend_from_slice(b" sip:x@y SIP/2.0\r\nVia: SIP/2.0/UDP h");
    let branch = branch.map(|br| {
        b.extend_from_slice(b";branch=");
        let start = b.len();
        b.extend_from_slice(br.as_bytes());
        start..b.len()
    });
    b.extend_from_slice(b"\r\nCall-ID: ");
    let cs = b.len();
    b.extend_from_slice(call_id.as_bytes());
    let call_id = cs..b.len();
    b.extend_from_slice(format!("\r\nCSeq: {cseq} ").as_bytes());
    let ms = b.len();
    b.extend_from_slice(method.as_bytes());
    let method = ms..b.len();
    b.extend_from_slice(b"\r\n\r\n");
    b.extend(std::iter::repeat_n(b'.', pad));
    Built {
        bytes: b,
        call_id,
        method,
        branch,
    }
}

#[derive(Debug, Clone)]
struct ModelItem {
    message: Vec<u8>,
    cseq: u32,
    method: Vec<u8>,
    branch: Option<Vec<u8>>,
    deadline: u64,
    seq: u64,
    context: ReceiveContext,
    bytes: usize,
}

type Key = (Vec<u8>, Vec<u8>);

#[derive(Default)]
struct Model {
    items: BTreeMap<Key, ModelItem>,
    stats: RepoStats,
    seq: u64,
}

impl Model {
    fn push(&mut self, key: Key, item: ModelItem, cfg: &RepoConfig) -> PushOutcome {
        if self.items.contains_key(&key) {
            self.stats.duplicates += 1;
            return PushOutcome::Duplicate;
        }
        let mut same_call: Vec<&ModelItem> = self
            .items
            .iter()
            .filter(|(k, _)| k.0 == key.0)
            .map(|(_, v)| v)
            .collect();
        same_call.sort_by_key(|v| std::cmp::Reverse(v.seq));
        if same_call
            .iter()
            .take(RETRANSMISSION_SCAN)
            .any(|v| v.cseq == item.cseq && v.method == item.method && v.branch == item.branch)
        {
            self.stats.retransmissions += 1;
            return PushOutcome::Retransmission;
        }
        if self.items.len() >= cfg.max_items {
            self.stats.full += 1;
            return PushOutcome::Full(FullReason::Items);
        }
        if self.stats.bytes + item.bytes > cfg.max_bytes {
            self.stats.full += 1;
            return PushOutcome::Full(FullReason::Bytes);
        }
        self.stats.bytes += item.bytes;
        self.stats.stored += 1;
        self.items.insert(key, item);
        PushOutcome::Stored
    }

    fn remove(&mut self, key: &Key) -> Option<ModelItem> {
        let item = self.items.remove(key)?;
        self.stats.bytes -= item.bytes;
        Some(item)
    }
}

fn check_view(v: &ItemView<'_>, key: &Key, m: &ModelItem) -> Result<(), TestCaseError> {
    prop_assert_eq!(v.call_id(), &key.0[..]);
    prop_assert_eq!(v.msgid(), &key.1[..]);
    prop_assert_eq!(v.message(), &m.message[..]);
    prop_assert_eq!(v.cseq(), m.cseq);
    prop_assert_eq!(v.cseq_method(), &m.method[..]);
    prop_assert_eq!(v.branch(), m.branch.as_deref());
    prop_assert_eq!(v.context(), m.context);
    prop_assert_eq!(v.deadline_ms(), m.deadline);
    prop_assert_eq!(v.bytes(), m.bytes);
    Ok(())
}

/// Runs `ops` on a repository and on the model, comparing every result, the counters, the
/// expired items at each tick and the whole listing after every step.
fn run_model(cfg: RepoConfig, start: u64, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let tick = cfg.tick_ms;
    let mut repo = Repository::new(cfg.clone(), start);
    let mut model = Model::default();
    let mut now = start;
    let mut out = Vec::new();
    for op in ops {
        match op {
            Op::Push {
                call,
                msgid,
                cseq,
                method,
                branch,
                expire,
                pad,
                inline,
                v6,
                tcp,
                age,
            } => {
                let call_id = CALL_IDS[call];
                let method = METHODS[method];
                let branch = branch.map(|b| format!("z9hG4bK{b}"));
                let built = build(call_id, cseq, method, branch.as_deref(), pad);
                let msgid = format!("id{msgid}").into_bytes();
                let source = if v6 {
                    SocketAddr::new(
                        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, cseq as u16)),
                        5060,
                    )
                } else {
                    SocketAddr::new(IpAddr::V4(Ipv4Addr::from(cseq)), pad as u16)
                };
                let context = ReceiveContext {
                    source,
                    local: LocalSocket {
                        shard: msgid.len() as u16 * 7,
                        listen: msgid.len() as u16,
                    },
                    transport: if tcp { Transport::Tcp } else { Transport::Udp },
                    received_ms: now.saturating_sub(age),
                };
                let (call_slice, method_slice, branch_slice, copies);
                let (c_owned, m_owned, b_owned) = (
                    call_id.as_bytes().to_vec(),
                    method.as_bytes().to_vec(),
                    branch.clone().map(String::into_bytes),
                );
                if inline {
                    call_slice = &built.bytes[built.call_id.clone()];
                    method_slice = &built.bytes[built.method.clone()];
                    branch_slice = built.branch.clone().map(|r| &built.bytes[r]);
                    copies = 0;
                } else {
                    call_slice = &c_owned[..];
                    method_slice = &m_owned[..];
                    branch_slice = b_owned.as_deref();
                    let known = KNOWN_METHODS.contains(&method.as_bytes());
                    copies = c_owned.len()
                        + if known { 0 } else { m_owned.len() }
                        + b_owned.as_ref().map_or(0, Vec::len);
                }
                let m = MessageRef {
                    bytes: &built.bytes,
                    call_id: call_slice,
                    cseq,
                    cseq_method: method_slice,
                    branch: branch_slice,
                    context,
                };
                let got = repo.push(&m, &msgid, expire, now);
                let deadline = now.saturating_add(expire.unwrap_or(cfg.expire_ms));
                let item = ModelItem {
                    message: built.bytes.clone(),
                    cseq,
                    method: method.as_bytes().to_vec(),
                    branch: branch.map(String::into_bytes),
                    deadline,
                    seq: model.seq,
                    context,
                    bytes: built.bytes.len() + msgid.len() + copies,
                };
                model.seq += 1;
                let key = (call_id.as_bytes().to_vec(), msgid);
                let want = model.push(key, item, &cfg);
                prop_assert_eq!(got, want);
            }
            Op::Replay { pick, msgid } => {
                if model.items.is_empty() {
                    continue;
                }
                // An item of the busiest Call-ID, any age: the retransmission scan bound matters.
                let busiest = CALL_IDS
                    .iter()
                    .max_by_key(|c| model.items.keys().filter(|k| k.0 == c.as_bytes()).count())
                    .unwrap()
                    .as_bytes();
                let in_call: Vec<(&Key, &ModelItem)> =
                    model.items.iter().filter(|(k, _)| k.0 == busiest).collect();
                let (key, old) = in_call[pick % in_call.len()];
                let call_id = key.0.clone();
                let old = old.clone();
                let method = String::from_utf8(old.method.clone()).unwrap();
                let branch = old.branch.clone().map(|b| String::from_utf8(b).unwrap());
                let built = build(
                    std::str::from_utf8(&call_id).unwrap(),
                    old.cseq,
                    &method,
                    branch.as_deref(),
                    3,
                );
                let msgid = format!("id{msgid}").into_bytes();
                let m = MessageRef {
                    bytes: &built.bytes,
                    call_id: &built.bytes[built.call_id.clone()],
                    cseq: old.cseq,
                    cseq_method: &built.bytes[built.method.clone()],
                    branch: built.branch.clone().map(|r| &built.bytes[r]),
                    context: old.context,
                };
                let got = repo.push(&m, &msgid, None, now);
                let item = ModelItem {
                    message: built.bytes.clone(),
                    deadline: now.saturating_add(cfg.expire_ms),
                    seq: model.seq,
                    bytes: built.bytes.len() + msgid.len(),
                    ..old
                };
                model.seq += 1;
                let want = model.push((call_id, msgid), item, &cfg);
                prop_assert_eq!(got, want);
            }
            Op::Pull {
                call,
                msgid,
                remove,
            } => {
                let key = (
                    CALL_IDS[call].as_bytes().to_vec(),
                    format!("id{msgid}").into_bytes(),
                );
                let got = repo.pull(&key.0, &key.1, remove);
                let want = if remove {
                    model.remove(&key)
                } else {
                    model.items.get(&key).cloned()
                };
                prop_assert_eq!(got.is_some(), want.is_some());
                if let (Some(g), Some(w)) = (got, want) {
                    model.stats.pulled += 1;
                    check_view(&g.view(), &key, &w)?;
                }
            }
            Op::Rm { call, msgid } => {
                let key = (
                    CALL_IDS[call].as_bytes().to_vec(),
                    format!("id{msgid}").into_bytes(),
                );
                let want = model.remove(&key).is_some();
                if want {
                    model.stats.removed += 1;
                }
                prop_assert_eq!(repo.rm(&key.0, &key.1), want);
            }
            Op::Check { call, msgid } => {
                let key = (
                    CALL_IDS[call].as_bytes().to_vec(),
                    format!("id{msgid}").into_bytes(),
                );
                prop_assert_eq!(repo.check(&key.0, &key.1), model.items.contains_key(&key));
                let any = model.items.keys().any(|k| k.0 == key.0);
                prop_assert_eq!(repo.check_callid(&key.0), any);
                match (repo.get(&key.0, &key.1), model.items.get(&key)) {
                    (Some(v), Some(m)) => check_view(&v, &key, m)?,
                    (None, None) => {}
                    (g, w) => prop_assert!(false, "get: {:?} vs {:?}", g, w),
                }
            }
            Op::Tick(step) => {
                now = now.saturating_add(step);
                out.clear();
                let n = repo.tick(now, &mut out);
                prop_assert_eq!(n, out.len());
                let due: Vec<Key> = model
                    .items
                    .iter()
                    .filter(|(_, v)| v.deadline.div_ceil(tick) <= now / tick)
                    .map(|(k, _)| k.clone())
                    .collect();
                let got: BTreeSet<Key> = out
                    .iter()
                    .map(|e| (e.call_id().to_vec(), e.msgid().to_vec()))
                    .collect();
                prop_assert_eq!(got.len(), out.len());
                prop_assert_eq!(
                    &got,
                    &due.iter().cloned().collect::<BTreeSet<Key>>(),
                    "now {}",
                    now
                );
                for e in &out {
                    let key = (e.call_id().to_vec(), e.msgid().to_vec());
                    check_view(&e.view(), &key, &model.items[&key])?;
                }
                for k in due {
                    model.remove(&k);
                    model.stats.expired += 1;
                }
            }
        }
        let want = RepoStats {
            items: model.items.len(),
            ..model.stats
        };
        prop_assert_eq!(repo.stats(), want);
        // Every model item can be found, and the listing shows exactly the model.
        let mut listed = BTreeSet::new();
        let mut cursor = Some(ListCursor::START);
        while let Some(c) = cursor {
            let page = repo.list(c, 5);
            for v in &page.items {
                let key = (v.call_id().to_vec(), v.msgid().to_vec());
                check_view(v, &key, &model.items[&key])?;
                listed.insert(key);
            }
            cursor = page.next;
        }
        prop_assert_eq!(listed.len(), model.items.len());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The repository against a map of (Call-ID, msgid) to item, with the retransmission rule,
    /// the limits and the counters spelled out plainly.
    #[test]
    fn repository_matches_model(
        tick_ms in prop_oneof![Just(1u64), Just(10), 1u64..50],
        start in prop_oneof![Just(0u64), 0u64..1 << 41],
        max_items in prop_oneof![1usize..8, 8usize..64, Just(usize::MAX)],
        expire_ms in prop_oneof![Just(700u64), Just(100_000)],
        max_bytes in prop_oneof![200usize..3000, 3000usize..20_000, Just(usize::MAX)],
        ops in proptest::collection::vec(op(false), 1..150),
    ) {
        let cfg = RepoConfig { max_items, max_bytes, expire_ms, tick_ms, capacity_hint: 4 };
        run_model(cfg, start, ops)?;
    }

    /// The same with one crowded Call-ID and no limits, so that the bounded retransmission
    /// scan and long Call-ID lists are exercised.
    #[test]
    fn repository_matches_model_crowded(
        tick_ms in prop_oneof![Just(1u64), Just(10)],
        ops in proptest::collection::vec(op(true), 1..300),
    ) {
        let cfg = RepoConfig { expire_ms: 100_000, tick_ms, capacity_hint: 0, ..RepoConfig::default() };
        run_model(cfg, 0, ops)?;
    }
}
