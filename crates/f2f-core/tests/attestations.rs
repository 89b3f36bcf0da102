//! Streams whose origin signs nothing: peers trust a segment's hash once a quorum of distinct
//! certified peers that downloaded it from the CDN attest it. Fewer colluders than the quorum
//! cannot make anyone take their bytes; a false quorum is caught by CDN spot checks and its
//! attesters are banned.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::{Ix, Net};
use f2f_core::config::{Config, HashSource, SourcePreference};
use f2f_core::id::SegmentKey;
use f2f_core::integrity::{Attestation, GROUP_BYTES, Outboard, SegmentHash};
use f2f_core::telemetry::Event;
use f2f_core::time::Duration;
use f2f_core::wire::{Message, RequestId};

/// A viewer that is never a first fetcher: it waits for the swarm's copy until its deadline
/// is near, so whether it asks peers depends on the hash alone.
fn attested(quorum: usize, spot_check: f64) -> Config {
    let mut config = Config {
        hashes: HashSource::Attested { quorum, spot_check },
        ..Config::default()
    };
    config.scheduler.source = SourcePreference::P2pPreferred;
    config
}

fn cdn_only(config: &Config) -> Arc<Config> {
    let mut c = config.clone();
    c.scheduler.source = SourcePreference::CdnOnly;
    Arc::new(c)
}

/// `fetchers` nodes download the segment from the CDN; `c`, linked to all of them, loads it
/// with a long deadline once they hold it.
fn spread(quorum: usize, fetchers: usize) -> (Net, Ix, Bytes) {
    let config = attested(quorum, 0.0);
    let mut net = Net::new(config.clone());
    let c = net.add();
    let fs: Vec<Ix> = (0..fetchers)
        .map(|_| net.add_with(cdn_only(&config)))
        .collect();
    net.bootstrap(c, &fs);
    net.run_for(Duration::from_secs(3));
    assert_eq!(net.engine(c).data_neighbours().len(), fetchers);
    let seg = net.publish(9, 200_000);
    for &f in &fs {
        net.load_unhashed(f, seg, Duration::from_secs(4));
    }
    net.run_for(Duration::from_millis(500));
    net.load_unhashed(c, seg, Duration::from_secs(4));
    net.run_for(Duration::from_secs(5));
    let content = net.cdn[&seg].clone();
    (net, c, content)
}

#[test]
fn a_segment_spreads_once_a_quorum_attests_its_hash() {
    let (net, c, content) = spread(2, 2);
    let [d] = net.nodes[c].delivered.as_slice() else {
        panic!("nothing delivered")
    };
    assert_eq!(d.data, content);
    assert_eq!(
        d.sources.cdn, 0,
        "taken from the attesters: {:?}",
        d.sources
    );
    assert!(net.engine(c).stats().attestations_checked >= 1);
}

#[test]
fn without_a_quorum_no_peer_is_asked() {
    let (net, c, content) = spread(3, 2);
    let asked = net
        .messages()
        .any(|(from, _, m)| from == c && matches!(m, Message::Request { .. }));
    assert!(
        !asked,
        "c asked a peer before a quorum vouched for the hash"
    );
    let [d] = net.nodes[c].delivered.as_slice() else {
        panic!("nothing delivered")
    };
    assert_eq!((d.data.clone(), d.sources.p2p), (content, 0));
}

/// Scripted node `x`'s real signature that segment `seg` is `content`.
fn attest_as(net: &Net, x: Ix, seg: SegmentKey, content: &[u8]) -> Attestation {
    let (hash, size) = (SegmentHash::of(content), content.len() as u64);
    let crypto = common::crypto();
    Attestation::sign(
        crypto.as_ref(),
        &net.keys[x],
        &net.certs[x],
        seg,
        hash,
        size,
    )
}

/// Scripted colluders `xs` attest `fake` as segment 9's content (each signature real, each
/// certificate valid) and announce it to `c`.
fn collude(net: &mut Net, c: Ix, xs: &[Ix], fake: &Bytes) -> SegmentKey {
    let seg = common::key(9);
    let parts: Vec<Attestation> = xs.iter().map(|&x| attest_as(net, x, seg, fake)).collect();
    let att = Attestation::join(common::crypto().as_ref(), &parts.iter().collect::<Vec<_>>())
        .expect("well-formed");
    for &x in xs {
        net.send(x, c, &Message::Attest(Box::new(att.clone())));
        let have = Message::Have {
            load: 0,
            upload_kbps: 50_000,
            partial: false,
            keys: vec![seg],
        };
        net.send(x, c, &have);
    }
    seg
}

