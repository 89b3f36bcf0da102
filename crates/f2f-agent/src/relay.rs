//! The agent's signalling contact: a WebSocket speaking the tracker's protocol, through which
//! members that come back while the tracker is away reach this node again (see
//! [`crate::rejoin`]). The agent advertises it to the tracker; a swarm's node checks each
//! guest's certificate and lets it signal one connection, to itself.

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use f2f_control::protocol::{FromTracker, MAX_MESSAGE_LEN, ToTracker, parse, to_text};
use f2f_core::id::{PeerId, SwarmId};
use f2f_core::identity::{PublicKey, Signature};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;

use crate::agent::Agent;
use crate::node::{Command, NodeHandle};

/// Messages queued towards one guest.
const QUEUE: usize = 32;

/// The contact's routes: `/v1/signal`, as on the tracker.
pub(crate) fn router(agent: Agent) -> Router {
    Router::new()
        .route("/v1/signal", get(upgrade))
        .with_state(agent)
}

async fn upgrade(State(agent): State<Agent>, ws: WebSocketUpgrade) -> Response {
    ws.max_message_size(MAX_MESSAGE_LEN)
        .on_upgrade(move |socket| session(agent, socket))
}

async fn session(agent: Agent, socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::channel::<FromTracker>(QUEUE);
    let writer = tokio::spawn(async move {
        while let Some(msg) = rx.recv().await {
            let text = to_text(&msg).into();
            if sink.send(Message::Text(text)).await.is_err() {
                break;
            }
        }
    });
    if let Some((node, guest)) = admit(&agent, &mut stream, tx).await {
        while let Some(Ok(frame)) = stream.next().await {
            let text = match frame {
                Message::Text(text) => text,
                Message::Close(_) => break,
                _ => continue,
            };
            let Ok(msg) = parse::<ToTracker>(&text) else {
                break;
            };
            if node
                .commands
                .send(Command::FromGuest(guest, msg))
                .await
                .is_err()
            {
                break;
            }
        }
        let _ = node.commands.send(Command::GuestGone(guest)).await;
    }
    let _ = writer.await;
}

/// Reads the join and hands it to the swarm's node, which answers on `tx`.
async fn admit(
    agent: &Agent,
    stream: &mut futures_util::stream::SplitStream<WebSocket>,
    tx: mpsc::Sender<FromTracker>,
) -> Option<(NodeHandle, PeerId)> {
    let refuse = |message: &str| {
        let message = message.to_owned();
        let _ = tx.try_send(FromTracker::Error { message });
    };
    let Some(Ok(Message::Text(text))) = stream.next().await else {
        return None;
    };
    let Ok(ToTracker::Join {
        swarm,
        public_key,
        possession,
        certificate: Some(certificate),
        ..
    }) = parse::<ToTracker>(&text)
    else {
        refuse("a member only admits a join with a certificate");
        return None;
    };
    let Some(node) = agent.running(SwarmId::from_bytes(swarm)).await else {
        refuse("not a member of that swarm");
        return None;
    };
    let key = PublicKey::from_bytes(public_key);
    let guest = key.peer_id();
    let join = Command::Guest {
        key,
        possession: Signature::from_bytes(possession),
        certificate,
        tx: tx.clone(),
    };
    node.commands.send(join).await.ok()?;
    Some((node, guest))
}
