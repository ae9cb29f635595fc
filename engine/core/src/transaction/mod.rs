//! SIP transactions (RFC 3261 §17, with RFC 6026's Accepted state): the layer between the
//! transport and whoever sends requests and answers them (the gateway's user agent). It makes
//! unreliable transports reliable enough: a client transaction retransmits its request until a
//! response comes (timers A and E), gives up at timers B and F, and absorbs retransmitted
//! responses; a server transaction absorbs retransmitted requests by sending its last response
//! again, retransmits a final INVITE response until the ACK (timer G) and gives up at timer H.
//!
//! Sans-IO like the rest of the core: every call takes the time, transmissions come out as
//! [`Out`]s and what the user must know as [`TxEvent`]s; every timer of every transaction sits
//! on one [`TimingWheel`] and [`Transactions::next_deadline`] says when to call
//! [`Transactions::handle_timeout`].
//!
//! Matching: a response goes to the client transaction whose branch and CSeq method it carries
//! (§17.1.3); a request goes to the server transaction of its top Via's branch and sent-by and
//! its method, an ACK to the INVITE's (§17.2.3). Requests whose branch lacks RFC 3261's magic
//! cookie (`z9hG4bK`) are never matched: they get no transaction from this layer.

mod client;
mod server;

#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod tests;

use crate::shard::Out;
use crate::transport::ConnId;
use crate::wheel::{TimerId, TimingWheel};
use client::Client;
use server::Server;
use sipshard_parser::sip::Message;
use std::collections::HashMap;
use std::net::SocketAddr;

/// RFC 3261's timer values (§17.1.1.1, table 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// Round-trip time estimate: the first retransmission interval (500 ms).
    pub t1_ms: u64,
    /// The longest retransmission interval for non-INVITE requests and INVITE responses (4 s).
    pub t2_ms: u64,
    /// How long a message may stay in the network (5 s).
    pub t4_ms: u64,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            t1_ms: 500,
            t2_ms: 4000,
            t4_ms: 5000,
        }
    }
}

impl Timers {
    /// 64·T1: how long a transaction waits for a final response (timers B, F, H, J, L, M).
    pub fn timeout_ms(&self) -> u64 {
        self.t1_ms.saturating_mul(64)
    }
}

/// Where a transaction's messages go: a datagram from a listen address, or a stream connection.
/// Streams are reliable, so nothing is retransmitted on them (and the wait-states are zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hop {
    /// UDP, from the socket of listen address `listen`.
    Datagram {
        /// Index of the listen address.
        listen: u16,
        /// Destination.
        dest: SocketAddr,
    },
    /// A stream connection.
    Stream(ConnId),
}

impl Hop {
    /// Whether the transport retransmits by itself.
    pub fn reliable(self) -> bool {
        matches!(self, Hop::Stream(_))
    }

    /// An output sending `bytes` on this hop.
    pub fn send(self, bytes: Vec<u8>) -> Out {
        match self {
            Hop::Datagram { listen, dest } => Out::Datagram {
                listen,
                dest,
                bytes,
            },
            Hop::Stream(conn) => Out::Stream { conn, bytes },
        }
    }
}

/// A transaction, as its user names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxId(u64);

/// What a transaction tells its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxEvent {
    /// A client transaction received a response for its user: every provisional, the first
    /// final, and (INVITE) every 2xx, since each needs its own ACK from the dialog (RFC 6026).
    Response {
        /// The transaction.
        tx: TxId,
        /// The status code.
        code: u16,
        /// The whole response.
        bytes: Vec<u8>,
    },
    /// A client transaction got no final response in time (timer B or F, or for an INVITE 3
    /// minutes after a provisional response): the request failed as with a 408. A server transaction's user sent no final response in time (64·T1 for a
    /// non-INVITE, when its client has given up; 3 minutes for an INVITE): the transaction is
    /// dropped.
    Timeout {
        /// The transaction.
        tx: TxId,
    },
    /// An INVITE server transaction sent a final error response and no ACK came (timer H).
    AckTimeout {
        /// The transaction.
        tx: TxId,
    },
    /// A server transaction's ACK for a 2xx, or an ACK matching no transaction: the dialog's.
    /// (Kept as bytes: the user parses it again.)
    Ack {
        /// The whole ACK.
        bytes: Vec<u8>,
    },
    /// The transaction is gone; its id means nothing from now on.
    Terminated {
        /// The transaction.
        tx: TxId,
    },
}

