//! The swarm-size estimate decides who fetches a new segment from the CDN first, and neighbours
//! gossip it. One peer's sketch may skew it for the current epoch at most: a sketch for a
//! far-future epoch must not freeze the estimate (here at ~10^19 viewers) for the rest of the
//! session, across the whole swarm, once the stream has moved on.

mod common;

use common::Net;
use f2f_core::config::Config;
use f2f_core::id::RenditionId;
use f2f_core::time::Duration;
use f2f_core::wire::Message;

#[test]
fn a_sketch_from_the_far_future_does_not_freeze_the_estimate() {
    let mut net = Net::new(Config::default());
    let (a, b) = (net.add(), net.add());
    net.bootstrap(b, &[a]);
    net.run_for(Duration::from_secs(3));
    let x = net.add_scripted();
    net.connect(x, a);
    net.run_for(Duration::from_millis(100));
    net.hello(x, a);
    net.send(
        x,
        a,
        &Message::SizeSketch {
            rendition: RenditionId::from_canonical("cdn.test/live/ch1/720p"),
            epoch: u64::MAX,
            mins: (0..32).collect(),
            capable: (0..32).collect(),
        },
    );
    net.run_for(Duration::from_secs(2));
    let poisoned = net.engine(a).swarm_size_estimate();

    // The live stream goes on for four sketch epochs (15 segments each by default).
    let epoch = net.config.size.epoch_segments;
    for seq in 1_000..1_000 + 4 * epoch {
        let seg = net.publish(seq, 50_000);
        for n in [a, b] {
            net.load(n, seg, Duration::from_secs(6));
        }
        net.run_for(Duration::from_secs(2));
    }
    for n in [a, b] {
        // `b` never spoke to the hostile peer: it hears the epoch through `a`'s gossip.
        let estimate = net.engine(n).swarm_size_estimate();
        assert!(
            estimate < 100.0,
            "node {n} estimates {estimate:e} viewers (poisoned: {poisoned:e})"
        );
        // What it costs: believing itself one of ~10^19 viewers, a node is never among the
        // first fetchers of a new segment and waits for every deadline.
        let first = net.engine(n).stats().cdn_first_fetches;
        assert!(
            first > 0,
            "node {n} fetched all segments at their deadlines"
        );
    }
}
