//! One shard's driver: the state its tasks share and how it carries out what the core asks.
//!
//! Per shard: one receive task per UDP listen address, one accept task per TCP listen address
//! (and a reader and a writer task per connection, in [`super::tcp`]), one task per mesh peer
//! handling what other shards send, one drainer per mesh peer ([`super::mesh`]), and one timer
//! task sleeping until the core's next deadline. Shard 0 also serves the control endpoint.

use super::mesh::{Mesh, MeshMsg};
use super::tcp::ConnQueue;
use super::{RuntimeSpec, Transport};
use glommio::channels::local_channel::{self, LocalSender};
use glommio::net::UdpSocket;
use serde_json::Value;
use sipshard_core::metrics::ShardStats;
use sipshard_core::shard::{ControlCall, Out, RpcError, ShardCore, Work};
use sipshard_core::transport::{ConnId, RxContext};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Who is carrying out a core's outputs, which says what it may wait for.
#[derive(Clone, Copy)]
pub(super) enum Caller {
    /// A task fed by something outside the mesh (a socket, the timer, a task queue, the control
    /// endpoint): it may wait for room on the mesh, and for room in the queue of the connection
    /// it reads, if any.
    Input(Option<ConnId>),
    /// A mesh handler: it never waits on another shard or on a connection, so shards sending to
    /// each other cannot wait on each other.
    Mesh,
}

/// How long a control call waits for another shard's part of the answer.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);

/// State shared by a shard's tasks (one thread, so `Rc` + `RefCell`; never borrowed across an
/// await).
pub(super) struct Shard {
    pub(super) id: usize,
    pub(super) core: RefCell<ShardCore>,
    pub(super) stats: Arc<ShardStats>,
    pub(super) udp: Vec<Option<Rc<UdpSocket>>>,
    /// Datagrams produced and not yet sent (see [`super::udp`]).
    pub(super) udp_out: super::udp::Outbox,
    pub(super) spare_outs: Cell<Vec<Out>>,
    pub(super) mesh: Mesh,
    pub(super) conns: RefCell<HashMap<(u16, SocketAddr), Rc<ConnQueue>>>,
    /// MSRP connections this shard holds, by number.
    pub(super) msrp: RefCell<HashMap<u32, Rc<ConnQueue>>>,
    /// The next number for an accepted MSRP connection.
    pub(super) next_msrp: Cell<u32>,
    pub(super) pending_control: RefCell<HashMap<u64, LocalSender<Result<Value, RpcError>>>>,
    pub(super) next_control: Cell<u64>,
    pub(super) stop: Arc<AtomicBool>,
    pub(super) epoch: Instant,
    pub(super) spec: RuntimeSpec,
    pub(super) groups: Vec<glommio::TaskQueueHandle>,
    /// The deadline the timer task sleeps until (`u64::MAX`: none), and its doorbell for an
    /// earlier one.
    pub(super) armed: Cell<u64>,
    pub(super) timer_bell: LocalSender<()>,
    /// Accepted connections open now: this shard's, and all shards' together.
    pub(super) open_conns: Cell<u64>,
    pub(super) all_conns: Arc<AtomicU64>,
}

impl Shard {
    pub(super) fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Wakes the timer task when the core now has a deadline earlier than the one it sleeps
    /// until.
    fn rearm(&self) {
        if let Some(d) = self.core.borrow().poll_timeout() {
            if d < self.armed.get() {
                self.armed.set(d);
                let _ = self.timer_bell.try_send(());
            }
        }
    }

    /// Carries out what the core asked for, as `caller` may (see [`Caller`]). Datagrams are
    /// sent when it ends, or by the receive pass in progress when it ends.
    pub(super) async fn perform(self: &Rc<Self>, mut outs: Vec<Out>, caller: Caller) {
        let reader = match caller {
            Caller::Input(conn) => conn,
            Caller::Mesh => None,
        };
        self.rearm();
        for o in outs.drain(..) {
            match o {
                Out::Datagram {
                    listen,
                    dest,
                    bytes,
                } => self.udp_out.push(listen, dest, bytes),
                Out::Stream { conn, bytes } => {
                    if usize::from(conn.shard) == self.id {
                        self.write_message(conn, bytes, reader == Some(conn)).await;
                    } else {
                        let msg = MeshMsg::TcpWrite { conn, bytes };
                        self.to_shard(usize::from(conn.shard), msg, caller).await;
                    }
                }
                Out::Shard { to, work } => self.to_shard(to, MeshMsg::Work(work), caller).await,
                Out::Queue { group, work } => self.queue(group, work),
                Out::MsrpConnect { conn, addr } => super::msrp::connect(self, conn, addr),
                Out::MsrpWrite { conn, bytes } => {
                    if usize::from(conn.shard) == self.id {
                        super::msrp::write(self, conn, bytes);
                    } else {
                        let msg = MeshMsg::MsrpWrite { conn, bytes };
                        self.to_shard(usize::from(conn.shard), msg, caller).await;
                    }
                }
                Out::MsrpClose { conn } => super::msrp::close(self, conn),
                Out::Resolve { name, port } => self.resolve(name, port),
                Out::Connect { conn } => {
                    let local = self.spec.listen[usize::from(conn.listen)].1;
                    super::tcp::connect(self, conn, local);
                }
            }
        }
        // The emptied vector serves the next message (see `take_outs`).
        if outs.capacity() <= 64 {
            self.spare_outs.set(outs);
        }
        if self.udp_out.flush_is_mine() {
            self.flush_udp().await;
        }
    }

