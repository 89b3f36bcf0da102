//! Data channel throughput: two endpoints (str0m peer connections, each endpoint on its own
//! UDP socket), one sending 64 KiB messages as fast as the channel accepts them, the other
//! reading them; each endpoint driven by its own task, as two agents would be.
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
use f2f_agent::transport::{ChannelConfig, ConnId, Endpoint, TransportEvent};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

const MESSAGE: usize = 64 * 1024;
const TRANSFER: usize = 16 << 20;
const SEGMENT: usize = 2_000_000;

fn localhost() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

/// One connection each way between `a` and `b`, open.
struct Pair {
    a: Endpoint,
    on_a: ConnId,
    b: Endpoint,
    on_b: ConnId,
}

async fn open(mut a: Endpoint, mut b: Endpoint) -> Pair {
    let (on_a, offer, pending) = a.offer().expect("offer");
    let (on_b, answer) = b.accept_offer(offer).expect("accept");
    a.accept_answer(on_a, pending, answer).expect("answer");
    let (a, b) = tokio::join!(opened(a, on_a), opened(b, on_b));
    Pair { a, on_a, b, on_b }
}

async fn opened(mut ep: Endpoint, id: ConnId) -> Endpoint {
    while ep.next_event().await.expect("event") != TransportEvent::Open(id) {}
    ep
}

async fn pair(config: &ChannelConfig) -> Pair {
    let a = Endpoint::bind(localhost(), config.clone()).expect("bind");
    let b = Endpoint::bind(localhost(), config.clone()).expect("bind");
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

/// Two endpoints that reach each other only through the emulated link.
async fn wan_pair(config: &ChannelConfig) -> Pair {
    // What a reaches b at, and what b reaches a at.
    let to_b = Arc::new(UdpSocket::bind(localhost()).await.expect("relay"));
    let to_a = Arc::new(UdpSocket::bind(localhost()).await.expect("relay"));
    let (ra, rb) = (
        to_a.local_addr().expect("addr"),
        to_b.local_addr().expect("addr"),
    );
    let a = Endpoint::bind_behind(localhost(), ra, config.clone()).expect("bind");
    let b = Endpoint::bind_behind(localhost(), rb, config.clone()).expect("bind");
    let (bps, delay) = (100e6, Duration::from_millis(20));
    // a → b leaves from a's advertised address, so b sees a where a said it was.
    let (sa, sb) = (
        a.socket_addr().expect("addr"),
        b.socket_addr().expect("addr"),
    );
    link(to_b.clone(), to_a.clone(), sb, bps, delay);
    link(to_a, to_b, sa, bps, delay);
    open(a, b).await
}

/// Sends `bytes` from `a` to `b`, each endpoint driven by its own task; returns the time
/// until `b` has read them all, and the pair.
async fn transfer(p: Pair, bytes: usize) -> (Duration, Pair) {
    let Pair {
        mut a,
        on_a,
        mut b,
        on_b,
    } = p;
    let start = Instant::now();
    let (done_tx, mut done_rx) = tokio::sync::oneshot::channel::<()>();
    let sender = tokio::spawn(async move {
        let message = vec![0x5a; MESSAGE];
        let mut sent = 0;
        while sent < bytes {
            let n = MESSAGE.min(bytes - sent);
            if a.send(on_a, &message[..n]).expect("send") {
                sent += n;
            } else {
                while !matches!(a.next_event().await, Ok(TransportEvent::Drained(..))) {}
            }
        }
        // Keep the sender's side running (transmissions, acknowledgements) until done.
        loop {
            tokio::select! {
                _ = &mut done_rx => return a,
                event = a.next_event() => { event.expect("event"); }
            }
        }
    });
    let receiver = tokio::spawn(async move {
        let mut got = 0;
        while got < bytes {
            if let TransportEvent::Message(_, m) = b.next_event().await.expect("event") {
                got += m.len();
            }
        }
        (start.elapsed(), b)
    });
    let (elapsed, b) = receiver.await.expect("receiver");
    let _ = done_tx.send(());
    let a = sender.await.expect("sender");
    (elapsed, Pair { a, on_a, b, on_b })
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
                let mut p = pair(&config).await;
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let elapsed;
                    (elapsed, p) = transfer(p, TRANSFER).await;
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
                        let (_, mut p) = transfer(wan_pair(config).await, 4 * SEGMENT).await;
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            let elapsed;
                            (elapsed, p) = transfer(p, SEGMENT).await;
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
                            total += transfer(wan_pair(config).await, SEGMENT).await.0;
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
