//! SIP over TCP: accepting connections, framing each one's byte stream into messages for the
//! core (Content-Length framing, RFC 5626 keepalives), and writing replies, gathered per
//! connection.

use super::shard::Shard;
use super::Transport;
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::net::{TcpListener, TcpStream};
use sipshard_core::transport::{ConnId, RxContext};
use sipshard_parser::sip::{self, Framed};
use sipshard_parser::Status;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::os::unix::io::{FromRawFd, IntoRawFd};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

pub(super) async fn tcp_accept_loop(
    shard: Rc<Shard>,
    listen: u16,
    listener: TcpListener,
    local: SocketAddr,
) {
    loop {
        let stream = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("shard {}: TCP accept on {local} failed: {e}", shard.id);
                glommio::timer::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if shard.stop.load(Ordering::Relaxed) {
            return;
        }
        let Some(slot) = ConnSlot::take(&shard) else {
            refuse(&shard, stream, local).await;
            continue;
        };
        let s = shard.clone();
        glommio::spawn_local(async move {
            tcp_connection(s, listen, local, stream).await;
            drop(slot);
        })
        .detach();
    }
}

/// A place among the accepted connections (`max_connections`, `max_connections_per_shard`),
/// given back when the connection's task ends.
pub(super) struct ConnSlot(Rc<Shard>);

