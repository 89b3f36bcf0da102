//! The discrete-event world: real `f2f-core` engines over simulated links, CDN and players.
//!
//! Links: every peer has an uplink served first-in first-out, a downlink rate and a one-way
//! access latency; a message leaves the sender's uplink, crosses both access latencies, then
//! takes its serialisation time on the receiver's downlink. Downlinks are not queued across
//! flows: residential downlinks are several times the uplinks feeding them, and the scheduler
//! runs one transfer per segment, so the uplink is where queues form. Connections are ordered
//! and reliable (as WebRTC data channels are): loss shows up as a retransmission delay, never
//! as a gap. The CDN answers after its latency, at its per-flow rate capped by the downlink.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use f2f_core::config::{Config, HashSource, SourcePreference};
use f2f_core::engine::{CdnError, Engine, Input, Output, SegmentInfo};
use f2f_core::id::{PeerId, SegmentKey, SegmentPosition};
use f2f_core::identity::{
    Authority, CertificateVerifier, ChannelBinding, Crypto, Fingerprint, Identity, Keypair,
    Revocations, Scope, SessionId, UnixTime, prove_possession,
};
use f2f_core::integrity::SegmentHash;
use f2f_core::membership::NetGroup;
use f2f_core::scheduler::{
    BandwidthLottery, FetchId, LearnedRanker, Outcome, PeerMeasurements, RttRanker, SourceRanker,
};
use f2f_core::segment::SegmentData;
use f2f_core::telemetry::{Event, Stats};
use f2f_core::time::{Duration, Instant};
use f2f_core::wire::Frame;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use rustc_hash::{FxHashMap, FxHashSet};

use crate::attack::{self, Collusion, Role};
use crate::crypto::{Memoised, Modelled, ModelledHashing};
use crate::link::{Drained, LinkRef, Links, NodeIx, Pair, Path, Uplink, Wire};
use crate::player::Player;
use crate::queue::EventQueue;
use crate::report::{AttackReport, CdnFetches, ReceiptReport, RunReport, Summary, TopologyReport};
use crate::scenario::{CryptoSpec, FlakySpec, HashesSpec, HashingSpec, RankerSpec, Scenario};
use crate::source::{Rung, Source};
use crate::window::WindowSpec;

const EGRESS_BUCKET_S: f64 = 10.0;
const CONNECT_FAIL_US: u64 = 1_000_000;

#[derive(Debug)]
enum Ev {
    Join(NodeIx),
    MassLeave,
    Timer(NodeIx),
    Poll(NodeIx),
    ConnectDone {
        a: NodeIx,
        b: NodeIx,
        epoch: u32,
    },
    ConnectFailed {
        node: NodeIx,
        peer: PeerId,
    },
    Deliver {
        to: NodeIx,
        from: NodeIx,
        link: LinkRef,
        frame: Frame,
    },
    Drain {
        node: NodeIx,
        peer: NodeIx,
        link: LinkRef,
    },
    Disconnected {
        node: NodeIx,
        peer: NodeIx,
        epoch: u32,
    },
    Cdn {
        node: NodeIx,
        fetch: FetchId,
        result: Result<bytes::Bytes, CdnError>,
    },
    /// The signed hashes a node asked for arrive from the CDN.
    Hash {
        node: NodeIx,
        key: SegmentKey,
    },
}

/// What never changes about a node: who it is, how it behaves, its access link and place.
struct Profile {
    id: PeerId,
    role: Role,
    up_bps: f64,
    down_bps: f64,
    lat_us: u64,
    /// Place on the map, in µs of one-way delay (all zero without `geo`).
    pos: (f64, f64),
}

/// What changes about a node as the run goes.
struct Node {
    /// Key pair and certificate, until the node joins and its engine takes them.
    identity: Option<Identity>,
    /// The rendition this viewer watches.
    rung: Rung,
    /// Boxed: a round of engine steps moves the engines it runs out and back.
    engine: Option<Box<Engine>>,
    /// Virtual time of this node's latest engine step: steps never go back in time.
    last_step: u64,
    player: Player,
    /// Boxed, and moved out with the engine while the node's steps run.
    uplink: Option<Box<Uplink>>,
    timer_at: Option<u64>,
    joined_at: u64,
    left_at: Option<u64>,
    first_p2p_us: Option<u64>,
    conns: FxHashSet<NodeIx>,
    stats: Option<Stats>,
}

/// Events of one round span at most this much virtual time, µs.
const ROUND_US: u64 = 1_000;

/// Rounds with engine steps for fewer nodes than this run them on the calling thread.
const PARALLEL_NODES: usize = 16;

/// A step queued for a node in this round.
struct Step {
    node: NodeIx,
    at: u64,
    kind: StepKind,
}

/// What a node's step does: its engine takes an input or its timeout, a frame arrives on a
/// connection (if it is still open), or its send buffer to a peer may have drained.
enum StepKind {
    Input(Input),
    Timeout,
    Receive {
        from: NodeIx,
        link: LinkRef,
        frame: Frame,
    },
    Drain {
        peer: NodeIx,
        link: LinkRef,
    },
}

/// What a step left for the world: whose step at what time, events it queued, what the
/// engine asked that the node cannot do alone, and the engine's next timeout.
struct Done {
    node: NodeIx,
    at: u64,
    events: Vec<(u64, Ev)>,
    outputs: Vec<Output>,
    timeout: Option<Instant>,
}

/// What a node's steps may read of the world while they run.
struct Net<'a> {
    profiles: &'a [Profile],
    links: &'a Links,
    by_id: &'a FxHashMap<PeerId, NodeIx>,
    wire: Wire,
    t0: Instant,
}

impl Net<'_> {
    /// The instant at virtual time `us`.
    fn at(&self, us: u64) -> Instant {
        self.t0 + Duration::from_micros(us)
    }

    fn lat(&self, a: NodeIx, b: NodeIx) -> u64 {
        let (a, b) = (&self.profiles[a as usize], &self.profiles[b as usize]);
        let distance = (a.pos.0 - b.pos.0).hypot(a.pos.1 - b.pos.1);
        a.lat_us + b.lat_us + distance as u64
    }

    /// The open connection from `i` to `j`, and its delay and last-hop rate.
    fn path(&self, i: NodeIx, j: NodeIx) -> Option<Path> {
        let (link, _) = self.links.get(i, j).filter(|(_, p)| p.open)?;
        Some(Path {
            link,
            lat: self.lat(i, j),
            down_bps: self.profiles[j as usize].down_bps,
        })
    }

    /// Sends `frame` from `i` to `j` on `uplink` at `now`, if they are connected: queues the
    /// delivery, and the drain when the send buffer will have fallen back.
    fn send(
        &self,
        uplink: &mut Uplink,
        (i, j): (NodeIx, NodeIx),
        frame: Frame,
        now: u64,
        events: &mut Vec<(u64, Ev)>,
    ) {
        let Some(path) = self.path(i, j) else {
            return;
        };
        let sent = uplink.send(j, path, self.wire, frame.len() as u64, now);
        let link = path.link;
        let deliver = Ev::Deliver {
            to: j,
            from: i,
            link,
            frame,
        };
        events.push((sent.delivered, deliver));
        if let Some(at) = sent.drain_at {
            let drain = Ev::Drain {
                node: i,
                peer: j,
                link,
            };
            events.push((at, drain));
        }
    }
}

/// One node's steps of a round, with its engine and uplink moved out of the world while they
/// run.
struct Work {
    node: NodeIx,
    engine: Box<Engine>,
    uplink: Box<Uplink>,
    /// Each step's place in the round, its time and what it does.
    steps: Vec<(usize, u64, StepKind)>,
}

