//! Frames written here parse back, answers match RFC 4975's own examples byte for byte, and
//! chunked messages reassemble to the same bodies however they are split, ordered and read.

use super::reassembly::{Chunked, Limits, Reassembly};
use super::write::{self, Chunk, Report, Reports};
use proptest::prelude::*;
use sipshard_parser::msrp::{self, ByteRange, Flag, Framer, ReportRequest, EMPTY_HEADER};
use sipshard_parser::Status;
use std::path::PathBuf;

const ALICE: &[u8] = b"msrp://alicepc.example.com:7777/iau39soe2843z;tcp";
const BOB: &[u8] = b"msrp://bob.example.com:8888/9di4eae923wzd;tcp";

fn limits() -> Limits {
    Limits {
        max_message: 1 << 20,
        max_partial: 8,
    }
}

fn vectors() -> Option<PathBuf> {
    let dir = match std::env::var_os("SIPSHARD_VECTORS") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/vectors"
        )),
    };
    let msrp = dir.join("msrp");
    if msrp.join("INDEX.tsv").is_file() {
        Some(msrp)
    } else {
        println!("skipped: vectors not found");
        None
    }
}

#[test]
fn the_200_to_rfc4975s_first_send_is_byte_for_byte_the_rfcs() {
    let Some(dir) = vectors() else {
        return;
    };
    let send = std::fs::read(dir.join("rfc4975-s11.1-step4-d93kswow-SEND.msrp")).unwrap();
    let want = std::fs::read(dir.join("rfc4975-s11.1-step5-d93kswow-200-OK.msrp")).unwrap();
    let mut h = [EMPTY_HEADER; 16];
    let Ok(Status::Complete(frame)) = msrp::parse(&send, &mut h, &msrp::Limits::DEFAULT) else {
        panic!("the vector parses");
    };
    let mut out = Vec::new();
    write::write_response(&frame, 200, b"OK", BOB, &mut out);
    assert_eq!(
        String::from_utf8_lossy(&out),
        String::from_utf8_lossy(&want)
    );
}

#[test]
fn a_send_and_a_report_parse_back() {
    let mut out = Vec::new();
    write::write_send(
        &Chunk {
            transaction_id: b"tx0001",
            to_path: BOB,
            from_path: ALICE,
            message_id: b"msg0001",
            start: 1,
            total: 5,
            content_type: b"text/plain",
            body: b"hello",
            flag: Flag::Complete,
            reports: Reports {
                success: true,
                failure: ReportRequest::Partial,
            },
        },
        &mut out,
    );
    let mut h = [EMPTY_HEADER; 16];
    let Ok(Status::Complete(f)) = msrp::parse(&out, &mut h, &msrp::Limits::DEFAULT) else {
        panic!("{}", String::from_utf8_lossy(&out));
    };
    assert_eq!(f.body, Some(&b"hello"[..]));
    assert_eq!(f.message_id(), Some(&b"msg0001"[..]));
    assert_eq!(
        f.byte_range().unwrap().unwrap(),
        ByteRange {
            start: 1,
            end: None,
            total: Some(5)
        }
    );
    assert_eq!(f.success_report(), Some(Ok(ReportRequest::Yes)));
    assert_eq!(f.failure_report(), Some(Ok(ReportRequest::Partial)));
    assert_eq!(f.len, out.len());

    let mut out = Vec::new();
    write::write_report(
        &Report {
            transaction_id: b"rep001",
            to_path: ALICE,
            from_path: BOB,
            message_id: b"msg0001",
            total: 5,
            code: 404,
            reason: b"Not Found",
        },
        &mut out,
    );
    let mut h = [EMPTY_HEADER; 16];
    let Ok(Status::Complete(f)) = msrp::parse(&out, &mut h, &msrp::Limits::DEFAULT) else {
        panic!("{}", String::from_utf8_lossy(&out));
    };
    let st = f.status().unwrap().unwrap();
    assert_eq!(
        (st.namespace, st.code, st.reason),
        (0, 404, Some(&b"Not Found"[..]))
    );
    assert_eq!(f.body, None);
}

