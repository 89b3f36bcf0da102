//! Scheduler rules that whole-engine tests reach only by chance: timer bookkeeping across
//! segments and the last safe moment for the CDN.

use std::sync::OnceLock;

use super::*;
use crate::id::test_key as key;
use crate::integrity::{Blake3, GROUP_BYTES};

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
            completed: 10,
            ..PeerMeasurements::default()
        },
        complete: true,
    }
}

const SIZE: u64 = 1_000_000;
const G: u64 = GROUP_BYTES;

/// The test segment's bytes and its tree.
fn content() -> &'static (Bytes, Outboard) {
    static CONTENT: OnceLock<(Bytes, Outboard)> = OnceLock::new();
    CONTENT.get_or_init(|| {
        let data: Bytes = (0..SIZE).map(|i| (i * 7 + i / 1001) as u8).collect();
        let tree = Outboard::from_data(&data);
        (data, tree)
    })
}

/// The segment's bytes `from..to`, as the CDN sends them.
fn bytes(from: u64, to: u64) -> Bytes {
    content().0.slice(from as usize..to as usize)
}

/// Lists segment `seq` as the engine does once its signed hash is known.
fn list(s: &mut Scheduler, seq: u64, first_fetch_at: Option<Instant>, now: Instant) {
    let first = first_fetch_at.map_or(FirstFetch::Wait, FirstFetch::Unannounced);
    s.list(key(seq), None, None, true, first, now);
    s.set_hash(&key(seq), content().1.hash(), SIZE);
}

/// The id of the request for segment 1 open at `peer` (a made-up one when there is none).
fn asked(s: &Scheduler, n: u8) -> RequestId {
    s.wanted
        .get(&key(1))
        .and_then(|w| w.part_of(&peer(n)).map(|i| &w.parts[i]))
        .and_then(|p| match p.fetch {
            Fetch::Peer { id, .. } => Some(id),
            _ => None,
        })
        .unwrap_or(RequestId(u32::MAX))
}

/// `peer` delivers bytes `from..to` of segment 1, encoded as a peer sends them, answering
/// the request open at it.
fn piece(s: &mut Scheduler, n: u8, from: u64, to: u64, at: Instant) -> Progress {
    let id = asked(s, n);
    piece_for(s, n, id, from, to, at)
}

/// The same, answering request `id`.
fn piece_for(s: &mut Scheduler, n: u8, id: RequestId, from: u64, to: u64, at: Instant) -> Progress {
    let encoded = content()
        .1
        .encode(from, &bytes(from, to))
        .expect("a group range");
    s.on_piece(peer(n), id, &key(1), from, to, SIZE, &encoded, &Blake3, at)
}

