//! Segment integrity: no byte from a peer reaches the player before it is checked against the
//! segment's BLAKE3 hash, which the node learns from a source it trusts (the origin's signed
//! hashes, fed by the driver as `Input::SegmentHash`).
//!
//! Verification is per 16 KiB chunk group, as bytes arrive ([`Outboard`]): poison is caught in
//! the piece that carried it, one segment can come from several peers at once, and verified
//! groups are relayed before the whole segment is in.

mod outboard;

use std::fmt;

use bytes::Bytes;

pub use outboard::{GROUP_BYTES, IntegrityError, Outboard, Parents};

/// The hashing behind verification, behind a trait like [`crate::identity::Crypto`]: the engine
/// calls it, the driver chooses it. [`Blake3`] computes everything; the simulator wraps it to
/// remember results per shared buffer (a piece relayed to a thousand nodes is one buffer there),
/// which DESIGN.md allows: hashing is memoised per segment, never skipped.
pub trait Hashing: fmt::Debug + Send + Sync {
    /// The tree of a whole segment (a CDN download, or one assembled from mixed sources).
    fn outboard(&self, data: &Bytes) -> Outboard;

    /// The bao encoding of `data`, the segment's bytes from `start`, as [`Outboard::encode`].
    ///
    /// # Errors
    ///
    /// As [`Outboard::encode`].
    fn encode(&self, tree: &Outboard, start: u64, data: &Bytes) -> Result<Bytes, IntegrityError>;

    /// Verifies and unpacks a piece, as [`Outboard::verify`].
    ///
    /// # Errors
    ///
    /// As [`Outboard::verify`].
    fn verify(
        &self,
        tree: &Outboard,
        start: u64,
        end: u64,
        encoded: &Bytes,
    ) -> Result<(Bytes, Parents), IntegrityError>;
}

/// Plain BLAKE3: every call hashes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Blake3;

impl Hashing for Blake3 {
    fn outboard(&self, data: &Bytes) -> Outboard {
        Outboard::from_data(data)
    }

    fn encode(&self, tree: &Outboard, start: u64, data: &Bytes) -> Result<Bytes, IntegrityError> {
        tree.encode(start, data)
    }

    fn verify(
        &self,
        tree: &Outboard,
        start: u64,
        end: u64,
        encoded: &Bytes,
    ) -> Result<(Bytes, Parents), IntegrityError> {
        tree.verify(start, end, encoded)
    }
}

/// A segment's BLAKE3 hash: the root of its bao tree.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SegmentHash(pub [u8; 32]);

impl SegmentHash {
    /// Hashes a whole segment.
    pub fn of(data: &[u8]) -> Self {
        Self(*blake3::hash(data).as_bytes())
    }
}

impl fmt::Debug for SegmentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SegmentHash(")?;
        for b in &self.0[..6] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}
