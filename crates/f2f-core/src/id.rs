//! Identifiers: every id is its own type so that a swarm can never be mistaken for a peer.

use std::fmt;

/// A node's identity: the BLAKE3 hash of its public key.
///
/// Until the identity layer binds it to a key, drivers derive it from any stable seed with
/// [`PeerId::from_seed`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerId([u8; 32]);

impl PeerId {
    /// Wraps raw hash bytes (as carried on the wire).
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Derives a peer id from arbitrary seed bytes (simulator and tests).
    pub fn from_seed(seed: &[u8]) -> Self {
        Self(*blake3::hash(seed).as_bytes())
    }

    /// The raw 32 bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A stable 64-bit digest of the id, mixed with `salt`; used for per-segment ranks.
    pub fn rank(&self, salt: u64) -> u64 {
        let mut h = blake3::Hasher::new();
        h.update(&self.0);
        h.update(&salt.to_le_bytes());
        let out = h.finalize();
        u64::from_le_bytes(out.as_bytes()[..8].try_into().expect("8 of 32 bytes"))
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0[..5] {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerId({self})")
    }
}

/// The swarm of one live stream: hash of the stream's canonical URL.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SwarmId([u8; 32]);

impl SwarmId {
    /// Wraps raw hash bytes (as carried on the wire).
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Hashes a canonical stream string; see [`crate::content`] for how it is built.
    pub fn from_canonical(canonical: &str) -> Self {
        Self(*blake3::hash(canonical.as_bytes()).as_bytes())
    }

    /// The raw 32 bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for SwarmId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0[..6] {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for SwarmId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SwarmId({self})")
    }
}

/// Truncated BLAKE3 of a canonical string: compact enough to repeat in every availability entry.
fn short_hash(canonical: &str) -> u64 {
    let out = blake3::hash(canonical.as_bytes());
    u64::from_le_bytes(out.as_bytes()[..8].try_into().expect("8 of 32 bytes"))
}

/// One rendition (bitrate/resolution ladder rung, or DASH representation) of a stream.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct RenditionId(u64);

impl RenditionId {
    /// Wraps the wire value.
    pub const fn from_u64(v: u64) -> Self {
        Self(v)
    }

    /// Hashes a canonical rendition string.
    pub fn from_canonical(canonical: &str) -> Self {
        Self(short_hash(canonical))
    }

    /// The wire value.
    pub const fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for RenditionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0 >> 32)
    }
}

/// Fingerprint of this viewer's copy of a segment: the canonical segment URL plus the watermark
/// variant chosen for this session.
///
/// Two viewers hold interchangeable bytes only when their tags match, so a path-level A/B
/// watermark, or anything per-viewer the canonicaliser did not strip, keeps copies apart.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct VariantTag(u64);

impl VariantTag {
    /// Wraps the wire value.
    pub const fn from_u64(v: u64) -> Self {
        Self(v)
    }

    /// Tags a canonical segment URL with the session's watermark variant (if the CDN edge picks
    /// the variant from the token, the URL alone does not tell).
    pub fn new(canonical_segment: &str, watermark: Option<u8>) -> Self {
        match watermark {
            None => Self(short_hash(canonical_segment)),
            Some(v) => Self(short_hash(&format!("{canonical_segment}#wm={v}"))),
        }
    }

    /// The wire value.
    pub const fn as_u64(self) -> u64 {
        self.0
    }
}

/// Where a segment sits in its rendition's timeline.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum SegmentPosition {
    /// HLS media sequence number, or DASH `$Number$`.
    Sequence(u64),
    /// DASH `$Time$`, in the representation's timescale.
    Time(u64),
}

impl SegmentPosition {
    /// The raw number, whichever kind it is.
    pub const fn value(self) -> u64 {
        match self {
            Self::Sequence(v) | Self::Time(v) => v,
        }
    }
}

impl fmt::Display for SegmentPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sequence(n) => write!(f, "#{n}"),
            Self::Time(t) => write!(f, "t{t}"),
        }
    }
}

/// Exactly one segment of one viewer's stream: two keys are equal only when the bytes behind
/// them are interchangeable.
///
/// Keys order by position first (then rendition, variant, swarm): "oldest first" is the order
/// caches evict in, and comparing the position settles almost every comparison without
/// touching the 32-byte swarm id.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct SegmentKey {
    /// Position in the rendition's timeline.
    pub position: SegmentPosition,
    /// The rendition within the stream.
    pub rendition: RenditionId,
    /// This viewer's copy (canonical URL + watermark variant).
    pub variant: VariantTag,
    /// The stream.
    pub swarm: SwarmId,
}

impl SegmentKey {
    /// Length of [`Self::to_bytes`].
    pub const ENCODED_LEN: usize = 32 + 8 + 1 + 8 + 8;

    /// The canonical encoding: on the wire, and in what peers sign about a segment.
    pub fn to_bytes(&self) -> [u8; Self::ENCODED_LEN] {
        let (tag, value) = match self.position {
            SegmentPosition::Sequence(n) => (0, n),
            SegmentPosition::Time(t) => (1, t),
        };
        let mut b = [0; Self::ENCODED_LEN];
        b[..32].copy_from_slice(self.swarm.as_bytes());
        b[32..40].copy_from_slice(&self.rendition.as_u64().to_be_bytes());
        b[40] = tag;
        b[41..49].copy_from_slice(&value.to_be_bytes());
        b[49..].copy_from_slice(&self.variant.as_u64().to_be_bytes());
        b
    }
}

/// A key for unit tests: sequence `seq` of one fixed swarm and rendition, variant 0.
#[cfg(test)]
pub(crate) fn test_key(seq: u64) -> SegmentKey {
    SegmentKey {
        swarm: SwarmId::from_canonical("s"),
        rendition: RenditionId::from_canonical("r"),
        position: SegmentPosition::Sequence(seq),
        variant: VariantTag::from_u64(0),
    }
}

impl fmt::Display for SegmentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.swarm, self.rendition, self.position)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watermark_variant_changes_the_tag() {
        let url = "https://cdn/live/ch1/720p/seg_100.ts";
        assert_ne!(VariantTag::new(url, Some(0)), VariantTag::new(url, Some(1)));
        assert_ne!(VariantTag::new(url, None), VariantTag::new(url, Some(0)));
        assert_eq!(VariantTag::new(url, Some(1)), VariantTag::new(url, Some(1)));
    }

    #[test]
    fn rank_depends_on_salt_and_peer() {
        let a = PeerId::from_seed(b"a");
        let b = PeerId::from_seed(b"b");
        assert_ne!(a.rank(1), a.rank(2));
        assert_ne!(a.rank(1), b.rank(1));
        assert_eq!(a.rank(7), a.rank(7));
    }
}
