//! The glommio driver: one executor per shard, the sockets each shard owns, the channel mesh
//! between shards, a timer per shard sleeping until its core's next deadline, the control
//! endpoint, signals and shutdown.
//!
//! Everything protocol-related happens in `sipshard_core::shard::ShardCore`, which has no
//! glommio in it; this module only moves bytes between sockets, the mesh and the core (as
//! quinn's driver does for quinn-proto).
//!
//! - [`shard`]: what a shard's tasks share, carrying out the core's outputs, the timer task.
//! - [`udp`]: SIP over UDP, received and sent in batches.
//! - [`tcp`]: SIP over TCP connections.
//! - [`msrp`]: MSRP connections of the gateway.
//! - [`resolve`]: name resolution for the gateway's requests (RFC 3263).
//! - [`mesh`]: the channels between shards, which never block a handler.
//! - [`control`]: the control endpoint's handler (on shard 0).
//! - [`net`]: binding sockets.

mod control;
mod mesh;
mod msrp;
pub mod net;
mod resolve;
mod shard;
mod tcp;
mod udp;

pub use sipshard_core::metrics;
pub use sipshard_core::transport::Transport;

use glommio::channels::channel_mesh::MeshBuilder;
use glommio::channels::local_channel;
use glommio::net::UdpSocket;
use glommio::{LocalExecutorBuilder, Placement};
use mesh::Mesh;
use net::SocketOptions;
use shard::{timer_loop, Shard};
use sipshard_core::metrics::ShardStats;
use sipshard_core::shard::{ShardCore, SharedState};
use sipshard_parser::sip::FrameOptions;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::unix::io::IntoRawFd;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tcp::{tcp_accept_loop, tcp_listener_from_fd};
use udp::udp_loop;

/// How often an idle shard looks whether it was asked to stop.
const STOP_POLL: Duration = Duration::from_millis(100);

/// How long a stopping shard may take to answer its parked callers.
const SHUTDOWN_DRAIN: Duration = Duration::from_secs(5);

/// Capacity of each shard-to-shard channel (messages); more waits in the sender's outbox.
const MESH_CHANNEL_CAPACITY: usize = 1024;

/// Tuning of one shard's executor and sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardTuning {
    /// The CPU to pin to, or `None` for unpinned.
    pub cpu: Option<usize>,
    /// Most datagrams read by one `recvmmsg`; a shard yields to its other tasks after each.
    pub udp_batch: usize,
    /// How long a shard that woke from idle waits before it reads its UDP sockets, so that
    /// one pass finds several datagrams (zero: none).
    pub udp_coalesce: Duration,
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
    /// Who may call it.
    pub control_access: crate::control::Access,
    /// SIP over TCP limits.
    pub tcp: FrameOptions,
    /// Close a TCP connection idle this long.
    pub tcp_idle: Duration,
    /// Close a TCP connection whose message has not arrived whole this long after its first
    /// byte (a peer trickling it).
    pub tcp_message_timeout: Duration,
    /// Per shard: async-pull task-queue groups and their shares, in group-id order.
    pub groups: Vec<Vec<(String, usize)>>,
    /// Largest UDP datagram accepted (the receive buffer size).
    pub max_udp_payload: usize,
    /// The gateway's MSRP listen addresses; empty when no route uses the gateway (it does not
    /// run then).
    pub msrp: Vec<SocketAddr>,
    /// Largest MSRP frame read (head and chunk body).
    pub msrp_max_frame: usize,
    /// Close an accepted MSRP connection that sends no frame this long after it opened: a
    /// session it could bind would have failed its setup by then.
    pub msrp_bind_timeout: Duration,
    /// Close an MSRP connection nothing has come on for this long: every session on it has
    /// ended its idle time by then (a live one gets at least its SENDs' responses).
    pub msrp_idle_timeout: Duration,
    /// Most accepted connections (SIP TCP and MSRP) open at once, all shards together.
    pub max_connections: u64,
    /// Most on one shard; 0: no bound of its own.
    pub max_connections_per_shard: u64,
}

/// What the shards said when they stopped.
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    /// Items still parked per shard when it stopped, each answered through `repo:shutdown`
    /// (or `repo:expired`).
    pub items_left: Vec<u64>,
}

/// 32 bytes from the operating system's CSPRNG, for a shard's gateway ids (MSRP session ids
/// must be unguessable, RFC 4975 §14.1).
fn gateway_seed() -> std::io::Result<[u8; 32]> {
    use std::io::Read;
    let mut seed = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut seed)?;
    Ok(seed)
}

