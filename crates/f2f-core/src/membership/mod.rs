//! Gossip membership: who knows whom (HyParView, Leitão, Pereira & Rodrigues, DSN 2007).
//!
//! Each node keeps a small *active view* (peers it holds connections to and gossips with) and a
//! larger *passive view* (an address book of peers to promote when an active peer fails). A
//! joining node contacts one entry peer; `ForwardJoin` random walks spread its id; periodic
//! `Shuffle` walks mix the passive views so that every node keeps learning about the swarm
//! without any registry. This overlay is kept apart from the data neighbours the scheduler
//! exchanges segments with (see [`crate::engine`]).
//!
//! Why not `iroh-gossip`'s `proto` module: see `docs/DESIGN-NOTES.md`.

mod netgroup;
mod view;

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::id::PeerId;
use crate::time::{Duration, Instant};
use crate::wire::Message;
use view::View;

pub use netgroup::NetGroup;

/// HyParView parameters; defaults follow the paper for swarms of up to ~10^4 nodes.
#[derive(Clone, Debug, PartialEq)]
pub struct MembershipConfig {
    /// Active view capacity (paper: log10(N) + 1). Default 5.
    pub active_view: usize,
    /// Passive view capacity (paper: k · (log10(N) + 1)). Default 30.
    pub passive_view: usize,
    /// Active random walk length: hops a `ForwardJoin` travels. Default 6.
    pub active_walk: u8,
    /// Passive random walk length: the hop at which a `ForwardJoin` also lands in a passive view.
    /// Default 3.
    pub passive_walk: u8,
    /// Interval between shuffles. Default 10 s.
    pub shuffle_interval: Duration,
    /// Hops a shuffle walks before it is answered. Default 3.
    pub shuffle_walk: u8,
    /// Active-view members included in a shuffle. Default 3.
    pub shuffle_active: usize,
    /// Passive-view members included in a shuffle. Default 4.
    pub shuffle_passive: usize,
    /// How long a `Join` or `Neighbour` request may go unanswered. Default 2 s.
    pub request_timeout: Duration,
    /// Most active-view members (and data neighbours) from one [`NetGroup`], so that one
    /// operator's subnet cannot fill a node's views (eclipse). Default 2.
    pub max_per_group: usize,
}

impl Default for MembershipConfig {
    fn default() -> Self {
        Self {
            active_view: 5,
            passive_view: 30,
            active_walk: 6,
            passive_walk: 3,
            shuffle_interval: Duration::from_secs(10),
            shuffle_walk: 3,
            shuffle_active: 3,
            shuffle_passive: 4,
            request_timeout: Duration::from_secs(2),
            max_per_group: 2,
        }
    }
}

/// What the membership layer asks of the engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MembershipOutput {
    /// Send a membership message (the engine connects first if needed).
    Send(PeerId, Message),
    /// `PeerId` entered the active view.
    NeighbourUp(PeerId),
    /// `PeerId` left the active view.
    NeighbourDown(PeerId),
    /// Both views are empty: only a new bootstrap can reconnect this node.
    Isolated,
}

/// A request we sent and wait on: a join through an entry peer, or a neighbour promotion.
#[derive(Clone, Copy, Debug)]
struct Pending {
    peer: PeerId,
    deadline: Instant,
}

/// The HyParView state machine of one node in one swarm.
#[derive(Debug)]
pub struct Membership {
    me: PeerId,
    config: MembershipConfig,
    active: View,
    passive: View,
    pending: Vec<Pending>,
    /// What we sent in our last shuffle: evicted first when the reply fills the passive view.
    last_shuffle: Vec<PeerId>,
    next_shuffle: Option<Instant>,
    /// The network each connected peer connects from.
    groups: FxHashMap<PeerId, NetGroup>,
    rng: ChaCha8Rng,
    out: VecDeque<MembershipOutput>,
}

impl Membership {
    /// A node that has not joined yet; `seed` makes every random choice reproducible.
    pub fn new(me: PeerId, config: MembershipConfig, seed: u64) -> Self {
        Self {
            me,
            active: View::new(config.active_view),
            passive: View::new(config.passive_view),
            config,
            pending: Vec::new(),
            last_shuffle: Vec::new(),
            next_shuffle: None,
            groups: FxHashMap::default(),
            rng: ChaCha8Rng::seed_from_u64(seed),
            out: VecDeque::new(),
        }
    }

