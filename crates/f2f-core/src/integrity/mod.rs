//! Segment integrity: no byte from a peer reaches the player before it is checked against the
//! segment's BLAKE3 hash, which the node learns from a source it trusts: the origin's signed
//! hashes, fed by the driver as `Input::SegmentHash`, or, when the origin signs nothing, a
//! quorum of certified peers' [`Attestation`]s.
//!
//! Verification is per 16 KiB chunk group, as bytes arrive ([`Outboard`]): poison is caught in
//! the piece that carried it, one segment can come from several peers at once, and verified
//! groups are relayed before the whole segment is in.

mod attestation;
mod manifest;
mod outboard;

use std::fmt;

use bytes::Bytes;

use crate::segment::SegmentData;

pub use attestation::{Attestation, AttestationError};
pub use manifest::{HashEntry, ManifestError, SignedHashes};
pub use outboard::{GROUP_BYTES, IntegrityError, Outboard, Parents};

/// The hashing behind verification, behind a trait like [`crate::identity::Crypto`]: the engine
/// calls it, the driver chooses it. [`Blake3`] computes everything; the simulator wraps it to
/// remember results per shared buffer (a piece relayed to a thousand nodes is one buffer there),
/// which DESIGN.md allows: hashing is memoised per segment, never skipped.
pub trait Hashing: fmt::Debug + Send + Sync {
    /// The tree of a whole segment (a CDN download, or one assembled from mixed sources).
    fn outboard(&self, data: &SegmentData) -> Outboard;

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
    fn outboard(&self, data: &SegmentData) -> Outboard {
        Outboard::from_data(&data.to_bytes())
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

/// The bytes for a piece from `offset` (a chunk-group boundary) of `data`, which holds the
/// segment's bytes from `data_start` on: up to `max` bytes and never past `stop`, ending on a
/// group boundary unless at the segment's end (`size`). One held buffer when it can be (a
/// slice, no copy: the piece then ends where that buffer does); a copy of the groups only when
/// one straddles two buffers. `None` when not even one group is held.
pub fn piece_bytes(
    data: &SegmentData,
    data_start: u64,
    offset: u64,
    max: u64,
    stop: u64,
    size: u64,
) -> Option<(Bytes, u64)> {
    let limit = offset.saturating_add(max).min(stop);
    let whole = |end: u64| {
        if end >= size {
            size
        } else {
            end - end % GROUP_BYTES
        }
    };
    let at = offset.checked_sub(data_start)?;
    let first = data.slice(at, limit - offset).chunks().first().cloned()?;
    let end = whole(offset + first.len() as u64);
    if end > offset {
        return Some((first.slice(..(end - offset) as usize), end));
    }
    let end = whole(limit.min(data_start + data.len()));
    (end > offset).then(|| (data.slice(at, end - offset).to_bytes(), end))
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

#[cfg(test)]
mod tests {
    use super::*;

    const G: u64 = GROUP_BYTES;

    fn rope(cuts: &[u64], size: u64) -> (Bytes, SegmentData) {
        let all: Bytes = (0..size).map(|i| (i % 251) as u8).collect();
        let mut data = SegmentData::new();
        let mut at = 0;
        for &cut in cuts.iter().chain([&size]) {
            data.push(all.slice(at as usize..cut as usize));
            at = cut;
        }
        (all, data)
    }

    #[test]
    fn a_piece_is_a_slice_of_one_held_buffer_when_it_can_be() {
        let (all, one) = rope(&[], 10 * G + 100);
        let (piece, end) =
            piece_bytes(&one, 0, 2 * G, 4 * G, 10 * G + 100, 10 * G + 100).expect("held");
        assert_eq!(
            (end, piece.as_ptr()),
            (6 * G, all[2 * G as usize..].as_ptr())
        );
        // Received as pieces of two groups: a piece ends where the buffer does, no copy.
        let (_, pieces) = rope(&[2 * G, 4 * G, 6 * G], 8 * G);
        let (piece, end) = piece_bytes(&pieces, 0, 2 * G, 4 * G, 8 * G, 8 * G).expect("held");
        assert_eq!((end, piece.as_ptr()), (4 * G, pieces.chunks()[1].as_ptr()));
    }

    #[test]
    fn a_group_across_two_buffers_is_copied_and_the_end_may_be_short() {
        let (all, data) = rope(&[G + 10], 3 * G + 5);
        let (piece, end) = piece_bytes(&data, 0, G, 4 * G, 3 * G + 5, 3 * G + 5).expect("held");
        assert_eq!(end, 3 * G + 5, "to the segment's end");
        assert_eq!(piece, all.slice(G as usize..));
        // Held from `G` on (a later part), up to `stop`: whole groups only.
        let (_, part) = rope(&[], 2 * G + 7);
        let got = piece_bytes(&part, G, G, 4 * G, G + G + 7, 10 * G);
        assert_eq!(got.map(|(_, end)| end), Some(2 * G));
        assert_eq!(
            piece_bytes(&part, G, 0, 4 * G, 3 * G, 10 * G),
            None,
            "not held"
        );
    }
}
