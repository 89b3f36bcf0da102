//! Telemetry: counters the drivers export and events worth a log line.
//!
//! The core only counts; drivers decide where numbers go (Prometheus, the control plane,
//! the simulator's report).

use crate::id::{PeerId, SegmentKey};
use crate::time::Duration;

/// Cumulative counters of one engine.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Media bytes received from the CDN.
    pub cdn_bytes: u64,
    /// Media bytes received from peers (and delivered or held).
    pub p2p_bytes: u64,
    /// Media bytes sent to peers.
    pub uploaded_bytes: u64,
    /// Segments completed from the CDN.
    pub cdn_segments: u64,
    /// Segments completed from peers.
    pub p2p_segments: u64,
    /// CDN fetches started because this node was among the first fetchers of a segment.
    pub cdn_first_fetches: u64,
    /// CDN fetches started because a deadline left no time for peers.
    pub cdn_deadline_fetches: u64,
    /// CDN fetches of what a failed peer transfer left (too slow for the deadline, or stalled
    /// with no other holder to take over).
    pub cdn_fallback_fetches: u64,
    /// Peer transfers abandoned for another source: no first byte in time, stalled, too slow
    /// for the deadline, or cut off with the peer's connection or data link.
    pub p2p_fallbacks: u64,
    /// Peer transfers (a segment or a range of one) that completed.
    pub p2p_transfers: u64,
    /// Sum over completed peer transfers of each one's throughput, kbit/s: divided by
    /// `p2p_transfers`, the mean throughput per transfer that peer selection is judged by.
    pub p2p_transfer_kbps: u64,
    /// Of `p2p_transfers`, those from a peer still receiving the segment (cut-through): they
    /// run no faster than that peer's own source feeds it, whoever was chosen.
    pub p2p_relayed_transfers: u64,
    /// Their throughput summed as in `p2p_transfer_kbps`.
    pub p2p_relayed_kbps: u64,
    /// Requests a peer answered with `Absent`.
    pub p2p_refused: u64,
    /// Requests from peers this node began serving at once (a free slot, or the slot of an
    /// older segment's transfer).
    pub uploads_started: u64,
    /// Requests from peers it queued behind busy slots.
    pub uploads_queued: u64,
    /// Of those, withdrawn before a slot came free (the requester cancelled, or announced the
    /// whole segment from elsewhere): in a large swarm, most of them, because a slot relaying
    /// a segment still arriving stays busy for as long as that segment takes to arrive.
    pub uploads_queue_withdrawn: u64,
    /// Requesters told `Busy`: slots and queue full, or their transfer gave its slot to a
    /// newer segment's request.
    pub uploads_turned_away: u64,
    /// Pieces and refusals answering a request since cancelled or repeated to the same peer
    /// (in flight when it changed); dropped, the sender is not at fault.
    pub stale_answers: u64,
    /// Segments handed to the player.
    pub delivered: u64,
    /// Loads that failed (every source exhausted).
    pub load_failures: u64,
    /// Frames from peers that did not decode or broke the protocol.
    pub peer_errors: u64,
    /// Connected peers dropped because a revocation list withdrew their certificate.
    pub peers_revoked: u64,
    /// Pieces that failed verification (each banned its sender).
    pub corrupt_pieces: u64,
    /// Connections opened (either direction).
    pub connections: u64,
    /// Hash attestations from peers whose signatures were checked.
    pub attestations_checked: u64,
    /// CDN spot checks of segments whose hash a quorum of peers attested.
    pub spot_checks: u64,
    /// Attesters caught signing a hash the CDN's bytes do not have.
    pub false_attesters: u64,
    /// Swaps of data neighbours this node proposed.
    pub swaps_proposed: u64,
    /// Of those, committed.
    pub swaps_committed: u64,
    /// Of those, aborted (refused, too little gain, or votes too late).
    pub swaps_aborted: u64,
    /// Old data links dropped because a swap's new link came up (as any party).
    pub swaps_rewired: u64,
    /// Version of the learned peer model: the outcomes it has learnt from (0: fixed rule).
    pub model_version: u64,
    /// The learned model's recent mean error predicting a transfer's log throughput, ×1000
    /// (693 ≈ off by 2×).
    pub model_error_milli: u64,
}

impl Stats {
    /// P2P share of the media bytes received.
    pub fn offload(&self) -> f64 {
        let total = self.cdn_bytes + self.p2p_bytes;
        if total == 0 {
            0.0
        } else {
            self.p2p_bytes as f64 / total as f64
        }
    }
}

/// Why a transfer left the swarm for the CDN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FallbackReason {
    /// The first byte did not arrive in time (the peer queued the request too long).
    NoFirstByte,
    /// Bytes stopped arriving for the stall timeout.
    Stalled,
    /// At the observed rate the transfer would miss the playback deadline.
    TooSlow,
    /// The peer went away mid-transfer.
    PeerLost,
}

/// Notable things that happened, for logs and event channels.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// The first byte from any peer arrived, this long after the engine joined.
    FirstP2pByte {
        /// Time since the join.
        after_join: Duration,
    },
    /// A peer transfer was abandoned for the CDN.
    Fallback {
        /// The segment.
        key: SegmentKey,
        /// The peer that failed.
        peer: PeerId,
        /// Why.
        reason: FallbackReason,
    },
    /// A peer sent something undecodable or against the protocol; it was disconnected.
    PeerMisbehaved {
        /// The peer.
        peer: PeerId,
        /// What it did.
        error: String,
    },
    /// The overlay lost all its members; the driver should bootstrap again.
    Isolated,
    /// A peer sent bytes that fail verification: it is disconnected and banned for the session.
    PeerBanned {
        /// The peer.
        peer: PeerId,
        /// The segment it corrupted.
        key: SegmentKey,
        /// What failed.
        error: String,
    },
    /// A revocation list withdrew a connected peer's certificate; it was disconnected.
    PeerRevoked {
        /// The peer.
        peer: PeerId,
    },
    /// Peers signed a hash for `key` that its bytes from the CDN do not have: they are
    /// disconnected and banned for the session.
    FalseAttestation {
        /// The segment.
        key: SegmentKey,
        /// Who signed the false hash.
        signers: Vec<PeerId>,
    },
    /// The driver fed a revocation list the authority did not sign; the one in force stays.
    RevocationsRefused {
        /// Why.
        error: String,
    },
}
