//! Our requests to peers that have not ended, each with the measurements it was ranked on.
//! The ranker learns from those when the request ends, and the count per peer is itself a
//! measurement (`PeerMeasurements::in_flight`). Both live here so that they cannot disagree: a
//! request that ended twice (its outcome, then its cancel) used to take two off the count, and
//! a dropped link left its requests' measurements behind.

use std::collections::hash_map::Entry;

use rustc_hash::FxHashMap;

use crate::id::{PeerId, SegmentKey};
use crate::scheduler::PeerMeasurements;

/// Requests tracked at most: far above what is under way at once. Reaching it means requests
/// were never ended; all are forgotten then, costing the model a few lessons, and counting
/// starts afresh.
const MAX_OPEN: usize = 4096;

#[derive(Debug, Default)]
pub(crate) struct OpenRequests {
    asked: FxHashMap<(PeerId, SegmentKey), PeerMeasurements>,
    per_peer: FxHashMap<PeerId, u32>,
}

impl OpenRequests {
    /// A request to `peer` for a range of `key` went out, ranked on `measured`. The scheduler
    /// asks a peer for one range of a segment at a time, so a second one replaces the first.
    pub(crate) fn start(&mut self, peer: PeerId, key: SegmentKey, measured: PeerMeasurements) {
        if self.asked.len() >= MAX_OPEN && !self.asked.contains_key(&(peer, key)) {
            self.asked.clear();
            self.per_peer.clear();
        }
        if self.asked.insert((peer, key), measured).is_none() {
            *self.per_peer.entry(peer).or_default() += 1;
        }
    }

    /// The request to `peer` for `key` ended, however it did: what it was ranked on, the first
    /// time only.
    pub(crate) fn end(&mut self, peer: PeerId, key: SegmentKey) -> Option<PeerMeasurements> {
        let measured = self.asked.remove(&(peer, key))?;
        if let Entry::Occupied(mut n) = self.per_peer.entry(peer) {
            *n.get_mut() -= 1;
            if *n.get() == 0 {
                n.remove();
            }
        }
        Some(measured)
    }

    /// Our requests to `peer` still open.
    pub(crate) fn in_flight(&self, peer: &PeerId) -> u8 {
        self.per_peer
            .get(peer)
            .map_or(0, |&n| u8::try_from(n).unwrap_or(u8::MAX))
    }

    /// The link to `peer` is gone, and every request on it with it.
    pub(crate) fn forget_peer(&mut self, peer: &PeerId) {
        if self.per_peer.remove(peer).is_some() {
            self.asked.retain(|(p, _), _| p != peer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::test_key as key;

    fn measured(load: u8) -> PeerMeasurements {
        PeerMeasurements {
            load,
            ..PeerMeasurements::default()
        }
    }

    #[test]
    fn a_request_ends_once_however_many_times_it_is_ended() {
        let a = PeerId::from_seed(b"a");
        let mut open = OpenRequests::default();
        open.start(a, key(1), measured(1));
        open.start(a, key(2), measured(2));
        assert_eq!(open.in_flight(&a), 2);
        // A fallback reports the outcome, then cancels: the other request still counts.
        assert_eq!(open.end(a, key(1)), Some(measured(1)));
        assert_eq!(open.end(a, key(1)), None);
        assert_eq!(open.in_flight(&a), 1);
        assert_eq!(open.end(a, key(2)), Some(measured(2)));
        assert_eq!(open.in_flight(&a), 0);
    }

    #[test]
    fn asking_again_for_a_segment_replaces_the_request() {
        let a = PeerId::from_seed(b"a");
        let mut open = OpenRequests::default();
        open.start(a, key(1), measured(1));
        open.start(a, key(1), measured(3));
        assert_eq!(open.in_flight(&a), 1);
        assert_eq!(open.end(a, key(1)), Some(measured(3)));
    }

    #[test]
    fn a_dropped_link_takes_only_its_own_requests() {
        let (a, b) = (PeerId::from_seed(b"a"), PeerId::from_seed(b"b"));
        let mut open = OpenRequests::default();
        open.start(a, key(1), measured(1));
        open.start(b, key(1), measured(1));
        open.forget_peer(&a);
        assert_eq!((open.in_flight(&a), open.in_flight(&b)), (0, 1));
        assert_eq!(open.end(a, key(1)), None);
        assert_eq!(open.end(b, key(1)), Some(measured(1)));
    }

    #[test]
    fn requests_never_ended_are_forgotten_at_the_bound_and_counting_starts_afresh() {
        let (a, b) = (PeerId::from_seed(b"a"), PeerId::from_seed(b"b"));
        let mut open = OpenRequests::default();
        for seq in 0..MAX_OPEN as u64 {
            open.start(a, key(seq), measured(0));
        }
        assert_eq!(open.in_flight(&a), u8::MAX);
        open.start(b, key(0), measured(1));
        assert_eq!((open.in_flight(&a), open.in_flight(&b)), (0, 1));
        assert_eq!(open.end(a, key(1)), None);
        assert_eq!(open.end(b, key(0)), Some(measured(1)));
    }
}
