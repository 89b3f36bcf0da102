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
    /// Smoothed delivered throughput of past transfers, bit/s, if any completed.
    pub throughput_bps: Option<f64>,
    /// The upload capacity the peer reported, bit/s (0 = unknown).
    pub reported_upload_bps: f64,
    /// Uploads the peer said it is serving or queueing.
    pub load: u8,
    /// Completed transfers from this peer.
    pub completed: u32,
    /// Transfers from this peer that stalled, were refused or missed their deadline.
    pub failed: u32,
}

/// Ranks sources by expected delivery time.
pub trait SourceRanker: std::fmt::Debug + Send + Sync {
    /// Expected time for the peer to deliver `bytes`, or `None` to rule it out.
    fn peer_eta(&self, peer: &PeerMeasurements, bytes: u64) -> Option<Duration>;
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

impl SourceRanker for BaselineRanker {
    fn peer_eta(&self, peer: &PeerMeasurements, bytes: u64) -> Option<Duration> {
        let rtt = peer.srtt.unwrap_or(self.rtt_prior);
        let rate = peer
            .throughput_bps
            .or((peer.reported_upload_bps > 0.0).then_some(peer.reported_upload_bps))
            .unwrap_or(self.throughput_prior_bps)
            .max(1.0);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> PeerMeasurements {
        PeerMeasurements {
            srtt: Some(Duration::from_millis(40)),
            throughput_bps: Some(20e6),
            reported_upload_bps: 0.0,
            load: 0,
            completed: 10,
            failed: 0,
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
    fn priors_apply_to_unmeasured_peers() {
        let r = BaselineRanker::default();
        let fresh = PeerMeasurements {
            srtt: None,
            throughput_bps: None,
            reported_upload_bps: 0.0,
            load: 0,
            completed: 0,
            failed: 0,
        };
        let eta = r.peer_eta(&fresh, 1_000_000).expect("ranked").as_secs_f64();
        // 100 ms + 1 s at 8 Mb/s, inflated by the prior failure rate of 1 in 10.
        assert!((eta - (0.1 + 1.0 / 0.9)).abs() < 1e-6, "{eta}");
    }
}
