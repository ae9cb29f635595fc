//! The message repository of one shard: park a received SIP message under (Call-ID, msgid),
//! pull it back later as if it had just arrived, and hand it to an expiry event when nobody
//! pulled it in time.
//!
//! This replaces Kamailio's `siprepo` (see `docs/repository.md`), keeping what it is for and
//! none of its failures: every operation says what happened ([`PushOutcome`], `Option`, `bool`),
//! retransmissions of a parked request are absorbed instead of stored twice, the store is bounded
//! by items and bytes, expiry is a timing wheel (O(1) per item, never a scan) that hands every
//! expired message back so the configuration can answer the parked caller, and there are
//! counters and an admin listing.
//!
//! The repository owns, for its shard's partition of Call-IDs, the stored bytes, the index and
//! the expiry deadlines. It is sans-IO: no sockets, no clock (the caller passes `now_ms`), no
//! parser (the caller has parsed the message already and passes the fields that key it, see
//! [`MessageRef`]).
//!
//! Layout (the memory budget is at most 96 bytes per item beyond the message and msgid bytes):
//! - Each item is one heap allocation: a compact varint header (lengths, the offsets of the
//!   Call-ID, CSeq method and Via branch inside the message, the CSeq number and the receive
//!   context; about 22 bytes for an IPv4 sender), then the msgid, then the message bytes. The
//!   Call-ID, method and branch are not copied: they are offsets into the message (a copy is
//!   stored only when the caller's slices do not point into the message bytes).
//! - The item lives directly in the [`TimingWheel`]'s slab entry (48 bytes with the wheel's
//!   links, generation and deadline), so the slab index is the item's id everywhere.
//! - One `hashbrown::HashTable<u32>` entry per item. Items of one Call-ID form a list, newest
//!   first; the newest is indexed by a hash of the Call-ID alone, the others by a hash of
//!   (Call-ID, msgid). So a Call-ID check is one probe, a (Call-ID, msgid) lookup one or two,
//!   and no Call-ID is indexed twice. Hashes are keyed per process (`RandomState`), so a remote
//!   party cannot choose colliding Call-IDs.

mod layout;

use crate::wheel::{Expired, TimingWheel, DEFAULT_TICK_MS};
use hashbrown::HashTable;
#[cfg(test)]
use layout::KNOWN_METHODS;
use layout::{Layout, Meta};
use sipshard_parser::sip;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::BuildHasher;
use std::net::SocketAddr;

/// Default expiry of a stored item: 180 s, as `siprepo`'s `expire`.
pub const DEFAULT_EXPIRE_MS: u64 = 180_000;

/// How many of the newest items of a Call-ID a push compares with to recognise a
/// retransmission. A retransmission arrives within 32 s of its original (RFC 3261 timers), so
/// the original is among the newest items of its Call-ID; the bound keeps a push O(1) even when a
/// remote party makes one Call-ID hold thousands of items.
pub const RETRANSMISSION_SCAN: usize = 16;

/// The largest `max_items` for which [`Repository::new`] sizes its index at once.
pub const PRESIZE_MAX_ITEMS: usize = 1 << 22;

/// "No item" in the per-Call-ID lists.
const NIL: u32 = u32::MAX;

/// Limits and timing of one shard's repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoConfig {
    /// Most items stored at once; a push beyond is [`PushOutcome::Full`].
    pub max_items: usize,
    /// Most bytes stored at once (message, msgid and any appended key copies); a push beyond is
    /// [`PushOutcome::Full`].
    pub max_bytes: usize,
    /// Expiry of an item pushed without its own (`siprepo`'s `expire`, in ms).
    pub expire_ms: u64,
    /// Tick of the expiry wheel: an item expires at the first tick at or after its deadline
    /// (`siprepo`'s `timer_interval` is the period of the runtime's timer calling
    /// [`Repository::tick`]).
    pub tick_ms: u64,
    /// Items to make room for up front (`siprepo`'s `hash_size`); the index is sized for
    /// `max_items` anyway (see [`Repository::new`]), so this matters only above that.
    pub capacity_hint: usize,
}

