//! A hierarchical timing wheel: the one place a shard keeps its deadlines.
//!
//! Every deadline a shard holds (repository expiry, SIP retransmission timers, MSRP transaction
//! timeouts, session timeouts) lives here instead of in a runtime timer per item: the runtime
//! asks [`TimingWheel::next_deadline`] when to wake, then calls [`TimingWheel::advance`] (or
//! [`TimingWheel::poll_expired`]), and the wheel hands back what is due. Kamailio's `siprepo` instead scans its whole table every
//! `timer_interval`; a wheel costs O(1) per item, however many items are stored.
//!
//! Shape (as the Linux and Kafka wheels): time is cut into ticks of `tick_ms` milliseconds;
//! 4 levels of 64 slots cover 64, 64², 64³ and 64⁴ ticks ahead (with the default 10 ms tick: 0.64 s,
//! 41 s, 44 min, 46.6 h). A deadline goes to the lowest level whose slot range reaches it; when
//! the wheel's time enters a higher level slot, that slot is cascaded into the levels below.
//! Deadlines beyond the top level wait in an overflow list that is only looked at when the
//! wheel's time reaches the top-level window of its earliest entry (lazy cascade). Finding the
//! next slot with work uses one occupancy bitmap per level, so a jump of days costs one step per
//! non-empty slot, never one per tick.
//!
//! Storage: entries live in a slab (pages of 4096 entries plus a free list) and every slot is an
//! intrusive circular doubly-linked list of `u32` indices with a sentinel entry per slot, so
//! insert and cancel are O(1) and allocate nothing once the slab has grown. The slab grows a page
//! at a time: never more than one page unused, and no copy of existing entries (a `Vec` doubling
//! at a million entries would copy tens of megabytes on the shard's thread and could leave half
//! its capacity unused). A [`TimerId`] carries the slot's
//! generation, so cancelling an id whose entry already fired or was cancelled is a harmless
//! `None`, even after its slot was reused.
//!
//! Timing contract: an entry never fires early, and fires at the first advance whose `now` is at
//! or after its deadline rounded up to the tick: it "fires at the first tick at or after the
//! deadline". A driver that sleeps until [`TimingWheel::next_deadline`] fires an entry within one
//! tick of its deadline (plus its own wake-up latency).
//!
//! The wheel is generic over its value; the repository stores its items in it directly, so the
//! wheel's slab is the repository's slab (one index per item, not two).

use std::fmt;

/// Bits of tick number per level: 64 slots.
const LEVEL_BITS: u32 = 6;
const SLOTS: usize = 1 << LEVEL_BITS;
const SLOT_MASK: u64 = SLOTS as u64 - 1;
/// Number of levels.
const LEVELS: usize = 4;
/// log2 of the ticks the levels cover: beyond, the overflow list.
const SPAN_BITS: u32 = LEVEL_BITS * LEVELS as u32;
/// Sentinel of the overflow list.
const OVERFLOW: u32 = (LEVELS * SLOTS) as u32;
/// Sentinel of the list of entries already due, handed out by the next poll.
const DUE: u32 = OVERFLOW + 1;
/// Entries below this index are list sentinels, never values.
const SENTINELS: u32 = DUE + 1;
/// "No entry" in the free list.
const NIL: u32 = u32::MAX;

/// The tick the repository and the runtime use unless configured otherwise.
pub const DEFAULT_TICK_MS: u64 = 10;

/// A handle to a scheduled entry. Stale handles (the entry fired or was cancelled, even if its
/// slot was reused since) are recognised by their generation and do nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimerId {
    index: u32,
    generation: u32,
}

impl TimerId {
    /// The entry's slab index: stable while the entry is scheduled, reused after it fired or was
    /// cancelled. Other structures may index entries by it (see [`TimingWheel::get_at`]).
    pub fn index(self) -> u32 {
        self.index
    }

    /// The id as one number, for handing to another shard and back (see [`TimerId::from_u64`]).
    pub fn to_u64(self) -> u64 {
        (u64::from(self.index) << 32) | u64::from(self.generation)
    }

