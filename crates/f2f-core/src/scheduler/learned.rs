//! A learned peer model: two small online regressions over a neighbour's measurements,
//! trained from this node's own transfer outcomes.
//!
//! - `on_time`: logistic regression, the probability that a request to the peer completes
//!   without falling back to the CDN;
//! - `rate`: linear regression of the log throughput a completed request achieved.
//!
//! The expected arrival is the RTT plus the transfer time at the predicted rate, divided by the
//! predicted success probability, plus the expected failures times what one costs: the wait
//! for a first byte the scheduler allows the request (longer behind a loaded peer's queue). It starts from weights fitted
//! offline on simulator traces (`fitted.rs`, written by `scripts/fit-peer-model`), or from
//! weights that make it the [`BaselineRanker`] ([`LearnedRanker::untrained`]); what it learns
//! online is how far each measurement moves the outcome on this node's network.
//! Plain `f32`, no dependencies: it builds for wasm32 and is deterministic.

use super::ranking::{BaselineRanker, ModelStatus, Outcome, PeerMeasurements, SourceRanker};
use crate::time::Duration;

/// Inputs per candidate: see [`features`].
pub const FEATURES: usize = 11;

/// Learning rate of both regressions.
const LEARNING_RATE: f32 = 0.02;

/// Predicted success below this is taken as this (bounds the estimate of a poor peer).
const MIN_SUCCESS: f32 = 0.05;

/// A group of measurements, for ablation: a model built [`LearnedRanker::without`] one never
/// sees it, in training or in ranking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feature {
    /// Smoothed RTT and its deviation.
    Rtt,
    /// Throughput measured on past transfers.
    Throughput,
    /// The upload capacity and load the peer reports, and our requests in flight to it.
    Bandwidth,
    /// Completed, failed and refused requests.
    Reliability,
    /// Connection age.
    Churn,
}

impl Feature {
    /// `m` as a model without this feature sees it: as if never measured.
    fn hide(self, m: &PeerMeasurements) -> PeerMeasurements {
        let mut m = *m;
        match self {
            Self::Rtt => (m.srtt, m.rttvar) = (None, None),
            Self::Throughput => m.throughput_bps = None,
            Self::Bandwidth => (m.reported_upload_bps, m.load, m.in_flight) = (0.0, 0, 0),
            Self::Reliability => (m.completed, m.failed, m.refused) = (0, 0, 0),
            Self::Churn => m.age = Duration::ZERO,
        }
        m
    }
}

/// The model's weights: what offline fitting produces and the online model starts from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Weights {
    /// Logistic regression of delivery (no fallback), over [`features`].
    pub on_time: [f32; FEATURES],
    /// Linear regression of ln(delivered Mbit/s), over [`features`].
    pub rate: [f32; FEATURES],
}

impl Weights {
    /// The weights that make the model rank exactly as [`BaselineRanker`] does: throughput
    /// shared by the peer's queue (and by ours, which the baseline does not see), a 1-in-10
    /// failure prior, failures and refusals pushing it up.
    pub fn baseline() -> Self {
        let mut on_time = [0.0; FEATURES];
        let mut rate = [0.0; FEATURES];
        on_time[0] = 9f32.ln();
        on_time[5] = -4.0;
        on_time[6] = -2.0;
        rate[1] = 1.0;
        rate[3] = -1.0;
        rate[9] = -1.0;
        Self { on_time, rate }
    }
}

/// The two regressions and how well the rate one has been predicting.
#[derive(Clone, Debug, PartialEq)]
pub struct LearnedRanker {
    /// A feature this model is built without (ablation).
    hidden: Option<Feature>,
    weights: Weights,
    /// Outcomes learnt from.
    observed: u64,
    /// Exponentially weighted mean absolute error of the log-rate prediction.
    rate_error: f32,
}

/// Starts from the weights fitted offline on simulator traces (`fitted.rs`).
impl Default for LearnedRanker {
    fn default() -> Self {
        Self::with_weights(super::fitted::fitted(None), None)
    }
}

