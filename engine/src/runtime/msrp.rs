//! MSRP connections (RFC 4975 over TCP): accepting the far side's connections, opening ours
//! when a session the shard owns is the active side, framing each byte stream into frames for
//! the core, and writing what the core sends. The core decides everything else: a frame goes
//! to the shard its To-Path's session id names, and a closed connection is reported to all.
//!
//! Connection names: the core numbers the connections it opens from 1 up; connections this
//! driver accepts are numbered from `ACCEPTED_BASE` up, so the two never meet.

use super::shard::{Caller, Shard};
use super::tcp::{refuse, ConnQueue, ConnSlot};
use glommio::channels::local_channel::{LocalReceiver, LocalSender};
use glommio::net::{TcpListener, TcpStream};
use sipshard_core::gateway::bad_frame_response;
use sipshard_core::transport::MsrpConn;
use sipshard_parser::msrp::{Framer, Limits};
use sipshard_parser::Status;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// The first number of a connection this driver accepted.
pub(super) const ACCEPTED_BASE: u32 = 1 << 31;

/// The framing limits of one connection: the largest frame head, and the largest frame (a
/// chunk's body plus its head); past them the connection is answered 413/400 and closed.
fn limits(shard: &Shard) -> Limits {
    Limits {
        max_frame: shard.spec.msrp_max_frame,
        max_headers_bytes: 16 << 10,
    }
}

pub(super) async fn msrp_accept_loop(shard: Rc<Shard>, listener: TcpListener, local: SocketAddr) {
    loop {
        let stream = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("shard {}: MSRP accept on {local} failed: {e}", shard.id);
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
        let id = ACCEPTED_BASE | (shard.next_msrp.get() & !ACCEPTED_BASE);
        shard.next_msrp.set(shard.next_msrp.get().wrapping_add(1));
        let conn = MsrpConn {
            shard: shard.id as u16,
            id,
        };
        let (queue, wake, room) = register(&shard, conn);
        let s = shard.clone();
        glommio::spawn_local(async move {
            connection(s, conn, (queue, wake, room), stream).await;
            drop(slot);
        })
        .detach();
    }
}

/// Opens a connection the core asked for; writes queue until it is up. A connection that
/// cannot be opened is reported closed.
pub(super) fn connect(shard: &Rc<Shard>, conn: MsrpConn, addr: SocketAddr) {
    let (queue, wake, room) = register(shard, conn);
    let s = shard.clone();
    glommio::spawn_local(async move {
        let stream = glommio::timer::timeout(Duration::from_secs(10), async {
            TcpStream::connect(addr).await
        })
        .await;
        match stream {
            Ok(stream) => connection(s, conn, (queue, wake, room), stream).await,
            Err(e) => {
                tracing::info!("shard {}: MSRP connection to {addr} failed: {e}", s.id);
                s.msrp.borrow_mut().remove(&conn.id);
                queue.close();
                closed(&s, conn).await;
            }
        }
    })
    .detach();
}

type Writer = (Rc<ConnQueue>, LocalReceiver<()>, LocalSender<()>);

fn register(shard: &Rc<Shard>, conn: MsrpConn) -> Writer {
    let (queue, wake, room) = ConnQueue::new();
    shard.msrp.borrow_mut().insert(conn.id, queue.clone());
    (queue, wake, room)
}

/// Queues frames on a connection this shard holds (never waits: MSRP writers are the core's
/// outputs, which may come from a mesh handler).
pub(super) fn write(shard: &Shard, conn: MsrpConn, bytes: Vec<u8>) {
    let queue = shard.msrp.borrow().get(&conn.id).cloned();
    if !queue.is_some_and(|q| q.push(bytes)) {
        tracing::debug!(
            "shard {}: MSRP write on {conn} dropped (connection gone)",
            shard.id
        );
        shard.stats.send_errors.fetch_add(1, Ordering::Relaxed);
    }
}

/// Closes a connection the core opened: what is queued is written, then the socket is shut.
pub(super) fn close(shard: &Shard, conn: MsrpConn) {
    if let Some(q) = shard.msrp.borrow().get(&conn.id) {
        q.close();
    }
}

async fn connection(shard: Rc<Shard>, conn: MsrpConn, writer: Writer, stream: TcpStream) {
    use futures_lite::AsyncReadExt;
    let (queue, wake, room) = writer;
    let _ = stream.set_nodelay(true);
    let mut reader = match super::tcp::reader_for(&stream) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!("shard {}: cannot set up MSRP connection: {e}", shard.id);
            shard.msrp.borrow_mut().remove(&conn.id);
            closed(&shard, conn).await;
            return;
        }
    };
    shard.stats.msrp_connections.fetch_add(1, Ordering::Relaxed);
    // Connections we opened bind at once (our first SEND); one the far side opened must send
    // a frame soon, or it is only holding a descriptor.
    let mut wait = if conn.id & ACCEPTED_BASE != 0 {
        shard.spec.msrp_bind_timeout
    } else {
        shard.spec.msrp_idle_timeout
    };
    let writer = glommio::spawn_local(super::tcp::write_replies(queue.clone(), stream, wake, room));
    let limits = limits(&shard);
    let mut framer = Framer::new(limits);
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    let mut chunk = vec![0u8; 16384];
    'conn: loop {
        let _ = reader.set_read_timeout(Some(wait));
        wait = shard.spec.msrp_idle_timeout;
        let n = match reader.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if shard.stop.load(Ordering::Relaxed) || queue.is_closed() {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        loop {
            match framer.frame_len(&buf) {
                Ok(Status::Partial) => break,
                Ok(Status::Complete(len)) => {
                    framer.reset();
                    let frame: Vec<u8> = buf.drain(..len).collect();
                    received(&shard, conn, frame).await;
                }
                Err(e) => {
                    // A frame we cannot take: answered when it is a request we can read
                    // enough of (413 past the size limit, else 400), then the connection
                    // goes, since the stream cannot be resynchronised.
                    shard.stats.msrp_errors.fetch_add(1, Ordering::Relaxed);
                    if let Some(r) = bad_frame_response(&buf, e) {
                        queue.push(r);
                    }
                    break 'conn;
                }
            }
        }
    }
    shard.msrp.borrow_mut().remove(&conn.id);
    queue.close();
    shard.stats.msrp_connections.fetch_sub(1, Ordering::Relaxed);
    writer.await;
    closed(&shard, conn).await;
}

async fn received(shard: &Rc<Shard>, conn: MsrpConn, frame: Vec<u8>) {
    let started = std::time::Instant::now();
    let mut outs = Vec::new();
    {
        let mut core = shard.core.borrow_mut();
        if core.on_msrp_frame(shard.now_ms(), conn, frame, &mut outs) {
            core.record_processing(started.elapsed().as_nanos() as u64);
        }
    }
    shard.perform(outs, Caller::Input(None)).await;
}

async fn closed(shard: &Rc<Shard>, conn: MsrpConn) {
    let mut outs = Vec::new();
    shard
        .core
        .borrow_mut()
        .on_msrp_closed(shard.now_ms(), conn, &mut outs);
    shard.perform(outs, Caller::Input(None)).await;
}
