//! The channels between shards. Every shard has a bounded glommio channel from every other
//! (the mesh); what arrives is handled by one task per peer, inline, so the number of messages
//! being handled is bounded by the number of peers, not by how fast they arrive.
//!
//! No deadlock: the handling task never waits on a send to another shard. Sends go through
//! [`Mesh::send`], which never blocks: it puts the message on the channel when there is room and
//! nothing is queued before it, and otherwise appends it to a bounded per-destination outbox
//! that a drainer task empties with waiting sends. For a handler, a full outbox drops the
//! message and counts it (`mesh_dropped`); what was lost is what a lost datagram loses, and a
//! route run waiting for a dropped answer is cleaned up at its deadline by the core. Tasks that
//! are not handlers (socket readers, the timer) use [`Mesh::send_waiting`] and wait for room
//! instead: backpressure towards their socket, never a cycle, since handlers always drain. Control replies are never dropped
//! (an operator's call would wait for nothing): past a full outbox one waits in a task of its own.

use glommio::channels::channel_mesh::Senders;
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::{GlommioError, ResourceType};
use serde_json::Value;
use sipshard_core::metrics::ShardStats;
use sipshard_core::shard::{RpcError, Work};
use sipshard_core::transport::{ConnId, MsrpConn};
use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// Messages queued per destination shard beyond what its channel holds.
pub const OUTBOX_CAPACITY: usize = 16 * 1024;

/// What travels between shards.
pub enum MeshMsg {
    /// Work for the receiving shard's core.
    Work(Work),
    /// Bytes to write on a connection the receiving shard reads.
    TcpWrite { conn: ConnId, bytes: Vec<u8> },
    /// Frames to write on an MSRP connection the receiving shard holds.
    MsrpWrite { conn: MsrpConn, bytes: Vec<u8> },
    /// A control method to run on the receiving shard.
    Control {
        id: u64,
        from: usize,
        method: &'static str,
        params: Value,
    },
    /// The answer to a control request.
    ControlReply {
        id: u64,
        result: Result<Value, RpcError>,
    },
}

/// One destination's outbox.
struct Outbox {
    tx: Rc<LocalSender<MeshMsg>>,
    /// Set while the drainer holds a message it could not send yet: a message sent straight to
    /// the channel meanwhile would overtake it.
    draining: Rc<Cell<bool>>,
}

/// This shard's sending side of the mesh.
pub struct Mesh {
    senders: Rc<Senders<MeshMsg>>,
    outboxes: Vec<Option<Outbox>>,
    stats: Arc<ShardStats>,
}

impl Mesh {
    /// The sending side for shard `me`; spawns one drainer task per other shard (call from
    /// inside the shard's executor).
    pub fn new(
        me: usize,
        shards: usize,
        senders: Senders<MeshMsg>,
        stats: Arc<ShardStats>,
    ) -> Mesh {
        Mesh::with_outbox(me, shards, senders, stats, OUTBOX_CAPACITY)
    }

    fn with_outbox(
        me: usize,
        shards: usize,
        senders: Senders<MeshMsg>,
        stats: Arc<ShardStats>,
        capacity: usize,
    ) -> Mesh {
        let senders = Rc::new(senders);
        let outboxes = (0..shards)
            .map(|to| {
                (to != me).then(|| {
                    let (tx, rx) = local_channel::new_bounded(capacity);
                    let draining = Rc::new(Cell::new(false));
                    glommio::spawn_local(drain(to, rx, senders.clone(), draining.clone())).detach();
                    Outbox {
                        tx: Rc::new(tx),
                        draining,
                    }
                })
            })
            .collect();
        Mesh {
            senders,
            outboxes,
            stats,
        }
    }