#[test]
fn chunks_cover_a_message_in_order() {
    assert_eq!(write::chunks(0, 2048).collect::<Vec<_>>(), vec![(0, 0)]);
    assert_eq!(
        write::chunks(2048, 2048).collect::<Vec<_>>(),
        vec![(0, 2048)]
    );
    assert_eq!(
        write::chunks(5000, 2048).collect::<Vec<_>>(),
        vec![(0, 2048), (2048, 2048), (4096, 904)]
    );
}

fn range(start: u64, total: Option<u64>) -> ByteRange {
    ByteRange {
        start,
        end: None,
        total,
    }
}

#[test]
fn out_of_order_overlapping_and_repeated_chunks_make_one_message() {
    let mut r = Reassembly::new(limits());
    let ct = Some(&b"text/plain"[..]);
    assert_eq!(
        r.add(0, b"m1", range(7, Some(10)), Flag::Complete, ct, b"ghij"),
        Chunked::Pending
    );
    assert_eq!(
        r.add(0, b"m1", range(1, Some(10)), Flag::More, ct, b"abcd"),
        Chunked::Pending
    );
    // A repeat and an overlap change nothing.
    assert_eq!(
        r.add(0, b"m1", range(1, Some(10)), Flag::More, ct, b"abcd"),
        Chunked::Pending
    );
    assert_eq!(r.len(), 1);
    assert_eq!(
        r.add(0, b"m1", range(3, Some(10)), Flag::More, ct, b"cdef"),
        Chunked::Complete {
            message_id: b"m1".to_vec(),
            content_type: b"text/plain".to_vec(),
            body: b"abcdefghij".to_vec()
        }
    );
    assert!(r.is_empty());
}

#[test]
fn abort_limits_and_contradictions_drop_the_message() {
    let mut r = Reassembly::new(Limits {
        max_message: 100,
        max_partial: 1,
    });
    let ct = Some(&b"text/plain"[..]);
    assert_eq!(
        r.add(0, b"a", range(1, None), Flag::More, ct, b"xx"),
        Chunked::Pending
    );
    assert_eq!(
        r.add(0, b"a", range(3, None), Flag::Abort, ct, b"yy"),
        Chunked::Aborted
    );
    assert!(r.is_empty());
    // Over the size limit: by its stated total, or by where a chunk ends.
    assert_eq!(
        r.add(0, b"b", range(1, Some(101)), Flag::More, ct, b"x"),
        Chunked::TooLarge
    );
    assert_eq!(
        r.add(0, b"c", range(100, None), Flag::More, ct, b"xy"),
        Chunked::TooLarge
    );
    // One partial message at most.
    assert_eq!(
        r.add(0, b"d", range(1, Some(4)), Flag::More, ct, b"ab"),
        Chunked::Pending
    );
    assert_eq!(
        r.add(0, b"e", range(1, Some(4)), Flag::More, ct, b"ab"),
        Chunked::TooLarge
    );
    // A total that changes, or bytes past it.
    assert_eq!(
        r.add(0, b"d", range(3, Some(5)), Flag::More, ct, b"c"),
        Chunked::Invalid
    );
    assert_eq!(
        r.add(0, b"f", range(3, Some(3)), Flag::Complete, ct, b"cd"),
        Chunked::Invalid
    );
    assert!(r.is_empty());
    // Stale partial messages go.
    assert_eq!(
        r.add(5, b"g", range(1, None), Flag::More, ct, b"x"),
        Chunked::Pending
    );
    assert_eq!(r.drop_stale(5), Vec::<Vec<u8>>::new());
    assert_eq!(r.drop_stale(6), vec![b"g".to_vec()]);
}

