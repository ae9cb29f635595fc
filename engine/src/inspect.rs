//! `sipshard parse`: run the SIP or MSRP parser over files and report, per message, the verdict
//! and the fields sipshard routes on (or the error and the response it maps to).
//!
//! It exists so operators and developers can check how sipshard reads a captured message before
//! it ever reaches a running server, and so the parser can be exercised from the shell.

use serde_json::{json, Map, Value};
use sipshard_parser::msrp;
use sipshard_parser::sip::{self, FrameOptions, Framed, Framing, StartLine};
use sipshard_parser::Status;
use std::fmt::Write as _;

/// Header array size used by the inspector: larger than any message of the test corpora.
pub const MAX_HEADERS: usize = 128;

/// What to parse and how to print it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Parse MSRP instead of SIP.
    pub msrp: bool,
    /// The input holds several messages back to back (a TCP byte stream).
    pub stream: bool,
    /// Print JSON Lines instead of text.
    pub json: bool,
}

/// The report for one message (or one unframeable rest of a stream).
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Byte offset of the message in its input.
    pub offset: usize,
    /// Whether it parsed.
    pub ok: bool,
    /// The fields, in print order; on rejection `error` and `response` are among them.
    pub fields: Map<String, Value>,
}

fn text(b: &[u8]) -> Value {
    Value::String(String::from_utf8_lossy(b).into_owned())
}

fn opt_text(b: Option<&[u8]>) -> Value {
    b.map(text).unwrap_or(Value::Null)
}

/// Parses every message of `input` and returns one report per message.
pub fn inspect(input: &[u8], opts: Options) -> Vec<Report> {
    if opts.msrp {
        inspect_msrp(input, opts.stream)
    } else {
        inspect_sip(input, opts.stream)
    }
}

fn rejected(offset: usize, error: &str, response: String) -> Report {
    let mut fields = Map::new();
    fields.insert("error".into(), json!(error));
    fields.insert("response".into(), json!(response));
    Report {
        offset,
        ok: false,
        fields,
    }
}

fn inspect_sip(input: &[u8], stream: bool) -> Vec<Report> {
    if !stream {
        return vec![sip_report(0, input)];
    }
    // Streams from captures and RFC flows often omit Content-Length; frame those as bodiless.
    let opts = FrameOptions {
        require_content_length: false,
        max_body: usize::MAX,
        max_head: usize::MAX,
    };
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < input.len() {
        match sip::frame(&input[pos..], &opts) {
            Ok(Status::Complete(Framed::Keepalive(n))) => pos += n,
            Ok(Status::Complete(Framed::Message { len, .. })) => {
                out.push(sip_report(pos, &input[pos..pos + len]));
                pos += len;
            }
            Ok(Status::Partial) => {
                out.push(rejected(
                    pos,
                    "incomplete message at end of input",
                    "400".into(),
                ));
                break;
            }
            Err(e) => {
                out.push(rejected(pos, e.reason(), e.status_code().to_string()));
                break;
            }
        }
    }
    out
}

