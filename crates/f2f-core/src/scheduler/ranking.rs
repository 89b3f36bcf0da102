//! Source ranking: how long a source is expected to take to deliver some bytes.
//!
//! The scheduler asks a [`SourceRanker`] for every candidate and picks the earliest expected
//! arrival, so a learned model can replace [`BaselineRanker`] without touching the scheduler.

use crate::time::Duration;

/// What the engine knows about one neighbour when it ranks it (`Default`: nothing yet).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PeerMeasurements {
    /// Smoothed round-trip time, if measured.
    pub srtt: Option<Duration>,
    /// Its mean deviation (RFC 6298 `RTTVAR`), if measured.
    pub rttvar: Option<Duration>,
    /// Smoothed delivered throughput of past transfers, bit/s, if any completed.
    pub throughput_bps: Option<f64>,
    /// The upload capacity the peer reported, bit/s (0 = unknown).
    pub reported_upload_bps: f64,
    /// Uploads the peer said it is serving or queueing.
    pub load: u8,
    /// Our own requests to the peer not finished yet: fresher than its `load`, which it
    /// reports only with its announcements.
    pub in_flight: u8,
    /// Completed transfers from this peer.
    pub completed: u32,
    /// Transfers from this peer that stalled, were refused or missed their deadline.
    pub failed: u32,
    /// Requests the peer answered `Absent` (busy, or no longer held).
    pub refused: u32,
    /// How long the connection has been up: young connections are where churn shows.
    pub age: Duration,
    /// Not a measurement but the request's: how long it may wait for the peer's first byte
    /// before the scheduler gives it up, and so what choosing a peer that fails costs (zero
    /// when the peer is ranked for no particular request).
    pub first_byte_wait: Duration,
    /// Not a measurement but the request's: the peer is still receiving the segment and
    /// relays it as it arrives, so it can send no faster than its own source sends to it.
    pub relaying: bool,
}

/// How a request to a peer ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The peer delivered `bytes` in `elapsed`: the transfer's throughput, as the simulator
    /// reports it.
    Delivered {
        /// The bytes of the range after its first piece (all of a range that came in one
        /// piece): a piece arrives whole, so its own bytes took no measurable time.
        bytes: u64,
        /// From the first piece to the last, so waiting in the peer's queue is not in it (from
        /// the request for a range that came in one piece).
        elapsed: Duration,
    },
    /// The transfer fell back to another source (stalled, too slow, peer lost).
    Failed,
}

impl Outcome {
    /// The rate a delivery achieved, bit/s (elapsed floored at 1 ms).
    pub fn rate_bps(bytes: u64, elapsed: Duration) -> f64 {
        bytes as f64 * 8.0 / elapsed.as_secs_f64().max(1e-3)
    }
}

/// Ranks sources by expected delivery time.
pub trait SourceRanker: std::fmt::Debug + Send + Sync {
    /// Expected time for the peer to deliver `bytes`, or `None` to rule it out.
    fn peer_eta(&self, peer: &PeerMeasurements, bytes: u64) -> Option<Duration>;

    /// How a request ranked with `peer` (the measurements as they were when it was sent)
    /// ended. Fixed rules ignore it; a learned model trains on it.
    fn observe(&mut self, _peer: &PeerMeasurements, _outcome: Outcome) {}

    /// How a learned model is doing, for telemetry (`None`: a fixed rule).
    fn status(&self) -> Option<ModelStatus> {
        None
    }
}

/// A learned ranker's state, as telemetry reports it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ModelStatus {
    /// Outcomes learnt from: every one changes the weights.
    pub version: u64,
    /// Recent mean absolute error of its log-throughput predictions.
    pub rate_error: f32,
}

/// Expected arrival from measured RTT and throughput, falling back to priors; unreliable peers
/// and loaded peers are penalised. The rule the learned model must beat.
#[derive(Clone, Debug, PartialEq)]
pub struct BaselineRanker {
    /// RTT assumed before one is measured.
    pub rtt_prior: Duration,
    /// Throughput assumed before one is measured, bit/s.
    pub throughput_prior_bps: f64,
}

impl Default for BaselineRanker {
    fn default() -> Self {
        Self {
            rtt_prior: Duration::from_millis(100),
            throughput_prior_bps: 8_000_000.0,
        }
    }
}

impl BaselineRanker {
    /// The peer's bandwidth to us, bit/s: measured, else reported, else the prior.
    pub(super) fn bandwidth(&self, peer: &PeerMeasurements) -> f64 {
        peer.throughput_bps
            .or((peer.reported_upload_bps > 0.0).then_some(peer.reported_upload_bps))
            .unwrap_or(self.throughput_prior_bps)
            .max(1.0)
    }
}

