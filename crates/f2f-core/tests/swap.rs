//! Swap refinement's invariants over random interleavings, message loss and crashes mid-swap.
//!
//! A small network of [`Swaps`] machines: nodes sit on a plane and value a neighbour by how near
//! it is, so every committed swap that clears the threshold shortens the links and the process
//! must run out of gains. Messages take a random delay up to a sixth of the lock time (later is
//! lost, by the protocol's assumption) and some are lost; some nodes crash mid-run. A link is a
//! symmetric edge: a request that arrives and is accepted links both ends, a drop unlinks both.

use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use f2f_core::config::SwapConfig;
use f2f_core::id::PeerId;
use f2f_core::swap::{Neighbourhood, SwapId, SwapMessage, SwapOutput, Swaps};
use f2f_core::time::{Duration, Instant};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const TARGET: usize = 4;
const MAX: usize = TARGET + 1;

#[derive(Debug)]
enum Event {
    Msg(usize, usize, SwapMessage),
    LinkRequest(usize, usize),
    Propose(usize),
    Timeout(usize),
    Crash(usize),
}

struct Node {
    id: PeerId,
    pos: (f32, f32),
    alive: bool,
    /// Neighbours lost to crashes: the one way a degree may leave the band without a swap.
    lost: usize,
}

struct Hood<'a> {
    me: usize,
    nodes: &'a [Node],
    edges: &'a BTreeSet<(usize, usize)>,
    index: &'a BTreeMap<PeerId, usize>,
}

fn edge(a: usize, b: usize) -> (usize, usize) {
    (a.min(b), a.max(b))
}

fn degree(edges: &BTreeSet<(usize, usize)>, n: usize) -> usize {
    edges.iter().filter(|(a, b)| *a == n || *b == n).count()
}

