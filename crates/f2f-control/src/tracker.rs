//! The bootstrap tracker: certifies joining nodes, names a few members of their swarm, and
//! passes SDP between members until they can signal through the overlay.
//!
//! What it does not do yet (the control-plane issue adds it): validate the viewer's CDN session
//! token before certifying (today any key that proves possession is certified), rate limits,
//! member expiry beyond the socket's life.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use f2f_core::id::{PeerId, SwarmId};
use f2f_core::identity::{
    Authority, Bls, Keypair, PublicKey, Scope, SessionId, Signature, UnixTime,
};
use futures_util::{SinkExt, StreamExt};
use rand::seq::IteratorRandom;
use tokio::sync::mpsc;

use crate::protocol::{
    Contact, FromTracker, HexPeer, MAX_ENTRY_PEERS, MAX_MESSAGE_LEN, ToTracker, parse, to_text,
    welcome,
};

/// Messages queued for one member before further signals to it are refused.
const QUEUE: usize = 64;

/// One member's socket and signalling contact.
struct Member {
    tx: mpsc::Sender<FromTracker>,
    contact: Option<String>,
}

type Swarms = HashMap<SwarmId, HashMap<PeerId, Member>>;

/// The tracker's state: the authority key and who is in which swarm.
pub struct Tracker {
    authority: Authority,
    crypto: Bls,
    lifetime: Duration,
    swarms: Mutex<Swarms>,
}

impl std::fmt::Debug for Tracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracker")
            .field("authority", &self.authority.public())
            .finish_non_exhaustive()
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

impl Tracker {
    /// A tracker signing certificates with `authority`, valid for `lifetime`.
    pub fn new(authority: Keypair, lifetime: Duration) -> Self {
        Self {
            authority: Authority::new(authority),
            crypto: Bls::new(),
            lifetime,
            swarms: Mutex::new(HashMap::new()),
        }
    }

    /// The key members check certificates against.
    pub fn authority(&self) -> PublicKey {
        self.authority.public()
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

    /// Certifies a joining key for `swarm`.
    fn certify(
        &self,
        swarm: SwarmId,
        key: &PublicKey,
        possession: &Signature,
    ) -> Result<FromTracker, String> {
        let mut session = [0u8; 16];
        getrandom::fill(&mut session).map_err(|e| format!("no randomness: {e}"))?;
        let not_after = UnixTime(unix_now() + self.lifetime.as_secs());
        let cert = self
            .authority
            .issue(
                &self.crypto,
                key,
                possession,
                Scope::Swarm(swarm),
                SessionId(session),
                not_after,
            )
            .map_err(|_| "the proof of possession does not verify".to_owned())?;
        let (peers, contacts) = self.entry_peers(&swarm, &key.peer_id());
        Ok(welcome(&cert, &self.authority.public(), peers, contacts))
    }
}

/// The tracker's routes: the signalling socket at `/v1/signal`.
pub fn router(tracker: Arc<Tracker>) -> Router {
    Router::new()
        .route("/v1/signal", get(upgrade))
        .with_state(tracker)
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
    while let Some(Ok(frame)) = stream.next().await {
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
                    ..
                }),
                None,
            ) => {
                let swarm = SwarmId::from_bytes(swarm);
                let key = PublicKey::from_bytes(public_key);
                match tracker.certify(swarm, &key, &Signature::from_bytes(possession)) {
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
    _server: f2f_http::Server,
}

impl Control {
    /// Serves `tracker` on `addr` (port 0: any) until dropped.
    ///
    /// # Errors
    ///
    /// The address cannot be bound.
    pub async fn start(tracker: Tracker, addr: SocketAddr) -> std::io::Result<Self> {
        let authority = tracker.authority();
        let app = router(Arc::new(tracker));
        let server = f2f_http::Server::start(addr, "control plane", |_| app).await?;
        Ok(Self {
            addr: server.addr,
            authority,
            _server: server,
        })
    }

    /// The signalling socket's URL.
    pub fn signal_url(&self) -> String {
        format!("ws://{}/v1/signal", self.addr)
    }
}
