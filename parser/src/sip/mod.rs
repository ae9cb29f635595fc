//! SIP messages (RFC 3261 §7 and §25): zero-copy parsing, typed header access, the Call-ID fast
//! path and stream framing.
//!
//! [`parse`] splits a message into a start line, a caller-supplied array of [`Header`]s and a
//! body, all slices of the input, and checks the syntax of every header routing depends on
//! (Via, Call-ID, CSeq, From, To, Max-Forwards, Content-Length, Content-Type, Contact, Route,
//! Record-Route, Expires, Date), so that a message that passes can be routed without further
//! error paths. Nothing is allocated. Unknown headers are kept and only their line structure is
//! checked.
//!
//! Limits: a message may have at most as many header lines as the caller's array holds (past
//! that, [`ErrorKind::TooManyHeaders`], answered 400); lengths are bounded only by the input.

mod callid;
pub(crate) mod chars;
#[doc(hidden)]
pub mod check;
mod fields;
mod frame;
mod header;
#[doc(hidden)]
pub mod scan;
mod uri;

pub use callid::find_call_id;
pub use frame::{frame, FrameError, FrameOptions, Framed};
pub use header::{
    CSeq, Header, HeaderKind, NameAddr, NameAddrs, ValueError, Via, Vias, EMPTY_HEADER,
};
pub use uri::{params, parse_uri, percent_decode, Host, Params, Scheme, Uri, UriContext, UriError};

use crate::Status;
use chars::{is_token, parse_decimal, trim_lws};
use std::fmt;

/// How the bytes handed to [`parse`] were delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// One whole UDP datagram: a missing Content-Length means "the rest of the datagram" (RFC 3261
    /// §18.3), a body shorter than Content-Length is an error, and bytes after the body are
    /// reported by [`Message::trailing`] (RFC 4475 §3.1.1.8).
    Datagram,
    /// A prefix of a TCP byte stream: Content-Length is required, an incomplete message gives
    /// [`Status::Partial`], and [`Message::len`] says where the next message starts.
    Stream,
}

/// The first line of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartLine<'b> {
    /// `Method SP Request-URI SP SIP-Version`
    Request {
        /// The method, case as sent (methods are case-sensitive).
        method: &'b [u8],
        /// The Request-URI as sent.
        uri: &'b [u8],
    },
    /// `SIP-Version SP Status-Code SP Reason-Phrase`
    Response {
        /// The status code, 100 to 699.
        code: u16,
        /// The reason phrase, possibly empty, as sent (UTF-8 allowed).
        reason: &'b [u8],
    },
}

/// The SIP methods sipshard knows (RFC 3261 and extensions); others are [`Method::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Method<'b> {
    Invite,
    Ack,
    Bye,
    Cancel,
    Register,
    Options,
    Message,
    Info,
    Update,
    Prack,
    Subscribe,
    Notify,
    Refer,
    Publish,
    /// Any other (extension) method.
    Other(&'b [u8]),
}

impl<'b> Method<'b> {
    /// Classifies a method name (case-sensitive, RFC 3261 §7.1).
    pub fn from_bytes(m: &'b [u8]) -> Method<'b> {
        match m {
            b"INVITE" => Method::Invite,
            b"ACK" => Method::Ack,
            b"BYE" => Method::Bye,
            b"CANCEL" => Method::Cancel,
            b"REGISTER" => Method::Register,
            b"OPTIONS" => Method::Options,
            b"MESSAGE" => Method::Message,
            b"INFO" => Method::Info,
            b"UPDATE" => Method::Update,
            b"PRACK" => Method::Prack,
            b"SUBSCRIBE" => Method::Subscribe,
            b"NOTIFY" => Method::Notify,
            b"REFER" => Method::Refer,
            b"PUBLISH" => Method::Publish,
            other => Method::Other(other),
        }
    }
}

/// What was wrong with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The Request-Line or Status-Line is malformed (extra or missing SP, no version...).
    StartLine,
    /// The method is not a token.
    Method,
    /// The Request-URI is malformed (or carries headers, or is enclosed in `<>`).
    RequestUri,
    /// The SIP-Version is well-formed but not 2.0.
    VersionNotSupported,
    /// The status code is not three digits in 100..=699.
    StatusCode,
    /// A header line has no name, a malformed name, or no colon.
    HeaderName,
    /// A bare CR or LF where CRLF was required.
    LineEnding,
    /// The header section ends before its closing empty line.
    HeadersIncomplete,
    /// More header lines than the caller's header array holds.
    TooManyHeaders,
    /// The value of a header sipshard checks is malformed.
    InvalidHeader(HeaderKind),
    /// The datagram is shorter than Content-Length says.
    BodyTruncated,
    /// A stream message without Content-Length (RFC 3261 §18.3 requires it).
    MissingContentLength,
    /// The CSeq method differs from the request method.
    CSeqMethodMismatch,
    /// The CSeq method differs from an unknown request method (RFC 4475 §3.1.2.18: 501).
    UnknownMethodMismatch,
}

