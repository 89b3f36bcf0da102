//! The agent: the swarms it plays (one node each), what its manifests listed, and the loader
//! API on top. The HTTP proxy ([`crate::proxy`]) is a thin face over it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use f2f_core::config::{Config, HashSource};
use f2f_core::content::{
    CanonicalConfig, Canonicalizer, ListedSegment, parse_master, parse_media, parse_mpd,
};
use f2f_core::engine::SegmentInfo;
use f2f_core::id::{RenditionId, SegmentKey, SwarmId};
use f2f_core::identity::{Bls, Keypair, PublicKey};
use f2f_core::integrity::SignedHashes;
use f2f_core::time::Instant;
use f2f_http::token::watermark_variant;
use tokio::sync::oneshot;

use crate::capture::Capture;
use crate::cdn::{Cdn, CdnBody, CdnError};
use crate::control::ControlClient;
use crate::loader::{LoadError, LoadEvent, LoadRequest, Segment, Source};
use crate::node::{self, Command, Listing, NodeConfig, NodeError, NodeHandle, NodeStats};
use crate::rejoin::Memory;
use crate::telemetry::Telemetry;
use crate::transport::{ChannelConfig, Endpoint};
use crate::{relay, remote};

/// How long a swarm whose node could not start (tracker down) plays from the CDN before the
/// agent tries again.
const RETRY_START: Duration = Duration::from_secs(10);
/// Segment URLs the agent remembers (a few live windows of several renditions and swarms).
const MAX_SEGMENTS: usize = 8192;
/// The largest signed-hashes file read (a live window is a few KiB).
const MAX_HASHES_LEN: usize = 1 << 20;

/// What an agent is and where it connects.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// The tracker's signalling socket (`ws://host:port/v1/signal`).
    pub tracker: String,
    /// The control plane's HTTP API (`http://host:port`), where certificates come from.
    /// Default: beside the tracker.
    pub control: String,
    /// The address peer connections use (their one ICE host candidate). Tests use 127.0.0.1.
    pub ice_addr: IpAddr,
    /// The engine's configuration. The agent's default trusts hashes attested by 3 peers.
    pub engine: Config,
    /// How stream URLs map to swarms.
    pub canonical: CanonicalConfig,
    /// Timeout of one CDN request.
    pub cdn_timeout: Duration,
    /// The origin's key, when it publishes signed segment hashes (`<manifest>.f2f-hashes`).
    pub origin_key: Option<PublicKey>,
    /// A swarm with no manifest or segment request for this long is left (its live manifests
    /// stop being polled, its node says goodbye to its neighbours).
    pub swarm_idle: Duration,
    /// Record every message sent to peers in this file (see [`crate::capture`]'s format).
    pub capture: Option<std::path::PathBuf>,
    /// The operator's key: with it, the agent follows the control plane's remote
    /// configuration (versions signed by this key) and applies it live.
    pub operator_key: Option<PublicKey>,
}

impl AgentConfig {
    /// An agent with default settings using the tracker at `tracker`, peers on `ice_addr`.
    ///
    /// Hashes are attested by 3 peers: the core's default, the origin's signed hashes, needs
    /// the origin's key ([`Self::trust_origin`]).
    pub fn new(tracker: impl Into<String>, ice_addr: IpAddr) -> Self {
        let engine = Config {
            hashes: HashSource::Attested {
                quorum: 3,
                spot_check: 0.02,
            },
            ..Config::default()
        };
        let tracker = tracker.into();
        Self {
            control: crate::control::api_base(&tracker),
            tracker,
            ice_addr,
            engine,
            canonical: CanonicalConfig::default(),
            cdn_timeout: Duration::from_secs(10),
            origin_key: None,
            swarm_idle: Duration::from_secs(20),
            capture: None,
            operator_key: None,
        }
    }

    /// Checks peers' bytes against the origin's signed hashes (signed by `key`) instead of
    /// peer attestations: no trust in peers at all, and no quorum of CDN downloads to gather,
    /// so one first fetcher per segment instead of the core's 3 (with attestations, the
    /// quorum's signers must each have fetched from the CDN). In the swarms of a few viewers
    /// one origin's agents form here, 3 would be half the audience (6 agents, 60 s: 60.8 %
    /// offload with 2, 67.0 % with 1); the engine raises its own budget when deadlines force
    /// CDN fetches.
    pub fn trust_origin(&mut self, key: PublicKey) {
        self.origin_key = Some(key);
        self.engine.hashes = HashSource::Signed;
        self.engine.scheduler.cdn_budget = 1.0;
    }
}

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The engine configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A socket could not be bound.
    #[error("bind: {0}")]
    Bind(#[from] std::io::Error),
}

/// A manifest fetched through the agent.
#[derive(Clone, Debug)]
pub struct Manifest {
    /// The CDN's bytes, unchanged.
    pub body: Bytes,
    /// What it is.
    pub kind: ManifestKind,
    /// The swarm it belongs to.
    pub swarm: SwarmId,
}

