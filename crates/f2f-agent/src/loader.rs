//! The segment loader API: what the proxy uses, and what a program embedding the engine calls.
//!
//! [`Agent::load_segment`](crate::Agent::load_segment) takes a segment URL the agent has seen
//! listed in a manifest (fetched through [`Agent::manifest`](crate::Agent::manifest) or the
//! proxy) and returns its verified bytes, from peers or the CDN as the engine decides, within a
//! deadline. Dropping the future cancels the load. Segments the agent does not know (init
//! segments, personal ads, anything unlisted) come straight from the CDN.
//!
//! Requests are served in deadline order (the engine schedules earliest deadline first), so a
//! request's priority is its deadline. [`Agent::prefetch`](crate::Agent::prefetch) hints at a
//! segment the player will want: the swarm loads it into the node's store at its own deadline,
//! and the later request is answered from there. Whether the node may ever fetch a new
//! segment from the CDN first is decided when the segment is listed: a
//! [`Source::P2pPreferred`] request cancels a first fetch that has not started, and the
//! agent-wide setting (`Config::scheduler.source`) keeps the node from being a first fetcher
//! at all.

use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::cdn::CdnError;

/// Where a load may take bytes from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Source {
    /// The engine decides: peers when they can make the deadline, the CDN otherwise.
    #[default]
    Auto,
    /// Peers, and the CDN only when the deadline demands: this node does not fetch the
    /// segment as one of the swarm's first fetchers (unless that fetch already started when
    /// the playlist listed it; the agent-wide `Config::scheduler.source` decides that too).
    P2pPreferred,
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
    /// Where to report the load's progress, if anywhere.
    pub events: Option<mpsc::UnboundedSender<LoadEvent>>,
}

/// What a load is doing, as it happens.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoadEvent {
    /// The swarm took the request (peers, or the CDN when the engine decides so).
    Swarm,
    /// Verified bytes from peers arrived.
    PeerBytes(u64),
    /// A direct CDN request started (the first is attempt 0).
    CdnAttempt(u32),
}

impl LoadRequest {
    /// A request for `url` with the defaults.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            deadline: None,
            source: Source::Auto,
            retry: RetryPolicy::default(),
            events: None,
        }
    }

    pub(crate) fn report(&self, event: LoadEvent) {
        if let Some(events) = &self.events {
            let _ = events.send(event);
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