/// The model's view of a candidate: `[bias, ln bandwidth (Mb/s), bandwidth measured (0/1),
/// ln(1 + load), srtt (s), failure share, refusal share, rttvar (s), ln(1 + age in minutes),
/// ln(1 + our requests in flight), the peer relays a segment it is still receiving (0/1)]`.
fn features(priors: &BaselineRanker, peer: &PeerMeasurements) -> [f32; FEATURES] {
    let tried = f64::from(peer.completed + peer.failed) + 2.0;
    let srtt = peer.srtt.unwrap_or(priors.rtt_prior).as_secs_f64();
    [
        1.0,
        (priors.bandwidth(peer) / 1e6).ln() as f32,
        f32::from(u8::from(peer.throughput_bps.is_some())),
        f32::from(peer.load).ln_1p(),
        srtt as f32,
        ((f64::from(peer.failed) + 0.2) / tried) as f32,
        (f64::from(peer.refused) / (tried + f64::from(peer.refused))) as f32,
        peer.rttvar.map_or(srtt / 2.0, |v| v.as_secs_f64()) as f32,
        (peer.age.as_secs_f64() / 60.0).ln_1p() as f32,
        f32::from(peer.in_flight).ln_1p(),
        f32::from(u8::from(peer.relaying)),
    ]
}

/// The features of `peer` as a model built without `hidden` sees them.
pub(super) fn features_of(peer: &PeerMeasurements, hidden: Option<Feature>) -> [f32; FEATURES] {
    let seen = hidden.map_or(*peer, |f| f.hide(peer));
    features(&BaselineRanker::default(), &seen)
}

fn dot(w: &[f32; FEATURES], x: &[f32; FEATURES]) -> f32 {
    w.iter().zip(x).map(|(w, x)| w * x).sum()
}

fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

impl LearnedRanker {
    /// A model starting from `weights`, built without `hidden` if given.
    pub fn with_weights(weights: Weights, hidden: Option<Feature>) -> Self {
        Self {
            hidden,
            weights,
            observed: 0,
            rate_error: 0.0,
        }
    }

    /// A model that knows nothing yet: it ranks as [`BaselineRanker`] until it has learnt.
    pub fn untrained() -> Self {
        Self::with_weights(Weights::baseline(), None)
    }

    /// A model that never sees `feature` (to measure what it is worth), starting from weights
    /// fitted without it.
    pub fn without(feature: Feature) -> Self {
        Self::with_weights(super::fitted::fitted(Some(feature)), Some(feature))
    }

    /// The current weights.
    pub fn weights(&self) -> Weights {
        self.weights
    }

    fn x(&self, peer: &PeerMeasurements) -> [f32; FEATURES] {
        features_of(peer, self.hidden)
    }

    /// Outcomes the model has learnt from.
    pub fn observed(&self) -> u64 {
        self.observed
    }

    /// Mean absolute error of the recent log-throughput predictions (0.7 ≈ off by 2×).
    pub fn rate_error(&self) -> f32 {
        self.rate_error
    }

    /// The predicted probability that a request to `peer` completes from it.
    pub fn success(&self, peer: &PeerMeasurements) -> f32 {
        self.success_at(&self.x(peer))
    }

    /// The predicted throughput of a request to `peer`, bit/s.
    pub fn throughput_bps(&self, peer: &PeerMeasurements) -> f64 {
        self.rate_at(&self.x(peer))
    }

    fn success_at(&self, x: &[f32; FEATURES]) -> f32 {
        sigmoid(dot(&self.weights.on_time, x))
    }

    fn rate_at(&self, x: &[f32; FEATURES]) -> f64 {
        f64::from(dot(&self.weights.rate, x).clamp(-12.0, 12.0)).exp() * 1e6
    }
}

