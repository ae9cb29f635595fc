//! A SIP user agent for tests (RFC 3261): sends requests out of dialog and in dialog, receives
//! requests and responses over UDP and TCP, and answers them.
//!
//! It listens on UDP and TCP at one port of 127.0.0.1, as a phone would: the gateway sends
//! what fits in a datagram over UDP and larger requests (over 1300 bytes, RFC 3261 §18.1.1)
//! over TCP to the same host and port. It is deliberately thin: no client transactions, so
//! nothing is retransmitted unless a test asks ([`SipUa::retransmit`]); on the server side a
//! request retransmitted with the same branch is absorbed and the last response to it sent
//! again (RFC 3261 §17.2), so that a test counting deliveries counts each request once. Only
//! loose routing is done in dialogs.

use super::sip_message::{name_addr, text};
pub use super::sip_message::{Dialog, Incoming, InviteSpec, MessageSpec, RequestHandle, Transport};
use super::{poll_readable, random_token, remaining};
use sipshard_parser::sip::{frame, FrameOptions, Framed, HeaderKind};
use sipshard_parser::Status;
use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// How long a write to a TCP connection may block before it fails.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Requests remembered for absorbing retransmissions; past this the memory starts over, so a
/// long load run stays bounded (a retransmission comes within 32 s, long before).
const MAX_REMEMBERED: usize = 50_000;

/// One TCP connection, accepted or opened.
struct Conn {
    /// `None` once closed (the index stays taken).
    stream: Option<TcpStream>,
    peer: SocketAddr,
    buf: Vec<u8>,
}

/// What the UA remembers of a request it received: the To tag it answers with, and its last
/// response with where that went, to send again when the request is retransmitted.
#[derive(Default)]
struct Served {
    to_tag: Option<String>,
    last: Option<(Vec<u8>, Transport, SocketAddr)>,
}

/// Everything a request the UA writes is made of.
struct Request<'a> {
    method: &'a str,
    ruri: &'a str,
    tcp: bool,
    branch: &'a str,
    from: &'a str,
    from_tag: &'a str,
    to: &'a str,
    call_id: &'a str,
    cseq: u32,
    contact: bool,
    routes: &'a [String],
    headers: &'a [(String, String)],
    content_type: Option<&'a str>,
    body: &'a [u8],
}

/// A SIP user agent on 127.0.0.1, UDP and TCP on one port. See the module documentation.
pub struct SipUa {
    udp: UdpSocket,
    listener: TcpListener,
    addr: SocketAddr,
    conns: Vec<Conn>,
    /// Messages read while waiting for something else.
    queue: VecDeque<Incoming>,
    served: HashMap<String, Served>,
    absorb: bool,
    absorbed: u64,
    cseq: u32,
}

impl SipUa {
    /// A UA on a fresh port of 127.0.0.1, UDP and TCP.
    pub fn bind() -> io::Result<SipUa> {
        let mut tries = 0;
        let (udp, listener) = loop {
            let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
            match TcpListener::bind(udp.local_addr()?) {
                Ok(l) => break (udp, l),
                // Someone holds that TCP port: another UDP port, then.
                Err(_) if tries < 20 => tries += 1,
                Err(e) => return Err(e),
            }
        };
        Ok(SipUa {
            addr: udp.local_addr()?,
            udp,
            listener,
            conns: Vec::new(),
            queue: VecDeque::new(),
            served: HashMap::new(),
            absorb: true,
            absorbed: 0,
            cseq: 0,
        })
    }

    /// The address (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `sip:user@127.0.0.1:PORT`.
    pub fn uri(&self, user: &str) -> String {
        format!("sip:{user}@{}", self.addr)
    }

    /// Whether a retransmitted request is absorbed (default) or delivered again.
    pub fn set_absorb_retransmissions(&mut self, on: bool) {
        self.absorb = on;
    }

    /// How many retransmitted requests were absorbed so far.
    pub fn absorbed_retransmissions(&self) -> u64 {
        self.absorbed
    }

    fn next_cseq(&mut self) -> u32 {
        self.cseq += 1;
        self.cseq
    }

