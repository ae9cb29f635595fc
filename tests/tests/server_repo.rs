//! `sipshard serve` with `docs/examples/siprepo.toml`, driven over UDP and TCP on loopback with
//! two shards: the five behaviours of the example, answers at the original sender, items spread
//! over both shards, expiry, control and metrics agreeing with what was sent, bad input.

use serde_json::json;
use sipshard_parser::sip;
use sipshard_tests::{
    examples, metric_sum, rand_u64, request, vectors, Response, Server, TcpClient, UdpClient,
};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

fn siprepo(args: &[&str]) -> Server {
    Server::start(&examples().join("siprepo.toml"), args)
}

fn msgid_of(r: &Response) -> String {
    r.header("X-Repo-Msgid").expect("X-Repo-Msgid").to_string()
}

#[test]
fn udp_park_pull_answers_the_original_sender() {
    let srv = siprepo(&["--shards", "2"]);
    let parker = UdpClient::new(srv.udp);
    let trigger = UdpClient::new(srv.udp);

    // 1. Parked: 202 Stored with a msgid.
    let cid = format!("park-{:x}@example.com", rand_u64());
    parker.send_request("MESSAGE", &cid, 7, "");
    let r = parker.recv();
    assert_eq!(r.code, 202);
    assert_eq!(r.call_id, cid);
    let msgid = msgid_of(&r);

    // 2. The trigger (another Call-ID, another socket) is answered 200 ...
    let pull = format!("X-Pull-CallID: {cid}\r\nX-Pull-Msgid: {msgid}\r\n");
    trigger.send_request("OPTIONS", &format!("trig-{:x}", rand_u64()), 1, &pull);
    let t = trigger.recv();
    assert_eq!(t.code, 200);
    // 3. ... and the parked MESSAGE is answered "200 Pulled" at its original sender.
    let p = parker.recv();
    assert_eq!(p.code, 200);
    assert_eq!(p.call_id, cid);
    assert_eq!(p.cseq, "7 MESSAGE");
    assert_eq!(p.header("X-Repo-Pulled"), Some("1"));

    // Pulled with remove: a second trigger finds nothing.
    // (Retransmissions are checked in `retransmitted_park_is_answered_not_stored_twice`.)
    trigger.send_request("OPTIONS", &format!("trig-{:x}", rand_u64()), 2, &pull);
    assert_eq!(trigger.recv().code, 404);

    // INVITE is parked too; 5. anything else gets 405.
    parker.send_request("INVITE", &format!("inv-{:x}", rand_u64()), 1, "");
    assert_eq!(parker.recv().code, 202);
    parker.send_request("BYE", &format!("bye-{:x}", rand_u64()), 1, "");
    assert_eq!(parker.recv().code, 405);
    let stats = srv.ctl("repo.stats", json!({}));
    assert_eq!(stats["stored"], 2);
    assert_eq!(stats["pulled"], 1);
    assert_eq!(stats["items"], 1);
}

