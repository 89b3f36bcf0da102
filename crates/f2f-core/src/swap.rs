//! Swap refinement of the data-neighbour set, without a coordinator.
//!
//! A node `A` proposes the degree-preserving rewiring "I drop `C` and take `D`; my neighbour `B`
//! drops `D` and takes `C`" when its model predicts a total gain above a threshold. All four
//! parties evaluate their part of the gain on their own measurements (`value(add) −
//! value(drop)`), lock themselves for the swap, and vote. `A` commits only if everyone voted
//! within the first half of the lock and the summed gain clears the threshold; otherwise it
//! aborts. On commit each party opens its new link and drops its old one only once the new one is
//! up (make before break). Locks expire on their own, so a lost message or a crashed party costs
//! at most one lock time and no edge.
//!
//! Why the invariants hold (the property tests in `tests/swap.rs` check them under loss and
//! crashes):
//! - a node takes part in one swap at a time, only while [`Neighbourhood::may_swap`], and after
//!   a lock that ran out waits [`SwapConfig::lock`] before the next: each swap moves its degree
//!   by at most one, and the late messages of an expired swap land before the next begins (a
//!   message later than a sixth of a lock is taken as lost: a commit leaves by half a lock, and
//!   it and the link request after it must arrive before the parties' locks run out);
//! - a node drops an edge only after its replacement is up, so its own drops never lower its
//!   degree; only the far side of a drop can lose one, and it is a party that locked;
//! - two swaps touching the same edge share a node, which can be locked by only one of them.
//!
//! Sans-IO like the rest of the core: the engine feeds messages, link changes and time, and
//! carries out [`SwapOutput`]s.

use std::collections::{BTreeMap, VecDeque};

use crate::config::SwapConfig;
use crate::id::PeerId;
use crate::time::Instant;

/// Mbit/s to the wire's kbit/s (saturating: a gain that large is as good as any).
fn kbps(mbps: f32) -> i32 {
    (mbps * 1000.0).round() as i32
}

/// Proposal intervals before an aborted rewiring is proposed again.
const RETRY_AFTER: u32 = 12;

/// A swap, named by its proposer and a counter of the proposer's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SwapId {
    /// The node that proposed it (and decides it).
    pub proposer: PeerId,
    /// The proposer's counter.
    pub nonce: u32,
}

/// Swap messages between the parties.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SwapMessage {
    /// Proposer to each party: lock, drop your link to `drop` and take `add`, if you agree.
    Prepare {
        /// The swap.
        id: SwapId,
        /// The neighbour the party gives up.
        drop: PeerId,
        /// The node it links to instead.
        add: PeerId,
    },
    /// A party's answer: its predicted gain, or `None` (busy, or the edges are not as proposed).
    Vote {
        /// The swap.
        id: SwapId,
        /// `value(add) − value(drop)` on the party's own measurements, kbit/s.
        gain_kbps: Option<i32>,
    },
    /// Proposer to the parties: go ahead.
    Commit {
        /// The swap.
        id: SwapId,
    },
    /// Proposer to the parties: release your lock.
    Abort {
        /// The swap.
        id: SwapId,
    },
}

/// What the swap machinery asks its host to do.
#[derive(Clone, Debug, PartialEq)]
pub enum SwapOutput {
    /// Send a swap message.
    Send(PeerId, SwapMessage),
    /// Open a data link to this peer (it expects the request: see [`Swaps::expects_link`]).
    Link(PeerId),
    /// Drop the data link to this peer: its replacement is up.
    Unlink(PeerId),
}

/// Counters for telemetry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SwapStats {
    /// Swaps this node proposed.
    pub proposed: u64,
    /// Swaps this node committed as proposer.
    pub committed: u64,
    /// Swaps this node aborted as proposer (refused, too little gain, or timed out).
    pub aborted: u64,
    /// Old links this node dropped because a swap's new link came up.
    pub rewired: u64,
}