/// A rejected message: what was wrong, and whether it was a response (responses are never
/// answered, only dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Error {
    /// What was wrong.
    pub kind: ErrorKind,
    /// Whether the start line said this is a response.
    pub is_response: bool,
}

/// What to do with a rejected message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Answer the request with this status code.
    Reply(u16),
    /// Drop it silently (a malformed response, RFC 3261 §18.1.2 / RFC 4475 §3.1.2.5).
    Drop,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Reply(c) => write!(f, "{c}"),
            Verdict::Drop => f.write_str("drop"),
        }
    }
}

impl Error {
    /// The response RFC 3261 / RFC 4475 give this error.
    pub fn verdict(&self) -> Verdict {
        if self.is_response {
            return Verdict::Drop;
        }
        Verdict::Reply(match self.kind {
            ErrorKind::VersionNotSupported => 505,
            ErrorKind::UnknownMethodMismatch => 501,
            _ => 400,
        })
    }

    /// A short reason, fit for a Warning header or a log line.
    pub fn reason(&self) -> &'static str {
        match self.kind {
            ErrorKind::StartLine => "malformed start line",
            ErrorKind::Method => "malformed method",
            ErrorKind::RequestUri => "malformed Request-URI",
            ErrorKind::VersionNotSupported => "SIP version not supported",
            ErrorKind::StatusCode => "malformed status code",
            ErrorKind::HeaderName => "malformed header line",
            ErrorKind::LineEnding => "bare CR or LF in header section",
            ErrorKind::HeadersIncomplete => "header section not terminated",
            ErrorKind::TooManyHeaders => "too many header lines",
            ErrorKind::InvalidHeader(k) => invalid_header_reason(k),
            ErrorKind::BodyTruncated => "body shorter than Content-Length",
            ErrorKind::MissingContentLength => "Content-Length required on stream transports",
            ErrorKind::CSeqMethodMismatch | ErrorKind::UnknownMethodMismatch => {
                "CSeq method does not match the request method"
            }
        }
    }

    /// Every value [`Error::label`] returns, each once, in a fixed order (metrics keep one
    /// counter per label, indexed like this).
    pub const LABELS: [&'static str; 13] = [
        "start_line",
        "method",
        "request_uri",
        "version",
        "status_code",
        "header_name",
        "line_ending",
        "headers_incomplete",
        "too_many_headers",
        "header_value",
        "body_truncated",
        "missing_content_length",
        "cseq_mismatch",
    ];

    /// A stable machine-readable label for metrics (`parse errors by reason`).
    pub fn label(&self) -> &'static str {
        match self.kind {
            ErrorKind::StartLine => "start_line",
            ErrorKind::Method => "method",
            ErrorKind::RequestUri => "request_uri",
            ErrorKind::VersionNotSupported => "version",
            ErrorKind::StatusCode => "status_code",
            ErrorKind::HeaderName => "header_name",
            ErrorKind::LineEnding => "line_ending",
            ErrorKind::HeadersIncomplete => "headers_incomplete",
            ErrorKind::TooManyHeaders => "too_many_headers",
            ErrorKind::InvalidHeader(_) => "header_value",
            ErrorKind::BodyTruncated => "body_truncated",
            ErrorKind::MissingContentLength => "missing_content_length",
            ErrorKind::CSeqMethodMismatch | ErrorKind::UnknownMethodMismatch => "cseq_mismatch",
        }
    }
}

