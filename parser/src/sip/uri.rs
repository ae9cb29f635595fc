//! URIs as SIP carries them (RFC 3261 §19.1 and §25, RFC 3966 `tel`, RFC 5118 IPv6 references).
//!
//! A [`Uri`] is a set of slices into the message: escapes are kept exactly as sent (RFC 4475
//! §3.1.1.3: `value%41` is not `valueA` for comparison purposes) and decoded only on demand with
//! [`percent_decode`].

use super::chars::{is_hnv, is_host, is_param, is_password, is_scheme, is_user, parse_decimal};
use super::scan;
use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The scheme of a URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme<'b> {
    /// `sip:`
    Sip,
    /// `sips:`
    Sips,
    /// `tel:` (RFC 3966)
    Tel,
    /// Any other scheme, kept as sent (RFC 4475 §3.3.2: a parser accepts it).
    Other(&'b [u8]),
}

/// The host part of a SIP URI or a Via sent-by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host<'b> {
    /// A domain name, as sent.
    Name(&'b [u8]),
    /// A dotted IPv4 address.
    V4(Ipv4Addr),
    /// An IPv6 reference, brackets included, as sent. RFC 5118 §4.10 asks a parser to tolerate
    /// the three-colon form RFC 3261's ABNF admits, so it is not forced into [`Ipv6Addr`].
    V6(&'b [u8]),
}

impl<'b> Host<'b> {
    /// The host as the bytes that were sent (IPv6 with brackets).
    pub fn as_bytes(&self) -> Cow<'b, [u8]> {
        match *self {
            Host::Name(n) | Host::V6(n) => Cow::Borrowed(n),
            Host::V4(a) => Cow::Owned(a.to_string().into_bytes()),
        }
    }

    /// The IP address, when the host is one (IPv6 references that RFC 4291 rejects give `None`).
    pub fn ip(&self) -> Option<IpAddr> {
        match *self {
            Host::Name(_) => None,
            Host::V4(a) => Some(IpAddr::V4(a)),
            Host::V6(r) => {
                let inner = r.get(1..r.len().saturating_sub(1))?;
                std::str::from_utf8(inner)
                    .ok()?
                    .parse::<Ipv6Addr>()
                    .ok()
                    .map(IpAddr::V6)
            }
        }
    }
}

/// A parsed URI: slices into the message bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uri<'b> {
    /// The whole URI as sent.
    pub raw: &'b [u8],
    /// The scheme.
    pub scheme: Scheme<'b>,
    /// `user` of a SIP URI, or the number of a `tel` URI; escapes kept.
    pub user: Option<&'b [u8]>,
    /// `password` of a SIP URI; escapes kept.
    pub password: Option<&'b [u8]>,
    /// The host of a SIP URI (`None` for `tel` and other schemes).
    pub host: Option<Host<'b>>,
    /// The port, when one was given.
    pub port: Option<u16>,
    /// The parameters after the host, without the leading `;` (empty when none).
    pub params: &'b [u8],
    /// The headers after `?`, without the `?` (empty when none).
    pub headers: &'b [u8],
}

impl<'b> Uri<'b> {
    /// The value of parameter `name` (case-insensitive): `Some(None)` for a parameter without a
    /// value (`;lr`), `None` when absent.
    pub fn param(&self, name: &str) -> Option<Option<&'b [u8]>> {
        params(self.params)
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }

    /// The parameters as `(name, value)` pairs.
    pub fn params(&self) -> Params<'b> {
        params(self.params)
    }

    /// Whether this is a `sip:` or `sips:` URI.
    pub fn is_sip(&self) -> bool {
        matches!(self.scheme, Scheme::Sip | Scheme::Sips)
    }
}

/// An iterator over `;`-separated `name[=value]` parameters, LWS around `;` and `=` removed.
#[derive(Debug, Clone)]
pub struct Params<'b> {
    rest: &'b [u8],
}

/// Iterates the parameters of `s` (which may start with `;`).
pub fn params(s: &[u8]) -> Params<'_> {
    Params { rest: s }
}

