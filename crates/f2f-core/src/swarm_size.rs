//! How many peers are in the swarm: a gossiped k-minimum-values sketch.
//!
//! The CDN budget ("about B peers fetch each new segment from the CDN, whatever the audience")
//! needs the swarm size N: a peer is a first fetcher when its per-segment rank falls below B/N.
//! Each peer hashes its id with the current epoch, and neighbours exchange the k smallest hashes
//! they know. Within a few gossip rounds everyone holds the swarm's k smallest values, and the
//! k-th smallest `v_k` (as a fraction of 2^64) gives N ≈ (k−1)/v_k. Epochs follow the stream's
//! own segment numbering, which all peers share without a common clock, and start from scratch
//! so that departed peers drop out of the estimate.
//!
//! The converged minima of an epoch also name, exactly and without coordination, the few peers
//! with the smallest hashes: the next epoch's first fetchers (see [`SizeSketch::is_among_first`]).

use std::collections::{BTreeMap, BTreeSet};

use crate::id::{PeerId, RenditionId};

/// Sketch parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct SizeConfig {
    /// Number of minima kept (relative error ≈ 1/√(k−2), 26 % at 16). Default 16.
    pub k: usize,
    /// Segments per epoch. Default 15 (30 s of 2 s segments).
    pub epoch_segments: u64,
}

impl Default for SizeConfig {
    fn default() -> Self {
        Self {
            k: 16,
            epoch_segments: 15,
        }
    }
}

/// The sketches of every rendition this peer plays or relays: each rendition is its own
/// sub-swarm (its viewers share its segments), so sizes and first fetchers are per rendition.
#[derive(Debug, Clone)]
pub struct Sketches {
    me: PeerId,
    config: SizeConfig,
    by_rendition: BTreeMap<RenditionId, SizeSketch>,
    /// Renditions this peer plays (the rest it only relays).
    playing: BTreeSet<RenditionId>,
}

/// Renditions whose sketches one peer keeps (a ladder rarely has more rungs).
const MAX_RENDITIONS: usize = 16;

impl Sketches {
    /// No rendition seen yet.
    pub fn new(me: PeerId, config: SizeConfig) -> Self {
        Self {
            me,
            config,
            by_rendition: BTreeMap::new(),
            playing: BTreeSet::new(),
        }
    }

    /// Applies new parameters (remote config).
    pub fn set_config(&mut self, config: SizeConfig) {
        for s in self.by_rendition.values_mut() {
            s.set_config(config.clone());
        }
        self.config = config;
    }

    /// Our playlist listed segment `sequence` of `rendition`: we play it.
    pub fn observe(&mut self, rendition: RenditionId, sequence: u64) {
        self.playing.insert(rendition);
        if let Some(s) = self.sketch_mut(rendition) {
            s.observe_sequence(sequence);
        }
    }

    /// Whether this peer can seed segments (see [`SizeSketch::set_capable`]); counted in the
    /// renditions it plays.
    pub fn set_capable(&mut self, capable: bool) {
        for r in &self.playing {
            if let Some(s) = self.by_rendition.get_mut(r) {
                s.set_capable(capable);
            }
        }
    }

    /// Merges a neighbour's sketch of `rendition`. Renditions we do not play are kept and
    /// relayed, their epochs checked against the newest epoch we know from our own playlists.
    pub fn merge(
        &mut self,
        rendition: RenditionId,
        values: &SketchValues,
    ) -> Result<(), SketchError> {
        if self.playing.contains(&rendition) {
            return match self.by_rendition.get_mut(&rendition) {
                Some(s) => s.merge(values),
                None => Ok(()),
            };
        }
        let Some(reference) = self
            .playing
            .iter()
            .filter_map(|r| self.by_rendition.get(r)?.epoch())
            .max()
        else {
            return Ok(());
        };
        match self.sketch_mut(rendition) {
            Some(s) => s.merge_against(values, reference),
            None => Ok(()),
        }
    }

    /// The sketch of `rendition`, if we keep one.
    pub fn get(&self, rendition: &RenditionId) -> Option<&SizeSketch> {
        self.by_rendition.get(rendition)
    }

    /// Estimated viewers over all renditions we know of.
    pub fn estimate(&self) -> f64 {
        self.by_rendition
            .values()
            .map(SizeSketch::estimate)
            .sum::<f64>()
            .max(1.0)
    }