impl SourceRanker for LearnedRanker {
    fn peer_eta(&self, peer: &PeerMeasurements, bytes: u64) -> Option<Duration> {
        // Ranked for every candidate of every request: the features are computed once.
        let priors = BaselineRanker::default();
        let seen = self.hidden.map_or(*peer, |f| f.hide(peer));
        let x = features(&priors, &seen);
        let rtt = seen.srtt.unwrap_or(priors.rtt_prior).as_secs_f64();
        let transfer = bytes as f64 * 8.0 / self.rate_at(&x);
        let success = f64::from(self.success_at(&x).max(MIN_SUCCESS));
        // Tried until one succeeds, a peer costs 1/success transfers and (1 - success)/success
        // failures; a failure costs the wait for a first byte that never comes.
        let failures = 1.0 / success - 1.0;
        let failure = seen.first_byte_wait.as_secs_f64();
        Some(Duration::from_secs_f64(
            rtt + transfer / success + failures * failure,
        ))
    }

    fn observe(&mut self, peer: &PeerMeasurements, outcome: Outcome) {
        let x = self.x(peer);
        let delivered = matches!(outcome, Outcome::Delivered { .. });
        let miss = f32::from(u8::from(delivered)) - sigmoid(dot(&self.weights.on_time, &x));
        for (w, x) in self.weights.on_time.iter_mut().zip(&x) {
            *w += LEARNING_RATE * miss * x;
        }
        if let Outcome::Delivered { bytes, elapsed } = outcome {
            let target = (Outcome::rate_bps(bytes, elapsed) / 1e6).max(1e-6).ln() as f32;
            let miss = target - dot(&self.weights.rate, &x);
            for (w, x) in self.weights.rate.iter_mut().zip(&x) {
                *w += LEARNING_RATE * miss * x;
            }
            self.rate_error = 0.99 * self.rate_error + 0.01 * miss.abs();
        }
        self.observed += 1;
    }

