//! `Output::Deliver` says where the segment's bytes came from: its `sources` add up to the bytes
//! delivered — also when the engine fetched the segment before the player asked for it (a
//! prefetch on a neighbour's announcement) and hands it over from its store.

mod common;

use common::Net;
use f2f_core::config::Config;
use f2f_core::time::Duration;

#[test]
fn a_live_delivery_accounts_for_its_bytes() {
    let mut net = Net::new(Config::default());
    let (a, b) = (net.add(), net.add());
    net.bootstrap(b, &[a]);
    net.run_for(Duration::from_secs(3));
    let seg = net.publish(10, 300_000);
    net.load(a, seg, Duration::from_secs(6));
    net.run_for(Duration::from_millis(500));
    net.load(b, seg, Duration::from_secs(6));
    net.run_for(Duration::from_secs(2));
    let [d] = net.nodes[b].delivered.as_slice() else {
        panic!("b got no delivery")
    };
    assert_eq!(d.sources.p2p + d.sources.cdn, 300_000, "{:?}", d.sources);
}

#[test]
fn a_prefetched_delivery_accounts_for_its_bytes() {
    let mut net = Net::new(Config::default());
    let (a, b) = (net.add(), net.add());
    net.bootstrap(b, &[a]);
    net.run_for(Duration::from_secs(3));
    // Both play segment 10, `b` listing it first: `a`'s announcement of it then shows `b` that
    // its keys match the swarm's.
    let first = net.publish(10, 300_000);
    net.load(b, first, Duration::from_secs(6));
    net.run_for(Duration::from_millis(10));
    net.load(a, first, Duration::from_secs(6));
    net.run_for(Duration::from_secs(2));
    // `a` announces segment 11 before `b`'s playlist lists it: `b` asks its driver for the
    // segment's signed hash (peer bytes are only taken once they can be checked) and fetches it
    // from `a` at once.
    let next = net.publish(11, 300_000);
    net.load(a, next, Duration::from_secs(6));
    net.run_for(Duration::from_secs(2));
    assert!(
        net.nodes[b].delivered.iter().all(|d| d.key != next),
        "not asked for yet"
    );
    let p2p = net.engine(b).stats().p2p_bytes;
    assert!(
        p2p >= 300_000,
        "precondition: b prefetched it ({p2p} bytes from peers)"
    );

    net.load(b, next, Duration::from_secs(6));
    let d = net.nodes[b].delivered.iter().find(|d| d.key == next);
    let d = d.expect("delivered at once from the store");
    assert_eq!(d.data, net.cdn[&next]);
    assert_eq!(d.sources.p2p + d.sources.cdn, 300_000, "{:?}", d.sources);
}
