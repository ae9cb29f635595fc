//! What the test SIP user agent sends and receives: a received message ([`Incoming`]), the
//! requests it is asked to send ([`MessageSpec`], [`InviteSpec`]), a request it sent
//! ([`RequestHandle`]) and its dialogs ([`Dialog`]).

use sipshard_parser::sip::{self, parse_uri, Framing, Message, NameAddr, UriContext, EMPTY_HEADER};
use sipshard_parser::Status;
use std::net::SocketAddr;

/// Header lines a received message may have; one with more is skipped.
pub(super) const MAX_HEADERS: usize = 128;

/// How a message came in, and so how its answer goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// The UA's UDP socket.
    Udp,
    /// A TCP connection, by its index in the UA (accepted or opened by it; never reused).
    Tcp(usize),
}

/// A SIP message received: its bytes (exactly one message, which parses), where it came from
/// and on what. The accessors parse it again each time; `None` means the header is absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    /// The message as received.
    pub bytes: Vec<u8>,
    /// The sender's address (for TCP, the connection's far end).
    pub source: SocketAddr,
    /// What it came on.
    pub transport: Transport,
    body: std::ops::Range<usize>,
}

pub(super) fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A name-addr written back as a header value: `<uri>;params` (display name dropped).
pub(super) fn name_addr_text(na: &NameAddr<'_>) -> String {
    let mut s = format!("<{}>", text(na.uri.raw));
    if !na.params.is_empty() {
        s.push(';');
        s.push_str(&text(na.params));
    }
    s
}

impl Incoming {
    pub(super) fn new(
        bytes: Vec<u8>,
        source: SocketAddr,
        transport: Transport,
    ) -> Option<Incoming> {
        let mut headers = [EMPTY_HEADER; MAX_HEADERS];
        let body = match sip::parse(&bytes, &mut headers, Framing::Datagram) {
            Ok(Status::Complete(m)) => m.head_len()..m.len(),
            _ => return None,
        };
        Some(Incoming {
            bytes,
            source,
            transport,
            body,
        })
    }

    /// Runs `f` on the parsed message (`None` only if the bytes were changed and no longer parse).
    pub fn with_message<R>(&self, f: impl FnOnce(&Message<'_, '_>) -> R) -> Option<R> {
        let mut headers = [EMPTY_HEADER; MAX_HEADERS];
        match sip::parse(&self.bytes, &mut headers, Framing::Datagram) {
            Ok(Status::Complete(m)) => Some(f(&m)),
            _ => None,
        }
    }

    /// Whether it is a request.
    pub fn is_request(&self) -> bool {
        self.with_message(|m| m.is_request()).unwrap_or(false)
    }

    /// The method of a request.
    pub fn method(&self) -> Option<String> {
        self.with_message(|m| m.method().map(text)).flatten()
    }

    /// The Request-URI of a request, as sent.
    pub fn request_uri(&self) -> Option<String> {
        self.with_message(|m| match m.start_line() {
            sip::StartLine::Request { uri, .. } => Some(text(uri)),
            sip::StartLine::Response { .. } => None,
        })
        .flatten()
    }

    /// The status code of a response.
    pub fn status(&self) -> Option<u16> {
        self.with_message(|m| m.status_code()).flatten()
    }

    /// The reason phrase of a response.
    pub fn reason(&self) -> Option<String> {
        self.with_message(|m| match m.start_line() {
            sip::StartLine::Response { reason, .. } => Some(text(reason)),
            sip::StartLine::Request { .. } => None,
        })
        .flatten()
    }

    /// The Call-ID.
    pub fn call_id(&self) -> Option<String> {
        self.with_message(|m| m.call_id().map(text)).flatten()
    }

    /// The CSeq number and method.
    pub fn cseq(&self) -> Option<(u32, String)> {
        self.with_message(|m| m.cseq().map(|c| (c.number, text(c.method))))
            .flatten()
    }

    /// The URI of the From header.
    pub fn from_uri(&self) -> Option<String> {
        self.with_message(|m| m.from().map(|f| text(f.uri.raw)))
            .flatten()
    }

    /// The URI of the To header.
    pub fn to_uri(&self) -> Option<String> {
        self.with_message(|m| m.to().map(|t| text(t.uri.raw)))
            .flatten()
    }