#[test]
fn a_peer_cannot_overflow_offsets_or_make_chunks_cost_more() {
    use super::reassembly::MAX_GAPS;
    let mut r = Reassembly::new(Limits {
        max_message: 1 << 20,
        max_partial: 16,
    });
    let ct = Some(&b"text/plain"[..]);
    // A start near 2^64: refused, nothing sized from it.
    assert_eq!(
        r.add(0, b"o", range(u64::MAX, Some(10)), Flag::More, ct, b"xy"),
        Chunked::TooLarge
    );
    assert_eq!(
        r.add(0, b"o", range(u64::MAX - 1, None), Flag::More, ct, b"xy"),
        Chunked::TooLarge
    );
    // One byte at every other offset: refused once it leaves more than MAX_GAPS holes.
    let mut last = Chunked::Pending;
    for i in 0..(MAX_GAPS as u64 + 2) {
        last = r.add(
            0,
            b"g",
            range(2 * i + 1, Some(1 << 19)),
            Flag::More,
            ct,
            b"z",
        );
        if last != Chunked::Pending {
            break;
        }
    }
    assert_eq!(last, Chunked::TooLarge);
    // Bytes buffered for all partial messages stay within one message's limit.
    assert_eq!(
        r.add(0, b"h1", range(700_000, None), Flag::More, ct, b"a"),
        Chunked::Pending
    );
    assert_eq!(
        r.add(0, b"h2", range(700_000, None), Flag::More, ct, b"a"),
        Chunked::TooLarge
    );
    assert!(r.bytes() <= 1 << 20);
    assert_eq!(r.len(), 1);
}

/// Writes `body` as SEND chunks of at most `max` bytes of message `id`.
fn sends(id: &str, body: &[u8], max: usize) -> Vec<Vec<u8>> {
    let chunks: Vec<_> = write::chunks(body.len(), max).collect();
    let n = chunks.len();
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, (off, len))| {
            let mut out = Vec::new();
            let tid = format!("{id}t{i}");
            write::write_send(
                &Chunk {
                    transaction_id: tid.as_bytes(),
                    to_path: BOB,
                    from_path: ALICE,
                    message_id: id.as_bytes(),
                    start: off as u64 + 1,
                    total: body.len() as u64,
                    content_type: b"text/plain",
                    body: &body[off..off + len],
                    flag: if i + 1 == n {
                        Flag::Complete
                    } else {
                        Flag::More
                    },
                    reports: Reports::default(),
                },
                &mut out,
            );
            out
        })
        .collect()
}

/// Reads `stream` in pieces ending at `cuts`, frames and parses it, and reassembles.
fn receive(stream: &[u8], cuts: &[usize]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut r = Reassembly::new(limits());
    let mut done = Vec::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut framer = Framer::new(msrp::Limits::DEFAULT);
    let mut read = 0;
    let mut ends: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
    ends.push(stream.len());
    ends.sort_unstable();
    for end in ends {
        if end <= read {
            continue;
        }
        buf.extend_from_slice(&stream[read..end]);
        read = end;
        loop {
            let mut h = [EMPTY_HEADER; 16];
            let frame = match framer.parse(&buf, &mut h) {
                Ok(Status::Complete(f)) => f,
                Ok(Status::Partial) => break,
                Err(e) => panic!("{e}"),
            };
            let out = r.add(
                0,
                frame.message_id().unwrap(),
                frame.byte_range().unwrap().unwrap(),
                frame.flag,
                frame.content_type(),
                frame.body.unwrap_or_default(),
            );
            if let Chunked::Complete {
                message_id, body, ..
            } = out
            {
                done.push((message_id, body));
            } else {
                assert_eq!(out, Chunked::Pending);
            }
            let len = frame.len;
            buf.drain(..len);
            framer.reset();
        }
    }
    assert!(buf.is_empty() && r.is_empty());
    done
}