    /// The id [`TimerId::to_u64`] gave. Any number is accepted: one that never named an entry of
    /// this wheel is stale and every lookup with it answers `None`.
    pub fn from_u64(n: u64) -> TimerId {
        TimerId {
            index: (n >> 32) as u32,
            generation: n as u32,
        }
    }
}

/// An entry handed back by the wheel because its deadline passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired<T> {
    /// The id the entry had (now stale).
    pub id: TimerId,
    /// Its deadline, as inserted.
    pub deadline_ms: u64,
    /// Its value.
    pub value: T,
}

struct Entry<T> {
    deadline_ms: u64,
    /// Previous entry in the entry's list (a sentinel at the head).
    prev: u32,
    /// Next entry in the entry's list, or the next free slot for a free slot.
    next: u32,
    generation: u32,
    /// `None` for sentinels and free slots.
    value: Option<T>,
}

/// What the wheel must do at its next step.
#[derive(Debug, Clone, Copy)]
enum Work {
    /// Fire (level 0) or cascade (higher levels) one slot.
    Slot { level: usize, slot: usize },
    /// Move overflow entries that now fit into the levels.
    Overflow,
}

/// A hierarchical timing wheel holding values of type `T`, each with a deadline in milliseconds
/// of the caller's clock. See the module documentation for the timing contract.
pub struct TimingWheel<T> {
    entries: Slab<Entry<T>>,
    free_head: u32,
    len: usize,
    tick_ms: u64,
    /// Ticks processed: every entry whose deadline tick is at most this has been moved to `DUE`.
    elapsed: u64,
    /// Per level, bit `s` set when slot `s` is not empty.
    occupied: [u64; LEVELS],
    /// Lower bound of the deadline ticks in the overflow list (`u64::MAX` when empty); a cancel
    /// can leave it too low, which only makes a lazy cascade happen early.
    overflow_min: u64,
}

impl<T> TimingWheel<T> {
    /// A wheel with ticks of `tick_ms` milliseconds (0 is taken as 1) whose time starts at
    /// `now_ms`.
    pub fn new(tick_ms: u64, now_ms: u64) -> Self {
        Self::with_capacity(tick_ms, now_ms, 0)
    }

    /// As [`TimingWheel::new`], with room for `capacity` entries before the slab grows.
    pub fn with_capacity(tick_ms: u64, now_ms: u64, capacity: usize) -> Self {
        let tick_ms = tick_ms.max(1);
        let mut entries = Slab::with_capacity(SENTINELS as usize + capacity);
        for i in 0..SENTINELS {
            entries.push(Entry {
                deadline_ms: 0,
                prev: i,
                next: i,
                generation: 0,
                value: None,
            });
        }
        TimingWheel {
            entries,
            free_head: NIL,
            len: 0,
            tick_ms,
            elapsed: now_ms / tick_ms,
            occupied: [0; LEVELS],
            overflow_min: u64::MAX,
        }
    }

    /// The tick length in milliseconds.
    pub fn tick_ms(&self) -> u64 {
        self.tick_ms
    }

    /// The time the wheel has been advanced to, rounded down to the tick.
    pub fn now_ms(&self) -> u64 {
        self.elapsed.saturating_mul(self.tick_ms)
    }

    /// Number of scheduled entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no entry is scheduled.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Schedules `value` at `deadline_ms`. A deadline already past fires at the next advance.
    ///
    /// # Panics
    ///
    /// When 2³² − 260 entries are already scheduled.
    pub fn insert(&mut self, deadline_ms: u64, value: T) -> TimerId {
        let index = if self.free_head != NIL {
            let index = self.free_head;
            let e = &mut self.entries[index as usize];
            self.free_head = e.next;
            e.deadline_ms = deadline_ms;
            e.value = Some(value);
            index
        } else {
            let index = u32::try_from(self.entries.len())
                .ok()
                .filter(|&i| i != NIL)
                .expect("timing wheel is limited to 2^32 - 1 slab entries");
            self.entries.push(Entry {
                deadline_ms,
                prev: NIL,
                next: NIL,
                generation: 0,
                value: Some(value),
            });
            index
        };
        self.place(index);
        self.len += 1;
        TimerId {
            index,
            generation: self.entries[index as usize].generation,
        }
    }

