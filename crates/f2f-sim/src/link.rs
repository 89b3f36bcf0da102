//! Open and opening connections between nodes, and each node's sending side.
//!
//! A connection lives in a slab; a map from the unordered node pair finds its slot. Events for
//! a connection (a frame arriving, a send buffer draining) carry a [`LinkRef`] to that slot, so
//! the hottest check of the simulator, "is this the same connection still?", reads one slot
//! instead of probing a hash table of every pair in the swarm.
//!
//! What a node has in flight belongs to the node ([`Uplink`]), not to the connection: only the
//! node's own engine steps touch it, so different nodes' steps can run in parallel.

use std::collections::VecDeque;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rustc_hash::FxHashMap;
use slab::Slab;

use crate::window::{Window, WindowSpec};

pub(crate) type NodeIx = u32;

/// One direction of a connection, as the sender's transport sees it.
#[derive(Debug)]
struct Flow {
    /// The connection it belongs to: a new connection to the same peer starts afresh.
    epoch: u32,
    /// Latest delivery time: keeps the connection ordered.
    last_delivery: u64,
    /// Latest departure from the uplink.
    last_departure: u64,
    /// Frame bytes handed to the transport.
    handed: u64,
    /// `(departure time, handed bytes up to and including that frame)`, oldest first.
    departures: VecDeque<(u64, u64)>,
    /// Frame bytes that have left the uplink.
    departed: u64,
    /// A `Drain` event is queued.
    drain_pending: bool,
    /// Congestion control, if the run models it.
    window: Option<Window>,
}

impl Flow {
    fn new(epoch: u32, window: Option<WindowSpec>) -> Self {
        Self {
            epoch,
            last_delivery: 0,
            last_departure: 0,
            handed: 0,
            departures: VecDeque::new(),
            departed: 0,
            drain_pending: false,
            window: window.map(Window::new),
        }
    }

    /// Records a frame of `len` bytes that leaves the uplink at `departed`.
    fn hand(&mut self, len: u64, departed: u64) {
        self.handed += len;
        self.departures.push_back((departed, self.handed));
    }

    /// Bytes still waiting in the uplink at `now`.
    fn buffered(&mut self, now: u64) -> u64 {
        while let Some(&(t, cum)) = self.departures.front() {
            if t > now {
                break;
            }
            self.departed = cum;
            self.departures.pop_front();
        }
        self.handed - self.departed
    }

    /// When the waiting bytes will have fallen to `low`.
    fn low_at(&self, low: u64, now: u64) -> u64 {
        let target = self.handed.saturating_sub(low);
        self.departures
            .iter()
            .find(|(_, cum)| *cum >= target)
            .map_or(now, |(t, _)| *t)
    }
}

/// Where a frame goes and how: the connection, and the path's delay and last-hop rate.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Path {
    pub(crate) link: LinkRef,
    /// One-way delay, µs.
    pub(crate) lat: u64,
    /// The receiver's downlink, bit/s.
    pub(crate) down_bps: f64,
}

/// What the network does to every frame.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Wire {
    /// Per-frame bytes on top of the payload (headers).
    pub(crate) overhead_bytes: u64,
    /// Chance that a frame is lost once (and arrives a retransmission later).
    pub(crate) loss: f64,
    /// The send-buffer level below which a sender is told it may send more.
    pub(crate) low_water: u64,
    /// Each connection's congestion control, or none: frames leave at the uplink's pace.
    pub(crate) window: Option<WindowSpec>,
}

/// A frame on its way: when it arrives, and when (if it raised the send buffer above the
/// low-water mark) the buffer will have drained back to it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sent {
    pub(crate) delivered: u64,
    pub(crate) drain_at: Option<u64>,
}

/// Whether a send buffer has drained to the low-water mark.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Drained {
    /// It has: this many bytes wait.
    Low(u64),
    /// Not yet: look again then.
    Later(u64),
}

