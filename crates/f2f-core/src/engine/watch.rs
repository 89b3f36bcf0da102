//! Which renditions this node plays, and whether its segment keys match its neighbours'.
//!
//! A neighbour's `Have` for the next segment of a rendition we play usually arrives before our
//! own playlist refresh lists it. When our keys have been matching the swarm's (no per-viewer
//! variant), that announcement is enough to start fetching the segment from the swarm early.

use std::collections::VecDeque;

use crate::id::{RenditionId, SegmentKey, SegmentPosition, VariantTag};

/// Segments after the newest listed one that an announcement may prefetch.
const PREFETCH_AHEAD: u64 = 2;
/// Listed keys remembered per rendition, to compare with announcements.
const MEMORY: usize = 16;

// Small sorted vectors, not maps: every neighbour's announcement of every segment is checked
// here, and a viewer plays one or two renditions and remembers sixteen keys of each.
#[derive(Debug)]
struct Rendition {
    id: RenditionId,
    /// Our recent keys' variant tags, by ascending sequence number.
    listed: VecDeque<(u64, VariantTag)>,
    /// Whether announcements matched our own keys (`None`: not compared yet).
    shared: Option<bool>,
}

impl Rendition {
    fn newest(&self) -> Option<u64> {
        self.listed.back().map(|(seq, _)| *seq)
    }

    fn variant(&self, seq: u64) -> Option<VariantTag> {
        let i = self.listed.binary_search_by_key(&seq, |(s, _)| *s).ok()?;
        Some(self.listed[i].1)
    }
}

#[derive(Debug, Default)]
pub(crate) struct Watch {
    renditions: Vec<Rendition>,
}

impl Watch {
    fn rendition(&self, id: RenditionId) -> Option<&Rendition> {
        self.renditions.iter().find(|r| r.id == id)
    }

    /// Our playlist listed `seq` of `rendition` with `variant`.
    pub(crate) fn listed(&mut self, rendition: RenditionId, seq: u64, variant: VariantTag) {
        let r = match self.renditions.iter().position(|r| r.id == rendition) {
            Some(i) => &mut self.renditions[i],
            None => {
                self.renditions.push(Rendition {
                    id: rendition,
                    listed: VecDeque::with_capacity(MEMORY + 1),
                    shared: None,
                });
                self.renditions.last_mut().expect("just pushed")
            }
        };
        match r.listed.binary_search_by_key(&seq, |(s, _)| *s) {
            Ok(i) => r.listed[i].1 = variant,
            Err(i) => r.listed.insert(i, (seq, variant)),
        }
        while r.listed.len() > MEMORY {
            r.listed.pop_front();
        }
    }

    /// Whether we may soon list `key`: a segment in or just ahead of our recent listings of
    /// its rendition, or any segment while we have listed nothing of it yet (just joined).
    pub(crate) fn may_list(&self, key: &SegmentKey) -> bool {
        let newest = self.rendition(key.rendition).and_then(Rendition::newest);
        match (key.position, newest) {
            (_, None) => true,
            (SegmentPosition::Sequence(seq), Some(newest)) => {
                seq <= newest + PREFETCH_AHEAD && seq + MEMORY as u64 >= newest
            }
            (SegmentPosition::Time(_), Some(_)) => false,
        }
    }

    /// A neighbour announced `key`. Returns whether it is a segment we will need soon that is
    /// worth prefetching on the announcement alone.
    pub(crate) fn announced(&mut self, key: &SegmentKey) -> bool {
        let SegmentPosition::Sequence(seq) = key.position else {
            return false;
        };
        let Some(r) = self.renditions.iter_mut().find(|r| r.id == key.rendition) else {
            return false;
        };
        if let Some(ours) = r.variant(seq) {
            r.shared = Some(ours == key.variant);
            return false;
        }
        let newest = r.newest().unwrap_or(0);
        r.shared == Some(true) && seq > newest && seq <= newest + PREFETCH_AHEAD
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::test_key;

    fn key(seq: u64, variant: u64) -> SegmentKey {
        SegmentKey {
            variant: VariantTag::from_u64(variant),
            ..test_key(seq)
        }
    }

    #[test]
    fn prefetches_only_after_keys_matched() {
        let mut w = Watch::default();
        w.listed(key(10, 7).rendition, 10, VariantTag::from_u64(7));
        assert!(!w.announced(&key(11, 8)), "keys never compared yet");
        assert!(
            !w.announced(&key(10, 7)),
            "a match is learnt, not prefetched"
        );
        assert!(w.announced(&key(11, 8)));
        assert!(w.announced(&key(12, 9)));
        assert!(!w.announced(&key(13, 9)), "too far ahead");
    }

    #[test]
    fn personalised_variants_disable_prefetch() {
        let mut w = Watch::default();
        w.listed(key(10, 7).rendition, 10, VariantTag::from_u64(7));
        assert!(!w.announced(&key(10, 99)));
        assert!(!w.announced(&key(11, 5)));
    }
}
