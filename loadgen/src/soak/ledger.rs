//! The ledger: one entry per park, every answer it got, and the verdict on it.
//!
//! An entry lives from its park until the park's expiry plus a margin (so a second outcome that
//! comes late is still seen), then it is judged by [`verdict`] and folded into the [`Tally`].
//! Entries are kept in park order, and since every entry lives the same time they retire in
//! that order too: the ledger is a queue indexed by sequence number, and an answer for a
//! sequence number already retired is a late outcome, itself a violation.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;

/// Where a park was sent from: which UDP socket or TCP connection of the driver. Its outcome
/// must come back there (the original sender, over the original transport).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The driver's UDP socket number.
    Udp(u16),
    /// The driver's TCP connection number.
    Tcp(u16),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Udp(i) => write!(f, "udp#{i}"),
            Origin::Tcp(i) => write!(f, "tcp#{i}"),
        }
    }
}

/// What the soak does with a parked item once it is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// A trigger pulls it; `same_callid`: the trigger carries the parked Call-ID (so it lands on
    /// the item's shard), else a fresh one (often another shard: a cross-shard pull).
    Pull {
        /// Whether the trigger reuses the parked Call-ID.
        same_callid: bool,
    },
    /// `repo.rm` removes it.
    Rm,
    /// Nothing: it must expire and be answered 408.
    Expire,
}

/// The answer of `repo.rm`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RmAnswer {
    /// `{"result": "removed"}`.
    Removed,
    /// `{"result": "not_found"}`.
    NotFound,
    /// Anything else: an error, no answer, a connection refused.
    Error(String),
}

/// One park and everything that happened to it.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Sequence number (also in its Call-ID).
    pub seq: u64,
    /// When the park was sent, ms since the run's start.
    pub sent_ms: u64,
    /// Where it was sent from.
    pub origin: Origin,
    /// What is done with it.
    pub plan: Plan,
    /// Whether it is retransmitted once after its 202.
    pub rtx: bool,
    /// Whether `repo.get` checks it before its action (and after a pull or rm).
    pub check: bool,
    /// How long after its 202 its action comes, ms.
    pub hold_ms: u64,
    /// Where its pull trigger is sent from.
    pub trigger_origin: Origin,
    /// The msgid of the first 202.
    pub msgid: Option<Box<str>>,
    /// 202s without `X-Repo-Retransmission` (the server stored it; more than one: stored twice).
    pub stored: u8,
    /// 202s with `X-Repo-Retransmission: 1`.
    pub rtx_answers: u8,
    /// Retransmissions sent.
    pub rtx_sent: u8,
    /// `200 Pulled` answers.
    pub pulled: u8,
    /// `408` answers.
    pub expired: u8,
    /// `503` answers (repository full, or the server stopping).
    pub refused: u8,
    /// Answers with any other code.
    pub other: u8,
    /// The codes of those other answers (the first few).
    pub other_codes: Vec<u16>,
    /// When the first 408 came, ms since the start.
    pub expired_ms: Option<u64>,
    /// Whether the pull trigger was sent.
    pub trigger_sent: bool,
    /// The trigger's answers (codes, in order).
    pub trigger_answers: Vec<u16>,
    /// Whether `repo.rm` was called.
    pub rm_sent: bool,
    /// Its answer.
    pub rm_answer: Option<RmAnswer>,
    /// When the action (trigger or rm) went out, ms since the start.
    pub action_ms: Option<u64>,
    /// `repo.get` before the action: `Some(true)` found, `Some(false)` not found.
    pub check_before: Option<bool>,
    /// When the `repo.get` before the action was answered, ms since the start.
    pub check_before_ms: Option<u64>,
    /// `repo.get` after a pull or an rm: must be `Some(false)`.
    pub check_after: Option<bool>,
    /// Control calls sent for it and not answered yet.
    pub control_pending: u8,
    /// Answers that came to another socket or connection than the park's.
    pub wrong_origin: u8,
    /// A retransmission answered with another msgid than the first 202's.
    pub msgid_mismatch: bool,
}

