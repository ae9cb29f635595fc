//! Strict parsing of a framed MSRP message and the typed, lazy header accessors.

use super::syntax::{
    is_ident, parse_byte_range, parse_header_line, parse_report, parse_status, parse_u32,
    validate_path, StartInfo,
};
use super::{Error, Flag, Frame, Header, Method, StartLine};

/// A parsed `Byte-Range` header (RFC 4975 §7.1.1), 1-based and inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ByteRange {
    /// The first byte of this chunk in the whole message (1-based).
    pub start: u64,
    /// The last byte of this chunk; `None` for `*` (not known yet).
    pub end: Option<u64>,
    /// The whole message's size; `None` for `*` (not known yet).
    pub total: Option<u64>,
}

/// The value of a `Success-Report` or `Failure-Report` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReportRequest {
    /// `yes`.
    Yes,
    /// `no`.
    No,
    /// `partial` (Failure-Report only).
    Partial,
}

/// A REPORT's `Status` header: `namespace SP code [SP reason]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReportStatus<'b> {
    /// The namespace (`000` for MSRP response codes).
    pub namespace: u16,
    /// The status code.
    pub code: u16,
    /// The reason text, if any.
    pub reason: Option<&'b [u8]>,
}

/// The URIs of a path header (To-Path, From-Path, Use-Path), split at SP.
#[derive(Debug, Clone)]
pub struct Uris<'b> {
    rest: &'b [u8],
}

impl<'b> Uris<'b> {
    /// The URIs of a SP-separated list.
    pub fn new(value: &'b [u8]) -> Self {
        Uris { rest: value }
    }
}

impl<'b> Iterator for Uris<'b> {
    type Item = &'b [u8];

    fn next(&mut self) -> Option<&'b [u8]> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            let (item, rest) = match memchr::memchr(b' ', self.rest) {
                Some(i) => (
                    self.rest.get(..i).unwrap_or_default(),
                    self.rest.get(i + 1..).unwrap_or_default(),
                ),
                None => (self.rest, &b""[..]),
            };
            self.rest = rest;
            if !item.is_empty() {
                return Some(item);
            }
        }
    }
}

fn name_is(name: &[u8], want: &str) -> bool {
    name.eq_ignore_ascii_case(want.as_bytes())
}

/// Parses the headers and body of a frame whose start line and end-line are already known.
///
/// `end_line` is the index of the end-line's first dash (so `buf[end_line - 2..end_line]` is the
/// CRLF before it), `len` the frame length.
pub(crate) fn parse_frame<'h, 'b>(
    buf: &'b [u8],
    start: StartInfo<'b>,
    end_line: usize,
    flag: Flag,
    len: usize,
    headers: &'h mut [Header<'b>],
) -> Result<Frame<'h, 'b>, Error> {
    let region = buf.get(..end_line).ok_or(Error::BadHeader)?;
    let mut h = start.end;
    let mut n = 0usize;
    let mut body = None;
    while h < end_line {
        let rest = region.get(h..).unwrap_or_default();
        if rest.starts_with(b"\r\n") {
            // The empty line: the body follows, up to the CRLF before the end-line.
            let body_start = h + 2;
            let body_end = end_line.saturating_sub(2);
            if body_start > body_end {
                return Err(Error::MissingBodyData);
            }
            body = Some(buf.get(body_start..body_end).unwrap_or_default());
            break;
        }
        let k = memchr::memchr2(b'\r', b'\n', rest).ok_or(Error::BadHeader)?;
        if rest.get(k) != Some(&b'\r') || rest.get(k + 1) != Some(&b'\n') {
            return Err(Error::BadHeader);
        }
        let (name, value) = parse_header_line(rest.get(..k).unwrap_or_default())?;
        let slot = headers.get_mut(n).ok_or(Error::TooManyHeaders)?;
        *slot = Header { name, value };
        n += 1;
        h += k + 2;
    }
    let headers: &'h [Header<'b>] = headers;
    let headers = headers.get(..n).unwrap_or_default();
    validate(headers, &start.start, body)?;
    Ok(Frame {
        transaction_id: start.tid,
        start: start.start,
        headers,
        body,
        flag,
        len,
    })
}