/// Kinds of manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ManifestKind {
    /// An HLS multivariant (master) playlist.
    HlsMaster,
    /// An HLS media playlist.
    HlsMedia,
    /// A DASH MPD.
    Dash,
}

impl ManifestKind {
    /// Its MIME type.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::HlsMaster | Self::HlsMedia => "application/vnd.apple.mpegurl",
            Self::Dash => "application/dash+xml",
        }
    }

    /// What `body` is, if a manifest.
    pub fn sniff(body: &[u8]) -> Option<Self> {
        let head = String::from_utf8_lossy(&body[..body.len().min(4096)]);
        let head = head.trim_start_matches('\u{feff}').trim_start();
        if head.starts_with("#EXTM3U") {
            let master = body.windows(18).any(|w| w == b"#EXT-X-STREAM-INF:");
            Some(if master {
                Self::HlsMaster
            } else {
                Self::HlsMedia
            })
        } else if head.contains("<MPD") {
            Some(Self::Dash)
        } else {
            None
        }
    }
}

enum SwarmState {
    Running(NodeHandle),
    /// Start failed at this time: CDN only until [`RETRY_START`] passed.
    Failed(Instant),
}

struct Known {
    swarm: SwarmId,
    key: SegmentKey,
    duration: Duration,
    shareable: bool,
    /// When the CDN completes it, at the latest (listed ahead of availability: see DASH).
    available: Instant,
}

#[derive(Default)]
struct Index {
    /// Segment URL (as listed, tokens and all) → what it is.
    segments: HashMap<String, Known>,
    order: VecDeque<String>,
    /// Canonical media playlist URL → the swarm of the master that listed it.
    playlists: HashMap<String, SwarmId>,
    /// Canonical segment URL → its key (matching signed hashes to segments).
    keys: HashMap<String, SegmentKey>,
    /// Renditions whose edge picks the watermark variant from the token (their signed hashes
    /// list a variant per URL): keys carry the viewer's variant from its pattern.
    token_variants: HashSet<RenditionId>,
}

pub(crate) struct Shared {
    config: AgentConfig,
    /// The engine configuration in force: the agent's own with the remote settings on top.
    engine: Mutex<Arc<Config>>,
    /// The remote configuration version in force (0: none), and versions refused.
    config_version: AtomicU64,
    configs_refused: AtomicU64,
    /// The newest revocation list pushed, handed to nodes that start later too.
    revocations: Mutex<Option<Arc<f2f_core::identity::RevocationList>>>,
    canon: Canonicalizer,
    keypair: Keypair,
    cdn: Cdn,
    swarms: tokio::sync::Mutex<HashMap<SwarmId, SwarmState>>,
    index: Mutex<Index>,
    loads: LoadCounters,
    /// Live manifests being polled (canonical URL → swarm).
    polls: Mutex<HashMap<String, SwarmId>>,
    /// When each swarm last had a manifest or segment request.
    used: Mutex<HashMap<SwarmId, Instant>>,
    /// Certificates and members' contacts of the swarms joined, to come back without the
    /// tracker.
    memory: Memory,
    /// This agent's signalling contact, once served ([`Agent::serve_contact`]).
    contact: OnceLock<String>,
    control: ControlClient,
    telemetry: Telemetry,
    capture: Option<Capture>,
}

/// One segment the loader returned: the delivery-verification record (the URL without the
/// viewer's tokens).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeliveryRecord {
    /// The segment's canonical URL: host, path and content query, without scheme, tokens or
    /// session parts.
    pub url: String,
    /// Its length.
    pub bytes: u64,
    /// BLAKE3 of the bytes returned, hex.
    pub blake3: String,
    /// Bytes that came from peers.
    pub p2p_bytes: u64,
}

/// Delivery records kept (the most recent).
const MAX_DELIVERIES: usize = 4096;

/// What the loader served, as the player saw it.
#[derive(Default)]
struct LoadCounters {
    segments: AtomicU64,
    failed: AtomicU64,
    late: AtomicU64,
    /// Late loads per swarm (the health channel's rebuffer count).
    late_by_swarm: Mutex<HashMap<SwarmId, u64>>,
    bytes: AtomicU64,
    p2p_bytes: AtomicU64,
    deliveries: Mutex<VecDeque<DeliveryRecord>>,
}

/// A running agent (the HTTP proxy is started separately, see [`crate::proxy::Proxy`]).
#[derive(Clone)]
pub struct Agent {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("id", &self.shared.keypair.peer_id())
            .finish_non_exhaustive()
    }
}

/// The agent's counters.
#[derive(Clone, Debug, Default)]
pub struct AgentStats {
    /// Per swarm.
    pub swarms: Vec<NodeStats>,
    /// Segments loaded (player requests and loader calls).
    pub segments: u64,
    /// Loads that failed.
    pub failed: u64,
    /// Loads that took longer than the segment's duration: a player without a buffer would
    /// have stalled.
    pub late: u64,
    /// Segment bytes returned.
    pub bytes: u64,
    /// ... of which came from peers.
    pub served_p2p_bytes: u64,
    /// The remote configuration version in force (0: none).
    pub config_version: u64,
    /// Remote configuration versions refused (bad signature or settings).
    pub configs_refused: u64,
}