#[test]
fn a_passed_moment_of_one_segment_does_not_hide_the_cdn_deadline_of_another() {
    let cfg = SchedulerConfig::default();
    let t0 = Instant::now();
    let mut s = Scheduler::new();
    // Prefetched on an announcement: its first-fetch moment passes while its only holder is
    // busy, so deciding it changes nothing and that moment stays in the past.
    list(&mut s, 1, Some(t0), t0);
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
    list(&mut s, 2, None, t0);
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

/// A segment needed four seconds after `t0`, asked at `t0` from a holder measured fast enough
/// for all of it (20 Mb/s), whose first chunk group arrived 100 ms later.
fn fast_transfer_under_way(t0: Instant) -> Scheduler {
    let mut s = Scheduler::new();
    list(&mut s, 1, None, t0);
    s.set_deadline(&key(1), t0 + Duration::from_secs(4));
    let cfg = SchedulerConfig::default();
    let fast = [holder(1, 20_000_000.0)];
    let actions = s.decide(&key(1), &fast, &BaselineRanker::default(), &cfg, t0);
    assert!(
        matches!(actions.as_slice(), [Action::Request { end: None, .. }]),
        "{actions:?}"
    );
    let first = t0 + Duration::from_millis(100);
    assert_eq!(piece(&mut s, 1, 0, G, first), Progress::Partial);
    s
}

#[test]
fn a_lagging_transfer_is_not_moved_to_a_new_peer_at_the_last_safe_moment() {
    let cfg = SchedulerConfig::default();
    let ranker = BaselineRanker::default();
    let t0 = Instant::now();
    let run = |upgrade_at: Duration| {
        // A holder measured fast enough for the whole segment delivers 96 KiB in the first
        // second: on course to miss the deadline.
        let mut s = fast_transfer_under_way(t0);
        let first = holder(1, 20_000_000.0);
        let at = t0 + Duration::from_millis(1_000);
        assert_eq!(piece(&mut s, 1, G, 6 * G, at), Progress::Partial);
        let fast = holder(2, 50_000_000.0);
        s.upgrade(&key(1), &[first, fast], &ranker, &cfg, t0 + upgrade_at)
    };
    let early = run(Duration::from_millis(1_100));
    assert!(
        early.iter().any(
            |a| matches!(a, Action::Request { peer: p, offset, .. } if *p == peer(2) && *offset == 6 * G)
        ),
        "early on, a complete fast holder takes over: {early:?}"
    );
    // Close to the deadline a new peer that never answers would leave no time for the CDN.
    let late = run(Duration::from_millis(3_000));
    assert!(late.is_empty(), "{late:?}");
}

/// A patient configuration: a slow peer may go three seconds without a byte.
fn patient() -> SchedulerConfig {
    SchedulerConfig {
        stall_timeout: Duration::from_secs(3),
        ..SchedulerConfig::default()
    }
}

/// A 0.5 Mb/s holder, asked in the second half of the wait for the CDN, gets the range it can
/// deliver by the deadline. Returns the scheduler and the split point.
fn split_with_slow_holder(now: Instant, deadline: Instant) -> (Scheduler, u64) {
    let mut s = Scheduler::new();
    list(&mut s, 1, None, now - Duration::from_secs(8));
    s.set_deadline(&key(1), deadline);
    let slow = holder(1, 500_000.0);
    let actions = s.decide(
        &key(1),
        &[slow],
        &BaselineRanker::default(),
        &patient(),
        now,
    );
    let [
        Action::Request {
            offset: 0,
            end: Some(at),
            ..
        },
    ] = actions.as_slice()
    else {
        panic!("expected a ranged peer request: {actions:?}");
    };
    assert!(*at >= 10 * G && *at < SIZE / 2, "split at {at}");
    assert_eq!(*at % G, 0, "ranges are whole chunk groups");
    (s, *at)
}

/// Feeds the peer's range up to one chunk group short of the split, with progress every couple
/// of seconds, and returns the time of the last piece.
fn feed_most_of_the_range(s: &mut Scheduler, at: u64, t0: Instant) -> Instant {
    let steps = [
        (0, 4 * G, 100),
        (4 * G, 8 * G, 3_000),
        (8 * G, at - G, 5_100),
    ];
    for (from, to, ms) in steps {
        let t = t0 + Duration::from_millis(ms);
        assert_eq!(piece(s, 1, from, to, t), Progress::Partial);
    }
    t0 + Duration::from_millis(5_100)
}

/// The scheduler's next wake-up after `now` and what it decides then (no new holder).
fn wake(s: &mut Scheduler, now: Instant) -> (Instant, Vec<Action>) {
    let at = s.poll_timeout(&patient(), now).expect("a wake-up");
    let ranker = BaselineRanker::default();
    (at, s.decide(&key(1), &[], &ranker, &patient(), at))
}

#[test]
fn a_split_segment_completes_from_the_peer_range_and_the_cdn_tail() {
    let t0 = Instant::now() + Duration::from_secs(10);
    let deadline = t0 + Duration::from_secs(6);
    let (mut s, at) = split_with_slow_holder(t0, deadline);
    // Bytes past the requested range are a protocol violation.
    assert_eq!(
        piece(&mut s, 1, 0, at + G, t0),
        Progress::Violation("piece beyond the requested range")
    );
    let last = feed_most_of_the_range(&mut s, at, t0);
    // The CDN is asked for the tail only when the deadline demands it.
    let (when, actions) = wake(&mut s, last);
    let [
        Action::FetchCdn {
            id,
            offset,
            end: None,
            why: CdnWhy::Split,
            ..
        },
    ] = actions.as_slice()
    else {
        panic!("expected the CDN tail: {actions:?}");
    };
    assert_eq!(*offset, at);
    assert!(when < deadline - Duration::from_millis(500), "{when:?}");
    // The tail lands first and waits for the prefix.
    let answer = s.on_cdn(
        *id,
        Ok(bytes(at, SIZE)),
        Duration::from_millis(200),
        &patient(),
        when,
    );
    assert_eq!(answer, Ok(None));
    let done = piece(&mut s, 1, at - G, at, when);
    let Progress::Complete { data, sources, .. } = done else {
        panic!("expected the whole segment: {done:?}");
    };
    assert_eq!(data.to_bytes(), content().0);
    assert_eq!((sources.p2p, sources.cdn), (at, SIZE - at));
}

#[test]
fn a_failed_cdn_range_is_retried_after_the_backoff() {
    let t0 = Instant::now() + Duration::from_secs(10);
    let (mut s, at) = split_with_slow_holder(t0, t0 + Duration::from_secs(6));
    let last = feed_most_of_the_range(&mut s, at, t0);
    let (when, actions) = wake(&mut s, last);
    let [Action::FetchCdn { id, .. }] = actions.as_slice() else {
        panic!("expected the CDN tail: {actions:?}");
    };
    assert_eq!(
        s.on_cdn(*id, Err(()), Duration::from_millis(200), &patient(), when),
        Ok(None)
    );
    // The peer finishes its range; the rest is asked again once the backoff has passed.
    assert_eq!(
        piece(&mut s, 1, at - G, at, when),
        Progress::RangeDone(RangeStats {
            peer: peer(1),
            bytes: at,
            elapsed: when - (t0 + Duration::from_millis(100)),
            first_piece: 4 * G,
        })
    );
    let ranker = BaselineRanker::default();
    assert!(s.decide(&key(1), &[], &ranker, &patient(), when).is_empty());
    let (retry_at, actions) = wake(&mut s, when);
    assert_eq!(retry_at, when + patient().cdn_retry_backoff);
    assert!(
        matches!(
            actions.as_slice(),
            [Action::FetchCdn { offset, end: None, why: CdnWhy::Retry, .. }] if *offset == at
        ),
        "{actions:?}"
    );
}

#[test]
fn a_range_is_timed_over_the_bytes_after_its_first_piece() {
    let t0 = Instant::now() + Duration::from_secs(10);
    let (mut s, at) = split_with_slow_holder(t0, t0 + Duration::from_secs(6));
    let first = t0 + Duration::from_millis(400);
    assert_eq!(piece(&mut s, 1, 0, at - G, first), Progress::Partial);
    // The first piece may have waited in the uploader's queue and arrives whole: its throughput
    // is one more group in 100 ms, not the whole range in 100 ms.
    let done = piece(&mut s, 1, at - G, at, first + Duration::from_millis(100));
    let Progress::RangeDone(range) = done else {
        panic!("expected the range: {done:?}");
    };
    assert_eq!(range.throughput_bps(), (G * 8 * 10) as f64);
    assert_eq!(range.planning_bps(), (at * 8 * 10) as f64);
}

#[test]
fn a_peer_ahead_of_its_estimate_keeps_the_rest_before_the_cdn_is_asked() {
    let t0 = Instant::now() + Duration::from_secs(10);
    let (mut s, at) = split_with_slow_holder(t0, t0 + Duration::from_secs(6));
    let early = t0 + Duration::from_millis(500);
    let done = piece(&mut s, 1, 0, at, early);
    assert!(
        matches!(done, Progress::RangeDone(r) if r.bytes == at),
        "{done:?}"
    );
    // No CDN tail was requested: the same peer may serve the rest.
    let fast_now = holder(1, 20_000_000.0);
    let actions = s.decide(
        &key(1),
        &[fast_now],
        &BaselineRanker::default(),
        &patient(),
        early,
    );
    assert!(
        matches!(
            actions.as_slice(),
            [Action::Request { offset, end: None, .. }] if *offset == at
        ),
        "{actions:?}"
    );
}

#[test]
fn a_transfer_not_done_at_the_last_call_goes_to_the_cdn_even_if_it_was_moving() {
    let cfg = SchedulerConfig::default();
    let t0 = Instant::now();
    let mut s = fast_transfer_under_way(t0);
    let at = |ms| t0 + Duration::from_millis(ms);
    // All but the last chunk groups, half a second before the deadline; then nothing more.
    assert_eq!(piece(&mut s, 1, G, 60 * G, at(3_500)), Progress::Partial);
    // 310 ms later the transfer has not been quiet for long, and at its pace it would finish at
    // once; but only the CDN can still make the deadline with some margin.
    let actions = s.check_transfer(&key(1), &cfg, at(3_810));
    assert!(
        actions.iter().any(|a| matches!(
            a,
            Action::FetchCdn { offset, .. } if *offset == 60 * G
        )),
        "{actions:?}"
    );
    assert!(actions.iter().any(|a| matches!(
        a,
        Action::Fallback {
            reason: FallbackReason::TooSlow,
            ..
        }
    )));
}

#[test]
fn a_transfer_projected_to_finish_before_the_last_call_keeps_going_past_the_last_safe_moment() {
    let cfg = SchedulerConfig::default();
    let t0 = Instant::now();
    let mut s = fast_transfer_under_way(t0);
    let at = |ms| t0 + Duration::from_millis(ms);
    // 58 of 61 groups by 3.45 s: at this pace the rest arrives about 320 ms before the
    // deadline, inside the 400 ms margin but outside the last call's 100 ms.
    assert_eq!(piece(&mut s, 1, G, 58 * G, at(3_450)), Progress::Partial);
    // Past the CDN's last safe moment (deadline − its ~120 ms − the margin) it is not given up.
    let actions = s.check_transfer(&key(1), &cfg, at(3_500));
    assert!(actions.is_empty(), "{actions:?}");
    // And it completes from the peer alone.
    let done = piece(&mut s, 1, 58 * G, SIZE, at(3_680));
    let Progress::Complete { sources, .. } = done else {
        panic!("expected the whole segment: {done:?}");
    };
    assert_eq!((sources.p2p, sources.cdn), (SIZE, 0));
}

/// A segment listed four seconds ago, needed in four seconds (past the first half of the wait,
/// when ranges may start), with the CDN measured as it is in the simulator (20 ms, 50 Mb/s).
fn needed_in_four_seconds(t0: Instant) -> Scheduler {
    let mut s = Scheduler::new();
    s.cdn_rtt = Some(Duration::from_millis(20));
    s.cdn_bps = Some(50e6);
    list(&mut s, 1, None, t0 - Duration::from_secs(4));
    s.set_deadline(&key(1), t0 + Duration::from_secs(4));
    s
}

/// The `(peer, offset, end)` of every peer request among `actions`.
fn requests(actions: &[Action]) -> Vec<(PeerId, u64, Option<u64>)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Request {
                peer, offset, end, ..
            } => Some((*peer, *offset, *end)),
            _ => None,
        })
        .collect()
}

