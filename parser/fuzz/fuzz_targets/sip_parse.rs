//! Any bytes through the SIP parser, both framings, and every lazy accessor on what parses.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sipshard_parser::sip::{self, Framing, EMPTY_HEADER};
use sipshard_parser::Status;

fuzz_target!(|data: &[u8]| {
    let _ = sip::find_call_id(data);
    for framing in [Framing::Datagram, Framing::Stream] {
        let mut h = [EMPTY_HEADER; 32];
        match sip::parse(data, &mut h, framing) {
            Ok(Status::Complete(m)) => {
                assert!(m.len() <= data.len());
                assert!(m.head_len() <= m.len());
                assert_eq!(m.body().len() + m.head_len(), m.len());
                let _ = (m.call_id(), m.cseq(), m.from(), m.to(), m.expires());
                let _ = (m.branch(), m.request_uri(), m.validate());
                // The fast tag scan agrees with the full decode whenever the header decodes.
                if let Some(f) = m.from() {
                    assert_eq!(m.from_tag(), f.tag());
                }
                if let Some(t) = m.to() {
                    assert_eq!(m.to_tag(), t.tag());
                }
                if let Some(v) = m.top_via() {
                    assert_eq!(m.branch(), v.branch());
                }
                for v in m.vias() {
                    let _ = (v.branch(), v.received(), v.rport(), v.host.ip());
                }
                for c in m.contacts().chain(m.routes()).chain(m.record_routes()) {
                    let _ = (c.tag(), c.display_name_text(), c.uri.params().count());
                    if let Some(u) = c.uri.user {
                        let _ = sip::percent_decode(u);
                    }
                }
                // The fast path agrees with the full parse on every well-formed message.
                if let (Some(id), true) = (m.call_id(), m.validate().is_ok()) {
                    if m.headers().iter().filter(|h| h.kind == sip::HeaderKind::CallId).count() == 1 {
                        assert_eq!(sip::find_call_id(data), Some(id));
                    }
                }
            }
            Ok(Status::Partial) => assert_eq!(framing, Framing::Stream),
            Err(e) => {
                let _ = (e.verdict(), e.reason(), e.label());
            }
        }
    }
});
