//! The engine's side of swap refinement: what the [`crate::swap::Swaps`] machine sees of our
//! data neighbours, carrying out what it decides, and the RTT probes and network coordinates
//! that let it judge peers it never measured.

use super::Engine;
use super::peer::{Link, Peer};
use crate::config::{Config, SwapConfig};
use crate::coord::{Coord, Position, Vivaldi};
use crate::id::PeerId;
use crate::scheduler::{PeerMeasurements, SourceRanker};
use crate::swap::{Neighbourhood, SwapMessage, SwapOutput, Swaps};
use crate::time::{Duration, Instant};
use crate::wire::{Listed, Message};
use rustc_hash::FxHashMap;

/// Our data neighbours as the swap machine sees them, valued by the source ranker: the same
/// model that ranks sources per request chooses the neighbour set.
struct Hood<'a> {
    me: PeerId,
    peers: &'a FxHashMap<PeerId, Peer>,
    ranker: &'a dyn SourceRanker,
    config: &'a Config,
    vivaldi: &'a Vivaldi,
    /// Our neighbours' neighbours as their lists describe them.
    heard: &'a FxHashMap<PeerId, Listed>,
    /// Neighbours no swap may take from us.
    anchors: Vec<PeerId>,
}

impl Hood<'_> {
    /// Where `peer` sits, if it (or a neighbour's list) told us.
    fn coord(&self, peer: &PeerId) -> Option<Coord> {
        if *peer == self.me {
            return Some(self.vivaldi.position().coord);
        }
        (self
            .peers
            .get(peer)
            .and_then(|p| p.position)
            .map(|p| p.coord))
        .or_else(|| (self.heard.get(peer).map(|l| l.coord)).filter(|c| *c != Coord::default()))
    }

    /// The ranker's expected segment throughput, Mbit/s, at `rtt_us` with nothing else known.
    /// Bandwidth is left out on purpose: a swap keeps every degree, so it cannot add upload
    /// capacity, only move it (everyone would trade for the same fast peers), while nearness
    /// gained is gained by both ends.
    fn worth(&self, rtt_us: Option<f32>) -> f32 {
        let m = PeerMeasurements {
            srtt: rtt_us.map(|us| Duration::from_micros(us as u64)),
            ..PeerMeasurements::default()
        };
        let bytes = self.config.scheduler.segment_size_prior;
        self.ranker.peer_eta(&m, bytes).map_or(0.0, |eta| {
            (bytes as f64 * 8.0 / eta.as_secs_f64().max(1e-3) / 1e6) as f32
        })
    }
}

impl Neighbourhood for Hood<'_> {
    fn neighbours(&self) -> Vec<PeerId> {
        (self.peers.iter())
            .filter(|(_, p)| p.is_linked())
            .map(|(id, _)| *id)
            .collect()
    }

    fn is_neighbour(&self, peer: &PeerId) -> bool {
        self.peers.get(peer).is_some_and(Peer::is_linked)
    }

    /// Expected throughput of a segment from `peer`, Mbit/s, judged on what we can know of a
    /// stranger as well as of a neighbour: the RTT its coordinate predicts. Judging neighbours
    /// on their measured record and strangers on priors would trade every unlucky neighbour for
    /// an unknown.
    fn value(&self, peer: &PeerId) -> f32 {
        self.worth(self.coord(peer).map(|c| self.vivaldi.rtt_us(&c)))
    }

    fn guess(&self, viewer: &PeerId, peer: &PeerId) -> Option<f32> {
        Some(self.worth(Some(self.coord(viewer)?.rtt_us(&self.coord(peer)?))))
    }
    fn may_drop(&self, peer: &PeerId) -> bool {
        !self.anchors.contains(peer)
    }

    fn may_swap(&self) -> bool {
        let linked = self.peers.values().filter(|p| p.is_linked()).count();
        // A swap moves a degree by one at most: never to zero, and at most one past the
        // maximum while a new link is up before the old one goes.
        (2..=self.config.links.max_degree).contains(&linked)
    }
}

/// Mixed into the pair hash that picks anchors.
const ANCHOR_SALT: u64 = 0xA4C4_0125;

/// Entries heard from neighbours' lists kept at most (then forgotten and heard again).
const MAX_HEARD: usize = 4096;

impl Engine {
    /// The data neighbours swaps leave alone: the `swap.anchors` ones with the lowest hash of
    /// the pair, a random choice that stays put while the link does. Random links keep the
    /// graph an expander while the rest cluster by locality.
    fn anchors(&self) -> Vec<PeerId> {
        let salt = self.me.rank(ANCHOR_SALT);
        let mut linked: Vec<(u64, PeerId)> = (self.peers.iter())
            .filter(|(_, p)| p.is_linked())
            .map(|(id, _)| (id.rank(salt), *id))
            .collect();
        linked.sort_unstable();
        linked.truncate(self.config.swap.anchors);
        linked.into_iter().map(|(_, id)| id).collect()
    }

