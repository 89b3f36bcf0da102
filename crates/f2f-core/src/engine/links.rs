//! Data neighbours: the peers we exchange availability and segments with.
//!
//! They are picked from the peers the overlay made known (both HyParView views), kept at the
//! configured degree, and refreshed when they leave. Separate from the overlay's active view:
//! membership decides who knows whom, the link set decides who feeds whom.

use std::collections::BTreeMap;

use rand::Rng;
use rand::seq::SliceRandom;

use super::Engine;
use super::peer::{Conn, Link};
use crate::id::{PeerId, RenditionId, SegmentKey, SegmentPosition, SwarmId, VariantTag};
use crate::swarm_size::SketchValues;
use crate::time::{Duration, Instant};
use crate::wire::Message;

impl Engine {
    pub(super) fn on_link_request(&mut self, from: PeerId, now: Instant) {
        let linked = self.peers.values().filter(|p| p.is_linked()).count();
        let already = self
            .peers
            .get(&from)
            .is_some_and(|p| p.link == Link::Linked);
        // A swap's new link may take us one past the maximum, never past the per-subnet
        // share (which keeps an eclipse out).
        let room = linked < self.config.links.max_degree || self.swaps.expects_link(&from);
        let accepted = already || (room && !self.link_group_full(&from));
        self.send(from, Message::LinkReply { accepted });
        if accepted && !already {
            self.link_up(from, now);
        }
    }

    pub(super) fn on_link_reply(&mut self, from: PeerId, accepted: bool, now: Instant) {
        let Some(p) = self.peers.get_mut(&from) else {
            return;
        };
        let Link::Requested(sent) = p.link else {
            return;
        };
        p.rtt_sample(now.saturating_duration_since(sent));
        if accepted && !self.link_group_full(&from) {
            self.link_up(from, now);
            return;
        }
        if accepted {
            // Its subnet filled our links while the request was out.
            self.send(from, Message::LinkDrop);
        }
        if let Some(p) = self.peers.get_mut(&from) {
            p.link = Link::None;
            p.link_backoff_until = Some(now + self.config.links.idle_timeout);
        }
    }

    /// Whether `peer`'s network already has its share of our data neighbours (see
    /// [`crate::membership::NetGroup`]).
    fn link_group_full(&self, peer: &PeerId) -> bool {
        let Some(group) = self.membership.group(peer) else {
            return false;
        };
        let same = (self.peers.iter())
            .filter(|(id, p)| {
                *id != peer && p.is_linked() && self.membership.group(id) == Some(group)
            })
            .count();
        same >= self.config.membership.max_per_group
    }

    /// The data link to `from` ended (its `LinkDrop`, or ours).
    pub(super) fn link_down(&mut self, from: PeerId, now: Instant) {
        if let Some(p) = self.peers.get_mut(&from) {
            p.link = Link::None;
            p.link_backoff_until = Some(now + self.config.links.idle_timeout);
        }
        self.swaps.forget(&from);
        self.neighbours_changed = true;
        self.availability.forget_peer(&from);
        self.uploads.forget_peer(&from);
        self.transfers_lost(from, now);
    }