impl Default for RepoConfig {
    fn default() -> Self {
        RepoConfig {
            max_items: 1_000_000,
            max_bytes: 512 << 20,
            expire_ms: DEFAULT_EXPIRE_MS,
            tick_ms: DEFAULT_TICK_MS,
            capacity_hint: 256,
        }
    }
}

pub use crate::transport::Transport;

/// The local socket a message arrived on, as two small numbers instead of a 32-byte address:
/// the shard holding the socket (for a stream, the shard reading the connection) and the index
/// of its listen address. Replies must leave from this socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LocalSocket {
    /// The shard holding the socket or connection.
    pub shard: u16,
    /// Index of the listen address.
    pub listen: u16,
}

impl LocalSocket {
    fn to_u32(self) -> u32 {
        (u32::from(self.shard) << 16) | u32::from(self.listen)
    }

    fn from_u32(n: u32) -> LocalSocket {
        LocalSocket {
            shard: (n >> 16) as u16,
            listen: n as u16,
        }
    }
}

/// Where and when a message was received: what a pulled message needs to be processed as if it
/// had just arrived (a reply goes back to `source` from `local` over `transport`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReceiveContext {
    /// The sender's address.
    pub source: SocketAddr,
    /// The socket it arrived on.
    pub local: LocalSocket,
    /// The transport.
    pub transport: Transport,
    /// Receive time on the caller's clock, in ms.
    pub received_ms: u64,
}

/// A received message as the repository needs it: its bytes, the fields that key it (slices of
/// `bytes` as the parser returns them; other slices work too, at the cost of a copy), and where
/// it came from.
#[derive(Debug, Clone, Copy)]
pub struct MessageRef<'a> {
    /// The whole message as received.
    pub bytes: &'a [u8],
    /// The Call-ID value.
    pub call_id: &'a [u8],
    /// The CSeq number.
    pub cseq: u32,
    /// The CSeq method.
    pub cseq_method: &'a [u8],
    /// The branch parameter of the topmost Via, if any.
    pub branch: Option<&'a [u8]>,
    /// Where it came from.
    pub context: ReceiveContext,
}

impl<'a> MessageRef<'a> {
    /// The fields of a parsed message; `None` without a Call-ID or CSeq.
    pub fn from_parsed(msg: &sip::Message<'_, 'a>, context: ReceiveContext) -> Option<Self> {
        let cseq = msg.cseq()?;
        Some(MessageRef {
            bytes: msg.as_bytes(),
            call_id: msg.call_id()?,
            cseq: cseq.number,
            cseq_method: cseq.method,
            branch: msg.branch(),
            context,
        })
    }
}

/// What a push did. Checked in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[must_use]
pub enum PushOutcome {
    /// Stored; it will be pulled, removed or expired.
    Stored,
    /// An item with this (Call-ID, msgid) is stored already; it was kept, nothing was stored.
    Duplicate,
    /// One of the [`RETRANSMISSION_SCAN`] newest items of this Call-ID has the same CSeq number,
    /// CSeq method and top Via branch (both without a branch counts as the same): this is a
    /// retransmission of a parked request, absorbed, nothing was stored.
    Retransmission,
    /// A limit would be passed; nothing was stored.
    Full(FullReason),
}

/// Which limit a refused push would have passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FullReason {
    /// [`RepoConfig::max_items`].
    Items,
    /// [`RepoConfig::max_bytes`].
    Bytes,
}