    /// Unschedules an entry and gives its value back; `None` when the id is stale (the entry
    /// already fired or was cancelled). O(1).
    pub fn cancel(&mut self, id: TimerId) -> Option<T> {
        if id.index < SENTINELS {
            return None;
        }
        let e = self.entries.get_mut(id.index as usize)?;
        if e.generation != id.generation {
            return None;
        }
        let value = e.value.take()?;
        self.unlink(id.index);
        self.free(id.index);
        Some(value)
    }

    /// The value of a scheduled entry.
    pub fn get(&self, id: TimerId) -> Option<&T> {
        let e = self.entries.get(id.index as usize)?;
        if e.generation == id.generation {
            e.value.as_ref()
        } else {
            None
        }
    }

    /// The value of a scheduled entry, mutably.
    pub fn get_mut(&mut self, id: TimerId) -> Option<&mut T> {
        let e = self.entries.get_mut(id.index as usize)?;
        if e.generation == id.generation {
            e.value.as_mut()
        } else {
            None
        }
    }

    /// The deadline of a scheduled entry, in milliseconds as inserted.
    pub fn deadline(&self, id: TimerId) -> Option<u64> {
        let e = self.entries.get(id.index as usize)?;
        (e.generation == id.generation && e.value.is_some()).then_some(e.deadline_ms)
    }

    /// The value of the entry scheduled at slab index `index` (see [`TimerId::index`]), for
    /// structures that index entries by a bare `u32`.
    pub fn get_at(&self, index: u32) -> Option<&T> {
        self.entries.get(index as usize)?.value.as_ref()
    }

    /// The value of the entry scheduled at slab index `index`, mutably.
    pub fn get_at_mut(&mut self, index: u32) -> Option<&mut T> {
        self.entries.get_mut(index as usize)?.value.as_mut()
    }

    /// The id of the entry scheduled at slab index `index`.
    pub fn id_at(&self, index: u32) -> Option<TimerId> {
        let e = self.entries.get(index as usize)?;
        e.value.as_ref().map(|_| TimerId {
            index,
            generation: e.generation,
        })
    }