    fn write_request(&self, r: &Request<'_>) -> Vec<u8> {
        let transport = if r.tcp { "TCP" } else { "UDP" };
        let mut s = format!(
            "{} {} SIP/2.0\r\nVia: SIP/2.0/{transport} {};rport;branch={}\r\nMax-Forwards: 70\r\n",
            r.method, r.ruri, self.addr, r.branch
        );
        for route in r.routes {
            s.push_str(&format!("Route: {route}\r\n"));
        }
        s.push_str(&format!(
            "From: {};tag={}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {} {}\r\n",
            name_addr(r.from),
            r.from_tag,
            r.to,
            r.call_id,
            r.cseq,
            r.method
        ));
        if r.contact {
            s.push_str(&self.contact(r.tcp));
        }
        for (name, value) in r.headers {
            s.push_str(&format!("{name}: {value}\r\n"));
        }
        if let Some(ct) = r.content_type {
            s.push_str(&format!("Content-Type: {ct}\r\n"));
        }
        s.push_str(&format!("Content-Length: {}\r\n\r\n", r.body.len()));
        let mut bytes = s.into_bytes();
        bytes.extend_from_slice(r.body);
        bytes
    }

    /// Our Contact header line.
    fn contact(&self, tcp: bool) -> String {
        let transport = if tcp { ";transport=tcp" } else { "" };
        format!("Contact: <sip:{}{transport}>\r\n", self.addr)
    }

    /// Writes `bytes` on `transport` to `dest`.
    fn send_raw(&mut self, bytes: &[u8], transport: Transport, dest: SocketAddr) -> io::Result<()> {
        match transport {
            Transport::Udp => self.udp.send_to(bytes, dest).map(|_| ()),
            Transport::Tcp(i) => match self.conns.get_mut(i).and_then(|c| c.stream.as_mut()) {
                Some(s) => s.write_all(bytes),
                None => Err(io::Error::new(
                    io::ErrorKind::NotConnected,
                    "that TCP connection is closed",
                )),
            },
        }
    }

    /// An open TCP connection to `dest` (one the far end opened counts too), or a new one.
    fn connection_to(&mut self, dest: SocketAddr) -> io::Result<usize> {
        if let Some(i) = self
            .conns
            .iter()
            .position(|c| c.stream.is_some() && c.peer == dest)
        {
            return Ok(i);
        }
        let stream = TcpStream::connect_timeout(&dest, WRITE_TIMEOUT)?;
        Ok(self.add_conn(stream, dest))
    }

    fn add_conn(&mut self, stream: TcpStream, peer: SocketAddr) -> usize {
        let _ = stream.set_nodelay(true);
        let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
        self.conns.push(Conn {
            stream: Some(stream),
            peer,
            buf: Vec::new(),
        });
        self.conns.len() - 1
    }

    /// Sends an out-of-dialog request (`method` with `m`'s headers and body) to `dest`, over
    /// UDP or, with `tcp`, over a TCP connection to it (opened if needed). An INVITE gets our
    /// Contact.
    pub fn send_request(
        &mut self,
        dest: SocketAddr,
        tcp: bool,
        method: &str,
        m: &MessageSpec,
    ) -> io::Result<RequestHandle> {
        let transport = if tcp {
            Transport::Tcp(self.connection_to(dest)?)
        } else {
            Transport::Udp
        };
        let call_id = m
            .call_id
            .clone()
            .unwrap_or_else(|| format!("{}@127.0.0.1", random_token(20)));
        let from_tag = random_token(10);
        let branch = format!("z9hG4bK{}", random_token(16));
        let cseq = self.next_cseq();
        let to = name_addr(&m.to);
        let bytes = self.write_request(&Request {
            method,
            ruri: &m.ruri,
            tcp,
            branch: &branch,
            from: &m.from,
            from_tag: &from_tag,
            to: &to,
            call_id: &call_id,
            cseq,
            contact: method == "INVITE",
            routes: &[],
            headers: &m.headers,
            content_type: m.content_type.as_deref(),
            body: &m.body,
        });
        self.send_raw(&bytes, transport, dest)?;
        Ok(RequestHandle {
            bytes,
            dest,
            transport,
            method: method.to_owned(),
            ruri: m.ruri.clone(),
            from: name_addr(&m.from),
            from_tag,
            to,
            call_id,
            cseq,
            branch,
        })
    }