/// What the host knows about its data neighbours.
pub trait Neighbourhood {
    /// The current data neighbours.
    fn neighbours(&self) -> Vec<PeerId>;
    /// Whether `peer` is a data neighbour.
    fn is_neighbour(&self, peer: &PeerId) -> bool;
    /// The predicted worth of `peer` as a data neighbour (expected segment throughput, Mbit/s).
    fn value(&self, peer: &PeerId) -> f32;
    /// Our guess of what `peer` is worth to `viewer`, if we can tell (network coordinates make
    /// this possible for nodes we never measured each other with).
    fn guess(&self, viewer: &PeerId, peer: &PeerId) -> Option<f32>;
    /// Whether the current degree leaves room to lose one neighbour or gain one.
    fn may_swap(&self) -> bool;
    /// Whether a swap may take `peer` from us (a host keeps a few links out of every swap, so
    /// that rewiring for locality cannot cut the graph into clusters).
    fn may_drop(&self, peer: &PeerId) -> bool;
}

#[derive(Clone, Debug)]
enum Phase {
    /// Proposer: waiting for the three votes (`None` until each arrives).
    Voting {
        parties: [PeerId; 3],
        votes: [Option<f32>; 3],
        own: f32,
        decide_by: Instant,
    },
    /// A party that voted yes, waiting for the proposer's decision.
    Prepared,
    /// Committed: waiting for the new link before dropping the old one.
    Committed,
}

#[derive(Clone, Debug)]
struct Lock {
    id: SwapId,
    drop: PeerId,
    add: PeerId,
    expires: Instant,
    phase: Phase,
}

/// One node's side of swap refinement.
#[derive(Debug)]
pub struct Swaps {
    me: PeerId,
    lock: Option<Lock>,
    /// No new lock before this (a rest after each lock).
    rest_until: Option<Instant>,
    next_nonce: u32,
    /// The neighbour lists our neighbours last reported.
    lists: BTreeMap<PeerId, Vec<PeerId>>,
    /// Proposals (partner, given, taken) that aborted, not tried again until the time noted:
    /// a rewiring the others value less than we do would otherwise be proposed forever.
    tried: BTreeMap<(PeerId, PeerId, PeerId), Instant>,
    out: VecDeque<SwapOutput>,
    stats: SwapStats,
}

