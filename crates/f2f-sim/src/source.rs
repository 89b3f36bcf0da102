//! The live source: every `D`, one segment per rendition, of realistic size, each a single
//! shared allocation.

use std::collections::BTreeMap;

use bytes::Bytes;
use f2f_core::id::{RenditionId, SegmentKey, SegmentPosition, SwarmId, VariantTag};
use f2f_core::integrity::SegmentHash;

use crate::scenario::SourceSpec;

/// Index of a rendition in the scenario's ladder.
pub(crate) type Rung = usize;

#[derive(Debug)]
struct Rendition {
    id: RenditionId,
    name: String,
    bytes_per_segment: f64,
}

/// Segments published so far (a sliding window of them is kept).
#[derive(Debug)]
pub(crate) struct Source {
    pub(crate) d_us: u64,
    jitter: f64,
    swarm: SwarmId,
    ladder: Vec<Rendition>,
    /// Each segment with the hash the origin publishes for it.
    segments: BTreeMap<(u64, Rung), (Bytes, SegmentHash)>,
    newest: Option<u64>,
    keep: u64,
}

impl Source {
    pub(crate) fn new(spec: &SourceSpec, keep: u64) -> Self {
        let base = "sim.frog2frog.invalid/live/channel";
        let ladder = spec
            .ladder()
            .iter()
            .map(|r| {
                let name = format!("{}k", r.bitrate_kbps.round());
                Rendition {
                    id: RenditionId::from_canonical(&format!("{base}/{name}.m3u8")),
                    bytes_per_segment: r.bitrate_kbps * 1000.0 * spec.segment_s / 8.0,
                    name,
                }
            })
            .collect();
        Self {
            d_us: (spec.segment_s * 1e6) as u64,
            jitter: spec.size_jitter.clamp(0.0, 0.9),
            swarm: SwarmId::from_canonical(&format!("{base}/master.m3u8")),
            ladder,
            segments: BTreeMap::new(),
            newest: None,
            keep: keep.max(1),
        }
    }

    pub(crate) fn swarm(&self) -> SwarmId {
        self.swarm
    }

    /// Segment duration, µs: segment `seq` is published at `(seq + 1)` times this.
    pub(crate) fn segment_us(&self) -> u64 {
        self.d_us
    }

    /// Newest segment available at `now`.
    pub(crate) fn newest_at(&self, now: u64) -> Option<u64> {
        (now / self.d_us).checked_sub(1)
    }

    pub(crate) fn key(&self, rung: Rung, seq: u64) -> SegmentKey {
        let r = &self.ladder[rung];
        SegmentKey {
            swarm: self.swarm,
            rendition: r.id,
            position: SegmentPosition::Sequence(seq),
            variant: VariantTag::new(
                &format!("sim.frog2frog.invalid/live/channel/{}/{seq}.ts", r.name),
                None,
            ),
        }
    }

    /// Which rung a key belongs to.
    pub(crate) fn rung(&self, key: &SegmentKey) -> Option<Rung> {
        self.ladder.iter().position(|r| r.id == key.rendition)
    }

    /// Publishes every segment due by `now` and forgets those outside the kept window.
    pub(crate) fn publish_until(&mut self, now: u64) {
        let Some(newest) = self.newest_at(now) else {
            return;
        };
        if self.newest.is_some_and(|n| n >= newest) {
            return;
        }
        let first = newest.saturating_sub(self.keep);
        let from = self.newest.map_or(first, |n| n + 1).max(first);
        for seq in from..=newest {
            for rung in 0..self.ladder.len() {
                let bytes = self.make(rung, seq);
                let hash = SegmentHash::of(&bytes);
                self.segments.insert((seq, rung), (bytes, hash));
            }
        }
        self.newest = Some(newest);
        self.segments = self.segments.split_off(&(first, 0));
    }

    /// The bytes of segment `seq` of `rung`, if still held.
    pub(crate) fn get(&self, rung: Rung, seq: u64) -> Option<&Bytes> {
        self.segments.get(&(seq, rung)).map(|(b, _)| b)
    }

    /// The origin's hash and size of segment `seq` of `rung`, if still held.
    pub(crate) fn hash(&self, rung: Rung, seq: u64) -> Option<(SegmentHash, u64)> {
        let (bytes, hash) = self.segments.get(&(seq, rung))?;
        Some((*hash, bytes.len() as u64))
    }

    /// Segment sizes vary like encoder output; the content names its rung and sequence number
    /// so that a misdelivered segment is detectable.
    fn make(&self, rung: Rung, seq: u64) -> Bytes {
        let h = seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 11;
        let u = (h as f64 / (1u64 << 53) as f64) * 2.0 - 1.0;
        let len =
            (self.ladder[rung].bytes_per_segment * (1.0 + self.jitter * u)).max(16.0) as usize;
        let mut buf = vec![(seq % 251) as u8; len];
        buf[..8].copy_from_slice(&seq.to_be_bytes());
        buf[8] = rung as u8;
        Bytes::from(buf)
    }
}