impl SourceRanker for BaselineRanker {
    fn peer_eta(&self, peer: &PeerMeasurements, bytes: u64) -> Option<Duration> {
        let rtt = peer.srtt.unwrap_or(self.rtt_prior);
        let rate = self.bandwidth(peer);
        // Each upload already in progress or queued shares the peer's uplink.
        let share = f64::from(peer.load) + 1.0;
        let transfer = bytes as f64 * 8.0 * share / rate;
        // A smoothed failure rate (prior: 1 in 10) inflates the estimate: a flaky peer must be
        // much faster to be worth the risk of a fallback.
        let p_fail =
            (f64::from(peer.failed) + 0.2) / (f64::from(peer.completed + peer.failed) + 2.0);
        let penalty = 1.0 / (1.0 - p_fail.min(0.9));
        Some(Duration::from_secs_f64(
            rtt.as_secs_f64() + transfer * penalty,
        ))
    }
}

/// RTT-only selection, for comparison: the nearest peer first, whatever its throughput,
/// load or record. Transfer time assumes the prior rate for every peer.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RttRanker {
    /// The priors, as the baseline has them.
    pub priors: BaselineRanker,
}

impl SourceRanker for RttRanker {
    fn peer_eta(&self, peer: &PeerMeasurements, bytes: u64) -> Option<Duration> {
        let rtt = peer.srtt.unwrap_or(self.priors.rtt_prior);
        let transfer = bytes as f64 * 8.0 / self.priors.throughput_prior_bps;
        Some(rtt + Duration::from_secs_f64(transfer))
    }
}

/// Bandwidth-weighted random selection, the rule p2p-media-loader uses, for comparison: each
/// peer wins with probability proportional to its bandwidth (measured, else reported, else
/// the prior). The estimate is the transfer time scaled by an exponential draw, so the
/// earliest of several is peer *i* with probability `bw_i / Σ bw`, and on average it is the
/// expected transfer time. Deterministic given its seed and the order of the calls.
#[derive(Debug)]
pub struct BandwidthLottery {
    priors: BaselineRanker,
    state: std::sync::atomic::AtomicU64,
}

impl BandwidthLottery {
    /// A lottery drawing from `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            priors: BaselineRanker::default(),
            state: std::sync::atomic::AtomicU64::new(seed),
        }
    }

    /// A uniform draw in (0, 1] (SplitMix64).
    fn uniform(&self) -> f64 {
        use std::sync::atomic::Ordering;
        let mut z = (self.state)
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        ((z >> 11) + 1) as f64 / (1u64 << 53) as f64
    }
}

impl SourceRanker for BandwidthLottery {
    fn peer_eta(&self, peer: &PeerMeasurements, bytes: u64) -> Option<Duration> {
        let bandwidth = self.priors.bandwidth(peer);
        let draw = -self.uniform().ln();
        Some(Duration::from_secs_f64(
            bytes as f64 * 8.0 / bandwidth * draw,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> PeerMeasurements {
        PeerMeasurements {
            srtt: Some(Duration::from_millis(40)),
            throughput_bps: Some(20e6),
            completed: 10,
            ..PeerMeasurements::default()
        }
    }

    #[test]
    fn load_and_failures_push_a_peer_back() {
        let r = BaselineRanker::default();
        let base = r.peer_eta(&peer(), 1_000_000).expect("ranked");
        let loaded = r
            .peer_eta(&PeerMeasurements { load: 2, ..peer() }, 1_000_000)
            .expect("ranked");
        let flaky = r
            .peer_eta(
                &PeerMeasurements {
                    failed: 10,
                    ..peer()
                },
                1_000_000,
            )
            .expect("ranked");
        assert!(loaded > base * 2);
        assert!(flaky > base);
    }

    #[test]
    fn rtt_only_prefers_the_nearest_peer_however_slow() {
        let r = RttRanker::default();
        let near_slow = PeerMeasurements {
            srtt: Some(Duration::from_millis(5)),
            throughput_bps: Some(1e6),
            ..peer()
        };
        let far_fast = PeerMeasurements {
            srtt: Some(Duration::from_millis(80)),
            throughput_bps: Some(100e6),
            ..peer()
        };
        assert!(r.peer_eta(&near_slow, 1_000_000) < r.peer_eta(&far_fast, 1_000_000));
    }

    #[test]
    fn the_lottery_picks_peers_in_proportion_to_their_bandwidth() {
        let r = BandwidthLottery::new(7);
        let with = |bps| PeerMeasurements {
            throughput_bps: Some(bps),
            ..peer()
        };
        let (slow, fast) = (with(10e6), with(30e6));
        let draws: u32 = 20_000;
        let fast_wins = (0..draws)
            .filter(|_| r.peer_eta(&fast, 1_000_000) < r.peer_eta(&slow, 1_000_000))
            .count();
        let share = fast_wins as f64 / f64::from(draws);
        assert!((share - 0.75).abs() < 0.02, "{share}");
    }

    #[test]
    fn priors_apply_to_unmeasured_peers() {
        let r = BaselineRanker::default();
        let fresh = PeerMeasurements::default();
        let eta = r.peer_eta(&fresh, 1_000_000).expect("ranked").as_secs_f64();
        // 100 ms + 1 s at 8 Mb/s, inflated by the prior failure rate of 1 in 10.
        assert!((eta - (0.1 + 1.0 / 0.9)).abs() < 1e-6, "{eta}");
    }
}