/// What [`Transactions::on_request`] made of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestMatch {
    /// A new request: a server transaction was created for it; answer it with
    /// [`Transactions::respond`].
    New(TxId),
    /// A retransmission of a request with a server transaction: handled here (its last
    /// response sent again, or absorbed); the user does nothing.
    Retransmission(TxId),
    /// An ACK: for a non-2xx final response it was absorbed by its transaction; otherwise it is
    /// the dialog's and a [`TxEvent::Ack`] carries it.
    Ack,
    /// No transaction can be made for it (no RFC 3261 branch, say): handle it statelessly.
    Stateless,
    /// A new request, but the layer holds its maximum of transactions: answer it 503
    /// statelessly.
    Full,
}

/// Which timer of a transaction fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimerKind {
    /// A, E (client) or G (server): retransmit.
    Retransmit,
    /// B, F (client), H, J, L (server), or D, K, I, M (the wait before termination).
    Timeout,
}

#[derive(Debug)]
enum Tx {
    Client(Client),
    Server(Server),
}

/// The client-matching key (§17.1.3): branch and CSeq method.
type ClientKey = (Vec<u8>, Vec<u8>);

/// The server-matching key (§17.2.3): branch, sent-by, and method (INVITE for an ACK).
/// Kept as one allocation (branch, sent-by and method with NUL between them, which none of them
/// can hold): a shard holds a completed transaction per MESSAGE for 64·T1, 100,000s of them.
type ServerKey = Box<[u8]>;

/// Every transaction of one shard, with their timers on one wheel.
#[derive(Debug)]
pub struct Transactions {
    timers: Timers,
    /// Transactions held at most; past it new ones are refused ([`RequestMatch::Full`]).
    max: usize,
    txs: HashMap<u64, Tx>,
    clients: HashMap<ClientKey, u64>,
    servers: HashMap<ServerKey, u64>,
    wheel: TimingWheel<(u64, TimerKind)>,
    fired: Vec<crate::wheel::Expired<(u64, TimerKind)>>,
    next_id: u64,
}

/// The wheel's resolution: a millisecond, so every timer fires when RFC 3261 says, to the
/// millisecond the driver wakes at (with 4 levels of 64 slots a 1 ms wheel still reaches 4.6
/// hours without its overflow list, and transaction timers are minutes at most).
const TICK_MS: u64 = 1;

impl Transactions {
    /// An empty layer with RFC 3261's `timers`, holding at most `max` transactions, whose
    /// time starts at `now_ms`.
    pub fn new(timers: Timers, max: usize, now_ms: u64) -> Transactions {
        Transactions {
            timers,
            max,
            txs: HashMap::new(),
            clients: HashMap::new(),
            servers: HashMap::new(),
            wheel: TimingWheel::new(TICK_MS, now_ms),
            fired: Vec::new(),
            next_id: 0,
        }
    }

    /// Transactions alive now.
    pub fn len(&self) -> usize {
        self.txs.len()
    }

    /// Whether none is alive.
    pub fn is_empty(&self) -> bool {
        self.txs.is_empty()
    }

    /// When [`Transactions::handle_timeout`] next has work.
    pub fn next_deadline(&self) -> Option<u64> {
        self.wheel.next_deadline()
    }

    /// Starts a client transaction: sends `request` (whole, as it will be retransmitted) on
    /// `hop`. `None` when the request is an ACK (an ACK for a 2xx is no transaction, §17.1.1.3:
    /// send it as it is), has no RFC 3261 branch or no CSeq, has the branch and method of a live
    /// client transaction, or the layer holds its maximum.
    pub fn send_request(
        &mut self,
        now_ms: u64,
        request: Vec<u8>,
        hop: Hop,
        outs: &mut Vec<Out>,
    ) -> Option<TxId> {
        if request.starts_with(b"ACK ") || self.txs.len() >= self.max {
            return None;
        }
        let key = client_key_of_request(&request)?;
        if self.clients.contains_key(&key) {
            return None;
        }
        let id = self.new_id();
        let (client, timers) = Client::start(&self.timers, request, hop, outs);
        self.clients.insert(key, id);
        self.txs.insert(id, Tx::Client(client));
        for (kind, after) in timers {
            self.schedule(id, kind, now_ms + after);
        }
        Some(TxId(id))
    }

    /// A response received: handed to its client transaction, which may report it. `false`
    /// when it matches none (a stray or late response: the caller's to handle statelessly).
    pub fn on_response(
        &mut self,
        now_ms: u64,
        response: &Message<'_, '_>,
        outs: &mut Vec<Out>,
        events: &mut Vec<TxEvent>,
    ) -> bool {
        let Some(key) = client_key_of_response(response) else {
            return false;
        };
        let Some(&id) = self.clients.get(&key) else {
            return false;
        };
        let Some(Tx::Client(c)) = self.txs.get_mut(&id) else {
            return false;
        };
        let step = c.on_response(&self.timers, TxId(id), response, outs, events);
        self.apply(now_ms, id, step, events);
        true
    }

