//! Segment bytes as a rope of shared chunks.
//!
//! A segment fetched once from the CDN is one allocation; every peer that relays it holds
//! reference-counted slices of that allocation, so a swarm of ten thousand never copies it.

use bytes::{Bytes, BytesMut};

/// The bytes of one segment (or of its first part while it downloads).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SegmentData {
    chunks: Vec<Bytes>,
    len: u64,
}

impl SegmentData {
    /// An empty rope.
    pub fn new() -> Self {
        Self::default()
    }

    /// Total length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether no byte is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends a chunk (no copy).
    pub fn push(&mut self, chunk: Bytes) {
        if chunk.is_empty() {
            return;
        }
        self.len += chunk.len() as u64;
        self.chunks.push(chunk);
    }

    /// The chunks in order.
    pub fn chunks(&self) -> &[Bytes] {
        &self.chunks
    }

    /// `len` bytes from `offset`, as slices of the held chunks (no copy). Clamped to what is held.
    pub fn slice(&self, offset: u64, len: u64) -> SegmentData {
        let mut out = SegmentData::new();
        let end = offset.saturating_add(len).min(self.len);
        let mut pos = 0u64;
        for chunk in &self.chunks {
            let c_start = pos;
            let c_end = pos + chunk.len() as u64;
            pos = c_end;
            if c_end <= offset {
                continue;
            }
            if c_start >= end {
                break;
            }
            let from = offset.saturating_sub(c_start) as usize;
            let to = (end.min(c_end) - c_start) as usize;
            out.push(chunk.slice(from..to));
        }
        out
    }

    /// One contiguous buffer: free when the rope is a single chunk, one copy otherwise.
    pub fn to_bytes(&self) -> Bytes {
        match self.chunks.as_slice() {
            [] => Bytes::new(),
            [one] => one.clone(),
            many => {
                let mut buf = BytesMut::with_capacity(self.len as usize);
                for c in many {
                    buf.extend_from_slice(c);
                }
                buf.freeze()
            }
        }
    }
}

impl From<Bytes> for SegmentData {
    fn from(b: Bytes) -> Self {
        let mut d = Self::new();
        d.push(b);
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rope() -> SegmentData {
        let mut d = SegmentData::new();
        d.push(Bytes::from_static(b"hello "));
        d.push(Bytes::from_static(b"swarm "));
        d.push(Bytes::from_static(b"world"));
        d
    }

    #[test]
    fn slices_across_chunk_boundaries() {
        let d = rope();
        assert_eq!(d.len(), 17);
        assert_eq!(d.slice(4, 6).to_bytes(), Bytes::from_static(b"o swar"));
        assert_eq!(d.slice(0, 100).to_bytes(), d.to_bytes());
        assert!(d.slice(17, 5).is_empty());
        assert_eq!(
            d.slice(12, 5).chunks().len(),
            1,
            "a slice inside one chunk stays one chunk"
        );
    }

    #[test]
    fn single_chunk_is_not_copied() {
        let b = Bytes::from(vec![7u8; 1000]);
        let d = SegmentData::from(b.clone());
        assert_eq!(d.to_bytes().as_ptr(), b.as_ptr());
    }
}