/// Counters and gauges of one repository.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RepoStats {
    /// Items stored now.
    pub items: usize,
    /// Bytes stored now (message, msgid and any appended key copies).
    pub bytes: usize,
    /// Pushes that stored.
    pub stored: u64,
    /// Pushes refused as duplicates.
    pub duplicates: u64,
    /// Pushes absorbed as retransmissions.
    pub retransmissions: u64,
    /// Pushes refused because a limit was reached.
    pub full: u64,
    /// Pulls that found their item (with or without removal).
    pub pulled: u64,
    /// Removals by [`Repository::rm`] that found their item.
    pub removed: u64,
    /// Items handed out by [`Repository::tick`].
    pub expired: u64,
}

/// A position in the admin listing ([`Repository::list`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ListCursor(u32);

impl ListCursor {
    /// The start of the listing.
    pub const START: ListCursor = ListCursor(0);

    /// The cursor as a number, for an admin client to send back.
    pub fn to_u64(self) -> u64 {
        u64::from(self.0)
    }

    /// A cursor from the number [`ListCursor::to_u64`] gave (any number is a valid cursor).
    pub fn from_u64(n: u64) -> ListCursor {
        ListCursor(u32::try_from(n).unwrap_or(u32::MAX))
    }
}

/// One page of the admin listing.
#[derive(Debug)]
pub struct ListPage<'a> {
    /// The items of this page.
    pub items: Vec<ItemView<'a>>,
    /// Where the next page starts; `None` at the end.
    pub next: Option<ListCursor>,
}

/// A stored item, and where it lives in the repository's indexes.
struct Item {
    /// Header, message, msgid, key copies (see `encode`).
    data: Box<[u8]>,
    /// The next newer item of the same Call-ID (`NIL` for the newest, which the index keys by
    /// Call-ID alone).
    newer: u32,
    /// The next older item of the same Call-ID.
    older: u32,
}

/// The repository of one shard. See the module documentation.
pub struct Repository {
    config: RepoConfig,
    /// Items, and their expiry: the wheel's slab index is the item's id.
    wheel: TimingWheel<Item>,
    /// Item ids by key (see the module documentation).
    index: HashTable<u32>,
    hasher: RandomState,
    bytes: usize,
    stats: RepoStats,
}

