//! Any MSRP byte stream, framed and parsed, through a session's reassembly: it never panics,
//! holds no more than its limits allow, and a message it completes is exactly as long as the
//! total its chunks gave.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sipshard_core::msrp::reassembly::{Chunked, Limits, Reassembly};
use sipshard_parser::msrp::{self, Framer, EMPTY_HEADER};
use sipshard_parser::Status;

const LIMITS: Limits = Limits {
    max_message: 4096,
    max_partial: 4,
};

fuzz_target!(|data: &[u8]| {
    let mut r = Reassembly::new(LIMITS);
    let mut rest = data;
    let mut now = 0;
    while !rest.is_empty() {
        let mut framer = Framer::new(msrp::Limits::DEFAULT);
        let mut h = [EMPTY_HEADER; 32];
        let frame = match framer.parse(rest, &mut h) {
            Ok(Status::Complete(f)) => f,
            _ => return,
        };
        rest = &rest[frame.len..];
        now += 1;
        let (Some(id), Some(Ok(range))) = (frame.message_id(), frame.byte_range()) else {
            continue;
        };
        let out = r.add(now, id, range, frame.flag, frame.content_type(), frame.body.unwrap_or_default());
        if let Chunked::Complete { body, .. } = out {
            assert!(body.len() as u64 <= LIMITS.max_message);
            if let Some(t) = range.total {
                assert_eq!(body.len() as u64, t);
            }
        }
        assert!(r.len() <= LIMITS.max_partial);
        assert!(r.bytes() as u64 <= LIMITS.max_message * LIMITS.max_partial as u64);
        if now % 16 == 0 {
            r.drop_stale(now - 8);
        }
    }
});
