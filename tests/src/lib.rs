//! Helpers for the workspace-level integration tests: where the built binaries and the
//! third-party test vectors are.
//!
//! The binaries are found next to the test executable (`target/<profile>/`); `cargo test` builds
//! `sipshard` because the engine crate has integration tests of its own.

use sipshard_parser::Status;
use std::path::PathBuf;
use std::process::Command;

/// Path of a binary of this workspace, built by the same `cargo test` run.
pub fn bin_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("test executable lives in target/<profile>/deps");
    let p = dir.join(name);
    assert!(
        p.is_file(),
        "{} not built; run `cargo build --workspace` or `cargo test --workspace`",
        p.display()
    );
    p
}

/// A command running a workspace binary.
pub fn command(name: &str) -> Command {
    Command::new(bin_path(name))
}

/// The third-party vectors folder (`../shared/vectors` from the workspace root, or
/// `$SIPSHARD_VECTORS`), or `None` after printing "skipped: vectors not found".
pub fn vectors() -> Option<PathBuf> {
    let p = std::env::var_os("SIPSHARD_VECTORS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/vectors"))
        });
    if p.join("rfc4475/INDEX.tsv").is_file() {
        Some(p)
    } else {
        eprintln!("skipped: vectors not found at {}", p.display());
        None
    }
}

/// A `sipshard serve` started for a test: loopback, ephemeral ports, stopped (SIGTERM) on drop.
pub struct Server {
    child: Option<std::process::Child>,
    /// The UDP listen address.
    pub udp: std::net::SocketAddr,
    /// The TCP listen address.
    pub tcp: Option<std::net::SocketAddr>,
    /// The control endpoint.
    pub control: std::net::SocketAddr,
    /// The gateway's MSRP listen address, when it runs.
    pub msrp: Option<std::net::SocketAddr>,
    stdout: Option<std::io::BufReader<std::process::ChildStdout>>,
}

impl Server {
    /// Starts `sipshard serve -c CONFIG --port 0 --control 127.0.0.1:0 ARGS...` (no
    /// `--control` of its own when ARGS has one) and waits for it to say it is ready.
    pub fn start(config: &std::path::Path, args: &[&str]) -> Server {
        use std::io::BufRead;
        let control: &[&str] = if args.contains(&"--control") {
            &[]
        } else {
            &["--control", "127.0.0.1:0"]
        };
        let mut child = command("sipshard")
            .arg("serve")
            .arg("-c")
            .arg(config)
            .args(["--port", "0", "--log-level", "warn"])
            .args(control)
            .args(args)
            .env_remove("SIPSHARD_CONTROL_TOKEN")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start sipshard");
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let (mut udp, mut tcp, mut control, mut msrp) = (None, None, None, None);
        let mut line = String::new();
        loop {
            line.clear();
            if out.read_line(&mut line).unwrap() == 0 {
                let status = child.wait().unwrap();
                panic!("sipshard exited before it was ready: {status}");
            }
            let l = line.trim();
            if let Some(a) = l.strip_prefix("sipshard: listening udp ") {
                udp = udp.or(Some(a.parse().unwrap()));
            } else if let Some(a) = l.strip_prefix("sipshard: listening tcp ") {
                tcp = tcp.or(Some(a.parse().unwrap()));
            } else if let Some(a) = l.strip_prefix("sipshard: listening msrp ") {
                msrp = msrp.or(Some(a.parse().unwrap()));
            } else if let Some(a) = l.strip_prefix("sipshard: control http://") {
                control = Some(a.parse().unwrap());
            } else if l == "sipshard: ready" {
                break;
            }
        }
        Server {
            child: Some(child),
            udp: udp.expect("a UDP listen address"),
            tcp,
            control: control.expect("a control address"),
            msrp,
            stdout: Some(out),
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, |c| c.id())
    }

