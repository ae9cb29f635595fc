//! Floods against `sipshard serve` on loopback: ten times what the repository and the gateway's
//! tables may hold, and malformed messages (the invalid RFC 4475 torture messages and random
//! mutants of valid requests) over UDP and TCP, each interleaved with valid traffic. Every
//! request that needs an answer gets the one the RFC (or the full table) gives it, valid traffic
//! is still served, memory stays bounded, and afterwards the server is back to normal.

use serde_json::json;
use sipshard_parser::sip;
use sipshard_parser::Status;
use sipshard_tests::{
    examples, metric_sum, rand_u64, request, vectors, wait_until, Response, Server, TcpClient,
    UdpClient,
};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

/// Resident memory of `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    sipshard_load::soak::sampler::rss_kb(pid).unwrap_or(0)
}

/// The memory a flood may add to the server's resident set: the tables are bounded far below
/// this, and an allocator keeps some of what a burst used.
const RSS_GROWTH_KIB: u64 = 64 << 10;

/// Every shard still answers the control endpoint (a method that asks each one).
fn all_shards_answer(srv: &Server) -> serde_json::Value {
    srv.ctl("repo.stats", json!({}))
}

/// Codes of the responses to a window of requests sent at once over UDP, read until `expect`
/// of them and the answer to a valid request sent last (a probe) came. A shard answers what it
/// owns, so answers come in any order. A flood that overflows the socket would make the test
/// flaky rather than the server wrong, so the load comes in windows.
fn window(c: &UdpClient, msgs: &[Vec<u8>], expect: usize) -> BTreeMap<u16, usize> {
    for m in msgs {
        c.send(m);
    }
    let probe = format!("probe-{:x}", rand_u64());
    c.send_request("OPTIONS", &probe, 1, "");
    let mut codes = BTreeMap::new();
    let (mut probed, mut got) = (false, 0);
    while !probed || got < expect {
        let r = c.recv();
        if r.call_id == probe {
            assert_eq!(r.code, 405, "valid traffic is answered as usual");
            probed = true;
            continue;
        }
        *codes.entry(r.code).or_insert(0) += 1;
        got += 1;
    }
    codes
}

#[test]
fn a_flood_of_ten_times_the_repository_limits_is_answered_503_and_passes() {
    let srv = Server::start(
        &examples().join("siprepo.toml"),
        &[
            "--shards",
            "2",
            "--repo-max-items",
            "50",
            "--repo-max-bytes",
            "64KiB",
        ],
    );
    let rss0 = rss_kib(srv.pid());
    // 2 shards × 50 items: 1,000 parks is ten times the limit. Half over UDP, half pipelined
    // over TCP on two connections.
    let c = UdpClient::new(srv.udp);
    let mut codes: BTreeMap<u16, usize> = BTreeMap::new();
    for w in 0..10 {
        let msgs: Vec<Vec<u8>> = (0..50)
            .map(|i| {
                let cid = format!("flood-udp-{w}-{i}-{:x}", rand_u64());
                request("MESSAGE", &cid, 1, &c.via(), "", "park me")
            })
            .collect();
        for (k, n) in window(&c, &msgs, msgs.len()) {
            *codes.entry(k).or_insert(0) += n;
        }
    }
    let tcp = srv.tcp.unwrap();
    let senders: Vec<_> = (0..2)
        .map(|k| {
            std::thread::spawn(move || {
                let mut t = TcpClient::connect(tcp);
                let mut all = Vec::new();
                for i in 0..250 {
                    let cid = format!("flood-tcp-{k}-{i}-{:x}", rand_u64());
                    all.extend(request("MESSAGE", &cid, 1, &t.via(), "", "park me"));
                }
                let mut w = t.s.try_clone().unwrap();
                let writer = std::thread::spawn(move || w.write_all(&all).unwrap());
                let codes: Vec<u16> = (0..250)
                    .map(|_| t.recv().expect("an answer").code)
                    .collect();
                writer.join().unwrap();
                codes
            })
        })
        .collect();
    for s in senders {
        for code in s.join().unwrap() {
            *codes.entry(code).or_insert(0) += 1;
        }
    }
    let stored = codes.get(&202).copied().unwrap_or(0);
    let full = codes.get(&503).copied().unwrap_or(0);
    assert_eq!(
        stored + full,
        1000,
        "every park answered 202 or 503: {codes:?}"
    );
    assert!((1..=100).contains(&stored), "{codes:?}");
    let stats = all_shards_answer(&srv);
    assert_eq!(stats["items"].as_u64().unwrap() as usize, stored);
    let m = srv.metrics();
    assert_eq!(metric_sum(&m, "sipshard_repo_full_total") as usize, full);
    assert!(
        rss_kib(srv.pid()) < rss0 + RSS_GROWTH_KIB,
        "RSS {} KiB from {rss0}",
        rss_kib(srv.pid())
    );
    // After the flood: the items are pulled (through the trigger route) and new parks are
    // stored again.
    let list = srv.ctl("repo.list", json!({ "limit": 1000 }));
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), stored);
    for it in items {
        let r = srv.ctl(
            "repo.rm",
            json!({ "callid": it["callid"], "msgid": it["msgid"] }),
        );
        assert_eq!(r["result"], "removed");
    }
    for i in 0..20 {
        c.send_request("MESSAGE", &format!("after-{i}-{:x}", rand_u64()), 1, "");
        assert_eq!(c.recv().code, 202);
    }
}

