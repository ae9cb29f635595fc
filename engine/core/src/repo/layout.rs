//! How one stored item is laid out in its single allocation: a compact varint header (flags,
//! lengths, the offsets of the Call-ID, CSeq method and Via branch inside the message, the CSeq
//! number, the receive context), then the msgid, then any key copies, then the message. Planned
//! before anything is allocated so that the limits can be checked first.

use super::{LocalSocket, MessageRef, ReceiveContext, Transport};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// CSeq methods stored as a 4-bit code instead of an offset and a length.
pub(super) const KNOWN_METHODS: [&[u8]; 14] = [
    b"INVITE",
    b"ACK",
    b"BYE",
    b"CANCEL",
    b"REGISTER",
    b"OPTIONS",
    b"MESSAGE",
    b"INFO",
    b"UPDATE",
    b"PRACK",
    b"SUBSCRIBE",
    b"NOTIFY",
    b"REFER",
    b"PUBLISH",
];

/// Flags byte: bits 0-3 the method code (index in `KNOWN_METHODS` + 1; 0: offset and length
/// follow), then these.
const METHOD_MASK: u8 = 0x0f;
const FLAG_TCP: u8 = 0x10;
/// Address kind, bits 5-6: IPv4, IPv6, IPv6 with a flow label or scope id.
const ADDR_MASK: u8 = 0x60;
const ADDR_V4: u8 = 0x00;
const ADDR_V6: u8 = 0x20;
const ADDR_V6_SCOPED: u8 = 0x40;
/// Key copies are present (their total length follows the msgid length).
const FLAG_COPIES: u8 = 0x80;

/// A range of the key region (the copies followed by the message; see `Layout::encode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    off: usize,
    len: usize,
}

/// Where a key field comes from: a slice of the message, or a copy.
#[derive(Debug, Clone, Copy)]
enum Source {
    InMessage(usize),
    Copy,
}

/// How an item will be laid out, computed before anything is allocated so that the limits can
/// be checked first.
pub(super) struct Layout {
    call_id: Source,
    method_code: u8,
    method: Source,
    branch: Option<Source>,
    copies_len: usize,
    /// Message + msgid + copies: what counts against `max_bytes`.
    pub(super) body_len: usize,
}

/// Where `inner` starts inside `outer`, when it is a subslice of it.
fn offset_within(outer: &[u8], inner: &[u8]) -> Option<usize> {
    let (o, i) = (outer.as_ptr() as usize, inner.as_ptr() as usize);
    (i >= o && i + inner.len() <= o + outer.len()).then(|| i - o)
}

impl Layout {
    pub(super) fn plan(msg: &MessageRef<'_>, msgid: &[u8]) -> Layout {
        let mut copies_len = 0;
        let mut source = |s: &[u8]| match offset_within(msg.bytes, s) {
            Some(off) => Source::InMessage(off),
            None => {
                copies_len += s.len();
                Source::Copy
            }
        };
        let call_id = source(msg.call_id);
        let method_code = KNOWN_METHODS
            .iter()
            .position(|m| *m == msg.cseq_method)
            .map_or(0, |p| p as u8 + 1);
        let method = if method_code == 0 {
            source(msg.cseq_method)
        } else {
            Source::InMessage(0)
        };
        let branch = msg.branch.map(&mut source);
        Layout {
            call_id,
            method_code,
            method,
            branch,
            copies_len,
            body_len: msg.bytes.len() + msgid.len() + copies_len,
        }
    }

