//! A deterministic virtual-time network of engines, driven through the public API only.
//!
//! Like quinn-proto's `Pair`, grown to N nodes with a fixed one-way latency and a per-node uplink
//! rate ([`link`] models the transport: connections, ordered delivery, `Drained` reports). A fake
//! CDN answers `FetchCdn` after a latency with the segment's bytes from the requested offset.
//! What each engine delivers and reports is kept per node; every delivered message in `log`.
//! Scripted nodes have no engine: tests write their frames ([`script`], with crashes and stalls).
//!
//! [`Net::step`] jumps to the next of (queued event, each engine's `poll_timeout()`); an engine
//! that asks to be woken again at the instant it was just woken fails the test (it would spin).

#![allow(dead_code)] // each test binary uses a different part of the harness

mod link;
mod script;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use f2f_core::config::Config;
use f2f_core::engine::{CdnError, Engine, EngineError, Input, Output, SegmentInfo};
use f2f_core::id::{PeerId, RenditionId, SegmentKey, SegmentPosition, SwarmId, VariantTag};
use f2f_core::identity::{
    Authority, Bls, Certificate, Fingerprint, Identity, Keypair, Scope, SessionId, UnixTime,
    prove_possession,
};
use f2f_core::integrity::SegmentHash;
use f2f_core::receipt::ReceiptBundle;
use f2f_core::scheduler::ByteSources;
use f2f_core::telemetry::Event;
use f2f_core::time::{Duration, Instant};
use f2f_core::wire::Message;

use link::Conn;

/// Index of a node in [`Net::nodes`].
pub(crate) type Ix = usize;

/// The stream every test swarm watches.
pub(crate) fn swarm() -> SwarmId {
    SwarmId::from_canonical("cdn.test/live/ch1/master.m3u8")
}

/// Segment `seq` of the test stream's only rendition.
pub(crate) fn key(seq: u64) -> SegmentKey {
    let url = format!("cdn.test/live/ch1/720p/{seq}.ts");
    SegmentKey {
        swarm: swarm(),
        rendition: RenditionId::from_canonical("cdn.test/live/ch1/720p"),
        position: SegmentPosition::Sequence(seq),
        variant: VariantTag::new(&url, None),
    }
}

/// How a playlist lists `key`: a 2 s segment of unknown size.
pub(crate) fn listed(key: SegmentKey, shareable: bool) -> SegmentInfo {
    SegmentInfo {
        key,
        size_hint: None,
        duration: Duration::from_secs(2),
        shareable,
    }
}

/// Wall-clock time at virtual time zero.
pub(crate) const UNIX_BASE: u64 = 1_800_000_000;

/// How long the harness's certificates last.
pub(crate) const CERT_LIFETIME: u64 = 24 * 3600;

/// The control plane's key every test node trusts.
pub(crate) fn authority() -> &'static Authority {
    static AUTHORITY: OnceLock<Authority> = OnceLock::new();
    AUTHORITY.get_or_init(|| {
        Authority::new(Keypair::from_entropy(
            blake3::hash(b"test authority").as_bytes(),
        ))
    })
}

/// The signature scheme every test node uses.
pub(crate) fn crypto() -> Arc<Bls> {
    static CRYPTO: OnceLock<Arc<Bls>> = OnceLock::new();
    CRYPTO.get_or_init(|| Arc::new(Bls::new())).clone()
}

/// Certifies `keypair` for `scope` until `not_after`, as the control plane would.
pub(crate) fn certify(keypair: &Keypair, scope: Scope, not_after: u64) -> Certificate {
    let session = SessionId(
        keypair.public().as_bytes()[..16]
            .try_into()
            .expect("16 of 48"),
    );
    let crypto = crypto();
    let proof = prove_possession(crypto.as_ref(), keypair);
    authority()
        .issue(
            crypto.as_ref(),
            &keypair.public(),
            &proof,
            scope,
            session,
            UnixTime(not_after),
        )
        .expect("possession proved")
}

/// The transport fingerprint of `from`'s end of connection `conn` to `to`.
pub(crate) fn fingerprint(from: Ix, to: Ix, conn: u64) -> Fingerprint {
    let mut h = blake3::Hasher::new();
    for n in [from as u64, to as u64, conn] {
        h.update(&n.to_le_bytes());
    }
    Fingerprint(*h.finalize().as_bytes())
}

