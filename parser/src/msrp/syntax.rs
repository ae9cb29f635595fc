//! Character classes and the grammar pieces of RFC 4975 §9 (start line, header line, values).

use super::{
    ByteRange, Error, Method, ReportRequest, ReportStatus, StartLine, MAX_IDENT_LEN, MIN_IDENT_LEN,
};
use crate::Status;

/// `ident-char = alphanum / "." / "-" / "+" / "%" / "="`.
pub(crate) fn is_ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'+' | b'%' | b'=')
}

/// `ident = alphanum 3*31ident-char` (transaction ids and Message-IDs).
pub(crate) fn is_ident(s: &[u8]) -> bool {
    match s.split_first() {
        Some((first, rest)) => {
            (MIN_IDENT_LEN..=MAX_IDENT_LEN).contains(&s.len())
                && first.is_ascii_alphanumeric()
                && rest.iter().all(|&c| is_ident_char(c))
        }
        None => false,
    }
}

/// `utf8text` characters: HTAB, printable ASCII and any non-ASCII byte.
pub(crate) fn is_text_char(c: u8) -> bool {
    c == b'\t' || (0x20..=0x7e).contains(&c) || c >= 0x80
}

/// Token characters for header names (RFC 4975 `hname = ALPHA *token`).
fn is_token_char(c: u8) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
}

/// The parsed start line.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StartInfo<'b> {
    pub(crate) tid: &'b [u8],
    pub(crate) start: StartLine<'b>,
    /// Index just after the start line's CRLF.
    pub(crate) end: usize,
}

/// Parses the start line at the start of `buf`. `Partial` only while `buf` is a valid prefix.
pub(crate) fn parse_start_line(buf: &[u8]) -> Result<Status<StartInfo<'_>>, Error> {
    const PREFIX: &[u8] = b"MSRP ";
    let n = buf.len().min(PREFIX.len());
    if buf.get(..n) != PREFIX.get(..n) {
        return Err(Error::NotMsrp);
    }
    if buf.len() < PREFIX.len() {
        return Ok(Status::Partial);
    }
    // transact-id
    let tid_start = PREFIX.len();
    let mut i = tid_start;
    loop {
        let Some(&c) = buf.get(i) else {
            return Ok(Status::Partial);
        };
        if c == b' ' {
            break;
        }
        let ok = if i == tid_start {
            c.is_ascii_alphanumeric()
        } else {
            is_ident_char(c)
        };
        if !ok || i - tid_start >= MAX_IDENT_LEN {
            return Err(Error::BadTransactionId);
        }
        i += 1;
    }
    let tid = buf.get(tid_start..i).unwrap_or_default();
    if tid.len() < MIN_IDENT_LEN {
        return Err(Error::BadTransactionId);
    }
    i += 1; // SP
    let Some(&first) = buf.get(i) else {
        return Ok(Status::Partial);
    };
    if first.is_ascii_digit() {
        let mut code: u16 = 0;
        for k in 0..3 {
            let Some(&d) = buf.get(i + k) else {
                return Ok(Status::Partial);
            };
            if !d.is_ascii_digit() {
                return Err(Error::BadStatusCode);
            }
            code = code * 10 + u16::from(d - b'0');
        }
        i += 3;
        let comment = match buf.get(i) {
            None => return Ok(Status::Partial),
            Some(b' ') => {
                let c_start = i + 1;
                let mut j = c_start;
                loop {
                    match buf.get(j) {
                        None => return Ok(Status::Partial),
                        Some(b'\r') => break,
                        Some(&c) if is_text_char(c) => j += 1,
                        Some(_) => return Err(Error::BadStartLine),
                    }
                }
                i = j;
                let c = buf.get(c_start..j).unwrap_or_default();
                if c.is_empty() {
                    None
                } else {
                    Some(c)
                }
            }
            Some(b'\r') => None,
            Some(_) => return Err(Error::BadStatusCode),
        };
        match buf.get(i + 1) {
            None => Ok(Status::Partial),
            Some(b'\n') => Ok(Status::Complete(StartInfo {
                tid,
                start: StartLine::Response { code, comment },
                end: i + 2,
            })),
            Some(_) => Err(Error::BadStartLine),
        }
    } else if first.is_ascii_uppercase() {
        let m_start = i;
        loop {
            match buf.get(i) {
                None => return Ok(Status::Partial),
                Some(c) if c.is_ascii_uppercase() => i += 1,
                Some(b'\r') => break,
                Some(_) => return Err(Error::BadMethod),
            }
        }
        let name = buf.get(m_start..i).unwrap_or_default();
        match buf.get(i + 1) {
            None => Ok(Status::Partial),
            Some(b'\n') => Ok(Status::Complete(StartInfo {
                tid,
                start: StartLine::Request {
                    method: Method::from_bytes(name),
                },
                end: i + 2,
            })),
            Some(_) => Err(Error::BadStartLine),
        }
    } else {
        Err(Error::BadMethod)
    }
}

