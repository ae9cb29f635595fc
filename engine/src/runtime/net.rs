//! Sockets for the shards: every shard binds every listen address itself, with SO_REUSEPORT, so
//! the kernel spreads datagrams and connections over the shards; socket options are set through
//! socket2 before glommio takes the descriptor.

pub use sipshard_core::transport::Transport;
use std::io;
use std::net::SocketAddr;

/// Socket options applied to every listening socket.
#[derive(Debug, Clone, Copy, Default)]
pub struct SocketOptions {
    /// SO_RCVBUF of UDP sockets in bytes (0: kernel default). TCP sockets keep the kernel's
    /// autotuning, which a fixed SO_RCVBUF would turn off.
    pub recv_buffer: usize,
    /// SO_SNDBUF in bytes (0: kernel default).
    pub send_buffer: usize,
}

/// Whether the warning about a capped receive buffer was logged (once per process: every
/// shard binds every address).
static RCVBUF_WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Gives a UDP socket a receive buffer of `want` bytes, so that a burst (or a stall of the
/// shard, ~10 ms) is queued instead of dropped. Above `net.core.rmem_max` SO_RCVBUF is capped;
/// SO_RCVBUFFORCE goes past it when the process may (CAP_NET_ADMIN). When neither gets there,
/// one warning names the sysctl. Returns the size the kernel gave (it doubles what it is
/// asked, for its bookkeeping, and reports that).
fn size_recv_buffer(s: &socket2::Socket, addr: SocketAddr, want: usize) -> io::Result<usize> {
    s.set_recv_buffer_size(want)?;
    let mut got = s.recv_buffer_size()?;
    if got < want.saturating_mul(2) && force_recv_buffer(s, want) {
        got = s.recv_buffer_size()?;
    }
    if got < want.saturating_mul(2)
        && !RCVBUF_WARNED.swap(true, std::sync::atomic::Ordering::Relaxed)
    {
        tracing::warn!(
            "the receive buffer of udp {addr} is {} KiB, under the {} KiB asked \
             (socket_recv_buffer): the kernel caps it at net.core.rmem_max; a burst beyond it \
             is dropped (sipshard_udp_drops_total); raise it with \
             `sysctl -w net.core.rmem_max={want}`",
            got / 2 / 1024,
            want / 1024
        );
    }
    Ok(got)
}

/// SO_RCVBUFFORCE: whether the kernel took it (it needs CAP_NET_ADMIN).
#[allow(unsafe_code)]
fn force_recv_buffer(s: &socket2::Socket, want: usize) -> bool {
    use std::os::fd::AsRawFd;
    let v = libc::c_int::try_from(want).unwrap_or(libc::c_int::MAX);
    // SAFETY: a valid socket descriptor we own, an int option value that outlives the call,
    // and its size.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        ) == 0
    }
}

fn new_socket(
    addr: SocketAddr,
    ty: socket2::Type,
    opts: &SocketOptions,
) -> io::Result<socket2::Socket> {
    let domain = socket2::Domain::for_address(addr);
    let proto = if ty == socket2::Type::DGRAM {
        socket2::Protocol::UDP
    } else {
        socket2::Protocol::TCP
    };
    let s = socket2::Socket::new(domain, ty, Some(proto))?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    if opts.recv_buffer > 0 && ty == socket2::Type::DGRAM {
        size_recv_buffer(&s, addr, opts.recv_buffer)?;
    }
    if opts.send_buffer > 0 {
        s.set_send_buffer_size(opts.send_buffer)?;
    }
    s.bind(&addr.into())?;
    Ok(s)
}

/// Checks that no other socket holds `addr` before the shards bind it with SO_REUSEPORT: that
/// option lets any process of the same user join the group and take a share of the traffic,
/// so a second server on the same port would start and silently split the messages. A socket
/// bound without it conflicts with any socket already bound there, whatever that one's
/// options, and is closed at once.
pub fn check_free(t: Transport, addr: SocketAddr) -> io::Result<()> {
    let domain = socket2::Domain::for_address(addr);
    let s = match t {
        Transport::Udp => {
            socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?
        }
        Transport::Tcp => {
            let s =
                socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
            // Connections of a previous run in TIME_WAIT do not hold the port; a listener does.
            s.set_reuse_address(true)?;
            s
        }
    };
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.bind(&addr.into())
}

