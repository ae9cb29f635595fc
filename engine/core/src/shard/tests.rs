//! The shard core as a whole, on the in-memory harness: several shards, one virtual clock.

use super::harness::{Dest, Harness, Sent};
use super::{Work, MAX_HEADERS};
use serde_json::json;
use std::net::SocketAddr;

/// The repository routes of the example, plus rules for `rm`, `check` and `async_pull` and
/// short, round lifetimes.
pub(super) const CONFIG: &str = r#"
[server]
listen = ["udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"]

[repo]
expire = 2
timer_interval = 100

[route.request]
[[route.request.rules]]
match = { header_present = ["X-Rm-CallID", "X-Rm-Msgid"] }
actions = [ { rm = { callid = "$hdr(X-Rm-CallID)", msgid = "$hdr(X-Rm-Msgid)" }, on_removed = "R200", on_not_found = "R404" } ]
[[route.request.rules]]
match = { header_present = ["X-Check-CallID", "X-Check-Msgid"] }
actions = [ { check = { callid = "$hdr(X-Check-CallID)", msgid = "$hdr(X-Check-Msgid)" }, on_found = "R200", on_not_found = "R404" } ]
[[route.request.rules]]
match = { header_present = ["X-Async-CallID", "X-Async-Msgid"] }
actions = [ { async_pull = { callid = "$hdr(X-Async-CallID)", msgid = "$hdr(X-Async-Msgid)", route = "REPOPULL", remove = true }, on_queued = "R200", on_not_found = "R404" } ]
[[route.request.rules]]
match = { header_present = ["X-Fwd"] }
actions = [ { forward = { to = "udp:198.51.100.99:5060" }, on_error = "R500" } ]
[[route.request.rules]]
match = { method = ["MESSAGE", "INVITE"], header_absent = "X-Pull-CallID" }
actions = [
  { set = { msgid = "$uid" } },
  { push = { msgid = "$var(msgid)" }, on_stored = "STORED", on_full = "FULL", on_retransmission = "ABSORB" },
  { reply = { code = 500, reason = "Server Internal Error" } },
]
[[route.request.rules]]
match = { header_present = ["X-Pull-CallID", "X-Pull-Msgid"] }
actions = [
  { pull = { callid = "$hdr(X-Pull-CallID)", msgid = "$hdr(X-Pull-Msgid)", route = "REPOPULL", remove = true }, on_pulled = "R200", on_not_found = "R404" },
]
[[route.request.rules]]
actions = [ { reply = { code = 405, reason = "Method Not Allowed" } } ]

[route.R200]
rules = [ { actions = [ { reply = { code = 200, reason = "OK" } } ] } ]
[route.R404]
rules = [ { actions = [ { reply = { code = 404, reason = "Not Found" } } ] } ]
[route.R500]
rules = [ { actions = [ { reply = { code = 500, reason = "Forward Failed" } } ] } ]
[route.STORED]
rules = [ { actions = [ { reply = { code = 202, reason = "Stored", headers = { X-Repo-Msgid = "$var(msgid)" } } } ] } ]
[route.FULL]
rules = [ { actions = [ { reply = { code = 503, reason = "Service Unavailable" } } ] } ]
[route.ABSORB]
rules = [ { actions = [ { reply = { code = 202, reason = "Stored", headers = { X-Repo-Msgid = "$var(msgid)", X-Repo-Retransmission = "1" } } } ] } ]
[route.REPOPULL]
rules = [ { actions = [ { reply = { code = 200, reason = "Pulled", headers = { X-Repo-Pulled = "1" } } } ] } ]
[route."repo:expired"]
rules = [ { actions = [ { reply = { code = 408, reason = "Request Timeout" } } ] } ]
"#;

/// `CONFIG` with another `[repo] expire`.
pub(super) fn config_with_expire(seconds: u64) -> String {
    CONFIG.replace("expire = 2\n", &format!("expire = {seconds}\n"))
}