/// Virtual time zero, shared by every network of the test binary.
fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

/// One segment handed to a player, `at` this virtual time.
#[derive(Debug)]
pub(crate) struct Delivered {
    pub(crate) at: Duration,
    pub(crate) key: SegmentKey,
    pub(crate) data: Bytes,
    pub(crate) sources: ByteSources,
}

/// One node, and what its engine asked for.
#[derive(Debug, Default)]
pub(crate) struct Node {
    /// `None` for scripted nodes (the test writes their frames) and crashed ones.
    pub(crate) engine: Option<Engine>,
    /// Crashed, or told `Input::Leave`: connecting to it fails.
    gone: bool,
    pub(crate) up_bps: f64,
    up_free: Duration,
    pub(crate) delivered: Vec<Delivered>,
    pub(crate) events: Vec<Event>,
    pub(crate) failed: Vec<SegmentKey>,
    pub(crate) connects: Vec<PeerId>,
    pub(crate) disconnects: Vec<PeerId>,
    pub(crate) need_bootstrap: usize,
    /// `Output::RenewCertificate`s: when the certificate in use expires.
    pub(crate) renewals: Vec<UnixTime>,
    /// `Output::Receipts`: what the node's receivers vouched for.
    pub(crate) receipts: Vec<ReceiptBundle>,
    /// `Output::Signal`s: relayed signalling payloads and their claimed writers.
    pub(crate) signals: Vec<(PeerId, Bytes)>,
    /// `Output::Progress`: verified peer bytes of segments being loaded.
    pub(crate) progress: Vec<(SegmentKey, u64)>,
}

/// Something that happens at a virtual time.
type Ev = Box<dyn FnOnce(&mut Net)>;

#[derive(Default)]
pub(crate) struct Net {
    pub(crate) now: Duration,
    pub(crate) latency: Duration,
    pub(crate) cdn_latency: Duration,
    pub(crate) config: Arc<Config>,
    pub(crate) nodes: Vec<Node>,
    ids: Vec<PeerId>,
    /// What the CDN serves.
    pub(crate) cdn: BTreeMap<SegmentKey, Bytes>,
    /// Every CDN fetch: `(node, key, offset)`.
    pub(crate) cdn_log: Vec<(Ix, SegmentKey, u64)>,
    /// Every delivered frame that decodes: `(from, to, message)`, in delivery order.
    pub(crate) log: Vec<(Ix, Ix, Message)>,
    /// Directions whose frames are lost (see [`Net::mute`]).
    muted: BTreeSet<(Ix, Ix)>,
    /// Each node's transport address: its own public /24 unless a test moves it.
    pub(crate) addrs: Vec<SocketAddr>,
    /// Each node's key pair and certificate (scripted nodes have them too).
    pub(crate) keys: Vec<Keypair>,
    pub(crate) certs: Vec<Certificate>,
    conns: BTreeMap<(Ix, Ix), Conn>,
    queue: BTreeMap<(Duration, u64), Ev>,
    seq: u64,
}

impl Net {
    /// An empty network: 20 ms one-way latency, a CDN answering after 50 ms.
    pub(crate) fn new(config: Config) -> Self {
        Self {
            latency: Duration::from_millis(20),
            cdn_latency: Duration::from_millis(50),
            config: Arc::new(config),
            ..Self::default()
        }
    }

    pub(crate) fn at(&self) -> Instant {
        base() + self.now
    }

    /// Wall-clock time now.
    pub(crate) fn unix(&self) -> UnixTime {
        UnixTime(UNIX_BASE + self.now.as_secs())
    }

    /// Adds an engine with the network's config and a 20 Mb/s uplink.
    pub(crate) fn add(&mut self) -> Ix {
        self.add_with(self.config.clone())
    }

    pub(crate) fn add_with(&mut self, config: Arc<Config>) -> Ix {
        let ix = self.add_node();
        self.start(ix, config);
        ix
    }

    /// Adds an engine whose certificate expires at `not_after` (wall clock, seconds).
    pub(crate) fn add_expiring(&mut self, not_after: u64) -> Ix {
        let ix = self.add_node();
        self.certs[ix] = certify(&self.keys[ix], Scope::Swarm(swarm()), not_after);
        self.start(ix, self.config.clone());
        ix
    }