impl Work {
    /// Runs the steps; each comes back with its place in the round.
    fn run(&mut self, net: &Net<'_>) -> Vec<(usize, Done)> {
        let steps = std::mem::take(&mut self.steps);
        (steps.into_iter())
            .map(|(k, at, kind)| (k, self.step(net, at, kind)))
            .collect()
    }

    fn step(&mut self, net: &Net<'_>, now: u64, kind: StepKind) -> Done {
        let i = self.node;
        let mut done = Done {
            node: i,
            at: now,
            events: Vec::new(),
            outputs: Vec::new(),
            timeout: None,
        };
        let input = match kind {
            StepKind::Input(input) => Some(input),
            StepKind::Timeout => None,
            StepKind::Receive { from, link, frame } => {
                if !net.links.at(link).is_some_and(|p| p.open) {
                    return done;
                }
                let from = net.profiles[from as usize].id;
                Some(Input::Receive { from, frame })
            }
            StepKind::Drain { peer, link } => {
                let low = net.wire.low_water;
                let drained = (net.links.at(link))
                    .and_then(|_| self.uplink.drained(peer, link.epoch, low, now));
                match drained {
                    None => return done,
                    Some(Drained::Later(at)) => {
                        let again = Ev::Drain {
                            node: i,
                            peer,
                            link,
                        };
                        done.events.push((at, again));
                        return done;
                    }
                    Some(Drained::Low(buffered)) => {
                        let peer = net.profiles[peer as usize].id;
                        Some(Input::Drained { peer, buffered })
                    }
                }
            }
        };
        let at = net.at(now);
        let engine = &mut self.engine;
        match input {
            Some(input) => engine
                .handle_input(input, at)
                .expect("the simulator keeps the drive contract"),
            None => engine.handle_timeout(at),
        }
        let honest = net.profiles[i as usize].role == Role::Honest;
        while let Some(out) = engine.poll_output() {
            match out {
                // An honest node's frames leave at once; an attacker's go through the world.
                Output::Transmit { to, frame } if honest => {
                    if let Some(&j) = net.by_id.get(&to) {
                        net.send(&mut self.uplink, (i, j), frame, now, &mut done.events);
                    }
                }
                out => done.outputs.push(out),
            }
        }
        done.timeout = engine.poll_timeout();
        done
    }
}

/// Counters gathered while the world runs.
#[derive(Default)]
struct Tally {
    egress: Vec<f64>,
    /// Per delivery to a player: seconds from the segment's publication.
    ready_after_publish: Vec<f64>,
    fallbacks: std::collections::BTreeMap<String, u64>,
    corrupt: u64,
    events: u64,
    attacks: AttackReport,
    receipts: ReceiptReport,
    /// Attackers that sent corrupted bytes, and those some receiver banned.
    bad_senders: FxHashSet<NodeIx>,
    banned_senders: FxHashSet<NodeIx>,
    topology: TopologyTally,
    /// When the join window and its settling time ended, and the CDN fetches made until then
    /// (summed over every viewer): the steady state starts there.
    steady_from: Option<(u64, CdnCounts)>,
}

/// CDN fetches summed over viewers, by why they were made.
#[derive(Clone, Copy, Default)]
struct CdnCounts {
    all: u64,
    first: u64,
    deadline: u64,
    fallback: u64,
}

impl CdnCounts {
    fn of<'a>(stats: impl Iterator<Item = &'a Stats>) -> Self {
        stats.fold(Self::default(), |c, s| Self {
            all: c.all + s.cdn_segments,
            first: c.first + s.cdn_first_fetches,
            deadline: c.deadline + s.cdn_deadline_fetches,
            fallback: c.fallback + s.cdn_fallback_fetches,
        })
    }

    /// The fetches made after `before` was counted.
    fn since(self, before: Self) -> Self {
        Self {
            all: self.all.saturating_sub(before.all),
            first: self.first.saturating_sub(before.first),
            deadline: self.deadline.saturating_sub(before.deadline),
            fallback: self.fallback.saturating_sub(before.fallback),
        }
    }

    fn per_segment(self, segments: f64) -> CdnFetches {
        CdnFetches {
            all: self.all as f64 / segments,
            first: self.first as f64 / segments,
            deadline: self.deadline as f64 / segments,
            fallback: self.fallback as f64 / segments,
        }
    }
}

/// The data-link graph, sampled every [`TOPOLOGY_SAMPLE_S`].
#[derive(Default)]
struct TopologyTally {
    samples: u32,
    /// Sum over steady-state samples of the mean neighbour RTT, ms.
    rtt_ms: f64,
    steady_samples: u32,
    max_components: usize,
    max_isolated: usize,
    /// Median relative error of coordinate-predicted RTTs in the latest steady sample.
    coordinate_error: f64,
}

/// How often the data-link graph is sampled, seconds of virtual time.
const TOPOLOGY_SAMPLE_S: f64 = 10.0;

/// Viewers younger than this are not counted in a topology sample: they are still linking.
const SETTLING_S: f64 = 10.0;

/// One run of a scenario.
pub(crate) struct World {
    scenario: Scenario,
    config: Arc<Config>,
    rng: ChaCha8Rng,
    t0: Instant,
    now: u64,
    /// When the first viewer may arrive (the stream is already live by then).
    start: u64,
    end: u64,
    queue: EventQueue<Ev>,
    nodes: Vec<Node>,
    profiles: Vec<Profile>,
    alive: Vec<NodeIx>,
    links: Links,
    source: Source,
    /// When the CDN's egress (if capacity-limited) is next free.
    cdn_free: u64,
    tally: Tally,
    /// Engine work queued by this round's events, run together by [`World::run_steps`].
    steps: Vec<Step>,
    /// Per node, its place in the round's work list while [`World::run_engines`] groups the
    /// steps (`u32::MAX`: none yet); all `u32::MAX` between rounds.
    work_slot: Vec<u32>,
    /// Peer ids to nodes (an id is a key hash: it carries no index).
    by_id: FxHashMap<PeerId, NodeIx>,
    collusion: Collusion,
    /// The control plane's check of delivery receipts.
    receipt_verifier: CertificateVerifier,
    crypto: Arc<dyn Crypto>,
    /// Where every node's ranked outcomes go, when the run records them for fitting.
    recorder: Option<Outcomes>,
}

/// Ranked requests and how they ended, as the ranker saw them (shared by every node of a run).
pub(crate) type Outcomes = Arc<Mutex<Vec<(PeerMeasurements, Outcome)>>>;

/// A node's ranker while outcomes are recorded: the untrained learned model (the baseline's
/// ranking), writing down what it observes.
#[derive(Debug)]
struct Recording {
    model: LearnedRanker,
    log: Outcomes,
}

impl SourceRanker for Recording {
    fn peer_eta(&self, peer: &PeerMeasurements, bytes: u64) -> Option<Duration> {
        self.model.peer_eta(peer, bytes)
    }

    fn observe(&mut self, peer: &PeerMeasurements, outcome: Outcome) {
        self.model.observe(peer, outcome);
        if let Ok(mut log) = self.log.lock() {
            log.push((*peer, outcome));
        }
    }
}

/// Wall-clock time at virtual time zero (certificates expire in wall-clock time).
const UNIX_EPOCH_OF_RUN: u64 = 1_800_000_000;

