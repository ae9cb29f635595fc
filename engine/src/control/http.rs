//! The HTTP side of the control plane: one request per connection, `POST /` for JSON-RPC 2.0,
//! `GET /metrics` for Prometheus text.

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use serde_json::{json, Value};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

/// Largest request accepted (headers + body).
const MAX_REQUEST: usize = 1 << 20;

pub use sipshard_core::shard::RpcError;

/// A boxed local future, as the handler returns.
pub type LocalFuture<T> = Pin<Box<dyn Future<Output = T>>>;

/// What the control server asks of the rest of sipshard.
pub trait Handler {
    /// Runs JSON-RPC method `method` with `params` (an object, possibly empty).
    fn call(&self, method: String, params: Value) -> LocalFuture<Result<Value, RpcError>>;
    /// Prometheus text for `GET /metrics`.
    fn metrics(&self) -> String;
}

/// A response to write.
#[derive(Debug)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Content-Type.
    pub content_type: &'static str,
    /// Body.
    pub body: Vec<u8>,
}

/// Who may call: with a token, every request must carry `Authorization: Bearer TOKEN`
/// (`GET /metrics` too, unless `metrics_open`).
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// The token, if one is set.
    pub token: Option<String>,
    /// Whether `GET /metrics` is served without it.
    pub metrics_open: bool,
}

impl Access {
    /// Whether a request for `path` with these headers may go on.
    fn allows(&self, path: &str, headers: &[httparse::Header<'_>]) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        if self.metrics_open && path == "/metrics" {
            return true;
        }
        headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("authorization"))
            .filter_map(|h| std::str::from_utf8(h.value).ok())
            .filter_map(|v| {
                let (scheme, cred) = v.trim().split_once(' ')?;
                // RFC 6750 §2.1: the scheme name is case-insensitive.
                scheme.eq_ignore_ascii_case("bearer").then_some(cred.trim())
            })
            .any(|cred| same(cred.as_bytes(), token.as_bytes()))
    }
}

/// Compares in time that depends on the lengths only, so that answers do not time how much
/// of a guessed token was right.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// How long a caller may take to send its whole request: a connection that trickles one in
/// is not left holding a task.
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Accepts connections until the listener fails, serving each in its own task.
pub async fn serve(listener: TcpListener, handler: Rc<dyn Handler>, access: Rc<Access>) {
    loop {
        let stream = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("control: accept failed: {e}");
                continue;
            }
        };
        let h = handler.clone();
        let access = access.clone();
        glommio::spawn_local(async move {
            if let Err(e) = serve_one(stream, h, &access).await {
                tracing::debug!("control: connection error: {e}");
            }
        })
        .detach();
    }
}

async fn serve_one(
    mut stream: TcpStream,
    handler: Rc<dyn Handler>,
    access: &Access,
) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    let started = std::time::Instant::now();
    let (method, path, body) = loop {
        let left = REQUEST_TIMEOUT.saturating_sub(started.elapsed());
        if left.is_zero() {
            return Ok(());
        }
        stream.set_read_timeout(Some(left))?;
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > MAX_REQUEST {
            return write(&mut stream, &text(413, "request too large\n")).await;
        }
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf) {
            Ok(httparse::Status::Complete(head)) => {
                let len = req
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| {
                        std::str::from_utf8(h.value)
                            .ok()?
                            .trim()
                            .parse::<usize>()
                            .ok()
                    })
                    .unwrap_or(0);
                if len > MAX_REQUEST {
                    return write(&mut stream, &text(413, "request too large\n")).await;
                }
                let path = req.path.unwrap_or("");
                if !access.allows(path, req.headers) {
                    return write(
                        &mut stream,
                        &text(
                            401,
                            "unauthorized: send Authorization: Bearer TOKEN (sipshard ctl \
                             --token, or SIPSHARD_CONTROL_TOKEN)\n",
                        ),
                    )
                    .await;
                }
                if buf.len() >= head + len {
                    let m = req.method.unwrap_or("").to_string();
                    let p = req.path.unwrap_or("").to_string();
                    break (m, p, buf[head..head + len].to_vec());
                }
            }
            Ok(httparse::Status::Partial) => {}
            Err(e) => return write(&mut stream, &text(400, &format!("bad request: {e}\n"))).await,
        }
    };
    let resp = match (method.as_str(), path.as_str()) {
        ("GET", "/metrics") => HttpResponse {
            status: 200,
            content_type: "text/plain; version=0.0.4",
            body: handler.metrics().into_bytes(),
        },
        ("POST", "/") | ("POST", "/rpc") => {
            let v = rpc(&handler, &body).await;
            HttpResponse {
                status: 200,
                content_type: "application/json",
                body: v.to_string().into_bytes(),
            }
        }
        ("GET", _) | ("POST", _) => text(404, "not found: use POST / (JSON-RPC) or GET /metrics\n"),
        _ => text(405, "method not allowed\n"),
    };
    write(&mut stream, &resp).await
}

fn text(status: u16, body: &str) -> HttpResponse {
    HttpResponse {
        status,
        content_type: "text/plain",
        body: body.as_bytes().to_vec(),
    }
}

async fn write(stream: &mut TcpStream, r: &HttpResponse) -> std::io::Result<()> {
    let reason = match r.status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        _ => "Error",
    };
    // RFC 6750 §3: a 401 names the scheme the caller should use.
    let challenge = if r.status == 401 {
        "WWW-Authenticate: Bearer realm=\"sipshard\"\r\n"
    } else {
        ""
    };
    let head = format!(
        "HTTP/1.1 {} {}\r\n{challenge}Content-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        r.status,
        reason,
        r.content_type,
        r.body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(&r.body).await?;
    stream.flush().await?;
    stream.close().await
}

/// Runs one JSON-RPC 2.0 request (or batch) and returns the response value.
pub async fn rpc(handler: &Rc<dyn Handler>, body: &[u8]) -> Value {
    let req: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return error(Value::Null, -32700, &format!("parse error: {e}")),
    };
    match req {
        Value::Array(items) if !items.is_empty() => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                out.push(rpc_one(handler, item).await);
            }
            Value::Array(out)
        }
        other => rpc_one(handler, other).await,
    }
}

async fn rpc_one(handler: &Rc<dyn Handler>, req: Value) -> Value {
    let id = req.get("id").cloned().unwrap_or(Value::Null);
    if req.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return error(id, -32600, "invalid request: jsonrpc must be \"2.0\"");
    }
    let Some(method) = req.get("method").and_then(Value::as_str) else {
        return error(id, -32600, "invalid request: no method");
    };
    let params = match req.get("params") {
        None | Some(Value::Null) => json!({}),
        Some(p @ Value::Object(_)) => p.clone(),
        Some(_) => return error(id, -32602, "params must be an object"),
    };
    match handler.call(method.to_string(), params).await {
        Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
        Err(e) => error(id, e.code, &e.message),
    }
}

fn error(id: Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}