fn invalid_header_reason(k: HeaderKind) -> &'static str {
    match k {
        HeaderKind::Via => "malformed Via header",
        HeaderKind::CallId => "malformed Call-ID header",
        HeaderKind::CSeq => "malformed CSeq header",
        HeaderKind::From => "malformed From header",
        HeaderKind::To => "malformed To header",
        HeaderKind::MaxForwards => "malformed Max-Forwards header",
        HeaderKind::ContentLength => "malformed Content-Length header",
        HeaderKind::ContentType => "malformed Content-Type header",
        HeaderKind::Contact => "malformed Contact header",
        HeaderKind::Route => "malformed Route header",
        HeaderKind::RecordRoute => "malformed Record-Route header",
        HeaderKind::Expires => "malformed Expires header",
        HeaderKind::Date => "malformed Date header",
        _ => "malformed header value",
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for Error {}

const NONE: u16 = u16::MAX;

/// A parsed SIP message: slices into the input, plus the scalar routing fields decoded during
/// the parse (Call-ID, CSeq, Max-Forwards, Content-Length). Everything else is decoded when
/// asked for; [`Message::validate`] checks the full syntax of every header sipshard knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'h, 'b> {
    buf: &'b [u8],
    start: StartLine<'b>,
    headers: &'h [Header<'b>],
    /// Where the first Call-ID is (an index, not its slice: 128 bytes of `Message` are moved
    /// without a memcpy call, 144 were not). A `u32`, unlike the other indexes, so that no
    /// header array can make it point at another header; it fits in the same 128 bytes.
    call_id_idx: u32,
    cseq: Option<CSeq<'b>>,
    from_idx: u16,
    to_idx: u16,
    via_idx: u16,
    content_type_idx: u16,
    max_forwards: Option<u8>,
    content_length: Option<u32>,
    content_length_conflict: bool,
    /// A CR not followed by LF somewhere in the head, noted by the splitter (which reads every
    /// head byte anyway) so that `validate` need not scan the head again.
    bare_cr: bool,
    head_len: usize,
    body_end: usize,
}