    /// Sends a MESSAGE over UDP.
    pub fn send_message(&mut self, dest: SocketAddr, m: &MessageSpec) -> io::Result<RequestHandle> {
        self.send_request(dest, false, "MESSAGE", m)
    }

    /// Sends a MESSAGE over TCP.
    pub fn send_message_tcp(
        &mut self,
        dest: SocketAddr,
        m: &MessageSpec,
    ) -> io::Result<RequestHandle> {
        self.send_request(dest, true, "MESSAGE", m)
    }

    /// Sends an INVITE over UDP, with `spec.sdp` as an `application/sdp` offer.
    pub fn send_invite(
        &mut self,
        dest: SocketAddr,
        spec: &InviteSpec,
    ) -> io::Result<RequestHandle> {
        let m = MessageSpec {
            ruri: spec.ruri.clone(),
            from: spec.from.clone(),
            to: spec.to.clone(),
            content_type: (!spec.sdp.is_empty()).then(|| "application/sdp".to_owned()),
            body: spec.sdp.clone(),
            headers: spec.headers.clone(),
            call_id: spec.call_id.clone(),
        };
        self.send_request(dest, false, "INVITE", &m)
    }

    /// Sends the request again, byte for byte (a retransmission: same branch).
    pub fn retransmit(&mut self, handle: &RequestHandle) -> io::Result<()> {
        self.send_raw(&handle.bytes, handle.transport, handle.dest)
    }

