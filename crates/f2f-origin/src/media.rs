//! Live media from a short fMP4 clip: each segment of the endless stream is a clip segment with
//! its timestamps moved forward by whole loops, so a player sees one continuous timeline, and
//! every segment's bytes are unique (sequence number, decode times, a `free` box naming it).

use bytes::{BufMut, Bytes, BytesMut};
use std::time::Duration;

/// The clip committed with the crate: 8 × 2 s of H.264 (426×240, 25 fps, a keyframe at every
/// segment start, ≈ 260 kb/s) and of AAC-LC stereo (≈ 66 kb/s), one track per rendition as
/// DASH and demuxed HLS serve them; made by the `ffmpeg` line in `assets/README.md`.
macro_rules! builtin_track {
    ($dir:literal) => {
        (
            include_bytes!(concat!("../assets/", $dir, "/init.mp4")).as_slice(),
            [
                include_bytes!(concat!("../assets/", $dir, "/seg0.m4s")).as_slice(),
                include_bytes!(concat!("../assets/", $dir, "/seg1.m4s")).as_slice(),
                include_bytes!(concat!("../assets/", $dir, "/seg2.m4s")).as_slice(),
                include_bytes!(concat!("../assets/", $dir, "/seg3.m4s")).as_slice(),
                include_bytes!(concat!("../assets/", $dir, "/seg4.m4s")).as_slice(),
                include_bytes!(concat!("../assets/", $dir, "/seg5.m4s")).as_slice(),
                include_bytes!(concat!("../assets/", $dir, "/seg6.m4s")).as_slice(),
                include_bytes!(concat!("../assets/", $dir, "/seg7.m4s")).as_slice(),
            ],
        )
    };
}
/// `avc1` Main profile level 2.1, as in the clip's `avcC`.
pub(crate) const VIDEO_CODEC: &str = "avc1.4d4015";
/// AAC-LC.
pub(crate) const AUDIO_CODEC: &str = "mp4a.40.2";
/// The clip's picture size.
pub(crate) const VIDEO_SIZE: (u32, u32) = (426, 240);

/// Why a clip cannot serve as live media.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// A box header runs past its parent or is shorter than a header.
    #[error("malformed MP4 box {0:?}")]
    MalformedBox(String),
    /// A fragment names a track the init segment does not define.
    #[error("fragment of track {0} without a track in the init segment")]
    UnknownTrack(u32),
    /// The clip has no segments.
    #[error("a clip needs at least one segment")]
    Empty,
}

/// The built-in clip's two renditions.
#[derive(Clone, Debug)]
pub struct Clip {
    /// The picture.
    pub video: Track,
    /// The sound.
    pub audio: Track,
}

impl Clip {
    /// The clip committed with the crate.
    pub fn builtin() -> Self {
        let track = |(init, segments): (&'static [u8], [&'static [u8]; 8])| {
            let segments = segments.into_iter().map(Bytes::from_static).collect();
            Track::new(Bytes::from_static(init), segments, Duration::from_secs(2))
                .expect("the committed clip is well formed")
        };
        Self {
            video: track(builtin_track!("video")),
            audio: track(builtin_track!("audio")),
        }
    }
}

/// A looping rendition of fragmented MP4: an init segment and media segments of one duration.
#[derive(Clone, Debug)]
pub struct Track {
    init: Bytes,
    segments: Vec<Bytes>,
    segment_duration: Duration,
    /// `(track id, timescale)` from the init segment's `tkhd`/`mdhd`.
    tracks: Vec<(u32, u32)>,
}

/// A box inside `data`: its type and the byte range of its body.
#[derive(Clone, Copy)]
struct MpBox {
    kind: [u8; 4],
    body: usize,
    end: usize,
}

fn boxes(data: &[u8], from: usize, to: usize) -> Result<Vec<MpBox>, MediaError> {
    let mut out = Vec::new();
    let mut at = from;
    while at < to {
        let header = data.get(at..at + 8).filter(|_| at + 8 <= to);
        let header = header.ok_or_else(|| MediaError::MalformedBox("truncated header".into()))?;
        let size = u32::from_be_bytes(header[..4].try_into().expect("4 bytes")) as usize;
        let kind: [u8; 4] = header[4..8].try_into().expect("4 bytes");
        if size < 8 || at + size > to {
            return Err(MediaError::MalformedBox(
                String::from_utf8_lossy(&kind).into(),
            ));
        }
        out.push(MpBox {
            kind,
            body: at + 8,
            end: at + size,
        });
        at += size;
    }
    Ok(out)
}

fn child(data: &[u8], parent: MpBox, kind: &[u8; 4]) -> Result<Option<MpBox>, MediaError> {
    Ok(boxes(data, parent.body, parent.end)?
        .into_iter()
        .find(|b| &b.kind == kind))
}

fn read_u32(data: &[u8], at: usize) -> Result<u32, MediaError> {
    let bytes = data
        .get(at..at + 4)
        .ok_or_else(|| MediaError::MalformedBox("short".into()))?;
    Ok(u32::from_be_bytes(bytes.try_into().expect("4 bytes")))
}

