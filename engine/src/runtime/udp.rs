//! SIP over UDP: each shard drains its sockets in batches and sends the datagrams a pass
//! produced in batches.
//!
//! A datagram used to cost one executor wake-up, one io_uring receive and one `sendmsg`; under
//! load those system calls and the reactor around them cost more than handling the message. Now
//! an idle shard takes one datagram through glommio (a non-blocking receive, else a wait on the
//! ring that brings the datagram with it); when that one was already waiting, more may be, and
//! the socket is read with non-blocking `recvmmsg` (up to `udp_batch` datagrams a call) until
//! it is empty before the shard waits again. Every datagram the pass's
//! messages produce (answers, pulled messages, the gateway's requests) waits in the shard's
//! [`Outbox`] and leaves in one `sendmmsg` per socket when the pass ends.
//!
//! Per core, `udp_coalesce_us` sets a receive-coalescing window: while traffic flows, a shard
//! that emptied its socket sleeps that long and drains again, instead of waking for each
//! datagram, so one wake-up serves every datagram of the window (less CPU per request at
//! moderate rates, up to the window in added latency). The first datagram after a quiet window
//! is handled at once. `spin_before_park_us` instead spins the executor before it parks.

use super::shard::{Caller, Shard};
use super::Transport;
use glommio::net::UdpSocket;
use sipshard_core::transport::RxContext;
use sipshard_mmsg::{Batch, Received};
use std::cell::{Cell, RefCell};
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Most datagrams handed to one `sendmmsg`.
const SEND_CHUNK: usize = 64;

/// The datagrams a shard has produced and not yet sent, and who will send them.
#[derive(Default)]
pub(super) struct Outbox {
    queued: RefCell<Vec<(u16, SocketAddr, Vec<u8>)>>,
    /// Receive passes in progress: each flushes the outbox when it ends, so a task that
    /// queued datagrams meanwhile leaves them to it.
    passes: Cell<u32>,
    mmsg: RefCell<Batch>,
}

impl Outbox {
    pub(super) fn push(&self, listen: u16, dest: SocketAddr, bytes: Vec<u8>) {
        self.queued.borrow_mut().push((listen, dest, bytes));
    }

    /// Whether the task that queued datagrams should send them now (no pass will).
    pub(super) fn flush_is_mine(&self) -> bool {
        self.passes.get() == 0 && !self.queued.borrow().is_empty()
    }
}

impl Shard {
    /// Sends every queued datagram: one `sendmmsg` per socket and up to [`SEND_CHUNK`]
    /// datagrams; what the socket's buffer cannot take now waits for room through the ring.
    pub(super) async fn flush_udp(&self) {
        let queued = std::mem::take(&mut *self.udp_out.queued.borrow_mut());
        if queued.is_empty() {
            return;
        }
        let mut later: Vec<usize> = Vec::new();
        {
            let mut mmsg = self.udp_out.mmsg.borrow_mut();
            let mut chunk: Vec<(&[u8], Option<SocketAddr>)> = Vec::with_capacity(SEND_CHUNK);
            let mut idx: Vec<usize> = Vec::with_capacity(SEND_CHUNK);
            // A shard has a socket or two: one scan of the queue per socket keeps each
            // destination's datagrams in the order they were produced.
            for (listen, sock) in self.udp.iter().enumerate() {
                let Some(sock) = sock else { continue };
                let mine = queued
                    .iter()
                    .enumerate()
                    .filter(|(_, q)| usize::from(q.0) == listen);
                let mut mine = mine.peekable();
                while mine.peek().is_some() {
                    chunk.clear();
                    idx.clear();
                    for (i, (_, dest, bytes)) in mine.by_ref().take(SEND_CHUNK) {
                        chunk.push((bytes.as_slice(), Some(*dest)));
                        idx.push(i);
                    }
                    let mut at = 0;
                    while at < chunk.len() {
                        match mmsg.send(sock.as_raw_fd(), &chunk[at..]) {
                            Ok(n) if n > 0 => {
                                self.stats.sent.fetch_add(n as u64, Ordering::Relaxed);
                                at += n;
                            }
                            Ok(_) => {
                                later.extend_from_slice(&idx[at..]);
                                break;
                            }
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                                later.extend_from_slice(&idx[at..]);
                                break;
                            }
                            Err(e) => {
                                // The error is the first datagram's (no route to its
                                // destination, say): drop that one, send the rest.
                                let dest = queued[idx[at]].1;
                                tracing::debug!("shard {}: send to {dest} failed: {e}", self.id);
                                self.stats.send_errors.fetch_add(1, Ordering::Relaxed);
                                at += 1;
                            }
                        }
                    }
                }
            }
            // Datagrams for a listen address without a UDP socket cannot be sent (the core
            // only addresses its own sockets): they are dropped as before.
        }
        for i in later {
            let (listen, dest, bytes) = &queued[i];
            let Some(Some(sock)) = self.udp.get(usize::from(*listen)) else {
                continue;
            };
            match sock.send_to(bytes, *dest).await {
                Ok(_) => self.stats.sent.fetch_add(1, Ordering::Relaxed),
                Err(e) => {
                    tracing::debug!("shard {}: send to {dest} failed: {e}", self.id);
                    self.stats.send_errors.fetch_add(1, Ordering::Relaxed)
                }
            };
        }
        // Give the (emptied) vector back for its capacity, unless datagrams came meanwhile.
        let mut q = self.udp_out.queued.borrow_mut();
        if q.is_empty() {
            let mut queued = queued;
            queued.clear();
            *q = queued;
        }
    }
}

