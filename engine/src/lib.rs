//! sipshard: a thread-per-core SIP message repository and SIP/MSRP messaging gateway.
//!
//! This crate holds the server and the `sipshard` command line. Parsing lives in
//! `sipshard-parser`; this crate adds what acts on parsed messages.
//!
//! - [`inspect`]: `sipshard parse`, which runs the parser over files and prints verdicts and the
//!   fields routing uses; the quickest way to see how sipshard reads a message.

#![warn(missing_docs)]

pub mod config;
pub mod control;
pub mod inspect;
pub mod proto;
pub mod response;
pub mod route;
pub mod runtime;
