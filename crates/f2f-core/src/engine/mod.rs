//! The engine: one node's membership in one swarm, driven by its caller.
//!
//! # Drive loop
//!
//! ```no_run
//! # use f2f_core::engine::{Engine, Input, Output};
//! # use f2f_core::config::Config;
//! # use f2f_core::id::SwarmId;
//! # use f2f_core::identity::*;
//! # use f2f_core::time::Instant;
//! # use std::sync::Arc;
//! # fn next_input() -> (Input, Instant) { unimplemented!() }
//! # fn execute(_: Output) {}
//! # fn entropy() -> [u8; 32] { unimplemented!() }
//! # fn certificate_from_control_plane(_: &Keypair) -> (Certificate, PublicKey) { unimplemented!() }
//! # fn unix_now() -> UnixTime { unimplemented!() }
//! let swarm = SwarmId::from_canonical("cdn.example.com/live/ch1/master.m3u8");
//! // The key pair persists with the node; the certificate comes from the control plane.
//! let keypair = Keypair::from_entropy(&entropy());
//! let (certificate, authority) = certificate_from_control_plane(&keypair);
//! let crypto = Arc::new(Bls::new());
//! let identity = Identity { keypair, certificate, authority, crypto };
//! let config = Arc::new(Config::default());
//! let mut engine = Engine::new(identity, swarm, config, Instant::now(), unix_now())
//!     .expect("valid config and certificate");
//! loop {
//!     // 1. Feed what happened (bytes from a peer, a CDN response, a player request, ...).
//!     let (input, now) = next_input();
//!     engine.handle_input(input, now).expect("driver contract");
//!     // 2. Do everything the engine asks, until it has nothing more.
//!     while let Some(output) = engine.poll_output() {
//!         execute(output);
//!     }
//!     // 3. Wake up at `engine.poll_timeout()` and call `engine.handle_timeout(now)`.
//! }
//! ```

mod attest;
mod availability;
mod deficit;
mod handshake;
mod links;
mod peer;
mod quorum;
mod receipts;
mod relay;
mod requests;
mod rewire;
mod watch;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rustc_hash::FxHashMap;

use crate::config::{Config, ConfigError, SourcePreference};
use crate::coord::Vivaldi;
use crate::id::{PeerId, SegmentKey, SegmentPosition, SwarmId};
use crate::identity::{
    Certificate, CertificateError, CertificateVerifier, ChannelBinding, HandshakeError, Identity,
    RevocationList, Revocations, UnixTime,
};
use crate::integrity::{Blake3, GROUP_BYTES, Hashing, IntegrityError, SegmentHash};
use crate::membership::{Membership, MembershipOutput, NetGroup};
use crate::receipt::ReceiptBundle;
use crate::scheduler::{
    Action, BaselineRanker, ByteSources, Candidate, CdnWhy, FetchId, FirstFetch, GivenUp, Outcome,
    PeerMeasurements, Progress, RangeStats, Scheduler, SourceRanker,
};
use crate::segment::SegmentData;
use crate::store::Store;
use crate::swap::Swaps;
use crate::swarm_size::{SketchValues, Sketches};
use crate::telemetry::{Event, Stats};
use crate::time::{Duration, Instant};
use crate::uplink::Uplink;
use crate::upload::{Admit, Cancelled, UploadJob, Uploads};
use crate::wire::{self, AbsentReason, Frame, Message, RequestId};
use attest::SpotCheck;
use availability::Availability;
use peer::{Conn, Peer, Phase};
use quorum::Quorum;
use receipts::Ledger;
use relay::{Relay, Route, SIGNAL_TTL};
use requests::OpenRequests;
use watch::Watch;

/// Personal keys remembered (a few live windows' worth of ad segments).
const PERSONAL_MEMORY: usize = 256;

/// Trusted segment hashes remembered until their segment is listed (a few live windows).
const HASH_MEMORY: usize = 64;

/// A segment the playlist lists, as the engine needs to know it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentInfo {
    /// The segment.
    pub key: SegmentKey,
    /// Expected size in bytes, when the playlist or a byte range tells.
    pub size_hint: Option<u64>,
    /// Media duration (EXTINF, or the DASH segment duration).
    pub duration: Duration,
    /// `false` for personal content (SSAI ads): always from the CDN, never shared.
    pub shareable: bool,
}

/// Why a CDN response failed, as far as the engine cares.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("CDN fetch failed: {0}")]
pub struct CdnError(pub String);

/// Everything that can happen to an engine.
#[derive(Debug)]
#[non_exhaustive]
pub enum Input {
    /// Entry peers from the bootstrap (tracker); starts or restarts the overlay join.
    Bootstrap(Vec<PeerId>),
    /// A transport connection to `peer` is open (either side initiated it), on the transport
    /// session `binding` names; the handshake proves the peer's key on that session.
    Connected {
        /// The peer the transport connected us to.
        peer: PeerId,
        /// Both endpoints' transport fingerprints.
        binding: ChannelBinding,
        /// The network the peer connects from ([`NetGroup::of`] its address).
        group: NetGroup,
    },
    /// A connection the engine asked for could not be opened.
    ConnectFailed(PeerId),
    /// An open connection closed.
    Disconnected(PeerId),
    /// The send buffer of the connection to `peer` fell to `buffered` bytes (at or below
    /// [`crate::config::UploadConfig::low_water`]); uploads to it may continue.
    Drained {
        /// The peer.
        peer: PeerId,
        /// Bytes still waiting in the driver for that connection.
        buffered: u64,
    },
    /// A complete frame from a connected peer.
    Receive {
        /// The sender.
        from: PeerId,
        /// The frame.
        frame: Frame,
    },
    /// The playlist lists a segment.
    Listed(SegmentInfo),
    /// The player needs a segment by `deadline`.
    Load {
        /// The segment.
        key: SegmentKey,
        /// When playback reaches it.
        deadline: Instant,
    },
    /// The player's request for a segment prefers peers (P2P-preferred): this node does not
    /// fetch it from the CDN as a first fetcher, only when its deadline demands. Given before
    /// the segment is listed it also keeps the listing from starting a fetch; given after, it
    /// cancels a first fetch that has not started yet.
    PreferPeers(SegmentKey),
    /// The player no longer needs a segment.
    CancelLoad(SegmentKey),
    /// A CDN fetch asked for by [`Output::FetchCdn`] finished.
    CdnResponse {
        /// Which fetch.
        fetch: FetchId,
        /// The body from the requested offset on (to the requested end), or why it failed.
        result: Result<Bytes, CdnError>,
    },
    /// A signalling payload for `to` (a WebRTC offer or answer) to carry through the overlay:
    /// straight to `to` when connected to it, else flooded to neighbours' neighbours. Use it
    /// when [`Engine::can_relay`]; the payload arrives as [`Output::Signal`].
    Signal {
        /// The addressee.
        to: PeerId,
        /// Opaque to the engine, at most [`crate::wire::Limits::max_signal_len`] bytes.
        payload: Bytes,
    },
    /// New configuration (remote config); invalid configs are refused.
    UpdateConfig(Arc<Config>),
    /// A renewed certificate for our key (after [`Output::RenewCertificate`]).
    Certificate(Box<Certificate>),
    /// A segment's BLAKE3 hash and size, from a source the driver trusts (the origin's signed
    /// hashes). Peers are only asked for segments whose hash is known, and every byte they send
    /// is checked against it.
    SegmentHash {
        /// The segment.
        key: SegmentKey,
        /// Its BLAKE3 hash.
        hash: SegmentHash,
        /// Its length in bytes.
        size: u64,
    },
    /// The authority's revocation list (from the remote config); applied if newer, and passed
    /// on to neighbours.
    Revocations(Box<RevocationList>),
    /// Leave the swarm politely.
    Leave,
}

