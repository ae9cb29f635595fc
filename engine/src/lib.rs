//! sipshard: a thread-per-core SIP message repository and SIP/MSRP messaging gateway.
//!
//! This crate is the glommio driver and the `sipshard` command line. What a shard does with its
//! inputs lives in `sipshard-core` (no runtime inside); parsing lives in `sipshard-parser`.
//!
//! - [`runtime`]: executors, sockets, the shard mesh, timers, TCP connections, shutdown.
//! - [`control`]: the JSON-RPC / metrics HTTP endpoint and the `sipshard ctl` client.
//! - [`inspect`]: `sipshard parse`, which runs the parser over files and prints verdicts and the
//!   fields routing uses; the quickest way to see how sipshard reads a message.

#![warn(missing_docs)]

pub mod control;
pub mod inspect;
pub mod runtime;
