//! An MSRP endpoint for tests (RFC 4975): one TCP connection, on which it sends messages as
//! SEND chunks and receives them, answering and reassembling as a client would.
//!
//! Two ways to read. [`MsrpPeer::recv_frame`] hands over the next frame as it came, and does
//! nothing else: the test answers (or not) with [`MsrpPeer::respond`]. [`MsrpPeer::recv_message`],
//! [`MsrpPeer::wait_response`], [`MsrpPeer::wait_report`] and [`MsrpPeer::wait_closed`] act as an
//! endpoint does with every frame they read: a SEND is answered (200, unless its Failure-Report
//! says not to, or 481 when its To-Path is not ours) and its chunk kept for reassembly by
//! Message-ID and Byte-Range, so interleaved messages come out whole; a REPORT is recorded in
//! [`MsrpPeer::reports`] and never answered; a response is recorded against its transaction;
//! another method gets 501.

use super::{poll_readable, random_token, remaining};
use sipshard_parser::msrp::{
    ByteRange, Flag, Framer, Limits, ReportRequest, StartLine, Uris, EMPTY_HEADER,
};
use sipshard_parser::Status;
use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// How long a write may block before it fails.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Headers a frame may have; one with more is dropped.
const MAX_HEADERS: usize = 48;
/// Frames longer than this end the connection (no end-line found: the stream is lost).
const LIMITS: Limits = Limits {
    max_frame: 8 << 20,
    max_headers_bytes: 64 << 10,
};
/// The largest message reassembled; a chunk past it is answered 413 and its message dropped.
const MAX_MESSAGE: u64 = 16 << 20;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The first line of a frame, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameKind {
    /// A request, with its method.
    Request(String),
    /// A response, with its code and comment.
    Response {
        /// The status code.
        code: u16,
        /// The text after the code.
        comment: Option<String>,
    },
}

/// A frame received, owned: what [`MsrpPeer::recv_frame`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedFrame {
    /// The transaction id.
    pub transaction_id: String,
    /// Request or response.
    pub kind: FrameKind,
    /// The headers in order, name and value.
    pub headers: Vec<(String, String)>,
    /// The body, when the frame has one.
    pub body: Option<Vec<u8>>,
    /// The continuation flag of the end-line.
    pub flag: Flag,
    /// The frame as received, end-line included.
    pub raw: Vec<u8>,
}

impl OwnedFrame {
    /// Parses one whole frame strictly; `None` when it is not a valid frame.
    pub fn parse(raw: Vec<u8>) -> Option<OwnedFrame> {
        let mut headers = [EMPTY_HEADER; MAX_HEADERS];
        let f = match Framer::new(LIMITS).parse(&raw, &mut headers) {
            Ok(Status::Complete(f)) => f,
            _ => return None,
        };
        let kind = match f.start {
            StartLine::Request { method } => FrameKind::Request(text(method.as_bytes())),
            StartLine::Response { code, comment } => FrameKind::Response {
                code,
                comment: comment.map(text),
            },
        };
        let frame = OwnedFrame {
            transaction_id: text(f.transaction_id),
            kind,
            headers: f
                .headers
                .iter()
                .map(|h| (text(h.name), text(h.value)))
                .collect(),
            body: f.body.map(<[u8]>::to_vec),
            flag: f.flag,
            raw: Vec::new(),
        };
        Some(OwnedFrame { raw, ..frame })
    }

    /// The method of a request.
    pub fn method(&self) -> Option<&str> {
        match &self.kind {
            FrameKind::Request(m) => Some(m),
            FrameKind::Response { .. } => None,
        }
    }

    /// The code of a response.
    pub fn code(&self) -> Option<u16> {
        match self.kind {
            FrameKind::Response { code, .. } => Some(code),
            FrameKind::Request(_) => None,
        }
    }

    /// The value of the first header called `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// To-Path.
    pub fn to_path(&self) -> Option<&str> {
        self.header("To-Path")
    }

    /// From-Path.
    pub fn from_path(&self) -> Option<&str> {
        self.header("From-Path")
    }

    /// Message-ID.
    pub fn message_id(&self) -> Option<&str> {
        self.header("Message-ID")
    }

    /// Content-Type.
    pub fn content_type(&self) -> Option<&str> {
        self.header("Content-Type")
    }

