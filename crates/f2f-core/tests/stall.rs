//! A peer that stops sending in the middle of a transfer does not stall the player: the
//! requester gives up on it (`Event::Fallback` with `Stalled`), keeps the bytes it got and fetches
//! the rest from the CDN from that offset, and the segment is delivered intact before its deadline
//! — at once, not at the last moment (DESIGN §2: "a request that stalls falls back to the CDN at
//! once, so the player never waits on the swarm").

mod common;

use common::{Delivered, Ix, Net};
use f2f_core::config::Config;
use f2f_core::id::SegmentKey;
use f2f_core::telemetry::{Event, FallbackReason};
use f2f_core::time::Duration;
use f2f_core::wire::Message;

struct Stalled {
    net: Net,
    /// The uploader that went silent and the requester.
    a: Ix,
    b: Ix,
    seg: SegmentKey,
    stalled_at: Duration,
    deadline: Duration,
}

impl Stalled {
    /// `b` loads a 1 MB segment with a 6 s deadline from `a`, whose frames stop arriving after the
    /// first piece (the connection stays up).
    fn run() -> Self {
        let mut net = Net::new(Config::default());
        let (a, b) = (net.add(), net.add());
        net.nodes[a].up_bps = 4e6; // 1 MB takes 2 s: time to stall mid-way
        net.bootstrap(b, &[a]);
        net.run_for(Duration::from_secs(3));
        let seg = net.publish(42, 1_000_000);
        net.load(a, seg, Duration::from_secs(6));
        net.run_for(Duration::from_secs(1));

        let deadline = net.now + Duration::from_secs(6);
        net.load(b, seg, Duration::from_secs(6));
        let piece_from_a = |net: &Net| {
            let piece = |m: &Message| matches!(m, Message::Piece { .. });
            net.messages()
                .any(|(from, to, m)| (from, to) == (a, b) && piece(m))
        };
        assert!(
            net.run_until(Duration::from_secs(2), piece_from_a),
            "b asks a first"
        );
        net.mute(a, b);
        let stalled_at = net.now;
        net.run_for(Duration::from_secs(7));
        Self {
            net,
            a,
            b,
            seg,
            stalled_at,
            deadline,
        }
    }

    fn delivered(&self) -> &Delivered {
        let [d] = self.net.nodes[self.b].delivered.as_slice() else {
            panic!("b got no delivery")
        };
        d
    }
}

#[test]
fn stalled_peer_transfer_falls_back_to_the_cdn_before_the_deadline() {
    let s = Stalled::run();
    let (net, d) = (&s.net, s.delivered());
    let fallbacks: Vec<_> = (net.nodes[s.b].events.iter())
        .filter_map(|e| match e {
            Event::Fallback { key, peer, reason } if *key == s.seg => Some((*peer, *reason)),
            _ => None,
        })
        .collect();
    assert_eq!(fallbacks, vec![(net.id(s.a), FallbackReason::Stalled)]);
    assert!(d.at <= s.deadline, "delivered {:?} late", d.at - s.deadline);
    assert_eq!(d.data, net.cdn[&s.seg], "the bytes are the origin's");
    assert!(d.sources.p2p > 0 && d.sources.cdn > 0, "{:?}", d.sources);
    assert_eq!(
        d.sources.p2p + d.sources.cdn,
        1_000_000,
        "no byte fetched twice"
    );
    let cdn = net.cdn_log.iter().filter(|(n, ..)| *n == s.b);
    let offsets: Vec<u64> = cdn.map(|(.., offset)| *offset).collect();
    assert_eq!(
        offsets,
        vec![d.sources.p2p],
        "the CDN fetch resumes where the peer stopped"
    );
}

#[test]
fn stalled_peer_transfer_falls_back_at_once() {
    let s = Stalled::run();
    let d = s.delivered();
    let cfg = &s.net.config.scheduler;
    let by = s.stalled_at + cfg.stall_timeout + 2 * s.net.cdn_latency;
    assert!(
        d.at <= by,
        "delivered {:?} after the stall was detectable",
        d.at - by
    );
}
