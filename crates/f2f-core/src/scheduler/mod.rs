//! Download scheduling: for every segment this node needs, which source, and when.
//!
//! The rules, in order:
//! - A peer transfer that stops making progress is abandoned at once for the next source that
//!   can still make the deadline — the CDN when no peer can. P2P never stalls the player.
//! - A segment some linked neighbour holds goes to the best-ranked holder (earliest expected
//!   arrival, see [`SourceRanker`]) if that arrival fits before the deadline.
//! - Nobody holds it yet: about `cdn_budget` peers in the *whole swarm* fetch it from the CDN
//!   straight away. Each peer knows whether it is one of them from its per-segment rank and the
//!   estimated swarm size ([`crate::swarm_size`]), so the CDN load per segment does not grow
//!   with the audience. Peers ranked further back wait a little longer per rank step before
//!   they fetch a segment still nobody announced, covering a mis-estimated swarm size.
//! - Otherwise wait for an announcement, until the deadline leaves just enough time for the
//!   CDN: then the CDN.

mod ranking;

use std::collections::BTreeMap;

use bytes::Bytes;

pub use ranking::{BaselineRanker, PeerMeasurements, SourceRanker};

use crate::config::{SchedulerConfig, SourcePreference};
use crate::id::{PeerId, SegmentKey};
use crate::segment::SegmentData;
use crate::telemetry::FallbackReason;
use crate::time::{Duration, Instant};

/// Identifies one CDN fetch the engine asked the driver to make.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FetchId(pub u64);

/// Where a segment's bytes came from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ByteSources {
    /// Bytes from the CDN.
    pub cdn: u64,
    /// Bytes from peers.
    pub p2p: u64,
}

/// Why the CDN was chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CdnWhy {
    /// This node is one of the swarm's first fetchers for the segment.
    First,
    /// The deadline left no time for the peers that hold the segment.
    Deadline,
    /// The deadline came and no neighbour had even announced the segment: the swarm spreads
    /// too slowly for its size.
    Unannounced,
    /// CDN-only mode, or a personal (SSAI) segment.
    Direct,
    /// A peer transfer failed.
    Fallback,
    /// Retry after a failed CDN attempt.
    Retry,
    /// The CDN's share of a segment split with a peer too slow for all of it.
    Split,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Fetch {
    Idle,
    Peer {
        peer: PeerId,
        /// Where this transfer started in the segment.
        offset: u64,
        /// Where it stops (the split point when the CDN fetches the rest); `None`: the end.
        end: Option<u64>,
        sent: Instant,
        first_byte_by: Instant,
        first_byte: Option<Instant>,
        last_progress: Instant,
    },
    Cdn {
        id: FetchId,
    },
    /// A CDN attempt failed; the next one starts at `at`.
    CdnBackoff {
        at: Instant,
    },
}

#[derive(Debug)]
struct Wanted {
    listed_at: Instant,
    size_hint: Option<u64>,
    /// Media duration, when the playlist said.
    duration: Option<Duration>,
    shareable: bool,
    deadline: Option<Instant>,
    /// When this node fetches from the CDN if no neighbour announced the segment by then.
    first_fetch_at: Option<Instant>,
    fetch: Fetch,
    data: SegmentData,
    total: Option<u64>,
    sources: ByteSources,
    /// Peers that failed this segment or do not hold it.
    tried: Vec<PeerId>,
    /// Peers that were busy, and until when we leave them alone.
    busy: Vec<(PeerId, Instant)>,
    /// A peer transfer of this segment failed: no waiting for announcements any more.
    fell_back: bool,
    cdn_attempts: u32,
    /// Bytes from `split` on come from the CDN in parallel ([`Tail`]); the peer or CDN transfer
    /// of the prefix stops there.
    split: Option<u64>,
    tail: Option<Tail>,
}

/// The CDN's share of a split segment: bytes from the split point to the end, fetched while a
/// slow peer delivers the prefix, so the peer's bytes are never cut off by a late CDN fetch.
/// Requested only when the deadline demands it (`id` is `None` until then): a fast holder
/// that turns up first takes the whole rest instead.
#[derive(Debug)]
struct Tail {
    id: Option<FetchId>,
    body: Option<Bytes>,
}

impl Wanted {
    /// `peer` answered `Busy` for this segment and is still left alone.
    fn is_busy(&self, peer: &PeerId, now: Instant) -> bool {
        self.busy.iter().any(|(p, until)| p == peer && *until > now)
    }

    /// The prefix is complete up to the split; only the CDN tail is missing.
    fn waiting_for_tail(&self) -> bool {
        self.split == Some(self.data.len())
    }
}

