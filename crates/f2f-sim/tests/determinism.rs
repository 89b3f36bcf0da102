//! Same scenario, same seed ⇒ byte-identical report; another seed ⇒ a different run; the
//! modelled signature scheme changes nothing but wall-clock time.
//!
//! Everything the simulator reports must follow from the scenario file alone: no wall clock,
//! no process-global randomness, no hash-map iteration order leaking into behaviour.

use f2f_sim::{CryptoSpec, HashingSpec, Scenario};

const SMALL: &str = r#"
name = "determinism"
seed = 7
duration_s = 40

[source]
bitrate_kbps = 3000
segment_s = 2.0

[network]
uplink_kbps = { dist = "log_normal", median = 10000, sigma = 0.8, min = 500 }
downlink_kbps = { dist = "const", value = 50000 }
latency_ms = { dist = "uniform", min = 5.0, max = 60.0 }
loss = 0.01

[cdn]
latency_ms = 40
per_flow_kbps = 40000

[audience]
viewers = 40
join_window_s = 10
mass_leave = { at_s = 25, fraction = 0.3 }
"#;

fn run_with(seed: u64, crypto: CryptoSpec) -> String {
    let mut scenario = Scenario::parse(SMALL).expect("valid scenario");
    scenario.seed = seed;
    scenario.security.crypto = crypto;
    f2f_sim::run(&scenario, true, &mut |_, _| {}).to_json()
}

fn run(seed: u64) -> String {
    run_with(seed, CryptoSpec::Bls)
}

#[test]
fn same_seed_gives_a_byte_identical_report() {
    let a = run(7);
    let b = run(7);
    assert_eq!(a, b);
    assert!(a.contains("\"offload\""), "the report is the real one");
}

#[test]
fn another_seed_gives_another_run() {
    assert_ne!(run(7), run(8));
}

#[test]
fn modelled_signatures_report_exactly_what_real_ones_do() {
    // Large scenarios run with keyed hashes instead of pairings; that is only sound if the
    // protocol cannot tell the difference in an honest swarm.
    assert_eq!(run(7), run_with(7, CryptoSpec::Modelled));
}

#[test]
fn modelled_verification_moves_the_figures_only_by_the_missing_proof_bytes() {
    // A few hundred bytes more or less per piece shift the timing of a small swarm, and its
    // offload moves by a couple of points either way from one seed to the next: the modelled
    // hashing must show no bias over several seeds, and no run far off.
    let offloads = |seed| {
        let run = |hashing| {
            let mut scenario = Scenario::parse(SMALL).expect("valid scenario");
            scenario.seed = seed;
            scenario.security.hashing = hashing;
            f2f_sim::run(&scenario, false, &mut |_, _| {})
        };
        let (real, modelled) = (run(HashingSpec::Blake3), run(HashingSpec::Modelled));
        assert_eq!(real.p2p.rebuffer_ratio, modelled.p2p.rebuffer_ratio);
        (real.p2p.offload, modelled.p2p.offload)
    };
    let runs: Vec<(f64, f64)> = (1..=6).map(offloads).collect();
    for &(a, b) in &runs {
        assert!(a > 0.5, "the swarm carried the stream: {a}");
        assert!(
            (a - b).abs() < 0.05,
            "offload {a} with real hashing, {b} modelled"
        );
    }
    let bias = runs.iter().map(|(a, b)| a - b).sum::<f64>() / runs.len() as f64;
    assert!(
        bias.abs() < 0.01,
        "mean offload difference {bias}: {runs:?}"
    );
}

/// Engine steps of different nodes run in parallel when a round has enough of them; how many
/// threads run them must not show in the report. 2,000 viewers fill the rounds.
#[test]
fn the_report_does_not_depend_on_the_number_of_threads() {
    let mut scenario =
        Scenario::parse(include_str!("../../../scenarios/large.toml")).expect("valid scenario");
    scenario.audience.viewers = 2000;
    scenario.audience.join_window_s = 5.0;
    scenario.duration_s = 15.0;
    let on = |threads| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("a thread pool");
        pool.install(|| f2f_sim::run(&scenario, false, &mut |_, _| {}).to_json())
    };
    let one = on(1);
    assert!(one.contains("\"offload\""), "the report is the real one");
    assert_eq!(one, on(2));
    assert_eq!(one, on(3));
}
