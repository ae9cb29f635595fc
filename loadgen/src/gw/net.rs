//! One gateway load thread's sockets: a UDP socket for SIP (both of our SIP user agents use it),
//! an MSRP listener when the gateway connects to us, and the MSRP connections, all
//! non-blocking and watched by one epoll set.
//!
//! Why not the engine's transports: they are connected to the target and speak one protocol.
//! Here requests come *from* the gateway too (INVITEs, MESSAGEs, BYEs), so the UDP socket is
//! not connected and every datagram carries its address; and there are hundreds of TCP
//! connections whose readiness must be learned without building a `pollfd` array each pass,
//! hence epoll. Sends are queued and written in batches (`sendmmsg` for UDP, one `write` per
//! connection and pass for TCP), as the engine does.

use crate::mmsg::{Batch, Received};
use crate::stats::Stats;
use crate::transport::io_error_kind;
use sipshard_parser::msrp::{Framer, Limits};
use sipshard_parser::Status;
use socket2::{Domain, Protocol, Socket, Type};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// Largest datagram read.
const RECV_BUF: usize = 16 * 1024;
/// Datagrams per `recvmmsg`/`sendmmsg`.
const BATCH: usize = 64;
/// `recvmmsg` calls per pass at most, so a flood of datagrams cannot starve the connections.
const RECV_ROUNDS: usize = 8;
/// Bytes read from one connection per pass at most, for the same reason.
const READ_PER_PASS: usize = 256 * 1024;
/// Frames larger than this end the connection (ours are small; a gateway chunk is 2 KiB).
const LIMITS: Limits = Limits {
    max_frame: 1 << 20,
    max_headers_bytes: 64 << 10,
};
/// epoll tokens: the UDP socket, the listener, then connection `i` as `CONN + i`.
const UDP: u64 = 0;
const LISTENER: u64 = 1;
const CONN: u64 = 2;

/// One MSRP connection.
pub struct Conn {
    stream: TcpStream,
    /// Bytes read; those before `rpos` were framed already.
    inbuf: Vec<u8>,
    rpos: usize,
    framer: Framer,
    /// Bytes waiting to be written.
    out: Vec<u8>,
    /// Waiting for EPOLLOUT (the socket buffer was full).
    want_out: bool,
    /// Closed (by either side): the index stays taken, nothing is read or written.
    pub closed: bool,
}

/// What one pass found.
#[derive(Debug, Default)]
pub struct Ready {
    /// The UDP socket has datagrams.
    pub udp: bool,
    /// The listener has connections to accept.
    pub listener: bool,
    /// Connections with something to read (or a hang-up).
    pub conns: Vec<usize>,
}

/// A connection's next frame, as [`Net::next_frame`] finds it.
pub enum Framed {
    /// The bytes of one whole frame.
    Frame(Vec<u8>),
    /// Nothing whole yet.
    None,
    /// The stream cannot be framed: the connection was closed.
    Broken,
}

