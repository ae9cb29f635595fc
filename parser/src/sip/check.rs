//! Not a stable API: public so that the fuzz targets can hold each check to its decoder.
//!
//! Valid-or-not checks for the values [`super::Message::validate`] covers: the Request-URI, Via,
//! From, To, Contact, Route and Record-Route. Each answers exactly what its decoder would
//! ([`parse_uri`], [`super::Vias`], [`super::NameAddr`], [`super::NameAddrs`]) but builds no
//! struct: `validate` runs on every message a server acts on, and the decoders spent much of
//! that time filling in fields (hosts, ports, parameters, `Uri`s copied through each `Result`)
//! that `validate` drops. Each check walks its value front to back once, besides two SWAR
//! searches: a SIP URI first looks for its last `@` to know where the user part ends, and a URI
//! in `<...>` is first delimited by looking for `>`.
//!
//! The property tests below and the `sip_check` fuzz target compare every check with its
//! decoder on valid-looking and mutated values.

use super::chars::{class_end, is_hnv, is_lws, parse_decimal};
use super::chars::{HOST, PASSWORD_PLAIN, TOKEN, TOKEN_OR_COLON, URI_PARAM_PLAIN, USER_PLAIN};
use super::header::HeaderKind;
use super::scan;
use super::uri::{parse_host, parse_uri, UriContext};

/// The full syntax of one header value. The decoders are the reference; the checks in
/// this module give their verdicts without building what they decode.
pub(super) fn header_ok(kind: HeaderKind, value: &[u8]) -> bool {
    match kind {
        HeaderKind::Via => via_list_ok(value),
        HeaderKind::CallId => super::header::check_call_id(value).is_ok(),
        // `parse` has already refused every malformed CSeq, Max-Forwards and Content-Length
        // value (not only the first of each), and a `Message` only comes from `parse`.
        HeaderKind::CSeq | HeaderKind::MaxForwards | HeaderKind::ContentLength => true,
        HeaderKind::From | HeaderKind::To => name_addr_ok(value),
        HeaderKind::Expires => parse_decimal(value, u64::from(u32::MAX)).is_some(),
        HeaderKind::ContentType => super::header::check_media_type(value).is_ok(),
        HeaderKind::Contact if value == b"*" => true,
        HeaderKind::Contact | HeaderKind::Route | HeaderKind::RecordRoute => {
            name_addr_list_ok(value)
        }
        // rfc1123-date: the zone must be "GMT" (RFC 3261 §20.17, RFC 4475 §3.1.2.12).
        HeaderKind::Date => value.ends_with(b" GMT"),
        _ => true,
    }
}

#[inline(always)]
fn skip_lws(s: &[u8], mut i: usize) -> usize {
    while i < s.len() && is_lws(s[i]) {
        i += 1;
    }
    i
}

#[inline(always)]
fn token_end(s: &[u8], i: usize) -> usize {
    class_end(s, i, TOKEN)
}

/// Whether the `%` at `i` starts a `%HEXHEX` escape inside `s`.
#[inline(always)]
fn escape_ok(s: &[u8], i: usize) -> bool {
    s.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
        && s.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
}

fn all_lws(s: &[u8]) -> bool {
    s.iter().all(|&c| is_lws(c))
}

/// Whether [`parse_uri`] accepts `s` in context `ctx`.
pub fn uri_ok(s: &[u8], ctx: UriContext) -> bool {
    if s.len() >= 5 {
        // `sip:` / `sips:` in any case (only the two cases of a letter differ in bit 0x20 alone;
        // the `:` is compared exactly). A scheme holds no `:`, so the decoder splits the scheme
        // off at the same place.
        let w = u32::from_le_bytes([s[0], s[1], s[2], s[3]]);
        if w | 0x0020_2020 == u32::from_le_bytes(*b"sip:") {
            return sip_rest_ok(&s[4..], ctx);
        }
        if w | 0x2020_2020 == u32::from_le_bytes(*b"sips") && s[4] == b':' {
            return sip_rest_ok(&s[5..], ctx);
        }
    }
    // `tel:` and other schemes are rare in the headers validate checks.
    parse_uri(s, ctx).is_ok()
}

