//! Which shard owns an input. Every keyed piece of state (a repository item, and next a gateway
//! session) lives on exactly one shard; an input reaching another shard is handed to the owner
//! in one hop. The owner is either computed from a key all shards can hash (the Call-ID) or read
//! from an id the owner itself minted (a `$uid` carries its shard; the repository keys items by
//! Call-ID, so nothing routes by `$uid` yet: this is where ids such as MSRP session ids, which
//! must name their shard, are read).

use crate::route::UidGen;
use sipshard_parser::sip;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

/// One shard's view of who owns what.
#[derive(Debug, Clone)]
pub struct Ownership {
    id: usize,
    shards: usize,
    hasher: RandomState,
    boot: u64,
}

impl Ownership {
    /// Shard `id` of `shards`, with the process's hash seed and boot prefix (the same on every
    /// shard, or they disagree on owners).
    pub fn new(id: usize, shards: usize, hasher: RandomState, boot: u64) -> Ownership {
        Ownership {
            id,
            shards: shards.max(1),
            hasher,
            boot,
        }
    }

    /// This shard.
    pub fn me(&self) -> usize {
        self.id
    }

    /// How many shards there are.
    pub fn shards(&self) -> usize {
        self.shards
    }

    /// The shard owning a Call-ID.
    pub fn of_callid(&self, callid: &[u8]) -> usize {
        if self.shards <= 1 {
            return 0;
        }
        (self.hasher.hash_one(callid) % self.shards as u64) as usize
    }

    /// The shard owning the SIP message in `bytes`: its Call-ID's owner, or this shard when no
    /// Call-ID is found (the message is then answered, or refused, here).
    pub fn of_message(&self, bytes: &[u8]) -> usize {
        match sip::find_call_id(bytes) {
            Some(c) => self.of_callid(c),
            None => self.id,
        }
    }

    /// The shard that minted `uid`, when it is one of this process's `$uid`s for an existing
    /// shard.
    pub fn of_uid(&self, uid: &[u8]) -> Option<usize> {
        UidGen::shard_of(uid, self.boot)
            .map(usize::from)
            .filter(|&s| s < self.shards)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shard_agrees_on_owners() {
        let seed = RandomState::new();
        let views: Vec<_> = (0..4)
            .map(|i| Ownership::new(i, 4, seed.clone(), 7))
            .collect();
        let mut seen = [0; 4];
        for n in 0..400 {
            let callid = format!("call-{n}@example.com");
            let owner = views[0].of_callid(callid.as_bytes());
            assert!(views
                .iter()
                .all(|v| v.of_callid(callid.as_bytes()) == owner));
            seen[owner] += 1;
        }
        assert!(seen.iter().all(|&n| n > 0), "{seen:?}");
        let one = Ownership::new(0, 1, seed, 7);
        assert_eq!(one.of_callid(b"anything"), 0);
        assert_eq!(one.of_message(b"OPTIONS sip:a SIP/2.0\r\n\r\n"), 0);
    }

    #[test]
    fn a_uid_names_the_shard_that_made_it() {
        let own = Ownership::new(0, 3, RandomState::new(), 0xfeed);
        let mut g = UidGen::new(0xfeed, 2);
        assert_eq!(own.of_uid(g.next_string().as_bytes()), Some(2));
        let mut beyond = UidGen::new(0xfeed, 3);
        assert_eq!(own.of_uid(beyond.next_string().as_bytes()), None);
        let mut other_process = UidGen::new(0xbeef, 1);
        assert_eq!(own.of_uid(other_process.next_string().as_bytes()), None);
    }
}
