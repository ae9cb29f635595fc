//! Parser micro-benchmarks: sipshard's SIP and MSRP parsers, and other SIP parsers on the same
//! bytes in the same run.
//!
//! `cargo bench -p sipshard-bench --bench parse -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sipshard_bench::{msrp_inputs, sip_inputs};
use sipshard_parser::msrp;
use sipshard_parser::sip::{self, Framing, EMPTY_HEADER};
use sipshard_parser::Status;

/// The routing fields every full parser is asked for (read only through `black_box`).
#[allow(dead_code)]
#[derive(Debug, Default)]
struct Routing<C, T, B> {
    call_id: Option<C>,
    cseq: Option<u32>,
    from_tag: Option<T>,
    to_tag: Option<T>,
    branch: Option<B>,
    content_length: Option<usize>,
    max_forwards: Option<u32>,
}

impl<C, T, B> Routing<C, T, B> {
    /// Whether every field an initial request must carry was found (no To tag yet).
    fn complete(&self) -> bool {
        self.call_id.is_some()
            && self.cseq.is_some()
            && self.from_tag.is_some()
            && self.branch.is_some()
            && self.content_length.is_some()
            && self.max_forwards.is_some()
    }
}

/// Parses with `parse` (`sip::parse` or `sip::parse_strict`, monomorphised so it inlines as a
/// direct call would) and reads the routing fields.
fn sipshard_routing<F>(parse: F, buf: &[u8]) -> Routing<&[u8], &[u8], &[u8]>
where
    F: for<'h, 'b> Fn(
        &'b [u8],
        &'h mut [sip::Header<'b>],
        Framing,
    ) -> Result<Status<sip::Message<'h, 'b>>, sip::Error>,
{
    let mut headers = [EMPTY_HEADER; 32];
    let m = match parse(buf, &mut headers, Framing::Datagram) {
        Ok(Status::Complete(m)) => m,
        other => panic!("sipshard: {other:?}"),
    };
    let r = Routing {
        call_id: m.call_id(),
        cseq: m.cseq().map(|c| c.number),
        from_tag: m.from_tag(),
        to_tag: m.to_tag(),
        branch: m.branch(),
        content_length: m.content_length().map(|n| n as usize),
        max_forwards: m.max_forwards().map(u32::from),
    };
    black_box(m.len());
    r
}

/// The full parse with the routing fields extracted.
fn sipshard_full(buf: &[u8]) -> Routing<&[u8], &[u8], &[u8]> {
    sipshard_routing(sip::parse, buf)
}

/// As `sipshard_full`, plus the full syntax check a server runs before acting on a message.
fn sipshard_strict(buf: &[u8]) -> Routing<&[u8], &[u8], &[u8]> {
    sipshard_routing(sip::parse_strict, buf)
}

fn httparse_headers(after_start_line: &[u8]) -> usize {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    match httparse::parse_headers(after_start_line, &mut headers) {
        Ok(httparse::Status::Complete((n, hs))) => {
            black_box(hs);
            n
        }
        other => panic!("httparse: {other:?}"),
    }
}

fn rsip_parse(buf: &[u8]) -> rsip::SipMessage {
    rsip::SipMessage::try_from(buf).expect("rsip")
}

/// rsip's parse, then the same routing fields through its typed headers (it parses header
/// values lazily, so `rsip_parse` alone leaves them as strings).
fn rsip_routing(buf: &[u8]) -> Routing<impl Sized, impl Sized, impl Sized> {
    use rsip::headers::{ToTypedHeader, UntypedHeader};
    use rsip::message::{HasHeaders, HeadersExt};
    let m = rsip_parse(buf);
    let content_length = m.headers().iter().find_map(|h| match h {
        rsip::Header::ContentLength(l) => l.length().ok(),
        _ => None,
    });
    let r = Routing {
        call_id: m.call_id_header().ok().map(|h| h.value().to_owned()),
        cseq: m.cseq_header().ok().and_then(|h| h.seq().ok()),
        from_tag: m.from_header().ok().and_then(|h| h.tag().ok().flatten()),
        to_tag: m.to_header().ok().and_then(|h| h.tag().ok().flatten()),
        branch: m
            .via_header()
            .ok()
            .and_then(|h| h.typed().ok())
            .and_then(|v| v.branch().cloned()),
        content_length: content_length.map(|n| n as usize),
        max_forwards: m.max_forwards_header().ok().and_then(|h| h.num().ok()),
    };
    black_box(m.body().len());
    r
}