    /// Considers proposing a swap, when its interval came round.
    pub(super) fn maybe_propose_swap(&mut self, now: Instant) {
        if now < self.next_swap {
            return;
        }
        self.next_swap = now + self.config.swap.interval;
        self.with_swaps(now, |swaps, hood, cfg| {
            swaps.propose(hood, cfg, now);
        });
    }

    pub(super) fn on_swap(&mut self, from: PeerId, msg: SwapMessage, now: Instant) {
        self.with_swaps(now, |swaps, hood, cfg| {
            swaps.handle(from, msg, hood, cfg, now)
        });
    }

    /// Runs `f` on the swap machine with our neighbourhood as it sees it, then carries out
    /// what the machine asks.
    fn with_swaps(&mut self, now: Instant, f: impl FnOnce(&mut Swaps, &Hood<'_>, &SwapConfig)) {
        let hood = Hood {
            me: self.me,
            peers: &self.peers,
            ranker: self.ranker.as_ref(),
            config: &self.config,
            vivaldi: &self.vivaldi,
            heard: &self.heard,
            anchors: self.anchors(),
        };
        f(&mut self.swaps, &hood, &self.config.swap);
        self.drain_swaps(now);
    }

    /// Tells every data neighbour our current set, if it changed since we last did.
    pub(super) fn share_neighbours(&mut self) {
        if !std::mem::take(&mut self.neighbours_changed) {
            return;
        }
        let peers: Vec<Listed> = (self.peers.iter())
            .filter(|(_, p)| p.is_linked())
            .map(|(id, p)| Listed {
                peer: *id,
                coord: p.position.map(|p| p.coord).unwrap_or_default(),
            })
            .collect();
        let position = self.vivaldi.position();
        for Listed { peer: to, .. } in &peers {
            let msg = Message::Neighbours {
                position,
                peers: peers.clone(),
            };
            self.send(*to, msg);
        }
    }

    /// A neighbour's list: its neighbours for swap proposals, what it knows of them for
    /// judging them.
    pub(super) fn on_neighbours(&mut self, from: PeerId, position: Position, peers: Vec<Listed>) {
        let Some(p) = self.peers.get_mut(&from).filter(|p| p.is_linked()) else {
            return;
        };
        p.position = Some(position);
        if self.heard.len() + peers.len() > MAX_HEARD {
            self.heard.clear();
        }
        for listed in &peers {
            self.heard.insert(listed.peer, *listed);
        }
        self.swaps
            .on_neighbours(from, peers.into_iter().map(|l| l.peer).collect());
    }

    /// Probes one data neighbour's RTT per maintenance round, the one asked longest ago.
    pub(super) fn ping_a_neighbour(&mut self, now: Instant) {
        let timeout = self.config.membership.request_timeout;
        let due = (self.peers.iter())
            .filter(|(_, p)| p.is_linked() && p.ping.is_none_or(|(_, at)| at + timeout <= now))
            .min_by_key(|(id, p)| (p.pinged_at, **id))
            .map(|(id, _)| *id);
        let Some(peer) = due else {
            return;
        };
        self.next_ping = self.next_ping.wrapping_add(1);
        let nonce = self.next_ping;
        if let Some(p) = self.peers.get_mut(&peer) {
            p.ping = Some((nonce, now));
            p.pinged_at = Some(now);
        }
        self.send(peer, Message::Ping { nonce });
    }

    pub(super) fn on_pong(&mut self, from: PeerId, nonce: u32, position: Position, now: Instant) {
        let Some(p) = self.peers.get_mut(&from) else {
            return;
        };
        let Some((_, sent)) = p.ping.filter(|(n, _)| *n == nonce) else {
            return;
        };
        p.ping = None;
        p.rtt_sample(now.saturating_duration_since(sent));
        p.position = Some(position);
        if let Some(floor) = p.rtt_floor {
            self.vivaldi.observe(floor.as_micros() as f32, position);
        }
    }

    pub(super) fn drain_swaps(&mut self, now: Instant) {
        while let Some(out) = self.swaps.poll_output() {
            match out {
                SwapOutput::Send(to, msg) => self.send(to, Message::Swap(msg)),
                SwapOutput::Link(to) => {
                    let unlinked = self.peers.get(&to).is_none_or(|p| p.link == Link::None);
                    if unlinked {
                        self.send(to, Message::LinkRequest);
                        if let Some(p) = self.peers.get_mut(&to) {
                            p.link = Link::Requested(now);
                        }
                    }
                }
                SwapOutput::Unlink(peer) => {
                    self.send(peer, Message::LinkDrop);
                    self.link_down(peer, now);
                }
            }
        }
        let s = self.swaps.stats();
        self.stats.swaps_proposed = s.proposed;
        self.stats.swaps_committed = s.committed;
        self.stats.swaps_aborted = s.aborted;
        self.stats.swaps_rewired = s.rewired;
    }
}
