//! The control methods (JSON-RPC 2.0, `sipshard ctl`): each method in one entry of [`METHODS`]
//! with its help line, which shards it runs on, what it does on one shard and how the shards'
//! results merge. Adding a method is adding an entry here.
//!
//! A call is coordinated by [`ControlCall`], sans-IO like the rest of the core: the driver asks
//! it which shard to run on next, runs the method there (over the mesh when it is another
//! shard), feeds the result back, and takes the merged answer at the end.

use super::boundary::Out;
use super::latency::LatencyKind;
use super::ownership::Ownership;
use super::{Cx, ShardCore};
use serde_json::{json, Value};

/// A JSON-RPC error object.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    /// JSON-RPC error code (-32601 method not found, -32602 invalid params, -32000 server).
    pub code: i64,
    /// What went wrong, for the person who called.
    pub message: String,
}

impl RpcError {
    /// -32602: the params are wrong.
    pub fn invalid_params(msg: impl Into<String>) -> Self {
        RpcError {
            code: -32602,
            message: msg.into(),
        }
    }
    /// -32601: no such method.
    pub fn method_not_found(method: &str) -> Self {
        RpcError {
            code: -32601,
            message: format!("method not found: {method}"),
        }
    }
    /// -32000: the server could not do it.
    pub fn server(msg: impl Into<String>) -> Self {
        RpcError {
            code: -32000,
            message: msg.into(),
        }
    }
}

/// Which shards a method runs on.
#[derive(Debug, Clone, Copy)]
enum Scope {
    /// Once, on the shard serving the control endpoint (process-wide state).
    Once,
    /// On the shard owning the `callid` parameter.
    OwnerOfCallid,
    /// On the shard owning the gateway session `key`.
    OwnerOfKey,
    /// On every shard; the results merge with the function.
    EachShard(fn(Vec<Value>) -> Value),
    /// Page by page over every shard in turn (`cursor` = shard << 40 | cursor in that shard).
    Paged,
}

type Run = fn(&mut ShardCore, Cx<'_>, &Value, &mut Vec<Out>) -> Result<Value, RpcError>;

/// A control method.
pub struct Method {
    /// The JSON-RPC method name.
    pub name: &'static str,
    /// What it does, one line (for `sipshard ctl --help` and `system.listMethods`).
    pub help: &'static str,
    /// The parameters it takes; any other is refused.
    pub params: &'static [Param],
    scope: Scope,
    run: Run,
}

/// A parameter of a control method.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    /// Its name.
    pub name: &'static str,
    /// Its JSON type.
    pub kind: Kind,
    /// What it means when absent; `None`: it must be given.
    pub default: Option<&'static str>,
}

/// The JSON type of a parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A string.
    Str,
    /// An unsigned integer.
    UInt,
    /// `true` or `false`.
    Bool,
}

impl Kind {
    /// The word for it in help and errors.
    pub fn word(self) -> &'static str {
        match self {
            Kind::Str => "a string",
            Kind::UInt => "an unsigned integer",
            Kind::Bool => "true or false",
        }
    }

    fn holds(self, v: &Value) -> bool {
        match self {
            Kind::Str => v.is_string(),
            Kind::UInt => v.is_u64(),
            Kind::Bool => v.is_boolean(),
        }
    }
}

const fn required(name: &'static str, kind: Kind) -> Param {
    Param {
        name,
        kind,
        default: None,
    }
}

const fn optional(name: &'static str, kind: Kind, default: &'static str) -> Param {
    Param {
        name,
        kind,
        default: Some(default),
    }
}

const CALLID: Param = required("callid", Kind::Str);
const MSGID: Param = required("msgid", Kind::Str);
const CURSOR: Param = optional("cursor", Kind::UInt, "0");
const LIMIT_PAGE: Param = optional("limit", Kind::UInt, "100, at most 1000");

