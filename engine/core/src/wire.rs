//! Numbers and addresses written straight into a message's bytes.
//!
//! Every response carries a status code, a Content-Length, a To tag and often a `received`
//! address and an `rport` value; through `core::fmt` those cost more instructions than copying
//! the rest of the response (callgrind: ~5,000 of ~50,000 per parked MESSAGE). These write the
//! same text with `itoa` and a table lookup, allocation-free.

use std::net::{IpAddr, SocketAddr};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `n` in decimal.
pub fn dec(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Appends `n` in lower-case hexadecimal without leading zeros (as `{:x}`).
pub fn hex(out: &mut Vec<u8>, n: u64) {
    let digits = (64 - n.leading_zeros()).div_ceil(4).max(1) as usize;
    let mut buf = [0u8; 16];
    for (i, d) in buf[..digits].iter_mut().rev().enumerate() {
        *d = HEX[((n >> (i * 4)) & 0xf) as usize];
    }
    // One copy, so a vector grows at most once here.
    out.extend_from_slice(&buf[..digits]);
}

/// Appends `n` as exactly 16 lower-case hexadecimal digits (as `{:016x}`).
pub fn hex16(out: &mut Vec<u8>, n: u64) {
    let mut buf = [0u8; 16];
    for (i, d) in buf.iter_mut().rev().enumerate() {
        *d = HEX[((n >> (i * 4)) & 0xf) as usize];
    }
    out.extend_from_slice(&buf);
}

/// Appends an address as `Display` writes it (IPv6 through `fmt`: rare, and its shortening
/// rules are not worth a second copy).
pub fn ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            dec(out, a);
            out.push(b'.');
            dec(out, b);
            out.push(b'.');
            dec(out, c);
            out.push(b'.');
            dec(out, d);
        }
        IpAddr::V6(v6) => {
            use std::io::Write;
            let _ = write!(out, "{v6}");
        }
    }
}

/// Appends `ip:port`, or `[ip]:port` for IPv6 (as `Display`).
pub fn socket_addr(out: &mut Vec<u8>, a: SocketAddr) {
    if a.is_ipv6() {
        out.push(b'[');
        ip(out, a.ip());
        out.push(b']');
    } else {
        ip(out, a.ip());
    }
    out.push(b':');
    dec(out, a.port());
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn each_writes_what_display_writes(n: u64, a: SocketAddr) {
            let mut out = Vec::new();
            dec(&mut out, n);
            out.push(b' ');
            hex(&mut out, n);
            out.push(b' ');
            hex16(&mut out, n);
            out.push(b' ');
            socket_addr(&mut out, a);
            // std's SocketAddrV6 Display adds scope and flow info only when set, which
            // `socket_addr` leaves out: compare against the address without them.
            let plain = SocketAddr::new(a.ip(), a.port());
            prop_assert_eq!(
                String::from_utf8(out).unwrap(),
                format!("{n} {n:x} {n:016x} {plain}")
            );
        }
    }

    #[test]
    fn edges() {
        let mut out = Vec::new();
        hex(&mut out, 0);
        out.push(b' ');
        dec(&mut out, 0u8);
        out.push(b' ');
        hex(&mut out, u64::MAX);
        assert_eq!(out, b"0 0 ffffffffffffffff");
    }
}
