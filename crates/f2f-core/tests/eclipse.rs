//! Eclipse resistance: however many certified peers one subnet brings, a node keeps at most
//! `membership.max_per_group` of them in its overlay view and among its data neighbours, and
//! so keeps room for the rest of the swarm.

mod common;

use std::net::SocketAddr;

use common::{Ix, Net};
use f2f_core::config::Config;
use f2f_core::time::Duration;

/// `target` with `honest` peers from their own subnets and `attackers` from one /24, all of
/// whom join through the target first; returns how many attackers it holds in its overlay
/// view and among its data neighbours.
fn crowd(max_per_group: usize, attackers: usize) -> (Net, Ix, usize, usize) {
    let mut config = Config::default();
    config.membership.max_per_group = max_per_group;
    let mut net = Net::new(config);
    let target = net.add();
    let xs: Vec<Ix> = (0..attackers)
        .map(|k| {
            let x = net.add();
            let addr: SocketAddr = format!("66.6.6.{}:4000", k + 1).parse().expect("address");
            net.addrs[x] = addr;
            x
        })
        .collect();
    for &x in &xs {
        net.bootstrap(x, &[target]);
        net.run_for(Duration::from_millis(50));
    }
    let honest: Vec<Ix> = (0..4).map(|_| net.add()).collect();
    for &h in &honest {
        net.bootstrap(h, &[target]);
    }
    net.run_for(Duration::from_secs(20));
    let e = net.engine(target);
    let ids: Vec<_> = xs.iter().map(|&x| net.id(x)).collect();
    let overlay = e
        .overlay_neighbours()
        .iter()
        .filter(|p| ids.contains(p))
        .count();
    let data = e
        .data_neighbours()
        .iter()
        .filter(|p| ids.contains(p))
        .count();
    (net, target, overlay, data)
}

#[test]
fn one_subnet_gets_at_most_its_share_of_the_views() {
    let (net, target, overlay, data) = crowd(2, 10);
    assert!(overlay <= 2, "{overlay} attackers in the overlay view");
    assert!(data <= 2, "{data} attackers among the data neighbours");
    let e = net.engine(target);
    assert!(
        e.overlay_neighbours().len() > overlay,
        "the rest of the swarm still reaches the target"
    );
    assert!(e.data_neighbours().len() > data);
}

#[test]
fn without_the_bound_the_subnet_crowds_the_target() {
    // The same crowd, unbounded: what the bound above prevents. (The overlay view's random
    // evictions mix it anyway; the data links, kept while they work, are what fills up.)
    let (_, _, _, data) = crowd(usize::MAX, 10);
    assert!(data > 2, "only {data} attackers among the data neighbours");
}