impl<'h, 'b> Message<'h, 'b> {
    /// The start line.
    pub fn start_line(&self) -> StartLine<'b> {
        self.start
    }

    /// Whether this is a request.
    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    /// The method of a request, as sent.
    pub fn method(&self) -> Option<&'b [u8]> {
        match self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// The method of a request, or the CSeq method of a response.
    pub fn method_kind(&self) -> Option<Method<'b>> {
        self.method()
            .or(self.cseq.map(|c| c.method))
            .map(Method::from_bytes)
    }

    /// The Request-URI of a request, parsed (`None` for a response or a malformed URI).
    pub fn request_uri(&self) -> Option<Uri<'b>> {
        match self.start {
            StartLine::Request { uri, .. } => parse_uri(uri, UriContext::RequestUri).ok(),
            StartLine::Response { .. } => None,
        }
    }

    /// The status code of a response.
    pub fn status_code(&self) -> Option<u16> {
        match self.start {
            StartLine::Response { code, .. } => Some(code),
            StartLine::Request { .. } => None,
        }
    }

    /// All header lines, in order.
    pub fn headers(&self) -> &'h [Header<'b>] {
        self.headers
    }

    /// The value of the first header called `name` (long or compact form, any case).
    pub fn header(&self, name: &str) -> Option<&'b [u8]> {
        self.header_values(name).next()
    }

    /// Values of every header called `name`, in order (long or compact form, any case).
    pub fn header_values<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'b [u8]> + 's {
        let kind = HeaderKind::from_name(name.as_bytes());
        self.headers
            .iter()
            .filter(move |h| {
                if kind == HeaderKind::Other {
                    h.kind == HeaderKind::Other && h.name.eq_ignore_ascii_case(name.as_bytes())
                } else {
                    h.kind == kind
                }
            })
            .map(|h| h.value)
    }

    /// Values of every header of a known kind.
    pub fn values_of(&self, kind: HeaderKind) -> impl Iterator<Item = &'b [u8]> + 'h {
        self.headers
            .iter()
            .filter(move |h| h.kind == kind)
            .map(|h| h.value)
    }

    /// How many header lines of `kind` the message has (RFC 4475 §3.3.8: more than one Call-ID,
    /// CSeq, From, To or Max-Forwards is well-formed but must be refused above the parser).
    pub fn count_of(&self, kind: HeaderKind) -> usize {
        self.headers.iter().filter(|h| h.kind == kind).count()
    }

    fn value_at(&self, idx: u16) -> Option<&'b [u8]> {
        self.headers.get(usize::from(idx)).map(|h| h.value)
    }

    /// The Call-ID (first one, when several were sent).
    pub fn call_id(&self) -> Option<&'b [u8]> {
        self.headers.get(self.call_id_idx as usize).map(|h| h.value)
    }

    /// The CSeq.
    pub fn cseq(&self) -> Option<CSeq<'b>> {
        self.cseq
    }

    /// The From header, decoded.
    pub fn from(&self) -> Option<NameAddr<'b>> {
        NameAddr::parse(self.value_at(self.from_idx)?).ok()
    }

    /// The To header, decoded.
    pub fn to(&self) -> Option<NameAddr<'b>> {
        NameAddr::parse(self.value_at(self.to_idx)?).ok()
    }

    /// The From tag (found without decoding the whole header).
    pub fn from_tag(&self) -> Option<&'b [u8]> {
        fields::name_addr_tag(self.value_at(self.from_idx)?)
    }

    /// The To tag (found without decoding the whole header).
    pub fn to_tag(&self) -> Option<&'b [u8]> {
        fields::name_addr_tag(self.value_at(self.to_idx)?)
    }

    /// The topmost Via value.
    pub fn top_via(&self) -> Option<Via<'b>> {
        Vias::new(self.value_at(self.via_idx)?).next()?.ok()
    }

    /// The branch of the topmost Via (found without decoding the whole Via).
    pub fn branch(&self) -> Option<&'b [u8]> {
        fields::via_branch(self.value_at(self.via_idx)?)
    }

    /// Every Via value, top first, across all Via header lines.
    pub fn vias(&self) -> impl Iterator<Item = Via<'b>> + 'h {
        self.values_of(HeaderKind::Via)
            .flat_map(|v| Vias::new(v).filter_map(Result::ok))
    }

    /// Max-Forwards.
    pub fn max_forwards(&self) -> Option<u8> {
        self.max_forwards
    }

    /// Content-Length, when the message carried one.
    pub fn content_length(&self) -> Option<u32> {
        self.content_length
    }

    /// Whether several Content-Length headers disagreed (RFC 4475 §3.3.9): the message parses,
    /// but its framing cannot be trusted; answer 400 and, on a stream, close the connection.
    pub fn content_length_conflict(&self) -> bool {
        self.content_length_conflict
    }

    /// Content-Type, as sent.
    pub fn content_type(&self) -> Option<&'b [u8]> {
        self.value_at(self.content_type_idx)
    }

    /// Every Contact entry (none for the wildcard `*`).
    pub fn contacts(&self) -> impl Iterator<Item = NameAddr<'b>> + 'h {
        self.values_of(HeaderKind::Contact)
            .filter(|v| *v != b"*")
            .flat_map(|v| NameAddrs::new(v).filter_map(Result::ok))
    }

    /// Every Route entry, in order.
    pub fn routes(&self) -> impl Iterator<Item = NameAddr<'b>> + 'h {
        self.values_of(HeaderKind::Route)
            .flat_map(|v| NameAddrs::new(v).filter_map(Result::ok))
    }

    /// Every Record-Route entry, in order.
    pub fn record_routes(&self) -> impl Iterator<Item = NameAddr<'b>> + 'h {
        self.values_of(HeaderKind::RecordRoute)
            .flat_map(|v| NameAddrs::new(v).filter_map(Result::ok))
    }

    /// The Expires header, in seconds.
    pub fn expires(&self) -> Option<u32> {
        self.values_of(HeaderKind::Expires)
            .next()
            .and_then(|v| parse_decimal(trim_lws(v), u64::from(u32::MAX)))
            .map(|v| v as u32)
    }

    /// The body.
    pub fn body(&self) -> &'b [u8] {
        &self.buf[self.head_len..self.body_end]
    }

    /// Length of the start line and header section, closing empty line included.
    pub fn head_len(&self) -> usize {
        self.head_len
    }

    /// Length of the whole message (leading CRLFs, head and body). On a stream, the next message
    /// starts here.
    pub fn len(&self) -> usize {
        self.body_end
    }

    /// Whether the message is empty (never true for a parsed message).
    pub fn is_empty(&self) -> bool {
        self.body_end == 0
    }

    /// Bytes after the message in the buffer (a datagram's extra octets, RFC 4475 §3.1.1.8).
    pub fn trailing(&self) -> &'b [u8] {
        &self.buf[self.body_end..]
    }

    /// The bytes the message was parsed from.
    pub fn as_bytes(&self) -> &'b [u8] {
        &self.buf[..self.body_end]
    }

    /// Checks the full RFC 3261 syntax of the Request-URI and of every header sipshard knows
    /// (Via, Call-ID, CSeq, From, To, Max-Forwards, Content-Length, Content-Type, Contact,
    /// Route, Record-Route, Expires, Date), and that the header section has no bare CR.
    ///
    /// [`parse`] checks only framing and the scalar routing fields, so that routing a message
    /// costs little; a server calls this before acting on a message (RFC 4475 §3.1.2 verdicts
    /// hold for `parse` followed by `validate`).
    pub fn validate(&self) -> Result<(), Error> {
        let is_response = !self.is_request();
        let err = |kind| Error { kind, is_response };
        if let StartLine::Request { uri, .. } = self.start {
            if !check::uri_ok(uri, UriContext::RequestUri) {
                return Err(err(ErrorKind::RequestUri));
            }
        }
        if self.bare_cr {
            return Err(err(ErrorKind::LineEnding));
        }
        for h in self.headers {
            if !check::header_ok(h.kind, h.value) {
                return Err(err(ErrorKind::InvalidHeader(h.kind)));
            }
        }
        Ok(())
    }
}

