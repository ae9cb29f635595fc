//! The boundary between the route interpreter and whatever runs it.
//!
//! The interpreter never touches a socket, a repository or a clock: every effect is a call on
//! [`Host`]. The shard implements it over its repository partition and sockets; tests implement it
//! with a mock. Operations that may need another shard (a pull whose Call-ID another shard owns)
//! answer [`Poll::Pending`]; the interpreter then returns [`Outcome::Suspended`] and is resumed
//! with the result (see [`resume`]).
//!
//! [`Outcome::Suspended`]: super::Outcome::Suspended
//! [`resume`]: super::resume

use super::program::{GroupId, HeaderName, RouteId};
use serde::{Deserialize, Serialize};
use sipshard_parser::sip::Message;
use std::borrow::Cow;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::task::Poll;
use std::time::Duration;

pub use crate::transport::Transport;

/// A log level, for `[log] level` and the `log` action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LogLevel {
    /// Something failed.
    Error,
    /// Something looks wrong.
    Warn,
    /// Normal operation worth a line.
    Info,
    /// Detail for debugging a configuration.
    Debug,
    /// Everything.
    Trace,
}

impl LogLevel {
    /// The lower-case name (`error` ... `trace`).
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for LogLevel {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for LogLevel {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl FromStr for LogLevel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "error" => Ok(LogLevel::Error),
            "warn" | "warning" => Ok(LogLevel::Warn),
            "info" => Ok(LogLevel::Info),
            "debug" => Ok(LogLevel::Debug),
            "trace" => Ok(LogLevel::Trace),
            _ => Err(format!(
                "unknown log level `{s}` (expected error, warn, info, debug or trace)"
            )),
        }
    }
}

