//! The agent's side of the tracker protocol: one WebSocket per swarm, pumped by a task into
//! two channels, so the node's event loop only sees messages; pinged every
//! [`KEEPALIVE`] so the tracker keeps the member.

use f2f_control::protocol::{FromTracker, KEEPALIVE, ToTracker, parse, to_text};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

/// Messages buffered each way.
const QUEUE: usize = 256;

/// Why the tracker could not be reached or refused us.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignalError {
    /// The WebSocket could not be opened.
    #[error("tracker unreachable: {0}")]
    Connect(String),
    /// The tracker closed the socket before answering.
    #[error("tracker closed the connection")]
    Closed,
    /// The tracker refused the join.
    #[error("tracker refused: {0}")]
    Refused(String),
}

/// An open tracker socket.
#[derive(Debug)]
pub struct TrackerLink {
    /// To the tracker (bounded; a full queue drops the message: signalling is best effort).
    pub tx: mpsc::Sender<ToTracker>,
    /// From the tracker; `None` once the socket closed.
    pub rx: mpsc::Receiver<FromTracker>,
}

/// Opens the socket at `url`, sends `join` and waits for the tracker's first answer.
///
/// # Errors
///
/// The socket cannot be opened, closes early, or the tracker refuses the join.
pub async fn join(url: &str, join: ToTracker) -> Result<(FromTracker, TrackerLink), SignalError> {
    let (socket, _) = tokio_tungstenite::connect_async(url)
        .await
        .map_err(|e| SignalError::Connect(e.to_string()))?;
    let (mut sink, mut stream) = socket.split();
    let (to_tx, mut to_rx) = mpsc::channel::<ToTracker>(QUEUE);
    let (from_tx, mut from_rx) = mpsc::channel::<FromTracker>(QUEUE);
    tokio::spawn(async move {
        // The tracker forgets a socket that stays silent; a ping is enough.
        let mut keepalive = tokio::time::interval(KEEPALIVE);
        keepalive.tick().await;
        loop {
            tokio::select! {
                _ = keepalive.tick() => {
                    if sink.send(Message::Ping(Vec::new().into())).await.is_err() {
                        break;
                    }
                }
                out = to_rx.recv() => match out {
                    Some(msg) => {
                        if sink.send(Message::Text(to_text(&msg).into())).await.is_err() {
                            break;
                        }
                    }
                    None => {
                        let _ = sink.close().await;
                        break;
                    }
                },
                incoming = stream.next() => match incoming {
                    Some(Ok(Message::Text(text))) => match parse::<FromTracker>(&text) {
                        Ok(msg) => {
                            if from_tx.try_send(msg).is_err() {
                                tracing::debug!("tracker message dropped: node busy");
                            }
                        }
                        Err(e) => tracing::warn!("bad tracker message: {e}"),
                    },
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_) | Message::Binary(_))) => {}
                    Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                },
            }
        }
    });
    to_tx.send(join).await.map_err(|_| SignalError::Closed)?;
    match from_rx.recv().await {
        Some(FromTracker::Error { message }) => Err(SignalError::Refused(message)),
        Some(first) => Ok((
            first,
            TrackerLink {
                tx: to_tx,
                rx: from_rx,
            },
        )),
        None => Err(SignalError::Closed),
    }
}
