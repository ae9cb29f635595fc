//! Which shard owns an input. Every keyed piece of state (a repository item, and next a gateway
//! session) lives on exactly one shard; an input reaching another shard is handed to the owner
//! in one hop. The owner is either computed from a key all shards can hash (the Call-ID) or read
//! from an id the owner itself minted (a `$uid` carries its shard; the repository keys items by
//! Call-ID, so nothing routes by `$uid` yet: this is where ids such as MSRP session ids, which
//! must name their shard, are read).

use crate::route::UidGen;
use memchr::memmem;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sipshard_parser::sip;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::OnceLock;

/// One shard's view of who owns what.
#[derive(Debug, Clone)]
pub struct Ownership {
    id: usize,
    shards: usize,
    hasher: RandomState,
    boot: u64,
    /// The gateway runs: a message bearing a tag the gateway minted goes to the tag's shard.
    tags: bool,
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
            tags: false,
        }
    }

    /// Routes messages bearing a minted tag (From or To) to the shard that minted it: the
    /// gateway's dialogs with the far side's Call-ID reach their session's owner in one hop.
    pub fn route_by_tags(&mut self) {
        self.tags = true;
    }

    /// The shard owning a gateway session key.
    pub fn of_key(&self, key: &[u8]) -> usize {
        if self.shards <= 1 {
            return 0;
        }
        (self.hasher.hash_one(key) % self.shards as u64) as usize
    }

    /// Whether `tag` was minted by a shard of this process (a gateway dialog's tag).
    pub fn is_minted_tag(&self, tag: &[u8]) -> bool {
        minted_shard(tag, &self.hasher).is_some()
    }

    /// The shard named by a tag this process minted, in the header section of `bytes`.
    fn of_tags(&self, bytes: &[u8]) -> Option<usize> {
        // Built once: this runs for every message while the gateway runs.
        static END: OnceLock<memmem::Finder<'static>> = OnceLock::new();
        static TAG: OnceLock<memmem::Finder<'static>> = OnceLock::new();
        let end = END.get_or_init(|| memmem::Finder::new(b"\r\n\r\n"));
        let tag = TAG.get_or_init(|| memmem::Finder::new(b"tag=sg"));
        let head = &bytes[..end.find(bytes).unwrap_or(bytes.len())];
        tag.find_iter(head).find_map(|i| {
            let tag = &head[i + 4..];
            let end = tag
                .iter()
                .position(|c| !(c.is_ascii_alphanumeric() || *c == b'.'))
                .unwrap_or(tag.len());
            minted_shard(&tag[..end], &self.hasher).filter(|&s| s < self.shards)
        })
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
        // A Call-ID a shard minted for a request of its own names that shard, so the answers
        // and the far side's requests in that dialog come back to it.
        if let Some(shard) = minted_shard(callid, &self.hasher).filter(|&s| s < self.shards) {
            return shard;
        }
        (self.hasher.hash_one(callid) % self.shards as u64) as usize
    }

    /// The shard owning the SIP message in `bytes`: the shard that minted a tag it bears (with
    /// [`Ownership::route_by_tags`]), else its Call-ID's owner, or this shard when no Call-ID
    /// is found (the message is then answered, or refused, here).
    pub fn of_message(&self, bytes: &[u8]) -> usize {
        // One shard owns everything: no need to find the Call-ID.
        if self.shards == 1 {
            return self.id;
        }
        if self.tags {
            if let Some(s) = self.of_tags(bytes) {
                return s;
            }
        }
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

/// Random bits in an MSRP session id (RFC 4975 §14.1 asks for at least 80 unguessable bits).
const SESSION_ID_RANDOM_BITS: usize = 120;

/// Mints the ids a shard hands out that must be unguessable and, for some, name the shard:
/// MSRP session ids `<shard in hex>x<120 random bits in base 32>` (RFC 4975's `session-id`
/// allows letters and digits), so a frame read by any shard reaches the owner of its session in
/// one hop; Call-IDs of the requests the shard originates, likewise; and branches.
pub struct IdMint {
    shard: u16,
    rng: StdRng,
    hasher: RandomState,
}

impl std::fmt::Debug for IdMint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdMint")
            .field("shard", &self.shard)
            .finish()
    }
}

impl IdMint {
    /// Ids for `shard`, from a CSPRNG (ChaCha12) seeded with `seed`, which the driver draws
    /// from the operating system; `hasher` is the process's keyed hash (as [`Ownership`]'s),
    /// which seals minted Call-IDs so that nobody else can make one that pins a shard.
    pub fn new(shard: u16, seed: [u8; 32], hasher: RandomState) -> IdMint {
        IdMint {
            shard,
            rng: StdRng::from_seed(seed),
            hasher,
        }
    }

    /// A fresh session id.
    pub fn new_id(&mut self) -> String {
        let mut id = format!("{:x}x", self.shard);
        self.push_random(&mut id);
        id
    }

    /// A fresh Call-ID for a request this shard originates: `sg<shard in hex>.<random><seal>`,
    /// which [`Ownership::of_callid`] maps back to this shard. The seal is 30 bits of the
    /// process's keyed hash over the rest: a Call-ID someone else made fails it (but for one
    /// chance in a billion) and is hashed like any other.
    pub fn call_id(&mut self) -> String {
        let mut id = format!("{CALL_ID_PREFIX}{:x}.", self.shard);
        self.push_random(&mut id);
        let seal = seal(&self.hasher, id.as_bytes());
        id.push_str(&seal);
        id
    }

