//! The agent's own HTTP requests to the CDN: manifests, segments and byte ranges, with the
//! viewer's tokens (they never leave the agent otherwise).

use std::time::Duration;

use bytes::Bytes;

/// Why a CDN request failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CdnError {
    /// The CDN answered with an error status.
    #[error("CDN answered {0}")]
    Status(u16),
    /// No complete answer within the request timeout.
    #[error("CDN request timed out")]
    Timeout,
    /// The connection failed.
    #[error("CDN unreachable: {0}")]
    Network(String),
    /// A range request got a body of another length.
    #[error("CDN sent {got} bytes for a {wanted}-byte range")]
    ShortRange {
        /// Bytes asked for.
        wanted: u64,
        /// Bytes received.
        got: u64,
    },
}

/// A CDN response: its body and content type.
#[derive(Clone, Debug)]
pub struct CdnBody {
    /// The body.
    pub bytes: Bytes,
    /// `Content-Type`, if sent.
    pub content_type: Option<String>,
}

/// An HTTP client for the CDN.
#[derive(Clone, Debug)]
pub struct Cdn {
    client: reqwest::Client,
}

impl Cdn {
    /// A client whose requests give up after `timeout`.
    pub fn new(timeout: Duration) -> Self {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .pool_max_idle_per_host(16)
            .build()
            .expect("a client with only timeouts set builds");
        Self { client }
    }

    /// GETs `url`, the bytes from `offset` to `end` (exclusive; `None`: to the end).
    ///
    /// # Errors
    ///
    /// Network failures, timeouts, error statuses and range bodies of the wrong length.
    pub async fn get(&self, url: &str, offset: u64, end: Option<u64>) -> Result<CdnBody, CdnError> {
        let mut request = self.client.get(url);
        let ranged = offset > 0 || end.is_some();
        if ranged {
            let last = end.map_or(String::new(), |e| (e.saturating_sub(1)).to_string());
            request = request.header(reqwest::header::RANGE, format!("bytes={offset}-{last}"));
        }
        let response = request.send().await.map_err(classify)?;
        let status = response.status();
        if !status.is_success() {
            return Err(CdnError::Status(status.as_u16()));
        }
        let content_type = (response.headers().get(reqwest::header::CONTENT_TYPE))
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let partial = status == reqwest::StatusCode::PARTIAL_CONTENT;
        let mut bytes = response.bytes().await.map_err(classify)?;
        if ranged && !partial {
            // The server ignored the range and sent the whole body: cut the range out.
            let from = (offset as usize).min(bytes.len());
            let to = end.map_or(bytes.len(), |e| (e as usize).min(bytes.len()));
            bytes = bytes.slice(from..to.max(from));
        }
        if let Some(end) = end {
            let wanted = end.saturating_sub(offset);
            if bytes.len() as u64 != wanted {
                let got = bytes.len() as u64;
                return Err(CdnError::ShortRange { wanted, got });
            }
        }
        Ok(CdnBody {
            bytes,
            content_type,
        })
    }
}

fn classify(e: reqwest::Error) -> CdnError {
    if e.is_timeout() {
        CdnError::Timeout
    } else {
        // Without the URL: it carries the viewer's token.
        CdnError::Network(e.without_url().to_string())
    }
}