/// The sockets of one load thread. See the module documentation.
pub struct Net {
    epoll: OwnedFd,
    udp: UdpSocket,
    /// Our UDP address (the `ip:port` of Via, Contact and the users' URIs).
    pub udp_local: SocketAddr,
    listener: Option<TcpListener>,
    /// The listener's address, when there is one.
    pub listen_addr: Option<SocketAddr>,
    /// Connections, by index.
    pub conns: Vec<Conn>,
    /// Datagrams to send, with their destinations.
    udp_out: Vec<(Vec<u8>, SocketAddr)>,
    /// Connections with bytes in `out`.
    dirty: Vec<usize>,
    batch: Batch,
    rbufs: Vec<Vec<u8>>,
    /// One read's bytes from a connection, before they join its buffer: reading into the
    /// buffer itself would mean zeroing 64 KiB of it for every read, most of which find little.
    tmp: Vec<u8>,
    received: Vec<Received>,
    events: Vec<libc::epoll_event>,
    sockbuf: usize,
    /// Counters and histograms of the current interval.
    pub stats: Stats,
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

impl Net {
    /// A UDP socket on 127.0.0.1 (and an MSRP listener with `listen`), SO_SNDBUF/SO_RCVBUF
    /// `sockbuf` (capped by the kernel).
    pub fn open(listen: bool, sockbuf: usize, stats: Stats) -> io::Result<Net> {
        // SAFETY: epoll_create1 returns a new descriptor (or -1), which we then own.
        let epoll = unsafe { OwnedFd::from_raw_fd(cvt(libc::epoll_create1(libc::EPOLL_CLOEXEC))?) };
        let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
        let _ = s.set_recv_buffer_size(sockbuf);
        let _ = s.set_send_buffer_size(sockbuf);
        s.set_nonblocking(true)?;
        s.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())?;
        let udp: UdpSocket = s.into();
        let udp_local = udp.local_addr()?;
        let mut net = Net {
            epoll,
            udp_local,
            udp,
            listener: None,
            listen_addr: None,
            conns: Vec::new(),
            udp_out: Vec::new(),
            dirty: Vec::new(),
            batch: Batch::new(),
            rbufs: vec![vec![0u8; RECV_BUF]; BATCH],
            tmp: vec![0u8; 64 * 1024],
            received: Vec::with_capacity(BATCH),
            events: Vec::with_capacity(1024),
            sockbuf,
            stats,
        };
        net.ctl(
            libc::EPOLL_CTL_ADD,
            net.udp.as_raw_fd(),
            libc::EPOLLIN as u32,
            UDP,
        )?;
        if listen {
            let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
            l.set_nonblocking(true)?;
            net.ctl(
                libc::EPOLL_CTL_ADD,
                l.as_raw_fd(),
                libc::EPOLLIN as u32,
                LISTENER,
            )?;
            net.listen_addr = Some(l.local_addr()?);
            net.listener = Some(l);
        }
        Ok(net)
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: both descriptors are open and owned by this Net; `ev` is a live event.
        cvt(unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), op, fd, &mut ev) }).map(|_| ())
    }

    fn add_conn(&mut self, stream: TcpStream) -> io::Result<usize> {
        stream.set_nonblocking(true)?;
        stream.set_nodelay(true)?;
        let s = socket2::SockRef::from(&stream);
        let _ = s.set_recv_buffer_size(self.sockbuf.min(1 << 20));
        let _ = s.set_send_buffer_size(self.sockbuf.min(1 << 20));
        let i = self.conns.len();
        self.ctl(
            libc::EPOLL_CTL_ADD,
            stream.as_raw_fd(),
            (libc::EPOLLIN | libc::EPOLLRDHUP) as u32,
            CONN + i as u64,
        )?;
        self.conns.push(Conn {
            stream,
            inbuf: Vec::new(),
            rpos: 0,
            framer: Framer::new(LIMITS),
            out: Vec::new(),
            want_out: false,
            closed: false,
        });
        Ok(i)
    }

    /// Connects to `addr` (loopback: done within `timeout` or never) and returns the index.
    pub fn connect(&mut self, addr: SocketAddr, timeout: Duration) -> io::Result<usize> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        self.add_conn(stream)
    }

    /// Accepts every waiting connection; returns their indexes.
    pub fn accept(&mut self) -> Vec<usize> {
        let mut got = Vec::new();
        loop {
            let Some(l) = &self.listener else {
                return got;
            };
            match l.accept() {
                Ok((s, _)) => match self.add_conn(s) {
                    Ok(i) => got.push(i),
                    Err(e) => self.stats.error(io_error_kind("accept", &e)),
                },
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return got,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    // EMFILE and the like: counted; the connection waits in the backlog.
                    self.stats.error("accept: failed (descriptor limit?)");
                    return got;
                }
            }
        }
    }

    /// Queues a datagram.
    pub fn send_udp(&mut self, bytes: Vec<u8>, to: SocketAddr) {
        self.udp_out.push((bytes, to));
    }

    /// Queues bytes on connection `i` (dropped, and counted, when it is closed).
    pub fn write(&mut self, i: usize, bytes: &[u8]) {
        let Some(c) = self.conns.get_mut(i) else {
            return;
        };
        if c.closed {
            self.stats.error("send: MSRP connection closed");
            return;
        }
        if c.out.is_empty() {
            self.dirty.push(i);
        }
        c.out.extend_from_slice(bytes);
    }

    /// Whether anything waits to be sent.
    pub fn has_output(&self) -> bool {
        !self.udp_out.is_empty() || !self.dirty.is_empty()
    }

    /// Sends what is queued, as far as the sockets take it.
    pub fn flush(&mut self) {
        let mut sent = 0;
        while sent < self.udp_out.len() {
            let end = (sent + BATCH).min(self.udp_out.len());
            let msgs: Vec<(&[u8], Option<SocketAddr>)> = self.udp_out[sent..end]
                .iter()
                .map(|(b, a)| (&b[..], Some(*a)))
                .collect();
            match self.batch.send(self.udp.as_raw_fd(), &msgs) {
                Ok(0) => break,
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.stats.error(io_error_kind("send", &e));
                    sent += 1;
                }
            }
        }
        self.udp_out.drain(..sent);
        let dirty = std::mem::take(&mut self.dirty);
        for i in dirty {
            self.flush_conn(i);
        }
    }

    fn flush_conn(&mut self, i: usize) {
        let Some(c) = self.conns.get_mut(i) else {
            return;
        };
        let mut done = 0;
        let mut failed = false;
        while done < c.out.len() && !c.closed {
            match c.stream.write(&c.out[done..]) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.stats.error(io_error_kind("send", &e));
                    failed = true;
                    break;
                }
            }
        }
        c.out.drain(..done);
        if failed {
            self.close(i);
            return;
        }
        // What is left waits for EPOLLOUT (`wait` puts the connection back in `dirty`), so a
        // full socket is not written to again on every pass.
        let c = &mut self.conns[i];
        let want = !c.out.is_empty();
        if want != c.want_out {
            c.want_out = want;
            let mut ev = libc::EPOLLIN | libc::EPOLLRDHUP;
            if want {
                ev |= libc::EPOLLOUT;
            }
            let fd = c.stream.as_raw_fd();
            let _ = self.ctl(libc::EPOLL_CTL_MOD, fd, ev as u32, CONN + i as u64);
        }
    }

    /// Closes connection `i`: nothing more is read or written on it, but the frames already
    /// read can still be taken with [`Net::next_frame`].
    pub fn close(&mut self, i: usize) {
        let Some(c) = self.conns.get_mut(i) else {
            return;
        };
        if c.closed {
            return;
        }
        c.closed = true;
        c.out = Vec::new();
        let _ = c.stream.shutdown(std::net::Shutdown::Both);
        let fd = c.stream.as_raw_fd();
        let _ = self.ctl(libc::EPOLL_CTL_DEL, fd, 0, 0);
    }

    /// Waits up to `timeout` for something to happen (zero: only looks), and says what.
    pub fn wait(&mut self, timeout: Duration, ready: &mut Ready) {
        ready.udp = false;
        ready.listener = false;
        ready.conns.clear();
        if !timeout.is_zero() {
            // epoll_wait sleeps in whole milliseconds; ppoll on the epoll descriptor (readable
            // when an event is pending) sleeps to the nanosecond, which the schedule needs.
            let mut p = libc::pollfd {
                fd: self.epoll.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let ts = libc::timespec {
                tv_sec: timeout.as_secs() as libc::time_t,
                tv_nsec: timeout.subsec_nanos() as libc::c_long,
            };
            // SAFETY: one live pollfd; `ts` outlives the call.
            let n = unsafe { libc::ppoll(&mut p, 1, &ts, std::ptr::null()) };
            if n <= 0 {
                return;
            }
        }
        let cap = self.events.capacity();
        // SAFETY: the kernel writes at most `cap` events into the vector's spare capacity; the
        // length is set to what it reports.
        let n = unsafe {
            libc::epoll_wait(
                self.epoll.as_raw_fd(),
                self.events.as_mut_ptr(),
                cap as libc::c_int,
                0,
            )
        };
        let n = usize::try_from(n).unwrap_or(0);
        // SAFETY: the first `n` events were written by epoll_wait.
        unsafe { self.events.set_len(n) };
        for ev in &self.events {
            let (token, flags) = (ev.u64, ev.events);
            match token {
                UDP => ready.udp = true,
                LISTENER => ready.listener = true,
                t => {
                    let i = (t - CONN) as usize;
                    if flags & libc::EPOLLOUT as u32 != 0 {
                        // Flushed below, with the others.
                        if self.conns.get(i).is_some_and(|c| !c.out.is_empty()) {
                            self.dirty.push(i);
                        }
                    }
                    if flags & !(libc::EPOLLOUT as u32) != 0 {
                        ready.conns.push(i);
                    }
                }
            }
        }
        self.dirty.sort_unstable();
        self.dirty.dedup();
    }

    /// Reads the waiting datagrams (bounded), appending each to `bytes` and its end and source
    /// to `ends`.
    pub fn recv_udp(&mut self, bytes: &mut Vec<u8>, ends: &mut Vec<(usize, SocketAddr)>) {
        for _ in 0..RECV_ROUNDS {
            match self.batch.recv(
                self.udp.as_raw_fd(),
                &mut self.rbufs,
                true,
                &mut self.received,
            ) {
                Ok(()) => {
                    for (i, r) in self.received.iter().enumerate() {
                        if r.truncated {
                            self.stats.error("recv: datagram larger than 16 KiB");
                            continue;
                        }
                        let Some(from) = r.from else { continue };
                        bytes.extend_from_slice(&self.rbufs[i][..r.len]);
                        ends.push((bytes.len(), from));
                    }
                    if self.received.len() < self.rbufs.len() {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.stats.error(io_error_kind("recv", &e));
                    return;
                }
            }
        }
    }

    /// Reads what connection `i` has (bounded); `false` when it is closed now (by the far end,
    /// or an error). What was read before the close stays for [`Net::next_frame`].
    pub fn read_conn(&mut self, i: usize) -> bool {
        let Some(c) = self.conns.get_mut(i) else {
            return false;
        };
        if c.closed {
            return false;
        }
        // Framed bytes go now, once per read rather than once per frame.
        c.inbuf.drain(..c.rpos);
        c.rpos = 0;
        let mut total = 0;
        let mut open = true;
        while total < READ_PER_PASS {
            match c.stream.read(&mut self.tmp) {
                Ok(0) => {
                    open = false;
                    break;
                }
                Ok(n) => {
                    c.inbuf.extend_from_slice(&self.tmp[..n]);
                    total += n;
                    if n < self.tmp.len() {
                        // Drained: another read would only say so.
                        break;
                    }
                }
                Err(e) => match e.kind() {
                    io::ErrorKind::WouldBlock => break,
                    io::ErrorKind::Interrupted => {}
                    _ => {
                        self.stats.error(io_error_kind("recv", &e));
                        open = false;
                        break;
                    }
                },
            }
        }
        if !open {
            self.close(i);
        }
        open
    }

    /// The next whole frame read on connection `i`, taken out of its buffer.
    pub fn next_frame(&mut self, i: usize) -> Framed {
        let Some(c) = self.conns.get_mut(i) else {
            return Framed::None;
        };
        let rest = c.inbuf.get(c.rpos..).unwrap_or_default();
        if rest.is_empty() {
            return Framed::None;
        }
        match c.framer.frame_len(rest) {
            Ok(Status::Complete(len)) => {
                c.framer.reset();
                let frame = rest.get(..len).unwrap_or(rest).to_vec();
                c.rpos += frame.len();
                Framed::Frame(frame)
            }
            Ok(Status::Partial) => Framed::None,
            Err(_) => {
                self.stats
                    .error("MSRP: stream cannot be framed (connection closed)");
                c.inbuf = Vec::new();
                c.rpos = 0;
                self.close(i);
                Framed::Broken
            }
        }
    }
}