impl AgentStats {
    /// Share of the segment bytes returned that came from peers.
    pub fn offload(&self) -> f64 {
        if self.bytes == 0 {
            0.0
        } else {
            self.served_p2p_bytes as f64 / self.bytes as f64
        }
    }

    /// Bytes delivered to the player from peers, over all swarms.
    pub fn p2p_bytes(&self) -> u64 {
        self.swarms.iter().map(|s| s.engine.p2p_bytes).sum()
    }

    /// Bytes delivered to the player from the CDN (through the engine).
    pub fn cdn_bytes(&self) -> u64 {
        self.swarms.iter().map(|s| s.engine.cdn_bytes).sum()
    }

    /// Bytes uploaded to peers.
    pub fn uploaded_bytes(&self) -> u64 {
        self.swarms.iter().map(|s| s.engine.uploaded_bytes).sum()
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

impl Agent {
    /// An agent with node key `keypair`.
    ///
    /// # Errors
    ///
    /// An invalid engine or canonicalisation config.
    pub fn new(config: AgentConfig, keypair: Keypair) -> Result<Self, AgentError> {
        config
            .engine
            .validate()
            .map_err(|e| AgentError::Config(e.to_string()))?;
        let canon = Canonicalizer::new(config.canonical.clone())
            .map_err(|e| AgentError::Config(e.to_string()))?;
        let capture = config.capture.as_deref().map(Capture::create).transpose()?;
        let control = ControlClient::new(config.control.clone());
        Ok(Self {
            shared: Arc::new(Shared {
                engine: Mutex::new(Arc::new(config.engine.clone())),
                config_version: AtomicU64::new(0),
                configs_refused: AtomicU64::new(0),
                revocations: Mutex::new(None),
                cdn: Cdn::new(config.cdn_timeout),
                canon,
                keypair,
                config,
                swarms: tokio::sync::Mutex::new(HashMap::new()),
                index: Mutex::new(Index::default()),
                loads: LoadCounters::default(),
                polls: Mutex::new(HashMap::new()),
                used: Mutex::new(HashMap::new()),
                memory: Memory::default(),
                contact: OnceLock::new(),
                control,
                telemetry: Telemetry::default(),
                capture,
            }),
        })
    }

    /// The agent's node id.
    pub fn id(&self) -> f2f_core::id::PeerId {
        self.shared.keypair.peer_id()
    }

    /// Counters of every swarm the agent plays.
    pub async fn stats(&self) -> AgentStats {
        let swarms = self.shared.swarms.lock().await;
        let loads = &self.shared.loads;
        AgentStats {
            swarms: (swarms.values())
                .filter_map(|s| match s {
                    SwarmState::Running(node) => Some(node.stats()),
                    SwarmState::Failed(_) => None,
                })
                .collect(),
            segments: loads.segments.load(Ordering::Relaxed),
            failed: loads.failed.load(Ordering::Relaxed),
            late: loads.late.load(Ordering::Relaxed),
            bytes: loads.bytes.load(Ordering::Relaxed),
            served_p2p_bytes: loads.p2p_bytes.load(Ordering::Relaxed),
            config_version: self.config_version(),
            configs_refused: self.shared.configs_refused.load(Ordering::Relaxed),
        }
    }

    /// The most recent segments the loader returned, oldest first.
    pub fn deliveries(&self) -> Vec<DeliveryRecord> {
        let log = self.shared.loads.deliveries.lock();
        log.unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// The engine configuration in force.
    fn engine(&self) -> Arc<Config> {
        self.shared
            .engine
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The remote configuration version in force (0: none yet).
    pub fn config_version(&self) -> u64 {
        self.shared.config_version.load(Ordering::Relaxed)
    }

    /// Applies a remote configuration version the operator signed, if it is newer than the
    /// one in force and the engine accepts it on top of the agent's own configuration; the
    /// last good one stays otherwise.
    pub(crate) fn apply_config(&self, remote: &f2f_control::config::RemoteConfig) {
        if remote.version <= self.config_version() {
            return;
        }
        let config = match remote.apply_to(&self.shared.config.engine) {
            Ok(config) => Arc::new(config),
            Err(e) => return self.config_refused(&e.to_string()),
        };
        *self.shared.engine.lock().unwrap_or_else(|e| e.into_inner()) = config.clone();
        self.shared
            .config_version
            .store(remote.version, Ordering::Relaxed);
        tracing::info!("remote config version {} in force", remote.version);
        let agent = self.clone();
        tokio::spawn(async move {
            let swarms = agent.shared.swarms.lock().await;
            for state in swarms.values() {
                if let SwarmState::Running(node) = state {
                    let _ = node.commands.send(Command::Config(config.clone())).await;
                }
            }
        });
    }

    /// Hands a revocation list to every node (their engines check the authority's
    /// signature and spread it to their neighbours), and to nodes started later.
    pub(crate) fn apply_revocations(&self, list: f2f_core::identity::RevocationList) {
        let list = Arc::new(list);
        *self
            .shared
            .revocations
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(list.clone());
        let agent = self.clone();
        tokio::spawn(async move {
            let swarms = agent.shared.swarms.lock().await;
            for state in swarms.values() {
                if let SwarmState::Running(node) = state {
                    let _ = node.commands.send(Command::Revocations(list.clone())).await;
                }
            }
        });
    }

    pub(crate) fn config_refused(&self, why: &str) {
        tracing::warn!("remote config refused, the last good one stays: {why}");
        self.shared.configs_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Follows the control plane's remote configuration (needs [`AgentConfig::operator_key`]);
    /// runs until the agent is dropped.
    pub fn follow_config(&self) {
        if let Some(operator) = self.shared.config.operator_key {
            let api = self.shared.config.control.clone();
            tokio::spawn(remote::follow(self.clone(), api, operator));
        }
    }

    /// Serves this agent's signalling contact on `addr` and advertises it to the tracker from
    /// the next join on: members that come back while the tracker is away reconnect through
    /// it. The contact runs until the returned server is dropped.
    ///
    /// # Errors
    ///
    /// The address cannot be bound.
    pub async fn serve_contact(&self, addr: SocketAddr) -> std::io::Result<f2f_http::Server> {
        let server =
            f2f_http::Server::start(addr, "signalling contact", |_| relay::router(self.clone()))
                .await?;
        let _ = self
            .shared
            .contact
            .set(format!("ws://{}/v1/signal", server.addr));
        Ok(server)
    }

    /// The running node of `swarm`, without starting one.
    pub(crate) async fn running(&self, swarm: SwarmId) -> Option<NodeHandle> {
        match self.shared.swarms.lock().await.get(&swarm) {
            Some(SwarmState::Running(node)) if !node.commands.is_closed() => Some(node.clone()),
            _ => None,
        }
    }

    /// Leaves `swarm` if nothing asked for it for [`AgentConfig::swarm_idle`].
    async fn leave_if_idle(&self, swarm: SwarmId) {
        if !self.idle(swarm) {
            return;
        }
        let mut swarms = self.shared.swarms.lock().await;
        if let Some(SwarmState::Running(node)) = swarms.remove(&swarm) {
            tracing::info!("swarm {swarm} idle: leaving");
            let _ = node.commands.send(Command::Leave).await;
        }
    }

    fn idle(&self, swarm: SwarmId) -> bool {
        let used = self.shared.used.lock().unwrap_or_else(|e| e.into_inner());
        let limit = self.shared.config.swarm_idle;
        used.get(&swarm).is_none_or(|at| at.elapsed() > limit)
    }

    /// Reports telemetry to the control plane every `interval` (billing, receipts, health,
    /// debug events), until the agent is dropped.
    pub fn report_telemetry(&self, interval: Duration) {
        let agent = self.clone();
        tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default();
            let mut tick = tokio::time::interval(interval);
            loop {
                tick.tick().await;
                agent.report(&http).await;
            }
        });
    }

    /// Samples every swarm's counters and sends what is buffered now; true when the control
    /// plane took it.
    pub async fn flush_telemetry(&self) -> bool {
        self.report(&reqwest::Client::new()).await
    }

    async fn report(&self, http: &reqwest::Client) -> bool {
        let late = {
            let late = self.shared.loads.late_by_swarm.lock();
            late.unwrap_or_else(|e| e.into_inner()).clone()
        };
        let nodes: Vec<(SwarmId, NodeStats, u64)> = {
            let swarms = self.shared.swarms.lock().await;
            (swarms.iter())
                .filter_map(|(swarm, s)| match s {
                    SwarmState::Running(node) => {
                        let late = late.get(swarm).copied().unwrap_or(0);
                        Some((*swarm, node.stats(), late))
                    }
                    SwarmState::Failed(_) => None,
                })
                .collect()
        };
        let stream = |swarm| {
            let url = self.shared.memory.stream(swarm).unwrap_or_default();
            (self.shared.canon.canonical_url(&url)).unwrap_or(url)
        };
        let telemetry = &self.shared.telemetry;
        telemetry.sample(&nodes, stream, crate::telemetry::now());
        let api = &self.shared.config.control;
        telemetry
            .send(http, api, (self.id(), self.config_version()))
            .await
    }

    /// Leaves every swarm politely.
    pub async fn shutdown(&self) {
        let mut swarms = self.shared.swarms.lock().await;
        for (_, state) in swarms.drain() {
            if let SwarmState::Running(node) = state {
                let _ = node.commands.send(Command::Leave).await;
            }
        }
    }

    /// Fetches a manifest from the CDN and tells the swarm's node what it lists.
    ///
    /// # Errors
    ///
    /// Not an http(s) URL, or the CDN failed.
    pub async fn manifest(&self, url: &str) -> Result<Manifest, LoadError> {
        let manifest = self.refresh(url).await?;
        self.touch(manifest.0.swarm);
        if let Some(period) = manifest.1 {
            self.poll(url, manifest.0.swarm, period);
        }
        Ok(manifest.0)
    }

    /// Keeps a live manifest listed while its swarm is played: players that compute segment
    /// URLs themselves (ffmpeg's DASH reader never refetches a template MPD) would otherwise
    /// leave the engine blind to new segments, and first fetchers should hear of a segment
    /// as soon as the CDN lists it, not when some player next refreshes.
    fn poll(&self, url: &str, swarm: SwarmId, period: Duration) {
        let Ok(canonical) = self.shared.canon.canonical_url(url) else {
            return;
        };
        let mut polls = self.shared.polls.lock().unwrap_or_else(|e| e.into_inner());
        if polls.insert(canonical.clone(), swarm).is_some() {
            return;
        }
        let (agent, url) = (self.clone(), url.to_owned());
        let period = period.clamp(Duration::from_millis(500), Duration::from_secs(10));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                if agent.idle(swarm) {
                    agent.leave_if_idle(swarm).await;
                    break;
                }
                if agent.refresh(&url).await.is_err() {
                    break;
                }
            }
            let mut polls = agent.shared.polls.lock().unwrap_or_else(|e| e.into_inner());
            polls.remove(&canonical);
        });
    }

