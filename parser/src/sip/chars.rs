//! Byte classes of the RFC 3261 §25 grammar, as one lookup table.
//!
//! Every scanner in the SIP parser asks "is this byte a token character / URI user character /
//! ...?" many times per message; a 256-entry table answers each in one load.

pub(crate) const TOKEN: u16 = 1;
const WORD: u16 = 2;
const USER: u16 = 4;
const PARAM: u16 = 8;
pub(crate) const HOST: u16 = 16;
const HNV: u16 = 32;
const PASSWORD: u16 = 64;
const SCHEME: u16 = 128;
// The user, password and uri-parameter classes without `%`, whose escapes the run scanners
// check where a run stops; URI_PARAM also holds `=` (`uri-parameter` is `pname [= pvalue]`).
pub(crate) const USER_PLAIN: u16 = 256;
pub(crate) const PASSWORD_PLAIN: u16 = 512;
pub(crate) const URI_PARAM_PLAIN: u16 = 1024;
/// A generic-param value that is not quoted: a token, or an unbracketed IPv6 `received`.
pub(crate) const TOKEN_OR_COLON: u16 = 2048;

const fn build() -> [u16; 256] {
    let mut t = [0u16; 256];
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
        if v & TOKEN != 0 || c == b':' {
            v |= TOKEN_OR_COLON;
        }
        if c != b'%' {
            if v & USER != 0 {
                v |= USER_PLAIN;
            }
            if v & PASSWORD != 0 {
                v |= PASSWORD_PLAIN;
            }
            if v & PARAM != 0 || c == b'=' {
                v |= URI_PARAM_PLAIN;
            }
        }
        t[i] = v;
        i += 1;
    }
    t
}

static TABLE: [u16; 256] = build();

/// Index of the first byte of `s` at or after `i` outside `class` (one of the bits above), or
/// `s.len()`.
///
/// Eight bytes a round: the class bits of the eight are ANDed, a load and an AND per byte and
/// one branch per word, where the byte loop pays a compare and a branch per byte; the word that
/// holds the end is finished byte by byte.
#[inline]
pub(crate) fn class_end(s: &[u8], mut i: usize, class: u16) -> usize {
    while let Some(w) = s.get(i..i + 8) {
        let w: &[u8; 8] = w.try_into().expect("eight bytes");
        let all = TABLE[w[0] as usize]
            & TABLE[w[1] as usize]
            & TABLE[w[2] as usize]
            & TABLE[w[3] as usize]
            & TABLE[w[4] as usize]
            & TABLE[w[5] as usize]
            & TABLE[w[6] as usize]
            & TABLE[w[7] as usize];
        if all & class == 0 {
            break;
        }
        i += 8;
    }
    while i < s.len() && TABLE[s[i] as usize] & class != 0 {
        i += 1;
    }
    i
}

/// The byte-at-a-time [`class_end`].
#[cfg(test)]
fn class_end_scalar(s: &[u8], i: usize, class: u16) -> usize {
    i + s[i.min(s.len())..]
        .iter()
        .take_while(|&&c| TABLE[c as usize] & class != 0)
        .count()
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
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        // `v` is at most `max` here: below 2^32 (every caller in the parser), `v * 10 + 9`
        // cannot overflow and the checked steps (a third of the cost per digit) are not needed.
        v = if max <= u64::from(u32::MAX) {
            v * 10 + u64::from(d)
        } else {
            v.checked_mul(10)?.checked_add(u64::from(d))?
        };
        if v > max {
            return None;
        }
    }
    Some(v)
}

/// Test inputs: byte strings drawn mostly from `alphabet` (the bytes a scan or a class cares
/// about, so that its edges land everywhere), one byte in five from anywhere.
#[cfg(test)]
pub(crate) fn mostly_from(
    alphabet: &'static [u8],
    len: std::ops::Range<usize>,
) -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        proptest::prop_oneof![
            4 => proptest::sample::select(alphabet),
            1 => proptest::arbitrary::any::<u8>(),
        ],
        len,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn class_end_agrees_with_scalar(
            s in mostly_from(b"aZ09-._%:;=@ ", 0..40),
            i in 0usize..44,
        ) {
            for class in [TOKEN, HOST, USER_PLAIN, PASSWORD_PLAIN, URI_PARAM_PLAIN, TOKEN_OR_COLON] {
                let i = i.min(s.len());
                proptest::prop_assert_eq!(class_end(&s, i, class), class_end_scalar(&s, i, class));
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn parse_decimal_agrees_with_std(s in "[0-9]{0,22}|[0-9a/:+ -]{0,6}", max in proptest::prop_oneof![
            proptest::strategy::Just(255u64),
            proptest::strategy::Just(65535u64),
            proptest::strategy::Just(u64::from(u32::MAX)),
            proptest::strategy::Just(u64::MAX),
            proptest::arbitrary::any::<u64>(),
        ]) {
            let reference = if !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()) {
                s.parse::<u64>().ok().filter(|&v| v <= max)
            } else {
                None
            };
            proptest::prop_assert_eq!(parse_decimal(s.as_bytes(), max), reference);
        }
    }

    #[test]
    fn plain_classes() {
        for c in 0..=255u8 {
            assert_eq!(
                TABLE[c as usize] & TOKEN_OR_COLON != 0,
                is_token(c) || c == b':'
            );
            assert_eq!(TABLE[c as usize] & USER_PLAIN != 0, is_user(c) && c != b'%');
            assert_eq!(
                TABLE[c as usize] & PASSWORD_PLAIN != 0,
                is_password(c) && c != b'%'
            );
            assert_eq!(
                TABLE[c as usize] & URI_PARAM_PLAIN != 0,
                (is_param(c) || c == b'=') && c != b'%'
            );
        }
    }

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