macro_rules! results {
    ($(#[$m:meta])* $name:ident { $( $(#[$vm:meta])* $variant:ident => $label:literal ),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vm])* $variant, )*
        }

        impl $name {
            /// Every result, in the order of [`Self::index`].
            pub const ALL: &'static [$name] = &[$($name::$variant),*];
            /// The names used in `on_<result>` keys, in the order of [`Self::index`].
            pub const NAMES: &'static [&'static str] = &[$($label),*];

            /// The name used in `on_<result>` (`stored`, `not_found`...).
            pub fn name(self) -> &'static str {
                Self::NAMES[self.index()]
            }

            /// Position in [`Self::NAMES`].
            pub fn index(self) -> usize {
                self as usize
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

results! {
    /// What `push` did.
    PushResult {
        /// The message is stored under (Call-ID, msgid).
        Stored => "stored",
        /// An item with this (Call-ID, msgid) already exists; it was kept, nothing stored.
        Duplicate => "duplicate",
        /// A retransmission of a request already stored (same Call-ID, CSeq and top Via
        /// branch): absorbed, nothing stored.
        Retransmission => "retransmission",
        /// The shard's `max_items` or `max_bytes` is reached; nothing stored.
        Full => "full",
    }
}

results! {
    /// What `pull` did.
    PullResult {
        /// The item was found; its route runs (or ran) on it.
        Pulled => "pulled",
        /// No item with this (Call-ID, msgid).
        NotFound => "not_found",
    }
}

results! {
    /// What `async_pull` did.
    AsyncPullResult {
        /// The item was found and its route is queued on the group's task queue.
        Queued => "queued",
        /// No item with this (Call-ID, msgid).
        NotFound => "not_found",
    }
}

results! {
    /// What `rm` did.
    RmResult {
        /// The item was removed.
        Removed => "removed",
        /// No item with this (Call-ID, msgid).
        NotFound => "not_found",
    }
}

results! {
    /// What `check` found.
    CheckResult {
        /// At least one item matches.
        Found => "found",
        /// No item matches.
        NotFound => "not_found",
    }
}

results! {
    /// What `forward` did.
    ForwardResult {
        /// The message was handed to the transport.
        Sent => "sent",
        /// It could not be sent (bad target, no such transport, socket error).
        Error => "error",
    }
}

results! {
    /// What `msrp_answer` did.
    MsrpAnswerResult {
        /// The INVITE was answered 200 with our SDP answer and the session created.
        Answered => "answered",
        /// The offer has no MSRP stream over TCP or no type in common: answered 488.
        Refused => "refused",
        /// The gateway could not take the INVITE (no MSRP listener, the shard holds its
        /// maximum of sessions, a malformed INVITE): answered 500 or 503.
        Error => "error",
    }
}

results! {
    /// What `msg_to_msrp` did. The gateway answers the MESSAGE itself: `queued` 202,
    /// `delivered` 200, `failed` the mapped error, `full` 503 with Retry-After, `error` 500.
    MsgToMsrpResult {
        /// `async`: the message is on its way (queued until the session is up, or sent).
        Queued => "queued",
        /// `sync`: every chunk was answered 200 by the MSRP side.
        Delivered => "delivered",
        /// `sync`: the MSRP side refused it, the session could not be set up, or it timed out.
        Failed => "failed",
        /// The session's queue is full (count, bytes) or the shard holds its maximum of
        /// sessions.
        Full => "full",
        /// The MESSAGE cannot go anywhere (an empty key, no usable Request-URI).
        Error => "error",
    }
}

results! {
    /// What `send_message` did.
    SendMessageResult {
        /// The MESSAGE left in a client transaction (its final response is logged).
        Sent => "sent",
        /// It could not be sent (no usable Request-URI, no listen address to send from).
        Error => "error",
    }
}

/// A result delivered to [`resume`](super::resume) after an operation answered
/// [`Poll::Pending`]; it must be of the kind the suspended action waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum ActionResult {
    Push(PushResult),
    Pull(PullResult),
    AsyncPull(AsyncPullResult),
    Rm(RmResult),
    Check(CheckResult),
    Forward(ForwardResult),
    MsrpAnswer(MsrpAnswerResult),
    MsgToMsrp(MsgToMsrpResult),
    SendMessage(SendMessageResult),
}

impl ActionResult {
    /// The result's index among its action's results (the `on_<result>` slot).
    pub(crate) fn index(self) -> usize {
        match self {
            ActionResult::Push(r) => r.index(),
            ActionResult::Pull(r) => r.index(),
            ActionResult::AsyncPull(r) => r.index(),
            ActionResult::Rm(r) => r.index(),
            ActionResult::Check(r) => r.index(),
            ActionResult::Forward(r) => r.index(),
            ActionResult::MsrpAnswer(r) => r.index(),
            ActionResult::MsgToMsrp(r) => r.index(),
            ActionResult::SendMessage(r) => r.index(),
        }
    }

    /// The result's name (`stored`, `not_found`...).
    pub fn name(self) -> &'static str {
        match self {
            ActionResult::Push(r) => r.name(),
            ActionResult::Pull(r) => r.name(),
            ActionResult::AsyncPull(r) => r.name(),
            ActionResult::Rm(r) => r.name(),
            ActionResult::Check(r) => r.name(),
            ActionResult::Forward(r) => r.name(),
            ActionResult::MsrpAnswer(r) => r.name(),
            ActionResult::MsgToMsrp(r) => r.name(),
            ActionResult::SendMessage(r) => r.name(),
        }
    }
}

/// A reply to send to the current request (`reply` action).
#[derive(Debug, Clone, Copy)]
pub struct Reply<'a> {
    /// Status code, 100..=699.
    pub code: u16,
    /// Reason phrase, rendered.
    pub reason: &'a [u8],
    /// Extra headers, in config order, values rendered. The host adds Via, From, To (with a
    /// tag when the request had none), Call-ID, CSeq and Content-Length itself.
    pub headers: &'a [(&'a HeaderName, Cow<'a, [u8]>)],
}

/// A `set_header` / `remove_header` edit, applied by the host when it forwards the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderEdit {
    /// The header concerned.
    pub name: HeaderName,
    /// `Some`: remove every header of this name, then append `name: value`. `None`: remove
    /// every header of this name.
    pub value: Option<Vec<u8>>,
}