impl Entry {
    /// A park just sent.
    pub fn new(seq: u64, sent_ms: u64, origin: Origin, plan: Plan, rtx: bool, check: bool) -> Self {
        Entry {
            seq,
            sent_ms,
            origin,
            plan,
            rtx,
            check,
            hold_ms: 0,
            trigger_origin: origin,
            msgid: None,
            stored: 0,
            rtx_answers: 0,
            rtx_sent: 0,
            pulled: 0,
            expired: 0,
            refused: 0,
            other: 0,
            other_codes: Vec::new(),
            expired_ms: None,
            trigger_sent: false,
            trigger_answers: Vec::new(),
            rm_sent: false,
            rm_answer: None,
            action_ms: None,
            check_before: None,
            check_before_ms: None,
            check_after: None,
            control_pending: 0,
            wrong_origin: 0,
            msgid_mismatch: false,
        }
    }

    /// Whether the server said it stored the item.
    pub fn is_stored(&self) -> bool {
        self.stored > 0 || self.rtx_answers > 0
    }

    /// Terminal outcomes seen so far: `200 Pulled`s, 408s and a successful `repo.rm`.
    pub fn outcomes(&self) -> u32 {
        u32::from(self.pulled)
            + u32::from(self.expired)
            + u32::from(self.rm_answer == Some(RmAnswer::Removed))
    }

    /// Whether the item is (as far as the soak knows) still in the server.
    pub fn in_server(&self) -> bool {
        self.is_stored() && self.outcomes() == 0
    }
}

/// How an item ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// One `200 Pulled`.
    Pulled,
    /// One 408.
    Expired,
    /// Removed by `repo.rm`, and nothing more.
    Removed,
    /// Refused with 503 (repository full): never stored, nothing more.
    Refused,
    /// More than one outcome (or stored twice).
    Duplicate,
    /// Stored (or never answered) and no outcome.
    Missing,
    /// Something else went wrong (see the problems).
    Broken,
}

impl Outcome {
    /// The name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Pulled => "pulled",
            Outcome::Expired => "expired",
            Outcome::Removed => "removed",
            Outcome::Refused => "refused (503)",
            Outcome::Duplicate => "duplicate",
            Outcome::Missing => "missing",
            Outcome::Broken => "broken",
        }
    }
}