/// Everything an engine asks its driver to do.
#[derive(Debug)]
#[non_exhaustive]
pub enum Output {
    /// Open a connection to a peer; answer with `Connected` or `ConnectFailed`.
    Connect(PeerId),
    /// Close the connection to a peer.
    Disconnect(PeerId),
    /// Send a frame on the connection to a peer.
    Transmit {
        /// The receiver.
        to: PeerId,
        /// The frame.
        frame: Frame,
    },
    /// Fetch a segment from the CDN, from byte `offset` on; answer with `CdnResponse`.
    FetchCdn {
        /// Identifies the answer.
        fetch: FetchId,
        /// The segment (the driver knows its URL).
        key: SegmentKey,
        /// First byte wanted (non-zero after a partial peer transfer).
        offset: u64,
        /// One past the last byte wanted (a peer delivers the rest); `None`: to the end. With
        /// `offset`, an HTTP `Range: bytes=offset-(end-1)`.
        end: Option<u64>,
    },
    /// A segment the player loaded is ready.
    Deliver {
        /// The segment.
        key: SegmentKey,
        /// Its bytes.
        data: SegmentData,
        /// Where they came from.
        sources: ByteSources,
    },
    /// Verified bytes from a peer arrived for a segment the player is loading (progress; the
    /// segment comes whole with [`Output::Deliver`]).
    Progress {
        /// The segment.
        key: SegmentKey,
        /// Bytes in this piece.
        p2p_bytes: u64,
    },
    /// A load failed: every source was exhausted.
    LoadFailed(SegmentKey),
    /// A peer's signalling payload for us, relayed through the overlay ([`Input::Signal`]).
    Signal {
        /// Who wrote it, as claimed: connect only to that id, so the handshake checks it.
        from: PeerId,
        /// The payload.
        payload: Bytes,
    },
    /// The overlay is empty: the driver should ask the bootstrap for entry peers.
    NeedBootstrap,
    /// No trusted hash is known for a segment the engine wants (a neighbour announced it before
    /// our playlist listed it, or the listing came first): the driver should fetch the origin's
    /// signed hashes and feed this one as [`Input::SegmentHash`].
    NeedHash(SegmentKey),
    /// Receipts for what this node uploaded, for the driver to report to the control plane.
    Receipts(Box<ReceiptBundle>),
    /// Our certificate expires at `expires`: the driver should get a new one from the control
    /// plane and feed it as [`Input::Certificate`]. Until it expires, peers still accept us.
    RenewCertificate {
        /// When the current one expires.
        expires: UnixTime,
    },
    /// Telemetry.
    Event(Event),
}

/// The driver broke the drive contract.
#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum EngineError {
    /// The configuration cannot work.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The engine already left the swarm.
    #[error("the engine has left the swarm")]
    Left,
    /// Our own certificate does not fit (another key, another swarm).
    #[error("own certificate refused: {0}")]
    Identity(#[from] CertificateError),
}

/// One node in one swarm. See the module docs for the drive loop.
#[derive(Debug)]
pub struct Engine {
    me: PeerId,
    swarm: SwarmId,
    identity: Identity,
    verifier: CertificateVerifier,
    revocations: Revocations,
    /// An instant and the wall-clock time at it: certificates expire in wall-clock time.
    wall: (Instant, UnixTime),
    /// We asked the driver to renew the current certificate.
    renewal_asked: bool,
    hashing: Box<dyn Hashing>,
    /// Trusted hashes and sizes fed by the driver, newest last (a few live windows' worth).
    hashes: VecDeque<(SegmentKey, SegmentHash, u64)>,
    /// Segments whose hash we asked the driver for, newest last.
    hash_asked: VecDeque<SegmentKey>,
    /// Peers' hash attestations, when hashes come from them.
    quorum: Quorum,
    /// CDN spot checks under way.
    spot_checks: BTreeMap<FetchId, SpotCheck>,
    /// Delivery receipts, both ways.
    ledger: Ledger,
    /// Peers that sent bytes failing verification: never again this session.
    banned: BTreeSet<PeerId>,
    config: Arc<Config>,
    ranker: Box<dyn SourceRanker>,
    /// Requests under way, with what each was ranked on.
    requests: OpenRequests,
    membership: Membership,
    /// Everyone we hold a connection to (hash map: looked up on every frame).
    peers: FxHashMap<PeerId, Peer>,
    scheduler: Scheduler,
    uploads: Uploads,
    store: Store,
    sketch: Sketches,
    /// What neighbours announced, by segment.
    availability: Availability,
    watch: Watch,
    uplink: Uplink,
    rng: ChaCha8Rng,
    out: VecDeque<Output>,
    stats: Stats,
    /// Loads the player is waiting on.
    loads: BTreeSet<SegmentKey>,
    cdn_started: BTreeMap<FetchId, Instant>,
    created: Instant,
    first_p2p_byte: bool,
    /// Keys the playlist listed as personal (SSAI), remembered for later loads.
    personal: BTreeSet<SegmentKey>,
    /// Keys whose requests prefer peers ([`Input::PreferPeers`]).
    peers_preferred: BTreeSet<SegmentKey>,
    /// Media bit rate, from completed segments' sizes and durations.
    media_bps: Option<f64>,
    /// The bootstrap named other members: the swarm existed before us.
    joined_with_peers: bool,
    /// Multiplier on the CDN budget, raised by deadline fetches (see `raise_budget`).
    budget_gain: f64,
    /// Peers told `Busy` since the uploads last went idle: they hear when they do.
    turned_away: Vec<PeerId>,
    relay: Relay,
    /// Swap refinement of the data neighbours.
    swaps: Swaps,
    /// When we next consider proposing a swap.
    next_swap: Instant,
    /// The data-neighbour set changed since we last told the neighbours.
    neighbours_changed: bool,
    /// Our network coordinate.
    vivaldi: Vivaldi,
    /// Our neighbours' neighbours, as their lists describe them.
    heard: FxHashMap<PeerId, wire::Listed>,
    /// Nonce of our latest RTT probe.
    next_ping: u32,
    next_maintain: Instant,
    /// Timer work up to this instant is done; later timers only.
    timers_done: Instant,
    /// The latest time the driver gave us.
    now: Instant,
    left: bool,
}

impl Engine {
    /// A node that has not joined the overlay yet (feed [`Input::Bootstrap`]). `unix` is the
    /// wall-clock time at `now`. Its id is the hash of `identity`'s public key.
    ///
    /// # Errors
    ///
    /// An invalid config, or a certificate that is not for this key and swarm.
    pub fn new(
        identity: Identity,
        swarm: SwarmId,
        config: Arc<Config>,
        now: Instant,
        unix: UnixTime,
    ) -> Result<Self, EngineError> {
        config.validate()?;
        let own = &identity.certificate;
        if own.public_key != identity.keypair.public() {
            return Err(CertificateError::WrongKey.into());
        }
        if !own.scope.covers(&swarm) {
            return Err(CertificateError::WrongSwarm.into());
        }
        let me = identity.keypair.peer_id();
        let seed = config.seed ^ me.rank(0x5eed);
        Ok(Self {
            me,
            swarm,
            verifier: CertificateVerifier::new(
                identity.authority,
                config.identity.certificate_cache,
            ),
            identity,
            revocations: Revocations::default(),
            wall: (now, unix),
            renewal_asked: false,
            hashing: Box::new(Blake3),
            hashes: VecDeque::new(),
            hash_asked: VecDeque::new(),
            quorum: Quorum::default(),
            spot_checks: BTreeMap::new(),
            ledger: Ledger::default(),
            banned: BTreeSet::new(),
            membership: Membership::new(me, config.membership.clone(), seed),
            ranker: Box::new(BaselineRanker::default()),
            requests: OpenRequests::default(),
            peers: FxHashMap::default(),
            scheduler: Scheduler::new(),
            uploads: Uploads::new(),
            store: Store::new(config.cache_segments),
            sketch: Sketches::new(me, config.size.clone()),
            uplink: Uplink::default(),
            watch: Watch::default(),
            availability: Availability::new(config.links.have_memory),
            rng: ChaCha8Rng::seed_from_u64(seed.rotate_left(1)),
            out: VecDeque::new(),
            stats: Stats::default(),
            loads: BTreeSet::new(),
            cdn_started: BTreeMap::new(),
            created: now,
            first_p2p_byte: false,
            turned_away: Vec::new(),
            relay: Relay::default(),
            swaps: Swaps::new(me),
            next_swap: now + config.swap.interval,
            neighbours_changed: false,
            vivaldi: Vivaldi::new(seed),
            heard: FxHashMap::default(),
            next_ping: 0,
            budget_gain: 1.0,
            joined_with_peers: false,
            media_bps: None,
            personal: BTreeSet::new(),
            peers_preferred: BTreeSet::new(),
            next_maintain: now,
            timers_done: now,
            now,
            left: false,
            config,
        })
    }