    /// Fetches and lists a manifest; its refresh period if it is live.
    async fn refresh(&self, url: &str) -> Result<(Manifest, Option<Duration>), LoadError> {
        let canonical = self
            .shared
            .canon
            .canonical_url(url)
            .map_err(|_| LoadError::BadUrl)?;
        let body = self.shared.cdn.get(url, 0, None).await?;
        let Some(kind) = ManifestKind::sniff(&body.bytes) else {
            return Err(LoadError::Cdn(CdnError::Status(415)));
        };
        let swarm = {
            let index = self.shared.index.lock().unwrap_or_else(|e| e.into_inner());
            index.playlists.get(&canonical).copied()
        };
        let swarm = match swarm {
            Some(swarm) => swarm,
            None => {
                let swarm = (self.shared.canon.swarm_id(url)).map_err(|_| LoadError::BadUrl)?;
                // The control plane certifies for this URL's swarm, given the viewer's token.
                self.shared.memory.defined_by(swarm, url);
                swarm
            }
        };
        let text = String::from_utf8_lossy(&body.bytes);
        let (listings, period) = self.listings(kind, url, &text, swarm);
        if !listings.is_empty() {
            if let Some(node) = self.node(swarm).await {
                let _ = node.commands.send(Command::Listed(listings)).await;
                if let Some(origin) = self.shared.config.origin_key {
                    let agent = self.clone();
                    let url = url.to_owned();
                    tokio::spawn(async move { agent.fetch_hashes(&url, origin, &node).await });
                }
            }
        }
        let manifest = Manifest {
            body: body.bytes,
            kind,
            swarm,
        };
        Ok((manifest, period))
    }

