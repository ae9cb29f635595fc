//! MSRP (RFC 4975) above the parser: writing frames ([`write`]) and reassembling chunked
//! messages ([`reassembly`]). The gateway's MSRP sessions are built on these.

pub mod reassembly;
pub mod write;

#[cfg(test)]
mod tests;
