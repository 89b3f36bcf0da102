//! One swarm's event loop: the engine of `f2f-core`, its peer connections on the agent's UDP
//! endpoint, its tracker socket, and its CDN fetches, all driven from one task. The loop feeds
//! the engine every input with the current time, then carries out every output; nothing in
//! the engine waits on I/O.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use f2f_control::protocol::{
    Contact, FromTracker, MAX_SDP_LEN, Signal, ToTracker, joined_certificate, welcome,
};
use f2f_core::config::Config;
use f2f_core::engine::{CdnError as EngineCdnError, Engine, Input, Output, SegmentInfo};
use f2f_core::id::{PeerId, SegmentKey, SwarmId};
use f2f_core::identity::{
    Bls, CertificateVerifier, ChannelBinding, Crypto, Fingerprint, Identity, Keypair, PublicKey,
    Revocations, Signature, UnixTime, verify_possession,
};
use f2f_core::integrity::SegmentHash;
use f2f_core::membership::NetGroup;
use f2f_core::scheduler::ByteSources;
use f2f_core::scheduler::FetchId;
use f2f_core::telemetry::{Event, Stats};
use f2f_core::time::Instant;
use f2f_core::wire::Frame;
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use tokio::sync::{mpsc, oneshot};

use crate::capture::Capture;
use crate::cdn::{Cdn, CdnError};
use crate::control::{ControlClient, ControlError, Granted};
use crate::loader::LoadEvent;
use crate::rejoin::{self, Entry, Joining, Memory};
use crate::signalling::{SignalError, TrackerLink};
use crate::telemetry::Telemetry;
use crate::transport::{ConnId, Endpoint, TransportError, TransportEvent};

/// A connection attempt that has not opened by then is given up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the loop checks attempts, and retries a lost tracker.
const TICK: Duration = Duration::from_secs(1);
/// Wait between attempts to reach a lost tracker.
const TRACKER_RETRY: Duration = Duration::from_secs(5);
/// An offer sent through the overlay that has no answer by then is sent again through the
/// tracker, if it is up (the addressee may be more than the overlay's hop budget away).
const OVERLAY_PATIENCE: Duration = Duration::from_secs(3);
/// Wait before a failed certificate renewal is tried again.
const RENEW_RETRY: Duration = Duration::from_secs(60);
/// Returning members signalling through this node at once.
const MAX_GUESTS: usize = 16;

/// A segment as the playlist lists it, with the CDN URL the agent fetches it from (tokens
/// included; the URL never leaves the agent).
#[derive(Clone, Debug)]
pub struct Listing {
    /// The engine's view.
    pub info: SegmentInfo,
    /// Where the CDN serves it.
    pub url: String,
    /// When the CDN has it complete. The engine hears of it then: its first fetchers and
    /// rescue timers count from the listing.
    pub available: Instant,
}

/// A segment the engine delivered.
#[derive(Clone, Debug)]
pub struct Delivered {
    /// Its bytes, verified.
    pub data: Bytes,
    /// Where they came from.
    pub sources: ByteSources,
}

/// Why the engine could not deliver.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// Every source failed.
    #[error("every source failed")]
    Failed,
    /// The playlist does not list the segment (any more).
    #[error("segment not listed")]
    NotListed,
    /// The node stopped.
    #[error("the swarm's node stopped")]
    Stopped,
}

/// What the proxy and loader ask of a node.
#[derive(Debug)]
pub(crate) enum Command {
    Listed(Vec<Listing>),
    Load {
        key: SegmentKey,
        deadline: Instant,
        reply: oneshot::Sender<Result<Delivered, NodeError>>,
        /// Told of verified peer bytes as they arrive.
        events: Option<mpsc::UnboundedSender<LoadEvent>>,
        /// The request prefers peers (`Input::PreferPeers`).
        prefer_peers: bool,
    },
    Cancel(SegmentKey),
    /// Trusted hashes (the origin's, signature checked).
    Hashes(Vec<(SegmentKey, SegmentHash, u64)>),
    /// A member coming back while the tracker is away asks to signal through us (it joined
    /// on our contact socket; `tx` reaches that socket).
    Guest {
        key: PublicKey,
        possession: Signature,
        certificate: String,
        tx: mpsc::Sender<FromTracker>,
    },
    /// A message from a guest's socket.
    FromGuest(PeerId, ToTracker),
    /// A guest's socket closed.
    GuestGone(PeerId),
    /// New engine configuration (remote config).
    Config(Arc<Config>),
    /// The authority's newest revocation list.
    Revocations(Arc<f2f_core::identity::RevocationList>),
    Leave,
}

