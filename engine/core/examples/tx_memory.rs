//! Measures what a completed SIP server transaction costs: the gateway keeps one per MESSAGE
//! received over UDP for 64·T1 (32 s) to answer its retransmissions, so a shard taking N
//! MESSAGEs/s holds about 32·N of them (`[gateway] max_transactions` bounds them).
//!
//! Feeds ITEMS realistic MESSAGEs (unique branches) to one `Transactions` layer, answers each
//! 202 (a response as the gateway writes it), and counts heap bytes with a counting allocator.
//!
//! Run: `cargo run --release -p sipshard-core --example tx_memory [ITEMS]` (default 200,000).

#[path = "support/counting.rs"]
mod counting;

use sipshard_core::sip_write;
use sipshard_core::transaction::{Hop, RequestMatch, Timers, Transactions};
use sipshard_parser::sip::{parse, Framing, EMPTY_HEADER};

fn main() {
    let items: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    let mut txs = Transactions::new(Timers::default(), items + 1, 0);
    let source = "198.51.100.7:5060".parse().unwrap();
    let hop = Hop::Datagram {
        listen: 0,
        dest: source,
    };
    let mut outs = Vec::new();
    let mut events = Vec::new();
    let baseline = counting::live();
    for i in 0..items {
        let req = format!(
            "MESSAGE sip:bob@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK{i:016x}a7;rport\r\n\
Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag={i:x}f\r\nTo: <sip:bob@example.com>\r\n\
Call-ID: {i:x}-4f2a9c@198.51.100.7\r\nCSeq: 1 MESSAGE\r\nContent-Type: text/plain\r\n\
Content-Length: 5\r\n\r\nhello"
        );
        let mut h = [EMPTY_HEADER; 32];
        let msg = parse(req.as_bytes(), &mut h, Framing::Datagram)
            .expect("parses")
            .complete()
            .expect("whole");
        let RequestMatch::New(tx) = txs.on_request(0, &msg, hop, &mut outs, &mut events) else {
            panic!("a new transaction");
        };
        let mut resp = Vec::with_capacity(512);
        sip_write::write_response(&msg, source, 202, b"Accepted", b"ss1.0.1", &[], &mut resp);
        txs.respond(0, tx, 202, resp, &mut outs, &mut events);
        outs.clear();
        events.clear();
    }
    let heap = counting::live() - baseline;
    println!(
        "{items} completed server transactions: {heap} heap bytes, {} per transaction",
        heap / items
    );
}
