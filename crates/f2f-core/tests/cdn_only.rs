//! `SourcePreference::CdnOnly`: the node never asks a peer for a segment and every delivery is
//! CDN bytes, even when linked neighbours hold the segment — while it still serves what it holds
//! to peers that do use the swarm (so the same network demonstrably goes P2P).

mod common;

use std::sync::Arc;

use common::Net;
use f2f_core::config::{Config, SourcePreference};
use f2f_core::time::Duration;
use f2f_core::wire::Message;

#[test]
fn cdn_only_nodes_never_request_and_deliver_only_cdn_bytes() {
    let mut net = Net::new(Config::default());
    let mut cdn_only = Config::default();
    cdn_only.scheduler.source = SourcePreference::CdnOnly;
    let cdn_only = Arc::new(cdn_only);
    let a = net.add_with(cdn_only.clone());
    let b = net.add_with(cdn_only);
    let auto = net.add();
    net.bootstrap(b, &[a]);
    net.bootstrap(auto, &[a, b]);
    net.run_for(Duration::from_secs(3));
    assert!(
        net.engine(b).data_neighbours().contains(&net.id(a)),
        "precondition: the CDN-only nodes are linked"
    );

    let segs: Vec<_> = (0..3).map(|i| net.publish(10 + i, 300_000)).collect();
    for &seg in &segs {
        // `a` first, then (holding announcements in hand) `b`, then the swarm viewer.
        for n in [a, b, auto] {
            net.load(n, seg, Duration::from_secs(6));
            net.run_for(Duration::from_millis(500));
        }
        net.run_for(Duration::from_secs(1));
    }

    for n in [a, b] {
        let requests: Vec<_> = net
            .messages()
            .filter(|(from, _, m)| *from == n && matches!(m, Message::Request { .. }))
            .collect();
        assert!(requests.is_empty(), "CDN-only node {n} sent {requests:?}");
        assert_eq!(net.nodes[n].delivered.len(), segs.len(), "node {n}");
        for d in &net.nodes[n].delivered {
            assert_eq!(d.sources.p2p, 0, "node {n} took P2P bytes for {}", d.key);
            assert_eq!(d.sources.cdn, net.cdn[&d.key].len() as u64);
            assert_eq!(d.data, net.cdn[&d.key]);
        }
    }
    let swarm_bytes: u64 = net.nodes[auto]
        .delivered
        .iter()
        .map(|d| d.sources.p2p)
        .sum();
    assert!(
        swarm_bytes > 0,
        "the Auto viewer was served by the CDN-only nodes"
    );
}
