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
