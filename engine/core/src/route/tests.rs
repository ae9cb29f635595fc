//! Compiler and interpreter tests, with a mock host and a toy repository.

use super::*;
use crate::config::{load_str, Overrides};
use sipshard_parser::sip::{parse, Framing, Message, EMPTY_HEADER};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::task::Poll;
use std::time::Duration;

const EXAMPLE: &str = include_str!("../../../../docs/examples/siprepo.toml");

fn program(src: &str) -> Program {
    match load_str(Path::new("test.toml"), src, &Overrides::default()) {
        Ok(l) => l.program,
        Err(e) => panic!("config should load: {e}"),
    }
}

/// The load error as `line:col: message` (file name stripped).
fn load_err(src: &str) -> String {
    match load_str(Path::new("test.toml"), src, &Overrides::default()) {
        Ok(_) => panic!("config should not load:\n{src}"),
        Err(e) => e
            .to_string()
            .strip_prefix("test.toml:")
            .expect("error names the file")
            .to_owned(),
    }
}

fn sip(method: &str, callid: &str, extra: &str) -> Vec<u8> {
    format!(
        "{method} sip:bob@example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-{callid}\r\n\
         From: \"Alice\" <sip:alice@example.com>;tag=a1\r\n\
         To: <sip:bob@example.com>\r\n\
         Call-ID: {callid}\r\n\
         CSeq: 7 {method}\r\n\
         Max-Forwards: 70\r\n\
         {extra}Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

fn response(code: u16, reason: &str) -> Vec<u8> {
    format!(
        "SIP/2.0 {code} {reason}\r\n\
         Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-1\r\n\
         From: <sip:alice@example.com>;tag=a1\r\n\
         To: <sip:bob@example.com>;tag=b2\r\n\
         Call-ID: resp-1\r\n\
         CSeq: 7 MESSAGE\r\n\
         Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// What a host did, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    Reply {
        to: SocketAddr,
        code: u16,
        reason: String,
        headers: Vec<(String, String)>,
    },
    Forward(Target, Vec<HeaderEdit>),
    Push(String, Option<Duration>),
    Pull(String, String, String, bool),
    AsyncPull(String, String, String, String, bool),
    Rm(String, String),
    Check(String, Option<String>),
    Log(LogLevel, String),
    MsrpAnswer(Vec<String>),
    MsgToMsrp(String, String),
}

struct Item {
    bytes: Vec<u8>,
    source: SocketAddr,
    transport: Transport,
}

/// A reply as sent: (to, code, reason, headers).
type SentReply = (SocketAddr, u16, String, Vec<(String, String)>);

/// A toy repository, the results the mock answers, and everything that happened.
struct World {
    items: HashMap<(Vec<u8>, Vec<u8>), Item>,
    full: bool,
    events: Vec<Ev>,
    uid: UidGen,
    /// When set, operations answer `Pending`.
    pending: bool,
    forward_result: ForwardResult,
}

impl World {
    fn new() -> World {
        World {
            items: HashMap::new(),
            full: false,
            events: Vec::new(),
            uid: UidGen::new(0xabcdef, 3),
            pending: false,
            forward_result: ForwardResult::Sent,
        }
    }

    fn replies(&self) -> Vec<SentReply> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Ev::Reply {
                    to,
                    code,
                    reason,
                    headers,
                } => Some((*to, *code, reason.clone(), headers.clone())),
                _ => None,
            })
            .collect()
    }
}

struct Mock<'a, 'w> {
    msg: Message<'a, 'a>,
    source: SocketAddr,
    transport: Transport,
    program: &'w Program,
    world: &'w mut World,
}

