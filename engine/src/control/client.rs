//! The blocking JSON-RPC client behind `sipshard ctl`.

use serde_json::{json, Value};
use sipshard_core::shard::control::{Kind, Method};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Why a control call failed.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// The control endpoint could not be reached.
    #[error("cannot reach the control endpoint at {addr}: {source}")]
    Connect {
        /// Where we tried.
        addr: SocketAddr,
        /// Why it failed.
        source: std::io::Error,
    },
    /// Reading or writing failed.
    #[error("control connection failed: {0}")]
    Io(#[from] std::io::Error),
    /// The answer was not an HTTP response with JSON.
    #[error("bad answer from the control endpoint: {0}")]
    BadAnswer(String),
    /// The server answered with a JSON-RPC error.
    #[error("{method} failed: {message} (code {code})")]
    Rpc {
        /// The method called.
        method: String,
        /// JSON-RPC error code.
        code: i64,
        /// Error message.
        message: String,
    },
}

/// Calls `method` with `params` on the control endpoint at `addr` (sending `token` as a
/// bearer token, if any) and returns the result.
pub fn call(
    addr: SocketAddr,
    token: Option<&str>,
    method: &str,
    params: Value,
) -> Result<Value, CtlError> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|source| CtlError::Connect { addr, source })?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        s,
        "POST / HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut resp = httparse::Response::new(&mut headers);
    let head = match resp.parse(&raw) {
        Ok(httparse::Status::Complete(n)) => n,
        _ => return Err(CtlError::BadAnswer("incomplete HTTP response".into())),
    };
    if resp.code != Some(200) {
        return Err(CtlError::BadAnswer(format!(
            "HTTP {}: {}",
            resp.code.unwrap_or(0),
            String::from_utf8_lossy(&raw[head..])
        )));
    }
    let v: Value =
        serde_json::from_slice(&raw[head..]).map_err(|e| CtlError::BadAnswer(e.to_string()))?;
    if let Some(err) = v.get("error") {
        return Err(CtlError::Rpc {
            method: method.to_string(),
            code: err.get("code").and_then(Value::as_i64).unwrap_or(0),
            message: err
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        });
    }
    v.get("result")
        .cloned()
        .ok_or_else(|| CtlError::BadAnswer("no result".into()))
}

/// Turns `key=value` arguments into a JSON object, each value typed as `method` takes it (a
/// Call-ID of digits stays a string; `limit=abc` is an error here). For a method this binary
/// does not know (a newer server's), or a parameter it does not take (the server names it),
/// numbers and booleans are guessed.
pub fn params_from_args(args: &[String], method: Option<&Method>) -> Result<Value, String> {
    let mut m = serde_json::Map::new();
    for a in args {
        let (k, v) = a
            .split_once('=')
            .ok_or_else(|| format!("expected key=value, got {a:?}"))?;
        let kind = method.and_then(|m| m.params.iter().find(|p| p.name == k).map(|p| p.kind));
        let v = match kind {
            Some(Kind::Str) => json!(v),
            Some(Kind::UInt) => json!(v
                .parse::<u64>()
                .map_err(|_| format!("`{k}` must be {}, not {v:?}", Kind::UInt.word()))?),
            Some(Kind::Bool) => json!(v
                .parse::<bool>()
                .map_err(|_| format!("`{k}` must be {}, not {v:?}", Kind::Bool.word()))?),
            None => {
                if let Ok(n) = v.parse::<i64>() {
                    json!(n)
                } else if v == "true" || v == "false" {
                    json!(v == "true")
                } else {
                    json!(v)
                }
            }
        };
        m.insert(k.to_string(), v);
    }
    Ok(Value::Object(m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sipshard_core::shard::control::method;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn args_are_typed_as_the_method_takes_them() {
        let pull = method("repo.pull");
        let v = params_from_args(&args(&["callid=123", "msgid=7", "remove=false"]), pull).unwrap();
        assert_eq!(v, json!({"callid": "123", "msgid": "7", "remove": false}));
        let e = params_from_args(&args(&["remove=yes"]), pull).unwrap_err();
        assert!(e.contains("`remove` must be true or false"), "{e}");
        let e = params_from_args(&args(&["limit=abc"]), method("repo.list")).unwrap_err();
        assert!(e.contains("`limit` must be an unsigned integer"), "{e}");
        // Unknown to this binary: guessed.
        let v = params_from_args(&args(&["limit=10", "x=true", "c=a@b"]), None).unwrap();
        assert_eq!(v, json!({"limit": 10, "x": true, "c": "a@b"}));
        assert!(params_from_args(&args(&["nokey"]), None).is_err());
    }
}