fn sip_report(offset: usize, buf: &[u8]) -> Report {
    let mut headers = [sip::EMPTY_HEADER; MAX_HEADERS];
    let m = match sip::parse_strict(buf, &mut headers, Framing::Datagram) {
        Ok(Status::Complete(m)) => m,
        Ok(Status::Partial) => unreachable!("datagram framing never returns Partial"),
        Err(e) => return rejected(offset, e.reason(), e.verdict().to_string()),
    };
    let mut f = Map::new();
    match m.start_line() {
        StartLine::Request { method, uri } => {
            f.insert("kind".into(), json!("request"));
            f.insert("method".into(), text(method));
            f.insert("request_uri".into(), text(uri));
        }
        StartLine::Response { code, reason } => {
            f.insert("kind".into(), json!("response"));
            f.insert("status".into(), json!(code));
            f.insert("reason".into(), text(reason));
        }
    }
    f.insert("call_id".into(), opt_text(m.call_id()));
    f.insert(
        "cseq".into(),
        m.cseq()
            .map(|c| {
                Value::String(format!(
                    "{} {}",
                    c.number,
                    String::from_utf8_lossy(c.method)
                ))
            })
            .unwrap_or(Value::Null),
    );
    f.insert("from_tag".into(), opt_text(m.from_tag()));
    f.insert("to_tag".into(), opt_text(m.to_tag()));
    f.insert("branch".into(), opt_text(m.branch()));
    f.insert("content_length".into(), json!(m.content_length()));
    f.insert("body_length".into(), json!(m.body().len()));
    f.insert("headers".into(), json!(m.headers().len()));
    if !m.trailing().is_empty() {
        f.insert("trailing".into(), json!(m.trailing().len()));
    }
    if m.content_length_conflict() {
        f.insert(
            "warning".into(),
            json!("conflicting Content-Length headers"),
        );
    }
    Report {
        offset,
        ok: true,
        fields: f,
    }
}

fn inspect_msrp(input: &[u8], stream: bool) -> Vec<Report> {
    let limits = msrp::Limits {
        max_frame: usize::MAX,
        ..msrp::Limits::default()
    };
    let mut out = Vec::new();
    let mut pos = 0;
    loop {
        let rest = &input[pos..];
        // Frame first (so a strictly invalid frame still has a length), then parse strictly.
        let len = match msrp::frame_len(rest, &limits) {
            Ok(Status::Complete(len)) => Some(len),
            Ok(Status::Partial) => None,
            Err(e) => {
                out.push(rejected(pos, e.reason(), e.status_code().to_string()));
                break;
            }
        };
        let mut headers = [msrp::EMPTY_HEADER; MAX_HEADERS];
        let piece = &rest[..len.unwrap_or(rest.len())];
        match msrp::parse(piece, &mut headers, &limits) {
            Ok(Status::Complete(fr)) => out.push(msrp_report(pos, &fr)),
            Ok(Status::Partial) => {
                out.push(rejected(
                    pos,
                    "incomplete frame: no end-line",
                    "none".into(),
                ));
                break;
            }
            Err(e) => out.push(rejected(pos, e.reason(), e.status_code().to_string())),
        }
        let Some(len) = len else { break };
        pos += len;
        if !stream {
            if pos < input.len() {
                out.push(rejected(
                    pos,
                    "bytes after the end-line (use --stream for several frames)",
                    "400".into(),
                ));
            }
            break;
        }
        if pos >= input.len() {
            break;
        }
    }
    out
}

fn msrp_report(offset: usize, fr: &msrp::Frame<'_, '_>) -> Report {
    let mut f = Map::new();
    f.insert("transaction_id".into(), text(fr.transaction_id));
    match fr.start {
        msrp::StartLine::Request { method } => {
            f.insert("kind".into(), json!("request"));
            f.insert("method".into(), text(method.as_bytes()));
        }
        msrp::StartLine::Response { code, comment } => {
            f.insert("kind".into(), json!("response"));
            f.insert("status".into(), json!(code));
            f.insert("comment".into(), opt_text(comment));
        }
    }
    f.insert("message_id".into(), opt_text(fr.message_id()));
    f.insert(
        "byte_range".into(),
        match fr.byte_range() {
            Some(Ok(r)) => {
                let star = |v: Option<u64>| v.map_or("*".to_string(), |v| v.to_string());
                Value::String(format!("{}-{}/{}", r.start, star(r.end), star(r.total)))
            }
            _ => Value::Null,
        },
    );
    f.insert(
        "continuation".into(),
        Value::String((fr.flag.as_byte() as char).to_string()),
    );
    f.insert("body_length".into(), json!(fr.body.map_or(0, <[u8]>::len)));
    Report {
        offset,
        ok: true,
        fields: f,
    }
}

