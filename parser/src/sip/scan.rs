//! Not a stable API: public so that the fuzz targets can compare the SWAR and scalar searches.
//!
//! Byte searches and checks for the short slices SIP is made of (header lines, URIs, hosts,
//! parameters).
//!
//! Most of these slices are 5 to 80 bytes long. memchr's vector routines pay a dispatch and
//! set-up cost on every call that such slices never earn back (callgrind showed memchr at ~17%
//! of a strict parse of a 300-byte MESSAGE), so the searches here read eight bytes at a time
//! from a `u64` (SWAR) and finish with single bytes. Each SWAR search has a plain byte-by-byte
//! twin (`*_scalar`) that the unit tests and the `sip_scan` fuzz target compare it against.

use std::net::Ipv4Addr;

const LO: u64 = 0x0101_0101_0101_0101;
const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;

#[inline(always)]
fn word(s: &[u8], i: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&s[i..i + 8]);
    u64::from_le_bytes(w)
}

/// The high bit of each byte of `w` that is zero, and no other bit. Exact per byte (no borrow
/// crosses bytes), so it can be read from either end.
#[inline(always)]
fn zero_bytes(w: u64) -> u64 {
    !(((w & LOW7).wrapping_add(LOW7)) | w | LOW7)
}

/// Index of the first `b` in `s`.
#[inline]
pub fn find(s: &[u8], b: u8) -> Option<usize> {
    let pat = LO * u64::from(b);
    let mut i = 0;
    while i + 8 <= s.len() {
        let z = zero_bytes(word(s, i) ^ pat);
        if z != 0 {
            return Some(i + (z.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    while i < s.len() {
        if s[i] == b {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// Index of the first `a` or `b` in `s`.
#[inline]
pub fn find2(s: &[u8], a: u8, b: u8) -> Option<usize> {
    let (pa, pb) = (LO * u64::from(a), LO * u64::from(b));
    let mut i = 0;
    while i + 8 <= s.len() {
        let w = word(s, i);
        let z = zero_bytes(w ^ pa) | zero_bytes(w ^ pb);
        if z != 0 {
            return Some(i + (z.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    while i < s.len() {
        if s[i] == a || s[i] == b {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// Index of the first `a`, `b` or `c` in `s`.
#[inline]
pub fn find3(s: &[u8], a: u8, b: u8, c: u8) -> Option<usize> {
    let (pa, pb, pc) = (LO * u64::from(a), LO * u64::from(b), LO * u64::from(c));
    let mut i = 0;
    while i + 8 <= s.len() {
        let w = word(s, i);
        let z = zero_bytes(w ^ pa) | zero_bytes(w ^ pb) | zero_bytes(w ^ pc);
        if z != 0 {
            return Some(i + (z.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    while i < s.len() {
        if s[i] == a || s[i] == b || s[i] == c {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// Index of the first byte below `n` (at most 128) in `s`: the header splitter looks for CR
/// and LF (0x0D, 0x0A) with `n` = 0x0E, one subtraction per word where [`find2`] needs two
/// compares, and skips the rare other control bytes (HT) it meets.
#[inline]
pub fn find_lt(s: &[u8], n: u8) -> Option<usize> {
    debug_assert!(n <= 128);
    let lim = LO * u64::from(n);
    let mut i = 0;
    while i + 8 <= s.len() {
        let w = word(s, i);
        // A borrow can flag bytes above a true hit, never below one: the lowest flag is exact.
        let z = w.wrapping_sub(lim) & !w & !LOW7;
        if z != 0 {
            return Some(i + (z.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    while i < s.len() {
        if s[i] < n {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// Index of the first byte below `n` (at most 128) or equal to `b` in `s`: a `<...>` URI ends
/// at `>` and may hold no white space or control byte.
#[inline]
pub fn find_lt_or(s: &[u8], n: u8, b: u8) -> Option<usize> {
    debug_assert!(n <= 128);
    let (lim, pat) = (LO * u64::from(n), LO * u64::from(b));
    let mut i = 0;
    while i + 8 <= s.len() {
        let w = word(s, i);
        let z = (w.wrapping_sub(lim) & !w & !LOW7) | zero_bytes(w ^ pat);
        if z != 0 {
            return Some(i + (z.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    while i < s.len() {
        if s[i] < n || s[i] == b {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// Index of the last `b` in `s`.
#[inline]
pub fn rfind(s: &[u8], b: u8) -> Option<usize> {
    let pat = LO * u64::from(b);
    let mut end = s.len();
    while end >= 8 {
        let z = zero_bytes(word(s, end - 8) ^ pat);
        if z != 0 {
            return Some(end - 1 - (z.leading_zeros() / 8) as usize);
        }
        end -= 8;
    }
    s[..end].iter().rposition(|&c| c == b)
}

/// The byte-at-a-time [`find`].
pub fn find_scalar(s: &[u8], b: u8) -> Option<usize> {
    s.iter().position(|&c| c == b)
}

/// The byte-at-a-time [`find2`].
pub fn find2_scalar(s: &[u8], a: u8, b: u8) -> Option<usize> {
    s.iter().position(|&c| c == a || c == b)
}

/// The byte-at-a-time [`find3`].
pub fn find3_scalar(s: &[u8], a: u8, b: u8, c: u8) -> Option<usize> {
    s.iter().position(|&x| x == a || x == b || x == c)
}

/// The byte-at-a-time [`find_lt`].
pub fn find_lt_scalar(s: &[u8], n: u8) -> Option<usize> {
    s.iter().position(|&c| c < n)
}

/// The byte-at-a-time [`find_lt_or`].
pub fn find_lt_or_scalar(s: &[u8], n: u8, b: u8) -> Option<usize> {
    s.iter().position(|&c| c < n || c == b)
}

/// The byte-at-a-time [`rfind`].
pub fn rfind_scalar(s: &[u8], b: u8) -> Option<usize> {
    s.iter().rposition(|&c| c == b)
}

/// Whether every byte of `s` is in class `ok` and every `%` starts a `%HEXHEX` escape: the
/// class check and the escape check in one pass.
#[inline]
pub fn escaped_all(s: &[u8], ok: impl Fn(u8) -> bool) -> bool {
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        if !ok(c) {
            return false;
        }
        if c == b'%'
            && !(s.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && s.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
        {
            return false;
        }
        i += 1;
    }
    true
}

/// A dotted quad as `Ipv4Addr::from_str` accepts it (four decimal octets of at most three
/// digits, no leading zero, each at most 255), without its UTF-8 check and generic number
/// reader: one pass, one state update per byte.
#[inline]
pub fn dotted_quad(s: &[u8]) -> Option<Ipv4Addr> {
    if !(7..=15).contains(&s.len()) {
        return None;
    }
    let mut octets = [0u8; 4];
    let mut k = 0;
    let mut v: u32 = 0;
    let mut digits = 0;
    for &c in s {
        if c == b'.' {
            if digits == 0 || k == 3 {
                return None;
            }
            octets[k] = v as u8;
            k += 1;
            v = 0;
            digits = 0;
        } else {
            let d = c.wrapping_sub(b'0');
            // A digit after a leading 0 is refused; past 255 no octet can come back in range,
            // which also bounds an octet to three digits.
            if d > 9 || (digits == 1 && v == 0) {
                return None;
            }
            v = v * 10 + u32::from(d);
            if v > 255 {
                return None;
            }
            digits += 1;
        }
    }
    if k != 3 || digits == 0 {
        return None;
    }
    octets[3] = v as u8;
    Some(Ipv4Addr::from(octets))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Bytes drawn mostly from the ones the searches look for, so that matches land in every
    /// position of a word.
    fn bytes() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            prop_oneof![
                Just(b'\r'),
                Just(b'\n'),
                Just(b'@'),
                Just(b'a'),
                Just(0u8),
                Just(0x80u8),
                Just(0x0eu8),
                Just(b'\t'),
                any::<u8>()
            ],
            0..80,
        )
    }

    proptest! {
        #[test]
        fn swar_agrees_with_scalar(s in bytes(), a in any::<u8>(), b in any::<u8>()) {
            for x in [a, b, b'\r', b'\n', b'@', 0, 0x80] {
                prop_assert_eq!(find(&s, x), find_scalar(&s, x));
                prop_assert_eq!(rfind(&s, x), rfind_scalar(&s, x));
            }
            prop_assert_eq!(find2(&s, a, b), find2_scalar(&s, a, b));
            prop_assert_eq!(find3(&s, a, b, b'@'), find3_scalar(&s, a, b, b'@'));
            prop_assert_eq!(find3(&s, b';', b',', b'"'), find3_scalar(&s, b';', b',', b'"'));
            let n = a % 129;
            prop_assert_eq!(find_lt(&s, n), find_lt_scalar(&s, n));
            prop_assert_eq!(find_lt(&s, 0x0e), find_lt_scalar(&s, 0x0e));
            prop_assert_eq!(find_lt_or(&s, n, b), find_lt_or_scalar(&s, n, b));
            prop_assert_eq!(find_lt_or(&s, 0x21, b'>'), find_lt_or_scalar(&s, 0x21, b'>'));
            prop_assert_eq!(find2(&s, b'\r', b'\n'), find2_scalar(&s, b'\r', b'\n'));
        }

        #[test]
        fn dotted_quad_agrees_with_std(s in "[0-9.]{0,18}|0?[0-9]{1,3}(\\.0?[0-9]{1,3}){2,4}\\.?") {
            prop_assert_eq!(dotted_quad(s.as_bytes()), s.parse::<Ipv4Addr>().ok());
        }
    }

    #[test]
    fn quads() {
        for s in ["0.0.0.0", "192.0.2.10", "255.255.255.255", "1.2.3.4"] {
            assert_eq!(dotted_quad(s.as_bytes()), s.parse().ok(), "{s}");
        }
        for s in [
            "256.1.1.1",
            "01.2.3.4",
            "1.2.3",
            "1.2.3.4.",
            "1..2.3",
            "1.2.3.4.5",
            "1234.1.1.1",
        ] {
            assert_eq!(dotted_quad(s.as_bytes()), None, "{s}");
        }
        assert!(escaped_all(b"a%41b", |_| true) && !escaped_all(b"a%4", |_| true));
        assert!(!escaped_all(b"%zz", |_| true) && !escaped_all(b"ab", |c| c == b'a'));
    }
}
