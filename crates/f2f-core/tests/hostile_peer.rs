//! Hostile input from one peer — garbage bytes, a truncated frame, a frame before the handshake,
//! a handshake for another swarm, a forged, expired, wrong-swarm or borrowed certificate, a
//! replayed or forged handshake proof, an oversized piece, an unaligned request — gets that peer
//! disconnected with an `Event::PeerMisbehaved` that says what it did. The engine never panics
//! and goes on serving its other neighbours. A peer whose bytes fail verification is also
//! banned, and the segment still reaches the player intact.

mod common;

use bytes::Bytes;
use common::{CERT_LIFETIME, Ix, Net, UNIX_BASE, certify, crypto, key, swarm};
use f2f_core::config::Config;
use f2f_core::id::{PeerId, SwarmId};
use f2f_core::identity::{
    Authority, Certificate, Keypair, Scope, SessionId, Signature, UnixTime, prove_possession,
};
use f2f_core::integrity::{GROUP_BYTES, Outboard};
use f2f_core::telemetry::Event;
use f2f_core::time::Duration;
use f2f_core::wire::{self, Frame, Message, PROTOCOL_VERSION, RequestId};

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

/// `x`'s handshake to `a`, presenting `cert` and changed by `edit`.
fn hello_with(net: &mut Net, x: Ix, a: Ix, cert: Certificate, edit: impl FnOnce(&mut Message)) {
    let mut msg = net.handshake(x, a, cert);
    edit(&mut msg);
    net.send(x, a, &msg);
}

fn request() -> Message {
    Message::Request {
        id: RequestId(0),
        key: key(7),
        offset: 0,
        end: None,
    }
}

