//! A whole server without sockets: N shard cores joined by in-memory queues on a virtual clock.
//! Tests feed it datagrams and stream messages, move the clock, reload the config, lose or hold
//! messages between shards, and read back everything the shards sent. Time only moves when a
//! test says so, and it jumps from deadline to deadline, so an hour of expiry runs in
//! microseconds and every run is the same.

use super::{ControlCall, Out, RpcError, ShardCore, SharedState, Work};
use crate::config::{self, ConfigError, Overrides};
use crate::metrics::ShardStats;
use crate::transport::{ConnId, MsrpConn, RxContext, Transport};
use serde_json::Value;
use sipshard_parser::sip::{self, Framing, EMPTY_HEADER};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

/// Where a harness shard sent something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dest {
    /// A datagram to this address, from listen address `listen`.
    Datagram {
        /// Index of the listen address sent from.
        listen: u16,
        /// Destination.
        addr: SocketAddr,
    },
    /// Bytes written on a stream connection.
    Stream(ConnId),
    /// Frames written on an MSRP connection.
    Msrp(MsrpConn),
}

/// One thing a shard sent out.
#[derive(Debug, Clone)]
pub struct Sent {
    /// The shard whose socket sent it.
    pub shard: usize,
    /// Where it went.
    pub dest: Dest,
    /// The bytes.
    pub bytes: Vec<u8>,
    /// The virtual time it was sent at.
    pub at_ms: u64,
}