    /// The item's bytes: header, msgid, key copies (in the order Call-ID, method, branch), then
    /// the message, which runs to the end (so its length is not stored).
    ///
    /// Header, integers as LEB128 varints unless said otherwise: the flags byte (method code,
    /// transport, address kind, copies present), msgid length, copies length (when present),
    /// Call-ID offset and length (offsets are into the key region: copies then message), CSeq
    /// number, method offset and length (only for a method without a code), branch length + 1
    /// (0: none) then its offset, source IP (4 or 16 raw bytes), source port (2 raw bytes),
    /// IPv6 flow info and scope id (only for that address kind), local socket, and the receive
    /// time as a zigzag varint of `deadline - received` (3 bytes for the usual 180 s).
    pub(super) fn encode(&self, msg: &MessageRef<'_>, msgid: &[u8], deadline_ms: u64) -> Box<[u8]> {
        let mut copy_at = 0;
        let mut span = |src: Source, s: &[u8]| match src {
            Source::InMessage(off) => Span {
                off: self.copies_len + off,
                len: s.len(),
            },
            Source::Copy => {
                let off = copy_at;
                copy_at += s.len();
                Span { off, len: s.len() }
            }
        };
        let call_id = span(self.call_id, msg.call_id);
        let method = (self.method_code == 0).then(|| span(self.method, msg.cseq_method));
        let branch = self.branch.zip(msg.branch).map(|(src, b)| span(src, b));

        let ctx = &msg.context;
        let mut flags = self.method_code;
        if ctx.transport == Transport::Tcp {
            flags |= FLAG_TCP;
        }
        flags |= match ctx.source {
            SocketAddr::V4(_) => ADDR_V4,
            SocketAddr::V6(a) if a.flowinfo() == 0 && a.scope_id() == 0 => ADDR_V6,
            SocketAddr::V6(_) => ADDR_V6_SCOPED,
        };
        if self.copies_len > 0 {
            flags |= FLAG_COPIES;
        }
        let mut h = HeaderWriter::default();
        h.byte(flags);
        h.varint(msgid.len() as u64);
        if self.copies_len > 0 {
            h.varint(self.copies_len as u64);
        }
        h.varint(call_id.off as u64);
        h.varint(call_id.len as u64);
        h.varint(u64::from(msg.cseq));
        if let Some(m) = method {
            h.varint(m.off as u64);
            h.varint(m.len as u64);
        }
        match branch {
            None => h.varint(0),
            Some(b) => {
                h.varint(b.len as u64 + 1);
                h.varint(b.off as u64);
            }
        }
        match ctx.source {
            SocketAddr::V4(a) => {
                h.bytes(&a.ip().octets());
                h.bytes(&a.port().to_le_bytes());
            }
            SocketAddr::V6(a) => {
                h.bytes(&a.ip().octets());
                h.bytes(&a.port().to_le_bytes());
                if flags & ADDR_MASK == ADDR_V6_SCOPED {
                    h.varint(u64::from(a.flowinfo()));
                    h.varint(u64::from(a.scope_id()));
                }
            }
        }
        h.varint(u64::from(ctx.local.to_u32()));
        let back = deadline_ms.wrapping_sub(ctx.received_ms) as i64;
        h.varint(((back << 1) ^ (back >> 63)) as u64);

        let header = h.as_slice();
        let mut data = Vec::with_capacity(header.len() + self.body_len);
        data.extend_from_slice(header);
        data.extend_from_slice(msgid);
        if matches!(self.call_id, Source::Copy) {
            data.extend_from_slice(msg.call_id);
        }
        if method.is_some() && matches!(self.method, Source::Copy) {
            data.extend_from_slice(msg.cseq_method);
        }
        if let (Some(Source::Copy), Some(b)) = (self.branch, msg.branch) {
            data.extend_from_slice(b);
        }
        data.extend_from_slice(msg.bytes);
        debug_assert_eq!(data.len(), header.len() + self.body_len);
        data.into_boxed_slice()
    }
}

/// The largest header: flags, 9 varints of up to 10 bytes, an IPv6 address and port, and three
/// varints of up to 5 bytes.
const MAX_HEADER: usize = 1 + 9 * 10 + 18 + 3 * 5;

struct HeaderWriter {
    buf: [u8; MAX_HEADER],
    len: usize,
}

impl Default for HeaderWriter {
    fn default() -> Self {
        HeaderWriter {
            buf: [0; MAX_HEADER],
            len: 0,
        }
    }
}

impl HeaderWriter {
    fn byte(&mut self, b: u8) {
        self.buf[self.len] = b;
        self.len += 1;
    }

    fn bytes(&mut self, b: &[u8]) {
        self.buf[self.len..self.len + b.len()].copy_from_slice(b);
        self.len += b.len();
    }

    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.byte(v as u8 | 0x80);
            v >>= 7;
        }
        self.byte(v as u8);
    }

    fn as_slice(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

struct HeaderReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl HeaderReader<'_> {
    fn byte(&mut self) -> u8 {
        let b = self.data[self.pos];
        self.pos += 1;
        b
    }

    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut a = [0; N];
        a.copy_from_slice(&self.data[self.pos..self.pos + N]);
        self.pos += N;
        a
    }

    fn varint(&mut self) -> u64 {
        let mut v = 0u64;
        let mut shift = 0;
        loop {
            let b = self.byte();
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return v;
            }
            shift += 7;
        }
    }

    fn usize(&mut self) -> usize {
        self.varint() as usize
    }
}

