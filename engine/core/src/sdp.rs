//! The SDP the gateway reads and writes (RFC 4566) for MSRP media (RFC 4975 §8, RFC 6135 for
//! `a=setup` and `a=connection`): finding the `m=message` stream of an offer or answer, its
//! path, types and limits; choosing the types both sides take; writing an offer or an answer.
//!
//! Only what MSRP needs is read. Lines are `type=value`, CRLF or LF ended; anything malformed
//! in a line we do not need is ignored, as RFC 4566 §5 asks of unknown attributes.

use std::io::Write;

/// `a=setup` (RFC 4145, RFC 6135): which side opens the MSRP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    /// The side that wrote it connects.
    Active,
    /// The side that wrote it waits for the connection.
    Passive,
    /// Either (an offer's default in RFC 6135): the answerer chooses.
    Actpass,
    /// Not now.
    Holdconn,
}

impl Setup {
    fn parse(v: &[u8]) -> Option<Setup> {
        match v {
            b"active" => Some(Setup::Active),
            b"passive" => Some(Setup::Passive),
            b"actpass" => Some(Setup::Actpass),
            b"holdconn" => Some(Setup::Holdconn),
            _ => None,
        }
    }

    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            Setup::Active => "active",
            Setup::Passive => "passive",
            Setup::Actpass => "actpass",
            Setup::Holdconn => "holdconn",
        }
    }
}

/// The MSRP media of a session description, borrowing from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MsrpMedia<'a> {
    /// The `m=` port (MSRP uses the path's, but a 0 here declines the stream).
    pub port: u16,
    /// `TCP/MSRP` or `TCP/TLS/MSRP`.
    pub tls: bool,
    /// `a=path`: the MSRP URIs, the far end's own last.
    pub path: Vec<&'a [u8]>,
    /// `a=accept-types` (`*` allowed).
    pub accept_types: Vec<&'a [u8]>,
    /// `a=accept-wrapped-types`.
    pub accept_wrapped_types: Vec<&'a [u8]>,
    /// `a=max-size`, bytes.
    pub max_size: Option<u64>,
    /// `a=setup`; `None` when absent (RFC 6135: treat as `active` in an offer, `passive` in
    /// an answer).
    pub setup: Option<Setup>,
    /// The connection address of the media (`c=` at media level, else session level).
    pub connection: Option<&'a [u8]>,
}

/// Why no usable MSRP media was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// No `m=message` line with an MSRP transport.
    #[error("no m=message stream over TCP/MSRP")]
    NoMsrpStream,
    /// The stream has no `a=path`.
    #[error("the MSRP stream has no a=path")]
    NoPath,
    /// The stream has no `a=accept-types`.
    #[error("the MSRP stream has no a=accept-types")]
    NoAcceptTypes,
    /// The port is 0: the stream is declined.
    #[error("the MSRP stream is declined (port 0)")]
    Declined,
}

/// Finds the first `m=message` stream over MSRP in `sdp` and reads its attributes.
pub fn find_msrp(sdp: &[u8]) -> Result<MsrpMedia<'_>, SdpError> {
    let mut session_c = None;
    let mut media: Option<MsrpMedia<'_>> = None;
    let mut in_msrp = false;
    let mut seen_media = false;
    for line in sdp.split(|&c| c == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some((kind, value)) = line.split_first().filter(|(_, v)| v.first() == Some(&b'='))
        else {
            continue;
        };
        let value = &value[1..];
        match kind {
            b'm' => {
                if media.is_some() {
                    break;
                }
                seen_media = true;
                in_msrp = false;
                let mut f = value.split(|&c| c == b' ').filter(|f| !f.is_empty());
                let (Some(m), Some(port), Some(proto)) = (f.next(), f.next(), f.next()) else {
                    continue;
                };
                let port = std::str::from_utf8(port).ok().and_then(|p| p.parse().ok());
                let tls = proto.eq_ignore_ascii_case(b"TCP/TLS/MSRP");
                if m == b"message" && (tls || proto.eq_ignore_ascii_case(b"TCP/MSRP")) {
                    if let Some(port) = port {
                        in_msrp = true;
                        media = Some(MsrpMedia {
                            port,
                            tls,
                            path: Vec::new(),
                            accept_types: Vec::new(),
                            accept_wrapped_types: Vec::new(),
                            max_size: None,
                            setup: None,
                            connection: None,
                        });
                    }
                }
            }
            b'c' => {
                // c=IN IP4 192.0.2.1
                let addr = value.split(|&c| c == b' ').filter(|f| !f.is_empty()).nth(2);
                // Session level is before the first m= line; a c= inside another stream's
                // section is that stream's.
                match media.as_mut() {
                    Some(m) if in_msrp => m.connection = addr,
                    None if !seen_media => session_c = addr,
                    _ => {}
                }
            }
            b'a' if in_msrp => {
                let Some(m) = media.as_mut() else {
                    continue;
                };
                let (name, v) = match value.iter().position(|&c| c == b':') {
                    Some(i) => (&value[..i], &value[i + 1..]),
                    None => (value, &b""[..]),
                };
                let words = || v.split(|&c| c == b' ').filter(|w| !w.is_empty());
                match name {
                    b"path" => m.path = words().collect(),
                    b"accept-types" => m.accept_types = words().collect(),
                    b"accept-wrapped-types" => m.accept_wrapped_types = words().collect(),
                    b"max-size" => {
                        m.max_size = std::str::from_utf8(v)
                            .ok()
                            .and_then(|s| s.trim().parse().ok())
                    }
                    b"setup" => m.setup = Setup::parse(v),
                    _ => {}
                }
            }
            _ => {}
        }
    }
    let mut m = media.ok_or(SdpError::NoMsrpStream)?;
    if m.port == 0 {
        return Err(SdpError::Declined);
    }
    if m.path.is_empty() {
        return Err(SdpError::NoPath);
    }
    if m.accept_types.is_empty() {
        return Err(SdpError::NoAcceptTypes);
    }
    m.connection = m.connection.or(session_c);
    Ok(m)
}