    /// Scheduled entries with a slab index at or after `index`, in slab order: `(id, deadline,
    /// value)`. An entry scheduled for the whole iteration is seen exactly once.
    pub fn iter_from(&self, index: u32) -> impl Iterator<Item = (TimerId, u64, &T)> + '_ {
        let start = index.max(SENTINELS) as usize;
        (start..self.entries.len())
            .map(|i| (&self.entries[i], i))
            .filter_map(|(e, i)| {
                let v = e.value.as_ref()?;
                let id = TimerId {
                    index: i as u32,
                    generation: e.generation,
                };
                Some((id, e.deadline_ms, v))
            })
    }

    /// When the wheel next has work to do, in milliseconds on a tick boundary, or `None` when
    /// it is empty.
    ///
    /// Never later than the tick at which the earliest entry fires (its deadline rounded up to
    /// the tick); it can be earlier, when the next work is cascading a higher-level slot or
    /// revisiting the overflow list (those cover a range of deadlines). When entries are already
    /// due, this is the wheel's own time.
    pub fn next_deadline(&self) -> Option<u64> {
        if self.entries[DUE as usize].next != DUE {
            return Some(self.now_ms());
        }
        self.next_work()
            .map(|(tick, _)| tick.saturating_mul(self.tick_ms))
    }

    /// Moves every entry due at `now_ms` to `out` (appended; `out` is not cleared) and returns
    /// how many were moved. Reusing `out` keeps the steady state free of allocation.
    pub fn advance(&mut self, now_ms: u64, out: &mut Vec<Expired<T>>) -> usize {
        let before = out.len();
        while let Some(fired) = self.poll_expired(now_ms) {
            out.push(fired);
        }
        out.len() - before
    }

    /// Removes and returns one entry due at `now_ms`, or `None` once none is left (the wheel's
    /// time is then `now_ms`). Between calls the caller may use the wheel freely (look at or
    /// change other entries, insert, cancel): this is how an owner of entries that point at each
    /// other unlinks each expired entry while its neighbours are still in place.
    ///
    /// A `now_ms` earlier than a previous one is taken as the previous one: time never goes
    /// backwards.
    pub fn poll_expired(&mut self, now_ms: u64) -> Option<Expired<T>> {
        let target = (now_ms / self.tick_ms).max(self.elapsed);
        loop {
            let first = self.entries[DUE as usize].next;
            if first != DUE {
                self.unlink(first);
                let e = &mut self.entries[first as usize];
                let id = TimerId {
                    index: first,
                    generation: e.generation,
                };
                let deadline_ms = e.deadline_ms;
                let value = e.value.take().expect("a listed entry holds a value");
                self.free(first);
                return Some(Expired {
                    id,
                    deadline_ms,
                    value,
                });
            }
            match self.next_work() {
                Some((tick, work)) if tick <= target => {
                    self.elapsed = tick;
                    self.run(work);
                }
                _ => {
                    self.elapsed = target;
                    return None;
                }
            }
        }
    }

    /// The deadline of an entry in ticks: rounded up, so that it never fires early.
    fn deadline_tick(&self, index: u32) -> u64 {
        self.entries[index as usize]
            .deadline_ms
            .div_ceil(self.tick_ms)
    }

    /// Links an unlinked entry into the list its deadline belongs to, relative to `elapsed`.
    fn place(&mut self, index: u32) {
        let tick = self.deadline_tick(index);
        let list = if tick <= self.elapsed {
            DUE
        } else {
            let level = level_for(self.elapsed, tick);
            if level >= LEVELS {
                self.overflow_min = self.overflow_min.min(tick);
                OVERFLOW
            } else {
                let slot = ((tick >> (level as u32 * LEVEL_BITS)) & SLOT_MASK) as usize;
                self.occupied[level] |= 1 << slot;
                (level * SLOTS + slot) as u32
            }
        };
        self.link_back(list, index);
    }

    fn link_back(&mut self, list: u32, index: u32) {
        let tail = self.entries[list as usize].prev;
        {
            let e = &mut self.entries[index as usize];
            e.prev = tail;
            e.next = list;
        }
        self.entries[tail as usize].next = index;
        self.entries[list as usize].prev = index;
    }

    fn unlink(&mut self, index: u32) {
        let (prev, next) = {
            let e = &self.entries[index as usize];
            (e.prev, e.next)
        };
        self.entries[prev as usize].next = next;
        self.entries[next as usize].prev = prev;
        // In a circular list only the sentinel is left when both neighbours are the same entry.
        if prev == next {
            self.list_emptied(prev);
        }
    }

    fn list_emptied(&mut self, list: u32) {
        if list < OVERFLOW {
            let (level, slot) = (list as usize / SLOTS, list as usize % SLOTS);
            self.occupied[level] &= !(1 << slot);
        } else if list == OVERFLOW {
            self.overflow_min = u64::MAX;
        }
    }

    /// Returns an unlinked entry whose value was taken to the free list.
    fn free(&mut self, index: u32) {
        let e = &mut self.entries[index as usize];
        e.generation = e.generation.wrapping_add(1);
        e.prev = NIL;
        e.next = self.free_head;
        self.free_head = index;
        self.len -= 1;
    }

    /// The earliest step of work: `(tick, work)`. Level slots win ties (there are none by
    /// construction: a higher level slot always starts after the current lower-level windows).
    fn next_work(&self) -> Option<(u64, Work)> {
        let mut best: Option<(u64, Work)> = None;
        for (level, &occupied) in self.occupied.iter().enumerate() {
            if occupied == 0 {
                continue;
            }
            let shift = level as u32 * LEVEL_BITS;
            let now_slot = ((self.elapsed >> shift) & SLOT_MASK) as u32;
            let slot =
                (occupied.rotate_right(now_slot).trailing_zeros() + now_slot) as usize % SLOTS;
            let level_start = self.elapsed & !((1u64 << (shift + LEVEL_BITS)) - 1);
            let tick = level_start + ((slot as u64) << shift);
            // Entries sit in slots strictly ahead of the wheel's time in the current window.
            debug_assert!(tick > self.elapsed, "slot behind the wheel's time");
            if best.as_ref().is_none_or(|b| tick < b.0) {
                best = Some((tick, Work::Slot { level, slot }));
            }
        }
        if self.entries[OVERFLOW as usize].next != OVERFLOW {
            let window = self.overflow_min & !((1u64 << SPAN_BITS) - 1);
            let tick = window.max(self.elapsed);
            if best.as_ref().is_none_or(|b| tick < b.0) {
                best = Some((tick, Work::Overflow));
            }
        }
        best
    }

    /// Runs one step of work at `elapsed` (already set to the step's tick).
    fn run(&mut self, work: Work) {
        match work {
            Work::Slot { level: 0, slot } => {
                // Every entry of a level-0 slot has this very tick: all are due.
                self.occupied[0] &= !(1 << slot);
                self.splice_to_due(slot as u32);
            }
            Work::Slot { level, slot } => {
                self.occupied[level] &= !(1 << slot);
                self.replace_all((level * SLOTS + slot) as u32);
            }
            Work::Overflow => {
                self.overflow_min = u64::MAX;
                self.replace_all(OVERFLOW);
            }
        }
    }

    /// Moves a whole non-empty list to the end of the due list in O(1).
    fn splice_to_due(&mut self, list: u32) {
        let (first, last) = {
            let s = &self.entries[list as usize];
            (s.next, s.prev)
        };
        if first == list {
            return;
        }
        {
            let s = &mut self.entries[list as usize];
            s.next = list;
            s.prev = list;
        }
        let due_tail = self.entries[DUE as usize].prev;
        self.entries[due_tail as usize].next = first;
        self.entries[first as usize].prev = due_tail;
        self.entries[last as usize].next = DUE;
        self.entries[DUE as usize].prev = last;
    }

    /// Empties a list and places each of its entries again, relative to the current time.
    fn replace_all(&mut self, list: u32) {
        let (first, last) = {
            let s = &self.entries[list as usize];
            (s.next, s.prev)
        };
        if first == list {
            return;
        }
        {
            let s = &mut self.entries[list as usize];
            s.next = list;
            s.prev = list;
        }
        let mut cur = first;
        loop {
            let next = self.entries[cur as usize].next;
            self.place(cur);
            if cur == last {
                break;
            }
            cur = next;
        }
    }
}

