//! The bootstrap tracker: admits nodes whose certificate the issuer gave ([`crate::session`]),
//! names a few members of their swarm, and passes SDP between members until they can signal
//! through the overlay. A member whose socket stays silent for [`MEMBER_TTL`] is forgotten
//! (agents ping every [`crate::protocol::KEEPALIVE`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::{get, post};
use f2f_core::id::{PeerId, SwarmId};
use f2f_core::identity::{Bls, PublicKey, Signature, verify_possession};
use futures_util::{SinkExt, StreamExt};
use rand::seq::IteratorRandom;
use tokio::sync::mpsc;

use crate::dashboard;
use crate::protocol::{
    Contact, FromTracker, HexPeer, MAX_ENTRY_PEERS, MAX_MESSAGE_LEN, ToTracker, joined_certificate,
    parse, to_text, welcome,
};
use crate::remote::{self, Configs};
use crate::session::{self, Issuer};
use crate::telemetry::{self, Ingest};

/// A member whose socket carried nothing (not even a ping) for this long is forgotten.
pub const MEMBER_TTL: Duration = Duration::from_secs(60);

/// Messages queued for one member before further signals to it are refused.
const QUEUE: usize = 64;

/// One member's socket and signalling contact.
struct Member {
    tx: mpsc::Sender<FromTracker>,
    contact: Option<String>,
}

type Swarms = HashMap<SwarmId, HashMap<PeerId, Member>>;

/// The tracker's state: who is in which swarm.
pub struct Tracker {
    issuer: Arc<Issuer>,
    crypto: Bls,
    swarms: Mutex<Swarms>,
}

impl std::fmt::Debug for Tracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracker")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl Tracker {
    /// A tracker admitting the certificates `issuer` gives.
    pub fn new(issuer: Arc<Issuer>) -> Self {
        Self {
            issuer,
            crypto: Bls::new(),
            swarms: Mutex::new(HashMap::new()),
        }
    }

    fn members(&self) -> std::sync::MutexGuard<'_, Swarms> {
        self.swarms.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Up to [`MAX_ENTRY_PEERS`] members of `swarm` other than `me`, at random, and the
    /// contacts of those that relay.
    fn entry_peers(&self, swarm: &SwarmId, me: &PeerId) -> (Vec<HexPeer>, Vec<Contact>) {
        let members = self.members();
        let Some(members) = members.get(swarm) else {
            return (Vec::new(), Vec::new());
        };
        let others = members.iter().filter(|(p, _)| *p != me);
        let chosen = others.choose_multiple(&mut rand::rng(), MAX_ENTRY_PEERS);
        let contacts = (chosen.iter())
            .filter_map(|(peer, m)| {
                let url = m.contact.clone()?;
                Some(Contact {
                    peer: HexPeer::from(**peer),
                    url,
                })
            })
            .collect();
        let peers = chosen.into_iter().map(|(p, _)| HexPeer::from(*p)).collect();
        (peers, contacts)
    }

    /// Admits a joining node: its certificate, for `swarm`, and its key's proof of possession.
    fn admit(
        &self,
        swarm: SwarmId,
        key: &PublicKey,
        possession: &Signature,
        certificate: Option<&str>,
    ) -> Result<FromTracker, String> {
        let certificate = certificate.ok_or("join with the certificate /v1/session gives")?;
        let cert = joined_certificate(certificate).map_err(|e| e.to_string())?;
        if cert.public_key != *key {
            return Err("certificate for another key".into());
        }
        verify_possession(&self.crypto, key, possession)
            .map_err(|_| "the proof of possession does not verify".to_owned())?;
        self.issuer
            .check(&cert, &swarm)
            .map_err(|e| e.to_string())?;
        let (peers, contacts) = self.entry_peers(&swarm, &key.peer_id());
        Ok(welcome(&cert, &self.issuer.authority(), peers, contacts))
    }
}

/// The control plane's routes: the signalling socket at `/v1/signal`, sessions at
/// `/v1/session` and `/v1/session/renew`, telemetry at `/v1/telemetry`, Prometheus at
/// `/metrics`, the operator dashboard at `/dashboard`, and with `configs` the remote configuration
/// (`/v1/config`, `/v1/config/stream`, `/v1/admin/config`).
pub fn router(issuer: Arc<Issuer>, configs: Option<Arc<Configs>>, ingest: Arc<Ingest>) -> Router {
    let tracker = Arc::new(Tracker::new(issuer.clone()));
    let sessions_issuer = issuer.clone();
    let telemetry = Router::new()
        .route("/v1/telemetry", post(telemetry::receive))
        .route("/metrics", get(telemetry::metrics))
        .route("/dashboard", get(dashboard::page))
        .route("/v1/dashboard/state", get(dashboard::state_json))
        .with_state(ingest);
    let sessions = Router::new()
        .route("/v1/session", post(session::issue))
        .route("/v1/session/renew", post(session::renew))
        .with_state(sessions_issuer);
    let app = Router::new()
        .route("/v1/signal", get(upgrade))
        .with_state(tracker)
        .merge(sessions)
        .merge(telemetry);
    match configs {
        Some(configs) => app.merge(
            Router::new()
                .route("/v1/config", get(remote::latest))
                .route("/v1/config/stream", get(remote::stream))
                .route("/v1/admin/config", post(remote::admin_change))
                .route("/v1/admin/revoke", post(remote::admin_revoke))
                .with_state(remote::Remote { configs, issuer }),
        ),
        None => app,
    }
}

