//! The route compiler: checks the `[route]` section and turns it into a [`Program`].
//!
//! Everything that can be decided at load is decided here, so that a bad config is refused at
//! startup with its line instead of misbehaving under traffic: route names resolve to indexes,
//! async groups to indexes, templates and regexes are parsed, header names classified, calls
//! checked for cycles and for nesting deeper than [`MAX_DEPTH`].

use super::host::{LogLevel, ReplyMode, Target, Transport};
use super::interp::MAX_DEPTH;
use super::program::{
    Action, Cidr, Entries, ForwardTo, GroupId, HeaderName, Match, Program, Route, RouteId, Rule,
    StatusRange, Step, VarId,
};
use super::raw::{self, RawAction, RawMatch, RawRoutes, StatusSpec, Str};
use super::template::{is_token, Template};
use sipshard_parser::sip::HeaderKind;
use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::time::Duration;
use toml::Spanned;

/// A load error in the `[route]` section: where (a byte range of the config text) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CompileError {
    pub span: Range<usize>,
    pub message: String,
}

/// Something legal but suspicious, reported at load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CompileWarning {
    pub span: Range<usize>,
    pub message: String,
}

type Result<T> = std::result::Result<T, CompileError>;

fn fail<T>(span: Range<usize>, message: impl Into<String>) -> Result<T> {
    Err(CompileError {
        span,
        message: message.into(),
    })
}

/// Entry routes run for every message of their kind.
pub(crate) const ENTRY_ROUTES: &[&str] = &["request", "response"];
/// Event routes run when something happens; they cannot be called.
pub(crate) const EVENT_ROUTES: &[&str] = &[
    "repo:expired",
    "repo:shutdown",
    "gw:setup_failed",
    "gw:session_ended",
    "gw:delivery_failed",
];

/// Action keys, for messages.
const ACTION_KEYS: &str = "reply, forward, push, pull, async_pull, rm, check, set, set_header, \
                           remove_header, route, drop, exit, return, log, msrp_answer, msg_to_msrp, \
                           send_message";

/// Headers the host writes itself and that routes may not set or remove.
const HOST_HEADERS: &[HeaderKind] = &[
    HeaderKind::Via,
    HeaderKind::CallId,
    HeaderKind::CSeq,
    HeaderKind::ContentLength,
];

/// Compiles `routes`. `groups` are the async task-queue groups (sorted); `src` is the config
/// text the spans point into (used to place template errors on their exact column).
pub(crate) fn compile(
    routes: &RawRoutes,
    groups: &[String],
    src: &str,
) -> Result<(Program, Vec<CompileWarning>)> {
    let mut names: HashMap<&str, (RouteId, Range<usize>)> = HashMap::new();
    for (i, (name, _)) in routes.0.iter().enumerate() {
        let n = name.get_ref().as_str();
        if n.contains(':') {
            if !EVENT_ROUTES.contains(&n) {
                return fail(
                    name.span(),
                    format!(
                        "unknown event route `{n}` (event routes: {}; other route names may not \
                         contain `:`)",
                        EVENT_ROUTES.join(", ")
                    ),
                );
            }
        } else if n.is_empty()
            || !n
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"_-.".contains(&c))
        {
            return fail(
                name.span(),
                format!("route name `{n}`: use letters, digits, `_`, `-` and `.`"),
            );
        }
        names.insert(n, (RouteId(i as u32), name.span()));
    }
    let Some(&(request, _)) = names.get("request") else {
        let span = routes.0.first().map(|(k, _)| k.span()).unwrap_or(0..0);
        return fail(
            span,
            "no `[route.request]`: the entry route for requests is required",
        );
    };
    let entries = Entries {
        request,
        response: names.get("response").map(|r| r.0),
        repo_expired: names.get("repo:expired").map(|r| r.0),
        repo_shutdown: names.get("repo:shutdown").map(|r| r.0),
        gw_setup_failed: names.get("gw:setup_failed").map(|r| r.0),
        gw_session_ended: names.get("gw:session_ended").map(|r| r.0),
        gw_delivery_failed: names.get("gw:delivery_failed").map(|r| r.0),
    };

    let mut c = Compiler {
        src,
        names: &names,
        all_names: routes.0.iter().map(|(k, _)| k.get_ref().as_str()).collect(),
        groups,
        vars: HashMap::new(),
        var_names: Vec::new(),
        reads: Vec::new(),
        written: HashSet::new(),
        calls: vec![Vec::new(); routes.0.len()],
        pulled_into: HashSet::new(),
        current: 0,
    };
    let mut compiled = Vec::with_capacity(routes.0.len());
    for (i, (name, route)) in routes.0.iter().enumerate() {
        c.current = i;
        let mut rules = Vec::new();
        for rule in route.get_ref().rules.get_ref() {
            rules.push(c.rule(rule)?);
        }
        compiled.push(Route {
            name: name.get_ref().as_str().into(),
            rules,
        });
    }

    for (v, at) in &c.reads {
        if !c.written.contains(v) {
            return fail(
                *at..*at + 1,
                format!(
                    "`$var({})` is read but never set by any `set` action",
                    c.var_names[v.0 as usize]
                ),
            );
        }
    }

    check_calls(routes, &c.calls)?;

    let mut warnings = Vec::new();
    let mut referenced: HashSet<usize> = c.pulled_into.clone();
    for edges in &c.calls {
        referenced.extend(edges.iter().map(|(to, _)| *to));
    }
    for (i, (name, _)) in routes.0.iter().enumerate() {
        let n = name.get_ref().as_str();
        if !ENTRY_ROUTES.contains(&n) && !EVENT_ROUTES.contains(&n) && !referenced.contains(&i) {
            warnings.push(CompileWarning {
                span: name.span(),
                message: format!("route `{n}` is never called, branched to or pulled into"),
            });
        }
    }

    Ok((
        Program {
            routes: compiled,
            entries,
            groups: groups.iter().map(|g| g.as_str().into()).collect(),
            vars: c.var_names,
        },
        warnings,
    ))
}