    /// A fresh RFC 3261 branch (`z9hG4bK` and 120 random bits).
    pub fn branch(&mut self) -> String {
        let mut b = String::from("z9hG4bK");
        self.push_random(&mut b);
        b
    }

    /// Appends 120 random bits in base 32 (letters and digits).
    fn push_random(&mut self, id: &mut String) {
        let mut bits = [0u8; SESSION_ID_RANDOM_BITS / 8];
        self.rng.fill_bytes(&mut bits);
        let mut acc = 0u32;
        let mut n = 0;
        for b in bits {
            acc = (acc << 8) | u32::from(b);
            n += 8;
            while n >= 5 {
                n -= 5;
                id.push(ALPHABET[((acc >> n) & 31) as usize] as char);
            }
        }
    }
}

/// How the Call-IDs a shard mints begin.
const CALL_ID_PREFIX: &str = "sg";

/// Base 32 in letters and digits: what every minted id is written in.
const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// Characters of a minted Call-ID's seal (30 bits).
const SEAL_LEN: usize = 6;

/// The seal of a minted Call-ID's body.
fn seal(hasher: &RandomState, body: &[u8]) -> String {
    let h = hasher.hash_one(body);
    (0..SEAL_LEN)
        .map(|i| ALPHABET[((h >> (5 * i)) & 31) as usize] as char)
        .collect()
}

/// The shard in a Call-ID minted by [`IdMint::call_id`] of this process.
fn minted_shard(callid: &[u8], hasher: &RandomState) -> Option<usize> {
    let rest = callid.strip_prefix(CALL_ID_PREFIX.as_bytes())?;
    let dot = rest.iter().position(|&c| c == b'.')?;
    let (hex, random) = (&rest[..dot], &rest[dot + 1..]);
    if hex.is_empty() || hex.len() > 4 || random.len() != SESSION_ID_RANDOM_BITS / 5 + SEAL_LEN {
        return None;
    }
    let (body, sealed) = callid.split_at(callid.len() - SEAL_LEN);
    if seal(hasher, body).as_bytes() != sealed {
        return None;
    }
    std::str::from_utf8(hex)
        .ok()
        .and_then(|h| usize::from_str_radix(h, 16).ok())
}

impl Ownership {
    /// The shard an MSRP session id made by [`IdMint`] names, when it names one of ours.
    pub fn of_session_id(&self, id: &[u8]) -> Option<usize> {
        let x = id.iter().position(|&c| c == b'x')?;
        let (hex, rest) = (&id[..x], &id[x + 1..]);
        if hex.is_empty() || hex.len() > 4 || rest.len() != SESSION_ID_RANDOM_BITS / 5 {
            return None;
        }
        let shard = std::str::from_utf8(hex)
            .ok()
            .and_then(|h| usize::from_str_radix(h, 16).ok())?;
        (shard < self.shards).then_some(shard)
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
    fn a_session_id_names_its_shard_and_is_unguessable() {
        let own = Ownership::new(0, 300, RandomState::new(), 1);
        let mut ids = IdMint::new(258, [7; 32], RandomState::new());
        let a = ids.new_id();
        let b = ids.new_id();
        assert_ne!(a, b);
        assert!(a.starts_with("102x") && a.len() == 4 + 24, "{a}");
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
        assert_eq!(own.of_session_id(a.as_bytes()), Some(258));
        // Another seed, other ids; ids of a shard we do not have, or not ours at all, name none.
        assert_ne!(IdMint::new(258, [8; 32], RandomState::new()).new_id(), a);
        assert_eq!(
            own.of_session_id(
                IdMint::new(300, [7; 32], RandomState::new())
                    .new_id()
                    .as_bytes()
            ),
            None
        );
        for bad in ["", "x", "zzx", "1xabc", "iau39soe2843z"] {
            assert_eq!(own.of_session_id(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn a_minted_call_id_routes_to_its_shard_and_others_hash() {
        let seed = RandomState::new();
        let own = Ownership::new(0, 4, seed.clone(), 1);
        let mut ids = IdMint::new(3, [1; 32], seed.clone());
        for _ in 0..20 {
            let c = ids.call_id();
            assert_eq!(own.of_callid(c.as_bytes()), 3, "{c}");
            let msg = format!("BYE sip:a SIP/2.0\r\nCall-ID: {c}\r\n\r\n");
            assert_eq!(own.of_message(msg.as_bytes()), 3);
        }
        // A look-alike for a shard we do not have hashes like any other Call-ID, and so does
        // one that another process (another key) minted, or anyone forged.
        let beyond = IdMint::new(9, [1; 32], seed.clone()).call_id();
        assert!(own.of_callid(beyond.as_bytes()) < 4);
        let foreign: Vec<String> = (0..64)
            .map(|i| IdMint::new(3, [i; 32], RandomState::new()).call_id())
            .collect();
        assert!(foreign.iter().any(|c| own.of_callid(c.as_bytes()) != 3));
        let b = ids.branch();
        assert!(b.starts_with("z9hG4bK") && b.len() == 7 + 24);
        assert_eq!(ids.call_id().len(), "sg3.".len() + 24 + 6);
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
