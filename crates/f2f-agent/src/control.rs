//! The agent's side of the control plane's HTTP API: a peer certificate for a swarm, from the
//! viewer's CDN session token (`POST /v1/session`), and its renewal (`POST /v1/session/renew`).

use std::time::Duration;

use f2f_control::session::{RenewRequest, SessionGrant, SessionRequest};
use f2f_core::identity::{Certificate, Crypto, Keypair, PublicKey, prove_possession};
use f2f_core::wire::{decode_certificate, encode_certificate};

/// How long one API call may take.
const TIMEOUT: Duration = Duration::from_secs(3);

/// Why the control plane gave no certificate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// It could not be reached.
    #[error("control plane unreachable: {0}")]
    Unreachable(String),
    /// It refused (the status and its reason).
    #[error("control plane refused ({0}): {1}")]
    Refused(u16, String),
    /// Its answer does not decode, or certifies another key.
    #[error("bad answer from the control plane: {0}")]
    BadAnswer(String),
}

/// What the control plane granted.
#[derive(Clone, Debug)]
pub(crate) struct Granted {
    pub(crate) certificate: Certificate,
    pub(crate) authority: PublicKey,
    /// The session's private watermark pattern, when its token carries a watermark id.
    pub(crate) watermark: Option<[u8; 32]>,
}

/// The control plane's HTTP API.
#[derive(Clone, Debug)]
pub(crate) struct ControlClient {
    base: String,
    http: reqwest::Client,
}

/// The control plane's HTTP base for a tracker socket URL (`ws://host:port/v1/signal` →
/// `http://host:port`): both are served by `frog2frog control`.
pub(crate) fn api_base(tracker: &str) -> String {
    let (scheme, rest) = match tracker.split_once("://") {
        Some(("wss", rest)) => ("https", rest),
        Some((_, rest)) => ("http", rest),
        None => ("http", tracker),
    };
    let host = rest.split('/').next().unwrap_or(rest);
    format!("{scheme}://{host}")
}

impl ControlClient {
    pub(crate) fn new(base: String) -> Self {
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .build()
            .unwrap_or_default();
        Self { base, http }
    }

    /// A certificate for the swarm of `stream`, presenting the viewer's `token`.
    pub(crate) async fn session(
        &self,
        stream: &str,
        token: Option<String>,
        keypair: &Keypair,
        crypto: &dyn Crypto,
    ) -> Result<Granted, ControlError> {
        let request = SessionRequest {
            token,
            stream: stream.to_owned(),
            public_key: *keypair.public().as_bytes(),
            possession: *prove_possession(crypto, keypair).as_bytes(),
        };
        self.call("/v1/session", &request, keypair).await
    }

    /// A renewal of `cert`.
    pub(crate) async fn renew(
        &self,
        cert: &Certificate,
        keypair: &Keypair,
        crypto: &dyn Crypto,
    ) -> Result<Granted, ControlError> {
        let request = RenewRequest {
            certificate: encode_certificate(cert).to_vec(),
            possession: *prove_possession(crypto, keypair).as_bytes(),
        };
        self.call("/v1/session/renew", &request, keypair).await
    }

    async fn call<T: serde::Serialize>(
        &self,
        path: &str,
        body: &T,
        keypair: &Keypair,
    ) -> Result<Granted, ControlError> {
        let response = (self.http.post(format!("{}{path}", self.base)))
            .json(body)
            .send()
            .await
            .map_err(|e| ControlError::Unreachable(e.to_string()))?;
        let status = response.status();
        if !status.is_success() {
            let reason = response.text().await.unwrap_or_default();
            return Err(ControlError::Refused(
                status.as_u16(),
                reason.trim().to_owned(),
            ));
        }
        let grant: SessionGrant =
            (response.json().await).map_err(|e| ControlError::BadAnswer(e.to_string()))?;
        let cert = decode_certificate(grant.certificate.into())
            .map_err(|e| ControlError::BadAnswer(e.to_string()))?;
        if cert.public_key != keypair.public() {
            return Err(ControlError::BadAnswer(
                "certificate for another key".into(),
            ));
        }
        let watermark = match grant.watermark.as_deref().map(hex::decode) {
            None => None,
            Some(Ok(bytes)) => Some(
                <[u8; 32]>::try_from(bytes)
                    .map_err(|_| ControlError::BadAnswer("watermark pattern length".into()))?,
            ),
            Some(Err(e)) => return Err(ControlError::BadAnswer(e.to_string())),
        };
        Ok(Granted {
            certificate: cert,
            authority: PublicKey::from_bytes(grant.authority),
            watermark,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::api_base;

    #[test]
    fn the_api_sits_beside_the_signalling_socket() {
        assert_eq!(
            api_base("ws://127.0.0.1:8090/v1/signal"),
            "http://127.0.0.1:8090"
        );
        assert_eq!(
            api_base("wss://control.example/v1/signal"),
            "https://control.example"
        );
    }
}
