//! Hot paths of the engine that every segment and every message crosses: the wire codec and
//! URL canonicalisation. Figures are recorded in docs/BENCHMARKS.md.

#![allow(missing_docs)]

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use f2f_core::content::{CanonicalConfig, Canonicalizer};
use f2f_core::id::{RenditionId, SegmentKey, SegmentPosition, SwarmId, VariantTag};
use f2f_core::wire::{Limits, Message, RequestId, decode, encode};

fn key(seq: u64) -> SegmentKey {
    SegmentKey {
        swarm: SwarmId::from_canonical("cdn.example/live/channel1/master.m3u8"),
        rendition: RenditionId::from_canonical("cdn.example/live/channel1/720p.m3u8"),
        position: SegmentPosition::Sequence(seq),
        variant: VariantTag::from_u64(0),
    }
}

fn wire(c: &mut Criterion) {
    let limits = Limits::default();
    let piece = Message::Piece {
        id: RequestId(1),
        key: key(1),
        offset: 0,
        end: 64 * 1024,
        total: 1_000_000,
        data: Bytes::from(vec![0x5a; 64 * 1024 + 384]),
    };
    let have = Message::Have {
        load: 1,
        upload_kbps: 12_000,
        partial: false,
        keys: (0..16).map(key).collect(),
    };
    let request = Message::Request {
        id: RequestId(2),
        key: key(7),
        offset: 0,
        end: Some(500_000),
    };
    let mut group = c.benchmark_group("wire");
    for (name, msg) in [
        ("piece_64k", &piece),
        ("have_16", &have),
        ("request", &request),
    ] {
        let frame = encode(msg);
        group.throughput(Throughput::Bytes(frame.len() as u64));
        group.bench_function(format!("encode/{name}"), |b| {
            b.iter(|| encode(black_box(msg)))
        });
        group.bench_function(format!("decode/{name}"), |b| {
            b.iter(|| decode(black_box(&frame), &limits).expect("valid frame"))
        });
    }
    group.finish();
}

fn content(c: &mut Criterion) {
    let canon = Canonicalizer::new(CanonicalConfig::default()).expect("default config");
    let swarm = SwarmId::from_canonical("cdn.example/live/channel1/master.m3u8");
    let rendition = RenditionId::from_canonical("cdn.example/live/channel1/720p.m3u8");
    let url = "https://edge-7.cdn.example/live/channel1/720p/seg_184467.ts\
               ?Policy=eyJTdGF0ZW1lbnQiOlt7&Signature=abc~def&Key-Pair-Id=K2ABCDEF&sid=98765";
    c.bench_function("content/segment_key", |b| {
        b.iter(|| {
            canon
                .segment_key(
                    swarm,
                    rendition,
                    SegmentPosition::Sequence(184_467),
                    black_box(url),
                    None,
                )
                .expect("valid url")
        })
    });
}

criterion_group!(benches, wire, content);
criterion_main!(benches);
