//! What the engine needs from a transport, and the socket set-up UDP and TCP share.
//!
//! The engine thread owns one [`Transport`] holding its share of the sockets (UDP) or
//! connections (TCP). Sends are queued by the engine and handed over in batches; receives are
//! drained without blocking; the engine waits in `ppoll` on the file descriptors the transport
//! lists, so one thread drives both directions without a second thread per socket.

use crate::stats::Stats;
use std::net::SocketAddr;

/// A message to send on one of the thread's sockets or connections.
#[derive(Debug)]
pub struct Outgoing {
    /// Which socket / connection (0-based, per thread).
    pub conn: usize,
    /// The bytes.
    pub bytes: Vec<u8>,
}

/// One thread's sockets or connections.
pub trait Transport {
    /// How many sockets / connections the thread has.
    fn conns(&self) -> usize;
    /// Our address on socket `conn`, as the server sees it (for Via and Contact).
    fn local_addr(&self, conn: usize) -> SocketAddr;
    /// Sends from the front of `out`; what could not be sent yet (the socket is full) stays in
    /// `out`. Errors are counted in `stats` and the message is dropped (its transaction then
    /// times out, or is retransmitted).
    fn send(&mut self, out: &mut Vec<Outgoing>, stats: &mut Stats);
    /// Reads every message that is ready, without blocking, handing each to `on_message`.
    /// Returns how many were read.
    fn recv(&mut self, on_message: &mut dyn FnMut(&[u8]), stats: &mut Stats) -> usize;
    /// The descriptors to wait on; `want_write` when messages are waiting for socket space.
    fn poll_fds(&self, fds: &mut Vec<libc::pollfd>, want_write: bool);
    /// Whether the transport retransmits for us (TCP): then --retransmit does not apply.
    fn reliable(&self) -> bool;
}

/// Stable labels for I/O errors in the report.
pub fn io_error_kind(prefix: &'static str, e: &std::io::Error) -> &'static str {
    use std::io::ErrorKind as K;
    match (prefix, e.kind()) {
        ("send", K::ConnectionRefused) => "send: connection refused (ICMP port unreachable)",
        ("recv", K::ConnectionRefused) => "recv: connection refused (ICMP port unreachable)",
        ("send", K::ConnectionReset) | ("send", K::BrokenPipe) => "send: connection reset",
        ("recv", K::ConnectionReset) => "recv: connection reset",
        ("send", _) => "send: other I/O error",
        ("recv", _) => "recv: other I/O error",
        _ => "other I/O error",
    }
}
