//! Runs one parser entry point in a loop, for instruction-count profiles that do not depend on
//! machine load:
//!
//! ```sh
//! cargo build --release -p sipshard-bench --example parse_loop
//! valgrind --tool=callgrind target/release/examples/parse_loop full invite_650B 10000
//! ```
//!
//! Modes: `full` (parse + routing fields), `strict` (parse + validate + routing fields),
//! `callid` (the Call-ID fast path), `httparse` (httparse::parse_headers on the same bytes).

use sipshard_parser::sip::{self, Framing, EMPTY_HEADER};
use std::hint::black_box;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map(String::as_str).unwrap_or("full");
    let input = args.get(2).map(String::as_str).unwrap_or("invite_650B");
    let n: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let buf = sipshard_bench::sip_inputs()
        .into_iter()
        .find(|(name, _)| *name == input)
        .map(|(_, b)| b)
        .unwrap_or_else(|| panic!("unknown input {input}"));
    let after = &buf[buf.windows(2).position(|w| w == b"\r\n").unwrap() + 2..];
    let mut sum = 0usize;
    for _ in 0..n {
        let b = black_box(&buf[..]);
        sum += match mode {
            "full" | "strict" => {
                let mut h = [EMPTY_HEADER; 32];
                let m = if mode == "full" {
                    sip::parse(b, &mut h, Framing::Datagram)
                } else {
                    sip::parse_strict(b, &mut h, Framing::Datagram)
                }
                .unwrap()
                .complete()
                .unwrap();
                black_box((m.call_id(), m.cseq(), m.from_tag(), m.to_tag(), m.branch()));
                black_box((m.content_length(), m.max_forwards()));
                m.len()
            }
            "callid" => sip::find_call_id(b).map_or(0, <[u8]>::len),
            "httparse" => {
                let mut h = [httparse::EMPTY_HEADER; 32];
                match httparse::parse_headers(black_box(after), &mut h) {
                    Ok(httparse::Status::Complete((n, _))) => n,
                    _ => 0,
                }
            }
            other => panic!("unknown mode {other}"),
        };
    }
    println!("{sum}");
}