    /// A request received with `hop` as the way back (RFC 3261 §18.2.2: the caller computes
    /// it). See [`RequestMatch`].
    pub fn on_request(
        &mut self,
        now_ms: u64,
        request: &Message<'_, '_>,
        hop: Hop,
        outs: &mut Vec<Out>,
        events: &mut Vec<TxEvent>,
    ) -> RequestMatch {
        let is_ack = request.method() == Some(b"ACK");
        let Some(key) = server_key(request) else {
            if is_ack {
                events.push(TxEvent::Ack {
                    bytes: request.as_bytes().to_vec(),
                });
                return RequestMatch::Ack;
            }
            return RequestMatch::Stateless;
        };
        match self.servers.get(&key).copied() {
            Some(id) => {
                let Some(Tx::Server(s)) = self.txs.get_mut(&id) else {
                    return RequestMatch::Stateless;
                };
                if is_ack {
                    let (absorbed, step) = s.on_ack(&self.timers);
                    self.apply(now_ms, id, step, events);
                    if !absorbed {
                        events.push(TxEvent::Ack {
                            bytes: request.as_bytes().to_vec(),
                        });
                    }
                    RequestMatch::Ack
                } else {
                    s.on_retransmission(outs);
                    RequestMatch::Retransmission(TxId(id))
                }
            }
            None if is_ack => {
                events.push(TxEvent::Ack {
                    bytes: request.as_bytes().to_vec(),
                });
                RequestMatch::Ack
            }
            None if self.txs.len() >= self.max => RequestMatch::Full,
            None => {
                let id = self.new_id();
                let (server, (kind, after)) = Server::start(&self.timers, request, hop, outs);
                self.servers.insert(key, id);
                self.txs.insert(id, Tx::Server(server));
                self.schedule(id, kind, now_ms + after);
                RequestMatch::New(TxId(id))
            }
        }
    }

    /// The INVITE server transaction a CANCEL is for (RFC 3261 §9.2: same branch and sent-by,
    /// method INVITE); `None` when there is none (answer the CANCEL 481).
    pub fn invite_for_cancel(&self, cancel: &Message<'_, '_>) -> Option<TxId> {
        let key = server_key(cancel)?;
        let method_at = key.iter().rposition(|&c| c == 0)? + 1;
        let invite = [&key[..method_at], b"INVITE"].concat().into_boxed_slice();
        self.servers.get(&invite).map(|&id| TxId(id))
    }

    /// The server transaction of a request received (its retransmissions match it too).
    pub fn server_for(&self, request: &Message<'_, '_>) -> Option<TxId> {
        let key = server_key(request)?;
        self.servers.get(&key).map(|&id| TxId(id))
    }

    /// Sets how many transactions the layer holds at most (those alive stay).
    pub fn set_max(&mut self, max: usize) {
        self.max = max;
    }

    /// Sets the RFC 3261 timers of transactions started from now on.
    pub fn set_timers(&mut self, timers: Timers) {
        self.timers = timers;
    }

    /// The user's response for server transaction `tx`; `false` when the transaction is gone
    /// or already answered finally (except an INVITE's 2xx again while it is accepted: the
    /// user retransmits its 2xx through the transaction, RFC 6026 §8.5).
    pub fn respond(
        &mut self,
        now_ms: u64,
        tx: TxId,
        code: u16,
        response: Vec<u8>,
        outs: &mut Vec<Out>,
        events: &mut Vec<TxEvent>,
    ) -> bool {
        let Some(Tx::Server(s)) = self.txs.get_mut(&tx.0) else {
            return false;
        };
        let Some(step) = s.respond(&self.timers, code, response, outs) else {
            return false;
        };
        self.apply(now_ms, tx.0, step, events);
        true
    }

    /// Fires every timer due at `now_ms`.
    pub fn handle_timeout(&mut self, now_ms: u64, outs: &mut Vec<Out>, events: &mut Vec<TxEvent>) {
        let mut fired = std::mem::take(&mut self.fired);
        self.wheel.advance(now_ms, &mut fired);
        for e in fired.drain(..) {
            let (id, kind) = e.value;
            let step = match self.txs.get_mut(&id) {
                Some(Tx::Client(c)) => c.on_timer(&self.timers, TxId(id), kind, outs, events),
                Some(Tx::Server(s)) => s.on_timer(&self.timers, TxId(id), kind, outs, events),
                None => continue,
            };
            // The timer that fired is gone from the wheel: forget it before applying.
            if let Some(t) = self.timer_slot(id, kind) {
                *t = None;
            }
            self.apply(now_ms, id, step, events);
        }
        self.fired = fired;
    }

