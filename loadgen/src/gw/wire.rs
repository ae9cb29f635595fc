//! What the gateway scenarios put on the wire and read back, with no I/O: the numbered bodies,
//! Call-IDs, MSRP session and transaction ids that let a reply or a delivery be traced to its
//! call without a lookup table, and the SIP and MSRP messages of the load path.
//!
//! Why numbers in the messages themselves: a delivery arrives on the *other* side of the
//! gateway (a SEND on an MSRP connection for a MESSAGE sent over UDP, or the reverse), in a
//! message the gateway wrote. Its body is the only thing that crosses intact, so the body starts
//! with the call's number (`gwl:m<seq>:`); the Call-IDs and transaction ids we mint carry it too,
//! so the direct replies (202, MSRP 200) are matched by parsing, not by a string-keyed index.
//!
//! Everything on the per-message path is written byte by byte (integers with `itoa`): at tens
//! of thousands of messages a second `format!` alone would take a visible share of the load
//! thread. Set-up messages (INVITE, SDP) use the test peers' writers, which are plain but slow.

use sipshard_parser::sip::{HeaderKind, Message};

/// Every body the load generator sends starts with this.
pub const BODY_PREFIX: &[u8] = b"gwl:";
/// The kind of a number carried in a body or Call-ID: a session's set-up message (user index).
pub const SETUP: u8 = b's';
/// A measured or warm-up message (the call's number in the run).
pub const LOAD: u8 = b'm';
/// An INVITE (user index).
pub const INVITE: u8 = b'i';
/// MSRP transaction ids and Message-IDs of load SENDs: `txn<seq>`, `msg<seq>`. Three letters so
/// that even `0` makes the 4 characters RFC 4975 asks of an ident.
const TXN: &[u8] = b"txn";
const MSGID: &[u8] = b"msg";
/// The transaction id (and Message-ID) of the empty SEND that binds a session: `bnd<user>`.
const BIND: &[u8] = b"bnd";

fn put(out: &mut Vec<u8>, parts: &[&[u8]]) {
    for p in parts {
        out.extend_from_slice(p);
    }
}

/// A body of `size` bytes (more when the prefix alone is longer): `gwl:<kind><n>:` then filler.
pub fn body(kind: u8, n: u64, size: usize, out: &mut Vec<u8>) {
    const FILL: &[u8] = b"sipshard-load gateway payload 0123456789 abcdefghijklmnopqrstuvwxyz. ";
    let mut num = itoa::Buffer::new();
    put(out, &[BODY_PREFIX, &[kind], num.format(n).as_bytes(), b":"]);
    let head = BODY_PREFIX.len() + 2 + num.format(n).len();
    let mut left = size.saturating_sub(head);
    while left > 0 {
        let take = left.min(FILL.len());
        out.extend_from_slice(&FILL[..take]);
        left -= take;
    }
}

/// The kind and number at the start of a body, if it is one of ours.
pub fn read_body(b: &[u8]) -> Option<(u8, u64)> {
    let rest = b.strip_prefix(BODY_PREFIX)?;
    let (&kind, rest) = rest.split_first()?;
    let end = rest.iter().position(|&c| c == b':')?;
    Some((kind, parse_u64(&rest[..end])?))
}

fn parse_u64(b: &[u8]) -> Option<u64> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    b.iter().try_fold(0u64, |acc, &c| {
        acc.checked_mul(10)?.checked_add(u64::from(c - b'0'))
    })
}

/// `<kind><n>-<run>@sipshard-load`: the run's id keeps two runs against one server apart.
pub fn call_id(kind: u8, n: u64, run: &str, out: &mut Vec<u8>) {
    put(
        out,
        &[
            &[kind],
            itoa::Buffer::new().format(n).as_bytes(),
            b"-",
            run.as_bytes(),
            b"@sipshard-load",
        ],
    );
}

