//! `Input::Leave`: the engine says goodbye (membership `Disconnect { alive: false }`), closes every
//! connection it has, and from then on refuses input with `EngineError::Left` and asks for no
//! wake-up. Its former neighbours forget it and do not try to reconnect.

mod common;

use common::{Ix, Net, fingerprint, key};
use f2f_core::config::Config;
use f2f_core::engine::{EngineError, Input};
use f2f_core::identity::ChannelBinding;
use f2f_core::membership::NetGroup;
use f2f_core::time::Duration;
use f2f_core::wire::Message;

#[test]
fn leave_closes_every_connection_and_refuses_further_input() {
    let mut net = Net::new(Config::default());
    let a = net.add();
    let others: Vec<Ix> = (0..3).map(|_| net.add()).collect();
    for &n in &others {
        net.bootstrap(n, &[a]);
    }
    net.run_for(Duration::from_secs(3));
    let seg = net.publish(1, 100_000);
    net.load(a, seg, Duration::from_secs(6));
    net.run_for(Duration::from_secs(1));
    let connected: Vec<Ix> = others
        .iter()
        .copied()
        .filter(|&n| net.is_connected(a, n))
        .collect();
    assert_eq!(
        connected, others,
        "precondition: a is connected to everyone"
    );

    net.input(a, Input::Leave);
    let mut closed: Vec<Ix> = net.nodes[a]
        .disconnects
        .iter()
        .filter_map(|p| net.ix(*p))
        .collect();
    closed.sort_unstable();
    assert_eq!(closed, connected, "one Disconnect per connection");

    let deadline = net.at() + Duration::from_secs(6);
    let refused = [
        net.try_input(
            a,
            Input::Load {
                key: key(2),
                deadline,
            },
        ),
        net.try_input(a, Input::Bootstrap(vec![net.id(others[0])])),
        net.try_input(
            a,
            Input::Connected {
                peer: net.id(others[0]),
                binding: ChannelBinding {
                    local: fingerprint(a, others[0], 0),
                    remote: fingerprint(others[0], a, 0),
                },
                group: NetGroup::of(net.addrs[others[0]]),
            },
        ),
        net.try_input(a, Input::Leave),
    ];
    assert!(
        refused.iter().all(|r| *r == Err(EngineError::Left)),
        "{refused:?}"
    );
    assert_eq!(
        net.engine(a).poll_timeout(),
        None,
        "a left engine needs no timer"
    );

    let dialled: Vec<usize> = net.nodes.iter().map(|n| n.connects.len()).collect();
    net.run_for(Duration::from_secs(15));
    for &n in &others {
        let goodbye = net.messages().any(|(from, to, m)| {
            (from, to) == (a, n) && matches!(m, Message::Disconnect { alive: false })
        });
        assert!(goodbye, "node {n} was not told a is leaving");
        let e = net.engine(n);
        assert!(
            !e.overlay_neighbours().contains(&net.id(a)),
            "node {n} keeps a in its overlay"
        );
        assert!(
            !e.data_neighbours().contains(&net.id(a)),
            "node {n} keeps a as data neighbour"
        );
        let retries = net.nodes[n].connects[dialled[n]..]
            .iter()
            .filter(|p| **p == net.id(a));
        assert_eq!(
            retries.count(),
            0,
            "node {n} tried to reconnect to a after it left"
        );
    }
}