/// Receives on one UDP socket of a shard until the shard stops.
pub(super) async fn udp_loop(
    shard: Rc<Shard>,
    listen: u16,
    sock: Rc<UdpSocket>,
    local: SocketAddr,
) {
    // One byte more than the largest datagram accepted, so a longer one shows as cut.
    let slot = shard.spec.max_udp_payload.clamp(512, 65535);
    let tuning = shard.spec.shards[shard.id];
    let window = tuning.udp_coalesce;
    let batch = tuning.udp_batch.max(1);
    let mut rx = Receiver {
        fd: sock.as_raw_fd(),
        shard,
        listen,
        local,
        mmsg: Batch::new(),
        bufs: vec![vec![0u8; slot + 1]; batch],
        got: Vec::with_capacity(batch),
    };
    // Traffic is flowing and the core has a coalescing window: gather a window's worth
    // before the next pass (one wake-up for all of it).
    let mut flowing = false;
    loop {
        if rx.shard.stop.load(Ordering::Relaxed) {
            return;
        }
        if flowing {
            glommio::timer::sleep(window).await;
            // A window that brought nothing ends the flow.
            flowing = rx.drain_all().await > 0;
            continue;
        }
        // Idle: one datagram through glommio, which tries a non-blocking receive and otherwise
        // waits on the ring (the data comes with the completion: one system call per wake-up
        // at low rates, as before batching). Ready at once means more may be queued: drain.
        let (res, backlog) = {
            let mut one = std::pin::pin!(sock.recv_from(&mut rx.bufs[0]));
            match futures_lite::future::poll_once(&mut one).await {
                Some(res) => (res, true),
                None => (one.await, false),
            }
        };
        match res {
            Ok((n, from)) => {
                rx.got.clear();
                rx.got.push(Received {
                    len: n,
                    truncated: n > slot,
                    from: Some(from),
                });
                rx.pass().await;
            }
            Err(e) => {
                tracing::warn!(
                    "shard {}: UDP receive on {} failed: {e}",
                    rx.shard.id,
                    rx.local
                );
                glommio::timer::sleep(Duration::from_millis(10)).await;
                continue;
            }
        }
        if backlog {
            rx.drain_all().await;
        }
        flowing = !window.is_zero();
    }
}

/// Full batches read in a row before the receive task lets the shard's other tasks (TCP, the
/// mesh, the timer) run.
///
/// Not after every batch: each yield risks a glommio stall seen on the VMs we measure on (the
/// executor now and then sleeps with the yielded task still runnable and wakes only at its next
/// timer, 100 ms later: in 6 s runs at 10,000-20,000/s, 3 stalls in 12 runs with a yield after
/// every batch, with `yield_if_needed` or a plain waker-based yield alike, none in 12 without;
/// docs/benchmarks.md, "Stalls of 100 ms"). A socket that fills batch after batch is a flood,
/// where the other tasks must still get their turn.
const FULL_BATCHES_BEFORE_YIELD: u32 = 8;

