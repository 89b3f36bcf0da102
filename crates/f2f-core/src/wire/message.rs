//! The messages peers exchange. Encoding lives in [`super::codec`].

use bytes::Bytes;

use crate::coord::{Coord, Position};
use crate::id::{PeerId, RenditionId, SegmentKey, SwarmId, VariantTag};
use crate::identity::{Certificate, RevocationList, Signature};
use crate::integrity::Attestation;
use crate::receipt::Delivery;
use crate::swap::SwapMessage;

/// The protocol version this build speaks; carried in every frame header.
pub const PROTOCOL_VERSION: u8 = 2;

/// Opening message on every connection: which swarm, who is speaking (its certificate), a
/// fresh nonce for the other side's [`Message::Proof`], and what it can upload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handshake {
    /// Highest protocol version the sender speaks.
    pub version: u8,
    /// The swarm this connection belongs to; a connection serves exactly one swarm.
    pub swarm: SwarmId,
    /// The sender's certificate; its key's hash is the sender's `PeerId`.
    pub certificate: Certificate,
    /// Fresh randomness the receiver must sign in its proof.
    pub nonce: [u8; 32],
    /// The sender's own estimate of its upload capacity, in kbit/s (0 = unknown).
    pub upload_kbps: u32,
}

/// Names one [`Message::Request`] among those the requester sent; the answers (`Piece`,
/// `Absent`) echo it. A cancelled request's pieces may still be in flight when the requester
/// asks the same peer again, so without it they would look like the new transfer's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct RequestId(pub u32);

impl RequestId {
    /// The id after this one (wrapping: only recent requests need telling apart).
    #[must_use]
    pub fn next(self) -> Self {
        Self(self.0.wrapping_add(1))
    }
}

/// Why a peer answers a request with [`Message::Absent`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AbsentReason {
    /// The peer does not hold the segment (any more).
    NotHeld,
    /// The peer's upload slots and queue are full.
    Busy,
}

/// A neighbour in a [`Message::Neighbours`] list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listed {
    /// Who.
    pub peer: PeerId,
    /// The coordinate it last reported (all zero: not known yet).
    pub coord: Coord,
}

