//! The far ends of the SIP MESSAGE <-> MSRP gateway, for integration tests and the load
//! generator's gateway scenarios: a SIP user agent ([`sip::SipUa`]), an MSRP endpoint
//! ([`msrp::MsrpPeer`]) and the session descriptions that tie them together ([`sdp`]).
//!
//! They run on loopback, with blocking std sockets and no runtime: a test drives a peer step by
//! step from its own thread. Every wait takes a timeout and gives up when it passes, so a test
//! against a gateway that stays silent fails instead of hanging. What comes from the network is
//! parsed with sipshard-parser and never trusted: a malformed message is skipped (SIP) or the
//! frame is dropped (MSRP), never a panic.

pub mod msrp;
pub mod sdp;
pub mod sip;
mod sip_message;

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The base-32 alphabet of RFC 4648, lower case: valid in SIP tags, branches and Call-IDs and
/// in MSRP session ids, transaction ids and Message-IDs.
const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

static DRAWS: AtomicU64 = AtomicU64::new(0);

/// 64 unpredictable bits. `RandomState` is keyed randomly per process; the counter, clock and
/// process id make two draws (and two test processes) differ even where its keys would not.
fn random_u64() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(DRAWS.fetch_add(1, Ordering::Relaxed));
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    h.write_u128(nanos);
    h.write_u32(std::process::id());
    h.finish()
}

/// A random token of `len` base-32 characters (5 bits each: 16 characters are 80 bits).
pub fn random_token(len: usize) -> String {
    let mut out = String::with_capacity(len);
    let mut bits = 0u64;
    let mut left = 0;
    while out.len() < len {
        if left == 0 {
            bits = random_u64();
            left = 12;
        }
        out.push(char::from(ALPHABET[(bits & 31) as usize]));
        bits >>= 5;
        left -= 1;
    }
    out
}

/// Time left until `deadline`, zero once it has passed.
fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

/// Waits until one of `fds` has something to read (or has hung up) or `timeout` passes, and
/// says which. Reading a ready descriptor once then does not block, which is what lets the
/// peers keep their sockets blocking and still never wait past a timeout.
fn poll_readable(fds: &[RawFd], timeout: Duration) -> Vec<bool> {
    let mut polls: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // Round up, so that a wait of less than a millisecond is not a busy loop.
    let ms = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
    // SAFETY: `polls` is a live, exclusively borrowed array of `polls.len()` pollfd.
    let n = unsafe { libc::poll(polls.as_mut_ptr(), polls.len() as libc::nfds_t, ms) };
    if n <= 0 {
        // A timeout, or EINTR: callers loop until their deadline anyway.
        return vec![false; fds.len()];
    }
    polls.iter().map(|p| p.revents != 0).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_base32_and_differ() {
        let a = random_token(20);
        let b = random_token(20);
        assert_eq!(a.len(), 20);
        assert!(a.bytes().all(|c| ALPHABET.contains(&c)), "{a}");
        assert_ne!(a, b);
        assert_eq!(random_token(0), "");
    }
}