    /// An empty vector for a core call's outputs: the one the last `perform` emptied, so the
    /// message path does not allocate one per message.
    pub(super) fn take_outs(&self) -> Vec<Out> {
        self.spare_outs.take()
    }

    /// Sends to another shard: an input task waits for room in the outbox (backpressure
    /// towards its socket, as a full channel gave before); a mesh handler never waits.
    async fn to_shard(&self, to: usize, msg: MeshMsg, caller: Caller) {
        match caller {
            Caller::Input(_) => self.mesh.send_waiting(to, msg).await,
            Caller::Mesh => {
                self.mesh.send(to, msg);
            }
        }
    }

    /// Resolves a name off the executor (its blocking thread), then hands the addresses to the
    /// core.
    fn resolve(self: &Rc<Self>, name: String, port: Option<u16>) {
        let me = self.clone();
        glommio::spawn_local(async move {
            let n = name.clone();
            let addrs = glommio::executor()
                .spawn_blocking(move || super::resolve::resolve(&n, port))
                .await;
            let mut outs = Vec::new();
            me.core
                .borrow_mut()
                .on_resolved(me.now_ms(), &name, port, addrs, &mut outs);
            me.perform_boxed(outs).await;
        })
        .detach();
    }

    /// Runs queued work later, in its task-queue group.
    fn queue(self: &Rc<Self>, group: usize, work: Work) {
        let me = self.clone();
        let fut = async move {
            let mut outs = Vec::new();
            me.core.borrow_mut().on_work(me.now_ms(), work, &mut outs);
            me.perform_boxed(outs).await;
        };
        let task = match self.groups.get(group).copied() {
            Some(tq) => glommio::spawn_local_into(fut, tq),
            None => Ok(glommio::spawn_local(fut)),
        };
        if let Ok(t) = task {
            t.detach();
        }
    }

