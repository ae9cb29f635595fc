//! The SIP side of the gateway's plumbing: where its requests go and from which socket, the
//! CANCEL of a pending INVITE, and the status mappings between SIP and MSRP
//! (`docs/gateway.md`).

use crate::locate::{self, Target};
use crate::transport::Transport;
use sipshard_parser::sip::Message;
use std::io::Write;
use std::net::SocketAddr;

/// Where a request of ours goes: an address, or a name the driver resolves first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Next {
    Addr(SocketAddr),
    /// RFC 3263 §4.2: with a port, its A/AAAA records; without, SRV first.
    Name {
        host: String,
        port: Option<u16>,
    },
}

/// How a request of ours leaves: where to, over which transport from which listen address,
/// with which Via.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Way {
    pub next: Next,
    pub transport: Transport,
    pub listen: u16,
    /// Our Via's transport and sent-by.
    pub via: (&'static str, SocketAddr),
}

/// Why a request cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NoWay {
    /// The URI is no SIP URI we can send to.
    Uri(locate::LocateError),
    /// No UDP listen address of the destination's family names a host for our Via.
    NoListen,
}

impl std::fmt::Display for NoWay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NoWay::Uri(e) => write!(f, "{e}"),
            NoWay::NoListen => f.write_str(
                "no UDP listen address of the destination's family to send from (a wildcard \
                 such as 0.0.0.0 cannot be put in a Via)",
            ),
        }
    }
}

/// RFC 3261 §18.1.1: a request larger than this (path MTU unknown) goes over TCP.
pub(crate) const UDP_MAX_REQUEST: usize = 1300;

/// The way to the next hop of `uri` (RFC 3263 §4), for a request of about `size` bytes: over
/// TCP when the URI asks for it or the request is too large for UDP (and we listen on TCP),
/// else UDP; from a listen address of that transport and of the destination's family (for a
/// name, the first one, IPv4 preferred, whose family the resolved addresses are picked in).
pub(crate) fn way_to(
    uri: &[u8],
    size: usize,
    listen: &[(Transport, SocketAddr)],
) -> Result<Way, NoWay> {
    let hop = locate::next_hop(uri).map_err(NoWay::Uri)?;
    let usable = |a: &SocketAddr, v4: Option<bool>| {
        !a.ip().is_unspecified() && v4.is_none_or(|v4| a.is_ipv4() == v4)
    };
    let pick = |t: Transport, v4: Option<bool>| {
        listen
            .iter()
            .enumerate()
            .filter(|(_, (lt, a))| *lt == t && usable(a, v4))
            .min_by_key(|(_, (_, a))| !a.is_ipv4())
            .map(|(i, &(_, a))| (i as u16, a))
    };
    let v4 = match &hop.target {
        Target::Addr(a) => Some(a.is_ipv4()),
        Target::Name { .. } => None,
    };
    let want_tcp = hop.transport == Transport::Tcp || size > UDP_MAX_REQUEST;
    let (transport, found) = match pick(Transport::Tcp, v4).filter(|_| want_tcp) {
        Some(f) => (Transport::Tcp, Some(f)),
        None => (Transport::Udp, pick(Transport::Udp, v4)),
    };
    let (listen, local) = found.ok_or(NoWay::NoListen)?;
    let next = match hop.target {
        Target::Addr(a) => Next::Addr(a),
        Target::Name { host, port } => Next::Name { host, port },
    };
    Ok(Way {
        next,
        transport,
        listen,
        via: (
            match transport {
                Transport::Udp => "UDP",
                Transport::Tcp => "TCP",
            },
            local,
        ),
    })
}

/// Writes the CANCEL of `invite` (RFC 3261 §9.1): its Request-URI, top Via, From, To,
/// Call-ID and CSeq number, and its Route headers.
pub(crate) fn write_cancel(invite: &Message<'_, '_>, out: &mut Vec<u8>) -> bool {
    use sipshard_parser::sip::{HeaderKind, StartLine};
    let StartLine::Request { uri, .. } = invite.start_line() else {
        return false;
    };
    let Some(cseq) = invite.cseq() else {
        return false;
    };
    out.extend_from_slice(b"CANCEL ");
    out.extend_from_slice(uri);
    out.extend_from_slice(b" SIP/2.0\r\n");
    let mut via_done = false;
    for h in invite.headers() {
        let name = match h.kind {
            HeaderKind::Via if !via_done => {
                via_done = true;
                "Via"
            }
            HeaderKind::From => "From",
            HeaderKind::To => "To",
            HeaderKind::CallId => "Call-ID",
            HeaderKind::Route => "Route",
            _ => continue,
        };
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value);
        out.extend_from_slice(b"\r\n");
    }
    let _ = write!(
        out,
        "Max-Forwards: 70\r\nCSeq: {} CANCEL\r\nContent-Length: 0\r\n\r\n",
        cseq.number
    );
    true
}

/// The MSRP status a REPORT carries for the final SIP response `code` to a MESSAGE made from
/// a SEND (`docs/gateway.md`): 2xx is 200, anything else its own code (RFC 4975 §10 has
/// receivers read an unknown code as the x00 of its class).
pub(crate) fn msrp_status_of_sip(code: u16) -> u16 {
    if (200..300).contains(&code) {
        200
    } else {
        code
    }
}

/// The SIP final response to a held (`sync`) MESSAGE for an MSRP outcome `code`.
pub(crate) fn sip_status_of_msrp(code: u16) -> u16 {
    match code {
        200 => 200,
        408 | 413 | 415 | 403 => code,
        // The session is gone, or the connection is: the user is unreachable for now.
        481 | 506 => 480,
        _ => 500,
    }
}