impl<'b> Iterator for Params<'b> {
    type Item = (&'b [u8], Option<&'b [u8]>);
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            let end = split_unquoted(self.rest, b';');
            let item = &self.rest[..end];
            self.rest = self.rest.get(end + 1..).unwrap_or(&[]);
            let item = super::chars::trim_lws(item);
            if item.is_empty() {
                continue;
            }
            return Some(match memchr::memchr(b'=', item) {
                Some(eq) => (
                    super::chars::trim_lws(&item[..eq]),
                    Some(super::chars::trim_lws(&item[eq + 1..])),
                ),
                None => (item, None),
            });
        }
    }
}

/// Index of the first `sep` outside a quoted string, or `s.len()`.
pub(crate) fn split_unquoted(s: &[u8], sep: u8) -> usize {
    let mut i = 0;
    let mut quoted = false;
    while i < s.len() {
        let c = s[i];
        if quoted {
            if c == b'\\' {
                i += 1;
            } else if c == b'"' {
                quoted = false;
            }
        } else if c == b'"' {
            quoted = true;
        } else if c == sep {
            return i;
        }
        i += 1;
    }
    s.len()
}

/// Why a URI was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UriError;

/// Where a URI appears: the Request-URI may not carry headers (RFC 3261 §19.1.5, RFC 4475
/// §3.1.2.11); a URI in `<...>` may.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UriContext {
    /// The Request-URI.
    RequestUri,
    /// A URI inside `<...>` of a name-addr.
    NameAddr,
    /// An addr-spec outside `<...>`: no `;` params, `?` headers or `,` (RFC 3261 §20.10).
    AddrSpec,
}

/// Parses a URI.
pub fn parse_uri(s: &[u8], ctx: UriContext) -> Result<Uri<'_>, UriError> {
    let colon = scan::find(s, b':').ok_or(UriError)?;
    let scheme = &s[..colon];
    if scheme.is_empty()
        || !scheme[0].is_ascii_alphabetic()
        || !scheme.iter().all(|&c| is_scheme(c))
    {
        return Err(UriError);
    }
    let rest = &s[colon + 1..];
    let mut uri = Uri {
        raw: s,
        scheme: Scheme::Other(scheme),
        user: None,
        password: None,
        host: None,
        port: None,
        params: &[],
        headers: &[],
    };
    if scheme.eq_ignore_ascii_case(b"sip") || scheme.eq_ignore_ascii_case(b"sips") {
        uri.scheme = if scheme.len() == 3 {
            Scheme::Sip
        } else {
            Scheme::Sips
        };
        parse_sip_rest(rest, ctx, &mut uri)?;
    } else if scheme.eq_ignore_ascii_case(b"tel") {
        uri.scheme = Scheme::Tel;
        let semi = scan::find(rest, b';').unwrap_or(rest.len());
        let number = &rest[..semi];
        if number.is_empty() || !number.iter().all(|&c| is_param(c) || c == b'#') {
            return Err(UriError);
        }
        uri.user = Some(number);
        uri.params = rest.get(semi + 1..).unwrap_or(&[]);
        if !uri
            .params
            .iter()
            .all(|&c| is_param(c) || c == b';' || c == b'=')
        {
            return Err(UriError);
        }
    } else {
        // absoluteURI: opaque; refuse only what can never be in a URI.
        if rest.is_empty()
            || rest
                .iter()
                .any(|&c| c <= b' ' || c >= 0x7f || matches!(c, b'<' | b'>' | b'"'))
        {
            return Err(UriError);
        }
        if ctx == UriContext::AddrSpec && rest.iter().any(|&c| matches!(c, b',' | b';' | b'?')) {
            return Err(UriError);
        }
    }
    Ok(uri)
}