/// One thing wrong with one entry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Problem {
    /// The park got no answer at all.
    ParkUnanswered,
    /// Stored, and neither pulled, expired nor removed.
    NoOutcome,
    /// More than one outcome (pulled, expired, removed), or one of them twice.
    SeveralOutcomes(String),
    /// Answered 202 without the retransmission marker more than once: stored twice.
    StoredTwice(u8),
    /// A retransmitted park was not answered 202 again (with the marker and the same msgid).
    RetransmissionNotAbsorbed(String),
    /// More answers to retransmissions than retransmissions sent.
    ExtraRetransmissionAnswers(u8),
    /// An outcome for a park that was never stored.
    OutcomeNotStored,
    /// An outcome answered at another socket or connection than the park's.
    WrongOrigin(u8),
    /// A 408 before the item's expiry time.
    ExpiredEarly(u64),
    /// A 200 Pulled without the trigger being answered 200, or the reverse.
    PullMismatch(String),
    /// The pull trigger got no answer, or more than one.
    TriggerAnswers(usize),
    /// `repo.rm` said something that does not fit what happened.
    RmMismatch(String),
    /// `repo.get` before the action did not find an item that was there.
    CheckMissed,
    /// `repo.get` after a pull or rm still found the item.
    CheckStillThere,
    /// Answers with unexpected codes.
    UnexpectedCodes(Vec<u16>),
    /// A control call for it was never answered.
    ControlUnanswered,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::ParkUnanswered => write!(f, "the park got no answer"),
            Problem::NoOutcome => write!(f, "stored, but no 200 Pulled, no 408 and not removed"),
            Problem::SeveralOutcomes(s) => write!(f, "several outcomes: {s}"),
            Problem::StoredTwice(n) => write!(f, "answered `202 Stored` {n} times (stored twice)"),
            Problem::RetransmissionNotAbsorbed(s) => write!(f, "retransmission not absorbed: {s}"),
            Problem::ExtraRetransmissionAnswers(n) => {
                write!(
                    f,
                    "{n} answers marked as retransmission, more than were sent"
                )
            }
            Problem::OutcomeNotStored => write!(f, "an outcome for a park never stored"),
            Problem::WrongOrigin(n) => write!(f, "{n} answers came to another socket/connection"),
            Problem::ExpiredEarly(ms) => write!(f, "408 {ms} ms before the item's expiry"),
            Problem::PullMismatch(s) => write!(f, "pull: {s}"),
            Problem::TriggerAnswers(n) => write!(f, "the pull trigger got {n} answers"),
            Problem::RmMismatch(s) => write!(f, "repo.rm: {s}"),
            Problem::CheckMissed => write!(f, "repo.get before the action did not find it"),
            Problem::CheckStillThere => write!(f, "repo.get still found it after its outcome"),
            Problem::UnexpectedCodes(c) => write!(f, "unexpected answer codes {c:?}"),
            Problem::ControlUnanswered => write!(f, "a control call for it got no answer"),
        }
    }
}

impl Problem {
    /// The kind, for counting: duplicates and missing outcomes are what the soak is about.
    pub fn kind(&self) -> &'static str {
        match self {
            Problem::ParkUnanswered | Problem::NoOutcome => "missing",
            Problem::SeveralOutcomes(_)
            | Problem::StoredTwice(_)
            | Problem::ExtraRetransmissionAnswers(_) => "duplicate",
            Problem::RetransmissionNotAbsorbed(_) => "retransmission",
            Problem::OutcomeNotStored => "outcome for an item never stored",
            Problem::WrongOrigin(_) => "wrong origin",
            Problem::ExpiredEarly(_) => "expired early",
            Problem::PullMismatch(_) | Problem::TriggerAnswers(_) => "pull",
            Problem::RmMismatch(_) => "rm",
            Problem::CheckMissed | Problem::CheckStillThere => "check",
            Problem::UnexpectedCodes(_) => "unexpected code",
            Problem::ControlUnanswered => "control",
        }
    }
}

/// The verdict on one entry: how it ended, what was wrong, and whether its action came after
/// its expiry (a race the soak allows: the item expired first, and the trigger or rm found
/// nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// How it ended.
    pub outcome: Outcome,
    /// What was wrong (empty: all fine).
    pub problems: Vec<Problem>,
    /// The action found the item gone because it had expired just before.
    pub raced_expiry: bool,
}

