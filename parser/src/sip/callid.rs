//! The Call-ID fast path: the shard routing step needs the Call-ID of a datagram to pick the
//! owning shard, and nothing else, so this finds it without a full parse.

/// Finds the Call-ID (long `Call-ID` or compact `i` form, any case) of a SIP message, without
/// validating the rest of the message. Returns the value trimmed of white space.
///
/// Only the header section is searched. A message the full parser would reject may still yield a
/// Call-ID here; the owning shard parses it fully and answers.
pub fn find_call_id(buf: &[u8]) -> Option<&[u8]> {
    // Skip the start line.
    let mut pos = memchr::memchr(b'\n', buf)? + 1;
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
    }
}
