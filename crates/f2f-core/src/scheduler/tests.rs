//! Scheduler rules that whole-engine tests reach only by chance: timer bookkeeping across
//! segments and the last safe moment for the CDN.

use super::*;
use crate::id::{RenditionId, SegmentPosition, SwarmId, VariantTag};

fn key(seq: u64) -> SegmentKey {
    SegmentKey {
        swarm: SwarmId::from_canonical("s"),
        rendition: RenditionId::from_canonical("r"),
        position: SegmentPosition::Sequence(seq),
        variant: VariantTag::from_u64(0),
    }
}

fn peer(n: u8) -> PeerId {
    PeerId::from_bytes([n; 32])
}

fn holder(n: u8, upload_bps: f64) -> Candidate {
    Candidate {
        peer: peer(n),
        measurements: PeerMeasurements {
            srtt: Some(Duration::from_millis(20)),
            throughput_bps: Some(upload_bps),
            reported_upload_bps: upload_bps,
            load: 0,
            completed: 10,
            failed: 0,
        },
        complete: true,
    }
}

const SIZE: u64 = 1_000_000;

#[test]
fn a_passed_moment_of_one_segment_does_not_hide_the_cdn_deadline_of_another() {
    let cfg = SchedulerConfig::default();
    let t0 = Instant::now();
    let mut s = Scheduler::new();
    // Prefetched on an announcement: its first-fetch moment passes while its only holder is
    // busy, so deciding it changes nothing and that moment stays in the past.
    s.list(key(1), Some(SIZE), None, true, Some(t0), t0);
    let ranker = BaselineRanker::default();
    let busy = [holder(9, 20_000_000.0)];
    let asked = s.decide(&key(1), &busy, &ranker, &cfg, t0);
    assert!(
        matches!(asked.as_slice(), [Action::Request { .. }]),
        "{asked:?}"
    );
    assert!(s.on_refused(peer(9), &key(1), Some(t0 + cfg.busy_backoff)));
    assert!(s.decide(&key(1), &busy, &ranker, &cfg, t0).is_empty());
    // The player needs the next segment in three seconds; nobody announced it.
    let deadline = t0 + Duration::from_secs(3);
    s.list(key(2), Some(SIZE), None, true, None, t0);
    s.set_deadline(&key(2), deadline);
    assert!(s.decide(&key(2), &[], &ranker, &cfg, t0).is_empty());

    // Drive the scheduler as the engine does: wake when it says, decide everything.
    let mut now = t0;
    let fetched_at = loop {
        let wake = s
            .poll_timeout(&cfg, now)
            .expect("segment 2 must wake the engine before its deadline");
        assert!(wake > now && wake < deadline, "wake-up {wake:?}");
        now = wake;
        s.decide(&key(1), &busy, &ranker, &cfg, now);
        let actions = s.decide(&key(2), &[], &ranker, &cfg, now);
        if matches!(actions.as_slice(), [Action::FetchCdn { .. }]) {
            break now;
        }
    };
    assert!(fetched_at + Duration::from_millis(500) < deadline);
}

#[test]
fn a_lagging_transfer_is_not_moved_to_a_new_peer_at_the_last_safe_moment() {
    let cfg = SchedulerConfig::default();
    let ranker = BaselineRanker::default();
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(4);
    let run = |upgrade_at: Duration| {
        let mut s = Scheduler::new();
        s.list(key(1), Some(SIZE), None, true, None, t0);
        s.set_deadline(&key(1), deadline);
        // A slow holder, taken for a prefix the CDN will complete.
        let slow = holder(1, 1_000_000.0);
        // In the second half of the wait for the CDN: worth a prefix.
        let asked_at = t0 + Duration::from_millis(1_600);
        let actions = s.decide(&key(1), &[slow], &ranker, &cfg, asked_at);
        assert!(
            matches!(actions.as_slice(), [Action::Request { .. }]),
            "{actions:?}"
        );
        // 100 kB arrive, far too slowly for the deadline.
        let got = Bytes::from(vec![0u8; 100_000]);
        let at = t0 + Duration::from_millis(1_700);
        assert_eq!(
            s.on_piece(peer(1), &key(1), 0, SIZE, got, at),
            Progress::Partial
        );
        let fast = holder(2, 50_000_000.0);
        s.upgrade(&key(1), &[slow, fast], &ranker, &cfg, t0 + upgrade_at)
    };
    let early = run(Duration::from_millis(2_000));
    assert!(
        early.iter().any(
            |a| matches!(a, Action::Request { peer: p, offset: 100_000, .. } if *p == peer(2))
        ),
        "early on, a complete fast holder takes over: {early:?}"
    );
    // Close to the deadline a new peer that never answers would leave no time for the CDN.
    let late = run(Duration::from_millis(3_000));
    assert!(late.is_empty(), "{late:?}");
}
