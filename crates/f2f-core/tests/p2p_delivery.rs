//! A segment one node fetched from the CDN reaches its neighbours from that peer: their
//! deliveries count only P2P bytes, the bytes are the origin's, and the CDN served it once;
//! each loader heard of the bytes piece by piece (`Output::Progress`).

mod common;

use common::Net;
use f2f_core::config::Config;
use f2f_core::time::Duration;

#[test]
fn segment_fetched_once_reaches_the_others_from_the_peer() {
    let mut net = Net::new(Config::default());
    let first = net.add();
    let others: Vec<_> = (0..3).map(|_| net.add()).collect();
    for &n in &others {
        net.bootstrap(n, &[first]);
    }
    net.run_for(Duration::from_secs(3));
    assert!(
        others
            .iter()
            .all(|&n| net.engine(n).data_neighbours().contains(&net.id(first))),
        "precondition: everyone is linked to the first viewer"
    );

    let seg = net.publish(100, 800_000);
    net.load(first, seg, Duration::from_secs(6));
    assert!(net.run_until(Duration::from_secs(2), |n| {
        !n.nodes[first].delivered.is_empty()
    }));
    net.run_for(Duration::from_millis(100)); // its announcement reaches the neighbours

    let deadline = net.now + Duration::from_secs(6);
    for &n in &others {
        net.load(n, seg, Duration::from_secs(6));
    }
    net.run_for(Duration::from_secs(7));

    let origin = &net.cdn[&seg];
    for &n in &others {
        let [d] = net.nodes[n].delivered.as_slice() else {
            panic!("node {n}: {} deliveries", net.nodes[n].delivered.len());
        };
        assert_eq!(d.sources.cdn, 0, "node {n} used the CDN");
        assert_eq!(d.sources.p2p, origin.len() as u64, "node {n}");
        // Progress reports add up to the peer bytes, piece by piece, before the delivery.
        let progress = &net.nodes[n].progress;
        assert!(progress.len() > 1, "node {n}: one report per piece");
        assert!(progress.iter().all(|(key, _)| *key == seg));
        let reported: u64 = progress.iter().map(|(_, bytes)| bytes).sum();
        assert_eq!(reported, d.sources.p2p, "node {n}: progress");
        assert_eq!(
            &d.data, origin,
            "node {n} got other bytes than the origin's"
        );
        assert!(
            d.at <= deadline,
            "node {n} delivered at {:?}, after the deadline",
            d.at
        );
    }
    let fetched: Vec<_> = net.cdn_log.iter().map(|(ix, ..)| *ix).collect();
    assert_eq!(
        fetched,
        vec![first],
        "only the first viewer fetches from the CDN"
    );
}
