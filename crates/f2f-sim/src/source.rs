//! The live source: one segment every `D`, of realistic size, each a single shared allocation.

use std::collections::BTreeMap;

use bytes::Bytes;
use f2f_core::id::{RenditionId, SegmentKey, SegmentPosition, SwarmId, VariantTag};

use crate::scenario::SourceSpec;

/// Segments published so far (a sliding window of them is kept).
#[derive(Debug)]
pub(crate) struct Source {
    pub(crate) d_us: u64,
    bytes_per_segment: f64,
    jitter: f64,
    swarm: SwarmId,
    rendition: RenditionId,
    segments: BTreeMap<u64, Bytes>,
    keep: u64,
}

impl Source {
    pub(crate) fn new(spec: &SourceSpec, keep: u64) -> Self {
        let canonical = "sim.frog2frog.invalid/live/channel/master.m3u8";
        Self {
            d_us: (spec.segment_s * 1e6) as u64,
            bytes_per_segment: spec.bitrate_kbps * 1000.0 * spec.segment_s / 8.0,
            jitter: spec.size_jitter.clamp(0.0, 0.9),
            swarm: SwarmId::from_canonical(canonical),
            rendition: RenditionId::from_canonical("sim.frog2frog.invalid/live/channel/720p.m3u8"),
            segments: BTreeMap::new(),
            keep: keep.max(1),
        }
    }

    pub(crate) fn swarm(&self) -> SwarmId {
        self.swarm
    }

    /// Newest segment available at `now`.
    pub(crate) fn newest_at(&self, now: u64) -> Option<u64> {
        (now / self.d_us).checked_sub(1)
    }

    pub(crate) fn key(&self, seq: u64) -> SegmentKey {
        SegmentKey {
            swarm: self.swarm,
            rendition: self.rendition,
            position: SegmentPosition::Sequence(seq),
            variant: VariantTag::new(
                &format!("sim.frog2frog.invalid/live/channel/720p/{seq}.ts"),
                None,
            ),
        }
    }

    /// Publishes every segment due by `now` and forgets those outside the kept window.
    pub(crate) fn publish_until(&mut self, now: u64) {
        let Some(newest) = self.newest_at(now) else {
            return;
        };
        if self
            .segments
            .last_key_value()
            .is_some_and(|(k, _)| *k >= newest)
        {
            return;
        }
        let first = newest.saturating_sub(self.keep);
        let from = self
            .segments
            .last_key_value()
            .map_or(first, |(k, _)| k + 1)
            .max(first);
        for seq in from..=newest {
            self.segments.insert(seq, self.make(seq));
        }
        self.segments = self.segments.split_off(&first);
    }

    /// The bytes of segment `seq`, if still held.
    pub(crate) fn get(&self, seq: u64) -> Option<&Bytes> {
        self.segments.get(&seq)
    }

    /// Segment sizes vary like encoder output; the content names its sequence number so that a
    /// misdelivered segment is detectable.
    fn make(&self, seq: u64) -> Bytes {
        let h = seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 11;
        let u = (h as f64 / (1u64 << 53) as f64) * 2.0 - 1.0;
        let len = (self.bytes_per_segment * (1.0 + self.jitter * u)).max(16.0) as usize;
        let mut buf = vec![(seq % 251) as u8; len];
        buf[..8].copy_from_slice(&seq.to_be_bytes());
        Bytes::from(buf)
    }
}
