//! `$uid`: ids unique across shards and restarts without coordination.
//!
//! An id is `<boot>-<shard>-<counter>` in lower-case hex: `boot` is 64 random bits drawn once at
//! start (shared by all shards of a process), `shard` keeps shards apart, `counter` counts per
//! shard. Two ids of one process differ in shard or counter; two processes differ in `boot`
//! (a collision needs the same 64 random bits). Cheap: no lock, no syscall per id.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::Write;
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
        let _ = write!(
            out,
            "{:016x}-{:x}-{:x}",
            self.boot, self.shard, self.counter
        );
    }

    /// The next id as a string.
    pub fn next_string(&mut self) -> String {
        let mut v = Vec::with_capacity(32);
        self.write_next(&mut v);
        String::from_utf8(v).expect("hex and dashes")
    }
}
