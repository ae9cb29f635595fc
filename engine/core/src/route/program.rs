//! The compiled route program: routes by index, templates pre-parsed, header names classified,
//! regexes compiled. Built once at load by the compiler and shared read-only by every shard.

use super::host::{LogLevel, ReplyMode, Target, Transport};
use super::template::Template;
use sipshard_parser::sip::{Header, HeaderKind};
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

/// A route, by index into the program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteId(pub(crate) u32);

impl RouteId {
    /// The index of the route in [`Program::route_names`].
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// An async task-queue group, by index into [`Program::groups`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupId(pub(crate) u32);

impl GroupId {
    /// The index of the group in [`Program::groups`].
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// A per-message variable (`$var(name)`), by index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct VarId(pub(crate) u32);

/// A header name, classified once at load so that lookups compare a kind, not a string (for
/// the headers the parser knows; others compare names case-insensitively).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HeaderName {
    name: Box<str>,
    kind: HeaderKind,
}

impl AsRef<str> for HeaderName {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl HeaderName {
    /// Classifies `name` (long or compact form, any case).
    pub fn new(name: &str) -> HeaderName {
        HeaderName {
            kind: HeaderKind::from_name(name.as_bytes()),
            name: name.into(),
        }
    }

    /// The name as written in the config.
    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// Its kind ([`HeaderKind::Other`] for headers the parser has no name for).
    pub fn kind(&self) -> HeaderKind {
        self.kind
    }

    /// Whether header line `h` has this name (long or compact form, any case).
    #[inline]
    pub fn matches(&self, h: &Header<'_>) -> bool {
        if self.kind == HeaderKind::Other {
            h.kind == HeaderKind::Other && h.name.eq_ignore_ascii_case(self.name.as_bytes())
        } else {
            h.kind == self.kind
        }
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// The gateway's events, each with its event route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GwEvent {
    /// `gw:setup_failed`: a session could not be set up.
    SetupFailed,
    /// `gw:session_ended`: a session ended.
    SessionEnded,
    /// `gw:delivery_failed`: a MESSAGE answered at once (`async`) was not delivered.
    DeliveryFailed,
}

/// Entry and event routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entries {
    pub request: RouteId,
    pub response: Option<RouteId>,
    pub repo_expired: Option<RouteId>,
    pub repo_shutdown: Option<RouteId>,
    pub gw_setup_failed: Option<RouteId>,
    pub gw_session_ended: Option<RouteId>,
    pub gw_delivery_failed: Option<RouteId>,
}

/// A compiled route program. Cheap to share (`Send + Sync`, no interior mutability).
#[derive(Debug)]
pub struct Program {
    pub(crate) routes: Vec<Route>,
    pub(crate) entries: Entries,
    pub(crate) groups: Vec<Box<str>>,
    pub(crate) vars: Vec<Box<str>>,
}

impl Program {
    /// The `request` entry route: every received request starts here.
    pub fn request(&self) -> RouteId {
        self.entries.request
    }

    /// The `response` entry route, when configured: every received response starts here.
    /// Without it, responses are dropped.
    pub fn response(&self) -> Option<RouteId> {
        self.entries.response
    }

    /// The `repo:expired` event route, when configured: runs with an expired repository item
    /// as the message (and its original source and transport).
    pub fn repo_expired(&self) -> Option<RouteId> {
        self.entries.repo_expired
    }

    /// The `repo:shutdown` event route, when configured: runs with each item still parked
    /// when the server stops.
    pub fn repo_shutdown(&self) -> Option<RouteId> {
        self.entries.repo_shutdown
    }

    /// The gateway's event routes: `gw:setup_failed`, `gw:session_ended`,
    /// `gw:delivery_failed`.
    pub fn gw_event(&self, event: GwEvent) -> Option<RouteId> {
        match event {
            GwEvent::SetupFailed => self.entries.gw_setup_failed,
            GwEvent::SessionEnded => self.entries.gw_session_ended,
            GwEvent::DeliveryFailed => self.entries.gw_delivery_failed,
        }
    }

    /// Whether any route uses a gateway action (`msrp_answer`, `msg_to_msrp`,
    /// `send_message`): the gateway (its MSRP listener, SIP transactions for the requests it
    /// takes) runs only then.
    pub fn uses_gateway(&self) -> bool {
        self.routes.iter().any(|r| {
            r.rules.iter().any(|rule| {
                rule.actions.iter().any(|a| {
                    matches!(
                        a.action,
                        Action::MsrpAnswer { .. }
                            | Action::MsgToMsrp { .. }
                            | Action::SendMessage { .. }
                    )
                })
            })
        })
    }

    /// A route by name (for the control interface and tests; never needed at run time).
    pub fn route_id(&self, name: &str) -> Option<RouteId> {
        self.routes
            .iter()
            .position(|r| &*r.name == name)
            .map(|i| RouteId(i as u32))
    }

    /// The route a pull from outside (`ctl repo.pull`) may run: a named route, not an event
    /// route (those run on their event only). The error names what is wrong.
    pub fn pull_target(&self, name: &str) -> Result<RouteId, String> {
        if super::compile::EVENT_ROUTES.contains(&name) {
            return Err(format!(
                "`{name}` is an event route: it runs on its event and cannot be pulled into"
            ));
        }
        self.route_id(name).ok_or_else(|| {
            let mut known: Vec<&str> = self.route_names().collect();
            known.retain(|n| !super::compile::EVENT_ROUTES.contains(n));
            known.sort_unstable();
            format!("unknown route `{name}` (routes: {})", known.join(", "))
        })
    }

