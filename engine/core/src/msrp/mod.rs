//! MSRP (RFC 4975) above the parser: writing frames ([`write`]), reassembling chunked messages
//! ([`reassembly`]), one session's endpoint ([`session`]), and a shard's sessions bound to
//! their connections ([`endpoint`]), on which the gateway builds.

pub mod endpoint;
pub mod reassembly;
pub mod session;
pub mod write;

#[cfg(test)]
mod tests;