fn parse_sip_rest<'b>(rest: &'b [u8], ctx: UriContext, uri: &mut Uri<'b>) -> Result<(), UriError> {
    // '@' can appear in neither host, params nor headers unescaped, so the last one ends userinfo.
    let hostport_start = match scan::rfind(rest, b'@') {
        Some(at) => {
            let userinfo = &rest[..at];
            let (user, password) = match scan::find(userinfo, b':') {
                Some(c) => (&userinfo[..c], Some(&userinfo[c + 1..])),
                None => (userinfo, None),
            };
            if user.is_empty() || !scan::escaped_all(user, is_user) {
                return Err(UriError);
            }
            if let Some(p) = password {
                if !scan::escaped_all(p, is_password) {
                    return Err(UriError);
                }
            }
            uri.user = Some(user);
            uri.password = password;
            at + 1
        }
        None => 0,
    };
    let hp = &rest[hostport_start..];
    let (host, after_host) = parse_host(hp).ok_or(UriError)?;
    uri.host = Some(host);
    let mut i = after_host;
    if hp.get(i) == Some(&b':') {
        let start = i + 1;
        let mut end = start;
        while end < hp.len() && hp[end].is_ascii_digit() {
            end += 1;
        }
        uri.port = Some(parse_decimal(&hp[start..end], 65535).ok_or(UriError)? as u16);
        i = end;
    }
    let tail = &hp[i..];
    let q = scan::find(tail, b'?').unwrap_or(tail.len());
    let params = &tail[..q];
    if !params.is_empty() {
        if params[0] != b';' {
            return Err(UriError);
        }
        if ctx == UriContext::AddrSpec {
            return Err(UriError);
        }
        let p = &params[1..];
        if !uri_params_ok(p) {
            return Err(UriError);
        }
        uri.params = p;
    }
    if q < tail.len() {
        if ctx != UriContext::NameAddr {
            return Err(UriError);
        }
        let h = &tail[q + 1..];
        if h.is_empty() || !scan::escaped_all(h, |c| is_hnv(c) || c == b'=' || c == b'&') {
            return Err(UriError);
        }
        uri.headers = h;
    }
    Ok(())
}

