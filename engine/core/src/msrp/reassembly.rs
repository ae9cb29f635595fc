//! Reassembling chunked MSRP messages (RFC 4975 §7.1.1, §9.1): chunks of several messages may
//! interleave on one session, arrive out of order, overlap or repeat; each message is keyed by
//! its Message-ID and complete once its bytes from 1 to its total have all arrived. A `#` chunk
//! aborts its message. Bounded: a message larger than the limit is refused (413) as soon as a
//! chunk says so, and so is a message beyond the number of partial messages allowed, a chunk
//! that would take the bytes buffered for all partial messages past one message's limit, and a
//! message whose chunks leave more than `MAX_GAPS` holes (so a peer cannot make the work per
//! chunk grow with the message).

use sipshard_parser::msrp::{ByteRange, Flag};
use std::collections::HashMap;

/// The limits of one session's reassembly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest message accepted, bytes (`a=max-size` or the configured maximum).
    pub max_message: u64,
    /// Messages that may be partial at once.
    pub max_partial: usize,
}

/// Holes a partial message may have before it is refused (413).
pub const MAX_GAPS: usize = 64;

/// What a chunk did to its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chunked {
    /// More chunks are needed.
    Pending,
    /// The message is whole.
    Complete {
        /// The Message-ID.
        message_id: Vec<u8>,
        /// Its Content-Type.
        content_type: Vec<u8>,
        /// Its bytes.
        body: Vec<u8>,
    },
    /// The sender aborted the message (`#`); what had arrived is dropped.
    Aborted,
    /// The message is larger than allowed, or too many are partial: answer 413; what had
    /// arrived is dropped.
    TooLarge,
    /// The chunk contradicts its message (a total that changed, bytes past the total): answer
    /// 400; the message is dropped.
    Invalid,
}

/// A message being reassembled.
#[derive(Debug)]
struct Partial {
    content_type: Vec<u8>,
    body: Vec<u8>,
    /// Received byte ranges, 0-based and end-exclusive, sorted and disjoint.
    have: Vec<(u64, u64)>,
    total: Option<u64>,
    last_ms: u64,
}

impl Partial {
    fn add(&mut self, from: u64, bytes: &[u8]) {
        let to = from + bytes.len() as u64;
        if self.body.len() < to as usize {
            self.body.resize(to as usize, 0);
        }
        self.body[from as usize..to as usize].copy_from_slice(bytes);
        if from == to {
            return;
        }
        // Merge [from, to) into the sorted disjoint ranges.
        let mut merged = (from, to);
        self.have.retain(|&(a, b)| {
            if b < merged.0 || a > merged.1 {
                true
            } else {
                merged = (merged.0.min(a), merged.1.max(b));
                false
            }
        });
        let at = self.have.partition_point(|&(a, _)| a < merged.0);
        self.have.insert(at, merged);
    }

    fn is_complete(&self) -> bool {
        match self.total {
            Some(0) => true,
            Some(t) => self.have.first() == Some(&(0, t)),
            None => false,
        }
    }
}

/// One session's messages being reassembled.
#[derive(Debug)]
pub struct Reassembly {
    limits: Limits,
    partial: HashMap<Vec<u8>, Partial>,
    /// Bytes of every partial message's buffer (at most `max_message` in all).
    buffered: usize,
}

impl Reassembly {
    /// Nothing partial yet.
    pub fn new(limits: Limits) -> Reassembly {
        Reassembly {
            limits,
            partial: HashMap::new(),
            buffered: 0,
        }
    }

    /// Messages partial now.
    pub fn len(&self) -> usize {
        self.partial.len()
    }

    /// Whether none is partial.
    pub fn is_empty(&self) -> bool {
        self.partial.is_empty()
    }

    /// Bytes held for partial messages.
    pub fn bytes(&self) -> usize {
        self.buffered
    }

    fn drop_partial(&mut self, message_id: &[u8]) {
        if let Some(p) = self.partial.remove(message_id) {
            self.buffered -= p.body.len();
        }
    }