proptest! {
    #[test]
    fn chunked_messages_reassemble_however_split_ordered_and_read(
        a in prop::collection::vec(any::<u8>(), 0..6000),
        b in prop::collection::vec(any::<u8>(), 1..3000),
        max in 1..2500usize,
        order in prop::collection::vec(any::<u16>(), 0..64),
        cuts in prop::collection::vec(any::<usize>(), 0..40),
    ) {
        // Two messages' chunks interleaved in a random order, each message's own chunks kept
        // in order or not (shuffled by the `order` keys).
        let mut frames: Vec<(u16, Vec<u8>)> = Vec::new();
        for (i, f) in sends("msgA", &a, max).into_iter().chain(sends("msgB", &b, max)).enumerate() {
            frames.push((order.get(i).copied().unwrap_or(i as u16), f));
        }
        frames.sort_by_key(|(k, _)| *k);
        let stream: Vec<u8> = frames.into_iter().flat_map(|(_, f)| f).collect();
        let mut done = receive(&stream, &cuts);
        done.sort();
        prop_assert_eq!(done, vec![(b"msgA".to_vec(), a), (b"msgB".to_vec(), b)]);
    }
}

mod session {
    use super::super::session::{MsgId, Session, SessionConfig, SessionEvent};
    use super::super::write::Reports;
    use super::{ALICE, BOB};
    use proptest::prelude::*;
    use sipshard_parser::msrp::{self, Framer, ReportRequest, EMPTY_HEADER};
    use sipshard_parser::Status;

    /// Feeds `bytes` (frames back to back) to `s`, read in pieces ending at `cuts`.
    fn deliver(
        s: &mut Session,
        now: u64,
        bytes: &[u8],
        cuts: &[usize],
        out: &mut Vec<Vec<u8>>,
        events: &mut Vec<SessionEvent>,
    ) {
        let mut buf = Vec::new();
        let mut framer = Framer::new(msrp::Limits::DEFAULT);
        let mut ends: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        ends.push(bytes.len());
        ends.sort_unstable();
        let mut read = 0;
        for end in ends {
            if end <= read {
                continue;
            }
            buf.extend_from_slice(&bytes[read..end]);
            read = end;
            loop {
                let mut h = [EMPTY_HEADER; 16];
                let f = match framer.parse(&buf, &mut h) {
                    Ok(Status::Complete(f)) => f,
                    Ok(Status::Partial) => break,
                    Err(e) => panic!("{e}: {}", String::from_utf8_lossy(&buf)),
                };
                s.on_frame(now, &f, out, events);
                let len = f.len;
                buf.drain(..len);
                framer.reset();
            }
        }
        assert!(buf.is_empty());
    }

    fn pair() -> (Session, Session) {
        let c = SessionConfig {
            chunk_size: 100,
            ..SessionConfig::default()
        };
        (
            Session::new(c, ALICE, BOB, b"a"),
            Session::new(c, BOB, ALICE, b"b"),
        )
    }

    #[test]
    fn a_chunked_message_is_received_whole_and_delivered_once() {
        let (mut a, mut b) = pair();
        let body: Vec<u8> = (0..350u32).map(|i| (i % 251) as u8).collect();
        let mut wire = Vec::new();
        let m = a.send(0, b"text/plain", &body, &mut wire);
        assert_eq!(wire.len(), 4, "chunks of 100");
        let (mut back, mut got) = (Vec::new(), Vec::new());
        deliver(
            &mut b,
            1,
            &wire.concat(),
            &[17, 230, 231],
            &mut back,
            &mut got,
        );
        let [SessionEvent::Received {
            content_type,
            body: got_body,
            reports,
            from_path,
            ..
        }] = &got[..]
        else {
            panic!("{got:?}")
        };
        assert_eq!(
            (&content_type[..], got_body, *reports),
            (&b"text/plain"[..], &body, Reports::default())
        );
        assert_eq!(from_path, ALICE, "REPORTs go to the sender's From-Path");
        assert_eq!(back.len(), 4, "a 200 per chunk");
        // Delivered at the last chunk's 200, not before, and once.
        let mut done = Vec::new();
        deliver(
            &mut a,
            2,
            &back[..3].concat(),
            &[],
            &mut Vec::new(),
            &mut done,
        );
        assert!(done.is_empty());
        assert_eq!(a.pending(), 1);
        deliver(&mut a, 2, &back[3], &[], &mut Vec::new(), &mut done);
        assert_eq!(done, vec![SessionEvent::Delivered(m)]);
        assert_eq!(a.pending(), 0);
        assert_eq!(a.poll_timeout(), None);
    }

