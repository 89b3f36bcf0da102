//! Segments held for the player and for serving peers, bounded by count.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;

use crate::id::SegmentKey;
use crate::integrity::{Hashing, Outboard, piece_bytes};
use crate::scheduler::ByteSources;
use crate::segment::SegmentData;

#[derive(Debug)]
struct Held {
    data: SegmentData,
    /// Where its bytes came from (reported again when it is loaded later).
    sources: ByteSources,
    /// Its tree, to encode verifiable pieces: from the download when every byte came verified
    /// from peers, otherwise hashed when the segment is first served.
    tree: Option<Outboard>,
}

#[derive(Debug)]
pub(crate) struct Store {
    held: BTreeMap<SegmentKey, Held>,
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
        self.held.get(key).map(|h| &h.data)
    }

    pub(crate) fn get_with_sources(&self, key: &SegmentKey) -> Option<(&SegmentData, ByteSources)> {
        self.held.get(key).map(|h| (&h.data, h.sources))
    }

    /// The encoded piece of up to `max` bytes of `key` from `offset` (whole chunk groups, or to
    /// the end), and where it ends.
    pub(crate) fn piece_at(
        &mut self,
        key: &SegmentKey,
        offset: u64,
        max: u64,
        hashing: &dyn Hashing,
    ) -> Option<(Bytes, u64)> {
        let h = self.held.get_mut(key)?;
        let size = h.data.len();
        let (bytes, end) = piece_bytes(&h.data, 0, offset, max, size, size)?;
        let tree = h.tree.get_or_insert_with(|| hashing.outboard(&h.data));
        hashing.encode(tree, offset, &bytes).ok().map(|e| (e, end))
    }

    pub(crate) fn contains(&self, key: &SegmentKey) -> bool {
        self.held.contains_key(key)
    }

    /// Keys held, oldest first.
    pub(crate) fn keys(&self) -> impl DoubleEndedIterator<Item = &SegmentKey> {
        self.order.iter()
    }

    /// Holds `data`, evicting the oldest segments beyond capacity.
    pub(crate) fn insert(
        &mut self,
        key: SegmentKey,
        data: SegmentData,
        sources: ByteSources,
        tree: Option<Outboard>,
    ) {
        let held = Held {
            data,
            sources,
            tree,
        };
        if self.held.insert(key, held).is_none() {
            self.order.push_back(key);
        }
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.held.remove(&old);
            }
        }
    }

    /// Drops `key` (its bytes turned out false).
    pub(crate) fn remove(&mut self, key: &SegmentKey) {
        if self.held.remove(key).is_some() {
            self.order.retain(|k| k != key);
        }
    }

    pub(crate) fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::test_key as key;

    #[test]
    fn evicts_oldest_first() {
        let mut s = Store::new(2);
        for i in 0..3 {
            s.insert(key(i), SegmentData::new(), ByteSources::default(), None);
        }
        assert!(!s.contains(&key(0)));
        assert!(s.contains(&key(1)) && s.contains(&key(2)));
        assert_eq!(s.keys().copied().collect::<Vec<_>>(), vec![key(1), key(2)]);
    }
}
