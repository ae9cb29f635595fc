//! The control endpoint's handler, on shard 0: a JSON-RPC method runs through the shard's
//! [`ControlCall`](sipshard_core::shard::ControlCall) coordinator, which says which shards it
//! goes to and merges their results; `/metrics` reads every shard's counters.

use super::shard::Shard;
use crate::control;
use serde_json::Value;
use sipshard_core::metrics::ShardStats;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

/// The control handler running on shard 0.
pub(super) struct ControlHandler {
    pub(super) shard: Rc<Shard>,
    pub(super) all_stats: Vec<Arc<ShardStats>>,
    /// When the process started, seconds since the Unix epoch.
    pub(super) started_unix_s: f64,
    /// (shard, inode) of every UDP socket.
    pub(super) udp_inodes: Arc<Mutex<Vec<(usize, u64)>>>,
}

impl ControlHandler {
    /// `sipshard_udp_drops_total` per shard: what the kernel dropped at the shard's UDP sockets
    /// because their receive buffers were full. Read from `/proc/net/udp{,6}` at each scrape,
    /// so the message path pays nothing for it.
    fn udp_drops(&self) -> String {
        let mut drops = std::collections::HashMap::new();
        for f in ["/proc/net/udp", "/proc/net/udp6"] {
            if let Ok(text) = std::fs::read_to_string(f) {
                drops.extend(super::net::udp_drops(&text));
            }
        }
        let mut per_shard = vec![0u64; self.all_stats.len()];
        for &(shard, ino) in self
            .udp_inodes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            if let Some(n) = per_shard.get_mut(shard) {
                *n += drops.get(&ino).copied().unwrap_or(0);
            }
        }
        let mut out = String::from(
            "# HELP sipshard_udp_drops_total datagrams the kernel dropped at this shard's UDP \
             sockets (receive buffer full)\n# TYPE sipshard_udp_drops_total counter\n",
        );
        for (s, n) in per_shard.iter().enumerate() {
            out.push_str(&format!("sipshard_udp_drops_total{{shard=\"{s}\"}} {n}\n"));
        }
        out
    }
}

impl control::Handler for ControlHandler {
    fn call(
        &self,
        method: String,
        params: Value,
    ) -> control::LocalFuture<Result<Value, control::RpcError>> {
        let shard = self.shard.clone();
        Box::pin(async move { shard.control(&method, params).await })
    }

    fn metrics(&self) -> String {
        let mut out = sipshard_core::metrics::render_prometheus(&self.all_stats);
        out.push_str(&self.udp_drops());
        out.push_str(&sipshard_core::metrics::render_process(self.started_unix_s));
        out
    }
}
