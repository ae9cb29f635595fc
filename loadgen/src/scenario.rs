//! Scenarios: what a call sends and which latencies it measures.
//!
//! This module owns the SIP side of the load generator, with no I/O: the requests each scenario
//! sends (built as bytes, ready for the socket), the user's `--template`, and the names of the
//! latencies a scenario reports. The engine decides when to send; this module decides what.

use clap::ValueEnum;
use sipshard_parser::sip::{self, Framing, EMPTY_HEADER};
use std::fmt::Write as _;
use std::net::SocketAddr;

/// What each call does (`--scenario`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScenarioKind {
    /// OPTIONS, answered by any final reply.
    Options,
    /// MESSAGE, answered by any final reply.
    Message,
    /// MESSAGE parked (202 + X-Repo-Msgid), then a trigger carrying X-Pull-CallID/X-Pull-Msgid
    /// (200), and `200 Pulled` for the parked MESSAGE at the original socket.
    ParkPull,
    /// MESSAGE parked (202), then 408 at the original socket when the repository expires it
    /// after --expire. Against sipshard: `sipshard serve --repo-expire N` with N = --expire in
    /// seconds, since it keeps items `[repo] expire` (180 s in the example config) whatever the
    /// MESSAGE's Expires says.
    ParkExpire,
    /// INVITE / 200 / ACK / BYE / 200, with SDP.
    Invite,
    /// Through the SIP/MSRP gateway: MESSAGEs from SIP users delivered as SENDs to MSRP users
    /// the load generator also plays (loadgen/src/gw).
    GwSipToMsrp,
    /// Through the gateway: SENDs from MSRP users delivered as MESSAGEs to SIP users.
    GwMsrpToSip,
    /// Gateway sessions created by INVITE (`msrp_answer`) and left idle, to measure memory.
    GwIdleSessions,
}

impl ScenarioKind {
    /// The latencies this scenario reports, in order. Index 0 is the one the progress line shows.
    pub fn metrics(self) -> &'static [&'static str] {
        match self {
            ScenarioKind::Options => &["options"],
            ScenarioKind::Message => &["message"],
            ScenarioKind::ParkPull => &["park", "trigger", "pulled"],
            ScenarioKind::ParkExpire => &["park", "expire"],
            ScenarioKind::Invite => &["invite", "bye"],
            ScenarioKind::GwSipToMsrp => &["delivery", "reply"],
            ScenarioKind::GwMsrpToSip => &["delivery", "msrp-reply"],
            ScenarioKind::GwIdleSessions => &["invite"],
        }
    }

    /// Whether [`crate::gw`] runs it (with its own set-up phase) instead of the engine.
    pub fn is_gateway(self) -> bool {
        matches!(
            self,
            ScenarioKind::GwSipToMsrp | ScenarioKind::GwMsrpToSip | ScenarioKind::GwIdleSessions
        )
    }

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            ScenarioKind::Options => "options",
            ScenarioKind::Message => "message",
            ScenarioKind::ParkPull => "park-pull",
            ScenarioKind::ParkExpire => "park-expire",
            ScenarioKind::Invite => "invite",
            ScenarioKind::GwSipToMsrp => "gw-sip-to-msrp",
            ScenarioKind::GwMsrpToSip => "gw-msrp-to-sip",
            ScenarioKind::GwIdleSessions => "gw-idle-sessions",
        }
    }
}

/// Method of the park-pull trigger (`--trigger`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TriggerMethod {
    /// OPTIONS with the pull headers.
    Options,
    /// MESSAGE with the pull headers.
    Message,
}

/// Everything a request's bytes depend on.
#[derive(Debug, Clone)]
pub struct RequestParams<'a> {
    /// Method name.
    pub method: &'a str,
    /// Request-URI.
    pub ruri: &'a str,
    /// Our address as the server sees it (Via, From, Contact), as `ip:port` (`[ip]:port`).
    pub local: &'a str,
    /// `UDP` or `TCP`.
    pub transport: &'a str,
    /// Call-ID.
    pub call_id: &'a str,
    /// CSeq number.
    pub cseq: u32,
    /// Via branch (with the magic cookie).
    pub branch: &'a str,
    /// From tag.
    pub from_tag: &'a str,
    /// To tag, inside a dialog.
    pub to_tag: Option<&'a str>,
    /// Extra header lines, each without CRLF.
    pub extra: &'a [String],
    /// Content-Type and body, if any.
    pub body: Option<(&'a str, &'a [u8])>,
}

