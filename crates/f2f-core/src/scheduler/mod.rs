//! Download scheduling: for every segment this node needs, which source, and when.
//!
//! The rules, in order:
//! - A peer transfer that stops making progress is abandoned at once for the next source that
//!   can still make the deadline — the CDN when no peer can. P2P never stalls the player.
//! - A segment some linked neighbour holds goes to the best-ranked holder (earliest expected
//!   arrival, see [`SourceRanker`]) if that arrival fits before the deadline. If none can send
//!   it all in time, from the second half of the wait several holders each send a byte range,
//!   and the CDN fetches what they cannot cover (a segment is a list of [`Part`]s).
//! - Nobody holds it yet: about `cdn_budget` peers in the *whole swarm* fetch it from the CDN
//!   straight away (one per `viewers_per_first_fetcher` in swarms too large for that many relay
//!   trees, at most the size sketch's `k`). Each peer knows whether it is one of them from its
//!   per-segment rank and the estimated swarm size ([`crate::swarm_size`]), so the first
//!   fetches per segment stay bounded whatever the audience. Peers ranked further back wait a
//!   little longer per rank step before they fetch a segment still nobody announced, covering
//!   a mis-estimated swarm size.
//! - Otherwise wait for an announcement, until the deadline leaves just enough time for the
//!   CDN: then the CDN.

mod fit;
mod fitted;
mod learned;
mod ranking;

use std::cell::Cell;
use std::collections::BTreeMap;

use bytes::Bytes;

pub use fit::fit;
pub use learned::{FEATURES, Feature, LearnedRanker, Weights};
pub use ranking::{
    BandwidthLottery, BaselineRanker, ModelStatus, Outcome, PeerMeasurements, RttRanker,
    SourceRanker,
};

use crate::config::{SchedulerConfig, SourcePreference};
use crate::id::{PeerId, SegmentKey};
use crate::integrity::{GROUP_BYTES, Hashing, IntegrityError, Outboard, SegmentHash, piece_bytes};
use crate::segment::SegmentData;
use crate::telemetry::FallbackReason;
use crate::time::{Duration, Instant};
use crate::wire::RequestId;

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

/// When this node fetches a new segment from the CDN of its own accord, before any deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FirstFetch {
    /// Never: it takes the segment from peers, or from the CDN when its deadline demands.
    Wait,
    /// At this moment, unless a neighbour announced the segment by then: a first fetcher of
    /// the swarm's budget, or a rescuer further back in line.
    Unannounced(Instant),
    /// At once, whoever holds it already: this node's uplink covers part of its
    /// neighbourhood's upload deficit, and a copy it relays as it arrives from the CDN feeds
    /// its uplink at full rate, where one relayed from a slower peer would leave it idle.
    Now,
}

