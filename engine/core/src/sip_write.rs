//! Writing SIP: responses to a received request (RFC 3261 §8.2.6 and §16.7 for the copied
//! headers, §18.2.1 and RFC 3581 for `received` / `rport`), error responses to requests the
//! parser refused, a request rewritten for forwarding (§16.6: a Via of ours on top,
//! Max-Forwards decremented), reason phrases (§21), To tags, and where a UDP response goes
//! (§18.2.2).
//!
//! Everything here takes and writes bytes: header values and reason phrases are copied as
//! received or configured, never through a lossy `String`.

use crate::route::HeaderEdit;
use crate::wire;
use sipshard_parser::sip::{HeaderKind, Host, Message, Via};
use std::io::Write;
use std::net::{IpAddr, SocketAddr};

/// Writes a response to `req` into `out`.
///
/// Via headers are copied in order; the topmost gets `received` when its sent-by differs from
/// the source address, and a value for an empty `rport` (RFC 3581). From, Call-ID and CSeq are
/// copied; To is copied and, for a final or provisional response other than 100 that has no
/// To tag yet, gets `to_tag`. `headers` are added as given, then `Content-Length: 0`.
pub fn write_response(
    req: &Message<'_, '_>,
    source: SocketAddr,
    code: u16,
    reason: &[u8],
    to_tag: &[u8],
    headers: &[(&str, &[u8])],
    out: &mut Vec<u8>,
) {
    write_response_with_body(req, source, code, reason, to_tag, headers, None, out);
}

/// [`write_response`] with a body (`Some((content_type, body))`), as a 200 carrying an SDP
/// answer.
#[allow(clippy::too_many_arguments)]
pub fn write_response_with_body(
    req: &Message<'_, '_>,
    source: SocketAddr,
    code: u16,
    reason: &[u8],
    to_tag: &[u8],
    headers: &[(&str, &[u8])],
    body: Option<(&[u8], &[u8])>,
    out: &mut Vec<u8>,
) {
    write_answer(
        &Answering::new(req, source),
        code,
        reason,
        to_tag,
        headers,
        body,
        out,
    );
}

/// A request being answered, with its top Via decoded once: the response copies that Via
/// (with `received` / `rport`) and a UDP response goes where it says (§18.2.2), so a caller
/// that needs both decodes it once and passes it here.
#[derive(Debug, Clone, Copy)]
pub struct Answering<'a, 'h, 'b> {
    /// The request.
    pub req: &'a Message<'h, 'b>,
    /// Its top Via, as [`Message::top_via`] decodes it (`None`: copied as received).
    pub top_via: Option<Via<'b>>,
    /// Where it came from.
    pub source: SocketAddr,
}

impl<'a, 'h, 'b> Answering<'a, 'h, 'b> {
    /// `req` from `source`, its top Via decoded.
    pub fn new(req: &'a Message<'h, 'b>, source: SocketAddr) -> Self {
        Answering {
            req,
            top_via: req.top_via(),
            source,
        }
    }
}

/// [`write_response_with_body`] for a request whose top Via is already decoded, with extra
/// headers of any string-like types (a route's rendered values go in without being collected
/// into a new vector).
pub fn write_answer<N: AsRef<str>, V: AsRef<[u8]>>(
    to: &Answering<'_, '_, '_>,
    code: u16,
    reason: &[u8],
    to_tag: &[u8],
    headers: &[(N, V)],
    body: Option<(&[u8], &[u8])>,
    out: &mut Vec<u8>,
) {
    let (req, source) = (to.req, to.source);
    write_status_line(code, reason, out);
    let mut first_via = true;
    for h in req.headers() {
        match h.kind {
            HeaderKind::Via => {
                out.extend_from_slice(b"Via: ");
                if first_via {
                    first_via = false;
                    write_top_via(h.value, to.top_via.as_ref(), source, out);
                } else {
                    out.extend_from_slice(h.value);
                }
                out.extend_from_slice(b"\r\n");
            }
            HeaderKind::From | HeaderKind::CallId | HeaderKind::CSeq => {
                let name = h.kind.canonical_name().unwrap_or("");
                out.extend_from_slice(name.as_bytes());
                out.extend_from_slice(b": ");
                out.extend_from_slice(h.value);
                out.extend_from_slice(b"\r\n");
            }
            HeaderKind::To => {
                out.extend_from_slice(b"To: ");
                out.extend_from_slice(h.value);
                if code != 100 && req.to_tag().is_none() && !to_tag.is_empty() {
                    out.extend_from_slice(b";tag=");
                    out.extend_from_slice(to_tag);
                }
                out.extend_from_slice(b"\r\n");
            }
            _ => {}
        }
    }
    for (name, value) in headers {
        out.extend_from_slice(name.as_ref().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_ref());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"Server: sipshard\r\n");
    match body {
        Some((ct, b)) => {
            out.extend_from_slice(b"Content-Type: ");
            out.extend_from_slice(ct);
            out.extend_from_slice(b"\r\nContent-Length: ");
            wire::dec(out, b.len());
            out.extend_from_slice(b"\r\n\r\n");
            out.extend_from_slice(b);
        }
        None => out.extend_from_slice(b"Content-Length: 0\r\n\r\n"),
    }
}