/// A UDP socket that takes the gateway's INVITEs and never answers them.
fn black_hole() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
    s
}

/// A MESSAGE from alice (`c`) to `user` at the black hole.
fn message_to(c: &UdpClient, hole: SocketAddr, user: &str, cid: &str) -> Vec<u8> {
    let via = c.via();
    let me = c.sock.local_addr().unwrap();
    let body = "hello";
    format!(
        "MESSAGE sip:{user}@{hole} SIP/2.0\r\nVia: SIP/2.0/{via};branch=z9hG4bK{:x};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:alice@{me}>;tag=a1\r\nTo: <sip:{user}@{hole}>\r\n\
         Call-ID: {cid}\r\nCSeq: 1 MESSAGE\r\nContent-Type: text/plain\r\n\
         Content-Length: {}\r\n\r\n{body}",
        rand_u64(),
        body.len()
    )
    .into_bytes()
}

/// Answers to `msgs` sent from `sock` to the gateway, ignoring the requests it sends alice
/// (the example tells her when a session could not be set up).
fn gateway_window(sock: &UdpSocket, srv: SocketAddr, msgs: &[Vec<u8>]) -> Vec<Response> {
    for m in msgs {
        sock.send_to(m, srv).unwrap();
    }
    let mut out = Vec::new();
    let mut buf = vec![0u8; 65536];
    while out.len() < msgs.len() {
        let (n, _) = sock.recv_from(&mut buf).expect("an answer within 10 s");
        if buf.starts_with(b"SIP/2.0 ") {
            out.push(Response::parse(&buf[..n]));
        }
    }
    out
}

