//! Writing MSRP frames (RFC 4975 §7): SEND chunks, responses, REPORTs. Bytes in, bytes out;
//! the caller chooses transaction ids and Message-IDs.

use sipshard_parser::msrp::{Flag, Frame, ReportRequest};
use std::io::Write;

/// What a SEND asks for in reports (RFC 4975 §7.1.2): `Success-Report` (default `no`) and
/// `Failure-Report` (default `yes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reports {
    /// `Success-Report`.
    pub success: bool,
    /// `Failure-Report`.
    pub failure: ReportRequest,
}

impl Default for Reports {
    fn default() -> Self {
        Reports {
            success: false,
            failure: ReportRequest::Yes,
        }
    }
}

/// One chunk of a SEND (a whole message is one chunk with `flag` Complete).
#[derive(Debug, Clone, Copy)]
pub struct Chunk<'a> {
    /// The transaction id of this SEND.
    pub transaction_id: &'a [u8],
    /// To-Path: the far side's URI(s).
    pub to_path: &'a [u8],
    /// From-Path: ours.
    pub from_path: &'a [u8],
    /// The message this chunk belongs to.
    pub message_id: &'a [u8],
    /// 1-based offset of `body` in the message.
    pub start: u64,
    /// The whole message's size.
    pub total: u64,
    /// The MIME type of the whole message.
    pub content_type: &'a [u8],
    /// This chunk's bytes (empty: a SEND without body, which has no Content-Type either).
    pub body: &'a [u8],
    /// `+` more chunks follow, `$` last chunk, `#` aborted.
    pub flag: Flag,
    /// What the sender wants reported.
    pub reports: Reports,
}

/// Writes one SEND chunk. The range end is `*` (RFC 4975 §7.1.1: the sender may interrupt the
/// chunk; the receiver takes the end from the body's length).
pub fn write_send(c: &Chunk<'_>, out: &mut Vec<u8>) {
    request_head(
        c.transaction_id,
        b"SEND",
        c.to_path,
        c.from_path,
        c.message_id,
        out,
    );
    let _ = write!(out, "\r\nByte-Range: {}-*/{}", c.start, c.total);
    if c.reports.success {
        out.extend_from_slice(b"\r\nSuccess-Report: yes");
    }
    match c.reports.failure {
        ReportRequest::Yes => {}
        ReportRequest::No => out.extend_from_slice(b"\r\nFailure-Report: no"),
        ReportRequest::Partial => out.extend_from_slice(b"\r\nFailure-Report: partial"),
    }
    if !c.body.is_empty() {
        out.extend_from_slice(b"\r\nContent-Type: ");
        out.extend_from_slice(c.content_type);
        out.extend_from_slice(b"\r\n\r\n");
        out.extend_from_slice(c.body);
    }
    end_line(c.transaction_id, c.flag, out);
}

/// Writes the response to `request` (RFC 4975 §7.2): its transaction id, To-Path = the first
/// URI of the request's From-Path (the previous hop), From-Path = `ours`, and no body.
pub fn write_response(
    request: &Frame<'_, '_>,
    code: u16,
    comment: &[u8],
    ours: &[u8],
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(b"MSRP ");
    out.extend_from_slice(request.transaction_id);
    let _ = write!(out, " {code}");
    if !comment.is_empty() {
        out.push(b' ');
        out.extend_from_slice(comment);
    }
    out.extend_from_slice(b"\r\nTo-Path: ");
    let from = request.headers.get(1).map(|h| h.value).unwrap_or_default();
    // Responses go back one hop: to the first URI of the request's From-Path.
    out.extend_from_slice(from.split(|&c| c == b' ').next().unwrap_or_default());
    out.extend_from_slice(b"\r\nFrom-Path: ");
    out.extend_from_slice(ours);
    end_line(request.transaction_id, Flag::Complete, out);
}

/// A REPORT (RFC 4975 §7.1.2) for a message.
#[derive(Debug, Clone, Copy)]
pub struct Report<'a> {
    /// The REPORT's own transaction id.
    pub transaction_id: &'a [u8],
    /// To-Path: the message's sender (its whole From-Path).
    pub to_path: &'a [u8],
    /// From-Path: ours.
    pub from_path: &'a [u8],
    /// The reported message.
    pub message_id: &'a [u8],
    /// The bytes the report covers: 1 to `total` for a whole message.
    pub total: u64,
    /// The status code (namespace 000).
    pub code: u16,
    /// The reason phrase.
    pub reason: &'a [u8],
}

/// Writes a REPORT.
pub fn write_report(r: &Report<'_>, out: &mut Vec<u8>) {
    request_head(
        r.transaction_id,
        b"REPORT",
        r.to_path,
        r.from_path,
        r.message_id,
        out,
    );
    let _ = write!(
        out,
        "\r\nByte-Range: 1-{}/{}\r\nStatus: 000 {}",
        r.total, r.total, r.code
    );
    if !r.reason.is_empty() {
        out.push(b' ');
        out.extend_from_slice(r.reason);
    }
    end_line(r.transaction_id, Flag::Complete, out);
}

/// The start line and the headers every request we send begins with (RFC 4975 §7.1: To-Path
/// first, From-Path second), without the last line's CRLF.
fn request_head(
    tid: &[u8],
    method: &[u8],
    to_path: &[u8],
    from_path: &[u8],
    message_id: &[u8],
    out: &mut Vec<u8>,
) {
    for part in [
        &b"MSRP "[..],
        tid,
        b" ",
        method,
        b"\r\nTo-Path: ",
        to_path,
        b"\r\nFrom-Path: ",
        from_path,
        b"\r\nMessage-ID: ",
        message_id,
    ] {
        out.extend_from_slice(part);
    }
}

fn end_line(tid: &[u8], flag: Flag, out: &mut Vec<u8>) {
    out.extend_from_slice(b"\r\n-------");
    out.extend_from_slice(tid);
    out.push(flag.as_byte());
    out.extend_from_slice(b"\r\n");
}

/// Splits a message of `len` bytes into chunks of at most `max` bytes: (offset, length) pairs
/// covering it in order; one empty chunk for an empty message.
pub fn chunks(len: usize, max: usize) -> impl Iterator<Item = (usize, usize)> {
    let max = max.max(1);
    let n = len.div_ceil(max).max(1);
    (0..n).map(move |i| {
        let off = i * max;
        (off, max.min(len - off))
    })
}