/// Refuses call cycles and call chains deeper than [`MAX_DEPTH`] routes.
fn check_calls(routes: &RawRoutes, calls: &[Vec<(usize, Range<usize>)>]) -> Result<()> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done(usize),
    }
    fn visit(
        r: usize,
        calls: &[Vec<(usize, Range<usize>)>],
        marks: &mut [Mark],
        path: &mut Vec<usize>,
        routes: &RawRoutes,
    ) -> Result<usize> {
        match marks[r] {
            Mark::Done(d) => return Ok(d),
            Mark::Open => unreachable!("cycles are caught at the edge"),
            Mark::New => {}
        }
        marks[r] = Mark::Open;
        path.push(r);
        let mut depth = 1;
        for (to, span) in &calls[r] {
            if marks[*to] == Mark::Open {
                let from = path.iter().position(|p| p == to).unwrap_or(0);
                let mut cycle: Vec<&str> = path[from..]
                    .iter()
                    .map(|i| routes.0[*i].0.get_ref().as_str())
                    .collect();
                cycle.push(routes.0[*to].0.get_ref().as_str());
                return fail(
                    span.clone(),
                    format!(
                        "route call cycle: {} (routes may not call themselves, directly or \
                         through others)",
                        cycle.join(" -> ")
                    ),
                );
            }
            depth = depth.max(1 + visit(*to, calls, marks, path, routes)?);
        }
        path.pop();
        marks[r] = Mark::Done(depth);
        if depth > MAX_DEPTH {
            return fail(
                routes.0[r].0.span(),
                format!(
                    "route `{}` nests {depth} routes deep through calls and branches (the limit \
                     is {MAX_DEPTH})",
                    routes.0[r].0.get_ref()
                ),
            );
        }
        Ok(depth)
    }
    let mut marks = vec![Mark::New; calls.len()];
    for r in 0..calls.len() {
        visit(r, calls, &mut marks, &mut Vec::new(), routes)?;
    }
    Ok(())
}

struct Compiler<'a> {
    src: &'a str,
    names: &'a HashMap<&'a str, (RouteId, Range<usize>)>,
    all_names: Vec<&'a str>,
    groups: &'a [String],
    vars: HashMap<String, VarId>,
    var_names: Vec<Box<str>>,
    /// `$var` reads: (variable, byte offset in the config text).
    reads: Vec<(VarId, usize)>,
    written: HashSet<VarId>,
    /// Call and branch edges per route: (callee, span of the reference).
    calls: Vec<Vec<(usize, Range<usize>)>>,
    pulled_into: HashSet<usize>,
    current: usize,
}

