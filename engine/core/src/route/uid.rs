//! `$uid`: ids unique across shards and restarts without coordination.
//!
//! An id is `<boot>-<shard>-<counter>` in lower-case hex: `boot` is 64 random bits drawn once at
//! start (shared by all shards of a process), `shard` keeps shards apart, `counter` counts per
//! shard. Two ids of one process differ in shard or counter; two processes differ in `boot`
//! (a collision needs the same 64 random bits). Cheap: no lock, no syscall per id.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::{SystemTime, UNIX_EPOCH};

/// One shard's id generator.
#[derive(Debug, Clone)]
pub struct UidGen {
    boot: u64,
    shard: u16,
    counter: u64,
}

impl UidGen {
    /// A generator for `shard` with the process's boot prefix `boot` (see [`UidGen::boot_prefix`]).
    pub fn new(boot: u64, shard: u16) -> UidGen {
        UidGen {
            boot,
            shard,
            counter: 0,
        }
    }

    /// 64 random bits for a process: the OS-seeded keys of std's `RandomState`, mixed with the
    /// wall clock and the process id. Draw it once and give it to every shard.
    pub fn boot_prefix() -> u64 {
        let mut h = RandomState::new().build_hasher();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        h.write_u128(now);
        h.write_u32(std::process::id());
        h.finish()
    }

    /// Appends the next id to `out`.
    pub fn write_next(&mut self, out: &mut Vec<u8>) {
        self.counter += 1;
        crate::wire::hex16(out, self.boot);
        out.push(b'-');
        crate::wire::hex(out, u64::from(self.shard));
        out.push(b'-');
        crate::wire::hex(out, self.counter);
    }

    /// The shard that made `uid`, when it is an id of this process (its boot prefix is
    /// `boot`); `None` for anything else.
    pub fn shard_of(uid: &[u8], boot: u64) -> Option<u16> {
        let mut parts = uid.split(|&c| c == b'-');
        let (b, s, c) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || b.len() != 16 || s.is_empty() || s.len() > 4 || c.is_empty() {
            return None;
        }
        let hex = |h: &[u8]| {
            h.iter().try_fold(0u64, |n, &d| {
                let v = (d as char).to_digit(16)?;
                n.checked_mul(16)?.checked_add(u64::from(v))
            })
        };
        if hex(b)? != boot || hex(c).is_none() {
            return None;
        }
        u16::try_from(hex(s)?).ok()
    }

    /// The next id as a string.
    pub fn next_string(&mut self) -> String {
        let mut v = Vec::with_capacity(32);
        self.write_next(&mut v);
        String::from_utf8(v).expect("hex and dashes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_names_its_shard() {
        let mut g = UidGen::new(0x0123_4567_89ab_cdef, 0x3ff);
        let id = g.next_string();
        assert_eq!(
            UidGen::shard_of(id.as_bytes(), 0x0123_4567_89ab_cdef),
            Some(0x3ff)
        );
        // Another process's id, or something else entirely, names no shard of ours.
        assert_eq!(UidGen::shard_of(id.as_bytes(), 1), None);
        for bad in [
            "",
            "x",
            "0123456789abcdef-1",
            "0123456789abcdef--1",
            "0123456789abcdef-1-2-3",
        ] {
            assert_eq!(
                UidGen::shard_of(bad.as_bytes(), 0x0123_4567_89ab_cdef),
                None,
                "{bad}"
            );
        }
    }
}
