//! A stand-in for sipshard: a small UDP SIP responder.
//!
//! The load generator has to be tested, and tried, without the real server: this answers the
//! way sipshard's repository routes do (200 to OPTIONS; MESSAGE parked with 202 and
//! `X-Repo-Msgid`; a request carrying `X-Pull-CallID` answered 200 and the parked MESSAGE
//! delivered back to its sender as `200 Pulled` with `X-Repo-Pulled: 1`; `408` when a parked
//! MESSAGE expires; INVITE answered 100 + 200 with SDP; BYE 200). It can also stall, holding
//! every reply for a while, to show what the report does with a server that stops. It is single
//! threaded and meant for loopback, not for measuring anything but the load generator.

use sipshard_parser::sip::{self, Framing, EMPTY_HEADER};
use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How the responder behaves.
#[derive(Debug, Clone, Default)]
pub struct ResponderConfig {
    /// Park MESSAGEs (202 + X-Repo-Msgid) instead of answering 200.
    pub park: bool,
    /// Answer parked MESSAGEs 408 after this long.
    pub expire: Option<Duration>,
    /// Hold every reply due in [after, after + length) (from the first request) until the end of
    /// that window, as a server that stops for `length` would.
    pub stall: Option<(Duration, Duration)>,
}

/// A running responder; stops when dropped.
pub struct Responder {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    received: Arc<AtomicU64>,
    handle: Option<JoinHandle<()>>,
}

