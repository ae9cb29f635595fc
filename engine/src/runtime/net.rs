//! Sockets for the shards: every shard binds every listen address itself, with SO_REUSEPORT, so
//! the kernel spreads datagrams and connections over the shards; socket options are set through
//! socket2 before glommio takes the descriptor.

use std::io;
use std::net::SocketAddr;

/// A transport sipshard listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// SIP over UDP.
    Udp,
    /// SIP over TCP.
    Tcp,
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        })
    }
}

/// Socket options applied to every listening socket.
#[derive(Debug, Clone, Copy, Default)]
pub struct SocketOptions {
    /// SO_RCVBUF in bytes (0: kernel default).
    pub recv_buffer: usize,
    /// SO_SNDBUF in bytes (0: kernel default).
    pub send_buffer: usize,
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
    if opts.recv_buffer > 0 {
        s.set_recv_buffer_size(opts.recv_buffer)?;
    }
    if opts.send_buffer > 0 {
        s.set_send_buffer_size(opts.send_buffer)?;
    }
    s.bind(&addr.into())?;
    Ok(s)
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

/// Resolves port 0 in listen addresses: binds one socket per address so every shard can then
/// bind the same, now known, port. Returns the resolved addresses and the sockets (kept open
/// until all shards have bound theirs, so the port cannot be taken in between).
pub fn resolve_ports(
    listen: &[(Transport, SocketAddr)],
    opts: &SocketOptions,
) -> io::Result<(ListenList, Vec<socket2::Socket>)> {
    let mut out = Vec::with_capacity(listen.len());
    let mut keep = Vec::new();
    // UDP and TCP on the same address and port 0 should share the port number: bind the first
    // with port 0, then reuse the number for the others of the same IP.
    let mut chosen: Vec<(std::net::IpAddr, u16, u16)> = Vec::new(); // (ip, asked, got)
    for &(t, addr) in listen {
        let mut a = addr;
        if a.port() == 0 {
            if let Some(&(_, _, got)) = chosen
                .iter()
                .find(|(ip, asked, _)| *ip == a.ip() && *asked == 0)
            {
                a.set_port(got);
            }
        }
        let s = match t {
            Transport::Udp => bind_udp(a, opts)?,
            Transport::Tcp => bind_tcp(a, opts)?,
        };
        let local = s
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::other("not an inet socket"))?;
        if addr.port() == 0 {
            chosen.push((addr.ip(), 0, local.port()));
        }
        out.push((t, local));
        keep.push(s);
    }
    Ok((out, keep))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