/// Internal: an error, or "need more bytes" (stream framing only).
enum Fail {
    Incomplete,
    Bad(ErrorKind),
}

impl From<ErrorKind> for Fail {
    fn from(k: ErrorKind) -> Fail {
        Fail::Bad(k)
    }
}

/// Parses one SIP message from `buf` into `headers`.
///
/// Checks framing, the start line, the header line structure (CRLF line ends, folding, names
/// and colons) and the scalar routing fields (Call-ID present values, CSeq, Max-Forwards,
/// Content-Length, the CSeq method against the request method). Call [`Message::validate`] for
/// the full syntax of the other headers.
///
/// `Ok(Status::Partial)` is returned only with [`Framing::Stream`]; a datagram that ends early is
/// an error.
pub fn parse<'h, 'b>(
    buf: &'b [u8],
    headers: &'h mut [Header<'b>],
    framing: Framing,
) -> Result<Status<Message<'h, 'b>>, Error> {
    let mut is_response = false;
    match parse_inner(buf, headers, framing, &mut is_response) {
        Ok(m) => Ok(Status::Complete(m)),
        Err(Fail::Incomplete) => match framing {
            Framing::Stream => Ok(Status::Partial),
            Framing::Datagram => Err(Error {
                kind: ErrorKind::HeadersIncomplete,
                is_response,
            }),
        },
        Err(Fail::Bad(kind)) => Err(Error { kind, is_response }),
    }
}

