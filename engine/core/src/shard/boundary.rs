//! The vocabulary between a shard core and its driver: what the core asks the driver to do
//! ([`Out`]) and the work that travels between shards or waits in a task queue ([`Work`]).
//! Everything here owns its bytes, so it can cross threads and outlive the input it came from.

use crate::gateway::{GwOp, SipReply};
use crate::route::{ActionResult, RouteId};
use crate::sip_write;
use crate::transport::{ConnId, MsrpConn, RxContext, Transport};
use sipshard_parser::sip::Via;
use std::net::SocketAddr;

/// Something the driver must do.
#[derive(Debug)]
pub enum Out {
    /// Send a datagram from the socket of listen address `listen`.
    Datagram {
        /// Index of the listen address (and so of the socket).
        listen: u16,
        /// Destination.
        dest: SocketAddr,
        /// The whole datagram.
        bytes: Vec<u8>,
    },
    /// Write to a stream connection, which another shard may own (the driver carries the bytes
    /// to `conn.shard`).
    Stream {
        /// The connection.
        conn: ConnId,
        /// Bytes to append to the connection's output.
        bytes: Vec<u8>,
    },
    /// Hand work to another shard's core.
    Shard {
        /// Destination shard.
        to: usize,
        /// The work.
        work: Work,
    },
    /// Open an MSRP connection to `addr` for a session this shard owns (the active side,
    /// RFC 4975 §6); the driver names it `conn`. Writes to `conn` may follow at once: they
    /// wait for the connection. If it cannot be opened, the driver reports it closed.
    MsrpConnect {
        /// The name this shard gave it (`conn.shard` is this shard).
        conn: MsrpConn,
        /// The far side's address (from its `a=path`).
        addr: SocketAddr,
    },
    /// Write frames on an MSRP connection, which another shard may hold (the driver carries
    /// the bytes to `conn.shard`).
    MsrpWrite {
        /// The connection.
        conn: MsrpConn,
        /// One or more whole frames.
        bytes: Vec<u8>,
    },
    /// Open a SIP connection for requests of this shard's own (a gateway MESSAGE too large
    /// for UDP), unless one to `conn.peer` is open already; writes to `conn` queue on it.
    Connect {
        /// The connection: this shard, the TCP listen address it leaves from, the peer.
        conn: ConnId,
    },
    /// Resolve a host name for a request of the gateway (RFC 3263 §4.2: SRV records of
    /// `_sip._udp.<name>` when no port is given, else or then A/AAAA); the driver answers with
    /// [`crate::shard::ShardCore::on_resolved`] on this shard.
    Resolve {
        /// The name.
        name: String,
        /// The port the URI gave.
        port: Option<u16>,
    },
    /// Close an MSRP connection this shard opened (its session ended).
    MsrpClose {
        /// The connection.
        conn: MsrpConn,
    },
    /// Run work later on this shard, in task-queue group `group` (as `Program::groups`).
    Queue {
        /// Group index.
        group: usize,
        /// The work.
        work: Work,
    },
}

impl Out {
    /// The answer to a message received with `rx`: over its connection for a stream, else to
    /// the address RFC 3261 §18.2.2 names (`top_via` gives the port when `rport` was not asked
    /// for). `None` when there is nowhere to send it: a stream that has no connection, or a
    /// non-unicast destination (RFC 4475 §3.3.10).
    pub fn to_sender(rx: &RxContext, top_via: Option<&Via<'_>>, bytes: Vec<u8>) -> Option<Out> {
        match rx.transport {
            Transport::Udp => {
                let dest = sip_write::udp_response_destination(top_via, rx.source);
                if !sip_write::is_unicast(dest.ip()) {
                    tracing::debug!("not answering {} (not a unicast address)", dest);
                    return None;
                }
                Some(Out::Datagram {
                    listen: rx.listen,
                    dest,
                    bytes,
                })
            }
            Transport::Tcp => rx.conn.map(|conn| Out::Stream { conn, bytes }),
        }
    }
}