    fn perform_boxed(
        self: &Rc<Self>,
        outs: Vec<Out>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>> {
        let me = self.clone();
        Box::pin(async move { me.perform(outs, Caller::Input(None)).await })
    }

    /// Queues bytes on a connection this shard reads; with `wait`, first waits for room in its
    /// queue (only the connection's own reader may).
    /// Queues a SIP message on a connection of this shard, counted as sent (as a datagram is)
    /// when it was queued.
    pub(super) async fn write_message(&self, conn: ConnId, bytes: Vec<u8>, wait: bool) {
        if self.write_local(conn, bytes, wait).await {
            self.stats.sent.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Queues bytes on a connection of this shard; whether they were (else they were dropped
    /// and counted in `send_errors`).
    pub(super) async fn write_local(&self, conn: ConnId, bytes: Vec<u8>, wait: bool) -> bool {
        let queue = self.conns.borrow().get(&(conn.listen, conn.peer)).cloned();
        let queued = match queue {
            Some(q) => {
                if wait {
                    q.room().await;
                }
                q.push(bytes)
            }
            None => false,
        };
        if !queued {
            tracing::debug!(
                "shard {}: reply to {} dropped (connection gone, or not reading)",
                self.id,
                conn.peer
            );
            self.stats.send_errors.fetch_add(1, Ordering::Relaxed);
        }
        queued
    }

    /// Hands a message read by this shard to the core, timing it when it is processed here
    /// (a message handed to its owner is timed there).
    pub(super) async fn received(self: &Rc<Self>, bytes: Vec<u8>, rx: RxContext) {
        let started = Instant::now();
        let mut outs = self.take_outs();
        {
            let mut core = self.core.borrow_mut();
            let here = match rx.transport {
                Transport::Udp => core.on_datagram(self.now_ms(), bytes, rx, &mut outs),
                Transport::Tcp => core.on_stream_message(self.now_ms(), bytes, rx, &mut outs),
            };
            if here {
                let ns = started.elapsed().as_nanos() as u64;
                self.stats.processing(ns);
                core.record_processing(ns);
            }
        }
        self.perform(outs, Caller::Input(rx.conn)).await;
    }

    /// Handles one message from another shard (in that peer's mesh task).
    pub(super) async fn on_mesh(self: &Rc<Self>, msg: MeshMsg) {
        match msg {
            MeshMsg::Work(work) => {
                let started = Instant::now();
                let mut outs = self.take_outs();
                {
                    let mut core = self.core.borrow_mut();
                    core.on_work(self.now_ms(), work, &mut outs);
                    let ns = started.elapsed().as_nanos() as u64;
                    self.stats.processing(ns);
                    core.record_processing(ns);
                }
                self.perform(outs, Caller::Mesh).await;
            }
            MeshMsg::TcpWrite { conn, bytes } => self.write_message(conn, bytes, false).await,
            MeshMsg::MsrpWrite { conn, bytes } => super::msrp::write(self, conn, bytes),
            MeshMsg::Control {
                id,
                from,
                method,
                params,
            } => {
                let mut outs = self.take_outs();
                let result =
                    self.core
                        .borrow_mut()
                        .on_control(self.now_ms(), method, &params, &mut outs);
                self.perform(outs, Caller::Mesh).await;
                self.mesh
                    .send_control_reply(from, MeshMsg::ControlReply { id, result });
            }
            MeshMsg::ControlReply { id, result } => {
                let tx = self.pending_control.borrow_mut().remove(&id);
                if let Some(tx) = tx {
                    let _ = tx.try_send(result);
                }
            }
        }
    }

    /// Runs a control call over the shards it needs (locally or over the mesh).
    pub(super) async fn control(
        self: &Rc<Self>,
        method: &str,
        params: Value,
    ) -> Result<Value, RpcError> {
        let mut call = {
            let core = self.core.borrow();
            ControlCall::new(method, params, core.ownership())?
        };
        while let Some((target, params)) = call.next() {
            let r = self.control_on(target, call.method(), params).await;
            call.on_result(r);
        }
        call.finish()
    }

    async fn control_on(
        self: &Rc<Self>,
        target: usize,
        method: &'static str,
        params: Value,
    ) -> Result<Value, RpcError> {
        if target == self.id {
            let mut outs = Vec::new();
            let r = self
                .core
                .borrow_mut()
                .on_control(self.now_ms(), method, &params, &mut outs);
            self.perform(outs, Caller::Input(None)).await;
            return r;
        }
        let id = self.next_control.get();
        self.next_control.set(id + 1);
        let (tx, rx) = local_channel::new_bounded(1);
        self.pending_control.borrow_mut().insert(id, tx);
        let msg = MeshMsg::Control {
            id,
            from: self.id,
            method,
            params,
        };
        if !self.mesh.send(target, msg) {
            self.pending_control.borrow_mut().remove(&id);
            return Err(RpcError::server(format!(
                "shard {target} cannot be reached"
            )));
        }
        let answer = glommio::timer::timeout(CONTROL_TIMEOUT, async { Ok(rx.recv().await) }).await;
        self.pending_control.borrow_mut().remove(&id);
        match answer {
            Ok(Some(r)) => r,
            _ => Err(RpcError::server(format!(
                "shard {target} did not answer `{method}` within {} s",
                CONTROL_TIMEOUT.as_secs()
            ))),
        }
    }
}

/// Sleeps until the core's next deadline (or until an input gives it an earlier one), then lets
/// the core do what is due. Nothing due, nothing runs: no fixed tick.
pub(super) async fn timer_loop(shard: Rc<Shard>, bell: local_channel::LocalReceiver<()>) {
    use futures_lite::FutureExt;
    loop {
        if shard.stop.load(Ordering::Relaxed) {
            return;
        }
        let deadline = shard.core.borrow().poll_timeout();
        shard.armed.set(deadline.unwrap_or(u64::MAX));
        let now = shard.now_ms();
        match deadline {
            Some(d) if d <= now => {}
            Some(d) => {
                let sleep = async {
                    glommio::timer::sleep(Duration::from_millis(d - now)).await;
                };
                let rung = async {
                    let _ = bell.recv().await;
                };
                sleep.or(rung).await;
            }
            None => {
                let _ = bell.recv().await;
            }
        }
        let now = shard.now_ms();
        if shard.core.borrow().poll_timeout().is_some_and(|d| d <= now) {
            let mut outs = Vec::new();
            shard.core.borrow_mut().handle_timeout(now, &mut outs);
            shard.perform(outs, Caller::Input(None)).await;
        }
        // A pass that sent nothing awaited nothing: let the shard's other tasks run.
        glommio::yield_if_needed().await;
    }
}