/// A SIP URI after `sip:`: `[userinfo "@"] hostport [";" params] ["?" headers]`.
fn sip_rest_ok(rest: &[u8], ctx: UriContext) -> bool {
    // `@` can appear in neither host, params nor headers unescaped: the last one ends userinfo.
    let hp = match scan::rfind(rest, b'@') {
        Some(at) => {
            if !userinfo_ok(&rest[..at]) {
                return false;
            }
            &rest[at + 1..]
        }
        None => rest,
    };
    let Some(mut i) = host_len(hp) else {
        return false;
    };
    if hp.get(i) == Some(&b':') {
        let start = i + 1;
        i = start;
        while i < hp.len() && hp[i].is_ascii_digit() {
            i += 1;
        }
        if parse_decimal(&hp[start..i], 65535).is_none() {
            return false;
        }
    }
    match hp.get(i) {
        None => true,
        Some(b';') => ctx != UriContext::AddrSpec && uri_params_ok(&hp[i + 1..], ctx),
        Some(b'?') => uri_headers_ok(&hp[i + 1..], ctx),
        Some(_) => false,
    }
}

/// `user [":" password]`: the first `:` switches from the user class to the password class.
fn userinfo_ok(ui: &[u8]) -> bool {
    let mut plain = USER_PLAIN;
    let mut i = 0;
    loop {
        i = class_end(ui, i, plain);
        match ui.get(i) {
            None => return !ui.is_empty(),
            // An escape cut by the `:` fails here as it does on the user alone (`:` is no hex
            // digit); the two hex digits are in both classes.
            Some(b'%') if escape_ok(ui, i) => i += 3,
            // Neither class holds `:`; the first one ends a non-empty user.
            Some(b':') if plain == USER_PLAIN && i > 0 => {
                plain = PASSWORD_PLAIN;
                i += 1;
            }
            Some(_) => return false,
        }
    }
}

/// `uri-parameter *( ";" uri-parameter )`, then the headers if a `?` follows: no empty
/// parameter, only param characters and `=`, valid escapes.
fn uri_params_ok(p: &[u8], ctx: UriContext) -> bool {
    // Where the current parameter starts: it is empty while `i` is still there.
    let mut item = 0;
    let mut i = 0;
    loop {
        i = class_end(p, i, URI_PARAM_PLAIN);
        match p.get(i) {
            None => return i > item,
            Some(b'%') if escape_ok(p, i) => i += 3,
            Some(b';') if i > item => {
                i += 1;
                item = i;
            }
            Some(b'?') => return i > item && uri_headers_ok(&p[i + 1..], ctx),
            Some(_) => return false,
        }
    }
}

fn uri_headers_ok(h: &[u8], ctx: UriContext) -> bool {
    ctx == UriContext::NameAddr
        && !h.is_empty()
        && scan::escaped_all(h, |c| is_hnv(c) || c == b'=' || c == b'&')
}

/// The length of the host at the start of `s`, when `parse_host` accepts one there.
pub fn host_len(s: &[u8]) -> Option<usize> {
    if s.first() == Some(&b'[') {
        return parse_host(s).map(|(_, n)| n);
    }
    let end = class_end(s, 0, HOST);
    let name = &s[..end];
    let first = *name.first()?;
    if first == b'.' || first == b'-' {
        return None;
    }
    // All digits and dots: must be a dotted quad (a top label cannot start with a digit).
    if first.is_ascii_digit()
        && scan::dotted_quad(name).is_none()
        && name.iter().all(|&c| c.is_ascii_digit() || c == b'.')
    {
        return None;
    }
    Some(end)
}

