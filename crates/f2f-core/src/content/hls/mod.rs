//! HLS playlists: the renditions of a master playlist and the segments of a media playlist.
//!
//! Parsing is done by `m3u8-rs`; this file guards its edge cases (missing trailing newline,
//! byte-order mark, trailing garbage, a broken `EXT-X-STREAM-INF` silently re-pointing the
//! previous variant) and resolves every URI against the playlist URL. Ad detection lives in
//! `ads.rs`.

mod ads;
mod attributes;

use std::borrow::Cow;

use url::Url;

use self::ads::SegmentFacts;
use super::{ContentError, ListedSegment};
use crate::id::SegmentPosition;

/// What an [`HlsRendition`] carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HlsRenditionKind {
    /// A variant stream (`EXT-X-STREAM-INF`): usually video, with muxed or grouped audio.
    Variant,
    /// An I-frame-only variant (`EXT-X-I-FRAME-STREAM-INF`), used for trick play.
    IFrames,
    /// An alternative audio rendition (`EXT-X-MEDIA:TYPE=AUDIO`).
    Audio,
    /// An alternative video rendition (`EXT-X-MEDIA:TYPE=VIDEO`).
    Video,
    /// A subtitle rendition (`EXT-X-MEDIA:TYPE=SUBTITLES`).
    Subtitles,
}

/// One rendition listed by a master playlist.
#[derive(Clone, Debug, PartialEq)]
pub struct HlsRendition {
    /// What the rendition carries.
    pub kind: HlsRenditionKind,
    /// Absolute media playlist URL, resolved against the master playlist URL (viewer tokens
    /// intact). Canonicalise it for the [`RenditionId`](crate::id::RenditionId).
    pub uri: String,
    /// Peak bandwidth in bits per second (`BANDWIDTH`); `None` for `EXT-X-MEDIA` renditions.
    pub bandwidth: Option<u64>,
    /// Width and height in pixels (`RESOLUTION`), if announced.
    pub resolution: Option<(u64, u64)>,
    /// The `CODECS` attribute, if announced.
    pub codecs: Option<String>,
    /// `GROUP-ID` of an `EXT-X-MEDIA` rendition, or the `AUDIO` group a variant refers to.
    pub group_id: Option<String>,
}

/// A media playlist: the segments currently listed for one rendition.
#[derive(Clone, Debug, PartialEq)]
pub struct MediaPlaylist {
    /// `EXT-X-TARGETDURATION`, in seconds.
    pub target_duration: u64,
    /// `EXT-X-MEDIA-SEQUENCE`: the sequence number of the first segment.
    pub media_sequence: u64,
    /// Whether `EXT-X-ENDLIST` was present (the stream has ended; no more reloads).
    pub ended: bool,
    /// Listed segments in playlist order. Partial segments (`EXT-X-PART`) are not listed.
    pub segments: Vec<ListedSegment>,
}

/// Parses a master playlist fetched from `base_url`.
///
/// Lists variant streams, I-frame variants and `EXT-X-MEDIA` renditions that have a `URI`, in
/// playlist order. Fails on a media playlist ([`ContentError::WrongPlaylistKind`]) and on text
/// that is not an HLS playlist.
pub fn parse_master(base_url: &str, text: &[u8]) -> Result<Vec<HlsRendition>, ContentError> {
    let base = Url::parse(base_url)?;
    let text = normalise(text)?;
    if !m3u8_rs::is_master_playlist(&text) {
        return Err(ContentError::WrongPlaylistKind {
            expected: "master",
            found: "media",
        });
    }
    let (rest, master) = m3u8_rs::parse_master_playlist(&text)
        .map_err(|e| ContentError::MalformedPlaylist(format!("{e:?}")))?;
    check_fully_parsed(&text, rest)?;
    if master
        .unknown_tags
        .iter()
        .any(|t| t.tag == "X-STREAM-INF" || t.tag == "X-I-FRAME-STREAM-INF")
    {
        return Err(ContentError::MalformedPlaylist(
            "stream-inf tag without a valid BANDWIDTH attribute".into(),
        ));
    }
    let mut renditions = Vec::with_capacity(master.variants.len() + master.alternatives.len());
    for variant in &master.variants {
        if variant.uri.trim().is_empty() {
            return Err(ContentError::MalformedPlaylist(
                "variant stream without a URI".into(),
            ));
        }
        renditions.push(HlsRendition {
            kind: if variant.is_i_frame {
                HlsRenditionKind::IFrames
            } else {
                HlsRenditionKind::Variant
            },
            uri: resolve(&base, &variant.uri)?,
            bandwidth: Some(variant.bandwidth),
            resolution: variant.resolution.map(|r| (r.width, r.height)),
            codecs: variant.codecs.clone(),
            group_id: variant.audio.clone(),
        });
    }
    for media in &master.alternatives {
        let kind = match media.media_type {
            m3u8_rs::AlternativeMediaType::Audio => HlsRenditionKind::Audio,
            m3u8_rs::AlternativeMediaType::Video => HlsRenditionKind::Video,
            m3u8_rs::AlternativeMediaType::Subtitles => HlsRenditionKind::Subtitles,
            // Closed captions live inside the video segments; other types are not media.
            _ => continue,
        };
        let Some(uri) = media.uri.as_deref() else {
            continue;
        };
        renditions.push(HlsRendition {
            kind,
            uri: resolve(&base, uri)?,
            bandwidth: None,
            resolution: None,
            codecs: None,
            group_id: Some(media.group_id.clone()),
        });
    }
    Ok(renditions)
}