/// The kind and number of a Call-ID [`call_id`] wrote for this run.
pub fn read_call_id(cid: &[u8], run: &str) -> Option<(u8, u64)> {
    let (&kind, rest) = cid.split_first()?;
    let dash = rest.iter().position(|&c| c == b'-')?;
    let tail = &rest[dash + 1..];
    let tail = tail.strip_prefix(run.as_bytes())?;
    if tail != b"@sipshard-load" {
        return None;
    }
    Some((kind, parse_u64(&rest[..dash])?))
}

/// The number at the end of a SIP URI's user part with `prefix` (`sip:bob17@...`, `bob` -> 17).
pub fn user_number(uri: &[u8], prefix: &str) -> Option<u64> {
    let rest = uri.strip_prefix(b"sip:")?;
    let at = rest.iter().position(|&c| c == b'@')?;
    parse_u64(rest[..at].strip_prefix(prefix.as_bytes())?)
}

/// Our MSRP session id for user `u`: `<run>u<u>` (the run id is hex, so it holds no `u`).
pub fn session_id(run: &str, u: u64) -> String {
    let mut s = String::with_capacity(run.len() + 21);
    s.push_str(run);
    s.push('u');
    s.push_str(itoa::Buffer::new().format(u));
    s
}

/// The user of an MSRP URI whose session id [`session_id`] wrote for this run.
pub fn read_session_id(uri: &[u8], run: &str) -> Option<u64> {
    let rest = uri.split(|&c| c == b'/').nth(3)?;
    let id = rest.split(|&c| c == b';').next()?;
    let n = id.strip_prefix(run.as_bytes())?.strip_prefix(b"u")?;
    parse_u64(n)
}

/// The number of a load SEND's transaction id (`txn<seq>`).
pub fn read_txn(tid: &[u8]) -> Option<u64> {
    parse_u64(tid.strip_prefix(TXN)?)
}

/// The user of a binding SEND's transaction id (`bnd<user>`).
pub fn read_bind(tid: &[u8]) -> Option<u64> {
    parse_u64(tid.strip_prefix(BIND)?)
}

/// A SIP request out of dialog (or an ACK, with `to_tag`).
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// Method.
    pub method: &'a str,
    /// Request-URI.
    pub ruri: &'a str,
    /// Our `ip:port` (Via sent-by, Contact).
    pub local: &'a str,
    /// Via branch, with the magic cookie.
    pub branch: &'a [u8],
    /// From URI.
    pub from: &'a str,
    /// From tag.
    pub from_tag: &'a [u8],
    /// To URI.
    pub to: &'a str,
    /// To tag, for an ACK.
    pub to_tag: Option<&'a [u8]>,
    /// Call-ID.
    pub call_id: &'a [u8],
    /// CSeq number.
    pub cseq: u32,
    /// Sends our Contact (INVITE).
    pub contact: bool,
    /// Content-Type and body.
    pub body: Option<(&'a str, &'a [u8])>,
}

/// Writes `r` to `out`.
pub fn request(r: &Request<'_>, out: &mut Vec<u8>) {
    let method = r.method.as_bytes();
    put(out, &[method, b" ", r.ruri.as_bytes(), b" SIP/2.0\r\n"]);
    put(
        out,
        &[
            b"Via: SIP/2.0/UDP ",
            r.local.as_bytes(),
            b";branch=",
            r.branch,
            b";rport\r\nMax-Forwards: 70\r\nFrom: <",
            r.from.as_bytes(),
            b">;tag=",
            r.from_tag,
            b"\r\nTo: <",
            r.to.as_bytes(),
            b">",
        ],
    );
    if let Some(t) = r.to_tag {
        put(out, &[b";tag=", t]);
    }
    let mut num = itoa::Buffer::new();
    put(
        out,
        &[
            b"\r\nCall-ID: ",
            r.call_id,
            b"\r\nCSeq: ",
            num.format(r.cseq).as_bytes(),
            b" ",
            method,
            b"\r\n",
        ],
    );
    if r.contact {
        put(out, &[b"Contact: <sip:", r.local.as_bytes(), b">\r\n"]);
    }
    match r.body {
        Some((ct, b)) => {
            put(
                out,
                &[
                    b"Content-Type: ",
                    ct.as_bytes(),
                    b"\r\nContent-Length: ",
                    num.format(b.len()).as_bytes(),
                    b"\r\n\r\n",
                    b,
                ],
            );
        }
        None => out.extend_from_slice(b"Content-Length: 0\r\n\r\n"),
    }
}

