//! A peer that disappears in the middle of a transfer, or drops its data link, does not cost the
//! player its segment: the requester reports `Event::Fallback` with `PeerLost` (and counts it in
//! `Stats::p2p_fallbacks`), keeps the bytes it got, and completes the segment (from another
//! holder or from the CDN at the right offset) intact and before its deadline.

mod common;

use common::{Ix, Net};
use f2f_core::config::Config;
use f2f_core::telemetry::{Event, FallbackReason};
use f2f_core::time::Duration;
use f2f_core::wire::Message;

/// How the uploader goes.
#[derive(Clone, Copy)]
enum Cut {
    /// It crashes: its connections close.
    Crash,
    /// It drops the data link (as a swap or its link upkeep may) and is heard no more.
    LinkDrop,
}

/// `holders` fetch the segment first; `b` then loads it, and whichever holder serves it goes
/// (`cut`) after its first piece arrived.
fn lose_the_uploader(holders: usize, cut: Cut) {
    let mut net = Net::new(Config::default());
    let b = net.add();
    let hs: Vec<Ix> = (0..holders).map(|_| net.add()).collect();
    for &h in &hs {
        net.nodes[h].up_bps = 4e6; // 1 MB takes 2 s
    }
    net.bootstrap(b, &hs);
    net.run_for(Duration::from_secs(3));
    assert_eq!(
        net.engine(b).data_neighbours().len(),
        holders,
        "precondition: b links to all"
    );
    let seg = net.publish(42, 1_000_000);
    for &h in &hs {
        net.load(h, seg, Duration::from_secs(6));
    }
    net.run_for(Duration::from_secs(1));

    let deadline = net.now + Duration::from_secs(6);
    net.load(b, seg, Duration::from_secs(6));
    let uploader = |net: &Net| {
        net.messages()
            .find(|(_, to, m)| *to == b && matches!(m, Message::Piece { .. }))
            .map(|(from, ..)| from)
    };
    assert!(net.run_until(Duration::from_secs(2), |n| uploader(n).is_some()));
    let gone = uploader(&net).expect("checked");
    match cut {
        Cut::Crash => net.crash(gone),
        Cut::LinkDrop => {
            net.send(gone, b, &Message::LinkDrop);
            let (id, within) = (net.id(gone), Duration::from_secs(1));
            let dropped = |n: &Net| !n.engine(b).data_neighbours().contains(&id);
            assert!(net.run_until(within, dropped));
            net.mute(gone, b);
        }
    }
    net.run_for(Duration::from_secs(7));

    let lost = net.nodes[b].events.iter().any(|e| {
        matches!(e, Event::Fallback { key, peer, reason: FallbackReason::PeerLost }
            if *key == seg && *peer == net.id(gone))
    });
    assert!(lost, "no PeerLost fallback: {:?}", net.nodes[b].events);
    assert!(net.engine(b).stats().p2p_fallbacks >= 1);
    let [d] = net.nodes[b].delivered.as_slice() else {
        panic!("b got no delivery")
    };
    assert!(
        d.at <= deadline,
        "delivered {:?} after the deadline",
        d.at - deadline
    );
    assert_eq!(d.data, net.cdn[&seg], "the bytes are the origin's");
    assert_eq!(
        d.sources.p2p + d.sources.cdn,
        1_000_000,
        "no byte fetched twice: {:?}",
        d.sources
    );
    if let Some(&(_, _, offset)) = net.cdn_log.iter().find(|(n, ..)| *n == b) {
        assert!(
            offset > 0,
            "the CDN fetch resumes after the bytes already received"
        );
    }
}

#[test]
fn uploader_lost_mid_transfer_cdn_completes_the_segment() {
    lose_the_uploader(1, Cut::Crash);
}

#[test]
fn link_dropped_mid_transfer_cdn_completes_the_segment() {
    lose_the_uploader(1, Cut::LinkDrop);
}

#[test]
fn uploader_lost_mid_transfer_with_another_holder() {
    lose_the_uploader(2, Cut::Crash);
}

#[test]
fn link_dropped_mid_transfer_with_another_holder() {
    lose_the_uploader(2, Cut::LinkDrop);
}