/// Parses a media playlist fetched from `base_url`.
///
/// Segment URIs are resolved against `base_url`; positions are media sequence numbers (delta
/// updates' `EXT-X-SKIP` is accounted for). Ads and gaps come out with `shareable == false`; see
/// the [module docs](super) for how ads are found. Fails on a master playlist
/// ([`ContentError::WrongPlaylistKind`]) and on text that is not an HLS playlist.
pub fn parse_media(base_url: &str, text: &[u8]) -> Result<MediaPlaylist, ContentError> {
    let base = Url::parse(base_url)?;
    let text = normalise(text)?;
    if m3u8_rs::is_master_playlist(&text) {
        return Err(ContentError::WrongPlaylistKind {
            expected: "media",
            found: "master",
        });
    }
    let (rest, playlist) = m3u8_rs::parse_media_playlist(&text)
        .map_err(|e| ContentError::MalformedPlaylist(format!("{e:?}")))?;
    check_fully_parsed(&text, rest)?;

    let skipped = playlist
        .segments
        .first()
        .and_then(|s| s.unknown_tags.iter().find(|t| t.tag == "X-SKIP"))
        .map_or(Ok(0), |t| skipped_segments(t.rest.as_deref()))?;
    let first = playlist
        .media_sequence
        .checked_add(skipped)
        .ok_or_else(|| ContentError::MalformedPlaylist("media sequence overflows".into()))?;

    let mut facts = Vec::with_capacity(playlist.segments.len());
    for segment in &playlist.segments {
        let uri = resolve(&base, &segment.uri)?;
        let location = Url::parse(&uri).ok();
        facts.push(SegmentFacts {
            uri,
            host: location
                .as_ref()
                .and_then(|u| u.host_str().map(str::to_ascii_lowercase)),
            dir: location.as_ref().map(|u| directory(u.path()).to_owned()),
            duration: f64::from(segment.duration).max(0.0),
            discontinuity: segment.discontinuity,
            program_date_time_ms: segment.program_date_time.map(|t| t.timestamp_millis()),
            tags: segment
                .unknown_tags
                .iter()
                .map(|t| (t.tag.clone(), t.rest.clone()))
                .collect(),
        });
    }
    let date_ranges = ads::scan_date_ranges(&text);
    let playlist_host = base.host_str().map(str::to_ascii_lowercase);
    let verdicts = ads::classify(&facts, &date_ranges, playlist_host.as_deref());

    let mut segments = Vec::with_capacity(facts.len());
    for (i, (fact, verdict)) in facts.into_iter().zip(verdicts).enumerate() {
        let sequence = u64::try_from(i)
            .ok()
            .and_then(|i| first.checked_add(i))
            .ok_or_else(|| ContentError::MalformedPlaylist("media sequence overflows".into()))?;
        segments.push(ListedSegment {
            uri: fact.uri,
            position: SegmentPosition::Sequence(sequence),
            duration_secs: fact.duration as f32,
            shareable: !verdict.ad && !verdict.gap,
            ad: verdict.ad,
        });
    }
    Ok(MediaPlaylist {
        target_duration: playlist.target_duration,
        media_sequence: playlist.media_sequence,
        ended: playlist.end_list,
        segments,
    })
}

/// Strips a byte-order mark and leading whitespace, checks the `#EXTM3U` header and makes sure
/// the text ends with a newline (without one, `m3u8-rs` reads a last tag line as a URI).
fn normalise(text: &[u8]) -> Result<Cow<'_, [u8]>, ContentError> {
    let text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
    let start = text
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(text.len());
    let text = &text[start..];
    if !text.starts_with(b"#EXTM3U") {
        return Err(ContentError::MalformedPlaylist(
            "missing #EXTM3U header".into(),
        ));
    }
    if text.ends_with(b"\n") {
        Ok(Cow::Borrowed(text))
    } else {
        let mut owned = text.to_vec();
        owned.push(b'\n');
        Ok(Cow::Owned(owned))
    }
}

/// `m3u8-rs` stops quietly at a line it cannot read (invalid UTF-8, bare CR); a truncated
/// segment list would look valid, so that is an error here.
fn check_fully_parsed(text: &[u8], rest: &[u8]) -> Result<(), ContentError> {
    if rest.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    let offset = text.len() - rest.len();
    Err(ContentError::MalformedPlaylist(format!(
        "unreadable line at byte {offset} (invalid UTF-8 or bare carriage return)"
    )))
}

/// `EXT-X-SKIP:SKIPPED-SEGMENTS=<n>` in a delta update.
fn skipped_segments(rest: Option<&str>) -> Result<u64, ContentError> {
    rest.into_iter()
        .flat_map(attributes::attributes)
        .find(|(k, _)| k == "SKIPPED-SEGMENTS")
        .and_then(|(_, v)| v.parse().ok())
        .ok_or_else(|| {
            ContentError::MalformedPlaylist("EXT-X-SKIP without SKIPPED-SEGMENTS".into())
        })
}

fn resolve(base: &Url, reference: &str) -> Result<String, ContentError> {
    Ok(base.join(reference.trim())?.into())
}

/// The path up to and including its last `/`.
fn directory(path: &str) -> &str {
    path.rfind('/').map_or("", |i| &path[..=i])
}