    #[test]
    fn a_body_holding_end_lines_arrives_intact() {
        let (mut a, mut b) = pair();
        // Lines of seven dashes, and the very end-lines the next transaction ids would have,
        // inside the body and at its very start.
        let bodies: [&[u8]; 2] = [
            b"before\r\n-------\r\n-------at20$\r\n-------at20+\r\nafter",
            b"-------at50$\r\nat the start",
        ];
        for body in bodies {
            let mut wire = Vec::new();
            a.send(0, b"text/plain", body, &mut wire);
            let (mut back, mut got) = (Vec::new(), Vec::new());
            deliver(&mut b, 1, &wire.concat(), &[3], &mut back, &mut got);
            assert!(matches!(&got[..], [SessionEvent::Received { body: b2, .. }] if b2 == body));
        }
    }

    #[test]
    fn an_unanswered_send_fails_with_408_after_30_s() {
        let (mut a, _) = pair();
        let m = a.send(1000, b"text/plain", b"hi", &mut Vec::new());
        assert_eq!(a.poll_timeout(), Some(31_000));
        let mut ev = Vec::new();
        a.handle_timeout(30_999, &mut ev);
        assert!(ev.is_empty());
        a.handle_timeout(31_000, &mut ev);
        assert_eq!(ev, vec![SessionEvent::Failed { msg: m, code: 408 }]);
        assert_eq!(a.poll_timeout(), None);
    }

    #[test]
    fn errors_reports_and_unknown_methods_get_the_rfcs_answers() {
        let (mut a, mut b) = pair();
        // A failure REPORT for our message fails it; a REPORT is never answered.
        let mut wire = Vec::new();
        let m = a.send(0, b"text/plain", b"hello", &mut wire);
        let mut h = [EMPTY_HEADER; 16];
        let Ok(Status::Complete(send)) = msrp::parse(&wire[0], &mut h, &msrp::Limits::DEFAULT)
        else {
            panic!()
        };
        let mut rep = Vec::new();
        assert!(b.report(
            ALICE,
            send.message_id().unwrap(),
            5,
            Reports::default(),
            404,
            b"Not Found",
            &mut rep
        ));
        // A success report is sent only when asked for.
        assert!(!b.report(
            ALICE,
            b"x123",
            5,
            Reports::default(),
            200,
            b"OK",
            &mut Vec::new()
        ));
        let (mut back, mut ev) = (Vec::new(), Vec::new());
        deliver(&mut a, 1, &rep.concat(), &[], &mut back, &mut ev);
        assert!(back.is_empty(), "REPORT is never answered");
        assert_eq!(ev, vec![SessionEvent::Failed { msg: m, code: 404 }]);
        // Unknown method: 501. Failure-Report: no: nothing at all.
        let other = b"MSRP zz99 FOO\r\nTo-Path: msrp://bob.example.com:8888/9di4eae923wzd;tcp\r\nFrom-Path: msrp://alicepc.example.com:7777/iau39soe2843z;tcp\r\n-------zz99$\r\n";
        let (mut back, mut ev) = (Vec::new(), Vec::new());
        deliver(&mut b, 1, other, &[], &mut back, &mut ev);
        assert!(
            back[0].starts_with(b"MSRP zz99 501 "),
            "{}",
            String::from_utf8_lossy(&back[0])
        );
        let quiet = b"MSRP zz98 SEND\r\nTo-Path: msrp://bob.example.com:8888/9di4eae923wzd;tcp\r\nFrom-Path: msrp://alicepc.example.com:7777/iau39soe2843z;tcp\r\nMessage-ID: q123\r\nByte-Range: 1-2/2\r\nFailure-Report: no\r\nContent-Type: text/plain\r\n\r\nhi\r\n-------zz98$\r\n";
        let (mut back, mut ev) = (Vec::new(), Vec::new());
        deliver(&mut b, 1, quiet, &[], &mut back, &mut ev);
        assert!(back.is_empty());
        assert!(
            matches!(&ev[0], SessionEvent::Received { body, reports, .. }
            if body == b"hi" && reports.failure == ReportRequest::No)
        );
        // Too large: 413.
        let big = b"MSRP zz97 SEND\r\nTo-Path: msrp://bob.example.com:8888/9di4eae923wzd;tcp\r\nFrom-Path: msrp://alicepc.example.com:7777/iau39soe2843z;tcp\r\nMessage-ID: q124\r\nByte-Range: 1-2/99999999\r\nContent-Type: text/plain\r\n\r\nhi\r\n-------zz97+\r\n";
        let (mut back, mut ev) = (Vec::new(), Vec::new());
        deliver(&mut b, 1, big, &[], &mut back, &mut ev);
        assert!(back[0].starts_with(b"MSRP zz97 413 "));
        assert!(ev.is_empty());
        // Closing fails what is still unanswered, once.
        let m2 = a.send(2, b"text/plain", b"later", &mut Vec::new());
        let mut ev = Vec::new();
        a.close(481, &mut ev);
        a.close(481, &mut ev);
        assert_eq!(ev, vec![SessionEvent::Failed { msg: m2, code: 481 }]);
    }

