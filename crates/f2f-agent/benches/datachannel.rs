//! Data channel throughput on loopback: two str0m peer connections on their own UDP sockets,
//! one sending 64 KiB messages as fast as the channel accepts them, the other reading them.
//! Figures are recorded in docs/BENCHMARKS.md.

#![allow(missing_docs)]

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use f2f_agent::transport::{ChannelConfig, PeerChannel};

const MESSAGE: usize = 64 * 1024;
const TRANSFER: usize = 16 << 20;

async fn pair(config: &ChannelConfig) -> (PeerChannel, PeerChannel) {
    let local = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let mut a = PeerChannel::bind(local, config).expect("bind");
    let mut b = PeerChannel::bind(local, config).expect("bind");
    let (offer, pending) = a.offer();
    let answer = b.accept_offer(offer).expect("offer");
    a.accept_answer(pending, answer).expect("answer");
    let (a, b) = tokio::join!(
        async move {
            a.open().await.expect("open");
            a
        },
        async move {
            b.open().await.expect("open");
            b
        }
    );
    (a, b)
}

/// Sends `bytes` from `a` to `b`, each driven by its own task (as two agents would be);
/// returns the time until `b` has read them all, and both connections.
async fn transfer(
    mut a: PeerChannel,
    mut b: PeerChannel,
    bytes: usize,
) -> (Duration, PeerChannel, PeerChannel) {
    let start = Instant::now();
    let (done_tx, mut done_rx) = tokio::sync::oneshot::channel::<()>();
    let sender = tokio::spawn(async move {
        let message = vec![0x5a; MESSAGE];
        let mut sent = 0;
        while sent < bytes {
            a.send(&message).await.expect("send");
            sent += MESSAGE;
        }
        // Keep taking the receiver's acknowledgements until it is done.
        loop {
            tokio::select! {
                _ = &mut done_rx => return a,
                _ = a.recv() => {}
            }
        }
    });
    let receiver = tokio::spawn(async move {
        let mut got = 0;
        while got < bytes {
            got += b.recv().await.expect("recv").len();
        }
        (start.elapsed(), b)
    });
    let (elapsed, b) = receiver.await.expect("receiver");
    let _ = done_tx.send(());
    let a = sender.await.expect("sender");
    (elapsed, a, b)
}

fn loopback(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let config = ChannelConfig::default();
    let mut group = c.benchmark_group("datachannel");
    group.throughput(Throughput::Bytes(TRANSFER as u64));
    group.sample_size(10);
    group.bench_function("loopback_16MiB", |bench| {
        bench.iter_custom(|iters| {
            rt.block_on(async {
                let (mut a, mut b) = pair(&config).await;
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let elapsed;
                    (elapsed, a, b) = transfer(a, b, TRANSFER).await;
                    total += elapsed;
                }
                total
            })
        });
    });
    group.finish();
}

criterion_group!(benches, loopback);
criterion_main!(benches);