#[test]
fn tcp_park_pull_answers_on_the_original_connection() {
    let srv = siprepo(&["--shards", "2"]);
    let tcp = srv.tcp.expect("TCP listen address");
    let mut parker = TcpClient::connect(tcp);
    let mut trigger = TcpClient::connect(tcp);
    let cid = format!("tcp-park-{:x}", rand_u64());
    parker.send("INVITE", &cid, 3, "");
    let r = parker.recv().unwrap();
    assert_eq!(r.code, 202);
    let msgid = msgid_of(&r);
    let pull = format!("X-Pull-CallID: {cid}\r\nX-Pull-Msgid: {msgid}\r\n");
    trigger.send("MESSAGE", &format!("tcp-trig-{:x}", rand_u64()), 1, &pull);
    assert_eq!(trigger.recv().unwrap().code, 200);
    let p = parker.recv().unwrap();
    assert_eq!((p.code, p.call_id.as_str()), (200, cid.as_str()));
    assert_eq!(p.header("X-Repo-Pulled"), Some("1"));
    trigger.send("MESSAGE", &format!("tcp-trig-{:x}", rand_u64()), 2, &pull);
    assert_eq!(trigger.recv().unwrap().code, 404);
    trigger.send("SUBSCRIBE", &format!("tcp-sub-{:x}", rand_u64()), 1, "");
    assert_eq!(trigger.recv().unwrap().code, 405);
    // A UDP client can pull what a TCP client parked, and the answer still goes over TCP.
    parker.send("MESSAGE", &cid, 4, "");
    let msgid = msgid_of(&parker.recv().unwrap());
    let udp = UdpClient::new(srv.udp);
    udp.send_request(
        "OPTIONS",
        &format!("udp-trig-{:x}", rand_u64()),
        1,
        &format!("X-Pull-CallID: {cid}\r\nX-Pull-Msgid: {msgid}\r\n"),
    );
    assert_eq!(udp.recv().code, 200);
    let p = parker.recv().unwrap();
    assert_eq!((p.code, p.cseq.as_str()), (200, "4 MESSAGE"));
    // Every answer counts as sent, over TCP as over UDP: 7 on the connections, 1 datagram.
    assert_eq!(metric_sum(&srv.metrics(), "sipshard_sent_total"), 8);
}

#[test]
fn tcp_pipelined_requests_get_every_reply_in_order() {
    // 300 requests in one write: their replies are gathered into few writes by the server,
    // and must still come back whole, framed and in order.
    let srv = siprepo(&["--shards", "1"]);
    let mut c = TcpClient::connect(srv.tcp.unwrap());
    let via = c.via();
    let tag = rand_u64();
    let mut burst = Vec::new();
    for i in 0..300u32 {
        let method = if i % 3 == 0 { "OPTIONS" } else { "MESSAGE" };
        burst.extend(request(
            method,
            &format!("pipe-{tag:x}-{i}"),
            i + 1,
            &via,
            "",
            "x",
        ));
    }
    c.s.write_all(&burst).unwrap();
    for i in 0..300u32 {
        let r = c.recv().expect("a reply for every request");
        assert_eq!(r.call_id, format!("pipe-{tag:x}-{i}"));
        assert_eq!(r.code, if i % 3 == 0 { 405 } else { 202 });
    }
}

#[test]
fn tcp_framing_errors_answer_400_and_close() {
    let srv = siprepo(&["--shards", "1"]);
    let mut c = TcpClient::connect(srv.tcp.unwrap());
    // No Content-Length on a stream (RFC 3261 §18.3).
    let via = c.via();
    write!(
        c.s,
        "MESSAGE sip:a@example.com SIP/2.0\r\nVia: SIP/2.0/{via};branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: nocl\r\nCSeq: 1 MESSAGE\r\n\r\n"
    )
    .unwrap();
    let r = c.recv().unwrap();
    assert_eq!(r.code, 400);
    assert!(r.header("Warning").unwrap().contains("Content-Length"));
    assert!(
        c.recv().is_none(),
        "the connection is closed after a framing error"
    );
    // Keep-alive ping gets a pong and the connection stays usable.
    let mut c = TcpClient::connect(srv.tcp.unwrap());
    c.s.write_all(b"\r\n\r\n").unwrap();
    let mut pong = [0u8; 2];
    c.s.read_exact(&mut pong).unwrap();
    assert_eq!(&pong, b"\r\n");
    c.send("OPTIONS", "after-ping", 1, "");
    assert_eq!(c.recv().unwrap().code, 405);
}

