//! SIP over UDP with batched system calls.
//!
//! At tens of thousands of requests per second the system call per datagram is the load
//! generator's own bottleneck, so requests that are due together leave in one `sendmmsg` and
//! replies are drained with `recvmmsg` (Linux). `--batch 1` falls back to one `send`/`recv` per
//! datagram, which is how the gain is measured (docs/loadgen.md). Each socket is connected to
//! the target, so the kernel filters strangers and reports ICMP port unreachable as an error.

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
        })
    }
}

/// Sends `msgs` on a connected socket in one `sendmmsg`; returns how many left.
fn send_mmsg(fd: i32, msgs: &[&[u8]]) -> io::Result<usize> {
    let mut iovs: Vec<libc::iovec> = msgs
        .iter()
        .map(|m| libc::iovec {
            iov_base: m.as_ptr() as *mut libc::c_void,
            iov_len: m.len(),
        })
        .collect();
    let mut hdrs: Vec<libc::mmsghdr> = iovs
        .iter_mut()
        .map(|iov| {
            // SAFETY: mmsghdr is a plain C struct; all-zero is a valid (empty) value.
            let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
            h.msg_hdr.msg_iov = iov;
            h.msg_hdr.msg_iovlen = 1;
            h
        })
        .collect();
    // SAFETY: `hdrs` points at `iovs`, which point at `msgs`; all outlive the call, and the
    // lengths given are theirs. The socket is connected, so no address is needed.
    let n = unsafe { libc::sendmmsg(fd, hdrs.as_mut_ptr(), hdrs.len() as libc::c_uint, 0) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Receives up to `bufs.len()` datagrams in one `recvmmsg`; returns their lengths and whether
/// each was truncated.
fn recv_mmsg(fd: i32, bufs: &mut [Vec<u8>], lens: &mut Vec<(usize, bool)>) -> io::Result<()> {
    let mut iovs: Vec<libc::iovec> = bufs
        .iter_mut()
        .map(|b| libc::iovec {
            iov_base: b.as_mut_ptr() as *mut libc::c_void,
            iov_len: b.len(),
        })
        .collect();
    let mut hdrs: Vec<libc::mmsghdr> = iovs
        .iter_mut()
        .map(|iov| {
            // SAFETY: as in send_mmsg.
            let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
            h.msg_hdr.msg_iov = iov;
            h.msg_hdr.msg_iovlen = 1;
            h
        })
        .collect();
    // SAFETY: every iovec points into a live buffer of the stated length; a null timeout and
    // MSG_DONTWAIT make the call non-blocking.
    let n = unsafe {
        libc::recvmmsg(
            fd,
            hdrs.as_mut_ptr(),
            hdrs.len() as libc::c_uint,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    lens.clear();
    for h in &hdrs[..n as usize] {
        let truncated = h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
        lens.push((h.msg_len as usize, truncated));
    }
    Ok(())
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
        // Group by socket, keeping order within each; what does not fit stays queued.
        let mut left: Vec<Outgoing> = Vec::new();
        for (conn, sock) in self.socks.iter().enumerate() {
            let mine: Vec<&Outgoing> = out.iter().filter(|o| o.conn == conn).collect();
            let mut i = 0;
            let mut blocked = false;
            while i < mine.len() && !blocked {
                if self.batch == 1 {
                    match sock.send(&mine[i].bytes) {
                        Ok(_) => i += 1,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => blocked = true,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            stats.error(io_error_kind("send", &e));
                            i += 1;
                        }
                    }
                    continue;
                }
                let end = (i + self.batch).min(mine.len());
                let chunk: Vec<&[u8]> = mine[i..end].iter().map(|o| &o.bytes[..]).collect();
                match send_mmsg(sock.as_raw_fd(), &chunk) {
                    Ok(0) => blocked = true,
                    Ok(n) => i += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => blocked = true,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        // sendmmsg reports an error only for the first datagram.
                        stats.error(io_error_kind("send", &e));
                        i += 1;
                    }
                }
            }
            if i < mine.len() {
                left.extend(mine[i..].iter().map(|o| Outgoing {
                    conn: o.conn,
                    bytes: o.bytes.clone(),
                }));
            }
        }
        *out = left;
    }

    fn recv(&mut self, on_message: &mut dyn FnMut(&[u8]), stats: &mut Stats) -> usize {
        let mut total = 0;
        let mut lens = Vec::with_capacity(self.rbufs.len());
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
                match recv_mmsg(sock.as_raw_fd(), &mut self.rbufs, &mut lens) {
                    Ok(()) => {
                        for (i, &(n, truncated)) in lens.iter().enumerate() {
                            total += 1;
                            if truncated {
                                stats.error("recv: datagram larger than 16 KiB");
                                continue;
                            }
                            on_message(&self.rbufs[i][..n]);
                        }
                        if lens.len() < self.rbufs.len() {
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