/// [`parse`] then [`Message::validate`]: what a server does with a message it will act on.
pub fn parse_strict<'h, 'b>(
    buf: &'b [u8],
    headers: &'h mut [Header<'b>],
    framing: Framing,
) -> Result<Status<Message<'h, 'b>>, Error> {
    let r = parse(buf, headers, framing)?;
    if let Status::Complete(m) = &r {
        m.validate()?;
    }
    Ok(r)
}

/// Finds the CRLF ending the line (or the folded-line piece) that starts at `from`; returns the
/// index of the CR. A LF without a CR before it is an error; a CR without a LF after it is only
/// noted in `bare_cr` (the parse accepts it, `validate` refuses it).
///
/// Header lines are short (20 to 80 bytes), so this is the SWAR [`scan::find_lt`] (bytes below
/// 0x0E: CR, LF and the rare HT or other control byte, skipped here), which costs less per line
/// than restarting memchr's vector search; `scan`'s tests and the `sip_scan` fuzz target hold it
/// to the byte-at-a-time search.
#[inline]
fn line_end(buf: &[u8], from: usize, bare_cr: &mut bool) -> Result<usize, Fail> {
    let mut i = from;
    loop {
        let at = i + scan::find_lt(&buf[i..], 0x0e).ok_or(Fail::Incomplete)?;
        match buf[at] {
            // No CR between `from` and this LF.
            b'\n' => return Err(Fail::Bad(ErrorKind::LineEnding)),
            b'\r' => match buf.get(at + 1) {
                Some(b'\n') => return Ok(at),
                Some(_) => *bare_cr = true,
                None => return Err(Fail::Incomplete),
            },
            _ => {}
        }
        i = at + 1;
    }
}

/// Whether `v` holds SP, HT, CR or LF: a SWAR search for bytes at or below SP (a Call-ID is
/// 20 to 50 bytes of `word` characters, which the byte loop paid a compare chain for each).
#[inline]
fn has_lws(v: &[u8]) -> bool {
    let mut i = 0;
    while let Some(k) = scan::find_lt(&v[i..], 0x21) {
        if chars::is_lws(v[i + k]) {
            return true;
        }
        i += k + 1;
    }
    false
}

fn parse_version(v: &[u8]) -> Result<(), ErrorKind> {
    if v == b"SIP/2.0" {
        return Ok(());
    }
    // SIP-Version = "SIP" "/" 1*DIGIT "." 1*DIGIT ("SIP" case-insensitive per RFC 3261 §25)
    if v.len() < 7 || !v[..4].eq_ignore_ascii_case(b"SIP/") {
        return Err(ErrorKind::StartLine);
    }
    let nums = &v[4..];
    let dot = scan::find(nums, b'.').ok_or(ErrorKind::StartLine)?;
    let (major, minor) = (&nums[..dot], &nums[dot + 1..]);
    let digits = |s: &[u8]| !s.is_empty() && s.iter().all(u8::is_ascii_digit);
    if !digits(major) || !digits(minor) {
        return Err(ErrorKind::StartLine);
    }
    if nums != b"2.0" {
        return Err(ErrorKind::VersionNotSupported);
    }
    Ok(())
}