impl fmt::Debug for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Repository")
            .field("config", &self.config)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Repository {
    /// An empty repository whose clock starts at `now_ms`.
    ///
    /// The index is sized at once for `max_items` (at most [`PRESIZE_MAX_ITEMS`]) or
    /// `capacity_hint`, whichever is larger: growing it later rehashes every stored item on the
    /// shard's thread (about half a second at a million items). Until items arrive this costs one
    /// byte per slot of resident memory; the rest is touched as the repository fills.
    pub fn new(config: RepoConfig, now_ms: u64) -> Self {
        let hint = config.capacity_hint.min(config.max_items);
        let presize = config.max_items.min(PRESIZE_MAX_ITEMS).max(hint);
        Repository {
            wheel: TimingWheel::with_capacity(config.tick_ms, now_ms, hint),
            index: HashTable::with_capacity(presize),
            hasher: RandomState::new(),
            bytes: 0,
            stats: RepoStats::default(),
            config,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &RepoConfig {
        &self.config
    }

    /// Items stored.
    pub fn len(&self) -> usize {
        self.wheel.len()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.wheel.is_empty()
    }

    /// Bytes stored, as counted against [`RepoConfig::max_bytes`].
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Counters and gauges.
    pub fn stats(&self) -> RepoStats {
        RepoStats {
            items: self.len(),
            bytes: self.bytes,
            ..self.stats
        }
    }

    /// When [`Repository::tick`] next has work (see [`TimingWheel::next_deadline`]).
    pub fn next_deadline(&self) -> Option<u64> {
        self.wheel.next_deadline()
    }

    /// Stores `msg` under (its Call-ID, `msgid`) until `now_ms + expire_ms` (default
    /// [`RepoConfig::expire_ms`]). The bytes are copied; see [`PushOutcome`] for the results.
    pub fn push(
        &mut self,
        msg: &MessageRef<'_>,
        msgid: &[u8],
        expire_ms: Option<u64>,
        now_ms: u64,
    ) -> PushOutcome {
        let head = self.find_head(msg.call_id);
        if let Some(head) = head {
            if self.find_from_head(head, msg.call_id, msgid).is_some() {
                self.stats.duplicates += 1;
                return PushOutcome::Duplicate;
            }
            if self.find_retransmitted(head, msg).is_some() {
                self.stats.retransmissions += 1;
                return PushOutcome::Retransmission;
            }
        }
        let layout = Layout::plan(msg, msgid);
        if self.len() >= self.config.max_items {
            self.stats.full += 1;
            return PushOutcome::Full(FullReason::Items);
        }
        if self.bytes.saturating_add(layout.body_len) > self.config.max_bytes {
            self.stats.full += 1;
            return PushOutcome::Full(FullReason::Bytes);
        }
        let deadline = now_ms.saturating_add(expire_ms.unwrap_or(self.config.expire_ms));
        let data = layout.encode(msg, msgid, deadline);
        let item = Item {
            data,
            newer: NIL,
            older: head.unwrap_or(NIL),
        };
        let index = self.wheel.insert(deadline, item).index();
        let head_hash = self.head_hash(msg.call_id);
        if let Some(old) = head {
            // The old newest item becomes an older one: re-key it by (Call-ID, msgid).
            self.unindex(head_hash, old);
            let old_item = self.item_mut(old);
            old_item.newer = index;
            let old_hash = {
                let old_item = self.item(old);
                let meta = Meta::decode(&old_item.data);
                self.member_hash(msg.call_id, meta.msgid(&old_item.data))
            };
            self.reindex(head_hash, index);
            self.reindex(old_hash, old);
        } else {
            self.reindex(head_hash, index);
        }
        self.bytes += layout.body_len;
        self.stats.stored += 1;
        PushOutcome::Stored
    }

    /// Finds an item; with `remove` it is taken out (its timer cancelled), without it the
    /// caller gets a copy and the item stays. `None`: no such item.
    ///
    /// The copy costs one allocation and a memcpy of the item (a few hundred bytes), small next
    /// to the parse and route that follow a pull; sharing instead (`Rc`) would cost 16 bytes on
    /// every stored item.
    pub fn pull(&mut self, call_id: &[u8], msgid: &[u8], remove: bool) -> Option<StoredMessage> {
        let index = self.find(call_id, msgid)?;
        self.stats.pulled += 1;
        if remove {
            Some(self.take(index))
        } else {
            let id = self.wheel.id_at(index)?;
            let deadline_ms = self.wheel.deadline(id)?;
            Some(StoredMessage::new(
                self.item(index).data.clone(),
                deadline_ms,
            ))
        }
    }

    /// Removes an item; `false` when there is none.
    pub fn rm(&mut self, call_id: &[u8], msgid: &[u8]) -> bool {
        match self.find(call_id, msgid) {
            Some(index) => {
                self.take(index);
                self.stats.removed += 1;
                true
            }
            None => false,
        }
    }

    /// Whether any item with this Call-ID is stored (`siprepo`'s `sr_msg_check`).
    pub fn check_callid(&self, call_id: &[u8]) -> bool {
        self.find_head(call_id).is_some()
    }

    /// Whether this (Call-ID, msgid) is stored.
    pub fn check(&self, call_id: &[u8], msgid: &[u8]) -> bool {
        self.find(call_id, msgid).is_some()
    }

    /// Looks at an item without touching it.
    pub fn get(&self, call_id: &[u8], msgid: &[u8]) -> Option<ItemView<'_>> {
        self.find(call_id, msgid).and_then(|i| self.view(i))
    }

    /// Up to `limit` items from `cursor` on, and the cursor of the next page.
    ///
    /// Order: by storage slot, which says nothing about age. An item stored for the whole
    /// listing appears exactly once, whatever is pushed or removed between pages; items pushed or
    /// removed during the listing may or may not appear. A page costs O(limit) plus the free
    /// slots it skips.
    pub fn list(&self, cursor: ListCursor, limit: usize) -> ListPage<'_> {
        let mut items = Vec::with_capacity(limit.min(self.len()));
        let mut next = None;
        for (id, deadline_ms, item) in self.wheel.iter_from(cursor.0) {
            if items.len() == limit {
                next = Some(ListCursor(id.index()));
                break;
            }
            items.push(ItemView::new(&item.data, deadline_ms));
        }
        ListPage { items, next }
    }

    /// Takes out every item whose deadline passed at `now_ms` (at the first tick at or after
    /// it) and appends it to `out`; returns how many. The caller runs the expiry event route on
    /// each (to answer the parked caller) and then drops it. Reusing `out` keeps this free of
    /// allocation beyond the items themselves.
    pub fn tick(&mut self, now_ms: u64, out: &mut Vec<StoredMessage>) -> usize {
        let n = self.take_due(now_ms, out);
        self.stats.expired += n as u64;
        n
    }

    /// Removes every item, whatever its deadline, into `out` (the server is stopping: each
    /// parked caller is answered). Not counted as expired.
    pub fn take_all(&mut self, out: &mut Vec<StoredMessage>) -> usize {
        self.take_due(u64::MAX, out)
    }

    fn take_due(&mut self, now_ms: u64, out: &mut Vec<StoredMessage>) -> usize {
        let before = out.len();
        while let Some(Expired {
            id,
            deadline_ms,
            value,
        }) = self.wheel.poll_expired(now_ms)
        {
            // The wheel hands items out one at a time, so the neighbours in the item's Call-ID
            // list are still in place while it is unlinked.
            self.unlink(id.index(), &value);
            out.push(StoredMessage::new(value.data, deadline_ms));
        }
        out.len() - before
    }

    fn item(&self, index: u32) -> &Item {
        self.wheel
            .get_at(index)
            .expect("indexed items are in the wheel")
    }

    fn item_mut(&mut self, index: u32) -> &mut Item {
        self.wheel
            .get_at_mut(index)
            .expect("indexed items are in the wheel")
    }

    fn view(&self, index: u32) -> Option<ItemView<'_>> {
        let id = self.wheel.id_at(index)?;
        Some(ItemView::new(
            &self.item(index).data,
            self.wheel.deadline(id)?,
        ))
    }

    fn head_hash(&self, call_id: &[u8]) -> u64 {
        head_hash(&self.hasher, call_id)
    }

    fn member_hash(&self, call_id: &[u8], msgid: &[u8]) -> u64 {
        member_hash(&self.hasher, call_id, msgid)
    }

    /// The newest item of a Call-ID.
    fn find_head(&self, call_id: &[u8]) -> Option<u32> {
        let wheel = &self.wheel;
        self.index
            .find(self.head_hash(call_id), |&i| {
                let item = wheel.get_at(i).expect("indexed items are in the wheel");
                item.newer == NIL && Meta::decode(&item.data).call_id(&item.data) == call_id
            })
            .copied()
    }

    fn find(&self, call_id: &[u8], msgid: &[u8]) -> Option<u32> {
        let head = self.find_head(call_id)?;
        self.find_from_head(head, call_id, msgid)
    }

    fn find_from_head(&self, head: u32, call_id: &[u8], msgid: &[u8]) -> Option<u32> {
        let item = self.item(head);
        if Meta::decode(&item.data).msgid(&item.data) == msgid {
            return Some(head);
        }
        if item.older == NIL {
            return None;
        }
        let wheel = &self.wheel;
        self.index
            .find(self.member_hash(call_id, msgid), |&i| {
                let item = wheel.get_at(i).expect("indexed items are in the wheel");
                let meta = Meta::decode(&item.data);
                item.newer != NIL
                    && meta.call_id(&item.data) == call_id
                    && meta.msgid(&item.data) == msgid
            })
            .copied()
    }

    /// The msgid of the stored item `msg` is a retransmission of (see
    /// [`PushOutcome::Retransmission`]), so that the answer to a retransmitted request can carry
    /// what the answer to the first copy did.
    pub fn retransmitted_msgid(&self, msg: &MessageRef<'_>) -> Option<&[u8]> {
        let head = self.find_head(msg.call_id)?;
        let i = self.find_retransmitted(head, msg)?;
        let item = self.item(i);
        Some(Meta::decode(&item.data).msgid(&item.data))
    }

    /// Among the newest items of a Call-ID (from `head`), the one `msg` retransmits.
    fn find_retransmitted(&self, head: u32, msg: &MessageRef<'_>) -> Option<u32> {
        let mut cur = head;
        for _ in 0..RETRANSMISSION_SCAN {
            if cur == NIL {
                break;
            }
            let item = self.item(cur);
            let meta = Meta::decode(&item.data);
            if meta.cseq == msg.cseq
                && meta.cseq_method(&item.data) == msg.cseq_method
                && meta.branch(&item.data) == msg.branch
            {
                return Some(cur);
            }
            cur = item.older;
        }
        None
    }

    /// Adds an index entry for item `index`.
    fn reindex(&mut self, hash: u64, index: u32) {
        let (wheel, hasher) = (&self.wheel, &self.hasher);
        self.index
            .insert_unique(hash, index, |&i| hash_of(wheel, hasher, i));
    }

    /// Removes the index entry of item `index`.
    fn unindex(&mut self, hash: u64, index: u32) {
        match self.index.find_entry(hash, |&i| i == index) {
            Ok(entry) => {
                entry.remove();
            }
            Err(_) => debug_assert!(false, "item {index} was not indexed"),
        }
    }

    /// Takes an item out of the wheel and the indexes.
    fn take(&mut self, index: u32) -> StoredMessage {
        let id = self
            .wheel
            .id_at(index)
            .expect("indexed items are in the wheel");
        let deadline_ms = self.wheel.deadline(id).unwrap_or_default();
        let item = self
            .wheel
            .cancel(id)
            .expect("indexed items are in the wheel");
        self.unlink(index, &item);
        StoredMessage::new(item.data, deadline_ms)
    }

    /// Removes an item already taken out of the wheel from the index and its Call-ID list.
    fn unlink(&mut self, index: u32, item: &Item) {
        let meta = Meta::decode(&item.data);
        let call_id = meta.call_id(&item.data);
        if item.newer == NIL {
            let head_hash = self.head_hash(call_id);
            self.unindex(head_hash, index);
            if item.older != NIL {
                // The next older item becomes the newest: re-key it by Call-ID alone.
                let next = item.older;
                let next_hash = {
                    let next_item = self.item(next);
                    let next_meta = Meta::decode(&next_item.data);
                    self.member_hash(call_id, next_meta.msgid(&next_item.data))
                };
                self.unindex(next_hash, next);
                self.item_mut(next).newer = NIL;
                self.reindex(head_hash, next);
            }
        } else {
            let hash = self.member_hash(call_id, meta.msgid(&item.data));
            self.unindex(hash, index);
            self.item_mut(item.newer).older = item.older;
            if item.older != NIL {
                self.item_mut(item.older).newer = item.newer;
            }
        }
        self.bytes -= meta.body_len(item.data.len());
    }
}

