//! Remote configuration on the agent: a server-sent-events stream from the control plane
//! (`/v1/config/stream`) gives the newest signed version on connect and each new one as the
//! operator makes it. A version is applied only if the operator signed it, it is newer than
//! the one running, and the engine accepts every setting on top of the agent's own
//! configuration; otherwise the last good one stays. The stream also brings the authority's
//! signed revocation list, handed to every engine (which checks it). The stream reconnects after a failure,
//! and what changed meanwhile arrives with the reconnection.

use std::time::Duration;

use f2f_control::config::{MAX_CONFIG_LEN, SignedConfig, WireRevocations};
use f2f_core::identity::{Bls, PublicKey, RevocationList};
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
            match parse_event(&event) {
                Some(Pushed::Config(signed)) => match signed.verify(crypto, operator) {
                    Ok(remote) => agent.apply_config(&remote),
                    Err(e) => agent.config_refused(&e.to_string()),
                },
                // The engines check the authority's signature.
                Some(Pushed::Revocations(list)) => agent.apply_revocations(list),
                None => {}
            }
        }
        if buffer.len() > 2 * MAX_CONFIG_LEN {
            buffer.clear();
        }
    }
    Ok(())
}

/// What the config stream pushes.
enum Pushed {
    Config(SignedConfig),
    Revocations(RevocationList),
}

/// What an SSE event carries (`event: config|revocations`, `data: <json>`).
fn parse_event(event: &[u8]) -> Option<Pushed> {
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
    match kind? {
        "config" => serde_json::from_str(&data).ok().map(Pushed::Config),
        "revocations" => {
            let wire: WireRevocations = serde_json::from_str(&data).ok()?;
            RevocationList::try_from(&wire)
                .ok()
                .map(Pushed::Revocations)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::{Pushed, parse_event};

    #[test]
    fn reads_config_and_revocation_events_and_skips_the_rest() {
        let signature = "00".repeat(96);
        let event =
            format!("event: config\ndata: {{\"body\":\"{{}}\",\"signature\":\"{signature}\"}}\n\n");
        let Some(Pushed::Config(signed)) = parse_event(event.as_bytes()) else {
            panic!("a config event");
        };
        assert_eq!(signed.body, "{}");
        let session = "11".repeat(16);
        let event = format!(
            "event: revocations\ndata: {{\"serial\":2,\"sessions\":[\"{session}\"],\"keys\":[],\"signature\":\"{signature}\"}}\n\n"
        );
        let Some(Pushed::Revocations(list)) = parse_event(event.as_bytes()) else {
            panic!("a revocations event");
        };
        assert_eq!((list.serial, list.sessions.len()), (2, 1));
        assert!(parse_event(b"event: none\ndata: \n\n").is_none());
        assert!(parse_event(b": keep-alive\n\n").is_none());
        assert!(parse_event(b"event: config\ndata: {not json\n\n").is_none());
        let bad = format!(
            "event: revocations\ndata: {{\"serial\":1,\"sessions\":[\"zz\"],\"keys\":[],\"signature\":\"{signature}\"}}\n\n"
        );
        assert!(parse_event(bad.as_bytes()).is_none());
    }
}
