//! Membership through the engine: 30 viewers joining one after another, each bootstrapped with
//! two entry peers, all end up with overlay and data neighbours, within the configured bounds,
//! and the overlay is one connected graph (nobody is partitioned off).

mod common;

use std::collections::BTreeSet;

use common::{Ix, Net};
use f2f_core::config::Config;
use f2f_core::time::Duration;
use rand::SeedableRng;
use rand::seq::IndexedRandom;
use rand_chacha::ChaCha8Rng;

const VIEWERS: usize = 30;

fn reachable_from_first(net: &Net, edges: impl Fn(Ix) -> Vec<Ix>) -> BTreeSet<Ix> {
    let mut seen = BTreeSet::from([0]);
    let mut todo = vec![0];
    while let Some(n) = todo.pop() {
        // Views need not be symmetric at any instant: follow links both ways.
        let out = edges(n).into_iter();
        let back = (0..net.nodes.len()).filter(|&m| edges(m).contains(&n));
        for m in out.chain(back).collect::<Vec<_>>() {
            if seen.insert(m) {
                todo.push(m);
            }
        }
    }
    seen
}

#[test]
fn thirty_viewers_bootstrapped_with_two_entry_peers_all_get_neighbours() {
    let mut net = Net::new(Config::default());
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for i in 0..VIEWERS {
        let n = net.add();
        let earlier: Vec<Ix> = (0..i).collect();
        let entries: Vec<Ix> = earlier.choose_multiple(&mut rng, 2).copied().collect();
        if !entries.is_empty() {
            net.bootstrap(n, &entries);
        }
        net.run_for(Duration::from_millis(200));
    }
    let isolated: Vec<usize> = net.nodes.iter().map(|n| n.need_bootstrap).collect();
    net.run_for(Duration::from_secs(20));

    let cfg = net.config.clone();
    for (n, isolated) in isolated.into_iter().enumerate() {
        let e = net.engine(n);
        let (overlay, data) = (e.overlay_neighbours().len(), e.data_neighbours().len());
        assert!(overlay >= 1, "node {n} has no overlay neighbour");
        assert!(
            overlay <= cfg.membership.active_view,
            "node {n}: {overlay} overlay neighbours"
        );
        assert!(data >= 1, "node {n} has no data neighbour");
        assert!(
            data <= cfg.links.max_degree,
            "node {n}: {data} data neighbours"
        );
        let again = net.nodes[n].need_bootstrap - isolated;
        assert_eq!(
            again, 0,
            "node {n} became isolated once the swarm had formed"
        );
    }
    let ids = |peers: &[f2f_core::id::PeerId]| peers.iter().filter_map(|p| net.ix(*p)).collect();
    let overlay = reachable_from_first(&net, |n| ids(net.engine(n).overlay_neighbours()));
    assert_eq!(
        overlay.len(),
        VIEWERS,
        "the overlay is partitioned: {overlay:?} hang together"
    );
    let data = reachable_from_first(&net, |n| ids(&net.engine(n).data_neighbours()));
    assert_eq!(
        data.len(),
        VIEWERS,
        "the data links are partitioned: {data:?} hang together"
    );
}
