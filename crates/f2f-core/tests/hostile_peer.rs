//! Hostile input from one peer — garbage bytes, a truncated frame, a frame before the handshake,
//! a handshake for another swarm or naming another peer, an oversized piece — gets that peer
//! disconnected with an `Event::PeerMisbehaved` that says what it did. The engine never panics
//! and goes on serving its other neighbours.

mod common;

use bytes::Bytes;
use common::{Ix, Net, key};
use f2f_core::config::Config;
use f2f_core::id::{PeerId, SwarmId};
use f2f_core::telemetry::Event;
use f2f_core::time::Duration;
use f2f_core::wire::{self, Frame, Handshake, Message, PROTOCOL_VERSION};

/// A scripted peer `x` connects to `a` and runs `script`; `a` must refuse it with one error
/// saying `expect`, and still serve its honest neighbour `b` afterwards.
fn refuses(expect: &str, script: impl FnOnce(&mut Net, Ix, Ix)) {
    let mut net = Net::new(Config::default());
    let (a, b) = (net.add(), net.add());
    net.bootstrap(b, &[a]);
    net.run_for(Duration::from_secs(3));
    let seg = net.publish(7, 500_000);
    net.load(a, seg, Duration::from_secs(6));
    net.run_for(Duration::from_secs(1));

    let x = net.add_scripted();
    net.connect(x, a);
    net.run_for(Duration::from_millis(100));
    script(&mut net, x, a);
    net.run_for(Duration::from_millis(500));
    let errors: Vec<(PeerId, &String)> = (net.nodes[a].events.iter())
        .filter_map(|e| match e {
            Event::PeerMisbehaved { peer, error } => Some((*peer, error)),
            _ => None,
        })
        .collect();
    let [(peer, error)] = errors.as_slice() else {
        panic!("expected one PeerMisbehaved saying {expect:?}, got {errors:?}");
    };
    assert_eq!(*peer, net.id(x), "the honest neighbour was blamed");
    assert!(error.contains(expect), "{error:?} does not say {expect:?}");
    assert!(net.nodes[a].disconnects.contains(&net.id(x)));
    assert!(
        !net.is_connected(a, x),
        "the hostile peer is still connected"
    );

    let honest = net.engine(a).data_neighbours();
    assert!(honest.contains(&net.id(b)), "the honest link survives");
    net.load(b, seg, Duration::from_secs(6));
    net.run_for(Duration::from_secs(3));
    let [d] = net.nodes[b].delivered.as_slice() else {
        panic!("b got no delivery")
    };
    assert_eq!(d.sources.p2p, 500_000, "b is still served by a");
    assert_eq!(d.data, net.cdn[&seg]);
}

fn raw(bytes: &'static [u8]) -> Frame {
    Frame::from_bytes(Bytes::from_static(bytes))
}

fn handshake(swarm: SwarmId, peer: PeerId) -> Message {
    let version = PROTOCOL_VERSION;
    Message::Handshake(Handshake {
        version,
        swarm,
        peer,
        upload_kbps: 0,
    })
}

fn request() -> Message {
    Message::Request {
        key: key(7),
        offset: 0,
        end: None,
    }
}

/// A piece of `len` bytes at offset 0 of a segment of `total` bytes.
fn piece(len: usize, total: u64) -> Message {
    let data = Bytes::from(vec![0; len]);
    let (key, offset) = (key(8), 0);
    Message::Piece {
        key,
        offset,
        total,
        data,
    }
}

#[test]
fn garbage_bytes() {
    let http = raw(b"GET / HTTP/1.1\r\n\r\n");
    refuses("unsupported protocol version", |net, x, a| {
        net.send_frame(x, a, http)
    });
    refuses("unknown message kind", |net, x, a| {
        net.send_frame(x, a, raw(&[PROTOCOL_VERSION, 0xee, 0, 0, 0, 0]))
    });
    refuses("unsupported protocol version", |net, x, a| {
        net.hello(x, a);
        net.send_frame(x, a, Frame::from_bytes(Bytes::from(vec![0xa5; 4096])));
    });
}

#[test]
fn truncated_frame() {
    refuses("header declares", |net, x, a| {
        net.hello(x, a);
        let whole = wire::encode(&request()).to_bytes();
        net.send_frame(x, a, Frame::from_bytes(whole.slice(..whole.len() - 3)));
    });
    refuses("truncated header", |net, x, a| {
        net.send_frame(x, a, raw(&[PROTOCOL_VERSION, 0]))
    });
}

#[test]
fn frame_before_the_handshake() {
    refuses("before handshake", |net, x, a| net.send(x, a, &request()));
}

#[test]
fn handshake_for_another_swarm() {
    let elsewhere = SwarmId::from_canonical("cdn.test/live/ch2/master.m3u8");
    refuses("another swarm", |net, x, a| {
        net.send(x, a, &handshake(elsewhere, net.id(x)))
    });
}

#[test]
fn handshake_naming_another_peer() {
    // The hostile peer claims to be `a`'s honest neighbour `b`.
    refuses("another peer", |net, x, a| {
        let b = a + 1;
        net.send(x, a, &handshake(common::swarm(), net.id(b)))
    });
}

#[test]
fn second_handshake() {
    refuses("second handshake", |net, x, a| {
        net.hello(x, a);
        net.hello(x, a);
    });
}

#[test]
fn oversized_piece() {
    refuses(
        "piece payload of 307200 bytes exceeds the limit",
        |net, x, a| {
            net.hello(x, a);
            net.send(x, a, &piece(300 * 1024, 300 * 1024));
        },
    );
    refuses("larger than the configured maximum", |net, x, a| {
        net.hello(x, a);
        net.send(x, a, &piece(1024, 1 << 40));
    });
}
