//! Signalling through the overlay (`Input::Signal` / `Output::Signal`): once a node has a
//! connection, it can reach peers it is not connected to without the tracker, which is how a
//! swarm keeps rewiring after the control plane is gone. Every peer within two hops of the
//! writer gets the payload exactly once, from the right writer; nobody else sees it.

mod common;

use bytes::Bytes;
use common::{Ix, Net};
use f2f_core::config::Config;
use f2f_core::engine::Input;
use f2f_core::time::Duration;

const VIEWERS: usize = 24;

fn within_two_hops(net: &Net, a: Ix, b: Ix) -> bool {
    net.is_connected(a, b)
        || (0..net.nodes.len()).any(|m| net.is_connected(a, m) && net.is_connected(m, b))
}

#[test]
fn signals_reach_unconnected_peers_within_two_hops_exactly_once() {
    let mut net = Net::new(Config::default());
    for i in 0..VIEWERS {
        let n = net.add();
        if i > 0 {
            net.bootstrap(n, &[i / 2]);
        }
    }
    net.run_for(Duration::from_secs(10));

    let mut sent = Vec::new();
    for a in 0..VIEWERS {
        assert!(net.engine(a).can_relay(), "node {a} has a ready connection");
        for b in 0..VIEWERS {
            if a == b || net.is_connected(a, b) {
                continue;
            }
            let payload = Bytes::from(format!("offer {a}->{b}"));
            let to = net.id(b);
            net.input(a, Input::Signal { to, payload });
            sent.push((a, b, within_two_hops(&net, a, b)));
        }
        // One writer's burst per second: relays hold each neighbour to a signal rate.
        net.run_for(Duration::from_secs(1));
    }
    assert!(
        sent.len() > VIEWERS,
        "precondition: most pairs are not connected"
    );

    let mut reachable = 0;
    for &(a, b, near) in &sent {
        let expected = Bytes::from(format!("offer {a}->{b}"));
        let copies = (net.nodes[b].signals.iter())
            .filter(|(from, payload)| *from == net.id(a) && *payload == expected)
            .count();
        if near {
            reachable += 1;
            assert_eq!(copies, 1, "{a} -> {b}: two hops apart, delivered once");
        }
        assert!(copies <= 1, "{a} -> {b}: never duplicated");
    }
    assert!(reachable * 2 > sent.len(), "most pairs are within two hops");
    for (ix, node) in net.nodes.iter().enumerate() {
        for (from, payload) in &node.signals {
            let a = net.ix(*from).expect("a member wrote it");
            assert_eq!(*payload, Bytes::from(format!("offer {a}->{ix}")));
        }
    }
}

#[test]
fn a_signal_to_a_neighbour_goes_straight_to_it() {
    let mut net = Net::new(Config::default());
    let (a, b) = (net.add(), net.add());
    net.bootstrap(b, &[a]);
    net.run_for(Duration::from_secs(3));
    assert!(net.is_connected(a, b));
    let before = net.log.len();
    let payload = Bytes::from_static(b"answer");
    let to = net.id(b);
    net.input(a, Input::Signal { to, payload });
    net.run_for(Duration::from_secs(1));
    assert_eq!(
        net.nodes[b].signals,
        vec![(net.id(a), Bytes::from_static(b"answer"))]
    );
    let signal_frames = (net.log[before..].iter())
        .filter(|(_, _, m)| matches!(m, f2f_core::wire::Message::Signal { .. }))
        .count();
    assert_eq!(signal_frames, 1);
}
