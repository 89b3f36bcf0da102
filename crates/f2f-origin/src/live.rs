//! The live timeline and the manifests that describe it: a sliding window of the newest
//! segments, as a live packager would publish it.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use f2f_core::identity::{Bls, Keypair};
use f2f_core::integrity::{HashEntry, SegmentHash, SignedHashes};

use crate::media::{AUDIO_CODEC, Clip, Track, VIDEO_CODEC, VIDEO_SIZE};
use f2f_http::token::{Session, TOKEN_PARAM, TokenKey};

/// How the origin marks A/B watermark variants.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Watermark {
    /// No variants: every viewer gets the same bytes.
    #[default]
    Off,
    /// Each viewer's HLS playlist points at the `a` or `b` path of every segment, by its
    /// session's pattern (per-session manifests).
    Paths,
    /// One URL per segment; the origin picks the variant from the viewer's token, as an edge
    /// that applies watermarks does.
    Token,
}

/// What the origin publishes.
#[derive(Clone, Debug)]
pub struct OriginConfig {
    /// Stream bit rate: segments are padded to `bitrate × duration`.
    pub bitrate_bps: u64,
    /// Segments in the live window.
    pub window: u64,
    /// When set, every request needs a valid `hdnts` token, and listed URLs carry it on.
    pub tokens: Option<TokenKey>,
    /// A/B watermark variants (needs tokens: the variant sequence belongs to the session).
    pub watermark: Watermark,
    /// Every `n`-th segment is a server-side inserted ad, personal to each viewer (HLS).
    pub ad_every: Option<u64>,
    /// Publish signed segment hashes (`<playlist>.f2f-hashes`) with this key.
    pub signing: Option<Keypair>,
}

impl Default for OriginConfig {
    fn default() -> Self {
        Self {
            bitrate_bps: 2_000_000,
            window: 6,
            tokens: None,
            watermark: Watermark::Off,
            ad_every: None,
            signing: None,
        }
    }
}

/// One live stream: a clip looping on a wall-clock timeline.
#[derive(Debug)]
pub struct Live {
    clip: Clip,
    config: OriginConfig,
    /// When segment 0 began; set a window in the past so a full window exists at once.
    start: SystemTime,
    /// Signed hashes per (listing, newest segment): signing costs a BLS signature.
    signed: Mutex<HashMap<(Option<Rendition>, u64), String>>,
}

/// The stream's renditions: demuxed, as DASH and modern HLS packagers publish them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rendition {
    /// The picture, padded to the stream's bit rate.
    Video,
    /// The sound, at its own rate.
    Audio,
}

impl Rendition {
    /// The path component naming it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Video => "video",
            Self::Audio => "audio",
        }
    }

    /// The rendition a path component names.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "video" => Some(Self::Video),
            "audio" => Some(Self::Audio),
            _ => None,
        }
    }
}

/// The audio rendition's bandwidth as advertised (AAC at 64 kb/s plus container overhead).
const AUDIO_BPS: u64 = 70_000;

/// Which copy of a segment a request asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Copy {
    /// The same bytes for everyone.
    Common,
    /// One watermark variant (`'a'` or `'b'`).
    Variant(char),
    /// A personal ad for one viewer.
    Ad(String),
}

/// The watermark variant of segment `number` in session `session`'s sequence.
pub fn variant_of(session: &str, number: u64) -> char {
    let mut h = blake3::Hasher::new();
    h.update(session.as_bytes());
    h.update(&number.to_le_bytes());
    if h.finalize().as_bytes()[0] & 1 == 0 {
        'a'
    } else {
        'b'
    }
}