    fn start(&mut self, ix: Ix, config: Arc<Config>) {
        let identity = Identity {
            keypair: self.keys[ix].clone(),
            certificate: self.certs[ix].clone(),
            authority: authority().public(),
            crypto: crypto(),
        };
        let engine = Engine::new(identity, swarm(), config, self.at(), self.unix());
        self.nodes[ix].engine = Some(engine.expect("valid config"));
    }

    fn add_node(&mut self) -> Ix {
        let seed = blake3::hash(format!("node-{}", self.nodes.len()).as_bytes());
        let keypair = Keypair::from_entropy(seed.as_bytes());
        let cert = certify(&keypair, Scope::Swarm(swarm()), UNIX_BASE + CERT_LIFETIME);
        self.ids.push(keypair.peer_id());
        let ix = self.nodes.len() as u32;
        let ip = Ipv4Addr::from(0x0b00_0001 + (ix << 8));
        self.addrs.push(SocketAddr::new(ip.into(), 4000));
        self.keys.push(keypair);
        self.certs.push(cert);
        self.nodes.push(Node::default());
        self.nodes.last_mut().expect("pushed").up_bps = 20e6;
        self.nodes.len() - 1
    }

    pub(crate) fn id(&self, ix: Ix) -> PeerId {
        self.ids[ix]
    }
    pub(crate) fn ix(&self, id: PeerId) -> Option<Ix> {
        self.ids.iter().position(|i| *i == id)
    }
    pub(crate) fn engine(&self, ix: Ix) -> &Engine {
        self.nodes[ix].engine.as_ref().expect("a live engine")
    }
    pub(crate) fn engine_mut(&mut self, ix: Ix) -> &mut Engine {
        self.nodes[ix].engine.as_mut().expect("a live engine")
    }

    /// Puts segment `seq` on the CDN: `len` deterministic bytes.
    pub(crate) fn publish(&mut self, seq: u64, len: usize) -> SegmentKey {
        let bytes = (0..len as u64).map(|i| (i * 7 + seq * 13 + i / 251) as u8);
        self.cdn.insert(key(seq), bytes.collect());
        key(seq)
    }

    /// Feeds `input` now and carries out the outputs (`Ok` for nodes without an engine).
    pub(crate) fn try_input(&mut self, ix: Ix, input: Input) -> Result<(), EngineError> {
        let (at, leave) = (self.at(), matches!(input, Input::Leave));
        let engine = self.nodes[ix].engine.as_mut();
        let result = engine.map_or(Ok(()), |e| e.handle_input(input, at));
        self.nodes[ix].gone |= leave && result.is_ok();
        self.drain(ix);
        result
    }

    /// Feeds `input`; the engine must accept it unless it left (the network has not noticed).
    pub(crate) fn input(&mut self, ix: Ix, input: Input) {
        match self.try_input(ix, input) {
            Err(EngineError::Left) => {}
            result => result.expect("the harness keeps the drive contract"),
        }
    }

    pub(crate) fn bootstrap(&mut self, ix: Ix, entries: &[Ix]) {
        let peers = entries.iter().map(|&e| self.id(e)).collect();
        self.input(ix, Input::Bootstrap(peers));
    }

    /// Lists a shareable segment (after its signed hash, when the CDN has it: a driver fetches
    /// the signed hashes with the playlist) and asks for it by `now + within`.
    pub(crate) fn load(&mut self, ix: Ix, key: SegmentKey, within: Duration) {
        self.give_hash(ix, key);
        self.load_unhashed(ix, key, within);
    }

    /// Lists and loads a segment without feeding its hash (a stream without signed hashes).
    pub(crate) fn load_unhashed(&mut self, ix: Ix, key: SegmentKey, within: Duration) {
        self.input(ix, Input::Listed(listed(key, true)));
        let deadline = self.at() + within;
        self.input(ix, Input::Load { key, deadline });
    }

    /// Feeds `ix` the segment's hash and size, as its driver would from the origin's signed
    /// hashes.
    pub(crate) fn give_hash(&mut self, ix: Ix, key: SegmentKey) {
        if let Some(data) = self.cdn.get(&key) {
            let (hash, size) = (SegmentHash::of(data), data.len() as u64);
            self.input(ix, Input::SegmentHash { key, hash, size });
        }
    }

