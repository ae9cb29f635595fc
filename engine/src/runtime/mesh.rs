//! The channels between shards. Every shard has a bounded glommio channel from every other
//! (the mesh); what arrives is handled by one task per peer, inline, so the number of messages
//! being handled is bounded by the number of peers, not by how fast they arrive.
//!
//! No deadlock: the handling task never waits on a send to another shard. Sends go through
//! [`Mesh::send`], which never blocks: it puts the message on the channel when there is room and
//! nothing is queued before it, and otherwise appends it to a bounded per-destination outbox
//! that a drainer task empties with waiting sends. A full outbox drops the message and counts
//! it (`mesh_dropped`); what was lost is what a lost datagram loses, and a route run waiting for
//! a dropped answer is cleaned up at its deadline by the core.

use glommio::channels::channel_mesh::Senders;
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::{GlommioError, ResourceType};
use serde_json::Value;
use sipshard_core::metrics::ShardStats;
use sipshard_core::shard::{RpcError, Work};
use sipshard_core::transport::ConnId;
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
    tx: LocalSender<MeshMsg>,
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
        let senders = Rc::new(senders);
        let outboxes = (0..shards)
            .map(|to| {
                (to != me).then(|| {
                    let (tx, rx) = local_channel::new_bounded(OUTBOX_CAPACITY);
                    let draining = Rc::new(Cell::new(false));
                    glommio::spawn_local(drain(to, rx, senders.clone(), draining.clone())).detach();
                    Outbox { tx, draining }
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
        let Some(Some(outbox)) = self.outboxes.get(to) else {
            tracing::error!("mesh: no shard {to}");
            return false;
        };
        let msg = if outbox.tx.len() == 0 && !outbox.draining.get() {
            match self.senders.try_send_to(to, msg) {
                Ok(()) => return true,
                Err(GlommioError::WouldBlock(ResourceType::Channel(m))) => m,
                Err(e) => {
                    tracing::warn!("mesh: send to shard {to} failed: {e}");
                    self.stats.mesh_dropped.fetch_add(1, Relaxed);
                    return false;
                }
            }
        } else {
            msg
        };
        if outbox.tx.try_send(msg).is_err() {
            self.stats.mesh_dropped.fetch_add(1, Relaxed);
            tracing::warn!("mesh: outbox to shard {to} is full; a message was dropped");
            return false;
        }
        true
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
