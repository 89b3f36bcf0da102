//! A small swarm run end to end: the P2P run offloads most bytes, delivers every segment
//! intact, and plays as well as the CDN-only baseline of the same scenario.

use f2f_sim::Scenario;

const SWARM: &str = r#"
name = "small-swarm"
seed = 3
duration_s = 90

[source]
bitrate_kbps = 4000
segment_s = 2.0

[network]
uplink_kbps = { dist = "log_normal", median = 15000, sigma = 0.6, min = 2000 }
downlink_kbps = { dist = "log_normal", median = 60000, sigma = 0.5, min = 10000 }
latency_ms = { dist = "uniform", min = 5.0, max = 40.0 }

[cdn]
latency_ms = 40
per_flow_kbps = 50000

[audience]
viewers = 60
join_window_s = 15
"#;

#[test]
fn swarm_offloads_without_hurting_playback() {
    let scenario = Scenario::parse(SWARM).expect("valid scenario");
    let report = f2f_sim::run(&scenario, true, &mut |_, _| {});
    let (p2p, cdn) = (&report.p2p, report.baseline.as_ref().expect("baseline ran"));
    assert_eq!(p2p.viewers, 60);
    assert_eq!(
        p2p.corrupt_deliveries, 0,
        "every delivered byte is the origin's"
    );
    assert_eq!(p2p.load_failures, 0);
    assert!(p2p.offload > 0.7, "offload {}", p2p.offload);
    assert_eq!(cdn.offload, 0.0, "the baseline never uses peers");
    assert!(
        p2p.rebuffer_ratio <= cdn.rebuffer_ratio + 0.001,
        "rebuffer {} vs baseline {}",
        p2p.rebuffer_ratio,
        cdn.rebuffer_ratio
    );
    assert!(
        p2p.live_distance_s.mean <= cdn.live_distance_s.mean + 0.05,
        "distance to live {} vs baseline {}",
        p2p.live_distance_s.mean,
        cdn.live_distance_s.mean
    );
    // After the join window, the CDN-only run fetches every segment once per viewer; the
    // swarm, a few times per segment.
    let steady = |r: &f2f_sim::RunReport| r.steady_cdn_fetches.expect("steady").all;
    assert!((steady(cdn) - 60.0).abs() < 0.5, "{}", steady(cdn));
    assert!(steady(p2p) < 6.0, "{}", steady(p2p));
    // The split says why: the CDN-only run fetches directly, never as a first fetcher, at a
    // deadline or after a peer; the swarm's reasons cover at most what it fetched.
    let cdn_split = cdn.steady_cdn_fetches.expect("steady");
    assert_eq!(
        (cdn_split.first, cdn_split.deadline, cdn_split.fallback),
        (0.0, 0.0, 0.0)
    );
    let split = p2p.steady_cdn_fetches.expect("steady");
    assert!(split.first > 0.0, "someone fetches each new segment first");
    assert!(split.first + split.deadline + split.fallback <= split.all + 1e-9);
    let egress = |r: &f2f_sim::RunReport| r.cdn_egress_mbps.iter().sum::<f64>();
    assert!(egress(p2p) < egress(cdn) * 0.4, "CDN egress falls with P2P");
    // Every delivery is counted; a segment is ready for the player well within the time the
    // player waits behind live (three 2 s segments), through the swarm as through the CDN.
    assert_eq!(p2p.ready_after_publish_s.count as u64, p2p.delivered);
    assert!(
        cdn.ready_after_publish_s.p95 < 2.0,
        "{:?}",
        cdn.ready_after_publish_s
    );
    assert!(
        p2p.ready_after_publish_s.p95 < 5.0,
        "{:?}",
        p2p.ready_after_publish_s
    );
}

/// A swarm larger than `viewers_per_first_fetcher` times the budget roots more relay trees: the
/// size sketch's estimate raises the number of first fetchers of each segment.
#[test]
fn first_fetchers_grow_with_the_swarm_beyond_the_budget() {
    let first = |extra: &str| {
        let scenario = Scenario::parse(&format!("{SWARM}{extra}")).expect("valid scenario");
        let report = f2f_sim::run(&scenario, false, &mut |_, _| {});
        assert_eq!(report.p2p.load_failures, 0);
        assert_eq!(report.p2p.stalls, 0);
        report.p2p.steady_cdn_fetches.expect("steady").first
    };
    // 60 viewers: 3 first fetchers by default; at one per 6 viewers, 10, as far as the swarm
    // has capable uplinks (6 × the bitrate) to name.
    let (budget, scaled) = (
        first(""),
        first("[engine]\nviewers_per_first_fetcher = 6\n"),
    );
    assert!(budget < 5.0, "{budget}");
    assert!(scaled > budget + 2.0, "{scaled} vs {budget}");
}

#[test]
fn mass_departure_does_not_stall_those_who_stay() {
    let mut scenario = Scenario::parse(SWARM).expect("valid scenario");
    scenario.audience.mass_leave = Some(f2f_sim::MassLeave {
        at_s: 50.0,
        fraction: 0.5,
        abrupt: true,
    });
    let report = f2f_sim::run(&scenario, false, &mut |_, _| {});
    let stayers = report
        .p2p
        .stayers_rebuffer_after_event
        .expect("there was an event");
    assert!(stayers < 0.001, "stayers rebuffered {stayers}");
    assert_eq!(report.p2p.corrupt_deliveries, 0);
}