    /// Takes one chunk of message `message_id`: its Byte-Range (the end is taken from the
    /// body's length, so an interrupted chunk counts for what it carries), end-line flag,
    /// Content-Type (`None` for a chunk without body) and body.
    pub fn add(
        &mut self,
        now_ms: u64,
        message_id: &[u8],
        range: ByteRange,
        flag: Flag,
        content_type: Option<&[u8]>,
        body: &[u8],
    ) -> Chunked {
        if flag == Flag::Abort {
            self.drop_partial(message_id);
            return Chunked::Aborted;
        }
        let from = range.start.saturating_sub(1);
        // Past the limit, or wrapping: refused before anything is sized from it.
        let Some(to) = from
            .checked_add(body.len() as u64)
            .filter(|&to| to <= self.limits.max_message)
        else {
            self.drop_partial(message_id);
            return Chunked::TooLarge;
        };
        // A `$` chunk ends the message: its total is where the chunk ends.
        let total = match (range.total, flag) {
            (Some(t), _) => Some(t),
            (None, Flag::Complete) => Some(to),
            (None, _) => None,
        };
        if total.is_some_and(|t| t > self.limits.max_message) {
            self.drop_partial(message_id);
            return Chunked::TooLarge;
        }
        if total.is_some_and(|t| to > t) {
            self.drop_partial(message_id);
            return Chunked::Invalid;
        }
        if !self.partial.contains_key(message_id) {
            // A whole message in one chunk needs no state.
            if from == 0 && total == Some(to) {
                return Chunked::Complete {
                    message_id: message_id.to_vec(),
                    content_type: content_type.unwrap_or_default().to_vec(),
                    body: body.to_vec(),
                };
            }
            if self.partial.len() >= self.limits.max_partial {
                return Chunked::TooLarge;
            }
            self.partial.insert(
                message_id.to_vec(),
                Partial {
                    content_type: Vec::new(),
                    body: Vec::new(),
                    have: Vec::new(),
                    total: None,
                    last_ms: now_ms,
                },
            );
        }
        let Some(p) = self.partial.get_mut(message_id) else {
            return Chunked::Pending;
        };
        match (p.total, total) {
            (Some(a), Some(b)) if a != b => {
                self.drop_partial(message_id);
                return Chunked::Invalid;
            }
            (None, Some(b)) if p.have.last().is_some_and(|&(_, end)| end > b) => {
                self.drop_partial(message_id);
                return Chunked::Invalid;
            }
            (None, Some(b)) => p.total = Some(b),
            _ => {}
        }
        if let (true, Some(ct)) = (p.content_type.is_empty(), content_type) {
            p.content_type = ct.to_vec();
        }
        p.last_ms = now_ms;
        let grows = (to as usize).saturating_sub(p.body.len());
        if self.buffered + grows > self.limits.max_message as usize {
            self.drop_partial(message_id);
            return Chunked::TooLarge;
        }
        self.buffered += grows;
        let Some(p) = self.partial.get_mut(message_id) else {
            return Chunked::Pending;
        };
        p.add(from, body);
        if p.have.len() > MAX_GAPS {
            self.drop_partial(message_id);
            return Chunked::TooLarge;
        }
        if !p.is_complete() {
            return Chunked::Pending;
        }
        let Some(mut p) = self.partial.remove(message_id) else {
            return Chunked::Pending;
        };
        self.buffered -= p.body.len();
        p.body.truncate(p.total.unwrap_or(0) as usize);
        Chunked::Complete {
            message_id: message_id.to_vec(),
            content_type: p.content_type,
            body: p.body,
        }
    }

    /// When the partial message touched longest ago was last touched (its staleness starts
    /// there).
    pub fn oldest_ms(&self) -> Option<u64> {
        self.partial.values().map(|p| p.last_ms).min()
    }

    /// Drops messages whose last chunk came before `before_ms`; returns their Message-IDs.
    pub fn drop_stale(&mut self, before_ms: u64) -> Vec<Vec<u8>> {
        let stale: Vec<Vec<u8>> = self
            .partial
            .iter()
            .filter(|(_, p)| p.last_ms < before_ms)
            .map(|(k, _)| k.clone())
            .collect();
        for k in &stale {
            self.drop_partial(k);
        }
        stale
    }
}
