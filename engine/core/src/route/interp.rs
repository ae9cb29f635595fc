//! The interpreter: runs a compiled [`Program`] on one message through a [`Host`].
//!
//! The call stack is an explicit fixed array of frames, not Rust recursion, so that a run can
//! stop at any action whose result comes from elsewhere ([`Poll::Pending`]) and be resumed later
//! with that result: the whole state is plain data.
//!
//! Semantics (also in docs/configuration.md):
//! - A route runs its rules in order; the first rule whose `match` holds runs its actions, then
//!   the route returns, unless that rule has `continue = true`, in which case matching goes on
//!   with the next rule.
//! - Actions run in order. `reply`, `drop` and `exit` end the whole run (every route on the
//!   stack); `return` ends the current route only.
//! - `route = "X"` and `on_<result> = "X"` call X; when X returns (end of its rules or
//!   `return`), the caller goes on with its next action.

use super::host::{
    ActionResult, AsyncPullRequest, HeaderEdit, Host, LogLevel, MsgToMsrp, MsrpAnswer, PullRequest,
    PushResult, Reply, SendMessage, Target,
};
use super::program::{Action, ForwardTo, Match, Program, RouteId, Step};
use super::template::Template;
use sipshard_parser::sip::StartLine;
use smallvec::SmallVec;
use std::fmt;
use std::task::Poll;

/// The most routes that may be active at once (the entry route and nested calls). The compiler
/// refuses programs that could go deeper, so the run-time check is a last guard.
pub const MAX_DEPTH: usize = 16;

/// How a run ended.
#[derive(Debug)]
pub enum Outcome {
    /// A `reply` action answered the request; the run ended there.
    Replied,
    /// A `drop` action ended the run: nothing more is sent for this message.
    Dropped,
    /// An `exit` action ended the run.
    Exited,
    /// The entry route returned without `reply`, `drop` or `exit`. Nothing more happens to the
    /// message (a request gets no answer unless it was forwarded or stored).
    Finished,
    /// An action is waiting for a result from elsewhere: call [`resume`] with it.
    Suspended(Suspended),
    /// The run stopped on an error (already logged through [`Host::log`]).
    Failed(RunError),
}

impl Outcome {
    /// Whether the run ended for good (anything but [`Outcome::Suspended`]).
    pub fn is_final(&self) -> bool {
        !matches!(self, Outcome::Suspended(_))
    }
}

/// Why a run failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    /// Calls nested deeper than [`MAX_DEPTH`] (the compiler prevents this).
    #[error("route `{route}` would nest deeper than {MAX_DEPTH} routes")]
    TooDeep {
        /// The route that could not be entered.
        route: String,
    },
    /// [`resume`] was given a result of another action than the one waiting.
    #[error("resumed with a `{got}` result but the suspended action is `{want}`")]
    WrongResult {
        /// The action waiting.
        want: &'static str,
        /// The result kind given.
        got: &'static str,
    },
}

const MATCHING: u32 = u32::MAX;

#[derive(Debug, Clone, Copy, Default)]
struct Frame {
    route: u32,
    rule: u32,
    /// Next action of `rule`, or [`MATCHING`] while the rule's match is still to evaluate.
    pc: u32,
}

#[derive(Debug)]
struct State {
    frames: [Frame; MAX_DEPTH],
    depth: usize,
    vars: Vec<Vec<u8>>,
    edits: Vec<HeaderEdit>,
}

/// A run waiting for an action's result; pass it to [`resume`]. Holds the call stack, the
/// per-message variables and header edits, nothing borrowed: it may be kept while the result
/// travels between shards (the host must still present the same message when resumed).
#[derive(Debug)]
pub struct Suspended {
    state: Box<State>,
    waiting: &'static str,
}

/// Runs route `route` of `program` on the message `host` presents.
#[must_use = "a suspended run must be resumed"]
pub fn run<H: Host + ?Sized>(program: &Program, route: RouteId, host: &mut H) -> Outcome {
    let mut st = State {
        frames: [Frame::default(); MAX_DEPTH],
        depth: 0,
        vars: vec![Vec::new(); program.vars.len()],
        edits: Vec::new(),
    };
    if let Err(e) = enter(program, &mut st, route, host) {
        return Outcome::Failed(e);
    }
    drive(program, st, host)
}

