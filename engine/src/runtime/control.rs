//! The control endpoint's handler, on shard 0: a JSON-RPC method runs through the shard's
//! [`ControlCall`](sipshard_core::shard::ControlCall) coordinator, which says which shards it
//! goes to and merges their results; `/metrics` reads every shard's counters.

use super::shard::Shard;
use crate::control;
use serde_json::Value;
use sipshard_core::metrics::ShardStats;
use std::rc::Rc;
use std::sync::Arc;

/// The control handler running on shard 0.
pub(super) struct ControlHandler {
    pub(super) shard: Rc<Shard>,
    pub(super) all_stats: Vec<Arc<ShardStats>>,
    /// When the process started, seconds since the Unix epoch.
    pub(super) started_unix_s: f64,
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
        out.push_str(&sipshard_core::metrics::render_process(self.started_unix_s));
        out
    }
}
