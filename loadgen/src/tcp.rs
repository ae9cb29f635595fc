//! SIP over TCP.
//!
//! Each connection is a non-blocking stream with a read buffer, framed with sipshard-parser's
//! `frame` (Content-Length, RFC 3261 §18.3; CRLF keep-alives skipped), and a write buffer that
//! absorbs what the kernel will not take yet, so the sender never blocks on a slow server.

use crate::stats::Stats;
use crate::transport::{io_error_kind, Outgoing, Transport};
use sipshard_parser::sip::{frame, FrameOptions, Framed};
use sipshard_parser::Status;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Duration;

struct Conn {
    stream: TcpStream,
    local: SocketAddr,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
    open: bool,
}

/// One thread's TCP connections.
pub struct TcpTransport {
    conns: Vec<Conn>,
    opts: FrameOptions,
}

impl TcpTransport {
    /// Opens `count` connections to `target`.
    pub fn open(target: SocketAddr, count: usize, sockbuf: usize) -> io::Result<TcpTransport> {
        let mut conns = Vec::with_capacity(count);
        for _ in 0..count {
            let stream = TcpStream::connect_timeout(&target, Duration::from_secs(5))?;
            stream.set_nodelay(true)?;
            let sock = socket2::SockRef::from(&stream);
            let _ = sock.set_recv_buffer_size(sockbuf);
            let _ = sock.set_send_buffer_size(sockbuf);
            stream.set_nonblocking(true)?;
            conns.push(Conn {
                local: stream.local_addr()?,
                stream,
                rbuf: Vec::with_capacity(64 * 1024),
                wbuf: Vec::new(),
                open: true,
            });
        }
        Ok(TcpTransport {
            conns,
            opts: FrameOptions::default(),
        })
    }
}

impl Conn {
    fn flush(&mut self, stats: &mut Stats) {
        while self.open && !self.wbuf.is_empty() {
            match self.stream.write(&self.wbuf) {
                Ok(0) => {
                    stats.error("send: connection closed");
                    self.open = false;
                }
                Ok(n) => {
                    self.wbuf.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    stats.error(io_error_kind("send", &e));
                    self.open = false;
                }
            }
        }
    }
}

impl Transport for TcpTransport {
    fn conns(&self) -> usize {
        self.conns.len()
    }

    fn local_addr(&self, conn: usize) -> SocketAddr {
        self.conns[conn].local
    }

    fn send(&mut self, out: &mut Vec<Outgoing>, stats: &mut Stats) {
        for o in out.drain(..) {
            let c = &mut self.conns[o.conn];
            if !c.open {
                stats.error("send: connection closed");
                continue;
            }
            c.wbuf.extend_from_slice(&o.bytes);
        }
        for c in &mut self.conns {
            c.flush(stats);
        }
    }

    fn recv(&mut self, on_message: &mut dyn FnMut(&[u8]), stats: &mut Stats) -> usize {
        let mut total = 0;
        let mut chunk = [0u8; 32 * 1024];
        for c in &mut self.conns {
            // Writes may have been waiting for POLLOUT.
            c.flush(stats);
            for _ in 0..16 {
                if !c.open {
                    break;
                }
                match c.stream.read(&mut chunk) {
                    Ok(0) => {
                        stats.error("recv: connection closed by server");
                        c.open = false;
                    }
                    Ok(n) => c.rbuf.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        stats.error(io_error_kind("recv", &e));
                        c.open = false;
                    }
                }
            }
            let mut pos = 0;
            while pos < c.rbuf.len() {
                match frame(&c.rbuf[pos..], &self.opts) {
                    Ok(Status::Complete(Framed::Keepalive(n))) => pos += n,
                    Ok(Status::Complete(Framed::Message { len, .. })) => {
                        total += 1;
                        on_message(&c.rbuf[pos..pos + len]);
                        pos += len;
                    }
                    Ok(Status::Partial) => break,
                    Err(_) => {
                        stats.error("recv: unframeable TCP stream (connection dropped)");
                        c.open = false;
                        pos = c.rbuf.len();
                    }
                }
            }
            c.rbuf.drain(..pos);
        }
        total
    }

    fn poll_fds(&self, fds: &mut Vec<libc::pollfd>, _want_write: bool) {
        for c in self.conns.iter().filter(|c| c.open) {
            let mut events = libc::POLLIN;
            if !c.wbuf.is_empty() {
                events |= libc::POLLOUT;
            }
            fds.push(libc::pollfd {
                fd: c.stream.as_raw_fd(),
                events,
                revents: 0,
            });
        }
    }

    fn reliable(&self) -> bool {
        true
    }
}