/// ezk-sip-types has no one-call message parser: its transport layer (ezk-sip-core) splits the
/// head with `PullParser`, parses the start line with `MessageLine`, each header line with `Line`
/// into `Headers`, and slices the body by Content-Length. This does the same, then decodes the
/// routing fields.
fn ezk_full(buf: &[u8]) -> Routing<impl Sized, impl Sized, impl Sized> {
    use ezk_sip_types::header::typed::{CSeq, CallID, ContentLength, FromTo, MaxForwards, Via};
    use ezk_sip_types::msg::{Line, MessageLine, PullParser};
    use ezk_sip_types::parse::Parse;
    use ezk_sip_types::{Headers, Name};

    // ezk works on `Bytes` it owns (ezk-sip-core copies each datagram into one).
    let buffer = bytes::Bytes::copy_from_slice(buf);
    let mut parser = PullParser::new(&buffer, 0);
    let mut line0 = None;
    let mut headers = Headers::new();
    for item in &mut parser {
        let line = std::str::from_utf8(item.expect("ezk: incomplete")).expect("ezk: utf-8");
        if line0.is_none() {
            let (_, l) = MessageLine::parse(&buffer)(line).expect("ezk: start line");
            line0 = Some(l);
        } else {
            let (_, l) = Line::parse(&buffer, line).expect("ezk: header line");
            headers.insert(l.name, l.value);
        }
    }
    let head_end = parser.head_end();
    let len = headers
        .get_named::<ContentLength>()
        .expect("ezk: Content-Length")
        .0;
    let body = buffer.slice(head_end..head_end + len);
    let r = Routing {
        call_id: headers.get_named::<CallID>().ok().map(|c| c.0),
        cseq: headers.get_named::<CSeq>().ok().map(|c| c.cseq),
        from_tag: headers.get::<FromTo>(Name::FROM).ok().and_then(|f| f.tag),
        to_tag: headers.get::<FromTo>(Name::TO).ok().and_then(|f| f.tag),
        branch: headers
            .get_named::<Via>()
            .ok()
            .and_then(|v| v.params.get_val("branch").cloned()),
        content_length: Some(len),
        max_forwards: headers
            .get_named::<MaxForwards>()
            .ok()
            .map(|m| u32::from(m.0)),
    };
    black_box((line0, body));
    r
}

fn after_start_line(buf: &[u8]) -> &[u8] {
    let i = buf
        .windows(2)
        .position(|w| w == b"\r\n")
        .expect("start line");
    &buf[i + 2..]
}

fn sip_parse(c: &mut Criterion) {
    for (name, buf) in sip_inputs() {
        // Every parser must accept the input before it is timed.
        assert!(sipshard_full(&buf).complete(), "{name}: sipshard");
        httparse_headers(after_start_line(&buf));
        assert!(rsip_routing(&buf).complete(), "{name}: rsip");
        assert!(ezk_full(&buf).complete(), "{name}: ezk");

        let mut g = c.benchmark_group(format!("sip_parse/{name}"));
        g.throughput(Throughput::Bytes(buf.len() as u64));
        g.bench_function("sipshard_full", |b| {
            b.iter(|| sipshard_full(black_box(&buf)))
        });
        g.bench_function("sipshard_strict", |b| {
            b.iter(|| sipshard_strict(black_box(&buf)))
        });
        let rest = after_start_line(&buf);
        g.bench_function("httparse_headers", |b| {
            b.iter(|| httparse_headers(black_box(rest)))
        });
        g.bench_function("rsip", |b| b.iter(|| rsip_parse(black_box(&buf))));
        g.bench_function("rsip_routing", |b| b.iter(|| rsip_routing(black_box(&buf))));
        g.bench_function("ezk_sip_types", |b| b.iter(|| ezk_full(black_box(&buf))));
        g.finish();
    }
}

fn sip_call_id(c: &mut Criterion) {
    let mut g = c.benchmark_group("sip_call_id");
    for (name, buf) in sip_inputs() {
        assert!(sip::find_call_id(&buf).is_some(), "{name}");
        g.throughput(Throughput::Bytes(buf.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(name), &buf, |b, buf| {
            b.iter(|| sip::find_call_id(black_box(buf)))
        });
    }
    g.finish();
}

fn msrp_once(buf: &[u8]) -> usize {
    let mut headers = [msrp::EMPTY_HEADER; 32];
    match msrp::parse(buf, &mut headers, &msrp::Limits::DEFAULT) {
        Ok(Status::Complete(f)) => {
            black_box(&f);
            f.len
        }
        other => panic!("msrp: {other:?}"),
    }
}

/// The frame arriving in 1500-byte reads: one `Framer::parse` call per read, each on the bytes
/// received so far (a prefix of `buf`; the copy into a receive buffer is not timed).
fn msrp_framer(buf: &[u8], piece: usize) -> usize {
    let mut framer = msrp::Framer::default();
    let mut end = 0;
    loop {
        end = (end + piece).min(buf.len());
        let mut headers = [msrp::EMPTY_HEADER; 32];
        match framer.parse(black_box(&buf[..end]), &mut headers) {
            Ok(Status::Complete(f)) => {
                black_box(&f);
                return f.len;
            }
            Ok(Status::Partial) => assert!(end < buf.len()),
            Err(e) => panic!("msrp framer: {e:?}"),
        }
    }
}

fn msrp_parse(c: &mut Criterion) {
    for (name, buf) in msrp_inputs() {
        assert_eq!(msrp_once(&buf), buf.len());
        assert_eq!(msrp_framer(&buf, 1500), buf.len());
        let mut g = c.benchmark_group(format!("msrp_parse/{name}"));
        g.throughput(Throughput::Bytes(buf.len() as u64));
        g.bench_function("sipshard", |b| b.iter(|| msrp_once(black_box(&buf))));
        if buf.len() > 32 * 1024 {
            g.bench_function("framer_1500B_reads", |b| {
                b.iter(|| msrp_framer(black_box(&buf), 1500))
            });
        }
        g.finish();
    }
}

criterion_group!(benches, sip_parse, sip_call_id, msrp_parse);
criterion_main!(benches);