/// A peer that announced the segment, as seen when deciding.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Candidate {
    pub(crate) peer: PeerId,
    pub(crate) measurements: PeerMeasurements,
    /// The peer holds the whole segment (otherwise it relays while receiving).
    pub(crate) complete: bool,
}

/// What the engine must do for the scheduler.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Action {
    Request {
        peer: PeerId,
        key: SegmentKey,
        offset: u64,
        end: Option<u64>,
    },
    Cancel {
        peer: PeerId,
        key: SegmentKey,
    },
    FetchCdn {
        id: FetchId,
        key: SegmentKey,
        offset: u64,
        end: Option<u64>,
        why: CdnWhy,
    },
    Fallback {
        peer: PeerId,
        key: SegmentKey,
        reason: FallbackReason,
    },
}

/// Result of feeding bytes to the scheduler.
#[derive(Debug, PartialEq)]
pub(crate) enum Progress {
    /// Not something we asked for (late, duplicate, or unsolicited); dropped.
    Unexpected,
    /// Bytes that contradict the transfer (offset, total, size limit); the sender misbehaved.
    Violation(&'static str),
    /// Accepted, more to come.
    Partial,
    /// The peer delivered its whole range of a split segment; the CDN's part is still on its
    /// way. `bytes` in `elapsed` since its first byte measure the peer.
    RangeDone { bytes: u64, elapsed: Duration },
    /// The segment is complete.
    Complete {
        data: SegmentData,
        sources: ByteSources,
        from: Option<PeerId>,
        elapsed: Duration,
        /// Not a personal (SSAI) segment: may be stored and offered to peers.
        shareable: bool,
        /// Media duration, if known.
        duration: Option<Duration>,
    },
}

/// Per-node download state.
#[derive(Debug)]
pub(crate) struct Scheduler {
    wanted: BTreeMap<SegmentKey, Wanted>,
    cdn_fetches: BTreeMap<FetchId, SegmentKey>,
    next_fetch: u64,
    cdn_rtt: Option<Duration>,
    cdn_bps: Option<f64>,
    size_estimate: Option<f64>,
}

impl Scheduler {
    pub(crate) fn new() -> Self {
        Self {
            wanted: BTreeMap::new(),
            cdn_fetches: BTreeMap::new(),
            next_fetch: 0,
            cdn_rtt: None,
            cdn_bps: None,
            size_estimate: None,
        }
    }

    /// Whether `key` is waiting for a source (so the engine need not gather candidates).
    pub(crate) fn needs_source(&self, key: &SegmentKey) -> bool {
        self.wanted.get(key).is_some_and(|w| {
            matches!(w.fetch, Fetch::Idle | Fetch::CdnBackoff { .. }) && !w.waiting_for_tail()
        })
    }

    pub(crate) fn is_wanted(&self, key: &SegmentKey) -> bool {
        self.wanted.contains_key(key)
    }

    pub(crate) fn keys(&self) -> Vec<SegmentKey> {
        self.wanted.keys().copied().collect()
    }

    /// Starts tracking a segment the playlist listed. `first_fetch_at` is when this node fetches
    /// it from the CDN unless a neighbour announces it first (`None`: never as a first fetcher).
    pub(crate) fn list(
        &mut self,
        key: SegmentKey,
        size_hint: Option<u64>,
        duration: Option<Duration>,
        shareable: bool,
        first_fetch_at: Option<Instant>,
        now: Instant,
    ) {
        if let Some(w) = self.wanted.get_mut(&key) {
            // Prefetched on a neighbour's announcement; the playlist now confirms it.
            w.size_hint = w.size_hint.or(size_hint);
            w.duration = w.duration.or(duration);
            w.shareable &= shareable;
            w.first_fetch_at = w.first_fetch_at.or(first_fetch_at);
            return;
        }
        self.wanted.entry(key).or_insert_with(|| Wanted {
            listed_at: now,
            size_hint,
            duration,
            shareable,
            deadline: None,
            first_fetch_at,
            fetch: Fetch::Idle,
            data: SegmentData::new(),
            total: None,
            sources: ByteSources::default(),
            tried: Vec::new(),
            busy: Vec::new(),
            fell_back: false,
            cdn_attempts: 0,
            split: None,
            tail: None,
        });
    }

    /// The received prefix of a segment still arriving, and its total length: what this node
    /// can already relay.
    pub(crate) fn partial(&self, key: &SegmentKey) -> Option<(&SegmentData, u64)> {
        let w = self.wanted.get(key)?;
        Some((&w.data, w.total?)).filter(|(d, _)| !d.is_empty() && w.shareable)
    }

