//! The glommio driver: one executor per shard, the sockets each shard owns, the channel mesh
//! between shards, the repeating tick, the control endpoint, signals and shutdown.
//!
//! Everything protocol-related happens in [`core::ShardCore`], which has no glommio in it; this
//! module only moves bytes between sockets, the mesh and the core (as quinn's driver does for
//! quinn-proto).

pub mod core;
pub mod metrics;
pub mod net;
mod shard;

pub use shard::{run, RunReport, RuntimeSpec, ShardTuning};