#[test]
fn items_spread_over_shards_and_stats_agree() {
    let srv = siprepo(&["--shards", "2"]);
    // Several sockets, so the kernel spreads datagrams over both shards' sockets; Call-IDs
    // decide the owners, so some datagrams must cross cores.
    let clients: Vec<UdpClient> = (0..8).map(|_| UdpClient::new(srv.udp)).collect();
    let n = 64;
    let mut parked = Vec::new();
    for i in 0..n {
        let c = &clients[i % clients.len()];
        let cid = format!("spread-{i}-{:x}", rand_u64());
        c.send_request("MESSAGE", &cid, 1, "");
        let r = c.recv();
        assert_eq!(r.code, 202);
        parked.push((i % clients.len(), cid, msgid_of(&r)));
    }
    // Pull a quarter of them, remove another quarter over the control API.
    for (ci, cid, msgid) in parked.iter().take(n / 4) {
        let t = &clients[(ci + 1) % clients.len()];
        t.send_request(
            "OPTIONS",
            &format!("t-{:x}", rand_u64()),
            1,
            &format!("X-Pull-CallID: {cid}\r\nX-Pull-Msgid: {msgid}\r\n"),
        );
        assert_eq!(t.recv().code, 200);
        assert_eq!(clients[*ci].recv().code, 200);
    }
    for (_, cid, msgid) in parked.iter().skip(n / 4).take(n / 4) {
        let r = srv.ctl("repo.rm", json!({"callid": cid, "msgid": msgid}));
        assert_eq!(r["result"], "removed");
    }
    let stats = srv.ctl("repo.stats", json!({}));
    assert_eq!(stats["stored"], n as u64);
    assert_eq!(stats["pulled"], (n / 4) as u64);
    assert_eq!(stats["removed"], (n / 4) as u64);
    assert_eq!(stats["items"], (n / 2) as u64);
    let shards = stats["shards"].as_array().unwrap();
    assert_eq!(shards.len(), 2);
    for s in shards {
        assert!(
            s["stored"].as_u64().unwrap() > 0,
            "every shard owns some Call-IDs: {stats}"
        );
    }
    let m = srv.metrics();
    assert_eq!(metric_sum(&m, "sipshard_repo_stored_total"), n as u64);
    assert_eq!(metric_sum(&m, "sipshard_repo_pulled_total"), (n / 4) as u64);
    assert_eq!(
        metric_sum(&m, "sipshard_repo_removed_total"),
        (n / 4) as u64
    );
    assert_eq!(metric_sum(&m, "sipshard_repo_items"), (n / 2) as u64);
    // Every request was received once by some shard's socket.
    let requests = n + n / 4;
    assert_eq!(metric_sum(&m, "sipshard_received_total"), requests as u64);
    assert!(
        metric_sum(&m, "sipshard_forwarded_in_total") > 0,
        "some datagrams crossed cores"
    );
    assert_eq!(
        metric_sum(&m, "sipshard_forwarded_in_total"),
        metric_sum(&m, "sipshard_forwarded_out_total")
    );
    // The admin listing pages over both shards and finds exactly the items left.
    let mut seen = Vec::new();
    let mut cursor = json!(0);
    loop {
        let page = srv.ctl("repo.list", json!({"cursor": cursor, "limit": 5}));
        for it in page["items"].as_array().unwrap() {
            seen.push(it["callid"].as_str().unwrap().to_string());
        }
        if page["next"].is_null() {
            break;
        }
        cursor = page["next"].clone();
    }
    seen.sort();
    let mut want: Vec<String> = parked.iter().skip(n / 2).map(|p| p.1.clone()).collect();
    want.sort();
    assert_eq!(seen, want);
    let one = &parked[n - 1];
    let item = srv.ctl("repo.get", json!({"callid": one.1, "msgid": one.2}));
    assert!(item["message"]
        .as_str()
        .unwrap()
        .starts_with("MESSAGE sip:"));
}