    /// Notes that `swarm` is being played.
    fn touch(&self, swarm: SwarmId) {
        let mut used = self.shared.used.lock().unwrap_or_else(|e| e.into_inner());
        used.insert(swarm, Instant::now());
    }

    /// What a manifest lists, registered in the index (media playlists of a master are
    /// remembered as part of its swarm), and how often a live one changes.
    fn listings(
        &self,
        kind: ManifestKind,
        url: &str,
        text: &str,
        swarm: SwarmId,
    ) -> (Vec<Listing>, Option<Duration>) {
        let canon = &self.shared.canon;
        let pattern = self.shared.memory.watermark(swarm);
        let mut out = Vec::new();
        let listed_at = Instant::now();
        let mut add = |rendition: RenditionId,
                       segments: Vec<ListedSegment>,
                       available_now: Option<&HashSet<String>>,
                       ahead: Duration,
                       index: &mut Index| {
            for s in segments {
                // Token-picked variants: the viewer's own, from its pattern; without one the
                // variant is unknown and the segment is not shared.
                let by_token = index.token_variants.contains(&rendition);
                let watermark = (pattern.filter(|_| by_token))
                    .map(|p| watermark_variant(&p, s.position.value()));
                let shareable = s.shareable && (watermark.is_some() || !by_token);
                let Ok(key) = canon.segment_key(swarm, rendition, s.position, &s.uri, watermark)
                else {
                    continue;
                };
                let duration = Duration::from_secs_f32(s.duration_secs.max(0.0));
                let mut available = match available_now {
                    Some(now) if !now.contains(&s.uri) => listed_at + ahead,
                    _ => listed_at,
                };
                if let Some(before) = index.segments.get(&s.uri) {
                    available = available.min(before.available);
                }
                let known = Known {
                    swarm,
                    key,
                    duration,
                    shareable,
                    available,
                };
                if index.segments.insert(s.uri.clone(), known).is_none() {
                    index.order.push_back(s.uri.clone());
                    if let Ok(c) = canon.canonical_url(&s.uri) {
                        index.keys.insert(c, key);
                    }
                }
                if s.shareable {
                    out.push(Listing {
                        info: SegmentInfo {
                            key,
                            size_hint: None,
                            duration,
                            shareable: true,
                        },
                        url: s.uri,
                        available,
                    });
                }
            }
        };
        let mut index = self.shared.index.lock().unwrap_or_else(|e| e.into_inner());
        let mut period = None;
        match kind {
            ManifestKind::HlsMaster => {
                for rendition in parse_master(url, text.as_bytes()).unwrap_or_default() {
                    if let Ok(c) = canon.canonical_url(&rendition.uri) {
                        index.playlists.insert(c, swarm);
                    }
                }
            }
            ManifestKind::HlsMedia => {
                if let (Ok(playlist), Ok(rendition)) =
                    (parse_media(url, text.as_bytes()), canon.rendition_id(url))
                {
                    // RFC 8216: reload no sooner than half the target duration after a change.
                    let target = Duration::from_secs(playlist.target_duration.max(1));
                    period = (!playlist.ended).then_some(target / 2);
                    add(
                        rendition,
                        playlist.segments,
                        None,
                        Duration::ZERO,
                        &mut index,
                    );
                }
            }
            ManifestKind::Dash => {
                // Players that place the live edge by the clock (ffmpeg's DASH reader) ask for
                // the segment in progress; listing one update period ahead sends those
                // requests through the swarm too (the origin answers them when complete).
                let now = unix_ms();
                let (ahead, available_now) = match parse_mpd(url, text, now) {
                    Ok(mpd) if mpd.dynamic => {
                        let uris = (mpd.representations.iter())
                            .flat_map(|r| r.segments.iter().map(|s| s.uri.clone()))
                            .collect::<HashSet<_>>();
                        (mpd.minimum_update_period_ms.unwrap_or(2000), uris)
                    }
                    _ => (0, HashSet::new()),
                };
                period = (ahead > 0).then(|| Duration::from_millis(ahead) / 2);
                let ahead = Duration::from_millis(ahead);
                let available_now = (!ahead.is_zero()).then_some(&available_now);
                if let Ok(mpd) = parse_mpd(url, text, now + ahead.as_millis() as u64) {
                    for r in mpd.representations {
                        if let Ok(rendition) = canon.rendition_id(&r.rendition_url) {
                            add(rendition, r.segments, available_now, ahead, &mut index);
                        }
                    }
                }
            }
        }
        while index.order.len() > MAX_SEGMENTS {
            if let Some(old) = index.order.pop_front() {
                index.segments.remove(&old);
                if let Ok(c) = canon.canonical_url(&old) {
                    index.keys.remove(&c);
                }
            }
        }
        (out, period)
    }

