//! Overlay properties on a small virtual-time network: symmetric active views, a connected
//! overlay after joins through few entry peers, and healing after half the swarm fails at once.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use super::*;

const LATENCY: Duration = Duration::from_millis(20);

enum Ev {
    Deliver(PeerId, PeerId, Message),
    Down(PeerId, PeerId),
    Timer(PeerId),
}

/// Nodes linked by a fixed-latency network; a message to a dead node bounces as a link failure.
struct Net {
    t0: Instant,
    now: Instant,
    nodes: BTreeMap<PeerId, Membership>,
    dead: BTreeSet<PeerId>,
    queue: BinaryHeap<Reverse<(Instant, u64)>>,
    events: BTreeMap<u64, Ev>,
    seq: u64,
}

impl Net {
    fn new() -> Self {
        let t0 = Instant::now();
        Self {
            t0,
            now: t0,
            nodes: BTreeMap::new(),
            dead: BTreeSet::new(),
            queue: BinaryHeap::new(),
            events: BTreeMap::new(),
            seq: 0,
        }
    }

    fn push(&mut self, at: Instant, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq)));
        self.events.insert(self.seq, ev);
    }

    fn add(&mut self, i: u32, contacts: &[PeerId]) -> PeerId {
        let id = PeerId::from_seed(&i.to_le_bytes());
        let mut m = Membership::new(id, MembershipConfig::default(), u64::from(i));
        m.join(contacts, self.now);
        self.nodes.insert(id, m);
        self.flush(id);
        id
    }

    fn flush(&mut self, id: PeerId) {
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        let mut sends = Vec::new();
        while let Some(out) = node.poll_output() {
            if let MembershipOutput::Send(to, msg) = out {
                sends.push((to, msg));
            }
        }
        let timer = node.poll_timeout();
        for (to, msg) in sends {
            if self.dead.contains(&to) {
                self.push(self.now + LATENCY * 2, Ev::Down(id, to));
            } else {
                self.push(self.now + LATENCY, Ev::Deliver(id, to, msg));
            }
        }
        if let Some(t) = timer {
            self.push(t.max(self.now), Ev::Timer(id));
        }
    }

    fn run_until(&mut self, secs: u64) {
        let end = self.t0 + Duration::from_secs(secs);
        while let Some(Reverse((at, seq))) = self.queue.peek().copied() {
            if at > end {
                break;
            }
            self.queue.pop();
            self.now = at;
            let ev = self.events.remove(&seq).expect("queued");
            let target = match ev {
                Ev::Deliver(from, to, msg) => {
                    if self.dead.contains(&to) {
                        self.push(self.now + LATENCY, Ev::Down(to, from));
                        continue;
                    }
                    let Some(n) = self.nodes.get_mut(&to) else {
                        continue;
                    };
                    n.handle_message(from, &msg, at);
                    to
                }
                Ev::Down(at_node, peer) => {
                    let Some(n) = self.nodes.get_mut(&at_node) else {
                        continue;
                    };
                    n.handle_peer_down(peer, false, at);
                    at_node
                }
                Ev::Timer(id) => {
                    let Some(n) = self.nodes.get_mut(&id) else {
                        continue;
                    };
                    if n.poll_timeout().is_some_and(|t| t > at) {
                        continue;
                    }
                    n.handle_timeout(at);
                    id
                }
            };
            self.flush(target);
        }
        self.now = end;
    }

    fn kill(&mut self, id: PeerId) {
        self.dead.insert(id);
        let node = self.nodes.remove(&id).expect("alive");
        for &peer in node.active() {
            self.push(self.now + LATENCY, Ev::Down(peer, id));
        }
    }

    fn assert_symmetric(&self) {
        for (id, n) in &self.nodes {
            for peer in n.active() {
                let other = &self.nodes[peer];
                assert!(other.active().contains(id), "{id} -> {peer} is one-way");
            }
        }
    }

    fn connected_component(&self) -> usize {
        let start = *self.nodes.keys().next().expect("non-empty");
        let mut seen = BTreeSet::from([start]);
        let mut stack = vec![start];
        while let Some(n) = stack.pop() {
            for p in self.nodes[&n].active() {
                if self.nodes.contains_key(p) && seen.insert(*p) {
                    stack.push(*p);
                }
            }
        }
        seen.len()
    }
}

fn grow(net: &mut Net, n: u32) -> Vec<PeerId> {
    let mut ids = vec![net.add(0, &[])];
    for i in 1..n {
        // A tracker hands out up to three random members; here: deterministic picks.
        let contacts: Vec<PeerId> = (0..3)
            .map(|k| ids[(i as usize * 7 + k * 13) % ids.len()])
            .collect();
        ids.push(net.add(i, &contacts));
        let t = net.now.duration_since(net.t0).as_secs() + 1;
        net.run_until(t);
    }
    ids
}

#[test]
fn joins_build_a_connected_symmetric_overlay() {
    let mut net = Net::new();
    grow(&mut net, 200);
    net.run_until(400);
    net.assert_symmetric();
    assert_eq!(net.connected_component(), 200);
    for n in net.nodes.values() {
        assert!(!n.active().is_empty());
        assert!(n.active().len() <= 5);
    }
    let mean_passive = net.nodes.values().map(|n| n.passive().len()).sum::<usize>() as f64 / 200.0;
    assert!(
        mean_passive > 15.0,
        "shuffles fill passive views: {mean_passive}"
    );
}

#[test]
fn overlay_heals_after_half_the_swarm_fails() {
    let mut net = Net::new();
    let ids = grow(&mut net, 200);
    net.run_until(300);
    for id in ids.iter().step_by(2) {
        net.kill(*id);
    }
    net.run_until(400);
    net.assert_symmetric();
    assert_eq!(net.connected_component(), 100);
    let isolated = net.nodes.values().filter(|n| n.active().is_empty()).count();
    assert_eq!(isolated, 0);
}

#[test]
fn full_active_view_evicts_to_passive_with_disconnect() {
    let now = Instant::now();
    let me = PeerId::from_seed(b"me");
    let mut m = Membership::new(
        me,
        MembershipConfig {
            active_view: 2,
            ..Default::default()
        },
        1,
    );
    for i in 0..3u8 {
        m.handle_message(PeerId::from_seed(&[i]), &Message::Join, now);
    }
    assert_eq!(m.active().len(), 2);
    assert_eq!(m.passive().len(), 1);
    let mut disconnects = 0;
    while let Some(out) = m.poll_output() {
        if let MembershipOutput::Send(_, Message::Disconnect { alive: true }) = out {
            disconnects += 1;
        }
    }
    assert_eq!(disconnects, 1);
}

#[test]
fn unanswered_join_falls_back_to_another_contact() {
    let t0 = Instant::now();
    let me = PeerId::from_seed(b"me");
    let (a, b) = (PeerId::from_seed(b"a"), PeerId::from_seed(b"b"));
    let mut m = Membership::new(me, MembershipConfig::default(), 1);
    m.join(&[a, b], t0);
    assert_eq!(
        m.poll_output(),
        Some(MembershipOutput::Send(a, Message::Join))
    );
    m.handle_timeout(t0 + Duration::from_secs(3));
    let sent: Vec<_> = std::iter::from_fn(|| m.poll_output()).collect();
    assert!(sent.contains(&MembershipOutput::Send(
        b,
        Message::Neighbour {
            high_priority: true
        }
    )));
}
