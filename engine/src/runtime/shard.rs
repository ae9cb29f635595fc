//! Starting the shards and the tasks each one runs.
//!
//! Per shard: one receive task per UDP listen address, one accept task per TCP listen address
//! (and a reader and a writer task per connection), one task per mesh peer draining what other
//! shards send, and one repeating tick. Shard 0 also serves the control endpoint.

use super::core::{ConnRef, Out, RxContext, ShardCore, SharedState, Work};
use super::metrics::ShardStats;
use super::net::{self, SocketOptions, Transport};
use crate::control;
use glommio::channels::channel_mesh::{MeshBuilder, Senders};
use glommio::channels::local_channel::{self, LocalSender};
use glommio::net::{TcpListener, TcpStream, UdpSocket};
use glommio::{LocalExecutorBuilder, Placement};
use serde_json::Value;
use sipshard_parser::sip::{self, FrameOptions, Framed};
use sipshard_parser::Status;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::unix::io::{FromRawFd, IntoRawFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Tuning of one shard's executor and sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardTuning {
    /// The CPU to pin to, or `None` for unpinned.
    pub cpu: Option<usize>,
    /// Datagrams handled per receive burst before yielding (also the mesh batch size).
    pub udp_batch: usize,
    /// SO_RCVBUF / SO_SNDBUF.
    pub sockets: (usize, usize),
    /// Busy-poll this long before parking the thread.
    pub spin_before_park: Duration,
    /// io_uring registered buffer memory.
    pub io_memory: usize,
}

/// Everything the driver needs to start.
#[derive(Debug, Clone)]
pub struct RuntimeSpec {
    /// Listen addresses (port 0 is resolved once and shared by all shards).
    pub listen: Vec<(Transport, SocketAddr)>,
    /// One entry per shard.
    pub shards: Vec<ShardTuning>,
    /// The control endpoint, if enabled.
    pub control: Option<SocketAddr>,
    /// Period of the repository tick.
    pub tick: Duration,
    /// SIP over TCP limits.
    pub tcp: FrameOptions,
    /// Close a TCP connection idle this long.
    pub tcp_idle: Duration,
    /// Per shard: async-pull task-queue groups and their shares, in group-id order.
    pub groups: Vec<Vec<(String, usize)>>,
    /// Largest UDP datagram accepted (the receive buffer size).
    pub max_udp_payload: usize,
}

/// What the shards said when they stopped.
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    /// Items still stored per shard at shutdown.
    pub items_left: Vec<u64>,
}

/// What travels over the mesh between shards.
enum MeshMsg {
    /// Work for the core of the receiving shard.
    Work(Work),
    /// Bytes to write on a TCP connection the receiving shard owns.
    TcpWrite { conn: ConnRef, bytes: Vec<u8> },
    /// A control-plane request for the receiving shard's core.
    Control {
        id: u64,
        from: usize,
        method: String,
        params: Value,
    },
    /// The answer to a control request.
    ControlReply {
        id: u64,
        result: Result<Value, control::RpcError>,
    },
}

/// The writer queue of one TCP connection.
type ConnWriter = Rc<LocalSender<Vec<u8>>>;

/// State shared by a shard's tasks (one thread, so `Rc` + `RefCell`; never borrowed across an
/// await).
struct Shard {
    id: usize,
    core: RefCell<ShardCore>,
    stats: Arc<ShardStats>,
    udp: Vec<Option<Rc<UdpSocket>>>,
    mesh: Senders<MeshMsg>,
    conns: RefCell<HashMap<(u16, SocketAddr), ConnWriter>>,
    pending_control:
        RefCell<HashMap<u64, local_channel::LocalSender<Result<Value, control::RpcError>>>>,
    next_control: Cell<u64>,
    stop: Arc<AtomicBool>,
    epoch: Instant,
    spec: RuntimeSpec,
    groups: Vec<glommio::TaskQueueHandle>,
}