/// A node's sending side: its uplink, served first-in first-out, and each connection's flow.
#[derive(Debug)]
pub(crate) struct Uplink {
    bps: f64,
    /// When the uplink is next free.
    free: u64,
    /// When it stalls, `(from, until)` in order (flaky peers only).
    stalls: Vec<(u64, u64)>,
    flows: FxHashMap<NodeIx, Flow>,
    /// The node's own random sequence for losses.
    rng: ChaCha8Rng,
}

impl Uplink {
    pub(crate) fn new(bps: f64, stalls: Vec<(u64, u64)>, seed: u64) -> Self {
        Self {
            bps,
            free: 0,
            stalls,
            flows: FxHashMap::default(),
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// Sends a frame of `len` bytes to `to` along `path` at `now`. The frame takes its turn on
    /// the uplink when it is handed; with congestion control it leaves once its connection's
    /// window has let it through too, and a frame held by its window does not hold up other
    /// connections.
    pub(crate) fn send(&mut self, to: NodeIx, path: Path, wire: Wire, len: u64, now: u64) -> Sent {
        let size = (len + wire.overhead_bytes) as f64 * 8.0;
        let begins = self.free.max(now);
        // A frame that would start during a stall waits for its end.
        let begins = (self.stalls.iter())
            .find(|(from, until)| (*from..*until).contains(&begins))
            .map_or(begins, |(_, until)| *until);
        let serialise = (size / self.bps * 1e6) as u64;
        self.free = begins + serialise;
        let flow = self
            .flows
            .entry(to)
            .or_insert_with(|| Flow::new(path.link.epoch, wire.window));
        // Closing a connection forgets its flow (`close`); this keeps a new connection to the
        // same peer from inheriting an old one's queue should a close ever be missed.
        if flow.epoch != path.link.epoch {
            *flow = Flow::new(path.link.epoch, wire.window);
        }
        let rtt = 2 * path.lat;
        let departed = match flow.window.as_mut() {
            // The last byte leaves when both the uplink and the window have let it through,
            // and not before the connection's previous frame.
            Some(w) => {
                let sent = flow.last_departure;
                (begins + serialise)
                    .max(w.admit(len, rtt, now, sent))
                    .max(sent)
            }
            None => begins + serialise,
        };
        flow.last_departure = departed;
        let mut arrival = departed + path.lat;
        if wire.loss > 0.0 && self.rng.random_bool(wire.loss) {
            arrival += 2 * path.lat;
            if let Some(w) = flow.window.as_mut() {
                w.on_loss();
            }
        }
        let delivered = arrival + (size / path.down_bps * 1e6) as u64;
        let delivered = delivered.max(flow.last_delivery);
        flow.last_delivery = delivered;
        flow.hand(len, departed);
        // Edge-triggered, as `bufferedamountlow` is: only a buffer that rose above the low-water
        // mark reports falling back to it.
        let schedule = !flow.drain_pending && flow.buffered(now) > wire.low_water;
        flow.drain_pending |= schedule;
        Sent {
            delivered,
            drain_at: schedule.then(|| flow.low_at(wire.low_water, now)),
        }
    }

    /// Whether the send buffer to `to` (on connection `epoch`) has drained to `low` at `now`;
    /// `None` if that connection is gone.
    pub(crate) fn drained(
        &mut self,
        to: NodeIx,
        epoch: u32,
        low: u64,
        now: u64,
    ) -> Option<Drained> {
        let flow = self.flows.get_mut(&to).filter(|f| f.epoch == epoch)?;
        let buffered = flow.buffered(now);
        flow.drain_pending = buffered > low;
        Some(if flow.drain_pending {
            Drained::Later(flow.low_at(low, now))
        } else {
            Drained::Low(buffered)
        })
    }

    /// Forgets the flow to `to` (its connection closed).
    pub(crate) fn close(&mut self, to: NodeIx) {
        self.flows.remove(&to);
    }
}

/// One connection between two nodes.
#[derive(Debug)]
pub(crate) struct Pair {
    /// Drawn at random per connection: tells a new connection of the same pair from the old.
    pub(crate) epoch: u32,
    pub(crate) open: bool,
}

/// Where a connection sits, and which connection it was, for events queued while it was open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LinkRef {
    slot: u32,
    pub(crate) epoch: u32,
}

/// Every connection of a run.
#[derive(Default)]
pub(crate) struct Links {
    slots: Slab<Pair>,
    by_ends: FxHashMap<(NodeIx, NodeIx), u32>,
}

impl Links {
    /// The connection between `a` and `b`, open or opening.
    pub(crate) fn get(&self, a: NodeIx, b: NodeIx) -> Option<(LinkRef, &Pair)> {
        let slot = *self.by_ends.get(&ends(a, b))?;
        let pair = self.slots.get(slot as usize)?;
        let link = LinkRef {
            slot,
            epoch: pair.epoch,
        };
        Some((link, pair))
    }