    /// Sends `msg` to shard `to` without waiting; `false` when it was dropped (outbox full or
    /// the shard is gone).
    pub fn send(&self, to: usize, msg: MeshMsg) -> bool {
        match self.try_send(to, msg) {
            None => true,
            Some(_) => {
                let n = self.stats.mesh_dropped.fetch_add(1, Relaxed) + 1;
                // Once, then at every power of two: a stuck peer must not flood the log.
                if n.is_power_of_two() {
                    tracing::warn!(
                        "mesh: outbox to shard {to} is full; {n} messages dropped so far"
                    );
                }
                false
            }
        }
    }

    /// Sends `msg` to shard `to`, waiting for room in the outbox when it is full. Only for tasks
    /// that are not mesh handlers: they may wait, handlers may not.
    pub async fn send_waiting(&self, to: usize, msg: MeshMsg) {
        let Some(msg) = self.try_send(to, msg) else {
            return;
        };
        let Some(Some(outbox)) = self.outboxes.get(to) else {
            return;
        };
        if outbox.tx.send(msg).await.is_err() {
            self.stats.mesh_dropped.fetch_add(1, Relaxed);
        }
    }

    /// Sends a control reply to shard `to`: at once when there is room, else from a task that
    /// waits for room in the outbox (control calls are few; their replies must arrive).
    pub fn send_control_reply(&self, to: usize, msg: MeshMsg) {
        let Some(msg) = self.try_send(to, msg) else {
            return;
        };
        let Some(Some(outbox)) = self.outboxes.get(to) else {
            return;
        };
        let tx = outbox.tx.clone();
        glommio::spawn_local(async move {
            let _ = tx.send(msg).await;
        })
        .detach();
    }

    /// Puts `msg` on the channel or in the outbox; gives it back when the outbox is full or the
    /// shard is gone.
    fn try_send(&self, to: usize, msg: MeshMsg) -> Option<MeshMsg> {
        let Some(Some(outbox)) = self.outboxes.get(to) else {
            tracing::error!("mesh: no shard {to}");
            return Some(msg);
        };
        let msg = if outbox.tx.len() == 0 && !outbox.draining.get() {
            match self.senders.try_send_to(to, msg) {
                Ok(()) => return None,
                Err(GlommioError::WouldBlock(ResourceType::Channel(m))) => m,
                Err(GlommioError::Closed(ResourceType::Channel(m))) => return Some(m),
                Err(e) => {
                    tracing::warn!("mesh: send to shard {to} failed: {e}");
                    return None;
                }
            }
        } else {
            msg
        };
        match outbox.tx.try_send(msg) {
            Ok(()) => None,
            Err(
                GlommioError::WouldBlock(ResourceType::Channel(m))
                | GlommioError::Closed(ResourceType::Channel(m)),
            ) => Some(m),
            Err(e) => {
                tracing::warn!("mesh: queuing for shard {to} failed: {e}");
                None
            }
        }
    }
}

