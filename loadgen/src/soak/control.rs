//! sipshard's control endpoint from outside: JSON-RPC 2.0 calls and `GET /metrics` over plain
//! HTTP/1.1 (one request per connection, as the server does), and a pool of worker threads that
//! make the soak's `repo.rm` and `repo.get` calls without holding up the traffic.

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(10);

static TOKEN: OnceLock<String> = OnceLock::new();

/// Sends `Authorization: Bearer TOKEN` with every call from now on (a server started with a
/// control token). Set once; later calls are ignored.
pub fn set_token(token: String) {
    let _ = TOKEN.set(token);
}

/// One HTTP request; returns the body.
pub fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> Result<String, String> {
    let mut s = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(TIMEOUT))
        .and_then(|_| s.set_write_timeout(Some(TIMEOUT)))
        .map_err(|e| e.to_string())?;
    let auth = TOKEN
        .get()
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&out);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no HTTP response: {text:.200}"))?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!("HTTP: {}", head.lines().next().unwrap_or("")));
    }
    Ok(body.to_string())
}

/// Calls a JSON-RPC method: its `result`, or the error's message.
pub fn rpc(addr: SocketAddr, method: &str, params: Value) -> Result<Value, String> {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
    let text = http(addr, "POST", "/", &body)?;
    let v: Value = serde_json::from_str(&text).map_err(|e| format!("{e}: {text:.200}"))?;
    if let Some(r) = v.get("result") {
        return Ok(r.clone());
    }
    Err(v
        .get("error")
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .unwrap_or("no result")
        .to_string())
}

/// `GET /metrics`.
pub fn metrics(addr: SocketAddr) -> Result<String, String> {
    http(addr, "GET", "/metrics", "")
}

/// Sums a Prometheus metric over its label sets (`None`: not in the text at all).
pub fn metric_sum(text: &str, name: &str) -> Option<u64> {
    let mut found = false;
    let mut sum = 0.0;
    for l in text.lines() {
        if l.starts_with(name) && l[name.len()..].starts_with('{') {
            if let Some(v) = l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) {
                found = true;
                sum += v;
            }
        }
    }
    found.then_some(sum as u64)
}

/// What a worker is asked to do for an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    /// `repo.rm`.
    Rm,
    /// `repo.get` before the action.
    CheckBefore,
    /// `repo.get` after a pull or an rm.
    CheckAfter,
}

/// A control call for item `seq`.
#[derive(Debug)]
pub struct Job {
    /// The item.
    pub seq: u64,
    /// Which call.
    pub kind: JobKind,
    /// Its Call-ID.
    pub callid: String,
    /// Its msgid.
    pub msgid: String,
}

/// The answer to a [`Job`].
#[derive(Debug)]
pub struct Done {
    /// The item.
    pub seq: u64,
    /// Which call.
    pub kind: JobKind,
    /// The method's result, or what went wrong.
    pub result: Result<Value, String>,
}

/// Worker threads making control calls; answers come back on [`Pool::done`].
pub struct Pool {
    jobs: Option<Sender<Job>>,
    /// The answers.
    pub done: Receiver<Done>,
    threads: Vec<JoinHandle<()>>,
}

impl Pool {
    /// Starts `n` workers calling `addr`.
    pub fn start(addr: SocketAddr, n: usize) -> Pool {
        let (jobs, rx) = mpsc::channel::<Job>();
        let (done_tx, done) = mpsc::channel();
        let rx = Arc::new(Mutex::new(rx));
        let threads = (0..n.max(1))
            .map(|i| {
                let rx = Arc::clone(&rx);
                let done_tx = done_tx.clone();
                std::thread::Builder::new()
                    .name(format!("soak-control-{i}"))
                    .spawn(move || loop {
                        let job = match rx.lock().map(|r| r.recv()) {
                            Ok(Ok(j)) => j,
                            _ => return,
                        };
                        let params = json!({"callid": job.callid, "msgid": job.msgid});
                        let method = match job.kind {
                            JobKind::Rm => "repo.rm",
                            JobKind::CheckBefore | JobKind::CheckAfter => "repo.get",
                        };
                        let result = rpc(addr, method, params);
                        let d = Done {
                            seq: job.seq,
                            kind: job.kind,
                            result,
                        };
                        if done_tx.send(d).is_err() {
                            return;
                        }
                    })
                    .expect("spawn a control worker")
            })
            .collect();
        Pool {
            jobs: Some(jobs),
            done,
            threads,
        }
    }

    /// Queues a call.
    pub fn send(&self, job: Job) {
        if let Some(j) = &self.jobs {
            let _ = j.send(job);
        }
    }

    /// Lets the workers finish what is queued and stop.
    pub fn stop(mut self) {
        self.jobs = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_a_metric_over_shards() {
        let text = "# HELP sipshard_stored_total x\nsipshard_stored_total{shard=\"0\"} 3\n\
                    sipshard_stored_total{shard=\"1\"} 4\nsipshard_stored_totalx{shard=\"1\"} 9\n";
        assert_eq!(metric_sum(text, "sipshard_stored_total"), Some(7));
        assert_eq!(metric_sum(text, "sipshard_pulled_total"), None);
    }
}
