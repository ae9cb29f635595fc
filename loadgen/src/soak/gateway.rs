//! Gateway sessions at a low rate against a second sipshard running
//! docs/examples/msrp-gateway.toml (`--gateway-target`), one after the other over the soak:
//! alice (SIP) writes MESSAGEs to bob, whose user agent answers the gateway's INVITE and whose
//! MSRP endpoint takes the connection; every MESSAGE must be answered 202 and delivered exactly
//! once, in order (one of them is retransmitted: answered again, delivered once); then bob hangs
//! up (BYE), and the gateway must close the connection. At the end, with `--gateway-control`,
//! the gateway must hold no session and have counted every delivery and no failure.

use super::control;
use crate::peer::msrp::MsrpPeer;
use crate::peer::random_token;
use crate::peer::sdp;
use crate::peer::sip::{MessageSpec, SipUa};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(300);

/// What to drive.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// The gateway's SIP address.
    pub target: SocketAddr,
    /// Its control endpoint.
    pub control: Option<SocketAddr>,
    /// Sessions, one after the other.
    pub sessions: u64,
    /// MESSAGEs per session.
    pub messages: u64,
    /// The sessions' starts are spread over this long.
    pub spread: Duration,
}

/// What the sessions came to.
#[derive(Debug, Default, Clone)]
pub struct GatewayResult {
    /// Sessions set up, used and closed without a problem.
    pub sessions_ok: u64,
    /// Sessions tried.
    pub sessions: u64,
    /// MESSAGEs sent (retransmissions not counted).
    pub messages: u64,
    /// Messages delivered on MSRP.
    pub delivered: u64,
    /// Messages delivered more than once.
    pub duplicates: u64,
    /// What went wrong.
    pub violations: Vec<String>,
}

impl GatewayResult {
    /// The driver thread panicked.
    pub fn panicked() -> Self {
        GatewayResult {
            violations: vec!["the gateway driver panicked".into()],
            ..Self::default()
        }
    }

    /// One line for the report.
    pub fn summary(&self) -> String {
        format!(
            "{}/{} sessions clean, {} MESSAGEs sent, {} delivered, {} delivered twice, {} problems",
            self.sessions_ok,
            self.sessions,
            self.messages,
            self.delivered,
            self.duplicates,
            self.violations.len()
        )
    }
}

/// Runs the sessions.
pub fn run(cfg: &GatewayConfig) -> GatewayResult {
    let mut r = GatewayResult::default();
    let start = Instant::now();
    let run = random_token(6);
    for k in 0..cfg.sessions {
        let due = start + cfg.spread.mul_f64(k as f64 / cfg.sessions.max(1) as f64);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        r.sessions += 1;
        let before = r.violations.len();
        if let Err(e) = session(cfg, &run, k, &mut r) {
            r.violations.push(format!("session {k}: {e}"));
        }
        if r.violations.len() == before {
            r.sessions_ok += 1;
        }
    }
    if let Some(c) = cfg.control {
        // Every session was hung up: none may be left once the BYEs are through.
        let deadline = Instant::now() + WAIT;
        let stats = loop {
            let s = control::rpc(c, "gw.stats", json!({}));
            let done = matches!(&s, Ok(v) if v["sessions"] == 0);
            if done || Instant::now() > deadline {
                break s;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        match stats {
            Ok(v) => {
                let g = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(u64::MAX);
                if g("sessions") != 0 {
                    r.violations
                        .push(format!("{} sessions left at the end", g("sessions")));
                }
                if g("gw_delivered") != r.delivered {
                    r.violations.push(format!(
                        "gw.stats says {} delivered, the MSRP side read {}",
                        g("gw_delivered"),
                        r.delivered
                    ));
                }
                if g("gw_failed") != 0 {
                    r.violations
                        .push(format!("gw.stats: {} messages failed", g("gw_failed")));
                }
            }
            Err(e) => r.violations.push(format!("gw.stats: {e}")),
        }
    }
    r
}

/// Turns an I/O error into a problem naming `what` failed.
fn io(what: &'static str) -> impl Fn(std::io::Error) -> String {
    move |e| format!("{what}: {e}")
}

fn session(cfg: &GatewayConfig, run: &str, k: u64, r: &mut GatewayResult) -> Result<(), String> {
    let mut alice = SipUa::bind().map_err(io("alice"))?;
    let mut bob_sip = SipUa::bind().map_err(io("bob's UA"))?;
    let mut bob_msrp = MsrpPeer::listen().map_err(io("bob's MSRP"))?;
    let to = bob_sip.uri(&format!("bob{run}x{k}"));
    let from = alice.uri(&format!("alice{run}x{k}"));
    let body = |i: u64| format!("soak {run} session {k} message {i}");
    let mut dialog = None;
    for i in 0..cfg.messages {
        let spec = MessageSpec::text(&from, &to, &body(i));
        let m = alice
            .send_message(cfg.target, &spec)
            .map_err(io("MESSAGE"))?;
        r.messages += 1;
        match alice.wait_final(&m.call_id, WAIT).and_then(|f| f.status()) {
            Some(202) => {}
            other => return Err(format!("MESSAGE {i} answered {other:?}, not 202")),
        }
        // The last one is retransmitted: answered again, delivered once.
        if i + 1 == cfg.messages {
            alice.retransmit(&m).map_err(io("retransmission"))?;
            match alice.wait_final(&m.call_id, WAIT).and_then(|f| f.status()) {
                Some(202) => {}
                other => return Err(format!("retransmitted MESSAGE answered {other:?}")),
            }
        }
        if dialog.is_none() {
            let inv = bob_sip
                .wait_request("INVITE", WAIT)
                .ok_or("no INVITE from the gateway")?;
            let answer = sdp::answer(&bob_msrp.path(), "text/plain", "passive");
            dialog = Some(
                bob_sip
                    .answer_invite_with_sdp(&inv, answer.as_bytes())
                    .map_err(io("200 to INVITE"))?,
            );
            bob_sip
                .wait_request("ACK", WAIT)
                .ok_or("the 200 to the INVITE was not ACKed")?;
            bob_msrp
                .accept(WAIT)
                .map_err(io("the gateway's connection"))?;
        }
        let got = bob_msrp
            .recv_message(WAIT)
            .ok_or_else(|| format!("message {i} not delivered"))?;
        r.delivered += 1;
        // In order: the one just sent, every earlier one already read.
        let want = body(i);
        if got.body != want.as_bytes() {
            return Err(format!(
                "delivered {:?} where {want:?} was due",
                String::from_utf8_lossy(&got.body)
            ));
        }
    }
    if let Some(extra) = bob_msrp.recv_message(QUIET) {
        r.delivered += 1;
        r.duplicates += 1;
        return Err(format!(
            "delivered again: {:?}",
            String::from_utf8_lossy(&extra.body)
        ));
    }
    let mut d = dialog.ok_or("no session")?;
    let bye = bob_sip.bye(&mut d).map_err(io("BYE"))?;
    match bob_sip
        .wait_final(&bye.call_id, WAIT)
        .and_then(|f| f.status())
    {
        Some(200) => {}
        other => return Err(format!("BYE answered {other:?}")),
    }
    if !bob_msrp.wait_closed(WAIT) {
        return Err("the gateway did not close the MSRP connection after the BYE".into());
    }
    Ok(())
}