fn head_hash(hasher: &RandomState, call_id: &[u8]) -> u64 {
    hasher.hash_one((0u8, call_id))
}

fn member_hash(hasher: &RandomState, call_id: &[u8], msgid: &[u8]) -> u64 {
    hasher.hash_one((1u8, call_id, msgid))
}

/// The index hash of item `index`, from its bytes and its place in its Call-ID list.
fn hash_of(wheel: &TimingWheel<Item>, hasher: &RandomState, index: u32) -> u64 {
    let item = wheel.get_at(index).expect("indexed items are in the wheel");
    let meta = Meta::decode(&item.data);
    let call_id = meta.call_id(&item.data);
    if item.newer == NIL {
        head_hash(hasher, call_id)
    } else {
        member_hash(hasher, call_id, meta.msgid(&item.data))
    }
}

/// A stored message taken out of the repository (pulled or expired): it owns its bytes.
pub struct StoredMessage {
    data: Box<[u8]>,
    meta: Meta,
    deadline_ms: u64,
}

impl StoredMessage {
    fn new(data: Box<[u8]>, deadline_ms: u64) -> Self {
        let meta = Meta::decode(&data);
        StoredMessage {
            data,
            meta,
            deadline_ms,
        }
    }

    /// A borrowed view, with every accessor.
    pub fn view(&self) -> ItemView<'_> {
        ItemView {
            data: &self.data,
            meta: self.meta,
            deadline_ms: self.deadline_ms,
        }
    }

    /// The message bytes as received.
    pub fn message(&self) -> &[u8] {
        self.meta.message(&self.data)
    }

    /// The msgid it was stored under.
    pub fn msgid(&self) -> &[u8] {
        self.meta.msgid(&self.data)
    }

    /// Its Call-ID.
    pub fn call_id(&self) -> &[u8] {
        self.meta.call_id(&self.data)
    }

    /// Where and when it was received.
    pub fn context(&self) -> ReceiveContext {
        self.meta.context(self.deadline_ms)
    }

    /// Its expiry deadline (ms).
    pub fn deadline_ms(&self) -> u64 {
        self.deadline_ms
    }
}