/// A client at 198.51.100.7:`port`.
pub(super) fn client(port: u16) -> SocketAddr {
    SocketAddr::from(([198, 51, 100, 7], port))
}

/// A request from `client(port)` (with `rport`, so answers go back to that port).
pub(super) fn request(method: &str, callid: &str, cseq: u32, port: u16, extra: &str) -> Vec<u8> {
    let branch: String = callid
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '.' })
        .collect();
    format!(
        "{method} sip:bob@example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP 198.51.100.7:{port};branch=z9hG4bK-{branch}-{cseq};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@example.com>;tag=a{port}\r\n\
         To: <sip:bob@example.com>\r\n\
         Call-ID: {callid}\r\n\
         CSeq: {cseq} {method}\r\n\
         {extra}Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// The trigger that pulls (`X-Pull`), removes (`X-Rm`), checks (`X-Check`) or queues
/// (`X-Async`) an item.
pub(super) fn trigger(kind: &str, callid: &str, msgid: &str, n: u32, port: u16) -> Vec<u8> {
    let extra = format!("X-{kind}-CallID: {callid}\r\nX-{kind}-Msgid: {msgid}\r\n");
    request("OPTIONS", &format!("trigger-{n}"), 1, port, &extra)
}

/// (peer, status) of each thing sent, in order.
pub(super) fn answers(sent: &[Sent]) -> Vec<(SocketAddr, u16)> {
    sent.iter()
        .map(|s| (s.peer(), s.status().unwrap_or(0)))
        .collect()
}

/// Parks a MESSAGE with Call-ID `callid` from `client(port)`, read by shard `on`; its msgid.
fn park(h: &mut Harness, on: usize, callid: &str, port: u16) -> String {
    h.datagram(on, client(port), &request("MESSAGE", callid, 1, port, ""));
    let sent = h.take_sent();
    assert_eq!(answers(&sent), vec![(client(port), 202)]);
    sent[0].header("X-Repo-Msgid").expect("msgid")
}

/// A Call-ID owned by shard `owner` of `h`.
fn callid_owned_by(h: &Harness, owner: usize, tag: &str) -> String {
    (0..)
        .map(|n| format!("{tag}-{n}@example.com"))
        .find(|c| h.owner_of(c) == owner)
        .expect("some Call-ID hashes to every shard")
}

#[test]
fn pull_from_another_shard_answers_the_parked_request_at_its_sender() {
    let mut h = Harness::new(4, CONFIG).unwrap();
    let callid = callid_owned_by(&h, 2, "p");
    // Read by shard 0, owned by shard 2: forwarded, stored there.
    let msgid = park(&mut h, 0, &callid, 4000);
    assert_eq!(
        h.stats(0)
            .forwarded_out
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert_eq!(h.core(2).items(), 1);
    // The trigger's Call-ID is owned by some shard; the pull goes to shard 2 from there.
    h.datagram(3, client(5000), &trigger("Pull", &callid, &msgid, 1, 5000));
    let sent = h.take_sent();
    assert_eq!(
        answers(&sent),
        vec![(client(4000), 200), (client(5000), 200)]
    );
    assert_eq!(sent[0].header("X-Repo-Pulled").as_deref(), Some("1"));
    assert_eq!(h.core(2).items(), 0);
    assert!((0..4).all(|i| h.core(i).waiting_remote() == 0));
    // Pulled once: a second pull finds nothing.
    h.datagram(1, client(5000), &trigger("Pull", &callid, &msgid, 2, 5000));
    assert_eq!(answers(&h.take_sent()), vec![(client(5000), 404)]);
}

#[test]
fn rm_check_and_async_pull_reach_the_owner() {
    let mut h = Harness::new(3, CONFIG).unwrap();
    let a = callid_owned_by(&h, 1, "a");
    let b = callid_owned_by(&h, 2, "b");
    let ma = park(&mut h, 0, &a, 4001);
    let mb = park(&mut h, 0, &b, 4002);
    let remote_before: u64 = (0..3)
        .map(|i| {
            h.stats(i)
                .cross_shard_ops
                .load(std::sync::atomic::Ordering::Relaxed)
        })
        .sum();
    for (n, kind, callid, msgid, want) in [
        (1, "Check", &a, &ma, 200),
        (2, "Check", &a, &mb, 404),
        (3, "Rm", &a, &ma, 200),
        (4, "Check", &a, &ma, 404),
        (5, "Rm", &a, &ma, 404),
    ] {
        h.datagram(
            n as usize % 3,
            client(5000),
            &trigger(kind, callid, msgid, n, 5000),
        );
        assert_eq!(
            answers(&h.take_sent()),
            vec![(client(5000), want)],
            "{kind} {n}"
        );
    }
    // async_pull: queued on the owner, the pulled item answered when its task runs. The
    // trigger's own Call-ID is owned by shard 0, so this one crosses shards whatever the
    // process's hash seed made of the triggers above.
    let on_0 = callid_owned_by(&h, 0, "async-trigger");
    let extra = format!("X-Async-CallID: {b}\r\nX-Async-Msgid: {mb}\r\n");
    h.datagram(0, client(5000), &request("OPTIONS", &on_0, 1, 5000, &extra));
    let sent = h.take_sent();
    assert_eq!(
        answers(&sent),
        vec![(client(5000), 200), (client(4002), 200)]
    );
    assert_eq!(h.core(2).items(), 0);
    let remote_after: u64 = (0..3)
        .map(|i| {
            h.stats(i)
                .cross_shard_ops
                .load(std::sync::atomic::Ordering::Relaxed)
        })
        .sum();
    assert!(
        remote_after > remote_before,
        "some operations crossed shards"
    );
}

#[test]
fn items_expire_on_time_and_only_once() {
    let mut h = Harness::new(2, CONFIG).unwrap();
    h.advance(1234);
    let callid = callid_owned_by(&h, 1, "e");
    park(&mut h, 0, &callid, 4000);
    assert!(h.core(1).poll_timeout().is_some());
    // Stored at 1234 ms for 2 s: due at 3234, fired at the first 100 ms tick after, 3300.
    h.advance(2065);
    assert!(h.take_sent().is_empty(), "nothing before the deadline tick");
    h.advance(1);
    let sent = h.take_sent();
    assert_eq!(answers(&sent), vec![(client(4000), 408)]);
    assert_eq!(sent[0].at_ms, 3300);
    h.advance(60_000);
    assert!(h.take_sent().is_empty());
    assert_eq!(h.core(1).poll_timeout(), None, "nothing left to wake for");
}

#[test]
fn a_retransmitted_park_is_absorbed_and_answered_with_the_first_msgid() {
    let mut h = Harness::new(2, CONFIG).unwrap();
    let msg = request("MESSAGE", "rtx@example.com", 1, 4000, "");
    h.datagram(0, client(4000), &msg);
    let first = h.take_sent();
    h.datagram(1, client(4000), &msg);
    let again = h.take_sent();
    assert_eq!(answers(&again), vec![(client(4000), 202)]);
    assert_eq!(
        again[0].header("X-Repo-Retransmission").as_deref(),
        Some("1")
    );
    assert_eq!(
        again[0].header("X-Repo-Msgid"),
        first[0].header("X-Repo-Msgid")
    );
    let stats = h.control("repo.stats", json!({})).unwrap();
    assert_eq!(stats["items"], 1);
    assert_eq!(stats["retransmissions"], 1);
}

#[test]
fn a_reload_while_a_cross_shard_pull_is_in_flight_leaves_nothing_waiting() {
    for reload_after in ["request", "answer"] {
        let mut h = Harness::new(2, CONFIG).unwrap();
        let callid = callid_owned_by(&h, 1, "r");
        let msgid = park(&mut h, 1, &callid, 4000);
        // The trigger is read and owned by shard 0; its pull goes to shard 1.
        let t = (0..)
            .map(|n| (n, trigger("Pull", &callid, &msgid, n, 5000)))
            .find(|(n, _)| h.owner_of(&format!("trigger-{n}")) == 0)
            .unwrap()
            .1;
        h.hold();
        h.datagram(0, client(5000), &t);
        assert_eq!(h.core(0).waiting_remote(), 1);
        if reload_after == "answer" {
            // Shard 1 runs the pull (the parked request is answered); its answer to shard 0
            // is then held on the way back.
            assert!(h.step());
            assert_eq!(answers(&h.take_sent()), vec![(client(4000), 200)]);
        }
        h.reload(&config_with_expire(5)).unwrap();
        h.release();
        assert_eq!(
            h.core(0).waiting_remote(),
            0,
            "{reload_after}: the waiting run is gone"
        );
        // The trigger's run is dropped, not resumed on a config it did not start with.
        assert!(h.take_sent().is_empty(), "{reload_after}");
        // Refused by the owner (its route ids belong to the old config): still stored.
        let stored = usize::from(reload_after == "request");
        assert_eq!(h.core(1).items(), stored as u64, "{reload_after}");
    }
}

#[test]
fn an_answer_that_never_comes_is_dropped_at_its_deadline() {
    let mut h = Harness::new(2, CONFIG).unwrap();
    let callid = callid_owned_by(&h, 1, "l");
    let msgid = park(&mut h, 1, &callid, 4000);
    h.lose_when(|_, w| matches!(w, Work::Done { .. }));
    let t = (0..)
        .map(|n| (n, trigger("Check", &callid, &msgid, n, 5000)))
        .find(|(n, _)| h.owner_of(&format!("trigger-{n}")) == 0)
        .unwrap()
        .1;
    h.datagram(0, client(5000), &t);
    assert_eq!(h.lost(), 1);
    assert_eq!(h.core(0).waiting_remote(), 1);
    h.advance(super::remote::ANSWER_TIMEOUT_MS - 1000);
    assert_eq!(h.core(0).waiting_remote(), 1);
    h.advance(1000);
    assert_eq!(h.core(0).waiting_remote(), 0);
    assert_eq!(
        h.stats(0)
            .remote_timeouts
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    // Only the item's own expiry went out meanwhile.
    assert_eq!(answers(&h.take_sent()), vec![(client(4000), 408)]);
}

#[test]
fn a_stream_item_on_a_high_shard_is_answered_on_its_own_connection() {
    // 300 shards: shard numbers past 255 must survive being stored with an item.
    let mut h = Harness::new(300, CONFIG).unwrap();
    let reader = 257;
    let callid = callid_owned_by(&h, 3, "t");
    let peer = client(4100);
    h.stream_message(reader, peer, &request("MESSAGE", &callid, 1, 4100, ""));
    let sent = h.take_sent();
    assert_eq!(answers(&sent), vec![(peer, 202)]);
    let msgid = sent[0].header("X-Repo-Msgid").unwrap();
    h.datagram(0, client(5000), &trigger("Pull", &callid, &msgid, 1, 5000));
    let sent = h.take_sent();
    let pulled = sent
        .iter()
        .find(|s| s.peer() == peer)
        .expect("pulled answer");
    match pulled.dest {
        Dest::Stream(conn) => assert_eq!(usize::from(conn.shard), reader),
        other => panic!("answered by {other:?}"),
    }
}

#[test]
fn a_reload_of_the_expiry_applies_to_the_next_park() {
    let mut h = Harness::new(1, &config_with_expire(60)).unwrap();
    h.reload(&config_with_expire(1)).unwrap();
    park(&mut h, 0, "short@example.com", 4000);
    h.advance(1000);
    assert_eq!(answers(&h.take_sent()), vec![(client(4000), 408)]);
}

#[test]
fn forward_refuses_responses_and_wildcard_vias() {
    let mut h = Harness::listening_on(1, CONFIG, "0.0.0.0".parse().unwrap()).unwrap();
    h.datagram(
        0,
        client(4000),
        &request("OPTIONS", "fw1", 1, 4000, "X-Fwd: 1\r\n"),
    );
    // Our Via would have named 0.0.0.0: refused, the route's on_error answers.
    assert_eq!(answers(&h.take_sent()), vec![(client(4000), 500)]);

    let mut h = Harness::new(1, &CONFIG.replace(
        "[route.R200]",
        "[route.response]\nrules = [ { actions = [ { forward = { to = \"udp:198.51.100.99:5060\" } } ] } ]\n[route.R200]",
    ))
    .unwrap();
    let response = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1\r\n\
From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>;tag=2\r\nCall-ID: r1\r\n\
CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    h.datagram(0, client(4000), response);
    assert!(h.take_sent().is_empty(), "a response is not forwarded");

    // From a specific address the forward goes out with our Via on top.
    let mut h = Harness::new(1, CONFIG).unwrap();
    h.datagram(
        0,
        client(4000),
        &request("OPTIONS", "fw2", 1, 4000, "X-Fwd: 1\r\n"),
    );
    let sent = h.take_sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].peer(), "198.51.100.99:5060".parse().unwrap());
    let via = sent[0].header("Via").unwrap();
    assert!(
        via.starts_with("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-ss-"),
        "{via}"
    );
    assert_eq!(sent[0].header("Max-Forwards").as_deref(), Some("69"));
}

#[test]
fn a_framing_error_reply_has_a_to_tag() {
    let shared = std::sync::Arc::new(super::SharedState::new(
        crate::config::load_str(
            std::path::Path::new("t.toml"),
            CONFIG,
            &crate::config::Overrides::default(),
        )
        .unwrap(),
        None,
        crate::config::Overrides::default(),
    ));
    let mut core = super::ShardCore::new(
        0,
        1,
        shared,
        Default::default(),
        vec![(crate::transport::Transport::Tcp, client(5060))],
        0,
    );
    let buf = request("MESSAGE", "big", 1, 4000, "");
    let reply = core
        .on_framing_error(&buf, sipshard_parser::sip::FrameError::HeadTooLarge)
        .unwrap();
    let mut hs = [sipshard_parser::sip::EMPTY_HEADER; MAX_HEADERS];
    let msg = sipshard_parser::sip::parse(&reply, &mut hs, sipshard_parser::sip::Framing::Datagram)
        .unwrap()
        .complete()
        .unwrap();
    assert_eq!(msg.status_code(), Some(513));
    assert!(msg.to_tag().is_some_and(|t| !t.is_empty()));
}

#[test]
fn control_methods_run_where_their_state_is_and_merge() {
    let mut h = Harness::new(3, CONFIG).unwrap();
    let mut parked = Vec::new();
    for n in 0..30 {
        let callid = format!("c{n}@example.com");
        let msgid = park(&mut h, n % 3, &callid, 4000 + n as u16);
        parked.push((callid, msgid));
    }
    let stats = h.control("repo.stats", json!({})).unwrap();
    assert_eq!(stats["items"], 30);
    assert_eq!(stats["shards"].as_array().unwrap().len(), 3);
    // Pages of 7 over every shard, each item once.
    let mut seen = Vec::new();
    let mut cursor = json!(0);
    while !cursor.is_null() {
        let page = h
            .control("repo.list", json!({"cursor": cursor, "limit": 7}))
            .unwrap();
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["msgid"].clone()),
        );
        cursor = page["next"].clone();
    }
    seen.sort_by_key(|v| v.to_string());
    let mut want: Vec<_> = parked.iter().map(|(_, m)| json!(m)).collect();
    want.sort_by_key(|v| v.to_string());
    assert_eq!(seen, want);
    let (c, m) = &parked[4];
    let item = h
        .control("repo.get", json!({"callid": c, "msgid": m}))
        .unwrap();
    assert_eq!(item["shard"], h.owner_of(c));
    let r = h
        .control(
            "repo.pull",
            json!({"callid": c, "msgid": m, "route": "REPOPULL"}),
        )
        .unwrap();
    assert_eq!(r["result"], "pulled");
    assert_eq!(answers(&h.take_sent()), vec![(client(4004), 200)]);
    let r = h
        .control("repo.rm", json!({"callid": c, "msgid": m}))
        .unwrap();
    assert_eq!(r["result"], "not_found");
    assert_eq!(h.control("nope", json!({})).unwrap_err().code, -32601);
    assert_eq!(h.control("repo.get", json!({})).unwrap_err().code, -32602);
}