/// Continues a suspended run with the result of the action it waits for.
#[must_use = "a suspended run must be resumed"]
pub fn resume<H: Host + ?Sized>(
    program: &Program,
    suspended: Suspended,
    result: ActionResult,
    host: &mut H,
) -> Outcome {
    let mut st = *suspended.state;
    let step = current_step(program, &st);
    let want = action_name(&step.action);
    let got = result_kind(result);
    if want != got {
        let e = RunError::WrongResult { want, got };
        host.log(LogLevel::Error, e.to_string().as_bytes());
        return Outcome::Failed(e);
    }
    if let Err(e) = branch(program, &mut st, step, result.index(), host) {
        return Outcome::Failed(e);
    }
    drive(program, st, host)
}

/// The step the top frame ran last (its `pc` is already past it).
fn current_step<'p>(program: &'p Program, st: &State) -> &'p Step {
    let f = st.frames[st.depth - 1];
    &program.routes[f.route as usize].rules[f.rule as usize].actions[f.pc as usize - 1]
}

fn enter<H: Host + ?Sized>(
    program: &Program,
    st: &mut State,
    route: RouteId,
    host: &mut H,
) -> Result<(), RunError> {
    if st.depth == MAX_DEPTH {
        let e = RunError::TooDeep {
            route: program.route_name(route).to_owned(),
        };
        host.log(LogLevel::Error, e.to_string().as_bytes());
        return Err(e);
    }
    st.frames[st.depth] = Frame {
        route: route.0,
        rule: 0,
        pc: MATCHING,
    };
    st.depth += 1;
    Ok(())
}

fn branch<H: Host + ?Sized>(
    program: &Program,
    st: &mut State,
    step: &Step,
    result: usize,
    host: &mut H,
) -> Result<(), RunError> {
    match step.on.get(result).copied().flatten() {
        Some(route) => enter(program, st, route, host),
        None => Ok(()),
    }
}

fn drive<H: Host + ?Sized>(program: &Program, mut st: State, host: &mut H) -> Outcome {
    loop {
        if st.depth == 0 {
            return Outcome::Finished;
        }
        let f = st.depth - 1;
        let frame = st.frames[f];
        let route = &program.routes[frame.route as usize];
        if frame.pc == MATCHING {
            match route.rules.get(frame.rule as usize) {
                None => st.depth -= 1,
                Some(rule) if matches(&rule.cond, host) => st.frames[f].pc = 0,
                Some(_) => st.frames[f].rule += 1,
            }
            continue;
        }
        let rule = &route.rules[frame.rule as usize];
        let Some(step) = rule.actions.get(frame.pc as usize) else {
            if rule.cont {
                st.frames[f].rule += 1;
                st.frames[f].pc = MATCHING;
            } else {
                st.depth -= 1;
            }
            continue;
        };
        st.frames[f].pc += 1;
        let result = match exec(program, &mut st, step, host) {
            Exec::Next => continue,
            Exec::End(o) => return o,
            Exec::Result(Poll::Ready(r)) => r,
            Exec::Result(Poll::Pending) => {
                return Outcome::Suspended(Suspended {
                    waiting: action_name(&step.action),
                    state: Box::new(st),
                })
            }
        };
        if let Err(e) = branch(program, &mut st, step, result, host) {
            return Outcome::Failed(e);
        }
    }
}

enum Exec {
    /// Go on with the next action.
    Next,
    /// The run ends.
    End(Outcome),
    /// The action has a result (its index), to branch on.
    Result(Poll<usize>),
}

fn ready<R>(p: Poll<R>, index: impl Fn(R) -> usize) -> Exec {
    Exec::Result(p.map(index))
}