/// Judges one entry, once nothing more can happen to it. `expire_ms` is the server's expiry;
/// `tolerance_ms` how much earlier than that a 408 may come (clocks, ticks).
pub fn verdict(e: &Entry, expire_ms: u64, tolerance_ms: u64) -> Verdict {
    let mut problems = Vec::new();
    let removed = e.rm_answer == Some(RmAnswer::Removed);
    let outcomes = e.outcomes();
    let stored = e.is_stored();

    if e.stored > 1 {
        problems.push(Problem::StoredTwice(e.stored));
    }
    if e.rtx_answers > e.rtx_sent {
        problems.push(Problem::ExtraRetransmissionAnswers(e.rtx_answers));
    }
    if e.rtx_sent > 0 && e.stored > 0 && e.rtx_answers == 0 {
        problems.push(Problem::RetransmissionNotAbsorbed(
            "no 202 marked as retransmission".into(),
        ));
    }
    if e.msgid_mismatch {
        problems.push(Problem::RetransmissionNotAbsorbed(
            "answered with another msgid".into(),
        ));
    }
    if e.wrong_origin > 0 {
        problems.push(Problem::WrongOrigin(e.wrong_origin));
    }
    if e.other > 0 {
        problems.push(Problem::UnexpectedCodes(e.other_codes.clone()));
    }
    if e.control_pending > 0 {
        problems.push(Problem::ControlUnanswered);
    }

    let answered = stored || e.refused > 0 || e.other > 0;
    if !answered && e.pulled == 0 && e.expired == 0 {
        problems.push(Problem::ParkUnanswered);
    } else if !stored && (e.pulled > 0 || e.expired > 0) {
        problems.push(Problem::OutcomeNotStored);
    } else if stored && e.refused > 0 {
        // A 503 after a 202: the server stopping, or storing after refusing.
        problems.push(Problem::UnexpectedCodes(vec![503]));
    }
    if stored && outcomes == 0 {
        problems.push(Problem::NoOutcome);
    }
    if outcomes > 1 {
        problems.push(Problem::SeveralOutcomes(format!(
            "{} x 200 Pulled, {} x 408, removed: {}",
            e.pulled, e.expired, removed
        )));
    }
    if let Some(t) = e.expired_ms {
        let due = e.sent_ms + expire_ms;
        if t + tolerance_ms < due {
            problems.push(Problem::ExpiredEarly(due - t));
        }
    }

    // The action, and whether what it was told fits the outcome.
    let mut raced_expiry = false;
    if e.trigger_sent {
        let n = e.trigger_answers.len();
        if n != 1 {
            problems.push(Problem::TriggerAnswers(n));
        }
        match e.trigger_answers.first() {
            Some(200) if e.pulled == 0 => problems.push(Problem::PullMismatch(
                "trigger answered 200 but no 200 Pulled came".into(),
            )),
            Some(404) if e.pulled > 0 => problems.push(Problem::PullMismatch(
                "trigger answered 404 but a 200 Pulled came".into(),
            )),
            Some(404) if e.expired == 1 => raced_expiry = true,
            Some(404) => problems.push(Problem::PullMismatch(
                "trigger answered 404 for an item that did not expire".into(),
            )),
            Some(200) | None => {}
            Some(c) => problems.push(Problem::PullMismatch(format!("trigger answered {c}"))),
        }
    } else if e.pulled > 0 {
        problems.push(Problem::PullMismatch("200 Pulled without a trigger".into()));
    }
    match (&e.rm_answer, e.rm_sent) {
        (Some(RmAnswer::NotFound), _) if e.expired == 1 => raced_expiry = true,
        (Some(RmAnswer::NotFound), _) => problems.push(Problem::RmMismatch(
            "not_found for an item that did not expire".into(),
        )),
        (Some(RmAnswer::Error(s)), _) => problems.push(Problem::RmMismatch(s.clone())),
        (None, true) if e.control_pending == 0 => {
            problems.push(Problem::RmMismatch("no answer".into()))
        }
        _ => {}
    }
    if e.check_before == Some(false) {
        // Fine only if the item had expired by then.
        let gone = e.expired > 0
            && e.check_before_ms
                .is_some_and(|t| t + tolerance_ms >= e.sent_ms + expire_ms);
        if !gone {
            problems.push(Problem::CheckMissed);
        }
    }
    if e.check_after == Some(true) {
        problems.push(Problem::CheckStillThere);
    }

    let outcome = if problems.iter().any(|p| p.kind() == "duplicate") {
        Outcome::Duplicate
    } else if problems.iter().any(|p| p.kind() == "missing") {
        Outcome::Missing
    } else if !problems.is_empty() {
        Outcome::Broken
    } else if e.pulled == 1 {
        Outcome::Pulled
    } else if e.expired == 1 {
        Outcome::Expired
    } else if removed {
        Outcome::Removed
    } else {
        Outcome::Refused
    };
    Verdict {
        outcome,
        problems,
        raced_expiry,
    }
}