fn iso8601(t: SystemTime) -> String {
    let t: chrono::DateTime<chrono::Utc> = t.into();
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Live {
    /// A stream of `clip` that started `config.window` segments before `now`.
    pub fn new(clip: Clip, config: OriginConfig, now: SystemTime) -> Self {
        let start = now - clip.video.segment_duration() * (config.window as u32);
        Self {
            clip,
            config,
            start,
            signed: Mutex::new(HashMap::new()),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &OriginConfig {
        &self.config
    }

    fn duration(&self) -> Duration {
        self.clip.video.segment_duration()
    }

    fn track(&self, rendition: Rendition) -> &Track {
        match rendition {
            Rendition::Video => &self.clip.video,
            Rendition::Audio => &self.clip.audio,
        }
    }

    /// The number of the newest complete segment at `now`.
    pub fn newest(&self, now: SystemTime) -> u64 {
        let elapsed = now.duration_since(self.start).unwrap_or_default();
        (elapsed.as_nanos() / self.duration().as_nanos()).saturating_sub(1) as u64
    }

    /// Segment numbers in the live window at `now`.
    pub fn window(&self, now: SystemTime) -> std::ops::RangeInclusive<u64> {
        let newest = self.newest(now);
        newest.saturating_sub(self.config.window - 1)..=newest
    }

    /// How long until segment `number` is published: zero for published ones, `None` for
    /// segments more than two durations ahead (a request for those is a client error).
    pub fn until_published(&self, number: u64, now: SystemTime) -> Option<Duration> {
        let at = self.start + self.duration() * u32::try_from(number + 1).ok()?;
        let wait = at.duration_since(now).unwrap_or_default();
        (wait <= self.duration() * 2).then_some(wait)
    }

    /// Whether segment `number` is an ad slot.
    pub fn is_ad(&self, number: u64) -> bool {
        self.config.ad_every.is_some_and(|k| number % k == k - 1)
    }

    /// The video rendition's share of the stream's bit rate.
    fn video_bps(&self) -> u64 {
        self.config.bitrate_bps.saturating_sub(AUDIO_BPS)
    }

    /// A rendition's init segment.
    pub fn init(&self, rendition: Rendition) -> Bytes {
        self.track(rendition).init()
    }

    /// The bytes of one copy of segment `number` of a rendition.
    pub fn segment(&self, rendition: Rendition, number: u64, copy: &Copy) -> Bytes {
        let label = match copy {
            Copy::Common => "common".to_owned(),
            Copy::Variant(v) => format!("watermark variant {v}"),
            Copy::Ad(viewer) => format!("ad for viewer {viewer}"),
        };
        let min_len = match rendition {
            Rendition::Video => self.video_bps() as f64 * self.duration().as_secs_f64() / 8.0,
            Rendition::Audio => 0.0,
        };
        self.track(rendition)
            .segment(number, &label, min_len as usize)
    }

    /// The signed hashes of the window at `now`, for one HLS rendition's playlist or (`None`)
    /// for the MPD, with URIs as those manifests write them (relative, without tokens: one
    /// file serves every viewer). Both watermark variants are listed. `None` when signing is
    /// off.
    pub fn signed_hashes(&self, listing: Option<Rendition>, now: SystemTime) -> Option<String> {
        let key = self.config.signing.as_ref()?;
        let window = self.window(now);
        let mut cache = self.signed.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(text) = cache.get(&(listing, *window.end())) {
            return Some(text.clone());
        }
        let renditions = match listing {
            Some(r) => vec![r],
            None => vec![Rendition::Video, Rendition::Audio],
        };
        let mut entries = Vec::new();
        for n in window.clone() {
            if self.is_ad(n) {
                continue;
            }
            for &rendition in &renditions {
                let name = rendition.name();
                let mut entry = |uri: String, variant: Option<String>, copy: Copy| {
                    let bytes = self.segment(rendition, n, &copy);
                    entries.push(HashEntry {
                        uri,
                        variant,
                        size: bytes.len() as u64,
                        hash: SegmentHash::of(&bytes),
                    });
                };
                match (rendition, self.config.watermark) {
                    (Rendition::Video, Watermark::Paths) => {
                        for v in ['a', 'b'] {
                            entry(format!("{name}/wm/{v}/{n}.m4s"), None, Copy::Variant(v));
                        }
                    }
                    (Rendition::Video, Watermark::Token) => {
                        for v in ['a', 'b'] {
                            entry(format!("{name}/{n}.m4s"), Some(v.into()), Copy::Variant(v));
                        }
                    }
                    _ => entry(format!("{name}/{n}.m4s"), None, Copy::Common),
                }
            }
        }
        let text = SignedHashes::sign(&Bls::new(), key, &entries);
        cache.retain(|(_, newest), _| newest + 2 >= *window.end());
        cache.insert((listing, *window.end()), text.clone());
        Some(text)
    }

    /// `?hdnts=…` for the viewer's links, when tokens are on.
    fn query(&self, token: Option<&str>) -> String {
        match (&self.config.tokens, token) {
            (Some(_), Some(token)) => format!("?{TOKEN_PARAM}={token}"),
            _ => String::new(),
        }
    }

    /// The HLS multivariant playlist: one video rendition with an audio group.
    pub fn hls_master(&self, token: Option<&str>) -> String {
        let (w, h) = VIDEO_SIZE;
        let query = self.query(token);
        format!(
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"main\",DEFAULT=YES,AUTOSELECT=YES,\
             CHANNELS=\"2\",URI=\"audio.m3u8{query}\"\n\
             #EXT-X-STREAM-INF:BANDWIDTH={},CODECS=\"{VIDEO_CODEC},{AUDIO_CODEC}\",\
             RESOLUTION={w}x{h},AUDIO=\"audio\"\nvideo.m3u8{query}\n",
            self.config.bitrate_bps,
        )
    }

    /// A rendition's HLS media playlist at `now`, for the viewer holding `session`'s `token`.
    pub fn hls_media(
        &self,
        rendition: Rendition,
        now: SystemTime,
        session: Option<(&Session, &str)>,
    ) -> String {
        let window = self.window(now);
        let duration = self.duration().as_secs_f64();
        let query = self.query(session.map(|(_, t)| t));
        let name = rendition.name();
        let mut text = format!(
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:{}\n#EXT-X-MEDIA-SEQUENCE:{}\n\
             #EXT-X-MAP:URI=\"{name}/init.mp4{query}\"\n",
            duration.ceil() as u64,
            window.start()
        );
        let viewer = session.map_or("anonymous", |(s, _)| s.id.as_str());
        for n in window {
            let at = self.start + self.duration() * (n as u32);
            let _ = writeln!(text, "#EXT-X-PROGRAM-DATE-TIME:{}", iso8601(at));
            if self.is_ad(n) {
                let _ = write!(
                    text,
                    "#EXT-X-CUE-OUT:DURATION={duration:.3}\n#EXTINF:{duration:.3},\n\
                     /ads/{viewer}/{name}/{n}.m4s{query}\n#EXT-X-CUE-IN\n"
                );
                continue;
            }
            let path = match (rendition, self.config.watermark, session) {
                (Rendition::Video, Watermark::Paths, Some((s, _))) => {
                    format!("{name}/wm/{}/{n}.m4s", variant_of(&s.id, n))
                }
                _ => format!("{name}/{n}.m4s"),
            };
            let _ = write!(text, "#EXTINF:{duration:.3},\n{path}{query}\n");
        }
        text
    }

    /// The DASH MPD (dynamic, `SegmentTemplate` with `$Number$`).
    pub fn mpd(&self, now: SystemTime, token: Option<&str>) -> String {
        let query = self.query(token);
        let (w, h) = VIDEO_SIZE;
        let ms = self.duration().as_millis();
        let depth = self.duration().as_secs() * self.config.window;
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="dynamic" profiles="urn:mpeg:dash:profile:isoff-live:2011" availabilityStartTime="{start}" publishTime="{now}" minimumUpdatePeriod="PT{secs}S" minBufferTime="PT{secs}S" timeShiftBufferDepth="PT{depth}S" suggestedPresentationDelay="PT{delay}S">
  <Period id="0" start="PT0S">
    <AdaptationSet contentType="video" mimeType="video/mp4" segmentAlignment="true" startWithSAP="1">
      <Representation id="video" bandwidth="{video_bw}" codecs="{VIDEO_CODEC}" width="{w}" height="{h}">
        <SegmentTemplate timescale="1000" duration="{ms}" startNumber="0" initialization="video/init.mp4{query}" media="video/$Number$.m4s{query}"/>
      </Representation>
    </AdaptationSet>
    <AdaptationSet contentType="audio" mimeType="audio/mp4" lang="und" segmentAlignment="true" startWithSAP="1">
      <Representation id="audio" bandwidth="{AUDIO_BPS}" codecs="{AUDIO_CODEC}" audioSamplingRate="48000">
        <SegmentTemplate timescale="1000" duration="{ms}" startNumber="0" initialization="audio/init.mp4{query}" media="audio/$Number$.m4s{query}"/>
      </Representation>
    </AdaptationSet>
  </Period>
</MPD>
"#,
            start = iso8601(self.start),
            now = iso8601(now),
            secs = self.duration().as_secs(),
            delay = self.duration().as_secs() * 3,
            video_bw = self.video_bps(),
            query = query.replace('&', "&amp;"),
        )
    }
}

/// Unix seconds of `t`.
pub(crate) fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}