#[test]
fn expired_items_are_answered_408_at_the_original_sender() {
    let srv = siprepo(&[
        "--shards",
        "2",
        "--repo-expire",
        "1",
        "--repo-timer-interval",
        "50",
    ]);
    let c = UdpClient::new(srv.udp);
    let cid = format!("exp-{:x}", rand_u64());
    let sent = Instant::now();
    c.send_request("MESSAGE", &cid, 5, "");
    assert_eq!(c.recv().code, 202);
    let r = c.recv();
    // Never before the deadline (the one-tick bound after it is shown by the wheel's model
    // tests on a virtual clock; here only the order of events is checked).
    assert!(sent.elapsed() >= Duration::from_secs(1));
    assert_eq!(
        (r.code, r.call_id.as_str(), r.cseq.as_str()),
        (408, cid.as_str(), "5 MESSAGE")
    );
    let stats = srv.ctl("repo.stats", json!({}));
    assert_eq!(
        (stats["expired"].as_u64(), stats["items"].as_u64()),
        (Some(1), Some(0))
    );
}

#[test]
fn full_repository_answers_503() {
    let srv = siprepo(&["--shards", "1", "--repo-max-items", "2"]);
    let c = UdpClient::new(srv.udp);
    for i in 0..2 {
        c.send_request("MESSAGE", &format!("full-{i}-{:x}", rand_u64()), 1, "");
        assert_eq!(c.recv().code, 202);
    }
    c.send_request("MESSAGE", &format!("full-x-{:x}", rand_u64()), 1, "");
    assert_eq!(c.recv().code, 503);
    assert_eq!(srv.ctl("repo.stats", json!({}))["full"], 1);
}

#[test]
fn rfc4475_vectors_over_udp_get_the_rfc_answers() {
    let Some(v) = vectors() else { return };
    let srv = siprepo(&["--shards", "2"]);
    let c = UdpClient::new(srv.udp);
    let dir = v.join("rfc4475");
    let index = std::fs::read_to_string(dir.join("INDEX.tsv")).unwrap();
    let mut probes = 0;
    for row in index.lines().skip(1) {
        let mut cols = row.split('\t');
        let (name, verdict) = (cols.next().unwrap(), cols.next().unwrap());
        let bytes = std::fs::read(dir.join(name)).unwrap();
        c.send(&bytes);
        let expected = match (verdict, name) {
            ("invalid", "badvers.dat") => Some(505),
            ("invalid", "mismatch02.dat") => Some(501),
            ("invalid", "scalarlg.dat" | "bigcode.dat") => None, // responses: dropped
            ("invalid", _) => Some(400),
            _ => None,
        };
        if let Some(code) = expected {
            let r = c.recv();
            assert_eq!(r.code, code, "{name}");
            assert!(r.header("Warning").is_some(), "{name}: a reason is given");
        } else {
            // Valid requests are answered per their Via (usually not this socket, RFC 3261
            // §18.2.2); dropped responses get nothing. A probe marks the end of what this
            // vector caused here: anything before the probe's answer is the vector's. The probe
            // carries the vector's Call-ID, so the shard that owns the vector handles the probe
            // after it and answers in that order (answers from two shards may cross).
            probes += 1;
            let cid = sip::find_call_id(&bytes)
                .and_then(|c| std::str::from_utf8(c).ok())
                .map_or_else(|| format!("probe-{probes}"), str::to_owned);
            c.send_request("OPTIONS", &cid, 1, "");
            loop {
                let r = c.recv();
                if r.call_id == cid && r.cseq.ends_with("OPTIONS") {
                    assert_eq!(r.code, 405);
                    break;
                }
                let allowed: &[u16] = match name {
                    // Well-formed, refused above the parser (RFC 4475 §3.3.1, §3.3.8, §3.3.9).
                    "insuf.dat" | "multi01.dat" | "mcl01.dat" => &[400],
                    _ => &[202, 405],
                };
                assert!(allowed.contains(&r.code), "{name}: answered {}", r.code);
            }
        }
    }
    let m = srv.metrics();
    assert!(metric_sum(&m, "sipshard_dropped_responses_total") >= 2);
    assert!(metric_sum(&m, "sipshard_parse_errors_total") >= 18);
}