/// The number a shard gives an operation it asked another shard to run; the answer carries it
/// back. Only the asking shard can read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Token(pub u64);

/// Work for a shard core: from another shard, or queued on this one.
#[derive(Debug)]
pub enum Work {
    /// A SIP message read by another shard, for the shard that owns it.
    Sip {
        /// The whole message.
        bytes: Vec<u8>,
        /// Where it came from.
        rx: RxContext,
    },
    /// An operation for the shard owning its key; answered with [`Work::Done`].
    Remote {
        /// Names the waiting run on the asking shard.
        token: Token,
        /// The asking shard.
        from: usize,
        /// Config generation the operation's route ids belong to.
        generation: u64,
        /// The operation.
        op: RemoteOp,
    },
    /// The answer to a [`Work::Remote`].
    Done {
        /// The token the request carried.
        token: Token,
        /// The operation's result; `None` when the owner could not run it (its config changed
        /// since the request was made, so the route ids it names mean something else now).
        result: Option<ActionResult>,
        /// The response the asking shard sends to the request its run is for, before the run
        /// goes on (the gateway's operations answer the MESSAGE or INVITE themselves).
        reply: Option<SipReply>,
    },
    /// A whole MSRP frame read on `conn`, for the shard owning the session its To-Path names.
    Msrp {
        /// Where it was read.
        conn: MsrpConn,
        /// The frame.
        bytes: Vec<u8>,
    },
    /// An MSRP connection closed or failed: every session on it ends.
    MsrpClosed {
        /// The connection.
        conn: MsrpConn,
    },
    /// Work this shard queued for itself (in a task-queue group).
    Deferred {
        /// Config generation it was queued under.
        generation: u64,
        /// What to do.
        task: Deferred,
    },
}

/// An operation one shard runs for another, on state the running shard owns.
#[derive(Debug)]
pub enum RemoteOp {
    /// A repository operation on the owner of a Call-ID.
    Repo(RepoOp),
    /// A gateway operation on the owner of a session key.
    Gateway(GwOp),
}

impl RemoteOp {
    /// The operation's name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            RemoteOp::Repo(op) => op.name(),
            RemoteOp::Gateway(op) => op.name(),
        }
    }
}

/// A repository operation, by the Call-ID and msgid it acts on (fields as the route action's
/// parameters).
#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepoOp {
    /// `pull`: take the item (or a copy) and run `route` on it.
    Pull {
        callid: Vec<u8>,
        msgid: Vec<u8>,
        route: RouteId,
        remove: bool,
    },
    /// `async_pull`: queue `route` on the item in task-queue group `group`.
    AsyncPull {
        callid: Vec<u8>,
        msgid: Vec<u8>,
        group: usize,
        route: RouteId,
        remove: bool,
    },
    /// `rm`.
    Rm { callid: Vec<u8>, msgid: Vec<u8> },
    /// `check`, of one item or (without msgid) of any item of the Call-ID.
    Check {
        callid: Vec<u8>,
        msgid: Option<Vec<u8>>,
    },
}

impl RepoOp {
    /// The Call-ID the operation is keyed by (its owner runs it).
    pub fn callid(&self) -> &[u8] {
        match self {
            RepoOp::Pull { callid, .. }
            | RepoOp::AsyncPull { callid, .. }
            | RepoOp::Rm { callid, .. }
            | RepoOp::Check { callid, .. } => callid,
        }
    }

    /// The route action's name.
    pub fn name(&self) -> &'static str {
        match self {
            RepoOp::Pull { .. } => "pull",
            RepoOp::AsyncPull { .. } => "async_pull",
            RepoOp::Rm { .. } => "rm",
            RepoOp::Check { .. } => "check",
        }
    }
}

/// Work a shard queued for itself.
#[allow(missing_docs)]
#[derive(Debug)]
pub enum Deferred {
    /// The second half of an `async_pull`: take the item and run `route` on it.
    AsyncPull {
        callid: Vec<u8>,
        msgid: Vec<u8>,
        route: RouteId,
        remove: bool,
    },
}
