//! A segment's BLAKE3 tree (a `bao-tree` pre-order outboard over 16 KiB chunk groups) and the
//! verified ranges that travel in `Piece` messages.
//!
//! A piece carries the bao encoding of a group-aligned byte range: the tree's parent hashes on
//! the way from the root to that range, interleaved with the range's data. A receiver that knows
//! the segment's root hash checks every chunk group as it decodes it, so a bad byte is caught in
//! the piece that carried it, ranges can come from several peers at once, and a relay can pass
//! on verified groups before it holds the whole segment: the parents it received with them are
//! the ones it needs to encode them again.

use std::io;

use bao_tree::io::outboard::PreOrderMemOutboard;
use bao_tree::io::sync::{DecodeResponseIter, OutboardMut, ReadAt, Size, encode_ranges};
use bao_tree::io::{BaoContentItem, Leaf, Parent};
use bao_tree::{BaoTree, BlockSize, ChunkNum, ChunkRanges, TreeNode};
use bytes::{Bytes, BytesMut};

use super::SegmentHash;

/// Chunk groups of 16 KiB (2^4 BLAKE3 chunks): the unit a receiver verifies, and the alignment
/// of every range a peer is asked for.
pub const GROUP_BYTES: u64 = 16 * 1024;
const BLOCK: BlockSize = BlockSize::from_chunk_log(4);

/// Why a piece was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IntegrityError {
    /// A chunk group or a parent hash does not match the segment's root hash.
    #[error("bytes fail verification against the segment hash")]
    Mismatch,
    /// The encoding ends early or runs on past the range.
    #[error("piece encoding has the wrong length")]
    Length,
    /// The range is not aligned to chunk groups, empty, or past the segment's end.
    #[error("piece range {start}..{end} is not a chunk-group range of a {size}-byte segment")]
    Range {
        /// First byte.
        start: u64,
        /// One past the last byte.
        end: u64,
        /// Segment size.
        size: u64,
    },
}

/// The tree of one segment: root, size and the parent hashes known so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outboard {
    inner: PreOrderMemOutboard,
}

/// Reads a segment's bytes `[start, start + data.len())` by absolute offset, as `bao-tree`
/// encodes from.
struct Window<'a> {
    start: u64,
    data: &'a [u8],
    size: u64,
}

impl ReadAt for Window<'_> {
    fn read_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<usize> {
        let from = pos
            .checked_sub(self.start)
            .and_then(|o| usize::try_from(o).ok())
            .filter(|&o| o <= self.data.len())
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "outside the window"))?;
        let n = buf.len().min(self.data.len() - from);
        buf[..n].copy_from_slice(&self.data[from..from + n]);
        Ok(n)
    }
}

impl Size for Window<'_> {
    fn size(&self) -> io::Result<Option<u64>> {
        Ok(Some(self.size))
    }
}

/// `start..end` as chunk ranges, if it is a group-aligned range of a `size`-byte segment (the
/// last group may be short).
fn chunk_range(start: u64, end: u64, size: u64) -> Result<ChunkRanges, IntegrityError> {
    let aligned = |at: u64| at % GROUP_BYTES == 0 || at == size;
    if start >= end || end > size || !aligned(start) || !aligned(end) {
        return Err(IntegrityError::Range { start, end, size });
    }
    Ok(ChunkRanges::from(
        ChunkNum::chunks(start)..ChunkNum::chunks(end),
    ))
}

impl Outboard {
    /// Hashes a whole segment (a CDN download): root and every parent.
    pub fn from_data(data: &[u8]) -> Self {
        Self {
            inner: PreOrderMemOutboard::create(data, BLOCK),
        }
    }

    /// A tree known only by its root and size (both from a trusted source: bao proves the size
    /// only with the last group); parents are filled in as verified pieces arrive (room for
    /// them is made then, not before).
    pub fn expecting(hash: SegmentHash, size: u64) -> Self {
        Self {
            inner: PreOrderMemOutboard {
                root: blake3::Hash::from_bytes(hash.0),
                tree: BaoTree::new(size, BLOCK),
                data: Vec::new(),
            },
        }
    }

    /// Bytes of parent hashes a complete tree holds.
    fn parents_len(&self) -> usize {
        usize::try_from(self.inner.tree.outboard_size()).unwrap_or(usize::MAX)
    }

    /// The root hash: the segment's BLAKE3 hash.
    pub fn hash(&self) -> SegmentHash {
        SegmentHash(*self.inner.root.as_bytes())
    }

    /// The segment's size in bytes.
    pub fn size(&self) -> u64 {
        self.inner.tree.size()
    }

    /// The bao encoding of `start..end`, given the bytes of that range. The parents on the way
    /// must be known (they are for a whole segment, and for ranges this node received).
    ///
    /// # Errors
    ///
    /// [`IntegrityError::Range`] for a range that is not group-aligned or not inside the
    /// segment, [`IntegrityError::Length`] if `data` is not that range.
    pub fn encode(&self, start: u64, data: &[u8]) -> Result<Bytes, IntegrityError> {
        let size = self.size();
        let end = start.saturating_add(data.len() as u64);
        let ranges = chunk_range(start, end, size)?;
        if self.inner.data.len() < self.parents_len() {
            // No parents received yet: nothing this node could prove.
            return Err(IntegrityError::Length);
        }
        let window = Window { start, data, size };
        let mut out = Vec::with_capacity(data.len() + 1024);
        encode_ranges(window, &self.inner, &ranges, &mut out)
            .map_err(|_| IntegrityError::Length)?;
        Ok(Bytes::from(out))
    }