impl Swaps {
    /// Swap machinery for node `me`.
    pub fn new(me: PeerId) -> Self {
        Self {
            me,
            lock: None,
            rest_until: None,
            next_nonce: 0,
            lists: BTreeMap::new(),
            tried: BTreeMap::new(),
            out: VecDeque::new(),
            stats: SwapStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> SwapStats {
        self.stats
    }

    /// Whether this node is locked in a swap.
    pub fn is_locked(&self) -> bool {
        self.lock.is_some()
    }

    /// The next thing to do, if any.
    pub fn poll_output(&mut self) -> Option<SwapOutput> {
        self.out.pop_front()
    }

    /// When [`Swaps::handle_timeout`] must run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.lock.as_ref().map(|l| match l.phase {
            Phase::Voting { decide_by, .. } => decide_by,
            Phase::Prepared | Phase::Committed => l.expires,
        })
    }

    /// A neighbour told us its own data neighbours (bounded by the caller's decoder).
    pub fn on_neighbours(&mut self, from: PeerId, list: Vec<PeerId>) {
        self.lists.insert(from, list);
    }

    /// A neighbour is no longer one: forget its list.
    pub fn forget(&mut self, peer: &PeerId) {
        self.lists.remove(peer);
    }

    fn free(&self, now: Instant) -> bool {
        self.lock.is_none() && self.rest_until.is_none_or(|t| t <= now)
    }

    /// Ends our part in the swap. A lock that ran out may still see the swap's late messages
    /// (a link request, the far side's drop), so it rests a lock time before the next: they
    /// land before this node can be counted on by another swap. An abort or a completed rewiring
    /// leaves nothing in flight that touches our edges.
    fn release(&mut self, now: Instant, cfg: &SwapConfig, expired: bool) {
        self.lock = None;
        if expired {
            self.rest_until = Some(now + cfg.lock);
        }
    }

    /// Proposes the best swap the model sees, if its own gain clears the threshold. Returns
    /// whether it did.
    pub fn propose(&mut self, hood: &impl Neighbourhood, cfg: &SwapConfig, now: Instant) -> bool {
        if !cfg.enabled || !self.free(now) || !hood.may_swap() {
            return false;
        }
        self.tried.retain(|_, until| *until > now);
        let mine = hood.neighbours();
        // Ranked by the whole rewiring's predicted gain: ours, plus what we can tell of the
        // others' (each still judges its own share when it votes). Our own share alone would
        // pick swaps that take from the partner exactly what they give us.
        let me = self.me;
        let share = |party: &PeerId, add: &PeerId, drop: &PeerId| {
            (hood.guess(party, add).zip(hood.guess(party, drop))).map_or(0.0, |(a, d)| a - d)
        };
        let mut best: Option<(f32, f32, PeerId, PeerId, PeerId)> = None;
        for b in &mine {
            let Some(theirs) = self.lists.get(b) else {
                continue;
            };
            for d in theirs {
                if *d == me || hood.is_neighbour(d) {
                    continue;
                }
                let take = hood.value(d);
                for c in mine.iter().filter(|c| {
                    *c != b
                        && !theirs.contains(c)
                        && hood.may_drop(c)
                        && !self.tried.contains_key(&(*b, **c, *d))
                }) {
                    let own = take - hood.value(c);
                    let total = own + share(b, c, d) + share(c, b, &me) + share(d, &me, b);
                    if best.is_none_or(|(t, ..)| total > t) {
                        best = Some((total, own, *b, *c, *d));
                    }
                }
            }
        }
        let Some((_, own, b, c, d)) = best.filter(|(t, ..)| *t > cfg.threshold) else {
            return false;
        };
        let id = SwapId {
            proposer: self.me,
            nonce: self.next_nonce,
        };
        self.next_nonce = self.next_nonce.wrapping_add(1);
        self.lock = Some(Lock {
            id,
            drop: c,
            add: d,
            expires: now + cfg.lock,
            phase: Phase::Voting {
                parties: [b, c, d],
                votes: [None; 3],
                own,
                decide_by: now + cfg.lock / 2,
            },
        });
        for (to, drop, add) in [(b, d, c), (c, self.me, b), (d, b, self.me)] {
            self.send(to, SwapMessage::Prepare { id, drop, add });
        }
        self.stats.proposed += 1;
        true
    }

    /// A swap message from `from`.
    pub fn handle(
        &mut self,
        from: PeerId,
        msg: SwapMessage,
        hood: &impl Neighbourhood,
        cfg: &SwapConfig,
        now: Instant,
    ) {
        match msg {
            SwapMessage::Prepare { id, drop, add } => {
                // The proposer is our neighbour (we are its partner, or it is the neighbour we
                // drop and hand over) or the node we take: a stranger cannot rewire links it
                // has no part in.
                let involved = hood.is_neighbour(&from) || add == from;
                let fits = from == id.proposer
                    && involved
                    && self.free(now)
                    && hood.may_swap()
                    && add != self.me
                    && hood.is_neighbour(&drop)
                    && hood.may_drop(&drop)
                    && !hood.is_neighbour(&add);
                let gain_kbps = fits.then(|| kbps(hood.value(&add) - hood.value(&drop)));
                if fits {
                    self.lock = Some(Lock {
                        id,
                        drop,
                        add,
                        expires: now + cfg.lock,
                        phase: Phase::Prepared,
                    });
                }
                self.send(from, SwapMessage::Vote { id, gain_kbps });
            }
            SwapMessage::Vote { id, gain_kbps } => {
                self.on_vote(from, id, gain_kbps.map(|g| g as f32 / 1000.0), cfg, now);
            }
            SwapMessage::Commit { id } => {
                let waiting = self.lock.as_mut().filter(|l| {
                    l.id == id && from == id.proposer && matches!(l.phase, Phase::Prepared)
                });
                if let Some(l) = waiting {
                    l.phase = Phase::Committed;
                    let add = l.add;
                    self.out.push_back(SwapOutput::Link(add));
                }
            }
            SwapMessage::Abort { id } => {
                if self.lock.as_ref().is_some_and(|l| {
                    l.id == id && from == id.proposer && matches!(l.phase, Phase::Prepared)
                }) {
                    self.release(now, cfg, false);
                }
            }
        }
    }

    fn on_vote(
        &mut self,
        from: PeerId,
        id: SwapId,
        gain: Option<f32>,
        cfg: &SwapConfig,
        now: Instant,
    ) {
        let Some(Lock {
            id: mine,
            add,
            phase:
                Phase::Voting {
                    parties,
                    votes,
                    own,
                    decide_by,
                },
            ..
        }) = self.lock.as_mut()
        else {
            return;
        };
        let Some(i) = parties.iter().position(|p| *p == from) else {
            return;
        };
        if *mine != id || now >= *decide_by {
            return;
        }
        let Some(gain) = gain else {
            self.abort(now, cfg, false);
            return;
        };
        votes[i] = Some(gain);
        if votes.iter().any(Option::is_none) {
            return;
        }
        let total = *own + votes.iter().flatten().sum::<f32>();
        if total <= cfg.threshold {
            self.abort(now, cfg, true);
            return;
        }
        let (parties, add) = (*parties, *add);
        if let Some(l) = self.lock.as_mut() {
            l.phase = Phase::Committed;
        }
        for to in parties {
            self.send(to, SwapMessage::Commit { id });
        }
        self.out.push_back(SwapOutput::Link(add));
        self.stats.committed += 1;
    }

    /// Withdraws our proposal; `too_little` (the others value the rewiring less than we do)
    /// also keeps it from being proposed again for a while. A refusal or a lost vote does not:
    /// the party was busy, and may not be next time.
    fn abort(&mut self, now: Instant, cfg: &SwapConfig, too_little: bool) {
        if let Some(Lock {
            id,
            phase: Phase::Voting { parties, .. },
            ..
        }) = self.lock.clone()
        {
            for to in parties {
                self.send(to, SwapMessage::Abort { id });
            }
            if too_little {
                let [b, c, d] = parties;
                self.tried
                    .insert((b, c, d), now + cfg.interval * RETRY_AFTER);
            }
            self.stats.aborted += 1;
        }
        self.release(now, cfg, false);
    }

    /// Whether a link request from `from` is the new link of the swap we are in (accept it even
    /// at the degree limit). A request from the new neighbour means its side committed, so a
    /// party still waiting for the decision takes it as the commit.
    pub fn expects_link(&mut self, from: &PeerId) -> bool {
        match self.lock.as_mut() {
            Some(l) if l.add == *from && !matches!(l.phase, Phase::Voting { .. }) => {
                l.phase = Phase::Committed;
                true
            }
            _ => false,
        }
    }

    /// A data link came up: if it is our swap's new one, drop the old one and release.
    pub fn link_up(&mut self, peer: &PeerId, cfg: &SwapConfig, now: Instant) {
        if let Some(l) = self
            .lock
            .as_ref()
            .filter(|l| l.add == *peer && matches!(l.phase, Phase::Committed))
        {
            let drop = l.drop;
            self.out.push_back(SwapOutput::Unlink(drop));
            self.stats.rewired += 1;
            self.release(now, cfg, false);
        }
    }

    /// Time passed: abort an undecided proposal, release an expired lock.
    pub fn handle_timeout(&mut self, cfg: &SwapConfig, now: Instant) {
        let Some(l) = &self.lock else {
            return;
        };
        match l.phase {
            Phase::Voting { decide_by, .. } if decide_by <= now => self.abort(now, cfg, false),
            Phase::Prepared | Phase::Committed if l.expires <= now => self.release(now, cfg, true),
            _ => {}
        }
    }

    fn send(&mut self, to: PeerId, msg: SwapMessage) {
        self.out.push_back(SwapOutput::Send(to, msg));
    }
}