    /// The player needs `key` by `deadline`.
    pub(crate) fn set_deadline(&mut self, key: &SegmentKey, deadline: Instant) {
        if let Some(w) = self.wanted.get_mut(key) {
            w.deadline = Some(w.deadline.map_or(deadline, |d| d.min(deadline)));
        }
    }

    /// Stops fetching `key`; returns the actions that release its source.
    pub(crate) fn remove(&mut self, key: &SegmentKey) -> Vec<Action> {
        let Some(w) = self.forget(key) else {
            return Vec::new();
        };
        match w.fetch {
            Fetch::Peer { peer, .. } => vec![Action::Cancel { peer, key: *key }],
            Fetch::Cdn { id } => {
                self.cdn_fetches.remove(&id);
                Vec::new()
            }
            Fetch::Idle | Fetch::CdnBackoff { .. } => Vec::new(),
        }
    }

    /// Segments listed long ago and never completed.
    pub(crate) fn stale(&self, forget_after: Duration, now: Instant) -> Vec<SegmentKey> {
        self.wanted
            .iter()
            .filter(|(_, w)| {
                w.listed_at + forget_after <= now
                    && w.deadline.is_none_or(|d| d + forget_after <= now)
            })
            .map(|(k, _)| *k)
            .collect()
    }

    fn expected_size(&self, w: &Wanted, cfg: &SchedulerConfig) -> u64 {
        w.total
            .or(w.size_hint)
            .or(self.size_estimate.map(|s| s as u64))
            .unwrap_or(cfg.segment_size_prior)
    }

    /// Bytes the current prefix source still has to deliver: up to the split, or the end.
    fn remaining(&self, w: &Wanted, cfg: &SchedulerConfig) -> u64 {
        w.split
            .unwrap_or_else(|| self.expected_size(w, cfg))
            .saturating_sub(w.data.len())
    }

    fn cdn_eta(&self, bytes: u64, cfg: &SchedulerConfig) -> Duration {
        let rtt = self.cdn_rtt.unwrap_or(cfg.cdn_rtt_prior);
        let bps = self
            .cdn_bps
            .unwrap_or(cfg.cdn_throughput_prior_bps)
            .max(1.0);
        rtt + Duration::from_secs_f64(bytes as f64 * 8.0 / bps)
    }

    /// When the current peer transfer of `key` will have everything, at the rate it has
    /// delivered since its first byte (`None`: no peer transfer, or no byte yet).
    fn projected_finish(&self, w: &Wanted, cfg: &SchedulerConfig, now: Instant) -> Option<Instant> {
        let Fetch::Peer {
            offset,
            first_byte: Some(first),
            ..
        } = w.fetch
        else {
            return None;
        };
        let remaining = self.remaining(w, cfg);
        let got = w.data.len().saturating_sub(offset) as f64;
        let secs = now.saturating_duration_since(first).as_secs_f64().max(0.05);
        let rate = (got * 8.0 / secs).max(1.0);
        Some(now + Duration::from_secs_f64(remaining as f64 * 8.0 / rate))
    }

    /// Whether the current peer transfer of `key` is on course to miss its deadline (a faster
    /// holder, if one turns up, should take over).
    pub(crate) fn is_lagging(&self, key: &SegmentKey, cfg: &SchedulerConfig, now: Instant) -> bool {
        self.wanted.get(key).is_some_and(|w| {
            let finish = self.projected_finish(w, cfg, now);
            matches!((finish, w.deadline), (Some(f), Some(d)) if f + cfg.deadline_margin > d)
        })
    }

