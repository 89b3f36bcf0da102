//! One swarm's event loop: the engine of `f2f-core`, its peer connections on the agent's UDP
//! endpoint, its tracker socket, and its CDN fetches, all driven from one task. The loop feeds
//! the engine every input with the current time, then carries out every output; nothing in
//! the engine waits on I/O.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use f2f_control::protocol::{FromTracker, HexPeer, Signal, ToTracker, welcome_identity};
use f2f_core::config::Config;
use f2f_core::engine::{CdnError as EngineCdnError, Engine, Input, Output, SegmentInfo};
use f2f_core::id::{PeerId, SegmentKey, SwarmId};
use f2f_core::identity::{
    Bls, ChannelBinding, Crypto, Fingerprint, Identity, Keypair, UnixTime, prove_possession,
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

use crate::cdn::{Cdn, CdnError};
use crate::signalling::{self, SignalError, TrackerLink};
use crate::transport::{ConnId, Endpoint, TransportError, TransportEvent};

/// A connection attempt that has not opened by then is given up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the loop checks attempts, and retries a lost tracker.
const TICK: Duration = Duration::from_secs(1);
/// Wait between attempts to reach a lost tracker.
const TRACKER_RETRY: Duration = Duration::from_secs(5);

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
    },
    Cancel(SegmentKey),
    /// Trusted hashes (the origin's, signature checked).
    Hashes(Vec<(SegmentKey, SegmentHash, u64)>),
    Leave,
}

/// Counters of one node, shared with the agent's metrics.
#[derive(Clone, Debug, Default)]
pub struct NodeStats {
    /// The engine's counters.
    pub engine: Stats,
    /// Peers with an open connection.
    pub connected: usize,
    /// Data neighbours.
    pub neighbours: usize,
    /// Overlay (active view) members.
    pub overlay: usize,
    /// Whether the tracker socket is up.
    pub tracker: bool,
    /// Receipts bytes vouched for in reported bundles.
    pub receipt_bytes: u64,
}

/// Where a node connects and how.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// The tracker's signalling socket URL.
    pub tracker: String,
    /// The engine's configuration.
    pub engine: Arc<Config>,
}

