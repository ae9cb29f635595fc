//! Any bytes through the SDP reader: it never panics, and a stream it reads, written back as
//! our own description, reads back to the same path, types, size and setup.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sipshard_core::sdp::{self, Description, Setup};

fuzz_target!(|data: &[u8]| {
    let Ok(m) = sdp::find_msrp(data) else {
        return;
    };
    assert!(!m.path.is_empty() && !m.accept_types.is_empty() && m.port != 0);
    // Only values that survive a line of SDP can round-trip: no CR/LF/space inside.
    let clean = |v: &[u8]| !v.iter().any(|&c| c == b'\r' || c == b'\n' || c == b' ');
    if !m.path.iter().chain(&m.accept_types).all(|v| clean(v)) || m.path.len() != 1 {
        return;
    }
    let mut out = Vec::new();
    sdp::write(
        &Description {
            address: "192.0.2.1".parse().unwrap(),
            port: m.port,
            path: m.path[0],
            accept_types: &m.accept_types,
            accept_wrapped_types: &[],
            max_size: m.max_size,
            setup: m.setup.unwrap_or(Setup::Actpass),
            session_id: 1,
        },
        &mut out,
    );
    let again = sdp::find_msrp(&out).expect("our own description reads back");
    assert_eq!(again.path, m.path);
    assert_eq!(again.accept_types, m.accept_types);
    assert_eq!(again.max_size, m.max_size);
    assert_eq!(again.port, m.port);
});