    /// Decides what to do for `key` now. `holders` are linked neighbours that announced it.
    pub(crate) fn decide(
        &mut self,
        key: &SegmentKey,
        holders: &[Candidate],
        ranker: &dyn SourceRanker,
        cfg: &SchedulerConfig,
        now: Instant,
    ) -> Vec<Action> {
        let mut actions = self.check_transfer(key, cfg, now);
        let Some(w) = self.wanted.get(key) else {
            return actions;
        };
        match w.fetch {
            Fetch::Cdn { .. } | Fetch::Peer { .. } => return actions,
            Fetch::CdnBackoff { at } if at > now => return actions,
            Fetch::CdnBackoff { .. } => {
                actions.push(self.start_cdn(key, CdnWhy::Retry));
                return actions;
            }
            Fetch::Idle if w.waiting_for_tail() => return actions,
            Fetch::Idle => {}
        }
        if cfg.source == SourcePreference::CdnOnly || !w.shareable {
            if w.deadline.is_some() {
                actions.push(self.start_cdn(key, CdnWhy::Direct));
            }
            return actions;
        }
        let remaining = self.remaining(w, cfg);
        let cdn_by = self.cdn_deadline(w, cfg);
        if cdn_by.is_some_and(|by| now + cfg.stall_timeout / 4 >= by) {
            // At the last safe moment for the CDN: no new gamble on a peer (one that vanished
            // without closing would only be noticed after the deadline).
            let why = if holders.is_empty() {
                CdnWhy::Unannounced
            } else {
                CdnWhy::Deadline
            };
            actions.push(self.start_cdn(key, why));
            return actions;
        }
        let best = holders
            .iter()
            .filter(|c| !w.tried.contains(&c.peer))
            .filter(|c| !w.is_busy(&c.peer, now))
            // To resume past bytes we already hold, a relay still receiving is unlikely to be
            // ahead of us.
            .filter(|c| c.complete || w.data.is_empty())
            .filter_map(|c| {
                ranker
                    .peer_eta(&c.measurements, remaining)
                    .map(|eta| (eta, c))
            })
            .min_by(|a, b| a.0.cmp(&b.0));
        if let Some((eta, c)) = best {
            let fits = w
                .deadline
                .is_none_or(|d| now + eta + cfg.deadline_margin <= d);
            // A peer too slow for the whole segment still pays for the bytes it delivers before
            // the CDN must take over: the segment is split, the peer sends what it can and the
            // CDN fetches the rest in parallel (a range request). Early in the window a faster
            // holder may still turn up, so only split in the second half.
            let worth_a_prefix = cdn_by.is_some_and(|by| {
                let half = w.listed_at + by.saturating_duration_since(w.listed_at) / 2;
                now >= half && by > now + cfg.stall_timeout
            });
            let split = match (fits, cdn_by) {
                (false, Some(by)) if worth_a_prefix && w.split.is_none() => {
                    split_point(w.data.len(), remaining, eta, by, now)
                }
                _ => None,
            };
            if fits || split.is_some() {
                if let Some(at) = split {
                    let w = self.wanted.get_mut(key).expect("present");
                    w.split = Some(at);
                    w.tail = Some(Tail {
                        id: None,
                        body: None,
                    });
                    actions.extend(self.request_due_tail(key, cfg, now));
                }
                let load_wait = cfg.stall_timeout * (u32::from(c.measurements.load) + 1);
                let cdn_by = self.wanted.get(key).and_then(|w| self.cdn_deadline(w, cfg));
                actions.push(self.start_peer(key, c.peer, load_wait, cdn_by, now));
                return actions;
            }
        }
        if w.fell_back && w.deadline.is_some() {
            // A transfer failed and no other holder can take over: the CDN, at once.
            actions.push(self.start_cdn(key, CdnWhy::Fallback));
        } else if cdn_by.is_some_and(|by| now >= by) {
            let why = if holders.is_empty() {
                CdnWhy::Unannounced
            } else {
                CdnWhy::Deadline
            };
            actions.push(self.start_cdn(key, why));
        } else if holders.is_empty()
            && cfg.source == SourcePreference::Auto
            && w.first_fetch_at.is_some_and(|t| now >= t)
        {
            actions.push(self.start_cdn(key, CdnWhy::First));
        }
        actions
    }

    /// Moves a transfer that is on course to miss its deadline to a holder of the whole segment
    /// that can finish clearly sooner, resuming from the bytes already received (a slow relay
    /// chain should not hold a viewer hostage while a complete copy sits next door).
    pub(crate) fn upgrade(
        &mut self,
        key: &SegmentKey,
        holders: &[Candidate],
        ranker: &dyn SourceRanker,
        cfg: &SchedulerConfig,
        now: Instant,
    ) -> Vec<Action> {
        let Some(w) = self.wanted.get(key) else {
            return Vec::new();
        };
        let Fetch::Peer { peer: current, .. } = w.fetch else {
            return Vec::new();
        };
        let (Some(finish), Some(deadline)) = (self.projected_finish(w, cfg, now), w.deadline)
        else {
            return Vec::new();
        };
        let cdn_by = self.cdn_deadline(w, cfg);
        if finish + cfg.deadline_margin <= deadline
            || cdn_by.is_some_and(|by| now + cfg.stall_timeout / 4 >= by)
        {
            // On course, or too late for a gamble on a new peer: the CDN takes over if needed.
            return Vec::new();
        }
        let remaining = self.remaining(w, cfg);
        let better = holders
            .iter()
            .filter(|c| c.complete && c.peer != current && !w.tried.contains(&c.peer))
            .filter(|c| !w.is_busy(&c.peer, now))
            .filter_map(|c| {
                ranker
                    .peer_eta(&c.measurements, remaining)
                    .map(|eta| (eta, c.peer))
            })
            .min_by(|a, b| a.0.cmp(&b.0))
            .filter(|(eta, _)| now + eta.mul_f64(1.25) < finish);
        let Some((_, peer)) = better else {
            return Vec::new();
        };
        let w = self.wanted.get_mut(key).expect("present");
        w.tried.push(current);
        // The faster holder takes the whole rest unless the CDN is already on the tail.
        Self::unsplit(w);
        vec![
            Action::Cancel {
                peer: current,
                key: *key,
            },
            self.start_peer(key, peer, cfg.stall_timeout, cdn_by, now),
        ]
    }