#[test]
fn slow_holders_each_send_a_range_and_together_deliver_what_none_could_alone() {
    let cfg = SchedulerConfig::default();
    let t0 = Instant::now();
    let mut s = needed_in_four_seconds(t0);
    // 1.6 Mb/s each: five seconds for the whole segment, too slow alone.
    let holders = [holder(1, 1_600_000.0), holder(2, 1_600_000.0)];
    let ranker = BaselineRanker::default();
    // Early in the wait a faster holder may still turn up: no ranges yet.
    let mut early = Scheduler::new();
    list(&mut early, 1, None, t0);
    early.set_deadline(&key(1), t0 + Duration::from_secs(4));
    assert!(
        early
            .decide(&key(1), &holders, &ranker, &cfg, t0)
            .is_empty()
    );
    let actions = s.decide(&key(1), &holders, &ranker, &cfg, t0);
    let asked = requests(&actions);
    let [(p1, 0, Some(split)), (p2, second, None)] = asked.as_slice() else {
        panic!("expected two ranges covering the segment: {actions:?}");
    };
    assert_eq!((*p1, *p2, *second), (peer(1), peer(2), *split));
    assert!((SIZE / 3..SIZE * 2 / 3).contains(split), "split at {split}");
    assert_eq!(split % G, 0, "ranges are whole chunk groups");
    assert!(
        !actions.iter().any(|a| matches!(a, Action::FetchCdn { .. })),
        "{actions:?}"
    );

    // The second range lands first: nothing is handed over until the first does too, but its
    // bytes can already be relayed.
    let at = |ms| t0 + Duration::from_millis(ms);
    assert_eq!(s.arriving(&key(1)), None, "nothing received yet");
    let done = piece(&mut s, 2, *split, SIZE, at(2_000));
    assert!(
        matches!(done, Progress::RangeDone(r) if r.peer == peer(2)),
        "{done:?}"
    );
    assert_eq!(s.arriving(&key(1)), Some(SIZE));
    assert_eq!(
        s.piece_at(&key(1), 0, G, &Blake3),
        None,
        "the first range has not come"
    );
    // What arrived is relayed as verifiable pieces: the parents came with it.
    let (relayed, end) = s.piece_at(&key(1), *split, 4 * G, &Blake3).expect("held");
    assert_eq!(end, *split + 4 * G);
    let mut next_hop = Outboard::expecting(content().1.hash(), SIZE);
    let got = next_hop.decode(*split, end, &relayed).expect("verifies");
    assert_eq!(got, bytes(*split, end));
    let done = piece(&mut s, 1, 0, *split, at(2_500));
    let Progress::Complete {
        data,
        sources,
        last,
        ..
    } = done
    else {
        panic!("expected the whole segment: {done:?}");
    };
    assert_eq!(data.to_bytes(), content().0);
    assert_eq!((sources.p2p, sources.cdn), (SIZE, 0));
    assert_eq!(last.map(|r| (r.peer, r.bytes)), Some((peer(1), *split)));
}