/// `e`, with what could not be bound, the setting that asked for it, and what to do.
pub fn bind_error(e: io::Error, what: &str, addr: SocketAddr, setting: &str) -> io::Error {
    let hint = match e.kind() {
        io::ErrorKind::AddrInUse => format!(
            "another process holds it (`ss -lnp 'sport = :{}'` names it); stop that one, or \
             choose another address or port",
            addr.port()
        ),
        io::ErrorKind::AddrNotAvailable => "no interface of this host has that address".into(),
        io::ErrorKind::PermissionDenied => {
            "ports below 1024 need root or CAP_NET_BIND_SERVICE".into()
        }
        _ => "check the address".into(),
    };
    io::Error::new(
        e.kind(),
        format!("cannot listen on {what} {addr} ({setting}): {e}: {hint}"),
    )
}

/// Where the SIP listen addresses come from, for [`bind_error`].
const LISTEN_SETTING: &str = "[server] listen, --listen, --port";

/// The inode of a socket, which names it in `/proc/net/udp`.
pub fn inode(s: &socket2::Socket) -> Option<u64> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/self/fd/{}", s.as_raw_fd()))
        .ok()
        .map(|m| m.ino())
}

/// Datagrams the kernel dropped per socket inode (its receive buffer was full), from the text
/// of `/proc/net/udp` or `/proc/net/udp6`: the `inode` and `drops` columns.
pub fn udp_drops(proc_net_udp: &str) -> Vec<(u64, u64)> {
    proc_net_udp
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((f.get(9)?.parse().ok()?, f.get(12)?.parse().ok()?))
        })
        .collect()
}

/// Binds a UDP socket with SO_REUSEPORT.
pub fn bind_udp(addr: SocketAddr, opts: &SocketOptions) -> io::Result<socket2::Socket> {
    new_socket(addr, socket2::Type::DGRAM, opts)
}

/// Binds and listens on a TCP socket with SO_REUSEPORT.
pub fn bind_tcp(addr: SocketAddr, opts: &SocketOptions) -> io::Result<socket2::Socket> {
    let s = new_socket(addr, socket2::Type::STREAM, opts)?;
    s.listen(1024)?;
    Ok(s)
}

/// Listen addresses with their transports.
pub type ListenList = Vec<(Transport, SocketAddr)>;

/// How many times [`resolve_ports`] draws a new port number when the one it drew for a
/// transport is taken on another.
const RESOLVE_ATTEMPTS: usize = 32;

/// Resolves port 0 in listen addresses: binds one socket per address so every shard can then
/// bind the same, now known, port. UDP and TCP asked on the same IP with port 0 share the port
/// number: the first binds port 0 and the others reuse the number it got; when that number is
/// already taken for another transport, everything is released and a new number drawn.
/// Returns the resolved addresses and the sockets (kept open until all shards have bound
/// theirs, so the port cannot be taken in between).
pub fn resolve_ports(
    listen: &[(Transport, SocketAddr)],
    opts: &SocketOptions,
) -> io::Result<(ListenList, Vec<socket2::Socket>)> {
    resolve_ports_with(listen, opts, |t, a, o| match t {
        Transport::Udp => bind_udp(a, o),
        Transport::Tcp => bind_tcp(a, o),
    })
}