    /// Replaces the hashing behind verification (the simulator memoises it per shared buffer).
    pub fn set_hashing(&mut self, hashing: Box<dyn Hashing>) {
        self.hashing = hashing;
    }

    /// Replaces the source ranker (the learned peer model plugs in here).
    pub fn set_ranker(&mut self, ranker: Box<dyn SourceRanker>) {
        self.ranker = ranker;
    }

    /// This node's id.
    pub fn id(&self) -> PeerId {
        self.me
    }

    /// The swarm this engine serves.
    pub fn swarm(&self) -> SwarmId {
        self.swarm
    }

    /// Cumulative counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The configuration in force.
    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    /// Current data neighbours.
    pub fn data_neighbours(&self) -> Vec<PeerId> {
        self.peers
            .iter()
            .filter(|(_, p)| p.is_linked())
            .map(|(id, _)| *id)
            .collect()
    }

    /// Our network coordinate, learnt from RTT probes of our data neighbours.
    pub fn position(&self) -> crate::coord::Position {
        self.vivaldi.position()
    }

    /// Current overlay (active view) neighbours.
    pub fn overlay_neighbours(&self) -> &[PeerId] {
        self.membership.active()
    }

    /// Whether a connection is ready to carry [`Input::Signal`]s.
    pub fn can_relay(&self) -> bool {
        self.peers.values().any(|p| p.conn.phase() == Phase::Ready)
    }

    /// Estimated number of peers in the swarm.
    pub fn swarm_size_estimate(&self) -> f64 {
        self.sketch.estimate()
    }

    /// Feeds one input. Errors mean the driver broke the contract; peer misbehaviour is never
    /// an error here (the peer is disconnected and an [`Event::PeerMisbehaved`] reported).
    pub fn handle_input(&mut self, input: Input, now: Instant) -> Result<(), EngineError> {
        if self.left {
            return Err(EngineError::Left);
        }
        self.now = self.now.max(now);
        match input {
            Input::Bootstrap(peers) => {
                self.joined_with_peers |= !peers.is_empty();
                self.membership.join(&peers, now);
                self.drain_membership();
            }
            Input::Connected {
                peer,
                binding,
                group,
            } => self.on_connected(peer, binding, group, now),
            Input::ConnectFailed(peer) => self.on_peer_gone(peer, false, now),
            Input::Disconnected(peer) => self.on_peer_gone(peer, true, now),
            Input::Drained { peer, buffered } => {
                if let Some(p) = self.peers.get_mut(&peer) {
                    let left = p.buffered.saturating_sub(buffered);
                    p.buffered = buffered;
                    p.drain_window = match p.drain_window {
                        Some((since, sent)) => {
                            let sent = sent + left;
                            let elapsed = now.saturating_duration_since(since);
                            if self.uplink.sample(sent, elapsed, now) {
                                Some((now, 0))
                            } else {
                                Some((since, sent))
                            }
                        }
                        None => Some((now, 0)),
                    };
                }
                self.pump_uploads(now);
            }
            Input::Receive { from, frame } => self.on_frame(from, &frame, now),
            Input::Listed(info) => self.on_listed(info, now),
            Input::Load { key, deadline } => self.on_load(key, deadline, now),
            Input::PreferPeers(key) => {
                self.peers_preferred.insert(key);
                while self.peers_preferred.len() > PERSONAL_MEMORY {
                    self.peers_preferred.pop_first();
                }
                self.scheduler.prefer_peers(&key);
            }
            Input::CancelLoad(key) => {
                self.loads.remove(&key);
                let actions = self.scheduler.remove(&key);
                self.apply(actions, now);
            }
            Input::CdnResponse { fetch, result } => self.on_cdn(fetch, result, now),
            Input::UpdateConfig(config) => {
                config.validate()?;
                self.store.set_capacity(config.cache_segments);
                self.availability.set_capacity(config.links.have_memory);
                self.membership.set_config(config.membership.clone());
                self.drain_membership();
                self.sketch.set_config(config.size.clone());
                self.scheduler.reconfigured();
                self.config = config;
            }
            Input::Signal { to, payload } => self.send_signal(to, payload),
            Input::Certificate(cert) => self.on_certificate(*cert)?,
            Input::SegmentHash { key, hash, size } => self.trust_hash(key, hash, size, now),
            Input::Revocations(list) => self.on_revocations(None, &list, now),
            Input::Leave => self.leave(),
        }
        Ok(())
    }

