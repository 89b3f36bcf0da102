//! # f2f-sim — a deterministic swarm simulator
//!
//! Runs many real [`f2f_core::engine::Engine`]s in virtual time over modelled links, a modelled
//! CDN and modelled players, and reports what a streaming engineer asks first: offload, rebuffer
//! ratio, start-up time, join-to-first-P2P-byte, distance to the live edge and CDN egress over
//! time — next to the same scenario run CDN-only.
//!
//! Same scenario and seed ⇒ byte-identical report. Payloads are shared `bytes::Bytes` (one
//! allocation per segment), so ten thousand viewers fit in memory.
//!
//! What is *not* simulated: the WebRTC transport itself (connections open after two round trips
//! and are ordered and reliable), and CPU time.

mod attack;
mod crypto;
mod link;
mod player;
mod queue;
mod report;
mod scenario;
mod source;
mod window;
mod world;

use f2f_core::config::SourcePreference;

pub use report::{
    AttackReport, CdnFetches, ReceiptReport, Report, RunReport, Summary, TopologyReport,
    ranker_table, seed_table,
};
pub use scenario::{
    AudienceSpec, CdnSpec, CryptoSpec, Dist, EngineSpec, FlakySpec, GeoSpec, HashingSpec,
    MassLeave, MixPart, NetworkSpec, PlayerSpec, RankerSpec, RenditionSpec, Scenario,
    ScenarioError, SecuritySpec, SourceSpec,
};

/// Runs `scenario` once with every node ranking as the untrained learned model (the baseline's
/// ranking) and returns each ranked peer request with the measurements it was ranked on and how
/// it ended: the traces the learned model's starting weights are fitted on.
pub fn outcomes(
    scenario: &Scenario,
    progress: &mut (dyn FnMut(f64) + Send),
) -> Vec<(
    f2f_core::scheduler::PeerMeasurements,
    f2f_core::scheduler::Outcome,
)> {
    let log = std::sync::Arc::default();
    world::World::new(scenario, SourcePreference::Auto)
        .record(std::sync::Arc::clone(&log))
        .run("p2p", progress);
    std::sync::Arc::try_unwrap(log)
        .expect("the run dropped its engines and their rankers")
        .into_inner()
        .expect("no ranker panicked while holding the log")
}

/// Runs `scenario` with P2P and, when `baseline` is set, again CDN-only.
///
/// `progress(run, fraction)` is called as virtual time advances (run 0: P2P, run 1: baseline,
/// run 2: the honest run of a scenario with attackers).
pub fn run(
    scenario: &Scenario,
    baseline: bool,
    progress: &mut (dyn FnMut(usize, f64) + Send),
) -> Report {
    let world = world::World::new(scenario, SourcePreference::Auto);
    let upload_bound = world.upload_bound();
    let p2p = world.run("p2p", &mut |f| progress(0, f));
    let honest = scenario.security.has_attackers().then(|| {
        let mut honest = scenario.clone();
        honest.security = scenario.security.honest();
        world::World::new(&honest, SourcePreference::Auto).run("honest", &mut |f| progress(2, f))
    });
    let baseline = baseline.then(|| {
        world::World::new(scenario, SourcePreference::CdnOnly)
            .run("cdn-only", &mut |f| progress(1, f))
    });
    Report {
        scenario: scenario.name.clone(),
        seed: scenario.seed,
        duration_s: scenario.duration_s,
        bitrate_kbps: scenario.source.mean_bitrate_kbps(),
        upload_bound,
        p2p,
        honest,
        baseline,
    }
}