/// Where `forward` sends the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Target {
    /// Transport to use.
    pub transport: Transport,
    /// Destination address.
    pub addr: SocketAddr,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.transport, self.addr)
    }
}

impl FromStr for Target {
    type Err = String;
    /// `udp:10.0.0.1:5060`, `tcp:[2001:db8::1]:5060`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (t, a) = s
            .split_once(':')
            .ok_or_else(|| format!("`{s}` is not TRANSPORT:IP:PORT (like udp:10.0.0.1:5060)"))?;
        let transport = t.parse()?;
        let addr = a
            .parse()
            .map_err(|_| format!("`{a}` is not IP:PORT (like 10.0.0.1:5060 or [::1]:5060)"))?;
        Ok(Target { transport, addr })
    }
}

/// A `pull` request.
#[derive(Debug, Clone, Copy)]
pub struct PullRequest<'a> {
    /// Call-ID of the stored item.
    pub callid: &'a [u8],
    /// msgid it was pushed with.
    pub msgid: &'a [u8],
    /// The route to run on the pulled message, as if it had just been received from its
    /// original sender: call [`run`](super::run) with it and a host for that message.
    pub route: RouteId,
    /// Remove the item from the repository (before the route runs).
    pub remove: bool,
}

/// An `async_pull` request.
#[derive(Debug, Clone, Copy)]
pub struct AsyncPullRequest<'a> {
    /// Call-ID of the stored item.
    pub callid: &'a [u8],
    /// msgid it was pushed with.
    pub msgid: &'a [u8],
    /// Task-queue group to run the route in (an index into `Program::groups`).
    pub group: GroupId,
    /// The route to run on the pulled message.
    pub route: RouteId,
    /// Remove the item from the repository (when it is taken, before the route runs).
    pub remove: bool,
}

/// Gateway `msrp_answer` parameters, rendered: the INVITE's session is keyed by `key`, takes
/// `content_types` (space separated), and its SENDs become MESSAGEs with these From, To and
/// Request-URI.
#[derive(Debug, Clone, Copy)]
#[allow(missing_docs)]
pub struct MsrpAnswer<'a> {
    pub key: &'a [u8],
    pub content_types: &'a [u8],
    pub from: &'a [u8],
    pub to: &'a [u8],
    pub ruri: &'a [u8],
}

/// How `msg_to_msrp` answers the MESSAGE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReplyMode {
    /// 202 at once, whatever becomes of the message (failures run `gw:delivery_failed`).
    #[default]
    Async,
    /// The MESSAGE's transaction is held until the MSRP side's 200 (answered 200) or error
    /// (answered with the mapped code).
    Sync,
}

/// Gateway `msg_to_msrp` parameters, rendered.
#[derive(Debug, Clone, Copy)]
pub struct MsgToMsrp<'a> {
    /// The session's key.
    pub key: &'a [u8],
    /// The types offered for the MSRP session (space separated).
    pub content_types: &'a [u8],
    /// How the MESSAGE is answered.
    pub mode: ReplyMode,
}

/// `send_message` parameters, rendered: a MESSAGE this server originates.
#[derive(Debug, Clone, Copy)]
#[allow(missing_docs)]
pub struct SendMessage<'a> {
    pub ruri: &'a [u8],
    pub from: &'a [u8],
    pub to: &'a [u8],
    pub content_type: &'a [u8],
    pub body: &'a [u8],
}

/// A field of a gateway event (`$gw(name)` in templates), set while a `gw:*` event route runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GwField {
    /// The session key.
    Key,
    /// The URI of the side that started the session (the MESSAGE's From, the INVITE's From).
    FromUri,
    /// The URI it wanted to reach.
    ToUri,
    /// The Request-URI the session was set up towards.
    RUri,
    /// A SIP status code (`gw:setup_failed`, `gw:delivery_failed`).
    Code,
    /// Why, in words.
    Reason,
    /// Why a session ended (`bye`, `timeout`, `transport`...).
    Cause,
    /// The Call-ID of the MESSAGE that was not delivered.
    MsgId,
}

