//! Who among our neighbours announced which segment: indexed by segment, because every
//! question the engine asks is about one segment ("who holds it?", "who has not heard?").

use std::collections::BTreeMap;

use crate::id::{PeerId, SegmentKey};

/// Announcements for the most recent segments (oldest forgotten first).
#[derive(Debug)]
pub(crate) struct Availability {
    /// Per segment: announcing peers, and whether their copy is complete (else still arriving).
    by_key: BTreeMap<SegmentKey, Vec<(PeerId, bool)>>,
    /// Segments remembered.
    capacity: usize,
}

impl Availability {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            by_key: BTreeMap::new(),
            capacity: capacity.max(1),
        }
    }

    pub(crate) fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity.max(1);
    }

    /// `peer` holds `key` (`complete`) or is receiving it. A complete copy is never downgraded
    /// by a late partial announcement.
    pub(crate) fn announce(&mut self, peer: PeerId, key: SegmentKey, complete: bool) {
        let holders = self.by_key.entry(key).or_default();
        match holders.iter_mut().find(|(p, _)| *p == peer) {
            Some((_, c)) => *c |= complete,
            None => holders.push((peer, complete)),
        }
        while self.by_key.len() > self.capacity {
            self.by_key.pop_first();
        }
    }

    /// Peers that announced `key`.
    pub(crate) fn holders(&self, key: &SegmentKey) -> &[(PeerId, bool)] {
        self.by_key.get(key).map_or(&[], Vec::as_slice)
    }

    /// Whether `peer` announced `key`.
    pub(crate) fn announced(&self, peer: &PeerId, key: &SegmentKey) -> bool {
        self.holders(key).iter().any(|(p, _)| p == peer)
    }

    /// `peer` said it does not hold `key` (after all).
    pub(crate) fn forget(&mut self, peer: &PeerId, key: &SegmentKey) {
        if let Some(holders) = self.by_key.get_mut(key) {
            holders.retain(|(p, _)| p != peer);
        }
    }

    /// `peer` is no longer a data neighbour.
    pub(crate) fn forget_peer(&mut self, peer: &PeerId) {
        for holders in self.by_key.values_mut() {
            holders.retain(|(p, _)| p != peer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::test_key as key;

    #[test]
    fn complete_copies_are_not_downgraded_and_old_segments_are_forgotten() {
        let (a, b) = (PeerId::from_seed(b"a"), PeerId::from_seed(b"b"));
        let mut av = Availability::new(2);
        av.announce(a, key(1), true);
        av.announce(a, key(1), false);
        av.announce(b, key(1), false);
        assert_eq!(av.holders(&key(1)), &[(a, true), (b, false)]);
        av.announce(a, key(2), false);
        av.announce(a, key(3), false);
        assert!(av.holders(&key(1)).is_empty(), "oldest segment forgotten");
        av.forget_peer(&a);
        assert!(!av.announced(&a, &key(3)));
    }
}