/// Starts every shard, runs until `stop` is set, and reports what was left.
pub fn run(
    spec: RuntimeSpec,
    shared: Arc<SharedState>,
    stop: Arc<AtomicBool>,
    on_ready: impl FnOnce(&[(Transport, SocketAddr)], &[SocketAddr], Option<SocketAddr>)
        + Send
        + 'static,
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
            let l = std::net::TcpListener::bind(addr)
                .map_err(|e| net::bind_error(e, "control", addr, "[control] listen, --control"))?;
            Some(l)
        }
        None => None,
    };
    let control_addr = control_listener
        .as_ref()
        .map(|l| l.local_addr())
        .transpose()?;
    // The MSRP listeners: port 0 is drawn once (shard 0 keeps that socket) and shared.
    let mut msrp_first = Vec::new();
    let mut msrp_listen = Vec::new();
    for &a in &spec.msrp {
        let setting = "[gateway] msrp_listen, --msrp-listen";
        if a.port() != 0 {
            net::check_free(Transport::Tcp, a)
                .map_err(|e| net::bind_error(e, "msrp", a, setting))?;
        }
        let s = net::bind_tcp(a, &opts).map_err(|e| net::bind_error(e, "msrp", a, setting))?;
        let bound = s
            .local_addr()?
            .as_socket()
            .ok_or_else(|| std::io::Error::other("MSRP listener has no address"))?;
        msrp_listen.push(bound);
        msrp_first.push(s);
    }
    let mut msrp_first = Some(msrp_first);
    let mut spec = spec;
    spec.listen = listen.clone();
    spec.msrp = msrp_listen.clone();
    let stats: Vec<Arc<ShardStats>> = (0..nshards)
        .map(|_| Arc::new(ShardStats::default()))
        .collect();
    let all_conns = Arc::new(AtomicU64::new(0));
    // (shard, inode) of every UDP socket, for the drops the kernel counts on each.
    let udp_inodes: Arc<std::sync::Mutex<Vec<(usize, u64)>>> = Arc::default();
    let started_unix_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let mesh = MeshBuilder::full(nshards, MESH_CHANNEL_CAPACITY);
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
        for (s, &(t, _)) in sockets.iter().zip(&listen) {
            if let (Transport::Udp, Some(ino)) = (t, net::inode(s)) {
                udp_inodes
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((id, ino));
            }
        }
        let msrp_sockets: Vec<socket2::Socket> = match msrp_first.take() {
            Some(s) => s,
            None => msrp_listen
                .iter()
                .map(|&a| net::bind_tcp(a, &opts))
                .collect::<std::io::Result<_>>()?,
        };
        let seed = gateway_seed()?;
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
        let all_conns = all_conns.clone();
        let udp_inodes = udp_inodes.clone();
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
                let mesh = Mesh::new(id, nshards, senders, all_stats[id].clone());
                let (timer_bell, bell) = local_channel::new_bounded(1);
                let mut core = ShardCore::new(
                    id,
                    nshards,
                    shared,
                    all_stats[id].clone(),
                    listen.clone(),
                    now_ms,
                );
                if !spec.msrp.is_empty() {
                    let net = sipshard_core::gateway::Net {
                        sip: listen.clone(),
                        msrp: spec.msrp.clone(),
                    };
                    core = core.with_gateway(net, seed, now_ms);
                }
                let shard = Rc::new(Shard {
                    id,
                    core: RefCell::new(core),
                    stats: all_stats[id].clone(),
                    udp,
                    udp_out: udp::Outbox::default(),
                    spare_outs: Cell::default(),
                    mesh,
                    conns: RefCell::new(HashMap::new()),
                    msrp: RefCell::new(HashMap::new()),
                    next_msrp: Cell::new(0),
                    pending_control: RefCell::new(HashMap::new()),
                    next_control: Cell::new(0),
                    stop: stop.clone(),
                    epoch,
                    spec: spec.clone(),
                    groups,
                    armed: Cell::new(u64::MAX),
                    timer_bell,
                    open_conns: Cell::new(0),
                    all_conns: all_conns.clone(),
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
                for (s, &a) in msrp_sockets.into_iter().zip(spec.msrp.iter()) {
                    let l = tcp_listener_from_fd(s.into_raw_fd());
                    glommio::spawn_local(msrp::msrp_accept_loop(shard.clone(), l, a)).detach();
                }
                for (_, rx) in receivers.streams() {
                    let s = shard.clone();
                    // Handled inline, one message at a time per peer: handling never waits on
                    // a send to another shard (see `mesh`), so this keeps draining.
                    glommio::spawn_local(async move {
                        while let Some(msg) = rx.recv().await {
                            s.on_mesh(msg).await;
                        }
                    })
                    .detach();
                }
                glommio::spawn_local(timer_loop(shard.clone(), bell)).detach();
                if let Some(l) = control_l {
                    let fd = l.into_raw_fd();
                    let l = tcp_listener_from_fd(fd);
                    let handler = Rc::new(control::ControlHandler {
                        shard: shard.clone(),
                        all_stats: all_stats.clone(),
                        started_unix_s,
                        udp_inodes: udp_inodes.clone(),
                    });
                    let access = Rc::new(spec.control_access.clone());
                    glommio::spawn_local(crate::control::serve(l, handler, access)).detach();
                }
                let _ = ready_tx.send(Ok(()));
                // Run until asked to stop (the flag is set by the signal thread, which cannot
                // wake an executor, so it is looked at ten times a second: the only wake-up of
                // an idle shard), then give in-flight work a moment to finish.
                while !stop.load(Ordering::Relaxed) {
                    glommio::timer::sleep(STOP_POLL).await;
                }
                // Every parked caller is answered (`repo:shutdown`, else `repo:expired`),
                // within a bound: a shard that cannot send them all in time stops anyway.
                let mut outs = Vec::new();
                let answered = shard
                    .core
                    .borrow_mut()
                    .on_shutdown(shard.now_ms(), &mut outs);
                let sent = glommio::timer::timeout(SHUTDOWN_DRAIN, async {
                    shard.perform(outs, shard::Caller::Input(None)).await;
                    // A receive pass left suspended by the stop never flushes: send its
                    // datagrams and these answers here.
                    shard.flush_udp().await;
                    Ok(())
                })
                .await;
                if sent.is_err() {
                    tracing::warn!(
                        "shard {id}: not every parked caller could be answered within {} s",
                        SHUTDOWN_DRAIN.as_secs()
                    );
                }
                glommio::timer::sleep(Duration::from_millis(100)).await;
                answered as u64
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
    on_ready(&listen, &msrp_listen, control_addr);
    let mut report = RunReport::default();
    for h in handles {
        report
            .items_left
            .push(h.join().map_err(|e| std::io::Error::other(e.to_string()))?);
    }
    Ok(report)
}