#[test]
fn a_holder_that_never_started_is_asked_again_once_its_queue_may_have_moved() {
    let cfg = SchedulerConfig::default();
    let ranker = BaselineRanker::default();
    let t0 = Instant::now();
    let mut s = needed_in_four_seconds(t0);
    s.set_deadline(&key(1), t0 + Duration::from_secs(10));
    let queued = holder(1, 20_000_000.0);
    assert_eq!(
        requests(&s.decide(&key(1), &[queued], &ranker, &cfg, t0)),
        vec![(peer(1), 0, None)]
    );
    let gave_up = t0 + cfg.stall_timeout;
    let actions = s.decide(&key(1), &[queued], &ranker, &cfg, gave_up);
    assert!(
        actions.iter().any(|a| matches!(
            a,
            Action::Fallback {
                reason: FallbackReason::NoFirstByte,
                ..
            }
        )),
        "{actions:?}"
    );
    assert!(requests(&actions).is_empty(), "left alone for a moment");
    let later = gave_up + cfg.busy_backoff;
    assert_eq!(
        requests(&s.decide(&key(1), &[queued], &ranker, &cfg, later)),
        vec![(peer(1), 0, None)]
    );
}

#[test]
fn no_peer_is_asked_before_the_segment_hash_is_known() {
    let cfg = SchedulerConfig::default();
    let ranker = BaselineRanker::default();
    let t0 = Instant::now();
    let mut s = Scheduler::new();
    s.list(key(1), None, None, true, FirstFetch::Wait, t0);
    s.set_deadline(&key(1), t0 + Duration::from_secs(10));
    let fast = [holder(1, 20_000_000.0)];
    assert!(requests(&s.decide(&key(1), &fast, &ranker, &cfg, t0)).is_empty());
    s.set_hash(&key(1), content().1.hash(), SIZE);
    assert_eq!(
        requests(&s.decide(&key(1), &fast, &ranker, &cfg, t0)),
        vec![(peer(1), 0, None)]
    );
}