/// Signals (offers and answers) sent, by the way they went.
#[derive(Clone, Copy, Debug, Default)]
pub struct SignalCounts {
    /// Through the tracker (or, for a node that came back through a member, that member's
    /// socket).
    pub tracker: u64,
    /// Through the overlay's connections.
    pub overlay: u64,
    /// To guests, on their sockets.
    pub guest: u64,
}

/// Counters of one node, shared with the agent's metrics.
#[derive(Clone, Debug, Default)]
pub struct NodeStats {
    /// The engine's counters.
    pub engine: Stats,
    /// Peers with an open connection.
    pub connected: usize,
    /// Data neighbours.
    pub neighbours: Vec<PeerId>,
    /// Overlay (active view) members.
    pub overlay: usize,
    /// Whether the tracker socket is up.
    pub tracker: bool,
    /// Receipts bytes vouched for in reported bundles.
    pub receipt_bytes: u64,
    /// Signals sent, by route.
    pub signals: SignalCounts,
    /// The node joined through a member's contact (the tracker was away).
    pub via_member: bool,
    /// Members that came back through this node's contact.
    pub guests_admitted: u64,
}

/// Where a node connects and how.
#[derive(Clone, Debug)]
pub(crate) struct NodeConfig {
    /// The tracker's signalling socket URL.
    pub(crate) tracker: String,
    /// The engine's configuration.
    pub(crate) engine: Arc<Config>,
    /// This agent's signalling contact, advertised to the tracker.
    pub(crate) contact: Option<String>,
    /// What the agent remembers of its swarms.
    pub(crate) memory: Memory,
    /// The control plane's API (certificates).
    pub(crate) control: ControlClient,
    /// Where every message sent to peers is recorded, if anywhere.
    pub(crate) capture: Option<Capture>,
    /// Receipt bundles and notable events for the control plane.
    pub(crate) telemetry: Telemetry,
}

/// Which way a signal travels; an answer goes back the way its offer came.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Via {
    Tracker,
    Overlay,
    Guest,
}

enum Attempt {
    /// We offered; waiting for the answer and the channel.
    Offering {
        pending: SdpPendingOffer,
        since: Instant,
        via: Via,
        sdp: String,
    },
    /// We answered; waiting for the channel.
    Answered {
        since: Instant,
    },
    Open,
}

struct Conn {
    peer: PeerId,
    attempt: Attempt,
    /// The contact the peer's signal named, remembered once its handshake proves who it is.
    contact: Option<String>,
    /// Frames the data channel refused for now, and their bytes.
    outbox: VecDeque<Bytes>,
    queued: usize,
}

/// A handle to a running node.
#[derive(Clone, Debug)]
pub struct NodeHandle {
    pub(crate) commands: mpsc::Sender<Command>,
    pub(crate) stats: Arc<Mutex<NodeStats>>,
    /// The swarm.
    pub swarm: SwarmId,
    /// The node's peer id.
    pub id: PeerId,
}

