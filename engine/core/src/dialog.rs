//! SIP dialogs (RFC 3261 §12): the state two user agents share once an INVITE is answered —
//! Call-ID, tags, CSeq numbers, the route set and the remote target — built from either side
//! (we sent the INVITE, or we answered it), and the requests sent within one (ACK for a 2xx,
//! BYE) written from it. Owns bytes, borrows nothing: a dialog outlives
//! the messages that made it.

use crate::sip_write::{self, Request};
use sipshard_parser::sip::{HeaderKind, Message, NameAddrs};
use std::net::SocketAddr;

/// Which side created the dialog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// We sent the INVITE.
    Uac,
    /// We answered it.
    Uas,
}

/// One dialog's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialog {
    /// Who created it.
    pub role: Role,
    /// Call-ID.
    pub call_id: Vec<u8>,
    /// Our tag.
    pub local_tag: Vec<u8>,
    /// The far side's tag.
    pub remote_tag: Vec<u8>,
    /// Our URI (the From of our requests), with any display name, without the tag.
    pub local_uri: Vec<u8>,
    /// The far side's URI (the To of our requests), without the tag.
    pub remote_uri: Vec<u8>,
    /// The CSeq number of our last request in the dialog.
    pub local_seq: u32,
    /// The CSeq number of the far side's last request (`None` before it sent one).
    pub remote_seq: Option<u32>,
    /// The route set, in the order our requests carry it.
    pub route_set: Vec<Vec<u8>>,
    /// Where our requests go (the far side's Contact URI).
    pub remote_target: Vec<u8>,
}

/// Why no dialog could be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DialogError {
    /// The message lacks something a dialog needs (a tag, a Contact, a CSeq).
    #[error("the message cannot establish a dialog: {0}")]
    Missing(&'static str),
}

/// A header value with its `tag` parameter taken out (`<sip:a@b>;tag=1;x=2` -> `<sip:a@b>;x=2`).
fn without_tag(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len());
    // Parameters come after the name-addr's closing `>`, or after the URI for an addr-spec.
    let params_from = value.iter().rposition(|&c| c == b'>').map_or(0, |i| i + 1);
    let (head, params) = value.split_at(params_from);
    out.extend_from_slice(head);
    for p in params.split(|&c| c == b';') {
        let p = p.trim_ascii();
        if p.is_empty() && out.len() == head.len() && !head.is_empty() {
            continue;
        }
        if p.len() >= 4 && p[..4].eq_ignore_ascii_case(b"tag=") {
            continue;
        }
        if !out.is_empty() && !p.is_empty() {
            out.push(b';');
        }
        out.extend_from_slice(p);
    }
    out
}

/// The URIs of every value of the headers of `kind`, in order; an error when one does not
/// parse (a route set with a hop left out would skip a proxy).
fn uris(msg: &Message<'_, '_>, kind: HeaderKind) -> Result<Vec<Vec<u8>>, DialogError> {
    msg.headers()
        .iter()
        .filter(|h| h.kind == kind)
        .flat_map(|h| NameAddrs::new(h.value))
        .map(|na| {
            let na = na.map_err(|_| DialogError::Missing("a well-formed Record-Route"))?;
            // Keep the name-addr form (with `<>`), so parameters stay with the URI.
            let mut v = Vec::with_capacity(na.uri.raw.len() + 2);
            v.push(b'<');
            v.extend_from_slice(na.uri.raw);
            v.push(b'>');
            if !na.params.is_empty() {
                v.push(b';');
                v.extend_from_slice(na.params);
            }
            Ok(v)
        })
        .collect()
}

fn header<'b>(msg: &Message<'_, 'b>, kind: HeaderKind) -> Option<&'b [u8]> {
    msg.headers()
        .iter()
        .find(|h| h.kind == kind)
        .map(|h| h.value)
}