    /// Every delivered message, as `(from, to, message)`.
    pub(crate) fn messages(&self) -> impl Iterator<Item = (Ix, Ix, &Message)> {
        self.log.iter().map(|(from, to, msg)| (*from, *to, msg))
    }

    pub(crate) fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        while self.step(end) {}
        self.now = end;
    }

    /// Runs until `done` holds (checked after every step), at most `within`; returns `done`.
    pub(crate) fn run_until(&mut self, within: Duration, done: impl Fn(&Self) -> bool) -> bool {
        let end = self.now + within;
        while !done(self) {
            if !self.step(end) {
                self.now = end;
                break;
            }
        }
        done(self)
    }

    /// Handles the next event, or the timers due, at or before `end`; false when there is none.
    pub(crate) fn step(&mut self, end: Duration) -> bool {
        let event = self.queue.keys().next().map(|k| k.0);
        let engines = self.nodes.iter().filter_map(|n| n.engine.as_ref());
        let timer = engines.filter_map(Engine::poll_timeout).min();
        let timer = timer.map(|t| t.saturating_duration_since(base()));
        let next = event.into_iter().chain(timer).min();
        let Some(at) = next.filter(|t| *t <= end) else {
            return false;
        };
        self.now = self.now.max(at);
        if event == Some(at) {
            let (_, ev) = self.queue.pop_first().expect("peeked");
            ev(self);
            return true;
        }
        let now = self.at();
        for ix in 0..self.nodes.len() {
            let Some(e) = self.nodes[ix].engine.as_mut() else {
                continue;
            };
            if e.poll_timeout().is_some_and(|t| t <= now) {
                e.handle_timeout(now);
                let spin = e.poll_timeout().is_some_and(|t| t <= now);
                assert!(!spin, "node {ix} asks to be woken again at once");
                self.drain(ix);
            }
        }
        true
    }

    /// Runs `ev` at `at` (or now, if that is past).
    fn at_time(&mut self, at: Duration, ev: impl FnOnce(&mut Net) + 'static) {
        self.seq += 1;
        self.queue
            .insert((at.max(self.now), self.seq), Box::new(ev));
    }

    fn drain(&mut self, ix: Ix) {
        while let Some(out) = self.nodes[ix].engine.as_mut().and_then(Engine::poll_output) {
            self.execute(ix, out);
        }
    }

    fn execute(&mut self, ix: Ix, out: Output) {
        let now = self.now;
        match out {
            Output::Connect(peer) => self.dial(ix, peer),
            Output::Disconnect(peer) => self.hang_up(ix, peer),
            Output::Transmit { to, frame } => self.transmit(ix, to, frame),
            Output::FetchCdn {
                fetch,
                key,
                offset,
                end,
            } => {
                self.cdn_log.push((ix, key, offset));
                let body = self.cdn.get(&key).map(|b| {
                    let stop = end.map_or(b.len(), |e| (e as usize).min(b.len()));
                    b.slice((offset as usize).min(stop)..stop)
                });
                let result = body.ok_or_else(|| CdnError("404".into()));
                let answer =
                    move |net: &mut Net| net.input(ix, Input::CdnResponse { fetch, result });
                self.at_time(now + self.cdn_latency, answer);
            }
            Output::Deliver { key, data, sources } => {
                let data = data.to_bytes();
                let delivered = Delivered {
                    at: now,
                    key,
                    data,
                    sources,
                };
                self.nodes[ix].delivered.push(delivered);
            }
            Output::LoadFailed(key) => self.nodes[ix].failed.push(key),
            Output::NeedBootstrap => self.nodes[ix].need_bootstrap += 1,
            Output::NeedHash(key) => self.give_hash(ix, key),
            Output::RenewCertificate { expires } => self.nodes[ix].renewals.push(expires),
            Output::Receipts(bundle) => self.nodes[ix].receipts.push(*bundle),
            Output::Signal { from, payload } => self.nodes[ix].signals.push((from, payload)),
            Output::Progress { key, p2p_bytes } => self.nodes[ix].progress.push((key, p2p_bytes)),
            Output::Event(e) => self.nodes[ix].events.push(e),
            other => panic!("the harness does not know {other:?}"),
        }
    }
}
