//! MSRP (RFC 4975) above the parser: writing frames ([`write`]), reassembling chunked messages
//! ([`reassembly`]), and one session's endpoint ([`session`]), on which the gateway builds.

pub mod reassembly;
pub mod session;
pub mod write;

#[cfg(test)]
mod tests;