fn s(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

impl Host for Mock<'_, '_> {
    fn message(&self) -> &Message<'_, '_> {
        &self.msg
    }
    fn source(&self) -> SocketAddr {
        self.source
    }
    fn transport(&self) -> Transport {
        self.transport
    }
    fn shard(&self) -> u16 {
        3
    }
    fn write_uid(&mut self, out: &mut Vec<u8>) {
        self.world.uid.write_next(out);
    }
    fn reply(&mut self, r: &Reply<'_>) {
        self.world.events.push(Ev::Reply {
            to: self.source,
            code: r.code,
            reason: s(r.reason),
            headers: r
                .headers
                .iter()
                .map(|(n, v)| (n.as_str().to_owned(), s(v)))
                .collect(),
        });
    }
    fn forward(&mut self, to: Target, edits: &[HeaderEdit]) -> Poll<ForwardResult> {
        self.world.events.push(Ev::Forward(to, edits.to_vec()));
        Poll::Ready(self.world.forward_result)
    }
    fn push(
        &mut self,
        msgid: &[u8],
        expire: Option<Duration>,
        stored_msgid: &mut Vec<u8>,
    ) -> Poll<PushResult> {
        self.world.events.push(Ev::Push(s(msgid), expire));
        if self.world.pending {
            return Poll::Pending;
        }
        let callid = self.msg.call_id().unwrap_or_default().to_vec();
        let branch = self.msg.branch().map(<[u8]>::to_vec);
        let retrans = self.world.items.iter().find(|((c, _), it)| {
            let mut hs = [EMPTY_HEADER; 32];
            let m = parse(&it.bytes, &mut hs, Framing::Datagram)
                .unwrap()
                .complete()
                .unwrap();
            *c == callid && m.branch().map(<[u8]>::to_vec) == branch
        });
        if let Some(((_, first_msgid), _)) = retrans {
            stored_msgid.extend_from_slice(first_msgid);
            return Poll::Ready(PushResult::Retransmission);
        }
        if self.world.full {
            return Poll::Ready(PushResult::Full);
        }
        let key = (callid, msgid.to_vec());
        if self.world.items.contains_key(&key) {
            return Poll::Ready(PushResult::Duplicate);
        }
        self.world.items.insert(
            key,
            Item {
                bytes: self.msg.as_bytes().to_vec(),
                source: self.source,
                transport: self.transport,
            },
        );
        Poll::Ready(PushResult::Stored)
    }
    fn pull(&mut self, req: &PullRequest<'_>) -> Poll<PullResult> {
        self.world.events.push(Ev::Pull(
            s(req.callid),
            s(req.msgid),
            self.program.route_name(req.route).to_owned(),
            req.remove,
        ));
        if self.world.pending {
            return Poll::Pending;
        }
        let key = (req.callid.to_vec(), req.msgid.to_vec());
        let item = if req.remove {
            self.world.items.remove(&key)
        } else {
            self.world.items.get(&key).map(|i| Item {
                bytes: i.bytes.clone(),
                source: i.source,
                transport: i.transport,
            })
        };
        let Some(item) = item else {
            return Poll::Ready(PullResult::NotFound);
        };
        // Run the route on the pulled message, as if it had just arrived from its sender.
        let mut hs = [EMPTY_HEADER; 32];
        let msg = parse(&item.bytes, &mut hs, Framing::Datagram)
            .unwrap()
            .complete()
            .unwrap();
        let mut h = Mock {
            msg,
            source: item.source,
            transport: item.transport,
            program: self.program,
            world: &mut *self.world,
        };
        let out = run(self.program, req.route, &mut h);
        assert!(out.is_final());
        Poll::Ready(PullResult::Pulled)
    }
    fn async_pull(&mut self, req: &AsyncPullRequest<'_>) -> Poll<AsyncPullResult> {
        self.world.events.push(Ev::AsyncPull(
            s(req.callid),
            s(req.msgid),
            self.program.group_name(req.group).to_owned(),
            self.program.route_name(req.route).to_owned(),
            req.remove,
        ));
        let key = (req.callid.to_vec(), req.msgid.to_vec());
        Poll::Ready(if self.world.items.contains_key(&key) {
            AsyncPullResult::Queued
        } else {
            AsyncPullResult::NotFound
        })
    }
    fn rm(&mut self, callid: &[u8], msgid: &[u8]) -> Poll<RmResult> {
        self.world.events.push(Ev::Rm(s(callid), s(msgid)));
        let key = (callid.to_vec(), msgid.to_vec());
        Poll::Ready(match self.world.items.remove(&key) {
            Some(_) => RmResult::Removed,
            None => RmResult::NotFound,
        })
    }
    fn check(&mut self, callid: &[u8], msgid: Option<&[u8]>) -> Poll<CheckResult> {
        self.world.events.push(Ev::Check(s(callid), msgid.map(s)));
        let found = self
            .world
            .items
            .keys()
            .any(|(c, m)| c == callid && msgid.is_none_or(|x| x == m.as_slice()));
        Poll::Ready(if found {
            CheckResult::Found
        } else {
            CheckResult::NotFound
        })
    }
    fn log(&mut self, level: LogLevel, message: &[u8]) {
        self.world.events.push(Ev::Log(level, s(message)));
    }
    fn msrp_answer(&mut self, req: &MsrpAnswer<'_>) -> Poll<MsrpAnswerResult> {
        self.world.events.push(Ev::MsrpAnswer(
            [req.key, req.content_types, req.from, req.to, req.ruri]
                .iter()
                .map(|b| s(b))
                .collect(),
        ));
        Poll::Ready(MsrpAnswerResult::Answered)
    }
    fn msg_to_msrp(&mut self, req: &MsgToMsrp<'_>) -> Poll<MsgToMsrpResult> {
        self.world
            .events
            .push(Ev::MsgToMsrp(s(req.key), s(req.content_types)));
        Poll::Ready(MsgToMsrpResult::Queued)
    }
}

const ALICE: &str = "192.0.2.10:5060";
const TRIGGER: &str = "198.51.100.7:5070";

/// Runs the request (or response) entry route on `bytes` received from `from`.
fn deliver(p: &Program, w: &mut World, bytes: &[u8], from: &str, t: Transport) -> Outcome {
    let mut hs = [EMPTY_HEADER; 32];
    let msg = parse(bytes, &mut hs, Framing::Datagram)
        .unwrap()
        .complete()
        .unwrap();
    let entry = if msg.is_request() {
        p.request()
    } else {
        p.response().expect("response route")
    };
    let mut h = Mock {
        msg,
        source: from.parse().unwrap(),
        transport: t,
        program: p,
        world: w,
    };
    run(p, entry, &mut h)
}

/// Expires every stored item: runs `repo:expired` on each.
fn expire_all(p: &Program, w: &mut World) {
    let items: Vec<Item> = w.items.drain().map(|(_, v)| v).collect();
    for item in items {
        let mut hs = [EMPTY_HEADER; 32];
        let msg = parse(&item.bytes, &mut hs, Framing::Datagram)
            .unwrap()
            .complete()
            .unwrap();
        let mut h = Mock {
            msg,
            source: item.source,
            transport: item.transport,
            program: p,
            world: w,
        };
        let out = run(p, p.repo_expired().expect("event route"), &mut h);
        assert!(out.is_final());
    }
}

fn header<'a>(hs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    hs.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

// ---- the siprepo example: the five behaviours ----

#[test]
fn example_parks_message_and_invite_with_fresh_msgid() {
    let p = program(EXAMPLE);
    let mut w = World::new();
    for (i, m) in ["MESSAGE", "INVITE"].into_iter().enumerate() {
        let out = deliver(
            &p,
            &mut w,
            &sip(m, &format!("c{i}"), ""),
            ALICE,
            Transport::Udp,
        );
        assert!(matches!(out, Outcome::Replied), "{out}");
    }
    let r = w.replies();
    assert_eq!(r.len(), 2);
    let (ids, codes): (Vec<_>, Vec<_>) = r
        .iter()
        .map(|(_, c, reason, hs)| {
            assert_eq!(reason, "Stored");
            (header(hs, "X-Repo-Msgid").unwrap().to_owned(), *c)
        })
        .unzip();
    assert_eq!(codes, [202, 202]);
    assert_ne!(ids[0], ids[1], "msgids are unique");
    assert!(w
        .items
        .contains_key(&(b"c0".to_vec(), ids[0].as_bytes().to_vec())));
    assert!(w
        .items
        .contains_key(&(b"c1".to_vec(), ids[1].as_bytes().to_vec())));
    assert_eq!(ids[0], "0000000000abcdef-3-1");
}

#[test]
fn example_answers_503_when_full() {
    let p = program(EXAMPLE);
    let mut w = World::new();
    w.full = true;
    deliver(&p, &mut w, &sip("MESSAGE", "c1", ""), ALICE, Transport::Udp);
    let r = w.replies();
    assert_eq!((r[0].1, r[0].2.as_str()), (503, "Service Unavailable"));
    assert!(w.items.is_empty());
}

#[test]
fn example_pull_answers_original_sender_and_trigger() {
    let p = program(EXAMPLE);
    let mut w = World::new();
    deliver(
        &p,
        &mut w,
        &sip("INVITE", "parked-1", ""),
        ALICE,
        Transport::Tcp,
    );
    let msgid = header(&w.replies()[0].3, "X-Repo-Msgid")
        .unwrap()
        .to_owned();
    w.events.clear();

    let trigger = sip(
        "OPTIONS",
        "trigger-1",
        &format!("X-Pull-CallID: parked-1\r\nX-Pull-Msgid: {msgid}\r\n"),
    );
    let out = deliver(&p, &mut w, &trigger, TRIGGER, Transport::Udp);
    assert!(matches!(out, Outcome::Replied));
    let r = w.replies();
    assert_eq!(r.len(), 2, "{:?}", w.events);
    // 3. The parked request is answered, to its original sender.
    assert_eq!(r[0].0, ALICE.parse().unwrap());
    assert_eq!((r[0].1, r[0].2.as_str()), (200, "Pulled"));
    assert_eq!(header(&r[0].3, "X-Repo-Pulled"), Some("1"));
    // 2. The trigger gets 200 OK.
    assert_eq!(r[1].0, TRIGGER.parse().unwrap());
    assert_eq!((r[1].1, r[1].2.as_str()), (200, "OK"));
    assert!(w.items.is_empty(), "pulled with remove");

    // Pulling again: 404.
    w.events.clear();
    deliver(&p, &mut w, &trigger, TRIGGER, Transport::Udp);
    let r = w.replies();
    assert_eq!(r.len(), 1);
    assert_eq!(
        (r[0].0, r[0].1, r[0].2.as_str()),
        (TRIGGER.parse().unwrap(), 404, "Not Found")
    );
}

#[test]
fn example_expiry_answers_408_to_parked_sender() {
    let p = program(EXAMPLE);
    let mut w = World::new();
    deliver(
        &p,
        &mut w,
        &sip("MESSAGE", "old", ""),
        ALICE,
        Transport::Udp,
    );
    w.events.clear();
    expire_all(&p, &mut w);
    let r = w.replies();
    assert_eq!(r.len(), 1);
    assert_eq!(
        (r[0].0, r[0].1, r[0].2.as_str()),
        (ALICE.parse().unwrap(), 408, "Request Timeout")
    );
}

#[test]
fn example_answers_405_to_anything_else() {
    let p = program(EXAMPLE);
    let mut w = World::new();
    deliver(&p, &mut w, &sip("OPTIONS", "o1", ""), ALICE, Transport::Udp);
    // A pull trigger without X-Pull-Msgid is "anything else".
    deliver(
        &p,
        &mut w,
        &sip("MESSAGE", "o2", "X-Pull-CallID: x\r\n"),
        ALICE,
        Transport::Udp,
    );
    let codes: Vec<_> = w.replies().iter().map(|r| (r.1, r.2.clone())).collect();
    assert_eq!(
        codes,
        [
            (405, "Method Not Allowed".to_owned()),
            (405, "Method Not Allowed".to_owned())
        ]
    );
    assert!(w.items.is_empty());
}

#[test]
fn example_absorbs_retransmission_and_refuses_duplicate() {
    let p = program(EXAMPLE);
    let mut w = World::new();
    let m = sip("MESSAGE", "rt", "");
    deliver(&p, &mut w, &m, ALICE, Transport::Udp);
    w.events.clear();
    let out = deliver(&p, &mut w, &m, ALICE, Transport::Udp);
    // Not stored twice, but answered again (the first 202 may have been lost), with the msgid
    // the first copy is stored under (not the fresh $uid the route made for this copy).
    assert!(matches!(out, Outcome::Replied), "{out}");
    let replies = w.replies();
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].1, 202);
    assert_eq!(w.items.len(), 1);
    let stored = String::from_utf8(w.items.keys().next().unwrap().1.clone()).unwrap();
    let header = |name: &str| {
        replies[0]
            .3
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(header("X-Repo-Msgid"), Some(stored));
    assert_eq!(header("X-Repo-Retransmission").as_deref(), Some("1"));
}