    /// Applies new parameters (remote config); views above their new capacity shed random
    /// members, telling dropped active neighbours as a full view would.
    pub fn set_config(&mut self, config: MembershipConfig) {
        while self.active.len() > config.active_view {
            let Some(dropped) = self.active.evict(&mut self.rng, &[]) else {
                break;
            };
            self.send(dropped, Message::Disconnect { alive: true });
            self.out.push_back(MembershipOutput::NeighbourDown(dropped));
        }
        while self.passive.len() > config.passive_view {
            self.passive.evict(&mut self.rng, &[]);
        }
        self.active.set_capacity(config.active_view);
        self.passive.set_capacity(config.passive_view);
        self.config = config;
    }

    /// Peers we hold overlay links to.
    pub fn active(&self) -> &[PeerId] {
        self.active.peers()
    }

    /// Peers we know of but are not linked to.
    pub fn passive(&self) -> &[PeerId] {
        self.passive.peers()
    }

    /// Whether `peer` is in the active view.
    pub fn is_active(&self, peer: &PeerId) -> bool {
        self.active.contains(peer)
    }

    /// Whether `peer` is in either view or has a request outstanding.
    pub fn knows(&self, peer: &PeerId) -> bool {
        self.active.contains(peer)
            || self.passive.contains(peer)
            || self.pending.iter().any(|p| p.peer == *peer)
    }

    /// Enters the overlay through the first reachable of `contacts` (handed in by the bootstrap);
    /// the others go to the passive view as fallbacks.
    pub fn join(&mut self, contacts: &[PeerId], now: Instant) {
        let me = self.me;
        let mut contacts = contacts.iter().copied().filter(|p| *p != me);
        if let Some(first) = contacts.next() {
            self.request(first, Message::Join, now);
        }
        for c in contacts {
            self.passive.insert(c);
        }
        if self.next_shuffle.is_none() {
            self.next_shuffle = Some(now + self.shuffle_delay());
        }
    }

    /// Leaves the swarm: tells active neighbours not to keep us in their passive views.
    pub fn leave(&mut self) {
        for peer in self.active.peers().to_vec() {
            self.send(peer, Message::Disconnect { alive: false });
            self.out.push_back(MembershipOutput::NeighbourDown(peer));
        }
        self.active = View::new(self.config.active_view);
        self.passive = View::new(self.config.passive_view);
        self.pending.clear();
        self.next_shuffle = None;
    }

    /// Handles a membership message; other kinds are ignored (the engine routes them elsewhere).
    pub fn handle_message(&mut self, from: PeerId, msg: &Message, now: Instant) {
        if from == self.me {
            return;
        }
        match msg {
            Message::Join => self.on_join(from),
            Message::ForwardJoin { joiner, ttl } => self.on_forward_join(from, *joiner, *ttl),
            Message::Neighbour { high_priority } => self.on_neighbour(from, *high_priority),
            Message::NeighbourReply { accepted } => self.on_neighbour_reply(from, *accepted, now),
            Message::Shuffle { origin, ttl, peers } => self.on_shuffle(from, *origin, *ttl, peers),
            Message::ShuffleReply { peers } => {
                let prefer = std::mem::take(&mut self.last_shuffle);
                self.integrate(peers, &prefer);
            }
            Message::Disconnect { alive } => self.on_disconnect(from, *alive, now),
            _ => {}
        }
    }

    /// A connection to `peer` opened from `group`. An active neighbour whose group already has
    /// its share of the view is let go.
    pub fn set_group(&mut self, peer: PeerId, group: NetGroup) {
        self.groups.insert(peer, group);
        if self.active.contains(&peer) && self.group_full(&peer) {
            self.active.remove(&peer);
            self.send(peer, Message::Disconnect { alive: true });
            self.out.push_back(MembershipOutput::NeighbourDown(peer));
            self.add_passive(peer);
        }
    }

    /// The group of a connected peer.
    pub fn group(&self, peer: &PeerId) -> Option<NetGroup> {
        self.groups.get(peer).copied()
    }

    /// Whether `peer`'s group already has its share of the active view (not counting `peer`).
    fn group_full(&self, peer: &PeerId) -> bool {
        let Some(group) = self.groups.get(peer) else {
            return false;
        };
        let same = (self.active.peers().iter())
            .filter(|p| *p != peer && self.groups.get(p) == Some(group))
            .count();
        same >= self.config.max_per_group
    }