/// A violation kept for the report: which item and what.
#[derive(Debug, Clone)]
pub struct Violation {
    /// The item's sequence number, when it is about one.
    pub seq: Option<u64>,
    /// The kind (for counting).
    pub kind: String,
    /// What happened.
    pub detail: String,
}

/// What the retired entries add up to, and what the server must have counted.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    /// Parks sent (retransmissions not counted).
    pub parks: u64,
    /// Parks over TCP.
    pub parks_tcp: u64,
    /// Items by outcome.
    pub outcomes: BTreeMap<Outcome, u64>,
    /// Items by plan: pull (same Call-ID), pull (fresh Call-ID), rm, expire.
    pub plans: BTreeMap<&'static str, u64>,
    /// 202s without the retransmission marker (the server's `stored`).
    pub stored_answers: u64,
    /// 202s with the marker (the server's `retransmissions`).
    pub rtx_answers: u64,
    /// Retransmissions sent.
    pub rtx_sent: u64,
    /// `200 Pulled`s (the server's `pulled`).
    pub pulled_answers: u64,
    /// 408s (the server's `expired`).
    pub expired_answers: u64,
    /// 503s (the server's `full`).
    pub refused_answers: u64,
    /// `repo.rm` that said removed (the server's `removed`).
    pub removed: u64,
    /// Triggers sent.
    pub triggers: u64,
    /// Triggers answered 404 (the server's `pull_not_found`).
    pub triggers_404: u64,
    /// Actions that found the item expired (allowed race).
    pub raced_expiry: u64,
    /// `repo.get` calls before the action (must find the item).
    pub checks_before: u64,
    /// Of those, how many found it.
    pub checks_before_found: u64,
    /// `repo.get` calls after a pull or rm (must not find it).
    pub checks_after: u64,
    /// Of those, how many found it.
    pub checks_after_found: u64,
    /// Items that had at least one problem.
    pub bad_items: u64,
    /// Items with two outcomes or stored twice, plus late outcomes.
    pub duplicates: u64,
    /// Items without an outcome.
    pub missing: u64,
}

/// The entries not yet retired, in park order, and the tally of those retired.
#[derive(Debug)]
pub struct Ledger {
    base: u64,
    live: VecDeque<Entry>,
    /// What the retired entries add up to.
    pub tally: Tally,
    /// Violations, the first [`Ledger::KEEP`] in detail.
    pub violations: Vec<Violation>,
    /// Violations by kind (all of them).
    pub violation_kinds: BTreeMap<String, u64>,
    /// Items the soak believes are in the server now.
    pub in_server: u64,
    expire_ms: u64,
    tolerance_ms: u64,
}

impl Ledger {
    /// Violations kept in detail.
    pub const KEEP: usize = 200;

    /// An empty ledger for a server whose items expire after `expire_ms`.
    pub fn new(expire_ms: u64, tolerance_ms: u64) -> Self {
        Ledger {
            base: 0,
            live: VecDeque::new(),
            tally: Tally::default(),
            violations: Vec::new(),
            violation_kinds: BTreeMap::new(),
            in_server: 0,
            expire_ms,
            tolerance_ms,
        }
    }

    /// Adds a park; its `seq` must be the next one.
    pub fn push(&mut self, e: Entry) {
        debug_assert_eq!(e.seq, self.base + self.live.len() as u64);
        self.tally.parks += 1;
        if matches!(e.origin, Origin::Tcp(_)) {
            self.tally.parks_tcp += 1;
        }
        let plan = match e.plan {
            Plan::Pull { same_callid: true } => "pull, same Call-ID",
            Plan::Pull { same_callid: false } => "pull, fresh Call-ID",
            Plan::Rm => "rm",
            Plan::Expire => "expire",
        };
        *self.tally.plans.entry(plan).or_default() += 1;
        self.live.push_back(e);
    }