/// One wire message.
///
/// Membership messages follow HyParView (Leitão et al., DSN 2007); `Link*`, `Neighbours` and
/// `Swap` messages manage the separate data-neighbour set; the rest moves segments.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Message {
    /// First message on a connection, both directions.
    Handshake(Box<Handshake>),
    /// Second message, both directions: the sender's signature binding its key to this
    /// session (see [`crate::identity`]).
    Proof {
        /// Over the handshake transcript.
        signature: Signature,
    },
    /// The authority's newest revocation list, passed on between neighbours.
    Revocations(Box<RevocationList>),
    /// A new node asks to enter the overlay through the receiver.
    Join,
    /// A random walk announcing `joiner`; `ttl` counts the remaining hops.
    ForwardJoin {
        /// The node that joined.
        joiner: PeerId,
        /// Remaining hops of the walk.
        ttl: u8,
    },
    /// Asks the receiver to take the sender into its active view.
    Neighbour {
        /// High priority: the sender has no active neighbours left and must be accepted.
        high_priority: bool,
    },
    /// Answer to [`Message::Neighbour`].
    NeighbourReply {
        /// Whether the receiver took the sender into its active view.
        accepted: bool,
    },
    /// Periodic exchange of passive-view samples, walking `ttl` hops from `origin`.
    Shuffle {
        /// The node that started the shuffle and waits for the reply.
        origin: PeerId,
        /// Remaining hops.
        ttl: u8,
        /// A sample of the origin's views.
        peers: Vec<PeerId>,
    },
    /// The sample sent back to a shuffle's origin.
    ShuffleReply {
        /// A sample of the replier's passive view.
        peers: Vec<PeerId>,
    },
    /// The sender drops the receiver from its active view.
    Disconnect {
        /// The sender stays online (keep it in the passive view); false when it leaves the swarm.
        alive: bool,
    },
    /// A driver's signalling payload (a WebRTC offer or answer) for `to`, relayed through the
    /// overlay (see the engine's `relay` module).
    Signal {
        /// The peer that wrote it (unchecked by relays; the connection's handshake checks it).
        from: PeerId,
        /// The addressee.
        to: PeerId,
        /// Hops it may still be flooded.
        ttl: u8,
        /// Opaque to the engine; decoding rejects more than [`super::Limits::max_signal_len`].
        payload: Bytes,
    },
    /// Asks the receiver to become a data neighbour (exchange availability and segments).
    LinkRequest,
    /// Answer to [`Message::LinkRequest`].
    LinkReply {
        /// Whether the receiver accepted the data link.
        accepted: bool,
    },
    /// Ends the data link (the overlay link, if any, is unaffected).
    LinkDrop,
    /// The sender's data neighbours, told to each of them when the set changes: what a swap
    /// proposal picks the partner's neighbour from, and where each sits.
    Neighbours {
        /// The sender's own network coordinate.
        position: Position,
        /// Each neighbour, as far as the sender knows it; at most the decoder's list limit.
        peers: Vec<Listed>,
    },
    /// An RTT probe of a data neighbour.
    Ping {
        /// Echoed in the [`Message::Pong`].
        nonce: u32,
    },
    /// Answer to [`Message::Ping`], with the sender's network coordinate.
    Pong {
        /// The ping's.
        nonce: u32,
        /// The sender's coordinate.
        position: Position,
    },
    /// Swap refinement of the data-neighbour set (see [`crate::swap`]).
    Swap(SwapMessage),
    /// Segments the sender holds, or (`partial`) is receiving and relays as the bytes arrive.
    /// An empty `keys` list is an idle notice: the sender has a free upload slot.
    Have {
        /// Uploads the sender is serving or has queued, so requesters can avoid busy peers.
        load: u8,
        /// The sender's measured upload capacity, kbit/s (0 = not measured yet), so requesters
        /// can prefer fast sources.
        upload_kbps: u32,
        /// The segments are still arriving at the sender (it relays what it has received).
        partial: bool,
        /// The segments.
        keys: Vec<SegmentKey>,
    },
    /// Everything the sender holds of one rendition, relative to a window start.
    Bitmap {
        /// The swarm (as in every segment key).
        swarm: SwarmId,
        /// The rendition.
        rendition: RenditionId,
        /// Sequence number of bit 0 (decoding rejects a window that runs past `u64::MAX`).
        base: u64,
        /// Bit `i` (LSB-first within each byte) set when sequence `base + i` is held.
        bits: Bytes,
        /// The variant tag of each set bit, in bit order.
        variants: Vec<VariantTag>,
    },
    /// Certified peers attest a segment's hash (streams without signed hashes); sent before the
    /// `Have` that announces the segment, and passed on as the set of signers grows.
    Attest(Box<Attestation>),
    /// The sender's receipt for the verified bytes the receiver sent it in one window (see
    /// [`crate::receipt`]).
    Receipt {
        /// What the sender vouches for (the uploader is the receiver of this message).
        delivery: Delivery,
        /// The sender's signature over the statement.
        signature: Signature,
    },
    /// Asks for bytes `offset..end` of a segment (`offset` non-zero to resume a transfer begun
    /// elsewhere; `end` set when another source, such as a CDN range, fetches the rest).
    Request {
        /// Chosen by the requester; echoed in the answers.
        id: RequestId,
        /// The segment.
        key: SegmentKey,
        /// First byte wanted.
        offset: u64,
        /// One past the last byte wanted; `None`: to the segment's end. Decoding rejects an
        /// `end` not above `offset`.
        end: Option<u64>,
    },
    /// A verifiable range of a segment.
    Piece {
        /// The request this answers.
        id: RequestId,
        /// The segment.
        key: SegmentKey,
        /// First byte of the range (a multiple of the 16 KiB chunk group).
        offset: u64,
        /// One past its last byte (a multiple of the chunk group, or `total`); decoding rejects
        /// `offset >= end` and `end > total`.
        end: u64,
        /// Total segment length.
        total: u64,
        /// The range's bao encoding: the parent hashes from the segment's root down to the
        /// range, interleaved with its bytes (see [`crate::integrity`]).
        data: Bytes,
    },
    /// The requester no longer wants the segment.
    Cancel {
        /// The segment.
        key: SegmentKey,
    },
    /// The receiver asked for a segment the sender will not serve.
    Absent {
        /// The request this answers.
        id: RequestId,
        /// The segment.
        key: SegmentKey,
        /// Why.
        reason: AbsentReason,
    },
    /// The k smallest peer hashes the sender knows for one rendition's viewers in a
    /// swarm-size epoch.
    SizeSketch {
        /// The rendition (each is its own sub-swarm).
        rendition: RenditionId,
        /// The epoch the hashes belong to.
        epoch: u64,
        /// Ascending (decoding rejects any other order), at most the configured sketch size.
        mins: Vec<u64>,
        /// The same, over peers whose uplink can seed segments; ascending.
        capable: Vec<u64>,
    },
}
