//! The routing fields read straight from a header value without decoding it: the top Via's
//! `branch` and the From / To `tag`. The usual spellings (`;branch=` first, `>;tag=`) are
//! read at once; anything else takes a parameter walk, which the tests hold the shortcuts to,
//! and the decoders in `header` are the reference for both.

use super::chars::{is_lws, trim_lws};
use super::scan;

/// Finds the `branch` parameter of the first Via value of a header line without decoding the
/// sent-by: scans the parameters up to the first `,` outside a quoted string.
pub(crate) fn via_branch(v: &[u8]) -> Option<&[u8]> {
    via_branch_with(v, true)
}

/// [`via_branch`], with or without its shortcut for the usual `;branch=` first (the tests
/// hold the two to the same answers).
#[inline]
pub(crate) fn via_branch_with(v: &[u8], shortcut: bool) -> Option<&[u8]> {
    // Sent-protocol and sent-by hold no `;`, `,` or quotes: jump to the first parameter.
    let i = scan::find3(v, b';', b',', b'"')?;
    // Nearly always `;branch=` comes first with an unquoted value: read it straight, as the
    // walk below would (it ends the value at the same `;`, `,` or end when no quote comes
    // first).
    if shortcut && v[i] == b';' && starts_with_ignore_case(&v[i + 1..], b"branch=") {
        let rest = &v[i + 8..];
        let end = scan::find3(rest, b';', b',', b'"').unwrap_or(rest.len());
        if rest.get(end) != Some(&b'"') {
            let b = trim_lws(&rest[..end]);
            return (!b.is_empty()).then_some(b);
        }
    }
    via_branch_walk(v, i)
}

/// The parameter walk of [`via_branch_with`] from `i`, kept out of line so that the usual
/// shortcut stays a small function (fewer registers saved and restored on every call).
#[inline(never)]
fn via_branch_walk(v: &[u8], mut i: usize) -> Option<&[u8]> {
    loop {
        // `i` is at a `;` (next parameter), `,` (next Via value) or `"` (malformed here).
        if v.get(i) != Some(&b';') {
            return None;
        }
        i += 1;
        let start = i;
        while i < v.len() && !matches!(v[i], b';' | b'=' | b',' | b'"') {
            i += 1;
        }
        let name = trim_lws(&v[start..i]);
        let is_branch = name.eq_ignore_ascii_case(b"branch");
        if v.get(i) != Some(&b'=') {
            // The first `branch` parameter decides, as with the full decode.
            if is_branch {
                return None;
            }
            continue;
        }
        i += 1;
        let vstart = i;
        i = skip_param_value(v, i, true);
        if is_branch {
            let b = trim_lws(&v[vstart..i]);
            return (!b.is_empty()).then_some(b);
        }
    }
}

/// Whether `s` starts with `lit` (at most eight lower-case letters and punctuation below
/// 0x40), its letters in either case: one word compare, bit 0x20 ignored only where `lit` has
/// a letter (bit 0x40 set), so a letter matches its two cases and punctuation only itself.
#[inline(always)]
fn starts_with_ignore_case(s: &[u8], lit: &[u8]) -> bool {
    debug_assert!(lit.len() <= 8);
    let Some(head) = s.get(..lit.len()) else {
        return false;
    };
    let mut a = [0u8; 8];
    let mut b = [0u8; 8];
    a[..lit.len()].copy_from_slice(head);
    b[..lit.len()].copy_from_slice(lit);
    let (a, b) = (u64::from_le_bytes(a), u64::from_le_bytes(b));
    let m = (b & 0x4040_4040_4040_4040) >> 1;
    a | m == b | m
}

