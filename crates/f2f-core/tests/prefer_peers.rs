//! `Input::PreferPeers`: a lone viewer of a new swarm is its own first fetcher and fetches a
//! new segment from the CDN at once; with the request marked P2P-preferred it waits for peers
//! and turns to the CDN only when the deadline demands, still delivering in time.

mod common;

use common::Net;
use f2f_core::config::Config;
use f2f_core::engine::Input;
use f2f_core::time::Duration;

/// When the lone node's CDN fetch of a segment due in 6 s starts, and when it delivers.
fn lone_viewer(prefer_peers: bool) -> (Duration, Duration) {
    let mut net = Net::new(Config::default());
    let a = net.add();
    net.run_for(Duration::from_secs(1));
    let seg = net.publish(1, 200_000);
    let start = net.now;
    net.give_hash(a, seg);
    if prefer_peers {
        net.input(a, Input::PreferPeers(seg));
    }
    net.input(a, Input::Listed(common::listed(seg, true)));
    let deadline = net.at() + Duration::from_secs(6);
    net.input(a, Input::Load { key: seg, deadline });
    let mut fetched = None;
    while net.now < start + Duration::from_secs(8) {
        net.run_for(Duration::from_millis(50));
        if fetched.is_none() && !net.cdn_log.is_empty() {
            fetched = Some(net.now - start);
        }
    }
    let delivered = net.nodes[a].delivered.first().expect("delivered").at - start;
    (fetched.expect("fetched from the CDN"), delivered)
}

#[test]
fn a_peer_preferring_request_waits_for_peers_but_never_misses_its_deadline() {
    let (auto_fetch, auto_delivered) = lone_viewer(false);
    let (preferring_fetch, preferring_delivered) = lone_viewer(true);
    assert!(
        auto_fetch <= Duration::from_millis(100),
        "first fetcher at once: {auto_fetch:?}"
    );
    assert!(
        preferring_fetch >= Duration::from_secs(3),
        "waited for peers: fetched at {preferring_fetch:?}"
    );
    assert!(auto_delivered < Duration::from_secs(1));
    assert!(
        preferring_delivered <= Duration::from_secs(6),
        "in time: {preferring_delivered:?}"
    );
}