    /// Estimated viewers of the largest sub-swarm this peer plays in (1 before it plays any):
    /// the segments it uploads are those of the renditions it plays, so that is the swarm its
    /// uploads spread through.
    pub fn playing_estimate(&self) -> f64 {
        self.playing
            .iter()
            .filter_map(|r| self.by_rendition.get(r))
            .map(SizeSketch::estimate)
            .fold(1.0, f64::max)
    }

    /// Changed sketches to gossip.
    pub fn take_updates(&mut self) -> Vec<(RenditionId, SketchValues)> {
        self.by_rendition
            .iter_mut()
            .filter_map(|(r, s)| Some((*r, s.take_update()?)))
            .collect()
    }

    /// Every sketch (to greet a new neighbour).
    pub fn snapshots(&self) -> Vec<(RenditionId, SketchValues)> {
        self.by_rendition
            .iter()
            .filter_map(|(r, s)| Some((*r, s.snapshot()?)))
            .collect()
    }

    fn sketch_mut(&mut self, rendition: RenditionId) -> Option<&mut SizeSketch> {
        if !self.by_rendition.contains_key(&rendition) && self.by_rendition.len() >= MAX_RENDITIONS
        {
            return None;
        }
        let (me, config) = (self.me, self.config.clone());
        Some(
            self.by_rendition
                .entry(rendition)
                .or_insert_with(|| SizeSketch::new(me, config)),
        )
    }
}

/// A sketch a neighbour sent that no honest peer could have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SketchError {
    /// The sketch names an epoch beyond the one after ours.
    #[error("size sketch for epoch {theirs}, ours is {ours}")]
    EpochAhead {
        /// The epoch sent.
        theirs: u64,
        /// Our epoch.
        ours: u64,
    },
}

/// What neighbours exchange: one epoch's smallest hashes, of every peer and of the peers able to
/// seed (see [`SizeSketch::set_capable`]). Both lists ascending, at most `k` long.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SketchValues {
    /// The epoch.
    pub epoch: u64,
    /// Smallest hashes of all peers: the size estimate.
    pub mins: Vec<u64>,
    /// Smallest hashes of capable peers: the next epoch's first fetchers.
    pub capable: Vec<u64>,
}

/// The sketch state of one peer.
#[derive(Debug, Clone)]
pub struct SizeSketch {
    me: PeerId,
    config: SizeConfig,
    current: Option<SketchValues>,
    /// Whether we play this rendition (else we only relay its sketch, without our own hash).
    member: bool,
    /// Whether our own hash entered the current epoch's `capable` list.
    counted_capable: bool,
    capable: bool,
    previous: f64,
    /// The previous epoch's converged capable minima, and our hash if we were among them.
    settled: Option<(Vec<u64>, Option<u64>)>,
    changed: bool,
}

impl SizeSketch {
    /// A sketch that has seen no epoch yet.
    pub fn new(me: PeerId, config: SizeConfig) -> Self {
        Self {
            me,
            config,
            current: None,
            member: false,
            counted_capable: false,
            capable: false,
            previous: 1.0,
            settled: None,
            changed: false,
        }
    }

    /// The current epoch, once a segment number has been seen.
    pub fn epoch(&self) -> Option<u64> {
        self.current.as_ref().map(|c| c.epoch)
    }

    /// The values to gossip, when they changed since the last call.
    pub fn take_update(&mut self) -> Option<SketchValues> {
        if !std::mem::take(&mut self.changed) {
            return None;
        }
        self.current.clone()
    }

    /// The current values (to greet a new neighbour).
    pub fn snapshot(&self) -> Option<SketchValues> {
        self.current.clone()
    }

    /// Whether this peer can seed segments (its uplink comfortably exceeds the media rate).
    /// Only capable peers are named first fetchers, so a slow uplink never roots a swarm-wide
    /// relay tree.
    pub fn set_capable(&mut self, capable: bool) {
        self.capable = capable;
        self.count_capable();
    }

    /// Moves to the epoch of segment `sequence` if it is newer; this peer plays the rendition.
    pub fn observe_sequence(&mut self, sequence: u64) {
        if !self.member {
            self.member = true;
            let k = self.config.k;
            if let Some(cur) = self.current.as_mut() {
                let mine = self.me.rank(cur.epoch);
                self.changed |= merge_mins(&mut cur.mins, &[mine], k);
            }
        }
        self.enter(sequence / self.config.epoch_segments.max(1));
    }

