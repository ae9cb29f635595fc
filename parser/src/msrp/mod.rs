//! Streaming, zero-copy MSRP (RFC 4975 §7, §9; RFC 4976 `AUTH`) frame parsing.
//!
//! An MSRP connection carries frames back to back on one TCP byte stream. Each frame is
//!
//! ```text
//! MSRP SP transact-id SP (method | 3DIGIT [SP comment]) CRLF
//! To-Path: ... CRLF
//! From-Path: ... CRLF
//! *(header CRLF)
//! [CRLF body CRLF]                      ; present iff Content-Type is
//! "-------" transact-id ("+" / "$" / "#") CRLF
//! ```
//!
//! A frame is delimited by its end-line only (never by `Byte-Range`): the first occurrence of
//! `CRLF "-------" transact-id flag CRLF` after the start line ends it. The body may contain other
//! lines of dashes, including ones with a different transaction id.
//!
//! Two entry points:
//!
//! - [`parse`] parses one frame at the start of a buffer (one pass over the bytes), in the style
//!   of `httparse`: the caller passes a header array, the result borrows from the buffer.
//! - [`Framer`] keeps state between reads of the same frame, so that a large body arriving in
//!   many small pieces is scanned once in total, not once per read. [`Framer::frame_len`] only
//!   says "a whole frame is here and it is this long" (it checks the start line, the header
//!   section size and the end-line); [`Framer::parse`] also parses it strictly.
//!
//! Nothing here allocates or panics, whatever the input.

use crate::Status;

mod frame;
mod framer;
mod syntax;

#[cfg(test)]
mod tests;

pub use frame::{ByteRange, ReportRequest, ReportStatus, Uris};
pub use framer::{frame_len, Framer};

/// The longest transaction id (and Message-ID) RFC 4975 allows (`ident`: 4 to 32 characters).
pub const MAX_IDENT_LEN: usize = 32;
/// The shortest transaction id (and Message-ID) RFC 4975 allows.
pub const MIN_IDENT_LEN: usize = 4;

/// One header line: the name and the value (after `": "`), as slices of the frame's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'b> {
    /// The header name as written (compare case-insensitively).
    pub name: &'b [u8],
    /// The header value: the bytes after `": "` up to the CRLF.
    pub value: &'b [u8],
}

/// An empty header, to initialise the array passed to [`parse`].
pub const EMPTY_HEADER: Header<'static> = Header {
    name: b"",
    value: b"",
};

/// The continuation flag that ends the end-line (RFC 4975 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flag {
    /// `+`: more chunks of this message follow.
    More,
    /// `$`: this chunk ends the message.
    Complete,
    /// `#`: the sender aborted the message; no more chunks follow.
    Abort,
}

impl Flag {
    /// The flag from its wire character, if it is one.
    pub fn from_byte(b: u8) -> Option<Flag> {
        match b {
            b'+' => Some(Flag::More),
            b'$' => Some(Flag::Complete),
            b'#' => Some(Flag::Abort),
            _ => None,
        }
    }

    /// The wire character of the flag.
    pub fn as_byte(self) -> u8 {
        match self {
            Flag::More => b'+',
            Flag::Complete => b'$',
            Flag::Abort => b'#',
        }
    }
}

/// The request method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method<'b> {
    /// `SEND` (RFC 4975).
    Send,
    /// `REPORT` (RFC 4975).
    Report,
    /// `AUTH` (RFC 4976).
    Auth,
    /// Any other method (upper-case letters); a server answers 501 to these.
    Other(&'b [u8]),
}

impl<'b> Method<'b> {
    /// The method from its name (already checked to be `1*UPALPHA`).
    pub fn from_bytes(name: &'b [u8]) -> Method<'b> {
        match name {
            b"SEND" => Method::Send,
            b"REPORT" => Method::Report,
            b"AUTH" => Method::Auth,
            other => Method::Other(other),
        }
    }

    /// The method name as on the wire.
    pub fn as_bytes(&self) -> &'b [u8] {
        match self {
            Method::Send => b"SEND",
            Method::Report => b"REPORT",
            Method::Auth => b"AUTH",
            Method::Other(m) => m,
        }
    }
}

/// The first line of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartLine<'b> {
    /// `MSRP tid METHOD`.
    Request {
        /// The method.
        method: Method<'b>,
    },
    /// `MSRP tid 200 [comment]`.
    Response {
        /// The three-digit status code.
        code: u16,
        /// The text after the code, if any (without the separating SP).
        comment: Option<&'b [u8]>,
    },
}

/// One parsed MSRP frame (request or response), borrowing from the input buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'h, 'b> {
    /// The transaction id from the start line (equal to the one in the end-line).
    pub transaction_id: &'b [u8],
    /// The start line.
    pub start: StartLine<'b>,
    /// The headers in order; the first is To-Path, the second From-Path.
    pub headers: &'h [Header<'b>],
    /// The body: the bytes after the empty line, without the CRLF before the end-line.
    /// `None` when the frame has no body (then it has no Content-Type either).
    pub body: Option<&'b [u8]>,
    /// The end-line's continuation flag.
    pub flag: Flag,
    /// Bytes the frame takes in the buffer, end-line CRLF included.
    pub len: usize,
}