    /// Calls a control method.
    pub fn ctl(&self, method: &str, params: serde_json::Value) -> serde_json::Value {
        let body =
            serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
                .to_string();
        let resp = http(self.control, "POST", "/", &body);
        let v: serde_json::Value =
            serde_json::from_str(&resp).unwrap_or_else(|e| panic!("{e}: {resp}"));
        v.get("result")
            .cloned()
            .unwrap_or_else(|| panic!("{method}: {v}"))
    }

    /// `GET /metrics`.
    pub fn metrics(&self) -> String {
        http(self.control, "GET", "/metrics", "")
    }

    /// Sends SIGTERM and returns what the server printed after it (its last lines).
    pub fn stop(mut self) -> String {
        use std::io::Read;
        let mut child = self.child.take().unwrap();
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let mut rest = String::new();
        if let Some(mut out) = self.stdout.take() {
            let _ = out.read_to_string(&mut rest);
        }
        let _ = child.wait();
        rest
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while std::time::Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A one-shot HTTP/1.1 request; returns the body.
pub fn http(addr: std::net::SocketAddr, method: &str, path: &str, body: &str) -> String {
    http_full(addr, method, path, "", body).2
}

/// A one-shot HTTP/1.1 request with extra header lines (each ending in CRLF); returns the
/// status, the head and the body.
pub fn http_full(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &str,
    body: &str,
) -> (u16, String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

/// The example configs folder.
pub fn examples() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/examples"))
}

/// Builds a SIP request with a Via that asks for `rport`, so answers come back to the sender.
pub fn request(
    method: &str,
    call_id: &str,
    cseq: u32,
    via: &str,
    extra: &str,
    body: &str,
) -> Vec<u8> {
    let branch = format!("z9hG4bK{:x}", rand_u64());
    format!(
        "{method} sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/{via};branch={branch};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=a{cseq}\r\nTo: <sip:bob@example.com>\r\n\
         Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n{extra}Content-Type: text/plain\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A cheap unique-enough number for Call-IDs and branches.
pub fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(N.fetch_add(1, Ordering::Relaxed));
    h.finish()
}

/// A received SIP response, decoded into what tests look at.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub code: u16,
    /// Call-ID.
    pub call_id: String,
    /// CSeq number and method.
    pub cseq: String,
    /// All headers (name as sent, value).
    pub headers: Vec<(String, String)>,
}

impl Response {
    /// Parses a response; panics on anything else.
    pub fn parse(bytes: &[u8]) -> Response {
        use sipshard_parser::sip;
        let mut h = [sip::EMPTY_HEADER; 64];
        // Not `parse_strict`: an error answer copies the sender's (possibly malformed) Via,
        // CSeq...; when even `parse` refuses those, read the lines naively.
        let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        match sip::parse(bytes, &mut h, sip::Framing::Datagram) {
            Ok(Status::Complete(m)) => Response {
                code: m.status_code().expect("a response"),
                call_id: s(m.call_id().unwrap_or_default()),
                cseq: m
                    .cseq()
                    .map(|c| format!("{} {}", c.number, s(c.method)))
                    .unwrap_or_default(),
                headers: m
                    .headers()
                    .iter()
                    .map(|h| (s(h.name), s(h.value)))
                    .collect(),
            },
            _ => {
                let text = s(bytes);
                let mut lines = text.split("\r\n");
                let code = lines
                    .next()
                    .and_then(|l| l.strip_prefix("SIP/2.0 "))
                    .and_then(|l| l.get(..3))
                    .and_then(|c| c.parse().ok())
                    .unwrap_or_else(|| panic!("not a response: {text}"));
                let headers: Vec<(String, String)> = lines
                    .take_while(|l| !l.is_empty())
                    .filter_map(|l| l.split_once(':'))
                    .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
                    .collect();
                let get = |n: &str| {
                    headers
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(n))
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default()
                };
                Response {
                    code,
                    call_id: get("Call-ID"),
                    cseq: get("CSeq"),
                    headers,
                }
            }
        }
    }

    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A UDP SIP client on 127.0.0.1.
pub struct UdpClient {
    /// The socket.
    pub sock: std::net::UdpSocket,
    server: std::net::SocketAddr,
}

impl UdpClient {
    /// A client of `server`.
    pub fn new(server: std::net::SocketAddr) -> UdpClient {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        UdpClient { sock, server }
    }

    /// `UDP 127.0.0.1:PORT` for a Via header.
    pub fn via(&self) -> String {
        format!("UDP {}", self.sock.local_addr().unwrap())
    }

    /// Sends raw bytes.
    pub fn send(&self, bytes: &[u8]) {
        self.sock.send_to(bytes, self.server).unwrap();
    }

    /// Sends a request built by [`request`].
    pub fn send_request(&self, method: &str, call_id: &str, cseq: u32, extra: &str) {
        self.send(&request(method, call_id, cseq, &self.via(), extra, "hello"));
    }

    /// Waits for the next response (10 s at most; a test fails rather than hangs).
    pub fn recv(&self) -> Response {
        let mut buf = vec![0u8; 65536];
        let (n, _) = self
            .sock
            .recv_from(&mut buf)
            .expect("no response within 10 s");
        Response::parse(&buf[..n])
    }

    /// Waits up to `wait` for a response; `None` if none came.
    pub fn try_recv(&self, wait: std::time::Duration) -> Option<Response> {
        self.sock.set_read_timeout(Some(wait)).unwrap();
        let mut buf = vec![0u8; 65536];
        let r = self
            .sock
            .recv_from(&mut buf)
            .ok()
            .map(|(n, _)| Response::parse(&buf[..n]));
        self.sock
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        r
    }
}

/// A SIP client on one TCP connection to 127.0.0.1.
pub struct TcpClient {
    /// The connection.
    pub s: std::net::TcpStream,
    buf: Vec<u8>,
}

impl TcpClient {
    /// A connection to `addr`; reads wait 10 s at most.
    pub fn connect(addr: std::net::SocketAddr) -> TcpClient {
        let s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        TcpClient { s, buf: Vec::new() }
    }

    /// `TCP 127.0.0.1:PORT` for a Via header.
    pub fn via(&self) -> String {
        format!("TCP {}", self.s.local_addr().unwrap())
    }

    /// Sends a request built by [`request`].
    pub fn send(&mut self, method: &str, cid: &str, cseq: u32, extra: &str) {
        use std::io::Write;
        let m = request(method, cid, cseq, &self.via(), extra, "hello over tcp");
        self.s.write_all(&m).unwrap();
    }

    /// The next response on the connection, or `None` when the server closed it (or reset it).
    pub fn recv(&mut self) -> Option<Response> {
        use sipshard_parser::sip::{self, FrameOptions, Framed};
        use std::io::Read;
        loop {
            match sip::frame(&self.buf, &FrameOptions::default()).unwrap() {
                Status::Complete(Framed::Message { len, .. }) => {
                    let r = Response::parse(&self.buf[..len]);
                    self.buf.drain(..len);
                    return Some(r);
                }
                Status::Complete(Framed::Keepalive(k)) => {
                    self.buf.drain(..k);
                }
                Status::Partial => {
                    let mut chunk = [0u8; 4096];
                    let n = match self.s.read(&mut chunk) {
                        Ok(n) => n,
                        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => 0,
                        Err(e) => panic!("no response within 10 s: {e}"),
                    };
                    if n == 0 {
                        return None;
                    }
                    self.buf.extend_from_slice(&chunk[..n]);
                }
            }
        }
    }
}

/// How many files process `pid` has open.
pub fn open_fds(pid: u32) -> usize {
    sipshard_load::soak::sampler::fds(pid).unwrap_or(0) as usize
}

/// Polls `f` every 50 ms until it holds, for at most `secs` seconds; whether it held.
pub fn wait_until(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if f() {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Sums a Prometheus metric over its label sets (0 when it is not there).
pub fn metric_sum(text: &str, name: &str) -> u64 {
    sipshard_load::soak::control::metric_sum(text, name).unwrap_or(0)
}