impl ConnSlot {
    /// A place, or `None` when this shard or the whole server is at its limit.
    pub(super) fn take(shard: &Rc<Shard>) -> Option<ConnSlot> {
        let spec = &shard.spec;
        if spec.max_connections_per_shard > 0
            && shard.open_conns.get() >= spec.max_connections_per_shard
        {
            return None;
        }
        if shard.all_conns.fetch_add(1, Ordering::Relaxed) >= spec.max_connections {
            shard.all_conns.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        shard.open_conns.set(shard.open_conns.get() + 1);
        Some(ConnSlot(shard.clone()))
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.0.open_conns.set(self.0.open_conns.get() - 1);
        self.0.all_conns.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Closes a connection past the limits at once: a flood of connections costs a descriptor
/// for microseconds, and the connections already open keep theirs. Counted, and logged at
/// powers of two so that a flood does not flood the log too.
pub(super) async fn refuse(shard: &Shard, mut stream: TcpStream, local: SocketAddr) {
    let n = shard
        .stats
        .connections_refused
        .fetch_add(1, Ordering::Relaxed)
        + 1;
    if n.is_power_of_two() {
        let peer = stream
            .peer_addr()
            .map_or_else(|_| "?".to_string(), |p| p.to_string());
        tracing::warn!(
            "shard {}: connection from {peer} to {local} refused: {} open here, {} in all \
             (max_connections_per_shard {}, max_connections {}); {n} refused so far",
            shard.id,
            shard.open_conns.get(),
            shard.all_conns.load(Ordering::Relaxed),
            shard.spec.max_connections_per_shard,
            shard.spec.max_connections,
        );
    }
    let _ = futures_lite::AsyncWriteExt::close(&mut stream).await;
}

/// Most bytes of queued replies one TCP write gathers.
const TCP_WRITE_COALESCE: usize = 64 * 1024;

/// Queued reply bytes above which the connection's own reader waits before queuing more: a
/// peer that pipelines faster than it reads is slowed down, not answered into memory.
const QUEUE_SOFT_LIMIT: usize = 256 * 1024;

/// Queued reply bytes past which a reply is dropped (and counted in `send_errors`): only a
/// peer that has stopped reading gets here, since every writer but its own reader never waits.
const QUEUE_HARD_LIMIT: usize = 4 * 1024 * 1024;

/// The replies waiting to be written on one connection. Any task of the shard appends without
/// waiting (a mesh handler must never wait); only the connection's own reader waits for room.
pub(super) struct ConnQueue {
    replies: RefCell<VecDeque<Vec<u8>>>,
    bytes: Cell<usize>,
    /// Writes queued so far (replies, pongs), for [`linger`].
    pushed: Cell<u64>,
    closed: Cell<bool>,
    wake_writer: LocalSender<()>,
    room: LocalReceiver<()>,
}

impl ConnQueue {
    /// An empty queue, with the writer's wake-up and the reader's room signal.
    pub(super) fn new() -> (Rc<ConnQueue>, LocalReceiver<()>, LocalSender<()>) {
        let (wake_writer, wake) = local_channel::new_bounded(1);
        let (room_tx, room) = local_channel::new_bounded(1);
        let q = Rc::new(ConnQueue {
            replies: RefCell::new(VecDeque::new()),
            bytes: Cell::new(0),
            pushed: Cell::new(0),
            closed: Cell::new(false),
            wake_writer,
            room,
        });
        (q, wake, room_tx)
    }

    /// Whether the connection is closing (its owner closed it, or the peer went).
    pub(super) fn is_closed(&self) -> bool {
        self.closed.get()
    }

    /// Appends a reply; `false` when it was dropped (the connection is closing, or the peer has
    /// not read `QUEUE_HARD_LIMIT` bytes of replies).
    pub(super) fn push(&self, bytes: Vec<u8>) -> bool {
        if self.closed.get() || self.bytes.get() + bytes.len() > QUEUE_HARD_LIMIT {
            return false;
        }
        self.pushed.set(self.pushed.get() + 1);
        self.bytes.set(self.bytes.get() + bytes.len());
        self.replies.borrow_mut().push_back(bytes);
        let _ = self.wake_writer.try_send(());
        true
    }

    /// Waits until no more than `QUEUE_SOFT_LIMIT` bytes are queued.
    pub(super) async fn room(&self) {
        while self.bytes.get() > QUEUE_SOFT_LIMIT && !self.closed.get() {
            if self.room.recv().await.is_none() {
                return;
            }
        }
    }

    pub(super) fn close(&self) {
        self.closed.set(true);
        let _ = self.wake_writer.try_send(());
    }

    /// The next write: every queued reply up to `TCP_WRITE_COALESCE` bytes, gathered (under
    /// load one segment carries several replies, as Nagle would give, without its wait when
    /// idle).
    fn take_batch(&self) -> Vec<u8> {
        let mut q = self.replies.borrow_mut();
        let mut batch = q.pop_front().unwrap_or_default();
        while batch.len() < TCP_WRITE_COALESCE {
            match q.pop_front() {
                Some(more) => batch.extend_from_slice(&more),
                None => break,
            }
        }
        self.bytes.set(self.bytes.get() - batch.len());
        batch
    }
}

/// Writes what `queue` holds until it is closed and empty (or the peer goes away).
pub(super) async fn write_replies(
    queue: Rc<ConnQueue>,
    mut stream: TcpStream,
    wake: LocalReceiver<()>,
    room: LocalSender<()>,
) {
    use futures_lite::AsyncWriteExt;
    loop {
        let batch = queue.take_batch();
        if batch.is_empty() {
            if queue.closed.get() || wake.recv().await.is_none() {
                break;
            }
            continue;
        }
        if stream.write_all(&batch).await.is_err() {
            queue.closed.set(true);
            queue.replies.borrow_mut().clear();
            queue.bytes.set(0);
            let _ = room.try_send(());
            break;
        }
        if queue.bytes.get() <= QUEUE_SOFT_LIMIT {
            let _ = room.try_send(());
        }
    }
    // Shut the socket, not just this descriptor: the reader holds a second one and must see
    // the end too when the owner closed the connection.
    let _ = stream.shutdown(std::net::Shutdown::Both).await;
    let _ = stream.close().await;
}

async fn tcp_connection(shard: Rc<Shard>, listen: u16, local: SocketAddr, stream: TcpStream) {
    let Ok(peer) = stream.peer_addr() else {
        return;
    };
    let (queue, wake, room) = ConnQueue::new();
    shard
        .conns
        .borrow_mut()
        .insert((listen, peer), queue.clone());
    serve(shard, listen, local, peer, stream, (queue, wake, room)).await;
}

/// Opens a connection the core asked for (a request of the gateway's over TCP); writes queue
/// until it is up, and it is then read like an accepted one (the responses come on it). One
/// that cannot be opened is dropped with what was queued (the request's transaction times
/// out).
pub(super) fn connect(shard: &Rc<Shard>, conn: ConnId, local: SocketAddr) {
    if shard.conns.borrow().contains_key(&(conn.listen, conn.peer)) {
        return;
    }
    let (queue, wake, room) = ConnQueue::new();
    shard
        .conns
        .borrow_mut()
        .insert((conn.listen, conn.peer), queue.clone());
    let s = shard.clone();
    glommio::spawn_local(async move {
        let stream = glommio::timer::timeout(Duration::from_secs(10), async {
            TcpStream::connect(conn.peer).await
        })
        .await;
        match stream {
            Ok(stream) => {
                serve(
                    s,
                    conn.listen,
                    local,
                    conn.peer,
                    stream,
                    (queue, wake, room),
                )
                .await
            }
            Err(e) => {
                tracing::info!(
                    "shard {}: TCP connection to {} failed: {e}",
                    s.id,
                    conn.peer
                );
                s.conns.borrow_mut().remove(&(conn.listen, conn.peer));
                queue.close();
                s.stats.send_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    })
    .detach();
}

/// Reads and writes one connection until either side ends it.
async fn serve(
    shard: Rc<Shard>,
    listen: u16,
    local: SocketAddr,
    peer: SocketAddr,
    stream: TcpStream,
    writer: (Rc<ConnQueue>, LocalReceiver<()>, LocalSender<()>),
) {
    use futures_lite::AsyncReadExt;
    let (queue, wake, room_tx) = writer;
    // Reads and writes go through two descriptors of the one connection, so the reader (here)
    // and the writer task never share a borrow and nothing locks.
    let mut reader = match reader_for(&stream) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(
                "shard {}: cannot set up connection with {peer}: {e}",
                shard.id
            );
            shard.conns.borrow_mut().remove(&(listen, peer));
            queue.close();
            return;
        }
    };
    let _ = reader.set_read_timeout(Some(shard.spec.tcp_idle));
    // Replies go out as soon as they are written: with Nagle on, a reply written while the
    // previous one is unacknowledged waits for the peer's (delayed) ACK, milliseconds on a
    // quiet connection.
    let _ = stream.set_nodelay(true);
    shard.stats.tcp_connections.fetch_add(1, Ordering::Relaxed);
    let writer = glommio::spawn_local(write_replies(queue.clone(), stream, wake, room_tx));
    let conn = ConnId {
        shard: shard.id as u16,
        listen,
        peer,
    };
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    let mut chunk = vec![0u8; 16384];
    // When the first byte of the message now arriving came: it must be whole within
    // `tcp_message_timeout`, however slowly its bytes trickle in.
    let mut started: Option<Instant> = None;
    // Requests read, and whether the peer closed its side (it may still read our answers).
    let (mut requests, mut peer_closed) = (0u64, false);
    'conn: loop {
        let wait = match started {
            None => shard.spec.tcp_idle,
            Some(t) => match shard.spec.tcp_message_timeout.checked_sub(t.elapsed()) {
                Some(left) if !left.is_zero() => left.min(shard.spec.tcp_idle),
                _ => {
                    shard
                        .stats
                        .tcp_message_timeouts
                        .fetch_add(1, Ordering::Relaxed);
                    break;
                }
            },
        };
        let _ = reader.set_read_timeout(Some(wait));
        let n = match reader.read(&mut chunk).await {
            Ok(0) => {
                peer_closed = true;
                break;
            }
            Ok(n) => n,
            Err(_) => {
                if started.is_some() {
                    shard
                        .stats
                        .tcp_message_timeouts
                        .fetch_add(1, Ordering::Relaxed);
                }
                break;
            }
        };
        if shard.stop.load(Ordering::Relaxed) {
            break;
        }
        if buf.is_empty() {
            started = Some(Instant::now());
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut completed = false;
        loop {
            match sip::frame(&buf, &shard.spec.tcp) {
                Ok(Status::Partial) => break,
                Ok(Status::Complete(Framed::Keepalive(k))) => {
                    // RFC 5626 §4.4.1: a double-CRLF ping is answered with a CRLF pong.
                    if k >= 4 {
                        requests += 1;
                        shard.write_local(conn, b"\r\n".to_vec(), true).await;
                    }
                    buf.drain(..k);
                    completed = true;
                }
                Ok(Status::Complete(Framed::Message { len, .. })) => {
                    completed = true;
                    let msg: Vec<u8> = buf.drain(..len).collect();
                    shard.stats.received.fetch_add(1, Ordering::Relaxed);
                    shard
                        .stats
                        .received_bytes
                        .fetch_add(len as u64, Ordering::Relaxed);
                    let rx = RxContext {
                        listen,
                        transport: Transport::Tcp,
                        source: peer,
                        local,
                        conn: Some(conn),
                        received_ms: shard.now_ms(),
                    };
                    if !msg.starts_with(b"SIP/") {
                        requests += 1;
                    }
                    shard.received(msg, rx).await;
                }
                Err(e) => {
                    let reply = shard.core.borrow_mut().on_framing_error(&buf, e);
                    if let Some(reply) = reply {
                        shard.write_message(conn, reply, true).await;
                    }
                    break 'conn;
                }
            }
        }
        // What is left is the start of the next message: its clock starts now.
        if buf.is_empty() {
            started = None;
        } else if completed {
            started = Some(Instant::now());
        }
    }
    if peer_closed {
        linger(&queue, requests).await;
    }
    // The writer ends once it has written what is queued.
    shard.conns.borrow_mut().remove(&(listen, peer));
    queue.close();
    shard.stats.tcp_connections.fetch_sub(1, Ordering::Relaxed);
    writer.await;
}

/// Longest a connection stays open for answers after its peer closed its side.
const LINGER: Duration = Duration::from_secs(1);

/// The peer closed its side after `requests` requests: a request whose answer comes from
/// another shard (its Call-ID's owner) is still on its way, and a half-closed peer still reads.
/// So the connection stays until every request has had a write queued, or for `LINGER` (some
/// requests, like ACK, are never answered).
async fn linger(queue: &ConnQueue, requests: u64) {
    let until = Instant::now() + LINGER;
    while queue.pushed.get() < requests && !queue.is_closed() && Instant::now() < until {
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
}

/// A second glommio stream on a duplicate of `stream`'s descriptor, used for reading.
#[allow(unsafe_code)]
pub(super) fn reader_for(stream: &TcpStream) -> std::io::Result<TcpStream> {
    use std::os::fd::{AsRawFd, BorrowedFd};
    // SAFETY: the descriptor belongs to `stream`, which outlives this borrow.
    let fd = unsafe { BorrowedFd::borrow_raw(stream.as_raw_fd()) };
    let owned = fd.try_clone_to_owned()?;
    // SAFETY: `owned` is a fresh descriptor of the same connected TCP socket that nothing else
    // owns; ownership moves to the returned stream.
    Ok(unsafe { TcpStream::from_raw_fd(owned.into_raw_fd()) })
}

#[allow(unsafe_code)]
pub(super) fn tcp_listener_from_fd(fd: i32) -> TcpListener {
    // SAFETY: `fd` is a listening TCP socket whose ownership was just released to us.
    unsafe { TcpListener::from_raw_fd(fd) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue() -> (ConnQueue, LocalReceiver<()>, LocalSender<()>) {
        let (wake_writer, wake) = local_channel::new_bounded(1);
        let (room_tx, room) = local_channel::new_bounded(1);
        let q = ConnQueue {
            replies: RefCell::new(VecDeque::new()),
            bytes: Cell::new(0),
            pushed: Cell::new(0),
            closed: Cell::new(false),
            wake_writer,
            room,
        };
        (q, wake, room_tx)
    }

    #[test]
    fn replies_gather_into_writes_and_a_queue_that_is_not_read_stops_growing() {
        glommio::LocalExecutor::default().run(async {
            let (q, _wake, _room) = queue();
            // Small replies leave together, in order, up to the coalescing size.
            for n in 0..3u8 {
                assert!(q.push(vec![b'a' + n; 10]));
            }
            assert_eq!(
                q.take_batch(),
                [&[b'a'; 10][..], &[b'b'; 10], &[b'c'; 10]].concat()
            );
            assert_eq!(q.bytes.get(), 0);
            // Nobody writes: past the hard limit replies are refused, memory stays bounded.
            let reply = vec![0u8; 64 * 1024];
            let mut accepted = 0;
            for _ in 0..100 {
                accepted += usize::from(q.push(reply.clone()));
            }
            assert_eq!(accepted, QUEUE_HARD_LIMIT / reply.len());
            assert!(q.bytes.get() <= QUEUE_HARD_LIMIT);
            // A batch is at most the coalescing size (or one larger reply).
            assert_eq!(q.take_batch().len(), TCP_WRITE_COALESCE);
            q.close();
            assert!(!q.push(vec![1]), "a closing connection takes no more");
        });
    }
}