    pub(crate) fn get_mut(&mut self, a: NodeIx, b: NodeIx) -> Option<&mut Pair> {
        let slot = *self.by_ends.get(&ends(a, b))?;
        self.slots.get_mut(slot as usize)
    }

    /// The connection `link` referred to when it was queued, if it is still there.
    pub(crate) fn at(&self, link: LinkRef) -> Option<&Pair> {
        (self.slots.get(link.slot as usize)).filter(|p| p.epoch == link.epoch)
    }

    /// Starts a connection between `a` and `b` (closed until it opens).
    pub(crate) fn insert(&mut self, a: NodeIx, b: NodeIx, epoch: u32) {
        let pair = Pair { epoch, open: false };
        let slot = u32::try_from(self.slots.insert(pair)).expect("fewer than 2^32 connections");
        self.by_ends.insert(ends(a, b), slot);
    }

    pub(crate) fn remove(&mut self, a: NodeIx, b: NodeIx) -> Option<Pair> {
        let slot = self.by_ends.remove(&ends(a, b))?;
        self.slots.try_remove(slot as usize)
    }
}

/// Unordered pair key.
fn ends(a: NodeIx, b: NodeIx) -> (NodeIx, NodeIx) {
    if a < b { (a, b) } else { (b, a) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PIECE: u64 = 64 * 1024;

    fn wire(window: Option<WindowSpec>) -> Wire {
        Wire {
            overhead_bytes: 60,
            loss: 0.0,
            low_water: 16 * 1024,
            window,
        }
    }

    fn path(slot: u32, lat_ms: u64) -> Path {
        Path {
            link: LinkRef { slot, epoch: 1 },
            lat: lat_ms * 1_000,
            down_bps: 1e9,
        }
    }

    /// Hands 16 pieces to `to` at once; when the last one arrives, µs.
    fn segment(up: &mut Uplink, to: NodeIx, path: Path, wire: Wire) -> u64 {
        (0..16)
            .map(|_| up.send(to, path, wire, PIECE, 0).delivered)
            .last()
            .expect("pieces")
    }

    #[test]
    fn with_congestion_control_a_far_peer_gets_a_segment_later_than_a_near_one() {
        let fast = 100e6;
        for (window, far_later) in [(None, false), (Some(WindowSpec::DCSCTP), true)] {
            let w = wire(window);
            let near = segment(&mut Uplink::new(fast, Vec::new(), 1), 1, path(0, 10), w);
            let far = segment(&mut Uplink::new(fast, Vec::new(), 1), 1, path(0, 150), w);
            // Without a window only the path's own delay differs.
            let extra = far - near - 140_000;
            assert_eq!(extra > 500_000, far_later, "{window:?}: {near} vs {far} µs");
        }
    }

    #[test]
    fn a_connection_held_by_its_window_does_not_hold_up_the_others() {
        let w = wire(Some(WindowSpec::DCSCTP));
        let mut up = Uplink::new(100e6, Vec::new(), 1);
        segment(&mut up, 1, path(0, 150), w);
        let near = up.send(2, path(1, 10), w, PIECE, 0).delivered;
        // Behind 16 pieces on a 100 Mbit/s uplink (84 ms), not behind the far window.
        assert!(near < 120_000, "{near} µs");
    }
}
