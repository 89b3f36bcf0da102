//! Swap refinement in a swarm spread over a map: swaps bring data neighbours nearer, the graph
//! stays connected, and playback does not pay for it.

use f2f_sim::{RunReport, Scenario};

const MAP: &str = r#"
name = "map"
seed = 5
duration_s = 180

[source]
bitrate_kbps = 3000
segment_s = 2.0

[network]
uplink_kbps = { dist = "uniform", min = 20000, max = 20000 }
downlink_kbps = { dist = "uniform", min = 60000, max = 60000 }
latency_ms = { dist = "uniform", min = 1.0, max = 20.0 }
geo = { span_ms = 160.0 }

[cdn]
latency_ms = 40
per_flow_kbps = 50000

[audience]
viewers = 120
join_window_s = 20

[security]
crypto = "modelled"
hashing = "modelled"
"#;

fn run(swap: bool) -> RunReport {
    let mut scenario = Scenario::parse(MAP).expect("valid scenario");
    scenario.engine.swap = Some(swap);
    f2f_sim::run(&scenario, false, &mut |_, _| {}).p2p
}

#[test]
fn swaps_bring_neighbours_nearer_and_keep_the_graph_whole() {
    let (off, on) = (run(false), run(true));
    assert_eq!(off.topology.swaps_proposed, 0);
    assert!(
        on.topology.swaps_committed > 50,
        "{} swaps committed",
        on.topology.swaps_committed
    );
    assert!(
        on.topology.neighbour_rtt_ms < 0.95 * off.topology.neighbour_rtt_ms,
        "neighbour RTT {:.1} ms with swaps, {:.1} ms without",
        on.topology.neighbour_rtt_ms,
        off.topology.neighbour_rtt_ms
    );
    for r in [&off, &on] {
        assert_eq!(r.topology.max_components, 1, "the data-link graph split");
        assert_eq!(r.topology.max_isolated, 0, "a viewer lost every neighbour");
    }
    assert!(on.rebuffer_ratio <= off.rebuffer_ratio + 0.001);
    assert!(
        on.offload > off.offload - 0.01,
        "{} vs {}",
        on.offload,
        off.offload
    );
}

#[test]
fn coordinates_learn_the_map() {
    let r = run(false);
    // Peers probe their data neighbours only, yet predict the RTT to anyone.
    assert!(
        r.topology.coordinate_error < 0.25,
        "median error {:.3}",
        r.topology.coordinate_error
    );
    let flat = {
        let mut s = Scenario::parse(MAP).expect("valid scenario");
        s.network.geo = None;
        f2f_sim::run(&s, false, &mut |_, _| {}).p2p
    };
    // Without the map, every pair is two access latencies apart (2–40 ms one way).
    assert!(flat.topology.neighbour_rtt_ms < 80.0);
    assert!(r.topology.neighbour_rtt_ms > 100.0);
}
