//! Stream framing for SIP over TCP: "is a whole message here, and how long is it?", answered
//! from the header section alone, before any full parse (RFC 3261 §18.3; keep-alives of RFC 5626
//! §4.4.1 between messages).

use crate::Status;
use memchr::memmem;

/// Limits and policy for [`frame`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameOptions {
    /// Longest header section accepted (start line to the empty line), in bytes.
    pub max_head: usize,
    /// Largest body accepted, in bytes.
    pub max_body: usize,
    /// Whether a message without Content-Length is an error (RFC 3261 §18.3: it is on a stream).
    /// When false it is framed with an empty body, as many tools do with RFC example flows.
    pub require_content_length: bool,
}

impl Default for FrameOptions {
    fn default() -> Self {
        FrameOptions {
            max_head: 16 * 1024,
            max_body: 1024 * 1024,
            require_content_length: true,
        }
    }
}

/// What is at the front of the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framed {
    /// `len` bytes of CRLF keep-alive: a double CRLF is a ping (answer with one CRLF, RFC 5626),
    /// a single CRLF a pong.
    Keepalive(usize),
    /// A whole message of `len` bytes, of which `head_len` are start line and headers.
    Message {
        /// Bytes the message occupies.
        len: usize,
        /// Bytes of start line and header section, closing empty line included.
        head_len: usize,
    },
}

/// Why the stream cannot be framed; the connection should get a 400 (or 413/513 for the size
/// limits) and be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// The header section is longer than [`FrameOptions::max_head`].
    HeadTooLarge,
    /// Content-Length is larger than [`FrameOptions::max_body`].
    BodyTooLarge,
    /// Content-Length is not a decimal number.
    BadContentLength,
    /// Several Content-Length headers disagree (RFC 4475 §3.3.9).
    ConflictingContentLength,
    /// No Content-Length (required on streams).
    MissingContentLength,
}

impl FrameError {
    /// A short reason for logs and Warning headers.
    pub fn reason(&self) -> &'static str {
        match self {
            FrameError::HeadTooLarge => "header section too large",
            FrameError::BodyTooLarge => "body too large",
            FrameError::BadContentLength => "malformed Content-Length",
            FrameError::ConflictingContentLength => "conflicting Content-Length headers",
            FrameError::MissingContentLength => "Content-Length required on stream transports",
        }
    }

    /// The status code to answer with before closing.
    pub fn status_code(&self) -> u16 {
        match self {
            FrameError::HeadTooLarge | FrameError::BodyTooLarge => 513,
            _ => 400,
        }
    }
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for FrameError {}

/// Frames the message (or keep-alive) at the front of `buf`.
pub fn frame(buf: &[u8], opts: &FrameOptions) -> Result<Status<Framed>, FrameError> {
    let mut crlf = 0;
    while crlf + 1 < buf.len() && buf[crlf] == b'\r' && buf[crlf + 1] == b'\n' {
        crlf += 2;
    }
    if crlf > 0 {
        return Ok(Status::Complete(Framed::Keepalive(crlf)));
    }
    if buf.first() == Some(&b'\r') && buf.len() == 1 {
        return Ok(Status::Partial);
    }
    let window = &buf[..buf.len().min(opts.max_head)];
    let head_len = match memmem::find(window, b"\r\n\r\n") {
        Some(i) => i + 4,
        None if buf.len() >= opts.max_head => return Err(FrameError::HeadTooLarge),
        None => return Ok(Status::Partial),
    };
    let head = &buf[..head_len];
    let mut content_length: Option<usize> = None;
    let mut pos = memchr::memchr(b'\n', head).map_or(head.len(), |i| i + 1);
    while pos < head.len() {
        let line_end = memchr::memchr(b'\n', &head[pos..]).map_or(head.len(), |i| pos + i);
        let line = &head[pos..line_end];
        if let Some(v) = content_length_value(line) {
            let v = parse_len(v).ok_or(FrameError::BadContentLength)?;
            match content_length {
                Some(old) if old != v => return Err(FrameError::ConflictingContentLength),
                _ => content_length = Some(v),
            }
        }
        pos = line_end + 1;
    }
    let body = match content_length {
        Some(v) => v,
        None if opts.require_content_length => return Err(FrameError::MissingContentLength),
        None => 0,
    };
    if body > opts.max_body {
        return Err(FrameError::BodyTooLarge);
    }
    let len = head_len + body;
    if buf.len() < len {
        return Ok(Status::Partial);
    }
    Ok(Status::Complete(Framed::Message { len, head_len }))
}

/// The value of a `Content-Length` / `l` header line, if this is one.
fn content_length_value(line: &[u8]) -> Option<&[u8]> {
    let name_len = if line.len() >= 14 && line[..14].eq_ignore_ascii_case(b"content-length") {
        14
    } else if line.first().is_some_and(|c| c.eq_ignore_ascii_case(&b'l')) {
        1
    } else {
        return None;
    };
    let rest = &line[name_len..];
    let colon = rest.iter().position(|&c| c != b' ' && c != b'\t')?;
    if rest[colon] != b':' {
        return None;
    }
    Some(super::chars::trim_lws(&rest[colon + 1..]))
}

fn parse_len(v: &[u8]) -> Option<usize> {
    super::chars::parse_decimal(v, u64::from(u32::MAX)).map(|v| v as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: &[u8] = b"MESSAGE sip:a@b SIP/2.0\r\nl: 5\r\n\r\nhello";

    #[test]
    fn frames_messages_and_keepalives() {
        let o = FrameOptions::default();
        assert_eq!(
            frame(M, &o),
            Ok(Status::Complete(Framed::Message {
                len: M.len(),
                head_len: M.len() - 5
            }))
        );
        for cut in 0..M.len() {
            assert_eq!(frame(&M[..cut], &o), Ok(Status::Partial), "cut {cut}");
        }
        assert_eq!(
            frame(b"\r\n\r\nINVITE", &o),
            Ok(Status::Complete(Framed::Keepalive(4)))
        );
        assert_eq!(frame(b"\r", &o), Ok(Status::Partial));
    }

    #[test]
    fn errors() {
        let o = FrameOptions::default();
        assert_eq!(
            frame(b"BYE sip:a SIP/2.0\r\nContent-Length: -1\r\n\r\n", &o),
            Err(FrameError::BadContentLength)
        );
        assert_eq!(
            frame(
                b"BYE sip:a SIP/2.0\r\nContent-Length: 1\r\nl: 2\r\n\r\n",
                &o
            ),
            Err(FrameError::ConflictingContentLength)
        );
        assert_eq!(
            frame(b"BYE sip:a SIP/2.0\r\n\r\n", &o),
            Err(FrameError::MissingContentLength)
        );
        let lenient = FrameOptions {
            require_content_length: false,
            ..o
        };
        assert!(frame(b"BYE sip:a SIP/2.0\r\n\r\n", &lenient)
            .unwrap()
            .is_complete());
        let small = FrameOptions { max_head: 8, ..o };
        assert_eq!(frame(M, &small), Err(FrameError::HeadTooLarge));
        let small = FrameOptions { max_body: 4, ..o };
        assert_eq!(frame(M, &small), Err(FrameError::BodyTooLarge));
    }
}
