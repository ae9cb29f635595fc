//! Remote operations: route runs that wait for another shard. A run whose action needs state
//! another shard owns (a `pull` of a Call-ID hashed elsewhere) suspends; the operation travels
//! to the owner with a [`Token`], and the owner's answer carries the token back to resume the
//! run. The waiting runs sit on a timing wheel keyed by their deadline, so the table is also
//! its own timeout list: an answer that never comes (a message between shards dropped at a full
//! outbox, say) is noticed at the deadline, logged and counted, and the run is dropped, never
//! kept. An answer that comes after the deadline finds no run and is logged: the owner has
//! acted on it (a pull has run its route), only the asking run's continuation is lost.

use super::boundary::Token;
use crate::route::Suspended;
use crate::transport::RxContext;
use crate::wheel::{Expired, TimerId, TimingWheel};

/// How long a run waits for another shard's answer. Shards answer in microseconds; this only
/// bounds what a lost answer costs.
pub const ANSWER_TIMEOUT_MS: u64 = 10_000;

/// Resolution of the waiting runs' deadlines.
const TICK_MS: u64 = 100;

/// A suspended run and what resuming it needs.
#[derive(Debug)]
pub struct Waiting {
    /// The shard asked.
    pub to: usize,
    /// The operation's name, for logs.
    pub op: &'static str,
    /// The run; `None` until the run that reserved the token has returned.
    pub suspended: Option<Suspended>,
    /// The message the run is routing (parsed again to resume).
    pub bytes: Vec<u8>,
    /// Where it came from.
    pub rx: Option<RxContext>,
    /// Config generation of the run's route ids.
    pub generation: u64,
}

/// One shard's runs waiting for other shards.
#[derive(Debug)]
pub struct RemoteOps {
    waiting: TimingWheel<Waiting>,
    timeout_ms: u64,
    expired: Vec<Expired<Waiting>>,
}

impl RemoteOps {
    /// An empty table whose time starts at `now_ms`.
    pub fn new(now_ms: u64) -> RemoteOps {
        RemoteOps {
            waiting: TimingWheel::new(TICK_MS, now_ms),
            timeout_ms: ANSWER_TIMEOUT_MS,
            expired: Vec::new(),
        }
    }

    /// Takes a token for an operation sent to shard `to`; the run fills its entry with
    /// [`RemoteOps::park`] once it has suspended.
    pub fn reserve(&mut self, now_ms: u64, to: usize, op: &'static str) -> Token {
        self.reserve_for(now_ms, to, op, self.timeout_ms)
    }

    /// [`RemoteOps::reserve`] for an operation whose answer may take `timeout_ms` (a `sync`
    /// MESSAGE waits for the MSRP side).
    pub fn reserve_for(
        &mut self,
        now_ms: u64,
        to: usize,
        op: &'static str,
        timeout_ms: u64,
    ) -> Token {
        let id = self.waiting.insert(
            now_ms.saturating_add(timeout_ms),
            Waiting {
                to,
                op,
                suspended: None,
                bytes: Vec::new(),
                rx: None,
                generation: 0,
            },
        );
        Token(id.to_u64())
    }

    /// Stores the suspended run under its token.
    pub fn park(
        &mut self,
        token: Token,
        suspended: Suspended,
        bytes: &[u8],
        rx: RxContext,
        generation: u64,
    ) {
        if let Some(w) = self.waiting.get_mut(TimerId::from_u64(token.0)) {
            w.suspended = Some(suspended);
            w.bytes = bytes.to_vec();
            w.rx = Some(rx);
            w.generation = generation;
        }
    }

    /// Gives up a token whose run did not suspend after all.
    pub fn release(&mut self, token: Token) {
        self.waiting.cancel(TimerId::from_u64(token.0));
    }

    /// The run an answer is for; `None` for a token that is not (or no longer) waiting.
    pub fn answer(&mut self, token: Token) -> Option<Waiting> {
        self.waiting.cancel(TimerId::from_u64(token.0))
    }

    /// Drops every run whose answer is overdue at `now_ms` and returns how many; each is logged.
    pub fn expire(&mut self, now_ms: u64, shard: usize) -> usize {
        let n = self.waiting.advance(now_ms, &mut self.expired);
        for e in self.expired.drain(..) {
            tracing::warn!(
                shard,
                "no answer from shard {} to `{}` in time; the route run waiting for it is dropped",
                e.value.to,
                e.value.op,
            );
        }
        n
    }

    /// When the earliest answer is overdue.
    pub fn next_deadline(&self) -> Option<u64> {
        self.waiting.next_deadline()
    }

    /// Runs waiting now.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Whether no run waits.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }
}