    /// The From tag.
    pub fn from_tag(&self) -> Option<String> {
        self.with_message(|m| m.from_tag().map(text)).flatten()
    }

    /// The To tag.
    pub fn to_tag(&self) -> Option<String> {
        self.with_message(|m| m.to_tag().map(text)).flatten()
    }

    /// The URI of the first Contact.
    pub fn contact_uri(&self) -> Option<String> {
        self.with_message(|m| m.contacts().next().map(|c| text(c.uri.raw)))
            .flatten()
    }

    /// The branch of the top Via.
    pub fn branch(&self) -> Option<String> {
        self.with_message(|m| m.top_via().and_then(|v| v.branch()).map(text))
            .flatten()
    }

    /// The value of the first header called `name` (long or compact form, any case).
    pub fn header(&self, name: &str) -> Option<String> {
        self.with_message(|m| m.header(name).map(text)).flatten()
    }

    /// The values of every header called `name`, in order.
    pub fn header_values(&self, name: &str) -> Vec<String> {
        self.with_message(|m| m.header_values(name).map(text).collect())
            .unwrap_or_default()
    }

    /// The Content-Type.
    pub fn content_type(&self) -> Option<String> {
        self.with_message(|m| m.content_type().map(text)).flatten()
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        self.bytes.get(self.body.clone()).unwrap_or_default()
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn body_text(&self) -> String {
        text(self.body())
    }

    /// The whole message as text, for assertion messages.
    pub fn text(&self) -> String {
        text(&self.bytes)
    }

    /// A key naming the server transaction of a request (top Via branch and sent-by, CSeq
    /// method), as RFC 3261 §17.2.3 matches them; `None` for ACK, which has none of its own.
    pub(super) fn transaction_key(&self) -> Option<String> {
        self.with_message(|m| {
            let method = m.method()?;
            if method == b"ACK" {
                return None;
            }
            let via = m.top_via()?;
            let port = via.port.map_or(String::new(), |p| p.to_string());
            Some(format!(
                "{} {}:{} {}",
                text(via.branch().unwrap_or_default()),
                text(&via.host.as_bytes()),
                port,
                text(method)
            ))
        })
        .flatten()
    }
}

/// An out-of-dialog request to send: MESSAGE, OPTIONS and the like.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageSpec {
    /// The Request-URI.
    pub ruri: String,
    /// The From URI (`sip:alice@...`, or a whole name-addr with `<>`); a tag is added.
    pub from: String,
    /// The To URI (or name-addr).
    pub to: String,
    /// The Content-Type, when there is a body.
    pub content_type: Option<String>,
    /// The body.
    pub body: Vec<u8>,
    /// Extra header lines, in order.
    pub headers: Vec<(String, String)>,
    /// The Call-ID; a fresh one when `None`.
    pub call_id: Option<String>,
}

impl MessageSpec {
    /// A `text/plain` MESSAGE from `from` to `to` (also its Request-URI).
    pub fn text(from: &str, to: &str, body: &str) -> MessageSpec {
        MessageSpec {
            ruri: to.to_owned(),
            from: from.to_owned(),
            to: to.to_owned(),
            content_type: Some("text/plain".to_owned()),
            body: body.as_bytes().to_vec(),
            ..MessageSpec::default()
        }
    }
}

/// An INVITE to send.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InviteSpec {
    /// The Request-URI.
    pub ruri: String,
    /// The From URI (or name-addr); a tag is added.
    pub from: String,
    /// The To URI (or name-addr).
    pub to: String,
    /// The SDP offer (sent as `application/sdp`; none when empty).
    pub sdp: Vec<u8>,
    /// Extra header lines, in order.
    pub headers: Vec<(String, String)>,
    /// The Call-ID; a fresh one when `None`.
    pub call_id: Option<String>,
}

/// A request the UA sent: its exact bytes (for [`SipUa::retransmit`]) and what responses to it
/// and requests after it need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHandle {
    /// The request as sent.
    pub bytes: Vec<u8>,
    /// Where it went.
    pub dest: SocketAddr,
    /// What it went on.
    pub transport: Transport,
    /// Its method.
    pub method: String,
    /// Its Request-URI.
    pub ruri: String,
    /// The From value without the tag.
    pub from: String,
    /// The From tag.
    pub from_tag: String,
    /// The To value as sent.
    pub to: String,
    /// The Call-ID.
    pub call_id: String,
    /// The CSeq number.
    pub cseq: u32,
    /// The top Via branch.
    pub branch: String,
}