fn validate(
    headers: &[Header<'_>],
    start: &StartLine<'_>,
    body: Option<&[u8]>,
) -> Result<(), Error> {
    match headers.first() {
        Some(h) if name_is(h.name, "To-Path") => validate_path(h.value)?,
        _ => return Err(Error::ToPathNotFirst),
    }
    match headers.get(1) {
        Some(h) if name_is(h.name, "From-Path") => validate_path(h.value)?,
        _ => return Err(Error::FromPathNotSecond),
    }
    let mut content_type = false;
    for h in headers.get(2..).unwrap_or_default() {
        let name = h.name;
        if name_is(name, "To-Path") || name_is(name, "From-Path") {
            return Err(Error::DuplicatePath);
        } else if name_is(name, "Content-Type") {
            content_type = true;
        } else if name_is(name, "Message-ID") {
            if !is_ident(h.value) {
                return Err(Error::BadMessageId);
            }
        } else if name_is(name, "Byte-Range") {
            parse_byte_range(h.value)?;
        } else if name_is(name, "Success-Report") {
            parse_report(h.value, false)?;
        } else if name_is(name, "Failure-Report") {
            parse_report(h.value, true)?;
        } else if name_is(name, "Status") {
            parse_status(h.value)?;
        } else if name_is(name, "Use-Path") {
            validate_path(h.value)?;
        }
    }
    if body.is_some() && matches!(start, StartLine::Response { .. }) {
        return Err(Error::ResponseWithBody);
    }
    match (body.is_some(), content_type) {
        (true, false) => Err(Error::BodyWithoutContentType),
        (false, true) => Err(Error::ContentTypeWithoutBody),
        _ => Ok(()),
    }
}

impl<'h, 'b> Frame<'h, 'b> {
    /// The value of the first header named `name` (case-insensitive), known or not.
    pub fn header(&self, name: &str) -> Option<&'b [u8]> {
        self.headers
            .iter()
            .find(|h| name_is(h.name, name))
            .map(|h| h.value)
    }

    /// The values of every header named `name` (case-insensitive), in order.
    pub fn headers_named<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'b [u8]> + 's {
        self.headers
            .iter()
            .filter(move |h| name_is(h.name, name))
            .map(|h| h.value)
    }

    /// The method, for a request.
    pub fn method(&self) -> Option<Method<'b>> {
        match self.start {
            StartLine::Request { method } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// The status code, for a response.
    pub fn code(&self) -> Option<u16> {
        match self.start {
            StartLine::Response { code, .. } => Some(code),
            StartLine::Request { .. } => None,
        }
    }

    /// Whether this frame is a request.
    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    /// The URIs of To-Path (empty if the header is missing, which [`super::parse`] never allows).
    pub fn to_path(&self) -> Uris<'b> {
        Uris::new(self.header("To-Path").unwrap_or_default())
    }

    /// The URIs of From-Path (empty if the header is missing).
    pub fn from_path(&self) -> Uris<'b> {
        Uris::new(self.header("From-Path").unwrap_or_default())
    }

    /// The URIs of Use-Path (RFC 4976), if present.
    pub fn use_path(&self) -> Option<Uris<'b>> {
        self.header("Use-Path").map(Uris::new)
    }

    /// The Message-ID value, if present.
    pub fn message_id(&self) -> Option<&'b [u8]> {
        self.header("Message-ID")
    }

    /// The Byte-Range, decoded, if present.
    pub fn byte_range(&self) -> Option<Result<ByteRange, Error>> {
        self.header("Byte-Range").map(parse_byte_range)
    }

    /// The Success-Report value (`yes` / `no`), if present.
    pub fn success_report(&self) -> Option<Result<ReportRequest, Error>> {
        self.header("Success-Report")
            .map(|v| parse_report(v, false))
    }

    /// The Failure-Report value (`yes` / `no` / `partial`), if present.
    pub fn failure_report(&self) -> Option<Result<ReportRequest, Error>> {
        self.header("Failure-Report").map(|v| parse_report(v, true))
    }

    /// The REPORT Status header, decoded, if present.
    pub fn status(&self) -> Option<Result<ReportStatus<'b>, Error>> {
        self.header("Status").map(parse_status)
    }

    /// The Content-Type value, if present (iff there is a body).
    pub fn content_type(&self) -> Option<&'b [u8]> {
        self.header("Content-Type")
    }

    /// The Expires value in seconds (RFC 4976), if present.
    pub fn expires(&self) -> Option<Result<u32, Error>> {
        self.header("Expires").map(parse_u32)
    }

    /// The Min-Expires value in seconds (RFC 4976), if present.
    pub fn min_expires(&self) -> Option<Result<u32, Error>> {
        self.header("Min-Expires").map(parse_u32)
    }

    /// The Max-Expires value in seconds (RFC 4976), if present.
    pub fn max_expires(&self) -> Option<Result<u32, Error>> {
        self.header("Max-Expires").map(parse_u32)
    }

    /// The WWW-Authenticate value (RFC 4976), if present.
    pub fn www_authenticate(&self) -> Option<&'b [u8]> {
        self.header("WWW-Authenticate")
    }

    /// The Authorization value (RFC 4976), if present.
    pub fn authorization(&self) -> Option<&'b [u8]> {
        self.header("Authorization")
    }

    /// The Authentication-Info value (RFC 4976), if present.
    pub fn authentication_info(&self) -> Option<&'b [u8]> {
        self.header("Authentication-Info")
    }
}