#[test]
fn responses_to_the_shards_own_requests_are_taken_by_their_transaction() {
    // route.response parks what reaches it, so a response that reached it would be counted.
    let config = CONFIG.replace(
        "[route.R200]",
        "[route.response]\nrules = [ { actions = [ { push = { msgid = \"r\" } } ] } ]\n[route.R200]",
    );
    let mut h = Harness::new(2, &config).unwrap();
    let peer = client(6000);
    let req = request("MESSAGE", "own@example.com", 1, 5060, "");
    let req = String::from_utf8(req)
        .unwrap()
        .replace("branch=z9hG4bK-own.example.com-1", "branch=z9hG4bKown1");
    let owner = h.owner_of("own@example.com");
    assert!(h
        .send_request(owner, req.clone().into_bytes(), peer)
        .is_some());
    assert_eq!(
        answers(&h.take_sent()),
        vec![(peer, 0)],
        "the request went out"
    );
    // Retransmitted on the shard's timer: timer E at 500 ms, then 1 s later.
    h.advance(1500);
    let sent = h.take_sent();
    assert_eq!(
        sent.iter().map(|s| s.at_ms).collect::<Vec<_>>(),
        vec![500, 1500]
    );
    // Its 200 comes back (read by either shard): the transaction takes it; no route runs.
    let mut ok = req.replace("MESSAGE sip:bob@example.com SIP/2.0", "SIP/2.0 200 OK");
    ok = ok.replace(
        "To: <sip:bob@example.com>",
        "To: <sip:bob@example.com>;tag=b1",
    );
    h.datagram(1 - owner, peer, ok.as_bytes());
    h.advance(60_000);
    assert!(
        h.take_sent().is_empty(),
        "no retransmission after the response"
    );
    assert_eq!(h.core(owner).poll_timeout(), None, "the transaction ended");
    assert_eq!(h.core(owner).items(), 0, "route.response did not see it");
    // A response to nothing of ours still goes to route.response.
    h.datagram(owner, peer, ok.as_bytes());
    assert_eq!(h.core(owner).items(), 1);
}

#[test]
fn at_shutdown_every_parked_caller_is_answered() {
    // Without `repo:shutdown`, `repo:expired` answers them (408 here); with it, it does.
    for (config, code) in [
        (CONFIG.to_owned(), 408),
        (
            format!(
                "{CONFIG}[route.\"repo:shutdown\"]\nrules = [ {{ actions = [ {{ reply = {{ code = 503, reason = \"Shutting Down\", headers = {{ Retry-After = \"5\" }} }} }} ] }} ]\n"
            ),
            503,
        ),
    ] {
        let mut h = Harness::new(2, &config).unwrap();
        for i in 0..6 {
            park(&mut h, i % 2, &format!("down-{i}"), 7000 + i as u16);
        }
        h.take_sent();
        assert_eq!(h.shutdown(), 6);
        let sent = h.take_sent();
        let mut ports: Vec<u16> = sent
            .iter()
            .filter(|s| s.status() == Some(code))
            .map(|s| s.peer().port())
            .collect();
        ports.sort_unstable();
        assert_eq!(ports, (7000..7006).collect::<Vec<_>>(), "{sent:#?}");
        assert_eq!(h.core(0).items() + h.core(1).items(), 0);
    }
}