    /// Asks `peer` for the rest of `key`. Without a first byte after `first_byte_wait`, or by
    /// the time only the CDN can still make the deadline (`cdn_by`), the transfer is given up.
    fn start_peer(
        &mut self,
        key: &SegmentKey,
        peer: PeerId,
        first_byte_wait: Duration,
        cdn_by: Option<Instant>,
        now: Instant,
    ) -> Action {
        let first_byte_by = match cdn_by {
            Some(by) => (now + first_byte_wait).min(by),
            None => now + first_byte_wait,
        };
        let w = self.wanted.get_mut(key).expect("present");
        let (offset, end) = (w.data.len(), w.split);
        w.fetch = Fetch::Peer {
            peer,
            offset,
            end,
            sent: now,
            first_byte_by,
            first_byte: None,
            last_progress: now,
        };
        Action::Request {
            peer,
            key: *key,
            offset,
            end,
        }
    }

    /// When the CDN must start on the tail of a split segment to have it by the deadline.
    fn tail_by(&self, w: &Wanted, cfg: &SchedulerConfig) -> Option<Instant> {
        let bytes = self.expected_size(w, cfg).saturating_sub(w.split?);
        self.cdn_start_by(w, bytes, cfg.deadline_margin, cfg)
    }

    /// Requests the tail of a split segment from the CDN once its time has come.
    fn request_due_tail(
        &mut self,
        key: &SegmentKey,
        cfg: &SchedulerConfig,
        now: Instant,
    ) -> Option<Action> {
        let w = self.wanted.get(key)?;
        let pending = w.tail.as_ref().is_some_and(|t| t.id.is_none());
        if !pending || self.tail_by(w, cfg).is_none_or(|by| now < by) {
            return None;
        }
        let id = self.new_fetch(key);
        let w = self.wanted.get_mut(key).expect("present");
        let at = w.split.expect("a tail has a split");
        w.tail.as_mut().expect("pending").id = Some(id);
        Some(Action::FetchCdn {
            id,
            key: *key,
            offset: at,
            end: None,
            why: CdnWhy::Split,
        })
    }

    /// Drops a split whose tail was not requested yet: the rest goes to one source again.
    fn unsplit(w: &mut Wanted) -> bool {
        let pending = w.tail.as_ref().is_some_and(|t| t.id.is_none());
        if pending {
            w.split = None;
            w.tail = None;
        }
        pending
    }

    /// Abandons a peer transfer that stalled or can no longer make the deadline. A stalled
    /// transfer goes back to source selection; one that is merely too slow goes to the CDN,
    /// keeping the bytes already received.
    pub(crate) fn check_transfer(
        &mut self,
        key: &SegmentKey,
        cfg: &SchedulerConfig,
        now: Instant,
    ) -> Vec<Action> {
        let mut actions: Vec<Action> = self.request_due_tail(key, cfg, now).into_iter().collect();
        actions.extend(self.check_peer_transfer(key, cfg, now));
        actions
    }

    fn check_peer_transfer(
        &mut self,
        key: &SegmentKey,
        cfg: &SchedulerConfig,
        now: Instant,
    ) -> Vec<Action> {
        let Some(w) = self.wanted.get(key) else {
            return Vec::new();
        };
        let Fetch::Peer {
            peer,
            first_byte_by,
            first_byte,
            last_progress,
            ..
        } = w.fetch
        else {
            return Vec::new();
        };
        let stalled = match first_byte {
            None => now >= first_byte_by,
            Some(_) => now >= last_progress + cfg.stall_timeout,
        };
        // A slow transfer keeps going until the last moment the CDN could still make the
        // deadline: relayed bytes arrive in bursts, and a relay's source may speed up.
        let too_slow = match (w.deadline, first_byte, self.cdn_deadline(w, cfg)) {
            (Some(deadline), Some(_), Some(cdn_by)) if now >= cdn_by => {
                let remaining = self.remaining(w, cfg);
                let finish = self.projected_finish(w, cfg, now).unwrap_or(deadline);
                // Past this point there is no time to wait out a stall timeout: a transfer
                // that has gone quiet is treated as lost, and one not done at the last call
                // is abandoned, moving or not.
                let quiet = now >= last_progress + cfg.stall_timeout / 2;
                let last_call = self.last_call(w, cfg).is_some_and(|t| now >= t);
                quiet
                    || last_call
                    || (finish + cfg.deadline_margin > deadline
                        && now + self.cdn_eta(remaining, cfg) < finish)
            }
            _ => false,
        };
        if !(stalled || too_slow) {
            return Vec::new();
        }
        let reason = if stalled && first_byte.is_none() {
            FallbackReason::NoFirstByte
        } else if stalled {
            FallbackReason::Stalled
        } else {
            FallbackReason::TooSlow
        };
        let w = self.wanted.get_mut(key).expect("present");
        w.tried.push(peer);
        w.fetch = Fetch::Idle;
        // Bytes had started and stopped: the swarm's copy is unreliable, don't wait for more.
        // A request that merely waited in a queue may still find another free holder.
        w.fell_back |= reason == FallbackReason::Stalled;
        let mut actions = vec![
            Action::Cancel { peer, key: *key },
            Action::Fallback {
                peer,
                key: *key,
                reason,
            },
        ];
        if too_slow {
            actions.push(self.start_cdn(key, CdnWhy::Fallback));
        }
        actions
    }