impl fmt::Debug for StoredMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.view().fmt(f)
    }
}

/// A stored item, borrowed from the repository (or from a [`StoredMessage`]).
#[derive(Clone, Copy)]
pub struct ItemView<'a> {
    data: &'a [u8],
    meta: Meta,
    deadline_ms: u64,
}

impl<'a> ItemView<'a> {
    fn new(data: &'a [u8], deadline_ms: u64) -> Self {
        ItemView {
            data,
            meta: Meta::decode(data),
            deadline_ms,
        }
    }

    /// The message bytes as received.
    pub fn message(&self) -> &'a [u8] {
        self.meta.message(self.data)
    }

    /// The msgid it is stored under.
    pub fn msgid(&self) -> &'a [u8] {
        self.meta.msgid(self.data)
    }

    /// Its Call-ID.
    pub fn call_id(&self) -> &'a [u8] {
        self.meta.call_id(self.data)
    }

    /// Its CSeq number.
    pub fn cseq(&self) -> u32 {
        self.meta.cseq
    }

    /// Its CSeq method.
    pub fn cseq_method(&self) -> &'a [u8] {
        self.meta.cseq_method(self.data)
    }

    /// The branch of its top Via.
    pub fn branch(&self) -> Option<&'a [u8]> {
        self.meta.branch(self.data)
    }

    /// Where and when it was received.
    pub fn context(&self) -> ReceiveContext {
        self.meta.context(self.deadline_ms)
    }

    /// Its expiry deadline (ms).
    pub fn deadline_ms(&self) -> u64 {
        self.deadline_ms
    }

    /// The bytes it counts against [`RepoConfig::max_bytes`].
    pub fn bytes(&self) -> usize {
        self.meta.body_len(self.data.len())
    }
}

impl fmt::Debug for ItemView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ItemView")
            .field("call_id", &String::from_utf8_lossy(self.call_id()))
            .field("msgid", &String::from_utf8_lossy(self.msgid()))
            .field("message_len", &self.message().len())
            .field("context", &self.context())
            .field("deadline_ms", &self.deadline_ms)
            .finish()
    }
}

#[cfg(test)]
mod tests;