    /// The transport lost (`reachable`) or could not open (`!reachable`) the link to `peer`.
    pub fn handle_peer_down(&mut self, peer: PeerId, reachable: bool, now: Instant) {
        self.groups.remove(&peer);
        let was_pending = self.take_pending(&peer);
        if self.active.remove(&peer) {
            self.out.push_back(MembershipOutput::NeighbourDown(peer));
        }
        if was_pending || !reachable {
            self.passive.remove(&peer);
        }
        self.repair(now);
    }

    /// Runs due timers: request timeouts and the periodic shuffle.
    pub fn handle_timeout(&mut self, now: Instant) {
        let (expired, live): (Vec<_>, Vec<_>) =
            self.pending.iter().partition(|p| p.deadline <= now);
        self.pending = live;
        for p in expired {
            self.passive.remove(&p.peer);
        }
        if self.next_shuffle.is_some_and(|t| t <= now) {
            self.shuffle();
            self.next_shuffle = Some(now + self.shuffle_delay());
        }
        self.repair(now);
    }

    /// When [`Self::handle_timeout`] next has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let pending = self.pending.iter().map(|p| p.deadline).min();
        match (pending, self.next_shuffle) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The next thing to do for the engine.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<MembershipOutput> {
        self.out.pop_front()
    }

    fn on_join(&mut self, joiner: PeerId) {
        let accepted = self.add_active(joiner);
        self.send(joiner, Message::NeighbourReply { accepted });
        let ttl = self.config.active_walk;
        for peer in self.active.peers().to_vec() {
            if peer != joiner {
                self.send(peer, Message::ForwardJoin { joiner, ttl });
            }
        }
    }

    fn on_forward_join(&mut self, from: PeerId, joiner: PeerId, ttl: u8) {
        if joiner == self.me {
            return;
        }
        if ttl == 0 || self.active.len() <= 1 {
            self.accept_walker(joiner);
            return;
        }
        if ttl == self.config.passive_walk {
            self.add_passive(joiner);
        }
        match self.active.pick(&mut self.rng, &[from, joiner]) {
            Some(next) => self.send(
                next,
                Message::ForwardJoin {
                    joiner,
                    ttl: ttl - 1,
                },
            ),
            None => self.accept_walker(joiner),
        }
    }

    /// A walk ends here: link to the joiner, which must accept (high priority).
    fn accept_walker(&mut self, joiner: PeerId) {
        if self.active.contains(&joiner) || !self.add_active(joiner) {
            return;
        }
        self.send(
            joiner,
            Message::Neighbour {
                high_priority: true,
            },
        );
    }

    fn on_neighbour(&mut self, from: PeerId, high_priority: bool) {
        let room = self.active.contains(&from) || high_priority || !self.active.is_full();
        let accepted = room && self.add_active(from);
        if accepted {
            self.take_pending(&from);
        }
        self.send(from, Message::NeighbourReply { accepted });
    }

    fn on_neighbour_reply(&mut self, from: PeerId, accepted: bool, now: Instant) {
        let was_pending = self.take_pending(&from);
        if accepted {
            if (was_pending || self.active.contains(&from)) && !self.add_active(from) {
                // Its group filled the view meanwhile.
                self.send(from, Message::Disconnect { alive: true });
                self.add_passive(from);
            }
        } else {
            if self.active.remove(&from) {
                self.out.push_back(MembershipOutput::NeighbourDown(from));
            }
            self.add_passive(from);
        }
        self.repair(now);
    }

    fn on_shuffle(&mut self, from: PeerId, origin: PeerId, ttl: u8, peers: &[PeerId]) {
        if origin == self.me {
            return;
        }
        if ttl > 0 && self.active.len() > 1 {
            if let Some(next) = self.active.pick(&mut self.rng, &[from, origin]) {
                let peers = peers.to_vec();
                self.send(
                    next,
                    Message::Shuffle {
                        origin,
                        ttl: ttl - 1,
                        peers,
                    },
                );
                return;
            }
        }
        let reply = self.passive.sample(&mut self.rng, peers.len());
        self.send(
            origin,
            Message::ShuffleReply {
                peers: reply.clone(),
            },
        );
        let mut incoming = peers.to_vec();
        incoming.push(origin);
        self.integrate(&incoming, &reply);
    }