    /// Byte-Range, decoded (`None` when absent; the frame parsed, so it is well-formed).
    pub fn byte_range(&self) -> Option<ByteRange> {
        self.reparse(|f| f.byte_range().and_then(Result::ok))
    }

    /// Failure-Report, decoded.
    pub fn failure_report(&self) -> Option<ReportRequest> {
        self.reparse(|f| f.failure_report().and_then(Result::ok))
    }

    /// Success-Report, decoded.
    pub fn success_report(&self) -> Option<ReportRequest> {
        self.reparse(|f| f.success_report().and_then(Result::ok))
    }

    /// A REPORT's Status: namespace and code.
    pub fn status(&self) -> Option<(u16, u16)> {
        self.reparse(|f| {
            f.status()
                .and_then(Result::ok)
                .map(|s| (s.namespace, s.code))
        })
    }

    /// The body as text (invalid UTF-8 replaced; empty when there is none).
    pub fn body_text(&self) -> String {
        self.body.as_deref().map(text).unwrap_or_default()
    }

    fn reparse<R>(
        &self,
        f: impl FnOnce(&sipshard_parser::msrp::Frame<'_, '_>) -> Option<R>,
    ) -> Option<R> {
        let mut headers = [EMPTY_HEADER; MAX_HEADERS];
        match Framer::new(LIMITS).parse(&self.raw, &mut headers) {
            Ok(Status::Complete(frame)) => f(&frame),
            _ => None,
        }
    }
}

/// A whole message received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// Its Message-ID.
    pub message_id: String,
    /// Its Content-Type.
    pub content_type: String,
    /// Its bytes, reassembled.
    pub body: Vec<u8>,
    /// The From-Path of its last chunk.
    pub from_path: String,
    /// The To-Path of its last chunk.
    pub to_path: String,
    /// How many chunks (SENDs with a body) carried it.
    pub chunks: usize,
    /// Whether its sender asked for a success REPORT.
    pub success_report: bool,
}

/// A REPORT received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MsrpReport {
    /// The reported message.
    pub message_id: String,
    /// The Status namespace (0 for MSRP codes).
    pub namespace: u16,
    /// The Status code.
    pub code: u16,
    /// The Byte-Range it covers, as sent.
    pub byte_range: Option<String>,
    /// The whole frame.
    pub frame: OwnedFrame,
}

/// One chunk of a SEND to write; see [`write_chunk`].
#[derive(Debug, Clone, Copy)]
pub struct Chunk<'a> {
    /// The transaction id.
    pub transaction_id: &'a str,
    /// To-Path.
    pub to_path: &'a str,
    /// From-Path.
    pub from_path: &'a str,
    /// The message it belongs to.
    pub message_id: &'a str,
    /// 1-based offset of `body` in the message.
    pub start: u64,
    /// The whole message's size.
    pub total: u64,
    /// The message's type; left out with an empty `body`.
    pub content_type: &'a str,
    /// This chunk's bytes.
    pub body: &'a [u8],
    /// `More` on all but the last chunk.
    pub flag: Flag,
    /// Sends `Success-Report: yes`.
    pub success_report: bool,
    /// The `Failure-Report` value (`yes`, `no`, `partial`); left out when empty.
    pub failure_report: &'a str,
}

/// A SEND frame: `Byte-Range: start-end/total` with the end given, a body (with its
/// Content-Type) only when `body` is not empty.
pub fn write_chunk(c: &Chunk<'_>) -> Vec<u8> {
    let end = (c.start + c.body.len() as u64).saturating_sub(1);
    let mut s = format!(
        "MSRP {tid} SEND\r\nTo-Path: {to}\r\nFrom-Path: {from}\r\nMessage-ID: {mid}\r\n\
         Byte-Range: {start}-{end}/{total}\r\n",
        tid = c.transaction_id,
        to = c.to_path,
        from = c.from_path,
        mid = c.message_id,
        start = c.start,
        total = c.total,
    );
    if c.success_report {
        s.push_str("Success-Report: yes\r\n");
    }
    if !c.failure_report.is_empty() {
        s.push_str(&format!("Failure-Report: {}\r\n", c.failure_report));
    }
    let mut out = s.into_bytes();
    if !c.body.is_empty() {
        out.extend_from_slice(format!("Content-Type: {}\r\n\r\n", c.content_type).as_bytes());
        out.extend_from_slice(c.body);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("-------{}", c.transaction_id).as_bytes());
    out.push(c.flag.as_byte());
    out.extend_from_slice(b"\r\n");
    out
}

