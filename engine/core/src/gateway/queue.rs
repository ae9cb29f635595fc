//! The messages a gateway session holds until it can deliver them (its MSRP leg is being set
//! up, or busy): first in, first out, bounded by count, by bytes and by age. A full queue is a
//! distinct result, never a silent drop; every message that leaves the queue other than by
//! being taken for delivery (it expired, or the session ended) is handed back so its sender can
//! be told.

use std::collections::VecDeque;

/// The queue's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    /// Messages held at most.
    pub max_messages: usize,
    /// Body bytes held at most.
    pub max_bytes: usize,
    /// How long a message may wait, ms.
    pub max_age_ms: u64,
}

impl Default for QueueLimits {
    fn default() -> Self {
        QueueLimits {
            max_messages: 32,
            max_bytes: 256 * 1024,
            max_age_ms: 60_000,
        }
    }
}

/// Why a message was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// `max_messages` are held.
    Messages,
    /// It would take the queue past `max_bytes`.
    Bytes,
}

/// A queued message: what to deliver, and `T`, what the gateway needs to settle its outcome
/// (the held server transaction in sync mode, say).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued<T> {
    /// The message's Content-Type.
    pub content_type: Vec<u8>,
    /// Its body.
    pub body: Vec<u8>,
    /// When it was queued, ms.
    pub queued_ms: u64,
    /// Whose outcome it is.
    pub owner: T,
}

/// One session's queue.
#[derive(Debug, Clone)]
pub struct MessageQueue<T> {
    limits: QueueLimits,
    items: VecDeque<Queued<T>>,
    bytes: usize,
}

impl<T> MessageQueue<T> {
    /// An empty queue with `limits`.
    pub fn new(limits: QueueLimits) -> Self {
        MessageQueue {
            limits,
            items: VecDeque::new(),
            bytes: 0,
        }
    }

    /// Messages held.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Body bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Queues a message, or says why not (giving it back).
    pub fn push(&mut self, item: Queued<T>) -> Result<(), (Full, Queued<T>)> {
        if self.items.len() >= self.limits.max_messages {
            return Err((Full::Messages, item));
        }
        if self.bytes + item.body.len() > self.limits.max_bytes {
            return Err((Full::Bytes, item));
        }
        self.bytes += item.body.len();
        self.items.push_back(item);
        Ok(())
    }

    /// Takes the oldest message for delivery.
    pub fn pop(&mut self) -> Option<Queued<T>> {
        let item = self.items.pop_front()?;
        self.bytes -= item.body.len();
        Some(item)
    }

    /// The messages waiting, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &Queued<T>> {
        self.items.iter()
    }

    /// When the oldest message expires.
    pub fn next_deadline(&self) -> Option<u64> {
        self.items
            .front()
            .map(|i| i.queued_ms.saturating_add(self.limits.max_age_ms))
    }

    /// Takes every message that has waited `max_age_ms` at `now_ms` (oldest first).
    pub fn expire(&mut self, now_ms: u64) -> Vec<Queued<T>> {
        let mut out = Vec::new();
        while self
            .items
            .front()
            .is_some_and(|i| i.queued_ms.saturating_add(self.limits.max_age_ms) <= now_ms)
        {
            if let Some(i) = self.pop() {
                out.push(i);
            }
        }
        out
    }

    /// Takes the messages `f` picks, oldest first.
    pub fn take_where(&mut self, mut f: impl FnMut(&T) -> bool) -> Vec<Queued<T>> {
        let mut taken = Vec::new();
        let mut kept = VecDeque::with_capacity(self.items.len());
        for item in self.items.drain(..) {
            if f(&item.owner) {
                self.bytes -= item.body.len();
                taken.push(item);
            } else {
                kept.push_back(item);
            }
        }
        self.items = kept;
        taken
    }

    /// Takes every message (the session ended), oldest first.
    pub fn drain(&mut self) -> Vec<Queued<T>> {
        self.bytes = 0;
        self.items.drain(..).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Push { len: usize, at: u64 },
        Pop,
        Expire { at: u64 },
        Drain,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0..300usize, 0..200u64).prop_map(|(len, at)| Op::Push { len, at }),
            2 => Just(Op::Pop),
            2 => (0..200u64).prop_map(|at| Op::Expire { at }),
            1 => Just(Op::Drain),
        ]
    }

    proptest! {
        /// Against a plain list: the same messages come out in the same order, pushes are
        /// refused exactly when a bound would be passed, and nothing is ever lost: every
        /// message pushed comes out once, by pop, expiry or drain.
        #[test]
        fn the_queue_is_a_bounded_fifo_that_loses_nothing(ops in prop::collection::vec(op(), 1..200)) {
            let limits = QueueLimits { max_messages: 5, max_bytes: 700, max_age_ms: 50 };
            let mut q = MessageQueue::new(limits);
            let mut model: Vec<(u32, usize, u64)> = Vec::new();
            let (mut now, mut n) = (0u64, 0u32);
            let (mut pushed, mut out) = (Vec::new(), Vec::new());
            for op in ops {
                match op {
                    Op::Push { len, at } => {
                        now = now.max(at);
                        n += 1;
                        let item = Queued { content_type: b"text/plain".to_vec(), body: vec![0; len], queued_ms: now, owner: n };
                        let bytes: usize = model.iter().map(|m| m.1).sum();
                        let want = if model.len() >= 5 { Some(Full::Messages) } else if bytes + len > 700 { Some(Full::Bytes) } else { None };
                        match q.push(item) {
                            Ok(()) => {
                                prop_assert_eq!(want, None);
                                model.push((n, len, now));
                                pushed.push(n);
                            }
                            Err((why, back)) => {
                                prop_assert_eq!(Some(why), want);
                                prop_assert_eq!(back.owner, n);
                            }
                        }
                    }
                    Op::Pop => {
                        let got = q.pop().map(|i| i.owner);
                        let want = (!model.is_empty()).then(|| model.remove(0).0);
                        prop_assert_eq!(got, want);
                        out.extend(got);
                    }
                    Op::Expire { at } => {
                        now = now.max(at);
                        let got: Vec<u32> = q.expire(now).into_iter().map(|i| i.owner).collect();
                        let mut want = Vec::new();
                        while model.first().is_some_and(|m| m.2 + 50 <= now) {
                            want.push(model.remove(0).0);
                        }
                        prop_assert_eq!(&got, &want);
                        out.extend(got);
                    }
                    Op::Drain => {
                        let got: Vec<u32> = q.drain().into_iter().map(|i| i.owner).collect();
                        let want: Vec<u32> = model.drain(..).map(|m| m.0).collect();
                        prop_assert_eq!(&got, &want);
                        out.extend(got);
                    }
                }
                prop_assert_eq!(q.len(), model.len());
                prop_assert_eq!(q.bytes(), model.iter().map(|m| m.1).sum::<usize>());
                prop_assert_eq!(q.next_deadline(), model.first().map(|m| m.2 + 50));
            }
            out.extend(q.drain().into_iter().map(|i| i.owner));
            prop_assert_eq!(out, pushed);
        }
    }
}