/// From `i`, skips a parameter value (quoted strings included) to the next `;` (or `,` when
/// `comma_ends` is set), or the end.
fn skip_param_value(v: &[u8], mut i: usize, comma_ends: bool) -> usize {
    while i < v.len() {
        match v[i] {
            b';' => break,
            b',' if comma_ends => break,
            b'"' => {
                i += 1;
                while i < v.len() && v[i] != b'"' {
                    i += if v[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
    i.min(v.len())
}

/// Finds the `tag` parameter of a From/To value without decoding the URI: skips a quoted
/// display name, then the `<...>` URI (or, for an addr-spec, up to the first `;`), and scans
/// the header parameters.
pub(crate) fn name_addr_tag(v: &[u8]) -> Option<&[u8]> {
    name_addr_tag_with(v, true)
}

/// [`name_addr_tag`], with or without its shortcut for the usual `<...>;tag=` (the tests hold
/// the two to the same answers).
#[inline]
pub(crate) fn name_addr_tag_with(v: &[u8], shortcut: bool) -> Option<&[u8]> {
    // Short values: plain loops beat memchr's set-up cost here.
    let mut i = 0;
    while i < v.len() && is_lws(v[i]) {
        i += 1;
    }
    if v.get(i) == Some(&b'"') {
        i += 1;
        while i < v.len() {
            match v[i] {
                b'\\' => i += 2,
                b'"' => break,
                _ => i += 1,
            }
        }
        i += 1;
    }
    // Skip to the header parameters: after `<...>`, or from the first `;` of an addr-spec.
    let rest = v.get(i..).unwrap_or(&[]);
    i += scan::find2(rest, b'<', b';').unwrap_or(rest.len());
    if v.get(i) == Some(&b'<') {
        i += scan::find(&v[i..], b'>').unwrap_or(v.len() - i);
        // Nothing after `>` (a To without a tag): the walk would find no parameter either.
        if shortcut && i + 1 >= v.len() {
            return None;
        }
        // Nearly always `>;tag=` with an unquoted value: read it straight, as the walk below
        // would (it ends the value at the same `;` or end when no quote comes first).
        if shortcut
            && v.get(i + 1) == Some(&b';')
            && starts_with_ignore_case(v.get(i + 2..).unwrap_or(&[]), b"tag=")
        {
            let rest = &v[i + 6..];
            let end = scan::find2(rest, b';', b'"').unwrap_or(rest.len());
            if rest.get(end) != Some(&b'"') {
                let t = trim_lws(&rest[..end]);
                return (!t.is_empty()).then_some(t);
            }
        }
    }
    tag_walk(v, i)
}

/// The parameter walk of [`name_addr_tag_with`] from `i`, kept out of line like
/// [`via_branch_walk`].
#[inline(never)]
fn tag_walk(v: &[u8], mut i: usize) -> Option<&[u8]> {
    loop {
        i = skip_param_value(v, i, false);
        if i >= v.len() {
            return None;
        }
        i += 1;
        let start = i;
        while i < v.len() && v[i] != b';' && v[i] != b'=' && v[i] != b'"' {
            i += 1;
        }
        if !trim_lws(&v[start..i]).eq_ignore_ascii_case(b"tag") {
            continue;
        }
        // The first `tag` parameter decides, as with the full decode.
        if v.get(i) != Some(&b'=') {
            return None;
        }
        i += 1;
        let vstart = i;
        i = skip_param_value(v, i, false);
        let t = trim_lws(&v[vstart..i]);
        return (!t.is_empty()).then_some(t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::header::{NameAddr, Vias};

    #[test]
    fn fast_tag_agrees_with_full_decode() {
        for v in [
            &b"\"A <b>; c\" <sip:a@b;tag=uri>;tag=hdr"[..],
            b"<sip:a@b;tag=inuri>",
            b"sip:a@b ; TAG = 77 ;x=1",
            b"Bob <sip:bob@example.com>;x=1;tag=z",
            b"\"J \\\"q\\\"\" <sip:j@example.com>;tag=k",
            b"<sip:a@b>;tag=",
            b"sip:user@h;tag\t;tag=_",
            b"<sip:a@b>;x=\"q;tag=no\";tag=yes",
        ] {
            let full = NameAddr::parse(v).ok().and_then(|n| n.tag());
            assert_eq!(name_addr_tag(v), full, "{}", String::from_utf8_lossy(v));
        }
        assert_eq!(name_addr_tag(b"<sip:a@b;tag=inuri>"), None);
        for v in [
            &b"SIP/2.0/UDP h;branch=z9hG4bK1;rport"[..],
            b"SIP  / 2.0  / TCP     spindle.example.com   ;\r\n  branch  =   z9hG4bK9ikj8  ,\r\n SIP/2.0/UDP x;branch=2",
            b"SIP/2.0/UDP h;x=\"a;branch=no\";BRANCH=yes",
            b"SIP/2.0/UDP h, SIP/2.0/UDP g;branch=second",
            b"SIP/2.0/UDP h;branch=",
            b"SIP/2.0/UDP h;branch;branch=second",
            b"SIP/2.0/UDP h;x=\"a;branch=no\";branch=yes",
        ] {
            let full = Vias::new(v).next().and_then(|r| r.ok()).and_then(|v| v.branch());
            assert_eq!(via_branch(v), full, "{}", String::from_utf8_lossy(v));
        }
        assert_eq!(name_addr_tag(b"sip:a@b ; TAG = 77 ;x=1"), Some(&b"77"[..]));
    }

    #[test]
    fn starts_with_ignore_case_is_exact() {
        for lit in [&b"branch="[..], b"tag="] {
            for c in 0..=255u8 {
                for at in 0..lit.len() {
                    let mut s = lit.to_vec();
                    s[at] = c;
                    let want =
                        c == lit[at] || (lit[at].is_ascii_lowercase() && c | 0x20 == lit[at]);
                    assert_eq!(starts_with_ignore_case(&s, lit), want);
                    assert!(!starts_with_ignore_case(&s[..lit.len() - 1], lit));
                }
            }
        }
        assert!(starts_with_ignore_case(b"BrAnCh=z9", b"branch="));
    }
}
