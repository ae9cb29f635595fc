//! Measures what the repository costs per stored item, beyond the bytes it must keep.
//!
//! Stores 1,000,000 realistic SIP MESSAGE requests (300 to 600 bytes, unique Call-IDs, msgids of
//! 8 to 16 bytes) in one `Repository`, the way the runtime does (parse, then push), and counts
//! heap bytes with a counting global allocator. Prints the total heap, the message and msgid
//! bytes, and the overhead per item: (heap − message bytes − msgid bytes) / items. The budget is
//! 96 bytes; the example exits with status 1 when a run is over it.
//!
//! Run: `cargo run --release -p sipshard-core --example repo_memory [ITEMS]`. It runs once with IPv4
//! sources and once with IPv6 sources (an IPv6 address takes 12 more bytes to store).
//!
//! The counts are the bytes requested from the allocator; the allocator's own per-allocation
//! rounding and bookkeeping (glibc: about 8 to 16 bytes per allocation) come on top in RSS.

use sipshard_core::repo::{
    LocalSocket, MessageRef, PushOutcome, ReceiveContext, RepoConfig, Repository, Transport,
};
use sipshard_parser::sip::{parse, Framing, EMPTY_HEADER};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

#[path = "support/counting.rs"]
mod counting;

/// xorshift64*: reproducible input without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const ALNUM: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

fn alnum(rng: &mut Rng, out: &mut Vec<u8>, len: usize) {
    for _ in 0..len {
        out.push(ALNUM[rng.below(ALNUM.len() as u64) as usize]);
    }
}

/// Writes a MESSAGE request of exactly `len` bytes (300 to 600) into `buf`.
fn write_message(rng: &mut Rng, n: usize, len: usize, buf: &mut Vec<u8>) {
    buf.clear();
    let user = rng.below(100_000);
    let peer = rng.below(100_000);
    write!(
        buf,
        "MESSAGE sip:user{peer}@example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP 198.51.100.{}:5060;rport;branch=z9hG4bK",
        rng.below(250) + 1
    )
    .unwrap();
    alnum(rng, buf, 16);
    write!(
        buf,
        "\r\nMax-Forwards: 70\r\n\
         From: <sip:user{user}@example.com>;tag="
    )
    .unwrap();
    alnum(rng, buf, 10);
    write!(buf, "\r\nTo: <sip:user{peer}@example.com>\r\nCall-ID: ").unwrap();
    // Unique: the item number, plus random characters as real Call-IDs have.
    write!(buf, "{n:08x}-").unwrap();
    alnum(rng, buf, 14);
    write!(
        buf,
        "@198.51.100.7\r\nCSeq: {} MESSAGE\r\nContent-Type: text/plain\r\nContent-Length: ",
        rng.below(1 << 31)
    )
    .unwrap();
    // The body fills the message up to `len`, Content-Length digits included.
    let head = buf.len() + 4;
    let mut body = len.saturating_sub(head + 3).max(1);
    if head + body.to_string().len() + body > len {
        body -= 1;
    }
    write!(buf, "{body}\r\n\r\n").unwrap();
    alnum(rng, buf, body);
}

struct Run {
    items: usize,
    heap: usize,
    message_bytes: usize,
    msgid_bytes: usize,
}

impl Run {
    fn overhead(&self) -> f64 {
        (self.heap - self.message_bytes - self.msgid_bytes) as f64 / self.items as f64
    }
}

fn run(items: usize, ipv6: bool) -> Run {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut buf = Vec::with_capacity(1024);
    let mut msgid = Vec::with_capacity(32);
    let (mut message_bytes, mut msgid_bytes) = (0, 0);

    let baseline = counting::live();
    let config = RepoConfig {
        max_items: items,
        max_bytes: usize::MAX,
        ..RepoConfig::default()
    };
    let mut repo = Repository::new(config, 0);
    for n in 0..items {
        let len = 300 + rng.below(301) as usize;
        write_message(&mut rng, n, len, &mut buf);
        msgid.clear();
        let id_len = 8 + rng.below(9) as usize;
        alnum(&mut rng, &mut msgid, id_len);
        let source = if ipv6 {
            IpAddr::V6(Ipv6Addr::new(
                0x2001,
                0xdb8,
                0,
                0,
                0,
                0,
                (n >> 16) as u16,
                n as u16,
            ))
        } else {
            IpAddr::V4(Ipv4Addr::from(0xC633_6400 | (n as u32 & 0xff)))
        };
        let context = ReceiveContext {
            source: SocketAddr::new(source, 5060),
            local: LocalSocket {
                shard: 0,
                listen: 0,
            },
            transport: Transport::Udp,
            received_ms: n as u64 / 10,
        };
        let mut headers = [EMPTY_HEADER; 32];
        let parsed = parse(&buf, &mut headers, Framing::Datagram)
            .expect("generated messages parse")
            .complete()
            .expect("a datagram is complete");
        let m = MessageRef::from_parsed(&parsed, context).expect("Call-ID and CSeq present");
        let outcome = repo.push(&m, &msgid, None, n as u64 / 10);
        assert_eq!(outcome, PushOutcome::Stored, "item {n}");
        message_bytes += buf.len();
        msgid_bytes += msgid.len();
    }
    assert_eq!(repo.len(), items);
    assert_eq!(repo.bytes(), message_bytes + msgid_bytes);
    let heap = counting::live() - baseline;
    drop(repo);
    Run {
        items,
        heap,
        message_bytes,
        msgid_bytes,
    }
}

fn main() {
    let items: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("usage: repo_memory [ITEMS]"))
        .unwrap_or(1_000_000);
    let mut over = false;
    for (name, ipv6) in [("IPv4 sources", false), ("IPv6 sources", true)] {
        let r = run(items, ipv6);
        let overhead = r.overhead();
        println!("{name}: {} items stored", r.items);
        println!("  total heap        {:>12} bytes", r.heap);
        println!("  message bytes     {:>12} bytes", r.message_bytes);
        println!("  msgid bytes       {:>12} bytes", r.msgid_bytes);
        println!("  overhead per item {overhead:>12.1} bytes (budget 96)");
        over |= overhead > 96.0;
    }
    if over {
        eprintln!("over the 96-byte budget");
        std::process::exit(1);
    }
}