impl Neighbourhood for Hood<'_> {
    fn neighbours(&self) -> Vec<PeerId> {
        (self.edges.iter())
            .filter_map(|&(a, b)| match (a == self.me, b == self.me) {
                (true, _) => Some(self.nodes[b].id),
                (_, true) => Some(self.nodes[a].id),
                _ => None,
            })
            .collect()
    }
    fn is_neighbour(&self, peer: &PeerId) -> bool {
        self.index
            .get(peer)
            .is_some_and(|&p| self.edges.contains(&edge(self.me, p)))
    }
    fn value(&self, peer: &PeerId) -> f32 {
        self.guess(&self.nodes[self.me].id, peer)
            .expect("every node is on the map")
    }
    fn guess(&self, viewer: &PeerId, peer: &PeerId) -> Option<f32> {
        let (x, y) = self.nodes[*self.index.get(viewer)?].pos;
        let (u, v) = self.nodes[*self.index.get(peer)?].pos;
        Some(100.0 - ((x - u).powi(2) + (y - v).powi(2)).sqrt())
    }
    fn may_swap(&self) -> bool {
        degree(self.edges, self.me) == TARGET
    }
    fn may_drop(&self, _: &PeerId) -> bool {
        true
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Parties {
    b: Option<usize>,
    c: Option<usize>,
    d: Option<usize>,
}

struct Net {
    nodes: Vec<Node>,
    swaps: Vec<Swaps>,
    /// Proposals seen going out, by proposer and nonce.
    proposals: BTreeMap<(usize, u32), Parties>,
    /// Whether nodes still propose (off: the run winds down and every lock must expire).
    proposing: bool,
    index: BTreeMap<PeerId, usize>,
    edges: BTreeSet<(usize, usize)>,
    queue: BinaryHeap<std::cmp::Reverse<(u64, u64)>>,
    events: BTreeMap<u64, Event>,
    seq: u64,
    now_us: u64,
    base: Instant,
    rng: ChaCha8Rng,
    cfg: SwapConfig,
    loss: f64,
    /// Commits whose edges had changed under them (must stay 0).
    stale_commits: usize,
    commits_at: Vec<u64>,
    /// The four nodes of each committed swap.
    committed: Vec<[usize; 4]>,
}

impl Net {
    fn new(n: usize, seed: u64, loss: f64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let nodes: Vec<Node> = (0..n)
            .map(|i| {
                let id =
                    PeerId::from_seed(&[seed.to_le_bytes(), (i as u64).to_le_bytes()].concat());
                Node {
                    id,
                    pos: (rng.random_range(0.0..50.0), rng.random_range(0.0..50.0)),
                    alive: true,
                    lost: 0,
                }
            })
            .collect();
        let swaps = nodes.iter().map(|n| Swaps::new(n.id)).collect();
        let index = nodes.iter().enumerate().map(|(i, n)| (n.id, i)).collect();
        // A ring lattice: everyone linked to the two nodes either side, far apart on the plane.
        let edges = (0..n)
            .flat_map(|i| [edge(i, (i + 1) % n), edge(i, (i + 2) % n)])
            .collect();
        let cfg = SwapConfig {
            enabled: true,
            threshold: 1.0,
            ..SwapConfig::default()
        };
        let mut net = Self {
            nodes,
            swaps,
            proposals: BTreeMap::new(),
            proposing: true,
            index,
            edges,
            queue: BinaryHeap::new(),
            events: BTreeMap::new(),
            seq: 0,
            now_us: 0,
            base: Instant::now(),
            rng,
            cfg,
            loss,
            stale_commits: 0,
            commits_at: Vec::new(),
            committed: Vec::new(),
        };
        for i in 0..n {
            net.share_lists(i);
            let first = net.rng.random_range(0..5_000_000);
            net.at(first, Event::Propose(i));
        }
        net
    }

    fn now(&self) -> Instant {
        self.base + Duration::from_micros(self.now_us)
    }

    fn at(&mut self, t: u64, e: Event) {
        self.seq += 1;
        self.events.insert(self.seq, e);
        self.queue.push(std::cmp::Reverse((t, self.seq)));
    }

    /// A message or link request on the wire: lost, or delayed up to a sixth of the lock.
    fn wire(&mut self, e: Event) {
        if self.rng.random_bool(self.loss) {
            return;
        }
        let max = self.cfg.lock.as_micros() as u64 / 6;
        let delay = self.rng.random_range(1_000..max);
        self.at(self.now_us + delay, e);
    }

    fn hood(&self, me: usize) -> Hood<'_> {
        Hood {
            me,
            nodes: &self.nodes,
            edges: &self.edges,
            index: &self.index,
        }
    }

    /// Each node tells its neighbours its list (as the engine does when its links change).
    fn share_lists(&mut self, me: usize) {
        for (a, b) in self.edges.clone() {
            let (from, to) = if a == me {
                (a, b)
            } else if b == me {
                (b, a)
            } else {
                continue;
            };
            let list = self.hood(from).neighbours();
            let id = self.nodes[from].id;
            self.swaps[to].on_neighbours(id, list);
        }
    }

    fn drain(&mut self, me: usize) {
        while let Some(out) = self.swaps[me].poll_output() {
            match out {
                SwapOutput::Send(to, msg) => {
                    let to = self.index[&to];
                    if let SwapMessage::Commit { id } = &msg {
                        self.check_commit(me, *id);
                    }
                    self.note_prepare(me, to, &msg);
                    self.wire(Event::Msg(me, to, msg));
                }
                SwapOutput::Link(to) => {
                    let to = self.index[&to];
                    self.wire(Event::LinkRequest(me, to));
                }
                SwapOutput::Unlink(peer) => {
                    let peer = self.index[&peer];
                    self.edges.remove(&edge(me, peer));
                    self.swaps[peer].forget(&self.nodes[me].id);
                    self.share_lists(peer);
                }
            }
        }
        if let Some(t) = self.swaps[me].poll_timeout() {
            let t = t.saturating_duration_since(self.base).as_micros() as u64;
            self.at(t.max(self.now_us), Event::Timeout(me));
        }
    }

    /// Notes the parties of a proposal from its `Prepare`s.
    fn note_prepare(&mut self, proposer: usize, to: usize, msg: &SwapMessage) {
        let SwapMessage::Prepare { id, drop, add } = msg else {
            return;
        };
        let me = self.nodes[proposer].id;
        let entry = self.proposals.entry((proposer, id.nonce)).or_default();
        if *drop == me {
            entry.c = Some(to);
            entry.b = Some(self.index[add]);
        } else if *add == me {
            entry.d = Some(to);
        }
    }

    /// At commit, the edges the swap assumed must still be as proposed: the parties' locks
    /// kept every other swap off them.
    fn check_commit(&mut self, proposer: usize, id: SwapId) {
        let Some(Parties {
            b: Some(b),
            c: Some(c),
            d: Some(d),
        }) = self.proposals.remove(&(proposer, id.nonce))
        else {
            return;
        };
        self.commits_at.push(self.now_us);
        self.committed.push([proposer, b, c, d]);
        let alive = [proposer, b, c, d].iter().all(|&n| self.nodes[n].alive);
        let as_proposed = self.edges.contains(&edge(proposer, c))
            && self.edges.contains(&edge(b, d))
            && !self.edges.contains(&edge(proposer, d))
            && !self.edges.contains(&edge(b, c));
        if alive && !as_proposed {
            self.stale_commits += 1;
        }
    }

    fn step(&mut self) -> bool {
        let Some(std::cmp::Reverse((t, seq))) = self.queue.pop() else {
            return false;
        };
        self.now_us = t;
        let now = self.now();
        let event = self.events.remove(&seq).expect("queued with its event");
        let me = match event {
            Event::Msg(from, to, msg) => {
                if !self.nodes[to].alive || !self.nodes[from].alive {
                    return true;
                }
                let from_id = self.nodes[from].id;
                let hood = Hood {
                    me: to,
                    nodes: &self.nodes,
                    edges: &self.edges,
                    index: &self.index,
                };
                self.swaps[to].handle(from_id, msg, &hood, &self.cfg, now);
                to
            }
            Event::LinkRequest(from, to) => {
                if !self.nodes[to].alive || !self.nodes[from].alive {
                    return true;
                }
                let from_id = self.nodes[from].id;
                let expected = self.swaps[to].expects_link(&from_id);
                if !(expected || degree(&self.edges, to) < MAX) {
                    return true;
                }
                if self.edges.insert(edge(from, to)) {
                    let to_id = self.nodes[to].id;
                    self.swaps[to].link_up(&from_id, &self.cfg, now);
                    self.swaps[from].link_up(&to_id, &self.cfg, now);
                    self.drain(from);
                    self.share_lists(from);
                    self.share_lists(to);
                }
                to
            }
            Event::Propose(me) => {
                if !self.nodes[me].alive {
                    return true;
                }
                if self.proposing {
                    let hood = Hood {
                        me,
                        nodes: &self.nodes,
                        edges: &self.edges,
                        index: &self.index,
                    };
                    self.swaps[me].propose(&hood, &self.cfg, now);
                }
                let next = self.now_us + self.cfg.interval.as_micros() as u64;
                self.at(next, Event::Propose(me));
                me
            }
            Event::Timeout(me) => {
                self.swaps[me].handle_timeout(&self.cfg, now);
                me
            }
            Event::Crash(me) => {
                self.nodes[me].alive = false;
                let gone: Vec<_> = (self.edges.iter())
                    .filter(|(a, b)| *a == me || *b == me)
                    .copied()
                    .collect();
                for (a, b) in gone {
                    self.edges.remove(&(a, b));
                    let other = if a == me { b } else { a };
                    self.nodes[other].lost += 1;
                    self.share_lists(other);
                }
                return true;
            }
        };
        if self.nodes[me].alive {
            self.drain(me);
        }
        self.check_degrees();
        true
    }

    fn check_degrees(&mut self) {
        for (i, n) in self.nodes.iter().enumerate().filter(|(_, n)| n.alive) {
            let d = degree(&self.edges, i);
            assert!(d + n.lost <= TARGET + 1, "node {i} has degree {d}");
            assert!(d + n.lost + 1 >= TARGET, "node {i} has degree {d}");
            assert!(
                d >= 1 || n.lost > 0,
                "node {i} lost every neighbour to swaps"
            );
        }
    }

    fn run_until(&mut self, t: u64) {
        while self.queue.peek().is_some_and(|r| r.0.0 <= t) {
            self.step();
        }
    }

    /// Summed length of all links: what the swaps shorten.
    fn length(&self) -> f32 {
        (self.edges.iter())
            .map(|&(a, b)| {
                let ((x, y), (u, v)) = (self.nodes[a].pos, self.nodes[b].pos);
                ((x - u).powi(2) + (y - v).powi(2)).sqrt()
            })
            .sum()
    }
}

