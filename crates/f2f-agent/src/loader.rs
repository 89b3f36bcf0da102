//! The segment loader API: what the proxy uses, and what a program embedding the engine calls.
//!
//! [`Agent::load_segment`](crate::Agent::load_segment) takes a segment URL the agent has seen
//! listed in a manifest (fetched through [`Agent::manifest`](crate::Agent::manifest) or the
//! proxy) and returns its verified bytes, from peers or the CDN as the engine decides, within a
//! deadline. Dropping the future cancels the load. Segments the agent does not know (init
//! segments, personal ads, anything unlisted) come straight from the CDN.

use std::time::Duration;

use bytes::Bytes;

use crate::cdn::CdnError;

/// Where a load may take bytes from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Source {
    /// The engine decides: peers when they can make the deadline, the CDN otherwise.
    #[default]
    Auto,
    /// The CDN only (the engine is bypassed for this request).
    CdnOnly,
}

/// How a failed CDN request is retried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all (at least one).
    pub attempts: u32,
    /// Wait before the second attempt; doubled for each one after.
    pub backoff: Duration,
    /// Other CDN hosts serving the same paths (`host` or `host:port`), tried in turn after
    /// the original.
    pub alternate_hosts: Vec<String>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 3,
            backoff: Duration::from_millis(200),
            alternate_hosts: Vec::new(),
        }
    }
}

/// One segment request.
#[derive(Clone, Debug)]
pub struct LoadRequest {
    /// The segment's absolute URL, as the manifest lists it (with the viewer's tokens).
    pub url: String,
    /// When the player needs it, from now. Default: one segment duration.
    pub deadline: Option<Duration>,
    /// Where it may come from.
    pub source: Source,
    /// What to do when the CDN fails.
    pub retry: RetryPolicy,
}

impl LoadRequest {
    /// A request for `url` with the defaults.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            deadline: None,
            source: Source::Auto,
            retry: RetryPolicy::default(),
        }
    }
}

/// A loaded segment.
#[derive(Clone, Debug)]
pub struct Segment {
    /// Its bytes (verified against the swarm's trusted hash when any came from peers).
    pub bytes: Bytes,
    /// Bytes that came from peers.
    pub p2p_bytes: u64,
    /// Bytes that came from the CDN.
    pub cdn_bytes: u64,
    /// `Content-Type` when the CDN said (direct fetches only).
    pub content_type: Option<String>,
}

/// Why a load failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The URL is not an absolute http(s) URL.
    #[error("not an absolute http(s) URL")]
    BadUrl,
    /// The CDN failed on every attempt (the last error).
    #[error(transparent)]
    Cdn(#[from] CdnError),
    /// Neither peers nor the CDN delivered in time.
    #[error("no source delivered within the deadline")]
    Timeout,
}
