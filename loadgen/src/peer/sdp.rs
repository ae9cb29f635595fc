//! Session descriptions for MSRP media (RFC 4566, RFC 4975 §8, RFC 6135 `a=setup`), written
//! and read only as far as the peers need: one `m=message` stream on loopback.

use std::fmt::Write;

/// A session description with one MSRP stream on 127.0.0.1: `port` on the `m=` line, `path`
/// as `a=path`, `accept_types` (space separated, `*` allowed) as `a=accept-types`, and
/// `setup` (`active`, `passive`, `actpass`) as `a=setup` when given.
pub fn session(port: u16, path: &str, accept_types: &str, setup: Option<&str>) -> String {
    let mut s = String::with_capacity(256);
    let _ = write!(
        s,
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=message {port} TCP/MSRP *\r\na=accept-types:{accept_types}\r\na=path:{path}\r\n"
    );
    if let Some(setup) = setup {
        let _ = write!(s, "a=setup:{setup}\r\n");
    }
    s
}

/// An offer: `a=setup:actpass`, so the answerer chooses who connects (RFC 6135 §4.1).
pub fn offer(port: u16, path: &str, accept_types: &str) -> String {
    session(port, path, accept_types, Some("actpass"))
}

/// An answer with the given `a=setup` (`active`: we connect, `passive`: we wait); the `m=`
/// port is the one in `path` (9, the discard port, when it has none).
pub fn answer(path: &str, accept_types: &str, setup: &str) -> String {
    let port = path_port(path).unwrap_or(9);
    session(port, path, accept_types, Some(setup))
}

/// The port of an MSRP URI (`msrp://host:port/id;tcp`).
fn path_port(path: &str) -> Option<u16> {
    let authority = path.split("://").nth(1)?.split('/').next()?;
    authority.rsplit_once(':')?.1.parse().ok()
}

/// The value of attribute `a=<name>` of the `m=message` stream (the first such stream).
pub fn read_attr(sdp: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(sdp);
    let mut in_msrp = false;
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(m) = line.strip_prefix("m=") {
            if in_msrp {
                // Attributes of later streams are not this stream's.
                return None;
            }
            in_msrp = m.starts_with("message ");
        } else if in_msrp {
            if let Some(v) = line
                .strip_prefix("a=")
                .and_then(|a| a.strip_prefix(name))
                .and_then(|a| a.strip_prefix(':'))
            {
                return Some(v.trim().to_owned());
            }
        }
    }
    None
}

/// The `a=path` of the MSRP stream: the far end's MSRP URIs, its own last.
pub fn read_path(sdp: &[u8]) -> Option<String> {
    read_attr(sdp, "path")
}

/// The `a=setup` of the MSRP stream.
pub fn read_setup(sdp: &[u8]) -> Option<String> {
    read_attr(sdp, "setup")
}

/// The `a=accept-types` of the MSRP stream.
pub fn read_accept_types(sdp: &[u8]) -> Option<String> {
    read_attr(sdp, "accept-types")
}

/// The port on the `m=message` line (0 declines the stream).
pub fn read_port(sdp: &[u8]) -> Option<u16> {
    let text = String::from_utf8_lossy(sdp);
    text.lines()
        .find_map(|l| l.strip_prefix("m=message "))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|p| p.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_and_read_back() {
        let path = "msrp://127.0.0.1:4000/abcd1234;tcp";
        let o = offer(4000, path, "text/plain message/cpim");
        assert!(o.starts_with("v=0\r\n"));
        assert!(o.contains("\r\nc=IN IP4 127.0.0.1\r\n"));
        assert!(o.contains("\r\nm=message 4000 TCP/MSRP *\r\n"));
        assert_eq!(read_path(o.as_bytes()).as_deref(), Some(path));
        assert_eq!(read_setup(o.as_bytes()).as_deref(), Some("actpass"));
        assert_eq!(
            read_accept_types(o.as_bytes()).as_deref(),
            Some("text/plain message/cpim")
        );
        assert_eq!(read_port(o.as_bytes()), Some(4000));

        let a = answer(path, "*", "passive");
        assert_eq!(read_port(a.as_bytes()), Some(4000));
        assert_eq!(read_setup(a.as_bytes()).as_deref(), Some("passive"));
        assert_eq!(read_setup(session(1, path, "*", None).as_bytes()), None);
    }

    #[test]
    fn reads_only_the_msrp_stream() {
        let sdp = b"v=0\r\nm=audio 5 RTP/AVP 0\r\na=path:msrp://wrong\r\n\
                    m=message 7 TCP/MSRP *\na=path:msrp://h:7/s;tcp\n\
                    m=video 9 RTP/AVP 31\r\na=setup:active\r\n";
        assert_eq!(read_path(sdp).as_deref(), Some("msrp://h:7/s;tcp"));
        assert_eq!(read_setup(sdp), None);
        assert_eq!(read_path(b"v=0\r\na=path:x\r\n"), None);
        assert_eq!(read_path(&[0xff, b'\n', b'm']), None);
    }
}
