//! Open and opening connections between nodes, and what each direction has in flight.
//!
//! A connection lives in a slab; a map from the unordered node pair finds its slot. Events for
//! a connection (a frame arriving, a send buffer draining) carry a [`LinkRef`] to that slot, so
//! the hottest check of the simulator, "is this the same connection still?", reads one slot
//! instead of probing a hash table of every pair in the swarm.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;
use slab::Slab;

pub(crate) type NodeIx = u32;

/// One direction of a connection, as the sender's transport sees it.
#[derive(Debug, Default)]
pub(crate) struct Flow {
    /// Latest delivery time: keeps the connection ordered.
    pub(crate) last_delivery: u64,
    /// Frame bytes handed to the transport.
    pub(crate) handed: u64,
    /// `(departure time, handed bytes up to and including that frame)`, oldest first.
    departures: VecDeque<(u64, u64)>,
    /// Frame bytes that have left the uplink.
    departed: u64,
    /// A `Drain` event is queued.
    pub(crate) drain_pending: bool,
}

impl Flow {
    /// Records a frame of `len` bytes that leaves the uplink at `departed`.
    pub(crate) fn hand(&mut self, len: u64, departed: u64) {
        self.handed += len;
        self.departures.push_back((departed, self.handed));
    }

    /// Bytes still waiting in the uplink at `now`.
    pub(crate) fn buffered(&mut self, now: u64) -> u64 {
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
    pub(crate) fn low_at(&self, low: u64, now: u64) -> u64 {
        let target = self.handed.saturating_sub(low);
        self.departures
            .iter()
            .find(|(_, cum)| *cum >= target)
            .map_or(now, |(t, _)| *t)
    }
}

/// One connection between two nodes.
#[derive(Debug)]
pub(crate) struct Pair {
    /// The two ends, lower index first.
    ends: (NodeIx, NodeIx),
    /// Drawn at random per connection: tells a new connection of the same pair from the old.
    pub(crate) epoch: u32,
    pub(crate) open: bool,
    /// Per direction: lower index → higher, and back.
    flows: [Flow; 2],
}

impl Pair {
    /// The direction in which `from` sends.
    pub(crate) fn flow(&mut self, from: NodeIx) -> &mut Flow {
        &mut self.flows[usize::from(from != self.ends.0)]
    }
}

/// Where a connection sits, and which connection it was, for events queued while it was open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LinkRef {
    slot: u32,
    epoch: u32,
}

/// Every connection of a run.
#[derive(Default)]
pub(crate) struct Links {
    slots: Slab<Pair>,
    by_ends: FxHashMap<(NodeIx, NodeIx), u32>,
}

impl Links {
    /// The connection between `a` and `b`, open or opening.
    pub(crate) fn get(&self, a: NodeIx, b: NodeIx) -> Option<&Pair> {
        let slot = *self.by_ends.get(&ends(a, b))?;
        self.slots.get(slot as usize)
    }

    pub(crate) fn get_mut(&mut self, a: NodeIx, b: NodeIx) -> Option<(LinkRef, &mut Pair)> {
        let slot = *self.by_ends.get(&ends(a, b))?;
        let pair = self.slots.get_mut(slot as usize)?;
        Some((
            LinkRef {
                slot,
                epoch: pair.epoch,
            },
            pair,
        ))
    }

    /// The connection `link` referred to when it was queued, if it is still there.
    pub(crate) fn at(&mut self, link: LinkRef) -> Option<&mut Pair> {
        (self.slots.get_mut(link.slot as usize)).filter(|p| p.epoch == link.epoch)
    }

    /// Starts a connection between `a` and `b` (closed until it opens).
    pub(crate) fn insert(&mut self, a: NodeIx, b: NodeIx, epoch: u32) {
        let pair = Pair {
            ends: ends(a, b),
            epoch,
            open: false,
            flows: Default::default(),
        };
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