async fn upgrade(State(tracker): State<Arc<Tracker>>, ws: WebSocketUpgrade) -> Response {
    ws.max_message_size(MAX_MESSAGE_LEN)
        .on_upgrade(move |socket| session(tracker, socket))
}

/// One member's socket: the join, then peer requests and signals until it closes.
async fn session(tracker: Arc<Tracker>, socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::channel::<FromTracker>(QUEUE);
    let writer = tokio::spawn(async move {
        while let Some(msg) = rx.recv().await {
            if sink
                .send(Message::Text(to_text(&msg).into()))
                .await
                .is_err()
            {
                break;
            }
        }
    });
    let mut joined: Option<(SwarmId, PeerId)> = None;
    while let Ok(Some(Ok(frame))) = tokio::time::timeout(MEMBER_TTL, stream.next()).await {
        let text = match frame {
            Message::Text(text) => text,
            Message::Close(_) => break,
            _ => continue,
        };
        let reply = match (parse::<ToTracker>(&text), joined) {
            (Err(e), _) => Some(FromTracker::Error {
                message: e.to_string(),
            }),
            (
                Ok(ToTracker::Join {
                    swarm,
                    public_key,
                    possession,
                    contact,
                    certificate,
                }),
                None,
            ) => {
                let swarm = SwarmId::from_bytes(swarm);
                let key = PublicKey::from_bytes(public_key);
                let possession = Signature::from_bytes(possession);
                match tracker.admit(swarm, &key, &possession, certificate.as_deref()) {
                    Ok(welcome) => {
                        let me = key.peer_id();
                        let contact = contact.filter(|url| Contact::valid_url(url));
                        let member = Member {
                            tx: tx.clone(),
                            contact,
                        };
                        tracker
                            .members()
                            .entry(swarm)
                            .or_default()
                            .insert(me, member);
                        joined = Some((swarm, me));
                        Some(welcome)
                    }
                    Err(message) => Some(FromTracker::Error { message }),
                }
            }
            (Ok(_), None) => Some(FromTracker::Error {
                message: "join first".into(),
            }),
            (Ok(ToTracker::Join { .. }), Some(_)) => Some(FromTracker::Error {
                message: "already joined".into(),
            }),
            (Ok(ToTracker::Peers), Some((swarm, me))) => {
                let (peers, contacts) = tracker.entry_peers(&swarm, &me);
                Some(FromTracker::Peers { peers, contacts })
            }
            (Ok(ToTracker::Signal { to, signal }), Some((swarm, me))) => {
                let target = tracker
                    .members()
                    .get(&swarm)
                    .and_then(|m| m.get(&PeerId::from(to)).map(|m| m.tx.clone()));
                let sent = target.is_some_and(|t| {
                    t.try_send(FromTracker::Signal {
                        from: me.into(),
                        signal,
                    })
                    .is_ok()
                });
                (!sent).then_some(FromTracker::Unreachable { peer: to })
            }
        };
        if let Some(reply) = reply {
            if tx.try_send(reply).is_err() {
                break;
            }
        }
    }
    if let Some((swarm, me)) = joined {
        let mut swarms = tracker.members();
        if let Some(members) = swarms.get_mut(&swarm) {
            members.remove(&me);
            if members.is_empty() {
                swarms.remove(&swarm);
            }
        }
    }
    drop(tx);
    let _ = writer.await;
}

/// A running control plane.
#[derive(Debug)]
pub struct Control {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The authority key its certificates are signed with.
    pub authority: PublicKey,
    issuer: Arc<Issuer>,
    ingest: Arc<Ingest>,
    operator: Option<PublicKey>,
    _server: f2f_http::Server,
}

impl Control {
    /// Serves `issuer`'s sessions, the tracker and `configs` (if any) on `addr` (port 0:
    /// any) until dropped.
    ///
    /// # Errors
    ///
    /// The address cannot be bound.
    pub async fn start(
        issuer: Issuer,
        configs: Option<Configs>,
        addr: SocketAddr,
    ) -> std::io::Result<Self> {
        let authority = issuer.authority();
        let operator = configs.as_ref().map(Configs::operator);
        let issuer = Arc::new(issuer);
        let ingest = Arc::new(Ingest::new(issuer.clone()));
        let app = router(issuer.clone(), configs.map(Arc::new), ingest.clone());
        let server = f2f_http::Server::start(addr, "control plane", |_| app).await?;
        Ok(Self {
            addr: server.addr,
            authority,
            issuer,
            ingest,
            operator,
            _server: server,
        })
    }

    /// The signalling socket's URL.
    pub fn signal_url(&self) -> String {
        format!("ws://{}/v1/signal", self.addr)
    }

    /// The key remote configuration is signed with, when it is served.
    pub fn operator(&self) -> Option<PublicKey> {
        self.operator
    }

    /// Telemetry ingestion (counters, debug events).
    pub fn ingest(&self) -> &Ingest {
        &self.ingest
    }

    /// The issuer (revocations, the database).
    pub fn issuer(&self) -> &Issuer {
        &self.issuer
    }

    /// The HTTP API's base URL.
    pub fn api_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}