const SECOND: u64 = 1_000_000;

/// Under loss and crashes: no node is left without neighbours, degrees stay within the target
/// ±1 (beyond what crashes took), no swap commits on edges another swap changed, and every lock
/// expires once proposals stop.
#[test]
fn swaps_keep_the_invariants() {
    let commits = std::cell::Cell::new(0);
    let cases = (any::<u64>(), 10usize..40, 0.0f64..0.2, 0usize..4);
    let mut runner = TestRunner::new(ProptestConfig::with_cases(48));
    let outcome = runner.run(&cases, |(seed, n, loss, crashes)| {
        let mut net = Net::new(n, seed, loss);
        for _ in 0..crashes {
            let (who, when) = (
                net.rng.random_range(0..n),
                net.rng.random_range(0..60 * SECOND),
            );
            net.at(when, Event::Crash(who));
        }
        net.run_until(90 * SECOND);
        prop_assert_eq!(net.stale_commits, 0);
        commits.set(commits.get() + net.commits_at.len());
        net.proposing = false;
        let lock = net.cfg.lock.as_micros() as u64;
        net.run_until(90 * SECOND + 3 * lock);
        for (i, s) in net.swaps.iter().enumerate() {
            prop_assert!(
                !s.is_locked() || !net.nodes[i].alive,
                "node {} still locked",
                i
            );
        }
        Ok(())
    });
    if let Err(e) = outcome {
        panic!("{e}");
    }
    // Small rings that lost nodes may find nothing to swap; over all cases, plenty commit.
    assert!(
        commits.get() > 200,
        "only {} swaps committed: too little was tested",
        commits.get()
    );
}

