//! Personal segments (`SegmentInfo { shareable: false }`, e.g. SSAI ads) always come from the CDN
//! and never leave the device: no node announces them (`Have`, `Bitmap`), serves them (`Piece`)
//! or asks a peer for them, and a peer that asks anyway hears `Absent { NotHeld }`.

mod common;

use common::{Ix, Net};
use f2f_core::config::Config;
use f2f_core::engine::Input;
use f2f_core::id::{SegmentKey, SegmentPosition};
use f2f_core::time::Duration;
use f2f_core::wire::{AbsentReason, Message, RequestId};

/// A message in a line, without segment bytes.
fn brief(msg: &Message) -> String {
    match msg {
        Message::Piece {
            key, offset, data, ..
        } => {
            format!("Piece {{ {key}, offset: {offset}, len: {} }}", data.len())
        }
        other => format!("{other:?}"),
    }
}

/// Segments a message announces, serves or asks for.
fn keys_in(msg: &Message) -> Vec<SegmentKey> {
    match msg {
        Message::Have { keys, .. } => keys.clone(),
        Message::Request { key, .. } | Message::Piece { key, .. } => vec![*key],
        Message::Bitmap {
            swarm,
            rendition,
            base,
            bits,
            variants,
        } => {
            let set =
                (0..bits.len() as u64 * 8).filter(|i| bits[*i as usize / 8] & (1 << (i % 8)) != 0);
            set.zip(variants)
                .map(|(i, &variant)| SegmentKey {
                    swarm: *swarm,
                    rendition: *rendition,
                    position: SegmentPosition::Sequence(base + i),
                    variant,
                })
                .collect()
        }
        _ => Vec::new(),
    }
}

/// Two engines and a scripted peer linked to the first; the first holds an ad and a shared
/// segment; the second plays both after the first announced what it holds.
fn swarm_with_an_ad(reload_ad: bool) -> (Net, [Ix; 3], SegmentKey, SegmentKey) {
    let mut net = Net::new(Config::default());
    let (a, b) = (net.add(), net.add());
    net.bootstrap(b, &[a]);
    let spy = net.linked_scripted(a);
    net.run_for(Duration::from_secs(3));

    let ad = net.publish(500, 200_000);
    let shared = net.publish(501, 200_000);
    for n in [a, b] {
        net.input(n, Input::Listed(common::listed(ad, false)));
        let deadline = net.at() + Duration::from_secs(6);
        net.input(n, Input::Load { key: ad, deadline });
        net.load(n, shared, Duration::from_secs(6));
        net.run_for(Duration::from_secs(2));
        if reload_ad {
            // The player asks for the ad again (a seek back, a second player on the same agent).
            let deadline = net.at() + Duration::from_secs(6);
            net.input(n, Input::Load { key: ad, deadline });
            net.run_for(Duration::from_secs(2));
        }
    }
    net.send(
        spy,
        a,
        &Message::Request {
            id: RequestId(0),
            key: ad,
            offset: 0,
            end: None,
        },
    );
    net.run_for(Duration::from_secs(2));
    (net, [a, b, spy], ad, shared)
}

fn assert_ad_stays_personal(reload_ad: bool) {
    let (net, [a, b, spy], ad, shared) = swarm_with_an_ad(reload_ad);
    let leaks: Vec<_> = net
        .messages()
        .filter(|(from, _, m)| *from != spy && keys_in(m).contains(&ad))
        .map(|(from, to, m)| format!("{from} -> {to}: {}", brief(m)))
        .collect();
    assert!(leaks.is_empty(), "the ad left a device: {leaks:?}");
    let answer = net.messages().find_map(|(from, to, m)| match m {
        Message::Absent { key, reason, .. } if (from, to) == (a, spy) && *key == ad => {
            Some(*reason)
        }
        _ => None,
    });
    let answer = answer.expect("a peer asking for the ad gets an answer");
    assert_eq!(answer, AbsentReason::NotHeld, "the ad is not served");
    for n in [a, b] {
        let ads: Vec<_> = net.nodes[n]
            .delivered
            .iter()
            .filter(|d| d.key == ad)
            .collect();
        assert_eq!(ads.len(), if reload_ad { 2 } else { 1 }, "node {n}");
        for d in ads {
            assert_eq!((d.sources.cdn, d.sources.p2p), (200_000, 0), "node {n}");
            assert_eq!(d.data, net.cdn[&ad]);
        }
    }
    let announced = net
        .messages()
        .any(|(from, to, m)| (from, to) == (a, b) && keys_in(m).contains(&shared));
    assert!(
        announced,
        "the shared segment next to it is announced (the check is not vacuous)"
    );
    let delivered = &net.nodes[b].delivered;
    let from_a = delivered
        .iter()
        .any(|d| d.key == shared && d.sources.p2p > 0);
    assert!(from_a, "the shared segment is served by a");
}

#[test]
fn ads_come_from_the_cdn_and_are_never_announced_or_served() {
    assert_ad_stays_personal(false);
}

#[test]
fn an_ad_loaded_again_stays_personal() {
    assert_ad_stays_personal(true);
}
