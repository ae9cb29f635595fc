//! Finding where a frame ends in a byte stream, resumably.

use memchr::memmem;

use super::frame::parse_frame;
use super::syntax::parse_start_line;
use super::{Error, Flag, Frame, Header, Limits, MAX_IDENT_LEN};
use crate::Status;

/// `CRLF "-------" transact-id`: 2 + 7 + at most 32 bytes.
const NEEDLE_MAX: usize = 2 + 7 + MAX_IDENT_LEN;

/// Resumable frame delimiter for one MSRP connection.
///
/// Feed it the bytes received so far for the current frame (always starting at the frame's first
/// byte, each call's buffer extending the previous one). It remembers the transaction id, how far
/// the end-line search got and where the header section ended, so each call only looks at bytes
/// it has not seen before (plus at most the needle's length): a body arriving in many small reads
/// is scanned once in total. After a frame is `Complete` and consumed, call [`Framer::reset`]
/// before feeding the next frame.
///
/// [`Framer::frame_len`] checks only what framing needs (start line, header section size,
/// end-line); it accepts, for example, RFC 4975 §5.1's snippet that omits To-Path/From-Path.
/// [`Framer::parse`] additionally parses the frame strictly once it is complete.
#[derive(Debug, Clone)]
pub struct Framer {
    limits: Limits,
    /// `CRLF "-------" tid`, valid once `needle_len > 0`.
    needle: [u8; NEEDLE_MAX],
    needle_len: usize,
    /// Earliest position where the end-line needle may still start.
    search_from: usize,
    /// Earliest position where the header-ending `CRLF CRLF` may still start.
    hdr_from: usize,
    /// End of the header section, once known.
    hdr_end: Option<usize>,
    /// Length of the frame, once complete.
    done: Option<usize>,
}

impl Default for Framer {
    fn default() -> Self {
        Framer::new(Limits::DEFAULT)
    }
}

/// What follows a needle match: the flag and CRLF, something else, or not enough bytes yet.
enum Tail {
    Valid,
    Invalid,
    NeedMore,
}

fn tail(hay: &[u8], at: usize) -> Tail {
    let want: [fn(u8) -> bool; 3] = [
        |c| Flag::from_byte(c).is_some(),
        |c| c == b'\r',
        |c| c == b'\n',
    ];
    for (k, ok) in want.iter().enumerate() {
        match hay.get(at + k) {
            None => return Tail::NeedMore,
            Some(&c) if !ok(c) => return Tail::Invalid,
            Some(_) => {}
        }
    }
    Tail::Valid
}

impl Framer {
    /// A framer applying `limits`.
    pub fn new(limits: Limits) -> Self {
        Framer {
            limits,
            needle: [0; NEEDLE_MAX],
            needle_len: 0,
            search_from: 0,
            hdr_from: 0,
            hdr_end: None,
            done: None,
        }
    }

    /// The limits this framer applies.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Forgets the current frame; the next call starts a new one (its first byte at index 0).
    pub fn reset(&mut self) {
        *self = Framer::new(self.limits);
    }

    /// The current frame's transaction id, once its start line has been read.
    pub fn transaction_id(&self) -> Option<&[u8]> {
        if self.needle_len == 0 {
            None
        } else {
            self.needle.get(9..self.needle_len)
        }
    }

