//! Endpoints on loopback UDP sockets: after the offer/answer exchange, every data channel
//! carries every message intact and in order, both ways, including messages larger than a
//! datagram and bursts larger than the send buffer (back-pressure, not loss); one endpoint's
//! socket carries several connections, and each message is attributed to the right one.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use f2f_agent::transport::{ChannelConfig, ConnId, Endpoint, TransportEvent};

fn endpoint() -> Endpoint {
    endpoint_with(ChannelConfig::default())
}

fn endpoint_with(config: ChannelConfig) -> Endpoint {
    let local = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    Endpoint::bind(local, config).expect("bind")
}

/// Message `i` from sender `from`: lengths from 1 byte to 200 KiB, content unique to both.
fn message(from: u8, i: usize) -> Vec<u8> {
    let len = 1 + (i * 7919) % (200 * 1024);
    (0..len).map(|j| (i + j * 31) as u8 ^ from).collect()
}

/// Connects `a` to `b` (signalling in-process); the ids on each side.
fn connect(a: &mut Endpoint, b: &mut Endpoint) -> (ConnId, ConnId) {
    let (on_a, offer, pending) = a.offer().expect("offer");
    let (on_b, answer) = b.accept_offer(offer).expect("accept");
    a.accept_answer(on_a, pending, answer).expect("answer");
    (on_a, on_b)
}

/// Drives `ep` until connection `id` is open.
async fn opened(ep: &mut Endpoint, id: ConnId) {
    while ep.next_event().await.expect("event") != TransportEvent::Open(id) {}
}

/// Sends `count` messages on `id` as fast as the send buffer takes them, then keeps the
/// endpoint running (acknowledgements) until `stop` fires.
async fn send_all(
    mut ep: Endpoint,
    id: ConnId,
    from: u8,
    count: usize,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    opened(&mut ep, id).await;
    for i in 0..count {
        while !ep.send(id, &message(from, i)).expect("send") {
            loop {
                if let TransportEvent::Drained(c, _) = ep.next_event().await.expect("event") {
                    if c == id {
                        break;
                    }
                }
            }
        }
    }
    loop {
        tokio::select! {
            _ = &mut stop => return,
            event = ep.next_event() => { event.expect("event"); }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_socket_carries_several_connections_intact() {
    let (mut hub, mut a, mut b) = (endpoint(), endpoint(), endpoint());
    let (from_a, on_hub_a) = connect(&mut a, &mut hub);
    let (from_b, on_hub_b) = connect(&mut b, &mut hub);
    let count = 80;
    let (stop_a, stop_a_rx) = tokio::sync::oneshot::channel();
    let (stop_b, stop_b_rx) = tokio::sync::oneshot::channel();
    let sender_a = tokio::spawn(send_all(a, from_a, 0xa0, count, stop_a_rx));
    let sender_b = tokio::spawn(send_all(b, from_b, 0xb0, count, stop_b_rx));
    let receive = async {
        let (mut next_a, mut next_b) = (0, 0);
        while next_a < count || next_b < count {
            match hub.next_event().await.expect("event") {
                TransportEvent::Message(c, m) if c == on_hub_a => {
                    assert_eq!(m, message(0xa0, next_a), "message {next_a} from a");
                    next_a += 1;
                }
                TransportEvent::Message(c, m) if c == on_hub_b => {
                    assert_eq!(m, message(0xb0, next_b), "message {next_b} from b");
                    next_b += 1;
                }
                TransportEvent::Closed(c) => panic!("connection {c:?} closed"),
                _ => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), receive)
        .await
        .expect("everything arrives within a minute");
    let _ = (stop_a.send(()), stop_b.send(()));
    sender_a.await.expect("sender a");
    sender_b.await.expect("sender b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_connection_is_reported_to_the_peer() {
    let (mut a, mut b) = (endpoint(), endpoint());
    let b_addr = b.socket_addr().expect("bound");
    let (on_a, on_b) = connect(&mut a, &mut b);
    let peer = tokio::spawn(async move {
        opened(&mut b, on_b).await;
        let session = b.session(on_b).expect("open");
        loop {
            if b.next_event().await.expect("event") == TransportEvent::Closed(on_b) {
                return session;
            }
        }
    });
    let mut on_a_session = None;
    let run = async {
        opened(&mut a, on_a).await;
        on_a_session = Some(a.session(on_a).expect("open"));
        a.close(on_a);
        while a.next_event().await.expect("event") != TransportEvent::Closed(on_a) {}
        // Keep the socket answering until the peer noticed.
        while !peer.is_finished() {
            let _ = tokio::time::timeout(Duration::from_millis(5), a.next_event()).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the peer notices within a minute");
    assert!(
        a.send(on_a, b"late").is_err(),
        "a closed connection takes nothing"
    );
    // Both ends name the same two DTLS certificates, crosswise: what a handshake binds to.
    let (sa, sb) = (on_a_session.unwrap(), peer.await.unwrap());
    assert_eq!((sa.local, sa.remote), (sb.remote, sb.local));
    assert_ne!(sa.local, sa.remote);
    assert_eq!(sa.remote_addr, b_addr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_smaller_than_the_low_water_mark_still_drains() {
    // 300 KiB in flight, messages up to 200 KiB: a refused send must still be told when the
    // window has room for it, though the buffered bytes never reach the 768 KiB mark.
    let small = ChannelConfig {
        max_buffered: 300 << 10,
        ..ChannelConfig::default()
    };
    let (mut a, mut b) = (endpoint_with(small), endpoint());
    let (on_a, on_b) = connect(&mut a, &mut b);
    // A message the window can never hold is an error, not a wait that never ends.
    assert!(matches!(
        a.send(on_a, &vec![0; 301 << 10]),
        Err(f2f_agent::transport::TransportError::TooLarge { .. })
    ));
    let count = 40;
    let (stop, stop_rx) = tokio::sync::oneshot::channel();
    let sender = tokio::spawn(send_all(a, on_a, 0x5c, count, stop_rx));
    let receive = async {
        let mut next = 0;
        while next < count {
            if let TransportEvent::Message(c, m) = b.next_event().await.expect("event") {
                assert_eq!((c, m), (on_b, message(0x5c, next)), "message {next}");
                next += 1;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), receive)
        .await
        .expect("everything arrives within a minute");
    let _ = stop.send(());
    sender.await.expect("sender");
}