/// Whether a MIME type matches an accept-types entry (`*`, `type/*`, or equal,
/// case-insensitively; parameters after `;` are ignored).
pub fn type_matches(accepted: &[u8], ty: &[u8]) -> bool {
    let bare = |t: &[u8]| -> Vec<u8> {
        let end = t.iter().position(|&c| c == b';').unwrap_or(t.len());
        t[..end].trim_ascii().to_ascii_lowercase()
    };
    let (a, t) = (bare(accepted), bare(ty));
    if a == b"*" {
        return true;
    }
    match a.strip_suffix(b"/*") {
        Some(major) => t.split(|&c| c == b'/').next() == Some(major),
        None => a == t,
    }
}

/// The types of `ours` the far side accepts (in our order): what both sides can send each
/// other. Empty: no common type (answer 488).
pub fn common_types<'a>(ours: &[&'a [u8]], theirs: &[&[u8]]) -> Vec<&'a [u8]> {
    ours.iter()
        .copied()
        .filter(|o| {
            theirs
                .iter()
                .any(|t| type_matches(t, o) || type_matches(o, t))
        })
        .collect()
}

/// What our side of an MSRP session description says.
#[derive(Debug, Clone, Copy)]
pub struct Description<'a> {
    /// Our address (for `o=` and `c=`).
    pub address: std::net::IpAddr,
    /// The port our MSRP listener is on.
    pub port: u16,
    /// Our MSRP URI (`a=path`).
    pub path: &'a [u8],
    /// The types we take.
    pub accept_types: &'a [&'a [u8]],
    /// The wrapped types we take (inside `message/cpim`); none when empty.
    pub accept_wrapped_types: &'a [&'a [u8]],
    /// `a=max-size`, when we have one.
    pub max_size: Option<u64>,
    /// Our `a=setup`.
    pub setup: Setup,
    /// The `o=` session id and version.
    pub session_id: u64,
}

