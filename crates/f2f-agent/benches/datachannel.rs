//! Data channel throughput: two str0m peer connections on their own UDP sockets, one sending
//! 64 KiB messages as fast as the channel accepts them, the other reading them; each side
//! driven by its own task, as two agents would be.
//!
//! - `loopback_16MiB`: straight over 127.0.0.1.
//! - `wan_2MB_warm/*` and `wan_2MB_cold/*`: through a user-space link emulator (this kernel has
//!   no `netem`) of 100 Mb/s each way with 20 ms one-way delay and a 50 ms drop-tail queue; one
//!   2 MB segment, on a channel that already carried 8 MB (warm) or on a fresh one (cold), for
//!   several in-flight limits.
//!
//! Figures are recorded in docs/BENCHMARKS.md.

#![allow(missing_docs)]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use f2f_agent::transport::{ChannelConfig, PeerChannel};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

const MESSAGE: usize = 64 * 1024;
const TRANSFER: usize = 16 << 20;
const SEGMENT: usize = 2_000_000;

fn localhost() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

async fn open(mut a: PeerChannel, mut b: PeerChannel) -> (PeerChannel, PeerChannel) {
    let (offer, pending) = a.offer();
    let answer = b.accept_offer(offer).expect("offer");
    a.accept_answer(pending, answer).expect("answer");
    tokio::join!(
        async move {
            a.open().await.expect("open");
            a
        },
        async move {
            b.open().await.expect("open");
            b
        }
    )
}

async fn pair(config: &ChannelConfig) -> (PeerChannel, PeerChannel) {
    let a = PeerChannel::bind(localhost(), config).expect("bind");
    let b = PeerChannel::bind(localhost(), config).expect("bind");
    open(a, b).await
}

/// One direction of the emulated link: datagrams arriving at `from` leave `out` for `to`
/// after queueing behind earlier ones at `bps`, then `delay`; a datagram that would queue
/// longer than `queue` is dropped.
fn link(from: Arc<UdpSocket>, out: Arc<UdpSocket>, to: SocketAddr, bps: f64, delay: Duration) {
    let queue = Duration::from_millis(50);
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    tokio::spawn(async move {
        let mut buf = vec![0; 2048];
        let mut free = Instant::now();
        while let Ok((n, _)) = from.recv_from(&mut buf).await {
            let now = Instant::now();
            let start = free.max(now);
            if start - now > queue {
                continue;
            }
            free = start + Duration::from_secs_f64(n as f64 * 8.0 / bps);
            let _ = tx.send((free + delay, buf[..n].to_vec()));
        }
    });
    tokio::spawn(async move {
        while let Some((at, datagram)) = rx.recv().await {
            tokio::time::sleep_until(at.into()).await;
            let _ = out.send_to(&datagram, to).await;
        }
    });
}

/// Two connections that reach each other only through the emulated link.
async fn wan_pair(config: &ChannelConfig) -> (PeerChannel, PeerChannel) {
    // What a reaches b at, and what b reaches a at.
    let to_b = Arc::new(UdpSocket::bind(localhost()).await.expect("relay"));
    let to_a = Arc::new(UdpSocket::bind(localhost()).await.expect("relay"));
    let (ra, rb) = (
        to_a.local_addr().expect("addr"),
        to_b.local_addr().expect("addr"),
    );
    let a = PeerChannel::bind_behind(localhost(), ra, config).expect("bind");
    let b = PeerChannel::bind_behind(localhost(), rb, config).expect("bind");
    let (bps, delay) = (100e6, Duration::from_millis(20));
    // a → b leaves from a's advertised address, so b sees a where a said it was.
    link(to_b.clone(), to_a.clone(), b.socket_addr(), bps, delay);
    link(to_a, to_b, a.socket_addr(), bps, delay);
    open(a, b).await
}

/// Sends `bytes` from `a` to `b`, each driven by its own task; returns the time until `b`
/// has read them all, and both connections.
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
            let n = MESSAGE.min(bytes - sent);
            a.send(&message[..n]).await.expect("send");
            sent += n;
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

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn loopback(c: &mut Criterion) {
    let rt = runtime();
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

fn wan(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("datachannel");
    group.throughput(Throughput::Bytes(SEGMENT as u64));
    group.sample_size(10);
    for kib in [256usize, 1024, 4096] {
        let config = ChannelConfig {
            max_buffered: kib << 10,
            ..ChannelConfig::default()
        };
        group.bench_with_input(
            BenchmarkId::new("wan_2MB_warm", kib),
            &config,
            |bench, config| {
                bench.iter_custom(|iters| {
                    rt.block_on(async {
                        let (a, b) = wan_pair(config).await;
                        let (_, mut a, mut b) = transfer(a, b, 4 * SEGMENT).await;
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            let elapsed;
                            (elapsed, a, b) = transfer(a, b, SEGMENT).await;
                            total += elapsed;
                        }
                        total
                    })
                });
            },
        );
        group.bench_with_input(
            BenchmarkId::new("wan_2MB_cold", kib),
            &config,
            |bench, config| {
                bench.iter_custom(|iters| {
                    rt.block_on(async {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            let (a, b) = wan_pair(config).await;
                            total += transfer(a, b, SEGMENT).await.0;
                        }
                        total
                    })
                });
            },
        );
    }
    group.finish();
}

criterion_group!(benches, loopback, wan);
criterion_main!(benches);