#[test]
fn a_corrupt_piece_is_refused_and_its_range_goes_to_another_holder() {
    let cfg = SchedulerConfig::default();
    let ranker = BaselineRanker::default();
    let t0 = Instant::now();
    let mut s = fast_transfer_under_way(t0);
    let at = t0 + Duration::from_millis(300);
    let mut bad = content()
        .1
        .encode(G, &bytes(G, 5 * G))
        .expect("range")
        .to_vec();
    bad[3000] ^= 1;
    let bad = Bytes::from(bad);
    assert_eq!(
        s.on_piece(
            peer(1),
            asked(&s, 1),
            &key(1),
            G,
            5 * G,
            SIZE,
            &bad,
            &Blake3,
            at
        ),
        Progress::Corrupt(IntegrityError::Mismatch)
    );
    // Nothing of it was kept; another holder is asked from where the good bytes end.
    let both = [holder(1, 20_000_000.0), holder(2, 20_000_000.0)];
    assert_eq!(
        requests(&s.decide(&key(1), &both, &ranker, &cfg, at)),
        vec![(peer(2), G, None)]
    );
    assert_eq!(piece(&mut s, 2, G, 5 * G, at), Progress::Partial);
}

#[test]
fn a_request_made_before_the_deadline_was_known_is_given_up_in_time_for_the_cdn() {
    let cfg = SchedulerConfig::default();
    let ranker = BaselineRanker::default();
    let t0 = Instant::now();
    let mut s = Scheduler::new();
    // Prefetched on an announcement, from a holder with seven uploads queued: without a
    // deadline the request may wait eight stall timeouts (5.6 s) for a first byte.
    list(&mut s, 1, None, t0);
    let mut queued = holder(1, 20_000_000.0);
    queued.measurements.load = 7;
    let asked = s.decide(&key(1), &[queued], &ranker, &cfg, t0);
    assert!(
        matches!(asked.as_slice(), [Action::Request { .. }]),
        "{asked:?}"
    );
    // Then the player asks for it, due in three seconds; the holder never starts.
    let deadline = t0 + Duration::from_secs(3);
    s.set_deadline(&key(1), deadline);
    let wake = s
        .poll_timeout(&cfg, t0)
        .expect("the transfer must wake the engine before its deadline");
    assert!(wake < deadline, "wake-up {wake:?}");
    let actions = s.check_transfer(&key(1), &cfg, wake);
    assert!(
        matches!(
            actions.as_slice(),
            [
                Action::Fallback {
                    reason: FallbackReason::NoFirstByte,
                    ..
                },
                Action::Cancel { .. }
            ]
        ),
        "{actions:?}"
    );
    let fetched = s.decide(&key(1), &[], &ranker, &cfg, wake);
    assert!(
        matches!(fetched.as_slice(), [Action::FetchCdn { .. }]),
        "{fetched:?}"
    );
    // A 1 MB fetch at the CDN's 50 Mb/s takes well under the margin left.
    assert!(wake + Duration::from_millis(500) < deadline, "{wake:?}");
}

