//! SIP over TCP: accepting connections, framing each one's byte stream into messages for the
//! core (Content-Length framing, RFC 5626 keepalives), and writing replies, gathered per
//! connection.

use super::shard::{Shard, Wait};
use super::Transport;
use glommio::channels::local_channel;
use glommio::net::{TcpListener, TcpStream};
use sipshard_core::transport::{ConnId, RxContext};
use sipshard_parser::sip::{self, Framed};
use sipshard_parser::Status;
use std::net::SocketAddr;
use std::os::unix::io::{FromRawFd, IntoRawFd};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Duration;

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
        let s = shard.clone();
        glommio::spawn_local(async move { tcp_connection(s, listen, local, stream).await })
            .detach();
    }
}

/// Most bytes of queued replies one TCP write gathers.
const TCP_WRITE_COALESCE: usize = 64 * 1024;

async fn tcp_connection(shard: Rc<Shard>, listen: u16, local: SocketAddr, stream: TcpStream) {
    use futures_lite::{AsyncReadExt, AsyncWriteExt};
    let Ok(peer) = stream.peer_addr() else {
        return;
    };
    // Reads and writes go through two descriptors of the one connection, so the reader (here)
    // and the writer task never share a borrow and nothing locks.
    let mut reader = match reader_for(&stream) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(
                "shard {}: cannot set up connection from {peer}: {e}",
                shard.id
            );
            return;
        }
    };
    let _ = reader.set_read_timeout(Some(shard.spec.tcp_idle));
    // Replies go out as soon as they are written: with Nagle on, a reply written while the
    // previous one is unacknowledged waits for the peer's (delayed) ACK, milliseconds on a
    // quiet connection.
    let _ = stream.set_nodelay(true);
    let (tx, rx) = local_channel::new_bounded::<Vec<u8>>(256);
    shard.conns.borrow_mut().insert((listen, peer), Rc::new(tx));
    shard.stats.tcp_connections.fetch_add(1, Ordering::Relaxed);
    let mut writer_stream = stream;
    let writer = glommio::spawn_local(async move {
        use futures_lite::StreamExt;
        let replies = rx.stream();
        futures_lite::pin!(replies);
        while let Some(mut batch) = replies.next().await {
            // Replies queued while the last write was in flight leave together in one write
            // (one segment under load, as Nagle would give, without its wait when idle).
            while batch.len() < TCP_WRITE_COALESCE {
                match futures_lite::future::poll_once(replies.next()).await {
                    Some(Some(more)) => batch.extend_from_slice(&more),
                    _ => break,
                }
            }
            if writer_stream.write_all(&batch).await.is_err() {
                break;
            }
        }
        let _ = writer_stream.close().await;
    });
    let conn = ConnId {
        shard: shard.id as u16,
        listen,
        peer,
    };
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    let mut chunk = vec![0u8; 16384];
    'conn: loop {
        let n = match reader.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if shard.stop.load(Ordering::Relaxed) {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        loop {
            match sip::frame(&buf, &shard.spec.tcp) {
                Ok(Status::Partial) => break,
                Ok(Status::Complete(Framed::Keepalive(k))) => {
                    // RFC 5626 §4.4.1: a double-CRLF ping is answered with a CRLF pong.
                    if k >= 4 {
                        shard
                            .write_local(conn, b"\r\n".to_vec(), Wait::Allowed)
                            .await;
                    }
                    buf.drain(..k);
                }
                Ok(Status::Complete(Framed::Message { len, .. })) => {
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
                    shard.received(msg, rx).await;
                }
                Err(e) => {
                    let reply = shard.core.borrow_mut().on_framing_error(&buf, e);
                    if let Some(reply) = reply {
                        shard.write_local(conn, reply, Wait::Allowed).await;
                    }
                    break 'conn;
                }
            }
        }
    }
    // Dropping the sender ends the writer once it has written what is queued.
    shard.conns.borrow_mut().remove(&(listen, peer));
    shard.stats.tcp_connections.fetch_sub(1, Ordering::Relaxed);
    writer.await;
}

/// A second glommio stream on a duplicate of `stream`'s descriptor, used for reading.
#[allow(unsafe_code)]
fn reader_for(stream: &TcpStream) -> std::io::Result<TcpStream> {
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