    #[derive(Debug, Clone)]
    enum Op {
        AtoB(usize),
        BtoA(usize),
        Flush { cuts: Vec<usize> },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0..700usize).prop_map(Op::AtoB),
            3 => (0..700usize).prop_map(Op::BtoA),
            2 => prop::collection::vec(any::<usize>(), 0..8).prop_map(|cuts| Op::Flush { cuts }),
        ]
    }

    proptest! {
        /// Two sessions back to back over a reliable stream read in random pieces: every
        /// message either side sends arrives whole exactly once and is delivered exactly once.
        #[test]
        fn every_message_arrives_once_and_is_delivered_once(ops in prop::collection::vec(op(), 1..60)) {
            let (mut a, mut b) = pair();
            let (mut a_out, mut b_out) = (Vec::new(), Vec::new());
            let (mut a_ev, mut b_ev) = (Vec::new(), Vec::new());
            let (mut a_sent, mut b_sent) = (Vec::new(), Vec::new());
            let mut n = 0u8;
            let flush = |a: &mut Session, b: &mut Session, a_out: &mut Vec<Vec<u8>>, b_out: &mut Vec<Vec<u8>>,
                             a_ev: &mut Vec<SessionEvent>, b_ev: &mut Vec<SessionEvent>, cuts: &[usize]| {
                // Until both sides are quiet: answers produce nothing further.
                for _ in 0..4 {
                    let to_b = std::mem::take(a_out).concat();
                    let to_a = std::mem::take(b_out).concat();
                    deliver(b, 5, &to_b, cuts, b_out, b_ev);
                    deliver(a, 5, &to_a, cuts, a_out, a_ev);
                }
            };
            for op in &ops {
                match op {
                    Op::AtoB(len) | Op::BtoA(len) => {
                        n = n.wrapping_add(1);
                        let body: Vec<u8> = (0..*len).map(|i| (i as u8) ^ n).collect();
                        if matches!(op, Op::AtoB(_)) {
                            let m = a.send(0, b"text/plain", &body, &mut a_out);
                            a_sent.push((m, body));
                        } else {
                            let m = b.send(0, b"text/plain", &body, &mut b_out);
                            b_sent.push((m, body));
                        }
                    }
                    Op::Flush { cuts } => flush(&mut a, &mut b, &mut a_out, &mut b_out, &mut a_ev, &mut b_ev, cuts),
                }
            }
            flush(&mut a, &mut b, &mut a_out, &mut b_out, &mut a_ev, &mut b_ev, &[]);
            for (sent, sender_ev, receiver_ev) in [(&a_sent, &a_ev, &b_ev), (&b_sent, &b_ev, &a_ev)] {
                let received: Vec<&Vec<u8>> = receiver_ev.iter().filter_map(|e| match e {
                    SessionEvent::Received { body, .. } => Some(body),
                    _ => None,
                }).collect();
                // An empty SEND binds or keeps alive: delivered, but no message arrives.
                let bodies: Vec<&Vec<u8>> = sent.iter().map(|(_, b)| b).filter(|b| !b.is_empty()).collect();
                prop_assert_eq!(received, bodies);
                let mut delivered: Vec<MsgId> = sender_ev.iter().filter_map(|e| match e {
                    SessionEvent::Delivered(m) => Some(*m),
                    _ => None,
                }).collect();
                delivered.sort();
                let mut ids: Vec<MsgId> = sent.iter().map(|(m, _)| *m).collect();
                ids.sort();
                prop_assert_eq!(delivered, ids);
            }
            prop_assert_eq!(a.pending() + b.pending(), 0);
        }
    }
}