/// Size limits applied while framing and parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest frame accepted, end-line included (default 1 MiB; any value is allowed).
    /// Without an end-line within this many bytes the frame is [`Error::FrameTooLarge`].
    pub max_frame: usize,
    /// The largest header section accepted: the start line and the headers, up to and including
    /// the empty line before a body, or up to the end-line for a frame without body (default
    /// 16 KiB). Beyond it: [`Error::HeadersTooLarge`].
    pub max_headers_bytes: usize,
}

impl Limits {
    /// The default limits: 1 MiB frames, 16 KiB header sections.
    pub const DEFAULT: Limits = Limits {
        max_frame: 1 << 20,
        max_headers_bytes: 16 << 10,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// Why a frame was rejected. Every variant but [`Error::FrameTooLarge`] maps to a 400 response.
///
/// An unknown method is not an error (it parses as [`Method::Other`]; the server answers 501).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Error {
    /// The frame does not start with `MSRP SP`.
    NotMsrp,
    /// The transaction id is not 4 to 32 ident characters starting with an alphanumeric.
    BadTransactionId,
    /// The method is not `1*UPALPHA`.
    BadMethod,
    /// The status code is not three digits, or the start line is malformed after it.
    BadStatusCode,
    /// The start line is otherwise malformed (bad characters, missing CRLF).
    BadStartLine,
    /// A header line is not `name ": " value` with valid characters, or a bare CR/LF was found.
    BadHeader,
    /// More headers than the header array holds.
    TooManyHeaders,
    /// The first header is not To-Path.
    ToPathNotFirst,
    /// The second header is not From-Path.
    FromPathNotSecond,
    /// To-Path or From-Path appears more than once.
    DuplicatePath,
    /// A To-Path, From-Path or Use-Path value is not a SP-separated list of MSRP URIs.
    BadPath,
    /// The Message-ID is not 4 to 32 ident characters.
    BadMessageId,
    /// The Byte-Range is not `start-end/total` (1-based; end and total may be `*`).
    BadByteRange,
    /// Success-Report / Failure-Report has a value other than yes / no (/ partial).
    BadReportHeader,
    /// The Status header is not `namespace SP code [SP reason]`.
    BadStatusHeader,
    /// A numeric header (Expires, Min-Expires, Max-Expires) is not a number that fits.
    BadHeaderValue,
    /// A body is present but no Content-Type header.
    BodyWithoutContentType,
    /// A Content-Type header is present but no body.
    ContentTypeWithoutBody,
    /// An empty line directly before the end-line: the body's data and CRLF are missing.
    MissingBodyData,
    /// A response carries a body.
    ResponseWithBody,
    /// The header section exceeds [`Limits::max_headers_bytes`].
    HeadersTooLarge,
    /// No end-line within [`Limits::max_frame`] bytes (answer 413).
    FrameTooLarge,
}

impl Error {
    /// A short human-readable explanation, usable as a response comment.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::NotMsrp => "frame does not start with \"MSRP \"",
            Error::BadTransactionId => "invalid transaction id",
            Error::BadMethod => "invalid method",
            Error::BadStatusCode => "invalid status code",
            Error::BadStartLine => "invalid start line",
            Error::BadHeader => "invalid header line",
            Error::TooManyHeaders => "too many headers",
            Error::ToPathNotFirst => "To-Path must be the first header",
            Error::FromPathNotSecond => "From-Path must be the second header",
            Error::DuplicatePath => "To-Path or From-Path repeated",
            Error::BadPath => "invalid path header",
            Error::BadMessageId => "invalid Message-ID",
            Error::BadByteRange => "invalid Byte-Range",
            Error::BadReportHeader => "invalid Success-Report or Failure-Report",
            Error::BadStatusHeader => "invalid Status header",
            Error::BadHeaderValue => "invalid numeric header value",
            Error::BodyWithoutContentType => "body without Content-Type",
            Error::ContentTypeWithoutBody => "Content-Type without body",
            Error::MissingBodyData => "empty line before the end-line but no body data",
            Error::ResponseWithBody => "response with a body",
            Error::HeadersTooLarge => "header section too large",
            Error::FrameTooLarge => "frame too large",
        }
    }

    /// The MSRP response code a server answers with: 413 for [`Error::FrameTooLarge`],
    /// 400 for everything else.
    pub fn status_code(&self) -> u16 {
        match self {
            Error::FrameTooLarge => 413,
            _ => 400,
        }
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for Error {}

/// Parses one frame at the start of `buf` (one pass over its bytes).
///
/// Returns `Partial` while `buf` is a valid prefix of a frame within `limits`, `Complete` with
/// the frame (whose `len` says how many bytes of `buf` it took; bytes after it are left alone),
/// or the error that makes the frame unacceptable. For a stream read piece by piece, use a
/// [`Framer`] so the body is not rescanned on every read.
pub fn parse<'h, 'b>(
    buf: &'b [u8],
    headers: &'h mut [Header<'b>],
    limits: &Limits,
) -> Result<Status<Frame<'h, 'b>>, Error> {
    Framer::new(*limits).parse(buf, headers)
}