impl Dialog {
    /// The dialog a 2xx (or a 1xx with a To tag: an early dialog) to our INVITE makes
    /// (§12.1.2): the route set is the response's Record-Route reversed, the remote target its
    /// Contact.
    pub fn as_uac(
        invite: &Message<'_, '_>,
        response: &Message<'_, '_>,
    ) -> Result<Dialog, DialogError> {
        let remote_tag = response.to_tag().ok_or(DialogError::Missing("To tag"))?;
        let local_tag = invite.from_tag().ok_or(DialogError::Missing("From tag"))?;
        let contact = response
            .contacts()
            .next()
            .ok_or(DialogError::Missing("Contact"))?;
        let mut route_set = uris(response, HeaderKind::RecordRoute)?;
        route_set.reverse();
        Ok(Dialog {
            role: Role::Uac,
            call_id: invite
                .call_id()
                .ok_or(DialogError::Missing("Call-ID"))?
                .to_vec(),
            local_tag: local_tag.to_vec(),
            remote_tag: remote_tag.to_vec(),
            local_uri: without_tag(header(invite, HeaderKind::From).unwrap_or_default()),
            remote_uri: without_tag(header(invite, HeaderKind::To).unwrap_or_default()),
            local_seq: invite.cseq().ok_or(DialogError::Missing("CSeq"))?.number,
            remote_seq: None,
            route_set,
            remote_target: contact.uri.raw.to_vec(),
        })
    }

    /// The dialog our answer to `invite` makes, with our `local_tag` (§12.1.1): the route set
    /// is the INVITE's Record-Route in order, the remote target its Contact.
    pub fn as_uas(invite: &Message<'_, '_>, local_tag: &[u8]) -> Result<Dialog, DialogError> {
        let remote_tag = invite.from_tag().ok_or(DialogError::Missing("From tag"))?;
        let contact = invite
            .contacts()
            .next()
            .ok_or(DialogError::Missing("Contact"))?;
        Ok(Dialog {
            role: Role::Uas,
            call_id: invite
                .call_id()
                .ok_or(DialogError::Missing("Call-ID"))?
                .to_vec(),
            local_tag: local_tag.to_vec(),
            remote_tag: remote_tag.to_vec(),
            local_uri: without_tag(header(invite, HeaderKind::To).unwrap_or_default()),
            remote_uri: without_tag(header(invite, HeaderKind::From).unwrap_or_default()),
            local_seq: 0,
            remote_seq: Some(invite.cseq().ok_or(DialogError::Missing("CSeq"))?.number),
            route_set: uris(invite, HeaderKind::RecordRoute)?,
            remote_target: contact.uri.raw.to_vec(),
        })
    }

    /// Whether `request` belongs to this dialog (§12.2.2: Call-ID, its To tag ours, its From
    /// tag theirs).
    pub fn matches(&self, request: &Message<'_, '_>) -> bool {
        request.call_id() == Some(&self.call_id[..])
            && request.to_tag() == Some(&self.local_tag[..])
            && request.from_tag() == Some(&self.remote_tag[..])
    }

    /// Takes the CSeq of a request the far side sent in the dialog; `false` when it is lower
    /// than one already seen (out of order: answer 500, §12.2.2). ACK and CANCEL reuse their
    /// INVITE's number and are not checked.
    pub fn accept_remote_cseq(&mut self, request: &Message<'_, '_>) -> bool {
        let Some(cseq) = request.cseq() else {
            return false;
        };
        if matches!(cseq.method, b"ACK" | b"CANCEL") {
            return true;
        }
        match self.remote_seq {
            Some(seen) if cseq.number < seen => false,
            _ => {
                self.remote_seq = Some(cseq.number);
                true
            }
        }
    }

    /// The URI the next hop of our requests is taken from: the first route, or the remote
    /// target when there is no route set (§12.2.1.1, §8.1.2).
    pub fn next_hop_uri(&self) -> &[u8] {
        match self.route_set.first() {
            Some(r) => r
                .strip_prefix(b"<")
                .and_then(|r| r.split(|&c| c == b'>').next())
                .unwrap_or(r),
            None => &self.remote_target,
        }
    }