/// Builds a request. Written byte by byte (no `core::fmt`): at a hundred thousand calls a second
/// the formatting machinery alone would cost a good part of the load thread.
pub fn build_request(p: &RequestParams<'_>) -> Vec<u8> {
    let extra: usize = p.extra.iter().map(|h| h.len() + 2).sum();
    let body = p.body.map_or(0, |(ct, b)| ct.len() + b.len() + 16);
    let mut out = Vec::with_capacity(256 + 2 * p.local.len() + p.ruri.len() * 2 + extra + body);
    let mut num = itoa::Buffer::new();
    let mut put = |parts: &[&str]| {
        for part in parts {
            out.extend_from_slice(part.as_bytes());
        }
    };
    put(&[p.method, " ", p.ruri, " SIP/2.0\r\n"]);
    put(&[
        "Via: SIP/2.0/",
        p.transport,
        " ",
        p.local,
        ";branch=",
        p.branch,
    ]);
    put(&[";rport\r\nMax-Forwards: 70\r\n"]);
    put(&["From: <sip:load@", p.local, ">;tag=", p.from_tag, "\r\n"]);
    put(&["To: <", p.ruri, ">"]);
    if let Some(tt) = p.to_tag {
        put(&[";tag=", tt]);
    }
    put(&[
        "\r\nCall-ID: ",
        p.call_id,
        "\r\nCSeq: ",
        num.format(p.cseq),
        " ",
    ]);
    put(&[p.method, "\r\nContact: <sip:load@", p.local, ";transport="]);
    let lower = if p.transport.eq_ignore_ascii_case("tcp") {
        "tcp"
    } else {
        "udp"
    };
    put(&[lower, ">\r\nUser-Agent: sipshard-load\r\n"]);
    for h in p.extra {
        put(&[h, "\r\n"]);
    }
    match p.body {
        Some((ctype, body)) => {
            put(&["Content-Type: ", ctype, "\r\nContent-Length: "]);
            put(&[num.format(body.len()), "\r\n\r\n"]);
            out.extend_from_slice(body);
        }
        None => put(&["Content-Length: 0\r\n\r\n"]),
    }
    out
}

/// A text body of `len` bytes for MESSAGE requests.
pub fn message_body(len: usize) -> Vec<u8> {
    const FILL: &[u8] = b"sipshard-load payload 0123456789 abcdefghijklmnopqrstuvwxyz. ";
    FILL.iter().copied().cycle().take(len).collect()
}

/// An SDP offer for the invite scenario.
pub fn sdp_offer(local: SocketAddr, session: u64) -> Vec<u8> {
    let ip = local.ip();
    let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
    format!(
        "v=0\r\no=sipshard-load {session} 1 IN {family} {ip}\r\ns=-\r\nc=IN {family} {ip}\r\n\
         t=0 0\r\nm=audio {port} RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
         a=sendrecv\r\n",
        port = 10_000 + (session % 25_000) * 2,
    )
    .into_bytes()
}

/// Values a template's placeholders are replaced with.
#[derive(Debug, Clone)]
pub struct TemplateVars<'a> {
    /// `[call_id]`
    pub call_id: &'a str,
    /// `[cseq]`
    pub cseq: u32,
    /// `[branch]`
    pub branch: &'a str,
    /// `[from_tag]`
    pub from_tag: &'a str,
    /// `[seq]`: the call's sequence number across the run.
    pub seq: u64,
    /// `[local_ip]`, `[local_port]`
    pub local: SocketAddr,
    /// `[remote_ip]`, `[remote_port]`
    pub remote: SocketAddr,
    /// `[transport]`: UDP or TCP.
    pub transport: &'a str,
}

/// A user request template (`--template FILE`). Placeholders, SIPp style: `[call_id]`, `[cseq]`,
/// `[branch]`, `[from_tag]`, `[seq]`, `[local_ip]`, `[local_port]`, `[remote_ip]`,
/// `[remote_port]`, `[transport]`, and `[len]` (the body length, for Content-Length). Line ends
/// become CRLF; the header section ends at the first empty line.
#[derive(Debug, Clone)]
pub struct Template {
    head: String,
    body: String,
}

impl Template {
    /// Reads a template and checks that it renders to a SIP request sipshard-parser accepts,
    /// with the Call-ID and CSeq the load generator matches replies on.
    pub fn new(text: &str) -> Result<Template, String> {
        let text = text.replace("\r\n", "\n");
        let text = text.trim_start_matches('\n');
        let (head, body) = match text.find("\n\n") {
            Some(i) => (&text[..i], &text[i + 2..]),
            None => (text.trim_end_matches('\n'), ""),
        };
        let t = Template {
            head: head.replace('\n', "\r\n"),
            body: body.replace('\n', "\r\n"),
        };
        let local: SocketAddr = "127.0.0.1:5999".parse().expect("literal");
        let sample = t.render(&TemplateVars {
            call_id: "check@sipshard-load",
            cseq: 1,
            branch: "z9hG4bK-check",
            from_tag: "check",
            seq: 0,
            local,
            remote: local,
            transport: "UDP",
        });
        let mut headers = [EMPTY_HEADER; 64];
        let msg = match sip::parse(&sample, &mut headers, Framing::Datagram) {
            Ok(s) => s.complete().ok_or("incomplete message")?,
            Err(e) => return Err(format!("does not render to valid SIP: {}", e.reason())),
        };
        if !msg.is_request() {
            return Err("must be a request".into());
        }
        if msg.call_id() != Some(&b"check@sipshard-load"[..]) {
            return Err("needs `Call-ID: [call_id]` (replies are matched on it)".into());
        }
        match msg.cseq() {
            Some(c) if c.number == 1 => {}
            _ => return Err("needs `CSeq: [cseq] METHOD` (replies are matched on it)".into()),
        }
        if msg.method() == Some(&b"ACK"[..]) {
            return Err("ACK gets no reply; use a request that is answered".into());
        }
        Ok(t)
    }

