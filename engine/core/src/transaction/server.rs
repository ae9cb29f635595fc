//! Server transactions (RFC 3261 §17.2): INVITE (§17.2.1, with RFC 6026's Accepted state) and
//! non-INVITE (§17.2.2).

use super::{Hop, ServerKey, Step, TimerKind, Timers, TxEvent, TxId};
use crate::shard::Out;
use crate::sip_write;
use crate::wheel::TimerId;
use sipshard_parser::sip::Message;

/// How long an INVITE server transaction waits for its user's final response.
pub(super) const UNANSWERED_INVITE_MS: u64 = 180_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Non-INVITE: no response sent yet; retransmissions are absorbed.
    Trying,
    /// A provisional response was sent (INVITE: at once, 100 Trying); retransmissions get it
    /// again.
    Proceeding,
    /// A final response was sent (non-2xx for an INVITE); retransmissions get it again.
    Completed,
    /// INVITE: the ACK for the final error response came.
    Confirmed,
    /// INVITE: a 2xx was sent; its retransmission and ACK are the dialog's (RFC 6026).
    Accepted,
}

#[derive(Debug)]
pub(super) struct Server {
    pub(super) key: ServerKey,
    pub(super) timers: [Option<TimerId>; 2],
    hop: Hop,
    invite: bool,
    state: State,
    /// The last response sent, sent again for a retransmitted request (or by timer G).
    last: Option<Box<[u8]>>,
    /// The current interval of timer G.
    interval: u64,
}

impl Server {
    /// A server transaction for `request` (not an ACK), answering on `hop`, and the timer that
    /// bounds how long its user may take to answer. An INVITE is answered 100 Trying at once
    /// (§17.2.1: the user may take longer than 200 ms).
    pub(super) fn start(
        timers: &Timers,
        request: &Message<'_, '_>,
        hop: Hop,
        outs: &mut Vec<Out>,
    ) -> (Server, (TimerKind, u64)) {
        let invite = request.method() == Some(b"INVITE");
        let key = super::server_key(request).unwrap_or_default();
        let mut server = Server {
            key,
            timers: [None, None],
            hop,
            invite,
            state: State::Trying,
            last: None,
            interval: 0,
        };
        if invite {
            let mut trying = Vec::with_capacity(256);
            let source = match hop {
                Hop::Datagram { dest, .. } => dest,
                Hop::Stream(c) => c.peer,
            };
            sip_write::write_response(request, source, 100, b"Trying", b"", &[], &mut trying);
            outs.push(hop.send(trying.clone()));
            server.last = Some(trying.into_boxed_slice());
            server.state = State::Proceeding;
        }
        // A transaction its user never answers must not live forever. The client gives up on a
        // non-INVITE at timer F (64·T1); an INVITE may ring for minutes (RFC 3261 §16.6's
        // timer C is more than 3 minutes).
        let bound = if invite {
            UNANSWERED_INVITE_MS
        } else {
            timers.timeout_ms()
        };
        (server, (TimerKind::Timeout, bound))
    }

    /// A retransmission of the request: the last response again, if there is one to repeat.
    pub(super) fn on_retransmission(&mut self, outs: &mut Vec<Out>) {
        if matches!(self.state, State::Proceeding | State::Completed) {
            if let Some(last) = &self.last {
                outs.push(self.hop.send(last.to_vec()));
            }
        }
    }

    /// The user's response. `None` when a final response was already sent.
    pub(super) fn respond(
        &mut self,
        timers: &Timers,
        code: u16,
        response: Vec<u8>,
        outs: &mut Vec<Out>,
    ) -> Option<Step> {
        if self.state == State::Accepted && (200..=299).contains(&code) {
            // The user's retransmission of its 2xx (§13.3.1.4) passes through.
            outs.push(self.hop.send(response));
            return Some(Step::none());
        }
        if !matches!(self.state, State::Trying | State::Proceeding) || !(100..=699).contains(&code)
        {
            return None;
        }
        outs.push(self.hop.send(response.clone()));
        // Boxed: the writer's spare capacity goes (it is kept for 64·T1).
        self.last = Some(response.into_boxed_slice());
        let reliable = self.hop.reliable();
        Some(match code {
            100..=199 => {
                self.state = State::Proceeding;
                Step::none()
            }
            200..=299 if self.invite => {
                // Timer L: retransmitted INVITEs are absorbed meanwhile.
                self.state = State::Accepted;
                Step {
                    schedule: vec![(TimerKind::Timeout, timers.timeout_ms())],
                    ..Step::default()
                }
            }
            _ if self.invite => {
                // Timer G retransmits until the ACK; timer H gives up on it.
                self.state = State::Completed;
                self.interval = timers.t1_ms;
                let mut schedule = vec![(TimerKind::Timeout, timers.timeout_ms())];
                if !reliable {
                    schedule.push((TimerKind::Retransmit, timers.t1_ms));
                }
                Step {
                    schedule,
                    ..Step::default()
                }
            }
            _ => {
                // Timer J.
                self.state = State::Completed;
                Step::wait_then_terminate(if reliable { 0 } else { timers.timeout_ms() })
            }
        })
    }

    /// An ACK for this (INVITE) transaction. Returns whether it was absorbed here (the ACK of
    /// a final error response) rather than being the dialog's (the ACK of a 2xx).
    pub(super) fn on_ack(&mut self, timers: &Timers) -> (bool, Step) {
        match self.state {
            State::Completed if self.invite => {
                // Timer I: absorb the ACK's retransmissions for T4, then end.
                self.state = State::Confirmed;
                let i = if self.hop.reliable() { 0 } else { timers.t4_ms };
                (true, Step::wait_then_terminate(i))
            }
            State::Accepted => (false, Step::none()),
            _ => (true, Step::none()),
        }
    }

    pub(super) fn on_timer(
        &mut self,
        timers: &Timers,
        id: TxId,
        kind: TimerKind,
        outs: &mut Vec<Out>,
        events: &mut Vec<TxEvent>,
    ) -> Step {
        match (kind, self.state) {
            (TimerKind::Retransmit, State::Completed) => {
                // Timer G.
                if let Some(last) = &self.last {
                    outs.push(self.hop.send(last.to_vec()));
                }
                self.interval = self.interval.saturating_mul(2).min(timers.t2_ms);
                Step {
                    schedule: vec![(TimerKind::Retransmit, self.interval)],
                    ..Step::default()
                }
            }
            (TimerKind::Timeout, State::Trying | State::Proceeding) => {
                // The user never answered.
                events.push(TxEvent::Timeout { tx: id });
                Step::terminate()
            }
            (TimerKind::Timeout, State::Completed) if self.invite => {
                // Timer H: the ACK never came.
                events.push(TxEvent::AckTimeout { tx: id });
                Step::terminate()
            }
            // Timer J, I or L.
            (TimerKind::Timeout, _) => Step::terminate(),
            _ => Step::none(),
        }
    }
}