fn exec<H: Host + ?Sized>(program: &Program, st: &mut State, step: &Step, host: &mut H) -> Exec {
    let vars = &st.vars;
    match &step.action {
        Action::Reply {
            code,
            reason,
            headers,
        } => {
            if !host.message().is_request() {
                host.log(
                    LogLevel::Error,
                    b"`reply` on a response: responses are never answered; dropped",
                );
                return Exec::End(Outcome::Dropped);
            }
            // Borrowed where they can be, and on the stack for the usual few headers: a reply
            // is made for nearly every request.
            let r = reason.render_cow(host, vars);
            let hs: SmallVec<[_; 4]> = headers
                .iter()
                .map(|(name, value)| (name, value.render_cow(host, vars)))
                .collect();
            host.reply(&Reply {
                code: *code,
                reason: &r,
                headers: &hs,
            });
            Exec::End(Outcome::Replied)
        }
        Action::Forward { to } => {
            let target = match to {
                ForwardTo::Fixed(t) => *t,
                ForwardTo::Template(t) => {
                    let mut s = Vec::new();
                    t.render(host, vars, &mut s);
                    match std::str::from_utf8(&s)
                        .map_err(|_| "not UTF-8".to_owned())
                        .and_then(|s| s.parse::<Target>())
                    {
                        Ok(t) => t,
                        Err(e) => {
                            host.log(LogLevel::Warn, format!("forward: {e}").as_bytes());
                            return Exec::Result(Poll::Ready(
                                super::host::ForwardResult::Error.index(),
                            ));
                        }
                    }
                }
            };
            ready(host.forward(target, &st.edits), |r| r.index())
        }
        Action::Push { msgid, expire } => {
            let mut m = Vec::new();
            msgid.render(host, vars, &mut m);
            let mut stored = Vec::new();
            let r = host.push(&m, *expire, &mut stored);
            // A retransmission was stored under the msgid of its first copy, not the one just
            // made: where the msgid came from a variable, that variable now holds the stored one,
            // so the `on_retransmission` route answers what the first answer said.
            if let (Poll::Ready(PushResult::Retransmission), Some(v)) = (&r, msgid.as_var()) {
                st.vars[v.0 as usize] = stored;
            }
            ready(r, |r| r.index())
        }
        Action::Pull {
            callid,
            msgid,
            route,
            remove,
        } => {
            let (mut c, mut m) = (Vec::new(), Vec::new());
            callid.render(host, vars, &mut c);
            msgid.render(host, vars, &mut m);
            let req = PullRequest {
                callid: &c,
                msgid: &m,
                route: *route,
                remove: *remove,
            };
            ready(host.pull(&req), |r| r.index())
        }
        Action::AsyncPull {
            callid,
            msgid,
            group,
            route,
            remove,
        } => {
            let (mut c, mut m) = (Vec::new(), Vec::new());
            callid.render(host, vars, &mut c);
            msgid.render(host, vars, &mut m);
            let req = AsyncPullRequest {
                callid: &c,
                msgid: &m,
                group: *group,
                route: *route,
                remove: *remove,
            };
            ready(host.async_pull(&req), |r| r.index())
        }
        Action::Rm { callid, msgid } => {
            let (mut c, mut m) = (Vec::new(), Vec::new());
            callid.render(host, vars, &mut c);
            msgid.render(host, vars, &mut m);
            ready(host.rm(&c, &m), |r| r.index())
        }
        Action::Check { callid, msgid } => {
            let mut c = Vec::new();
            match callid {
                Some(t) => t.render(host, vars, &mut c),
                None => c.extend_from_slice(host.message().call_id().unwrap_or_default()),
            }
            let m = msgid.as_ref().map(|t| {
                let mut m = Vec::new();
                t.render(host, vars, &mut m);
                m
            });
            ready(host.check(&c, m.as_deref()), |r| r.index())
        }
        Action::Set(list) => {
            for (id, t) in list {
                let mut v = Vec::new();
                t.render(host, &st.vars, &mut v);
                st.vars[id.0 as usize] = v;
            }
            Exec::Next
        }
        Action::SetHeader { name, value } => {
            let mut v = Vec::new();
            value.render(host, vars, &mut v);
            st.edits.push(HeaderEdit {
                name: name.clone(),
                value: Some(v),
            });
            Exec::Next
        }
        Action::RemoveHeader(name) => {
            st.edits.push(HeaderEdit {
                name: name.clone(),
                value: None,
            });
            Exec::Next
        }
        Action::Call(route) => match enter(program, st, *route, host) {
            Ok(()) => Exec::Next,
            Err(e) => Exec::End(Outcome::Failed(e)),
        },
        Action::Drop => Exec::End(Outcome::Dropped),
        Action::Exit => Exec::End(Outcome::Exited),
        Action::Return => {
            st.depth -= 1;
            Exec::Next
        }
        Action::Log { level, message } => {
            let mut m = Vec::new();
            message.render(host, vars, &mut m);
            host.log(*level, &m);
            Exec::Next
        }
        Action::MsrpAnswer {
            key,
            content_types,
            from,
            to,
            ruri,
        } => {
            let b = render_all([key, content_types, from, to, ruri], host, vars);
            let req = MsrpAnswer {
                key: &b[0],
                content_types: &b[1],
                from: &b[2],
                to: &b[3],
                ruri: &b[4],
            };
            ready(host.msrp_answer(&req), |r| r.index())
        }
        Action::MsgToMsrp {
            key,
            content_types,
            mode,
        } => {
            let [k, c] = render_all([key, content_types], host, vars);
            let req = MsgToMsrp {
                key: &k,
                content_types: &c,
                mode: *mode,
            };
            ready(host.msg_to_msrp(&req), |r| r.index())
        }
        Action::SendMessage {
            ruri,
            from,
            to,
            content_type,
            body,
        } => {
            let b = render_all([ruri, from, to, content_type, body], host, vars);
            let req = SendMessage {
                ruri: &b[0],
                from: &b[1],
                to: &b[2],
                content_type: &b[3],
                body: &b[4],
            };
            ready(host.send_message(&req), |r| r.index())
        }
    }
}