    /// A new CDN fetch of `key`, tracked until its response.
    fn new_fetch(&mut self, key: &SegmentKey) -> FetchId {
        let id = FetchId(self.next_fetch);
        self.next_fetch += 1;
        self.cdn_fetches.insert(id, *key);
        id
    }

    fn start_cdn(&mut self, key: &SegmentKey, why: CdnWhy) -> Action {
        let id = self.new_fetch(key);
        let w = self.wanted.get_mut(key).expect("present");
        w.fetch = Fetch::Cdn { id };
        w.cdn_attempts += 1;
        Action::FetchCdn {
            id,
            key: *key,
            offset: w.data.len(),
            end: w.split,
            why,
        }
    }

    /// When a decision may change without any input but time: the earliest such moment after
    /// `decided` (the last time every segment was decided). Moments already passed are skipped
    /// one by one, so one segment waiting on a past moment cannot hide another's future one.
    pub(crate) fn poll_timeout(&self, cfg: &SchedulerConfig, decided: Instant) -> Option<Instant> {
        let tails = self
            .wanted
            .values()
            .filter(|w| w.tail.as_ref().is_some_and(|t| t.id.is_none()))
            .filter_map(|w| self.tail_by(w, cfg));
        self.wanted
            .values()
            .filter_map(|w| match w.fetch {
                Fetch::Cdn { .. } => None,
                Fetch::CdnBackoff { at } => Some(at),
                Fetch::Peer {
                    first_byte: None,
                    first_byte_by,
                    ..
                } => Some(first_byte_by),
                Fetch::Peer { last_progress, .. } => {
                    let stall = last_progress + cfg.stall_timeout;
                    let quiet = last_progress + cfg.stall_timeout / 2;
                    let checks = self
                        .cdn_deadline(w, cfg)
                        .map_or(stall, |by| stall.min(by.max(quiet)));
                    Some(self.last_call(w, cfg).map_or(checks, |t| checks.min(t)))
                }
                Fetch::Idle if w.waiting_for_tail() => None,
                Fetch::Idle => [
                    self.cdn_deadline(w, cfg),
                    w.first_fetch_at,
                    w.busy.iter().map(|b| b.1).max(),
                ]
                .into_iter()
                .flatten()
                .filter(|t| *t > decided)
                .min(),
            })
            .chain(tails)
            .filter(|t| *t > decided)
            .min()
    }

    /// The very last moment the CDN can fetch what a peer transfer still owes and make the
    /// deadline with a quarter of the margin to spare: the transfer ends there whatever its
    /// pace.
    fn last_call(&self, w: &Wanted, cfg: &SchedulerConfig) -> Option<Instant> {
        self.cdn_start_by(w, self.remaining(w, cfg), cfg.deadline_margin / 4, cfg)
    }

    /// The last safe moment for the CDN to take over what the current source still owes.
    fn cdn_deadline(&self, w: &Wanted, cfg: &SchedulerConfig) -> Option<Instant> {
        self.cdn_start_by(w, self.remaining(w, cfg), cfg.deadline_margin, cfg)
    }

    /// When a CDN fetch of `bytes` must start to arrive `spare` before the deadline (never
    /// before the segment was listed).
    fn cdn_start_by(
        &self,
        w: &Wanted,
        bytes: u64,
        spare: Duration,
        cfg: &SchedulerConfig,
    ) -> Option<Instant> {
        let lead = self.cdn_eta(bytes, cfg) + spare;
        w.deadline
            .map(|d| d.checked_sub(lead).unwrap_or(w.listed_at))
    }