    /// How long the frame at the start of `buf` is, once all of it is in `buf`.
    ///
    /// `Partial` while `buf` is a valid prefix within the limits; errors for a bad start line,
    /// [`Error::HeadersTooLarge`] and [`Error::FrameTooLarge`]. Headers are not checked here.
    pub fn frame_len(&mut self, buf: &[u8]) -> Result<Status<usize>, Error> {
        if let Some(len) = self.done {
            return Ok(Status::Complete(len));
        }
        let max_headers = self.limits.max_headers_bytes;
        let max_frame = self.limits.max_frame;
        if self.needle_len == 0 {
            match parse_start_line(buf)? {
                Status::Partial => {
                    if buf.len() >= max_frame {
                        return Err(Error::FrameTooLarge);
                    }
                    if buf.len() >= max_headers {
                        return Err(Error::HeadersTooLarge);
                    }
                    return Ok(Status::Partial);
                }
                Status::Complete(si) => {
                    if si.end > max_headers {
                        return Err(Error::HeadersTooLarge);
                    }
                    let n = 9 + si.tid.len();
                    let slot = self.needle.get_mut(..n).ok_or(Error::BadTransactionId)?;
                    let (head, tid) = slot.split_at_mut(9);
                    head.copy_from_slice(b"\r\n-------");
                    tid.copy_from_slice(si.tid);
                    self.needle_len = n;
                    // The start line's own CRLF may precede the end-line (no headers at all).
                    self.search_from = si.end - 2;
                    self.hdr_from = si.end - 2;
                }
            }
        }
        let n = self.needle_len;
        let needle = self.needle.get(..n).unwrap_or_default();
        let lim = buf.len().min(max_frame);
        let hay = buf.get(..lim).unwrap_or_default();
        let finder = memmem::Finder::new(needle);
        let mut from = self.search_from;
        let found = loop {
            let Some(rel) = hay.get(from..).and_then(|h| finder.find(h)) else {
                // A match may still start at any position whose needle would pass `lim`.
                from = from.max((lim + 1).saturating_sub(n));
                break None;
            };
            let p = from + rel;
            match tail(hay, p + n) {
                Tail::Valid => break Some((p, p + n + 3)),
                Tail::Invalid => from = p + 1,
                Tail::NeedMore => {
                    from = p;
                    break None;
                }
            }
        };
        self.search_from = from;

        // The header section ends at the first CRLF CRLF or where the end-line starts,
        // whichever comes first; the end-line cannot start before `from`.
        let bound = found.map_or(from, |(p, _)| p) + 2;
        if self.hdr_end.is_none() {
            let stop = bound.min(buf.len()).min(max_headers);
            let hit = buf
                .get(self.hdr_from..stop)
                .and_then(|h| memmem::find(h, b"\r\n\r\n"));
            match hit {
                Some(q) => self.hdr_end = Some(self.hdr_from + q + 4),
                None => self.hdr_from = self.hdr_from.max(stop.saturating_sub(3)),
            }
        }
        match found {
            Some((p, total)) => {
                let hdr_end = self.hdr_end.unwrap_or(p + 2);
                if hdr_end > max_headers {
                    return Err(Error::HeadersTooLarge);
                }
                self.hdr_end = Some(hdr_end);
                self.done = Some(total);
                Ok(Status::Complete(total))
            }
            None => {
                if buf.len() >= max_frame {
                    return Err(Error::FrameTooLarge);
                }
                if self.hdr_end.is_none() && bound > max_headers {
                    return Err(Error::HeadersTooLarge);
                }
                Ok(Status::Partial)
            }
        }
    }

    /// Like [`Framer::frame_len`], then, once the frame is complete, parses it strictly (see
    /// [`super::parse`]). Does not reset the framer.
    pub fn parse<'h, 'b>(
        &mut self,
        buf: &'b [u8],
        headers: &'h mut [Header<'b>],
    ) -> Result<Status<Frame<'h, 'b>>, Error> {
        let len = match self.frame_len(buf)? {
            Status::Partial => return Ok(Status::Partial),
            Status::Complete(len) => len,
        };
        let si = match parse_start_line(buf)? {
            Status::Complete(si) => si,
            Status::Partial => return Err(Error::BadStartLine),
        };
        let flag = buf
            .get(len.wrapping_sub(3))
            .copied()
            .and_then(Flag::from_byte)
            .ok_or(Error::BadStartLine)?;
        // The end-line is "-------" tid flag CRLF: needle minus its CRLF, plus 3.
        let end_line = len
            .checked_sub(self.needle_len + 1)
            .ok_or(Error::BadStartLine)?;
        parse_frame(buf, si, end_line, flag, len, headers).map(Status::Complete)
    }
}

/// How long the frame at the start of `buf` is, once it is all there (one-shot
/// [`Framer::frame_len`]; framing checks only, headers are not parsed).
pub fn frame_len(buf: &[u8], limits: &Limits) -> Result<Status<usize>, Error> {
    Framer::new(*limits).frame_len(buf)
}