/// Whether `body` holds the end-line of transaction `tid`, which would end the frame early
/// (RFC 4975 §7.1: a sender picks another transaction id then).
fn holds_end_line(body: &[u8], tid: &str) -> bool {
    let needle = format!("\r\n-------{tid}");
    body.starts_with(&needle.as_bytes()[2..])
        || body.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// The address an MSRP URI (`msrp://host:port/session;tcp`) names, when the host is an IP.
pub fn path_addr(uri: &str) -> Option<SocketAddr> {
    let authority = uri.split("://").nth(1)?.split('/').next()?;
    authority.parse().ok()
}

/// The session id of an MSRP URI: the path part, without `;tcp`.
fn session_of(uri: &str) -> Option<&str> {
    let rest = uri.split("://").nth(1)?;
    let (_, path) = rest.split_once('/')?;
    Some(path.split(';').next().unwrap_or(path))
}

/// A message being reassembled.
struct Partial {
    message_id: String,
    content_type: Option<String>,
    /// (1-based start, bytes) of every chunk with a body.
    chunks: Vec<(u64, Vec<u8>)>,
    stored: u64,
    /// Known from a Byte-Range total, or from the last chunk.
    total: Option<u64>,
    last_seen: bool,
    success_report: bool,
    from_path: String,
    to_path: String,
}

impl Partial {
    /// The whole message, once every byte from 1 to the total is here.
    fn assemble(&self) -> Option<Vec<u8>> {
        let total = self.total?;
        if !self.last_seen {
            return None;
        }
        let mut order: Vec<&(u64, Vec<u8>)> = self.chunks.iter().collect();
        order.sort_by_key(|(start, _)| *start);
        // Coverage first, so that an incomplete message costs no copy.
        let mut next = 1u64;
        for (start, bytes) in &order {
            if *start > next {
                break;
            }
            next = next.max(start + bytes.len() as u64);
        }
        if next <= total {
            return None;
        }
        let mut out = vec![0u8; usize::try_from(total).ok()?];
        for (start, bytes) in order {
            let from = usize::try_from(start.saturating_sub(1)).ok()?;
            // Bytes past the total the sender declared are no part of the message.
            let n = bytes.len().min(out.len().saturating_sub(from));
            if n > 0 {
                out.get_mut(from..from + n)?
                    .copy_from_slice(bytes.get(..n)?);
            }
        }
        Some(out)
    }
}

/// An MSRP endpoint on 127.0.0.1. See the module documentation.
pub struct MsrpPeer {
    listener: TcpListener,
    addr: SocketAddr,
    session_id: String,
    conn: Option<TcpStream>,
    buf: Vec<u8>,
    framer: Framer,
    partial: Vec<Partial>,
    messages: VecDeque<ReceivedMessage>,
    reports: Vec<MsrpReport>,
    /// Codes of responses received, by transaction id.
    responses: HashMap<String, u16>,
    /// Transaction ids of the chunks of each message sent, by Message-ID.
    sent: HashMap<String, Vec<String>>,
    aborted: Vec<String>,
    reply_code: u16,
    dropped_frames: u64,
}

impl MsrpPeer {
    /// A peer listening on a fresh port of 127.0.0.1, with a fresh session id (100 bits).
    pub fn listen() -> io::Result<MsrpPeer> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        Ok(MsrpPeer {
            addr: listener.local_addr()?,
            listener,
            session_id: random_token(20),
            conn: None,
            buf: Vec::new(),
            framer: Framer::new(LIMITS),
            partial: Vec::new(),
            messages: VecDeque::new(),
            reports: Vec::new(),
            responses: HashMap::new(),
            sent: HashMap::new(),
            aborted: Vec::new(),
            reply_code: 200,
            dropped_frames: 0,
        })
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The session id.
    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// Our MSRP URI: `msrp://127.0.0.1:PORT/SESSIONID;tcp` (the `a=path` to offer).
    pub fn path(&self) -> String {
        format!("msrp://{}/{};tcp", self.addr, self.session_id)
    }

    /// Connects to `addr` (the active side), replacing any connection.
    pub fn connect(&mut self, addr: SocketAddr) -> io::Result<()> {
        let stream = TcpStream::connect_timeout(&addr, WRITE_TIMEOUT)?;
        self.use_stream(stream)
    }

    /// Connects to the address of an MSRP URI (the far end's `a=path`, its last URI).
    pub fn connect_path(&mut self, path: &str) -> io::Result<()> {
        let last = path.split(' ').next_back().unwrap_or(path);
        let addr = path_addr(last).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "no IP address in the path")
        })?;
        self.connect(addr)
    }

    /// Waits up to `timeout` for the far end to connect (the passive side).
    pub fn accept(&mut self, timeout: Duration) -> io::Result<()> {
        let ready = poll_readable(&[self.listener.as_raw_fd()], timeout);
        if ready.first() != Some(&true) {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no connection came",
            ));
        }
        let (stream, _) = self.listener.accept()?;
        self.use_stream(stream)
    }

    fn use_stream(&mut self, stream: TcpStream) -> io::Result<()> {
        stream.set_nodelay(true)?;
        stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
        self.conn = Some(stream);
        self.buf.clear();
        self.framer.reset();
        Ok(())
    }

    /// Whether the connection is open (as far as the peer knows: a close by the far end is
    /// seen when a read meets it).
    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    /// Closes the connection (FIN).
    pub fn close(&mut self) {
        if let Some(c) = self.conn.take() {
            let _ = c.shutdown(Shutdown::Both);
        }
    }

    /// Aborts the connection (RST, as a crashed client would).
    pub fn reset(&mut self) {
        if let Some(c) = self.conn.take() {
            let _ = socket2::SockRef::from(&c).set_linger(Some(Duration::ZERO));
        }
    }

    /// The code SENDs are answered with from now on (default 200). Any other code refuses the
    /// chunk: it is not kept for reassembly.
    pub fn set_reply_code(&mut self, code: u16) {
        self.reply_code = code;
    }

    /// REPORTs received so far.
    pub fn reports(&self) -> &[MsrpReport] {
        &self.reports
    }

    /// Message-IDs of messages their sender aborted (`#`).
    pub fn aborted(&self) -> &[String] {
        &self.aborted
    }

    /// Frames dropped because they did not parse (their framing was sound).
    pub fn dropped_frames(&self) -> u64 {
        self.dropped_frames
    }

    /// Writes raw bytes: crafted frames, several at once, half a frame.
    pub fn send_bytes(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self.conn.as_mut() {
            Some(c) => c.write_all(bytes),
            None => Err(io::Error::new(io::ErrorKind::NotConnected, "not connected")),
        }
    }

    /// Sends a message to `to_path` as SEND chunks of at most `chunk_size` bytes (one empty
    /// SEND, `Byte-Range: 1-0/0`, for an empty body) and returns its Message-ID, which
    /// [`MsrpPeer::wait_response`] takes. `failure_report` is `yes`, `no`, `partial`, or
    /// empty to leave the header out.
    pub fn send_message(
        &mut self,
        to_path: &str,
        content_type: &str,
        body: &[u8],
        chunk_size: usize,
        success_report: bool,
        failure_report: &str,
    ) -> io::Result<String> {
        let message_id = random_token(16);
        let from_path = self.path();
        let size = chunk_size.max(1);
        let mut tids = Vec::new();
        let mut off = 0;
        loop {
            let len = size.min(body.len() - off);
            let piece = body.get(off..off + len).unwrap_or_default();
            let mut tid = random_token(12);
            while holds_end_line(piece, &tid) {
                tid = random_token(12);
            }
            let last = off + len >= body.len();
            let bytes = write_chunk(&Chunk {
                transaction_id: &tid,
                to_path,
                from_path: &from_path,
                message_id: &message_id,
                start: off as u64 + 1,
                total: body.len() as u64,
                content_type,
                body: piece,
                flag: if last { Flag::Complete } else { Flag::More },
                success_report,
                failure_report,
            });
            self.send_bytes(&bytes)?;
            tids.push(tid);
            off += len;
            if last {
                break;
            }
        }
        self.sent.insert(message_id.clone(), tids);
        Ok(message_id)
    }

    /// Answers a request frame (RFC 4975 §7.2): To-Path = the first URI of its From-Path,
    /// From-Path = ours.
    pub fn respond(&mut self, frame: &OwnedFrame, code: u16, comment: &str) -> io::Result<()> {
        let to = frame
            .from_path()
            .and_then(|p| Uris::new(p.as_bytes()).next().map(text))
            .unwrap_or_default();
        let mut s = format!("MSRP {} {code}", frame.transaction_id);
        if !comment.is_empty() {
            s.push(' ');
            s.push_str(comment);
        }
        s.push_str(&format!(
            "\r\nTo-Path: {to}\r\nFrom-Path: {}\r\n-------{}$\r\n",
            self.path(),
            frame.transaction_id
        ));
        self.send_bytes(s.as_bytes())
    }

    /// The next frame as received, without acting on it, or `None` when `timeout` passes or
    /// the connection is closed.
    pub fn recv_frame(&mut self, timeout: Duration) -> Option<OwnedFrame> {
        self.read_frame(Instant::now() + timeout)
    }

    fn read_frame(&mut self, deadline: Instant) -> Option<OwnedFrame> {
        let mut tmp = vec![0u8; 64 << 10];
        loop {
            while !self.buf.is_empty() {
                match self.framer.frame_len(&self.buf) {
                    Ok(Status::Complete(len)) => {
                        let raw: Vec<u8> = self.buf.drain(..len.min(self.buf.len())).collect();
                        self.framer.reset();
                        match OwnedFrame::parse(raw) {
                            Some(f) => return Some(f),
                            None => self.dropped_frames += 1,
                        }
                    }
                    Ok(Status::Partial) => break,
                    Err(_) => {
                        // A bad start line, or no end-line within the limits: nothing after
                        // this can be framed.
                        self.close();
                        self.buf.clear();
                        return None;
                    }
                }
            }
            let conn = self.conn.as_mut()?;
            let left = remaining(deadline);
            if left.is_zero() {
                return None;
            }
            let _ = conn.set_read_timeout(Some(left.max(Duration::from_millis(1))));
            match conn.read(&mut tmp) {
                Ok(0) => {
                    self.conn = None;
                    return None;
                }
                Ok(n) => self.buf.extend_from_slice(tmp.get(..n).unwrap_or_default()),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) => {}
                Err(_) => {
                    self.conn = None;
                    return None;
                }
            }
        }
    }

    /// Reads one frame and acts on it; `false` when none came (timeout or closed).
    fn pump(&mut self, deadline: Instant) -> bool {
        match self.read_frame(deadline) {
            Some(f) => {
                self.handle(f);
                true
            }
            None => false,
        }
    }

    fn handle(&mut self, f: OwnedFrame) {
        match &f.kind {
            FrameKind::Response { code, .. } => {
                self.responses.insert(f.transaction_id.clone(), *code);
            }
            FrameKind::Request(m) if m == "SEND" => self.on_send(f),
            FrameKind::Request(m) if m == "REPORT" => {
                let (namespace, code) = f.status().unwrap_or((0, 0));
                self.reports.push(MsrpReport {
                    message_id: f.message_id().unwrap_or_default().to_owned(),
                    namespace,
                    code,
                    byte_range: f.header("Byte-Range").map(str::to_owned),
                    frame: f,
                });
            }
            FrameKind::Request(_) => self.answer(&f, 501, "Not Implemented"),
        }
    }

    /// Answers `f` with `code` if its Failure-Report asks for that (RFC 4975 §7.1.2).
    fn answer(&mut self, f: &OwnedFrame, code: u16, comment: &str) {
        let wanted = match f.failure_report() {
            Some(ReportRequest::No) => false,
            Some(ReportRequest::Partial) => code != 200,
            _ => true,
        };
        if wanted {
            let _ = self.respond(f, code, comment);
        }
    }

    fn on_send(&mut self, f: OwnedFrame) {
        let to_last = f
            .to_path()
            .and_then(|p| Uris::new(p.as_bytes()).last().map(text))
            .unwrap_or_default();
        if session_of(&to_last) != Some(self.session_id.as_str()) {
            return self.answer(&f, 481, "Session Does Not Exist");
        }
        let Some(message_id) = f.message_id().map(str::to_owned) else {
            return self.answer(&f, 400, "Bad Request");
        };
        let body = f.body.clone().unwrap_or_default();
        let len = body.len() as u64;
        // Without Byte-Range the chunk is the whole message (RFC 4975 §7.1.1).
        let range = f.byte_range().unwrap_or(ByteRange {
            start: 1,
            end: Some(len),
            total: (f.flag == Flag::Complete).then_some(len),
        });
        let pos = self.partial.iter().position(|p| p.message_id == message_id);
        let stored = pos.map_or(0, |i| self.partial[i].stored);
        let too_large = range.start.saturating_add(len) > MAX_MESSAGE + 1
            || range.total.is_some_and(|t| t > MAX_MESSAGE)
            || stored + len > 2 * MAX_MESSAGE;
        if too_large {
            if let Some(i) = pos {
                self.partial.remove(i);
            }
            return self.answer(&f, 413, "Message Too Large");
        }
        if self.reply_code != 200 {
            let code = self.reply_code;
            return self.answer(&f, code, "Refused");
        }
        self.answer(&f, 200, "OK");
        if f.body.is_none() && pos.is_none() && f.flag == Flag::Complete {
            // An empty SEND binds or keeps the connection alive; it is no message.
            return;
        }
        let i = pos.unwrap_or_else(|| {
            self.partial.push(Partial {
                message_id: message_id.clone(),
                content_type: None,
                chunks: Vec::new(),
                stored: 0,
                total: None,
                last_seen: false,
                success_report: false,
                from_path: String::new(),
                to_path: String::new(),
            });
            self.partial.len() - 1
        });
        if f.flag == Flag::Abort {
            self.partial.remove(i);
            self.aborted.push(message_id);
            return;
        }
        let p = &mut self.partial[i];
        if p.content_type.is_none() {
            p.content_type = f.content_type().map(str::to_owned);
        }
        if range.total.is_some() {
            p.total = range.total;
        }
        if f.flag == Flag::Complete {
            p.last_seen = true;
            p.total = p.total.or(Some((range.start + len).saturating_sub(1)));
        }
        p.success_report = f.success_report() == Some(ReportRequest::Yes);
        p.from_path = f.from_path().unwrap_or_default().to_owned();
        p.to_path = f.to_path().unwrap_or_default().to_owned();
        if !body.is_empty() {
            p.stored += len;
            p.chunks.push((range.start, body));
        }
        if let Some(body) = p.assemble() {
            let p = self.partial.remove(i);
            self.messages.push_back(ReceivedMessage {
                message_id: p.message_id,
                content_type: p.content_type.unwrap_or_default(),
                body,
                from_path: p.from_path,
                to_path: p.to_path,
                chunks: p.chunks.len(),
                success_report: p.success_report,
            });
        }
    }

    /// The next whole message, acting on every frame read meanwhile (see the module
    /// documentation), or `None` when `timeout` passes or the connection is closed.
    pub fn recv_message(&mut self, timeout: Duration) -> Option<ReceivedMessage> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(m) = self.messages.pop_front() {
                return Some(m);
            }
            if !self.pump(deadline) {
                return None;
            }
        }
    }

    fn outcome(&self, id: &str) -> Option<u16> {
        if let Some(&code) = self.responses.get(id) {
            return Some(code);
        }
        let codes: Vec<Option<u16>> = self
            .sent
            .get(id)?
            .iter()
            .map(|t| self.responses.get(t).copied())
            .collect();
        if let Some(bad) = codes.iter().flatten().find(|&&c| c != 200) {
            return Some(*bad);
        }
        codes.iter().all(Option::is_some).then_some(200)
    }

    /// The response to a transaction we sent, by transaction id, or the outcome of a message,
    /// by Message-ID (200 once every chunk got 200, else the first error code); `None` when
    /// `timeout` passes first. Frames read meanwhile are acted on.
    pub fn wait_response(&mut self, id: &str, timeout: Duration) -> Option<u16> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(code) = self.outcome(id) {
                return Some(code);
            }
            if !self.pump(deadline) {
                return None;
            }
        }
    }

    /// The first REPORT about `message_id`, within `timeout`. Frames read meanwhile are acted
    /// on.
    pub fn wait_report(&mut self, message_id: &str, timeout: Duration) -> Option<MsrpReport> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(r) = self.reports.iter().find(|r| r.message_id == message_id) {
                return Some(r.clone());
            }
            if !self.pump(deadline) {
                return None;
            }
        }
    }

    /// Acts on frames until the far end closes the connection (`true`) or `timeout` passes.
    pub fn wait_closed(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.conn.is_some() {
            if !self.pump(deadline) && remaining(deadline).is_zero() {
                break;
            }
        }
        self.conn.is_none()
    }
}

#[cfg(test)]
#[path = "msrp_tests.rs"]
mod tests;
