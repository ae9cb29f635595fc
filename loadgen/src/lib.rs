//! `sipshard-load`: an open-loop SIP load generator with HdrHistogram latency reports.
//!
//! Operators size and tune sipshard with runs of this tool. It sends requests on a fixed
//! schedule (`--rate`), whatever the server does, and measures each latency from the request's
//! intended send time, so a stalled server shows up in the tail instead of hiding (coordinated
//! omission). One sender/receiver thread per core, UDP batched with sendmmsg/recvmmsg, or TCP.
//!
//! - [`config`]: flags and the checked run configuration.
//! - [`schedule`]: when each call is due.
//! - [`scenario`]: what each call sends; templates.
//! - [`engine`]: the per-thread loop: transactions, retransmissions, timeouts.
//! - [`transport`], [`udp`], [`tcp`]: sockets; [`mmsg`]: batched datagram system calls.
//! - [`stats`]: counters and histograms; [`run`]: the main thread and `--ramp`.
//! - [`report`], [`svg`]: the summary, `.hgrm`, interval log, JSON and SVG; [`compare`]: `report`.
//! - [`responder`]: a stand-in server for tests and trials.
//! - [`peer`]: the gateway's far ends for tests: a SIP user agent and an MSRP endpoint.
//! - [`gw`]: the gateway scenarios, in which the load generator plays both far ends.
//! - [`soak`]: `sipshard-soak`, exactly one outcome per parked message over a long run.

#![warn(missing_docs)]

pub mod compare;
pub mod config;
pub mod engine;
pub mod gw;
pub use sipshard_mmsg as mmsg;
pub mod peer;
pub mod report;
pub mod responder;
pub mod run;
pub mod scenario;
pub mod schedule;
pub mod soak;
pub mod stats;
pub mod svg;
pub mod tcp;
pub mod transport;
pub mod udp;

pub use config::Config;
pub use report::Summary;
pub use run::{run, run_and_report, RunResult};
