//! Remote configuration on the agent: a server-sent-events stream from the control plane
//! (`/v1/config/stream`) gives the newest signed version on connect and each new one as the
//! operator makes it. A version is applied only if the operator signed it, it is newer than
//! the one running, and the engine accepts every setting on top of the agent's own
//! configuration; otherwise the last good one stays. The stream reconnects after a failure,
//! and what changed meanwhile arrives with the reconnection.

use std::time::Duration;

use f2f_control::config::{MAX_CONFIG_LEN, SignedConfig};
use f2f_core::identity::{Bls, PublicKey};
use futures_util::StreamExt;

use crate::agent::Agent;

/// Wait before reconnecting a lost stream, doubled up to [`MAX_BACKOFF`].
const BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Follows the control plane's config stream for as long as the agent lives.
pub(crate) async fn follow(agent: Agent, api: String, operator: PublicKey) {
    let http = reqwest::Client::new();
    let crypto = Bls::new();
    let mut backoff = BACKOFF;
    loop {
        match stream_once(&agent, &http, &api, &operator, &crypto).await {
            Ok(()) => backoff = BACKOFF,
            Err(e) => tracing::debug!("config stream: {e}"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

async fn stream_once(
    agent: &Agent,
    http: &reqwest::Client,
    api: &str,
    operator: &PublicKey,
    crypto: &Bls,
) -> Result<(), reqwest::Error> {
    let response = http
        .get(format!("{api}/v1/config/stream"))
        .send()
        .await?
        .error_for_status()?;
    let mut body = response.bytes_stream();
    let mut buffer = Vec::new();
    while let Some(chunk) = body.next().await {
        buffer.extend_from_slice(&chunk?);
        // Events end with a blank line; an oversized one is dropped, not buffered.
        while let Some(end) = buffer.windows(2).position(|w| w == b"\n\n") {
            let event: Vec<u8> = buffer.drain(..end + 2).collect();
            if let Some(signed) = config_event(&event) {
                match signed.verify(crypto, operator) {
                    Ok(remote) => agent.apply_config(&remote),
                    Err(e) => agent.config_refused(&e.to_string()),
                }
            }
        }
        if buffer.len() > 2 * MAX_CONFIG_LEN {
            buffer.clear();
        }
    }
    Ok(())
}

/// The signed config an SSE event carries (`event: config`, `data: <json>`).
fn config_event(event: &[u8]) -> Option<SignedConfig> {
    let text = std::str::from_utf8(event).ok()?;
    let mut kind = None;
    let mut data = String::new();
    for line in text.lines() {
        if let Some(k) = line.strip_prefix("event:") {
            kind = Some(k.trim());
        } else if let Some(d) = line.strip_prefix("data:") {
            data.push_str(d.trim_start());
        }
    }
    (kind == Some("config"))
        .then(|| serde_json::from_str(&data).ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::config_event;

    #[test]
    fn reads_config_events_and_skips_the_rest() {
        let signature = "00".repeat(96);
        let event =
            format!("event: config\ndata: {{\"body\":\"{{}}\",\"signature\":\"{signature}\"}}\n\n");
        let signed = config_event(event.as_bytes()).unwrap();
        assert_eq!(signed.body, "{}");
        assert!(config_event(b"event: none\ndata: \n\n").is_none());
        assert!(config_event(b": keep-alive\n\n").is_none());
        assert!(config_event(b"event: config\ndata: {not json\n\n").is_none());
    }
}