    /// The next sequence number.
    pub fn next_seq(&self) -> u64 {
        self.base + self.live.len() as u64
    }

    /// Entries not retired yet.
    pub fn live(&self) -> usize {
        self.live.len()
    }

    /// Whether `seq` was retired already (an answer for it now is late).
    pub fn retired(&self, seq: u64) -> bool {
        seq < self.base
    }

    /// The live entry `seq`.
    pub fn get_mut(&mut self, seq: u64) -> Option<&mut Entry> {
        let i = seq.checked_sub(self.base)?;
        self.live.get_mut(usize::try_from(i).ok()?)
    }

    /// Updates `e` with `f`, keeping [`Ledger::in_server`] right.
    pub fn update<R>(&mut self, seq: u64, f: impl FnOnce(&mut Entry) -> R) -> Option<R> {
        let e = self.get_mut(seq)?;
        let before = e.in_server();
        let r = f(e);
        let after = e.in_server();
        match (before, after) {
            (false, true) => self.in_server += 1,
            (true, false) => self.in_server -= 1,
            _ => {}
        }
        Some(r)
    }

    /// Records a violation not tied to a live entry.
    pub fn violation(&mut self, seq: Option<u64>, kind: &str, detail: String) {
        *self.violation_kinds.entry(kind.to_string()).or_default() += 1;
        if kind == "duplicate" {
            self.tally.duplicates += 1;
        }
        if self.violations.len() < Self::KEEP {
            self.violations.push(Violation {
                seq,
                kind: kind.to_string(),
                detail,
            });
        }
    }

    /// Retires the entries at the front for which `done` says nothing more can happen.
    pub fn retire_while(&mut self, mut done: impl FnMut(&Entry) -> bool) {
        while let Some(front) = self.live.front() {
            if !done(front) {
                break;
            }
            let e = self.live.pop_front().unwrap();
            self.base += 1;
            if e.in_server() {
                self.in_server -= 1;
            }
            self.judge(&e);
        }
    }

    /// Retires every entry, whatever state it is in (the end of the run).
    pub fn retire_all(&mut self) {
        self.retire_while(|_| true);
    }