    fn status(&self) -> Option<ModelStatus> {
        Some(ModelStatus {
            version: self.observed,
            rate_error: self.rate_error,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(mbps: f64, load: u8) -> PeerMeasurements {
        PeerMeasurements {
            srtt: Some(Duration::from_millis(30)),
            throughput_bps: Some(mbps * 1e6),
            load,
            completed: 10,
            ..PeerMeasurements::default()
        }
    }

    #[test]
    fn untrained_it_ranks_as_the_baseline_does() {
        let (learned, baseline) = (LearnedRanker::untrained(), BaselineRanker::default());
        let candidates = [peer(2.0, 0), peer(20.0, 3), peer(8.0, 1), peer(50.0, 0)];
        let order = |r: &dyn SourceRanker| {
            let mut ix: Vec<usize> = (0..candidates.len()).collect();
            ix.sort_by_key(|&i| r.peer_eta(&candidates[i], 2_000_000));
            ix
        };
        assert_eq!(order(&learned), order(&baseline));
    }

    #[test]
    fn a_failure_costs_the_wait_for_its_first_byte() {
        // Two peers alike but for their record: the one likelier to fail loses more by a long
        // first-byte wait, because each expected failure spends it.
        let model = LearnedRanker::default();
        let reliable = peer(10.0, 0);
        let flaky = PeerMeasurements {
            failed: 20,
            ..reliable
        };
        assert!(model.success(&flaky) < model.success(&reliable));
        let waiting = |m: &PeerMeasurements, ms| PeerMeasurements {
            first_byte_wait: Duration::from_millis(ms),
            ..*m
        };
        let eta = |m: &PeerMeasurements| model.peer_eta(m, 1_000_000).expect("ranked");
        let cost = |m: &PeerMeasurements| eta(&waiting(m, 2_000)) - eta(&waiting(m, 0));
        assert!(cost(&reliable) > Duration::ZERO);
        assert!(cost(&flaky) > cost(&reliable) * 2, "{:?}", cost(&flaky));
    }

    #[test]
    fn it_learns_that_a_loaded_peer_fails() {
        // On this network a peer with a queue never delivers in time; an idle one does, at the
        // rate it measured.
        let mut r = LearnedRanker::untrained();
        let (idle, busy) = (peer(10.0, 0), peer(10.0, 2));
        let before = r.success(&busy);
        for _ in 0..500 {
            r.observe(&busy, Outcome::Failed);
            r.observe(
                &idle,
                Outcome::Delivered {
                    bytes: 1_000_000,
                    elapsed: Duration::from_millis(800),
                },
            );
        }
        assert!(r.success(&busy) < before / 2.0, "{}", r.success(&busy));
        assert!(r.success(&idle) > 0.8, "{}", r.success(&idle));
        let rate = r.throughput_bps(&idle);
        assert!((rate / 10e6 - 1.0).abs() < 0.15, "{rate}");
        assert!(r.rate_error() < 0.5, "{}", r.rate_error());
        assert_eq!(r.observed(), 1000);
        assert!(r.peer_eta(&busy, 1_000_000) > r.peer_eta(&idle, 1_000_000));
    }

    #[test]
    fn it_learns_that_a_relay_sends_no_faster_than_it_receives() {
        // A peer still receiving the segment passes it on at the rate its own source feeds
        // it: here a third of what the same peer sends from a complete copy.
        let mut r = LearnedRanker::untrained();
        let complete = peer(12.0, 0);
        let relaying = PeerMeasurements {
            relaying: true,
            ..complete
        };
        assert_eq!(r.throughput_bps(&relaying), r.throughput_bps(&complete));
        let delivered = |ms| Outcome::Delivered {
            bytes: 1_500_000,
            elapsed: Duration::from_millis(ms),
        };
        for _ in 0..1000 {
            r.observe(&complete, delivered(1_000));
            r.observe(&relaying, delivered(3_000));
        }
        let (fast, slow) = (r.throughput_bps(&complete), r.throughput_bps(&relaying));
        assert!((fast / 12e6 - 1.0).abs() < 0.15, "{fast}");
        assert!((slow / 4e6 - 1.0).abs() < 0.15, "{slow}");
        assert!(r.peer_eta(&complete, 1_000_000) < r.peer_eta(&relaying, 1_000_000));
    }

    #[test]
    fn a_model_without_a_feature_cannot_tell_peers_apart_by_it() {
        let (near, far) = (
            PeerMeasurements {
                srtt: Some(Duration::from_millis(5)),
                ..peer(10.0, 0)
            },
            PeerMeasurements {
                srtt: Some(Duration::from_millis(300)),
                ..peer(10.0, 0)
            },
        );
        let full = LearnedRanker::default();
        assert!(full.peer_eta(&near, 1_000_000) < full.peer_eta(&far, 1_000_000));
        let blind = LearnedRanker::without(Feature::Rtt);
        assert_eq!(
            blind.peer_eta(&near, 1_000_000),
            blind.peer_eta(&far, 1_000_000)
        );
        // Nor learn from it: training on near successes and far failures moves nothing.
        let mut blind = blind;
        for _ in 0..200 {
            blind.observe(&far, Outcome::Failed);
            let delivered = Outcome::Delivered {
                bytes: 1_000_000,
                elapsed: Duration::from_millis(800),
            };
            blind.observe(&near, delivered);
        }
        assert_eq!(blind.success(&near), blind.success(&far));
    }

    #[test]
    fn training_is_deterministic() {
        let train = || {
            let mut r = LearnedRanker::default();
            for i in 0..100u8 {
                let p = peer(f64::from(i % 7) + 1.0, i % 3);
                let outcome = if i % 5 == 0 {
                    Outcome::Failed
                } else {
                    Outcome::Delivered {
                        bytes: 500_000,
                        elapsed: Duration::from_millis(u64::from(i) * 10 + 100),
                    }
                };
                r.observe(&p, outcome);
            }
            r
        };
        assert_eq!(train(), train());
    }
}
