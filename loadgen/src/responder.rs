//! A stand-in for sipshard: a small SIP responder over UDP and TCP.
//!
//! The load generator has to be tested, and tried, without the real server: this answers the
//! way sipshard's repository routes do (200 to OPTIONS; MESSAGE parked with 202 and
//! `X-Repo-Msgid`; a request carrying `X-Pull-CallID` answered 200 and the parked MESSAGE
//! delivered back to its sender as `200 Pulled` with `X-Repo-Pulled: 1`; `408` when a parked
//! MESSAGE expires; INVITE answered 100 + 200 with SDP; BYE 200). It can also stall, holding
//! every reply for a while, to show what the report does with a server that stops. It listens on
//! UDP and on TCP at the same port, is single threaded, reads and answers in batches
//! (recvmmsg/sendmmsg; one write per connection and pass) and does little per request, so
//! it can serve as the far end when what is measured is the load generator itself (the SIPp
//! cross-check); it is not a SIP server.

use crate::mmsg::Batch;
use sipshard_parser::sip::{self, frame, FrameOptions, Framed, Framing, EMPTY_HEADER};
use sipshard_parser::Status;
use std::collections::{HashMap, VecDeque};
use std::io;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How the responder behaves.
#[derive(Debug, Clone, Default)]
pub struct ResponderConfig {
    /// Park MESSAGEs (202 + X-Repo-Msgid) instead of answering 200.
    pub park: bool,
    /// Answer parked MESSAGEs 408 after this long.
    pub expire: Option<Duration>,
    /// Hold every reply due in [after, after + length) (from the first request) until the end of
    /// that window, as a server that stops for `length` would.
    pub stall: Option<(Duration, Duration)>,
}

/// A running responder; stops when dropped.
pub struct Responder {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    received: Arc<AtomicU64>,
    handle: Option<JoinHandle<()>>,
}