/// Splits one header line (without its CRLF) into name and value: `hname ":" SP hval`.
pub(crate) fn parse_header_line(line: &[u8]) -> Result<(&[u8], &[u8]), Error> {
    let colon = memchr::memchr(b':', line).ok_or(Error::BadHeader)?;
    let name = line.get(..colon).unwrap_or_default();
    let value = line.get(colon + 1..).unwrap_or_default();
    let value = value.strip_prefix(b" ").ok_or(Error::BadHeader)?;
    match name.split_first() {
        Some((f, rest)) if f.is_ascii_alphabetic() && rest.iter().all(|&c| is_token_char(c)) => {}
        _ => return Err(Error::BadHeader),
    }
    if !value.iter().all(|&c| is_text_char(c)) {
        return Err(Error::BadHeader);
    }
    Ok((name, value))
}

/// Whether `uri` looks like an MSRP URI: `msrp://` or `msrps://` (any case) and an authority.
fn is_msrp_uri(uri: &[u8]) -> bool {
    let rest = if uri.len() >= 7
        && uri
            .get(..7)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"msrp://"))
    {
        uri.get(7..)
    } else if uri.len() >= 8
        && uri
            .get(..8)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"msrps://"))
    {
        uri.get(8..)
    } else {
        None
    };
    match rest {
        Some(r) => !r.is_empty() && r.iter().all(|&c| c > 0x20 && c != 0x7f),
        None => false,
    }
}

/// `MSRP-URI *(SP MSRP-URI)`: at least one URI, single SP separators.
pub(crate) fn validate_path(value: &[u8]) -> Result<(), Error> {
    if value.is_empty() {
        return Err(Error::BadPath);
    }
    for uri in value.split(|&c| c == b' ') {
        if !is_msrp_uri(uri) {
            return Err(Error::BadPath);
        }
    }
    Ok(())
}

/// `1*DIGIT` as a `u64`, `None` on empty input, non-digits or overflow.
pub(crate) fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    Some(n)
}

/// `Byte-Range: range-start "-" range-end "/" total`, end and total may be `*`.
pub(crate) fn parse_byte_range(v: &[u8]) -> Result<ByteRange, Error> {
    let dash = memchr::memchr(b'-', v).ok_or(Error::BadByteRange)?;
    let slash = memchr::memchr(b'/', v).ok_or(Error::BadByteRange)?;
    if slash < dash {
        return Err(Error::BadByteRange);
    }
    let start = v.get(..dash).and_then(parse_u64);
    let end = v.get(dash + 1..slash).unwrap_or_default();
    let total = v.get(slash + 1..).unwrap_or_default();
    let start = start.ok_or(Error::BadByteRange)?;
    let end = if end == b"*" {
        None
    } else {
        Some(parse_u64(end).ok_or(Error::BadByteRange)?)
    };
    let total = if total == b"*" {
        None
    } else {
        Some(parse_u64(total).ok_or(Error::BadByteRange)?)
    };
    if start == 0 {
        return Err(Error::BadByteRange);
    }
    if let Some(e) = end {
        // An empty chunk is `n-(n-1)`, e.g. `1-0/0` for an empty SEND.
        if e < start - 1 {
            return Err(Error::BadByteRange);
        }
        if let Some(t) = total {
            if e > t {
                return Err(Error::BadByteRange);
            }
        }
    }
    Ok(ByteRange { start, end, total })
}

/// `yes` / `no` (/ `partial` when `allow_partial`), case-insensitive.
pub(crate) fn parse_report(v: &[u8], allow_partial: bool) -> Result<ReportRequest, Error> {
    if v.eq_ignore_ascii_case(b"yes") {
        Ok(ReportRequest::Yes)
    } else if v.eq_ignore_ascii_case(b"no") {
        Ok(ReportRequest::No)
    } else if allow_partial && v.eq_ignore_ascii_case(b"partial") {
        Ok(ReportRequest::Partial)
    } else {
        Err(Error::BadReportHeader)
    }
}

fn three_digits(s: Option<&[u8]>) -> Option<u16> {
    match s? {
        [a, b, c] if a.is_ascii_digit() && b.is_ascii_digit() && c.is_ascii_digit() => {
            Some(u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0'))
        }
        _ => None,
    }
}

/// `Status: namespace SP status-code [SP text-reason]`.
pub(crate) fn parse_status(v: &[u8]) -> Result<ReportStatus<'_>, Error> {
    let namespace = three_digits(v.get(..3)).ok_or(Error::BadStatusHeader)?;
    if v.get(3) != Some(&b' ') {
        return Err(Error::BadStatusHeader);
    }
    let code = three_digits(v.get(4..7)).ok_or(Error::BadStatusHeader)?;
    let reason = match v.get(7) {
        None => None,
        Some(b' ') => v.get(8..).filter(|r| !r.is_empty()),
        Some(_) => return Err(Error::BadStatusHeader),
    };
    Ok(ReportStatus {
        namespace,
        code,
        reason,
    })
}

/// `1*DIGIT` as a `u32` (Expires, Min-Expires, Max-Expires).
pub(crate) fn parse_u32(v: &[u8]) -> Result<u32, Error> {
    parse_u64(v)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or(Error::BadHeaderValue)
}