impl GwField {
    /// Every field with its name in `$gw(name)`.
    pub const ALL: &'static [(&'static str, GwField)] = &[
        ("key", GwField::Key),
        ("from_uri", GwField::FromUri),
        ("to_uri", GwField::ToUri),
        ("ruri", GwField::RUri),
        ("code", GwField::Code),
        ("reason", GwField::Reason),
        ("cause", GwField::Cause),
        ("msgid", GwField::MsgId),
    ];

    /// The field named `name`.
    pub fn from_name(name: &str) -> Option<GwField> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|&(_, f)| f)
    }
}

/// What a route acts on: the current message and everything its actions can touch.
///
/// One `Host` value stands for one message being routed. The runtime makes one per received
/// message (and one per pulled or expired repository item, with the item's original source and
/// transport), and calls [`run`](super::run). Methods returning [`Poll`] may answer
/// [`Poll::Pending`] when the answer comes from another shard; the run then suspends.
pub trait Host {
    /// The message being routed.
    fn message(&self) -> &Message<'_, '_>;

    /// Where the message came from (for a pulled or expired item: its original sender).
    fn source(&self) -> SocketAddr;

    /// The transport it came over.
    fn transport(&self) -> Transport;

    /// The shard running the route (`$shard`).
    fn shard(&self) -> u16;

    /// Appends a fresh unique id to `out` (`$uid`); see [`UidGen`](super::UidGen).
    fn write_uid(&mut self, out: &mut Vec<u8>);

    /// Sends a reply to the current request, to its source over its transport. Called only for
    /// requests.
    fn reply(&mut self, reply: &Reply<'_>);

    /// Sends the message (with `edits` applied, in order) to `to`.
    fn forward(&mut self, to: Target, edits: &[HeaderEdit]) -> Poll<ForwardResult>;

    /// Stores the current message, as received, under (its Call-ID, `msgid`) for `expire`
    /// (`None`: the repository's `[repo] expire`). On `retransmission`, `stored_msgid` gets the
    /// msgid the first copy was stored under.
    fn push(
        &mut self,
        msgid: &[u8],
        expire: Option<Duration>,
        stored_msgid: &mut Vec<u8>,
    ) -> Poll<PushResult>;

    /// Finds (and with `remove`, removes) an item and runs `req.route` on it.
    fn pull(&mut self, req: &PullRequest<'_>) -> Poll<PullResult>;

    /// Finds an item and queues `req.route` on it in task-queue group `req.group`.
    fn async_pull(&mut self, req: &AsyncPullRequest<'_>) -> Poll<AsyncPullResult>;

    /// Removes an item.
    fn rm(&mut self, callid: &[u8], msgid: &[u8]) -> Poll<RmResult>;

    /// Whether an item with this Call-ID (and this msgid, when given) is stored.
    fn check(&mut self, callid: &[u8], msgid: Option<&[u8]>) -> Poll<CheckResult>;

    /// Writes a line to the log (`log` action, and errors the interpreter meets at run time).
    fn log(&mut self, level: LogLevel, message: &[u8]);

    /// Gateway: answer an MSRP-side INVITE (the default, for hosts without a gateway,
    /// answers `error`).
    fn msrp_answer(&mut self, req: &MsrpAnswer<'_>) -> Poll<MsrpAnswerResult> {
        let _ = req;
        Poll::Ready(MsrpAnswerResult::Error)
    }

    /// Gateway: hand a SIP MESSAGE to an MSRP session (the default answers `error`).
    fn msg_to_msrp(&mut self, req: &MsgToMsrp<'_>) -> Poll<MsgToMsrpResult> {
        let _ = req;
        Poll::Ready(MsgToMsrpResult::Error)
    }

    /// Sends a MESSAGE of this server's own (the default answers `error`).
    fn send_message(&mut self, req: &SendMessage<'_>) -> Poll<SendMessageResult> {
        let _ = req;
        Poll::Ready(SendMessageResult::Error)
    }

    /// Appends a field of the gateway event being handled (nothing outside `gw:*` routes).
    fn event_field(&self, field: GwField, out: &mut Vec<u8>) {
        let _ = (field, out);
    }
}