/// The SIP final response to a held MESSAGE whose session's INVITE failed with `code`: that
/// code, except the challenges (the gateway does not authenticate, so passing a 401/407
/// back would ask the MESSAGE's sender for credentials it cannot give to us).
pub(crate) fn sip_status_of_setup(code: u16) -> u16 {
    match code {
        401 | 407 => 500,
        300..=699 => code,
        _ => 500,
    }
}

/// A From, To or Route value for `uri`: a name-addr is kept as it is; a bare URI is put in
/// angle brackets whole, so its parameters (`;lr`, `;transport=tcp`) stay the URI's (RFC 3261
/// §20.10: without brackets they would be header parameters).
pub(crate) fn name_addr(uri: &[u8]) -> Vec<u8> {
    let uri = uri.trim_ascii();
    if memchr::memchr(b'<', uri).is_some() {
        return uri.to_vec();
    }
    let mut v = Vec::with_capacity(uri.len() + 2);
    v.push(b'<');
    v.extend_from_slice(uri);
    v.push(b'>');
    v
}

/// The address in an MSRP URI (`msrp://192.0.2.5:7394/id;tcp`), when it is an IP literal.
pub(crate) fn msrp_addr(uri: &[u8]) -> Option<SocketAddr> {
    let rest = uri.strip_prefix(b"msrp://")?;
    let end = rest.iter().position(|&c| c == b'/')?;
    let authority = std::str::from_utf8(&rest[..end]).ok()?;
    let hostport = authority.rsplit('@').next()?;
    hostport.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sipshard_parser::sip::{parse, Framing, EMPTY_HEADER};

    #[test]
    fn the_way_to_an_address_leaves_from_a_listen_address_of_its_family() {
        let listen = [
            (Transport::Tcp, "192.0.2.1:5060".parse().unwrap()),
            (Transport::Udp, "0.0.0.0:5060".parse().unwrap()),
            (Transport::Udp, "192.0.2.1:5060".parse().unwrap()),
        ];
        let w = way_to(b"sip:bob@198.51.100.7:5070", 500, &listen).unwrap();
        assert_eq!(w.next, Next::Addr("198.51.100.7:5070".parse().unwrap()));
        assert_eq!(w.listen, 2);
        assert_eq!(w.via, ("UDP", "192.0.2.1:5060".parse().unwrap()));
        assert_eq!(
            way_to(b"sip:bob@[2001:db8::1]", 500, &listen),
            Err(NoWay::NoListen)
        );
        let w = way_to(b"sip:bob@Example.COM", 500, &listen).unwrap();
        assert_eq!(
            w.next,
            Next::Name {
                host: "example.com".into(),
                port: None
            }
        );
        assert_eq!(w.listen, 2);
        assert!(matches!(
            way_to(b"mailto:bob@example.com", 500, &listen),
            Err(NoWay::Uri(_))
        ));
    }

    #[test]
    fn a_cancel_copies_what_rfc_3261_9_1_says() {
        let inv =
            b"INVITE sip:bob@192.0.2.9 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKx\r\n\
Via: SIP/2.0/UDP 192.0.2.2;branch=z9hG4bKy\r\nRoute: <sip:p;lr>\r\nFrom: <sip:a@h>;tag=1\r\n\
To: <sip:bob@h>\r\nCall-ID: c\r\nCSeq: 7 INVITE\r\nContent-Length: 0\r\n\r\n";
        let mut h = [EMPTY_HEADER; 16];
        let m = parse(inv, &mut h, Framing::Datagram)
            .unwrap()
            .complete()
            .unwrap();
        let mut out = Vec::new();
        assert!(write_cancel(&m, &mut out));
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("CANCEL sip:bob@192.0.2.9 SIP/2.0\r\n"));
        assert!(text.contains("branch=z9hG4bKx"));
        assert!(!text.contains("z9hG4bKy"), "only the top Via");
        assert!(text.contains("Route: <sip:p;lr>\r\n"));
        assert!(text.contains("CSeq: 7 CANCEL\r\n"));
        let mut h = [EMPTY_HEADER; 16];
        assert!(parse(text.as_bytes(), &mut h, Framing::Datagram).is_ok());
    }

    #[test]
    fn statuses_map_as_the_gateway_document_says() {
        assert_eq!(msrp_status_of_sip(202), 200);
        assert_eq!(msrp_status_of_sip(404), 404);
        assert_eq!(sip_status_of_msrp(200), 200);
        assert_eq!(sip_status_of_msrp(481), 480);
        assert_eq!(sip_status_of_msrp(506), 480);
        assert_eq!(sip_status_of_msrp(415), 415);
        assert_eq!(sip_status_of_msrp(400), 500);
        assert_eq!(sip_status_of_setup(486), 486);
        assert_eq!(sip_status_of_setup(407), 500);
    }

    #[test]
    fn uris_are_read_out_of_name_addrs_and_msrp_paths() {
        assert_eq!(name_addr(b"sip:a@h"), b"<sip:a@h>");
        assert_eq!(name_addr(b"sip:p:5070;lr"), b"<sip:p:5070;lr>");
        assert_eq!(name_addr(b"\"A\" <sip:a@h>"), b"\"A\" <sip:a@h>");
        assert_eq!(
            msrp_addr(b"msrp://192.0.2.5:7394/abc;tcp"),
            Some("192.0.2.5:7394".parse().unwrap())
        );
        assert_eq!(msrp_addr(b"msrp://host.example:7394/abc;tcp"), None);
    }
}