/// One UDP socket's receive side: where it listens, and the buffers every batch reuses.
struct Receiver {
    shard: Rc<Shard>,
    listen: u16,
    local: SocketAddr,
    fd: std::os::fd::RawFd,
    mmsg: Batch,
    /// One per datagram of a batch, each one byte longer than the largest datagram accepted.
    bufs: Vec<Vec<u8>>,
    /// What the last receive put in `bufs`, in order.
    got: Vec<Received>,
}

impl Receiver {
    /// Reads the socket until a batch comes back short (it is empty then, or nearly: the next
    /// receive takes the rest), yielding after every [`FULL_BATCHES_BEFORE_YIELD`] full
    /// batches; how many datagrams that was.
    async fn drain_all(&mut self) -> usize {
        let (mut total, mut full) = (0, 0);
        loop {
            let n = self.drain().await;
            total += n;
            if n < self.bufs.len() || self.shard.stop.load(Ordering::Relaxed) {
                return total;
            }
            full += 1;
            if full == FULL_BATCHES_BEFORE_YIELD {
                full = 0;
                futures_lite::future::yield_now().await;
            }
        }
    }

    /// One non-blocking `recvmmsg` and the pass over what it read; how many datagrams that was.
    async fn drain(&mut self) -> usize {
        match self.mmsg.recv(self.fd, &mut self.bufs, true, &mut self.got) {
            Ok(()) => {
                let slot = self.bufs[0].len() - 1;
                for r in self.got.iter_mut() {
                    r.truncated |= r.len > slot;
                }
                self.pass().await;
                self.got.len()
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
            Err(e) => {
                tracing::warn!(
                    "shard {}: UDP receive on {} failed: {e}",
                    self.shard.id,
                    self.local
                );
                glommio::timer::sleep(Duration::from_millis(10)).await;
                0
            }
        }
    }

    /// Hands the datagrams of the last receive to the core, then sends what they produced.
    async fn pass(&self) {
        let shard = &self.shard;
        let out = &shard.udp_out;
        out.passes.set(out.passes.get() + 1);
        let mut t = Instant::now();
        for (r, buf) in self.got.iter().zip(&self.bufs) {
            t = received(shard, self.listen, self.local, r, buf, t).await;
        }
        out.passes.set(out.passes.get() - 1);
        shard.flush_udp().await;
    }
}

/// Hands one datagram of a pass to the core. `started` is when its handling began (the end
/// of the previous one's: one clock read per datagram); returns when it ended.
async fn received(
    shard: &Rc<Shard>,
    listen: u16,
    local: SocketAddr,
    r: &Received,
    buf: &[u8],
    started: Instant,
) -> Instant {
    shard.stats.received.fetch_add(1, Ordering::Relaxed);
    shard
        .stats
        .received_bytes
        .fetch_add(r.len as u64, Ordering::Relaxed);
    let Some(source) = r.from else {
        return started;
    };
    if r.truncated {
        // Larger than max_udp_payload: cut by the kernel, so not a message we can read.
        shard.stats.parse_error("body_truncated");
        return started;
    }
    let now_ms = started.duration_since(shard.epoch).as_millis() as u64;
    let rx = RxContext {
        listen,
        transport: Transport::Udp,
        source,
        local,
        conn: None,
        received_ms: now_ms,
    };
    let mut outs = shard.take_outs();
    let ended = {
        let mut core = shard.core.borrow_mut();
        let here = core.on_datagram(now_ms, buf[..r.len].to_vec(), rx, &mut outs);
        let ended = Instant::now();
        if here {
            let ns = ended.duration_since(started).as_nanos() as u64;
            shard.stats.processing(ns);
            core.record_processing(ns);
        }
        ended
    };
    if outs.is_empty() {
        shard.spare_outs.set(outs);
        return ended;
    }
    shard.perform(outs, Caller::Input(None)).await;
    ended
}