#[test]
fn a_flood_of_ten_times_the_gateways_tables_is_answered_503_and_passes() {
    let text = std::fs::read_to_string(examples().join("msrp-gateway.toml")).unwrap();
    let p = std::env::temp_dir().join(format!("sipshard-gw-flood-{}.toml", std::process::id()));
    std::fs::write(
        &p,
        text.replace(
            "[gateway]\n",
            "[gateway]\nsetup_timeout = 1\nmax_sessions = 4\nqueue_max_messages = 3\n",
        ),
    )
    .unwrap();
    let srv = Server::start(&p, &["--shards", "2", "--msrp-listen", "127.0.0.1:0"]);
    let rss0 = rss_kib(srv.pid());
    let hole = black_hole();
    let hole_addr = hole.local_addr().unwrap();
    let c = UdpClient::new(srv.udp);
    let sessions = |srv: &Server| srv.ctl("gw.stats", json!({}))["sessions"].as_u64().unwrap();

    // 80 recipients, ten times the 2 × 4 sessions: the rest are told to come back later.
    let mut codes: BTreeMap<u16, usize> = BTreeMap::new();
    for w in 0..4 {
        let msgs: Vec<Vec<u8>> = (0..20)
            .map(|i| {
                message_to(
                    &c,
                    hole_addr,
                    &format!("u{w}x{i}"),
                    &format!("gwf-{w}-{i}-{:x}", rand_u64()),
                )
            })
            .collect();
        for r in gateway_window(&c.sock, srv.udp, &msgs) {
            if r.code == 503 {
                assert_eq!(r.header("Retry-After"), Some("60"), "held max_sessions");
            }
            *codes.entry(r.code).or_insert(0) += 1;
        }
    }
    let queued = codes.get(&202).copied().unwrap_or(0);
    assert_eq!(
        queued + codes.get(&503).copied().unwrap_or(0),
        80,
        "{codes:?}"
    );
    assert!((1..=8).contains(&queued), "{codes:?}");
    assert!(sessions(&srv) <= 8);
    // The sessions fail their setup (nobody answers the INVITEs) and the table empties.
    assert!(wait_until(20, || sessions(&srv) == 0), "sessions left");

    // One recipient, 30 MESSAGEs while its session is set up: its queue holds 3.
    let msgs: Vec<Vec<u8>> = (0..30)
        .map(|i| message_to(&c, hole_addr, "busy", &format!("gwq-{i}-{:x}", rand_u64())))
        .collect();
    let answers = gateway_window(&c.sock, srv.udp, &msgs);
    let queued = answers.iter().filter(|r| r.code == 202).count();
    let full: Vec<&Response> = answers.iter().filter(|r| r.code == 503).collect();
    assert_eq!(queued, 3, "queue_max_messages");
    assert_eq!(full.len(), 27);
    assert!(
        full.iter().all(|r| r.header("Retry-After") == Some("1")),
        "setup_timeout"
    );
    assert!(wait_until(20, || sessions(&srv) == 0), "sessions left");

    assert!(
        rss_kib(srv.pid()) < rss0 + RSS_GROWTH_KIB,
        "RSS {} KiB from {rss0}",
        rss_kib(srv.pid())
    );
    // Back to normal: a new MESSAGE makes a session again.
    let m = message_to(&c, hole_addr, "later", &format!("gwn-{:x}", rand_u64()));
    let r = gateway_window(&c.sock, srv.udp, &[m]);
    assert_eq!(r[0].code, 202);
    assert_eq!(sessions(&srv), 1);
    drop(hole);
    let _ = std::fs::remove_file(&p);
}

/// The invalid RFC 4475 messages that are requests, with the answer RFC 3261 gives each.
fn invalid_vectors() -> Option<Vec<(String, Vec<u8>, u16)>> {
    let dir = vectors()?.join("rfc4475");
    let index = std::fs::read_to_string(dir.join("INDEX.tsv")).unwrap();
    let mut out = Vec::new();
    for row in index.lines().skip(1) {
        let mut cols = row.split('\t');
        let (name, verdict) = (cols.next().unwrap(), cols.next().unwrap());
        let code = match (verdict, name) {
            ("invalid", "badvers.dat") => 505,
            ("invalid", "mismatch02.dat") => 501,
            // Responses: dropped, never answered.
            ("invalid", "scalarlg.dat" | "bigcode.dat") => continue,
            ("invalid", _) => 400,
            _ => continue,
        };
        out.push((
            name.to_string(),
            std::fs::read(dir.join(name)).unwrap(),
            code,
        ));
    }
    Some(out)
}