fn parse_inner<'h, 'b>(
    buf: &'b [u8],
    headers: &'h mut [Header<'b>],
    framing: Framing,
    is_response: &mut bool,
) -> Result<Message<'h, 'b>, Fail> {
    // RFC 3261 §7.5: CRLFs before the start line are ignored.
    let mut pos = 0;
    let mut bare_cr = false;
    while pos < buf.len() && (buf[pos] == b'\r' || buf[pos] == b'\n') {
        bare_cr |= buf[pos] == b'\r' && buf.get(pos + 1) != Some(&b'\n');
        pos += 1;
    }
    if pos >= buf.len() {
        return Err(Fail::Incomplete);
    }
    let sl_end = line_end(buf, pos, &mut bare_cr)?;
    let line = &buf[pos..sl_end];
    let start = if line.len() >= 4 && line[..4].eq_ignore_ascii_case(b"SIP/") {
        *is_response = true;
        parse_status_line(line)?
    } else {
        parse_request_line(line)?
    };
    pos = sl_end + 2;

    let mut n = 0usize;
    let mut call_id_idx = u32::MAX;
    let mut cseq: Option<CSeq<'b>> = None;
    let mut from_idx = NONE;
    let mut to_idx = NONE;
    let mut via_idx = NONE;
    let mut content_type_idx = NONE;
    let mut max_forwards = None;
    let mut content_length: Option<u32> = None;
    let mut content_length_conflict = false;

    let head_end = loop {
        match buf.get(pos) {
            None => return Err(Fail::Incomplete),
            Some(b'\r') => match buf.get(pos + 1) {
                None => return Err(Fail::Incomplete),
                Some(b'\n') => break pos + 2,
                Some(_) => return Err(ErrorKind::LineEnding.into()),
            },
            Some(_) => {}
        }
        // header-name HCOLON. Most names are known ones right before the colon: one SWAR
        // search for the colon and one classification. `from_name` calls a name known only
        // when it is all token characters, so the token walk would have stopped at the same
        // colon; anything else (unknown names, SP before the colon, no colon close by) takes
        // the walk.
        let window = &buf[pos..buf.len().min(pos + 20)];
        let mut candidate_len = usize::MAX;
        let mut kind = HeaderKind::Other;
        if let Some(c) = scan::find(window, b':') {
            candidate_len = c;
            kind = HeaderKind::from_name(&window[..c]);
        }
        let name;
        if kind != HeaderKind::Other {
            name = &window[..candidate_len];
            pos += candidate_len + 1;
        } else {
            let name_start = pos;
            while pos < buf.len() && is_token(buf[pos]) {
                pos += 1;
            }
            name = &buf[name_start..pos];
            while pos < buf.len() && (buf[pos] == b' ' || buf[pos] == b'\t') {
                pos += 1;
            }
            match buf.get(pos) {
                None => return Err(Fail::Incomplete),
                Some(b':') if !name.is_empty() => pos += 1,
                Some(_) => return Err(ErrorKind::HeaderName.into()),
            }
            // The candidate was this same name, already found unknown.
            if name.len() != candidate_len {
                kind = HeaderKind::from_name(name);
            }
        }
        // Nearly every value follows one SP.
        if buf.get(pos) == Some(&b' ') && buf.get(pos + 1).is_some_and(|&c| c > b' ') {
            pos += 1;
        } else {
            while pos < buf.len() && (buf[pos] == b' ' || buf[pos] == b'\t') {
                pos += 1;
            }
        }
        // The value runs to the first CRLF not followed by SP or HT. No LF can lie between the
        // line start and `pos` (names, SP, HT and `:` only), so the search starts here.
        let value_start = pos;
        let mut end = line_end(buf, pos, &mut bare_cr)?;
        loop {
            match buf.get(end + 2) {
                None => return Err(Fail::Incomplete),
                Some(b' ') | Some(b'\t') => end = line_end(buf, end + 2, &mut bare_cr)?,
                Some(_) => break,
            }
        }
        pos = end + 2;
        let mut value = &buf[value_start..end];
        if value.last().is_some_and(|&c| chars::is_lws(c)) || value.first() == Some(&b'\r') {
            value = trim_lws(value);
        }
        if n >= headers.len() {
            return Err(ErrorKind::TooManyHeaders.into());
        }
        headers[n] = Header { name, value, kind };
        let idx = n as u16;
        n += 1;

        match kind {
            HeaderKind::Other => {}
            HeaderKind::Via if via_idx == NONE => via_idx = idx,
            HeaderKind::From if from_idx == NONE => from_idx = idx,
            HeaderKind::To if to_idx == NONE => to_idx = idx,
            HeaderKind::ContentType if content_type_idx == NONE => content_type_idx = idx,
            HeaderKind::CallId => {
                // The routing key: one word, no white space (its full syntax: `validate`).
                if value.is_empty() || has_lws(value) {
                    return Err(ErrorKind::InvalidHeader(kind).into());
                }
                if call_id_idx == u32::MAX {
                    call_id_idx = (n - 1) as u32;
                }
            }
            HeaderKind::CSeq => {
                let c =
                    CSeq::parse(value).map_err(|_| Fail::Bad(ErrorKind::InvalidHeader(kind)))?;
                cseq.get_or_insert(c);
            }
            HeaderKind::MaxForwards => {
                let v =
                    parse_decimal(value, 255).ok_or(Fail::Bad(ErrorKind::InvalidHeader(kind)))?;
                max_forwards.get_or_insert(v as u8);
            }
            HeaderKind::ContentLength => {
                let v = parse_decimal(value, u64::from(u32::MAX))
                    .ok_or(Fail::Bad(ErrorKind::InvalidHeader(kind)))?
                    as u32;
                match content_length {
                    None => content_length = Some(v),
                    Some(old) if old != v => content_length_conflict = true,
                    Some(_) => {}
                }
            }
            _ => {}
        }
    };

    if let (StartLine::Request { method, .. }, Some(c)) = (start, cseq) {
        if c.method != method {
            return Err(match Method::from_bytes(method) {
                Method::Other(_) => ErrorKind::UnknownMethodMismatch,
                _ => ErrorKind::CSeqMethodMismatch,
            }
            .into());
        }
    }

    let avail = buf.len() - head_end;
    let body_len = match (content_length, framing) {
        (Some(cl), _) => {
            let cl = cl as usize;
            if cl > avail {
                return match framing {
                    Framing::Stream => Err(Fail::Incomplete),
                    Framing::Datagram => Err(ErrorKind::BodyTruncated.into()),
                };
            }
            cl
        }
        (None, Framing::Datagram) => avail,
        (None, Framing::Stream) => return Err(ErrorKind::MissingContentLength.into()),
    };

    Ok(Message {
        buf,
        start,
        headers: &headers[..n],
        call_id_idx,
        cseq,
        from_idx,
        to_idx,
        via_idx,
        content_type_idx,
        max_forwards,
        content_length,
        content_length_conflict,
        bare_cr,
        head_len: head_end,
        body_end: head_end + body_len,
    })
}