impl World {
    pub(crate) fn new(scenario: &Scenario, mode: SourcePreference) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(scenario.seed);
        let mut config = Config {
            seed: scenario.seed,
            ..Config::default()
        };
        config.scheduler.source = mode;
        let e = &scenario.engine;
        if let Some(v) = e.cdn_budget {
            config.scheduler.cdn_budget = v;
        }
        if let Some(v) = e.viewers_per_first_fetcher {
            config.scheduler.viewers_per_first_fetcher = v;
        }
        if let Some(v) = e.degree {
            config.links.degree = v;
        }
        if let Some(v) = e.max_degree {
            config.links.max_degree = v;
        }
        if let Some(v) = e.upload_slots {
            config.upload.slots = v;
        }
        if let Some(v) = e.upload_queue {
            config.upload.queue = v;
        }
        if let Some(v) = e.chunk_bytes {
            config.upload.chunk = v;
        }
        if let Some(v) = e.stall_timeout_ms {
            config.scheduler.stall_timeout = Duration::from_millis(v);
        }
        if let Some(v) = e.swap {
            config.swap.enabled = v;
        }
        if let Some(v) = e.swap_threshold {
            config.swap.threshold = v;
        }
        if let Some(v) = e.explore {
            config.links.explore = v;
        }
        let sec = &scenario.security;
        if sec.hashes == HashesSpec::Attested {
            config.hashes = HashSource::Attested {
                quorum: sec.quorum,
                spot_check: sec.spot_check,
            };
        }
        config.scheduler.cdn_rtt_prior = Duration::from_secs_f64(scenario.cdn.latency_ms / 1000.0);
        config.scheduler.segment_size_prior =
            (scenario.source.mean_bitrate_kbps() * 125.0 * scenario.source.segment_s) as u64;
        let source = Source::new(&scenario.source, scenario.source.playlist_window + 90);
        // The stream has been live for a while when the first viewer arrives: its playlist is full.
        let start = (scenario.source.playlist_window + 1) * source.d_us;
        let end = start + (scenario.duration_s * 1e6) as u64;
        let net = &scenario.network;
        let mut nodes = Vec::with_capacity(scenario.audience.viewers as usize);
        let mut profiles = Vec::with_capacity(scenario.audience.viewers as usize);
        let mut queue = EventQueue::new();
        let ladder = scenario.source.ladder();
        let shares: f64 = ladder.iter().map(|r| r.share).sum();
        let crypto: Arc<dyn Crypto> = match scenario.security.crypto {
            CryptoSpec::Bls => Arc::new(Memoised::default()),
            CryptoSpec::Modelled => Arc::new(Modelled),
        };
        let authority = Authority::new(Keypair::from_entropy(&secret(scenario.seed, u32::MAX)));
        // What forged identities are signed with: a key nobody trusts.
        let rogue = Authority::new(Keypair::from_entropy(&secret(!scenario.seed, u32::MAX)));
        // Certificates outlive the run (with the renewal margin): renewal is tested in f2f-core.
        let not_after = UnixTime(UNIX_EPOCH_OF_RUN + end / 1_000_000 + 4 * 3600);
        let mut by_id = FxHashMap::default();
        let mut collusion = Collusion::new(crypto.clone());
        let mut colluders = 0;
        for i in 0..scenario.audience.viewers {
            let joined_at = start
                + (rng.random_range(0.0..=1.0) * scenario.audience.join_window_s * 1e6) as u64;
            let mut role = attack::role(scenario.seed, i, &scenario.security);
            // The first honest viewers (joining at random times) form the colluding groups.
            if role == Role::Honest && colluders < scenario.security.colluders() {
                let group = colluders / (scenario.security.quorum as u32 - 1);
                role = Role::Colluder { group };
                colluders += 1;
            }
            let signer = if role == Role::Forged {
                &rogue
            } else {
                &authority
            };
            let mut identity = certified(signer, &crypto, &source, scenario.seed, i, not_after);
            identity.authority = authority.public();
            let id = identity.keypair.peer_id();
            by_id.insert(id, i);
            if let Role::Colluder { group } = role {
                let (kp, cert) = (identity.keypair.clone(), identity.certificate.clone());
                collusion.enlist(group, kp, cert);
            }
            // One rung: no draw, so single-rendition runs keep their random sequence.
            let rung = if ladder.len() < 2 {
                0
            } else {
                let mut pick = rng.random_range(0.0..shares);
                ladder
                    .iter()
                    .position(|r| {
                        pick -= r.share;
                        pick < 0.0
                    })
                    .unwrap_or(ladder.len() - 1)
            };
            profiles.push(Profile {
                id,
                role,
                up_bps: net.uplink_kbps.sample(&mut rng).max(1.0) * 1000.0,
                down_bps: net.downlink_kbps.sample(&mut rng).max(1.0) * 1000.0,
                lat_us: (net.latency_ms.sample(&mut rng).max(0.0) * 1000.0) as u64,
                pos: (0.0, 0.0),
            });
            nodes.push(Node {
                identity: Some(identity),
                rung,
                engine: None,
                last_step: 0,
                player: Player::new(source.d_us, scenario.player.startup_segments, joined_at),
                uplink: None,
                timer_at: None,
                joined_at,
                left_at: None,
                first_p2p_us: None,
                conns: FxHashSet::default(),
                stats: None,
            });
            queue.push(joined_at, Ev::Join(i));
        }
        if let Some(m) = &scenario.audience.mass_leave {
            queue.push(start + (m.at_s * 1e6) as u64, Ev::MassLeave);
        }
        if let Some(geo) = &net.geo {
            // Its own random sequence, like the flaky peers'.
            let mut rng = ChaCha8Rng::seed_from_u64(scenario.seed ^ 0x6E0_6E0);
            let side = geo.span_ms * 1000.0 / std::f64::consts::SQRT_2;
            for profile in &mut profiles {
                profile.pos = (rng.random_range(0.0..=side), rng.random_range(0.0..=side));
            }
        }
        // Their own random sequence: scenarios without flaky peers keep theirs.
        let mut flaky_rng = ChaCha8Rng::seed_from_u64(scenario.seed ^ 0xF1A4_F1A4);
        for ((i, node), profile) in (0u32..).zip(&mut nodes).zip(&profiles) {
            let stalls = match &net.flaky {
                Some(flaky) if flaky_rng.random_bool(flaky.fraction) => {
                    stall_times(&mut flaky_rng, flaky, end)
                }
                _ => Vec::new(),
            };
            let seed = scenario.seed.rotate_left(48) ^ u64::from(i);
            node.uplink = Some(Box::new(Uplink::new(profile.up_bps, stalls, seed)));
        }
        Self {
            scenario: scenario.clone(),
            config: Arc::new(config),
            rng,
            t0: Instant::now(),
            now: 0,
            start,
            end,
            queue,
            nodes,
            profiles,
            alive: Vec::new(),
            links: Links::default(),
            source,
            cdn_free: 0,
            tally: Tally::default(),
            steps: Vec::new(),
            work_slot: Vec::new(),
            by_id,
            collusion,
            receipt_verifier: CertificateVerifier::new(authority.public(), 1 << 16),
            crypto,
            recorder: None,
        }
    }

    /// Records every node's ranked outcomes into `log` (every node ranks as the untrained
    /// learned model does).
    pub(crate) fn record(mut self, log: Outcomes) -> Self {
        self.recorder = Some(log);
        self
    }

    /// Σ uplink / (N · bitrate), capped at 1 − 1/N.
    pub(crate) fn upload_bound(&self) -> f64 {
        let n = self.nodes.len() as f64;
        let up: f64 = self.profiles.iter().map(|p| p.up_bps).sum();
        let ladder = self.scenario.source.ladder();
        let need: f64 = self
            .nodes
            .iter()
            .map(|n| ladder[n.rung].bitrate_kbps * 1000.0)
            .sum();
        (up / need).min(1.0 - 1.0 / n)
    }

    fn at(&self, us: u64) -> Instant {
        self.net().at(us)
    }

    fn us(&self, t: Instant) -> u64 {
        let d = t.saturating_duration_since(self.t0);
        // Round up: waking early would find nothing due and spin.
        d.as_micros() as u64 + u64::from(d.subsec_nanos() % 1000 != 0)
    }

    fn push(&mut self, at: u64, ev: Ev) {
        self.queue.push(at.max(self.now), ev);
    }

    /// Runs to the end; `progress` gets the fraction of virtual time done, every 1 %.
    ///
    /// Time advances in rounds: a round takes every queued event up to the end of the
    /// earliest event's millisecond, does the world's part of each in order, then runs the
    /// engine steps those events queued, each node's in order and different nodes' in
    /// parallel, and carries out what the engines asked, in the order the steps were queued.
    /// Events the round itself queues before that millisecond ends form the next round. A
    /// node's steps therefore see connections as the round's world-side pass left them, and
    /// its earlier steps' requests to the world are carried out after its later steps ran:
    /// up to 1 ms out of date either way (a real node sees the network a little late too).
    /// The result does not depend on how many threads run the steps.
    pub(crate) fn run(self, mode: &str, progress: &mut (dyn FnMut(f64) + Send)) -> RunReport {
        // On a thread of the current pool, so that this thread takes its share of each round.
        rayon::scope(move |_| self.run_rounds(mode, progress))
    }

    fn run_rounds(mut self, mode: &str, progress: &mut (dyn FnMut(f64) + Send)) -> RunReport {
        let mut next_progress = 0.0;
        let mut next_sample = self.start;
        while let Some(first) = self.queue.peek_at() {
            if first > self.end {
                break;
            }
            while next_sample <= first {
                self.now = next_sample;
                self.sample_topology();
                self.mark_steady_state();
                next_sample += (TOPOLOGY_SAMPLE_S * 1e6) as u64;
            }
            let frac = first.saturating_sub(self.start) as f64 / (self.end - self.start) as f64;
            if frac >= next_progress {
                progress(frac);
                next_progress = frac + 0.01;
            }
            let round_end = (first / ROUND_US + 1) * ROUND_US;
            while let Some((at, ev)) = self.queue.pop_before(round_end.min(self.end + 1)) {
                self.now = at;
                self.tally.events += 1;
                self.source.publish_until(self.now);
                self.handle(ev);
            }
            self.run_steps();
        }
        self.now = self.end;
        self.finish(mode)
    }

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Join(i) => self.join(i),
            Ev::MassLeave => self.mass_leave(),
            Ev::Timer(i) => {
                let node = &mut self.nodes[i as usize];
                if node.timer_at != Some(self.now) {
                    return;
                }
                node.timer_at = None;
                self.step(i, StepKind::Timeout);
            }
            Ev::Poll(i) => self.poll(i),
            Ev::Hash { node, key } => self.give_hash(node, key),
            Ev::ConnectDone { a, b, epoch } => self.connect_done(a, b, epoch),
            Ev::ConnectFailed { node, peer } => self.input(node, Input::ConnectFailed(peer)),
            Ev::Deliver {
                to,
                from,
                link,
                frame,
            } => self.step(to, StepKind::Receive { from, link, frame }),
            Ev::Disconnected { node, peer, epoch } => {
                // A pair of another epoch is a replacement still opening (set-up takes four
                // latencies, this notice one): the old connection closed all the same, and
                // the engine must hear it.
                if self
                    .links
                    .get(node, peer)
                    .is_some_and(|(_, p)| p.epoch == epoch)
                {
                    self.unlink(node, peer);
                }
                self.nodes[node as usize].conns.remove(&peer);
                let peer = self.profiles[peer as usize].id;
                self.input(node, Input::Disconnected(peer));
            }
            Ev::Drain { node, peer, link } => self.step(node, StepKind::Drain { peer, link }),
            Ev::Cdn {
                node,
                fetch,
                result,
            } => self.input(node, Input::CdnResponse { fetch, result }),
        }
    }

    /// Queues an input for a live node's engine (see [`World::run_steps`]).
    fn input(&mut self, i: NodeIx, input: Input) {
        self.step(i, StepKind::Input(input));
    }

    /// Queues a step for a live node in this round.
    fn step(&mut self, i: NodeIx, kind: StepKind) {
        let node = &mut self.nodes[i as usize];
        if node.engine.is_none() {
            return;
        }
        let at = self.now.max(node.last_step);
        node.last_step = at;
        self.steps.push(Step { node: i, at, kind });
    }

    /// Runs the queued engine steps and carries out what they ask, until none is left (what
    /// the engines ask may queue more). The clock is back where it was afterwards: a departure
    /// runs the steps queued before it, then goes on at its own time.
    fn run_steps(&mut self) {
        let now = self.now;
        while !self.steps.is_empty() {
            let steps = std::mem::take(&mut self.steps);
            for done in self.run_engines(steps) {
                let i = done.node;
                self.now = done.at;
                for (at, ev) in done.events {
                    self.push(at, ev);
                }
                for out in done.outputs {
                    self.execute(i, out);
                }
                self.set_timer(i, done.timeout);
            }
        }
        self.now = now;
    }

    /// Runs steps on their engines: each node's steps in order, nodes in parallel when there
    /// are enough of them. What each step left comes back in the order of `steps`.
    fn run_engines(&mut self, steps: Vec<Step>) -> Vec<Done> {
        let n = steps.len();
        self.work_slot.resize(self.nodes.len(), u32::MAX);
        // Grouped in one pass, in the order nodes first appear, then put in node order: the
        // steps themselves are large, their groups are not.
        let mut work: Vec<Work> = Vec::new();
        for (k, step) in steps.into_iter().enumerate() {
            let slot = &mut self.work_slot[step.node as usize];
            if *slot == u32::MAX {
                *slot = u32::try_from(work.len()).expect("fewer than 2^32 nodes");
                let n = &mut self.nodes[step.node as usize];
                work.push(Work {
                    node: step.node,
                    engine: n.engine.take().expect("steps run live engines"),
                    uplink: n.uplink.take().expect("every node has an uplink"),
                    steps: Vec::new(),
                });
            }
            work[*slot as usize].steps.push((k, step.at, step.kind));
        }
        for w in &work {
            self.work_slot[w.node as usize] = u32::MAX;
        }
        work.sort_unstable_by_key(|w| w.node);
        let net = self.net();
        // A recording run keeps one order of outcomes: the fit depends on it.
        let parallel = work.len() >= PARALLEL_NODES && self.recorder.is_none();
        let results: Vec<Vec<(usize, Done)>> = if parallel {
            work.par_iter_mut().map(|w| w.run(&net)).collect()
        } else {
            work.iter_mut().map(|w| w.run(&net)).collect()
        };
        for w in work {
            let n = &mut self.nodes[w.node as usize];
            n.engine = Some(w.engine);
            n.uplink = Some(w.uplink);
        }
        let mut done: Vec<Option<Done>> = (0..n).map(|_| None).collect();
        for (k, d) in results.into_iter().flatten() {
            done[k] = Some(d);
        }
        done.into_iter()
            .map(|d| d.expect("every step ran"))
            .collect()
    }

    /// Wakes node `i` at its engine's next timeout, unless an earlier wake-up is queued.
    fn set_timer(&mut self, i: NodeIx, timeout: Option<Instant>) {
        if let Some(t) = timeout {
            let at = self.us(t).max(self.now);
            let node = &mut self.nodes[i as usize];
            if node.timer_at.is_none_or(|cur| at < cur || cur < self.now) {
                node.timer_at = Some(at);
                self.push(at, Ev::Timer(i));
            }
        }
    }

    fn execute(&mut self, i: NodeIx, out: Output) {
        match out {
            Output::Connect(peer) => self.connect(i, peer),
            Output::Disconnect(peer) => {
                if let Some(j) = self.node_of(&peer) {
                    self.disconnect(i, j, self.lat(i, j));
                }
            }
            Output::Transmit { to, frame } => {
                let Some(j) = self.node_of(&to) else {
                    return;
                };
                let role = self.profiles[i as usize].role;
                let window = self.live_window(i);
                let source = &self.source;
                let size = |k: &SegmentKey| published(source, k).map_or(0, |(_, size)| size);
                for (frame, corrupted) in
                    attack::tamper(role, frame, &window, &mut self.collusion, size)
                {
                    if corrupted {
                        self.tally.attacks.corrupt_pieces_sent += 1;
                        self.tally.attacks.corrupt_bytes_sent += frame.body().len() as u64;
                        self.tally.bad_senders.insert(i);
                    }
                    self.transmit(i, j, frame);
                }
            }
            Output::FetchCdn {
                fetch,
                key,
                offset,
                end,
            } => self.cdn_fetch(i, fetch, key, offset, end),
            Output::Deliver { key, data, .. } => self.deliver(i, key, &data),
            Output::LoadFailed(_) => {}
            Output::NeedBootstrap => self.bootstrap(i),
            Output::NeedHash(key) => {
                // A small file from the CDN: one round trip, no egress worth counting.
                let at = self.now + (self.scenario.cdn.latency_ms * 2000.0) as u64;
                self.push(at, Ev::Hash { node: i, key });
            }
            Output::Receipts(bundle) => {
                let unix = self.unix();
                let r = &mut self.tally.receipts;
                r.bundles += 1;
                let crypto = self.crypto.as_ref();
                let revoked = Revocations::default();
                match bundle.verify(crypto, &mut self.receipt_verifier, &revoked, unix) {
                    Ok(()) => r.vouched_bytes += bundle.bytes(),
                    Err(_) => r.refused += 1,
                }
            }
            Output::Event(Event::FirstP2pByte { .. }) => {
                let node = &mut self.nodes[i as usize];
                node.first_p2p_us.get_or_insert(self.now - node.joined_at);
            }
            Output::Event(Event::Fallback { reason, .. }) => {
                *self
                    .tally
                    .fallbacks
                    .entry(format!("{reason:?}"))
                    .or_default() += 1;
            }
            Output::Event(Event::PeerBanned { peer, .. }) => {
                self.tally.attacks.bans += 1;
                if let Some(j) = self.node_of(&peer) {
                    self.tally.banned_senders.insert(j);
                }
            }
            Output::Event(Event::FalseAttestation { signers, .. }) => {
                for peer in signers {
                    let role = self.node_of(&peer).map(|j| self.profiles[j as usize].role);
                    if !matches!(role, Some(Role::Colluder { .. })) {
                        self.tally.attacks.honest_accused += 1;
                    }
                }
            }
            Output::Event(Event::PeerMisbehaved { peer, .. })
                if self
                    .node_of(&peer)
                    .is_some_and(|j| self.profiles[j as usize].role == Role::Forged) =>
            {
                self.tally.attacks.forged_refused += 1;
            }
            Output::Event(_) => {}
            _ => {}
        }
    }

    /// Feeds node `i` the origin's hash of `key`, if the origin has published the segment.
    fn give_hash(&mut self, i: NodeIx, key: SegmentKey) {
        if let Some((hash, size)) = published(&self.source, &key) {
            self.input(i, Input::SegmentHash { key, hash, size });
        }
    }

    /// The newest segments of node `i`'s rendition: what a liar claims to hold.
    fn live_window(&self, i: NodeIx) -> Vec<SegmentKey> {
        let Some(newest) = self.source.newest_at(self.now) else {
            return Vec::new();
        };
        let rung = self.nodes[i as usize].rung;
        (newest.saturating_sub(3)..=newest)
            .map(|seq| self.source.key(rung, seq))
            .collect()
    }

    fn node_of(&self, peer: &PeerId) -> Option<NodeIx> {
        self.by_id.get(peer).copied()
    }

    /// Wall-clock time now.
    fn unix(&self) -> UnixTime {
        UnixTime(UNIX_EPOCH_OF_RUN + self.now / 1_000_000)
    }

    fn lat(&self, a: NodeIx, b: NodeIx) -> u64 {
        self.net().lat(a, b)
    }

    /// What steps read of the world.
    fn net(&self) -> Net<'_> {
        Net {
            profiles: &self.profiles,
            links: &self.links,
            by_id: &self.by_id,
            wire: self.wire(),
            t0: self.t0,
        }
    }

    fn wire(&self) -> Wire {
        Wire {
            overhead_bytes: self.scenario.network.overhead_bytes,
            loss: self.scenario.network.loss,
            low_water: self.config.upload.low_water,
            window: (self.scenario.network.congestion_control).then_some(WindowSpec::DCSCTP),
        }
    }

    /// Removes the connection between `a` and `b`, and what either had in flight on it.
    fn unlink(&mut self, a: NodeIx, b: NodeIx) -> Option<Pair> {
        let pair = self.links.remove(a, b)?;
        for (me, other) in [(a, b), (b, a)] {
            if let Some(uplink) = self.nodes[me as usize].uplink.as_mut() {
                uplink.close(other);
            }
        }
        Some(pair)
    }

    fn join(&mut self, i: NodeIx) {
        let identity = self.nodes[i as usize].identity.take().expect("joins once");
        let unix = self.unix();
        let mut engine = Engine::new(
            identity,
            self.source.swarm(),
            self.config.clone(),
            self.at(self.now),
            unix,
        )
        .expect("scenario config and certificate are valid");
        if self.scenario.security.hashing == HashingSpec::Modelled {
            engine.set_hashing(Box::new(ModelledHashing));
        }
        if let Some(log) = &self.recorder {
            let model = LearnedRanker::untrained();
            engine.set_ranker(Box::new(Recording {
                model,
                log: log.clone(),
            }));
        } else {
            match self.scenario.engine.ranker {
                RankerSpec::Baseline => {}
                RankerSpec::Rtt => engine.set_ranker(Box::new(RttRanker::default())),
                RankerSpec::Bandwidth => engine.set_ranker(Box::new(BandwidthLottery::new(
                    self.scenario.seed.rotate_left(32) ^ u64::from(i),
                ))),
                rule => {
                    if let Some(hidden) = rule.learned() {
                        engine.set_ranker(Box::new(
                            hidden.map_or_else(LearnedRanker::default, LearnedRanker::without),
                        ));
                    }
                }
            }
        }
        self.nodes[i as usize].engine = Some(Box::new(engine));
        self.bootstrap(i);
        self.alive.push(i);
        self.poll(i);
    }

    /// A tracker hands out a few random live members.
    fn bootstrap(&mut self, i: NodeIx) {
        if self.config.scheduler.source == SourcePreference::CdnOnly {
            // The baseline's viewers never use peers: no overlay, no handshakes to pay for.
            return;
        }
        let k = self.scenario.audience.entry_peers;
        let peers: Vec<PeerId> = self
            .alive
            .choose_multiple(&mut self.rng, k + 1)
            .filter(|&&j| j != i)
            .take(k)
            .map(|&j| self.profiles[j as usize].id)
            .collect();
        self.input(i, Input::Bootstrap(peers));
    }

    /// The player (through its agent) refreshes the playlist and loads what is new.
    fn poll(&mut self, i: NodeIx) {
        if self.nodes[i as usize].engine.is_none() {
            return;
        }
        let cdn_latency = (self.scenario.cdn.latency_ms * 1000.0) as u64;
        let visible_at = self.now.saturating_sub(cdn_latency);
        if let Some(newest) = self.source.newest_at(visible_at) {
            let live_offset = self.scenario.player.live_offset_segments;
            let loads = self.nodes[i as usize]
                .player
                .on_playlist(newest, live_offset, self.now);
            for (seq, deadline) in loads {
                let rung = self.nodes[i as usize].rung;
                let key = self.source.key(rung, seq);
                // The origin's signed hashes come with the playlist (their signature is the
                // driver's to check; the engine trusts what it is fed).
                if self.scenario.security.hashes == HashesSpec::Signed {
                    self.give_hash(i, key);
                }
                self.input(
                    i,
                    Input::Listed(SegmentInfo {
                        key,
                        size_hint: None,
                        duration: Duration::from_micros(self.source.d_us),
                        shareable: true,
                    }),
                );
                let deadline = self.at(deadline);
                self.input(i, Input::Load { key, deadline });
            }
        }
        let poll_us = (self
            .scenario
            .player
            .poll_s
            .unwrap_or(self.scenario.source.segment_s / 2.0)
            * 1e6) as u64;
        self.push(self.now + poll_us.max(1000), Ev::Poll(i));
    }

    fn connect(&mut self, i: NodeIx, peer: PeerId) {
        let Some(j) = self.node_of(&peer) else {
            self.push(
                self.now + CONNECT_FAIL_US,
                Ev::ConnectFailed { node: i, peer },
            );
            return;
        };
        if self.nodes[j as usize].engine.is_none() {
            self.push(
                self.now + CONNECT_FAIL_US,
                Ev::ConnectFailed { node: i, peer },
            );
            return;
        }
        match self.links.get(i, j) {
            Some((_, p)) if p.open => {
                let epoch = p.epoch;
                self.push(self.now, Ev::ConnectDone { a: i, b: j, epoch });
            }
            Some(_) => {}
            None => {
                let epoch = self.rng.random();
                self.links.insert(i, j, epoch);
                // ICE + DTLS + SCTP set-up: about two round trips.
                let rtt = 2 * self.lat(i, j);
                self.push(self.now + 2 * rtt, Ev::ConnectDone { a: i, b: j, epoch });
            }
        }
    }

    fn connect_done(&mut self, a: NodeIx, b: NodeIx, epoch: u32) {
        let Some(p) = self.links.get_mut(a, b) else {
            return;
        };
        if p.epoch != epoch {
            return;
        }
        let alive = |n: &Node| n.engine.is_some();
        if !alive(&self.nodes[a as usize]) || !alive(&self.nodes[b as usize]) {
            self.unlink(a, b);
            let (ida, idb) = (self.profiles[a as usize].id, self.profiles[b as usize].id);
            self.input(a, Input::ConnectFailed(idb));
            self.input(b, Input::ConnectFailed(ida));
            return;
        }
        p.open = true;
        self.nodes[a as usize].conns.insert(b);
        self.nodes[b as usize].conns.insert(a);
        // Each end's transport fingerprint is fresh per connection, as a DTLS certificate is.
        let fingerprint = |from: &PeerId, to: &PeerId| {
            let mut h = blake3::Hasher::new();
            h.update(from.as_bytes());
            h.update(to.as_bytes());
            h.update(&epoch.to_le_bytes());
            Fingerprint(*h.finalize().as_bytes())
        };
        for (me, other) in [(a, b), (b, a)] {
            let (local, peer) = (
                self.profiles[me as usize].id,
                self.profiles[other as usize].id,
            );
            let binding = ChannelBinding {
                local: fingerprint(&local, &peer),
                remote: fingerprint(&peer, &local),
            };
            let group = net_group(other);
            self.input(
                me,
                Input::Connected {
                    peer,
                    binding,
                    group,
                },
            );
        }
    }

    /// Closes the connection; the other side notices after `notice_us`.
    fn disconnect(&mut self, i: NodeIx, j: NodeIx, notice_us: u64) {
        let Some(p) = self.unlink(i, j) else {
            return;
        };
        self.nodes[i as usize].conns.remove(&j);
        self.nodes[j as usize].conns.remove(&i);
        if self.nodes[j as usize].engine.is_some() {
            self.push(
                self.now + notice_us,
                Ev::Disconnected {
                    node: j,
                    peer: i,
                    epoch: p.epoch,
                },
            );
        }
    }

    /// Sends an attacker's frame (honest nodes send while their steps run).
    fn transmit(&mut self, i: NodeIx, j: NodeIx, frame: Frame) {
        let mut uplink = (self.nodes[i as usize].uplink.take()).expect("every node has an uplink");
        let mut events = Vec::new();
        self.net()
            .send(&mut uplink, (i, j), frame, self.now, &mut events);
        self.nodes[i as usize].uplink = Some(uplink);
        for (at, ev) in events {
            self.push(at, ev);
        }
    }

    /// Bytes `offset..end` of a segment (to its end without `end`), as an HTTP range request.
    fn cdn_fetch(
        &mut self,
        i: NodeIx,
        fetch: FetchId,
        key: SegmentKey,
        offset: u64,
        end: Option<u64>,
    ) {
        let seq = match key.position {
            SegmentPosition::Sequence(s) => s,
            SegmentPosition::Time(_) => u64::MAX,
        };
        let cdn = &self.scenario.cdn;
        let ttfb = (cdn.latency_ms * 1000.0) as u64;
        let failed = cdn.failure_rate > 0.0 && self.rng.random_bool(cdn.failure_rate);
        let body = self
            .source
            .rung(&key)
            .and_then(|rung| self.source.get(rung, seq))
            .filter(|_| !failed)
            .map(|b| {
                let stop = end.map_or(b.len(), |e| (e as usize).min(b.len()));
                b.slice((offset as usize).min(stop)..stop)
            });
        let Some(body) = body else {
            let err = CdnError(if failed {
                "simulated CDN failure".into()
            } else {
                "404 not found".into()
            });
            self.push(
                self.now + ttfb,
                Ev::Cdn {
                    node: i,
                    fetch,
                    result: Err(err),
                },
            );
            return;
        };
        let rate = (cdn.per_flow_kbps * 1000.0).min(self.profiles[i as usize].down_bps);
        let mut done = self.now + ttfb + (body.len() as f64 * 8.0 / rate * 1e6) as u64;
        if let Some(capacity) = cdn.capacity_mbps {
            // The CDN's total egress as one queue: a flash crowd waits for it.
            let serial = (body.len() as f64 * 8.0 / (capacity * 1e6) * 1e6) as u64;
            self.cdn_free = self.cdn_free.max(self.now + ttfb) + serial;
            done = done.max(self.cdn_free);
        }
        let bucket = (done.saturating_sub(self.start) as f64 / 1e6 / EGRESS_BUCKET_S) as usize;
        if self.tally.egress.len() <= bucket {
            self.tally.egress.resize(bucket + 1, 0.0);
        }
        self.tally.egress[bucket] += body.len() as f64;
        self.push(
            done,
            Ev::Cdn {
                node: i,
                fetch,
                result: Ok(body),
            },
        );
    }

    /// Hands a segment to the player, checking that its bytes are the origin's own: every chunk
    /// must be a slice of the origin's single allocation at the right offset.
    fn deliver(&mut self, i: NodeIx, key: SegmentKey, data: &SegmentData) {
        let SegmentPosition::Sequence(seq) = key.position else {
            return;
        };
        // The viewer's own rung: a segment of another rendition would be a wrong delivery.
        let rung = self.nodes[i as usize].rung;
        let intact = key.rendition == self.source.key(rung, seq).rendition
            && self.source.get(rung, seq).is_some_and(|orig| {
                let mut offset = 0usize;
                data.len() == orig.len() as u64
                    && data.chunks().iter().all(|c| {
                        // Zero-copy paths keep the pointer; anything else must match byte for byte.
                        let ok = orig.as_ptr().wrapping_add(offset) == c.as_ptr()
                            || orig.get(offset..offset + c.len()) == Some(&c[..]);
                        offset += c.len();
                        ok
                    })
            });
        if !intact {
            self.tally.corrupt += 1;
        }
        let now = self.now;
        let published = (seq + 1) * self.source.segment_us();
        self.tally
            .ready_after_publish
            .push(now.saturating_sub(published) as f64 / 1e6);
        self.nodes[i as usize].player.on_delivered(seq, now);
    }

    fn mass_leave(&mut self) {
        let Some(m) = self.scenario.audience.mass_leave.clone() else {
            return;
        };
        let mut alive = self.alive.clone();
        let n = ((alive.len() as f64) * m.fraction).round() as usize;
        let (leaving, _) = alive.partial_shuffle(&mut self.rng, n);
        let leaving = leaving.to_vec();
        for i in leaving {
            self.leave(i, m.abrupt);
        }
    }

    fn leave(&mut self, i: NodeIx, abrupt: bool) {
        if !abrupt {
            self.input(i, Input::Leave);
        }
        // The goodbyes (and whatever else is queued) go out before the engine goes.
        self.run_steps();
        let now = self.now;
        let node = &mut self.nodes[i as usize];
        let Some(engine) = node.engine.take() else {
            return;
        };
        node.stats = Some(engine.stats().clone());
        node.player.finish(now);
        node.left_at = Some(now);
        node.timer_at = None;
        self.alive.retain(|&j| j != i);
        let notice = if abrupt {
            (self.scenario.network.crash_detect_ms * 1000.0) as u64
        } else {
            0
        };
        let conns: Vec<NodeIx> = self.nodes[i as usize].conns.iter().copied().collect();
        for j in conns {
            let lat = self.lat(i, j);
            self.disconnect(i, j, lat + notice);
        }
    }

    /// Components, isolated viewers and neighbour RTT of the data-link graph over the viewers
    /// that have settled in.
    fn sample_topology(&mut self) {
        // Links among everyone count (a newcomer may bridge two groups); components and
        // isolation are judged over the viewers that have had time to link.
        let settled = self.now.saturating_sub((SETTLING_S * 1e6) as u64);
        let counted: Vec<NodeIx> = (self.alive.iter())
            .copied()
            .filter(|&i| self.nodes[i as usize].joined_at <= settled)
            .collect();
        if counted.is_empty() {
            return;
        }
        let mut parent: FxHashMap<NodeIx, NodeIx> = self.alive.iter().map(|&i| (i, i)).collect();
        fn root(parent: &mut FxHashMap<NodeIx, NodeIx>, mut i: NodeIx) -> NodeIx {
            while parent[&i] != i {
                let up = parent[&parent[&i]];
                parent.insert(i, up);
                i = up;
            }
            i
        }
        // Each live viewer's data neighbours, read once for both passes.
        let links: FxHashMap<NodeIx, Vec<NodeIx>> = (self.alive.iter())
            .filter_map(|&i| {
                let engine = self.nodes[i as usize].engine.as_ref()?;
                let of = (engine.data_neighbours().iter())
                    .filter_map(|p| self.node_of(p))
                    .collect();
                Some((i, of))
            })
            .collect();
        for (&i, of) in &links {
            for &j in of {
                if parent.contains_key(&j) {
                    let (a, b) = (root(&mut parent, i), root(&mut parent, j));
                    parent.insert(a, b);
                }
            }
        }
        let (mut isolated, mut rtt_sum, mut rtt_nodes) = (0, 0.0, 0u32);
        let mut coord_errors = Vec::new();
        let t_index = self.tally.topology.samples as usize;
        for &i in &counted {
            let (Some(engine), Some(links)) =
                (self.nodes[i as usize].engine.as_ref(), links.get(&i))
            else {
                continue;
            };
            if links.is_empty() {
                isolated += 1;
                continue;
            }
            let rtt: u64 = links.iter().map(|&j| 2 * self.lat(i, j)).sum();
            // How well coordinates predict the RTT to a random other viewer.
            let other = counted[(i as usize * 7919 + t_index) % counted.len()];
            if let (Some(o), true) = (self.nodes[other as usize].engine.as_ref(), other != i) {
                let real = 2 * self.lat(i, other);
                let guess = engine.position().coord.rtt_us(&o.position().coord);
                coord_errors.push((f64::from(guess) - real as f64).abs() / real as f64);
            }
            rtt_sum += rtt as f64 / links.len() as f64 / 1000.0;
            rtt_nodes += 1;
        }
        let components = (counted.iter())
            .map(|&i| root(&mut parent, i))
            .collect::<FxHashSet<_>>()
            .len();
        let t = &mut self.tally.topology;
        t.samples += 1;
        t.max_components = t.max_components.max(components);
        t.max_isolated = t.max_isolated.max(isolated);
        let join_window = (self.scenario.audience.join_window_s * 1e6) as u64;
        if self.now >= self.start + join_window + (SETTLING_S * 1e6) as u64 && rtt_nodes > 0 {
            t.rtt_ms += rtt_sum / f64::from(rtt_nodes);
            t.steady_samples += 1;
            t.coordinate_error = Summary::of(coord_errors).p50;
        }
    }

    /// Past the join window and its settling time, once: counts the CDN fetches made so far.
    fn mark_steady_state(&mut self) {
        let join_window = (self.scenario.audience.join_window_s * 1e6) as u64;
        if self.tally.steady_from.is_some()
            || self.now < self.start + join_window + (SETTLING_S * 1e6) as u64
        {
            return;
        }
        let stats = (self.nodes.iter())
            .filter_map(|n| n.engine.as_ref().map(|e| e.stats()).or(n.stats.as_ref()));
        self.tally.steady_from = Some((self.now, CdnCounts::of(stats)));
    }

    fn finish(mut self, mode: &str) -> RunReport {
        let end = self.end;
        let alive = self.alive.clone();
        for i in alive {
            let node = &mut self.nodes[i as usize];
            node.player.finish(end);
            if let Some(engine) = node.engine.take() {
                node.stats = Some(engine.stats().clone());
            }
        }
        let mass_at = self
            .scenario
            .audience
            .mass_leave
            .as_ref()
            .map(|m| self.start + (m.at_s * 1e6) as u64);
        let joined: Vec<&Node> = self.nodes.iter().filter(|n| n.stats.is_some()).collect();
        let stats = || joined.iter().filter_map(|n| n.stats.as_ref());

        let cdn_bytes: u64 = stats().map(|s| s.cdn_bytes).sum();
        let p2p_transfers: u64 = stats().map(|s| s.p2p_transfers).sum();
        let fallbacks: u64 = stats().map(|s| s.p2p_fallbacks).sum();
        let p2p_bytes: u64 = stats().map(|s| s.p2p_bytes).sum();
        let relayed: u64 = stats().map(|s| s.p2p_relayed_transfers).sum();
        let stall: u64 = joined.iter().map(|n| n.player.stall_us()).sum();
        let play: u64 = joined.iter().map(|n| n.player.play_us).sum();
        let stayers_rebuffer = mass_at.map(|at| {
            let stayers = joined
                .iter()
                .filter(|n| n.left_at.is_none() && n.joined_at < at);
            let (mut s, mut w) = (0u64, 0u64);
            for n in stayers {
                s += n.player.stall_between(at, end);
                w += end - at;
            }
            if w == 0 { 0.0 } else { s as f64 / w as f64 }
        });
        let published = ((self.end - self.start) / self.source.d_us).max(1) as f64;
        let secs = |us: u64| us as f64 / 1e6;
        let whole = CdnCounts::of(stats()).per_segment(published);
        RunReport {
            mode: mode.to_string(),
            viewers: joined.len(),
            offload: if cdn_bytes + p2p_bytes == 0 {
                0.0
            } else {
                p2p_bytes as f64 / (cdn_bytes + p2p_bytes) as f64
            },
            rebuffer_ratio: if stall + play == 0 {
                0.0
            } else {
                stall as f64 / (stall + play) as f64
            },
            stalls: joined.iter().map(|n| n.player.stalls.len()).sum(),
            startup_s: Summary::of(
                joined
                    .iter()
                    .filter_map(|n| n.player.startup_us.map(secs))
                    .collect(),
            ),
            first_p2p_byte_s: Summary::of(
                joined
                    .iter()
                    .filter_map(|n| n.first_p2p_us.map(secs))
                    .collect(),
            ),
            ready_after_publish_s: Summary::of(std::mem::take(&mut self.tally.ready_after_publish)),
            live_distance_s: Summary::of(
                joined
                    .iter()
                    .filter_map(|n| n.player.mean_latency_us().map(|l| l / 1e6))
                    .collect(),
            ),
            cdn_egress_mbps: self
                .tally
                .egress
                .iter()
                .map(|b| b * 8.0 / EGRESS_BUCKET_S / 1e6)
                .collect(),
            egress_bucket_s: EGRESS_BUCKET_S,
            cdn_bytes,
            p2p_bytes,
            cdn_fetches_per_segment: whole.all,
            steady_cdn_fetches: self.tally.steady_from.map(|(at, before)| {
                let steady = ((self.end - at) / self.source.d_us).max(1) as f64;
                CdnCounts::of(stats()).since(before).per_segment(steady)
            }),
            first_fetches_per_segment: whole.first,
            p2p_fallbacks: stats().map(|s| s.p2p_fallbacks).sum(),
            p2p_transfers,
            p2p_transfer_mbps: if p2p_transfers == 0 {
                0.0
            } else {
                stats().map(|s| s.p2p_transfer_kbps).sum::<u64>() as f64
                    / p2p_transfers as f64
                    / 1000.0
            },
            p2p_relayed_transfers: relayed,
            p2p_relayed_mbps: if relayed == 0 {
                0.0
            } else {
                stats().map(|s| s.p2p_relayed_kbps).sum::<u64>() as f64 / relayed as f64 / 1000.0
            },
            chunk_loss: if p2p_transfers + fallbacks == 0 {
                0.0
            } else {
                fallbacks as f64 / (p2p_transfers + fallbacks) as f64
            },
            fallbacks_by_reason: std::mem::take(&mut self.tally.fallbacks),
            deadline_fetches_per_segment: whole.deadline,
            fallback_fetches_per_segment: whole.fallback,
            p2p_refused: stats().map(|s| s.p2p_refused).sum(),
            uploads_started: stats().map(|s| s.uploads_started).sum(),
            uploads_queued: stats().map(|s| s.uploads_queued).sum(),
            uploads_queue_withdrawn: stats().map(|s| s.uploads_queue_withdrawn).sum(),
            uploads_turned_away: stats().map(|s| s.uploads_turned_away).sum(),
            stale_answers: stats().map(|s| s.stale_answers).sum(),
            peer_errors: stats().map(|s| s.peer_errors).sum(),
            load_failures: stats().map(|s| s.load_failures).sum(),
            delivered: stats().map(|s| s.delivered).sum(),
            corrupt_deliveries: self.tally.corrupt,
            receipts: std::mem::take(&mut self.tally.receipts),
            stayers_rebuffer_after_event: stayers_rebuffer,
            topology: TopologyReport {
                samples: self.tally.topology.samples,
                neighbour_rtt_ms: self.tally.topology.rtt_ms
                    / f64::from(self.tally.topology.steady_samples.max(1)),
                max_components: self.tally.topology.max_components,
                max_isolated: self.tally.topology.max_isolated,
                coordinate_error: self.tally.topology.coordinate_error,
                swaps_proposed: stats().map(|s| s.swaps_proposed).sum(),
                swaps_committed: stats().map(|s| s.swaps_committed).sum(),
                swaps_aborted: stats().map(|s| s.swaps_aborted).sum(),
                swaps_rewired: stats().map(|s| s.swaps_rewired).sum(),
            },
            events: self.tally.events,
            attacks: self.scenario.security.has_attackers().then(|| {
                let count = |role| self.profiles.iter().filter(|p| p.role == role).count() as u64;
                AttackReport {
                    corrupt_peers: count(Role::Corrupt),
                    liar_peers: count(Role::Liar),
                    forged_peers: count(Role::Forged),
                    colluder_peers: self.scenario.security.colluders().into(),
                    false_attesters_caught: stats().map(|s| s.false_attesters).sum(),
                    spot_checks: stats().map(|s| s.spot_checks).sum(),
                    corrupt_pieces_caught: stats().map(|s| s.corrupt_pieces).sum(),
                    bad_senders: self.tally.bad_senders.len() as u64,
                    bad_senders_banned: (self.tally.bad_senders)
                        .intersection(&self.tally.banned_senders)
                        .count() as u64,
                    ..self.tally.attacks.clone()
                }
            }),
        }
    }
}

