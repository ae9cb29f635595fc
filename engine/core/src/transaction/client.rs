//! Client transactions (RFC 3261 §17.1): INVITE (§17.1.1, with RFC 6026's Accepted state) and
//! non-INVITE (§17.1.2).

use super::{Hop, Step, TimerKind, Timers, TxEvent, TxId};
use crate::shard::Out;
use crate::sip_write;
use crate::wheel::TimerId;
use sipshard_parser::sip::{self, Framing, Message, EMPTY_HEADER};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// INVITE: Calling; non-INVITE: Trying. The request is being retransmitted.
    Calling,
    /// A provisional response came.
    Proceeding,
    /// A final response came (non-2xx for an INVITE): waiting for its retransmissions to pass.
    Completed,
    /// INVITE: a 2xx came; later 2xx go to the user too, each needing its own ACK (RFC 6026).
    Accepted,
}

#[derive(Debug)]
pub(super) struct Client {
    pub(super) request: Vec<u8>,
    pub(super) timers: [Option<TimerId>; 2],
    hop: Hop,
    invite: bool,
    state: State,
    /// The current retransmission interval (timer A or E).
    interval: u64,
    /// The ACK sent for a non-2xx final response, sent again for each of its retransmissions.
    ack: Option<Vec<u8>>,
}

impl Client {
    /// Sends `request` and returns the transaction with the timers to start.
    pub(super) fn start(
        timers: &Timers,
        request: Vec<u8>,
        hop: Hop,
        outs: &mut Vec<Out>,
    ) -> (Client, Vec<(TimerKind, u64)>) {
        let invite = request.starts_with(b"INVITE ");
        outs.push(hop.send(request.clone()));
        let mut start = vec![(TimerKind::Timeout, timers.timeout_ms())];
        if !hop.reliable() {
            start.push((TimerKind::Retransmit, timers.t1_ms));
        }
        let client = Client {
            request,
            timers: [None, None],
            hop,
            invite,
            state: State::Calling,
            interval: timers.t1_ms,
            ack: None,
        };
        (client, start)
    }

    pub(super) fn on_response(
        &mut self,
        timers: &Timers,
        id: TxId,
        response: &Message<'_, '_>,
        outs: &mut Vec<Out>,
        events: &mut Vec<TxEvent>,
    ) -> Step {
        let Some(code) = response.status_code() else {
            return Step::none();
        };
        let report = |events: &mut Vec<TxEvent>| {
            events.push(TxEvent::Response {
                tx: id,
                code,
                bytes: response.as_bytes().to_vec(),
            })
        };
        let live = matches!(self.state, State::Calling | State::Proceeding);
        match code {
            100..=199 if live => {
                report(events);
                let was_calling = self.state == State::Calling;
                self.state = State::Proceeding;
                if self.invite && was_calling {
                    // An INVITE is no longer retransmitted, and timer B only runs in Calling:
                    // the user decides how long to wait for a final answer (and CANCELs). So
                    // that a transaction nobody ends cannot live forever, it ends anyway after
                    // RFC 3261 §16.6's timer C (3 minutes) as if timed out.
                    Step {
                        cancel: vec![TimerKind::Retransmit],
                        schedule: vec![(TimerKind::Timeout, super::server::UNANSWERED_INVITE_MS)],
                        terminate: false,
                    }
                } else {
                    Step::none()
                }
            }
            200..=299 if self.invite && (live || self.state == State::Accepted) => {
                report(events);
                if self.state == State::Accepted {
                    return Step::none();
                }
                self.state = State::Accepted;
                Step {
                    cancel: vec![TimerKind::Retransmit],
                    schedule: vec![(TimerKind::Timeout, timers.timeout_ms())],
                    terminate: false,
                }
            }
            200..=699 if live => {
                report(events);
                self.state = State::Completed;
                if self.invite {
                    let mut ack = Vec::with_capacity(self.request.len());
                    if write_ack(&self.request, response, &mut ack) {
                        outs.push(self.hop.send(ack.clone()));
                        self.ack = Some(ack);
                    }
                    // Timer D: at least 32 s for the final response's retransmissions.
                    let d = if self.hop.reliable() { 0 } else { 32_000 };
                    Step::wait_then_terminate(d)
                } else {
                    // Timer K.
                    let k = if self.hop.reliable() { 0 } else { timers.t4_ms };
                    Step::wait_then_terminate(k)
                }
            }
            300..=699 if self.state == State::Completed && self.invite => {
                // A retransmitted final response: the ACK was lost.
                if let Some(ack) = &self.ack {
                    outs.push(self.hop.send(ack.clone()));
                }
                Step::none()
            }
            _ => Step::none(),
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
            (TimerKind::Retransmit, State::Calling | State::Proceeding) => {
                outs.push(self.hop.send(self.request.clone()));
                self.interval = if !self.invite && self.state == State::Proceeding {
                    timers.t2_ms
                } else if self.invite {
                    // Timer A doubles without bound; timer B ends it.
                    self.interval.saturating_mul(2)
                } else {
                    self.interval.saturating_mul(2).min(timers.t2_ms)
                };
                Step {
                    schedule: vec![(TimerKind::Retransmit, self.interval)],
                    ..Step::default()
                }
            }
            (TimerKind::Timeout, State::Calling | State::Proceeding) => {
                // Timer B or F.
                events.push(TxEvent::Timeout { tx: id });
                Step::terminate()
            }
            // Timer D, K or M: the wait is over.
            (TimerKind::Timeout, _) => Step::terminate(),
            _ => Step::none(),
        }
    }
}

/// Writes the ACK for a non-2xx final `response` to the INVITE `request` (RFC 3261
/// §17.1.1.3): the request's Request-URI, top Via, Route, From, Call-ID and CSeq number, the
/// response's To (with its tag). `false` when either does not parse.
fn write_ack(request: &[u8], response: &Message<'_, '_>, out: &mut Vec<u8>) -> bool {
    let mut h = [EMPTY_HEADER; crate::shard::MAX_HEADERS];
    let Ok(sipshard_parser::Status::Complete(req)) = sip::parse(request, &mut h, Framing::Datagram)
    else {
        return false;
    };
    sip_write::write_ack(&req, response, out)
}