impl Method {
    /// Its parameters as `ctl` takes them: `callid=STRING [remove=BOOL (default true)]`.
    pub fn usage(&self) -> String {
        self.params
            .iter()
            .map(|p| {
                let v = match p.kind {
                    Kind::Str => "STRING",
                    Kind::UInt => "N",
                    Kind::Bool => "true|false",
                };
                match p.default {
                    None => format!("{}={v}", p.name),
                    Some(d) => format!("[{}={v} (default {d})]", p.name),
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Checks `params` against the method's: every one known, of its type, and none missing.
    pub fn check(&self, params: &Value) -> Result<(), RpcError> {
        let names = || {
            if self.params.is_empty() {
                "none".to_string()
            } else {
                self.params
                    .iter()
                    .map(|p| p.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        let given = params.as_object().cloned().unwrap_or_default();
        for (k, v) in &given {
            let Some(p) = self.params.iter().find(|p| p.name == k) else {
                return Err(RpcError::invalid_params(format!(
                    "unknown parameter `{k}` of {} (it takes: {})",
                    self.name,
                    names()
                )));
            };
            if !p.kind.holds(v) {
                return Err(RpcError::invalid_params(format!(
                    "parameter `{k}` of {} must be {}, not {v}",
                    self.name,
                    p.kind.word()
                )));
            }
        }
        if let Some(p) = self
            .params
            .iter()
            .find(|p| p.default.is_none() && !given.contains_key(p.name))
        {
            return Err(RpcError::invalid_params(format!(
                "missing parameter `{}` of {} ({})",
                p.name,
                self.name,
                p.kind.word()
            )));
        }
        Ok(())
    }
}

/// Every control method.
pub static METHODS: &[Method] = &[
    Method {
        name: "repo.stats",
        help: "repository counters and gauges, summed and per shard",
        params: &[],
        scope: Scope::EachShard(sum_counters),
        run: |core, _, _, _| Ok(core.repo.stats_json(core.own.me())),
    },
    Method {
        name: "shard.stats",
        help: "every counter of every shard",
        params: &[],
        scope: Scope::EachShard(|parts| json!({ "shards": parts })),
        run: |core, _, _, _| {
            let mut m = serde_json::Map::new();
            m.insert("shard".into(), json!(core.own.me()));
            for (name, _, v) in core.stats.counters() {
                m.insert(name.into(), json!(v));
            }
            m.insert(
                "parse_errors".into(),
                json!(core.stats.parse_errors_total()),
            );
            m.insert("pending_cross_shard".into(), json!(core.remote.len()));
            Ok(Value::Object(m))
        },
    },
    Method {
        name: "shard.latency",
        help: "the server's own latency distribution over every shard, as a .hgrm percentile table in ms (what sipshard-load report reads): processing time of every message (kind=all), or of one kind (message, invite, request, response, rejected, remote, msrp), or the gateway's delivery time (gw_sip_to_msrp, gw_msrp_to_sip); reset=true starts over after reading",
        params: &[
            optional("kind", Kind::Str, "all"),
            optional("reset", Kind::Bool, "false"),
        ],
        scope: Scope::EachShard(merge_latency),
        run: |core, _, params, _| {
            let kind = params.get("kind").and_then(Value::as_str).unwrap_or("all");
            let kinds: Vec<LatencyKind> = if kind == "all" {
                LatencyKind::ALL
                    .into_iter()
                    .filter(|k| k.is_processing())
                    .collect()
            } else {
                vec![LatencyKind::named(kind).ok_or_else(|| {
                    let names: Vec<&str> = LatencyKind::ALL.iter().map(|k| k.name()).collect();
                    RpcError::invalid_params(format!(
                        "unknown kind `{kind}` (kinds: all, {})",
                        names.join(", ")
                    ))
                })?]
            };
            let v = core.latency.to_json(&kinds);
            if params.get("reset").and_then(Value::as_bool) == Some(true) {
                core.latency.reset();
            }
            Ok(v)
        },
    },
    Method {
        name: "repo.list",
        help: "a page of stored items; the answer's `next` is the cursor of the next page",
        params: &[CURSOR, LIMIT_PAGE],
        scope: Scope::Paged,
        run: |core, cx, params, _| {
            let (cursor, limit) = page_params(params);
            Ok(core
                .repo
                .list_json(cursor, limit as usize, core.own.me(), cx.now_ms))
        },
    },
    Method {
        name: "repo.get",
        help: "one stored item with its message",
        params: &[CALLID, MSGID],
        scope: Scope::OwnerOfCallid,
        run: |core, cx, params, _| {
            let (c, m) = (str_param(params, "callid")?, str_param(params, "msgid")?);
            core.repo
                .get_json(c.as_bytes(), m.as_bytes(), core.own.me(), cx.now_ms)
                .ok_or_else(|| RpcError::server("not found"))
        },
    },
    Method {
        name: "repo.rm",
        help: "remove an item",
        params: &[CALLID, MSGID],
        scope: Scope::OwnerOfCallid,
        run: |core, _, params, _| {
            let (c, m) = (str_param(params, "callid")?, str_param(params, "msgid")?);
            Ok(json!({ "result": core.repo.rm(c.as_bytes(), m.as_bytes()).name() }))
        },
    },
    Method {
        name: "repo.pull",
        help: "run a request route on an item as if its message had just arrived, and remove it unless remove=false",
        params: &[CALLID, MSGID, required("route", Kind::Str), optional("remove", Kind::Bool, "true")],
        scope: Scope::OwnerOfCallid,
        run: |core, cx, params, outs| {
            let (c, m) = (str_param(params, "callid")?, str_param(params, "msgid")?);
            let name = str_param(params, "route")?;
            let route = cx
                .loaded
                .program
                .pull_target(name)
                .map_err(RpcError::invalid_params)?;
            let remove = params
                .get("remove")
                .and_then(Value::as_bool)
                .unwrap_or(true);
            let r = core.pull_and_run(cx, c.as_bytes(), m.as_bytes(), route, remove, outs);
            Ok(json!({ "result": r.name() }))
        },
    },
    Method {
        name: "gw.list_sessions",
        help: "gateway sessions: key, from, to, ruri, state, ages, queue, MSRP session id, connection, owner shard",
        params: &[optional("limit", Kind::UInt, "1000 per shard")],
        scope: Scope::EachShard(|parts| {
            let sessions: Vec<Value> = parts
                .into_iter()
                .flat_map(|p| match p {
                    Value::Array(a) => a,
                    _ => Vec::new(),
                })
                .collect();
            json!({ "count": sessions.len(), "sessions": sessions })
        }),
        run: |core, cx, params, _| {
            let limit = params
                .get("limit")
                .and_then(Value::as_u64)
                .unwrap_or(1000)
                .clamp(1, 100_000) as usize;
            Ok(Value::Array(
                core.gateway
                    .as_ref()
                    .map(|g| g.list(cx.now_ms, limit))
                    .unwrap_or_default(),
            ))
        },
    },
    Method {
        name: "gw.end_session",
        help: "end a gateway session (BYE, its queue reported)",
        params: &[required("key", Kind::Str)],
        scope: Scope::OwnerOfKey,
        run: |core, cx, params, outs| {
            let key = str_param(params, "key")?.as_bytes().to_vec();
            let mut ended = false;
            core.with_gw(cx, outs, |gw, io| ended = gw.end_session(&key, io));
            Ok(json!({ "ended": ended }))
        },
    },
    Method {
        name: "gw.stats",
        help: "gateway sessions, queues and transactions, summed and per shard",
        params: &[],
        scope: Scope::EachShard(sum_counters),
        run: |core, _, _, _| {
            let mut v = core
                .gateway
                .as_ref()
                .map(|g| g.stats_json())
                .unwrap_or_else(|| json!({ "sessions": 0 }));
            v["shard"] = json!(core.own.me());
            for (name, _, value) in core.stats.counters() {
                if name.starts_with("gw_") || name.starts_with("msrp_") {
                    v[name] = json!(value);
                }
            }
            Ok(v)
        },
    },
    Method {
        name: "config.show",
        help: "the effective configuration, as TOML",
        params: &[],
        scope: Scope::Once,
        run: |_, cx, _, _| {
            Ok(json!({ "config": cx.loaded.config.to_toml_string(), "generation": cx.generation }))
        },
    },
    Method {
        name: "config.reload",
        help: "load the config file again (routes and [repo] expire apply at once)",
        params: &[],
        scope: Scope::Once,
        run: |core, _, _, _| match core.shared.reload() {
            Ok(warnings) => Ok(json!({
                "reloaded": true,
                "generation": core.shared.generation(),
                "warnings": warnings,
            })),
            Err(e) => Err(RpcError::server(format!("reload refused: {e}"))),
        },
    },
    Method {
        name: "system.listMethods",
        help: "every method with its parameters and what it does",
        params: &[],
        scope: Scope::Once,
        run: |_, _, _, _| {
            Ok(Value::Array(
                METHODS
                    .iter()
                    .map(|m| json!({ "name": m.name, "params": m.usage(), "help": m.help }))
                    .collect(),
            ))
        },
    },
    Method {
        name: "core.version",
        help: "the server's name and version",
        params: &[],
        scope: Scope::Once,
        run: |_, _, _, _| {
            Ok(json!({
                "name": "sipshard",
                "version": env!("CARGO_PKG_VERSION"),
            }))
        },
    },
    Method {
        name: "core.uptime",
        help: "seconds since start, and the number of shards",
        params: &[],
        scope: Scope::Once,
        run: |core, _, _, _| {
            Ok(json!({
                "uptime_s": core.shared.uptime().as_secs_f64(),
                "shards": core.own.shards(),
            }))
        },
    },
];

/// The method called `name`.
pub fn method(name: &str) -> Option<&'static Method> {
    METHODS.iter().find(|m| m.name == name)
}

fn str_param<'v>(params: &'v Value, k: &str) -> Result<&'v str, RpcError> {
    params
        .get(k)
        .and_then(Value::as_str)
        .ok_or_else(|| RpcError::invalid_params(format!("missing string parameter `{k}`")))
}

/// `cursor` and `limit` of a page request.
fn page_params(params: &Value) -> (u64, u64) {
    let cursor = params.get("cursor").and_then(Value::as_u64).unwrap_or(0);
    let limit = params
        .get("limit")
        .and_then(Value::as_u64)
        .unwrap_or(100)
        .clamp(1, 1000);
    (cursor, limit)
}

/// Merges the shards' `shard.latency` lists into one distribution, rendered as `.hgrm` text
/// in milliseconds (values are recorded in microseconds).
fn merge_latency(parts: Vec<Value>) -> Value {
    let mut kinds: Vec<String> = Vec::new();
    let mut lists: Vec<&Value> = Vec::new();
    for p in &parts {
        for (k, v) in p.as_object().into_iter().flatten() {
            if !kinds.contains(k) {
                kinds.push(k.clone());
            }
            lists.push(v);
        }
    }
    let h = super::latency::merge(&lists);
    let mut text = Vec::new();
    let _ = crate::hgrm::write_hgrm(&h, 1000.0, &mut text);
    json!({
        "kinds": kinds,
        "count": h.len(),
        "hgrm": String::from_utf8_lossy(&text),
    })
}

/// Sums every numeric field of the shards' results (but `shard`) and lists the parts.
fn sum_counters(parts: Vec<Value>) -> Value {
    let mut total = serde_json::Map::new();
    for p in &parts {
        if let Value::Object(o) = p {
            for (k, v) in o {
                if k == "shard" {
                    continue;
                }
                let sum =
                    total.get(k).and_then(Value::as_u64).unwrap_or(0) + v.as_u64().unwrap_or(0);
                total.insert(k.clone(), json!(sum));
            }
        }
    }
    total.insert("shards".into(), Value::Array(parts));
    Value::Object(total)
}

impl ShardCore {
    /// Runs control method `name` on this shard's state; what it sends goes to `outs`.
    pub fn on_control(
        &mut self,
        now_ms: u64,
        name: &str,
        params: &Value,
        outs: &mut Vec<Out>,
    ) -> Result<Value, RpcError> {
        let m = method(name).ok_or_else(|| RpcError::method_not_found(name))?;
        self.with_config(now_ms, |core, cx| {
            let r = (m.run)(core, cx, params, outs);
            core.drain_effects(cx, outs);
            r
        })
    }
}

/// One control call over the shards: which shard runs it next, and the merged result.
#[derive(Debug)]
pub struct ControlCall {
    method: &'static str,
    shards: usize,
    state: CallState,
}

#[derive(Debug)]
enum CallState {
    /// One shard runs it; the result once it came.
    Single {
        shard: usize,
        params: Value,
        result: Option<Result<Value, RpcError>>,
    },
    /// Every shard in turn; what they answered so far.
    Each {
        params: Value,
        merge: fn(Vec<Value>) -> Value,
        parts: Vec<Value>,
        error: Option<RpcError>,
    },
    /// Pages of one shard after another until `limit` items are gathered.
    Paged {
        shard: usize,
        cursor: u64,
        limit: u64,
        items: Vec<Value>,
        next: Option<u64>,
        error: Option<RpcError>,
    },
}

impl ControlCall {
    /// Plans method `name` with `params` for the shards `own` knows, coordinated from shard
    /// `own.me()`.
    pub fn new(name: &str, params: Value, own: &Ownership) -> Result<ControlCall, RpcError> {
        let m = method(name).ok_or_else(|| RpcError::method_not_found(name))?;
        m.check(&params)?;
        let state = match m.scope {
            Scope::Once => CallState::Single {
                shard: own.me(),
                params,
                result: None,
            },
            Scope::OwnerOfCallid => {
                let callid = str_param(&params, "callid")?;
                CallState::Single {
                    shard: own.of_callid(callid.as_bytes()),
                    params,
                    result: None,
                }
            }
            Scope::OwnerOfKey => {
                let key = str_param(&params, "key")?;
                CallState::Single {
                    shard: own.of_key(key.as_bytes()),
                    params,
                    result: None,
                }
            }
            Scope::EachShard(merge) => CallState::Each {
                params,
                merge,
                parts: Vec::with_capacity(own.shards()),
                error: None,
            },
            Scope::Paged => {
                let (cursor, limit) = page_params(&params);
                CallState::Paged {
                    shard: (cursor >> 40) as usize,
                    cursor: cursor & ((1 << 40) - 1),
                    limit,
                    items: Vec::new(),
                    next: None,
                    error: None,
                }
            }
        };
        Ok(ControlCall {
            method: m.name,
            shards: own.shards(),
            state,
        })
    }

    /// The method's name.
    pub fn method(&self) -> &'static str {
        self.method
    }

    /// The shard to run the method on next, and the params to run it with; `None` once the
    /// result is complete.
    pub fn next(&self) -> Option<(usize, Value)> {
        match &self.state {
            CallState::Single {
                shard,
                params,
                result: None,
            } => Some((*shard, params.clone())),
            CallState::Single { .. } => None,
            CallState::Each {
                params,
                parts,
                error: None,
                ..
            } if parts.len() < self.shards => Some((parts.len(), params.clone())),
            CallState::Each { .. } => None,
            CallState::Paged {
                shard,
                cursor,
                limit,
                items,
                error: None,
                ..
            } if *shard < self.shards && (items.len() as u64) < *limit => Some((
                *shard,
                json!({ "cursor": cursor, "limit": limit - items.len() as u64 }),
            )),
            CallState::Paged { .. } => None,
        }
    }

    /// Takes the result of the run [`ControlCall::next`] asked for.
    pub fn on_result(&mut self, r: Result<Value, RpcError>) {
        let shards = self.shards;
        match &mut self.state {
            CallState::Single { result, .. } => *result = Some(r),
            CallState::Each { parts, error, .. } => match r {
                Ok(v) => parts.push(v),
                Err(e) => *error = Some(e),
            },
            CallState::Paged {
                shard,
                cursor,
                items,
                next,
                error,
                ..
            } => {
                let page = match r {
                    Ok(p) => p,
                    Err(e) => {
                        *error = Some(e);
                        return;
                    }
                };
                if let Some(Value::Array(a)) = page.get("items") {
                    items.extend(a.iter().cloned());
                }
                match page.get("next").and_then(Value::as_u64) {
                    Some(c) => {
                        *cursor = c;
                        *next = Some(((*shard as u64) << 40) | c);
                    }
                    None => {
                        *shard += 1;
                        *cursor = 0;
                        *next = (*shard < shards).then_some((*shard as u64) << 40);
                    }
                }
            }
        }
    }

    /// The call's answer.
    pub fn finish(self) -> Result<Value, RpcError> {
        match self.state {
            CallState::Single { result, .. } => {
                result.unwrap_or_else(|| Err(RpcError::server("no shard answered")))
            }
            CallState::Each {
                merge,
                parts,
                error,
                ..
            } => match error {
                Some(e) => Err(e),
                None => Ok(merge(parts)),
            },
            CallState::Paged {
                items, next, error, ..
            } => match error {
                Some(e) => Err(e),
                None => Ok(json!({ "items": items, "next": next })),
            },
        }
    }
}

/// The methods and their help lines, for `sipshard ctl --help`.
pub fn help() -> String {
    METHODS
        .iter()
        .map(|m| {
            let usage = m.usage();
            let sep = if usage.is_empty() { "" } else { " " };
            format!("  {}{sep}{usage}\n      {}\n", m.name, m.help)
        })
        .collect()
}