    fn on_disconnect(&mut self, from: PeerId, alive: bool, now: Instant) {
        self.take_pending(&from);
        if self.active.remove(&from) {
            self.out.push_back(MembershipOutput::NeighbourDown(from));
        }
        if alive {
            self.add_passive(from);
        } else {
            self.passive.remove(&from);
        }
        self.repair(now);
    }

    fn shuffle(&mut self) {
        let Some(target) = self.active.pick(&mut self.rng, &[]) else {
            return;
        };
        let mut peers = vec![self.me];
        peers.extend(
            self.active
                .sample(&mut self.rng, self.config.shuffle_active + 1)
                .into_iter()
                .filter(|p| *p != target)
                .take(self.config.shuffle_active),
        );
        peers.extend(
            self.passive
                .sample(&mut self.rng, self.config.shuffle_passive),
        );
        self.last_shuffle = peers.clone();
        let ttl = self.config.shuffle_walk;
        self.send(
            target,
            Message::Shuffle {
                origin: self.me,
                ttl,
                peers,
            },
        );
    }

    /// Takes shuffled-in peers into the passive view, evicting `prefer` first when full.
    fn integrate(&mut self, peers: &[PeerId], prefer: &[PeerId]) {
        let cap = self.config.shuffle_active + self.config.shuffle_passive + 1;
        for &p in peers.iter().take(cap) {
            if p == self.me || self.active.contains(&p) || self.passive.contains(&p) {
                continue;
            }
            if self.passive.is_full() {
                self.passive.evict(&mut self.rng, prefer);
            }
            self.passive.insert(p);
        }
    }

    /// Takes `peer` into the active view unless it is us or its group has its share; returns
    /// whether it is in the view.
    fn add_active(&mut self, peer: PeerId) -> bool {
        if peer == self.me {
            return false;
        }
        if self.active.contains(&peer) {
            return true;
        }
        if self.group_full(&peer) {
            return false;
        }
        self.passive.remove(&peer);
        if self.active.is_full() {
            if let Some(dropped) = self.active.evict(&mut self.rng, &[]) {
                self.send(dropped, Message::Disconnect { alive: true });
                self.out.push_back(MembershipOutput::NeighbourDown(dropped));
                self.add_passive(dropped);
            }
        }
        self.active.insert(peer);
        self.out.push_back(MembershipOutput::NeighbourUp(peer));
        true
    }

    fn add_passive(&mut self, peer: PeerId) {
        if peer == self.me || self.active.contains(&peer) || self.passive.contains(&peer) {
            return;
        }
        if self.passive.is_full() {
            self.passive.evict(&mut self.rng, &[]);
        }
        self.passive.insert(peer);
    }

    /// Fills a short active view from the passive view, one request at a time.
    fn repair(&mut self, now: Instant) {
        if self.active.is_full() || !self.pending.is_empty() {
            return;
        }
        let pending: Vec<PeerId> = self.pending.iter().map(|p| p.peer).collect();
        match self.passive.pick(&mut self.rng, &pending) {
            Some(candidate) => {
                let high_priority = self.active.is_empty();
                self.request(candidate, Message::Neighbour { high_priority }, now);
            }
            None if self.active.is_empty() => self.out.push_back(MembershipOutput::Isolated),
            None => {}
        }
    }

    fn request(&mut self, peer: PeerId, msg: Message, now: Instant) {
        self.pending.push(Pending {
            peer,
            deadline: now + self.config.request_timeout,
        });
        self.send(peer, msg);
    }

    fn take_pending(&mut self, peer: &PeerId) -> bool {
        let before = self.pending.len();
        self.pending.retain(|p| p.peer != *peer);
        before != self.pending.len()
    }

    fn send(&mut self, to: PeerId, msg: Message) {
        self.out.push_back(MembershipOutput::Send(to, msg));
    }

    /// Shuffle period with ±25 % jitter so that nodes do not shuffle in lock step.
    fn shuffle_delay(&mut self) -> Duration {
        let base = self.config.shuffle_interval.as_secs_f64();
        Duration::from_secs_f64(base * self.rng.random_range(0.75..1.25))
    }
}

#[cfg(test)]
mod tests;