mod endpoint {
    use super::super::endpoint::{session_id_of, Endpoint, EndpointEvent, FrameFate};
    use super::super::session::{Session, SessionConfig, SessionEvent};
    use super::{ALICE, BOB};
    use sipshard_parser::msrp::{self, EMPTY_HEADER};
    use sipshard_parser::Status;

    fn frame_of(bytes: &[u8], f: impl FnOnce(&msrp::Frame<'_, '_>)) {
        let mut h = [EMPTY_HEADER; 16];
        let Ok(Status::Complete(fr)) = msrp::parse(bytes, &mut h, &msrp::Limits::DEFAULT) else {
            panic!("{}", String::from_utf8_lossy(bytes));
        };
        f(&fr)
    }

    #[test]
    fn session_ids_come_from_the_uri_path() {
        assert_eq!(session_id_of(BOB), Some(&b"9di4eae923wzd"[..]));
        assert_eq!(session_id_of(b"msrps://h:1/x9;tcp"), Some(&b"x9"[..]));
        assert_eq!(session_id_of(b"msrp://h:1/;tcp"), None);
        assert_eq!(session_id_of(b"sip:h"), None);
    }

    #[test]
    fn a_session_is_bound_to_the_first_connection_and_ends_with_it() {
        // Bob's endpoint holds the session Alice sends to.
        let mut bob: Endpoint<u32> = Endpoint::new(b"msrp://bob.example.com:8888/x;tcp");
        bob.add(
            b"9di4eae923wzd",
            Session::new(SessionConfig::default(), BOB, ALICE, b"b"),
            None,
        );
        let mut alice = Session::new(SessionConfig::default(), ALICE, BOB, b"a");
        let mut wire = Vec::new();
        alice.send(0, b"text/plain", b"hi", &mut wire);
        let (mut out, mut ev) = (Vec::new(), Vec::new());
        frame_of(&wire[0], |f| {
            assert_eq!(bob.on_frame(1, 7, f, &mut out, &mut ev), FrameFate::Taken)
        });
        assert!(out[0].starts_with(b"MSRP "), "200");
        assert!(matches!(
            &ev[..],
            [EndpointEvent {
                event: SessionEvent::Received { .. },
                ..
            }]
        ));
        assert_eq!(bob.connection(b"9di4eae923wzd"), Some(7));
        // The same session from another connection: 506, and nothing reaches the session.
        let mut wire = Vec::new();
        alice.send(2, b"text/plain", b"again", &mut wire);
        let (mut out, mut ev) = (Vec::new(), Vec::new());
        frame_of(&wire[0], |f| {
            assert_eq!(
                bob.on_frame(3, 8, f, &mut out, &mut ev),
                FrameFate::OtherConnection
            )
        });
        assert!(
            out[0].windows(4).any(|w| w == b" 506"),
            "{}",
            String::from_utf8_lossy(&out[0])
        );
        assert!(ev.is_empty());
        // Failure-Report: no gets no error either.
        let quiet = b"MSRP q1w2 SEND\r\nTo-Path: msrp://bob.example.com:8888/nosuch;tcp\r\nFrom-Path: msrp://alicepc.example.com:7777/iau39soe2843z;tcp\r\nMessage-ID: q1w2\r\nByte-Range: 1-1/1\r\nFailure-Report: no\r\nContent-Type: text/plain\r\n\r\nx\r\n-------q1w2$\r\n";
        let (mut out, mut ev) = (Vec::new(), Vec::new());
        frame_of(quiet, |f| {
            assert_eq!(bob.on_frame(3, 7, f, &mut out, &mut ev), FrameFate::Unknown)
        });
        assert!(out.is_empty());
        // A session nobody has: 481.
        let stranger = Session::new(
            SessionConfig::default(),
            ALICE,
            b"msrp://bob.example.com:8888/nosuch;tcp",
            b"s",
        );
        let mut stranger = stranger;
        let mut wire = Vec::new();
        stranger.send(0, b"text/plain", b"x", &mut wire);
        let (mut out, mut ev) = (Vec::new(), Vec::new());
        frame_of(&wire[0], |f| {
            assert_eq!(bob.on_frame(3, 7, f, &mut out, &mut ev), FrameFate::Unknown)
        });
        assert!(out[0].windows(4).any(|w| w == b" 481"));
        // The connection closes: the session ends, failing what it had not delivered.
        let sent =
            bob.session(b"9di4eae923wzd")
                .unwrap()
                .send(4, b"text/plain", b"late", &mut Vec::new());
        let mut ev = Vec::new();
        assert_eq!(
            bob.on_connection_closed(7, &mut ev),
            vec![b"9di4eae923wzd".to_vec()]
        );
        assert_eq!(
            ev,
            vec![EndpointEvent {
                session: b"9di4eae923wzd".to_vec(),
                event: SessionEvent::Failed {
                    msg: sent,
                    code: 481
                }
            }]
        );
        assert!(bob.is_empty());
    }