#[test]
fn pieces_of_a_request_replaced_since_are_dropped_without_blaming_the_peer() {
    let cfg = SchedulerConfig::default();
    let ranker = BaselineRanker::default();
    let t0 = Instant::now();
    let mut s = fast_transfer_under_way(t0);
    let first = asked(&s, 1);
    // The peer turns us away for a moment, then is asked again from where its bytes end;
    // pieces it sent for the first request are still on the wire.
    let at = t0 + Duration::from_millis(200);
    assert!(s.on_refused(peer(1), &key(1), Some(at + Duration::from_millis(100))));
    let later = at + Duration::from_millis(150);
    let again = s.decide(&key(1), &[holder(1, 20_000_000.0)], &ranker, &cfg, later);
    assert_eq!(requests(&again), vec![(peer(1), G, None)]);
    let second = asked(&s, 1);
    assert_ne!(first, second);
    assert!(s.is_stale(peer(1), &key(1), first));
    assert!(!s.is_stale(peer(1), &key(1), second));

    assert_eq!(
        piece_for(&mut s, 1, first, 2 * G, 3 * G, later),
        Progress::Stale
    );
    assert_eq!(
        piece_for(&mut s, 1, first, G, 2 * G, later),
        Progress::Stale
    );
    assert_eq!(piece(&mut s, 1, G, 2 * G, later), Progress::Partial);
}

/// A first fetcher of the swarm's budget takes a segment a neighbour already announced from
/// that neighbour; a node covering its neighbourhood's upload deficit fetches it from the CDN
/// all the same, so that its uplink relays at the CDN's pace rather than a slower peer's.
#[test]
fn a_node_covering_the_upload_deficit_fetches_from_the_cdn_though_a_peer_holds_the_segment() {
    let (cfg, ranker, t0) = (
        SchedulerConfig::default(),
        BaselineRanker::default(),
        Instant::now(),
    );
    let slow = [holder(1, 2_000_000.0)];
    let first = |fetch: FirstFetch| {
        let mut s = Scheduler::new();
        s.list(key(1), None, None, true, fetch, t0);
        s.set_hash(&key(1), content().1.hash(), SIZE);
        s.decide(&key(1), &slow, &ranker, &cfg, t0)
    };
    assert_eq!(
        requests(&first(FirstFetch::Unannounced(t0))),
        vec![(peer(1), 0, None)],
        "a budget first fetcher asks the holder"
    );
    assert!(
        matches!(
            first(FirstFetch::Now).as_slice(),
            [Action::FetchCdn {
                offset: 0,
                end: None,
                why: CdnWhy::First,
                ..
            }]
        ),
        "a node covering the deficit asks the CDN"
    );
}