/// Adds `delta` to a full box's version-dependent time field at `at` (32 bits in version 0,
/// 64 in version 1).
fn add_time(data: &mut [u8], version: u8, at: usize, delta: u64) -> Result<(), MediaError> {
    let short = || MediaError::MalformedBox("short time field".into());
    if version == 1 {
        let field = data.get_mut(at..at + 8).ok_or_else(short)?;
        let value = u64::from_be_bytes((&*field).try_into().expect("8 bytes"));
        field.copy_from_slice(&value.wrapping_add(delta).to_be_bytes());
    } else {
        let field = data.get_mut(at..at + 4).ok_or_else(short)?;
        let value = u32::from_be_bytes((&*field).try_into().expect("4 bytes"));
        // A clip looping past 2^32 ticks would need version-1 boxes; wrap as the field does.
        field.copy_from_slice(&(value.wrapping_add(delta as u32)).to_be_bytes());
    }
    Ok(())
}

impl Track {
    /// A rendition from an init segment and media segments of `segment_duration` each.
    ///
    /// # Errors
    ///
    /// The init segment or a fragment is not well-formed fMP4, or a fragment's track is
    /// missing from the init segment.
    pub fn new(
        init: Bytes,
        segments: Vec<Bytes>,
        segment_duration: Duration,
    ) -> Result<Self, MediaError> {
        if segments.is_empty() {
            return Err(MediaError::Empty);
        }
        let mut tracks = Vec::new();
        for moov in boxes(&init, 0, init.len())?
            .into_iter()
            .filter(|b| &b.kind == b"moov")
        {
            for trak in boxes(&init, moov.body, moov.end)?
                .into_iter()
                .filter(|b| &b.kind == b"trak")
            {
                let tkhd = child(&init, trak, b"tkhd")?;
                let mdhd = child(&init, trak, b"mdia")?
                    .map(|mdia| child(&init, mdia, b"mdhd"))
                    .transpose()?
                    .flatten();
                let (Some(tkhd), Some(mdhd)) = (tkhd, mdhd) else {
                    return Err(MediaError::MalformedBox("trak without tkhd/mdhd".into()));
                };
                let id_at = if init[tkhd.body] == 1 { 20 } else { 12 };
                let scale_at = if init[mdhd.body] == 1 { 20 } else { 12 };
                tracks.push((
                    read_u32(&init, tkhd.body + id_at)?,
                    read_u32(&init, mdhd.body + scale_at)?,
                ));
            }
        }
        let track = Self {
            init,
            segments,
            segment_duration,
            tracks,
        };
        // Every fragment must rewrite cleanly, or live segments would fail later.
        for n in 0..track.segments.len() as u64 {
            track.try_segment(n, "", 0)?;
        }
        Ok(track)
    }

    /// The init segment (`EXT-X-MAP`, DASH `initialization`).
    pub fn init(&self) -> Bytes {
        self.init.clone()
    }

    /// Each segment's media duration.
    pub fn segment_duration(&self) -> Duration {
        self.segment_duration
    }

    /// Segment `number` of the endless stream, at least `min_len` bytes long (a `free` box
    /// pads it to the stream's bit rate) and carrying `label` in that box: the stand-in for
    /// what makes copies differ (an A/B watermark variant, a viewer's personal ad).
    pub fn segment(&self, number: u64, label: &str, min_len: usize) -> Bytes {
        self.try_segment(number, label, min_len)
            .expect("fragments were checked when the clip was made")
    }

    fn try_segment(&self, number: u64, label: &str, min_len: usize) -> Result<Bytes, MediaError> {
        let count = self.segments.len() as u64;
        let (round, index) = (number / count, (number % count) as usize);
        let source = &self.segments[index];
        let clip_secs = self.segment_duration.as_secs_f64() * count as f64;
        let mut data = BytesMut::from(&source[..]);
        for top in boxes(source, 0, source.len())? {
            match &top.kind {
                b"sidx" => {
                    let version = source[top.body];
                    let timescale = read_u32(source, top.body + 8)?;
                    let delta = (round as f64 * clip_secs * f64::from(timescale)).round() as u64;
                    add_time(&mut data, version, top.body + 12, delta)?;
                }
                b"moof" => self.rewrite_moof(&mut data, source, top, number, round, clip_secs)?,
                _ => {}
            }
        }
        let mark = format!("frog2frog segment {number} {label}");
        let len = (8 + mark.len()).max(min_len.saturating_sub(data.len()));
        data.put_u32(len as u32);
        data.put_slice(b"free");
        data.put_slice(mark.as_bytes());
        data.resize(data.len() + len - 8 - mark.len(), 0);
        Ok(data.freeze())
    }

    fn rewrite_moof(
        &self,
        data: &mut [u8],
        source: &[u8],
        moof: MpBox,
        number: u64,
        round: u64,
        clip_secs: f64,
    ) -> Result<(), MediaError> {
        for part in boxes(source, moof.body, moof.end)? {
            match &part.kind {
                b"mfhd" => {
                    let sequence = (number + 1) as u32;
                    data[part.body + 4..part.body + 8].copy_from_slice(&sequence.to_be_bytes());
                }
                b"traf" => {
                    let tfhd = child(source, part, b"tfhd")?;
                    let tfdt = child(source, part, b"tfdt")?;
                    let (Some(tfhd), Some(tfdt)) = (tfhd, tfdt) else {
                        return Err(MediaError::MalformedBox("traf without tfhd/tfdt".into()));
                    };
                    let track = read_u32(source, tfhd.body + 4)?;
                    let (_, timescale) = (self.tracks.iter())
                        .find(|(id, _)| *id == track)
                        .ok_or(MediaError::UnknownTrack(track))?;
                    let delta = (round as f64 * clip_secs * f64::from(*timescale)).round() as u64;
                    add_time(data, source[tfdt.body], tfdt.body + 4, delta)?;
                }
                _ => {}
            }
        }
        Ok(())
    }
}
