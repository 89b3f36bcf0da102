//! A bounded set of peers with random selection: the building block of both HyParView views.

use rand::Rng;

use crate::id::PeerId;

/// A small set of peers (views hold a handful to a few dozen), kept in a `Vec` so that
/// iteration order is deterministic and random picks are cheap.
#[derive(Debug, Clone)]
pub(crate) struct View {
    peers: Vec<PeerId>,
    capacity: usize,
}

impl View {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            peers: Vec::with_capacity(capacity),
            capacity,
        }
    }

    pub(crate) fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity;
    }

    pub(crate) fn contains(&self, peer: &PeerId) -> bool {
        self.peers.contains(peer)
    }

    pub(crate) fn len(&self) -> usize {
        self.peers.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    pub(crate) fn is_full(&self) -> bool {
        self.peers.len() >= self.capacity
    }

    pub(crate) fn peers(&self) -> &[PeerId] {
        &self.peers
    }

    /// Inserts `peer` if there is room; returns whether it is now present.
    pub(crate) fn insert(&mut self, peer: PeerId) -> bool {
        if self.contains(&peer) {
            return true;
        }
        if self.is_full() {
            return false;
        }
        self.peers.push(peer);
        true
    }

    pub(crate) fn remove(&mut self, peer: &PeerId) -> bool {
        match self.peers.iter().position(|p| p == peer) {
            Some(i) => {
                self.peers.swap_remove(i);
                true
            }
            None => false,
        }
    }

    /// A uniformly random member other than those in `except`.
    pub(crate) fn pick<R: Rng>(&self, rng: &mut R, except: &[PeerId]) -> Option<PeerId> {
        let eligible = self.peers.iter().filter(|p| !except.contains(p)).count();
        if eligible == 0 {
            return None;
        }
        let nth = rng.random_range(0..eligible);
        self.peers
            .iter()
            .filter(|p| !except.contains(p))
            .nth(nth)
            .copied()
    }

    /// Removes and returns a random member, preferring members of `prefer` (HyParView evicts the
    /// peers it just sent away in a shuffle first).
    pub(crate) fn evict<R: Rng>(&mut self, rng: &mut R, prefer: &[PeerId]) -> Option<PeerId> {
        if let Some(p) = prefer.iter().find(|p| self.contains(p)).copied() {
            self.remove(&p);
            return Some(p);
        }
        let victim = self.pick(rng, &[])?;
        self.remove(&victim);
        Some(victim)
    }

    /// Up to `n` distinct random members.
    pub(crate) fn sample<R: Rng>(&self, rng: &mut R, n: usize) -> Vec<PeerId> {
        let n = n.min(self.peers.len());
        rand::seq::index::sample(rng, self.peers.len(), n)
            .into_iter()
            .map(|i| self.peers[i])
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;

    fn peer(i: u8) -> PeerId {
        PeerId::from_seed(&[i])
    }

    #[test]
    fn capacity_is_a_hard_bound() {
        let mut v = View::new(2);
        assert!(v.insert(peer(1)));
        assert!(v.insert(peer(2)));
        assert!(!v.insert(peer(3)));
        assert!(
            v.insert(peer(1)),
            "re-inserting a member is not an overflow"
        );
        assert_eq!(v.len(), 2);
    }

    #[test]
    fn evict_prefers_listed_peers() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut v = View::new(4);
        for i in 0..4 {
            v.insert(peer(i));
        }
        assert_eq!(v.evict(&mut rng, &[peer(9), peer(2)]), Some(peer(2)));
        assert!(!v.contains(&peer(2)));
    }

    #[test]
    fn pick_honours_exclusions() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let mut v = View::new(3);
        v.insert(peer(1));
        v.insert(peer(2));
        for _ in 0..20 {
            assert_eq!(v.pick(&mut rng, &[peer(1)]), Some(peer(2)));
        }
        assert_eq!(v.pick(&mut rng, &[peer(1), peer(2)]), None);
    }
}