/// The branch of a request we send: `z9hG4bK-<run>-<kind><n>`. Deterministic, so an ACK for a
/// failure response to an INVITE can be written from the response alone.
pub fn branch(run: &str, kind: u8, n: u64, out: &mut Vec<u8>) {
    put(
        out,
        &[
            b"z9hG4bK-",
            run.as_bytes(),
            b"-",
            &[kind],
            itoa::Buffer::new().format(n).as_bytes(),
        ],
    );
}

/// A response to `req`: its Via, From, To (with `to_tag` added when it has none), Call-ID and
/// CSeq, then `contact` and the body. The far end is the gateway, so Record-Route is not copied
/// (it sends none).
pub fn response(
    req: &Message<'_, '_>,
    code: u16,
    reason: &str,
    to_tag: &[u8],
    contact: Option<&str>,
    body: Option<(&str, &[u8])>,
    out: &mut Vec<u8>,
) {
    let mut num = itoa::Buffer::new();
    put(
        out,
        &[
            b"SIP/2.0 ",
            num.format(code).as_bytes(),
            b" ",
            reason.as_bytes(),
            b"\r\n",
        ],
    );
    let had_tag = req.to_tag().is_some();
    for h in req.headers() {
        let name: &[u8] = match h.kind {
            HeaderKind::Via => b"Via",
            HeaderKind::From => b"From",
            HeaderKind::To => b"To",
            HeaderKind::CallId => b"Call-ID",
            HeaderKind::CSeq => b"CSeq",
            _ => continue,
        };
        put(out, &[name, b": ", h.value]);
        if h.kind == HeaderKind::To && !had_tag {
            put(out, &[b";tag=", to_tag]);
        }
        out.extend_from_slice(b"\r\n");
    }
    if let Some(c) = contact {
        put(out, &[b"Contact: <sip:", c.as_bytes(), b">\r\n"]);
    }
    match body {
        Some((ct, b)) => put(
            out,
            &[
                b"Content-Type: ",
                ct.as_bytes(),
                b"\r\nContent-Length: ",
                num.format(b.len()).as_bytes(),
                b"\r\n\r\n",
                b,
            ],
        ),
        None => out.extend_from_slice(b"Content-Length: 0\r\n\r\n"),
    }
}

/// The ACK for a final response to one of our INVITEs, written from the response alone (RFC
/// 3261 §13.2.2.4 and §17.1.1.3): for a 2xx a new transaction (`branch`) to the Contact of the
/// response (else `ruri`), for a failure the INVITE's own Via and Request-URI (the To URI: our
/// INVITEs have the To URI as Request-URI). From, To (with the tag) and Call-ID are copied.
/// `None` when the response lacks what an ACK needs.
pub fn ack(resp: &Message<'_, '_>, local: &str, branch: &[u8], ruri: &str) -> Option<Vec<u8>> {
    let code = resp.status_code()?;
    let ok = (200..300).contains(&code);
    let target: &[u8] = if ok {
        resp.contacts()
            .next()
            .map_or(ruri.as_bytes(), |c| c.uri.raw)
    } else {
        resp.to()?.uri.raw
    };
    let cseq = resp.cseq()?;
    let mut out = Vec::with_capacity(400);
    put(&mut out, &[b"ACK ", target, b" SIP/2.0\r\n"]);
    if ok {
        put(
            &mut out,
            &[
                b"Via: SIP/2.0/UDP ",
                local.as_bytes(),
                b";branch=",
                branch,
                b";rport\r\n",
            ],
        );
    } else {
        put(
            &mut out,
            &[b"Via: ", resp.values_of(HeaderKind::Via).next()?, b"\r\n"],
        );
    }
    put(
        &mut out,
        &[
            b"Max-Forwards: 70\r\nFrom: ",
            resp.values_of(HeaderKind::From).next()?,
            b"\r\nTo: ",
            resp.values_of(HeaderKind::To).next()?,
            b"\r\nCall-ID: ",
            resp.call_id()?,
            b"\r\nCSeq: ",
            itoa::Buffer::new().format(cseq.number).as_bytes(),
            b" ACK\r\nContent-Length: 0\r\n\r\n",
        ],
    );
    Some(out)
}

