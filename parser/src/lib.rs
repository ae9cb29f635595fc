//! Zero-copy SIP and streaming MSRP parsing for sipshard.
//!
//! This crate is the bottom of the stack: every other part of sipshard (the shards' routing step,
//! the repository, the gateway, the load generator) reads messages through it. It does no I/O,
//! owns no runtime and allocates nothing on the parse path: callers hand in a byte slice and a
//! header array (as with `httparse`), and get back a structure of slices into that byte slice.
//!
//! - [`sip`]: RFC 3261 requests and responses (§7, §25), typed lazy accessors for the headers
//!   routing needs, the Call-ID fast path and stream framing for SIP over TCP.
//! - [`msrp`]: RFC 4975 frames read incrementally from a TCP byte stream.

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod msrp;
pub mod sip;

/// The result of a parse that may need more bytes (stream transports).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status<T> {
    /// A whole message was found.
    Complete(T),
    /// The bytes so far are a valid prefix; read more and try again.
    Partial,
}

impl<T> Status<T> {
    /// Whether a whole message was found.
    pub fn is_complete(&self) -> bool {
        matches!(self, Status::Complete(_))
    }

    /// The complete value, if there is one.
    pub fn complete(self) -> Option<T> {
        match self {
            Status::Complete(t) => Some(t),
            Status::Partial => None,
        }
    }
}