/// Formats one report as a text line: `NAME[#N] ok key=value ...` or `NAME[#N] rejected: ...`.
pub fn format_text(name: &str, index: usize, r: &Report) -> String {
    let mut s = format!("{name}#{index} @{} ", r.offset);
    if r.ok {
        s.push_str("ok");
        for (k, v) in &r.fields {
            let v = match v {
                Value::Null => continue,
                Value::String(t) => t.clone(),
                other => other.to_string(),
            };
            let _ = write!(s, " {k}={v}");
        }
    } else {
        let get = |k: &str| r.fields.get(k).and_then(Value::as_str).unwrap_or("");
        let _ = write!(s, "rejected: {} -> {}", get("error"), get("response"));
    }
    s
}

/// Formats one report as a JSON object (one line of JSON Lines).
pub fn format_json(name: &str, index: usize, r: &Report) -> String {
    let mut obj = Map::new();
    obj.insert("file".into(), json!(name));
    obj.insert("index".into(), json!(index));
    obj.insert("offset".into(), json!(r.offset));
    obj.insert(
        "verdict".into(),
        json!(if r.ok { "ok" } else { "rejected" }),
    );
    obj.extend(r.fields.clone());
    Value::Object(obj).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sip_fields_and_errors() {
        let msg = b"MESSAGE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@example.com>;tag=9\r\nTo: <sip:bob@example.com>\r\nCall-ID: c1\r\nCSeq: 2 MESSAGE\r\nContent-Length: 2\r\n\r\nhi";
        let r = inspect(msg, Options::default());
        assert_eq!(r.len(), 1);
        assert!(r[0].ok);
        assert_eq!(r[0].fields["call_id"], "c1");
        assert_eq!(r[0].fields["cseq"], "2 MESSAGE");
        assert_eq!(r[0].fields["body_length"], 2);
        let line = format_text("x", 0, &r[0]);
        assert!(
            line.contains("method=MESSAGE") && line.contains("branch=z9hG4bK1"),
            "{line}"
        );

        let r = inspect(b"INVITE sip:a SIP/7.0\r\n\r\n", Options::default());
        assert!(!r[0].ok);
        assert_eq!(r[0].fields["response"], "505");
        let j: Value = serde_json::from_str(&format_json("f", 0, &r[0])).unwrap();
        assert_eq!(j["verdict"], "rejected");
    }

    #[test]
    fn sip_stream_splits() {
        let one =
            b"OPTIONS sip:a SIP/2.0\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
        let mut s = one.to_vec();
        s.extend_from_slice(b"\r\n\r\n");
        s.extend_from_slice(one);
        s.extend_from_slice(&one[..10]);
        let opts = Options {
            stream: true,
            ..Options::default()
        };
        let r = inspect(&s, opts);
        assert_eq!(r.len(), 3);
        assert!(r[0].ok && r[1].ok && !r[2].ok);
        assert_eq!(r[1].offset, one.len() + 4);
    }

    #[test]
    fn msrp_frames() {
        let f = b"MSRP a786hjs2 SEND\r\nTo-Path: msrp://b.example.com:7777/iau39soe2843z;tcp\r\nFrom-Path: msrp://a.example.com:7654/jshA7weztas;tcp\r\nMessage-ID: 87652491\r\nByte-Range: 1-*/*\r\nContent-Type: text/plain\r\n\r\nHey\r\n-------a786hjs2+\r\n";
        let opts = Options {
            msrp: true,
            ..Options::default()
        };
        let r = inspect(f, opts);
        assert!(r[0].ok, "{:?}", r[0]);
        assert_eq!(r[0].fields["byte_range"], "1-*/*");
        assert_eq!(r[0].fields["continuation"], "+");
        assert_eq!(r[0].fields["body_length"], 3);
        let r = inspect(&f[..f.len() - 5], opts);
        assert!(!r[0].ok);
    }
}
