//! Runs one shard core (no sockets, no executor) through a load scenario in a loop, for
//! instruction-count profiles of sipshard's own per-request work: parse, route, repository,
//! response. The requests are the load generator's own bytes.
//!
//! ```sh
//! cargo build --release -p sipshard-bench --example core_loop
//! valgrind --tool=callgrind target/release/examples/core_loop message 20000
//! callgrind_annotate --inclusive=yes callgrind.out.* | grep on_datagram
//! ```
//!
//! Scenarios: `message` (a MESSAGE parked, `202 Stored`), `park-pull` (that, then a pull
//! trigger answered `200 OK` and `200 Pulled`). The config is `docs/examples/siprepo.toml`.
//! The inclusive cost of `ShardCore::on_datagram` divided by the datagrams sent is the core's
//! per-request work; the rest of the loop (building requests, the harness) is not sipshard's.

use sipshard_core::shard::harness::Harness;
use sipshard_load::scenario::{build_request, message_body, RequestParams};
use std::net::SocketAddr;

const CONFIG: &str = include_str!("../../docs/examples/siprepo.toml");

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let scenario = args.get(1).map(String::as_str).unwrap_or("message");
    let n: u32 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(20_000);
    if !matches!(scenario, "message" | "park-pull") {
        eprintln!("usage: core_loop message|park-pull [N]");
        std::process::exit(2);
    }
    let mut h = Harness::new(1, CONFIG).expect("docs/examples/siprepo.toml loads");
    let source: SocketAddr = "127.0.0.1:40000".parse().expect("address");
    let body = message_body(100);
    let (mut datagrams, mut answers) = (0u64, 0u64);
    for i in 0..n {
        let call_id = format!("{i:08x}-core-loop@sipshard-load");
        let branch = format!("z9hG4bK-{i}");
        let from_tag = format!("f{i}");
        let request = |extra: &[String], branch: &str, cseq: u32| {
            build_request(&RequestParams {
                method: "MESSAGE",
                ruri: "sip:sipshard@127.0.0.1:5060",
                local: "127.0.0.1:40000",
                transport: "UDP",
                call_id: &call_id,
                cseq,
                branch,
                from_tag: &from_tag,
                to_tag: None,
                extra,
                body: Some(("text/plain", &body)),
            })
        };
        h.datagram(0, source, &request(&[], &branch, 1));
        datagrams += 1;
        let sent = h.take_sent();
        answers += sent.len() as u64;
        if scenario == "park-pull" {
            let msgid = sent
                .iter()
                .find_map(|s| s.header("X-Repo-Msgid"))
                .expect("the park is answered 202 with X-Repo-Msgid");
            let extra = [
                format!("X-Pull-CallID: {call_id}"),
                format!("X-Pull-Msgid: {msgid}"),
            ];
            h.datagram(0, source, &request(&extra, &format!("{branch}-pull"), 2));
            datagrams += 1;
            answers += h.take_sent().len() as u64;
        }
    }
    println!("{scenario}: {datagrams} datagrams, {answers} answers");
}