    /// Renders the request.
    pub fn render(&self, v: &TemplateVars<'_>) -> Vec<u8> {
        let body = self.fill(&self.body, v, 0);
        let head = self.fill(&self.head, v, body.len());
        let mut out = Vec::with_capacity(head.len() + body.len() + 4);
        out.extend_from_slice(head.as_bytes());
        out.extend_from_slice(b"\r\n\r\n");
        out.extend_from_slice(body.as_bytes());
        out
    }

    fn fill(&self, s: &str, v: &TemplateVars<'_>, len: usize) -> String {
        let mut out = String::with_capacity(s.len() + 64);
        let mut rest = s;
        while let Some(open) = rest.find('[') {
            out.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let Some(close) = after.find(']') else {
                out.push_str(&rest[open..]);
                return out;
            };
            let name = &after[..close];
            match name {
                "call_id" => out.push_str(v.call_id),
                "cseq" => {
                    let _ = write!(out, "{}", v.cseq);
                }
                "branch" => out.push_str(v.branch),
                "from_tag" => out.push_str(v.from_tag),
                "seq" => {
                    let _ = write!(out, "{}", v.seq);
                }
                "local_ip" => {
                    let _ = write!(out, "{}", v.local.ip());
                }
                "local_port" => {
                    let _ = write!(out, "{}", v.local.port());
                }
                "remote_ip" => {
                    let _ = write!(out, "{}", v.remote.ip());
                }
                "remote_port" => {
                    let _ = write!(out, "{}", v.remote.port());
                }
                "transport" => out.push_str(v.transport),
                "len" => {
                    let _ = write!(out, "{len}");
                }
                _ => {
                    out.push('[');
                    out.push_str(name);
                    out.push(']');
                }
            }
            rest = &after[close + 1..];
        }
        out.push_str(rest);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params<'a>(extra: &'a [String], body: Option<(&'a str, &'a [u8])>) -> RequestParams<'a> {
        RequestParams {
            method: "MESSAGE",
            ruri: "sip:sipshard@127.0.0.1:5060",
            local: "127.0.0.1:40000",
            transport: "UDP",
            call_id: "abc-1@sipshard-load",
            cseq: 7,
            branch: "z9hG4bK-1",
            from_tag: "f1",
            to_tag: None,
            extra,
            body,
        }
    }

    #[test]
    fn built_requests_parse() {
        let extra = vec!["X-Pull-CallID: other".to_string()];
        let body = message_body(100);
        let bytes = build_request(&params(&extra, Some(("text/plain", &body))));
        let mut h = [EMPTY_HEADER; 32];
        let m = sip::parse(&bytes, &mut h, Framing::Stream)
            .unwrap()
            .complete()
            .unwrap();
        assert_eq!(m.call_id(), Some(&b"abc-1@sipshard-load"[..]));
        assert_eq!(m.cseq().unwrap().number, 7);
        assert_eq!(m.body().len(), 100);
        assert_eq!(m.header("X-Pull-CallID"), Some(&b"other"[..]));
        assert_eq!(m.branch(), Some(&b"z9hG4bK-1"[..]));
    }

    #[test]
    fn template_renders_and_checks() {
        let t = Template::new(
            "INFO sip:x@[remote_ip]:[remote_port] SIP/2.0\n\
             Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]\n\
             From: <sip:a@b>;tag=[from_tag]\nTo: <sip:x@y>\nCall-ID: [call_id]\n\
             CSeq: [cseq] INFO\nX-Seq: [seq]\nContent-Length: [len]\n\nhello [seq]\n",
        )
        .unwrap();
        let local: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let out = t.render(&TemplateVars {
            call_id: "c1",
            cseq: 3,
            branch: "z9hG4bK-9",
            from_tag: "t",
            seq: 42,
            local,
            remote: "127.0.0.1:5060".parse().unwrap(),
            transport: "UDP",
        });
        let mut h = [EMPTY_HEADER; 32];
        let m = sip::parse(&out, &mut h, Framing::Stream)
            .unwrap()
            .complete()
            .unwrap();
        assert_eq!(m.body(), b"hello 42\r\n");
        assert_eq!(m.header("X-Seq"), Some(&b"42"[..]));
        assert!(Template::new("OPTIONS sip:x SIP/2.0\nCall-ID: fixed\nCSeq: 1 OPTIONS\n").is_err());
    }
}