/// User `u`'s INVITE from `sip:carol<u>@<local>` to `sip:dave<u>@<local>` (also the
/// Request-URI, so the gateway's MESSAGEs come back to us), Call-ID `i<u>-<run>@...`, with an
/// SDP offer naming our MSRP URI `path` (port `port`). The offer says `a=setup:actpass`, so the
/// gateway answers passive and we connect (RFC 6135).
pub fn invite(run: &str, u: u64, local: &str, port: u16, path: &str) -> Vec<u8> {
    let offer = crate::peer::sdp::offer(port, path, "text/plain");
    let (mut cid, mut br) = (Vec::new(), Vec::new());
    call_id(INVITE, u, run, &mut cid);
    branch(run, INVITE, u, &mut br);
    let carol = format!("sip:carol{u}@{local}");
    let dave = format!("sip:dave{u}@{local}");
    let tag_len = cid.len() - b"@sipshard-load".len();
    let mut out = Vec::with_capacity(700);
    request(
        &Request {
            method: "INVITE",
            ruri: &dave,
            local,
            branch: &br,
            from: &carol,
            from_tag: &cid[..tag_len],
            to: &dave,
            to_tag: None,
            call_id: &cid,
            cseq: 1,
            contact: true,
            body: Some(("application/sdp", offer.as_bytes())),
        },
        &mut out,
    );
    out
}

/// A SEND carrying a whole message in one chunk: transaction id `txn<seq>`, Message-ID
/// `msg<seq>`, `Byte-Range: 1-<n>/<n>`. No report headers: a 200 comes back at once (the
/// default `Failure-Report: yes`), a failure REPORT only on failure, no success REPORT.
pub fn send(seq: u64, to_path: &str, from_path: &str, body: &[u8], out: &mut Vec<u8>) {
    let mut a = itoa::Buffer::new();
    let mut b = itoa::Buffer::new();
    let seq = a.format(seq).as_bytes();
    let len = b.format(body.len()).as_bytes();
    put(
        out,
        &[
            b"MSRP ",
            TXN,
            seq,
            b" SEND\r\nTo-Path: ",
            to_path.as_bytes(),
            b"\r\nFrom-Path: ",
            from_path.as_bytes(),
            b"\r\nMessage-ID: ",
            MSGID,
            seq,
            b"\r\nByte-Range: 1-",
            len,
            b"/",
            len,
            b"\r\nContent-Type: text/plain\r\n\r\n",
            body,
            b"\r\n-------",
            TXN,
            seq,
            b"$\r\n",
        ],
    );
}

/// The empty SEND that binds our connection to session `user` (RFC 4975 §5.4: the active side
/// sends first; an empty SEND is no message).
pub fn bind(user: u64, to_path: &str, from_path: &str, out: &mut Vec<u8>) {
    let mut a = itoa::Buffer::new();
    let u = a.format(user).as_bytes();
    put(
        out,
        &[
            b"MSRP ",
            BIND,
            u,
            b" SEND\r\nTo-Path: ",
            to_path.as_bytes(),
            b"\r\nFrom-Path: ",
            from_path.as_bytes(),
            b"\r\nMessage-ID: ",
            BIND,
            u,
            b"\r\nByte-Range: 1-0/0\r\n-------",
            BIND,
            u,
            b"$\r\n",
        ],
    );
}