    /// Fetches the origin's signed hashes published next to `manifest_url`, checks the
    /// signature, and gives the node the hashes of the segments the agent listed.
    async fn fetch_hashes(&self, manifest_url: &str, origin: PublicKey, node: &NodeHandle) {
        let Ok(mut url) = url::Url::parse(manifest_url) else {
            return;
        };
        url.set_path(&format!("{}.f2f-hashes", url.path()));
        let body = match self.shared.cdn.get(url.as_str(), 0, None).await {
            Ok(body) => body,
            Err(e) => {
                tracing::debug!("no signed hashes: {e}");
                return;
            }
        };
        let text = String::from_utf8_lossy(&body.bytes);
        let parsed = SignedHashes::parse(&text, MAX_HASHES_LEN)
            .and_then(|h| h.verify(&Bls::new(), &origin).map(|()| h));
        let hashes = match parsed {
            Ok(hashes) => hashes,
            Err(e) => {
                tracing::warn!("signed hashes refused: {e}");
                return;
            }
        };
        let pattern = self.shared.memory.watermark(node.swarm);
        let canon = &self.shared.canon;
        let known = {
            let mut index = self.shared.index.lock().unwrap_or_else(|e| e.into_inner());
            (hashes.entries.iter())
                .filter_map(|e| {
                    let absolute = url.join(&e.uri).ok()?;
                    let canonical = canon.canonical_url(absolute.as_str()).ok()?;
                    let key = *index.keys.get(&canonical)?;
                    let Some(variant) = &e.variant else {
                        return Some((key, e.hash, e.size));
                    };
                    // The edge picks this one by token: only the viewer's own variant's hash,
                    // for a key listed with it (listings after this one are).
                    index.token_variants.insert(key.rendition);
                    let own = watermark_variant(&pattern?, key.position.value());
                    let ours = canon.segment_key(
                        key.swarm,
                        key.rendition,
                        key.position,
                        absolute.as_str(),
                        Some(own),
                    );
                    (variant.as_bytes() == [own] && ours.ok()? == key)
                        .then_some((key, e.hash, e.size))
                })
                .collect::<Vec<_>>()
        };
        if !known.is_empty() {
            let _ = node.commands.send(Command::Hashes(known)).await;
        }
    }