/// Empties one outbox into its channel, waiting for room.
async fn drain(
    to: usize,
    rx: LocalReceiver<MeshMsg>,
    senders: Rc<Senders<MeshMsg>>,
    draining: Rc<Cell<bool>>,
) {
    while let Some(msg) = rx.recv().await {
        draining.set(true);
        let sent = senders.send_to(to, msg).await;
        draining.set(false);
        if sent.is_err() {
            tracing::debug!("mesh: shard {to} no longer receives");
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use glommio::channels::channel_mesh::MeshBuilder;
    use glommio::{LocalExecutorBuilder, Placement};
    use std::sync::atomic::{AtomicBool, AtomicU64};
    use std::time::{Duration, Instant};

    /// A message whose id says how many more times it bounces.
    fn ping(id: u64) -> MeshMsg {
        MeshMsg::ControlReply {
            id,
            result: Ok(Value::Null),
        }
    }

    /// Runs `f(shard, mesh, receivers)` on two executors joined by a mesh with channels of one
    /// message; returns each shard's stats.
    fn two_shards<F, Fut>(outbox: usize, f: F) -> Vec<Arc<ShardStats>>
    where
        F: Fn(usize, Rc<Mesh>, glommio::channels::channel_mesh::Receivers<MeshMsg>) -> Fut
            + Send
            + Clone
            + 'static,
        Fut: std::future::Future<Output = ()> + 'static,
    {
        let builder = MeshBuilder::full(2, 1);
        let stats: Vec<_> = (0..2).map(|_| Arc::new(ShardStats::default())).collect();
        let handles: Vec<_> = (0..2)
            .map(|id| {
                let (builder, st, f) = (builder.clone(), stats[id].clone(), f.clone());
                LocalExecutorBuilder::new(Placement::Unbound)
                    .spawn(move || async move {
                        let (senders, receivers) = builder.join().await.unwrap();
                        let me = senders.peer_id();
                        let mesh = Rc::new(Mesh::with_outbox(me, 2, senders, st, outbox));
                        f(me, mesh, receivers).await;
                    })
                    .unwrap()
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        stats
    }

    #[test]
    fn handlers_that_send_to_each_other_never_deadlock() {
        // Both shards flood each other through channels of one message, and every message
        // handled sends another back: a handler that waited on its send would wait on a
        // shard waiting on it. Each shard starts 300 messages that bounce 4 times.
        const START: u64 = 300;
        const BOUNCES: u64 = 4;
        let done = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
        let d = done.clone();
        let stats = two_shards(OUTBOX_CAPACITY, move |me, mesh, mut receivers| {
            let done = d.clone();
            async move {
                let other = 1 - me;
                let (_, rx) = receivers.streams().pop().unwrap();
                let handler = {
                    let mesh = mesh.clone();
                    let done = done.clone();
                    glommio::spawn_local(async move {
                        while let Some(msg) = rx.recv().await {
                            if let MeshMsg::ControlReply { id, .. } = msg {
                                if id == 0 {
                                    done[me].fetch_add(1, Relaxed);
                                } else {
                                    assert!(mesh.send(other, ping(id - 1)));
                                }
                            }
                        }
                    })
                };
                for _ in 0..START {
                    assert!(mesh.send(other, ping(BOUNCES)));
                }
                // Bounded wait: a deadlock fails the test instead of hanging it.
                let give_up = Instant::now() + Duration::from_secs(60);
                while done[0].load(Relaxed) + done[1].load(Relaxed) < 2 * START {
                    assert!(Instant::now() < give_up, "the mesh stopped moving");
                    glommio::timer::sleep(Duration::from_millis(1)).await;
                }
                drop(handler);
            }
        });
        assert_eq!(done[0].load(Relaxed) + done[1].load(Relaxed), 2 * START);
        assert!(stats.iter().all(|s| s.mesh_dropped.load(Relaxed) == 0));
    }

    #[test]
    fn a_shard_that_stops_reading_costs_a_bounded_outbox() {
        // Shard 1 does not read; shard 0 sends 200 messages: one fits the channel, one waits
        // in the drainer's hands, ten in the outbox; the rest are dropped and counted.
        let started = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicU64::new(0));
        let (s, a) = (started.clone(), accepted.clone());
        let stats = two_shards(10, move |me, mesh, receivers| {
            let (started, accepted) = (s.clone(), a.clone());
            async move {
                if me == 0 {
                    for n in 0..200 {
                        if mesh.send(1, ping(n)) {
                            accepted.fetch_add(1, Relaxed);
                        }
                        // Let the drainer take its message, as it would between inputs.
                        glommio::yield_if_needed().await;
                        glommio::executor().yield_task_queue_now().await;
                    }
                    started.store(true, Relaxed);
                } else {
                    while !started.load(Relaxed) {
                        glommio::timer::sleep(Duration::from_millis(1)).await;
                    }
                }
                drop(receivers);
            }
        });
        let accepted = accepted.load(Relaxed);
        assert!((10..=12).contains(&accepted), "accepted {accepted}");
        assert_eq!(stats[0].mesh_dropped.load(Relaxed), 200 - accepted);
    }
}
