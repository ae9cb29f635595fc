//! The SWAR byte searches the header splitter and the URI checks use must find exactly what
//! the byte-at-a-time searches find, at every offset and for every needle. The first two input
//! bytes pick the needles; the rest is the haystack.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sipshard_parser::sip::scan;

fuzz_target!(|data: &[u8]| {
    let (a, b, hay) = match data {
        [a, b, rest @ ..] => (*a, *b, rest),
        _ => return,
    };
    for x in [a, b, b'\r', b'\n'] {
        assert_eq!(scan::find(hay, x), scan::find_scalar(hay, x));
        assert_eq!(scan::rfind(hay, x), scan::rfind_scalar(hay, x));
    }
    assert_eq!(scan::find2(hay, a, b), scan::find2_scalar(hay, a, b));
    assert_eq!(scan::find3(hay, a, b, b';'), scan::find3_scalar(hay, a, b, b';'));
    for n in [a % 129, 0x0e] {
        assert_eq!(scan::find_lt(hay, n), scan::find_lt_scalar(hay, n));
        assert_eq!(scan::find_lt_or(hay, n, b), scan::find_lt_or_scalar(hay, n, b));
    }
    // Unaligned starts: the splitter searches from the middle of the buffer.
    for from in 1..hay.len().min(9) {
        assert_eq!(scan::find(&hay[from..], a), scan::find_scalar(&hay[from..], a));
    }
});