    /// The running node of `swarm`, starting it if needed; `None` while it cannot start.
    async fn node(&self, swarm: SwarmId) -> Option<NodeHandle> {
        let mut swarms = self.shared.swarms.lock().await;
        match swarms.get(&swarm) {
            Some(SwarmState::Running(node)) if !node.commands.is_closed() => {
                return Some(node.clone());
            }
            Some(SwarmState::Failed(at)) if at.elapsed() < RETRY_START => return None,
            _ => {}
        }
        let started = self.start_node(swarm).await;
        match started {
            Ok(node) => {
                let list = {
                    let revocations = self.shared.revocations.lock();
                    revocations.unwrap_or_else(|e| e.into_inner()).clone()
                };
                if let Some(list) = list {
                    let _ = node.commands.try_send(Command::Revocations(list));
                }
                swarms.insert(swarm, SwarmState::Running(node.clone()));
                Some(node)
            }
            Err(e) => {
                tracing::warn!("swarm {swarm}: playing from the CDN only: {e}");
                swarms.insert(swarm, SwarmState::Failed(Instant::now()));
                None
            }
        }
    }

    async fn start_node(&self, swarm: SwarmId) -> Result<NodeHandle, node::StartError> {
        let shared = &self.shared;
        let channel = ChannelConfig {
            low_water: self.engine().upload.low_water as usize,
            ..ChannelConfig::default()
        };
        let endpoint = Endpoint::bind(SocketAddr::new(shared.config.ice_addr, 0), channel)?;
        let config = NodeConfig {
            tracker: shared.config.tracker.clone(),
            engine: self.engine(),
            contact: shared.contact.get().cloned(),
            memory: shared.memory.clone(),
            capture: shared.capture.clone(),
            control: shared.control.clone(),
            telemetry: shared.telemetry.clone(),
        };
        let start = node::start(
            swarm,
            shared.keypair.clone(),
            endpoint,
            config,
            shared.cdn.clone(),
        );
        match tokio::time::timeout(Duration::from_secs(5), start).await {
            Ok(result) => result,
            Err(_) => Err(node::StartError::Tracker(
                crate::signalling::SignalError::Closed,
            )),
        }
    }

