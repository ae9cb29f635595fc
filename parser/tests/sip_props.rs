//! Property tests for the SIP parser: a message built from random valid parts parses back to
//! those parts (whatever the header-name case, compact or long form, and line folding); any
//! bytes never panic; a stream cut anywhere is Partial until the message is whole.

use proptest::prelude::*;
use sipshard_parser::sip::{self, find_call_id, Framing, Host, EMPTY_HEADER};
use sipshard_parser::Status;

#[derive(Debug, Clone)]
struct Parts {
    method: String,
    user: String,
    host: String,
    port: Option<u16>,
    call_id: String,
    cseq: u32,
    from_tag: String,
    to_tag: Option<String>,
    branches: Vec<String>,
    max_forwards: u8,
    body: Vec<u8>,
    compact: Vec<bool>,
    upper: Vec<bool>,
    fold: Vec<bool>,
}

fn token() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9][a-zA-Z0-9.!%*_+`'~-]{0,15}"
}

fn parts() -> impl Strategy<Value = Parts> {
    (
        prop_oneof![
            Just("INVITE".to_string()),
            Just("MESSAGE".to_string()),
            Just("OPTIONS".to_string()),
            "[A-Z]{3,10}"
        ],
        "[a-z0-9][a-z0-9_.-]{0,10}",
        "[a-z][a-z0-9-]{0,10}(\\.[a-z][a-z0-9-]{0,8}){0,3}",
        proptest::option::of(1u16..),
        (
            "[a-zA-Z0-9.!%*_+-]{1,30}",
            proptest::option::of("[a-z0-9.]{1,20}"),
        ),
        any::<u32>(),
        token(),
        proptest::option::of(token()),
        proptest::collection::vec("z9hG4bK[a-zA-Z0-9.-]{1,20}", 1..4),
        any::<u8>(),
        proptest::collection::vec(any::<u8>(), 0..300),
        (
            proptest::collection::vec(any::<bool>(), 8),
            proptest::collection::vec(any::<bool>(), 8),
            proptest::collection::vec(any::<bool>(), 8),
        ),
    )
        .prop_map(
            |(
                method,
                user,
                host,
                port,
                (cid, cid_host),
                cseq,
                from_tag,
                to_tag,
                branches,
                mf,
                body,
                (compact, upper, fold),
            )| Parts {
                method,
                user,
                host,
                port,
                call_id: match cid_host {
                    Some(h) => format!("{cid}@{h}"),
                    None => cid,
                },
                cseq,
                from_tag,
                to_tag,
                branches,
                max_forwards: mf,
                body,
                compact,
                upper,
                fold,
            },
        )
}

fn name(p: &Parts, i: usize, long: &str, compact: Option<&str>) -> String {
    let n = match compact {
        Some(c) if p.compact[i] => c.to_string(),
        _ => long.to_string(),
    };
    if p.upper[i] {
        n.to_ascii_uppercase()
    } else {
        n.to_ascii_lowercase()
    }
}

fn sep(p: &Parts, i: usize) -> &'static str {
    if p.fold[i] {
        "\r\n  "
    } else {
        " "
    }
}

fn build(p: &Parts) -> Vec<u8> {
    let port = p.port.map(|x| format!(":{x}")).unwrap_or_default();
    let ruri = format!("sip:{}@{}{}", p.user, p.host, port);
    let mut m = format!("{} {} SIP/2.0\r\n", p.method, ruri);
    let vias: Vec<String> = p
        .branches
        .iter()
        .map(|b| format!("SIP/2.0/UDP {}:5060;branch={}", p.host, b))
        .collect();
    m += &format!(
        "{}:{}{}\r\n",
        name(p, 0, "Via", Some("v")),
        sep(p, 0),
        vias.join(", ")
    );
    m += &format!(
        "{}: {}\r\n",
        name(p, 1, "Max-Forwards", None),
        p.max_forwards
    );
    m += &format!(
        "{}: <sip:a@{}>;{}tag={}\r\n",
        name(p, 2, "From", Some("f")),
        p.host,
        sep(p, 2),
        p.from_tag
    );
    let to_tag = p
        .to_tag
        .as_ref()
        .map(|t| format!(";tag={t}"))
        .unwrap_or_default();
    m += &format!(
        "{}: \"Bob\" <{}>{}\r\n",
        name(p, 3, "To", Some("t")),
        ruri,
        to_tag
    );
    m += &format!(
        "{}:{}{}\r\n",
        name(p, 4, "Call-ID", Some("i")),
        sep(p, 4),
        p.call_id
    );
    m += &format!(
        "{}: {}{}{}\r\n",
        name(p, 5, "CSeq", None),
        p.cseq,
        sep(p, 5),
        p.method
    );
    m += &format!(
        "{}: {}\r\n",
        name(p, 6, "Content-Length", Some("l")),
        p.body.len()
    );
    m += "\r\n";
    let mut v = m.into_bytes();
    v.extend_from_slice(&p.body);
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn built_message_parses_back(p in parts()) {
        let buf = build(&p);
        for framing in [Framing::Datagram, Framing::Stream] {
            let mut h = [EMPTY_HEADER; 16];
            let m = sip::parse_strict(&buf, &mut h, framing).unwrap().complete().unwrap();
            prop_assert_eq!(m.method(), Some(p.method.as_bytes()));
            let ru = m.request_uri().unwrap();
            prop_assert_eq!(ru.user, Some(p.user.as_bytes()));
            prop_assert_eq!(ru.port, p.port);
            prop_assert_eq!(ru.host, Some(Host::Name(p.host.as_bytes())));
            prop_assert_eq!(m.call_id(), Some(p.call_id.as_bytes()));
            prop_assert_eq!(find_call_id(&buf), Some(p.call_id.as_bytes()));
            let c = m.cseq().unwrap();
            prop_assert_eq!(c.number, p.cseq);
            prop_assert_eq!(c.method, p.method.as_bytes());
            prop_assert_eq!(m.from_tag(), Some(p.from_tag.as_bytes()));
            prop_assert_eq!(m.to_tag(), p.to_tag.as_deref().map(str::as_bytes));
            let branches: Vec<Vec<u8>> = m.vias().map(|v| v.branch().unwrap().to_vec()).collect();
            let want: Vec<Vec<u8>> = p.branches.iter().map(|b| b.as_bytes().to_vec()).collect();
            prop_assert_eq!(branches, want);
            prop_assert_eq!(m.max_forwards(), Some(p.max_forwards));
            prop_assert_eq!(m.body(), &p.body[..]);
            prop_assert_eq!(m.len(), buf.len());
        }
    }

    #[test]
    fn stream_cut_anywhere_is_partial(p in parts(), cut in any::<prop::sample::Index>()) {
        let buf = build(&p);
        let at = cut.index(buf.len());
        let mut h = [EMPTY_HEADER; 16];
        prop_assert_eq!(sip::parse(&buf[..at], &mut h, Framing::Stream).unwrap(), Status::Partial);
    }

    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = find_call_id(&data);
        for framing in [Framing::Datagram, Framing::Stream] {
            let mut h = [EMPTY_HEADER; 8];
            if let Ok(Status::Complete(m)) = sip::parse(&data, &mut h, framing) {
                let _ = (m.from(), m.to(), m.vias().count(), m.contacts().count());
            }
        }
    }

    #[test]
    fn mutated_message_never_panics(p in parts(), pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut buf = build(&p);
        let i = pos.index(buf.len());
        buf[i] = byte;
        let mut h = [EMPTY_HEADER; 16];
        if let Ok(Status::Complete(m)) = sip::parse(&buf, &mut h, Framing::Datagram) {
            prop_assert!(m.len() <= buf.len());
            let _ = (m.from(), m.to(), m.vias().count(), m.expires());
        }
    }
}