impl Responder {
    /// Starts a responder on `listen` (port 0 for an ephemeral one).
    pub fn start(listen: SocketAddr, cfg: ResponderConfig) -> io::Result<Responder> {
        let sock = UdpSocket::bind(listen)?;
        let _ = socket2::SockRef::from(&sock).set_recv_buffer_size(4 << 20);
        let _ = socket2::SockRef::from(&sock).set_send_buffer_size(4 << 20);
        sock.set_read_timeout(Some(Duration::from_millis(5)))?;
        let addr = sock.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let received = Arc::new(AtomicU64::new(0));
        let (s, r) = (stop.clone(), received.clone());
        let handle = std::thread::Builder::new()
            .name("responder".into())
            .spawn(move || serve(sock, cfg, &s, &r))?;
        Ok(Responder {
            addr,
            stop,
            received,
            handle: Some(handle),
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Requests received so far.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Stops and joins the thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.shutdown();
    }
}

struct Parked {
    msgid: u64,
    request: Vec<u8>,
    from: SocketAddr,
    expires: Option<Instant>,
}

/// Builds a response to `req` (a parsed request), copying Via, From, To (tagged), Call-ID and
/// CSeq.
fn response(
    req: &sip::Message<'_, '_>,
    code: u16,
    reason: &str,
    extra: &[String],
    body: Option<(&str, &[u8])>,
) -> Vec<u8> {
    let mut s = format!("SIP/2.0 {code} {reason}\r\n");
    for h in req.headers() {
        let name = h.kind.canonical_name().unwrap_or("");
        match name {
            "Via" | "From" | "Call-ID" | "CSeq" => {
                s.push_str(name);
                s.push_str(": ");
                s.push_str(&String::from_utf8_lossy(h.value));
                s.push_str("\r\n");
            }
            "To" => {
                s.push_str("To: ");
                s.push_str(&String::from_utf8_lossy(h.value));
                if req.to_tag().is_none() {
                    s.push_str(";tag=resp1");
                }
                s.push_str("\r\n");
            }
            _ => {}
        }
    }
    for e in extra {
        s.push_str(e);
        s.push_str("\r\n");
    }
    let mut out = s.into_bytes();
    match body {
        Some((ct, b)) => {
            out.extend_from_slice(
                format!("Content-Type: {ct}\r\nContent-Length: {}\r\n\r\n", b.len()).as_bytes(),
            );
            out.extend_from_slice(b);
        }
        None => out.extend_from_slice(b"Content-Length: 0\r\n\r\n"),
    }
    out
}

/// A reply to the request in `raw` (None if it does not parse), as the responder builds them.
pub fn reply_to_stored(raw: &[u8], code: u16, reason: &str, extra: &[String]) -> Option<Vec<u8>> {
    let mut headers = [EMPTY_HEADER; 64];
    let m = sip::parse(raw, &mut headers, Framing::Datagram)
        .ok()?
        .complete()?;
    Some(response(&m, code, reason, extra, None))
}

fn serve(sock: UdpSocket, cfg: ResponderConfig, stop: &AtomicBool, received: &AtomicU64) {
    let mut buf = vec![0u8; 65536];
    let mut parked: HashMap<Vec<u8>, Parked> = HashMap::new();
    let mut held: Vec<(Vec<u8>, SocketAddr)> = Vec::new();
    let mut first: Option<Instant> = None;
    let mut next_msgid = 1u64;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        // Expiries.
        if cfg.expire.is_some() {
            let due: Vec<Vec<u8>> = parked
                .iter()
                .filter(|(_, p)| p.expires.is_some_and(|e| e <= now))
                .map(|(k, _)| k.clone())
                .collect();
            for k in due {
                if let Some(p) = parked.remove(&k) {
                    if let Some(r) = reply_to_stored(&p.request, 408, "Request Timeout", &[]) {
                        let _ = sock.send_to(&r, p.from);
                    }
                }
            }
        }
        // The stall window, counted from the first request.
        let stalled = match (cfg.stall, first) {
            (Some((after, len)), Some(f)) => now >= f + after && now < f + after + len,
            _ => false,
        };
        if !stalled {
            for (r, to) in held.drain(..) {
                let _ = sock.send_to(&r, to);
            }
        }
        let (n, from) = match sock.recv_from(&mut buf) {
            Ok(v) => v,
            Err(_) => continue,
        };
        first.get_or_insert(Instant::now());
        received.fetch_add(1, Ordering::Relaxed);
        let mut headers = [EMPTY_HEADER; 64];
        let Ok(Some(req)) =
            sip::parse(&buf[..n], &mut headers, Framing::Datagram).map(|s| s.complete())
        else {
            continue;
        };
        let Some(method) = req.method() else { continue };
        let mut out: Vec<(Vec<u8>, SocketAddr)> = Vec::new();
        match method {
            b"ACK" => {}
            b"INVITE" => {
                out.push((response(&req, 100, "Trying", &[], None), from));
                let sdp = b"v=0\r\no=responder 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 20000 RTP/AVP 0\r\n";
                out.push((
                    response(&req, 200, "OK", &[], Some(("application/sdp", sdp))),
                    from,
                ));
            }
            _ if req.header("X-Pull-CallID").is_some() => {
                out.push((response(&req, 200, "OK", &[], None), from));
                let cid = req.header("X-Pull-CallID").unwrap_or_default().to_vec();
                if let Some(p) = parked.remove(&cid) {
                    let extra = [
                        "X-Repo-Pulled: 1".to_string(),
                        format!("X-Repo-Msgid: {}", p.msgid),
                    ];
                    if let Some(r) = reply_to_stored(&p.request, 200, "Pulled", &extra) {
                        out.push((r, p.from));
                    }
                }
            }
            b"MESSAGE" if cfg.park => {
                let msgid = next_msgid;
                next_msgid += 1;
                let cid = req.call_id().unwrap_or_default().to_vec();
                parked.insert(
                    cid,
                    Parked {
                        msgid,
                        request: buf[..n].to_vec(),
                        from,
                        expires: cfg.expire.map(|e| now + e),
                    },
                );
                out.push((
                    response(
                        &req,
                        202,
                        "Accepted",
                        &[format!("X-Repo-Msgid: {msgid}")],
                        None,
                    ),
                    from,
                ));
            }
            _ => out.push((response(&req, 200, "OK", &[], None), from)),
        }
        if stalled {
            held.extend(out);
        } else {
            for (r, to) in out {
                let _ = sock.send_to(&r, to);
            }
        }
    }
}