impl Sent {
    /// The peer it went to.
    pub fn peer(&self) -> SocketAddr {
        match self.dest {
            Dest::Datagram { addr, .. } => addr,
            Dest::Stream(c) => c.peer,
            Dest::Msrp(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
        }
    }

    /// The status code, when it is a SIP response.
    pub fn status(&self) -> Option<u16> {
        let mut h = [EMPTY_HEADER; 64];
        sip::parse(&self.bytes, &mut h, Framing::Datagram)
            .ok()?
            .complete()?
            .status_code()
    }

    /// The value of the first header called `name`, as text.
    pub fn header(&self, name: &str) -> Option<String> {
        let mut h = [EMPTY_HEADER; 64];
        let m = sip::parse(&self.bytes, &mut h, Framing::Datagram)
            .ok()?
            .complete()?;
        m.header(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }
}

/// What to do with a message between shards.
pub type MeshFilter = Box<dyn FnMut(usize, &Work) -> bool>;

/// N shard cores, their mesh and their clock.
pub struct Harness {
    now_ms: u64,
    shared: Arc<SharedState>,
    cores: Vec<ShardCore>,
    stats: Vec<Arc<ShardStats>>,
    listen: Vec<(Transport, SocketAddr)>,
    mesh: VecDeque<(usize, Work)>,
    queued: VecDeque<(usize, Work)>,
    sent: Vec<Sent>,
    hold: bool,
    lose: Option<MeshFilter>,
    lost: usize,
    /// MSRP connections the shards asked to open (and to close), in order.
    msrp_connects: Vec<(MsrpConn, SocketAddr)>,
    msrp_closes: Vec<MsrpConn>,
    /// Names the shards asked to resolve: (shard, name, port).
    resolves: Vec<(usize, String, Option<u16>)>,
}

/// The MSRP listen address of a harness with a gateway (in name only).
pub const HARNESS_MSRP: &str = "192.0.2.1:2855";

/// Most steps a harness takes to settle one input before it calls the run a livelock.
const MAX_STEPS: usize = 1_000_000;

impl Harness {
    /// `shards` cores on the config in `toml`; they listen (in name only) on
    /// `udp:192.0.2.1:5060` and `tcp:192.0.2.1:5060`, whatever the config says.
    pub fn new(shards: usize, toml: &str) -> Result<Harness, ConfigError> {
        let ip = "192.0.2.1".parse().expect("address");
        Harness::listening_on(shards, toml, ip)
    }

    /// As [`Harness::new`], listening (in name) on `ip` port 5060 over UDP and TCP.
    pub fn listening_on(
        shards: usize,
        toml: &str,
        ip: std::net::IpAddr,
    ) -> Result<Harness, ConfigError> {
        let loaded = load(toml)?;
        let listen: Vec<(Transport, SocketAddr)> = vec![
            (Transport::Udp, SocketAddr::new(ip, 5060)),
            (Transport::Tcp, SocketAddr::new(ip, 5060)),
        ];
        let stats: Vec<_> = (0..shards)
            .map(|_| Arc::new(ShardStats::default()))
            .collect();
        let gateway = loaded.program.uses_gateway();
        let shared = Arc::new(SharedState::new(loaded, None, Overrides::default()));
        let cores = (0..shards)
            .map(|i| {
                let core = ShardCore::new(
                    i,
                    shards,
                    shared.clone(),
                    stats[i].clone(),
                    listen.clone(),
                    0,
                );
                if !gateway {
                    return core;
                }
                let net = crate::gateway::Net {
                    sip: listen.clone(),
                    msrp: vec![SocketAddr::new(ip, 2855)],
                };
                core.with_gateway(net, [i as u8 + 1; 32], 0)
            })
            .collect();
        Ok(Harness {
            now_ms: 0,
            shared,
            cores,
            stats,
            listen,
            mesh: VecDeque::new(),
            queued: VecDeque::new(),
            sent: Vec::new(),
            hold: false,
            lose: None,
            lost: 0,
            msrp_connects: Vec::new(),
            msrp_closes: Vec::new(),
            resolves: Vec::new(),
        })
    }

    /// The virtual time, ms.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// Shard `i`'s core.
    pub fn core(&self, i: usize) -> &ShardCore {
        &self.cores[i]
    }

    /// Shard `i`'s counters.
    pub fn stats(&self, i: usize) -> &ShardStats {
        &self.stats[i]
    }

    /// The number of shards.
    pub fn shards(&self) -> usize {
        self.cores.len()
    }

    /// The shard owning a Call-ID.
    pub fn owner_of(&self, callid: &str) -> usize {
        self.cores[0].ownership().of_callid(callid.as_bytes())
    }

    /// A datagram from `source`, read by shard `shard` on the UDP listen address; runs until
    /// nothing moves.
    pub fn datagram(&mut self, shard: usize, source: SocketAddr, bytes: &[u8]) {
        let rx = self.rx(Transport::Udp, source, None);
        let mut outs = Vec::new();
        let _ = self.cores[shard].on_datagram(self.now_ms, bytes.to_vec(), rx, &mut outs);
        self.carry(shard, outs);
        self.settle();
    }

    /// A message read by shard `shard` from a TCP connection with `peer`; runs until nothing
    /// moves.
    pub fn stream_message(&mut self, shard: usize, peer: SocketAddr, bytes: &[u8]) {
        let conn = ConnId {
            shard: shard as u16,
            listen: 1,
            peer,
        };
        let rx = self.rx(Transport::Tcp, peer, Some(conn));
        let mut outs = Vec::new();
        let _ = self.cores[shard].on_stream_message(self.now_ms, bytes.to_vec(), rx, &mut outs);
        self.carry(shard, outs);
        self.settle();
    }

    /// A whole MSRP frame read by shard `shard` on connection `conn`; runs until nothing
    /// moves.
    pub fn msrp_frame(&mut self, shard: usize, conn: MsrpConn, bytes: &[u8]) {
        let mut outs = Vec::new();
        let _ = self.cores[shard].on_msrp_frame(self.now_ms, conn, bytes.to_vec(), &mut outs);
        self.carry(shard, outs);
        self.settle();
    }

    /// The MSRP connection `conn` (held by `conn.shard`) closed.
    pub fn msrp_closed(&mut self, conn: MsrpConn) {
        let shard = usize::from(conn.shard);
        let mut outs = Vec::new();
        self.cores[shard].on_msrp_closed(self.now_ms, conn, &mut outs);
        self.carry(shard, outs);
        self.settle();
    }

    /// MSRP connections the shards asked to open since the last call: (name, address).
    pub fn take_msrp_connects(&mut self) -> Vec<(MsrpConn, SocketAddr)> {
        std::mem::take(&mut self.msrp_connects)
    }

    /// The server stops: every shard answers its parked items (`repo:shutdown`, else
    /// `repo:expired`). Returns how many items there were.
    pub fn shutdown(&mut self) -> usize {
        let mut n = 0;
        for i in 0..self.cores.len() {
            let mut outs = Vec::new();
            n += self.cores[i].on_shutdown(self.now_ms, &mut outs);
            self.carry(i, outs);
        }
        self.settle();
        n
    }

    /// Names the shards asked to resolve since the last call: (shard, name, port).
    pub fn take_resolves(&mut self) -> Vec<(usize, String, Option<u16>)> {
        std::mem::take(&mut self.resolves)
    }

    /// The resolver's answer to shard `shard` for `name` (no addresses: it did not resolve).
    pub fn resolved(&mut self, shard: usize, name: &str, port: Option<u16>, addrs: &[SocketAddr]) {
        let mut outs = Vec::new();
        self.cores[shard].on_resolved(self.now_ms, name, port, addrs.to_vec(), &mut outs);
        self.carry(shard, outs);
        self.settle();
    }

    /// MSRP connections the shards closed since the last call.
    pub fn take_msrp_closes(&mut self) -> Vec<MsrpConn> {
        std::mem::take(&mut self.msrp_closes)
    }

    fn rx(&self, transport: Transport, source: SocketAddr, conn: Option<ConnId>) -> RxContext {
        let listen = match transport {
            Transport::Udp => 0,
            Transport::Tcp => 1,
        };
        RxContext {
            listen,
            transport,
            source,
            local: self.listen[usize::from(listen)].1,
            conn,
            received_ms: self.now_ms,
        }
    }

    /// Moves the clock `ms` ahead, stopping at every deadline on the way (in order) and running
    /// what is due there.
    pub fn advance(&mut self, ms: u64) {
        let target = self.now_ms.saturating_add(ms);
        for _ in 0..MAX_STEPS {
            let next = self
                .cores
                .iter()
                .filter_map(ShardCore::poll_timeout)
                .min()
                .filter(|&d| d <= target);
            let Some(d) = next else {
                self.now_ms = target;
                return;
            };
            self.now_ms = self.now_ms.max(d);
            for i in 0..self.cores.len() {
                if self.cores[i]
                    .poll_timeout()
                    .is_some_and(|d| d <= self.now_ms)
                {
                    let mut outs = Vec::new();
                    self.cores[i].handle_timeout(self.now_ms, &mut outs);
                    self.carry(i, outs);
                }
            }
            self.settle();
        }
        panic!("harness: deadlines keep coming at {} ms", self.now_ms);
    }

    /// Shard `shard` sends a request of its own in a client transaction, as a datagram to
    /// `dest`.
    pub fn send_request(
        &mut self,
        shard: usize,
        request: Vec<u8>,
        dest: SocketAddr,
    ) -> Option<crate::transaction::TxId> {
        let mut outs = Vec::new();
        let hop = crate::transaction::Hop::Datagram { listen: 0, dest };
        let tx = self.cores[shard].send_request(self.now_ms, request, hop, &mut outs);
        self.carry(shard, outs);
        self.settle();
        tx
    }

    /// Swaps in a new config for every shard (as `config.reload` does with a file).
    pub fn reload(&mut self, toml: &str) -> Result<Vec<String>, ConfigError> {
        Ok(self.shared.swap(load(toml)?))
    }

    /// Runs a control method as the endpoint on shard 0 would.
    pub fn control(&mut self, method: &str, params: Value) -> Result<Value, RpcError> {
        let mut call = ControlCall::new(method, params, self.cores[0].ownership())?;
        while let Some((shard, params)) = call.next() {
            let mut outs = Vec::new();
            let r = self.cores[shard].on_control(self.now_ms, call.method(), &params, &mut outs);
            self.carry(shard, outs);
            call.on_result(r);
        }
        self.settle();
        call.finish()
    }

    /// Holds every message between shards (they queue) until [`Harness::release`].
    pub fn hold(&mut self) {
        self.hold = true;
    }

    /// Delivers what was held, and goes on delivering.
    pub fn release(&mut self) {
        self.hold = false;
        self.settle();
    }

    /// Delivers the oldest message between shards, held or not; `false` when none is queued.
    pub fn step(&mut self) -> bool {
        let Some((to, work)) = self.mesh.pop_front() else {
            return false;
        };
        let mut outs = Vec::new();
        self.cores[to].on_work(self.now_ms, work, &mut outs);
        self.carry(to, outs);
        true
    }

    /// Messages between shards now queued.
    pub fn in_flight(&self) -> usize {
        self.mesh.len()
    }

    /// Drops every message between shards for which `f(destination, work)` is true.
    pub fn lose_when(&mut self, f: impl FnMut(usize, &Work) -> bool + 'static) {
        self.lose = Some(Box::new(f));
    }

    /// Messages dropped by the [`Harness::lose_when`] filter so far.
    pub fn lost(&self) -> usize {
        self.lost
    }

    /// Everything sent since the last call, in order.
    pub fn take_sent(&mut self) -> Vec<Sent> {
        std::mem::take(&mut self.sent)
    }

    /// Carries out shard `from`'s outputs.
    fn carry(&mut self, from: usize, outs: Vec<Out>) {
        for o in outs {
            match o {
                Out::Datagram {
                    listen,
                    dest,
                    bytes,
                } => self.sent.push(Sent {
                    shard: from,
                    dest: Dest::Datagram { listen, addr: dest },
                    bytes,
                    at_ms: self.now_ms,
                }),
                Out::Stream { conn, bytes } => self.sent.push(Sent {
                    shard: usize::from(conn.shard),
                    dest: Dest::Stream(conn),
                    bytes,
                    at_ms: self.now_ms,
                }),
                Out::Shard { to, work } => {
                    if self.lose.as_mut().is_some_and(|f| f(to, &work)) {
                        self.lost += 1;
                    } else {
                        self.mesh.push_back((to, work));
                    }
                }
                Out::Queue { work, .. } => self.queued.push_back((from, work)),
                Out::MsrpConnect { conn, addr } => self.msrp_connects.push((conn, addr)),
                Out::MsrpWrite { conn, bytes } => self.sent.push(Sent {
                    shard: usize::from(conn.shard),
                    dest: Dest::Msrp(conn),
                    bytes,
                    at_ms: self.now_ms,
                }),
                Out::MsrpClose { conn } => self.msrp_closes.push(conn),
                Out::Resolve { name, port } => self.resolves.push((from, name, port)),
                // Connections are names here: what is written on one is recorded.
                Out::Connect { .. } => {}
            }
        }
    }

    /// Delivers queued work (the mesh first, then task queues) until nothing moves.
    fn settle(&mut self) {
        for _ in 0..MAX_STEPS {
            let next = if self.hold {
                self.queued.pop_front()
            } else {
                self.mesh.pop_front().or_else(|| self.queued.pop_front())
            };
            let Some((to, work)) = next else {
                return;
            };
            let mut outs = Vec::new();
            self.cores[to].on_work(self.now_ms, work, &mut outs);
            self.carry(to, outs);
        }
        panic!("harness: shards keep sending each other work");
    }
}

fn load(toml: &str) -> Result<config::Loaded, ConfigError> {
    config::load_str(Path::new("harness.toml"), toml, &Overrides::default())
}