impl Compiler<'_> {
    fn var(&mut self, name: &str) -> VarId {
        if let Some(v) = self.vars.get(name) {
            return *v;
        }
        let v = VarId(self.var_names.len() as u32);
        self.vars.insert(name.to_owned(), v);
        self.var_names.push(name.into());
        v
    }

    /// Where offset `off` of the string value `s` lies in the config text: exact when the
    /// value is written without escapes, else the start of the string.
    fn offset_in(&self, s: &Str, off: usize) -> usize {
        let span = s.span();
        let text = self.src.get(span.clone()).unwrap_or("");
        let v = s.get_ref();
        let quoted = text.len() == v.len() + 2
            && (text.starts_with('"') || text.starts_with('\''))
            && &text[1..text.len() - 1] == v.as_str();
        if quoted {
            span.start + 1 + off
        } else {
            span.start
        }
    }

    fn template(&mut self, s: &Str) -> Result<Template> {
        let mut reads = Vec::new();
        let mut seen = Vec::new();
        let parsed = Template::parse(s.get_ref(), &mut |name, off| {
            seen.push(name.to_owned());
            reads.push(off);
            VarId(0)
        });
        match parsed {
            Err(e) => {
                let at = self.offset_in(s, e.offset);
                fail(at..at + 1, format!("bad template: {}", e.message))
            }
            Ok(_) => {
                // Parse again with real ids now that the names are known.
                let mut ids = Vec::new();
                for name in &seen {
                    ids.push(self.var(name));
                }
                let mut it = ids.iter();
                let t = Template::parse(s.get_ref(), &mut |_, _| *it.next().expect("same parse"))
                    .expect("parsed once already");
                for (id, off) in ids.iter().zip(reads) {
                    let at = self.offset_in(s, off);
                    self.reads.push((*id, at));
                }
                Ok(t)
            }
        }
    }

    fn route_ref(&mut self, s: &Str, what: &str) -> Result<RouteId> {
        let name = s.get_ref().as_str();
        match self.names.get(name) {
            None => {
                let mut known: Vec<&str> = self.all_names.clone();
                known.sort_unstable();
                fail(
                    s.span(),
                    format!(
                        "unknown route `{name}` in {what} (routes: {})",
                        known.join(", ")
                    ),
                )
            }
            Some(_) if EVENT_ROUTES.contains(&name) => fail(
                s.span(),
                format!("`{name}` is an event route: it runs on its event and cannot be a target of {what}"),
            ),
            Some((id, _)) => Ok(*id),
        }
    }

    /// A route reference that runs nested in the current run (call or branch).
    fn call_ref(&mut self, s: &Str, what: &str) -> Result<RouteId> {
        let id = self.route_ref(s, what)?;
        self.calls[self.current].push((id.index(), s.span()));
        Ok(id)
    }

    fn header_name(&self, name: &str, span: Range<usize>, for_edit: bool) -> Result<HeaderName> {
        if name.is_empty() || !name.bytes().all(is_token) {
            return fail(span, format!("`{name}` is not a header name"));
        }
        let h = HeaderName::new(name);
        if for_edit && HOST_HEADERS.contains(&h.kind()) {
            return fail(
                span,
                format!("`{name}` is written by sipshard itself and cannot be set or removed"),
            );
        }
        Ok(h)
    }

    fn rule(&mut self, rule: &Spanned<raw::RawRule>) -> Result<Rule> {
        let r = rule.get_ref();
        let cond = match &r.cond {
            Some(m) => self.cond(m.get_ref())?,
            None => Match::default(),
        };
        let mut actions = Vec::new();
        let mut ended: Option<&'static str> = None;
        for a in r.actions.get_ref() {
            if let Some(kind) = ended {
                return fail(
                    a.span(),
                    format!("this action never runs: `{kind}` before it ends the route"),
                );
            }
            let step = self.action(a)?;
            ended = match step.action {
                Action::Reply { .. } => Some("reply"),
                Action::Drop => Some("drop"),
                Action::Exit => Some("exit"),
                Action::Return => Some("return"),
                _ => None,
            };
            actions.push(step);
        }
        let cont = r.cont.as_ref().map(|c| *c.get_ref()).unwrap_or(false);
        Ok(Rule {
            cond,
            actions,
            cont,
        })
    }

    fn cond(&mut self, m: &RawMatch) -> Result<Match> {
        let mut out = Match::default();
        if let Some(methods) = &m.method {
            for name in &methods.get_ref().0 {
                if name.is_empty() || !name.bytes().all(is_token) {
                    return fail(methods.span(), format!("`{name}` is not a SIP method"));
                }
                out.methods.push(name.as_bytes().into());
            }
            if out.methods.is_empty() {
                return fail(methods.span(), "`method = []` never matches");
            }
        }
        if let Some(p) = &m.ruri_prefix {
            out.ruri_prefix = Some(p.get_ref().as_bytes().into());
        }
        if let Some(re) = &m.ruri_regex {
            out.ruri_regex = Some(regex(re)?);
        }
        for (list, dst) in [
            (&m.header_present, &mut out.present),
            (&m.header_absent, &mut out.absent),
        ] {
            if let Some(list) = list {
                for name in &list.get_ref().0 {
                    dst.push(self.header_name(name, list.span(), false)?);
                }
            }
        }
        if let Some(map) = &m.header_equals {
            for (k, v) in &map.0 {
                let h = self.header_name(k.get_ref(), k.span(), false)?;
                out.equals.push((h, v.get_ref().as_bytes().into()));
            }
        }
        if let Some(map) = &m.header_regex {
            for (k, v) in &map.0 {
                let h = self.header_name(k.get_ref(), k.span(), false)?;
                out.regex.push((h, regex(v)?));
            }
        }
        if let Some(list) = &m.source {
            for s in &list.get_ref().0 {
                out.sources.push(Cidr::parse(s).map_err(|e| CompileError {
                    span: list.span(),
                    message: e,
                })?);
            }
        }
        if let Some(list) = &m.transport {
            for s in &list.get_ref().0 {
                out.transports
                    .push(s.parse::<Transport>().map_err(|e| CompileError {
                        span: list.span(),
                        message: e,
                    })?);
            }
        }
        if let Some(list) = &m.status {
            for s in &list.get_ref().0 {
                out.status.push(status(s).map_err(|e| CompileError {
                    span: list.span(),
                    message: e,
                })?);
            }
        }
        Ok(out)
    }

    fn action(&mut self, a: &Spanned<RawAction>) -> Result<Step> {
        let span = a.span();
        let r = a.get_ref();
        let mut kinds: Vec<&str> = Vec::new();
        macro_rules! count {
            ($($f:ident => $n:literal),*) => { $( if r.$f.is_some() { kinds.push($n); } )* };
        }
        count!(reply => "reply", forward => "forward", push => "push", pull => "pull",
            async_pull => "async_pull", rm => "rm", check => "check", set => "set",
            set_header => "set_header", remove_header => "remove_header", route => "route",
            drop => "drop", exit => "exit", ret => "return", log => "log",
            msrp_answer => "msrp_answer", msg_to_msrp => "msg_to_msrp",
            send_message => "send_message");
        match kinds.len() {
            0 => return fail(span, format!("an action needs one of: {ACTION_KEYS}")),
            1 => {}
            _ => {
                return fail(
                    span,
                    format!(
                        "one action per table, found {}: write them as separate tables in \
                         `actions`, in the order they should run",
                        kinds
                            .iter()
                            .map(|k| format!("`{k}`"))
                            .collect::<Vec<_>>()
                            .join(" and ")
                    ),
                )
            }
        }
        let kind = kinds[0];
        let action = self.action_body(r, kind)?;
        let results = action.results();
        let mut on = vec![None; results.len()];
        for (result, target) in r.branches() {
            let Some(i) = results.iter().position(|n| *n == result) else {
                let msg = if results.is_empty() {
                    format!("`on_{result}`: `{kind}` has no results to branch on")
                } else {
                    format!(
                        "`on_{result}`: `{kind}` has no result `{result}` (its results: {})",
                        results.join(", ")
                    )
                };
                return fail(target.span(), msg);
            };
            on[i] = Some(self.call_ref(target, &format!("on_{result}"))?);
        }
        Ok(Step { action, on })
    }

    fn action_body(&mut self, r: &RawAction, kind: &str) -> Result<Action> {
        Ok(match kind {
            "reply" => {
                let rp = r.reply.as_ref().expect("counted").get_ref();
                let code = *rp.code.get_ref();
                if !(100..=699).contains(&code) {
                    return fail(
                        rp.code.span(),
                        format!("status code {code} is not 100..=699"),
                    );
                }
                let code = code as u16;
                let reason = match &rp.reason {
                    Some(s) => self.template(s)?,
                    None => {
                        Template::parse(crate::sip_write::reason_phrase(code), &mut |_, _| VarId(0))
                            .expect("plain text")
                    }
                };
                let mut headers = Vec::new();
                if let Some(map) = &rp.headers {
                    for (k, v) in &map.0 {
                        let h = self.header_name(k.get_ref(), k.span(), true)?;
                        if matches!(h.kind(), HeaderKind::From | HeaderKind::To) {
                            return fail(
                                k.span(),
                                format!("`{h}` of a reply is copied from the request"),
                            );
                        }
                        headers.push((h, self.template(v)?));
                    }
                }
                Action::Reply {
                    code,
                    reason,
                    headers,
                }
            }
            "forward" => {
                let f = r.forward.as_ref().expect("counted").get_ref();
                let t = self.template(&f.to)?;
                let to = match t.as_literal() {
                    Some(lit) => {
                        let s = String::from_utf8_lossy(lit);
                        ForwardTo::Fixed(s.parse::<Target>().map_err(|e| CompileError {
                            span: f.to.span(),
                            message: e,
                        })?)
                    }
                    None => ForwardTo::Template(t),
                };
                Action::Forward { to }
            }
            "push" => {
                let p = r.push.as_ref().expect("counted").get_ref();
                let expire = match &p.expire {
                    None => None,
                    Some(e) if *e.get_ref() >= 1 && *e.get_ref() <= i64::from(u32::MAX) => {
                        Some(Duration::from_secs(*e.get_ref() as u64))
                    }
                    Some(e) => return fail(e.span(), "expire is a number of seconds, at least 1"),
                };
                Action::Push {
                    msgid: self.template(&p.msgid)?,
                    expire,
                }
            }
            "pull" => {
                let p = r.pull.as_ref().expect("counted").get_ref();
                let route = self.route_ref(&p.route, "pull")?;
                self.pulled_into.insert(route.index());
                Action::Pull {
                    callid: self.template(&p.callid)?,
                    msgid: self.template(&p.msgid)?,
                    route,
                    remove: p.remove.unwrap_or(false),
                }
            }
            "async_pull" => {
                let p = r.async_pull.as_ref().expect("counted").get_ref();
                let route = self.route_ref(&p.route, "async_pull")?;
                self.pulled_into.insert(route.index());
                let group = match &p.group {
                    None => self.group("default").ok_or_else(|| CompileError {
                        span: p.route.span(),
                        message: "async_pull without `group` uses group `default`, which \
                                  `[server] task_queue_shares` does not define"
                            .to_owned(),
                    })?,
                    Some(g) => self.group(g.get_ref()).ok_or_else(|| CompileError {
                        span: g.span(),
                        message: format!(
                            "unknown async group `{}` (groups in [server] task_queue_shares: {})",
                            g.get_ref(),
                            self.groups.join(", ")
                        ),
                    })?,
                };
                Action::AsyncPull {
                    callid: self.template(&p.callid)?,
                    msgid: self.template(&p.msgid)?,
                    group,
                    route,
                    remove: p.remove.unwrap_or(false),
                }
            }
            "rm" => {
                let p = r.rm.as_ref().expect("counted").get_ref();
                Action::Rm {
                    callid: self.template(&p.callid)?,
                    msgid: self.template(&p.msgid)?,
                }
            }
            "check" => {
                let p = r.check.as_ref().expect("counted").get_ref();
                Action::Check {
                    callid: p.callid.as_ref().map(|s| self.template(s)).transpose()?,
                    msgid: p.msgid.as_ref().map(|s| self.template(s)).transpose()?,
                }
            }
            "set" => {
                let map = r.set.as_ref().expect("counted");
                if map.get_ref().0.is_empty() {
                    return fail(map.span(), "`set = {}` sets nothing");
                }
                let mut out = Vec::new();
                for (k, v) in &map.get_ref().0 {
                    let name = k.get_ref();
                    if name.is_empty()
                        || !name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
                    {
                        return fail(
                            k.span(),
                            format!("variable name `{name}`: use letters, digits and `_`"),
                        );
                    }
                    let t = self.template(v)?;
                    let id = self.var(name);
                    self.written.insert(id);
                    out.push((id, t));
                }
                Action::Set(out)
            }
            "set_header" => {
                let p = r.set_header.as_ref().expect("counted").get_ref();
                Action::SetHeader {
                    name: self.header_name(p.name.get_ref(), p.name.span(), true)?,
                    value: self.template(&p.value)?,
                }
            }
            "remove_header" => {
                let n = r.remove_header.as_ref().expect("counted");
                Action::RemoveHeader(self.header_name(n.get_ref(), n.span(), true)?)
            }
            "route" => Action::Call(self.call_ref(r.route.as_ref().expect("counted"), "route")?),
            "drop" | "exit" | "return" => {
                let flag = match kind {
                    "drop" => &r.drop,
                    "exit" => &r.exit,
                    _ => &r.ret,
                }
                .as_ref()
                .expect("counted");
                if !*flag.get_ref() {
                    return fail(
                        flag.span(),
                        format!("`{kind} = false` does nothing; remove the action"),
                    );
                }
                match kind {
                    "drop" => Action::Drop,
                    "exit" => Action::Exit,
                    _ => Action::Return,
                }
            }
            "log" => {
                let l = r.log.as_ref().expect("counted").get_ref();
                let level = match &l.level {
                    None => LogLevel::Info,
                    Some(s) => s.get_ref().parse().map_err(|e| CompileError {
                        span: s.span(),
                        message: e,
                    })?,
                };
                Action::Log {
                    level,
                    message: self.template(&l.message)?,
                }
            }
            "msrp_answer" => {
                let g = r.msrp_answer.as_ref().expect("counted").get_ref();
                Action::MsrpAnswer {
                    key: self.template(&g.key)?,
                    content_types: self.template(&g.content_types)?,
                    from: self.template(&g.from)?,
                    to: self.template(&g.to)?,
                    ruri: self.template(&g.ruri)?,
                }
            }
            "msg_to_msrp" => {
                let g = r.msg_to_msrp.as_ref().expect("counted").get_ref();
                let mode = match &g.mode {
                    None => ReplyMode::Async,
                    Some(m) => match m.get_ref().as_str() {
                        "async" => ReplyMode::Async,
                        "sync" => ReplyMode::Sync,
                        other => {
                            return fail(
                                m.span(),
                                format!("unknown mode `{other}` (expected async or sync)"),
                            )
                        }
                    },
                };
                Action::MsgToMsrp {
                    key: self.template(&g.key)?,
                    content_types: self.template(&g.content_types)?,
                    mode,
                }
            }
            "send_message" => {
                let g = r.send_message.as_ref().expect("counted").get_ref();
                let content_type = match &g.content_type {
                    Some(c) => self.template(c)?,
                    None => Template::parse("text/plain", &mut |_, _| unreachable!())
                        .expect("a literal"),
                };
                Action::SendMessage {
                    ruri: self.template(&g.ruri)?,
                    from: self.template(&g.from)?,
                    to: self.template(&g.to)?,
                    content_type,
                    body: self.template(&g.body)?,
                }
            }
            other => unreachable!("action kind {other} is counted but not compiled"),
        })
    }

    fn group(&self, name: &str) -> Option<GroupId> {
        self.groups
            .iter()
            .position(|g| g == name)
            .map(|i| GroupId(i as u32))
    }
}

