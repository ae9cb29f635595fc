//! Batched datagram I/O: one `sendmmsg` or `recvmmsg` for many datagrams (Linux).
//!
//! At tens of thousands of datagrams a second the system call per datagram costs more than the
//! work around it. [`Batch`] keeps the `mmsghdr`/`iovec` arrays (and, for unconnected sockets,
//! the addresses) between calls, so a batch allocates nothing once it has grown to its size.
//! The server's UDP receive and send paths, the load generator's UDP transport and its stand-in
//! responder all use it.

use socket2::SockAddr;
use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;

/// One datagram read by [`Batch::recv`].
#[derive(Debug, Clone, Copy)]
pub struct Received {
    /// Bytes written into the buffer.
    pub len: usize,
    /// The datagram was longer than the buffer (MSG_TRUNC): the tail is lost.
    pub truncated: bool,
    /// Its source, when asked for.
    pub from: Option<SocketAddr>,
}

/// Reusable arrays for `sendmmsg` and `recvmmsg`.
#[derive(Default)]
pub struct Batch {
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
    names: Vec<SockAddr>,
    storage: Vec<libc::sockaddr_storage>,
}

fn empty_hdr() -> libc::mmsghdr {
    // SAFETY: mmsghdr is a plain C struct; all-zero is a valid (empty) value.
    unsafe { std::mem::zeroed() }
}

impl Batch {
    /// An empty batch; its arrays grow to the largest call made.
    pub fn new() -> Batch {
        Batch::default()
    }

    /// Sends `msgs` in one `sendmmsg`, each to its address (or, with `None`, to the socket's
    /// connected peer). Returns how many left: fewer than asked when the socket buffer filled.
    /// An error is the first datagram's; those before it were sent (and counted by `Ok`).
    pub fn send(&mut self, fd: RawFd, msgs: &[(&[u8], Option<SocketAddr>)]) -> io::Result<usize> {
        if msgs.is_empty() {
            return Ok(0);
        }
        self.iovs.clear();
        self.names.clear();
        for (bytes, to) in msgs {
            self.iovs.push(libc::iovec {
                iov_base: bytes.as_ptr() as *mut libc::c_void,
                iov_len: bytes.len(),
            });
            if let Some(a) = to {
                self.names.push(SockAddr::from(*a));
            }
        }
        self.hdrs.clear();
        let mut names = self.names.iter();
        for (i, (_, to)) in msgs.iter().enumerate() {
            let mut h = empty_hdr();
            h.msg_hdr.msg_iov = &mut self.iovs[i];
            h.msg_hdr.msg_iovlen = 1;
            if to.is_some() {
                let name = names.next().expect("one name per addressed datagram");
                h.msg_hdr.msg_name = name.as_ptr() as *mut libc::c_void;
                h.msg_hdr.msg_namelen = name.len();
            }
            self.hdrs.push(h);
        }
        // SAFETY: every header points at an iovec of `self.iovs` (which points into `msgs`) and
        // at most at one address of `self.names`; none of them moves or is dropped before the
        // call returns, and the lengths given are theirs. MSG_DONTWAIT keeps it non-blocking.
        let n = unsafe {
            libc::sendmmsg(
                fd,
                self.hdrs.as_mut_ptr(),
                self.hdrs.len() as libc::c_uint,
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    /// Reads up to `bufs.len()` datagrams in one non-blocking `recvmmsg`, datagram `i` into
    /// `bufs[i]`; `out` gets one entry per datagram read (with its source when `want_from`).
    /// `WouldBlock` when nothing is waiting.
    pub fn recv(
        &mut self,
        fd: RawFd,
        bufs: &mut [Vec<u8>],
        want_from: bool,
        out: &mut Vec<Received>,
    ) -> io::Result<()> {
        out.clear();
        if bufs.is_empty() {
            return Ok(());
        }
        self.iovs.clear();
        for b in bufs.iter_mut() {
            self.iovs.push(libc::iovec {
                iov_base: b.as_mut_ptr() as *mut libc::c_void,
                iov_len: b.len(),
            });
        }
        if want_from && self.storage.len() < bufs.len() {
            // SAFETY: sockaddr_storage is a plain C struct; all-zero is a valid value.
            self.storage
                .resize(bufs.len(), unsafe { std::mem::zeroed() });
        }
        self.hdrs.clear();
        for i in 0..bufs.len() {
            let mut h = empty_hdr();
            h.msg_hdr.msg_iov = &mut self.iovs[i];
            h.msg_hdr.msg_iovlen = 1;
            if want_from {
                h.msg_hdr.msg_name = (&mut self.storage[i] as *mut libc::sockaddr_storage).cast();
                h.msg_hdr.msg_namelen =
                    std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            }
            self.hdrs.push(h);
        }
        // SAFETY: every iovec points into a live buffer of the stated length and every name into
        // `self.storage` with its full size; a null timeout and MSG_DONTWAIT make the call
        // non-blocking.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.hdrs.as_mut_ptr(),
                self.hdrs.len() as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        for (i, h) in self.hdrs[..n as usize].iter().enumerate() {
            let from = if want_from {
                // SAFETY: the kernel wrote `msg_namelen` bytes of a valid address there.
                let a = unsafe { SockAddr::new(self.storage[i], h.msg_hdr.msg_namelen) };
                a.as_socket()
            } else {
                None
            };
            out.push(Received {
                len: h.msg_len as usize,
                truncated: h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
                from,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;

    #[test]
    fn addressed_send_and_recv_with_sources() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (ba, ca) = (b.local_addr().unwrap(), c.local_addr().unwrap());
        let mut batch = Batch::new();
        let sent = batch
            .send(
                a.as_raw_fd(),
                &[(b"one", Some(ba)), (b"two", Some(ca)), (b"three", Some(ba))],
            )
            .unwrap();
        assert_eq!(sent, 3);
        let mut bufs = vec![vec![0u8; 4]; 4];
        let mut got = Vec::new();
        // Loopback delivery is synchronous with the send, so both are queued already.
        batch
            .recv(b.as_raw_fd(), &mut bufs, true, &mut got)
            .unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(&bufs[0][..got[0].len], b"one");
        assert!(!got[0].truncated);
        assert_eq!(got[0].from, Some(a.local_addr().unwrap()));
        // "three" does not fit in 4 bytes.
        assert!(got[1].truncated);
        assert_eq!(&bufs[1][..got[1].len], b"thre");
        batch
            .recv(c.as_raw_fd(), &mut bufs, false, &mut got)
            .unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].from, None);
        let e = batch
            .recv(c.as_raw_fd(), &mut bufs, false, &mut got)
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        assert!(got.is_empty());
    }
}