    /// Applies new parameters (remote config) from the next epoch on.
    pub fn set_config(&mut self, config: SizeConfig) {
        self.config = config;
    }

    /// Merges a neighbour's values. Values of an older epoch are ignored; the next epoch is
    /// entered first (a neighbour's playlist refreshed before ours). An epoch further ahead
    /// than that is refused: no honest peer can be there, and accepting it would let one peer
    /// freeze every estimate in the swarm.
    pub fn merge(&mut self, values: &SketchValues) -> Result<(), SketchError> {
        let Some(ours) = self.epoch() else {
            return Ok(());
        };
        self.merge_against(values, ours)
    }

    /// [`Self::merge`] for a rendition this peer does not play, relayed so that its viewers'
    /// sketches meet: `reference` is the newest epoch of a rendition this peer does play.
    fn merge_against(&mut self, values: &SketchValues, ours: u64) -> Result<(), SketchError> {
        if values.epoch > ours.saturating_add(1) {
            return Err(SketchError::EpochAhead {
                theirs: values.epoch,
                ours,
            });
        }
        self.enter(values.epoch);
        let k = self.config.k;
        let Some(cur) = self.current.as_mut().filter(|c| c.epoch == values.epoch) else {
            return Ok(());
        };
        let a = merge_mins(&mut cur.mins, &values.mins, k);
        let b = merge_mins(&mut cur.capable, &values.capable, k);
        self.changed |= a || b;
        Ok(())
    }

    /// Estimated swarm size (≥ 1). Early in an epoch the sketch has not converged and
    /// underestimates, so the previous epoch's figure is used while it is larger.
    pub fn estimate(&self) -> f64 {
        self.current_estimate().max(self.previous)
    }

    /// Whether anything but our own hash went into the sketch: until then the estimate (1) says
    /// nothing about the swarm.
    pub fn is_informed(&self) -> bool {
        let foreign = self.current.as_ref().is_some_and(|c| c.mins.len() > 1);
        self.settled.is_some() || foreign || self.previous > 1.0
    }

    /// Whether this peer was among the `n` capable peers with the smallest hashes of the
    /// previous epoch: every peer evaluates the same converged minima, so exactly `n` peers
    /// (those still here) answer yes. `None` until an epoch has settled.
    pub fn is_among_first(&self, n: usize) -> Option<bool> {
        let (mins, mine) = self.settled.as_ref()?;
        let Some(mine) = mine else { return Some(false) };
        let n = n.clamp(1, mins.len().max(1));
        Some(mins.get(n - 1).is_none_or(|nth| mine <= nth))
    }

    fn current_estimate(&self) -> f64 {
        self.current
            .as_ref()
            .map_or(1.0, |c| estimate_of(&c.mins, self.config.k))
    }

    fn enter(&mut self, epoch: u64) {
        if self.epoch().is_some_and(|e| e >= epoch) {
            return;
        }
        if let Some(old) = self.current.take() {
            self.previous = estimate_of(&old.mins, self.config.k);
            let mine = self.counted_capable.then(|| self.me.rank(old.epoch));
            // Only the epoch just ended names first fetchers; an older one is stale.
            self.settled = (old.epoch + 1 == epoch).then_some((old.capable, mine));
        }
        let mins = if self.member {
            vec![self.me.rank(epoch)]
        } else {
            Vec::new()
        };
        self.current = Some(SketchValues {
            epoch,
            mins,
            capable: Vec::new(),
        });
        self.counted_capable = false;
        self.count_capable();
        self.changed = true;
    }

    fn count_capable(&mut self) {
        if !self.member || !self.capable || self.counted_capable {
            return;
        }
        let k = self.config.k;
        let Some(cur) = self.current.as_mut() else {
            return;
        };
        let mine = self.me.rank(cur.epoch);
        merge_mins(&mut cur.capable, &[mine], k);
        self.counted_capable = true;
        self.changed = true;
    }
}