/// Writes `SIP/2.0 <code> <reason>` and its line end.
fn write_status_line(code: u16, reason: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(b"SIP/2.0 ");
    wire::dec(out, code);
    out.push(b' ');
    out.extend_from_slice(reason);
    out.extend_from_slice(b"\r\n");
}

/// Writes an error response to a request the parser (or a check above it) refused, with the
/// reason phrase of `code`, copying the Via, From, To, Call-ID and CSeq lines as sent (found
/// by a plain line scan, long or compact names), and a `Warning: 399` header saying what was
/// wrong (RFC 3261 §20.43).
pub fn write_error_response(
    raw: &[u8],
    code: u16,
    warning: &str,
    to_tag: &[u8],
    out: &mut Vec<u8>,
) {
    write_status_line(code, reason_phrase(code).as_bytes(), out);
    let head_end = memchr::memmem::find(raw, b"\r\n\r\n").map_or(raw.len(), |i| i + 2);
    let head = &raw[..head_end];
    let mut lines = head.split(|&c| c == b'\n').skip(1).peekable();
    while let Some(line) = lines.next() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = memchr::memchr(b':', line) else {
            continue;
        };
        let name = trim(&line[..colon]);
        let kind = HeaderKind::from_name(name);
        if !matches!(
            kind,
            HeaderKind::Via
                | HeaderKind::From
                | HeaderKind::To
                | HeaderKind::CallId
                | HeaderKind::CSeq
        ) {
            continue;
        }
        // Unfold continuation lines into one.
        let mut value = trim(&line[colon + 1..]).to_vec();
        while let Some(next) = lines.peek() {
            if next.first().is_some_and(|&c| c == b' ' || c == b'\t') {
                let next = next.strip_suffix(b"\r").unwrap_or(next);
                value.push(b' ');
                value.extend_from_slice(trim(next));
                lines.next();
            } else {
                break;
            }
        }
        if value.iter().any(|&c| c == b'\r' || c == b'\n') {
            continue;
        }
        out.extend_from_slice(kind.canonical_name().unwrap_or("").as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(&value);
        if kind == HeaderKind::To && code != 100 && !contains_tag(&value) && !to_tag.is_empty() {
            out.extend_from_slice(b";tag=");
            out.extend_from_slice(to_tag);
        }
        out.extend_from_slice(b"\r\n");
    }
    let warning: String = warning
        .chars()
        .filter(|c| *c != '"' && *c != '\\')
        .collect();
    let _ = write!(
        out,
        "Warning: 399 sipshard \"{warning}\"\r\nServer: sipshard\r\nContent-Length: 0\r\n\r\n"
    );
}

fn trim(s: &[u8]) -> &[u8] {
    let a = s
        .iter()
        .position(|&c| c != b' ' && c != b'\t')
        .unwrap_or(s.len());
    let b = s
        .iter()
        .rposition(|&c| c != b' ' && c != b'\t')
        .map_or(a, |i| i + 1);
    &s[a..b.max(a)]
}

fn contains_tag(v: &[u8]) -> bool {
    v.windows(4).any(|w| w.eq_ignore_ascii_case(b"tag="))
}