impl Shard {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Carries out what the core asked for.
    async fn perform(self: &Rc<Self>, outs: Vec<Out>) {
        for o in outs {
            match o {
                Out::Udp {
                    listen,
                    dest,
                    bytes,
                } => {
                    let Some(Some(sock)) = self.udp.get(usize::from(listen)) else {
                        continue;
                    };
                    match sock.send_to(&bytes, dest).await {
                        Ok(_) => self.stats.sent.fetch_add(1, Ordering::Relaxed),
                        Err(e) => {
                            tracing::debug!("shard {}: send to {dest} failed: {e}", self.id);
                            self.stats.send_errors.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                }
                Out::Tcp { conn, bytes } => {
                    if usize::from(conn.shard) == self.id {
                        self.write_local(conn, bytes).await;
                    } else {
                        self.send_mesh(usize::from(conn.shard), MeshMsg::TcpWrite { conn, bytes })
                            .await;
                    }
                }
                Out::Shard { to, work } => {
                    self.stats.cross_shard_ops.fetch_add(1, Ordering::Relaxed);
                    self.send_mesh(to, MeshMsg::Work(work)).await;
                }
                Out::Queue { group, work } => {
                    let tq = self.groups.get(group).copied();
                    let me = self.clone();
                    let fut = async move {
                        let mut outs = Vec::new();
                        me.core.borrow_mut().on_work(me.now_ms(), work, &mut outs);
                        me.perform_boxed(outs).await;
                    };
                    let task = match tq {
                        Some(tq) => glommio::spawn_local_into(fut, tq),
                        None => Ok(glommio::spawn_local(fut)),
                    };
                    if let Ok(t) = task {
                        t.detach();
                    }
                }
            }
        }
    }

    fn perform_boxed(
        self: &Rc<Self>,
        outs: Vec<Out>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>> {
        let me = self.clone();
        Box::pin(async move { me.perform(outs).await })
    }

    async fn write_local(&self, conn: ConnRef, bytes: Vec<u8>) {
        let tx = self.conns.borrow().get(&(conn.listen, conn.peer)).cloned();
        match tx {
            Some(tx) => {
                if tx.send(bytes).await.is_err() {
                    self.stats.send_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            None => {
                tracing::debug!(
                    "shard {}: connection from {} is gone; reply dropped",
                    self.id,
                    conn.peer
                );
                self.stats.send_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    async fn send_mesh(&self, to: usize, msg: MeshMsg) {
        if self.mesh.send_to(to, msg).await.is_err() {
            tracing::warn!("shard {}: mesh send to shard {to} failed", self.id);
        }
    }

    /// Handles a complete SIP message read by this shard: to its owner, or processed here.
    async fn dispatch(self: &Rc<Self>, bytes: Vec<u8>, rx: RxContext) {
        let started = Instant::now();
        let mut outs = Vec::new();
        let owner = self.core.borrow().owner_of(&bytes);
        if owner != self.id {
            self.stats.forwarded_out.fetch_add(1, Ordering::Relaxed);
            self.send_mesh(owner, MeshMsg::Work(Work::Sip { bytes, rx }))
                .await;
            return;
        }
        self.core
            .borrow_mut()
            .on_sip(self.now_ms(), bytes, rx, &mut outs);
        self.stats.processing(started.elapsed().as_nanos() as u64);
        self.perform(outs).await;
    }

    async fn on_mesh(self: &Rc<Self>, from: usize, msg: MeshMsg) {
        match msg {
            MeshMsg::Work(work) => {
                let started = Instant::now();
                if matches!(work, Work::Sip { .. }) {
                    self.stats.forwarded_in.fetch_add(1, Ordering::Relaxed);
                }
                let mut outs = Vec::new();
                self.core
                    .borrow_mut()
                    .on_work(self.now_ms(), work, &mut outs);
                self.stats.processing(started.elapsed().as_nanos() as u64);
                self.perform(outs).await;
            }
            MeshMsg::TcpWrite { conn, bytes } => self.write_local(conn, bytes).await,
            MeshMsg::Control {
                id,
                from: origin,
                method,
                params,
            } => {
                let mut outs = Vec::new();
                let result =
                    self.core
                        .borrow_mut()
                        .control(self.now_ms(), &method, &params, &mut outs);
                self.perform(outs).await;
                self.send_mesh(origin, MeshMsg::ControlReply { id, result })
                    .await;
            }
            MeshMsg::ControlReply { id, result } => {
                let tx = self.pending_control.borrow_mut().remove(&id);
                if let Some(tx) = tx {
                    let _ = tx.try_send(result);
                }
                let _ = from;
            }
        }
    }

    /// Runs a control method on shard `target` (locally or over the mesh).
    async fn control_on(
        self: &Rc<Self>,
        target: usize,
        method: &str,
        params: Value,
    ) -> Result<Value, control::RpcError> {
        if target == self.id {
            let mut outs = Vec::new();
            let r = self
                .core
                .borrow_mut()
                .control(self.now_ms(), method, &params, &mut outs);
            self.perform(outs).await;
            return r;
        }
        let id = self.next_control.get();
        self.next_control.set(id + 1);
        let (tx, rx) = local_channel::new_bounded(1);
        self.pending_control.borrow_mut().insert(id, tx);
        self.send_mesh(
            target,
            MeshMsg::Control {
                id,
                from: self.id,
                method: method.to_string(),
                params,
            },
        )
        .await;
        rx.recv()
            .await
            .unwrap_or_else(|| Err(control::RpcError::server("shard did not answer")))
    }
}

async fn udp_loop(shard: Rc<Shard>, listen: u16, sock: Rc<UdpSocket>, local: SocketAddr) {
    let mut buf = vec![0u8; shard.spec.max_udp_payload.clamp(512, 65535) + 1];
    let batch = shard.spec.shards[shard.id].udp_batch.max(1);
    let mut n_in_burst = 0;
    loop {
        let (n, source) = match sock.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!("shard {}: UDP receive on {local} failed: {e}", shard.id);
                glommio::timer::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if shard.stop.load(Ordering::Relaxed) {
            return;
        }
        shard.stats.received.fetch_add(1, Ordering::Relaxed);
        shard
            .stats
            .received_bytes
            .fetch_add(n as u64, Ordering::Relaxed);
        if n == buf.len() {
            // Larger than max_udp_payload: truncated by the kernel, so not a message we can read.
            shard.stats.parse_error("body_truncated");
            continue;
        }
        let rx = RxContext {
            listen,
            transport: Transport::Udp,
            source,
            local,
            conn: None,
            received_ms: shard.now_ms(),
        };
        shard.dispatch(buf[..n].to_vec(), rx).await;
        n_in_burst += 1;
        if n_in_burst >= batch {
            n_in_burst = 0;
            glommio::yield_if_needed().await;
        }
    }
}

async fn tcp_accept_loop(shard: Rc<Shard>, listen: u16, listener: TcpListener, local: SocketAddr) {
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
    let conn = ConnRef {
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
                        shard.write_local(conn, b"\r\n".to_vec()).await;
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
                    shard.dispatch(msg, rx).await;
                }
                Err(e) => {
                    shard
                        .stats
                        .tcp_framing_errors
                        .fetch_add(1, Ordering::Relaxed);
                    let reply = shard.core.borrow().framing_error_reply(&buf, e);
                    if let Some(reply) = reply {
                        shard.write_local(conn, reply).await;
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

async fn tick_loop(shard: Rc<Shard>) {
    let period = shard.spec.tick;
    loop {
        glommio::timer::sleep(period).await;
        if shard.stop.load(Ordering::Relaxed) {
            return;
        }
        let mut outs = Vec::new();
        shard.core.borrow_mut().tick(shard.now_ms(), &mut outs);
        shard.perform(outs).await;
    }
}

/// The control handler running on shard 0.
struct ControlHandler {
    shard: Rc<Shard>,
    all_stats: Vec<Arc<ShardStats>>,
    nshards: usize,
}

impl control::Handler for ControlHandler {
    fn call(
        &self,
        method: String,
        params: Value,
    ) -> control::LocalFuture<Result<Value, control::RpcError>> {
        let shard = self.shard.clone();
        let n = self.nshards;
        Box::pin(async move {
            match method.as_str() {
                // One item: the owner of its Call-ID.
                "repo.get" | "repo.pull" | "repo.rm" => {
                    let callid = params
                        .get("callid")
                        .and_then(Value::as_str)
                        .ok_or_else(|| control::RpcError::invalid_params("missing `callid`"))?;
                    let owner = shard.core.borrow().owner_of_callid(callid.as_bytes());
                    shard.control_on(owner, &method, params).await
                }
                // Global: once.
                "config.reload" | "config.show" | "core.uptime" => {
                    shard.control_on(shard.id, &method, params).await
                }
                // Pages over every shard in turn: cursor = shard << 40 | cursor in that shard.
                "repo.list" => {
                    let limit = params
                        .get("limit")
                        .and_then(Value::as_u64)
                        .unwrap_or(100)
                        .clamp(1, 1000);
                    let cursor = params.get("cursor").and_then(Value::as_u64).unwrap_or(0);
                    let (mut s, mut c) = ((cursor >> 40) as usize, cursor & ((1 << 40) - 1));
                    let mut items = Vec::new();
                    let mut next = None;
                    while s < n && (items.len() as u64) < limit {
                        let want = limit - items.len() as u64;
                        let page = shard
                            .control_on(
                                s,
                                "repo.list",
                                serde_json::json!({"cursor": c, "limit": want}),
                            )
                            .await?;
                        if let Some(Value::Array(a)) = page.get("items") {
                            items.extend(a.iter().cloned());
                        }
                        match page.get("next").and_then(Value::as_u64) {
                            Some(nc) => {
                                c = nc;
                                next = Some(((s as u64) << 40) | nc);
                            }
                            None => {
                                s += 1;
                                c = 0;
                                next = (s < n).then_some((s as u64) << 40);
                            }
                        }
                    }
                    Ok(serde_json::json!({ "items": items, "next": next }))
                }
                _ => {
                    let mut parts = Vec::with_capacity(n);
                    for s in 0..n {
                        parts.push(shard.control_on(s, &method, params.clone()).await?);
                    }
                    ShardCore::merge(&method, parts)
                }
            }
        })
    }

    fn metrics(&self) -> String {
        super::metrics::render_prometheus(&self.all_stats)
    }
}

/// Starts every shard, runs until `stop` is set, and reports what was left.
pub fn run(
    spec: RuntimeSpec,
    shared: Arc<SharedState>,
    stop: Arc<AtomicBool>,
    on_ready: impl FnOnce(&[(Transport, SocketAddr)], Option<SocketAddr>) + Send + 'static,
) -> std::io::Result<RunReport> {
    let nshards = spec.shards.len().max(1);
    let t0 = &spec.shards[0];
    let opts = SocketOptions {
        recv_buffer: t0.sockets.0,
        send_buffer: t0.sockets.1,
    };
    // Resolve port 0 once; keep those sockets as shard 0's.
    let (listen, first) = net::resolve_ports(&spec.listen, &opts)?;
    let control_listener = match spec.control {
        Some(addr) => {
            let l = std::net::TcpListener::bind(addr)?;
            Some(l)
        }
        None => None,
    };
    let control_addr = control_listener
        .as_ref()
        .map(|l| l.local_addr())
        .transpose()?;
    let mut spec = spec;
    spec.listen = listen.clone();
    let stats: Vec<Arc<ShardStats>> = (0..nshards)
        .map(|_| Arc::new(ShardStats::default()))
        .collect();
    let mesh = MeshBuilder::full(nshards, 1024);
    let epoch = Instant::now();
    let mut first = Some(first);
    let mut control_listener = control_listener;
    let mut handles = Vec::new();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<std::io::Result<()>>();
    for id in 0..nshards {
        let tuning = spec.shards[id];
        let placement = match tuning.cpu {
            Some(c) => Placement::Fixed(c),
            None => Placement::Unbound,
        };
        let mut builder = LocalExecutorBuilder::new(placement).name(&format!("shard-{id}"));
        if !tuning.spin_before_park.is_zero() {
            builder = builder.spin_before_park(tuning.spin_before_park);
        }
        if tuning.io_memory > 0 {
            builder = builder.io_memory(tuning.io_memory);
        }
        let sockets: Vec<socket2::Socket> = match first.take() {
            Some(s) => s,
            None => {
                let o = SocketOptions {
                    recv_buffer: tuning.sockets.0,
                    send_buffer: tuning.sockets.1,
                };
                let mut v = Vec::new();
                for &(t, a) in &listen {
                    v.push(match t {
                        Transport::Udp => net::bind_udp(a, &o)?,
                        Transport::Tcp => net::bind_tcp(a, &o)?,
                    });
                }
                v
            }
        };
        let control_l = if id == 0 {
            control_listener.take()
        } else {
            None
        };
        let mesh = mesh.clone();
        let spec = spec.clone();
        let shared = shared.clone();
        let stop = stop.clone();
        let all_stats = stats.clone();
        let ready_tx = ready_tx.clone();
        let listen = listen.clone();
        let h = builder
            .spawn(move || async move {
                let (senders, mut receivers) = match mesh.join().await {
                    Ok(x) => x,
                    Err(e) => {
                        let _ = ready_tx
                            .send(Err(std::io::Error::other(format!("mesh join failed: {e}"))));
                        return 0u64;
                    }
                };
                let groups: Vec<glommio::TaskQueueHandle> = spec
                    .groups
                    .get(id)
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .map(|(name, shares)| {
                        glommio::executor().create_task_queue(
                            glommio::Shares::Static(*shares),
                            glommio::Latency::NotImportant,
                            name,
                        )
                    })
                    .collect();
                let mut udp = Vec::new();
                let mut tcp = Vec::new();
                for (i, (s, &(t, a))) in sockets.into_iter().zip(listen.iter()).enumerate() {
                    match t {
                        Transport::Udp => udp.push(Some(Rc::new(UdpSocket::from(s)))),
                        Transport::Tcp => {
                            udp.push(None);
                            // SAFETY-free: ownership of the descriptor moves to glommio.
                            let fd = s.into_raw_fd();
                            tcp.push((i as u16, fd, a));
                        }
                    }
                }
                let now_ms = epoch.elapsed().as_millis() as u64;
                let core = ShardCore::new(
                    id,
                    nshards,
                    shared,
                    all_stats[id].clone(),
                    listen.clone(),
                    now_ms,
                );
                let shard = Rc::new(Shard {
                    id,
                    core: RefCell::new(core),
                    stats: all_stats[id].clone(),
                    udp,
                    mesh: senders,
                    conns: RefCell::new(HashMap::new()),
                    pending_control: RefCell::new(HashMap::new()),
                    next_control: Cell::new(0),
                    stop: stop.clone(),
                    epoch,
                    spec: spec.clone(),
                    groups,
                });
                for (i, sock) in shard.udp.iter().enumerate() {
                    if let Some(sock) = sock {
                        let local = listen[i].1;
                        glommio::spawn_local(udp_loop(
                            shard.clone(),
                            i as u16,
                            sock.clone(),
                            local,
                        ))
                        .detach();
                    }
                }
                for (i, fd, a) in tcp {
                    let l = tcp_listener_from_fd(fd);
                    glommio::spawn_local(tcp_accept_loop(shard.clone(), i, l, a)).detach();
                }
                for (from, rx) in receivers.streams() {
                    let s = shard.clone();
                    glommio::spawn_local(async move {
                        while let Some(msg) = rx.recv().await {
                            // Handled in a task of its own: what it sends may wait on a full
                            // channel to a shard that is itself waiting on us, and this loop
                            // must keep draining meanwhile.
                            let s = s.clone();
                            glommio::spawn_local(async move { s.on_mesh(from, msg).await })
                                .detach();
                        }
                    })
                    .detach();
                }
                glommio::spawn_local(tick_loop(shard.clone())).detach();
                if let Some(l) = control_l {
                    let fd = l.into_raw_fd();
                    let l = tcp_listener_from_fd(fd);
                    let handler = Rc::new(ControlHandler {
                        shard: shard.clone(),
                        all_stats: all_stats.clone(),
                        nshards,
                    });
                    glommio::spawn_local(control::serve(l, handler)).detach();
                }
                let _ = ready_tx.send(Ok(()));
                // Run until asked to stop, then give in-flight work a moment to finish.
                while !stop.load(Ordering::Relaxed) {
                    glommio::timer::sleep(Duration::from_millis(20)).await;
                }
                glommio::timer::sleep(Duration::from_millis(100)).await;
                let items = shard.core.borrow().items();
                items
            })
            .map_err(|e| std::io::Error::other(format!("cannot start shard {id}: {e}")))?;
        handles.push(h);
    }
    drop(ready_tx);
    for _ in 0..nshards {
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(std::io::Error::other("a shard failed to start")),
        }
    }
    on_ready(&listen, control_addr);
    let mut report = RunReport::default();
    for h in handles {
        report
            .items_left
            .push(h.join().map_err(|e| std::io::Error::other(e.to_string()))?);
    }
    Ok(report)
}

#[allow(unsafe_code)]
fn tcp_listener_from_fd(fd: i32) -> TcpListener {
    // SAFETY: `fd` is a listening TCP socket whose ownership was just released to us.
    unsafe { TcpListener::from_raw_fd(fd) }
}