/// A dialog (RFC 3261 §12), from a 2xx to our INVITE ([`Dialog::from_2xx`]) or from an INVITE
/// we answered 2xx ([`Dialog::from_invite`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialog {
    /// The Call-ID.
    pub call_id: String,
    /// Our URI (From of our requests).
    pub local_uri: String,
    /// Our tag.
    pub local_tag: String,
    /// The far end's URI (To of our requests).
    pub remote_uri: String,
    /// The far end's tag.
    pub remote_tag: String,
    /// The far end's Contact: the Request-URI of our requests.
    pub remote_target: String,
    /// The CSeq number of our last request in the dialog.
    pub local_cseq: u32,
    /// Route values for our requests (`<uri;lr>`), in the order they are sent.
    pub route_set: Vec<String>,
    /// Where our requests go: the first route, else the remote target, when either is an IP
    /// address; else where the dialog's first request came from or went to.
    pub next_hop: SocketAddr,
    /// What our requests go on.
    pub transport: Transport,
}

/// The address a SIP URI names, when its host is an IP literal (port 5060 by default).
pub(super) fn uri_addr(uri: &str) -> Option<SocketAddr> {
    let u = parse_uri(uri.as_bytes(), UriContext::NameAddr).ok()?;
    Some(SocketAddr::new(u.host?.ip()?, u.port.unwrap_or(5060)))
}

/// The URI inside a route value `<uri>;params`.
pub(super) fn route_uri(route: &str) -> &str {
    route
        .split_once('<')
        .and_then(|(_, r)| r.split_once('>'))
        .map_or(route, |(u, _)| u)
}

pub(super) fn next_hop(route_set: &[String], target: &str, fallback: SocketAddr) -> SocketAddr {
    route_set
        .first()
        .map(|r| route_uri(r))
        .or(Some(target))
        .and_then(uri_addr)
        .unwrap_or(fallback)
}

/// A value for From/To: kept as is when already a name-addr, else put in `<>`.
pub(super) fn name_addr(s: &str) -> String {
    if s.contains('<') {
        s.to_owned()
    } else {
        format!("<{s}>")
    }
}

impl Dialog {
    /// The dialog a 2xx to our INVITE creates (UAC side): route set from the Record-Route
    /// reversed, remote target from the Contact. `None` when the response is not a 2xx or has
    /// no To tag.
    pub fn from_2xx(invite: &RequestHandle, response: &Incoming) -> Option<Dialog> {
        if !(200..300).contains(&response.status()?) {
            return None;
        }
        let remote_tag = response.to_tag()?;
        let mut route_set: Vec<String> = response
            .with_message(|m| m.record_routes().map(|r| name_addr_text(&r)).collect())
            .unwrap_or_default();
        route_set.reverse();
        let remote_target = response
            .contact_uri()
            .unwrap_or_else(|| invite.ruri.clone());
        Some(Dialog {
            call_id: invite.call_id.clone(),
            local_uri: invite.from.clone(),
            local_tag: invite.from_tag.clone(),
            remote_uri: response.to_uri().unwrap_or_else(|| invite.to.clone()),
            remote_tag,
            next_hop: next_hop(&route_set, &remote_target, invite.dest),
            remote_target,
            local_cseq: invite.cseq,
            route_set,
            transport: invite.transport,
        })
    }

    /// The dialog an INVITE we answered 2xx with `local_tag` creates (UAS side): route set
    /// from the Record-Route in order, remote target from the Contact.
    pub fn from_invite(invite: &Incoming, local_tag: &str) -> Option<Dialog> {
        let route_set: Vec<String> = invite
            .with_message(|m| m.record_routes().map(|r| name_addr_text(&r)).collect())
            .unwrap_or_default();
        let remote_target = invite.contact_uri().or_else(|| invite.from_uri())?;
        Some(Dialog {
            call_id: invite.call_id()?,
            local_uri: invite.to_uri()?,
            local_tag: local_tag.to_owned(),
            remote_uri: invite.from_uri()?,
            remote_tag: invite.from_tag()?,
            next_hop: next_hop(&route_set, &remote_target, invite.source),
            remote_target,
            local_cseq: 0,
            route_set,
            transport: invite.transport,
        })
    }
}