    fn new_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn schedule(&mut self, id: u64, kind: TimerKind, at_ms: u64) {
        let timer = self.wheel.insert(at_ms, (id, kind));
        if let Some(slot) = self.timer_slot(id, kind) {
            if let Some(old) = slot.replace(timer) {
                self.wheel.cancel(old);
            }
        }
    }

    fn timer_slot(&mut self, id: u64, kind: TimerKind) -> Option<&mut Option<TimerId>> {
        let timers = match self.txs.get_mut(&id)? {
            Tx::Client(c) => &mut c.timers,
            Tx::Server(s) => &mut s.timers,
        };
        Some(match kind {
            TimerKind::Retransmit => &mut timers[0],
            TimerKind::Timeout => &mut timers[1],
        })
    }

    /// Carries out what a transaction's state change asks for.
    fn apply(&mut self, now_ms: u64, id: u64, step: Step, events: &mut Vec<TxEvent>) {
        for kind in step.cancel {
            if let Some(slot) = self.timer_slot(id, kind) {
                if let Some(t) = slot.take() {
                    self.wheel.cancel(t);
                }
            }
        }
        for (kind, after) in step.schedule {
            self.schedule(id, kind, now_ms + after);
        }
        if step.terminate {
            self.terminate(id, events);
        }
    }

    fn terminate(&mut self, id: u64, events: &mut Vec<TxEvent>) {
        let Some(tx) = self.txs.remove(&id) else {
            return;
        };
        let timers = match &tx {
            Tx::Client(c) => c.timers,
            Tx::Server(s) => s.timers,
        };
        for t in timers.into_iter().flatten() {
            self.wheel.cancel(t);
        }
        match tx {
            Tx::Client(c) => {
                if let Some(key) = client_key_of_request(&c.request) {
                    self.clients.remove(&key);
                }
            }
            Tx::Server(s) => {
                self.servers.remove(&s.key);
            }
        }
        events.push(TxEvent::Terminated { tx: TxId(id) });
    }
}

/// What a transaction's state change asks the table to do with its timers and itself.
#[derive(Debug, Default)]
struct Step {
    cancel: Vec<TimerKind>,
    schedule: Vec<(TimerKind, u64)>,
    terminate: bool,
}

impl Step {
    fn none() -> Step {
        Step::default()
    }

    fn terminate() -> Step {
        Step {
            terminate: true,
            ..Step::default()
        }
    }

    /// Stops both timers and waits `wait_ms` before terminating (0: at once).
    fn wait_then_terminate(wait_ms: u64) -> Step {
        if wait_ms == 0 {
            return Step {
                cancel: vec![TimerKind::Retransmit, TimerKind::Timeout],
                terminate: true,
                ..Step::default()
            };
        }
        Step {
            cancel: vec![TimerKind::Retransmit],
            schedule: vec![(TimerKind::Timeout, wait_ms)],
            terminate: false,
        }
    }
}

/// The RFC 3261 branch of a top Via, when it has the magic cookie.
fn rfc3261_branch<'b>(msg: &Message<'_, 'b>) -> Option<&'b [u8]> {
    msg.branch().filter(|b| b.starts_with(b"z9hG4bK"))
}

fn client_key_of_request(request: &[u8]) -> Option<ClientKey> {
    let mut h = [sipshard_parser::sip::EMPTY_HEADER; crate::shard::MAX_HEADERS];
    let msg = sipshard_parser::sip::parse(request, &mut h, sipshard_parser::sip::Framing::Datagram)
        .ok()?
        .complete()?;
    let branch = rfc3261_branch(&msg)?;
    Some((branch.to_vec(), msg.cseq()?.method.to_vec()))
}

fn client_key_of_response(response: &Message<'_, '_>) -> Option<ClientKey> {
    let branch = rfc3261_branch(response)?;
    Some((branch.to_vec(), response.cseq()?.method.to_vec()))
}

fn server_key(request: &Message<'_, '_>) -> Option<ServerKey> {
    let branch = rfc3261_branch(request)?;
    let via = request.top_via()?;
    let mut sent_by = via.host.as_bytes().into_owned();
    sent_by.extend_from_slice(format!(":{}", via.port.unwrap_or(5060)).as_bytes());
    let method = match request.method()? {
        b"ACK" => &b"INVITE"[..],
        m => m,
    };
    let mut key = Vec::with_capacity(branch.len() + sent_by.len() + method.len() + 2);
    key.extend_from_slice(branch);
    key.push(0);
    key.extend_from_slice(&sent_by);
    key.push(0);
    key.extend_from_slice(method);
    Some(key.into_boxed_slice())
}