/// Where node `i` connects from: a public /24 of its own.
fn net_group(i: NodeIx) -> NetGroup {
    let ip = Ipv4Addr::from(0x0b00_0001 + (i << 8));
    NetGroup::of(SocketAddr::new(ip.into(), 4000))
}

/// The hash and length of `key`, if the origin has published it.
fn published(source: &Source, key: &SegmentKey) -> Option<(SegmentHash, u64)> {
    let SegmentPosition::Sequence(seq) = key.position else {
        return None;
    };
    source.rung(key).and_then(|r| source.hash(r, seq))
}

/// Key material for node `i` (or the authority, `u32::MAX`), derived from the seed without
/// touching the world's random sequence.
fn secret(seed: u64, i: NodeIx) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key("frog2frog sim node key");
    h.update(&seed.to_le_bytes());
    h.update(&i.to_le_bytes());
    *h.finalize().as_bytes()
}

/// Node `i`'s key pair, certified for the scenario's swarm as the control plane would.
fn certified(
    authority: &Authority,
    crypto: &Arc<dyn Crypto>,
    source: &Source,
    seed: u64,
    i: NodeIx,
    not_after: UnixTime,
) -> Identity {
    let keypair = Keypair::from_entropy(&secret(seed, i));
    let proof = prove_possession(crypto.as_ref(), &keypair);
    let session = SessionId(secret(seed ^ 0x5e55, i)[..16].try_into().expect("16 of 32"));
    let swarm = source.swarm();
    let certificate = authority
        .issue(
            crypto.as_ref(),
            &keypair.public(),
            &proof,
            Scope::Swarm(swarm),
            session,
            not_after,
        )
        .expect("a fresh key proves possession");
    Identity {
        keypair,
        certificate,
        authority: authority.public(),
        crypto: crypto.clone(),
    }
}

/// A flaky uplink's stalls until `end` (virtual µs): exponential gaps and lengths.
fn stall_times(rng: &mut ChaCha8Rng, flaky: &FlakySpec, end: u64) -> Vec<(u64, u64)> {
    let mut exp = |mean_s: f64| (-rng.random_range(f64::EPSILON..1.0).ln() * mean_s * 1e6) as u64;
    let mut stalls = Vec::new();
    let mut at = exp(flaky.every_s);
    while at < end {
        let until = at + exp(flaky.stall_s);
        stalls.push((at, until));
        at = until + exp(flaky.every_s);
    }
    stalls
}