/// A piece of `len` bytes at offset 0 of a segment of `total` bytes.
fn piece(len: usize, total: u64) -> Message {
    let data = Bytes::from(vec![0; len]);
    let (key, offset) = (key(8), 0);
    let end = (len as u64).min(total);
    Message::Piece {
        id: RequestId(0),
        key,
        offset,
        end,
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
    refuses("handshake for another swarm", |net, x, a| {
        let cert = net.certs[x].clone();
        hello_with(net, x, a, cert, |m| {
            if let Message::Handshake(h) = m {
                h.swarm = elsewhere;
            }
        });
    });
}

#[test]
fn handshake_with_another_peers_certificate() {
    // The hostile peer presents the certificate of `a`'s honest neighbour `b`.
    refuses("does not match the connected peer id", |net, x, a| {
        let cert = net.certs[a + 1].clone();
        hello_with(net, x, a, cert, |_| {});
    });
}

#[test]
fn certificate_from_another_authority() {
    refuses("certificate not signed by the authority", |net, x, a| {
        // A self-made authority vouches for the hostile peer's real key.
        let rogue = Authority::new(Keypair::from_entropy(&[0x66; 32]));
        let crypto = crypto();
        let key = net.keys[x].clone();
        let proof = prove_possession(crypto.as_ref(), &key);
        let scope = Scope::Swarm(swarm());
        let until = UnixTime(UNIX_BASE + CERT_LIFETIME);
        let forged = rogue
            .issue(
                crypto.as_ref(),
                &key.public(),
                &proof,
                scope,
                SessionId([1; 16]),
                until,
            )
            .expect("possession proved");
        hello_with(net, x, a, forged, |_| {});
    });
}

#[test]
fn certificate_with_a_changed_expiry() {
    refuses("certificate not signed by the authority", |net, x, a| {
        let mut cert = net.certs[x].clone();
        cert.not_after = UnixTime(cert.not_after.0 + 365 * 24 * 3600);
        hello_with(net, x, a, cert, |_| {});
    });
}

#[test]
fn expired_certificate() {
    refuses("certificate expired", |net, x, a| {
        let cert = certify(&net.keys[x], Scope::Swarm(swarm()), UNIX_BASE + 1);
        hello_with(net, x, a, cert, |_| {});
    });
}

#[test]
fn certificate_for_another_swarm() {
    refuses("certificate is for another swarm", |net, x, a| {
        let elsewhere = SwarmId::from_canonical("cdn.test/live/ch2/master.m3u8");
        let cert = certify(
            &net.keys[x],
            Scope::Swarm(elsewhere),
            UNIX_BASE + CERT_LIFETIME,
        );
        hello_with(net, x, a, cert, |_| {});
    });
}

#[test]
fn replayed_handshake_proof() {
    refuses("handshake proof refused", |net, x, a| {
        let cert = net.certs[x].clone();
        hello_with(net, x, a, cert.clone(), |_| {});
        let recorded = net.proof(x, a);
        // A new connection has other nonces and other transport fingerprints: the proof made
        // for the old one is worthless on it.
        net.disconnect(x, a);
        net.run_for(Duration::from_millis(100));
        net.connect(x, a);
        net.run_for(Duration::from_millis(100));
        hello_with(net, x, a, cert, |_| {});
        net.send(x, a, &recorded);
    });
}

#[test]
fn tampered_handshake_proof() {
    refuses("handshake proof refused", |net, x, a| {
        let cert = net.certs[x].clone();
        hello_with(net, x, a, cert, |_| {});
        let Message::Proof { signature } = net.proof(x, a) else {
            unreachable!("proof() makes proofs")
        };
        let mut bytes = *signature.as_bytes();
        bytes[10] ^= 1;
        let tampered = Signature::from_bytes(bytes);
        net.send(
            x,
            a,
            &Message::Proof {
                signature: tampered,
            },
        );
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

#[test]
fn unaligned_request() {
    refuses("request not aligned to chunk groups", |net, x, a| {
        net.hello(x, a);
        let key = key(7);
        net.send(
            x,
            a,
            &Message::Request {
                id: RequestId(0),
                key,
                offset: 1000,
                end: None,
            },
        );
    });
}

#[test]
fn a_peer_sending_corrupt_bytes_is_banned_and_the_segment_still_arrives_intact() {
    let mut net = Net::new(Config::default());
    let a = net.add();
    let x = net.linked_scripted(a);
    net.run_for(Duration::from_secs(1));
    let seg = net.publish(7, 300_000);
    let have = Message::Have {
        load: 0,
        upload_kbps: 50_000,
        partial: false,
        keys: vec![seg],
    };
    net.send(x, a, &have);
    net.run_for(Duration::from_millis(100));
    net.load(a, seg, Duration::from_secs(6));
    net.run_for(Duration::from_millis(100));
    let asked = net.messages().find_map(|(from, to, m)| match m {
        Message::Request {
            id, key, offset, ..
        } if (from, to) == (a, x) && *key == seg => Some((*id, *offset)),
        _ => None,
    });
    let (id, offset) = asked.expect("a asks the only holder");

    // One flipped bit in the first chunk group of an otherwise honest piece.
    let content = net.cdn[&seg].clone();
    let end = offset + 4 * GROUP_BYTES;
    let tree = Outboard::from_data(&content);
    let range = content.slice(offset as usize..end as usize);
    let mut data = tree.encode(offset, &range).expect("aligned").to_vec();
    data[200] ^= 1;
    let piece = Message::Piece {
        id,
        key: seg,
        offset,
        end,
        total: content.len() as u64,
        data: Bytes::from(data),
    };
    net.send(x, a, &piece);
    net.run_for(Duration::from_secs(3));

    let banned = net.nodes[a].events.iter().any(
        |e| matches!(e, Event::PeerBanned { peer, key, .. } if *peer == net.id(x) && *key == seg),
    );
    assert!(banned, "{:?}", net.nodes[a].events);
    assert!(!net.is_connected(a, x));
    let [d] = net.nodes[a].delivered.as_slice() else {
        panic!("the segment was not delivered")
    };
    assert_eq!(d.data, content, "only verified bytes reach the player");
    assert_eq!(d.sources.p2p, 0);
    assert_eq!(net.engine(a).stats().corrupt_pieces, 1);

    // The banned peer cannot come back this session.
    net.connect(x, a);
    net.run_for(Duration::from_millis(300));
    assert!(!net.is_connected(a, x), "a banned peer was let back in");
}