    #[test]
    fn only_a_request_binds_a_session() {
        let mut e: Endpoint<u32> = Endpoint::new(b"msrp://h:1/x;tcp");
        e.add(
            b"9di4eae923wzd",
            Session::new(SessionConfig::default(), BOB, ALICE, b"b"),
            None,
        );
        let stray = b"MSRP zz11 200 OK\r\nTo-Path: msrp://bob.example.com:8888/9di4eae923wzd;tcp\r\nFrom-Path: msrp://alicepc.example.com:7777/iau39soe2843z;tcp\r\n-------zz11$\r\n";
        let (mut out, mut ev) = (Vec::new(), Vec::new());
        frame_of(stray, |f| {
            assert_eq!(e.on_frame(0, 5, f, &mut out, &mut ev), FrameFate::Taken)
        });
        assert_eq!(e.connection(b"9di4eae923wzd"), None);
        assert!(out.is_empty(), "a response is never answered");
    }

    #[test]
    fn a_session_timer_fires_through_the_endpoint() {
        let mut e: Endpoint<u32> = Endpoint::new(b"msrp://h:1/x;tcp");
        e.add(
            b"s1",
            Session::new(SessionConfig::default(), ALICE, BOB, b"a"),
            Some(1),
        );
        let m = e
            .session(b"s1")
            .unwrap()
            .send(10, b"text/plain", b"x", &mut Vec::new());
        assert_eq!(e.session_timeout(b"s1"), Some(30_010));
        let mut ev = Vec::new();
        e.handle_session_timeout(b"s1", 30_010, &mut ev);
        assert_eq!(ev[0].event, SessionEvent::Failed { msg: m, code: 408 });
    }
}