impl FirstFetch {
    /// `self`, unless it is `Wait`.
    fn or(self, other: Self) -> Self {
        match self {
            Self::Wait => other,
            _ => self,
        }
    }
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
    /// Nobody is fetching this part (or it is done).
    Idle,
    Peer {
        peer: PeerId,
        /// Echoed in the peer's answers; anything else it sends for this key is stale.
        id: RequestId,
        /// Where this transfer started in the segment.
        offset: u64,
        sent: Instant,
        /// Given up without a first byte by then, or by the last safe moment for the CDN if
        /// that comes first (a deadline learnt after the request may bring it forward).
        first_byte_by: Instant,
        /// When the first piece arrived, and how many bytes it brought.
        first_byte: Option<(Instant, u64)>,
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

/// One byte range of a segment and the source filling it. A segment starts as one part; it
/// is split when no single holder can deliver all of it by the deadline, so that several slow
/// peers (and, for what they cannot cover, the CDN) each send a range at once.
#[derive(Debug)]
struct Part {
    start: u64,
    /// One past the last byte; `None`: to the segment's end (only the last part).
    end: Option<u64>,
    /// Bytes received from `start` on, contiguous.
    data: SegmentData,
    /// Bytes up to here came from peers, verified, with the parent hashes that let us relay
    /// them (bytes from the CDN after them are relayed once the segment is whole).
    relayable_to: u64,
    fetch: Fetch,
}

impl Part {
    fn new(start: u64, end: Option<u64>) -> Self {
        Self {
            start,
            end,
            data: SegmentData::new(),
            relayable_to: start,
            fetch: Fetch::Idle,
        }
    }

    /// The next byte this part needs.
    fn pos(&self) -> u64 {
        self.start + self.data.len()
    }

    fn is_done(&self, total: Option<u64>) -> bool {
        self.end.or(total).is_some_and(|end| self.pos() >= end)
    }

    fn peer(&self) -> Option<PeerId> {
        match self.fetch {
            Fetch::Peer { peer, .. } => Some(peer),
            _ => None,
        }
    }
}

#[derive(Debug)]
struct Wanted {
    listed_at: Instant,
    size_hint: Option<u64>,
    /// Media duration, when the playlist said.
    duration: Option<Duration>,
    shareable: bool,
    deadline: Option<Instant>,
    first_fetch: FirstFetch,
    /// Contiguous, in order, from byte 0; the last one runs to the end.
    parts: Vec<Part>,
    total: Option<u64>,
    /// The segment's tree, from its trusted hash: peer bytes are verified against it. Without
    /// it no peer is asked (their bytes could not be checked).
    tree: Option<Outboard>,
    sources: ByteSources,
    /// Peers that failed this segment or do not hold it.
    tried: Vec<PeerId>,
    /// Peers that were busy, and until when we leave them alone.
    busy: Vec<(PeerId, Instant)>,
    /// A peer transfer of this segment failed: no waiting for announcements any more.
    fell_back: bool,
    /// CDN attempts of this segment that failed.
    cdn_failures: u32,
}

impl Wanted {
    /// `peer` answered `Busy` for this segment and is still left alone.
    fn is_busy(&self, peer: &PeerId, now: Instant) -> bool {
        self.busy.iter().any(|(p, until)| p == peer && *until > now)
    }

    /// Leaves `peer` alone for this segment until `until` (it was busy with others).
    fn leave_alone(&mut self, peer: PeerId, until: Instant) {
        self.busy.retain(|(p, _)| *p != peer);
        self.busy.push((peer, until));
    }

    /// The part `peer` is sending (a peer sends one range of a segment at a time: `Cancel`
    /// names the segment, not the range).
    fn part_of(&self, peer: &PeerId) -> Option<usize> {
        self.parts.iter().position(|p| p.peer() == Some(*peer))
    }

    fn is_done(&self) -> bool {
        self.parts.iter().all(|p| p.is_done(self.total))
    }

    /// Splits part `i` at `at` (inside it, past its received bytes); the new part after it
    /// has no source yet.
    fn split(&mut self, i: usize, at: u64) {
        let part = &mut self.parts[i];
        debug_assert!(at > part.start && at >= part.pos());
        let rest = Part::new(at, part.end);
        part.end = Some(at);
        self.parts.insert(i + 1, rest);
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

impl Candidate {
    /// Its measurements as ranked for a request that waits `first_byte_wait` for a first byte.
    fn for_request(&self, first_byte_wait: Duration) -> PeerMeasurements {
        PeerMeasurements {
            first_byte_wait,
            relaying: !self.complete,
            ..self.measurements
        }
    }
}

/// What the engine must do for the scheduler.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Action {
    Request {
        peer: PeerId,
        id: RequestId,
        key: SegmentKey,
        offset: u64,
        end: Option<u64>,
        /// What the ranker saw of the peer when it chose it, for the lesson of the outcome.
        ranked: PeerMeasurements,
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

/// How one peer delivered its range: `bytes` in `elapsed` since its first piece (since the
/// request for a range that came in one piece).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct RangeStats {
    pub(crate) peer: PeerId,
    pub(crate) bytes: u64,
    pub(crate) elapsed: Duration,
    /// Bytes the first piece brought (0 when timed from the request).
    pub(crate) first_piece: u64,
}

impl RangeStats {
    /// The transfer's throughput: the bytes after the first piece over the time they took. A
    /// piece arrives whole, so counting the first one too credits a two-piece range with twice
    /// its rate.
    pub(crate) fn throughput_bps(&self) -> f64 {
        Outcome::rate_bps(self.timed_bytes(), self.elapsed)
    }

    /// The bytes `elapsed` times: those after the first piece.
    pub(crate) fn timed_bytes(&self) -> u64 {
        self.bytes - self.first_piece
    }

    /// What the scheduler plans with: every byte over the time since the first piece. It is
    /// optimistic on short ranges, and that is deliberate: a peer that falls short costs a CDN
    /// fetch of the rest, one judged too slow is never asked (DESIGN-NOTES, "Peer selection").
    pub(crate) fn planning_bps(&self) -> f64 {
        Outcome::rate_bps(self.bytes, self.elapsed)
    }
}

/// Result of feeding bytes to the scheduler.
#[derive(Debug, PartialEq)]
pub(crate) enum Progress {
    /// Not something we asked for (late, duplicate, or unsolicited); dropped.
    Unexpected,
    /// An answer to an earlier request to the same peer, cancelled or replaced since; dropped.
    Stale,
    /// Bytes that contradict the transfer (offset, total, size limit); the sender misbehaved.
    Violation(&'static str),
    /// Bytes that fail verification: the sender is to be banned; the range goes back to
    /// source selection.
    Corrupt(IntegrityError),
    /// Accepted, more to come.
    Partial,
    /// A peer delivered its whole range; other parts of the segment are still on their way.
    RangeDone(RangeStats),
    /// The segment is complete.
    Complete {
        data: SegmentData,
        sources: ByteSources,
        /// The peer whose range completed it, if a peer did.
        last: Option<RangeStats>,
        /// Not a personal (SSAI) segment: may be stored and offered to peers.
        shareable: bool,
        /// Media duration, if known.
        duration: Option<Duration>,
        /// The whole tree, when every byte came verified from peers (otherwise the store
        /// hashes the segment when it first serves it).
        tree: Option<Outboard>,
    },
}

/// A segment given up after its last CDN attempt failed.
#[derive(Debug, PartialEq)]
pub(crate) struct GivenUp {
    pub(crate) key: SegmentKey,
    /// Releases the peers still sending ranges of it.
    pub(crate) cancels: Vec<Action>,
}

/// Per-node download state.
#[derive(Debug)]
pub(crate) struct Scheduler {
    wanted: BTreeMap<SegmentKey, Wanted>,
    cdn_fetches: BTreeMap<FetchId, SegmentKey>,
    next_fetch: u64,
    next_request: RequestId,
    cdn_rtt: Option<Duration>,
    cdn_bps: Option<f64>,
    size_estimate: Option<f64>,
    /// [`poll_timeout`](Self::poll_timeout)'s last answer and the `decided` it was for. The
    /// engine asks after every input, and most inputs (announcements, requests, drained send
    /// buffers) leave the scheduler alone: every `&mut self` entry point clears it first.
    timeout: Cell<Option<(Instant, Option<Instant>)>>,
}

impl Scheduler {
    pub(crate) fn new() -> Self {
        Self {
            wanted: BTreeMap::new(),
            cdn_fetches: BTreeMap::new(),
            next_fetch: 0,
            next_request: RequestId::default(),
            cdn_rtt: None,
            cdn_bps: None,
            size_estimate: None,
            timeout: Cell::new(None),
        }
    }

    /// The configuration changed: timeouts computed under the old one no longer hold.
    pub(crate) fn reconfigured(&mut self) {
        self.timeout.set(None);
    }

    /// Whether some part of `key` waits for a source (so the engine must gather candidates).
    pub(crate) fn needs_source(&self, key: &SegmentKey) -> bool {
        self.wanted.get(key).is_some_and(|w| {
            w.parts.iter().any(|p| match p.fetch {
                Fetch::Idle => !p.is_done(w.total),
                Fetch::CdnBackoff { .. } => true,
                Fetch::Peer { .. } | Fetch::Cdn { .. } => false,
            })
        })
    }

    pub(crate) fn is_wanted(&self, key: &SegmentKey) -> bool {
        self.wanted.contains_key(key)
    }

    pub(crate) fn keys(&self) -> Vec<SegmentKey> {
        self.wanted.keys().copied().collect()
    }

    /// This node will not fetch `key` from the CDN as one of its first fetchers: only when its
    /// deadline demands (the player's request prefers peers).
    pub(crate) fn prefer_peers(&mut self, key: &SegmentKey) {
        self.timeout.set(None);
        if let Some(w) = self.wanted.get_mut(key) {
            w.first_fetch = FirstFetch::Wait;
        }
    }

    /// Starts tracking a segment the playlist listed (or a neighbour announced); `first_fetch`
    /// says when this node fetches it from the CDN of its own accord.
    pub(crate) fn list(
        &mut self,
        key: SegmentKey,
        size_hint: Option<u64>,
        duration: Option<Duration>,
        shareable: bool,
        first_fetch: FirstFetch,
        now: Instant,
    ) {
        self.timeout.set(None);
        if let Some(w) = self.wanted.get_mut(&key) {
            // Prefetched on a neighbour's announcement; the playlist now confirms it.
            w.size_hint = w.size_hint.or(size_hint);
            w.duration = w.duration.or(duration);
            w.shareable &= shareable;
            w.first_fetch = w.first_fetch.or(first_fetch);
            return;
        }
        self.wanted.entry(key).or_insert_with(|| Wanted {
            listed_at: now,
            size_hint,
            duration,
            shareable,
            deadline: None,
            first_fetch,
            parts: vec![Part::new(0, None)],
            total: None,
            tree: None,
            sources: ByteSources::default(),
            tried: Vec::new(),
            busy: Vec::new(),
            fell_back: false,
            cdn_failures: 0,
        });
    }

    /// The segment's trusted hash and size are known (the origin's signed hashes): peers may
    /// now be asked for it, and their bytes are checked against it.
    pub(crate) fn set_hash(&mut self, key: &SegmentKey, hash: SegmentHash, size: u64) {
        self.timeout.set(None);
        let Some(w) = self.wanted.get_mut(key) else {
            return;
        };
        if w.tree.is_some() || w.parts.iter().any(|p| p.pos() > size) {
            return;
        }
        w.tree = Some(Outboard::expecting(hash, size));
        w.total = Some(size);
    }

    /// The length of a shareable segment still arriving of which we hold verified bytes: we
    /// relay what we have.
    pub(crate) fn arriving(&self, key: &SegmentKey) -> Option<u64> {
        let w = self
            .wanted
            .get(key)
            .filter(|w| w.shareable && w.tree.is_some())?;
        let any = w.parts.iter().any(|p| p.relayable_to > p.start);
        w.total.filter(|_| any)
    }

    /// The encoded piece of up to `max` verified bytes of `key` from `offset` (whole chunk
    /// groups, or up to the end), and where it ends; `None` while we do not hold them yet.
    pub(crate) fn piece_at(
        &self,
        key: &SegmentKey,
        offset: u64,
        max: u64,
        hashing: &dyn Hashing,
    ) -> Option<(Bytes, u64)> {
        let w = self.wanted.get(key).filter(|w| w.shareable)?;
        let tree = w.tree.as_ref()?;
        let p = (w.parts.iter()).find(|p| p.start <= offset && offset < p.relayable_to)?;
        let (bytes, end) = piece_bytes(&p.data, p.start, offset, max, p.relayable_to, tree.size())?;
        hashing.encode(tree, offset, &bytes).ok().map(|e| (e, end))
    }

    /// The player needs `key` by `deadline`.
    pub(crate) fn set_deadline(&mut self, key: &SegmentKey, deadline: Instant) {
        self.timeout.set(None);
        if let Some(w) = self.wanted.get_mut(key) {
            w.deadline = Some(w.deadline.map_or(deadline, |d| d.min(deadline)));
        }
    }

    /// Stops fetching `key`; returns the actions that release its sources.
    pub(crate) fn remove(&mut self, key: &SegmentKey) -> Vec<Action> {
        self.timeout.set(None);
        let Some(w) = self.forget(key) else {
            return Vec::new();
        };
        w.parts
            .iter()
            .filter_map(Part::peer)
            .map(|peer| Action::Cancel { peer, key: *key })
            .collect()
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

    /// Bytes part `p` still needs.
    fn owed(&self, w: &Wanted, p: &Part, cfg: &SchedulerConfig) -> u64 {
        p.end
            .unwrap_or_else(|| self.expected_size(w, cfg))
            .saturating_sub(p.pos())
    }

    fn cdn_eta(&self, bytes: u64, cfg: &SchedulerConfig) -> Duration {
        let rtt = self.cdn_rtt.unwrap_or(cfg.cdn_rtt_prior);
        let bps = self
            .cdn_bps
            .unwrap_or(cfg.cdn_throughput_prior_bps)
            .max(1.0);
        rtt + Duration::from_secs_f64(bytes as f64 * 8.0 / bps)
    }

    /// When the peer transfer filling `p` will be done, at the rate it has delivered since its
    /// first byte (`None`: no peer transfer, or no byte yet).
    fn projected_finish(
        &self,
        w: &Wanted,
        p: &Part,
        cfg: &SchedulerConfig,
        now: Instant,
    ) -> Option<Instant> {
        let Fetch::Peer {
            offset,
            first_byte: Some((first, _)),
            ..
        } = p.fetch
        else {
            return None;
        };
        let got = p.pos().saturating_sub(offset) as f64;
        let secs = now.saturating_duration_since(first).as_secs_f64().max(0.05);
        let rate = (got * 8.0 / secs).max(1.0);
        let owed = self.owed(w, p, cfg);
        Some(now + Duration::from_secs_f64(owed as f64 * 8.0 / rate))
    }

    fn is_part_lagging(&self, w: &Wanted, p: &Part, cfg: &SchedulerConfig, now: Instant) -> bool {
        let finish = self.projected_finish(w, p, cfg, now);
        matches!((finish, w.deadline), (Some(f), Some(d)) if f + cfg.deadline_margin > d)
    }

    /// Whether a peer transfer of `key` is on course to miss its deadline (a faster holder, if
    /// one turns up, should take over).
    pub(crate) fn is_lagging(&self, key: &SegmentKey, cfg: &SchedulerConfig, now: Instant) -> bool {
        self.wanted
            .get(key)
            .is_some_and(|w| w.parts.iter().any(|p| self.is_part_lagging(w, p, cfg, now)))
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
        self.timeout.set(None);
        let mut actions = self.check_transfer(key, cfg, now);
        let mut i = 0;
        // Parts split off while deciding are visited too: a remainder nobody took yet may
        // still find a holder.
        while self.wanted.get(key).is_some_and(|w| i < w.parts.len()) {
            actions.extend(self.decide_part(key, i, holders, ranker, cfg, now));
            i += 1;
        }
        actions
    }

    fn decide_part(
        &mut self,
        key: &SegmentKey,
        i: usize,
        holders: &[Candidate],
        ranker: &dyn SourceRanker,
        cfg: &SchedulerConfig,
        now: Instant,
    ) -> Vec<Action> {
        let w = &self.wanted[key];
        let p = &w.parts[i];
        match p.fetch {
            Fetch::Cdn { .. } | Fetch::Peer { .. } => return Vec::new(),
            Fetch::CdnBackoff { at } if at > now => return Vec::new(),
            Fetch::CdnBackoff { .. } => return vec![self.start_cdn(key, i, CdnWhy::Retry)],
            Fetch::Idle if p.is_done(w.total) => return Vec::new(),
            Fetch::Idle => {}
        }
        if cfg.source == SourcePreference::CdnOnly || !w.shareable {
            if w.deadline.is_none() {
                return Vec::new();
            }
            return vec![self.start_cdn(key, i, CdnWhy::Direct)];
        }
        if w.first_fetch == FirstFetch::Now
            && w.parts.len() == 1
            && p.pos() == 0
            && cfg.source == SourcePreference::Auto
        {
            return vec![self.start_cdn(key, i, CdnWhy::First)];
        }
        // Bytes from a peer can only be taken once they can be checked.
        let holders: &[Candidate] = if w.tree.is_some() { holders } else { &[] };
        let owed = self.owed(w, p, cfg);
        let cdn_by = self.cdn_by(w, p, cfg);
        let late_why = if p.start > 0 {
            CdnWhy::Split
        } else if holders.is_empty() {
            CdnWhy::Unannounced
        } else {
            CdnWhy::Deadline
        };
        if cdn_by.is_some_and(|by| now + cfg.stall_timeout / 4 >= by) {
            // At the last safe moment for the CDN: no new gamble on a peer (one that vanished
            // without closing would only be noticed after the deadline).
            return vec![self.start_cdn(key, i, late_why)];
        }
        let mut ranked: Vec<(Duration, &Candidate)> = holders
            .iter()
            .filter(|c| !w.tried.contains(&c.peer) && !w.is_busy(&c.peer, now))
            .filter(|c| w.part_of(&c.peer).is_none())
            // To resume past bytes we already hold, a relay still receiving is unlikely to be
            // ahead of us.
            .filter(|c| c.complete || p.pos() == 0)
            .filter_map(|c| {
                let m = c.for_request(load_wait(c, cfg));
                ranker.peer_eta(&m, owed).map(|eta| (eta, c))
            })
            .collect();
        ranked.sort_by_key(|r| r.0);
        if let Some(&(eta, best)) = ranked.first() {
            if w.deadline
                .is_none_or(|d| now + eta + cfg.deadline_margin <= d)
            {
                let wait = load_wait(best, cfg);
                return vec![self.start_peer(key, i, best, wait, now)];
            }
            // Nobody can send it all in time: several holders each send the range they can
            // deliver by the time the CDN would have to start, at once; whatever they cannot
            // cover waits for another holder, or for the CDN at its own last safe moment.
            // Early in the wait a faster holder may still turn up (or a loaded one free up):
            // ranges start in its second half.
            let plan_by =
                cdn_by.filter(|by| now >= halfway(w, *by) && *by > now + cfg.stall_timeout);
            if let Some(by) = plan_by {
                let window = by.saturating_duration_since(now);
                let plan = plan_ranges(owed, &ranked, window, cfg.max_sources);
                if !plan.is_empty() {
                    return self.start_ranges(key, i, owed, &plan, cfg, now);
                }
            }
        }
        let w = &self.wanted[key];
        let p = &w.parts[i];
        let first = w.parts.len() == 1 && p.pos() == 0;
        if w.fell_back && w.deadline.is_some() {
            // A transfer failed and no other holder can take over: the CDN, at once.
            vec![self.start_cdn(key, i, CdnWhy::Fallback)]
        } else if first
            && holders.is_empty()
            && cfg.source == SourcePreference::Auto
            && matches!(w.first_fetch, FirstFetch::Unannounced(t) if now >= t)
        {
            vec![self.start_cdn(key, i, CdnWhy::First)]
        } else {
            Vec::new()
        }
    }

    /// Splits part `i` along `plan` (bytes per peer, in order) and asks each peer for its
    /// range; bytes the plan leaves over stay in a part of their own, without a source.
    fn start_ranges(
        &mut self,
        key: &SegmentKey,
        mut i: usize,
        owed: u64,
        plan: &[(u64, &Candidate)],
        cfg: &SchedulerConfig,
        now: Instant,
    ) -> Vec<Action> {
        let w = self.wanted.get_mut(key).expect("present");
        let p = &w.parts[i];
        if p.pos() > p.start {
            // Bytes an earlier source delivered stay where they are.
            let at = p.pos();
            w.split(i, at);
            i += 1;
        }
        let covers_all = plan.iter().map(|s| s.0).sum::<u64>() >= owed;
        let mut actions = Vec::with_capacity(plan.len());
        for (n, &(bytes, c)) in plan.iter().enumerate() {
            if !(covers_all && n + 1 == plan.len()) {
                let w = self.wanted.get_mut(key).expect("present");
                let at = w.parts[i].pos() + bytes;
                w.split(i, at);
            }
            actions.push(self.start_peer(key, i, c, load_wait(c, cfg), now));
            i += 1;
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
        self.timeout.set(None);
        let mut actions = Vec::new();
        let Some(parts) = self.wanted.get(key).map(|w| w.parts.len()) else {
            return actions;
        };
        for i in 0..parts {
            let w = &self.wanted[key];
            let p = &w.parts[i];
            let (Some(current), Some(finish), Some(deadline)) =
                (p.peer(), self.projected_finish(w, p, cfg, now), w.deadline)
            else {
                continue;
            };
            let owed = self.owed(w, p, cfg);
            let cdn_by = self.cdn_by(w, p, cfg);
            if finish + cfg.deadline_margin <= deadline
                || cdn_by.is_some_and(|by| now + cfg.stall_timeout / 4 >= by)
            {
                // On course, or too late for a gamble on a new peer: the CDN takes over if
                // needed.
                continue;
            }
            let better = holders
                .iter()
                .filter(|c| c.complete && !w.tried.contains(&c.peer))
                .filter(|c| !w.is_busy(&c.peer, now) && w.part_of(&c.peer).is_none())
                .filter_map(|c| {
                    let m = c.for_request(cfg.stall_timeout);
                    ranker.peer_eta(&m, owed).map(|eta| (eta, c))
                })
                .min_by(|a, b| a.0.cmp(&b.0))
                .filter(|(eta, _)| now + eta.mul_f64(1.25) < finish);
            let Some((_, better)) = better else {
                continue;
            };
            self.wanted
                .get_mut(key)
                .expect("present")
                .tried
                .push(current);
            actions.push(Action::Cancel {
                peer: current,
                key: *key,
            });
            actions.push(self.start_peer(key, i, better, cfg.stall_timeout, now));
        }
        actions
    }

    /// Asks `holder` for the rest of part `i`. Without a first byte after `first_byte_wait`,
    /// or by the time only the CDN can still fetch the part in time, the transfer is given up.
    fn start_peer(
        &mut self,
        key: &SegmentKey,
        i: usize,
        holder: &Candidate,
        first_byte_wait: Duration,
        now: Instant,
    ) -> Action {
        let first_byte_by = now + first_byte_wait;
        let peer = holder.peer;
        let id = self.next_request;
        self.next_request = id.next();
        let p = &mut self.wanted.get_mut(key).expect("present").parts[i];
        let offset = p.pos();
        p.fetch = Fetch::Peer {
            peer,
            id,
            offset,
            sent: now,
            first_byte_by,
            first_byte: None,
            last_progress: now,
        };
        Action::Request {
            peer,
            id,
            key: *key,
            offset,
            end: p.end,
            ranked: holder.for_request(first_byte_wait),
        }
    }

    /// Abandons peer transfers that stalled or can no longer make the deadline. A stalled
    /// transfer goes back to source selection; one that is merely too slow goes to the CDN,
    /// keeping the bytes already received.
    pub(crate) fn check_transfer(
        &mut self,
        key: &SegmentKey,
        cfg: &SchedulerConfig,
        now: Instant,
    ) -> Vec<Action> {
        self.timeout.set(None);
        let mut actions = Vec::new();
        let parts = self.wanted.get(key).map_or(0, |w| w.parts.len());
        for i in 0..parts {
            actions.extend(self.check_part(key, i, cfg, now));
        }
        actions
    }

    fn check_part(
        &mut self,
        key: &SegmentKey,
        i: usize,
        cfg: &SchedulerConfig,
        now: Instant,
    ) -> Vec<Action> {
        let w = &self.wanted[key];
        let p = &w.parts[i];
        let Fetch::Peer {
            peer,
            first_byte_by,
            first_byte,
            last_progress,
            ..
        } = p.fetch
        else {
            return Vec::new();
        };
        let owed = self.owed(w, p, cfg);
        let cdn_by = self.cdn_by(w, p, cfg);
        let stalled = match first_byte {
            None => now >= no_first_byte_by(first_byte_by, cdn_by),
            Some(_) => now >= last_progress + cfg.stall_timeout,
        };
        // A slow transfer keeps going until the last moment the CDN could still make the
        // deadline: relayed bytes arrive in bursts, and a relay's source may speed up.
        let too_slow = match (w.deadline, first_byte, cdn_by) {
            (Some(deadline), Some(_), Some(cdn_by)) if now >= cdn_by => {
                let finish = self.projected_finish(w, p, cfg, now).unwrap_or(deadline);
                // Past this point there is no time to wait out a stall timeout: a transfer
                // that has gone quiet is treated as lost, and one not done at the last call
                // is abandoned, moving or not. One projected to finish within the spare the
                // last call keeps goes on: if the projection fails, the last call still gives
                // the CDN what is missing in time. (Held to the whole margin, relayed
                // transfers mostly over half done were given up here: most of a large
                // swarm's fallbacks.)
                let quiet = now >= last_progress + cfg.stall_timeout / 2;
                let last_call = self.last_call(w, p, cfg).is_some_and(|t| now >= t);
                quiet
                    || last_call
                    || (finish + last_call_spare(cfg) > deadline
                        && now + self.cdn_eta(owed, cfg) < finish)
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
        if reason == FallbackReason::NoFirstByte {
            // It never started: the holder was busy with others, not failing. Later, once its
            // queue has moved, it may serve this segment after all.
            w.leave_alone(peer, now + cfg.busy_backoff);
        } else {
            w.tried.push(peer);
        }
        w.parts[i].fetch = Fetch::Idle;
        // Bytes had started and stopped: the swarm's copy is unreliable, don't wait for more.
        // A request that merely waited in a queue may still find another free holder.
        w.fell_back |= reason == FallbackReason::Stalled;
        // The outcome first: the cancel forgets the request.
        let mut actions = vec![
            Action::Fallback {
                peer,
                key: *key,
                reason,
            },
            Action::Cancel { peer, key: *key },
        ];
        if too_slow {
            actions.push(self.start_cdn(key, i, CdnWhy::Fallback));
        }
        actions
    }

    /// A new CDN fetch of `key`, tracked until its response.
    fn new_fetch(&mut self, key: &SegmentKey) -> FetchId {
        let id = self.reserve_fetch();
        self.cdn_fetches.insert(id, *key);
        id
    }

    /// A fetch id for a CDN request the engine makes outside any download (a spot check).
    pub(crate) fn reserve_fetch(&mut self) -> FetchId {
        self.timeout.set(None);
        let id = FetchId(self.next_fetch);
        self.next_fetch += 1;
        id
    }

    /// Asks the CDN for the rest of part `i` (an HTTP range unless it is the whole segment).
    fn start_cdn(&mut self, key: &SegmentKey, i: usize, why: CdnWhy) -> Action {
        let id = self.new_fetch(key);
        let p = &mut self.wanted.get_mut(key).expect("present").parts[i];
        p.fetch = Fetch::Cdn { id };
        Action::FetchCdn {
            id,
            key: *key,
            offset: p.pos(),
            end: p.end,
            why,
        }
    }

    /// When a decision may change without any input but time: the earliest such moment after
    /// `decided` (the last time every segment was decided). Moments already passed are skipped
    /// one by one, so one segment waiting on a past moment cannot hide another's future one.
    pub(crate) fn poll_timeout(&self, cfg: &SchedulerConfig, decided: Instant) -> Option<Instant> {
        if let Some((at, timeout)) = self.timeout.get().filter(|(at, _)| *at == decided) {
            debug_assert_eq!(
                timeout,
                self.next_timeout(cfg, at),
                "a change missed the cache"
            );
            return timeout;
        }
        let timeout = self.next_timeout(cfg, decided);
        self.timeout.set(Some((decided, timeout)));
        timeout
    }

    fn next_timeout(&self, cfg: &SchedulerConfig, decided: Instant) -> Option<Instant> {
        self.wanted
            .values()
            .flat_map(|w| w.parts.iter().map(move |p| (w, p)))
            .filter_map(|(w, p)| self.part_timeout(w, p, cfg, decided))
            .filter(|t| *t > decided)
            .min()
    }

    fn part_timeout(
        &self,
        w: &Wanted,
        p: &Part,
        cfg: &SchedulerConfig,
        decided: Instant,
    ) -> Option<Instant> {
        match p.fetch {
            Fetch::Cdn { .. } => None,
            Fetch::CdnBackoff { at } => Some(at),
            Fetch::Peer {
                first_byte: None,
                first_byte_by,
                ..
            } => Some(no_first_byte_by(first_byte_by, self.cdn_by(w, p, cfg))),
            Fetch::Peer { last_progress, .. } => {
                let stall = last_progress + cfg.stall_timeout;
                let quiet = last_progress + cfg.stall_timeout / 2;
                let checks = self
                    .cdn_by(w, p, cfg)
                    .map_or(stall, |by| stall.min(by.max(quiet)));
                Some(self.last_call(w, p, cfg).map_or(checks, |t| checks.min(t)))
            }
            Fetch::Idle if p.is_done(w.total) => None,
            Fetch::Idle => [
                self.cdn_by(w, p, cfg),
                match w.first_fetch {
                    FirstFetch::Unannounced(t) if p.start == 0 => Some(t),
                    _ => None,
                },
                w.busy.iter().map(|b| b.1).max(),
            ]
            .into_iter()
            .flatten()
            .filter(|t| *t > decided)
            .min(),
        }
    }

    /// The last safe moment for the CDN to take over what part `p` still owes.
    fn cdn_by(&self, w: &Wanted, p: &Part, cfg: &SchedulerConfig) -> Option<Instant> {
        self.cdn_start_by(w, self.owed(w, p, cfg), cfg.deadline_margin, cfg)
    }

    /// The very last moment the CDN can fetch what a peer transfer still owes and make the
    /// deadline with a quarter of the margin to spare: the transfer ends there whatever its
    /// pace.
    fn last_call(&self, w: &Wanted, p: &Part, cfg: &SchedulerConfig) -> Option<Instant> {
        self.cdn_start_by(w, self.owed(w, p, cfg), last_call_spare(cfg), cfg)
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

    /// A piece from `peer` answering request `id`: the bao encoding of `offset..end` of a
    /// `total`-byte segment.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn on_piece(
        &mut self,
        peer: PeerId,
        id: RequestId,
        key: &SegmentKey,
        offset: u64,
        end: u64,
        total: u64,
        encoded: &Bytes,
        hashing: &dyn Hashing,
        now: Instant,
    ) -> Progress {
        self.timeout.set(None);
        let Some(w) = self.wanted.get_mut(key) else {
            return Progress::Unexpected;
        };
        let Some(i) = w.part_of(&peer) else {
            return Progress::Unexpected;
        };
        let p = &w.parts[i];
        let Fetch::Peer {
            id: asked,
            offset: start,
            sent,
            first_byte_by,
            first_byte,
            ..
        } = p.fetch
        else {
            return Progress::Unexpected;
        };
        if id != asked {
            return Progress::Stale;
        }
        let Some(tree) = w.tree.as_mut() else {
            // A peer is only asked once the hash is known.
            return Progress::Unexpected;
        };
        if p.end.is_some_and(|e| end > e) {
            return Progress::Violation("piece beyond the requested range");
        }
        if total != tree.size() {
            return Progress::Violation("segment length differs from its signed length");
        }
        if offset != p.pos() {
            return Progress::Violation("piece out of order");
        }
        let data = match hashing.verify(tree, offset, end, encoded) {
            Ok((data, parents)) => {
                tree.absorb(&parents);
                data
            }
            Err(e) => {
                // Nothing of this piece is kept; the part goes back to source selection.
                w.parts[i].fetch = Fetch::Idle;
                w.tried.push(peer);
                return Progress::Corrupt(e);
            }
        };
        w.sources.p2p += data.len() as u64;
        let p = &mut w.parts[i];
        p.data.push(data);
        if p.relayable_to == offset {
            p.relayable_to = end;
        }
        // Timed from the first piece (queueing at the uploader is not its rate); a range
        // delivered in one piece is timed from the request.
        let stats = RangeStats {
            peer,
            bytes: p.pos() - start,
            elapsed: now.saturating_duration_since(first_byte.map_or(sent, |f| f.0)),
            first_piece: first_byte.map_or(0, |f| f.1),
        };
        p.fetch = Fetch::Peer {
            peer,
            id,
            offset: start,
            sent,
            first_byte_by,
            first_byte: first_byte.or(Some((now, end - offset))),
            last_progress: now,
        };
        if !p.is_done(w.total) {
            return Progress::Partial;
        }
        p.fetch = Fetch::Idle;
        if w.is_done() {
            return self.finish(key, Some(stats));
        }
        Progress::RangeDone(stats)
    }

    /// Stops tracking `key`, with the CDN fetches it has in flight.
    fn forget(&mut self, key: &SegmentKey) -> Option<Wanted> {
        let w = self.wanted.remove(key)?;
        for p in &w.parts {
            if let Fetch::Cdn { id } = p.fetch {
                self.cdn_fetches.remove(&id);
            }
        }
        Some(w)
    }

    /// The segment is whole: hands it over.
    fn finish(&mut self, key: &SegmentKey, last: Option<RangeStats>) -> Progress {
        let w = self.forget(key).expect("present");
        let mut data = SegmentData::new();
        for p in w.parts {
            for chunk in p.data.chunks() {
                data.push(chunk.clone());
            }
        }
        self.observe_size(data.len());
        let tree = w.tree.filter(|_| w.sources.cdn == 0);
        Progress::Complete {
            data,
            sources: w.sources,
            last,
            shareable: w.shareable,
            duration: w.duration,
            tree,
        }
    }

    /// Whether `peer`'s answer to request `id` for `key` comes too late: we have asked it
    /// again since, and its answer to that is still to come.
    pub(crate) fn is_stale(&self, peer: PeerId, key: &SegmentKey, id: RequestId) -> bool {
        self.wanted
            .get(key)
            .and_then(|w| w.part_of(&peer).map(|i| &w.parts[i]))
            .is_some_and(|p| matches!(p.fetch, Fetch::Peer { id: asked, .. } if asked != id))
    }

    /// A peer will not serve `key`: it does not hold it, or it is `busy_until` some time.
    pub(crate) fn on_refused(
        &mut self,
        peer: PeerId,
        key: &SegmentKey,
        busy_until: Option<Instant>,
    ) -> bool {
        self.timeout.set(None);
        let Some(w) = self.wanted.get_mut(key) else {
            return false;
        };
        let Some(i) = w.part_of(&peer) else {
            return false;
        };
        w.parts[i].fetch = Fetch::Idle;
        match busy_until {
            Some(until) => w.leave_alone(peer, until),
            None => w.tried.push(peer),
        }
        true
    }

    /// `peer` is gone: transfers from it restart elsewhere. Returns the affected segments.
    pub(crate) fn on_peer_lost(&mut self, peer: PeerId) -> Vec<SegmentKey> {
        self.timeout.set(None);
        let mut lost = Vec::new();
        for (key, w) in self.wanted.iter_mut() {
            if let Some(i) = w.part_of(&peer) {
                w.parts[i].fetch = Fetch::Idle;
                w.tried.push(peer);
                w.fell_back = true;
                lost.push(*key);
            }
        }
        lost
    }

    /// A CDN fetch finished. `Err` when the attempt failed and retries are exhausted: the
    /// segment is given up, with the cancels for the peer ranges still coming.
    pub(crate) fn on_cdn(
        &mut self,
        id: FetchId,
        result: Result<Bytes, ()>,
        elapsed: Duration,
        cfg: &SchedulerConfig,
        now: Instant,
    ) -> Result<Option<(SegmentKey, Progress)>, GivenUp> {
        self.timeout.set(None);
        let Some(key) = self.cdn_fetches.remove(&id) else {
            return Ok(None);
        };
        let Some(w) = self.wanted.get_mut(&key) else {
            return Ok(None);
        };
        let Some(i) = w.parts.iter().position(|p| p.fetch == Fetch::Cdn { id }) else {
            return Ok(None);
        };
        let p = &w.parts[i];
        // A range ends where it was asked to, or earlier where the segment does (HTTP clips
        // a range to the resource); the rest of a segment ends where the segment does.
        let ends_at = |body: &Bytes| p.pos() + body.len() as u64;
        let fits = |body: &Bytes| {
            !body.is_empty()
                && match (p.end, w.total) {
                    (_, Some(t)) => ends_at(body) == p.end.unwrap_or(t).min(t),
                    (Some(e), None) => ends_at(body) <= e,
                    (None, None) => true,
                }
        };
        let body = match result {
            Ok(body) if fits(&body) => body,
            _ => {
                w.cdn_failures += 1;
                if w.cdn_failures < cfg.cdn_attempts {
                    w.parts[i].fetch = Fetch::CdnBackoff {
                        at: now + cfg.cdn_retry_backoff,
                    };
                    return Ok(None);
                }
                let cancels = self.remove(&key);
                return Err(GivenUp { key, cancels });
            }
        };
        let bytes = body.len() as u64;
        let end = ends_at(&body);
        if p.end.is_none() {
            // The rest of the segment: it ends here. (A part with an end is only ever planned
            // once the signed length is known.)
            w.total = Some(end);
        }
        w.sources.cdn += bytes;
        let p = &mut w.parts[i];
        p.data.push(body);
        p.fetch = Fetch::Idle;
        self.observe_cdn(bytes, elapsed);
        if !self.wanted[&key].is_done() {
            return Ok(None);
        }
        Ok(Some((key, self.finish(&key, None))))
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

/// What the last call keeps of the deadline margin.
fn last_call_spare(cfg: &SchedulerConfig) -> Duration {
    cfg.deadline_margin / 4
}

/// Halfway between listing and `cdn_by`: byte ranges from several holders start there.
fn halfway(w: &Wanted, cdn_by: Instant) -> Instant {
    w.listed_at + cdn_by.saturating_duration_since(w.listed_at) / 2
}

/// When a peer transfer without a first byte is given up: at the end of its own wait, or at
/// the CDN's last safe moment (`cdn_by`) if that comes first. The check and the timer that
/// wakes it must agree.
fn no_first_byte_by(first_byte_by: Instant, cdn_by: Option<Instant>) -> Instant {
    cdn_by.map_or(first_byte_by, |by| by.min(first_byte_by))
}

/// How long to wait for a holder's first byte: a loaded holder serves others first.
fn load_wait(c: &Candidate, cfg: &SchedulerConfig) -> Duration {
    cfg.stall_timeout * (u32::from(c.measurements.load) + 1)
}

/// Ranges that add up slow holders: `ranked` (fastest first, each with its expected time for
/// all `owed` bytes) each get what they deliver within `window`, with a tenth to spare, until
/// `owed` is covered or `max` holders are in. Shares are scaled so that, when covered, all
/// finish together, and are whole chunk groups (the unit a receiver verifies). Holders whose
/// share would be less than a group are left out.
fn plan_ranges<'c>(
    owed: u64,
    ranked: &[(Duration, &'c Candidate)],
    window: Duration,
    max: usize,
) -> Vec<(u64, &'c Candidate)> {
    let window = window.as_secs_f64();
    let groups = |bytes: u64| bytes - bytes % GROUP_BYTES;
    let mut plan = Vec::new();
    let mut covered = 0u64;
    for &(eta, c) in ranked {
        if plan.len() >= max || covered >= owed {
            break;
        }
        let can = groups((owed as f64 * 0.9 * window / eta.as_secs_f64().max(1e-3)) as u64);
        if can == 0 {
            continue;
        }
        plan.push((can.min(owed), c));
        covered += can.min(owed);
    }
    if covered > owed {
        let scale = owed as f64 / covered as f64;
        for share in plan.iter_mut() {
            share.0 = groups((share.0 as f64 * scale) as u64).max(GROUP_BYTES);
        }
        // Whole groups may add up to more than a short remainder: fewer holders then.
        while plan.len() > 1 && plan.iter().map(|s| s.0).sum::<u64>() > owed {
            plan.pop();
        }
        // Rounding leftovers go to the last range, so the plan covers exactly what is owed.
        let planned: u64 = plan.iter().map(|s| s.0).sum();
        if let Some(last) = plan.last_mut() {
            last.0 = (last.0 + owed.saturating_sub(planned)).min(owed);
        }
    }
    plan
}

#[cfg(test)]
mod tests;