/// Rewrites the top Via value of one header line (`top` is its first value decoded; `None`
/// when it does not decode, and then the line is copied as received): the first
/// comma-separated value gets `received` / `rport`; later values of the same line are kept as
/// sent.
fn write_top_via(value: &[u8], top: Option<&Via<'_>>, source: SocketAddr, out: &mut Vec<u8>) {
    let Some(top) = top else {
        out.extend_from_slice(value);
        return;
    };
    // Re-serialise the top value: sent-protocol SP sent-by *(;param), normalised white space.
    out.extend_from_slice(top.protocol);
    out.push(b'/');
    out.extend_from_slice(top.version);
    out.push(b'/');
    out.extend_from_slice(top.transport);
    out.push(b' ');
    match top.host {
        // Written from the decoded address: `Host::as_bytes` would format it into a new string.
        Host::V4(a) => wire::ip(out, IpAddr::V4(a)),
        _ => out.extend_from_slice(&top.host.as_bytes()),
    }
    if let Some(p) = top.port {
        out.push(b':');
        wire::dec(out, p);
    }
    let mut has_received = false;
    for (name, v) in top.params() {
        out.push(b';');
        out.extend_from_slice(name);
        if name.eq_ignore_ascii_case(b"rport") && v.is_none() {
            out.push(b'=');
            wire::dec(out, source.port());
            continue;
        }
        if name.eq_ignore_ascii_case(b"received") {
            has_received = true;
        }
        if let Some(v) = v {
            out.push(b'=');
            out.extend_from_slice(v);
        }
    }
    if !has_received && top.host.ip() != Some(source.ip()) {
        out.extend_from_slice(b";received=");
        wire::ip(out, source.ip());
    }
    // Values after the first one on the same header line.
    if let Some(comma) = top_value_end(value) {
        out.extend_from_slice(&value[comma..]);
    }
}

