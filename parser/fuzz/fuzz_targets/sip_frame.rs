//! Any bytes through the SIP-over-TCP framer; whatever it frames must lie inside the input, and
//! a framed message must never be reported Partial by the stream parser.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sipshard_parser::sip::{self, FrameOptions, Framed, Framing, EMPTY_HEADER};
use sipshard_parser::Status;

fuzz_target!(|data: &[u8]| {
    let opts = FrameOptions {
        max_head: 4096,
        max_body: 65536,
        require_content_length: data.first().is_some_and(|b| b & 1 == 0),
    };
    let mut pos = 0;
    while pos < data.len() {
        match sip::frame(&data[pos..], &opts) {
            Ok(Status::Complete(Framed::Keepalive(n))) => {
                assert!(n > 0 && n <= data.len() - pos);
                pos += n;
            }
            Ok(Status::Complete(Framed::Message { len, head_len })) => {
                assert!(head_len <= len && len <= data.len() - pos);
                let mut h = [EMPTY_HEADER; 32];
                if let Ok(Status::Complete(m)) =
                    sip::parse(&data[pos..pos + len], &mut h, Framing::Stream)
                {
                    assert_eq!(m.len(), len);
                }
                pos += len;
            }
            Ok(Status::Partial) | Err(_) => break,
        }
    }
});