fn parse_request_line(line: &[u8]) -> Result<StartLine<'_>, ErrorKind> {
    // Method SP Request-URI SP SIP-Version: exactly two single spaces (RFC 4475 §3.1.2.9/10).
    let sp1 = scan::find(line, b' ').ok_or(ErrorKind::StartLine)?;
    let method = &line[..sp1];
    if method.is_empty() || !method.iter().all(|&c| is_token(c)) {
        return Err(ErrorKind::Method);
    }
    let rest = &line[sp1 + 1..];
    let sp2 = scan::rfind(rest, b' ').ok_or(ErrorKind::StartLine)?;
    let uri = &rest[..sp2];
    let version = &rest[sp2 + 1..];
    // White space inside the Request-URI, before or after it (§3.1.2.8/9/10) is malformed.
    if uri.is_empty() || scan::find2(uri, b' ', b'\t').is_some() || version.is_empty() {
        return Err(ErrorKind::StartLine);
    }
    parse_version(version)?;
    Ok(StartLine::Request { method, uri })
}

fn parse_status_line(line: &[u8]) -> Result<StartLine<'_>, ErrorKind> {
    let sp1 = scan::find(line, b' ').ok_or(ErrorKind::StartLine)?;
    parse_version(&line[..sp1])?;
    let rest = &line[sp1 + 1..];
    let code_end = scan::find(rest, b' ').unwrap_or(rest.len());
    let code = &rest[..code_end];
    if code.len() != 3 {
        return Err(ErrorKind::StatusCode);
    }
    let code = parse_decimal(code, 699).ok_or(ErrorKind::StatusCode)? as u16;
    if code < 100 {
        return Err(ErrorKind::StatusCode);
    }
    // RFC 3261 requires the SP before an empty reason; a missing one is tolerated.
    let reason = rest.get(code_end + 1..).unwrap_or(&[]);
    Ok(StartLine::Response { code, reason })
}

#[cfg(test)]
mod tests;