    /// A route's name.
    pub fn route_name(&self, id: RouteId) -> &str {
        &self.routes[id.index()].name
    }

    /// Every route name, by [`RouteId::index`].
    pub fn route_names(&self) -> impl Iterator<Item = &str> {
        self.routes.iter().map(|r| &*r.name)
    }

    /// The async task-queue groups, by [`GroupId::index`]: the keys of
    /// `[server] task_queue_shares`, in sorted order.
    pub fn groups(&self) -> &[Box<str>] {
        &self.groups
    }

    /// A group's name.
    pub fn group_name(&self, id: GroupId) -> &str {
        &self.groups[id.index()]
    }

    /// How many distinct `$var(...)` names the program uses.
    pub fn var_count(&self) -> usize {
        self.vars.len()
    }
}

#[derive(Debug)]
pub(crate) struct Route {
    pub name: Box<str>,
    pub rules: Vec<Rule>,
}

#[derive(Debug)]
pub(crate) struct Rule {
    pub cond: Match,
    pub actions: Vec<Step>,
    /// `continue = true`: after this rule's actions, go on with the next rule.
    pub cont: bool,
}

/// The conditions of a rule; all must hold. Empty = always.
#[derive(Debug, Default)]
pub(crate) struct Match {
    pub methods: Vec<Box<[u8]>>,
    pub ruri_prefix: Option<Box<[u8]>>,
    pub ruri_regex: Option<regex::bytes::Regex>,
    pub present: Vec<HeaderName>,
    pub absent: Vec<HeaderName>,
    pub equals: Vec<(HeaderName, Box<[u8]>)>,
    pub regex: Vec<(HeaderName, regex::bytes::Regex)>,
    pub sources: Vec<Cidr>,
    pub transports: Vec<Transport>,
    pub status: Vec<StatusRange>,
}

/// An address block: `10.0.0.0/8`, `::1` (a single address is a full-length prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a
            .trim()
            .parse()
            .map_err(|_| format!("`{s}` is not an IP address or CIDR block"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            None => max,
            Some(p) => match p.trim().parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => return Err(format!("`{s}`: prefix length must be 0..={max}")),
            },
        };
        Ok(Cidr { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 peer seen on a dual-stack socket arrives as ::ffff:a.b.c.d.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_eq(
                u128::from(u32::from(net)),
                u128::from(u32::from(ip)),
                32,
                self.prefix,
            ),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(u128::from(net), u128::from(ip), 128, self.prefix)
            }
            _ => false,
        }
    }
}

fn prefix_eq(a: u128, b: u128, bits: u32, prefix: u8) -> bool {
    let shift = bits - u32::from(prefix);
    if shift >= bits {
        return true;
    }
    (a >> shift) == (b >> shift)
}

/// `status = [200, "4xx"]`: an inclusive code range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StatusRange {
    pub lo: u16,
    pub hi: u16,
}

/// An action with its `on_<result>` branches (indexed by the result's `index()`).
#[derive(Debug)]
pub(crate) struct Step {
    pub action: Action,
    pub on: Vec<Option<RouteId>>,
}

#[derive(Debug)]
pub(crate) enum ForwardTo {
    /// Parsed at load.
    Fixed(Target),
    /// Rendered and parsed at run time; a bad result gives `error`.
    Template(Template),
}

#[derive(Debug)]
pub(crate) enum Action {
    Reply {
        code: u16,
        reason: Template,
        headers: Vec<(HeaderName, Template)>,
    },
    Forward {
        to: ForwardTo,
    },
    Push {
        msgid: Template,
        expire: Option<Duration>,
    },
    Pull {
        callid: Template,
        msgid: Template,
        route: RouteId,
        remove: bool,
    },
    AsyncPull {
        callid: Template,
        msgid: Template,
        group: GroupId,
        route: RouteId,
        remove: bool,
    },
    Rm {
        callid: Template,
        msgid: Template,
    },
    Check {
        /// `None`: the current message's Call-ID.
        callid: Option<Template>,
        msgid: Option<Template>,
    },
    Set(Vec<(VarId, Template)>),
    SetHeader {
        name: HeaderName,
        value: Template,
    },
    RemoveHeader(HeaderName),
    Call(RouteId),
    Drop,
    Exit,
    Return,
    Log {
        level: LogLevel,
        message: Template,
    },
    MsrpAnswer {
        key: Template,
        content_types: Template,
        from: Template,
        to: Template,
        ruri: Template,
    },
    MsgToMsrp {
        key: Template,
        content_types: Template,
        mode: ReplyMode,
    },
    SendMessage {
        ruri: Template,
        from: Template,
        to: Template,
        content_type: Template,
        body: Template,
    },
}

impl Action {
    /// The result names of this action, in `index()` order (empty: no results).
    pub fn results(&self) -> &'static [&'static str] {
        use super::host::*;
        match self {
            Action::Push { .. } => PushResult::NAMES,
            Action::Pull { .. } => PullResult::NAMES,
            Action::AsyncPull { .. } => AsyncPullResult::NAMES,
            Action::Rm { .. } => RmResult::NAMES,
            Action::Check { .. } => CheckResult::NAMES,
            Action::Forward { .. } => ForwardResult::NAMES,
            Action::MsrpAnswer { .. } => MsrpAnswerResult::NAMES,
            Action::MsgToMsrp { .. } => MsgToMsrpResult::NAMES,
            Action::SendMessage { .. } => SendMessageResult::NAMES,
            _ => &[],
        }
    }
}
