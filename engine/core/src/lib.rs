//! sipshard-core: everything a sipshard shard does, with no runtime inside.
//!
//! Input is bytes, time and events; output is what to send and when to wake. The glommio driver
//! (crate `sipshard`) moves bytes between sockets, the shard mesh and [`shard::ShardCore`]; tests
//! drive cores directly on a virtual clock ([`shard::harness`]). This crate does not depend on
//! glommio, so the boundary holds by construction.
//!
//! - [`shard`]: the shard core (a dispatcher) and its services: ingress, ownership, remote
//!   operations, the repository, the control methods.
//! - [`repo`]: the message repository (Kamailio `siprepo` done right): park a SIP message by
//!   (Call-ID, msgid), pull it back later, expire it through the wheel.
//! - [`wheel`]: the hierarchical timing wheel that holds a shard's deadlines.
//! - [`route`]: the route language, compiled at load and interpreted per message.
//! - [`config`]: the TOML config, CLI overrides, validation with file and line.
//! - [`sdp`]: the MSRP media of session descriptions, read and written.
//! - [`sip_write`]: responses, forwarded requests, ACKs, reason phrases, To tags.
//! - [`transaction`]: SIP client and server transactions (RFC 3261 §17) on a timing wheel.
//! - [`dialog`]: SIP dialogs (RFC 3261 §12) from either side, and the requests sent in one.
//! - [`gateway`]: the SIP/MSRP gateway's state (its message queue so far).
//! - [`hgrm`]: latency distributions as HdrHistogram's `.hgrm` text, shared with `sipshard-load`.
//! - [`locate`]: where a request goes (RFC 3263 §4): transport and address or name to resolve.
//! - [`metrics`]: per-shard counters and their Prometheus text.
//! - [`msrp`]: MSRP frames written, chunked messages reassembled.
//! - [`transport`]: the transports and how a received message names its origin.

#![warn(missing_docs)]

pub mod config;
pub mod dialog;
pub mod gateway;
pub mod hgrm;
pub mod locate;
pub mod metrics;
pub mod msrp;
pub mod repo;
pub mod route;
pub mod sdp;
pub mod shard;
pub mod sip_write;
pub mod transaction;
pub mod transport;
pub mod wheel;
pub mod wire;