    fn judge(&mut self, e: &Entry) {
        let t = &mut self.tally;
        t.stored_answers += u64::from(e.stored);
        t.rtx_answers += u64::from(e.rtx_answers);
        t.rtx_sent += u64::from(e.rtx_sent);
        t.pulled_answers += u64::from(e.pulled);
        t.expired_answers += u64::from(e.expired);
        t.refused_answers += u64::from(e.refused);
        t.removed += u64::from(e.rm_answer == Some(RmAnswer::Removed));
        t.triggers += u64::from(e.trigger_sent);
        t.triggers_404 += e.trigger_answers.iter().filter(|&&c| c == 404).count() as u64;
        if let Some(found) = e.check_before {
            t.checks_before += 1;
            t.checks_before_found += u64::from(found);
        }
        if let Some(found) = e.check_after {
            t.checks_after += 1;
            t.checks_after_found += u64::from(found);
        }
        let v = verdict(e, self.expire_ms, self.tolerance_ms);
        t.raced_expiry += u64::from(v.raced_expiry);
        *t.outcomes.entry(v.outcome).or_default() += 1;
        match v.outcome {
            Outcome::Duplicate => t.duplicates += 1,
            Outcome::Missing => t.missing += 1,
            _ => {}
        }
        if !v.problems.is_empty() {
            t.bad_items += 1;
        }
        for p in v.problems {
            let kind = p.kind();
            *self.violation_kinds.entry(kind.to_string()).or_default() += 1;
            if self.violations.len() < Self::KEEP {
                self.violations.push(Violation {
                    seq: Some(e.seq),
                    kind: kind.to_string(),
                    detail: format!(
                        "{p} (sent at {:.3} s from {}, plan {:?}{}{}, msgid {})",
                        e.sent_ms as f64 / 1e3,
                        e.origin,
                        e.plan,
                        if e.rtx { ", retransmitted" } else { "" },
                        e.action_ms
                            .map(|a| format!(", action at {:.3} s", a as f64 / 1e3))
                            .unwrap_or_default(),
                        e.msgid.as_deref().unwrap_or("-"),
                    ),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPIRE: u64 = 3000;

    fn stored(plan: Plan) -> Entry {
        let mut e = Entry::new(7, 1000, Origin::Udp(0), plan, false, false);
        e.stored = 1;
        e.msgid = Some("m7".into());
        e
    }

    fn pulled() -> Entry {
        let mut e = stored(Plan::Pull { same_callid: false });
        e.trigger_sent = true;
        e.trigger_answers.push(200);
        e.pulled = 1;
        e
    }

    #[test]
    fn a_clean_pull_expiry_and_rm_pass() {
        let v = verdict(&pulled(), EXPIRE, 250);
        assert_eq!((v.outcome, v.problems.len()), (Outcome::Pulled, 0), "{v:?}");
        let mut e = stored(Plan::Expire);
        e.expired = 1;
        e.expired_ms = Some(4050);
        let v = verdict(&e, EXPIRE, 250);
        assert_eq!(
            (v.outcome, v.problems.len()),
            (Outcome::Expired, 0),
            "{v:?}"
        );
        let mut e = stored(Plan::Rm);
        e.rm_sent = true;
        e.rm_answer = Some(RmAnswer::Removed);
        let v = verdict(&e, EXPIRE, 250);
        assert_eq!(
            (v.outcome, v.problems.len()),
            (Outcome::Removed, 0),
            "{v:?}"
        );
        let mut e = Entry::new(8, 0, Origin::Tcp(1), Plan::Expire, false, false);
        e.refused = 1;
        assert_eq!(verdict(&e, EXPIRE, 250).outcome, Outcome::Refused);
    }

    #[test]
    fn a_duplicate_outcome_is_caught() {
        // Pulled, and then also expired.
        let mut e = pulled();
        e.expired = 1;
        e.expired_ms = Some(4100);
        let v = verdict(&e, EXPIRE, 250);
        assert_eq!(v.outcome, Outcome::Duplicate);
        assert!(
            matches!(v.problems[0], Problem::SeveralOutcomes(_)),
            "{v:?}"
        );
        // Two 200 Pulled.
        let mut e = pulled();
        e.pulled = 2;
        assert_eq!(verdict(&e, EXPIRE, 250).outcome, Outcome::Duplicate);
        // Removed, and the caller still got a 408.
        let mut e = stored(Plan::Rm);
        e.rm_sent = true;
        e.rm_answer = Some(RmAnswer::Removed);
        e.expired = 1;
        e.expired_ms = Some(4100);
        assert_eq!(verdict(&e, EXPIRE, 250).outcome, Outcome::Duplicate);
        // A retransmission stored a second item.
        let mut e = pulled();
        e.rtx = true;
        e.rtx_sent = 1;
        e.stored = 2;
        let v = verdict(&e, EXPIRE, 250);
        assert_eq!(v.outcome, Outcome::Duplicate);
        assert!(v.problems.contains(&Problem::StoredTwice(2)), "{v:?}");
    }

    #[test]
    fn a_missing_outcome_is_caught() {
        // Stored, left to expire, and no 408 came.
        let v = verdict(&stored(Plan::Expire), EXPIRE, 250);
        assert_eq!(v.outcome, Outcome::Missing);
        assert_eq!(v.problems, vec![Problem::NoOutcome]);
        // The trigger said 200 but the parked caller heard nothing.
        let mut e = pulled();
        e.pulled = 0;
        let v = verdict(&e, EXPIRE, 250);
        assert_eq!(v.outcome, Outcome::Missing);
        assert!(v
            .problems
            .iter()
            .any(|p| matches!(p, Problem::PullMismatch(_))));
        // The park itself was never answered.
        let e = Entry::new(9, 0, Origin::Udp(2), Plan::Expire, false, false);
        assert_eq!(
            verdict(&e, EXPIRE, 250).problems,
            vec![Problem::ParkUnanswered]
        );
    }

    #[test]
    fn an_action_that_lost_the_race_with_expiry_is_allowed() {
        let mut e = stored(Plan::Pull { same_callid: true });
        e.trigger_sent = true;
        e.trigger_answers.push(404);
        e.expired = 1;
        e.expired_ms = Some(4000);
        let v = verdict(&e, EXPIRE, 250);
        assert_eq!(
            (v.outcome, v.raced_expiry),
            (Outcome::Expired, true),
            "{v:?}"
        );
        // But a 404 for an item that is still there is not.
        e.expired = 0;
        e.expired_ms = None;
        let v = verdict(&e, EXPIRE, 250);
        assert_eq!(v.outcome, Outcome::Missing, "{v:?}");
    }

    #[test]
    fn other_problems_are_caught() {
        let mut e = stored(Plan::Expire);
        e.expired = 1;
        e.expired_ms = Some(2000); // due at 4000
        let v = verdict(&e, EXPIRE, 250);
        assert_eq!(v.problems, vec![Problem::ExpiredEarly(2000)]);
        let mut e = pulled();
        e.wrong_origin = 1;
        assert_eq!(verdict(&e, EXPIRE, 250).outcome, Outcome::Broken);
        let mut e = pulled();
        e.rtx = true;
        e.rtx_sent = 1;
        let v = verdict(&e, EXPIRE, 250);
        assert!(matches!(
            v.problems[0],
            Problem::RetransmissionNotAbsorbed(_)
        ));
        let mut e = pulled();
        e.check = true;
        e.check_after = Some(true);
        assert_eq!(
            verdict(&e, EXPIRE, 250).problems,
            vec![Problem::CheckStillThere]
        );
        // repo.get did not find an item that was there (answered long before its expiry).
        let mut e = stored(Plan::Expire);
        e.check = true;
        e.check_before = Some(false);
        e.check_before_ms = Some(1010);
        e.expired = 1;
        e.expired_ms = Some(4000);
        assert_eq!(
            verdict(&e, EXPIRE, 250).problems,
            vec![Problem::CheckMissed]
        );
        // Not found after it expired is fine.
        e.check_before_ms = Some(4000);
        assert!(verdict(&e, EXPIRE, 250).problems.is_empty());
    }

    #[test]
    fn the_ledger_retires_in_order_and_tallies() {
        let mut l = Ledger::new(EXPIRE, 250);
        for seq in 0..3 {
            l.push(Entry::new(
                seq,
                seq * 10,
                Origin::Udp(0),
                Plan::Expire,
                false,
                false,
            ));
        }
        for seq in 0..3 {
            l.update(seq, |e| e.stored = 1);
        }
        assert_eq!(l.in_server, 3);
        l.update(0, |e| {
            e.expired = 1;
            e.expired_ms = Some(3000);
        });
        l.update(1, |e| {
            e.expired = 2;
            e.expired_ms = Some(3010);
        });
        assert_eq!(l.in_server, 1);
        l.retire_while(|e| e.seq < 2);
        assert!(l.retired(1) && !l.retired(2));
        assert_eq!(l.live(), 1);
        l.retire_all();
        assert_eq!(l.in_server, 0);
        assert_eq!((l.tally.duplicates, l.tally.missing), (1, 1));
        assert_eq!(l.tally.expired_answers, 3);
        assert_eq!(l.violation_kinds["duplicate"], 1);
        assert_eq!(l.violation_kinds["missing"], 1);
    }
}