    /// A new data link: tell the neighbour everything we hold and our size sketch.
    fn link_up(&mut self, peer: PeerId, now: Instant) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.link = Link::Linked;
            p.last_used = now;
        }
        self.neighbours_changed = true;
        self.swaps.link_up(&peer, &self.config.swap, now);
        self.drain_swaps(now);
        self.tell_recent_attestations(peer);
        for msg in self.availability_snapshot() {
            self.send(peer, msg);
        }
        for (rendition, v) in self.sketch.snapshots() {
            self.send(peer, sketch_message(rendition, v));
        }
    }

    /// Held segments: one bitmap per rendition for numbered segments, a `Have` for the rest.
    fn availability_snapshot(&self) -> Vec<Message> {
        let mut numbered: BTreeMap<(SwarmId, RenditionId), Vec<(u64, VariantTag)>> =
            BTreeMap::new();
        let mut other = Vec::new();
        for key in self.store.keys() {
            match key.position {
                SegmentPosition::Sequence(seq) => {
                    numbered
                        .entry((key.swarm, key.rendition))
                        .or_default()
                        .push((seq, key.variant));
                }
                SegmentPosition::Time(_) => other.push(*key),
            }
        }
        let mut msgs = Vec::new();
        let max_bits = (self.config.limits.max_bitmap_bytes * 8) as u64;
        for ((swarm, rendition), mut held) in numbered {
            held.sort_unstable();
            let Some(&(base, _)) = held.first() else {
                continue;
            };
            let (inside, outside): (Vec<_>, Vec<_>) =
                held.into_iter().partition(|(s, _)| s - base < max_bits);
            let span = inside.last().map_or(0, |(s, _)| s - base + 1);
            let mut bits = vec![0u8; span.div_ceil(8) as usize];
            for (seq, _) in &inside {
                let i = (seq - base) as usize;
                bits[i / 8] |= 1 << (i % 8);
            }
            let variants = inside.iter().map(|(_, v)| *v).collect();
            msgs.push(Message::Bitmap {
                swarm,
                rendition,
                base,
                bits: bits.into(),
                variants,
            });
            other.extend(outside.into_iter().map(|(seq, variant)| SegmentKey {
                swarm,
                rendition,
                position: SegmentPosition::Sequence(seq),
                variant,
            }));
        }
        for keys in other.chunks(self.config.limits.max_list_len.max(1)) {
            msgs.push(Message::Have {
                load: self.uploads.load(),
                upload_kbps: self.uplink.kbps(self.now),
                partial: false,
                keys: keys.to_vec(),
            });
        }
        msgs
    }

    /// Periodic upkeep: refill the link set, expire link requests, close idle connections,
    /// gossip the size sketch, forget stale segments.
    pub(super) fn maintain(&mut self, now: Instant) {
        let cfg = self.config.links.clone();
        let timeout = self.config.membership.request_timeout;
        for p in self.peers.values_mut() {
            if matches!(p.link, Link::Requested(t) if t + timeout <= now) {
                p.link = Link::None;
                p.link_backoff_until = Some(now + cfg.idle_timeout);
            }
        }
        let current = self.peers.values().filter(|p| p.link != Link::None).count();
        if current < cfg.degree {
            let mut candidates: Vec<PeerId> = self
                .membership
                .active()
                .iter()
                .chain(self.membership.passive())
                .copied()
                .filter(|id| {
                    self.peers.get(id).is_none_or(|p| {
                        p.link == Link::None && p.link_backoff_until.is_none_or(|t| t <= now)
                    })
                })
                .collect();
            // Ranked by the scheduler's own source ranking (expected time to deliver a
            // segment); peers never measured share the prior and a random order, so new peers
            // keep being tried.
            candidates.shuffle(&mut self.rng);
            let size = self.config.scheduler.segment_size_prior;
            let eta = |id: &PeerId| {
                let m = self.measured(id, now).unwrap_or_default();
                self.ranker.peer_eta(&m, size).unwrap_or(Duration::MAX)
            };
            candidates.sort_by_cached_key(eta);
            let mut picked = Vec::new();
            while picked.len() < cfg.degree - current && !candidates.is_empty() {
                // Now and then a random candidate rather than the best: a peer the model
                // misjudges is only measured again if it is tried.
                let i = if self.rng.random_bool(cfg.explore) {
                    self.rng.random_range(0..candidates.len())
                } else {
                    0
                };
                picked.push(candidates.remove(i));
            }
            for peer in picked {
                self.send(peer, Message::LinkRequest);
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.link = Link::Requested(now);
                }
            }
        }

        let idle: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(id, p)| {
                p.link == Link::None
                    && !matches!(p.conn, Conn::Connecting)
                    && !self.membership.is_active(id)
                    && p.last_used + cfg.idle_timeout <= now
            })
            .map(|(id, _)| *id)
            .collect();
        for peer in idle {
            self.peers.remove(&peer);
            self.uploads.forget_peer(&peer);
            self.out.push_back(super::Output::Disconnect(peer));
        }

        self.share_neighbours();
        self.ping_a_neighbour(now);
        self.sketch.set_capable(self.can_seed());
        for (rendition, v) in self.sketch.take_updates() {
            // Push gossip to a few random neighbours per round: still O(log N) rounds to
            // converge, at a fraction of the traffic of telling everyone every time.
            let mut targets = self.data_neighbours();
            targets.shuffle(&mut self.rng);
            for peer in targets.into_iter().take(SKETCH_FANOUT) {
                self.send(peer, sketch_message(rendition, v.clone()));
            }
        }
        for key in self
            .scheduler
            .stale(self.config.scheduler.forget_after, now)
        {
            self.loads.remove(&key);
            let actions = self.scheduler.remove(&key);
            self.apply(actions, now);
        }
    }
}

/// Neighbours a changed size sketch is pushed to per maintenance round.
const SKETCH_FANOUT: usize = 3;

fn sketch_message(rendition: RenditionId, v: SketchValues) -> Message {
    Message::SizeSketch {
        rendition,
        epoch: v.epoch,
        mins: v.mins,
        capable: v.capable,
    }
}
