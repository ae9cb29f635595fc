//! The Call-ID fast path: the shard routing step needs the Call-ID of a datagram to pick the
//! owning shard, and nothing else, so this finds it without a full parse.

use memchr::memmem;
use std::sync::OnceLock;

/// Finds the Call-ID (long `Call-ID` or compact `i` form, any case) of a SIP message, without
/// validating the rest of the message. Returns the value trimmed of white space.
///
/// Only the header section is searched. A message the full parser would reject may still yield a
/// Call-ID here; the owning shard parses it fully and answers.
pub fn find_call_id(buf: &[u8]) -> Option<&[u8]> {
    // Fast path: the long form as RFC 3261 spells it, at a line start, before the end of the
    // header section. Anything else (compact form, other case, a hit in the body) takes the
    // line-by-line walk below.
    static LONG: OnceLock<memmem::Finder<'static>> = OnceLock::new();
    static END: OnceLock<memmem::Finder<'static>> = OnceLock::new();
    let long = LONG.get_or_init(|| memmem::Finder::new(b"\r\nCall-ID"));
    if let Some(i) = long.find(buf) {
        // An empty line before the hit would put it in the body. Every CRLF ending a header
        // line is followed by a header name, so "\n\r" occurs only where a line is empty: a
        // two-byte needle the SIMD prefilter matches exactly (unlike "\r\n\r\n", whose
        // bytes are everywhere in a header section).
        let end = END.get_or_init(|| memmem::Finder::new(b"\n\r"));
        let lead = buf
            .iter()
            .take_while(|&&c| c == b'\r' || c == b'\n')
            .count();
        if i > lead && end.find(&buf[lead..i + 2]).is_none() {
            if let Some(v) = value_after_colon(buf, i + 9) {
                return Some(v);
            }
        }
    }
    find_call_id_by_lines(buf)
}

fn find_call_id_by_lines(buf: &[u8]) -> Option<&[u8]> {
    // Skip CRLFs before the start line (RFC 3261 §7.5), then the start line.
    let lead = buf
        .iter()
        .take_while(|&&c| c == b'\r' || c == b'\n')
        .count();
    let mut pos = lead + memchr::memchr(b'\n', &buf[lead..])? + 1;
    loop {
        let c = *buf.get(pos)?;
        match c {
            b'\r' | b'\n' => return None,
            b'c' | b'C' => {
                if let Some(name) = buf.get(pos..pos + 7) {
                    if name.eq_ignore_ascii_case(b"call-id") {
                        if let Some(v) = value_after_colon(buf, pos + 7) {
                            return Some(v);
                        }
                    }
                }
            }
            b'i' | b'I' => {
                if let Some(v) = value_after_colon(buf, pos + 1) {
                    return Some(v);
                }
            }
            _ => {}
        }
        pos += memchr::memchr(b'\n', buf.get(pos..)?)? + 1;
    }
}

#[inline]
fn value_after_colon(buf: &[u8], mut p: usize) -> Option<&[u8]> {
    while matches!(buf.get(p), Some(b' ' | b'\t')) {
        p += 1;
    }
    if buf.get(p) != Some(&b':') {
        return None;
    }
    p += 1;
    // Skip LWS, including a fold straight after the colon.
    loop {
        match buf.get(p)? {
            b' ' | b'\t' => p += 1,
            b'\r'
                if buf.get(p + 1) == Some(&b'\n')
                    && matches!(buf.get(p + 2), Some(b' ' | b'\t')) =>
            {
                p += 3
            }
            _ => break,
        }
    }
    let rest = buf.get(p..)?;
    let end = rest
        .iter()
        .position(|&c| matches!(c, b' ' | b'\t' | b'\r' | b'\n'))
        .unwrap_or(rest.len());
    (end > 0).then(|| &rest[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_and_compact() {
        let m = b"MESSAGE sip:a@b SIP/2.0\r\nCall-Info: <x>\r\nCALL-ID :  abc@d \r\n\r\n";
        assert_eq!(find_call_id(m), Some(&b"abc@d"[..]));
        let m = b"MESSAGE sip:a@b SIP/2.0\r\nIf-Match: x\r\ni:\r\n xyz\r\n\r\n";
        assert_eq!(find_call_id(m), Some(&b"xyz"[..]));
        let m = b"MESSAGE sip:a@b SIP/2.0\r\nTo: <sip:a@b>\r\n\r\nCall-ID: inbody\r\n";
        assert_eq!(find_call_id(m), None);
        assert_eq!(find_call_id(b"garbage"), None);
        assert_eq!(find_call_id(b"X\nCall-ID:"), None);
        // CRLFs (even bare LFs) before the start line are skipped, as the full parser does.
        let m = b"\n\nREGISTER sip:a SIP/2.0\r\nTo: <sip:b@c>\r\nCall-ID: x1\r\n\r\n";
        assert_eq!(find_call_id(m), Some(&b"x1"[..]));
        let m = b"\r\n\r\nCall-ID: fake SIP/2.0\r\nCall-ID: real\r\n\r\n";
        assert_eq!(find_call_id(m), Some(&b"real"[..]));
        let m = b"OPTIONS sip:a SIP/2.0\r\nl: 20\r\n\r\n\r\nCall-ID: in-body\r\n";
        assert_eq!(find_call_id(m), None);
    }
}
