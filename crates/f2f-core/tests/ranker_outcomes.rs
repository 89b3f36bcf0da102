//! The ranker hears how every peer request it ranked ended, with the peer's measurements as
//! they were when the request went out: what a learned model trains on.

mod common;

use std::sync::{Arc, Mutex};

use common::{Ix, Net};
use f2f_core::config::Config;
use f2f_core::scheduler::{BaselineRanker, Outcome, PeerMeasurements, SourceRanker};
use f2f_core::time::Duration;
use f2f_core::wire::Message;

/// Whether `from` has sent `to` a piece yet.
fn piece_sent(net: &Net, from: Ix, to: Ix) -> bool {
    net.messages()
        .any(|(f, t, m)| (f, t) == (from, to) && matches!(m, Message::Piece { .. }))
}

/// Ranks as the baseline does and writes down every outcome.
#[derive(Debug, Default)]
struct Recorder(Arc<Mutex<Vec<(PeerMeasurements, Outcome)>>>);

impl SourceRanker for Recorder {
    fn peer_eta(&self, peer: &PeerMeasurements, bytes: u64) -> Option<Duration> {
        BaselineRanker::default().peer_eta(peer, bytes)
    }

    fn observe(&mut self, peer: &PeerMeasurements, outcome: Outcome) {
        self.0.lock().expect("not poisoned").push((*peer, outcome));
    }
}

/// `b` loads a 1 MB segment `a` holds; with `stall`, `a` goes quiet after its first piece.
fn load_from_a(stall: bool) -> Vec<(PeerMeasurements, Outcome)> {
    let mut net = Net::new(Config::default());
    let (a, b) = (net.add(), net.add());
    net.nodes[a].up_bps = 4e6;
    let heard = Recorder::default();
    let log = heard.0.clone();
    net.engine_mut(b).set_ranker(Box::new(heard));
    net.bootstrap(b, &[a]);
    net.run_for(Duration::from_secs(3));
    let seg = net.publish(42, 1_000_000);
    net.load(a, seg, Duration::from_secs(6));
    net.run_for(Duration::from_secs(1));
    net.load(b, seg, Duration::from_secs(6));
    if stall {
        assert!(net.run_until(Duration::from_secs(2), |n| piece_sent(n, a, b)));
        net.mute(a, b);
    }
    net.run_for(Duration::from_secs(7));
    assert_eq!(
        net.nodes[b].delivered.len(),
        1,
        "the player got its segment"
    );
    log.lock().expect("not poisoned").clone()
}

#[test]
fn a_delivered_request_is_reported_with_its_bytes_and_time() {
    let heard = load_from_a(false);
    let [(asked, Outcome::Delivered { bytes, elapsed })] = heard.as_slice() else {
        panic!("one delivered request: {heard:?}")
    };
    // The bytes after the first piece (at most 64 KiB), over the time since it came: the
    // throughput the simulator reports, so that the model learns the rate it is judged on.
    assert!((1_000_000 - 65_536..1_000_000).contains(bytes), "{bytes}");
    // Nearly 1 MB at 4 Mb/s: about two seconds.
    assert!(
        *elapsed >= Duration::from_millis(1_800) && *elapsed < Duration::from_millis(2_500),
        "{elapsed:?}"
    );
    // As measured when the request went out: the connection was up, nothing transferred yet.
    assert_eq!(asked.completed, 0);
    assert!(asked.age > Duration::from_secs(3), "{asked:?}");
}

#[test]
fn a_stalled_request_is_reported_failed() {
    let heard = load_from_a(true);
    assert!(
        heard.iter().any(|(_, o)| *o == Outcome::Failed),
        "{heard:?}"
    );
    assert!(
        !heard
            .iter()
            .any(|(_, o)| matches!(o, Outcome::Delivered { .. })),
        "{heard:?}"
    );
}

#[test]
fn a_transfer_from_a_peer_still_receiving_is_reported_as_relayed() {
    let mut net = Net::new(Config::default());
    let (a, b, c) = (net.add(), net.add(), net.add());
    // `a` takes two seconds to send `b` the segment: `b` relays it meanwhile.
    net.nodes[a].up_bps = 4e6;
    let heard = Recorder::default();
    let log = heard.0.clone();
    net.engine_mut(c).set_ranker(Box::new(heard));
    // `c` hears nothing from `a`: its only source is `b`.
    net.mute(a, c);
    net.bootstrap(b, &[a]);
    net.bootstrap(c, &[b]);
    net.run_for(Duration::from_secs(3));
    let seg = net.publish(42, 1_000_000);
    net.load(a, seg, Duration::from_secs(8));
    net.run_for(Duration::from_secs(1));
    net.load(b, seg, Duration::from_secs(8));
    assert!(
        net.run_until(Duration::from_secs(2), |n| piece_sent(n, a, b)),
        "b is receiving from a"
    );
    net.load(c, seg, Duration::from_secs(8));
    net.run_for(Duration::from_secs(9));
    assert_eq!(net.nodes[c].delivered.len(), 1, "c got its segment");
    let heard = log.lock().expect("not poisoned").clone();
    assert!(
        heard
            .iter()
            .any(|(m, o)| m.relaying && matches!(o, Outcome::Delivered { .. })),
        "{heard:?}"
    );
    let stats = net.engine(c).stats();
    assert!(stats.p2p_relayed_transfers >= 1, "{stats:?}");
    assert!(stats.p2p_relayed_transfers <= stats.p2p_transfers);
    assert!(stats.p2p_relayed_kbps > 0 && stats.p2p_relayed_kbps <= stats.p2p_transfer_kbps);
    // `b` took it from `a`'s complete copy.
    let from_a = net.engine(b).stats();
    assert_eq!(
        (from_a.p2p_transfers, from_a.p2p_relayed_transfers),
        (1, 0),
        "{from_a:?}"
    );
}
