//! What the engine knows about one remote peer: the connection, the data link, availability and
//! measurements.

use crate::coord::Position;
use crate::identity::{Certificate, ChannelBinding, PublicKey};
use crate::scheduler::PeerMeasurements;
use crate::time::{Duration, Instant};
use crate::wire::Message;

/// Our side of a handshake under way (boxed: a connection spends a round trip in it and the
/// rest of its life `Ready`, and peers are looked up on every frame).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Opening {
    pub(crate) binding: ChannelBinding,
    pub(crate) nonce: [u8; 32],
}

/// A handshake waiting for the peer's proof.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Proving {
    pub(crate) binding: ChannelBinding,
    pub(crate) nonce: [u8; 32],
    pub(crate) key: PublicKey,
    pub(crate) their_nonce: [u8; 32],
}

/// Where a connection is in its handshake, without the handshake's data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    Connecting,
    Open,
    Proving,
    Ready,
}

/// Transport state of the connection to a peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Conn {
    /// We asked the driver to connect; messages wait in `queued`.
    Connecting,
    /// Open and our handshake sent; the peer's has not arrived yet. Messages still wait: they
    /// may only follow our proof.
    Open(Box<Opening>),
    /// The peer's certificate checked out and our proof is sent; its proof has not arrived.
    Proving(Box<Proving>),
    /// The peer proved its certified key on this connection.
    Ready,
}

/// Data-link state (the set of peers we exchange segments with).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Link {
    /// No data link.
    None,
    /// We sent `LinkRequest` at this time.
    Requested(Instant),
    /// Linked: availability flows both ways.
    Linked,
}

#[derive(Debug)]
pub(crate) struct Peer {
    pub(crate) conn: Conn,
    /// The certificate from the peer's handshake (checked again when revocations change).
    pub(crate) certificate: Option<Box<Certificate>>,
    pub(crate) link: Link,
    /// Messages waiting for the connection (and our handshake) to go out.
    pub(crate) queued: Vec<Message>,
    /// Bytes handed to the driver for this connection and not yet reported sent.
    pub(crate) buffered: u64,
    /// Since when, and how many bytes, this connection has sent while its buffer was being
    /// reported (measures our uplink once enough bytes add up).
    pub(crate) drain_window: Option<(Instant, u64)>,
    /// Last time the connection carried anything, for idle closing.
    pub(crate) last_used: Instant,
    /// When we may ask for a link again after a refusal.
    pub(crate) link_backoff_until: Option<Instant>,
    pub(crate) upload_bps: f64,
    pub(crate) load: u8,
    pub(crate) srtt: Option<Duration>,
    pub(crate) rttvar: Option<Duration>,
    pub(crate) throughput_bps: Option<f64>,
    pub(crate) completed: u32,
    pub(crate) failed: u32,
    pub(crate) refused: u32,
    pub(crate) since: Instant,
    /// The lowest RTT seen: propagation delay without queues, what coordinates learn from.
    pub(crate) rtt_floor: Option<Duration>,
    /// Our unanswered ping, if any: its nonce and when it left.
    pub(crate) ping: Option<(u32, Instant)>,
    /// When we last pinged the peer.
    pub(crate) pinged_at: Option<Instant>,
    /// The network coordinate the peer last reported.
    pub(crate) position: Option<Position>,
}

impl Conn {
    pub(crate) fn phase(&self) -> Phase {
        match self {
            Self::Connecting => Phase::Connecting,
            Self::Open(_) => Phase::Open,
            Self::Proving(_) => Phase::Proving,
            Self::Ready => Phase::Ready,
        }
    }
}

impl Peer {
    pub(crate) fn new(conn: Conn, now: Instant) -> Self {
        Self {
            conn,
            certificate: None,
            link: Link::None,
            queued: Vec::new(),
            buffered: 0,
            drain_window: None,
            last_used: now,
            link_backoff_until: None,
            upload_bps: 0.0,
            load: 0,
            srtt: None,
            rttvar: None,
            throughput_bps: None,
            completed: 0,
            failed: 0,
            refused: 0,
            since: now,
            rtt_floor: None,
            ping: None,
            pinged_at: None,
            position: None,
        }
    }

    pub(crate) fn is_linked(&self) -> bool {
        self.link == Link::Linked
    }

    /// Its measurements, with our `in_flight` requests to it.
    pub(crate) fn measurements(&self, in_flight: u8, now: Instant) -> PeerMeasurements {
        PeerMeasurements {
            srtt: self.srtt,
            rttvar: self.rttvar,
            throughput_bps: self.throughput_bps,
            reported_upload_bps: self.upload_bps,
            load: self.load,
            in_flight,
            completed: self.completed,
            failed: self.failed,
            refused: self.refused,
            age: now.saturating_duration_since(self.since),
            first_byte_wait: Duration::ZERO,
            relaying: false,
        }
    }

    /// Folds one RTT sample into the smoothed estimate and its deviation (RFC 6298: gains
    /// 1/8 and 1/4).
    pub(crate) fn rtt_sample(&mut self, sample: Duration) {
        let (srtt, rttvar) = match (self.srtt, self.rttvar) {
            (Some(s), Some(v)) => {
                let deviation = s.abs_diff(sample);
                ((s * 7 + sample) / 8, (v * 3 + deviation) / 4)
            }
            _ => (sample, sample / 2),
        };
        self.srtt = Some(srtt);
        self.rttvar = Some(rttvar);
        self.rtt_floor = Some(self.rtt_floor.map_or(sample, |f| f.min(sample)));
    }

    /// Folds a completed transfer into the throughput estimate (gain 1/4: recent matters).
    pub(crate) fn transfer_done(&mut self, bps: f64) {
        self.completed = self.completed.saturating_add(1);
        self.throughput_bps = Some(match self.throughput_bps {
            None => bps,
            Some(t) => 0.75 * t + 0.25 * bps,
        });
    }
}