/// An item's header, decoded.
#[derive(Debug, Clone, Copy)]
pub(super) struct Meta {
    /// Header length: where the msgid starts.
    body: usize,
    /// Where the key region (copies, then message) starts.
    keys: usize,
    copies_len: usize,
    call_id: Span,
    pub(super) cseq: u32,
    method_code: u8,
    method: Span,
    branch: Option<Span>,
    transport: Transport,
    source: SocketAddr,
    local: u32,
    /// `deadline - received`, wrapping.
    received_back: u64,
}

impl Meta {
    pub(super) fn decode(data: &[u8]) -> Meta {
        let mut r = HeaderReader { data, pos: 0 };
        let flags = r.byte();
        let msgid_len = r.usize();
        let copies_len = if flags & FLAG_COPIES != 0 {
            r.usize()
        } else {
            0
        };
        let call_id = Span {
            off: r.usize(),
            len: r.usize(),
        };
        let cseq = r.varint() as u32;
        let method_code = flags & METHOD_MASK;
        let method = if method_code == 0 {
            Span {
                off: r.usize(),
                len: r.usize(),
            }
        } else {
            Span { off: 0, len: 0 }
        };
        let branch = match r.usize() {
            0 => None,
            n => Some(Span {
                len: n - 1,
                off: r.usize(),
            }),
        };
        let transport = if flags & FLAG_TCP != 0 {
            Transport::Tcp
        } else {
            Transport::Udp
        };
        let source = if flags & ADDR_MASK == ADDR_V4 {
            let ip = Ipv4Addr::from(r.array::<4>());
            let port = u16::from_le_bytes(r.array::<2>());
            SocketAddr::V4(SocketAddrV4::new(ip, port))
        } else {
            let ip = Ipv6Addr::from(r.array::<16>());
            let port = u16::from_le_bytes(r.array::<2>());
            let (flowinfo, scope_id) = if flags & ADDR_MASK == ADDR_V6_SCOPED {
                (r.varint() as u32, r.varint() as u32)
            } else {
                (0, 0)
            };
            SocketAddr::V6(SocketAddrV6::new(ip, port, flowinfo, scope_id))
        };
        let local = r.varint() as u32;
        let zigzag = r.varint();
        let received_back = ((zigzag >> 1) as i64 ^ -((zigzag & 1) as i64)) as u64;
        let body = r.pos;
        Meta {
            body,
            keys: body + msgid_len,
            copies_len,
            call_id,
            cseq,
            method_code,
            method,
            branch,
            transport,
            source,
            local,
            received_back,
        }
    }

    fn span<'a>(&self, data: &'a [u8], s: Span) -> &'a [u8] {
        &data[self.keys + s.off..self.keys + s.off + s.len]
    }

    pub(super) fn message<'a>(&self, data: &'a [u8]) -> &'a [u8] {
        &data[self.keys + self.copies_len..]
    }

    pub(super) fn msgid<'a>(&self, data: &'a [u8]) -> &'a [u8] {
        &data[self.body..self.keys]
    }

    pub(super) fn call_id<'a>(&self, data: &'a [u8]) -> &'a [u8] {
        self.span(data, self.call_id)
    }

    pub(super) fn cseq_method<'a>(&self, data: &'a [u8]) -> &'a [u8] {
        match self.method_code {
            0 => self.span(data, self.method),
            c => KNOWN_METHODS[usize::from(c) - 1],
        }
    }

    pub(super) fn branch<'a>(&self, data: &'a [u8]) -> Option<&'a [u8]> {
        self.branch.map(|b| self.span(data, b))
    }

    pub(super) fn context(&self, deadline_ms: u64) -> ReceiveContext {
        ReceiveContext {
            source: self.source,
            local: LocalSocket::from_u32(self.local),
            transport: self.transport,
            received_ms: deadline_ms.wrapping_sub(self.received_back),
        }
    }

    /// Bytes counted against `max_bytes` for an item of `data_len` bytes.
    pub(super) fn body_len(&self, data_len: usize) -> usize {
        data_len - self.body
    }
}
