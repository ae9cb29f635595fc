//! Byte classes of the RFC 3261 §25 grammar, as one lookup table.
//!
//! Every scanner in the SIP parser asks "is this byte a token character / URI user character /
//! ...?" many times per message; a 256-entry table answers each in one load.

pub(crate) const TOKEN: u8 = 1;
const WORD: u8 = 2;
pub(crate) const USER: u8 = 4;
const PARAM: u8 = 8;
const HOST: u8 = 16;
const HNV: u8 = 32;
pub(crate) const PASSWORD: u8 = 64;
const SCHEME: u8 = 128;

const fn build() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        let alnum = c.is_ascii_alphanumeric();
        // unreserved = alphanum / mark
        let mark = matches!(
            c,
            b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
        );
        let unreserved = alnum || mark;
        let mut v = 0;
        if alnum
            || matches!(
                c,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            )
        {
            v |= TOKEN;
        }
        if alnum
            || matches!(
                c,
                b'-' | b'.'
                    | b'!'
                    | b'%'
                    | b'*'
                    | b'_'
                    | b'+'
                    | b'`'
                    | b'\''
                    | b'~'
                    | b'('
                    | b')'
                    | b'<'
                    | b'>'
                    | b':'
                    | b'\\'
                    | b'"'
                    | b'/'
                    | b'['
                    | b']'
                    | b'?'
                    | b'{'
                    | b'}'
            )
        {
            v |= WORD;
        }
        // user = 1*( unreserved / escaped / user-unreserved ); '%' checked by the caller.
        if unreserved
            || matches!(
                c,
                b'%' | b'&' | b'=' | b'+' | b'$' | b',' | b';' | b'?' | b'/'
            )
        {
            v |= USER;
        }
        // paramchar = param-unreserved / unreserved / escaped
        if unreserved || matches!(c, b'%' | b'[' | b']' | b'/' | b':' | b'&' | b'+' | b'$') {
            v |= PARAM;
        }
        // hostname characters (alphanum, '-', '.'); '_' accepted as seen in the wild.
        if alnum || matches!(c, b'-' | b'.' | b'_') {
            v |= HOST;
        }
        // hname / hvalue = *( hnv-unreserved / unreserved / escaped )
        if unreserved || matches!(c, b'%' | b'[' | b']' | b'/' | b'?' | b':' | b'+' | b'$') {
            v |= HNV;
        }
        if unreserved || matches!(c, b'%' | b'&' | b'=' | b'+' | b'$' | b',') {
            v |= PASSWORD;
        }
        if alnum || matches!(c, b'+' | b'-' | b'.') {
            v |= SCHEME;
        }
        t[i] = v;
        i += 1;
    }
    t
}

static TABLE: [u8; 256] = build();

/// The class bits of `c`, for scanners that switch class part-way (user, then password).
#[inline(always)]
pub(crate) fn class(c: u8) -> u8 {
    TABLE[c as usize]
}

#[inline(always)]
pub(crate) fn is_token(c: u8) -> bool {
    TABLE[c as usize] & TOKEN != 0
}
#[inline(always)]
pub(crate) fn is_word(c: u8) -> bool {
    TABLE[c as usize] & WORD != 0
}
#[inline(always)]
pub(crate) fn is_user(c: u8) -> bool {
    TABLE[c as usize] & USER != 0
}
#[inline(always)]
pub(crate) fn is_param(c: u8) -> bool {
    TABLE[c as usize] & PARAM != 0
}
#[inline(always)]
pub(crate) fn is_host(c: u8) -> bool {
    TABLE[c as usize] & HOST != 0
}
#[inline(always)]
pub(crate) fn is_hnv(c: u8) -> bool {
    TABLE[c as usize] & HNV != 0
}
#[inline(always)]
pub(crate) fn is_password(c: u8) -> bool {
    TABLE[c as usize] & PASSWORD != 0
}
#[inline(always)]
pub(crate) fn is_scheme(c: u8) -> bool {
    TABLE[c as usize] & SCHEME != 0
}
/// Linear white space inside a header value: SP, HT, and the CRLF of a folded line (the header
/// splitter has already checked that every CR LF inside a value is followed by SP or HT).
#[inline(always)]
pub(crate) fn is_lws(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

/// Trims linear white space from both ends.
#[inline]
pub(crate) fn trim_lws(s: &[u8]) -> &[u8] {
    let mut a = 0;
    let mut b = s.len();
    while a < b && is_lws(s[a]) {
        a += 1;
    }
    while b > a && is_lws(s[b - 1]) {
        b -= 1;
    }
    &s[a..b]
}

/// Parses a decimal number of at most `max`, leading zeros allowed.
#[inline]
pub(crate) fn parse_decimal(s: &[u8], max: u64) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
        if v > max {
            return None;
        }
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert!(is_token(b'%') && is_token(b'~') && !is_token(b'@') && !is_token(b' '));
        assert!(!is_word(b'@') && is_word(b'<') && is_word(b'"'));
        assert!(is_user(b';') && is_user(b'?') && !is_user(b'@') && !is_user(b':'));
        assert!(is_param(b':') && !is_param(b';') && !is_param(b'='));
        assert_eq!(parse_decimal(b"0068", 255), Some(68));
        assert_eq!(parse_decimal(b"256", 255), None);
        assert_eq!(parse_decimal(b"99999999999999999999999", u64::MAX), None);
        assert_eq!(trim_lws(b" \r\n a b\t"), b"a b");
    }
}
