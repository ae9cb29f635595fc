//! The sans-IO core: protocol state that a shard owns, driven by `(now, input)` and answering with
//! outputs, with no runtime, no sockets and no real clock inside.
//!
//! Time enters every function here as a `u64` of milliseconds read by the caller (the shard's
//! runtime in production, a virtual clock in tests), so every module is tested deterministically,
//! including everything that depends on deadlines.
//!
//! - [`wheel`]: the hierarchical timing wheel that holds every deadline of a shard.
//! - [`repo`]: the message repository (Kamailio `siprepo` done right): park a SIP message by
//!   (Call-ID, msgid), pull it back later, expire it through the wheel.

pub mod repo;
pub mod wheel;
