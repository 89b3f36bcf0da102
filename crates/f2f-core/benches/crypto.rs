//! What identity and integrity cost: BLS sign and verify, same-message aggregates (hash
//! attestations), distinct-message batches and aggregates (delivery receipts), BLAKE3 over a
//! segment, its bao tree, and the check of one piece. Figures are recorded in
//! docs/BENCHMARKS.md.

#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use f2f_core::identity::{Bls, Crypto, Domain, Keypair, PublicKey, Signature};
use f2f_core::integrity::Outboard;

fn keys(n: usize) -> Vec<Keypair> {
    (0..n)
        .map(|i| Keypair::from_entropy(&[&(i as u64).to_le_bytes()[..], &[7; 32]].concat()))
        .collect()
}

fn bls(c: &mut Criterion) {
    let bls = Bls::new();
    let key = &keys(1)[0];
    let msg = [0x42; 150];
    let sig = bls.sign(key, Domain::Handshake, &msg);
    c.bench_function("bls/sign", |b| {
        b.iter(|| bls.sign(key, Domain::Handshake, black_box(&msg)))
    });
    c.bench_function("bls/verify", |b| {
        b.iter(|| bls.verify(&key.public(), Domain::Handshake, black_box(&msg), &sig))
    });

    let mut group = c.benchmark_group("bls/aggregate_verify_same_message");
    let signers = keys(1000);
    for n in [10, 100, 1000] {
        let pks: Vec<PublicKey> = signers[..n].iter().map(Keypair::public).collect();
        let sigs: Vec<Signature> = (signers[..n].iter())
            .map(|k| bls.sign(k, Domain::Handshake, &msg))
            .collect();
        let agg = bls.aggregate(&sigs).expect("valid");
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| bls.verify_aggregate(&pks, Domain::Handshake, black_box(&msg), &agg))
        });
    }
    group.finish();

    let msgs: Vec<Vec<u8>> = (0..100u32).map(|i| i.to_be_bytes().repeat(30)).collect();
    let items: Vec<(PublicKey, &[u8], Signature)> = (signers[..100].iter().zip(&msgs))
        .map(|(k, m)| (k.public(), m.as_slice(), bls.sign(k, Domain::Handshake, m)))
        .collect();
    c.bench_function("bls/batch_verify_100_distinct", |b| {
        b.iter(|| bls.verify_batch(Domain::Handshake, black_box(&items)))
    });

    // A receipt bundle: 100 receivers' signatures on their own statements, added into one.
    let sigs: Vec<Signature> = items.iter().map(|(_, _, s)| *s).collect();
    let agg = bls.aggregate(&sigs).expect("valid");
    let statements: Vec<(PublicKey, &[u8])> = items.iter().map(|(k, m, _)| (*k, *m)).collect();
    c.bench_function("bls/aggregate_verify_100_distinct", |b| {
        b.iter(|| bls.verify_aggregate_distinct(Domain::Handshake, black_box(&statements), &agg))
    });
}

fn blake3_segment(c: &mut Criterion) {
    let segment = vec![0x5a_u8; 2 * 1024 * 1024];
    let mut group = c.benchmark_group("blake3");
    group.throughput(Throughput::Bytes(segment.len() as u64));
    group.bench_function("2MiB_segment", |b| {
        b.iter(|| blake3::hash(black_box(&segment)))
    });
    group.bench_function("2MiB_outboard", |b| {
        b.iter(|| Outboard::from_data(black_box(&segment)))
    });
    group.finish();

    // A 64 KiB piece of a 2 MiB segment, as a receiver checks it.
    let tree = Outboard::from_data(&segment);
    let (start, end) = (512 * 1024, 576 * 1024);
    let piece = tree
        .encode(start, &segment[start as usize..end as usize])
        .expect("aligned");
    let mut group = c.benchmark_group("integrity");
    group.throughput(Throughput::Bytes(end - start));
    group.bench_function("verify_64KiB_piece", |b| {
        b.iter(|| tree.verify(start, end, black_box(&piece)))
    });
    group.finish();
}

criterion_group!(benches, bls, blake3_segment);
criterion_main!(benches);
