//! Signalling through the overlay: opaque driver payloads (WebRTC offers and answers) carried
//! hop by hop between connected peers, so that new connections keep forming when the
//! bootstrap tracker is gone.
//!
//! A signal goes straight to its addressee when the sender is connected to it; otherwise it
//! floods over every ready connection with a small hop budget. Connections are symmetric, so
//! an answer flooded back with the same budget reaches the offerer. Relays cannot check the
//! claimed sender: the handshake on the connection the signal sets up does (a forged `from`
//! yields a connection whose certificate does not match, which is dropped).

use std::collections::{HashSet, VecDeque};

use rustc_hash::FxHashMap;

use crate::id::PeerId;
use crate::time::{Duration, Instant};

/// Hops a flooded signal may take: neighbours of neighbours. The overlay's entry peers and
/// forward-join walks name peers within this distance.
pub(crate) const SIGNAL_TTL: u8 = 2;

/// Signals remembered to drop copies arriving by another path.
const SEEN_MEMORY: usize = 1024;

/// Signals one neighbour may make us handle per [`RATE_WINDOW`]: a few connection set-ups'
/// worth, so that a hostile peer cannot turn us into an amplifier.
const PER_PEER_RATE: u32 = 32;
const RATE_WINDOW: Duration = Duration::from_secs(1);

/// What to do with a signal that arrived from a neighbour.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// It is for us.
    Deliver,
    /// Pass it on to its addressee, to which we are connected.
    Direct,
    /// Flood it on with this many hops left.
    Flood(u8),
    /// Already seen, out of hops, or over the sender's rate.
    Drop,
}

/// Duplicate and rate state of the relay.
#[derive(Debug, Default)]
pub(crate) struct Relay {
    seen: HashSet<[u8; 32]>,
    order: VecDeque<[u8; 32]>,
    rates: FxHashMap<PeerId, (Instant, u32)>,
}

impl Relay {
    /// Decides where a signal received from neighbour `via` goes.
    pub(crate) fn route(
        &mut self,
        via: PeerId,
        (me, from, to): (PeerId, PeerId, PeerId),
        ttl: u8,
        payload: &[u8],
        connected_to_addressee: bool,
        now: Instant,
    ) -> Route {
        let (since, count) = self.rates.entry(via).or_insert((now, 0));
        if now.saturating_duration_since(*since) >= RATE_WINDOW {
            (*since, *count) = (now, 0);
        }
        *count += 1;
        if *count > PER_PEER_RATE || from == me || !self.first_sight(from, to, payload) {
            return Route::Drop;
        }
        if to == me {
            Route::Deliver
        } else if connected_to_addressee {
            Route::Direct
        } else if ttl > 0 {
            Route::Flood(ttl - 1)
        } else {
            Route::Drop
        }
    }

    /// Records a signal we send ourselves, so that flooded copies coming back are dropped.
    pub(crate) fn sent(&mut self, from: PeerId, to: PeerId, payload: &[u8]) {
        self.first_sight(from, to, payload);
    }

    /// Forgets a neighbour's rate state when its connection ends.
    pub(crate) fn forget(&mut self, peer: &PeerId) {
        self.rates.remove(peer);
    }

    fn first_sight(&mut self, from: PeerId, to: PeerId, payload: &[u8]) -> bool {
        let mut hasher = blake3::Hasher::new();
        hasher.update(from.as_bytes());
        hasher.update(to.as_bytes());
        hasher.update(payload);
        let digest = *hasher.finalize().as_bytes();
        if !self.seen.insert(digest) {
            return false;
        }
        self.order.push_back(digest);
        if self.order.len() > SEEN_MEMORY {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> PeerId {
        PeerId::from_bytes([n; 32])
    }

    #[test]
    fn routes_by_addressee_and_hops() {
        let mut relay = Relay::default();
        let now = Instant::now();
        let me = id(1);
        assert_eq!(
            relay.route(id(2), (me, id(3), me), 1, b"a", false, now),
            Route::Deliver
        );
        assert_eq!(
            relay.route(id(2), (me, id(3), id(4)), 1, b"b", true, now),
            Route::Direct
        );
        assert_eq!(
            relay.route(id(2), (me, id(3), id(4)), 2, b"c", false, now),
            Route::Flood(1)
        );
        assert_eq!(
            relay.route(id(2), (me, id(3), id(4)), 0, b"d", false, now),
            Route::Drop
        );
    }

    #[test]
    fn copies_and_own_signals_are_dropped() {
        let mut relay = Relay::default();
        let now = Instant::now();
        let me = id(1);
        assert_eq!(
            relay.route(id(2), (me, id(3), id(4)), 2, b"x", false, now),
            Route::Flood(1)
        );
        assert_eq!(
            relay.route(id(5), (me, id(3), id(4)), 2, b"x", false, now),
            Route::Drop
        );
        relay.sent(me, id(4), b"mine");
        assert_eq!(
            relay.route(id(2), (me, me, id(4)), 2, b"mine", false, now),
            Route::Drop
        );
    }

    #[test]
    fn a_flooding_neighbour_is_held_to_its_rate() {
        let mut relay = Relay::default();
        let me = id(1);
        let now = Instant::now();
        let routed = (0..100u32)
            .filter(|n| {
                let payload = n.to_be_bytes();
                relay.route(id(2), (me, id(3), me), 2, &payload, false, now) == Route::Deliver
            })
            .count();
        assert_eq!(routed, PER_PEER_RATE as usize);
        let later = now + RATE_WINDOW;
        assert_eq!(
            relay.route(id(2), (me, id(3), me), 2, b"again", false, later),
            Route::Deliver
        );
        // Another neighbour is not affected.
        assert_eq!(
            relay.route(id(9), (me, id(3), me), 2, b"other", false, now),
            Route::Deliver
        );
    }
}