enum Attempt {
    /// We offered; waiting for the answer and the channel.
    Offering {
        pending: SdpPendingOffer,
        since: Instant,
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
}

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
    let possession = prove_possession(crypto.as_ref(), &keypair);
    let join = ToTracker::join(swarm, &keypair.public(), &possession);
    let (welcome, link) = signalling::join(&config.tracker, join).await?;
    let FromTracker::Welcome {
        certificate,
        authority,
        peers,
    } = welcome
    else {
        return Err(StartError::Tracker(SignalError::Refused(
            "no welcome".into(),
        )));
    };
    let (certificate, authority) = welcome_identity(&certificate, authority)
        .map_err(|e| StartError::Certificate(e.to_string()))?;
    let identity = Identity {
        keypair: keypair.clone(),
        certificate,
        authority,
        crypto: crypto.clone(),
    };
    let now = Instant::now();
    let mut engine = Engine::new(identity, swarm, config.engine.clone(), now, unix_now())
        .map_err(|e| StartError::Certificate(e.to_string()))?;
    let entry: Vec<PeerId> = peers.into_iter().map(PeerId::from).collect();
    engine
        .handle_input(Input::Bootstrap(entry), now)
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
        tracker: Some(link),
        tracker_lost: None,
        conns: HashMap::new(),
        by_peer: HashMap::new(),
        urls: HashMap::new(),
        listed: VecDeque::new(),
        waiters: HashMap::new(),
        pending: HashMap::new(),
        commands,
        cdn,
        cdn_tx,
        cdn_rx,
        stats: stats.clone(),
        low_water,
        swarm,
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
        stats.neighbours = self.engine.data_neighbours().len();
        stats.overlay = self.engine.overlay_neighbours().len();
        stats.tracker = self.tracker.is_some();
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
            }
            Output::LoadFailed(key) => {
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
                let bytes: u64 = bundle.entries.iter().map(|e| e.delivery.bytes).sum();
                self.stats
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .receipt_bytes += bytes;
            }
            Output::RenewCertificate { .. } => self.renew(),
            Output::Event(event) => log_event(&event),
            other => tracing::debug!("unhandled engine output {other:?}"),
        }
    }

    fn signal_tracker(&mut self, msg: ToTracker) -> bool {
        match &self.tracker {
            Some(link) => link.tx.try_send(msg).is_ok(),
            None => false,
        }
    }

    /// Opens a connection to `peer` by sending an offer through the tracker.
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
        let signal = Signal::Offer {
            sdp: sdp.to_sdp_string(),
        };
        if !self.signal_tracker(ToTracker::Signal {
            to: peer.into(),
            signal,
        }) {
            self.endpoint.close(conn);
            self.input(Input::ConnectFailed(peer));
            return;
        }
        self.add_conn(
            conn,
            peer,
            Attempt::Offering {
                pending,
                since: Instant::now(),
            },
        );
    }

    fn add_conn(&mut self, conn: ConnId, peer: PeerId, attempt: Attempt) {
        self.by_peer.insert(peer, conn);
        self.conns.insert(
            conn,
            Conn {
                peer,
                attempt,
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
            FromTracker::Signal { from, signal } => self.on_signal(from.into(), signal),
            FromTracker::Unreachable { peer } => {
                if let Some(&conn) = self.by_peer.get(&PeerId::from(peer)) {
                    if !matches!(self.conns[&conn].attempt, Attempt::Open) {
                        self.abandon(conn);
                    }
                }
            }
            FromTracker::Peers { peers } => {
                let peers = peers.into_iter().map(PeerId::from).collect();
                self.input(Input::Bootstrap(peers));
            }
            FromTracker::Welcome {
                certificate,
                authority,
                ..
            } => match welcome_identity(&certificate, authority) {
                Ok((cert, _)) => self.input(Input::Certificate(Box::new(cert))),
                Err(e) => tracing::warn!("unusable certificate from the tracker: {e}"),
            },
            FromTracker::Error { message } => tracing::warn!("tracker: {message}"),
        }
    }

    fn on_signal(&mut self, from: PeerId, signal: Signal) {
        match signal {
            Signal::Offer { sdp } => {
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
                let Ok(offer) = SdpOffer::from_sdp_string(&sdp) else {
                    tracing::debug!("unparsable offer from {from}");
                    return;
                };
                match self.endpoint.accept_offer(offer) {
                    Ok((conn, answer)) => {
                        let signal = Signal::Answer {
                            sdp: answer.to_sdp_string(),
                        };
                        self.signal_tracker(ToTracker::Signal {
                            to: HexPeer::from(from),
                            signal,
                        });
                        let since = Instant::now();
                        self.add_conn(conn, from, Attempt::Answered { since });
                    }
                    Err(e) => tracing::debug!("offer from {from} refused: {e}"),
                }
            }
            Signal::Answer { sdp } => {
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
                let accepted = SdpAnswer::from_sdp_string(&sdp)
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
            } => {
                if !self.urls.contains_key(&key) {
                    let _ = reply.send(Err(NodeError::NotListed));
                    return;
                }
                self.waiters.entry(key).or_default().push(reply);
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
            Command::Leave => {}
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

    /// Reopens the tracker socket (a new certificate comes with the welcome).
    async fn rejoin_tracker(&mut self) {
        let possession = prove_possession(self.crypto.as_ref(), &self.keypair);
        let join = ToTracker::join(self.swarm, &self.keypair.public(), &possession);
        let attempt = tokio::time::timeout(
            Duration::from_secs(2),
            signalling::join(&self.config.tracker, join),
        );
        if let Ok(Ok((welcome, link))) = attempt.await {
            tracing::info!("tracker connection restored");
            self.tracker = Some(link);
            self.tracker_lost = None;
            self.on_tracker(welcome);
        }
    }

    /// Asks for a renewed certificate: the tracker issues one with every welcome.
    fn renew(&mut self) {
        if self.tracker.is_some() {
            // Dropping the socket makes the tick rejoin at once.
            self.tracker = None;
            self.tracker_lost = Some(Instant::now() - TRACKER_RETRY);
        }
    }
}

fn log_event(event: &Event) {
    match event {
        Event::PeerBanned { peer, error, .. } => tracing::warn!("peer {peer} banned: {error}"),
        Event::FalseAttestation { signers, .. } => {
            tracing::warn!("false attestation by {} peers", signers.len());
        }
        Event::PeerMisbehaved { peer, error } => tracing::info!("peer {peer} misbehaved: {error}"),
        other => tracing::debug!("{other:?}"),
    }
}
