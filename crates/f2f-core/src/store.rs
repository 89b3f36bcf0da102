//! Segments held for the player and for serving peers, bounded by count.

use std::collections::{BTreeMap, VecDeque};

use crate::id::SegmentKey;
use crate::scheduler::ByteSources;
use crate::segment::SegmentData;

#[derive(Debug)]
pub(crate) struct Store {
    /// Each segment with where its bytes came from (reported again when it is loaded later).
    held: BTreeMap<SegmentKey, (SegmentData, ByteSources)>,
    order: VecDeque<SegmentKey>,
    capacity: usize,
}

impl Store {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            held: BTreeMap::new(),
            order: VecDeque::new(),
            capacity,
        }
    }

    pub(crate) fn get(&self, key: &SegmentKey) -> Option<&SegmentData> {
        self.held.get(key).map(|(d, _)| d)
    }

    pub(crate) fn get_with_sources(&self, key: &SegmentKey) -> Option<(&SegmentData, ByteSources)> {
        self.held.get(key).map(|(d, s)| (d, *s))
    }

    pub(crate) fn contains(&self, key: &SegmentKey) -> bool {
        self.held.contains_key(key)
    }

    /// Keys held, oldest first.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &SegmentKey> {
        self.order.iter()
    }

    /// Holds `data`, evicting the oldest segments beyond capacity.
    pub(crate) fn insert(&mut self, key: SegmentKey, data: SegmentData, sources: ByteSources) {
        if self.held.insert(key, (data, sources)).is_none() {
            self.order.push_back(key);
        }
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.held.remove(&old);
            }
        }
    }

    pub(crate) fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::{RenditionId, SegmentPosition, SwarmId, VariantTag};

    fn key(seq: u64) -> SegmentKey {
        SegmentKey {
            swarm: SwarmId::from_canonical("s"),
            rendition: RenditionId::from_canonical("r"),
            position: SegmentPosition::Sequence(seq),
            variant: VariantTag::from_u64(0),
        }
    }

    #[test]
    fn evicts_oldest_first() {
        let mut s = Store::new(2);
        for i in 0..3 {
            s.insert(key(i), SegmentData::new(), ByteSources::default());
        }
        assert!(!s.contains(&key(0)));
        assert!(s.contains(&key(1)) && s.contains(&key(2)));
        assert_eq!(s.keys().copied().collect::<Vec<_>>(), vec![key(1), key(2)]);
    }
}