/// Renders an action's templates, in order.
fn render_all<H: Host + ?Sized, const N: usize>(
    templates: [&Template; N],
    host: &mut H,
    vars: &[Vec<u8>],
) -> [Vec<u8>; N] {
    templates.map(|t| {
        let mut out = Vec::new();
        t.render(host, vars, &mut out);
        out
    })
}

fn matches<H: Host + ?Sized>(m: &Match, host: &H) -> bool {
    let msg = host.message();
    if !m.methods.is_empty() {
        let Some(method) = msg.method().or(msg.cseq().map(|c| c.method)) else {
            return false;
        };
        if !m.methods.iter().any(|x| **x == *method) {
            return false;
        }
    }
    if m.ruri_prefix.is_some() || m.ruri_regex.is_some() {
        let StartLine::Request { uri, .. } = msg.start_line() else {
            return false;
        };
        if let Some(p) = &m.ruri_prefix {
            if !uri.starts_with(p) {
                return false;
            }
        }
        if let Some(re) = &m.ruri_regex {
            if !re.is_match(uri) {
                return false;
            }
        }
    }
    let headers = msg.headers();
    if !m
        .present
        .iter()
        .all(|n| headers.iter().any(|h| n.matches(h)))
    {
        return false;
    }
    if m.absent
        .iter()
        .any(|n| headers.iter().any(|h| n.matches(h)))
    {
        return false;
    }
    if !m
        .equals
        .iter()
        .all(|(n, v)| headers.iter().any(|h| n.matches(h) && h.value == &**v))
    {
        return false;
    }
    if !m
        .regex
        .iter()
        .all(|(n, re)| headers.iter().any(|h| n.matches(h) && re.is_match(h.value)))
    {
        return false;
    }
    if !m.sources.is_empty() {
        let ip = host.source().ip();
        if !m.sources.iter().any(|c| c.contains(ip)) {
            return false;
        }
    }
    if !m.transports.is_empty() && !m.transports.contains(&host.transport()) {
        return false;
    }
    if !m.status.is_empty() {
        let Some(code) = msg.status_code() else {
            return false;
        };
        if !m.status.iter().any(|r| (r.lo..=r.hi).contains(&code)) {
            return false;
        }
    }
    true
}

fn action_name(a: &Action) -> &'static str {
    match a {
        Action::Reply { .. } => "reply",
        Action::Forward { .. } => "forward",
        Action::Push { .. } => "push",
        Action::Pull { .. } => "pull",
        Action::AsyncPull { .. } => "async_pull",
        Action::Rm { .. } => "rm",
        Action::Check { .. } => "check",
        Action::Set(_) => "set",
        Action::SetHeader { .. } => "set_header",
        Action::RemoveHeader(_) => "remove_header",
        Action::Call(_) => "route",
        Action::Drop => "drop",
        Action::Exit => "exit",
        Action::Return => "return",
        Action::Log { .. } => "log",
        Action::MsrpAnswer { .. } => "msrp_answer",
        Action::MsgToMsrp { .. } => "msg_to_msrp",
        Action::SendMessage { .. } => "send_message",
    }
}

fn result_kind(r: ActionResult) -> &'static str {
    match r {
        ActionResult::Push(_) => "push",
        ActionResult::Pull(_) => "pull",
        ActionResult::AsyncPull(_) => "async_pull",
        ActionResult::Rm(_) => "rm",
        ActionResult::Check(_) => "check",
        ActionResult::Forward(_) => "forward",
        ActionResult::MsrpAnswer(_) => "msrp_answer",
        ActionResult::MsgToMsrp(_) => "msg_to_msrp",
        ActionResult::SendMessage(_) => "send_message",
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Replied => f.write_str("replied"),
            Outcome::Dropped => f.write_str("dropped"),
            Outcome::Exited => f.write_str("exited"),
            Outcome::Finished => f.write_str("finished"),
            Outcome::Suspended(s) => write!(f, "suspended in `{}`", s.waiting),
            Outcome::Failed(e) => write!(f, "failed: {e}"),
        }
    }
}