fn resolve_ports_with(
    listen: &[(Transport, SocketAddr)],
    opts: &SocketOptions,
    mut bind: impl FnMut(Transport, SocketAddr, &SocketOptions) -> io::Result<socket2::Socket>,
) -> io::Result<(ListenList, Vec<socket2::Socket>)> {
    let mut attempt = 0;
    'draw: loop {
        attempt += 1;
        let mut out = Vec::with_capacity(listen.len());
        let mut keep = Vec::new();
        // (ip, port drawn for it)
        let mut chosen: Vec<(std::net::IpAddr, u16)> = Vec::new();
        for &(t, addr) in listen {
            if addr.port() != 0 && attempt == 1 {
                check_free(t, addr).map_err(|e| bind_error(e, t.as_str(), addr, LISTEN_SETTING))?;
            }
            let mut a = addr;
            let shared = addr.port() == 0 && {
                match chosen.iter().find(|(ip, _)| *ip == a.ip()) {
                    Some(&(_, got)) => {
                        a.set_port(got);
                        true
                    }
                    None => false,
                }
            };
            let s = match bind(t, a, opts) {
                Ok(s) => s,
                Err(e)
                    if shared
                        && e.kind() == io::ErrorKind::AddrInUse
                        && attempt < RESOLVE_ATTEMPTS =>
                {
                    continue 'draw;
                }
                Err(e) => return Err(bind_error(e, t.as_str(), a, LISTEN_SETTING)),
            };
            let local = s
                .local_addr()?
                .as_socket()
                .ok_or_else(|| io::Error::other("not an inet socket"))?;
            if addr.port() == 0 && !shared {
                chosen.push((addr.ip(), local.port()));
            }
            out.push((t, local));
            keep.push(s);
        }
        return Ok((out, keep));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_are_read_by_inode() {
        let text = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
 1234: 0100007F:13C4 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 55501 2 0000000000000000 17\n\
 1235: 0100007F:13C4 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 55502 2 0000000000000000 0\n";
        assert_eq!(udp_drops(text), [(55501, 17), (55502, 0)]);
        // A socket of ours is found by its inode.
        let s = bind_udp("127.0.0.1:0".parse().unwrap(), &SocketOptions::default()).unwrap();
        let ino = inode(&s).unwrap();
        let table = std::fs::read_to_string("/proc/net/udp").unwrap();
        assert!(udp_drops(&table).iter().any(|&(i, d)| i == ino && d == 0));
    }

    #[test]
    fn udp_receive_buffers_get_what_is_asked_or_a_warning() {
        // Past the usual net.core.rmem_max (208 KiB): given where the process may force it
        // (or rmem_max allows), else warned about.
        let want = 1 << 20;
        let opts = SocketOptions {
            recv_buffer: want,
            send_buffer: 0,
        };
        let s = bind_udp("127.0.0.1:0".parse().unwrap(), &opts).unwrap();
        let got = s.recv_buffer_size().unwrap();
        assert!(
            got >= 2 * want || RCVBUF_WARNED.load(std::sync::atomic::Ordering::Relaxed),
            "{got}"
        );
        // TCP sockets keep the kernel's autotuning.
        let t = bind_tcp("127.0.0.1:0".parse().unwrap(), &opts).unwrap();
        let plain =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        assert_eq!(
            t.recv_buffer_size().unwrap(),
            plain.recv_buffer_size().unwrap()
        );
    }

    #[test]
    fn port_zero_resolves_once_per_ip() {
        let ip: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let (addrs, _keep) = resolve_ports(
            &[(Transport::Udp, ip), (Transport::Tcp, ip)],
            &SocketOptions::default(),
        )
        .unwrap();
        assert_ne!(addrs[0].1.port(), 0);
        assert_eq!(addrs[0].1.port(), addrs[1].1.port());
        // Another shard can bind the same UDP port thanks to SO_REUSEPORT.
        bind_udp(addrs[0].1, &SocketOptions::default()).unwrap();
        bind_tcp(addrs[1].1, &SocketOptions::default()).unwrap();
    }

    #[test]
    fn port_zero_draws_again_when_the_shared_number_is_taken() {
        let ip: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let mut tcp_binds = 0;
        // The first TCP bind on the drawn number fails as if another program held the port.
        let (addrs, _keep) = resolve_ports_with(
            &[(Transport::Udp, ip), (Transport::Tcp, ip)],
            &SocketOptions::default(),
            |t, a, o| match t {
                Transport::Udp => bind_udp(a, o),
                Transport::Tcp => {
                    tcp_binds += 1;
                    if tcp_binds == 1 {
                        Err(io::Error::from(io::ErrorKind::AddrInUse))
                    } else {
                        bind_tcp(a, o)
                    }
                }
            },
        )
        .unwrap();
        assert_eq!(tcp_binds, 2);
        assert_ne!(addrs[0].1.port(), 0);
        assert_eq!(addrs[0].1.port(), addrs[1].1.port());
    }

    #[test]
    fn a_taken_fixed_port_is_an_error() {
        // A fixed port is the operator's choice: never silently replaced by another.
        let plain = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let taken = plain.local_addr().unwrap();
        let err = resolve_ports(&[(Transport::Tcp, taken)], &SocketOptions::default());
        assert_eq!(err.err().map(|e| e.kind()), Some(io::ErrorKind::AddrInUse));
    }
}