    /// Runs timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.left {
            return;
        }
        self.now = self.now.max(now);
        self.membership.handle_timeout(now);
        self.drain_membership();
        if now >= self.next_maintain {
            self.check_renewal();
            self.settle_receipts();
            self.maintain(now);
            self.next_maintain = now + self.config.links.maintain_interval;
        }
        self.swaps.handle_timeout(&self.config.swap, now);
        self.drain_swaps(now);
        if self.config.swap.enabled {
            self.maybe_propose_swap(now);
        }
        self.pump_uploads(now);
        for key in self.scheduler.keys() {
            self.decide(&key, now);
        }
        self.timers_done = now;
    }

    /// When [`Self::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.left {
            return None;
        }
        [
            self.membership.poll_timeout(),
            Some(self.next_maintain),
            self.scheduler
                .poll_timeout(&self.config.scheduler, self.timers_done),
            self.uploads.poll_timeout(),
            self.swaps.poll_timeout(),
            self.config.swap.enabled.then_some(self.next_swap),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The next thing the driver must do.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    fn leave(&mut self) {
        self.flush_receipts();
        self.membership.leave();
        self.drain_membership();
        let linked: Vec<PeerId> = self.data_neighbours();
        for peer in linked {
            self.send(peer, Message::LinkDrop);
        }
        for peer in std::mem::take(&mut self.peers).into_keys() {
            self.out.push_back(Output::Disconnect(peer));
        }
        self.left = true;
    }

    /// Ready connections, except `not`.
    fn ready_peers(&self, not: &[PeerId]) -> Vec<PeerId> {
        (self.peers.iter())
            .filter(|(id, p)| p.conn.phase() == Phase::Ready && !not.contains(id))
            .map(|(id, _)| *id)
            .collect()
    }

    fn is_ready(&self, peer: &PeerId) -> bool {
        (self.peers.get(peer)).is_some_and(|p| p.conn.phase() == Phase::Ready)
    }

    fn send_signal(&mut self, to: PeerId, payload: Bytes) {
        self.relay.sent(self.me, to, &payload);
        let from = self.me;
        let (targets, ttl) = if self.is_ready(&to) {
            (vec![to], 0)
        } else {
            (self.ready_peers(&[]), SIGNAL_TTL - 1)
        };
        for peer in targets {
            let payload = payload.clone();
            let msg = Message::Signal {
                from,
                to,
                ttl,
                payload,
            };
            self.send(peer, msg);
        }
    }

    /// A signal from neighbour `via`, written by `writer` for `to`.
    fn on_signal(
        &mut self,
        via: PeerId,
        (writer, to): (PeerId, PeerId),
        ttl: u8,
        payload: Bytes,
        now: Instant,
    ) {
        let direct = self.is_ready(&to);
        let ids = (self.me, writer, to);
        let targets = match self.relay.route(via, ids, ttl, &payload, direct, now) {
            Route::Deliver => {
                let from = writer;
                self.out.push_back(Output::Signal { from, payload });
                return;
            }
            Route::Drop => return,
            Route::Direct => (vec![to], 0),
            Route::Flood(left) => (self.ready_peers(&[via, writer]), left),
        };
        let (targets, ttl) = targets;
        for peer in targets {
            let msg = Message::Signal {
                from: writer,
                to,
                ttl,
                payload: payload.clone(),
            };
            self.send(peer, msg);
        }
    }

    fn on_peer_gone(&mut self, peer: PeerId, reachable: bool, now: Instant) {
        if self.peers.remove(&peer).is_some_and(|p| p.is_linked()) {
            self.neighbours_changed = true;
        }
        self.swaps.forget(&peer);
        self.relay.forget(&peer);
        self.availability.forget_peer(&peer);
        self.membership.handle_peer_down(peer, reachable, now);
        self.drain_membership();
        self.uploads.forget_peer(&peer);
        self.transfers_lost(peer, now);
        self.pump_uploads(now);
    }

    /// Our transfers from `peer` ended with the connection or the data link: each is a failed
    /// request (for the model and the chunk-loss count) and its segment looks for a source.
    fn transfers_lost(&mut self, peer: PeerId, now: Instant) {
        for key in self.scheduler.on_peer_lost(peer) {
            self.learn(peer, key, Outcome::Failed);
            self.stats.p2p_fallbacks += 1;
            self.out.push_back(Output::Event(Event::Fallback {
                key,
                peer,
                reason: crate::telemetry::FallbackReason::PeerLost,
            }));
            self.decide(&key, now);
        }
        self.requests.forget_peer(&peer);
    }

    fn on_frame(&mut self, from: PeerId, frame: &Frame, now: Instant) {
        let Some(peer) = self.peers.get_mut(&from) else {
            return;
        };
        peer.last_used = now;
        let phase = peer.conn.phase();
        let msg = match wire::decode(frame, &self.config.limits) {
            Ok(msg) => msg,
            Err(e) => return self.misbehaved(from, e.to_string(), now),
        };
        match (phase, msg) {
            (Phase::Open, Message::Handshake(h)) => self.on_hello(from, *h, now),
            (Phase::Proving, Message::Proof { signature }) => {
                self.on_proof(from, signature, now);
            }
            (Phase::Ready, Message::Handshake(_) | Message::Proof { .. }) => {
                self.out_of_turn(from, "second handshake", now);
            }
            (Phase::Ready, msg) => self.on_message(from, msg, now),
            (Phase::Proving, _) => {
                self.out_of_turn(from, "message before the handshake proof", now)
            }
            (_, _) => self.out_of_turn(from, "message before handshake", now),
        }
    }

    fn on_message(&mut self, from: PeerId, msg: Message, now: Instant) {
        match msg {
            Message::Join
            | Message::ForwardJoin { .. }
            | Message::Neighbour { .. }
            | Message::NeighbourReply { .. }
            | Message::Shuffle { .. }
            | Message::ShuffleReply { .. }
            | Message::Disconnect { .. } => {
                self.membership.handle_message(from, &msg, now);
                self.drain_membership();
            }
            Message::Signal {
                from: writer,
                to,
                ttl,
                payload,
            } => self.on_signal(from, (writer, to), ttl, payload, now),
            Message::LinkRequest => self.on_link_request(from, now),
            Message::LinkReply { accepted } => self.on_link_reply(from, accepted, now),
            Message::LinkDrop => self.link_down(from, now),
            Message::Neighbours { position, peers } => self.on_neighbours(from, position, peers),
            Message::Ping { nonce } => {
                let position = self.vivaldi.position();
                self.send(from, Message::Pong { nonce, position });
            }
            Message::Pong { nonce, position } => self.on_pong(from, nonce, position, now),
            Message::Swap(msg) => self.on_swap(from, msg, now),
            Message::Have {
                load,
                upload_kbps,
                partial,
                keys,
            } => {
                if let Some(p) = self.peers.get_mut(&from) {
                    p.load = load;
                    if upload_kbps > 0 {
                        p.upload_bps = f64::from(upload_kbps) * 1000.0;
                    }
                }
                self.on_announced(from, &keys, !partial, now);
            }
            Message::Bitmap {
                swarm,
                rendition,
                base,
                bits,
                variants,
            } => {
                let mut keys = Vec::with_capacity(variants.len());
                let mut variants = variants.into_iter();
                for (i, byte) in bits.iter().enumerate() {
                    for bit in 0..8u64 {
                        if byte & (1 << bit) != 0 {
                            let Some(variant) = variants.next() else {
                                break;
                            };
                            let seq = base.saturating_add(i as u64 * 8 + bit);
                            let position = SegmentPosition::Sequence(seq);
                            keys.push(SegmentKey {
                                swarm,
                                rendition,
                                position,
                                variant,
                            });
                        }
                    }
                }
                self.on_announced(from, &keys, true, now);
            }
            Message::Request {
                id,
                key,
                offset,
                end,
            } => self.on_request(from, id, key, (offset, end), now),
            Message::Piece {
                id,
                key,
                offset,
                end,
                total,
                data,
            } => self.on_piece(from, id, key, (offset, end, total), &data, now),
            Message::Cancel { key } => {
                if self.withdraw(&from, &key) {
                    self.pump_uploads(now);
                }
            }
            Message::Absent { id, key, reason } => {
                if self.scheduler.is_stale(from, &key, id) {
                    // About a request we have since cancelled or replaced.
                    self.stats.stale_answers += 1;
                    return;
                }
                if reason == AbsentReason::NotHeld {
                    self.availability.forget(&from, &key);
                }
                let busy_until = (reason == AbsentReason::Busy)
                    .then(|| now + self.config.scheduler.busy_backoff);
                if self.scheduler.on_refused(from, &key, busy_until) {
                    self.learn(from, key, Outcome::Failed);
                    self.stats.p2p_refused += 1;
                    if let Some(p) = self.peers.get_mut(&from) {
                        p.refused = p.refused.saturating_add(1);
                    }
                    self.decide(&key, now);
                }
            }
            Message::SizeSketch {
                rendition,
                epoch,
                mins,
                capable,
            } => {
                let values = SketchValues {
                    epoch,
                    mins,
                    capable,
                };
                if let Err(e) = self.sketch.merge(rendition, &values) {
                    self.misbehaved(from, e.to_string(), now);
                }
            }
            Message::Revocations(list) => self.on_revocations(Some(from), &list, now),
            Message::Attest(att) => self.on_attestation(from, *att, now),
            Message::Receipt {
                delivery,
                signature,
            } => self.on_receipt(from, delivery, signature, now),
            // Handled before a connection is ready (see `on_frame`).
            Message::Handshake(_) | Message::Proof { .. } => {}
        }
    }

    fn on_announced(&mut self, from: PeerId, keys: &[SegmentKey], complete: bool, now: Instant) {
        let mut acked = false;
        let mut wanted = Vec::new();
        for key in keys {
            if key.swarm != self.swarm {
                continue;
            }
            if self.watch.announced(key)
                && !self.scheduler.is_wanted(key)
                && !self.store.contains(key)
            {
                // The next segment, before our own playlist refresh shows it: start on the
                // swarm's copy now. Our later listing confirms the key (or, for a personalised
                // variant, never matches and the prefetch is forgotten).
                // Announced already: only a node covering the upload deficit fetches it
                // from the CDN of its own accord.
                let first_fetch = match self.first_fetch(key, now) {
                    FirstFetch::Now => FirstFetch::Now,
                    _ => FirstFetch::Wait,
                };
                self.scheduler
                    .list(*key, None, None, true, first_fetch, now);
                self.apply_known_hash(key, now);
            }
            self.availability.announce(from, *key, complete);
            // A peer that has the whole segment needs no more of it from us.
            if complete {
                acked |= self.withdraw(&from, key);
            }
            if self.scheduler.is_wanted(key) {
                wanted.push(*key);
            }
        }
        if acked {
            self.pump_uploads(now);
        }
        if keys.is_empty() {
            // An idle notice: whatever this peer holds is worth asking for again.
            wanted = self
                .scheduler
                .keys()
                .into_iter()
                .filter(|k| self.availability.announced(&from, k))
                .collect();
        }
        for key in wanted {
            // A new complete copy may rescue a transfer that is running late.
            if complete && !keys.is_empty() {
                self.upgrade(&key, now);
            }
            self.decide(&key, now);
        }
    }

    fn on_request(
        &mut self,
        from: PeerId,
        id: RequestId,
        key: SegmentKey,
        (offset, end): (u64, Option<u64>),
        now: Instant,
    ) {
        let total = self.servable(&key);
        let aligned = |at: u64| at % GROUP_BYTES == 0;
        if !aligned(offset) || end.is_some_and(|e| !aligned(e) && total != Some(e)) {
            return self.misbehaved(from, "request not aligned to chunk groups".into(), now);
        }
        let held = total.is_some_and(|total| offset < total);
        if !held {
            self.send(
                from,
                Message::Absent {
                    id,
                    key,
                    reason: AbsentReason::NotHeld,
                },
            );
            return;
        }
        let job = UploadJob {
            peer: from,
            id,
            key,
            start: offset,
            next: offset,
            end,
        };
        match self.uploads.admit(
            job,
            self.upload_slots(),
            self.upload_queue(),
            &self.config.upload,
            now,
        ) {
            Admit::Started => {
                self.stats.uploads_started += 1;
                self.pump_uploads(now);
            }
            Admit::Displaced(old) => {
                self.stats.uploads_started += 1;
                // Busy, not gone: the requester keeps its bytes and resumes elsewhere (or here,
                // once we go idle).
                self.turn_away(&old);
                self.pump_uploads(now);
            }
            Admit::Queued => self.stats.uploads_queued += 1,
            Admit::Busy => self.turn_away(&job),
        }
    }

    /// Drops `peer`'s transfer of `key` at its request; returns whether there was one.
    fn withdraw(&mut self, peer: &PeerId, key: &SegmentKey) -> bool {
        match self.uploads.cancel(peer, key) {
            Cancelled::Nothing => false,
            Cancelled::Active => true,
            Cancelled::Queued => {
                self.stats.uploads_queue_withdrawn += 1;
                true
            }
        }
    }

    /// Tells the requester of `job` we are too busy to serve it; it hears again when our
    /// uploads go idle.
    fn turn_away(&mut self, job: &UploadJob) {
        self.stats.uploads_turned_away += 1;
        if !self.turned_away.contains(&job.peer) {
            self.turned_away.push(job.peer);
        }
        self.send(
            job.peer,
            Message::Absent {
                id: job.id,
                key: job.key,
                reason: AbsentReason::Busy,
            },
        );
    }

    /// A piece of `key`: bytes `offset..end` of a `total`-byte segment, bao-encoded.
    fn on_piece(
        &mut self,
        from: PeerId,
        id: RequestId,
        key: SegmentKey,
        (offset, end, total): (u64, u64, u64),
        encoded: &Bytes,
        now: Instant,
    ) {
        if total > self.config.max_segment_bytes {
            return self.misbehaved(
                from,
                "segment larger than the configured maximum".into(),
                now,
            );
        }
        let len = end - offset;
        let progress = self.scheduler.on_piece(
            from,
            id,
            &key,
            offset,
            end,
            total,
            encoded,
            self.hashing.as_ref(),
            now,
        );
        match progress {
            Progress::Unexpected => {}
            Progress::Stale => self.stats.stale_answers += 1,
            Progress::Violation(why) => self.misbehaved(from, why.into(), now),
            Progress::Corrupt(e) => self.ban(from, key, e, now),
            Progress::Partial => {
                self.count_received(from, key, len);
                self.note_p2p_byte(len, now);
                self.loading(key, len);
                if offset == 0 && self.scheduler.arriving(&key).is_some() {
                    self.announce(key, true, None);
                }
                self.pump_uploads(now);
                let actions = self
                    .scheduler
                    .check_transfer(&key, &self.config.scheduler, now);
                self.apply(actions, now);
            }
            Progress::RangeDone(range) => {
                self.count_received(from, key, len);
                self.note_p2p_byte(len, now);
                self.loading(key, len);
                self.measure_range(key, range);
                self.pump_uploads(now);
                self.decide(&key, now);
            }
            complete @ Progress::Complete { .. } => {
                self.count_received(from, key, len);
                self.note_p2p_byte(len, now);
                self.loading(key, len);
                self.complete(key, complete);
            }
        }
    }

    /// `peer` sent bytes of `key` that fail verification: disconnected, never accepted again
    /// this session, and the range is fetched elsewhere.
    fn ban(&mut self, peer: PeerId, key: SegmentKey, error: IntegrityError, now: Instant) {
        self.stats.corrupt_pieces += 1;
        self.banned.insert(peer);
        self.out.push_back(Output::Event(Event::PeerBanned {
            peer,
            key,
            error: error.to_string(),
        }));
        self.misbehaved(peer, error.to_string(), now);
        self.decide(&key, now);
    }

    /// Tells the ranker how a request it ranked ended, with the measurements it was ranked on
    /// (returned).
    fn learn(
        &mut self,
        peer: PeerId,
        key: SegmentKey,
        outcome: Outcome,
    ) -> Option<PeerMeasurements> {
        let asked = self.requests.end(peer, key)?;
        self.ranker.observe(&asked, outcome);
        if let Some(model) = self.ranker.status() {
            self.stats.model_version = model.version;
            self.stats.model_error_milli = (model.rate_error * 1000.0) as u64;
        }
        Some(asked)
    }

    /// Folds a range a peer delivered into its throughput estimate.
    fn measure_range(&mut self, key: SegmentKey, range: RangeStats) {
        let outcome = Outcome::Delivered {
            bytes: range.timed_bytes(),
            elapsed: range.elapsed,
        };
        let asked = self.learn(range.peer, key, outcome);
        let kbps = (range.throughput_bps() / 1000.0) as u64;
        self.stats.p2p_transfers += 1;
        self.stats.p2p_transfer_kbps += kbps;
        if asked.is_some_and(|m| m.relaying) {
            self.stats.p2p_relayed_transfers += 1;
            self.stats.p2p_relayed_kbps += kbps;
        }
        if let Some(p) = self.peers.get_mut(&range.peer) {
            p.transfer_done(range.planning_bps());
        }
    }

    /// Reports verified peer bytes of a segment the player waits for.
    fn loading(&mut self, key: SegmentKey, p2p_bytes: u64) {
        if self.loads.contains(&key) {
            self.out.push_back(Output::Progress { key, p2p_bytes });
        }
    }

    fn note_p2p_byte(&mut self, len: u64, now: Instant) {
        if len > 0 && !self.first_p2p_byte {
            self.first_p2p_byte = true;
            let after_join = now.saturating_duration_since(self.created);
            self.out
                .push_back(Output::Event(Event::FirstP2pByte { after_join }));
        }
    }

    fn on_listed(&mut self, info: SegmentInfo, now: Instant) {
        if info.key.swarm != self.swarm || self.store.contains(&info.key) {
            return;
        }
        if !info.shareable {
            self.personal.insert(info.key);
            while self.personal.len() > PERSONAL_MEMORY {
                self.personal.pop_first();
            }
        }
        if let SegmentPosition::Sequence(seq) = info.key.position {
            self.sketch.observe(info.key.rendition, seq);
            if info.shareable {
                self.watch.listed(info.key.rendition, seq, info.key.variant);
            }
        }
        let first_fetch = self.first_fetch(&info.key, now);
        self.scheduler.list(
            info.key,
            info.size_hint,
            Some(info.duration),
            info.shareable,
            first_fetch,
            now,
        );
        self.apply_known_hash(&info.key, now);
        self.decide(&info.key, now);
    }

    /// A trusted hash for `key`: its peer transfers may start.
    fn trust_hash(&mut self, key: SegmentKey, hash: SegmentHash, size: u64, now: Instant) {
        self.remember_hash(key, hash, size);
        self.decide(&key, now);
    }

    fn remember_hash(&mut self, key: SegmentKey, hash: SegmentHash, size: u64) {
        self.hashes.retain(|(k, _, _)| *k != key);
        self.hashes.push_back((key, hash, size));
        while self.hashes.len() > HASH_MEMORY {
            self.hashes.pop_front();
        }
        self.scheduler.set_hash(&key, hash, size);
    }

    /// Hands the scheduler a segment's trusted hash if it is known already; otherwise, with
    /// signed hashes, asks the driver for it (once). Until then no peer is asked for the
    /// segment.
    fn apply_known_hash(&mut self, key: &SegmentKey, now: Instant) {
        if let Some(&(_, hash, size)) = self.hashes.iter().find(|(k, _, _)| k == key) {
            self.scheduler.set_hash(key, hash, size);
        } else if self.attestation_quorum().is_some() {
            self.check_deferred(key, now);
        } else if !self.hash_asked.contains(key) {
            self.hash_asked.push_back(*key);
            while self.hash_asked.len() > HASH_MEMORY {
                self.hash_asked.pop_front();
            }
            self.out.push_back(Output::NeedHash(*key));
        }
    }

    /// When this node fetches a new segment from the CDN of its own accord: at once, whoever
    /// holds it, if it covers its neighbourhood's upload deficit; otherwise, unless a neighbour
    /// announced it by then, at once if its rank is within the swarm's budget, later the further
    /// back it ranks.
    fn first_fetch(&self, key: &SegmentKey, now: Instant) -> FirstFetch {
        let cfg = &self.config.scheduler;
        if cfg.source != SourcePreference::Auto || self.peers_preferred.contains(key) {
            return FirstFetch::Wait;
        }
        if self.covers_upload_deficit() {
            return FirstFetch::Now;
        }
        let salt =
            key.rendition.as_u64() ^ key.variant.as_u64() ^ key.position.value().rotate_left(29);
        let fraction = self.me.rank(salt) as f64 / 2f64.powi(64);
        // The key's rendition is its own sub-swarm: its viewers are the ones to share it.
        let sketch = self.sketch.get(&key.rendition);
        let viewers = sketch.map_or(1.0, |s| s.estimate());
        let budget = cfg.first_fetchers(viewers) * self.budget_gain;
        let steps = (fraction * viewers / budget - 1.0).clamp(0.0, 1e6);
        let informed = sketch.is_some_and(|s| s.is_informed());
        FirstFetch::Unannounced(
            match sketch.and_then(|s| s.is_among_first(budget.round() as usize)) {
                // One of this epoch's first fetchers: the swarm counts on us.
                Some(true) => now,
                // Somebody else fetches first; step in only if nobody announces it.
                Some(false) => now + cfg.rescue_step.mul_f64(1.0 + steps),
                // We just joined a swarm we know nothing about yet: not a first fetcher.
                None if self.joined_with_peers && !informed => now + cfg.rescue_step,
                // No settled epoch yet (the swarm just formed): per-segment ranks decide.
                None => now + cfg.rescue_step.mul_f64(steps),
            },
        )
    }

    /// Whether this node is among the fastest uplinks that fetch every segment at once because
    /// the swarm's uplinks cannot carry the stream (see [`deficit`]).
    fn covers_upload_deficit(&self) -> bool {
        let mine = self.uplink.estimate_bps(self.now);
        deficit::covers_deficit(
            mine,
            &self.neighbour_uploads(),
            self.media_bps.unwrap_or(0.0),
        )
    }

    /// Whether our neighbourhood's uplinks carry less than the stream: then every byte of
    /// uplink counts, and uploads are sent for that (`pump_uploads`, `tail_left`). Asked when
    /// needed rather than kept as a flag refreshed with the link upkeep once a second, which
    /// measured worse on `starved`.
    fn neighbourhood_starved(&self) -> bool {
        let mine = self.uplink.estimate_bps(self.now);
        deficit::deficit(
            mine,
            &self.neighbour_uploads(),
            self.media_bps.unwrap_or(0.0),
        ) > 0.0
    }

    /// The upload rates our data neighbours reported, bit/s (unknown ones left out).
    fn neighbour_uploads(&self) -> Vec<f64> {
        self.peers
            .values()
            .filter(|p| p.is_linked())
            .map(|p| p.upload_bps)
            .filter(|r| *r > 0.0)
            .collect()
    }

    /// A deadline forced a CDN fetch of a segment no neighbour had announced: the swarm spreads
    /// segments too slowly for its size, so this node becomes a first fetcher more often (every
    /// node that sees this does). Deadlines missed for lack of upload capacity do not count:
    /// more first fetchers would not help those.
    fn raise_budget(&mut self) {
        let max = self.config.scheduler.max_budget_gain;
        self.budget_gain = (self.budget_gain * 1.25).min(max);
    }

    /// A segment arrived from the swarm in time: slowly give the extra budget back.
    fn relax_budget(&mut self) {
        self.budget_gain = (self.budget_gain * 0.995).max(1.0);
    }

    fn on_load(&mut self, key: SegmentKey, deadline: Instant, now: Instant) {
        if let Some((data, sources)) = self.store.get_with_sources(&key) {
            let (data, sources) = (data.clone(), sources);
            self.stats.delivered += 1;
            self.out.push_back(Output::Deliver { key, data, sources });
            return;
        }
        if !self.scheduler.is_wanted(&key) {
            // Loaded without a fresh listing (a player that knows its URLs, or a second load):
            // a key once listed as personal stays personal.
            let shareable = !self.personal.contains(&key);
            let first_fetch = self.first_fetch(&key, now);
            self.scheduler
                .list(key, None, None, shareable, first_fetch, now);
            self.apply_known_hash(&key, now);
        }
        self.loads.insert(key);
        self.scheduler.set_deadline(&key, deadline);
        self.decide(&key, now);
    }

    fn on_cdn(&mut self, fetch: FetchId, result: Result<Bytes, CdnError>, now: Instant) {
        if self.on_spot_check(fetch, result.as_ref().ok()) {
            return;
        }
        let started = self.cdn_started.remove(&fetch).unwrap_or(now);
        let elapsed = now.saturating_duration_since(started);
        match self.scheduler.on_cdn(
            fetch,
            result.map_err(|_| ()),
            elapsed,
            &self.config.scheduler,
            now,
        ) {
            Ok(Some((key, complete))) => self.complete(key, complete),
            Ok(None) => {}
            Err(GivenUp { key, cancels }) => {
                self.apply(cancels, now);
                self.stats.load_failures += 1;
                if self.loads.remove(&key) {
                    self.out.push_back(Output::LoadFailed(key));
                }
            }
        }
    }

    fn complete(&mut self, key: SegmentKey, progress: Progress) {
        let Progress::Complete {
            data,
            sources,
            last,
            shareable,
            duration,
            tree,
        } = progress
        else {
            return;
        };
        self.stats.cdn_bytes += sources.cdn;
        self.stats.p2p_bytes += sources.p2p;
        if let Some(d) = duration.filter(|d| !d.is_zero()) {
            let bps = data.len() as f64 * 8.0 / d.as_secs_f64();
            self.media_bps = Some(self.media_bps.map_or(bps, |m| 0.8 * m + 0.2 * bps));
        }
        if sources.cdn > 0 {
            self.stats.cdn_segments += 1;
        } else {
            self.stats.p2p_segments += 1;
            self.relax_budget();
        }
        if let Some(range) = last {
            self.measure_range(key, range);
        }
        if self.loads.remove(&key) {
            self.stats.delivered += 1;
            self.out.push_back(Output::Deliver {
                key,
                data: data.clone(),
                sources,
            });
        }
        if !shareable {
            return;
        }
        let tree = match self.attestation_quorum() {
            Some(_) if sources.cdn > 0 => Some(self.witness(key, &data, sources.p2p == 0)),
            Some(_) => {
                self.maybe_spot_check(key, &data);
                tree
            }
            None => tree,
        };
        self.store.insert(key, data, sources, tree);
        // The source hears it too: a complete `Have` ends its upload.
        self.announce(key, false, last.map(|r| r.peer));
        // Relays of this segment waiting for its last bytes send them now, from the store.
        self.pump_uploads(self.now);
    }

    /// Tells linked neighbours that have not announced `key` themselves that we hold it (or,
    /// `partial`, that it is arriving and we relay it as it does); `also` is told in any case.
    /// Neighbours that announced it already have a source: telling them too would double the
    /// availability traffic of a swarm for little.
    fn announce(&mut self, key: SegmentKey, partial: bool, also: Option<PeerId>) {
        let load = self.uploads.load();
        let upload_kbps = self.uplink.kbps(self.now);
        let targets: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(id, p)| {
                p.is_linked() && (Some(**id) == also || !self.availability.announced(id, &key))
            })
            .map(|(id, _)| *id)
            .collect();
        for peer in targets {
            // The hash first: without it, the neighbour cannot ask us for the segment.
            self.tell_attestations(&key, peer);
            let keys = vec![key];
            self.send(
                peer,
                Message::Have {
                    load,
                    upload_kbps,
                    partial,
                    keys,
                },
            );
        }
    }

    /// The length of `key` if we can serve any of it: held whole, or arriving with its length
    /// known.
    fn servable(&self, key: &SegmentKey) -> Option<u64> {
        match self.store.get(key) {
            Some(data) => Some(data.len()),
            None => self.scheduler.arriving(key),
        }
    }

    /// The encoded piece of up to `max` bytes of `key` from `offset` (whole chunk groups, or to
    /// the end) and where it ends; `None` while we do not hold verified bytes there yet.
    fn piece_at(&mut self, key: &SegmentKey, offset: u64, max: u64) -> Option<(Bytes, u64)> {
        let hashing = self.hashing.as_ref();
        match self.store.piece_at(key, offset, max, hashing) {
            Some(piece) => Some(piece),
            None if self.store.contains(key) => None,
            None => self.scheduler.piece_at(key, offset, max, hashing),
        }
    }

    /// Offers a lagging peer transfer of `key` the complete holders now known.
    fn upgrade(&mut self, key: &SegmentKey, now: Instant) {
        if !self.scheduler.is_lagging(key, &self.config.scheduler, now) {
            return;
        }
        let holders = self.candidates(key);
        let actions = self.scheduler.upgrade(
            key,
            &holders,
            self.ranker.as_ref(),
            &self.config.scheduler,
            now,
        );
        self.apply(actions, now);
    }

    /// What we know of `peer` now, as the ranker sees it.
    fn measured(&self, peer: &PeerId, now: Instant) -> Option<PeerMeasurements> {
        let p = self.peers.get(peer)?;
        Some(p.measurements(self.requests.in_flight(peer), now))
    }

    /// Linked neighbours that announced `key`, as the scheduler ranks them.
    fn candidates(&self, key: &SegmentKey) -> Vec<Candidate> {
        self.availability
            .holders(key)
            .iter()
            .filter_map(|&(peer, complete)| {
                let p = self.peers.get(&peer).filter(|p| p.is_linked())?;
                Some(Candidate {
                    peer,
                    measurements: p.measurements(self.requests.in_flight(&peer), self.now),
                    complete,
                })
            })
            .collect()
    }

    fn decide(&mut self, key: &SegmentKey, now: Instant) {
        if !self.scheduler.needs_source(key) {
            let actions = self
                .scheduler
                .check_transfer(key, &self.config.scheduler, now);
            self.apply(actions, now);
            if !self.scheduler.needs_source(key) {
                return;
            }
        }
        let holders = self.candidates(key);
        let actions = self.scheduler.decide(
            key,
            &holders,
            self.ranker.as_ref(),
            &self.config.scheduler,
            now,
        );
        self.apply(actions, now);
    }

    fn apply(&mut self, actions: Vec<Action>, now: Instant) {
        for action in actions {
            match action {
                Action::Request {
                    peer,
                    id,
                    key,
                    offset,
                    end,
                    ranked,
                } => {
                    self.requests.start(peer, key, ranked);
                    self.send(
                        peer,
                        Message::Request {
                            id,
                            key,
                            offset,
                            end,
                        },
                    );
                }
                Action::Cancel { peer, key } => {
                    self.requests.end(peer, key);
                    self.send(peer, Message::Cancel { key });
                }
                Action::FetchCdn {
                    id,
                    key,
                    offset,
                    end,
                    why,
                } => {
                    match why {
                        CdnWhy::First => self.stats.cdn_first_fetches += 1,
                        CdnWhy::Deadline => self.stats.cdn_deadline_fetches += 1,
                        CdnWhy::Unannounced => {
                            self.stats.cdn_deadline_fetches += 1;
                            self.raise_budget();
                        }
                        CdnWhy::Fallback => self.stats.cdn_fallback_fetches += 1,
                        CdnWhy::Retry | CdnWhy::Direct | CdnWhy::Split => {}
                    }
                    self.cdn_started.insert(id, now);
                    self.out.push_back(Output::FetchCdn {
                        fetch: id,
                        key,
                        offset,
                        end,
                    });
                }
                Action::Fallback { peer, key, reason } => {
                    self.stats.p2p_fallbacks += 1;
                    self.learn(peer, key, Outcome::Failed);
                    if let Some(p) = self.peers.get_mut(&peer) {
                        p.failed = p.failed.saturating_add(1);
                    }
                    self.out
                        .push_back(Output::Event(Event::Fallback { key, peer, reason }));
                }
            }
        }
    }

    /// Hands the driver more pieces of the active uploads, as far as each connection's send
    /// buffer allows, and starts queued uploads as slots free up.
    fn pump_uploads(&mut self, now: Instant) {
        if self.uploads.load() == 0 && self.turned_away.is_empty() {
            // Nothing to send and nobody waiting to hear so: the common case on every piece.
            return;
        }
        let cfg = self.config.upload.clone();
        let high_water = self.high_water();
        // In a starved neighbourhood a slow uplink opens each transfer with one chunk group:
        // the requester gives up a transfer whose first piece takes longer than its wait (0.7 s
        // for an idle holder), and 64 KiB take 0.65 s at 0.8 Mb/s. Later pieces stay whole:
        // small ones throughout cost a large swarm (DESIGN-NOTES, "Paced uploads").
        let small_first = self.upload_queue() == 0 && self.neighbourhood_starved();
        loop {
            let mut finished = Vec::new();
            for job in self.uploads.active() {
                let mut next = job.next;
                // Sending changes nothing we hold: looked up once per job.
                let source = self.servable(&job.key);
                while let Some(p) = self.peers.get(&job.peer) {
                    if p.buffered >= high_water || p.conn != Conn::Ready {
                        break;
                    }
                    let Some(total) = source else {
                        break;
                    };
                    let stop = job.stop(total);
                    if next >= stop {
                        break;
                    }
                    // Cut-through: a segment still arriving is relayed as its bytes come in.
                    let size = if small_first && next == job.start {
                        GROUP_BYTES
                    } else {
                        cfg.chunk as u64
                    };
                    let max = size.min(stop - next);
                    let Some((piece, end)) = self.piece_at(&job.key, next, max) else {
                        break;
                    };
                    self.send(
                        job.peer,
                        Message::Piece {
                            id: job.id,
                            key: job.key,
                            offset: next,
                            end,
                            total,
                            data: piece,
                        },
                    );
                    self.stats.uploaded_bytes += end - next;
                    next = end;
                }
                self.uploads.advance(&job.peer, &job.key, next);
                if source.is_none() {
                    // We lost the segment (the download was abandoned): let the peer move on.
                    let reason = AbsentReason::NotHeld;
                    self.send(
                        job.peer,
                        Message::Absent {
                            id: job.id,
                            key: job.key,
                            reason,
                        },
                    );
                }
                if source.is_none_or(|total| next >= job.stop(total) && self.tail_left(&job.peer))
                    || !self.peers.contains_key(&job.peer)
                {
                    finished.push((job.peer, job.key));
                }
            }
            let peers = &self.peers;
            let priority = |p: &PeerId| peers.get(p).map_or(0.0, |p| p.upload_bps);
            if !self
                .uploads
                .refill(&finished, priority, self.upload_slots(), &cfg, now)
            {
                break;
            }
        }
        if self.uploads.load() == 0 {
            // Neighbours that were told `Busy` may ask again at once instead of polling.
            let upload_kbps = self.uplink.kbps(now);
            for peer in std::mem::take(&mut self.turned_away) {
                self.send(
                    peer,
                    Message::Have {
                        load: 0,
                        upload_kbps,
                        partial: false,
                        keys: Vec::new(),
                    },
                );
            }
        }
    }

    /// Whether a transfer whose bytes have all been handed to the driver may give up its slot
    /// now. In a starved neighbourhood only once they have left (the send buffer is down to
    /// the low-water mark): the next transfer's first piece would otherwise share the uplink
    /// with the tail and miss its requester's first-byte wait, and a request turned away
    /// meanwhile hears at once when we go idle.
    fn tail_left(&self, peer: &PeerId) -> bool {
        let low_water = self.config.upload.low_water;
        self.peers.get(peer).is_none_or(|p| p.buffered <= low_water)
            || !self.neighbourhood_starved()
    }

    /// Uploads served at once: as many as the uplink can feed at the relay rate
    /// ([`Config::relay_rate_ratio`]) each, so a fast uplink relays a new segment to several
    /// neighbours in parallel while a slow one serves one at a time at its full rate.
    fn upload_slots(&self) -> usize {
        let cfg = &self.config.upload;
        self.uplink_fit()
            .clamp(cfg.slots, cfg.max_slots.max(cfg.slots))
    }

    /// Requests queued behind the slots: none when the uplink cannot even carry the media rate
    /// (a queued request would wait for a whole slow transfer; `Busy` sends it elsewhere).
    fn upload_queue(&self) -> usize {
        let cfg = &self.config.upload;
        if self
            .media_bps
            .is_some_and(|m| self.uplink.estimate_bps(self.now) < m)
        {
            0
        } else {
            cfg.queue
        }
    }

    /// Send-buffer bound per connection: the configured bytes, capped by the configured time
    /// at the measured uplink rate.
    fn high_water(&self) -> u64 {
        let cfg = &self.config.upload;
        // One piece above the low-water mark, or `Drained` could never fire; more only adds
        // bytes that a cancel throws away (on a slow uplink, most of what it sends).
        let floor = cfg.chunk as u64 + cfg.low_water + 1;
        let ceiling = cfg.high_water.max(floor);
        let bps = self.uplink.estimate_bps(self.now);
        if bps <= 0.0 {
            return ceiling;
        }
        let by_time = (bps / 8.0 * cfg.high_water_time.as_secs_f64()) as u64;
        by_time.clamp(floor, ceiling)
    }

    /// How many relay-rate streams the measured uplink carries.
    fn uplink_fit(&self) -> usize {
        let ratio = self.config.relay_rate_ratio(self.sketch.playing_estimate());
        let per_child = self.media_bps.map_or(f64::INFINITY, |m| m * ratio);
        (self.uplink.estimate_bps(self.now) / per_child) as usize
    }

    /// Whether this node's uplink is fast enough to root a segment's spread.
    fn can_seed(&self) -> bool {
        let ratio = self.config.scheduler.seed_uplink_ratio;
        self.media_bps
            .is_some_and(|m| self.uplink.estimate_bps(self.now) >= ratio * m)
    }

    fn out_of_turn(&mut self, peer: PeerId, what: &'static str, now: Instant) {
        self.misbehaved(peer, HandshakeError::OutOfTurn(what).to_string(), now);
    }

    fn misbehaved(&mut self, peer: PeerId, error: String, now: Instant) {
        self.stats.peer_errors += 1;
        self.out
            .push_back(Output::Event(Event::PeerMisbehaved { peer, error }));
        self.out.push_back(Output::Disconnect(peer));
        self.on_peer_gone(peer, false, now);
    }

    fn drain_membership(&mut self) {
        while let Some(out) = self.membership.poll_output() {
            match out {
                MembershipOutput::Send(to, msg) => self.send(to, msg),
                MembershipOutput::NeighbourUp(_) | MembershipOutput::NeighbourDown(_) => {}
                MembershipOutput::Isolated => {
                    self.out.push_back(Output::Event(Event::Isolated));
                    self.out.push_back(Output::NeedBootstrap);
                }
            }
        }
    }

    /// Sends a message, connecting first if needed.
    fn send(&mut self, to: PeerId, msg: Message) {
        if to == self.me || self.banned.contains(&to) {
            return;
        }
        let now = self.now;
        let p = self
            .peers
            .entry(to)
            .or_insert_with(|| Peer::new(Conn::Connecting, now));
        match p.conn {
            Conn::Connecting => {
                if p.queued.is_empty() {
                    self.out.push_back(Output::Connect(to));
                }
                p.queued.push(msg);
            }
            // Only our proof may open what we say on a connection.
            Conn::Open(_) => p.queued.push(msg),
            Conn::Proving(_) | Conn::Ready => self.transmit(to, &msg),
        }
    }

    fn transmit(&mut self, to: PeerId, msg: &Message) {
        let frame = wire::encode(msg);
        // Only segment bytes are paced: control frames are small and never fill the buffer
        // past the low-water mark, so an edge-triggered `Drained` would never account for them.
        if let (Message::Piece { .. }, Some(p)) = (msg, self.peers.get_mut(&to)) {
            p.buffered += frame.len() as u64;
        }
        self.out.push_back(Output::Transmit { to, frame });
    }
}