/// `uri-parameter *( ";" uri-parameter )` in one pass: no empty parameter, only param
/// characters and `=`, valid escapes.
fn uri_params_ok(p: &[u8]) -> bool {
    let mut item_len = 0usize;
    let mut i = 0;
    while i < p.len() {
        let c = p[i];
        if c == b';' {
            if item_len == 0 {
                return false;
            }
            item_len = 0;
        } else {
            if !(is_param(c) || c == b'=') {
                return false;
            }
            if c == b'%'
                && !(p.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                    && p.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
            {
                return false;
            }
            item_len += 1;
        }
        i += 1;
    }
    item_len > 0
}

/// Parses a host (name, IPv4 or IPv6 reference) at the start of `s`; returns it and its length.
pub(crate) fn parse_host(s: &[u8]) -> Option<(Host<'_>, usize)> {
    if s.first() == Some(&b'[') {
        let close = memchr::memchr(b']', s)?;
        let inner = &s[1..close];
        if inner.len() < 2
            || !inner.contains(&b':')
            || !inner
                .iter()
                .all(|&c| c.is_ascii_hexdigit() || c == b':' || c == b'.')
        {
            return None;
        }
        return Some((Host::V6(&s[..=close]), close + 1));
    }
    let mut end = 0;
    while end < s.len() && is_host(s[end]) {
        end += 1;
    }
    let name = &s[..end];
    if name.is_empty() || name[0] == b'.' || name[0] == b'-' {
        return None;
    }
    // All digits and dots: must be a dotted quad (a top label cannot start with a digit). Only
    // a name starting with a digit can be one, so domain names skip the second look.
    if name[0].is_ascii_digit() {
        if let Some(a) = scan::dotted_quad(name) {
            return Some((Host::V4(a), end));
        }
        if name.iter().all(|&c| c.is_ascii_digit() || c == b'.') {
            return None;
        }
    }
    Some((Host::Name(name), end))
}

/// Decodes `%HH` escapes; borrows when there are none. Invalid escapes are kept as sent.
pub fn percent_decode(s: &[u8]) -> Cow<'_, [u8]> {
    if memchr::memchr(b'%', s).is_none() {
        return Cow::Borrowed(s);
    }
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            if let (Some(a), Some(b)) = (s.get(i + 1), s.get(i + 2)) {
                if let (Some(h), Some(l)) = (hex(*a), hex(*b)) {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
            }
        }
        out.push(s[i]);
        i += 1;
    }
    Cow::Owned(out)
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Uri<'_> {
        parse_uri(s.as_bytes(), UriContext::NameAddr).unwrap()
    }

    #[test]
    fn sip_uri_parts() {
        let u = p("sip:alice:secret@example.com:5070;transport=tcp;lr?subject=hi&x=y");
        assert_eq!(u.scheme, Scheme::Sip);
        assert_eq!(u.user, Some(&b"alice"[..]));
        assert_eq!(u.password, Some(&b"secret"[..]));
        assert_eq!(u.host, Some(Host::Name(b"example.com")));
        assert_eq!(u.port, Some(5070));
        assert_eq!(u.param("TRANSPORT"), Some(Some(&b"tcp"[..])));
        assert_eq!(u.param("lr"), Some(None));
        assert_eq!(u.param("maddr"), None);
        assert_eq!(u.headers, b"subject=hi&x=y");
    }

    #[test]
    fn hosts() {
        assert_eq!(
            p("sips:10.0.0.1").host,
            Some(Host::V4(Ipv4Addr::new(10, 0, 0, 1)))
        );
        let u = p("sip:[2001:db8::10]:5070");
        assert_eq!(u.host, Some(Host::V6(b"[2001:db8::10]")));
        assert_eq!(u.port, Some(5070));
        // RFC 5118 §4.3: the 5070 is part of the address.
        let u = p("sip:[2001:db8::10:5070]");
        assert_eq!(u.port, None);
        assert!(u.host.unwrap().ip().is_some());
        // RFC 5118 §4.10: tolerated, though not an RFC 4291 address.
        let u = p("sip:[2001:db8:::192.0.2.1]");
        assert!(u.host.unwrap().ip().is_none());
        assert!(parse_uri(b"sip:2001:db8::10", UriContext::RequestUri).is_err());
        assert!(parse_uri(b"sip:1.2.3.4.5", UriContext::RequestUri).is_err());
        assert!(parse_uri(b"sip:host:99999", UriContext::RequestUri).is_err());
    }

    #[test]
    fn user_with_semicolons_and_escapes() {
        let u = p("sip:user;par=u%40example.net@example.com");
        assert_eq!(u.user, Some(&b"user;par=u%40example.net"[..]));
        assert_eq!(
            percent_decode(u.user.unwrap()),
            &b"user;par=u@example.net"[..]
        );
        assert_eq!(percent_decode(b"%00a%zz"), &b"\0a%zz"[..]);
    }

    #[test]
    fn contexts() {
        assert!(parse_uri(b"sip:a@b?Route=%3Csip:x%3E", UriContext::RequestUri).is_err());
        assert!(parse_uri(b"sip:a@b?Route=%3Csip:x%3E", UriContext::AddrSpec).is_err());
        assert!(parse_uri(b"sip:a@b?Route=%3Csip:x%3E", UriContext::NameAddr).is_ok());
        assert!(parse_uri(b"<sip:a@b>", UriContext::RequestUri).is_err());
        assert!(parse_uri(b"sip:a@b;;", UriContext::NameAddr).is_err());
        let u = parse_uri(
            b"nobodyKnowsThisScheme:totallyopaquecontent",
            UriContext::RequestUri,
        )
        .unwrap();
        assert_eq!(u.scheme, Scheme::Other(b"nobodyKnowsThisScheme"));
        let t = p("tel:+1-201-555-0123;phone-context=example.com");
        assert_eq!(t.scheme, Scheme::Tel);
        assert_eq!(t.user, Some(&b"+1-201-555-0123"[..]));
    }
}