    /// Sends the ACK for a 2xx to our INVITE (RFC 3261 §13.2.2.4: a new transaction to the
    /// remote target, through the route set, with the INVITE's CSeq number) and returns the
    /// dialog. An error when `response` is not a 2xx with a To tag.
    pub fn ack(&mut self, invite: &RequestHandle, response: &Incoming) -> io::Result<Dialog> {
        let dialog = Dialog::from_2xx(invite, response).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "not a 2xx with a To tag")
        })?;
        let cseq = dialog.local_cseq;
        self.send_in_dialog(&dialog, "ACK", cseq, &[], None)?;
        Ok(dialog)
    }

    /// Sends the ACK for a final non-2xx response to our INVITE (RFC 3261 §17.1.1.3: part of
    /// the INVITE's transaction, so the same branch, Request-URI and destination).
    pub fn ack_failure(&mut self, invite: &RequestHandle, response: &Incoming) -> io::Result<()> {
        let to = response.header("To").unwrap_or_else(|| invite.to.clone());
        let bytes = self.write_request(&Request {
            method: "ACK",
            ruri: &invite.ruri,
            tcp: matches!(invite.transport, Transport::Tcp(_)),
            branch: &invite.branch,
            from: &invite.from,
            from_tag: &invite.from_tag,
            to: &to,
            call_id: &invite.call_id,
            cseq: invite.cseq,
            contact: false,
            routes: &[],
            headers: &[],
            content_type: None,
            body: b"",
        });
        self.send_raw(&bytes, invite.transport, invite.dest)
    }

    /// Sends a request in `dialog` (the next CSeq number): BYE, MESSAGE, INFO, a re-INVITE...
    /// `extra` are added header lines, `body` a Content-Type and body.
    pub fn request_in_dialog(
        &mut self,
        dialog: &mut Dialog,
        method: &str,
        extra: &[(&str, &str)],
        body: Option<(&str, &[u8])>,
    ) -> io::Result<RequestHandle> {
        dialog.local_cseq += 1;
        self.send_in_dialog(dialog, method, dialog.local_cseq, extra, body)
    }

    /// Sends a BYE in `dialog`.
    pub fn bye(&mut self, dialog: &mut Dialog) -> io::Result<RequestHandle> {
        self.request_in_dialog(dialog, "BYE", &[], None)
    }

    fn send_in_dialog(
        &mut self,
        d: &Dialog,
        method: &str,
        cseq: u32,
        extra: &[(&str, &str)],
        body: Option<(&str, &[u8])>,
    ) -> io::Result<RequestHandle> {
        let branch = format!("z9hG4bK{}", random_token(16));
        let to = format!("{};tag={}", name_addr(&d.remote_uri), d.remote_tag);
        let headers: Vec<(String, String)> = extra
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        let bytes = self.write_request(&Request {
            method,
            ruri: &d.remote_target,
            tcp: matches!(d.transport, Transport::Tcp(_)),
            branch: &branch,
            from: &d.local_uri,
            from_tag: &d.local_tag,
            to: &to,
            call_id: &d.call_id,
            cseq,
            contact: method == "INVITE",
            routes: &d.route_set,
            headers: &headers,
            content_type: body.map(|(ct, _)| ct),
            body: body.map_or(&b""[..], |(_, b)| b),
        });
        self.send_raw(&bytes, d.transport, d.next_hop)?;
        Ok(RequestHandle {
            bytes,
            dest: d.next_hop,
            transport: d.transport,
            method: method.to_owned(),
            ruri: d.remote_target.clone(),
            from: name_addr(&d.local_uri),
            from_tag: d.local_tag.clone(),
            to,
            call_id: d.call_id.clone(),
            cseq,
            branch,
        })
    }

    /// The next SIP message, from UDP or any TCP connection (messages set aside by the `wait_`
    /// helpers first), or `None` when `timeout` passes.
    pub fn recv(&mut self, timeout: Duration) -> Option<Incoming> {
        if let Some(m) = self.queue.pop_front() {
            return Some(m);
        }
        self.read(Instant::now() + timeout)
    }

    /// The first message for which `pred` holds, within `timeout`; the others read meanwhile
    /// are kept, in order, for later calls.
    pub fn wait_for(
        &mut self,
        timeout: Duration,
        mut pred: impl FnMut(&Incoming) -> bool,
    ) -> Option<Incoming> {
        if let Some(i) = self.queue.iter().position(&mut pred) {
            return self.queue.remove(i);
        }
        let deadline = Instant::now() + timeout;
        loop {
            let m = self.read(deadline)?;
            if pred(&m) {
                return Some(m);
            }
            self.queue.push_back(m);
        }
    }

    /// The next request with `method`, within `timeout` (others are kept).
    pub fn wait_request(&mut self, method: &str, timeout: Duration) -> Option<Incoming> {
        self.wait_for(timeout, |m| m.method().as_deref() == Some(method))
    }

    /// The next response (provisional or final) with `call_id`, within `timeout`.
    pub fn wait_response(&mut self, call_id: &str, timeout: Duration) -> Option<Incoming> {
        self.wait_for(timeout, |m| {
            m.status().is_some() && m.call_id().as_deref() == Some(call_id)
        })
    }

    /// The next final response with `call_id`, within `timeout`; provisional responses with
    /// that Call-ID met on the way are dropped.
    pub fn wait_final(&mut self, call_id: &str, timeout: Duration) -> Option<Incoming> {
        let deadline = Instant::now() + timeout;
        loop {
            let m = self.wait_response(call_id, remaining(deadline))?;
            if m.status().is_some_and(|c| c >= 200) {
                return Some(m);
            }
        }
    }

    /// Reads until a message arrives or `deadline` passes.
    fn read(&mut self, deadline: Instant) -> Option<Incoming> {
        let mut buf = vec![0u8; 65_536];
        loop {
            if let Some(m) = self.take_framed() {
                return Some(m);
            }
            let open: Vec<usize> = (0..self.conns.len())
                .filter(|&i| self.conns[i].stream.is_some())
                .collect();
            let mut fds = vec![self.udp.as_raw_fd(), self.listener.as_raw_fd()];
            fds.extend(
                open.iter()
                    .filter_map(|&i| self.conns[i].stream.as_ref().map(|s| s.as_raw_fd())),
            );
            let ready = poll_readable(&fds, remaining(deadline));
            if ready.first() == Some(&true) {
                if let Ok((n, from)) = self.udp.recv_from(&mut buf) {
                    let bytes = buf.get(..n).unwrap_or_default().to_vec();
                    if let Some(m) = self.accept_message(bytes, from, Transport::Udp) {
                        return Some(m);
                    }
                }
            }
            if ready.get(1) == Some(&true) {
                if let Ok((stream, peer)) = self.listener.accept() {
                    self.add_conn(stream, peer);
                }
            }
            for (k, &i) in open.iter().enumerate() {
                if ready.get(k + 2) != Some(&true) {
                    continue;
                }
                let conn = &mut self.conns[i];
                let Some(stream) = conn.stream.as_mut() else {
                    continue;
                };
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => conn.stream = None,
                    Ok(n) => conn.buf.extend_from_slice(buf.get(..n).unwrap_or_default()),
                }
            }
            if Instant::now() >= deadline {
                // What this last round read may have completed a message.
                return self.take_framed();
            }
        }
    }

    /// A whole message from some TCP connection's buffer, if one is there. A connection whose
    /// stream cannot be framed is closed: nothing after the bad bytes can be trusted.
    fn take_framed(&mut self) -> Option<Incoming> {
        let opts = FrameOptions::default();
        for i in 0..self.conns.len() {
            loop {
                let conn = &mut self.conns[i];
                if conn.buf.is_empty() {
                    break;
                }
                match frame(&conn.buf, &opts) {
                    Ok(Status::Partial) => break,
                    Ok(Status::Complete(Framed::Keepalive(n))) => {
                        conn.buf.drain(..n.min(conn.buf.len()));
                        if n >= 4 {
                            // A ping (RFC 5626 §4.4.1) wants a pong.
                            if let Some(s) = conn.stream.as_mut() {
                                let _ = s.write_all(b"\r\n");
                            }
                        }
                    }
                    Ok(Status::Complete(Framed::Message { len, .. })) => {
                        let bytes: Vec<u8> = conn.buf.drain(..len.min(conn.buf.len())).collect();
                        let peer = conn.peer;
                        if let Some(m) = self.accept_message(bytes, peer, Transport::Tcp(i)) {
                            return Some(m);
                        }
                    }
                    Err(_) => {
                        conn.buf.clear();
                        conn.stream = None;
                        break;
                    }
                }
            }
        }
        None
    }

    /// A received message, or `None` when it does not parse or is an absorbed retransmission.
    fn accept_message(
        &mut self,
        bytes: Vec<u8>,
        source: SocketAddr,
        transport: Transport,
    ) -> Option<Incoming> {
        let m = Incoming::new(bytes, source, transport)?;
        if !m.is_request() {
            return Some(m);
        }
        let Some(key) = m.transaction_key() else {
            return Some(m);
        };
        if let Some(served) = self.served.get(&key) {
            if self.absorb {
                self.absorbed += 1;
                if let Some((resp, t, dest)) = served.last.clone() {
                    let _ = self.send_raw(&resp, t, dest);
                }
                return None;
            }
        } else {
            if self.served.len() >= MAX_REMEMBERED {
                self.served.clear();
            }
            self.served.insert(key, Served::default());
        }
        Some(m)
    }

    /// Where a response to `req` goes over UDP: with `rport` (RFC 3581) back to the source;
    /// else to `received` or the Via's sent-by when it is an address (RFC 3261 §18.2.2); else
    /// the source.
    fn reply_addr(req: &Incoming) -> SocketAddr {
        req.with_message(|m| {
            let via = m.top_via()?;
            if via.rport().is_some() {
                return None;
            }
            let ip = via
                .received()
                .and_then(|r| std::str::from_utf8(r).ok()?.parse::<IpAddr>().ok())
                .or_else(|| via.host.ip())?;
            Some(SocketAddr::new(ip, via.port.unwrap_or(5060)))
        })
        .flatten()
        .unwrap_or(req.source)
    }

    /// Answers `req`: Via, Record-Route (for a 1xx/2xx to INVITE), From, To, Call-ID and CSeq
    /// copied, a To tag added for codes over 100 when the request had none (the same tag for
    /// every response to the request), our Contact for a 1xx/2xx to INVITE unless `extra` has
    /// one, then `extra` and the body. Sent where the request came from: the same TCP
    /// connection, or over UDP as RFC 3261 §18.2.2 and RFC 3581 say. Returns the To tag.
    pub fn respond(
        &mut self,
        req: &Incoming,
        code: u16,
        reason: &str,
        extra: &[(&str, &str)],
        body: Option<(&str, &[u8])>,
    ) -> io::Result<Option<String>> {
        let key = req.transaction_key();
        let had_tag = req.to_tag();
        let tag = match (&had_tag, code > 100) {
            (Some(t), _) => Some(t.clone()),
            (None, false) => None,
            (None, true) => {
                let served = key
                    .as_ref()
                    .map(|k| self.served.entry(k.clone()).or_default());
                match served {
                    Some(s) => Some(s.to_tag.get_or_insert_with(|| random_token(10)).clone()),
                    None => Some(random_token(10)),
                }
            }
        };
        let invite = req.method().as_deref() == Some("INVITE");
        let dialog_forming = invite && (101..300).contains(&code);
        let mut s = format!("SIP/2.0 {code} {reason}\r\n");
        req.with_message(|m| {
            for h in m.headers() {
                let name = match h.kind {
                    HeaderKind::Via => "Via",
                    HeaderKind::RecordRoute if dialog_forming => "Record-Route",
                    HeaderKind::From => "From",
                    HeaderKind::To => "To",
                    HeaderKind::CallId => "Call-ID",
                    HeaderKind::CSeq => "CSeq",
                    _ => continue,
                };
                s.push_str(name);
                s.push_str(": ");
                s.push_str(&text(h.value));
                if h.kind == HeaderKind::To && had_tag.is_none() {
                    if let Some(t) = &tag {
                        s.push_str(";tag=");
                        s.push_str(t);
                    }
                }
                s.push_str("\r\n");
            }
        });
        let has_contact = extra
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("Contact") || *n == "m");
        if dialog_forming && !has_contact {
            s.push_str(&self.contact(matches!(req.transport, Transport::Tcp(_))));
        }
        for (name, value) in extra {
            s.push_str(&format!("{name}: {value}\r\n"));
        }
        let (ct, b) = body.unwrap_or(("", b""));
        if !ct.is_empty() {
            s.push_str(&format!("Content-Type: {ct}\r\n"));
        }
        s.push_str(&format!("Content-Length: {}\r\n\r\n", b.len()));
        let mut bytes = s.into_bytes();
        bytes.extend_from_slice(b);
        let dest = match req.transport {
            Transport::Udp => Self::reply_addr(req),
            Transport::Tcp(_) => req.source,
        };
        self.send_raw(&bytes, req.transport, dest)?;
        if let Some(served) = key.and_then(|k| self.served.get_mut(&k)) {
            served.last = Some((bytes, req.transport, dest));
        }
        Ok(tag)
    }

    /// Answers `req` 200 OK, without a body.
    pub fn ok(&mut self, req: &Incoming) -> io::Result<()> {
        self.respond(req, 200, "OK", &[], None).map(|_| ())
    }

    /// Answers an INVITE 200 OK with `sdp` and returns the dialog it creates (the ACK is the
    /// caller's to wait for, with [`SipUa::wait_request`]).
    pub fn answer_invite_with_sdp(&mut self, invite: &Incoming, sdp: &[u8]) -> io::Result<Dialog> {
        let tag = self.respond(invite, 200, "OK", &[], Some(("application/sdp", sdp)))?;
        tag.and_then(|t| Dialog::from_invite(invite, &t))
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "INVITE lacks dialog fields"))
    }

    /// Closes TCP connection `index` (tests of a far end that goes away).
    pub fn close_connection(&mut self, index: usize) {
        if let Some(c) = self.conns.get_mut(index) {
            c.stream = None;
            c.buf.clear();
        }
    }
}

#[cfg(test)]
#[path = "sip_tests.rs"]
mod tests;
