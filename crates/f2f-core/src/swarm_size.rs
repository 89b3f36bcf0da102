//! How many peers are in the swarm: a gossiped k-minimum-values sketch.
//!
//! The CDN budget ("about B peers fetch each new segment from the CDN, whatever the audience")
//! needs the swarm size N: a peer is a first fetcher when its per-segment rank falls below B/N.
//! Each peer hashes its id with the current epoch, and neighbours exchange the k smallest hashes
//! they know. Within a few gossip rounds everyone holds the swarm's k smallest values, and the
//! k-th smallest `v_k` (as a fraction of 2^64) gives N ≈ (k−1)/v_k. Epochs follow the stream's
//! own segment numbering, which all peers share without a common clock, and start from scratch
//! so that departed peers drop out of the estimate.

use crate::id::PeerId;

/// Sketch parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct SizeConfig {
    /// Number of minima kept (relative error ≈ 1/√(k−2)). Default 32.
    pub k: usize,
    /// Segments per epoch. Default 15 (30 s of 2 s segments).
    pub epoch_segments: u64,
}

impl Default for SizeConfig {
    fn default() -> Self {
        Self {
            k: 32,
            epoch_segments: 15,
        }
    }
}

/// The sketch state of one peer.
#[derive(Debug, Clone)]
pub struct SizeSketch {
    me: PeerId,
    config: SizeConfig,
    epoch: Option<u64>,
    mins: Vec<u64>,
    previous: f64,
    changed: bool,
}

impl SizeSketch {
    /// A sketch that has seen no epoch yet.
    pub fn new(me: PeerId, config: SizeConfig) -> Self {
        Self {
            me,
            config,
            epoch: None,
            mins: Vec::new(),
            previous: 1.0,
            changed: false,
        }
    }

    /// The current epoch, once a segment number has been seen.
    pub fn epoch(&self) -> Option<u64> {
        self.epoch
    }

    /// The values to gossip, when they changed since the last call.
    pub fn take_update(&mut self) -> Option<(u64, Vec<u64>)> {
        if !std::mem::take(&mut self.changed) {
            return None;
        }
        Some((self.epoch?, self.mins.clone()))
    }

    /// The current values (to greet a new neighbour).
    pub fn snapshot(&self) -> Option<(u64, Vec<u64>)> {
        Some((self.epoch?, self.mins.clone()))
    }

    /// Moves to the epoch of segment `sequence` if it is newer.
    pub fn observe_sequence(&mut self, sequence: u64) {
        self.enter(sequence / self.config.epoch_segments.max(1));
    }

    /// Merges a neighbour's minima. Values of an older epoch are ignored; a newer epoch is
    /// entered first.
    pub fn merge(&mut self, epoch: u64, mins: &[u64]) {
        self.enter(epoch);
        if Some(epoch) != self.epoch {
            return;
        }
        let before = self.mins.clone();
        for &v in mins.iter().take(self.config.k) {
            if let Err(i) = self.mins.binary_search(&v) {
                self.mins.insert(i, v);
            }
        }
        self.mins.truncate(self.config.k);
        if self.mins != before {
            self.changed = true;
        }
    }

    /// Estimated swarm size (≥ 1). Early in an epoch the sketch has not converged and
    /// underestimates, so the previous epoch's figure is used while it is larger.
    pub fn estimate(&self) -> f64 {
        self.current().max(self.previous)
    }

    fn current(&self) -> f64 {
        let k = self.config.k;
        if self.mins.len() < k {
            return self.mins.len().max(1) as f64;
        }
        let vk = (self.mins[k - 1] as f64 + 1.0) / 2f64.powi(64);
        ((k - 1) as f64 / vk).max(k as f64)
    }

    fn enter(&mut self, epoch: u64) {
        if self.epoch.is_some_and(|e| e >= epoch) {
            return;
        }
        if self.epoch.is_some() {
            self.previous = self.current();
        }
        self.epoch = Some(epoch);
        self.mins = vec![self.me.rank(epoch)];
        self.changed = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sketch(i: u32) -> SizeSketch {
        SizeSketch::new(PeerId::from_seed(&i.to_le_bytes()), SizeConfig::default())
    }

    /// Gossips full sketches around a ring with chords until nothing changes.
    fn converge(sketches: &mut [SizeSketch]) {
        let n = sketches.len();
        for _round in 0..64 {
            let snaps: Vec<_> = sketches
                .iter()
                .map(|s| s.snapshot().expect("epoch"))
                .collect();
            let mut changed = false;
            for (i, sketch) in sketches.iter_mut().enumerate() {
                for j in [(i + 1) % n, (i * 7 + 3) % n] {
                    let before = sketch.mins.clone();
                    sketch.merge(snaps[j].0, &snaps[j].1);
                    changed |= before != sketch.mins;
                }
            }
            if !changed {
                return;
            }
        }
        panic!("sketch gossip did not converge");
    }

    #[test]
    fn estimates_within_forty_percent() {
        for n in [10u32, 300, 3000] {
            let mut s: Vec<_> = (0..n).map(sketch).collect();
            s.iter_mut().for_each(|s| s.observe_sequence(0));
            converge(&mut s);
            let est = s[0].estimate();
            let err = (est - f64::from(n)).abs() / f64::from(n);
            assert!(err < 0.4, "n={n} est={est}");
        }
    }

    #[test]
    fn a_new_epoch_forgets_departed_peers() {
        let mut s: Vec<_> = (0..2000).map(sketch).collect();
        s.iter_mut().for_each(|s| s.observe_sequence(0));
        converge(&mut s);
        s.truncate(500);
        s.iter_mut().for_each(|s| s.observe_sequence(15));
        converge(&mut s);
        // The previous epoch still counts as a floor until the epoch after.
        s.iter_mut().for_each(|s| s.observe_sequence(30));
        converge(&mut s);
        let est = s[0].estimate();
        assert!((est - 500.0).abs() / 500.0 < 0.4, "est={est}");
    }

    #[test]
    fn stale_epochs_are_ignored() {
        let mut a = sketch(1);
        a.observe_sequence(40);
        let before = a.mins.clone();
        a.merge(1, &[0, 1, 2]);
        assert_eq!(a.mins, before);
    }
}