/// A small deterministic generator, so that a failing mutant can be found again from its seed.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// A valid request with one to three random mutations: bytes changed (often to CR, LF, NUL,
/// `:` or a space), a span cut out or doubled, a header line repeated.
fn mutant(rng: &mut XorShift, valid: &[u8]) -> Vec<u8> {
    const SPECIAL: &[u8] = b"\r\n\0: \t;<>\"%\x7f\xff0";
    let mut m = valid.to_vec();
    for _ in 0..1 + rng.below(3) {
        if m.is_empty() {
            break;
        }
        let at = rng.below(m.len());
        match rng.below(4) {
            0 => m[at] = SPECIAL[rng.below(SPECIAL.len())],
            1 => m[at] = rng.next() as u8,
            2 => {
                let end = (at + 1 + rng.below(40)).min(m.len());
                m.drain(at..end);
            }
            _ => {
                let end = (at + 1 + rng.below(80)).min(m.len());
                let span = m[at..end].to_vec();
                m.splice(at..at, span);
            }
        }
    }
    m
}

/// Codes a mutant may get: the RFC's answers to what cannot be parsed (400, 505, 513, 501 for
/// a CSeq that does not match the method, 416/420 are never ours), and what the example's
/// routes answer to a request that still parses (202 parked, 405 anything else, 503 full).
const MUTANT_CODES: &[u16] = &[202, 400, 405, 501, 503, 505, 513];

#[test]
fn a_flood_of_malformed_requests_over_udp_gets_the_rfc_answers() {
    let Some(invalid) = invalid_vectors() else {
        return;
    };
    let srv = Server::start(&examples().join("siprepo.toml"), &["--shards", "2"]);
    let c = UdpClient::new(srv.udp);
    // The torture messages, 20 times over, each round with a valid request last.
    let mut want: BTreeMap<u16, usize> = BTreeMap::new();
    for (_, _, code) in &invalid {
        *want.entry(*code).or_insert(0) += 1;
    }
    let msgs: Vec<Vec<u8>> = invalid.iter().map(|(_, b, _)| b.clone()).collect();
    for round in 0..20 {
        assert_eq!(window(&c, &msgs, msgs.len()), want, "round {round}");
    }
    // 2,000 mutants of a valid MESSAGE, 40 at a time, each window closed by a valid probe.
    let seed = rand_u64() | 1;
    let mut rng = XorShift(seed);
    let valid = request(
        "MESSAGE",
        "mutant-base",
        7,
        &c.via(),
        "",
        "a body of some length",
    );
    // How many get an answer here is not known (a mutated Via sends it elsewhere), so a window
    // ends at its probe, and a late answer is counted in the next one.
    let mut answered = 0;
    for w in 0..50 {
        let msgs: Vec<Vec<u8>> = (0..40).map(|_| mutant(&mut rng, &valid)).collect();
        let codes = window(&c, &msgs, 0);
        answered += codes.values().sum::<usize>();
        assert!(
            answered <= 40 * (w + 1),
            "seed {seed:#x} window {w}: {codes:?}"
        );
        for code in codes.keys() {
            assert!(
                MUTANT_CODES.contains(code),
                "seed {seed:#x} window {w}: answered {code}"
            );
        }
    }
    let m = srv.metrics();
    assert!(metric_sum(&m, "sipshard_parse_errors_total") >= 20 * invalid.len() as u64);
    all_shards_answer(&srv);
}