/// With nothing lost, swaps shorten the links and then stop: the gains run out, and so do the
/// commits.
#[test]
fn the_topology_converges() {
    for seed in 1..=3 {
        let mut net = Net::new(40, seed, 0.0);
        let before = net.length();
        net.run_until(1200 * SECOND);
        let after = net.length();
        let early = net.commits_at.iter().filter(|&&t| t < 100 * SECOND).count();
        let late = net
            .commits_at
            .iter()
            .filter(|&&t| t >= 900 * SECOND)
            .count();
        assert!(after < 0.6 * before, "seed {seed}: {before} → {after}");
        assert!(early >= 20, "seed {seed}: {early} swaps in the first 100 s");
        assert!(
            late * 5 <= early,
            "seed {seed}: {early} early, {late} in the last 300 s"
        );
        assert_eq!(net.stale_commits, 0);
    }
}

/// Proposals made at the same instant that need the same node: it locks for one and refuses
/// the others, so the swaps that commit share no node (and so no edge).
#[test]
fn conflicting_proposals_do_not_both_commit() {
    let mut clashes = 0;
    for seed in 0..100 {
        let mut net = Net::new(12, seed, 0.0);
        net.queue.clear();
        net.events.clear();
        for i in 0..12 {
            net.share_lists(i);
        }
        let now = net.now();
        for me in 0..12 {
            let hood = Hood {
                me,
                nodes: &net.nodes,
                edges: &net.edges,
                index: &net.index,
            };
            net.swaps[me].propose(&hood, &net.cfg, now);
            net.drain(me);
        }
        let proposals: Vec<BTreeSet<usize>> = (net.proposals.iter())
            .map(|(&(a, _), p)| [Some(a), p.b, p.c, p.d].into_iter().flatten().collect())
            .collect();
        clashes += (0..proposals.len())
            .flat_map(|i| (i + 1..proposals.len()).map(move |j| (i, j)))
            .filter(|&(i, j)| !proposals[i].is_disjoint(&proposals[j]))
            .count();
        net.run_until(net.cfg.lock.as_micros() as u64);
        for (i, x) in net.committed.iter().enumerate() {
            for y in &net.committed[i + 1..] {
                assert!(
                    x.iter().all(|n| !y.contains(n)),
                    "seed {seed}: {x:?} and {y:?}"
                );
            }
        }
        assert_eq!(net.stale_commits, 0, "seed {seed}");
    }
    assert!(
        clashes > 100,
        "only {clashes} clashing pairs: the test proves little"
    );
}

/// A node asks a stranger to swap a neighbour for a third node: the stranger refuses and stays
/// free (only a swap's parties may be asked to rewire, and a stranger is none).
#[test]
fn a_stranger_cannot_rewire_links_it_has_no_part_in() {
    let mut net = Net::new(12, 9, 0.0);
    // On the ring, node 0's neighbours are 1, 2, 10 and 11; node 6 is a stranger to it.
    let (victim, stranger, held, third) = (0, 6, 1, 5);
    let id = SwapId {
        proposer: net.nodes[stranger].id,
        nonce: 0,
    };
    let prepare = SwapMessage::Prepare {
        id,
        drop: net.nodes[held].id,
        add: net.nodes[third].id,
    };
    let hood = Hood {
        me: victim,
        nodes: &net.nodes,
        edges: &net.edges,
        index: &net.index,
    };
    let now = net.now();
    let from = net.nodes[stranger].id;
    net.swaps[victim].handle(from, prepare, &hood, &net.cfg, now);
    assert!(!net.swaps[victim].is_locked());
    assert_eq!(
        net.swaps[victim].poll_output(),
        Some(SwapOutput::Send(
            from,
            SwapMessage::Vote {
                id,
                gain_kbps: None
            }
        ))
    );
}