#[test]
fn example_uses_default_expire_and_has_no_warnings() {
    let l = load_str(Path::new("x.toml"), EXAMPLE, &Overrides::default()).unwrap();
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    let mut w = World::new();
    deliver(
        &l.program,
        &mut w,
        &sip("MESSAGE", "e", ""),
        ALICE,
        Transport::Udp,
    );
    assert!(matches!(&w.events[0], Ev::Push(_, None)));
}

// ---- matches ----

fn replies_of(p: &Program, bytes: &[u8], from: &str, t: Transport) -> Vec<u16> {
    let mut w = World::new();
    deliver(p, &mut w, bytes, from, t);
    w.replies().iter().map(|r| r.1).collect()
}

/// A config whose request route replies 200 when `cond` holds, 404 otherwise.
fn matcher(cond: &str) -> Program {
    program(&format!(
        "[route.request]\nrules = [\n  {{ match = {cond}, actions = [ {{ reply = {{ code = 200 }} }} ] }},\n  \
         {{ actions = [ {{ reply = {{ code = 404 }} }} ] }},\n]\n\
         [route.response]\nrules = [\n  {{ match = {cond}, actions = [ {{ log = {{ message = \"hit\" }} }} ] }},\n]\n"
    ))
}

fn hit(p: &Program, bytes: &[u8], from: &str, t: Transport) -> bool {
    match replies_of(p, bytes, from, t).as_slice() {
        [200] => true,
        [404] => false,
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn match_method() {
    let p = matcher(r#"{ method = ["MESSAGE", "INVITE"] }"#);
    assert!(hit(&p, &sip("MESSAGE", "a", ""), ALICE, Transport::Udp));
    assert!(hit(&p, &sip("INVITE", "a", ""), ALICE, Transport::Udp));
    assert!(!hit(&p, &sip("OPTIONS", "a", ""), ALICE, Transport::Udp));
    let p = matcher(r#"{ method = "OPTIONS" }"#);
    assert!(hit(&p, &sip("OPTIONS", "a", ""), ALICE, Transport::Udp));
}

#[test]
fn match_ruri_prefix_and_regex() {
    let p = matcher(r#"{ ruri_prefix = "sip:bob@" }"#);
    assert!(hit(&p, &sip("MESSAGE", "a", ""), ALICE, Transport::Udp));
    let p = matcher(r#"{ ruri_prefix = "sip:carol@" }"#);
    assert!(!hit(&p, &sip("MESSAGE", "a", ""), ALICE, Transport::Udp));
    let p = matcher(r#"{ ruri_regex = '@example\.(com|org)$' }"#);
    assert!(hit(&p, &sip("MESSAGE", "a", ""), ALICE, Transport::Udp));
    let p = matcher(r#"{ ruri_regex = '@example\.org$' }"#);
    assert!(!hit(&p, &sip("MESSAGE", "a", ""), ALICE, Transport::Udp));
}

#[test]
fn match_headers() {
    let with = sip(
        "MESSAGE",
        "a",
        "X-Tenant: blue\r\nUser-Agent: friendly-ua/2.1\r\n",
    );
    let without = sip("MESSAGE", "a", "");
    let p = matcher(r#"{ header_present = ["x-tenant", "User-Agent"] }"#);
    assert!(hit(&p, &with, ALICE, Transport::Udp));
    assert!(!hit(&p, &without, ALICE, Transport::Udp));
    let p = matcher(r#"{ header_absent = "X-Tenant" }"#);
    assert!(!hit(&p, &with, ALICE, Transport::Udp));
    assert!(hit(&p, &without, ALICE, Transport::Udp));
    let p = matcher(r#"{ header_equals = { X-Tenant = "blue" } }"#);
    assert!(hit(&p, &with, ALICE, Transport::Udp));
    let p = matcher(r#"{ header_equals = { X-Tenant = "Blue" } }"#);
    assert!(!hit(&p, &with, ALICE, Transport::Udp));
    let p = matcher(r#"{ header_regex = { User-Agent = '^friendly-ua/2\.' } }"#);
    assert!(hit(&p, &with, ALICE, Transport::Udp));
    assert!(!hit(&p, &without, ALICE, Transport::Udp));
    // Known headers match in compact form too: `i` is Call-ID.
    let p = matcher(r#"{ header_equals = { i = "a" } }"#);
    assert!(hit(&p, &with, ALICE, Transport::Udp));
}

#[test]
fn match_source_and_transport() {
    let m = sip("MESSAGE", "a", "");
    let p = matcher(r#"{ source = ["10.0.0.0/8", "192.0.2.10"] }"#);
    assert!(hit(&p, &m, ALICE, Transport::Udp));
    assert!(hit(&p, &m, "10.200.1.1:5060", Transport::Udp));
    assert!(!hit(&p, &m, TRIGGER, Transport::Udp));
    // An IPv4 peer seen as IPv4-mapped IPv6.
    assert!(hit(&p, &m, "[::ffff:10.1.2.3]:5060", Transport::Udp));
    let p = matcher(r#"{ source = "2001:db8::/32" }"#);
    assert!(hit(&p, &m, "[2001:db8::5]:5060", Transport::Udp));
    assert!(!hit(&p, &m, "[2001:db9::5]:5060", Transport::Udp));
    let p = matcher(r#"{ source = "0.0.0.0/0" }"#);
    assert!(hit(&p, &m, TRIGGER, Transport::Udp));
    let p = matcher(r#"{ transport = "tcp" }"#);
    assert!(hit(&p, &m, ALICE, Transport::Tcp));
    assert!(!hit(&p, &m, ALICE, Transport::Udp));
}

#[test]
fn match_is_and_of_conditions() {
    let p = matcher(r#"{ method = "MESSAGE", transport = "udp", header_absent = "X-A" }"#);
    assert!(hit(&p, &sip("MESSAGE", "a", ""), ALICE, Transport::Udp));
    assert!(!hit(&p, &sip("MESSAGE", "a", ""), ALICE, Transport::Tcp));
    assert!(!hit(
        &p,
        &sip("MESSAGE", "a", "X-A: 1\r\n"),
        ALICE,
        Transport::Udp
    ));
    assert!(!hit(&p, &sip("INVITE", "a", ""), ALICE, Transport::Udp));
}

#[test]
fn match_status_on_responses() {
    for (cond, code, want) in [
        (r#"{ status = 200 }"#, 200, true),
        (r#"{ status = [180, "4xx"] }"#, 404, true),
        (r#"{ status = "4xx" }"#, 503, false),
        (r#"{ method = "MESSAGE", status = "2xx" }"#, 202, true),
    ] {
        let p = matcher(cond);
        let mut w = World::new();
        deliver(&p, &mut w, &response(code, "X"), ALICE, Transport::Udp);
        let logged = w
            .events
            .iter()
            .any(|e| matches!(e, Ev::Log(_, m) if m == "hit"));
        assert_eq!(logged, want, "{cond} on {code}");
    }
    // A status condition never holds for a request.
    let p = matcher(r#"{ status = "2xx" }"#);
    assert!(!hit(&p, &sip("MESSAGE", "a", ""), ALICE, Transport::Udp));
}

// ---- actions, results and branches ----

fn events(src: &str, bytes: &[u8]) -> (Outcome, Vec<Ev>) {
    let p = program(src);
    let mut w = World::new();
    let out = deliver(&p, &mut w, bytes, ALICE, Transport::Udp);
    (out, w.events)
}

#[test]
fn reply_with_templates_and_default_reason() {
    let src = r#"
[route.request]
rules = [ { actions = [
  { reply = { code = 480, headers = { X-Who = "$fu -> $tu via $ru", X-Call = "$ci/$cs/$rm/$si:$sp/$shard" } } },
] } ]
"#;
    let (out, ev) = events(src, &sip("MESSAGE", "call-9", ""));
    assert!(matches!(out, Outcome::Replied));
    let Ev::Reply {
        code,
        reason,
        headers,
        ..
    } = &ev[0]
    else {
        panic!("{ev:?}")
    };
    assert_eq!((*code, reason.as_str()), (480, "Temporarily Unavailable"));
    assert_eq!(
        header(headers, "X-Who"),
        Some("sip:alice@example.com -> sip:bob@example.com via sip:bob@example.com")
    );
    assert_eq!(
        header(headers, "X-Call"),
        Some("call-9/7/MESSAGE/192.0.2.10:5060/3")
    );
}

#[test]
fn reply_headers_of_every_template_shape_render_past_the_inline_four() {
    // Literal, one variable, a variable twice, a mix and an empty value: the reply borrows the
    // literal and single-variable ones and renders the rest, and a fifth header spills off the
    // stack.
    let src = r#"
[route.request]
rules = [ { actions = [
  { set = { v = "from-var" } },
  { reply = { code = 202, reason = "$var(v)", headers = { A = "plain", B = "$var(v)", C = "$var(v)$var(v)", D = "<$var(v)|$ci>", E = "" } } },
] } ]
"#;
    let (out, ev) = events(src, &sip("MESSAGE", "call-5", ""));
    assert!(matches!(out, Outcome::Replied));
    let Ev::Reply {
        reason, headers, ..
    } = &ev[0]
    else {
        panic!("{ev:?}")
    };
    assert_eq!(reason, "from-var");
    let got: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("A", "plain"),
            ("B", "from-var"),
            ("C", "from-varfrom-var"),
            ("D", "<from-var|call-5>"),
            ("E", "")
        ]
    );
}

#[test]
fn template_variables_render() {
    let src = r#"
[route.request]
rules = [ { actions = [
  { set = { a = "[$ft][$tt][$br][$hdr(X-Missing)][$hdr(x-tenant)][$$][$(ci)x]" } },
  { log = { level = "debug", message = "$var(a)" } },
] } ]
"#;
    let (out, ev) = events(src, &sip("MESSAGE", "c", "X-Tenant: blue\r\n"));
    assert!(matches!(out, Outcome::Finished));
    assert_eq!(
        ev,
        [Ev::Log(
            LogLevel::Debug,
            "[a1][][z9hG4bK-c][][blue][$][cx]".to_owned()
        )]
    );
}

#[test]
fn response_variables_render() {
    let src = r#"
[route.request]
rules = [ { actions = [ { drop = true } ] } ]
[route.response]
rules = [ { actions = [ { log = { message = "$rs $rr $rm $tt" } } ] } ]
"#;
    let (_, ev) = events(src, &response(486, "Busy Here"));
    assert_eq!(
        ev,
        [Ev::Log(
            LogLevel::Info,
            "486 Busy Here MESSAGE b2".to_owned()
        )]
    );
}

#[test]
fn forward_fixed_and_templated_with_edits() {
    let src = r#"
[route.request]
rules = [ { actions = [
  { remove_header = "X-Pull-CallID" },
  { set_header = { name = "X-Origin", value = "$si" } },
  { forward = { to = "udp:10.0.0.2:5060" }, on_sent = "SENT" },
  { forward = { to = "tcp:$hdr(X-Next)" }, on_error = "ERR" },
] } ]
[route.SENT]
rules = [ { actions = [ { log = { message = "sent" } } ] } ]
[route.ERR]
rules = [ { actions = [ { log = { message = "error" } } ] } ]
"#;
    let (out, ev) = events(src, &sip("MESSAGE", "c", "X-Next: [2001:db8::1]:5070\r\n"));
    assert!(matches!(out, Outcome::Finished));
    let edits = vec![
        HeaderEdit {
            name: HeaderName::new("X-Pull-CallID"),
            value: None,
        },
        HeaderEdit {
            name: HeaderName::new("X-Origin"),
            value: Some(b"192.0.2.10".to_vec()),
        },
    ];
    assert_eq!(
        ev,
        [
            Ev::Forward("udp:10.0.0.2:5060".parse().unwrap(), edits.clone()),
            Ev::Log(LogLevel::Info, "sent".to_owned()),
            Ev::Forward("tcp:[2001:db8::1]:5070".parse().unwrap(), edits),
        ]
    );
    // A templated target that does not parse gives `error`, without calling the host.
    let (_, ev) = events(src, &sip("MESSAGE", "c", "X-Next: nowhere\r\n"));
    assert!(matches!(&ev[2], Ev::Log(LogLevel::Warn, m) if m.contains("nowhere")));
    assert_eq!(ev[3], Ev::Log(LogLevel::Info, "error".to_owned()));
}

#[test]
fn forward_error_branch() {
    let src = r#"
[route.request]
rules = [ { actions = [
  { forward = { to = "udp:10.0.0.2:5060" }, on_error = "ERR" },
  { exit = true },
] } ]
[route.ERR]
rules = [ { actions = [ { reply = { code = 502 } } ] } ]
"#;
    let p = program(src);
    let mut w = World::new();
    w.forward_result = ForwardResult::Error;
    let out = deliver(&p, &mut w, &sip("MESSAGE", "c", ""), ALICE, Transport::Udp);
    assert!(matches!(out, Outcome::Replied));
    assert_eq!(w.replies()[0].1, 502);
    let mut w = World::new();
    let out = deliver(&p, &mut w, &sip("MESSAGE", "c", ""), ALICE, Transport::Udp);
    assert!(matches!(out, Outcome::Exited));
}

#[test]
fn repository_actions_and_branches() {
    let src = r#"
[server]
task_queue_shares = { default = 100, bulk = 10 }

[route.request]
rules = [ { actions = [
  { check = {}, on_found = "FOUND", on_not_found = "NONE" },
  { push = { msgid = "m1", expire = 30 } },
  { check = { msgid = "m1" }, on_found = "FOUND" },
  { check = { callid = "other", msgid = "m1" }, on_not_found = "NONE" },
  { async_pull = { callid = "$ci", msgid = "m1", group = "bulk", route = "LATER" }, on_queued = "Q" },
  { async_pull = { callid = "$ci", msgid = "nope", route = "LATER", remove = true }, on_not_found = "NONE" },
  { rm = { callid = "$ci", msgid = "m1" }, on_removed = "GONE" },
  { rm = { callid = "$ci", msgid = "m1" }, on_not_found = "NONE" },
  { pull = { callid = "$ci", msgid = "m1", route = "LATER" }, on_not_found = "NONE" },
] } ]
[route.FOUND]
rules = [ { actions = [ { log = { message = "found" } } ] } ]
[route.NONE]
rules = [ { actions = [ { log = { message = "none" } } ] } ]
[route.Q]
rules = [ { actions = [ { log = { message = "queued" } } ] } ]
[route.GONE]
rules = [ { actions = [ { log = { message = "removed" } } ] } ]
[route.LATER]
rules = [ { actions = [ { drop = true } ] } ]
"#;
    let (out, ev) = events(src, &sip("MESSAGE", "k", ""));
    assert!(matches!(out, Outcome::Finished), "{out}");
    let log = |m: &str| Ev::Log(LogLevel::Info, m.to_owned());
    assert_eq!(
        ev,
        [
            Ev::Check("k".into(), None),
            log("none"),
            Ev::Push("m1".into(), Some(Duration::from_secs(30))),
            Ev::Check("k".into(), Some("m1".into())),
            log("found"),
            Ev::Check("other".into(), Some("m1".into())),
            log("none"),
            Ev::AsyncPull(
                "k".into(),
                "m1".into(),
                "bulk".into(),
                "LATER".into(),
                false
            ),
            log("queued"),
            Ev::AsyncPull(
                "k".into(),
                "nope".into(),
                "default".into(),
                "LATER".into(),
                true
            ),
            log("none"),
            Ev::Rm("k".into(), "m1".into()),
            log("removed"),
            Ev::Rm("k".into(), "m1".into()),
            log("none"),
            Ev::Pull("k".into(), "m1".into(), "LATER".into(), false),
            log("none"),
        ]
    );
}

#[test]
fn groups_are_sorted_and_default_exists() {
    let p = program(
        "[server]\ntask_queue_shares = { zed = 5, bulk = 10 }\n[route.request]\nrules = []\n",
    );
    let g: Vec<&str> = p.groups().iter().map(|g| &**g).collect();
    assert_eq!(g, ["bulk", "default", "zed"]);
}

#[test]
fn gateway_actions_reach_the_host() {
    let src = r#"
[route.request]
rules = [ { actions = [
  { msrp_answer = { key = "$fu|$tu", content_types = "text/plain", from = "$fu", to = "$tu", ruri = "$ru" }, on_answered = "OK" },
  { msg_to_msrp = { key = "$tu|$fu", content_types = "text/plain" }, on_queued = "OK" },
] } ]
[route.OK]
rules = [ { actions = [ { log = { message = "ok" } } ] } ]
"#;
    let (_, ev) = events(src, &sip("MESSAGE", "g", ""));
    assert_eq!(ev.len(), 4);
    assert!(
        matches!(&ev[0], Ev::MsrpAnswer(v) if v[0] == "sip:alice@example.com|sip:bob@example.com")
    );
    assert!(matches!(&ev[2], Ev::MsgToMsrp(k, c) if k.starts_with("sip:bob") && c == "text/plain"));
}

/// A host without gateway support answers `error` by default.
#[test]
fn gateway_defaults_answer_error() {
    struct Bare<'a>(Message<'a, 'a>, Vec<String>);
    impl Host for Bare<'_> {
        fn message(&self) -> &Message<'_, '_> {
            &self.0
        }
        fn source(&self) -> SocketAddr {
            ALICE.parse().unwrap()
        }
        fn transport(&self) -> Transport {
            Transport::Udp
        }
        fn shard(&self) -> u16 {
            0
        }
        fn write_uid(&mut self, _: &mut Vec<u8>) {}
        fn reply(&mut self, r: &Reply<'_>) {
            self.1.push(format!("reply {}", r.code));
        }
        fn forward(&mut self, _: Target, _: &[HeaderEdit]) -> Poll<ForwardResult> {
            unreachable!()
        }
        fn push(&mut self, _: &[u8], _: Option<Duration>, _: &mut Vec<u8>) -> Poll<PushResult> {
            unreachable!()
        }
        fn pull(&mut self, _: &PullRequest<'_>) -> Poll<PullResult> {
            unreachable!()
        }
        fn async_pull(&mut self, _: &AsyncPullRequest<'_>) -> Poll<AsyncPullResult> {
            unreachable!()
        }
        fn rm(&mut self, _: &[u8], _: &[u8]) -> Poll<RmResult> {
            unreachable!()
        }
        fn check(&mut self, _: &[u8], _: Option<&[u8]>) -> Poll<CheckResult> {
            unreachable!()
        }
        fn log(&mut self, _: LogLevel, _: &[u8]) {}
    }
    let p = program(
        r#"
[route.request]
rules = [ { actions = [
  { msg_to_msrp = { key = "k", content_types = "text/plain" }, on_error = "E" },
] } ]
[route.E]
rules = [ { actions = [ { reply = { code = 500 } } ] } ]
"#,
    );
    let bytes = sip("MESSAGE", "g", "");
    let mut hs = [EMPTY_HEADER; 32];
    let msg = parse(&bytes, &mut hs, Framing::Datagram)
        .unwrap()
        .complete()
        .unwrap();
    let mut h = Bare(msg, Vec::new());
    assert!(matches!(run(&p, p.request(), &mut h), Outcome::Replied));
    assert_eq!(h.1, ["reply 500"]);
}

#[test]
fn first_matching_rule_runs_unless_continue() {
    let src = r#"
[route.request]
rules = [
  { actions = [ { log = { message = "always" } } ], continue = true },
  { match = { method = "MESSAGE" }, actions = [ { log = { message = "message" } } ] },
  { actions = [ { log = { message = "fallback" } } ] },
]
"#;
    let (out, ev) = events(src, &sip("MESSAGE", "c", ""));
    assert!(matches!(out, Outcome::Finished));
    let msgs: Vec<_> = ev
        .iter()
        .map(|e| match e {
            Ev::Log(_, m) => m.as_str(),
            _ => "?",
        })
        .collect();
    assert_eq!(msgs, ["always", "message"]);
    let (_, ev) = events(src, &sip("OPTIONS", "c", ""));
    assert_eq!(ev.len(), 2);
    assert_eq!(ev[1], Ev::Log(LogLevel::Info, "fallback".into()));
}

#[test]
fn call_return_exit_drop_semantics() {
    let src = r#"
[route.request]
rules = [
  { match = { method = "MESSAGE" }, actions = [
      { route = "A" }, { log = { message = "after A" } },
      { route = "B" }, { log = { message = "after B (never)" } } ] },
  { match = { method = "INVITE" }, actions = [ { route = "C" }, { log = { message = "never" } } ] },
  { actions = [ { route = "D" }, { log = { message = "never" } } ] },
]
[route.A]
rules = [
  { match = { header_present = "X-Early" }, actions = [ { log = { message = "A early" } }, { return = true } ] },
  { actions = [ { log = { message = "A end" } } ] },
]
[route.B]
rules = [ { actions = [ { log = { message = "B" } }, { exit = true } ] } ]
[route.C]
rules = [ { actions = [ { drop = true } ] } ]
[route.D]
rules = [ { actions = [ { reply = { code = 403 } } ] } ]
"#;
    let (out, ev) = events(src, &sip("MESSAGE", "c", "X-Early: 1\r\n"));
    assert!(matches!(out, Outcome::Exited));
    let logs: Vec<String> = ev
        .iter()
        .filter_map(|e| match e {
            Ev::Log(_, m) => Some(m.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(logs, ["A early", "after A", "B"]);
    let (out, ev) = events(src, &sip("INVITE", "c", ""));
    assert!(matches!(out, Outcome::Dropped));
    assert!(ev.is_empty());
    let (out, ev) = events(src, &sip("BYE", "c", ""));
    assert!(matches!(out, Outcome::Replied));
    assert_eq!(ev.len(), 1);
}

#[test]
fn reply_on_a_response_is_dropped_and_logged() {
    let src = r#"
[route.request]
rules = [ { actions = [ { drop = true } ] } ]
[route.response]
rules = [ { actions = [ { reply = { code = 200 } } ] } ]
"#;
    let (out, ev) = events(src, &response(200, "OK"));
    assert!(matches!(out, Outcome::Dropped));
    assert!(matches!(&ev[..], [Ev::Log(LogLevel::Error, _)]));
}

#[test]
fn vars_are_per_message() {
    let src = r#"
[route.request]
rules = [
  { match = { method = "MESSAGE" }, actions = [ { set = { v = "set" } }, { log = { message = "[$var(v)]" } } ] },
  { actions = [ { log = { message = "[$var(v)]" } } ] },
]
"#;
    let p = program(src);
    let mut w = World::new();
    deliver(&p, &mut w, &sip("MESSAGE", "c", ""), ALICE, Transport::Udp);
    deliver(&p, &mut w, &sip("OPTIONS", "c", ""), ALICE, Transport::Udp);
    assert_eq!(
        w.events,
        [
            Ev::Log(LogLevel::Info, "[set]".into()),
            Ev::Log(LogLevel::Info, "[]".into())
        ]
    );
}

// ---- suspension ----

#[test]
fn pending_pull_suspends_and_resumes_into_branch() {
    let p = program(EXAMPLE);
    let mut w = World::new();
    w.pending = true;
    let trigger = sip(
        "MESSAGE",
        "t",
        "X-Pull-CallID: elsewhere\r\nX-Pull-Msgid: m\r\n",
    );
    let out = deliver(&p, &mut w, &trigger, TRIGGER, Transport::Udp);
    assert_eq!(out.to_string(), "suspended in `pull`");
    let Outcome::Suspended(s) = out else {
        panic!("{out}")
    };
    assert!(w.replies().is_empty());

    // The answer comes back from the owner shard: not found.
    let mut hs = [EMPTY_HEADER; 32];
    let msg = parse(&trigger, &mut hs, Framing::Datagram)
        .unwrap()
        .complete()
        .unwrap();
    let mut h = Mock {
        msg,
        source: TRIGGER.parse().unwrap(),
        transport: Transport::Udp,
        program: &p,
        world: &mut w,
    };
    let out = resume(&p, s, ActionResult::Pull(PullResult::NotFound), &mut h);
    assert!(matches!(out, Outcome::Replied));
    assert_eq!(w.replies()[0].1, 404);
}

#[test]
fn resume_with_the_wrong_result_fails() {
    let p = program(EXAMPLE);
    let mut w = World::new();
    w.pending = true;
    let m = sip("MESSAGE", "t", "");
    let out = deliver(&p, &mut w, &m, ALICE, Transport::Udp);
    assert_eq!(out.to_string(), "suspended in `push`");
    let Outcome::Suspended(s) = out else { panic!() };
    let mut hs = [EMPTY_HEADER; 32];
    let msg = parse(&m, &mut hs, Framing::Datagram)
        .unwrap()
        .complete()
        .unwrap();
    let mut h = Mock {
        msg,
        source: ALICE.parse().unwrap(),
        transport: Transport::Udp,
        program: &p,
        world: &mut w,
    };
    let out = resume(&p, s, ActionResult::Rm(RmResult::Removed), &mut h);
    assert!(matches!(
        out,
        Outcome::Failed(RunError::WrongResult {
            want: "push",
            got: "rm"
        })
    ));
}

#[test]
fn suspended_push_resumes_with_stored() {
    let p = program(EXAMPLE);
    let mut w = World::new();
    w.pending = true;
    let m = sip("MESSAGE", "t", "");
    let Outcome::Suspended(s) = deliver(&p, &mut w, &m, ALICE, Transport::Udp) else {
        panic!()
    };
    let mut hs = [EMPTY_HEADER; 32];
    let msg = parse(&m, &mut hs, Framing::Datagram)
        .unwrap()
        .complete()
        .unwrap();
    let mut h = Mock {
        msg,
        source: ALICE.parse().unwrap(),
        transport: Transport::Udp,
        program: &p,
        world: &mut w,
    };
    assert!(matches!(
        resume(&p, s, ActionResult::Push(PushResult::Stored), &mut h),
        Outcome::Replied
    ));
    // The variable set before the suspension survives it.
    let r = w.replies();
    assert_eq!(r[0].1, 202);
    assert_eq!(
        header(&r[0].3, "X-Repo-Msgid"),
        Some("0000000000abcdef-3-1")
    );
}

// ---- compile errors, with their positions ----

#[test]
fn error_unknown_route() {
    let e = load_err(
        "[route.request]\nrules = [\n  { actions = [ { route = \"NOPE\" } ] },\n]\n[route.X]\nrules = []\n",
    );
    assert!(
        e.starts_with("3:27: unknown route `NOPE` in route (routes: X, request)"),
        "{e}"
    );
    let e = load_err(
        "[route.request]\nrules = [ { actions = [ { pull = { callid = \"a\", msgid = \"b\", route = \"GONE\" } } ] } ]\n",
    );
    assert!(e.starts_with("2:71: unknown route `GONE` in pull"), "{e}");
    let e = load_err(
        "[route.request]\nrules = [ { actions = [ { check = {}, on_found = \"F\" } ] } ]\n",
    );
    assert!(e.starts_with("2:50: unknown route `F` in on_found"), "{e}");
}

#[test]
fn error_unknown_group() {
    let e = load_err(
        "[server]\ntask_queue_shares = { bulk = 10 }\n[route.request]\nrules = [ { actions = [\n  { async_pull = { callid = \"a\", msgid = \"b\", group = \"WG01\", route = \"request\" } } ] } ]\n",
    );
    assert!(
        e.starts_with("5:55: unknown async group `WG01` (groups in [server] task_queue_shares: bulk, default)"),
        "{e}"
    );
}

#[test]
fn error_bad_template_points_at_the_variable() {
    let e = load_err(
        "[route.request]\nrules = [ { actions = [ { log = { message = \"x $bogus y\" } } ] } ]\n",
    );
    assert!(
        e.starts_with("2:48: bad template: unknown variable `$bogus`"),
        "{e}"
    );
    let e = load_err(
        "[route.request]\nrules = [ { actions = [ { log = { message = \"$hdr(X\" } } ] } ]\n",
    );
    assert!(
        e.starts_with("2:46: bad template: `$hdr(` without a closing `)`"),
        "{e}"
    );
    let e = load_err(
        "[route.request]\nrules = [ { actions = [ { log = { message = \"cost 5$\" } } ] } ]\n",
    );
    assert!(
        e.starts_with("2:52: bad template: `$` must start a variable"),
        "{e}"
    );
    let e = load_err(
        "[route.request]\nrules = [ { actions = [ { log = { message = \"$var(never)\" } } ] } ]\n",
    );
    assert!(
        e.starts_with("2:46: `$var(never)` is read but never set by any `set` action"),
        "{e}"
    );
}

#[test]
fn error_bad_regex_and_values() {
    let cases = [
        (
            "{ ruri_regex = \"(abc\" }",
            "3:28: bad regex `(abc`: unclosed group",
        ),
        (
            "{ header_regex = { X-A = \"[z-a]\" } }",
            "3:38: bad regex `[z-a]`",
        ),
        (
            "{ source = \"10.0.0.0/33\" }",
            "3:24: `10.0.0.0/33`: prefix length must be 0..=32",
        ),
        (
            "{ source = \"example.com\" }",
            "3:24: `example.com` is not an IP address or CIDR block",
        ),
        ("{ transport = \"sctp\" }", "3:27: unknown transport `sctp`"),
        ("{ status = \"9xx\" }", "3:24: status `9xx`"),
        (
            "{ method = \"BAD METHOD\" }",
            "3:24: `BAD METHOD` is not a SIP method",
        ),
        (
            "{ header_present = \"X A\" }",
            "3:32: `X A` is not a header name",
        ),
        ("{ methods = \"MESSAGE\" }", "3:15: unknown field `methods`"),
    ];
    let mut bad = Vec::new();
    for (cond, want) in cases {
        let e = load_err(&format!(
            "[route.request]\nrules = [\n  {{ match = {cond}, actions = [] }},\n]\n"
        ));
        if !e.starts_with(want) {
            bad.push(format!("{cond}\n  got  {e}\n  want {want}"));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn error_bad_actions() {
    let cases = [
        ("{ }", "3:17: an action needs one of: reply"),
        ("{ reply = { code = 200 }, drop = true }", "3:17: one action per table, found `reply` and `drop`"),
        ("{ reply = { code = 99 } }", "3:36: status code 99 is not 100..=699"),
        ("{ reply = { code = 200, headers = { Call-ID = \"x\" } } }", "3:53: `Call-ID` is written by sipshard itself"),
        ("{ reply = { code = 200, headers = { From = \"x\" } } }", "3:53: `From` of a reply is copied"),
        ("{ set_header = { name = \"Via\", value = \"x\" } }", "3:41: `Via` is written by sipshard itself"),
        ("{ remove_header = \"Content-Length\" }", "3:35: `Content-Length` is written by sipshard"),
        ("{ push = { msgid = \"a\", expire = 0 } }", "3:50: expire is a number of seconds"),
        ("{ push = { msgid = \"a\" }, on_pulled = \"request\" }", "3:55: `on_pulled`: `push` has no result `pulled` (its results: stored, duplicate, retransmission, full)"),
        ("{ log = { message = \"x\" }, on_found = \"request\" }", "3:55: `on_found`: `log` has no results to branch on"),
        ("{ drop = false }", "3:26: `drop = false` does nothing"),
        ("{ log = { level = \"loud\", message = \"x\" } }", "3:35: unknown log level `loud`"),
        ("{ forward = { to = \"udp:nowhere\" } }", "3:36: `nowhere` is not IP:PORT"),
        ("{ forward = { to = \"sctp:10.0.0.1:5060\" } }", "3:36: unknown transport `sctp`"),
        ("{ set = { \"bad name\" = \"x\" } }", "3:27: variable name `bad name`"),
        ("{ route = \"repo:expired\" }", "3:27: `repo:expired` is an event route"),
        ("{ jump = \"x\" }", "3:19: unknown field `jump`"),
        ("{ pull = { callid = \"a\", msgid = \"b\" } }", "3:26: missing field `route`"),
    ];
    let mut bad = Vec::new();
    for (action, want) in cases {
        let e = load_err(&format!(
            "[route.request]\nrules = [\n  {{ actions = [ {action} ] }},\n]\n[route.\"repo:expired\"]\nrules = []\n"
        ));
        if !e.starts_with(want) {
            bad.push(format!("{action}\n  got  {e}\n  want {want}"));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn error_unreachable_action() {
    let e = load_err(
        "[route.request]\nrules = [ { actions = [\n  { reply = { code = 200 } },\n  { log = { message = \"x\" } },\n] } ]\n",
    );
    assert!(
        e.starts_with("4:3: this action never runs: `reply` before it ends the route"),
        "{e}"
    );
}

#[test]
fn error_route_names() {
    let e = load_err("[route.other]\nrules = []\n");
    assert!(e.starts_with("1:8: no `[route.request]`"), "{e}");
    let e = load_err("[server]\nshards = 1\n");
    assert!(e.starts_with("1:1: no `[route.request]`"), "{e}");
    let e = load_err("[route.request]\nrules = []\n[route.\"repo:expried\"]\nrules = []\n");
    assert!(
        e.starts_with("3:8: unknown event route `repo:expried`"),
        "{e}"
    );
    let e = load_err("[route.request]\nrules = []\n[route.\"a b\"]\nrules = []\n");
    assert!(e.starts_with("3:8: route name `a b`"), "{e}");
    let e = load_err("[route.request]\nrule = []\n");
    assert!(e.starts_with("2:1: unknown field `rule`"), "{e}");
}

#[test]
fn error_call_cycle() {
    let e = load_err(
        "[route.request]\nrules = [ { actions = [ { route = \"A\" } ] } ]\n\
         [route.A]\nrules = [ { actions = [ { route = \"B\" } ] } ]\n\
         [route.B]\nrules = [ { actions = [ { check = {}, on_found = \"A\" } ] } ]\n",
    );
    assert!(e.starts_with("6:50: route call cycle: A -> B -> A"), "{e}");
    let e = load_err("[route.request]\nrules = [ { actions = [ { route = \"request\" } ] } ]\n");
    assert!(
        e.starts_with("2:35: route call cycle: request -> request"),
        "{e}"
    );
}

#[test]
fn pull_into_own_route_is_not_a_cycle() {
    // The pulled message runs the route in its own run, not nested in this one.
    program(
        "[route.request]\nrules = [ { actions = [ { pull = { callid = \"$hdr(X)\", msgid = \"m\", route = \"request\" } } ] } ]\n",
    );
}

fn chain(n: usize) -> String {
    let mut s = String::from("[route.request]\nrules = [ { actions = [ { route = \"R1\" } ] } ]\n");
    for i in 1..n {
        let next = if i + 1 < n {
            format!("{{ route = \"R{}\" }}", i + 1)
        } else {
            "{ drop = true }".to_owned()
        };
        s.push_str(&format!(
            "[route.R{i}]\nrules = [ {{ actions = [ {next} ] }} ]\n"
        ));
    }
    s
}

#[test]
fn call_depth_limit() {
    // request + R1..R15 = 16 routes deep: fine, and it runs.
    let p = program(&chain(MAX_DEPTH));
    let mut w = World::new();
    let out = deliver(&p, &mut w, &sip("MESSAGE", "c", ""), ALICE, Transport::Udp);
    assert!(matches!(out, Outcome::Dropped), "{out}");
    // One more is refused at load.
    let e = load_err(&chain(MAX_DEPTH + 1));
    assert!(
        e.starts_with("1:8: route `request` nests 17 routes deep through calls and branches (the limit is 16)"),
        "{e}"
    );
}

#[test]
fn warns_about_unused_routes() {
    let l = load_str(
        Path::new("w.toml"),
        "[route.request]\nrules = []\n[route.ORPHAN]\nrules = []\n",
        &Overrides::default(),
    )
    .unwrap();
    assert_eq!(
        l.warnings,
        ["w.toml:3:8: route `ORPHAN` is never called, branched to or pulled into"]
    );
}

#[test]
fn program_introspection() {
    let p = program(EXAMPLE);
    assert_eq!(p.route_name(p.request()), "request");
    assert!(p.response().is_none());
    assert_eq!(p.route_name(p.repo_expired().unwrap()), "repo:expired");
    assert_eq!(
        p.route_id("REPOPULL").map(|r| p.route_name(r)),
        Some("REPOPULL")
    );
    assert_eq!(p.var_count(), 1);
    assert!(p.route_names().any(|n| n == "PULL_404"));
}

#[test]
fn uids_are_unique_across_shards_and_boots() {
    let mut seen = std::collections::HashSet::new();
    let boots = [UidGen::boot_prefix(), UidGen::boot_prefix()];
    assert_ne!(boots[0], boots[1]);
    for boot in boots {
        for shard in 0..4 {
            let mut g = UidGen::new(boot, shard);
            for _ in 0..100 {
                assert!(seen.insert(g.next_string()));
            }
        }
    }
}

#[test]
fn template_segments_are_preparsed() {
    use super::template::{Seg, Template};
    let t = Template::parse("a$ci$hdr(Via)$$b", &mut |_, _| unreachable!()).unwrap();
    assert_eq!(t.segments().len(), 4);
    assert!(
        matches!(&t.segments()[2], Seg::Hdr(h) if h.kind() == sipshard_parser::sip::HeaderKind::Via)
    );
    assert_eq!(t.segments()[3], Seg::Lit(b"$b".to_vec().into()));
    assert!(Template::parse("plain", &mut |_, _| unreachable!())
        .unwrap()
        .as_literal()
        .is_some());
}

#[test]
fn program_and_suspension_can_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Program>();
    send_sync::<Suspended>();
}