impl Responder {
    /// Starts a responder on `listen` (port 0 for an ephemeral one), UDP and TCP.
    pub fn start(listen: SocketAddr, cfg: ResponderConfig) -> io::Result<Responder> {
        let (sock, tcp) = bind_both(listen)?;
        let _ = socket2::SockRef::from(&sock).set_recv_buffer_size(4 << 20);
        let _ = socket2::SockRef::from(&sock).set_send_buffer_size(4 << 20);
        sock.set_nonblocking(true)?;
        tcp.set_nonblocking(true)?;
        let addr = sock.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let received = Arc::new(AtomicU64::new(0));
        let (s, r) = (stop.clone(), received.clone());
        let handle = std::thread::Builder::new()
            .name("responder".into())
            .spawn(move || serve(Io::new(sock, tcp), cfg, &s, &r))?;
        Ok(Responder {
            addr,
            stop,
            received,
            handle: Some(handle),
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Requests received so far.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Stops and joins the thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Binds UDP and TCP on the same address; with port 0, on a port free for both.
fn bind_both(listen: SocketAddr) -> io::Result<(UdpSocket, TcpListener)> {
    let mut tries = 0;
    loop {
        let udp = UdpSocket::bind(listen)?;
        match TcpListener::bind(udp.local_addr()?) {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) if listen.port() != 0 || tries >= 20 => return Err(e),
            Err(_) => tries += 1,
        }
    }
}

/// Where a request came from, and where its replies go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Peer {
    Udp(SocketAddr),
    /// A TCP connection, by number (never reused).
    Tcp(u64),
}

struct Parked {
    msgid: u64,
    request: Vec<u8>,
    from: Peer,
}

/// Most bytes a TCP connection may have waiting to be written before it is dropped.
const MAX_PENDING_WRITE: usize = 64 << 20;

/// Most datagrams read or written per system call.
const BATCH: usize = 64;
/// Largest request read; longer ones are dropped.
const MAX_REQUEST: usize = 16 * 1024;

/// Writes a response to `req` (a parsed request) into `out`, copying Via, From, To (tagged),
/// Call-ID and CSeq; `extra` are whole header lines without their CRLF.
fn response_into(
    out: &mut Vec<u8>,
    req: &sip::Message<'_, '_>,
    code: u16,
    reason: &str,
    extra: &[&[u8]],
    body: Option<(&str, &[u8])>,
) {
    let mut num = itoa::Buffer::new();
    out.extend_from_slice(b"SIP/2.0 ");
    out.extend_from_slice(num.format(code).as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    for h in req.headers() {
        let name = h.kind.canonical_name().unwrap_or("");
        if matches!(name, "Via" | "From" | "To" | "Call-ID" | "CSeq") {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(h.value);
            if name == "To" && req.to_tag().is_none() {
                out.extend_from_slice(b";tag=resp1");
            }
            out.extend_from_slice(b"\r\n");
        }
    }
    for e in extra {
        out.extend_from_slice(e);
        out.extend_from_slice(b"\r\n");
    }
    let (ct, b) = body.unwrap_or(("", b""));
    if !ct.is_empty() {
        out.extend_from_slice(b"Content-Type: ");
        out.extend_from_slice(ct.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"Content-Length: ");
    out.extend_from_slice(num.format(b.len()).as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(b);
}

fn parse_request<'h, 'b>(
    raw: &'b [u8],
    headers: &'h mut [sip::Header<'b>],
) -> Option<sip::Message<'h, 'b>> {
    sip::parse(raw, headers, Framing::Datagram).ok()?.complete()
}

/// A reply to the request in `raw` (None if it does not parse), as the responder builds them.
pub fn reply_to_stored(raw: &[u8], code: u16, reason: &str, extra: &[String]) -> Option<Vec<u8>> {
    let mut headers = [EMPTY_HEADER; 64];
    let m = parse_request(raw, &mut headers)?;
    let extra: Vec<&[u8]> = extra.iter().map(|e| e.as_bytes()).collect();
    let mut out = Vec::with_capacity(raw.len());
    response_into(&mut out, &m, code, reason, &extra, None);
    Some(out)
}

/// Replies waiting to be sent, in one buffer: (end offset, destination) per reply.
#[derive(Default)]
struct Outbox {
    bytes: Vec<u8>,
    items: Vec<(usize, Peer)>,
}

impl Outbox {
    /// Appends a reply to `to`, written by `write` at the end of the buffer.
    fn push(&mut self, to: Peer, write: impl FnOnce(&mut Vec<u8>)) {
        write(&mut self.bytes);
        self.items.push((self.bytes.len(), to));
    }

    fn append(&mut self, other: &mut Outbox) {
        let base = self.bytes.len();
        self.bytes.extend_from_slice(&other.bytes);
        self.items
            .extend(other.items.iter().map(|&(end, to)| (base + end, to)));
        other.bytes.clear();
        other.items.clear();
    }

    /// Sends everything: datagrams in batches (waiting for socket space when the buffer is
    /// full, until `stop`), stream replies appended to their connection's write buffer, which
    /// is then written as far as the kernel takes it.
    fn flush(&mut self, io: &mut Io, stop: &AtomicBool) {
        let mut udp: Vec<(&[u8], Option<SocketAddr>)> = Vec::with_capacity(BATCH);
        let mut start = 0;
        for &(end, to) in &self.items {
            let bytes = &self.bytes[start..end];
            start = end;
            match to {
                Peer::Udp(a) => {
                    udp.push((bytes, Some(a)));
                    if udp.len() == BATCH {
                        send_all(&io.udp, &mut io.mmsg, &udp, stop);
                        udp.clear();
                    }
                }
                Peer::Tcp(id) => {
                    // A reply for a connection that has gone is dropped, as a server would.
                    if let Some(c) = io.conns.get_mut(&id) {
                        c.wbuf.extend_from_slice(bytes);
                    }
                }
            }
        }
        send_all(&io.udp, &mut io.mmsg, &udp, stop);
        self.bytes.clear();
        self.items.clear();
        io.conns.retain(|_, c| c.write());
    }
}

/// Sends `msgs` in batches, waiting for socket space when the buffer is full (until `stop`).
fn send_all(
    sock: &UdpSocket,
    mmsg: &mut Batch,
    mut msgs: &[(&[u8], Option<SocketAddr>)],
    stop: &AtomicBool,
) {
    while !msgs.is_empty() {
        match mmsg.send(sock.as_raw_fd(), msgs) {
            Ok(n) if n > 0 => msgs = &msgs[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // Not deliverable (e.g. the peer is gone): drop that one reply.
            Err(e) if e.kind() != io::ErrorKind::WouldBlock => msgs = &msgs[1..],
            _ => {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                wait_fd(sock.as_raw_fd(), libc::POLLOUT, 5);
            }
        }
    }
}

/// A TCP connection: what was read and not yet framed, what waits to be written.
struct Conn {
    stream: TcpStream,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
}

impl Conn {
    /// Writes what the kernel takes; false when the connection is dead (or hopelessly behind).
    fn write(&mut self) -> bool {
        while !self.wbuf.is_empty() {
            match self.stream.write(&self.wbuf) {
                Ok(0) => return false,
                Ok(n) => {
                    self.wbuf.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        self.wbuf.len() <= MAX_PENDING_WRITE
    }

    /// Reads what is waiting (bounded): (whether anything was read, whether the connection is
    /// still open: false once the peer closed it or it failed).
    fn read(&mut self) -> (bool, bool) {
        let mut got = false;
        for _ in 0..8 {
            let len = self.rbuf.len();
            self.rbuf.resize(len + 64 * 1024, 0);
            let r = self.stream.read(&mut self.rbuf[len..]);
            let n = *r.as_ref().unwrap_or(&0);
            self.rbuf.truncate(len + n);
            match r {
                Ok(0) => return (got, false),
                Ok(_) => got = true,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return (got, false),
            }
        }
        (got, true)
    }
}

/// The responder's sockets.
struct Io {
    udp: UdpSocket,
    tcp: TcpListener,
    conns: HashMap<u64, Conn>,
    next_conn: u64,
    mmsg: Batch,
}

impl Io {
    fn new(udp: UdpSocket, tcp: TcpListener) -> Io {
        Io {
            udp,
            tcp,
            conns: HashMap::new(),
            next_conn: 0,
            mmsg: Batch::new(),
        }
    }

    /// Takes every waiting connection; whether there was one.
    fn accept(&mut self) -> bool {
        let mut any = false;
        while let Ok((stream, _)) = self.tcp.accept() {
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            let _ = stream.set_nodelay(true);
            self.conns.insert(
                self.next_conn,
                Conn {
                    stream,
                    rbuf: Vec::new(),
                    wbuf: Vec::new(),
                },
            );
            self.next_conn += 1;
            any = true;
        }
        any
    }

    /// Waits up to `ms` for anything to read (or, where writes are waiting, to write).
    fn wait(&self, ms: i32) {
        let mut fds = vec![
            pollfd(self.udp.as_raw_fd(), libc::POLLIN),
            pollfd(self.tcp.as_raw_fd(), libc::POLLIN),
        ];
        for c in self.conns.values() {
            let mut ev = libc::POLLIN;
            if !c.wbuf.is_empty() {
                ev |= libc::POLLOUT;
            }
            fds.push(pollfd(c.stream.as_raw_fd(), ev));
        }
        // SAFETY: `fds` is a live array of pollfd of the given length.
        unsafe {
            libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms);
        }
    }
}

fn pollfd(fd: i32, events: libc::c_short) -> libc::pollfd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}

/// Waits up to `ms` for `events` on `fd`.
fn wait_fd(fd: i32, events: libc::c_short, ms: i32) {
    let mut p = pollfd(fd, events);
    // SAFETY: one live pollfd.
    unsafe {
        libc::poll(&mut p, 1, ms);
    }
}

const SDP: &[u8] = b"v=0\r\no=responder 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 20000 RTP/AVP 0\r\n";

struct Server {
    cfg: ResponderConfig,
    parked: HashMap<Vec<u8>, Parked>,
    /// (expiry, Call-ID, msgid), oldest first: every item gets the same lifetime.
    expiries: VecDeque<(Instant, Vec<u8>, u64)>,
    next_msgid: u64,
}

impl Server {
    /// Answers one request.
    fn handle(&mut self, raw: &[u8], from: Peer, now: Instant, out: &mut Outbox) {
        let mut headers = [EMPTY_HEADER; 64];
        let Some(req) = parse_request(raw, &mut headers) else {
            return;
        };
        let Some(method) = req.method() else { return };
        match method {
            b"ACK" => {}
            b"INVITE" => {
                out.push(from, |b| response_into(b, &req, 100, "Trying", &[], None));
                out.push(from, |b| {
                    response_into(b, &req, 200, "OK", &[], Some(("application/sdp", SDP)))
                });
            }
            _ if req.header("X-Pull-CallID").is_some() => {
                out.push(from, |b| response_into(b, &req, 200, "OK", &[], None));
                let cid = req.header("X-Pull-CallID").unwrap_or_default();
                if let Some(p) = self.parked.remove(cid) {
                    let msgid = format!("X-Repo-Msgid: {}", p.msgid);
                    let mut headers = [EMPTY_HEADER; 64];
                    if let Some(stored) = parse_request(&p.request, &mut headers) {
                        let extra: [&[u8]; 2] = [b"X-Repo-Pulled: 1", msgid.as_bytes()];
                        out.push(p.from, |b| {
                            response_into(b, &stored, 200, "Pulled", &extra, None)
                        });
                    }
                }
            }
            b"MESSAGE" if self.cfg.park => {
                let msgid = self.next_msgid;
                self.next_msgid += 1;
                let cid = req.call_id().unwrap_or_default().to_vec();
                if let Some(e) = self.cfg.expire {
                    self.expiries.push_back((now + e, cid.clone(), msgid));
                }
                self.parked.insert(
                    cid,
                    Parked {
                        msgid,
                        request: raw.to_vec(),
                        from,
                    },
                );
                let line = format!("X-Repo-Msgid: {msgid}");
                out.push(from, |b| {
                    response_into(b, &req, 202, "Accepted", &[line.as_bytes()], None)
                });
            }
            _ => out.push(from, |b| response_into(b, &req, 200, "OK", &[], None)),
        }
    }

    /// Answers 408 for every parked MESSAGE whose time is up.
    fn expire(&mut self, now: Instant, out: &mut Outbox) {
        while let Some((at, _, _)) = self.expiries.front() {
            if *at > now {
                break;
            }
            let (_, cid, msgid) = self.expiries.pop_front().expect("front exists");
            // Pulled (or replaced by a later MESSAGE of the same Call-ID) in the meantime?
            if self.parked.get(&cid).is_none_or(|p| p.msgid != msgid) {
                continue;
            }
            let p = self.parked.remove(&cid).expect("checked above");
            let mut headers = [EMPTY_HEADER; 64];
            if let Some(stored) = parse_request(&p.request, &mut headers) {
                out.push(p.from, |b| {
                    response_into(b, &stored, 408, "Request Timeout", &[], None)
                });
            }
        }
    }
}

fn serve(mut io: Io, cfg: ResponderConfig, stop: &AtomicBool, received: &AtomicU64) {
    let mut bufs = vec![vec![0u8; MAX_REQUEST]; BATCH];
    let mut got = Vec::with_capacity(BATCH);
    let mut out = Outbox::default();
    let mut held = Outbox::default();
    let mut first: Option<Instant> = None;
    let stall = cfg.stall;
    let framing = FrameOptions::default();
    let mut server = Server {
        cfg,
        parked: HashMap::new(),
        expiries: VecDeque::new(),
        next_msgid: 1,
    };
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        server.expire(now, &mut out);
        // The stall window, counted from the first request.
        let stalled = match (stall, first) {
            (Some((after, len)), Some(f)) => now >= f + after && now < f + after + len,
            _ => false,
        };
        if !stalled {
            out.append(&mut held);
        }
        let target = if stalled { &mut held } else { &mut out };
        let mut busy = false;
        let mut requests = 0;
        if io
            .mmsg
            .recv(io.udp.as_raw_fd(), &mut bufs, true, &mut got)
            .is_ok()
        {
            busy = true;
            for (i, r) in got.iter().enumerate() {
                let Some(from) = r.from else { continue };
                requests += 1;
                if !r.truncated {
                    server.handle(&bufs[i][..r.len], Peer::Udp(from), now, target);
                }
            }
        }
        busy |= io.accept();
        io.conns.retain(|&id, c| {
            let (read, open) = c.read();
            busy |= read;
            let mut pos = 0;
            while pos < c.rbuf.len() {
                match frame(&c.rbuf[pos..], &framing) {
                    Ok(Status::Complete(Framed::Keepalive(n))) => pos += n,
                    Ok(Status::Complete(Framed::Message { len, .. })) => {
                        requests += 1;
                        server.handle(&c.rbuf[pos..pos + len], Peer::Tcp(id), now, target);
                        pos += len;
                    }
                    Ok(Status::Partial) => break,
                    // Unframeable: a server closes such a connection.
                    Err(_) => return false,
                }
            }
            c.rbuf.drain(..pos);
            open
        });
        if requests > 0 {
            first.get_or_insert(now);
            received.fetch_add(requests, Ordering::Relaxed);
        }
        out.flush(&mut io, stop);
        if !busy {
            io.wait(5);
        }
    }
}