    /// A `Piece` arrived from `peer`.
    pub(crate) fn on_piece(
        &mut self,
        peer: PeerId,
        key: &SegmentKey,
        offset: u64,
        total: u64,
        data: Bytes,
        now: Instant,
    ) -> Progress {
        let Some(w) = self.wanted.get_mut(key) else {
            return Progress::Unexpected;
        };
        let Fetch::Peer {
            peer: from,
            offset: start,
            end,
            sent,
            first_byte_by,
            first_byte,
            ..
        } = w.fetch
        else {
            return Progress::Unexpected;
        };
        if from != peer {
            return Progress::Unexpected;
        }
        if end.is_some_and(|end| offset.saturating_add(data.len() as u64) > end) {
            return Progress::Violation("piece beyond the requested range");
        }
        if w.total.is_some_and(|t| t != total) {
            return Progress::Violation("segment length changed mid-transfer");
        }
        if offset != w.data.len() {
            return Progress::Violation("piece out of order");
        }
        if offset.saturating_add(data.len() as u64) > total {
            return Progress::Violation("piece beyond the segment's end");
        }
        w.total = Some(total);
        if w.split.is_some_and(|at| at >= total) {
            // The segment is shorter than the estimate the split was made on: the peer's range
            // already runs to the end.
            w.split = None;
            w.tail = None;
        }
        w.sources.p2p += data.len() as u64;
        w.data.push(data);
        // Throughput counts from the first byte: queueing at the uploader is not its rate.
        let elapsed = now.saturating_duration_since(first_byte.unwrap_or(sent));
        w.fetch = Fetch::Peer {
            peer,
            offset: start,
            end,
            sent,
            first_byte_by,
            first_byte: first_byte.or(Some(now)),
            last_progress: now,
        };
        if w.data.len() >= total {
            return self.finish(key, Some(peer), elapsed);
        }
        if !w.waiting_for_tail() {
            return Progress::Partial;
        }
        w.fetch = Fetch::Idle;
        let bytes = w.data.len() - start;
        // Ahead of its estimate, before the CDN was asked: the rest goes to one source again.
        Self::unsplit(w);
        match self.join_tail(key, Some(peer), elapsed) {
            Progress::Partial => Progress::RangeDone { bytes, elapsed },
            done => done,
        }
    }

    /// Appends the CDN tail once the prefix reaches the split; completes the segment if that
    /// was the last part.
    fn join_tail(&mut self, key: &SegmentKey, from: Option<PeerId>, elapsed: Duration) -> Progress {
        let Some(w) = self.wanted.get_mut(key) else {
            return Progress::Unexpected;
        };
        if !w.waiting_for_tail() {
            return Progress::Partial;
        }
        let Some(body) = w.tail.as_mut().and_then(|t| t.body.take()) else {
            return Progress::Partial;
        };
        w.data.push(body);
        w.split = None;
        w.tail = None;
        self.finish(key, from, elapsed)
    }

    /// Stops tracking `key`, with the CDN tail fetch it may have in flight.
    fn forget(&mut self, key: &SegmentKey) -> Option<Wanted> {
        let w = self.wanted.remove(key)?;
        if let Some(id) = w.tail.as_ref().and_then(|t| t.id) {
            self.cdn_fetches.remove(&id);
        }
        Some(w)
    }

    /// The segment is whole: hands it over.
    fn finish(&mut self, key: &SegmentKey, from: Option<PeerId>, elapsed: Duration) -> Progress {
        let w = self.forget(key).expect("present");
        self.observe_size(w.data.len());
        Progress::Complete {
            data: w.data,
            sources: w.sources,
            from,
            elapsed,
            shareable: w.shareable,
            duration: w.duration,
        }
    }

    /// A peer will not serve `key`: it does not hold it, or it is `busy_until` some time.
    pub(crate) fn on_refused(
        &mut self,
        peer: PeerId,
        key: &SegmentKey,
        busy_until: Option<Instant>,
    ) -> bool {
        let Some(w) = self.wanted.get_mut(key) else {
            return false;
        };
        match w.fetch {
            Fetch::Peer { peer: p, .. } if p == peer => {
                w.fetch = Fetch::Idle;
                match busy_until {
                    Some(until) => {
                        w.busy.retain(|(p, _)| *p != peer);
                        w.busy.push((peer, until));
                    }
                    None => w.tried.push(peer),
                }
                true
            }
            _ => false,
        }
    }

    /// `peer` is gone: transfers from it restart elsewhere. Returns the affected segments.
    pub(crate) fn on_peer_lost(&mut self, peer: PeerId) -> Vec<SegmentKey> {
        let mut lost = Vec::new();
        for (key, w) in self.wanted.iter_mut() {
            if matches!(w.fetch, Fetch::Peer { peer: p, .. } if p == peer) {
                w.fetch = Fetch::Idle;
                w.tried.push(peer);
                w.fell_back = true;
                lost.push(*key);
            }
        }
        lost
    }