/// Merges ascending `incoming` into ascending `mins`, keeping the `k` smallest distinct values;
/// returns whether `mins` changed.
fn merge_mins(mins: &mut Vec<u64>, incoming: &[u64], k: usize) -> bool {
    let before = mins.clone();
    for &v in incoming.iter().take(k) {
        if let Err(i) = mins.binary_search(&v) {
            mins.insert(i, v);
        }
    }
    mins.truncate(k);
    *mins != before
}

/// The k-minimum-values estimate of how many distinct hashes `mins` was drawn from.
fn estimate_of(mins: &[u64], k: usize) -> f64 {
    if mins.len() < k {
        return mins.len().max(1) as f64;
    }
    let vk = (mins[k - 1] as f64 + 1.0) / 2f64.powi(64);
    ((k - 1) as f64 / vk).max(k as f64)
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
                    let before = sketch.snapshot();
                    sketch.merge(&snaps[j]).expect("same epoch");
                    changed |= before != sketch.snapshot();
                }
            }
            if !changed {
                return;
            }
        }
        panic!("sketch gossip did not converge");
    }

    #[test]
    fn a_peer_sizes_its_own_rendition_apart_from_the_ones_it_relays() {
        let (played, relayed) = (RenditionId::from_u64(1), RenditionId::from_u64(2));
        let swarm = |from: u32| {
            let mut s: Vec<_> = (from..from + 900).map(sketch).collect();
            s.iter_mut().for_each(|s| s.observe_sequence(0));
            converge(&mut s);
            s[0].snapshot().expect("epoch")
        };
        let mut sketches = Sketches::new(PeerId::from_seed(b"me"), SizeConfig::default());
        assert_eq!(sketches.playing_estimate(), 1.0, "plays nothing yet");
        sketches.observe(played, 0);
        sketches.merge(played, &swarm(0)).unwrap();
        sketches.merge(relayed, &swarm(10_000)).unwrap();
        let own = sketches.get(&played).expect("kept").estimate();
        let other = sketches.get(&relayed).expect("kept").estimate();
        assert!(own > 500.0 && other > 500.0, "{own} {other}");
        assert_eq!(sketches.playing_estimate(), own);
        assert_eq!(sketches.estimate(), own + other);
        // Two sub-swarms of 900 are not one of 1,800: each keeps the smaller swarm's fan-out.
        let config = crate::config::Config::default();
        assert_eq!(config.relay_rate_ratio(sketches.playing_estimate()), 1.5);
        assert_eq!(config.relay_rate_ratio(sketches.estimate()), 1.0);
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
    fn settled_epoch_names_exactly_n_capable_first_fetchers() {
        let mut s: Vec<_> = (0..400).map(sketch).collect();
        // One peer in four has an uplink fit to seed.
        for (i, sk) in s.iter_mut().enumerate() {
            sk.observe_sequence(0);
            sk.set_capable(i % 4 == 0);
        }
        assert!(s[0].is_among_first(3).is_none(), "nothing settled yet");
        converge(&mut s);
        s.iter_mut().for_each(|s| s.observe_sequence(15));
        for n in [1, 3, 8] {
            let firsts: Vec<usize> = (0..s.len())
                .filter(|&i| s[i].is_among_first(n) == Some(true))
                .collect();
            assert_eq!(firsts.len(), n);
            assert!(firsts.iter().all(|i| i % 4 == 0), "only capable peers seed");
        }
    }

    #[test]
    fn stale_epochs_are_ignored() {
        let mut a = sketch(1);
        a.observe_sequence(40);
        let before = a.snapshot();
        let old = SketchValues {
            epoch: 1,
            mins: vec![0, 1, 2],
            capable: vec![0],
        };
        a.merge(&old).expect("old epochs are ignored, not refused");
        assert_eq!(a.snapshot(), before);
    }

    #[test]
    fn far_future_epochs_are_refused() {
        let mut a = sketch(1);
        a.observe_sequence(40);
        let poison = SketchValues {
            epoch: u64::MAX,
            mins: (0..32).collect(),
            capable: vec![0],
        };
        assert!(matches!(
            a.merge(&poison),
            Err(SketchError::EpochAhead { .. })
        ));
        assert!(a.estimate() < 2.0, "estimate untouched");
        let next = SketchValues {
            epoch: 3,
            mins: vec![5],
            capable: vec![],
        };
        a.merge(&next).expect("the next epoch is fine");
        assert_eq!(a.epoch(), Some(3));
    }
}
