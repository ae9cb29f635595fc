//! Where a request goes (RFC 3263 §4): what a SIP URI (a Request-URI, or the first route or an
//! outbound proxy) says about the transport and the host to send to. An IP literal is the
//! answer itself; a name is left for the driver's resolver, with what the URI fixes (transport,
//! port) and what it leaves to DNS (an SRV lookup when no port is given). Sans-IO: no lookup
//! happens here.

use crate::transport::Transport;
use sipshard_parser::sip::{parse_uri, Scheme, UriContext};
use std::net::SocketAddr;

/// Where to send, as far as the URI says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An address: send there.
    Addr(SocketAddr),
    /// A host name: resolve it. With a port, its A/AAAA records (§4.2); without, its SRV
    /// records for the transport first (`_sip._udp.<host>`, `_sip._tcp.<host>`), then A/AAAA
    /// with port 5060.
    Name {
        /// The host name.
        host: String,
        /// The port the URI gives.
        port: Option<u16>,
    },
}

/// The next hop of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextHop {
    /// The transport (§4.1).
    pub transport: Transport,
    /// The address or the name to resolve.
    pub target: Target,
}

/// Why a URI cannot be sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LocateError {
    /// Not a SIP URI with a host.
    #[error("not a sip: URI with a host")]
    NotSip,
    /// `sips:` or `transport=tls`/`sctp`/`ws`: a transport sipshard does not speak.
    #[error("the URI asks for a transport sipshard does not speak (only udp and tcp)")]
    Transport,
}

/// The next hop the URI `uri` names (§4.1 transport, §4.2 port; `maddr` replaces the host).
pub fn next_hop(uri: &[u8]) -> Result<NextHop, LocateError> {
    let u = parse_uri(uri, UriContext::NameAddr).map_err(|_| LocateError::NotSip)?;
    if !matches!(u.scheme, Scheme::Sip) {
        return match u.scheme {
            Scheme::Sips => Err(LocateError::Transport),
            _ => Err(LocateError::NotSip),
        };
    }
    let transport = match u.param("transport") {
        Some(Some(t)) if t.eq_ignore_ascii_case(b"udp") => Transport::Udp,
        Some(Some(t)) if t.eq_ignore_ascii_case(b"tcp") => Transport::Tcp,
        Some(_) => return Err(LocateError::Transport),
        // §4.1: without a transport parameter, UDP (an IP literal, a given port, or a name
        // whose NAPTR records the resolver does not read).
        None => Transport::Udp,
    };
    let maddr = u.param("maddr").flatten();
    let host: Vec<u8> = match (maddr, &u.host) {
        (Some(m), _) => m.to_vec(),
        (None, Some(h)) => h.as_bytes().into_owned(),
        (None, None) => return Err(LocateError::NotSip),
    };
    let host = String::from_utf8(host).map_err(|_| LocateError::NotSip)?;
    let literal = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .ok();
    let target = match literal {
        // §4.2: an IP literal without port takes the transport's default.
        Some(ip) => Target::Addr(SocketAddr::new(ip, u.port.unwrap_or(5060))),
        None => Target::Name {
            host: host.to_ascii_lowercase(),
            port: u.port,
        },
    };
    Ok(NextHop { transport, target })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hop(uri: &str) -> Result<NextHop, LocateError> {
        next_hop(uri.as_bytes())
    }

    #[test]
    fn literals_names_ports_and_transports() {
        assert_eq!(
            hop("sip:bob@192.0.2.4"),
            Ok(NextHop {
                transport: Transport::Udp,
                target: Target::Addr("192.0.2.4:5060".parse().unwrap())
            })
        );
        assert_eq!(
            hop("sip:bob@[2001:db8::1]:5070;transport=TCP"),
            Ok(NextHop {
                transport: Transport::Tcp,
                target: Target::Addr("[2001:db8::1]:5070".parse().unwrap())
            })
        );
        assert_eq!(
            hop("sip:bob@Example.COM"),
            Ok(NextHop {
                transport: Transport::Udp,
                target: Target::Name {
                    host: "example.com".into(),
                    port: None
                }
            })
        );
        assert_eq!(
            hop("sip:proxy.example.com:5080;lr"),
            Ok(NextHop {
                transport: Transport::Udp,
                target: Target::Name {
                    host: "proxy.example.com".into(),
                    port: Some(5080)
                }
            })
        );
        // maddr replaces the host.
        assert_eq!(
            hop("sip:bob@example.com;maddr=198.51.100.3").map(|h| h.target),
            Ok(Target::Addr("198.51.100.3:5060".parse().unwrap()))
        );
    }

    #[test]
    fn what_sipshard_cannot_reach_is_an_error() {
        assert_eq!(hop("sips:bob@example.com"), Err(LocateError::Transport));
        assert_eq!(
            hop("sip:bob@example.com;transport=tls"),
            Err(LocateError::Transport)
        );
        assert_eq!(hop("tel:+15551234"), Err(LocateError::NotSip));
        assert_eq!(hop("not a uri"), Err(LocateError::NotSip));
    }

    proptest! {
        #[test]
        fn any_bytes_are_located_or_refused_without_panicking(uri in prop::collection::vec(any::<u8>(), 0..128)) {
            let _ = next_hop(&uri);
        }

        #[test]
        fn an_ip_literal_with_a_port_is_that_address(a in any::<[u8; 4]>(), port in 1..u16::MAX) {
            let ip = std::net::Ipv4Addr::from(a);
            let got = next_hop(format!("sip:x@{ip}:{port}").as_bytes()).map(|h| h.target);
            prop_assert_eq!(got, Ok(Target::Addr(SocketAddr::new(ip.into(), port))));
        }
    }
}