    /// Writes a request in the dialog (§12.2.1.1): `method` with the next CSeq (an ACK takes
    /// the INVITE's, `cseq_of_invite`), the remote target as Request-URI and the route set as
    /// Route (loose routing; a strict-routing first hop gets the RFC's rewrite), our Via
    /// (transport and sent-by) with `branch`, and `contact` for methods that carry one; then
    /// the `extra` header lines (`Name: value`) and the body.
    #[allow(clippy::too_many_arguments)]
    pub fn write_request(
        &mut self,
        method: &str,
        via: (&str, SocketAddr),
        branch: &[u8],
        contact: Option<&[u8]>,
        cseq_of_invite: Option<u32>,
        extra: &[&[u8]],
        content_type: Option<&[u8]>,
        body: &[u8],
        out: &mut Vec<u8>,
    ) {
        let seq = match cseq_of_invite {
            Some(n) => n,
            None => {
                self.local_seq = self.local_seq.wrapping_add(1);
                self.local_seq
            }
        };
        // A first route without `lr` is a strict router: it becomes the Request-URI and the
        // remote target goes last in the Route set (§12.2.1.1).
        let strict = self.route_set.first().is_some_and(|r| !loose_router(r));
        let target_route = [&b"<"[..], &self.remote_target, b">"].concat();
        let (ruri, routes): (&[u8], Vec<&[u8]>) = if strict {
            let mut routes: Vec<&[u8]> = self.route_set[1..].iter().map(Vec::as_slice).collect();
            routes.push(&target_route);
            (self.next_hop_uri(), routes)
        } else {
            (
                &self.remote_target,
                self.route_set.iter().map(Vec::as_slice).collect(),
            )
        };
        let mut to = Vec::with_capacity(self.remote_uri.len() + 5 + self.remote_tag.len());
        to.extend_from_slice(&self.remote_uri);
        to.extend_from_slice(b";tag=");
        to.extend_from_slice(&self.remote_tag);
        sip_write::write_request(
            &Request {
                method,
                uri: ruri,
                from: &self.local_uri,
                from_tag: &self.local_tag,
                to: &to,
                call_id: &self.call_id,
                cseq: seq,
                via,
                branch,
                route: &routes,
                contact,
                extra,
                content_type,
                body,
            },
            out,
        );
    }
}

