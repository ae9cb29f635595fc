//! Any bytes through the MSRP parser, whole and fed to the incremental framer in pieces: both
//! must agree, and nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sipshard_parser::msrp::{self, Framer, Limits, EMPTY_HEADER};
use sipshard_parser::Status;

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_frame: 8192,
        max_headers_bytes: 2048,
    };
    let mut h = [EMPTY_HEADER; 16];
    let whole = msrp::parse(data, &mut h, &limits);
    if let Ok(Status::Complete(f)) = &whole {
        assert!(f.len <= data.len());
        let _ = (f.message_id(), f.byte_range(), f.success_report(), f.failure_report());
        let _ = (f.status(), f.content_type(), f.expires(), f.to_path().count());
    }
    let whole_len = msrp::frame_len(data, &limits);
    // Feed in pieces whose sizes come from the first byte.
    let step = usize::from(data.first().copied().unwrap_or(1)).max(1);
    let mut framer = Framer::new(limits);
    let mut end = 0;
    let pieces = loop {
        end = (end + step).min(data.len());
        match framer.frame_len(&data[..end]) {
            Ok(Status::Partial) if end < data.len() => continue,
            other => break other,
        }
    };
    match (&whole_len, &pieces) {
        (Ok(Status::Complete(a)), Ok(Status::Complete(b))) => assert_eq!(a, b),
        (Ok(Status::Partial), Ok(Status::Partial)) => {}
        (Err(_), Err(_)) => {}
        (a, b) => panic!("whole {a:?} vs pieces {b:?}"),
    }
});