/// log2 of the entries in a slab page.
const PAGE_BITS: u32 = 12;
const PAGE: usize = 1 << PAGE_BITS;

/// A growable array in pages of `PAGE` elements: growing never moves elements, and at most one
/// page is partly unused. The first page grows like a `Vec` up to `PAGE`, so a small wheel stays
/// small.
struct Slab<E> {
    pages: Vec<Vec<E>>,
    len: usize,
}

impl<E> Slab<E> {
    fn with_capacity(capacity: usize) -> Self {
        let mut pages = Vec::with_capacity(capacity.div_ceil(PAGE).max(1));
        let mut left = capacity;
        while left > 0 || pages.is_empty() {
            pages.push(Vec::with_capacity(left.min(PAGE)));
            left = left.saturating_sub(PAGE);
        }
        Slab { pages, len: 0 }
    }

    fn len(&self) -> usize {
        self.len
    }

    fn push(&mut self, e: E) {
        let page = self.len >> PAGE_BITS;
        if page == self.pages.len() {
            self.pages.push(Vec::with_capacity(PAGE));
        }
        let p = &mut self.pages[page];
        if p.len() == p.capacity() {
            // Only a page allocated smaller than PAGE gets here: double it, up to PAGE.
            p.reserve_exact(p.len().max(4).min(PAGE - p.len()));
        }
        p.push(e);
        self.len += 1;
    }