/// Writes a complete session description with one MSRP stream.
pub fn write(d: &Description<'_>, out: &mut Vec<u8>) {
    let ip = match d.address {
        std::net::IpAddr::V4(_) => "IP4",
        std::net::IpAddr::V6(_) => "IP6",
    };
    let _ = write!(
        out,
        "v=0\r\no=- {id} {id} IN {ip} {a}\r\ns=-\r\nc=IN {ip} {a}\r\nt=0 0\r\nm=message {port} TCP/MSRP *\r\n",
        id = d.session_id,
        a = d.address,
        port = d.port
    );
    let list = |name: &str, items: &[&[u8]], out: &mut Vec<u8>| {
        if items.is_empty() {
            return;
        }
        let _ = write!(out, "a={name}:");
        for (i, t) in items.iter().enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            out.extend_from_slice(t);
        }
        out.extend_from_slice(b"\r\n");
    };
    list("accept-types", d.accept_types, out);
    list("accept-wrapped-types", d.accept_wrapped_types, out);
    if let Some(m) = d.max_size {
        let _ = write!(out, "a=max-size:{m}\r\n");
    }
    out.extend_from_slice(b"a=path:");
    out.extend_from_slice(d.path);
    let _ = write!(
        out,
        "\r\na=setup:{}\r\na=connection:new\r\n",
        d.setup.as_str()
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const OFFER: &[u8] = b"v=0\r\no=carol 2890844526 2890844527 IN IP4 192.0.2.5\r\ns=-\r\n\
c=IN IP4 192.0.2.5\r\nt=0 0\r\nm=audio 49170 RTP/AVP 0\r\na=path:msrp://wrong\r\n\
m=message 7394 TCP/MSRP *\r\na=accept-types:message/cpim text/plain text/html\r\n\
a=accept-wrapped-types:text/plain\r\na=max-size:131072\r\n\
a=path:msrp://192.0.2.5:7394/2s93i93idj;tcp\r\na=setup:actpass\r\n";

    #[test]
    fn reads_the_msrp_stream_and_not_the_others() {
        let m = find_msrp(OFFER).unwrap();
        assert_eq!(m.port, 7394);
        assert!(!m.tls);
        assert_eq!(m.path, vec![&b"msrp://192.0.2.5:7394/2s93i93idj;tcp"[..]]);
        assert_eq!(
            m.accept_types,
            vec![&b"message/cpim"[..], b"text/plain", b"text/html"]
        );
        assert_eq!(m.accept_wrapped_types, vec![&b"text/plain"[..]]);
        assert_eq!(m.max_size, Some(131_072));
        assert_eq!(m.setup, Some(Setup::Actpass));
        assert_eq!(m.connection, Some(&b"192.0.2.5"[..]));
    }

    #[test]
    fn another_streams_connection_is_not_the_sessions() {
        let sdp = b"v=0\r\nm=audio 1 RTP/AVP 0\r\nc=IN IP4 203.0.113.1\r\n\
m=message 9 TCP/MSRP *\r\na=path:msrp://a:9/s;tcp\r\na=accept-types:*\r\n";
        assert_eq!(find_msrp(sdp).unwrap().connection, None);
    }

    #[test]
    fn refuses_what_cannot_carry_msrp() {
        assert_eq!(
            find_msrp(b"v=0\r\nm=audio 1 RTP/AVP 0\r\n"),
            Err(SdpError::NoMsrpStream)
        );
        assert_eq!(
            find_msrp(b"m=message 0 TCP/MSRP *\r\na=path:msrp://a\r\na=accept-types:*\r\n"),
            Err(SdpError::Declined)
        );
        assert_eq!(
            find_msrp(b"m=message 9 TCP/MSRP *\r\na=accept-types:*\r\n"),
            Err(SdpError::NoPath)
        );
        assert_eq!(
            find_msrp(b"m=message 9 TCP/MSRP *\na=path:msrp://a\n"),
            Err(SdpError::NoAcceptTypes)
        );
    }

    #[test]
    fn types_match_with_wildcards() {
        assert!(type_matches(b"*", b"text/plain"));
        assert!(type_matches(b"text/*", b"TEXT/Plain;charset=utf-8"));
        assert!(!type_matches(b"text/*", b"message/cpim"));
        let ours: [&[u8]; 2] = [b"text/plain", b"message/cpim"];
        assert_eq!(common_types(&ours, &[b"text/*"]), vec![&b"text/plain"[..]]);
        assert_eq!(common_types(&ours, &[b"image/png"]), Vec::<&[u8]>::new());
        // Our wildcard takes what they send.
        let any: [&[u8]; 1] = [b"*"];
        assert_eq!(common_types(&any, &[b"text/plain"]), vec![&b"*"[..]]);
    }

    proptest! {
        #[test]
        fn what_we_write_we_read_back(
            port in 1..u16::MAX,
            sid in "[a-z0-9]{10,20}",
            types in prop::collection::vec("[a-z]{1,8}/[a-z0-9+.-]{1,12}", 1..5),
            max in prop::option::of(1..u64::MAX / 2),
            setup in prop::sample::select(vec![Setup::Active, Setup::Passive, Setup::Actpass]),
        ) {
            let path = format!("msrp://192.0.2.1:{port}/{sid};tcp");
            let types: Vec<&[u8]> = types.iter().map(|t| t.as_bytes()).collect();
            let mut out = Vec::new();
            write(
                &Description {
                    address: "192.0.2.1".parse().unwrap(),
                    port,
                    path: path.as_bytes(),
                    accept_types: &types,
                    accept_wrapped_types: &[],
                    max_size: max,
                    setup,
                    session_id: 7,
                },
                &mut out,
            );
            let m = find_msrp(&out).unwrap();
            prop_assert_eq!(m.port, port);
            prop_assert_eq!(m.path, vec![path.as_bytes()]);
            prop_assert_eq!(m.accept_types, types);
            prop_assert_eq!(m.max_size, max);
            prop_assert_eq!(m.setup, Some(setup));
            prop_assert_eq!(m.connection, Some(&b"192.0.2.1"[..]));
        }

        #[test]
        fn any_bytes_are_read_without_panicking(sdp in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = find_msrp(&sdp);
        }
    }
}