impl NodeHandle {
    /// The node's counters.
    pub fn stats(&self) -> NodeStats {
        self.stats.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

pub(crate) struct Node {
    engine: Engine,
    endpoint: Endpoint,
    keypair: Keypair,
    crypto: Arc<dyn Crypto>,
    config: NodeConfig,
    tracker: Option<TrackerLink>,
    tracker_lost: Option<Instant>,
    conns: HashMap<ConnId, Conn>,
    by_peer: HashMap<PeerId, ConnId>,
    urls: HashMap<SegmentKey, String>,
    /// Listed keys in listing order, to forget the oldest URLs.
    listed: VecDeque<SegmentKey>,
    waiters: HashMap<SegmentKey, Vec<oneshot::Sender<Result<Delivered, NodeError>>>>,
    /// Loads that want progress reports.
    watchers: HashMap<SegmentKey, Vec<mpsc::UnboundedSender<LoadEvent>>>,
    /// Listed ahead of availability: released to the engine when available, with any load
    /// that came first.
    pending: HashMap<SegmentKey, (Instant, SegmentInfo, Option<Instant>)>,
    commands: mpsc::Receiver<Command>,
    cdn: Cdn,
    cdn_tx: mpsc::UnboundedSender<(FetchId, Result<Bytes, CdnError>)>,
    cdn_rx: mpsc::UnboundedReceiver<(FetchId, Result<Bytes, CdnError>)>,
    stats: Arc<Mutex<NodeStats>>,
    low_water: usize,
    swarm: SwarmId,
    /// Checks guests' certificates.
    verifier: CertificateVerifier,
    authority: PublicKey,
    guests: HashMap<PeerId, mpsc::Sender<FromTracker>>,
    signals: SignalCounts,
    via_member: bool,
    guests_admitted: u64,
    /// Renewals' answers.
    renewed: Renewals,
    /// When to try a failed renewal again.
    renew_at: Option<Instant>,
}

type Renewal = Result<Granted, ControlError>;
type Renewals = (
    mpsc::UnboundedSender<Renewal>,
    mpsc::UnboundedReceiver<Renewal>,
);

/// URLs remembered per node (a few live windows of every rendition).
const MAX_LISTED: usize = 4096;

fn unix_now() -> UnixTime {
    UnixTime(
        (SystemTime::now().duration_since(UNIX_EPOCH))
            .unwrap_or_default()
            .as_secs(),
    )
}

/// Joins `swarm` through the tracker and starts the node's loop on `endpoint`.
///
/// # Errors
///
/// The tracker is unreachable or refuses to certify the key; the engine refuses the config.
pub(crate) async fn start(
    swarm: SwarmId,
    keypair: Keypair,
    endpoint: Endpoint,
    config: NodeConfig,
    cdn: Cdn,
) -> Result<NodeHandle, StartError> {
    let crypto: Arc<dyn Crypto> = Arc::new(Bls::new());
    let joining = Joining {
        tracker: &config.tracker,
        swarm,
        keypair: &keypair,
        crypto: crypto.as_ref(),
        contact: config.contact.clone(),
        memory: &config.memory,
        control: &config.control,
    };
    let welcomed = rejoin::first_contact(&joining, unix_now()).await?;
    let authority = welcomed.authority;
    let identity = Identity {
        keypair: keypair.clone(),
        certificate: welcomed.certificate,
        authority: welcomed.authority,
        crypto: crypto.clone(),
    };
    let now = Instant::now();
    let mut engine = Engine::new(identity, swarm, config.engine.clone(), now, unix_now())
        .map_err(|e| StartError::Certificate(e.to_string()))?;
    engine
        .handle_input(Input::Bootstrap(welcomed.peers), now)
        .map_err(|e| StartError::Certificate(e.to_string()))?;
    let (commands_tx, commands) = mpsc::channel(1024);
    let (cdn_tx, cdn_rx) = mpsc::unbounded_channel();
    let stats = Arc::new(Mutex::new(NodeStats::default()));
    let id = engine.id();
    let low_water = config.engine.upload.low_water as usize;
    let node = Node {
        engine,
        endpoint,
        keypair,
        crypto,
        config,
        tracker: Some(welcomed.link),
        tracker_lost: None,
        conns: HashMap::new(),
        by_peer: HashMap::new(),
        urls: HashMap::new(),
        listed: VecDeque::new(),
        waiters: HashMap::new(),
        watchers: HashMap::new(),
        pending: HashMap::new(),
        commands,
        cdn,
        cdn_tx,
        cdn_rx,
        stats: stats.clone(),
        low_water,
        swarm,
        verifier: CertificateVerifier::new(authority, 64),
        authority,
        guests: HashMap::new(),
        signals: SignalCounts::default(),
        via_member: welcomed.entry == Entry::Member,
        guests_admitted: 0,
        renewed: mpsc::unbounded_channel(),
        renew_at: None,
    };
    tokio::spawn(node.run());
    Ok(NodeHandle {
        commands: commands_tx,
        stats,
        swarm,
        id,
    })
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The tracker could not be reached or refused.
    #[error(transparent)]
    Tracker(#[from] SignalError),
    /// The certificate the tracker issued is unusable.
    #[error("certificate: {0}")]
    Certificate(String),
    /// The UDP endpoint could not be bound.
    #[error(transparent)]
    Transport(#[from] TransportError),
}

/// A future that never completes when there is no tracker.
async fn from_tracker(link: &mut Option<TrackerLink>) -> Option<FromTracker> {
    match link {
        Some(link) => link.rx.recv().await,
        None => std::future::pending().await,
    }
}

impl Node {
    async fn run(mut self) {
        let mut tick = tokio::time::interval(TICK);
        loop {
            self.drain_outputs();
            self.publish_stats();
            let wake = self
                .engine
                .poll_timeout()
                .unwrap_or_else(|| Instant::now() + TICK);
            let wake = (self.pending.values().map(|(at, ..)| *at)).fold(wake, Instant::min);
            let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(wake));
            tokio::select! {
                event = self.endpoint.next_event() => match event {
                    Ok(event) => self.on_transport(event),
                    Err(e) => {
                        tracing::error!("peer transport failed: {e}");
                        break;
                    }
                },
                msg = from_tracker(&mut self.tracker) => match msg {
                    Some(msg) => self.on_tracker(msg),
                    None => {
                        tracing::warn!("tracker connection lost; the swarm goes on without it");
                        self.tracker = None;
                        self.tracker_lost = Some(Instant::now());
                    }
                },
                command = self.commands.recv() => match command {
                    Some(Command::Leave) | None => break,
                    Some(command) => self.on_command(command),
                },
                Some((fetch, result)) = self.cdn_rx.recv() => {
                    let result = result.map_err(|e| EngineCdnError(e.to_string()));
                    self.input(Input::CdnResponse { fetch, result });
                }
                () = sleep => {
                    self.release_pending();
                    self.engine.handle_timeout(Instant::now());
                }
                Some(renewed) = self.renewed.1.recv() => self.on_renewed(renewed),
                _ = tick.tick() => self.on_tick().await,
            }
        }
        self.input(Input::Leave);
        self.drain_outputs();
        for waiters in self.waiters.drain().map(|(_, w)| w) {
            for w in waiters {
                let _ = w.send(Err(NodeError::Stopped));
            }
        }
        // Let the goodbyes leave before the endpoint is dropped.
        let flush = async {
            loop {
                if self.endpoint.next_event().await.is_err() {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_millis(200), flush).await;
    }

    fn input(&mut self, input: Input) {
        if let Err(e) = self.engine.handle_input(input, Instant::now()) {
            tracing::warn!("engine refused an input: {e}");
        }
    }

    fn publish_stats(&self) {
        let mut stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        stats.engine = self.engine.stats().clone();
        stats.connected = (self.conns.values())
            .filter(|c| matches!(c.attempt, Attempt::Open))
            .count();
        stats.neighbours = self.engine.data_neighbours();
        stats.overlay = self.engine.overlay_neighbours().len();
        stats.tracker = self.tracker.is_some();
        stats.signals = self.signals;
        stats.via_member = self.via_member;
        stats.guests_admitted = self.guests_admitted;
    }

    fn drain_outputs(&mut self) {
        while let Some(output) = self.engine.poll_output() {
            self.on_output(output);
        }
    }

    fn on_output(&mut self, output: Output) {
        match output {
            Output::Connect(peer) => self.connect(peer),
            Output::Disconnect(peer) => {
                if let Some(&conn) = self.by_peer.get(&peer) {
                    self.endpoint.close(conn);
                }
            }
            Output::Transmit { to, frame } => self.transmit(to, frame),
            Output::FetchCdn {
                fetch,
                key,
                offset,
                end,
            } => self.fetch(fetch, &key, offset, end),
            Output::Deliver { key, data, sources } => {
                let delivered = Delivered {
                    data: data.to_bytes(),
                    sources,
                };
                for waiter in self.waiters.remove(&key).unwrap_or_default() {
                    let _ = waiter.send(Ok(delivered.clone()));
                }
                self.watchers.remove(&key);
            }
            Output::Progress { key, p2p_bytes } => {
                if let Some(watchers) = self.watchers.get_mut(&key) {
                    watchers.retain(|w| w.send(LoadEvent::PeerBytes(p2p_bytes)).is_ok());
                }
            }
            Output::LoadFailed(key) => {
                self.watchers.remove(&key);
                for waiter in self.waiters.remove(&key).unwrap_or_default() {
                    let _ = waiter.send(Err(NodeError::Failed));
                }
            }
            Output::NeedBootstrap => {
                self.signal_tracker(ToTracker::Peers);
            }
            // Attested hashes need nothing from the driver; signed-hash fetching is not built.
            Output::NeedHash(_) => {}
            Output::Receipts(bundle) => {
                self.config.telemetry.receipts(&bundle);
                self.stats
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .receipt_bytes += bundle.bytes();
            }
            Output::RenewCertificate { .. } => self.renew(),
            Output::Signal { from, payload } => match serde_json::from_slice::<Signal>(&payload) {
                Ok(signal) if signal.sdp().len() <= MAX_SDP_LEN => {
                    self.on_signal(from, signal, Via::Overlay);
                }
                _ => tracing::debug!("unreadable signal from {from} through the overlay"),
            },
            Output::Event(event) => {
                if let Some(notable) = log_event(&event) {
                    self.config.telemetry.debug(notable);
                }
            }
            other => tracing::debug!("unhandled engine output {other:?}"),
        }
    }

    fn signal_tracker(&mut self, msg: ToTracker) -> bool {
        match &self.tracker {
            Some(link) => link.tx.try_send(msg).is_ok(),
            None => false,
        }
    }

    /// Sends a signal to `to` the way `via` says; false if that way is closed.
    fn send_signal(&mut self, to: PeerId, signal: Signal, via: Via) -> bool {
        let sent = match via {
            Via::Tracker => self.signal_tracker(ToTracker::Signal {
                to: to.into(),
                signal,
            }),
            Via::Overlay => {
                let payload = Bytes::from(serde_json::to_vec(&signal).unwrap_or_default());
                self.input(Input::Signal { to, payload });
                true
            }
            Via::Guest => (self.guests.get(&to)).is_some_and(|tx| {
                let from = self.engine.id().into();
                tx.try_send(FromTracker::Signal { from, signal }).is_ok()
            }),
        };
        if sent {
            let count = match via {
                Via::Tracker => &mut self.signals.tracker,
                Via::Overlay => &mut self.signals.overlay,
                Via::Guest => &mut self.signals.guest,
            };
            *count += 1;
        }
        sent
    }

    /// Opens a connection to `peer` by sending an offer: to a guest on its socket, through
    /// the overlay once we have a connection, else through the tracker.
    fn connect(&mut self, peer: PeerId) {
        if self.by_peer.contains_key(&peer) {
            return;
        }
        let offer = match self.endpoint.offer() {
            Ok(offer) => offer,
            Err(e) => {
                tracing::warn!("cannot offer a connection: {e}");
                self.input(Input::ConnectFailed(peer));
                return;
            }
        };
        let (conn, sdp, pending) = offer;
        let sdp = sdp.to_sdp_string();
        let via = if self.guests.contains_key(&peer) {
            Via::Guest
        } else if self.engine.can_relay() {
            Via::Overlay
        } else {
            Via::Tracker
        };
        let offer = Signal::Offer {
            sdp: sdp.clone(),
            contact: self.config.contact.clone(),
        };
        if !self.send_signal(peer, offer, via) {
            self.endpoint.close(conn);
            self.input(Input::ConnectFailed(peer));
            return;
        }
        let since = Instant::now();
        let attempt = Attempt::Offering {
            pending,
            since,
            via,
            sdp,
        };
        self.add_conn(conn, peer, attempt, None);
    }

    fn add_conn(&mut self, conn: ConnId, peer: PeerId, attempt: Attempt, contact: Option<&str>) {
        self.by_peer.insert(peer, conn);
        self.conns.insert(
            conn,
            Conn {
                peer,
                attempt,
                contact: contact.map(str::to_owned),
                outbox: VecDeque::new(),
                queued: 0,
            },
        );
    }

    /// Forgets a connection attempt and closes it; the engine hears it failed.
    fn abandon(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.remove(&conn) {
            self.by_peer.remove(&c.peer);
            self.endpoint.close(conn);
            let input = match c.attempt {
                Attempt::Open => Input::Disconnected(c.peer),
                _ => Input::ConnectFailed(c.peer),
            };
            self.input(input);
        }
    }

    fn on_tracker(&mut self, msg: FromTracker) {
        match msg {
            FromTracker::Signal { from, signal } => {
                self.on_signal(from.into(), signal, Via::Tracker);
            }
            FromTracker::Unreachable { peer } => {
                if let Some(&conn) = self.by_peer.get(&PeerId::from(peer)) {
                    if !matches!(self.conns[&conn].attempt, Attempt::Open) {
                        self.abandon(conn);
                    }
                }
            }
            FromTracker::Peers { peers, contacts } => {
                let me = self.engine.id();
                self.config.memory.learn(self.swarm, me, contacts);
                let peers = peers.into_iter().map(PeerId::from).collect();
                self.input(Input::Bootstrap(peers));
            }
            // Welcomes come with a join (`rejoin::first_contact`), not later.
            FromTracker::Welcome { .. } => tracing::debug!("unexpected second welcome"),
            FromTracker::Error { message } => tracing::warn!("tracker: {message}"),
        }
    }

    fn on_signal(&mut self, from: PeerId, signal: Signal, via: Via) {
        let contact = signal.contact();
        match &signal {
            Signal::Offer { sdp, .. } => {
                if let Some(&existing) = self.by_peer.get(&from) {
                    // Both offered at once: the smaller id's offer wins. An offer from a peer
                    // we are connected to means it lost the connection and starts over.
                    let offering =
                        matches!(self.conns[&existing].attempt, Attempt::Offering { .. });
                    if offering && self.engine.id() < from {
                        return;
                    }
                    self.conns.remove(&existing);
                    self.by_peer.remove(&from);
                    self.endpoint.close(existing);
                }
                let Ok(offer) = SdpOffer::from_sdp_string(sdp) else {
                    tracing::debug!("unparsable offer from {from}");
                    return;
                };
                match self.endpoint.accept_offer(offer) {
                    Ok((conn, answer)) => {
                        let answer = Signal::Answer {
                            sdp: answer.to_sdp_string(),
                            contact: self.config.contact.clone(),
                        };
                        self.send_signal(from, answer, via);
                        let since = Instant::now();
                        self.add_conn(conn, from, Attempt::Answered { since }, contact);
                    }
                    Err(e) => tracing::debug!("offer from {from} refused: {e}"),
                }
            }
            Signal::Answer { sdp, .. } => {
                let Some(&conn) = self.by_peer.get(&from) else {
                    return;
                };
                let Some(c) = self.conns.get_mut(&conn) else {
                    return;
                };
                let since = Instant::now();
                let Attempt::Offering { .. } = c.attempt else {
                    return;
                };
                let Attempt::Offering { pending, .. } =
                    std::mem::replace(&mut c.attempt, Attempt::Answered { since })
                else {
                    unreachable!("matched above");
                };
                c.contact = contact.map(str::to_owned);
                let accepted = SdpAnswer::from_sdp_string(sdp)
                    .map_err(|e| e.to_string())
                    .and_then(|answer| {
                        (self.endpoint.accept_answer(conn, pending, answer))
                            .map_err(|e| e.to_string())
                    });
                if let Err(e) = accepted {
                    tracing::debug!("answer from {from} refused: {e}");
                    self.abandon(conn);
                }
            }
        }
    }

    fn on_transport(&mut self, event: TransportEvent) {
        match event {
            TransportEvent::Open(conn) => {
                let Some(c) = self.conns.get_mut(&conn) else {
                    self.endpoint.close(conn);
                    return;
                };
                c.attempt = Attempt::Open;
                let peer = c.peer;
                match self.endpoint.session(conn) {
                    Ok(session) => self.input(Input::Connected {
                        peer,
                        binding: ChannelBinding {
                            local: Fingerprint(session.local),
                            remote: Fingerprint(session.remote),
                        },
                        group: NetGroup::of(session.remote_addr),
                    }),
                    Err(_) => self.abandon(conn),
                }
            }
            TransportEvent::Message(conn, bytes) => {
                if let Some(c) = self.conns.get(&conn) {
                    let from = c.peer;
                    let frame = Frame::from_bytes(Bytes::from(bytes));
                    self.input(Input::Receive { from, frame });
                }
            }
            TransportEvent::Drained(conn, buffered) => self.flush(conn, buffered),
            TransportEvent::Closed(conn) => {
                if let Some(c) = self.conns.remove(&conn) {
                    self.by_peer.remove(&c.peer);
                    let input = match c.attempt {
                        Attempt::Open => Input::Disconnected(c.peer),
                        _ => Input::ConnectFailed(c.peer),
                    };
                    self.input(input);
                }
            }
        }
    }

    fn transmit(&mut self, to: PeerId, frame: Frame) {
        let Some(&conn) = self.by_peer.get(&to) else {
            return;
        };
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let bytes = frame.to_bytes();
        if let Some(capture) = &self.config.capture {
            capture.record(&bytes);
        }
        if c.outbox.is_empty() {
            match self.endpoint.send(conn, &bytes) {
                Ok(true) => return,
                Ok(false) => {}
                Err(e) => {
                    tracing::debug!("send to {to} failed: {e}");
                    return;
                }
            }
        }
        c.queued += bytes.len();
        c.outbox.push_back(bytes);
    }

    /// Moves queued frames into the channel after a drain report, and tells the engine when
    /// what waits for the peer fell to its low-water mark.
    fn flush(&mut self, conn: ConnId, mut buffered: usize) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        while let Some(front) = c.outbox.front() {
            match self.endpoint.send(conn, front) {
                Ok(true) => {
                    buffered += front.len();
                    c.queued -= front.len();
                    c.outbox.pop_front();
                }
                _ => break,
            }
        }
        let total = buffered + c.queued;
        if total <= self.low_water {
            let peer = c.peer;
            self.input(Input::Drained {
                peer,
                buffered: total as u64,
            });
        }
    }

    fn fetch(&mut self, fetch: FetchId, key: &SegmentKey, offset: u64, end: Option<u64>) {
        let Some(url) = self.urls.get(key).cloned() else {
            let _ = self.cdn_tx.send((fetch, Err(CdnError::Status(404))));
            return;
        };
        let (cdn, tx) = (self.cdn.clone(), self.cdn_tx.clone());
        tokio::spawn(async move {
            let result = cdn.get(&url, offset, end).await.map(|b| b.bytes);
            let _ = tx.send((fetch, result));
        });
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Listed(listings) => {
                let now = Instant::now();
                for listing in listings {
                    let key = listing.info.key;
                    if self.urls.insert(key, listing.url).is_none() {
                        self.listed.push_back(key);
                        if listing.available > now {
                            self.pending
                                .insert(key, (listing.available, listing.info, None));
                        } else {
                            self.input(Input::Listed(listing.info));
                        }
                    }
                }
                while self.listed.len() > MAX_LISTED {
                    if let Some(old) = self.listed.pop_front() {
                        self.urls.remove(&old);
                        self.pending.remove(&old);
                    }
                }
            }
            Command::Load {
                key,
                deadline,
                reply,
                events,
                prefer_peers,
            } => {
                if prefer_peers {
                    self.input(Input::PreferPeers(key));
                }
                if !self.urls.contains_key(&key) {
                    let _ = reply.send(Err(NodeError::NotListed));
                    return;
                }
                self.waiters.entry(key).or_default().push(reply);
                if let Some(events) = events {
                    self.watchers.entry(key).or_default().push(events);
                }
                match self.pending.get_mut(&key) {
                    Some((_, _, load)) => *load = Some(deadline),
                    None => self.input(Input::Load { key, deadline }),
                }
            }
            Command::Cancel(key) => {
                let waiters = self.waiters.entry(key).or_default();
                waiters.retain(|w| !w.is_closed());
                if waiters.is_empty() {
                    self.waiters.remove(&key);
                    self.watchers.remove(&key);
                    match self.pending.get_mut(&key) {
                        Some((_, _, load)) => *load = None,
                        None => self.input(Input::CancelLoad(key)),
                    }
                }
            }
            Command::Hashes(hashes) => {
                for (key, hash, size) in hashes {
                    self.input(Input::SegmentHash { key, hash, size });
                }
            }
            Command::Guest {
                key,
                possession,
                certificate,
                tx,
            } => {
                let reply = match self.admit(&key, &possession, &certificate) {
                    Ok(cert) => {
                        self.guests.insert(key.peer_id(), tx.clone());
                        self.guests_admitted += 1;
                        let me = vec![self.engine.id().into()];
                        welcome(&cert, &self.authority, me, Vec::new())
                    }
                    Err(message) => FromTracker::Error { message },
                };
                let _ = tx.try_send(reply);
            }
            Command::FromGuest(guest, msg) => self.on_guest(guest, msg),
            Command::GuestGone(guest) => {
                self.guests.remove(&guest);
            }
            Command::Config(config) => self.input(Input::UpdateConfig(config)),
            Command::Revocations(list) => {
                self.input(Input::Revocations(Box::new((*list).clone())));
            }
            Command::Leave => {}
        }
    }

    /// Checks a returning member's join: a certificate of the swarm's authority for its key,
    /// and proof it holds that key.
    fn admit(
        &mut self,
        key: &PublicKey,
        possession: &Signature,
        certificate: &str,
    ) -> Result<f2f_core::identity::Certificate, String> {
        if self.guests.len() >= MAX_GUESTS {
            return Err("this member relays for enough guests".into());
        }
        let cert = joined_certificate(certificate).map_err(|e| e.to_string())?;
        if cert.public_key != *key {
            return Err("certificate for another key".into());
        }
        verify_possession(self.crypto.as_ref(), key, possession)
            .map_err(|_| "the proof of possession does not verify".to_owned())?;
        let none = Revocations::default();
        (self.verifier)
            .check(self.crypto.as_ref(), &cert, &self.swarm, unix_now(), &none)
            .map_err(|e| e.to_string())?;
        Ok(cert)
    }

    /// A guest may only set up a connection to us; the overlay does the rest once it has one.
    fn on_guest(&mut self, guest: PeerId, msg: ToTracker) {
        let Some(tx) = self.guests.get(&guest).cloned() else {
            return;
        };
        match msg {
            ToTracker::Signal { to, signal } if PeerId::from(to) == self.engine.id() => {
                self.on_signal(guest, signal, Via::Guest);
            }
            ToTracker::Signal { to, .. } => {
                let _ = tx.try_send(FromTracker::Unreachable { peer: to });
            }
            ToTracker::Peers => {
                let peers = vec![self.engine.id().into()];
                let contacts = Vec::new();
                let _ = tx.try_send(FromTracker::Peers { peers, contacts });
            }
            ToTracker::Join { .. } => {
                let message = "already joined".into();
                let _ = tx.try_send(FromTracker::Error { message });
            }
        }
    }

    /// Lists to the engine what became available, and loads what was asked for meanwhile.
    fn release_pending(&mut self) {
        let now = Instant::now();
        let due: Vec<SegmentKey> = (self.pending.iter())
            .filter(|(_, (at, ..))| *at <= now)
            .map(|(k, _)| *k)
            .collect();
        for key in due {
            if let Some((_, info, load)) = self.pending.remove(&key) {
                self.input(Input::Listed(info));
                if let Some(deadline) = load {
                    self.input(Input::Load { key, deadline });
                }
            }
        }
    }

    async fn on_tick(&mut self) {
        let now = Instant::now();
        self.remember_contacts();
        if self.tracker.is_some() {
            self.reroute_offers(now);
        }
        if self.renew_at.is_some_and(|at| at <= now) {
            self.renew_at = None;
            self.renew();
        }
        let stale: Vec<ConnId> = (self.conns.iter())
            .filter(|(_, c)| match c.attempt {
                Attempt::Offering { since, .. } | Attempt::Answered { since } => {
                    now.duration_since(since) > CONNECT_TIMEOUT
                }
                Attempt::Open => false,
            })
            .map(|(&id, _)| id)
            .collect();
        for conn in stale {
            self.abandon(conn);
        }
        if let Some(lost) = self.tracker_lost {
            if now.duration_since(lost) >= TRACKER_RETRY {
                self.tracker_lost = Some(now);
                self.rejoin_tracker().await;
            }
        }
    }

    /// Offers the overlay did not answer in time go again through the tracker.
    fn reroute_offers(&mut self, now: Instant) {
        let mut resend = Vec::new();
        for c in self.conns.values_mut() {
            if let Attempt::Offering {
                since, via, sdp, ..
            } = &mut c.attempt
            {
                if *via == Via::Overlay && now.duration_since(*since) > OVERLAY_PATIENCE {
                    *via = Via::Tracker;
                    resend.push((c.peer, sdp.clone()));
                }
            }
        }
        for (peer, sdp) in resend {
            let contact = self.config.contact.clone();
            self.send_signal(peer, Signal::Offer { sdp, contact }, Via::Tracker);
        }
    }

    /// Remembers the contacts connected peers named, once the engine took each peer into its
    /// overlay or data neighbours (its handshake proved its id): a member that comes back
    /// while the tracker is away may try them.
    fn remember_contacts(&mut self) {
        let overlay = self.engine.overlay_neighbours();
        let data = self.engine.data_neighbours();
        let proven: Vec<Contact> = (self.conns.values_mut())
            .filter(|c| overlay.contains(&c.peer) || data.contains(&c.peer))
            .filter_map(|c| {
                let url = c.contact.take()?;
                Some(Contact {
                    peer: c.peer.into(),
                    url,
                })
            })
            .collect();
        if !proven.is_empty() {
            self.config
                .memory
                .learn(self.swarm, self.engine.id(), proven);
        }
    }

    /// Reopens the signalling socket: the tracker's (a new certificate comes with its
    /// welcome), else a remembered member's.
    async fn rejoin_tracker(&mut self) {
        let joining = Joining {
            tracker: &self.config.tracker,
            swarm: self.swarm,
            keypair: &self.keypair,
            crypto: self.crypto.as_ref(),
            contact: self.config.contact.clone(),
            memory: &self.config.memory,
            control: &self.config.control,
        };
        if let Ok(welcomed) = rejoin::first_contact(&joining, unix_now()).await {
            tracing::info!("signalling restored ({:?})", welcomed.entry);
            self.tracker = Some(welcomed.link);
            self.tracker_lost = None;
            self.via_member |= welcomed.entry == Entry::Member;
            if !self.engine.can_relay() {
                self.input(Input::Bootstrap(welcomed.peers));
            }
        }
    }

    /// Asks the control plane to renew the certificate; the answer comes back as
    /// [`Node::renewed`]'s message, a failure is tried again a minute later.
    fn renew(&mut self) {
        let Some(cert) = self.config.memory.certificate(self.swarm, unix_now()) else {
            tracing::warn!("swarm {}: certificate expired, no renewal", self.swarm);
            return;
        };
        let (control, keypair) = (self.config.control.clone(), self.keypair.clone());
        let (crypto, tx) = (self.crypto.clone(), self.renewed.0.clone());
        tokio::spawn(async move {
            let renewed = control.renew(&cert, &keypair, crypto.as_ref()).await;
            let _ = tx.send(renewed);
        });
    }

    fn on_renewed(&mut self, renewed: Renewal) {
        match renewed {
            Ok(granted) => {
                let cert = granted.certificate;
                (self.config.memory).certified(self.swarm, cert.clone(), granted.authority);
                self.input(Input::Certificate(Box::new(cert)));
            }
            Err(e) => {
                tracing::warn!("certificate renewal failed: {e}; trying again in a minute");
                self.renew_at = Some(Instant::now() + RENEW_RETRY);
            }
        }
    }
}

/// Logs an engine event; the notable ones come back as text for the debug channel.
fn log_event(event: &Event) -> Option<String> {
    let notable = match event {
        Event::PeerBanned { peer, error, .. } => format!("peer {peer} banned: {error}"),
        Event::FalseAttestation { signers, .. } => {
            format!("false attestation by {} peers", signers.len())
        }
        Event::PeerMisbehaved { peer, error } => format!("peer {peer} misbehaved: {error}"),
        other => {
            tracing::debug!("{other:?}");
            return None;
        }
    };
    tracing::warn!("{notable}");
    Some(notable)
}
