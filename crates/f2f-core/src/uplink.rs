//! This node's upload capacity, measured from how fast connections drain.
//!
//! Neighbours rank sources by it, so it must come from what the transport actually did rather
//! than from configuration. While an upload keeps a connection's send buffer above the low-water
//! mark, the bytes that left across drain reports (added up until there are enough to measure)
//! over the time they took is the uplink's rate (or a lower bound, when the buffer ran dry in
//! between). The estimate keeps the best recent sample and lets it decay, so a long idle spell
//! does not read as a slow link.

use crate::time::{Duration, Instant};

/// Samples over less data than this are mostly noise.
const MIN_SAMPLE_BYTES: u64 = 32 * 1024;
/// The estimate halves when no better sample arrives for this long.
const HALF_LIFE: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Uplink {
    best_bps: f64,
    at: Option<Instant>,
}

impl Uplink {
    /// `bytes` left a connection's buffer over `elapsed`. Returns false when that is too
    /// little to measure: the caller keeps adding to it.
    pub(crate) fn sample(&mut self, bytes: u64, elapsed: Duration, now: Instant) -> bool {
        if bytes < MIN_SAMPLE_BYTES || elapsed.is_zero() {
            return false;
        }
        let bps = bytes as f64 * 8.0 / elapsed.as_secs_f64();
        let current = self.estimate_bps(now);
        if bps >= current {
            self.best_bps = bps;
            self.at = Some(now);
        }
        true
    }

    /// Current estimate in bit/s (0 before any sample).
    pub(crate) fn estimate_bps(&self, now: Instant) -> f64 {
        let Some(at) = self.at else { return 0.0 };
        let age = now.saturating_duration_since(at).as_secs_f64();
        self.best_bps * 0.5f64.powf(age / HALF_LIFE.as_secs_f64())
    }

    /// The estimate as carried on the wire.
    pub(crate) fn kbps(&self, now: Instant) -> u32 {
        (self.estimate_bps(now) / 1000.0).min(f64::from(u32::MAX)) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_best_recent_sample_and_decays() {
        let t0 = Instant::now();
        let mut u = Uplink::default();
        assert_eq!(u.kbps(t0), 0);
        assert!(u.sample(250_000, Duration::from_millis(100), t0)); // 20 Mb/s
        assert!(u.sample(250_000, Duration::from_millis(400), t0)); // 5 Mb/s: ran dry
        assert_eq!(u.kbps(t0), 20_000);
        assert_eq!(u.kbps(t0 + HALF_LIFE), 10_000);
        // Too small to count: the caller keeps adding.
        assert!(!u.sample(1_000, Duration::from_millis(1), t0));
        assert_eq!(u.kbps(t0), 20_000);
    }
}