    /// Loads one segment: from the swarm when the agent listed it and the engine runs, from
    /// the CDN otherwise (and for `Source::CdnOnly`), within the request's deadline.
    ///
    /// # Errors
    ///
    /// Not an http(s) URL, every source failed, or the deadline passed.
    pub async fn load_segment(&self, request: LoadRequest) -> Result<Segment, LoadError> {
        let started = Instant::now();
        let canonical = self.shared.canon.canonical_url(&request.url).ok();
        let swarm = self.known(&request.url).map(|(swarm, ..)| swarm);
        let (result, duration) = self.load(request).await;
        let loads = &self.shared.loads;
        match &result {
            Ok(segment) => {
                if let Some(url) = canonical {
                    let mut log = loads.deliveries.lock().unwrap_or_else(|e| e.into_inner());
                    log.push_back(DeliveryRecord {
                        url,
                        bytes: segment.bytes.len() as u64,
                        blake3: blake3::hash(&segment.bytes).to_hex().to_string(),
                        p2p_bytes: segment.p2p_bytes,
                    });
                    while log.len() > MAX_DELIVERIES {
                        log.pop_front();
                    }
                }
                loads.segments.fetch_add(1, Ordering::Relaxed);
                loads
                    .bytes
                    .fetch_add(segment.bytes.len() as u64, Ordering::Relaxed);
                loads
                    .p2p_bytes
                    .fetch_add(segment.p2p_bytes, Ordering::Relaxed);
                if duration.is_some_and(|d| started.elapsed() > d) {
                    loads.late.fetch_add(1, Ordering::Relaxed);
                    if let Some(swarm) = swarm {
                        let mut late = loads.late_by_swarm.lock();
                        *late
                            .as_mut()
                            .unwrap_or_else(|e| e.get_mut())
                            .entry(swarm)
                            .or_default() += 1;
                    }
                }
            }
            Err(_) => {
                loads.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
        result
    }

    /// A shareable segment the agent saw listed: its swarm, key, and when it is needed from
    /// now (a segment still in progress at the CDN is needed a duration after it completes,
    /// not after the request).
    fn known(&self, url: &str) -> Option<(SwarmId, SegmentKey, Duration)> {
        let index = self.shared.index.lock().unwrap_or_else(|e| e.into_inner());
        (index.segments.get(url)).filter(|k| k.shareable).map(|k| {
            let wait = k.available.saturating_duration_since(Instant::now());
            (k.swarm, k.key, k.duration + wait)
        })
    }

    /// Hints that the player will want `url` soon: its swarm loads it now, by the time it is
    /// needed, and a later request is answered from the node's store. False when the agent
    /// has not seen it listed as shareable or its swarm has no node.
    pub async fn prefetch(&self, url: &str) -> bool {
        let Some((swarm, key, duration)) = self.known(url) else {
            return false;
        };
        let Some(node) = self.node(swarm).await else {
            return false;
        };
        self.touch(swarm);
        // Nobody waits on the answer; the engine keeps what it delivers.
        let (reply, _) = oneshot::channel();
        let load = Command::Load {
            key,
            deadline: Instant::now() + duration,
            reply,
            events: None,
            prefer_peers: false,
        };
        node.commands.send(load).await.is_ok()
    }

    /// The load, and the segment's duration if the agent knows it.
    async fn load(&self, request: LoadRequest) -> (Result<Segment, LoadError>, Option<Duration>) {
        let known = self.known(&request.url);
        let duration = known.map(|(_, _, d)| d);
        if let Some((swarm, _, _)) = known {
            self.touch(swarm);
        }
        let from_swarm = match request.source {
            Source::Auto => Some(false),
            Source::P2pPreferred => Some(true),
            Source::CdnOnly => None,
        };
        if let (Some((swarm, key, duration)), Some(prefer_peers)) = (known, from_swarm) {
            if let Some(node) = self.node(swarm).await {
                let deadline = request.deadline.unwrap_or(duration);
                request.report(LoadEvent::Swarm);
                let events = request.events.clone();
                let load = self.load_from_swarm(&node, key, deadline, events, prefer_peers);
                match load.await {
                    Ok(segment) => return (Ok(segment), Some(duration)),
                    Err(e) => tracing::debug!("swarm could not deliver {key}: {e}; trying the CDN"),
                }
            }
        }
        let result = self.load_from_cdn(&request).await.map(|body| Segment {
            p2p_bytes: 0,
            cdn_bytes: body.bytes.len() as u64,
            bytes: body.bytes,
            content_type: body.content_type,
        });
        (result, duration)
    }

    async fn load_from_swarm(
        &self,
        node: &NodeHandle,
        key: SegmentKey,
        deadline: Duration,
        events: Option<tokio::sync::mpsc::UnboundedSender<LoadEvent>>,
        prefer_peers: bool,
    ) -> Result<Segment, NodeError> {
        let (reply, answer) = oneshot::channel();
        let load = Command::Load {
            key,
            deadline: Instant::now() + deadline,
            reply,
            events,
            prefer_peers,
        };
        node.commands
            .send(load)
            .await
            .map_err(|_| NodeError::Stopped)?;
        // Cancelled when the caller drops this future: the guard tells the node.
        struct CancelOnDrop<'a>(&'a NodeHandle, SegmentKey, bool);
        impl Drop for CancelOnDrop<'_> {
            fn drop(&mut self) {
                if !self.2 {
                    let _ = self.0.commands.try_send(Command::Cancel(self.1));
                }
            }
        }
        let mut guard = CancelOnDrop(node, key, false);
        // The engine falls back to the CDN itself before the deadline; this bound only
        // catches a node that stopped answering.
        let waited = tokio::time::timeout(deadline + Duration::from_secs(10), answer).await;
        guard.2 = true;
        let delivered = match waited {
            Ok(Ok(result)) => result?,
            Ok(Err(_)) => return Err(NodeError::Stopped),
            Err(_) => {
                guard.2 = false;
                return Err(NodeError::Failed);
            }
        };
        Ok(Segment {
            bytes: delivered.data,
            p2p_bytes: delivered.sources.p2p,
            cdn_bytes: delivered.sources.cdn,
            content_type: None,
        })
    }

    /// The CDN, with the request's retry policy: the original URL, then each alternate host.
    async fn load_from_cdn(&self, request: &LoadRequest) -> Result<CdnBody, LoadError> {
        let url = url::Url::parse(&request.url).map_err(|_| LoadError::BadUrl)?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(LoadError::BadUrl);
        }
        let mut urls = vec![request.url.clone()];
        for host in &request.retry.alternate_hosts {
            let mut alt = url.clone();
            let (name, port) = match host.rsplit_once(':') {
                Some((h, p)) => (h, p.parse::<u16>().ok()),
                None => (host.as_str(), None),
            };
            if alt.set_host(Some(name)).is_ok() && alt.set_port(port.or(url.port())).is_ok() {
                urls.push(alt.into());
            }
        }
        let mut last = CdnError::Timeout;
        let mut backoff = request.retry.backoff;
        for attempt in 0..request.retry.attempts.max(1) {
            if attempt > 0 {
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
            let target = &urls[attempt as usize % urls.len()];
            request.report(LoadEvent::CdnAttempt(attempt));
            match self.shared.cdn.get(target, 0, None).await {
                Ok(body) => return Ok(body),
                // A client error will not change on retry.
                Err(CdnError::Status(s)) if (400..500).contains(&s) && s != 408 && s != 429 => {
                    return Err(CdnError::Status(s).into());
                }
                Err(e) => last = e,
            }
        }
        Err(last.into())
    }
}