fn fake_content(len: usize) -> Bytes {
    (0..len).map(|i| (i % 253) as u8).collect()
}

#[test]
fn colluders_one_short_of_the_quorum_cannot_make_a_peer_take_their_bytes() {
    let mut net = Net::new(attested(3, 0.0));
    let c = net.add();
    let xs = [net.linked_scripted(c), net.linked_scripted(c)];
    net.run_for(Duration::from_secs(1));
    let seg = net.publish(9, 200_000);
    let fake = fake_content(200_000);
    collude(&mut net, c, &xs, &fake);
    net.load_unhashed(c, seg, Duration::from_secs(3));
    net.run_for(Duration::from_secs(4));

    let asked = net
        .messages()
        .any(|(from, to, m)| from == c && xs.contains(&to) && matches!(m, Message::Request { .. }));
    assert!(!asked, "c asked a colluder for the segment");
    let [d] = net.nodes[c].delivered.as_slice() else {
        panic!("nothing delivered")
    };
    assert_eq!(d.data, net.cdn[&seg], "the player got the origin's bytes");
    assert_eq!(net.engine(c).stats().attestations_checked, 1);
}

#[test]
fn a_spot_check_catches_a_false_quorum_and_bans_its_attesters() {
    let mut net = Net::new(attested(2, 1.0));
    let c = net.add();
    let xs = [net.linked_scripted(c), net.linked_scripted(c)];
    net.run_for(Duration::from_secs(1));
    let seg = net.publish(9, 4 * GROUP_BYTES as usize);
    let fake = fake_content(4 * GROUP_BYTES as usize);
    collude(&mut net, c, &xs, &fake);
    net.load_unhashed(c, seg, Duration::from_secs(3));
    net.run_for(Duration::from_millis(100));

    // The colluders serve what they attested: bytes that verify against their hash.
    let requests: Vec<(Ix, RequestId, u64, Option<u64>)> = net
        .messages()
        .filter_map(|(from, to, m)| match m {
            Message::Request {
                id,
                key,
                offset,
                end,
            } if from == c && *key == seg => Some((to, *id, *offset, *end)),
            _ => None,
        })
        .collect();
    assert!(!requests.is_empty(), "a quorum of two vouched for the hash");
    let tree = Outboard::from_data(&fake);
    for (x, id, offset, end) in requests {
        let end = end.unwrap_or(fake.len() as u64);
        let range = fake.slice(offset as usize..end as usize);
        let piece = Message::Piece {
            id,
            key: seg,
            offset,
            end,
            total: fake.len() as u64,
            data: tree.encode(offset, &range).expect("aligned"),
        };
        net.send(x, c, &piece);
    }
    net.run_for(Duration::from_secs(2));

    // A quorum of liars does fool the player once (the trust the quorum stands for) ...
    assert_eq!(net.nodes[c].delivered.len(), 1);
    // ... but the spot check against the CDN exposes it.
    let caught = net.nodes[c].events.iter().find_map(|e| match e {
        Event::FalseAttestation { key, signers } if *key == seg => Some(signers.clone()),
        _ => None,
    });
    let mut caught = caught.expect("the spot check found the false hash");
    caught.sort();
    let mut liars: Vec<_> = xs.iter().map(|&x| net.id(x)).collect();
    liars.sort();
    assert_eq!(caught, liars);
    assert_eq!(net.engine(c).stats().false_attesters, 2);
    assert!(xs.iter().all(|&x| !net.is_connected(c, x)));
    // The false copy is not served on.
    net.connect(xs[0], c);
    net.run_for(Duration::from_millis(300));
    assert!(!net.is_connected(c, xs[0]), "a banned attester came back");
}

#[test]
fn a_signer_behind_two_hashes_for_one_segment_is_banned() {
    let mut net = Net::new(attested(3, 0.0));
    let c = net.add();
    let x = net.linked_scripted(c);
    net.run_for(Duration::from_secs(1));
    let seg = net.publish(9, 100_000);
    net.load_unhashed(c, seg, Duration::from_secs(3));
    for fill in [1u8, 2] {
        let att = attest_as(&net, x, seg, &vec![fill; 100_000]);
        net.send(x, c, &Message::Attest(Box::new(att)));
    }
    net.run_for(Duration::from_millis(200));
    let caught = net.nodes[c].events.iter().any(|e| {
        matches!(e, Event::FalseAttestation { key, signers } if *key == seg && signers == &[net.id(x)])
    });
    assert!(caught, "{:?}", net.nodes[c].events);
    assert!(!net.is_connected(c, x), "the equivocator was let go");
}
