//! The transports sipshard speaks and how a received message names where it came from. One type
//! for the config, the route language, the repository and the driver, so nothing converts.

use serde::Serialize;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

/// A SIP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// UDP (RFC 3261 §18.1.1, one message per datagram).
    Udp,
    /// TCP (a byte stream framed by Content-Length).
    Tcp,
}

impl Transport {
    /// The lower-case name used in the config (`udp`, `tcp`).
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Transport {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "udp" => Ok(Transport::Udp),
            "tcp" => Ok(Transport::Tcp),
            _ => Err(format!("unknown transport `{s}` (expected udp or tcp)")),
        }
    }
}

/// A stream connection, as any shard can name it: the shard that reads (and writes) it, the
/// listen address it was accepted on, and the peer. Replies for a connection travel to its
/// shard, which alone holds the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId {
    /// The shard that accepted the connection.
    pub shard: u16,
    /// Index of the listen address in the server's listen list.
    pub listen: u16,
    /// The peer's address.
    pub peer: SocketAddr,
}

/// Where and when a message was received: enough to answer it, or to run it again later as if
/// it had just arrived from its sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxContext {
    /// Index of the listen address it arrived on (replies leave from that socket).
    pub listen: u16,
    /// The transport it arrived over.
    pub transport: Transport,
    /// The sender.
    pub source: SocketAddr,
    /// The local address it arrived on.
    pub local: SocketAddr,
    /// The connection it arrived on, for stream transports.
    pub conn: Option<ConnId>,
    /// Receive time, ms on the shard's clock.
    pub received_ms: u64,
}

/// An MSRP connection, as any shard can name it: the shard that holds its socket (which
/// accepted it, or opened it for a session it owns) and its number there. Frames for another
/// shard's sessions travel to their owner; what the owner writes travels back here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct MsrpConn {
    /// The shard holding the socket.
    pub shard: u16,
    /// Its number on that shard.
    pub id: u32,
}

impl fmt::Display for MsrpConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.shard, self.id)
    }
}