/// From the opening `"` at `i`, the index after the closing one.
fn quoted_end(s: &[u8], mut i: usize) -> Option<usize> {
    i += 1;
    while i < s.len() {
        match s[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// `*( SEMI generic-param )` from `i`, LWS allowed around `;` and `=`; the value must be
/// followed by the end or `stop`. Returns where it ends.
fn generic_params_end(s: &[u8], i: usize, stop: Option<u8>) -> Option<usize> {
    let mut i = skip_lws(s, i);
    while s.get(i) == Some(&b';') {
        i = skip_lws(s, i + 1);
        let t = token_end(s, i);
        if t == i {
            return None;
        }
        i = skip_lws(s, t);
        if s.get(i) == Some(&b'=') {
            i = skip_lws(s, i + 1);
            match s.get(i) {
                Some(b'"') => i = quoted_end(s, i)?,
                Some(b'[') => i += parse_host(&s[i..])?.1,
                _ => {
                    // token, or an unbracketed IPv6address (`received`, RFC 3261 §20.42).
                    let start = i;
                    i = class_end(s, i, TOKEN_OR_COLON);
                    if i == start {
                        return None;
                    }
                }
            }
            i = skip_lws(s, i);
        }
    }
    if i < s.len() && (stop.is_none() || Some(s[i]) != stop) {
        return None;
    }
    Some(i)
}

/// The length of the Via value at the start of `s` (up to a `,` or the end), when the Via
/// decoder accepts one there.
fn via_len(s: &[u8]) -> Option<usize> {
    // Nearly every Via starts `SIP/2.0/`: the same state the general walk reaches there.
    let mut i = if s.len() >= 8 && s[..8] == *b"SIP/2.0/" {
        skip_lws(s, 8)
    } else {
        let mut i = skip_lws(s, 0);
        for _ in 0..2 {
            let t = token_end(s, i);
            if t == i {
                return None;
            }
            i = skip_lws(s, t);
            if s.get(i) != Some(&b'/') {
                return None;
            }
            i = skip_lws(s, i + 1);
        }
        i
    };
    let t = token_end(s, i);
    if t == i {
        return None;
    }
    // LWS is required between sent-protocol and sent-by.
    i = skip_lws(s, t);
    if i == t {
        return None;
    }
    i += host_len(&s[i..])?;
    i = skip_lws(s, i);
    if s.get(i) == Some(&b':') {
        i = skip_lws(s, i + 1);
        let start = i;
        while i < s.len() && s[i].is_ascii_digit() {
            i += 1;
        }
        parse_decimal(&s[start..i], 65535)?;
    }
    generic_params_end(s, i, Some(b','))
}

/// The length of the name-addr or addr-spec (with its header parameters) at the start of `s`,
/// stopping at `stop` or the end, when the `NameAddr` decoder accepts one there.
fn name_addr_len(s: &[u8], stop: Option<u8>) -> Option<usize> {
    let mut i = skip_lws(s, 0);
    let angle = match s.get(i) {
        Some(b'"') => {
            i = skip_lws(s, quoted_end(s, i)?);
            if s.get(i) != Some(&b'<') {
                return None;
            }
            i += 1;
            true
        }
        Some(b'<') => {
            i += 1;
            true
        }
        _ => {
            // Display-name tokens followed by `<`, or an addr-spec.
            let mut j = i;
            while j < s.len() && (super::chars::is_token(s[j]) || is_lws(s[j])) {
                j += 1;
            }
            if s.get(j) == Some(&b'<') {
                i = j + 1;
                true
            } else {
                false
            }
        }
    };
    let rest = &s[i..];
    if angle {
        // No LWS or control byte inside `< ... >` (RFC 4475 §3.1.2.14).
        let close = scan::find_lt_or(rest, 0x21, b'>')?;
        if rest[close] != b'>' || !uri_ok(&rest[..close], UriContext::NameAddr) {
            return None;
        }
        i += close + 1;
    } else {
        let mut end = 0;
        while end < rest.len() && !is_lws(rest[end]) && rest[end] != b';' && Some(rest[end]) != stop
        {
            end += 1;
        }
        if !uri_ok(&rest[..end], UriContext::AddrSpec) {
            return None;
        }
        i += end;
    }
    generic_params_end(s, i, stop)
}

/// A comma-separated list as the `Vias` / `NameAddrs` iterators read it, every entry accepted
/// by `one`: at least one entry, none after a trailing comma.
fn list_ok(v: &[u8], one: impl Fn(&[u8]) -> Option<usize>) -> bool {
    let mut rest = v;
    if all_lws(rest) {
        return false;
    }
    loop {
        let Some(used) = one(rest) else {
            return false;
        };
        let after = &rest[used..];
        if after.first() != Some(&b',') {
            return true;
        }
        rest = &after[1..];
        if all_lws(rest) {
            return false;
        }
    }
}

/// Whether every entry of a Via header value decodes, and there is at least one.
pub fn via_list_ok(v: &[u8]) -> bool {
    list_ok(v, via_len)
}

/// Whether `NameAddr::parse` accepts `v` (From, To).
pub fn name_addr_ok(v: &[u8]) -> bool {
    name_addr_len(v, None) == Some(v.len())
}

/// Whether every entry of a Contact, Route or Record-Route value decodes, and there is at least
/// one.
pub fn name_addr_list_ok(v: &[u8]) -> bool {
    list_ok(v, |s| name_addr_len(s, Some(b',')))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::{NameAddr, NameAddrs, Vias};
    use proptest::prelude::*;

    /// What a list decoder says of a whole value: at least one item, and no item refused.
    fn list_decodes<T, E>(items: impl Iterator<Item = Result<T, E>>) -> bool {
        let mut any = false;
        for r in items {
            if r.is_err() {
                return false;
            }
            any = true;
        }
        any
    }

    fn decoder_vias(v: &[u8]) -> bool {
        list_decodes(Vias::new(v))
    }

    fn decoder_name_addrs(v: &[u8]) -> bool {
        list_decodes(NameAddrs::new(v))
    }

    /// Edits that turn a valid-looking value into a near miss: each replaces, inserts or
    /// deletes one byte, mostly one the grammar cares about.
    fn mutated(base: impl Strategy<Value = String>) -> impl Strategy<Value = Vec<u8>> {
        let byte = prop_oneof![
            proptest::sample::select(b" \t\r\n;:@<>\",?=%[]/\\&.-_0aZ#".to_vec()),
            any::<u8>(),
        ];
        (
            base,
            prop_oneof![
                2 => Just(Vec::new()),
                3 => proptest::collection::vec((any::<usize>(), 0u8..3, byte), 1..3),
            ],
        )
            .prop_map(|(s, edits)| {
                let mut v = s.into_bytes();
                for (at, op, b) in edits {
                    let at = at % (v.len() + 1);
                    match op {
                        0 if at < v.len() => v[at] = b,
                        2 if at < v.len() => {
                            v.remove(at);
                        }
                        _ => v.insert(at, b),
                    }
                }
                v
            })
    }

    fn host() -> impl Strategy<Value = String> {
        prop_oneof![
            6 => "[a-z][a-z0-9_-]{0,6}(\\.[a-z0-9-]{1,6}){0,3}",
            2 => "[0-9]{1,3}(\\.[0-9]{1,3}){2,4}",
            1 => "[0-9][a-z0-9.]{0,6}",
            1 => "[.-][a-z]{0,3}",
            1 => "\\[[0-9a-fA-F:.]{0,12}\\]",
            2 => "\\[2001:db8::[0-9]{1,2}\\]",
            1 => Just(String::new()),
        ]
    }

    fn uri() -> impl Strategy<Value = String> {
        (
            prop_oneof![
                8 => Just("sip:"),
                1 => Just("SIP:"),
                1 => Just("sIpS:"),
                1 => Just("sips:"),
                1 => Just("tel:"),
                1 => Just("http:"),
                1 => Just("x-y.z:"),
                1 => Just("1ab:"),
                1 => Just(":"),
                1 => Just("sip"),
                1 => Just("sipx:"),
            ],
            proptest::option::of((
                prop_oneof![
                    4 => "[a-zA-Z0-9;?=&,$+/!~*'().-]{1,8}",
                    1 => "[a-zA-Z0-9%;?=&,$+/!~*'().-]{0,8}",
                ],
                proptest::option::of(prop_oneof![
                    4 => "[a-z0-9&=+$,-]{0,5}",
                    1 => "[a-z0-9%&=+$,:-]{0,5}",
                ]),
            )),
            host(),
            proptest::option::of(prop_oneof![4 => "[0-9]{1,4}", 1 => "[0-9]{0,6}"]),
            prop_oneof![
                4 => "(;[a-z0-9=:&/-]{1,6}){0,3}",
                1 => "(;[a-z0-9=%:&\\[\\]/-]{0,6}){0,3}",
            ],
            proptest::option::of(prop_oneof![
                4 => "[a-z0-9=&?:-]{1,8}",
                1 => "[a-z0-9=&%?:-]{0,8}",
            ]),
        )
            .prop_map(|(scheme, ui, host, port, params, headers)| {
                let mut s = scheme.to_string();
                if let Some((user, pw)) = ui {
                    s += &user;
                    if let Some(pw) = pw {
                        s += ":";
                        s += &pw;
                    }
                    s += "@";
                }
                s += &host;
                if let Some(p) = port {
                    s += ":";
                    s += &p;
                }
                s += &params;
                if let Some(h) = headers {
                    s += "?";
                    s += &h;
                }
                s
            })
    }

    fn lws() -> impl Strategy<Value = &'static str> {
        prop_oneof![
            4 => Just(""),
            2 => Just(" "),
            1 => Just("  "),
            1 => Just("\t"),
            1 => Just("\r\n "),
        ]
    }

    fn generic_params() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            (
                lws(),
                prop_oneof![
                    3 => Just("branch"),
                    3 => Just("tag"),
                    2 => Just("rport"),
                    2 => Just("received"),
                    2 => Just("q"),
                    1 => Just(""),
                ],
                lws(),
                proptest::option::of((
                    lws(),
                    prop_oneof![
                        8 => "[a-zA-Z0-9.-]{0,10}",
                        1 => Just("\"a;b,\\\"c\"".to_string()),
                        1 => Just("\"open".to_string()),
                        1 => Just("[2001:db8::9:255]".to_string()),
                        1 => Just("2001:db8::9".to_string()),
                        1 => Just("[x]".to_string()),
                    ],
                )),
            )
                .prop_map(|(a, name, b, v)| {
                    let mut s = format!("{a};{b}{name}");
                    if let Some((c, v)) = v {
                        s += &format!("{c}={c}{v}");
                    }
                    s
                }),
            0..4,
        )
        .prop_map(|v| v.concat())
    }

    fn via() -> impl Strategy<Value = String> {
        (
            prop_oneof![
                12 => Just("SIP/2.0/".to_string()),
                1 => Just("SIP / 2.0 / ".to_string()),
                1 => Just("SIP/2.0/\r\n ".to_string()),
                1 => Just("sip/2.0/".to_string()),
                1 => Just("SIP/2.0".to_string()),
                1 => Just("SIP//".to_string()),
            ],
            prop_oneof![
                3 => Just("UDP"),
                3 => Just("TCP"),
                1 => Just("TLS"),
                1 => Just("x-y"),
                1 => Just(""),
            ],
            lws(),
            host(),
            lws(),
            proptest::option::of((lws(), prop_oneof![4 => "[0-9]{1,5}", 1 => "[0-9]{0,6}"])),
            generic_params(),
        )
            .prop_map(|(proto, transport, sp, host, sp2, port, params)| {
                let mut s = format!("{proto}{transport} {sp}{host}{sp2}");
                if let Some((l, p)) = port {
                    s += &format!(":{l}{p}");
                }
                s + &params
            })
    }

    fn name_addr() -> impl Strategy<Value = String> {
        (
            lws(),
            prop_oneof![
                4 => Just(""),
                1 => Just("\"Bob \\\"B\\\" <x>, y\" "),
                1 => Just("\"unterminated <"),
                2 => Just("Bob "),
                1 => Just("Alice Smith"),
                1 => Just("a,b "),
            ],
            prop_oneof![
                10 => uri().prop_map(|u| format!("<{u}>")),
                1 => uri(),
                1 => uri().prop_map(|u| format!("< {u}>")),
                1 => uri().prop_map(|u| format!("<{u}")),
            ],
            generic_params(),
            lws(),
        )
            .prop_map(|(a, display, addr, params, b)| format!("{a}{display}{addr}{params}{b}"))
    }

    fn list(one: impl Strategy<Value = String>) -> impl Strategy<Value = String> {
        (
            proptest::collection::vec((one, lws()), 1..3),
            prop_oneof![6 => Just(""), 1 => Just(","), 1 => Just(" , ")],
        )
            .prop_map(|(items, tail)| {
                let v: Vec<String> = items.into_iter().map(|(s, l)| s + l).collect();
                v.join(",") + tail
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn uri_check_agrees_with_decoder(s in mutated(uri())) {
            for ctx in [UriContext::RequestUri, UriContext::NameAddr, UriContext::AddrSpec] {
                prop_assert_eq!(uri_ok(&s, ctx), parse_uri(&s, ctx).is_ok(), "{:?}", ctx);
            }
        }

        #[test]
        fn host_check_agrees_with_decoder(s in mutated(host())) {
            prop_assert_eq!(host_len(&s), parse_host(&s).map(|(_, n)| n));
        }

        #[test]
        fn via_check_agrees_with_decoder(s in mutated(list(via()))) {
            prop_assert_eq!(via_list_ok(&s), decoder_vias(&s));
        }

        #[test]
        fn name_addr_check_agrees_with_decoder(s in mutated(name_addr())) {
            prop_assert_eq!(name_addr_ok(&s), NameAddr::parse(&s).is_ok());
        }

        #[test]
        fn name_addr_list_check_agrees_with_decoder(s in mutated(list(name_addr()))) {
            prop_assert_eq!(name_addr_list_ok(&s), decoder_name_addrs(&s));
        }

        #[test]
        fn tag_shortcut_agrees_with_its_walk(s in mutated(name_addr())) {
            use crate::sip::fields::name_addr_tag_with;
            prop_assert_eq!(name_addr_tag_with(&s, true), name_addr_tag_with(&s, false));
        }

        #[test]
        fn branch_shortcut_agrees_with_its_walk(s in mutated(list(via()))) {
            use crate::sip::fields::via_branch_with;
            prop_assert_eq!(via_branch_with(&s, true), via_branch_with(&s, false));
        }

        #[test]
        fn tag_scan_agrees_with_decoder(s in mutated(name_addr())) {
            if let Ok(na) = NameAddr::parse(&s) {
                prop_assert_eq!(crate::sip::fields::name_addr_tag(&s), na.tag());
            }
        }

        #[test]
        fn branch_scan_agrees_with_decoder(s in mutated(list(via()))) {
            if let Some(Ok(v)) = Vias::new(&s).next() {
                prop_assert_eq!(crate::sip::fields::via_branch(&s), v.branch());
            }
        }

        #[test]
        fn checks_agree_on_any_bytes(s in proptest::collection::vec(any::<u8>(), 0..40)) {
            prop_assert_eq!(uri_ok(&s, UriContext::NameAddr), parse_uri(&s, UriContext::NameAddr).is_ok());
            prop_assert_eq!(via_list_ok(&s), decoder_vias(&s));
            prop_assert_eq!(name_addr_ok(&s), NameAddr::parse(&s).is_ok());
            prop_assert_eq!(name_addr_list_ok(&s), decoder_name_addrs(&s));
        }
    }

    /// The generators must reach the accept paths, or the comparisons above prove little.
    #[test]
    fn generators_reach_accepting_values() {
        use proptest::strategy::ValueTree;
        use proptest::test_runner::TestRunner;
        let mut runner = TestRunner::deterministic();
        let mut count =
            |s: &dyn Fn(&mut TestRunner) -> bool| (0..2000).filter(|_| s(&mut runner)).count();
        let uris = count(&|r| {
            let s = mutated(uri()).new_tree(r).unwrap().current();
            uri_ok(&s, UriContext::NameAddr)
        });
        let vias = count(&|r| {
            let s = mutated(list(via())).new_tree(r).unwrap().current();
            via_list_ok(&s)
        });
        let nas = count(&|r| {
            let s = mutated(name_addr()).new_tree(r).unwrap().current();
            name_addr_ok(&s)
        });
        let lists = count(&|r| {
            let s = mutated(list(name_addr())).new_tree(r).unwrap().current();
            name_addr_list_ok(&s)
        });
        for (what, n) in [
            ("uri", uris),
            ("via", vias),
            ("name-addr", nas),
            ("list", lists),
        ] {
            // 5%: a few hundred accepted values in each property's 4096 cases.
            assert!(n >= 100, "{what}: only {n} of 2000 accepted");
        }
    }

    #[test]
    fn examples() {
        assert!(uri_ok(
            b"sip:alice:pw@example.com:5060;lr?x=y",
            UriContext::NameAddr
        ));
        assert!(!uri_ok(
            b"sip:alice@example.com?x=y",
            UriContext::RequestUri
        ));
        assert!(!uri_ok(b"sip::pw@example.com", UriContext::NameAddr));
        assert!(!uri_ok(b"sip:a@b;;", UriContext::NameAddr));
        assert!(via_list_ok(
            b"SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776sgdkse"
        ));
        assert!(via_list_ok(
            b"SIP/2.0/\r\n UDP h;received=2001:db8::9;rport"
        ));
        assert!(!via_list_ok(b"SIP/2.0/UDP h,"));
        assert!(!via_list_ok(b"") && !via_list_ok(b" \r\n "));
        assert!(!name_addr_list_ok(b"") && !name_addr_list_ok(b"\t"));
        assert!(!via_list_ok(b"SIP/2.0/UDPh"));
        assert!(name_addr_ok(
            b"Alice <sip:alice@atlanta.example.com>;tag=1928301774"
        ));
        assert!(!name_addr_ok(b"<sip:a@b>;;"));
        assert!(name_addr_list_ok(b"<sip:a@b>;q=0.5, \"x,y\" <sip:c@d;p=1>"));
        assert!(!name_addr_list_ok(b"\"Joe\" <sip:joe@example.org>;;,;,,"));
    }
}
