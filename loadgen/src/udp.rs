//! SIP over UDP with batched system calls.
//!
//! At tens of thousands of requests per second the system call per datagram is the load
//! generator's own bottleneck, so requests that are due together leave in one `sendmmsg` and
//! replies are drained with `recvmmsg` (Linux). `--batch 1` falls back to one `send`/`recv` per
//! datagram, which is how the gain is measured (docs/loadgen.md). Each socket is connected to
//! the target, so the kernel filters strangers and reports ICMP port unreachable as an error.

use crate::mmsg::{Batch, Received};
use crate::stats::Stats;
use crate::transport::{io_error_kind, Outgoing, Transport};
use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;

/// Largest datagram read; longer ones are counted as truncated.
const RECV_BUF: usize = 16 * 1024;
/// Most datagrams per recvmmsg call.
const RECV_BATCH_MAX: usize = 64;

/// One thread's UDP sockets.
pub struct UdpTransport {
    socks: Vec<UdpSocket>,
    locals: Vec<SocketAddr>,
    batch: usize,
    rbufs: Vec<Vec<u8>>,
    mmsg: Batch,
    received: Vec<Received>,
    /// Scratch for `send`: which queued messages left.
    sent: Vec<bool>,
}

impl UdpTransport {
    /// Opens `count` sockets connected to `target`.
    pub fn open(
        target: SocketAddr,
        count: usize,
        batch: usize,
        sockbuf: usize,
    ) -> io::Result<UdpTransport> {
        let mut socks = Vec::with_capacity(count);
        let mut locals = Vec::with_capacity(count);
        for _ in 0..count {
            let s = Socket::new(
                Domain::for_address(target),
                Type::DGRAM,
                Some(Protocol::UDP),
            )?;
            // Best effort: the kernel caps these at net.core.{r,w}mem_max.
            let _ = s.set_recv_buffer_size(sockbuf);
            let _ = s.set_send_buffer_size(sockbuf);
            s.set_nonblocking(true)?;
            s.connect(&target.into())?;
            let sock: UdpSocket = s.into();
            locals.push(sock.local_addr()?);
            socks.push(sock);
        }
        let rcount = batch.clamp(1, RECV_BATCH_MAX);
        Ok(UdpTransport {
            socks,
            locals,
            batch,
            rbufs: vec![vec![0u8; RECV_BUF]; rcount],
            mmsg: Batch::new(),
            received: Vec::with_capacity(rcount),
            sent: Vec::new(),
        })
    }
}

impl Transport for UdpTransport {
    fn conns(&self) -> usize {
        self.socks.len()
    }

    fn local_addr(&self, conn: usize) -> SocketAddr {
        self.locals[conn]
    }

    fn send(&mut self, out: &mut Vec<Outgoing>, stats: &mut Stats) {
        if out.is_empty() {
            return;
        }
        // Per socket, in order; what does not fit (the socket buffer is full) stays queued.
        self.sent.clear();
        self.sent.resize(out.len(), false);
        let mut chunk: Vec<(&[u8], Option<SocketAddr>)> = Vec::with_capacity(self.batch);
        let mut idx: Vec<usize> = Vec::with_capacity(self.batch);
        for (conn, sock) in self.socks.iter().enumerate() {
            let mut next = 0;
            'sock: loop {
                chunk.clear();
                idx.clear();
                while next < out.len() && chunk.len() < self.batch.max(1) {
                    if out[next].conn == conn {
                        chunk.push((&out[next].bytes, None));
                        idx.push(next);
                    }
                    next += 1;
                }
                if chunk.is_empty() {
                    break;
                }
                let mut done = 0;
                while done < chunk.len() {
                    let r = if self.batch == 1 {
                        sock.send(chunk[done].0).map(|_| 1)
                    } else {
                        self.mmsg.send(sock.as_raw_fd(), &chunk[done..])
                    };
                    match r {
                        Ok(0) => break 'sock,
                        Ok(n) => done += n,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break 'sock,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            // Reported for the first datagram not sent: count it and drop it.
                            stats.error(io_error_kind("send", &e));
                            done += 1;
                        }
                    }
                    for &i in &idx[..done] {
                        self.sent[i] = true;
                    }
                }
            }
        }
        let mut i = 0;
        out.retain(|_| {
            i += 1;
            !self.sent[i - 1]
        });
    }

    fn recv(&mut self, on_message: &mut dyn FnMut(&[u8]), stats: &mut Stats) -> usize {
        let mut total = 0;
        for sock in &self.socks {
            // Bounded, so a flood on one socket cannot starve the sender.
            for _ in 0..16 {
                if self.batch == 1 {
                    match sock.recv(&mut self.rbufs[0]) {
                        Ok(n) => {
                            total += 1;
                            on_message(&self.rbufs[0][..n]);
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => stats.error(io_error_kind("recv", &e)),
                    }
                    continue;
                }
                match self
                    .mmsg
                    .recv(sock.as_raw_fd(), &mut self.rbufs, false, &mut self.received)
                {
                    Ok(()) => {
                        for (i, r) in self.received.iter().enumerate() {
                            total += 1;
                            if r.truncated {
                                stats.error("recv: datagram larger than 16 KiB");
                                continue;
                            }
                            on_message(&self.rbufs[i][..r.len]);
                        }
                        if self.received.len() < self.rbufs.len() {
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => stats.error(io_error_kind("recv", &e)),
                }
            }
        }
        total
    }

    fn poll_fds(&self, fds: &mut Vec<libc::pollfd>, want_write: bool) {
        for s in &self.socks {
            let mut events = libc::POLLIN;
            if want_write {
                events |= libc::POLLOUT;
            }
            fds.push(libc::pollfd {
                fd: s.as_raw_fd(),
                events,
                revents: 0,
            });
        }
    }

    fn reliable(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batched_round_trip_on_loopback() {
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut t = UdpTransport::open(peer.local_addr().unwrap(), 1, 8, 1 << 20).unwrap();
        let mut stats = Stats::new(&["x"]);
        let mut out: Vec<Outgoing> = (0..5)
            .map(|i| Outgoing {
                conn: 0,
                bytes: format!("hello {i}").into_bytes(),
            })
            .collect();
        t.send(&mut out, &mut stats);
        assert!(out.is_empty());
        let mut buf = [0u8; 64];
        peer.set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        for i in 0..5 {
            let (n, from) = peer.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], format!("hello {i}").as_bytes());
            peer.send_to(&buf[..n], from).unwrap();
        }
        let mut got = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while got.len() < 5 && std::time::Instant::now() < deadline {
            t.recv(&mut |m| got.push(m.to_vec()), &mut stats);
        }
        assert_eq!(got.len(), 5);
        assert!(stats.errors.is_empty());
    }
}