/// Offset of the comma ending the first Via value of a header line, if there is another value.
fn top_value_end(value: &[u8]) -> Option<usize> {
    let mut quoted = false;
    for (i, &c) in value.iter().enumerate() {
        match c {
            b'"' => quoted = !quoted,
            b',' if !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

/// Writes `req` rewritten for forwarding statelessly (RFC 3261 §16.6): the start line as
/// received, a Via of ours on top (`SIP/2.0/UDP <via_host>;branch=z9hG4bK<branch>`), the
/// received headers with Max-Forwards decremented and those named by `edits` left out, then
/// each edit that sets a value, then the body as received.
pub fn write_forward(
    req: &Message<'_, '_>,
    via_host: SocketAddr,
    branch: &[u8],
    edits: &[HeaderEdit],
    out: &mut Vec<u8>,
) {
    let bytes = req.as_bytes();
    let start_line = memchr::memchr(b'\n', bytes).map_or(0, |i| i + 1);
    out.extend_from_slice(&bytes[..start_line]);
    out.extend_from_slice(b"Via: SIP/2.0/UDP ");
    wire::socket_addr(out, via_host);
    out.extend_from_slice(b";branch=z9hG4bK");
    out.extend_from_slice(branch);
    out.extend_from_slice(b"\r\n");
    for h in req.headers() {
        if edits.iter().any(|e| e.name.matches(h)) {
            continue;
        }
        out.extend_from_slice(h.name);
        out.extend_from_slice(b": ");
        if h.kind == HeaderKind::MaxForwards {
            let mf = req.max_forwards().unwrap_or(70).saturating_sub(1);
            wire::dec(out, mf);
        } else {
            out.extend_from_slice(h.value);
        }
        out.extend_from_slice(b"\r\n");
    }
    for e in edits {
        if let Some(v) = &e.value {
            out.extend_from_slice(e.name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(v);
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&bytes[req.head_len()..]);
}

/// A request this server originates: out of dialog (a gateway MESSAGE or INVITE), or within
/// one ([`crate::dialog::Dialog::write_request`] fills it in).
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `MESSAGE`, `INVITE`...
    pub method: &'a str,
    /// The Request-URI.
    pub uri: &'a [u8],
    /// The From value without tag (`"Alice" <sip:alice@example.com>`).
    pub from: &'a [u8],
    /// Our From tag.
    pub from_tag: &'a [u8],
    /// The To value (with the far side's tag for a request within a dialog).
    pub to: &'a [u8],
    /// The Call-ID.
    pub call_id: &'a [u8],
    /// The CSeq number.
    pub cseq: u32,
    /// Our Via: transport (`UDP`, `TCP`) and sent-by.
    pub via: (&'a str, SocketAddr),
    /// The branch (`z9hG4bK...`).
    pub branch: &'a [u8],
    /// Route header values, in order (an outbound proxy: `<sip:proxy;lr>`).
    pub route: &'a [&'a [u8]],
    /// Contact URI, for requests that carry one (INVITE).
    pub contact: Option<&'a [u8]>,
    /// Further header lines, each `Name: value` without CRLF.
    pub extra: &'a [&'a [u8]],
    /// The body's type; `None` with an empty body.
    pub content_type: Option<&'a [u8]>,
    /// The body.
    pub body: &'a [u8],
}

/// Writes `r` (RFC 3261 §8.1.1: the mandatory headers, Max-Forwards 70, Content-Length).
pub fn write_request(r: &Request<'_>, out: &mut Vec<u8>) {
    out.extend_from_slice(r.method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(r.uri);
    out.extend_from_slice(b" SIP/2.0\r\nVia: SIP/2.0/");
    out.extend_from_slice(r.via.0.as_bytes());
    out.push(b' ');
    wire::socket_addr(out, r.via.1);
    out.extend_from_slice(b";branch=");
    out.extend_from_slice(r.branch);
    out.extend_from_slice(b"\r\nMax-Forwards: 70\r\n");
    for route in r.route {
        out.extend_from_slice(b"Route: ");
        out.extend_from_slice(route);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"From: ");
    out.extend_from_slice(r.from);
    out.extend_from_slice(b";tag=");
    out.extend_from_slice(r.from_tag);
    out.extend_from_slice(b"\r\nTo: ");
    out.extend_from_slice(r.to);
    out.extend_from_slice(b"\r\nCall-ID: ");
    out.extend_from_slice(r.call_id);
    out.extend_from_slice(b"\r\nCSeq: ");
    wire::dec(out, r.cseq);
    out.push(b' ');
    out.extend_from_slice(r.method.as_bytes());
    out.extend_from_slice(b"\r\n");
    if let Some(c) = r.contact {
        out.extend_from_slice(b"Contact: <");
        out.extend_from_slice(c);
        out.extend_from_slice(b">\r\n");
    }
    for line in r.extra {
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    if let (Some(ct), false) = (r.content_type, r.body.is_empty()) {
        out.extend_from_slice(b"Content-Type: ");
        out.extend_from_slice(ct);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"Content-Length: ");
    wire::dec(out, r.body.len());
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(r.body);
}

/// Writes the ACK for a non-2xx final `response` to the INVITE `req` (RFC 3261 §17.1.1.3): the
/// INVITE's Request-URI, its top Via only, its Route headers, From, Call-ID and CSeq number, and
/// the response's To (which carries the tag the ACK must echo). `false` when `req` is not a
/// request or either lacks a header the ACK needs.
pub fn write_ack(req: &Message<'_, '_>, response: &Message<'_, '_>, out: &mut Vec<u8>) -> bool {
    let sipshard_parser::sip::StartLine::Request { uri, .. } = req.start_line() else {
        return false;
    };
    let (Some(via), Some(from), Some(call_id), Some(cseq), Some(to)) = (
        req.headers().iter().find(|h| h.kind == HeaderKind::Via),
        req.headers().iter().find(|h| h.kind == HeaderKind::From),
        req.call_id(),
        req.cseq(),
        response.headers().iter().find(|h| h.kind == HeaderKind::To),
    ) else {
        return false;
    };
    out.extend_from_slice(b"ACK ");
    out.extend_from_slice(uri);
    out.extend_from_slice(b" SIP/2.0\r\nVia: ");
    let top = top_value_end(via.value).map_or(via.value, |end| &via.value[..end]);
    out.extend_from_slice(top);
    out.extend_from_slice(b"\r\n");
    for h in req.headers().iter().filter(|h| h.kind == HeaderKind::Route) {
        out.extend_from_slice(b"Route: ");
        out.extend_from_slice(h.value);
        out.extend_from_slice(b"\r\n");
    }
    for (name, value) in [("From", from.value), ("To", to.value), ("Call-ID", call_id)] {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"CSeq: ");
    wire::dec(out, cseq.number);
    out.extend_from_slice(b" ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n");
    true
}

/// The To tags a shard gives its responses: `ss<boot>.<shard>.<counter>` in hex, unique across
/// the shards of a process and (by the boot prefix) across restarts.
#[derive(Debug, Clone)]
pub struct ToTags {
    boot: u32,
    shard: u16,
    next: u64,
    /// The last tag written: one buffer for all of them instead of one per response.
    buf: Vec<u8>,
}

impl ToTags {
    /// The tags of shard `shard`, with the process's boot prefix.
    pub fn new(boot: u64, shard: u16) -> ToTags {
        ToTags {
            boot: boot as u32,
            shard,
            next: 0,
            buf: Vec::with_capacity(32),
        }
    }

    /// The next tag.
    pub fn fresh(&mut self) -> &[u8] {
        self.next += 1;
        let out = &mut self.buf;
        out.clear();
        out.extend_from_slice(b"ss");
        wire::hex(out, u64::from(self.boot));
        out.push(b'.');
        wire::dec(out, self.shard);
        out.push(b'.');
        wire::hex(out, self.next);
        out
    }
}

/// Where a response to a request received over UDP goes (RFC 3261 §18.2.2, RFC 3581): to the
/// source address and port when the top Via asked for `rport`, else to the source address and
/// the Via's sent-by port (default 5060).
pub fn udp_response_destination(top_via: Option<&Via<'_>>, source: SocketAddr) -> SocketAddr {
    match top_via {
        Some(v) if v.rport().is_some() => source,
        Some(v) => SocketAddr::new(source.ip(), v.port.unwrap_or(5060)),
        None => source,
    }
}

/// Whether an address is a usable unicast destination (RFC 4475 §3.3.10: never answer to a
/// broadcast sent-by).
pub fn is_unicast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => !a.is_broadcast() && !a.is_multicast() && !a.is_unspecified(),
        IpAddr::V6(a) => !a.is_multicast() && !a.is_unspecified(),
    }
}

/// The RFC 3261 §21 reason phrase for `code` (and a few later RFCs'), or a class default.
pub fn reason_phrase(code: u16) -> &'static str {
    let known = match code {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        305 => "Use Proxy",
        380 => "Alternative Service",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        410 => "Gone",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        421 => "Extension Required",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        485 => "Ambiguous",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        493 => "Undecipherable",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => "",
    };
    if !known.is_empty() {
        return known;
    }
    match code / 100 {
        1 => "Progress",
        2 => "Success",
        3 => "Redirection",
        4 => "Client Error",
        5 => "Server Error",
        _ => "Global Failure",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sipshard_parser::sip::{parse, Framing, EMPTY_HEADER};

    const REQ: &[u8] = b"MESSAGE sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP client.example.com:5070;branch=z9hG4bK1;rport, SIP/2.0/UDP p.example.com;branch=z9hG4bK0\r\n\
Via: SIP/2.0/TCP far.example.com;branch=z9hG4bKx\r\n\
From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>\r\nCall-ID: c@h\r\nCSeq: 3 MESSAGE\r\n\
Content-Length: 0\r\n\r\n";

    #[test]
    fn response_copies_and_tags() {
        let mut h = [EMPTY_HEADER; 16];
        let req = parse(REQ, &mut h, Framing::Datagram)
            .unwrap()
            .complete()
            .unwrap();
        let src: SocketAddr = "192.0.2.7:40000".parse().unwrap();
        let mut out = Vec::new();
        write_response(
            &req,
            src,
            202,
            b"Stored",
            b"t9",
            &[("X-Repo-Msgid", b"m1")],
            &mut out,
        );
        let mut h2 = [EMPTY_HEADER; 16];
        let resp = parse(&out, &mut h2, Framing::Datagram)
            .unwrap()
            .complete()
            .unwrap();
        assert_eq!(resp.status_code(), Some(202));
        assert_eq!(resp.call_id(), Some(&b"c@h"[..]));
        assert_eq!(resp.to_tag(), Some(&b"t9"[..]));
        assert_eq!(resp.from_tag(), Some(&b"a1"[..]));
        assert_eq!(resp.header("X-Repo-Msgid"), Some(&b"m1"[..]));
        let vias: Vec<_> = resp.vias().collect();
        assert_eq!(vias.len(), 3);
        assert_eq!(vias[0].rport(), Some(Some(40000)));
        assert_eq!(vias[0].received(), Some(&b"192.0.2.7"[..]));
        assert_eq!(vias[1].branch(), Some(&b"z9hG4bK0"[..]));
        assert_eq!(udp_response_destination(req.top_via().as_ref(), src), src);
    }

    #[test]
    fn error_response_copies_lines() {
        let raw = b"INVITE sip:a@b SIP/7.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bK1\r\nf: <sip:x@y>;tag=1\r\nt: <sip:a@b>\r\ni: c1\r\nCSeq: 1 INVITE\r\nX: y\r\n\r\n";
        let mut out = Vec::new();
        write_error_response(raw, 505, "SIP version \"7\"", b"tt", &mut out);
        let mut h = [EMPTY_HEADER; 16];
        let resp = parse(&out, &mut h, Framing::Datagram)
            .unwrap()
            .complete()
            .unwrap();
        resp.validate().unwrap();
        assert_eq!(resp.status_code(), Some(505));
        assert!(matches!(
            resp.start_line(),
            sipshard_parser::sip::StartLine::Response {
                reason: b"Version Not Supported",
                ..
            }
        ));
        assert_eq!(resp.call_id(), Some(&b"c1"[..]));
        assert_eq!(resp.to_tag(), Some(&b"tt"[..]));
        assert_eq!(resp.branch(), Some(&b"z9hG4bK1"[..]));
        assert!(resp.header("Warning").unwrap().starts_with(b"399 sipshard"));
    }

    #[test]
    fn a_request_we_originate_is_valid_sip() {
        let mut out = Vec::new();
        write_request(
            &Request {
                method: "MESSAGE",
                uri: b"sip:bob@example.com",
                from: b"\"Alice\" <sip:alice@example.com>",
                from_tag: b"f1",
                to: b"<sip:bob@example.com>",
                call_id: b"sg1.abc",
                cseq: 1,
                via: ("UDP", "192.0.2.1:5060".parse().unwrap()),
                branch: b"z9hG4bKxyz",
                route: &[b"<sip:proxy.example.com;lr>"],
                contact: None,
                extra: &[b"Expires: 60"],
                content_type: Some(b"text/plain"),
                body: b"hello\r\n------- no end-line here",
            },
            &mut out,
        );
        let mut h = [EMPTY_HEADER; 16];
        let m = parse(&out, &mut h, Framing::Datagram)
            .unwrap()
            .complete()
            .unwrap();
        m.validate().unwrap();
        assert_eq!(m.method(), Some(&b"MESSAGE"[..]));
        assert_eq!(m.branch(), Some(&b"z9hG4bKxyz"[..]));
        assert_eq!(m.from_tag(), Some(&b"f1"[..]));
        assert_eq!(m.to_tag(), None);
        assert_eq!(m.routes().count(), 1);
        assert_eq!(m.body(), &b"hello\r\n------- no end-line here"[..]);
        assert_eq!(m.header("Expires"), Some(&b"60"[..]));
    }

    #[test]
    fn destination_without_rport_uses_via_port() {
        let v = Via::parse(b"SIP/2.0/UDP h.example.com:5080;branch=z9hG4bK1").unwrap();
        let src: SocketAddr = "192.0.2.7:40000".parse().unwrap();
        assert_eq!(
            udp_response_destination(Some(&v), src),
            "192.0.2.7:5080".parse().unwrap()
        );
        let v = Via::parse(b"SIP/2.0/UDP h.example.com;branch=z9hG4bK1").unwrap();
        assert_eq!(udp_response_destination(Some(&v), src).port(), 5060);
        assert!(!is_unicast("255.255.255.255".parse().unwrap()));
    }
}