fn regex(s: &Str) -> Result<regex::bytes::Regex> {
    regex::bytes::RegexBuilder::new(s.get_ref())
        .size_limit(1 << 20)
        .build()
        .map_err(|e| {
            let text = e.to_string();
            // regex's message is multi-line with a caret diagram; keep the last line.
            let reason = text
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("invalid")
                .trim()
                .trim_start_matches("error: ")
                .to_owned();
            CompileError {
                span: s.span(),
                message: format!("bad regex `{}`: {reason}", s.get_ref()),
            }
        })
}

fn status(s: &StatusSpec) -> std::result::Result<StatusRange, String> {
    match s {
        StatusSpec::Code(c) if (100..=699).contains(c) => Ok(StatusRange {
            lo: *c as u16,
            hi: *c as u16,
        }),
        StatusSpec::Code(c) => Err(format!("status {c} is not 100..=699")),
        StatusSpec::Class(c) => {
            let b = c.as_bytes();
            if b.len() == 3 && (b'1'..=b'6').contains(&b[0]) && b[1..].eq_ignore_ascii_case(b"xx") {
                let lo = u16::from(b[0] - b'0') * 100;
                Ok(StatusRange { lo, hi: lo + 99 })
            } else {
                Err(format!(
                    "status `{c}`: write a code (404) or a class (\"4xx\")"
                ))
            }
        }
    }
}