    /// A CDN fetch finished. `Err(key)` when the attempt failed and retries are exhausted.
    pub(crate) fn on_cdn(
        &mut self,
        id: FetchId,
        result: Result<Bytes, ()>,
        elapsed: Duration,
        cfg: &SchedulerConfig,
        now: Instant,
    ) -> Result<Option<(SegmentKey, Progress)>, SegmentKey> {
        let Some(key) = self.cdn_fetches.remove(&id) else {
            return Ok(None);
        };
        let Some(w) = self.wanted.get_mut(&key) else {
            return Ok(None);
        };
        if w.tail.as_ref().is_some_and(|t| t.id == Some(id)) {
            return Ok(self.on_tail(key, result, elapsed));
        }
        if w.fetch != (Fetch::Cdn { id }) {
            return Ok(None);
        }
        let body = match result {
            Ok(body) => body,
            Err(()) if w.cdn_attempts < cfg.cdn_attempts => {
                w.fetch = Fetch::CdnBackoff {
                    at: now + cfg.cdn_retry_backoff,
                };
                return Ok(None);
            }
            Err(()) => {
                self.forget(&key);
                return Err(key);
            }
        };
        let bytes = body.len() as u64;
        w.sources.cdn += bytes;
        w.data.push(body);
        let split = w.split.is_some();
        if split {
            w.fetch = Fetch::Idle;
        }
        self.observe_cdn(bytes, elapsed);
        let progress = if split {
            self.join_tail(&key, None, elapsed)
        } else {
            self.finish(&key, None, elapsed)
        };
        Ok(matches!(progress, Progress::Complete { .. }).then_some((key, progress)))
    }

    /// The CDN's part of a split segment arrived (or failed).
    fn on_tail(
        &mut self,
        key: SegmentKey,
        result: Result<Bytes, ()>,
        elapsed: Duration,
    ) -> Option<(SegmentKey, Progress)> {
        let w = self.wanted.get_mut(&key)?;
        let at = w.split?;
        let fits =
            |body: &Bytes| !body.is_empty() && w.total.is_none_or(|t| t == at + body.len() as u64);
        match result {
            Ok(body) if fits(&body) => {
                let bytes = body.len() as u64;
                w.total = Some(at + bytes);
                w.sources.cdn += bytes;
                if let Some(tail) = w.tail.as_mut() {
                    tail.body = Some(body);
                }
                self.observe_cdn(bytes, elapsed);
            }
            _ => {
                // No usable tail: the rest of the segment goes back to source selection once
                // the prefix source stops at the old split.
                w.split = None;
                w.tail = None;
                return None;
            }
        }
        let progress = self.join_tail(&key, None, elapsed);
        matches!(progress, Progress::Complete { .. }).then_some((key, progress))
    }

    fn observe_size(&mut self, len: u64) {
        let len = len as f64;
        self.size_estimate = Some(self.size_estimate.map_or(len, |s| 0.8 * s + 0.2 * len));
    }

    fn observe_cdn(&mut self, bytes: u64, elapsed: Duration) {
        // Small bodies measure the round trip; large ones the throughput.
        let secs = elapsed.as_secs_f64().max(1e-3);
        if bytes < 64 * 1024 {
            self.cdn_rtt = Some(elapsed);
            return;
        }
        let rtt = self.cdn_rtt.map_or(0.0, |r| r.as_secs_f64());
        let bps = bytes as f64 * 8.0 / (secs - rtt).max(secs / 2.0);
        self.cdn_bps = Some(self.cdn_bps.map_or(bps, |b| 0.75 * b + 0.25 * bps));
    }
}

/// Where a segment splits between a peer and the CDN: after the bytes the peer, expected to
/// take `eta` for all `remaining` bytes from `from`, delivers by `cdn_by` (with a tenth to
/// spare). `None` when that is (nearly) everything or too little to be worth a request.
fn split_point(
    from: u64,
    remaining: u64,
    eta: Duration,
    cdn_by: Instant,
    now: Instant,
) -> Option<u64> {
    const MIN_PART: u64 = 16 * 1024;
    let window = cdn_by.saturating_duration_since(now).as_secs_f64();
    let part = (remaining as f64 * 0.9 * window / eta.as_secs_f64().max(1e-3)) as u64;
    (MIN_PART..remaining.saturating_sub(MIN_PART))
        .contains(&part)
        .then_some(from + part)
}

#[cfg(test)]
mod tests;
