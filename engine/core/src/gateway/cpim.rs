//! `message/cpim` (RFC 3862) for the gateway's `cpim` setting: a SIP MESSAGE's content wrapped
//! for the MSRP side (From, To, DateTime-less: the MSRP session already says who), and a CPIM
//! message from the MSRP side unwrapped to the content it carries.

/// The content type of a CPIM message.
pub(crate) const CPIM: &[u8] = b"message/cpim";

/// Whether `content_type` is `message/cpim` (parameters and case aside).
pub(crate) fn is_cpim(content_type: &[u8]) -> bool {
    let ty = content_type
        .split(|&c| c == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    ty.eq_ignore_ascii_case(CPIM)
}

/// `body` of type `content_type` from `from` to `to` (URIs) as a CPIM message (RFC 3862 §3:
/// message headers, a blank line, the content's MIME headers, a blank line, the content).
pub(crate) fn wrap(from: &[u8], to: &[u8], content_type: &[u8], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + from.len() + to.len() + 64);
    out.extend_from_slice(b"From: <");
    out.extend_from_slice(from);
    out.extend_from_slice(b">\r\nTo: <");
    out.extend_from_slice(to);
    out.extend_from_slice(b">\r\n\r\nContent-Type: ");
    out.extend_from_slice(content_type);
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(body);
    out
}

/// The content a CPIM message carries: (its Content-Type, its bytes). `None` when `cpim` is not
/// two header sections and a content, or the content has no Content-Type.
pub(crate) fn unwrap(cpim: &[u8]) -> Option<(&[u8], &[u8])> {
    fn split(b: &[u8]) -> Option<(&[u8], &[u8])> {
        memchr::memmem::find(b, b"\r\n\r\n").map(|i| (&b[..i], &b[i + 4..]))
    }
    let (_message_headers, rest) = split(cpim)?;
    let (mime_headers, content) = split(rest)?;
    let ct = mime_headers.split(|&c| c == b'\n').find_map(|l| {
        let l = l.strip_suffix(b"\r").unwrap_or(l);
        let colon = memchr::memchr(b':', l)?;
        l[..colon]
            .trim_ascii()
            .eq_ignore_ascii_case(b"content-type")
            .then(|| l[colon + 1..].trim_ascii())
    })?;
    Some((ct, content))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrapped_message_unwraps_to_itself() {
        let body = b"hello\r\n\r\nwith a blank line inside";
        let w = wrap(b"sip:a@h", b"sip:b@h", b"text/plain", body);
        assert!(w.starts_with(
            b"From: <sip:a@h>\r\nTo: <sip:b@h>\r\n\r\nContent-Type: text/plain\r\n\r\n"
        ));
        assert_eq!(unwrap(&w), Some((&b"text/plain"[..], &body[..])));
        assert!(is_cpim(b"Message/CPIM; charset=utf-8"));
        assert!(!is_cpim(b"text/plain"));
    }

    #[test]
    fn rfc_3862_s3_example_unwraps() {
        let m = b"From: MR SANDERS <im:piglet@100akerwood.com>\r\nTo: Depressed Donkey <im:eeyore@100akerwood.com>\r\nDateTime: 2000-12-13T13:40:00-08:00\r\nSubject: the weather will be fine today\r\n\r\nContent-type: text/plain\r\nContent-ID: <1234567890@foo.com>\r\n\r\nHere is the text of my message.";
        assert_eq!(
            unwrap(m),
            Some((&b"text/plain"[..], &b"Here is the text of my message."[..]))
        );
        assert_eq!(unwrap(b"no sections"), None);
        assert_eq!(unwrap(b"From: x\r\n\r\nX-Other: y\r\n\r\nbody"), None);
    }
}
