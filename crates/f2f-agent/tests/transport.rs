//! Two peer connections on loopback UDP sockets: after the offer/answer exchange, the data
//! channel carries every message intact and in order, both ways, including messages larger
//! than a datagram and a burst larger than the send buffer (back-pressure, not loss).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use f2f_agent::transport::{ChannelConfig, PeerChannel};

fn message(i: usize) -> Vec<u8> {
    let len = 1 + (i * 7919) % (200 * 1024);
    (0..len).map(|j| (i + j * 31) as u8).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_arrive_intact_and_in_order_both_ways() {
    let config = ChannelConfig::default();
    let local = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let mut a = PeerChannel::bind(local, &config).expect("bind");
    let mut b = PeerChannel::bind(local, &config).expect("bind");
    let (offer, pending) = a.offer();
    let answer = b.accept_offer(offer).expect("offer");
    a.accept_answer(pending, answer).expect("answer");
    let count = 120;
    let run = async move {
        let (mut a, mut b) = tokio::join!(
            async move {
                a.open().await.expect("open");
                a
            },
            async move {
                b.open().await.expect("open");
                b
            }
        );
        let sender = tokio::spawn(async move {
            for i in 0..count {
                a.send(&message(i)).await.expect("send");
            }
            a.recv().await.expect("reply")
        });
        for i in 0..count {
            let got = b.recv().await.expect("recv");
            assert_eq!(got, message(i), "message {i}");
        }
        b.send(b"all received").await.expect("send reply");
        // b keeps answering until a has read the reply.
        while !sender.is_finished() {
            let _ = tokio::time::timeout(Duration::from_millis(5), b.recv()).await;
        }
        assert_eq!(sender.await.expect("sender"), b"all received");
    };
    tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the transfer finishes within a minute");
}
