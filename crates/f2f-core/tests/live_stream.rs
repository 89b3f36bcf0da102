//! A live stream in a healthy swarm: twelve viewers with uneven uplinks, each refreshing its
//! playlist at its own moment, load every new 2 s segment with a 6 s deadline. Every load is
//! delivered intact before its deadline, and the swarm carries most of the stream.

mod common;

use common::{Ix, Net};
use f2f_core::config::Config;
use f2f_core::time::Duration;

#[test]
fn every_segment_of_a_live_stream_arrives_intact_before_its_deadline() {
    let mut net = Net::new(Config::default());
    let viewers: Vec<Ix> = (0..12).map(|_| net.add()).collect();
    for (i, &n) in viewers.iter().enumerate() {
        net.nodes[n].up_bps = [5e6, 10e6, 20e6][i % 3];
        if i > 0 {
            net.bootstrap(n, &[viewers[i / 2], viewers[i - 1]]);
        }
        net.run_for(Duration::from_millis(100));
    }
    net.run_for(Duration::from_secs(3));

    let (segments, len, deadline) = (20u64, 400_000usize, Duration::from_secs(6));
    let mut loads = Vec::new();
    for seq in 0..segments {
        let seg = net.publish(seq, len);
        // Viewers see the new segment over 1.2 s, each at its own playlist refresh.
        for &n in &viewers {
            net.load(n, seg, deadline);
            loads.push((n, seg, net.now + deadline));
            net.run_for(Duration::from_millis(100));
        }
        net.run_for(Duration::from_millis(800));
    }
    net.run_for(Duration::from_secs(8));

    for (n, seg, by) in loads {
        let got: Vec<_> = net.nodes[n]
            .delivered
            .iter()
            .filter(|d| d.key == seg)
            .collect();
        let [d] = got.as_slice() else {
            panic!(
                "node {n}, {seg}: {} deliveries, failed: {:?}",
                got.len(),
                net.nodes[n].failed
            )
        };
        assert!(d.at <= by, "node {n}, {seg}: {:?} late", d.at - by);
        assert_eq!(d.data, net.cdn[&seg], "node {n}, {seg}: wrong bytes");
    }
    let stats = viewers.iter().map(|&n| net.engine(n).stats());
    let (cdn, p2p) = stats.fold((0, 0), |(c, p), s| (c + s.cdn_bytes, p + s.p2p_bytes));
    assert!(p2p > cdn, "the swarm carried {p2p} bytes, the CDN {cdn}");
}