#[test]
fn sigterm_answers_every_parked_caller_on_both_shards_over_udp_and_tcp() {
    let srv = siprepo(&["--shards", "2"]);
    let udp = UdpClient::new(srv.udp);
    let mut tcp: Vec<TcpClient> = (0..4)
        .map(|_| TcpClient::connect(srv.tcp.unwrap()))
        .collect();
    let mut parked = std::collections::BTreeSet::new();
    for i in 0..20 {
        let cid = format!("left-udp-{i}-{:x}", rand_u64());
        udp.send_request("MESSAGE", &cid, 1, "");
        assert_eq!(udp.recv().code, 202);
        parked.insert(cid);
        let cid = format!("left-tcp-{i}-{:x}", rand_u64());
        let c = &mut tcp[i % 4];
        c.send("MESSAGE", &cid, 1, "");
        assert_eq!(c.recv().unwrap().code, 202);
        parked.insert(cid);
    }
    let stats = srv.ctl("repo.stats", json!({}));
    let per_shard: Vec<u64> = stats["shards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["items"].as_u64().unwrap())
        .collect();
    assert!(
        per_shard.iter().all(|&n| n > 0),
        "items on both shards: {per_shard:?}"
    );
    let out = srv.stop();
    assert!(out.contains("40 items were still stored"), "{out}");
    // Each parked caller got exactly one answer before the server stopped (`repo:shutdown`:
    // 503 with Retry-After), on the transport it parked over.
    let mut answered = std::collections::BTreeSet::new();
    for _ in 0..20 {
        let r = udp.recv();
        assert_eq!((r.code, r.header("Retry-After")), (503, Some("5")));
        assert!(answered.insert(r.call_id), "answered twice");
    }
    for c in &mut tcp {
        while let Some(r) = c.recv() {
            assert_eq!((r.code, r.header("Retry-After")), (503, Some("5")));
            assert!(answered.insert(r.call_id), "answered twice");
        }
    }
    assert_eq!(answered, parked);
    assert!(udp.try_recv(Duration::from_millis(200)).is_none());
}

#[test]
fn config_reload_swaps_the_program() {
    let dir = std::env::temp_dir().join(format!("sipshard-reload-{:x}", rand_u64()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("repo.toml");
    let original = std::fs::read_to_string(examples().join("siprepo.toml")).unwrap();
    std::fs::write(&cfg, &original).unwrap();
    let srv = Server::start(&cfg, &["--shards", "2"]);
    let c = UdpClient::new(srv.udp);
    c.send_request("BYE", "reload-1", 1, "");
    assert_eq!(c.recv().code, 405);
    // Answer "anything else" with 403 instead, and reload.
    std::fs::write(
        &cfg,
        original.replace(
            "reply = { code = 405, reason = \"Method Not Allowed\", headers = { Allow = \"INVITE, MESSAGE\" } }",
            "reply = { code = 403, reason = \"Forbidden\" }",
        ),
    )
    .unwrap();
    let r = srv.ctl("config.reload", json!({}));
    assert_eq!(r["reloaded"], true);
    for i in 0..8 {
        c.send_request("BYE", &format!("reload-2-{i}"), 1, "");
        assert_eq!(c.recv().code, 403);
    }
    // A broken config is refused and the running one stays.
    std::fs::write(
        &cfg,
        original.replace("route = \"REPOPULL\"", "route = \"NOPE\""),
    )
    .unwrap();
    let body =
        serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "config.reload"}).to_string();
    let resp = sipshard_tests::http(srv.control, "POST", "/", &body);
    assert!(
        resp.contains("reload refused") && resp.contains("repo.toml:"),
        "{resp}"
    );
    c.send_request("BYE", "reload-3", 1, "");
    assert_eq!(c.recv().code, 403);
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_config_stops_startup_with_file_and_line() {
    let dir = std::env::temp_dir().join(format!("sipshard-badcfg-{:x}", rand_u64()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("bad.toml");
    let original = std::fs::read_to_string(examples().join("siprepo.toml")).unwrap();
    let bad = original.replace("on_stored = \"STORED\"", "on_stored = \"NO_SUCH_ROUTE\"");
    std::fs::write(&cfg, &bad).unwrap();
    let line = bad
        .lines()
        .position(|l| l.contains("NO_SUCH_ROUTE"))
        .unwrap()
        + 1;
    let out = sipshard_tests::command("sipshard")
        .args(["serve", "-c"])
        .arg(&cfg)
        .args(["--port", "0", "--control", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("bad.toml:{line}:")), "{err}");
    assert!(err.contains("NO_SUCH_ROUTE"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn async_pull_runs_in_its_task_queue_group() {
    // The example, with the pull made asynchronous in a "bulk" group of its own.
    let dir = std::env::temp_dir().join(format!("sipshard-async-{:x}", rand_u64()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("async.toml");
    let original = std::fs::read_to_string(examples().join("siprepo.toml")).unwrap();
    let changed = original
        .replace(
            "{ pull = { callid = \"$hdr(X-Pull-CallID)\", msgid = \"$hdr(X-Pull-Msgid)\", route = \"REPOPULL\", remove = true }, on_pulled = \"PULL_OK\"",
            "{ async_pull = { callid = \"$hdr(X-Pull-CallID)\", msgid = \"$hdr(X-Pull-Msgid)\", group = \"bulk\", route = \"REPOPULL\", remove = true }, on_queued = \"PULL_OK\"",
        );
    assert_ne!(changed, original, "the example's pull rule changed shape");
    std::fs::write(&cfg, &changed).unwrap();
    let srv = Server::start(
        &cfg,
        &[
            "--shards",
            "2",
            "--task-queue-shares",
            "default=100,bulk=10",
        ],
    );
    let parker = UdpClient::new(srv.udp);
    let trigger = UdpClient::new(srv.udp);
    for i in 0..8 {
        let cid = format!("async-{i}-{:x}", rand_u64());
        parker.send_request("MESSAGE", &cid, 1, "");
        let msgid = msgid_of(&parker.recv());
        trigger.send_request(
            "OPTIONS",
            &format!("at-{i}-{:x}", rand_u64()),
            1,
            &format!("X-Pull-CallID: {cid}\r\nX-Pull-Msgid: {msgid}\r\n"),
        );
        assert_eq!(trigger.recv().code, 200, "queued");
        let p = parker.recv();
        assert_eq!((p.code, p.call_id.as_str()), (200, cid.as_str()));
    }
    // A missing item is `not_found` at queue time.
    trigger.send_request(
        "OPTIONS",
        "at-missing",
        1,
        "X-Pull-CallID: nothing-here\r\nX-Pull-Msgid: 1\r\n",
    );
    assert_eq!(trigger.recv().code, 404);
    let m = srv.metrics();
    assert_eq!(metric_sum(&m, "sipshard_repo_async_queued_total"), 8);
    assert_eq!(metric_sum(&m, "sipshard_repo_pulled_total"), 8);
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn retransmitted_park_is_answered_not_stored_twice() {
    let srv = siprepo(&["--shards", "2"]);
    let c = UdpClient::new(srv.udp);
    let m = request(
        "MESSAGE",
        &format!("rtx-{:x}", rand_u64()),
        1,
        &c.via(),
        "",
        "hi",
    );
    c.send(&m);
    let first = c.recv();
    assert_eq!(first.code, 202);
    assert!(first.header("X-Repo-Msgid").is_some());
    // The same bytes again (same Call-ID, CSeq and branch), as a UDP retransmission.
    c.send(&m);
    let again = c.recv();
    assert_eq!(again.code, 202);
    assert_eq!(again.header("X-Repo-Retransmission"), Some("1"));
    // The answer names the item the first copy made, so a client that lost the first 202 can
    // still pull it.
    assert_eq!(again.header("X-Repo-Msgid"), first.header("X-Repo-Msgid"));
    let stats = srv.ctl("repo.stats", json!({}));
    assert_eq!(
        (stats["stored"].as_u64(), stats["retransmissions"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(stats["items"], 1);
}

#[test]
fn a_peer_trickling_a_message_over_tcp_is_cut_off() {
    use std::io::{ErrorKind, Read, Write};
    let srv = siprepo(&["--shards", "2", "--tcp-message-timeout-s", "1"]);
    let mut s = std::net::TcpStream::connect(srv.tcp.expect("a TCP listen address")).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_millis(200)))
        .unwrap();
    s.write_all(b"MESSAGE sip:bob@example.com SIP/2.0\r\n")
        .unwrap();
    // One byte every 200 ms: the idle timeout (120 s) never fires, the message timeout does.
    let mut closed = false;
    for _ in 0..50 {
        if s.write_all(b"X").is_err() {
            closed = true;
            break;
        }
        let mut b = [0u8; 64];
        match s.read(&mut b) {
            Ok(0) => closed = true,
            Err(e) if !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                closed = true
            }
            _ => {}
        }
        if closed {
            break;
        }
    }
    assert!(closed, "still connected after 10 s of trickling");
    let m = srv.metrics();
    assert!(
        m.contains("sipshard_tcp_message_timeouts_total{shard="),
        "{m}"
    );
    srv.stop();
}

/// The UDP path reads a socket in batches of `udp_batch` and sends what a pass produced in
/// one go; with a coalescing window it drains once per window while traffic flows. Bursts
/// many times a batch, pauses between them (so each burst starts from idle) and single
/// requests each get exactly one answer, with and without the window, on both shards.
#[test]
fn udp_bursts_larger_than_a_batch_get_one_answer_each_with_and_without_a_window() {
    for extra in [&[][..], &["--udp-coalesce-us", "3000"][..]] {
        let mut args = vec!["--shards", "2", "--udp-batch", "4"];
        args.extend_from_slice(extra);
        let srv = siprepo(&args);
        let c = UdpClient::new(srv.udp);
        let tag = rand_u64();
        let mut sent = 0u64;
        for round in 0..3 {
            let burst = 150;
            let mut want = std::collections::BTreeSet::new();
            for i in 0..burst {
                let cid = format!("burst-{tag:x}-{round}-{i}");
                c.send_request("MESSAGE", &cid, 1, "");
                want.insert(cid);
            }
            while !want.is_empty() {
                let r = c.recv();
                assert_eq!(r.code, 202, "{extra:?}: {}", r.call_id);
                assert!(
                    want.remove(&r.call_id),
                    "{extra:?}: a second answer for {}",
                    r.call_id
                );
            }
            sent += burst;
            // One at a time: each request the first after a quiet spell.
            for i in 0..5 {
                let cid = format!("single-{tag:x}-{round}-{i}");
                c.send_request("MESSAGE", &cid, 1, "");
                let r = c.recv();
                assert_eq!(
                    (r.code, r.call_id.as_str()),
                    (202, cid.as_str()),
                    "{extra:?}"
                );
                sent += 1;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            c.try_recv(Duration::from_millis(200)).is_none(),
            "{extra:?}: nothing more"
        );
        let m = srv.metrics();
        assert_eq!(metric_sum(&m, "sipshard_received_total"), sent, "{extra:?}");
        assert_eq!(metric_sum(&m, "sipshard_sent_total"), sent, "{extra:?}");
        assert_eq!(metric_sum(&m, "sipshard_udp_drops_total"), 0, "{extra:?}");
        srv.stop();
    }
}