    /// Verifies the bao encoding of `start..end` against the root; returns the range's bytes
    /// and the parent hashes it carried.
    ///
    /// # Errors
    ///
    /// [`IntegrityError::Mismatch`] at the first bad group or parent, or the range or length is
    /// wrong.
    pub fn verify(
        &self,
        start: u64,
        end: u64,
        encoded: &[u8],
    ) -> Result<(Bytes, Parents), IntegrityError> {
        use bao_tree::io::DecodeError;
        let ranges = chunk_range(start, end, self.size())?;
        let mut reader = encoded;
        let mut out = BytesMut::with_capacity(usize::try_from(end - start).unwrap_or(0));
        let mut parents = Vec::new();
        let items = DecodeResponseIter::new(self.inner.root, self.inner.tree, &mut reader, &ranges);
        for item in items {
            match item {
                Ok(BaoContentItem::Parent(Parent { node, pair })) => parents.push((node, pair)),
                Ok(BaoContentItem::Leaf(Leaf { data, .. })) => out.extend_from_slice(&data),
                Err(DecodeError::ParentHashMismatch(_) | DecodeError::LeafHashMismatch(_)) => {
                    return Err(IntegrityError::Mismatch);
                }
                Err(_) => return Err(IntegrityError::Length),
            }
        }
        if !reader.is_empty() || out.len() as u64 != end - start {
            return Err(IntegrityError::Length);
        }
        Ok((out.freeze(), Parents(parents)))
    }

    /// Keeps the parent hashes of a verified piece, so its bytes can be relayed.
    pub fn absorb(&mut self, parents: &Parents) {
        if parents.0.is_empty() {
            return;
        }
        let len = self.parents_len();
        self.inner.data.resize(len, 0);
        for (node, pair) in &parents.0 {
            // Saving into memory cannot fail.
            let _ = OutboardMut::save(&mut self.inner, *node, pair);
        }
    }

    /// [`Self::verify`], then [`Self::absorb`].
    ///
    /// # Errors
    ///
    /// As [`Self::verify`].
    pub fn decode(
        &mut self,
        start: u64,
        end: u64,
        encoded: &[u8],
    ) -> Result<Bytes, IntegrityError> {
        let (data, parents) = self.verify(start, end, encoded)?;
        self.absorb(&parents);
        Ok(data)
    }
}

/// The parent hashes a verified piece carried.
#[derive(Clone, Debug, Default)]
pub struct Parents(Vec<(TreeNode, (blake3::Hash, blake3::Hash))>);

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 + i / 977) as u8).collect()
    }

    #[test]
    fn the_root_is_the_plain_blake3_hash() {
        let data = segment(1_000_000);
        let ob = Outboard::from_data(&data);
        assert_eq!(ob.hash().0, *blake3::hash(&data).as_bytes());
        assert_eq!(ob.size(), 1_000_000);
    }

    #[test]
    fn ranges_decode_from_any_holder_and_relay_onwards() {
        let data = segment(300_000);
        let source = Outboard::from_data(&data);
        let mut relay = Outboard::expecting(source.hash(), 300_000);
        let (a, b) = (64 * 1024, 128 * 1024);
        let piece = source
            .encode(a, &data[a as usize..b as usize])
            .expect("aligned");
        assert!(
            piece.len() > (b - a) as usize,
            "parents travel with the data"
        );
        let got = relay.decode(a, b, &piece).expect("verifies");
        assert_eq!(&got[..], &data[a as usize..b as usize]);

        // The relay encodes what it received for the next hop, without the whole segment.
        let onward = relay.encode(a, &got).expect("parents known");
        let mut next = Outboard::expecting(source.hash(), 300_000);
        assert_eq!(next.decode(a, b, &onward).expect("verifies"), got);

        // The short last group ends the segment.
        let tail = source.encode(288 * 1024, &data[288 * 1024..]).expect("end");
        let got = next.decode(288 * 1024, 300_000, &tail).expect("verifies");
        assert_eq!(&got[..], &data[288 * 1024..]);
    }

    #[test]
    fn one_flipped_bit_anywhere_is_caught() {
        let data = segment(200_000);
        let source = Outboard::from_data(&data);
        let piece = source.encode(0, &data[..65_536]).expect("aligned");
        for at in [0, 40, 64, 100, 20_000, piece.len() - 1] {
            let mut bad = piece.to_vec();
            bad[at] ^= 0x10;
            let mut rx = Outboard::expecting(source.hash(), 200_000);
            assert_eq!(
                rx.decode(0, 65_536, &bad),
                Err(IntegrityError::Mismatch),
                "flip at {at}"
            );
        }
    }

    #[test]
    fn wrong_lengths_and_ranges_are_refused() {
        let data = segment(100_000);
        let source = Outboard::from_data(&data);
        let piece = source.encode(0, &data[..32_768]).expect("aligned");
        let mut rx = Outboard::expecting(source.hash(), 100_000);
        assert_eq!(
            rx.decode(0, 32_768, &piece[..piece.len() - 1]),
            Err(IntegrityError::Length)
        );
        let mut long = piece.to_vec();
        long.push(0);
        assert_eq!(rx.decode(0, 32_768, &long), Err(IntegrityError::Length));
        assert!(matches!(
            rx.decode(100, 32_768, &piece),
            Err(IntegrityError::Range { .. })
        ));
        assert!(matches!(
            source.encode(1000, &data[1000..2000]),
            Err(IntegrityError::Range { .. })
        ));
        // The size is only proven by the last group (bao's property): a range in the middle
        // verifies under a wrong size, the end does not. Hence sizes come from the trusted
        // source with the hash, never from the sender.
        let tail = source.encode(98_304, &data[98_304..]).expect("end");
        let mut wrong = Outboard::expecting(source.hash(), 99_000);
        assert!(wrong.decode(98_304, 99_000, &tail).is_err());
    }
}