#[test]
fn a_flood_of_malformed_requests_over_tcp_gets_the_rfc_answers() {
    let Some(invalid) = invalid_vectors() else {
        return;
    };
    let srv = Server::start(&examples().join("siprepo.toml"), &["--shards", "2"]);
    let tcp = srv.tcp.unwrap();
    let fds = sipshard_tests::open_fds(srv.pid());
    // Each message on a connection of its own (a framing error closes the connection); the
    // peer sends it, closes its side, and reads what comes until the server closes.
    let exchange = |bytes: &[u8]| -> Vec<u16> {
        let mut s = std::net::TcpStream::connect(tcp).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let _ = s.write_all(bytes);
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut raw = Vec::new();
        let _ = s.read_to_end(&mut raw);
        let mut codes = Vec::new();
        let mut rest = &raw[..];
        loop {
            // Pongs (CRLF) answer the double-CRLF pings a mutant may hold.
            while let Some(r) = rest.strip_prefix(b"\r\n") {
                rest = r;
            }
            let Some(at) = rest.windows(4).position(|w| w == b"\r\n\r\n") else {
                break;
            };
            let head = String::from_utf8_lossy(&rest[..at]).into_owned();
            let code = head
                .strip_prefix("SIP/2.0 ")
                .and_then(|l| l.get(..3))
                .and_then(|c| c.parse().ok())
                .unwrap_or_else(|| panic!("not a response: {head}"));
            codes.push(code);
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (n, v) = l.split_once(':')?;
                    (n.eq_ignore_ascii_case("content-length") || n == "l")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            rest = &rest[(at + 4 + len).min(rest.len())..];
        }
        codes
    };
    let mut probe = TcpClient::connect(tcp);
    for round in 0..5 {
        for (name, bytes, code) in &invalid {
            let codes = exchange(bytes);
            // On a stream a message ends where its Content-Length says: one that says more
            // than was sent never arrives whole (the peer's close ends it unanswered), and
            // one that says less is answered and what follows read as the next message.
            match sip::frame(bytes, &sip::FrameOptions::default()) {
                Ok(Status::Partial) => assert!(codes.is_empty(), "{name}: {codes:?}"),
                _ => assert_eq!(
                    codes.first(),
                    Some(code),
                    "round {round}: {name}: {codes:?}"
                ),
            }
        }
        probe.send("OPTIONS", &format!("tcp-probe-{round}"), 1, "");
        assert_eq!(probe.recv().unwrap().code, 405);
    }
    let seed = rand_u64() | 1;
    let mut rng = XorShift(seed);
    let valid = request(
        "MESSAGE",
        "mutant-base",
        7,
        "TCP 127.0.0.1:9",
        "",
        "a body of some length",
    );
    for i in 0..500 {
        let m = mutant(&mut rng, &valid);
        for code in exchange(&m) {
            assert!(
                MUTANT_CODES.contains(&code),
                "seed {seed:#x} mutant {i}: answered {code}"
            );
        }
        if i % 50 == 0 {
            probe.send("OPTIONS", &format!("tcp-probe-m{i}"), 1, "");
            assert_eq!(probe.recv().unwrap().code, 405);
        }
    }
    drop(probe);
    all_shards_answer(&srv);
    assert!(
        wait_until(20, || sipshard_tests::open_fds(srv.pid()) <= fds),
        "descriptors left open"
    );
}

/// What the kernel drops at a full socket is counted, per shard: with a receive buffer far too
/// small for a burst, every datagram sent is either received or counted as dropped.
#[test]
fn datagrams_dropped_at_a_full_socket_are_counted() {
    let srv = Server::start(
        &examples().join("siprepo.toml"),
        &["--shards", "2", "--socket-recv-buffer", "1KiB"],
    );
    let c = UdpClient::new(srv.udp);
    let sent = 20_000u64;
    let m = request("OPTIONS", "burst", 1, "UDP 127.0.0.1:9", "", "");
    for _ in 0..sent {
        c.send(&m);
    }
    let counted = |srv: &Server| {
        let m = srv.metrics();
        (
            metric_sum(&m, "sipshard_received_total"),
            metric_sum(&m, "sipshard_udp_drops_total"),
        )
    };
    let settled = wait_until(20, || {
        let (received, dropped) = counted(&srv);
        received + dropped == sent
    });
    let (received, dropped) = counted(&srv);
    assert!(
        settled,
        "received {received} + dropped {dropped} != sent {sent}"
    );
    assert!(dropped > 0, "a 1 KiB buffer took a burst of {sent}");
}