/// A response to an MSRP request (RFC 4975 §7.2): To-Path = the request's From-Path, From-Path
/// = the request's To-Path (one hop each way here).
pub fn msrp_response(
    tid: &[u8],
    code: u16,
    comment: &str,
    req_to_path: &[u8],
    req_from_path: &[u8],
    out: &mut Vec<u8>,
) {
    let mut num = itoa::Buffer::new();
    put(
        out,
        &[
            b"MSRP ",
            tid,
            b" ",
            num.format(code).as_bytes(),
            b" ",
            comment.as_bytes(),
            b"\r\nTo-Path: ",
            req_from_path,
            b"\r\nFrom-Path: ",
            req_to_path,
            b"\r\n-------",
            tid,
            b"$\r\n",
        ],
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::msrp::OwnedFrame;
    use sipshard_parser::msrp::{self, ByteRange, Flag, Limits};
    use sipshard_parser::sip::{self, Framing, EMPTY_HEADER};

    fn parse_sip(b: &[u8]) -> (usize, Vec<u8>) {
        let mut h = [EMPTY_HEADER; 32];
        let m = sip::parse(b, &mut h, Framing::Datagram)
            .expect("parses")
            .complete()
            .expect("whole");
        assert_eq!(m.validate(), Ok(()), "{}", String::from_utf8_lossy(b));
        (m.len(), m.body().to_vec())
    }

    #[test]
    fn bodies_carry_their_number_and_size() {
        for (kind, n, size) in [(LOAD, 0, 64), (SETUP, 17, 1), (LOAD, u64::MAX, 300)] {
            let mut b = Vec::new();
            body(kind, n, size, &mut b);
            assert_eq!(read_body(&b), Some((kind, n)));
            let head = format!("gwl:{}{n}:", kind as char);
            assert!(b.starts_with(head.as_bytes()));
            assert_eq!(b.len(), size.max(head.len()));
        }
        assert_eq!(read_body(b"gwl:m12"), None, "no closing colon");
        assert_eq!(read_body(b"gwl:m:"), None);
        assert_eq!(read_body(b"gwl:mx1:"), None);
        assert_eq!(read_body(b"hello"), None);
        assert_eq!(read_body(b"gwl:m99999999999999999999:"), None, "overflow");
    }

    #[test]
    fn call_ids_sessions_and_users_round_trip() {
        let mut c = Vec::new();
        call_id(LOAD, 42, "0a1b2c3d", &mut c);
        assert_eq!(c, b"m42-0a1b2c3d@sipshard-load");
        assert_eq!(read_call_id(&c, "0a1b2c3d"), Some((LOAD, 42)));
        assert_eq!(read_call_id(&c, "ffffffff"), None, "another run's");
        assert_eq!(read_call_id(b"m42-0a1b2c3d@elsewhere", "0a1b2c3d"), None);
        assert_eq!(read_call_id(b"", "x"), None);

        let s = session_id("0a1b2c3d", 7);
        let uri = format!("msrp://127.0.0.1:4000/{s};tcp");
        assert_eq!(read_session_id(uri.as_bytes(), "0a1b2c3d"), Some(7));
        assert_eq!(read_session_id(uri.as_bytes(), "ffffffff"), None);
        assert_eq!(read_session_id(b"msrp://h:1/abc;tcp", "0a1b2c3d"), None);

        assert_eq!(user_number(b"sip:bob17@127.0.0.1:5060", "bob"), Some(17));
        assert_eq!(user_number(b"sip:alice17@127.0.0.1", "bob"), None);
        assert_eq!(user_number(b"sip:bob@127.0.0.1", "bob"), None);
        assert_eq!(read_txn(b"txn0"), Some(0));
        assert_eq!(read_bind(b"bnd12"), Some(12));
        assert_eq!(read_txn(b"bnd12"), None);
    }

    #[test]
    fn requests_and_responses_parse() {
        let mut b = Vec::new();
        body(LOAD, 9, 100, &mut b);
        let mut cid = Vec::new();
        call_id(LOAD, 9, "abcd0123", &mut cid);
        let mut br = Vec::new();
        branch("abcd0123", LOAD, 9, &mut br);
        let mut out = Vec::new();
        request(
            &Request {
                method: "MESSAGE",
                ruri: "sip:bob3@127.0.0.1:4000",
                local: "127.0.0.1:4000",
                branch: &br,
                from: "sip:alice3@127.0.0.1:4000",
                from_tag: b"a9",
                to: "sip:bob3@127.0.0.1:4000",
                to_tag: None,
                call_id: &cid,
                cseq: 1,
                contact: false,
                body: Some(("text/plain", &b)),
            },
            &mut out,
        );
        let (len, got) = parse_sip(&out);
        assert_eq!(len, out.len());
        assert_eq!(got, b);

        let mut h = [EMPTY_HEADER; 32];
        let req = sip::parse(&out, &mut h, Framing::Datagram)
            .unwrap()
            .complete()
            .unwrap();
        let mut resp = Vec::new();
        response(&req, 202, "Accepted", b"t1", None, None, &mut resp);
        let mut h2 = [EMPTY_HEADER; 32];
        let r = sip::parse(&resp, &mut h2, Framing::Datagram)
            .unwrap()
            .complete()
            .unwrap();
        assert_eq!(r.validate(), Ok(()));
        assert_eq!(r.status_code(), Some(202));
        assert_eq!(r.to_tag(), Some(&b"t1"[..]));
        assert_eq!(r.call_id(), Some(&cid[..]));
        assert_eq!(r.branch(), Some(&br[..]));
    }

    #[test]
    fn sdp_answer_and_acks() {
        // The 200 to an INVITE, with an SDP answer, as the sip-to-msrp flow sends it.
        let path = format!("msrp://127.0.0.1:4000/{};tcp", session_id("abcd0123", 3));
        let answer = crate::peer::sdp::answer(&path, "text/plain", "passive");
        let invite = b"INVITE sip:bob3@127.0.0.1:4000 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1\r\n\
            From: <sip:alice3@127.0.0.1:4000>;tag=x\r\nTo: <sip:bob3@127.0.0.1:4000>\r\nCall-ID: c1\r\n\
            CSeq: 1 INVITE\r\nContact: <sip:127.0.0.1:5060>\r\nContent-Length: 0\r\n\r\n";
        let mut h = [EMPTY_HEADER; 32];
        let inv = sip::parse(invite, &mut h, Framing::Datagram)
            .unwrap()
            .complete()
            .unwrap();
        let mut ok = Vec::new();
        response(
            &inv,
            200,
            "OK",
            b"b3",
            Some("127.0.0.1:4000"),
            Some(("application/sdp", answer.as_bytes())),
            &mut ok,
        );
        let (_, sdp) = parse_sip(&ok);
        assert_eq!(
            crate::peer::sdp::read_path(&sdp).as_deref(),
            Some(path.as_str())
        );
        assert_eq!(
            crate::peer::sdp::read_setup(&sdp).as_deref(),
            Some("passive")
        );
        // The ACK for it goes to the Contact, in a new transaction, with the To tag.
        let mut h = [EMPTY_HEADER; 32];
        let r = sip::parse(&ok, &mut h, Framing::Datagram)
            .unwrap()
            .complete()
            .unwrap();
        let a = ack(&r, "127.0.0.1:4000", b"z9hG4bK-new", "sip:x@h").unwrap();
        parse_sip(&a);
        let text = String::from_utf8(a).unwrap();
        assert!(
            text.starts_with("ACK sip:127.0.0.1:4000 SIP/2.0\r\n"),
            "{text}"
        );
        assert!(text.contains("branch=z9hG4bK-new"));
        assert!(text.contains("To: <sip:bob3@127.0.0.1:4000>;tag=b3\r\n"));
        assert!(text.contains("CSeq: 1 ACK\r\n"));
        // A failure is ACKed in the INVITE's transaction: its Via, to the To URI.
        let mut busy = Vec::new();
        response(&inv, 486, "Busy Here", b"b3", None, None, &mut busy);
        let mut h = [EMPTY_HEADER; 32];
        let r = sip::parse(&busy, &mut h, Framing::Datagram)
            .unwrap()
            .complete()
            .unwrap();
        let a = String::from_utf8(ack(&r, "127.0.0.1:4000", b"z9hG4bK-new", "x").unwrap()).unwrap();
        assert!(
            a.starts_with("ACK sip:bob3@127.0.0.1:4000 SIP/2.0\r\n"),
            "{a}"
        );
        assert!(a.contains("branch=z9hG4bK1\r\n"));
    }

    #[test]
    fn invites_offer_our_path() {
        let path = format!("msrp://127.0.0.1:4000/{};tcp", session_id("abcd0123", 8));
        let inv = invite("abcd0123", 8, "127.0.0.1:4000", 4000, &path);
        let (_, sdp) = parse_sip(&inv);
        assert_eq!(
            crate::peer::sdp::read_path(&sdp).as_deref(),
            Some(path.as_str())
        );
        assert_eq!(
            crate::peer::sdp::read_setup(&sdp).as_deref(),
            Some("actpass")
        );
        let mut h = [EMPTY_HEADER; 32];
        let m = sip::parse(&inv, &mut h, Framing::Datagram)
            .unwrap()
            .complete()
            .unwrap();
        assert_eq!(
            read_call_id(m.call_id().unwrap(), "abcd0123"),
            Some((INVITE, 8))
        );
        assert_eq!(user_number(m.request_uri().unwrap().raw, "dave"), Some(8));
        assert_eq!(m.contacts().count(), 1);
    }

    #[test]
    fn msrp_frames_parse() {
        let to = "msrp://127.0.0.1:2855/gwsession;tcp";
        let from = "msrp://127.0.0.1:4000/abcd0123u5;tcp";
        let mut b = Vec::new();
        body(LOAD, 77, 64, &mut b);
        let mut f = Vec::new();
        send(77, to, from, &b, &mut f);
        let owned = OwnedFrame::parse(f.clone()).expect("a valid SEND");
        assert_eq!(owned.method(), Some("SEND"));
        assert_eq!(owned.transaction_id, "txn77");
        assert_eq!(owned.message_id(), Some("msg77"));
        assert_eq!(owned.body.as_deref(), Some(&b[..]));
        assert_eq!(
            owned.byte_range(),
            Some(ByteRange {
                start: 1,
                end: Some(64),
                total: Some(64)
            })
        );
        assert_eq!(owned.flag, Flag::Complete);
        assert_eq!(read_txn(owned.transaction_id.as_bytes()), Some(77));

        let mut f = Vec::new();
        bind(5, to, from, &mut f);
        let owned = OwnedFrame::parse(f).expect("a valid empty SEND");
        assert_eq!(owned.body, None);
        assert_eq!(owned.header("Byte-Range"), Some("1-0/0"));
        assert_eq!(read_bind(owned.transaction_id.as_bytes()), Some(5));

        let mut r = Vec::new();
        msrp_response(b"txn77", 200, "OK", to.as_bytes(), from.as_bytes(), &mut r);
        let mut h = [msrp::EMPTY_HEADER; 8];
        let resp = msrp::parse(&r, &mut h, &Limits::DEFAULT)
            .unwrap()
            .complete()
            .unwrap();
        assert_eq!(resp.code(), Some(200));
        assert_eq!(resp.to_path().next(), Some(from.as_bytes()));
        assert_eq!(resp.from_path().next(), Some(to.as_bytes()));
        assert_eq!(resp.len, r.len());
    }
}