    fn get(&self, i: usize) -> Option<&E> {
        self.pages.get(i >> PAGE_BITS)?.get(i & (PAGE - 1))
    }

    fn get_mut(&mut self, i: usize) -> Option<&mut E> {
        self.pages.get_mut(i >> PAGE_BITS)?.get_mut(i & (PAGE - 1))
    }
}

impl<E> std::ops::Index<usize> for Slab<E> {
    type Output = E;

    fn index(&self, i: usize) -> &E {
        &self.pages[i >> PAGE_BITS][i & (PAGE - 1)]
    }
}

impl<E> std::ops::IndexMut<usize> for Slab<E> {
    fn index_mut(&mut self, i: usize) -> &mut E {
        &mut self.pages[i >> PAGE_BITS][i & (PAGE - 1)]
    }
}

/// The level for a deadline tick `when > elapsed`: the 6-bit digit group of the highest bit in
/// which the two differ. Levels at or past `LEVELS` mean the overflow list.
fn level_for(elapsed: u64, when: u64) -> usize {
    let masked = (elapsed ^ when) | SLOT_MASK;
    let significant = 63 - masked.leading_zeros();
    (significant / LEVEL_BITS) as usize
}

impl<T> fmt::Debug for TimingWheel<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimingWheel")
            .field("len", &self.len)
            .field("tick_ms", &self.tick_ms)
            .field("now_ms", &self.now_ms())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, BTreeSet};

    fn drain(w: &mut TimingWheel<u64>, now: u64) -> Vec<u64> {
        let mut out = Vec::new();
        w.advance(now, &mut out);
        let mut v: Vec<u64> = out.into_iter().map(|e| e.value).collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn fires_at_first_tick_at_or_after_deadline() {
        let mut w = TimingWheel::new(10, 1000);
        w.insert(1005, 1);
        w.insert(1010, 2);
        w.insert(1011, 3);
        assert_eq!(drain(&mut w, 1009), Vec::<u64>::new());
        // 1005 rounds up to the tick at 1010.
        assert_eq!(drain(&mut w, 1010), vec![1, 2]);
        assert_eq!(drain(&mut w, 1019), Vec::<u64>::new());
        assert_eq!(drain(&mut w, 1020), vec![3]);
        assert!(w.is_empty());
    }

    #[test]
    fn past_deadline_fires_at_next_advance() {
        let mut w = TimingWheel::new(10, 5000);
        w.insert(10, 1);
        w.insert(5000, 2);
        assert_eq!(w.next_deadline(), Some(5000));
        assert_eq!(drain(&mut w, 5000), vec![1, 2]);
    }

    #[test]
    fn cancel_is_exact_and_stale_ids_are_harmless() {
        let mut w = TimingWheel::new(1, 0);
        let a = w.insert(100, 1);
        let b = w.insert(100, 2);
        assert_eq!(w.cancel(a), Some(1));
        assert_eq!(w.cancel(a), None);
        // Reuse a's slot: the stale id must not reach the new entry.
        let c = w.insert(50, 3);
        assert_eq!(c.index(), a.index());
        assert_eq!(w.cancel(a), None);
        assert_eq!(w.get(c), Some(&3));
        assert_eq!(drain(&mut w, 100), vec![2, 3]);
        assert_eq!(w.cancel(b), None);
        assert_eq!(w.cancel(c), None);
        assert_eq!(w.len(), 0);
    }

    #[test]
    fn long_and_overflow_deadlines() {
        let day = 86_400_000;
        let mut w = TimingWheel::new(10, 0);
        w.insert(3 * day, 3);
        w.insert(10 * day + 7, 10);
        w.insert(45_000, 0);
        assert_eq!(drain(&mut w, 44_999), Vec::<u64>::new());
        assert_eq!(drain(&mut w, 45_000), vec![0]);
        assert_eq!(drain(&mut w, 3 * day - 1), Vec::<u64>::new());
        assert_eq!(drain(&mut w, 3 * day), vec![3]);
        assert_eq!(drain(&mut w, 10 * day), Vec::<u64>::new());
        assert_eq!(drain(&mut w, 10 * day + 9), Vec::<u64>::new());
        assert_eq!(drain(&mut w, 10 * day + 10), vec![10]);
    }

    #[test]
    fn huge_deadlines_do_not_overflow() {
        let mut w = TimingWheel::new(1, 0);
        w.insert(u64::MAX, 1);
        w.insert(u64::MAX - 1, 2);
        assert_eq!(drain(&mut w, u64::MAX - 2), Vec::<u64>::new());
        assert_eq!(drain(&mut w, u64::MAX), vec![1, 2]);
    }

    #[test]
    fn next_deadline_never_later_than_first_fire() {
        let mut w = TimingWheel::new(10, 0);
        assert_eq!(w.next_deadline(), None);
        w.insert(25, 1);
        assert_eq!(w.next_deadline(), Some(30));
        w.insert(100_000, 2);
        assert_eq!(w.next_deadline(), Some(30));
        drain(&mut w, 30);
        let nd = w.next_deadline().unwrap();
        assert!(nd <= 100_000);
    }

    #[test]
    fn poll_lets_the_owner_touch_neighbours() {
        // Two entries expiring together, each naming the other: the owner can still read the
        // second while handling the first (the bug that hung Kamailio's siprepo timer).
        let mut w: TimingWheel<(u64, Option<TimerId>)> = TimingWheel::new(10, 0);
        let a = w.insert(100, (1, None));
        let b = w.insert(100, (2, Some(a)));
        w.get_mut(a).unwrap().1 = Some(b);
        let mut seen = Vec::new();
        while let Some(Expired {
            id,
            value: (v, other),
            ..
        }) = w.poll_expired(100)
        {
            if let Some(o) = other {
                // The partner is either still scheduled or already handed out: never garbage.
                assert!(w.get(o).is_none_or(|x| x.1 == Some(id)));
            }
            seen.push(v);
        }
        seen.sort_unstable();
        assert_eq!(seen, vec![1, 2]);
    }

    #[test]
    fn iter_from_lists_live_entries_in_slab_order() {
        let mut w = TimingWheel::new(1, 0);
        let ids: Vec<TimerId> = (0..5).map(|i| w.insert(10 + i, i)).collect();
        w.cancel(ids[1]);
        let seen: Vec<u64> = w.iter_from(0).map(|(_, _, v)| *v).collect();
        assert_eq!(seen, vec![0, 2, 3, 4]);
        let seen: Vec<u64> = w.iter_from(ids[3].index()).map(|(_, _, v)| *v).collect();
        assert_eq!(seen, vec![3, 4]);
        assert_eq!(w.get_at(ids[2].index()), Some(&2));
        assert_eq!(w.id_at(ids[2].index()), Some(ids[2]));
        assert_eq!(w.deadline(ids[2]), Some(12));
        assert_eq!(w.get_at(0), None);
    }

    #[test]
    fn many_entries_across_slab_pages() {
        let mut w = TimingWheel::new(1, 0);
        let n = 3 * PAGE as u64;
        let ids: Vec<TimerId> = (0..n).map(|i| w.insert(1 + i % 5000, i)).collect();
        for id in ids.iter().step_by(2) {
            assert!(w.cancel(*id).is_some());
        }
        assert_eq!(w.iter_from(0).count() as u64, n / 2);
        let fired = drain(&mut w, 5000);
        assert_eq!(fired, (0..n).filter(|i| i % 2 == 1).collect::<Vec<_>>());
        // Freed slots are reused before the slab grows.
        let before = w.entries.len();
        for i in 0..n {
            w.insert(10_000, i);
        }
        assert_eq!(w.entries.len(), before);
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// Deadline relative to now (may be in the past).
        Insert(i64),
        /// Cancel the n-th known id (live or stale).
        Cancel(usize),
        /// Advance the clock by this many ms.
        Advance(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => prop_oneof![
                -50i64..200,
                0i64..20_000,
                0i64..5_000_000,
                // Beyond the top level at 1 ms ticks (4.6 h): the overflow list.
                0i64..40_000_000_000,
            ]
            .prop_map(Op::Insert),
            2 => any::<usize>().prop_map(Op::Cancel),
            3 => prop_oneof![
                0u64..20,
                0u64..2_000,
                0u64..10_000_000,
                0u64..50_000_000_000,
            ]
            .prop_map(Op::Advance),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// The wheel against a trivially correct model: a sorted map of deadlines.
        #[test]
        fn wheel_matches_model(
            tick in prop_oneof![Just(1u64), Just(3), Just(10), 1u64..100],
            start in prop_oneof![Just(0u64), 0u64..1 << 42],
            ops in proptest::collection::vec(op(), 1..200),
        ) {
            let mut w: TimingWheel<u64> = TimingWheel::new(tick, start);
            let mut model: BTreeMap<(u64, u64), TimerId> = BTreeMap::new();
            let mut deadline_of: BTreeMap<u64, u64> = BTreeMap::new();
            let mut known: Vec<(TimerId, u64)> = Vec::new();
            let mut now = start;
            let mut seq = 0u64;
            let mut out = Vec::new();
            for op in ops {
                match op {
                    Op::Insert(rel) => {
                        let deadline = now.saturating_add_signed(rel);
                        let id = w.insert(deadline, seq);
                        prop_assert_eq!(w.deadline(id), Some(deadline));
                        model.insert((deadline, seq), id);
                        deadline_of.insert(seq, deadline);
                        known.push((id, seq));
                        seq += 1;
                    }
                    Op::Cancel(n) => {
                        if known.is_empty() {
                            continue;
                        }
                        let (id, s) = known[n % known.len()];
                        let expected = deadline_of
                            .get(&s)
                            .and_then(|d| model.remove(&(*d, s)))
                            .map(|_| s);
                        deadline_of.remove(&s);
                        prop_assert_eq!(w.cancel(id), expected);
                    }
                    Op::Advance(step) => {
                        now = now.saturating_add(step);
                        out.clear();
                        w.advance(now, &mut out);
                        let got: BTreeSet<u64> = out.iter().map(|e| e.value).collect();
                        prop_assert_eq!(got.len(), out.len());
                        for e in &out {
                            prop_assert_eq!(e.deadline_ms, deadline_of[&e.value]);
                            prop_assert_eq!(model.get(&(e.deadline_ms, e.value)), Some(&e.id));
                        }
                        // Due: deadline rounded up to the tick is at or before now.
                        let due: Vec<(u64, u64)> = model
                            .keys()
                            .filter(|(d, _)| d.div_ceil(tick) <= now / tick)
                            .copied()
                            .collect();
                        let want: BTreeSet<u64> = due.iter().map(|(_, s)| *s).collect();
                        prop_assert_eq!(&got, &want, "now {}", now);
                        for k in due {
                            model.remove(&k);
                            deadline_of.remove(&k.1);
                        }
                    }
                }
                prop_assert_eq!(w.len(), model.len());
                match model.keys().next() {
                    None => prop_assert_eq!(w.next_deadline(), None),
                    Some((d, _)) => {
                        let nd = w.next_deadline();
                        prop_assert!(nd.is_some());
                        let first_fire = d.div_ceil(tick).saturating_mul(tick);
                        prop_assert!(nd.unwrap() <= first_fire.max(now / tick * tick));
                    }
                }
            }
        }
    }
}
