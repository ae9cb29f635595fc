//! `sipshard-chat`: a chat peer for trying the gateway by hand, in two terminals on one machine.
//! Each line typed is a message; each message received is printed.
//!
//! ```text
//! sipshard-chat msrp --me bob                                  # an MSRP user (session mode)
//! sipshard-chat sip  --me alice --to sip:bob@127.0.0.1:PORT    # a SIP user (page mode)
//! ```
//!
//! The MSRP user prints its SIP address; the SIP user writes to it through the gateway, whose
//! INVITE the MSRP user answers (then the gateway connects to its MSRP endpoint). The MSRP user
//! may also start: with `--to`, its first line INVITEs the SIP user through the gateway.

use clap::{Parser, Subcommand};
use sipshard_load::peer::msrp::MsrpPeer;
use sipshard_load::peer::sdp;
use sipshard_load::peer::sip::{Incoming, InviteSpec, MessageSpec, SipUa};
use std::io::BufRead;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "sipshard-chat",
    about = "A chat peer for sipshard's SIP/MSRP gateway"
)]
struct Args {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// A SIP user: each line is a MESSAGE to `--to`, sent through the gateway.
    Sip(Common),
    /// An MSRP user: answers the gateway's INVITE; with `--to`, INVITEs that user itself.
    Msrp(Common),
}

#[derive(clap::Args)]
struct Common {
    /// The gateway's SIP address.
    #[arg(long, default_value = "127.0.0.1:5060")]
    gateway: SocketAddr,
    /// Your user name.
    #[arg(long)]
    me: String,
    /// Whom to write to (a SIP URI, as the other peer printed it).
    #[arg(long)]
    to: Option<String>,
}

/// How long one turn of the loop waits on each input.
const POLL: Duration = Duration::from_millis(50);
const WAIT: Duration = Duration::from_secs(5);

fn main() -> ExitCode {
    let args = Args::parse();
    let lines = stdin_lines();
    let r = match args.mode {
        Mode::Sip(c) => sip_user(&c, &lines),
        Mode::Msrp(c) => msrp_user(&c, &lines),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sipshard-chat: {e}");
            ExitCode::from(1)
        }
    }
}

/// Lines typed, read on their own thread so the loop never blocks on the terminal.
fn stdin_lines() -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// The next line typed; `Err` when stdin has ended.
fn next_line(lines: &Receiver<String>) -> Result<Option<String>, ()> {
    match lines.try_recv() {
        Ok(l) => Ok(Some(l)),
        Err(TryRecvError::Empty) => Ok(None),
        Err(TryRecvError::Disconnected) => Err(()),
    }
}

fn sip_user(c: &Common, lines: &Receiver<String>) -> std::io::Result<()> {
    let mut ua = SipUa::bind()?;
    let me = ua.uri(&c.me);
    println!("you are {me}; type a line to send it");
    loop {
        match next_line(lines) {
            Err(()) => return Ok(()),
            Ok(Some(line)) => match &c.to {
                Some(to) => {
                    ua.send_message(c.gateway, &MessageSpec::text(&me, to, &line))?;
                }
                None => println!("(nobody to write to: start with --to URI)"),
            },
            Ok(None) => {}
        }
        if let Some(m) = ua.recv(POLL) {
            incoming_sip(&mut ua, &m)?;
        }
    }
}

/// Prints a MESSAGE (and answers it), a final response that is not a success, and refuses
/// anything else a chat peer does not take.
fn incoming_sip(ua: &mut SipUa, m: &Incoming) -> std::io::Result<()> {
    match (m.method().as_deref(), m.status()) {
        (Some("MESSAGE"), _) => {
            println!("{}: {}", m.from_uri().unwrap_or_default(), m.body_text());
            ua.ok(m)
        }
        (Some("ACK"), _) => Ok(()),
        (Some("BYE"), _) => {
            println!("(the session ended)");
            ua.ok(m)
        }
        (Some(_), _) => ua
            .respond(m, 405, "Method Not Allowed", &[], None)
            .map(|_| ()),
        (None, Some(code)) if code >= 300 => {
            println!("(not delivered: {code} {})", m.reason().unwrap_or_default());
            Ok(())
        }
        _ => Ok(()),
    }
}

fn msrp_user(c: &Common, lines: &Receiver<String>) -> std::io::Result<()> {
    let mut ua = SipUa::bind()?;
    let mut msrp = MsrpPeer::listen()?;
    let me = ua.uri(&c.me);
    println!("you are {me}; give this to the SIP user (--to {me})");
    // The gateway's MSRP URI, once a session is up: where our SENDs go.
    let mut session: Option<String> = None;
    loop {
        match next_line(lines) {
            Err(()) => return Ok(()),
            Ok(Some(line)) => {
                if session.is_none() {
                    session = match &c.to {
                        Some(to) => invite(&mut ua, &mut msrp, c.gateway, &me, to)?,
                        None => {
                            println!(
                                "(no session yet: wait for a message, or start with --to URI)"
                            );
                            None
                        }
                    };
                }
                if let Some(path) = &session {
                    msrp.send_message(path, "text/plain", line.as_bytes(), 2048, false, "yes")?;
                }
            }
            Ok(None) => {}
        }
        if let Some(m) = ua.recv(POLL) {
            if m.method().as_deref() == Some("INVITE") {
                // The gateway sets up a session for a SIP user's message: answer, passive, and
                // take its connection.
                let answer = sdp::answer(&msrp.path(), "text/plain", "passive");
                ua.answer_invite_with_sdp(&m, answer.as_bytes())?;
                session = sdp::read_path(m.body());
                msrp.accept(WAIT)?;
            } else {
                if m.method().as_deref() == Some("BYE") {
                    session = None;
                }
                incoming_sip(&mut ua, &m)?;
            }
        }
        if session.is_some() {
            if let Some(m) = msrp.recv_message(POLL) {
                if !m.body.is_empty() {
                    println!("{}", String::from_utf8_lossy(&m.body));
                }
            }
        }
    }
}

/// INVITEs `to` through the gateway with an MSRP offer and connects to the path it answers
/// with; the session's gateway path, or `None` (said why) when it was refused.
fn invite(
    ua: &mut SipUa,
    msrp: &mut MsrpPeer,
    gateway: SocketAddr,
    me: &str,
    to: &str,
) -> std::io::Result<Option<String>> {
    let offer = sdp::offer(msrp.addr().port(), &msrp.path(), "text/plain");
    let inv = ua.send_invite(
        gateway,
        &InviteSpec {
            ruri: to.to_owned(),
            from: me.to_owned(),
            to: to.to_owned(),
            sdp: offer.into_bytes(),
            ..InviteSpec::default()
        },
    )?;
    let Some(r) = ua.wait_final(&inv.call_id, WAIT) else {
        println!("(the gateway did not answer)");
        return Ok(None);
    };
    if r.status() != Some(200) {
        ua.ack_failure(&inv, &r)?;
        println!(
            "(refused: {} {})",
            r.status().unwrap_or(0),
            r.reason().unwrap_or_default()
        );
        return Ok(None);
    }
    ua.ack(&inv, &r)?;
    let path = sdp::read_path(r.body());
    if let Some(p) = &path {
        msrp.connect_path(p)?;
    }
    Ok(path)
}
