//! The valid-or-not checks `Message::validate` uses must give exactly the verdicts of the
//! decoders they stand in for, on any bytes. The first input byte picks the URI context; the
//! rest is the value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sipshard_parser::sip::{check, parse_uri, NameAddr, NameAddrs, UriContext, Vias};

fn all_ok<T, E>(mut it: impl Iterator<Item = Result<T, E>>) -> bool {
    let mut any = false;
    it.try_for_each(|r| {
        any = true;
        r.map(|_| ())
    })
    .is_ok()
        && any
}

fuzz_target!(|data: &[u8]| {
    let (ctx, v) = match data {
        [c, rest @ ..] => (
            match c % 3 {
                0 => UriContext::RequestUri,
                1 => UriContext::NameAddr,
                _ => UriContext::AddrSpec,
            },
            rest,
        ),
        _ => return,
    };
    assert_eq!(check::uri_ok(v, ctx), parse_uri(v, ctx).is_ok());
    assert_eq!(check::via_list_ok(v), all_ok(Vias::new(v)));
    assert_eq!(check::name_addr_ok(v), NameAddr::parse(v).is_ok());
    assert_eq!(check::name_addr_list_ok(v), all_ok(NameAddrs::new(v)));
});