/// Whether a route's URI has the `lr` parameter (RFC 3261 §19.1.1): a loose router.
fn loose_router(route: &[u8]) -> bool {
    let uri = route
        .strip_prefix(b"<")
        .and_then(|r| r.split(|&c| c == b'>').next())
        .unwrap_or(route);
    sipshard_parser::sip::parse_uri(uri, sipshard_parser::sip::UriContext::NameAddr)
        .is_ok_and(|u| u.param("lr").is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sipshard_parser::sip::{parse, Framing, EMPTY_HEADER};

    const INVITE: &[u8] = b"INVITE sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-i1\r\nMax-Forwards: 70\r\n\
From: \"Alice\" <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>\r\n\
Call-ID: c1@192.0.2.1\r\nCSeq: 4 INVITE\r\nContact: <sip:gw@192.0.2.1:5060>\r\n\
Record-Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\nContent-Length: 0\r\n\r\n";

    const OK: &[u8] = b"SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-i1\r\n\
From: \"Alice\" <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>;tag=b7\r\n\
Call-ID: c1@192.0.2.1\r\nCSeq: 4 INVITE\r\nContact: <sip:bob@198.51.100.9:5070;transport=tcp>\r\n\
Record-Route: <sip:p2.example.com;lr>\r\nRecord-Route: <sip:p1.example.com;lr>\r\nContent-Length: 0\r\n\r\n";

    fn msg(b: &[u8], f: impl FnOnce(&Message<'_, '_>)) {
        let mut h = [EMPTY_HEADER; 32];
        let m = parse(b, &mut h, Framing::Datagram)
            .unwrap()
            .complete()
            .unwrap();
        f(&m)
    }

    #[test]
    fn the_callers_dialog_routes_by_the_reversed_record_route() {
        let mut h1 = [EMPTY_HEADER; 32];
        let mut h2 = [EMPTY_HEADER; 32];
        let inv = parse(INVITE, &mut h1, Framing::Datagram)
            .unwrap()
            .complete()
            .unwrap();
        let ok = parse(OK, &mut h2, Framing::Datagram)
            .unwrap()
            .complete()
            .unwrap();
        let mut d = Dialog::as_uac(&inv, &ok).unwrap();
        assert_eq!(d.remote_tag, b"b7");
        assert_eq!(d.local_uri, b"\"Alice\" <sip:alice@example.com>");
        assert_eq!(d.remote_target, b"sip:bob@198.51.100.9:5070;transport=tcp");
        assert_eq!(
            d.route_set,
            vec![
                b"<sip:p1.example.com;lr>".to_vec(),
                b"<sip:p2.example.com;lr>".to_vec()
            ]
        );
        assert_eq!(d.next_hop_uri(), b"sip:p1.example.com;lr");
        // ACK for the 2xx: the INVITE's CSeq number, a new branch.
        let mut ack = Vec::new();
        d.write_request(
            "ACK",
            ("UDP", "192.0.2.1:5060".parse().unwrap()),
            b"z9hG4bK-a1",
            None,
            Some(4),
            &[],
            None,
            b"",
            &mut ack,
        );
        let mut bye = Vec::new();
        d.write_request(
            "BYE",
            ("UDP", "192.0.2.1:5060".parse().unwrap()),
            b"z9hG4bK-b1",
            None,
            None,
            &[],
            None,
            b"",
            &mut bye,
        );
        msg(&ack, |m| {
            m.validate().unwrap();
            assert_eq!(
                m.cseq().map(|c| (c.number, c.method)),
                Some((4, &b"ACK"[..]))
            );
            assert_eq!(
                m.request_uri().unwrap().raw,
                b"sip:bob@198.51.100.9:5070;transport=tcp"
            );
        });
        msg(&bye, |m| {
            m.validate().unwrap();
            assert_eq!(
                m.cseq().map(|c| (c.number, c.method)),
                Some((5, &b"BYE"[..]))
            );
            let routes: Vec<_> = m.routes().map(|r| r.uri.raw.to_vec()).collect();
            assert_eq!(
                routes,
                vec![
                    b"sip:p1.example.com;lr".to_vec(),
                    b"sip:p2.example.com;lr".to_vec()
                ]
            );
            assert_eq!(m.from_tag(), Some(&b"a1"[..]));
            assert_eq!(m.to_tag(), Some(&b"b7"[..]));
        });
    }

    #[test]
    fn the_answerers_dialog_matches_the_callers_requests_and_orders_cseq() {
        let mut h = [EMPTY_HEADER; 32];
        let inv = parse(INVITE, &mut h, Framing::Datagram)
            .unwrap()
            .complete()
            .unwrap();
        let mut d = Dialog::as_uas(&inv, b"g9").unwrap();
        assert_eq!(d.remote_target, b"sip:gw@192.0.2.1:5060");
        assert_eq!(d.route_set.len(), 2);
        assert_eq!(d.local_uri, b"<sip:bob@example.com>");
        // Their BYE, written as they would: it matches, and its CSeq moves on.
        let mut theirs = Dialog {
            role: Role::Uac,
            local_tag: b"a1".to_vec(),
            remote_tag: b"g9".to_vec(),
            local_uri: d.remote_uri.clone(),
            remote_uri: d.local_uri.clone(),
            local_seq: 4,
            remote_seq: None,
            ..d.clone()
        };
        let mut bye = Vec::new();
        theirs.write_request(
            "BYE",
            ("UDP", "192.0.2.1:5060".parse().unwrap()),
            b"z9hG4bK-x",
            None,
            None,
            &[],
            None,
            b"",
            &mut bye,
        );
        msg(&bye, |m| {
            assert!(d.matches(m));
            assert!(d.accept_remote_cseq(m));
        });
        assert_eq!(d.remote_seq, Some(5));
        // An older one is out of order.
        let mut old = Vec::new();
        theirs.local_seq = 2;
        theirs.write_request(
            "INFO",
            ("UDP", "192.0.2.1:5060".parse().unwrap()),
            b"z9hG4bK-y",
            None,
            None,
            &[],
            None,
            b"",
            &mut old,
        );
        msg(&old, |m| assert!(!d.accept_remote_cseq(m)));
        // Another dialog's request does not match.
        msg(OK, |m| assert!(!d.matches(m)));
    }

    #[test]
    fn a_strict_router_becomes_the_request_uri() {
        let mut h1 = [EMPTY_HEADER; 32];
        let inv = parse(INVITE, &mut h1, Framing::Datagram)
            .unwrap()
            .complete()
            .unwrap();
        let mut d = Dialog::as_uas(&inv, b"g9").unwrap();
        d.route_set = vec![
            b"<sip:strict.example.com>".to_vec(),
            b"<sip:p2.example.com;lr>".to_vec(),
        ];
        let mut bye = Vec::new();
        d.write_request(
            "BYE",
            ("UDP", "192.0.2.1:5060".parse().unwrap()),
            b"z9hG4bK-s",
            None,
            None,
            &[],
            None,
            b"",
            &mut bye,
        );
        msg(&bye, |m| {
            assert_eq!(m.request_uri().unwrap().raw, b"sip:strict.example.com");
            let routes: Vec<_> = m.routes().map(|r| r.uri.raw.to_vec()).collect();
            assert_eq!(
                routes,
                vec![
                    b"sip:p2.example.com;lr".to_vec(),
                    b"sip:gw@192.0.2.1:5060".to_vec()
                ]
            );
        });
    }

    #[test]
    fn routes_must_parse_and_lr_is_a_uri_parameter() {
        assert!(loose_router(b"<sip:p.example.com;lr>"));
        assert!(loose_router(b"<sip:p.example.com;transport=tcp;lr=on>"));
        assert!(!loose_router(b"<sip:p.example.com;lrx>"));
        assert!(!loose_router(b"<sip:a;lr@p.example.com>"));
        let bad = String::from_utf8_lossy(INVITE).replace(
            "<sip:p1.example.com;lr>, <sip:p2.example.com;lr>",
            "<sip:p1.example.com;lr>, <sip:p2",
        );
        let mut h = [EMPTY_HEADER; 32];
        let inv = parse(bad.as_bytes(), &mut h, Framing::Datagram)
            .unwrap()
            .complete()
            .unwrap();
        assert_eq!(
            Dialog::as_uas(&inv, b"t"),
            Err(DialogError::Missing("a well-formed Record-Route"))
        );
        // Over TCP the Via says so.
        let mut h = [EMPTY_HEADER; 32];
        let inv = parse(INVITE, &mut h, Framing::Datagram)
            .unwrap()
            .complete()
            .unwrap();
        let mut d = Dialog::as_uas(&inv, b"g9").unwrap();
        let mut bye = Vec::new();
        d.write_request(
            "BYE",
            ("TCP", "192.0.2.1:5060".parse().unwrap()),
            b"z9hG4bK-t",
            None,
            None,
            &[],
            None,
            b"",
            &mut bye,
        );
        msg(&bye, |m| assert_eq!(m.top_via().unwrap().transport, b"TCP"));
    }

    #[test]
    fn a_dialog_needs_tags_and_a_contact() {
        let mut h1 = [EMPTY_HEADER; 32];
        let no_contact =
            b"INVITE sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n\
Content-Length: 0\r\n\r\n";
        let inv = parse(no_contact, &mut h1, Framing::Datagram)
            .unwrap()
            .complete()
            .unwrap();
        assert_eq!(
            Dialog::as_uas(&inv, b"t"),
            Err(DialogError::Missing("Contact"))
        );
        let mut h2 = [EMPTY_HEADER; 32];
        let inv = parse(INVITE, &mut h2, Framing::Datagram)
            .unwrap()
            .complete()
            .unwrap();
        assert_eq!(
            Dialog::as_uac(&inv, &inv),
            Err(DialogError::Missing("To tag"))
        );
    }

    proptest::proptest! {
        /// The far side's requests are taken in CSeq order: each is accepted exactly when its
        /// number is at least the highest seen (a model: the running maximum), and ours count
        /// up by one per request, ACK aside.
        #[test]
        fn cseq_order_matches_a_running_maximum(seqs in proptest::collection::vec(0u32..50, 1..40)) {
            let mut h = [EMPTY_HEADER; 32];
            let inv = parse(INVITE, &mut h, Framing::Datagram).unwrap().complete().unwrap();
            let mut d = Dialog::as_uas(&inv, b"g9").unwrap();
            let mut theirs = Dialog {
                role: Role::Uac,
                local_tag: b"a1".to_vec(),
                remote_tag: b"g9".to_vec(),
                local_uri: d.remote_uri.clone(),
                remote_uri: d.local_uri.clone(),
                ..d.clone()
            };
            let mut max = 4;
            for (i, n) in seqs.into_iter().enumerate() {
                theirs.local_seq = n.wrapping_sub(1);
                let mut req = Vec::new();
                let branch = format!("z9hG4bK{i}");
                theirs.write_request("INFO", ("UDP", "192.0.2.1:5060".parse().unwrap()), branch.as_bytes(), None, None, &[], None, b"", &mut req);
                let mut h = [EMPTY_HEADER; 32];
                let m = parse(&req, &mut h, Framing::Datagram).unwrap().complete().unwrap();
                proptest::prop_assert!(d.matches(&m));
                let accepted = d.accept_remote_cseq(&m);
                proptest::prop_assert_eq!(accepted, n >= max);
                max = max.max(n);
            }
            let before = d.local_seq;
            let mut out = Vec::new();
            d.write_request("BYE", ("UDP", "192.0.2.1:5060".parse().unwrap()), b"z9hG4bKb", None, None, &[], None, b"", &mut out);
            d.write_request("ACK", ("UDP", "192.0.2.1:5060".parse().unwrap()), b"z9hG4bKc", None, Some(before), &[], None, b"", &mut out);
            proptest::prop_assert_eq!(d.local_seq, before + 1);
        }
    }
}
