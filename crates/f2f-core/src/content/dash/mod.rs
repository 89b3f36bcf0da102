//! DASH MPDs: the segments each representation has available now, and which of them are ads.
//!
//! What is supported is documented on [`parse_mpd`].

mod scte35;
mod template;

use std::collections::BTreeMap;

use dash_mpd_core::{AdaptationSet, BaseURL, MPD, Period, Representation};
use url::Url;

use self::scte35::scte35_windows;
use self::template::{Template, Vars, expand, number_timings, timeline_timings};
use super::{ContentError, ListedSegment, is_known_ad_location};
use crate::id::SegmentPosition;

/// The most segments listed per representation and period: a live window, not a whole archive.
pub const MAX_LISTED_SEGMENTS: usize = 1024;

/// A parsed MPD: what is available now, per representation.
#[derive(Clone, Debug, PartialEq)]
pub struct DashManifest {
    /// `MPD@type="dynamic"`: a live stream whose MPD must be refetched.
    pub dynamic: bool,
    /// `MPD@minimumUpdatePeriod` in milliseconds: how often to refetch a dynamic MPD.
    pub minimum_update_period_ms: Option<u64>,
    /// Representations in document order; those with the same [`rendition_url`] in several
    /// periods are merged, their segments concatenated in period order.
    ///
    /// [`rendition_url`]: DashRepresentation::rendition_url
    pub representations: Vec<DashRepresentation>,
}

/// One representation (rendition) and its available segments.
#[derive(Clone, Debug, PartialEq)]
pub struct DashRepresentation {
    /// `Representation@id` (empty when absent).
    pub id: String,
    /// `contentType`, or the type part of `mimeType` (`video`, `audio`, `text`), if known.
    pub content_type: Option<String>,
    /// `Representation@bandwidth`, bits per second.
    pub bandwidth: Option<u64>,
    /// Width and height in pixels, if announced.
    pub resolution: Option<(u64, u64)>,
    /// `codecs` of the representation or its adaptation set.
    pub codecs: Option<String>,
    /// The absolute media template with `$RepresentationID$` and `$Bandwidth$` filled in and
    /// `$Number$`/`$Time$` left as they are: the input for
    /// [`Canonicalizer::rendition_id`](super::Canonicalizer::rendition_id).
    pub rendition_url: String,
    /// Absolute URL of the initialisation segment, if the template names one.
    pub initialization: Option<String>,
    /// Available segments, oldest first.
    pub segments: Vec<ListedSegment>,
}

/// Parses an MPD fetched from `base_url`, listing the segments available at `now_unix_ms`
/// (the driver's wall clock, ideally synchronised through the MPD's `UTCTiming`).
///
/// Supported, as live packagers (MediaPackage, Unified Origin, Wowza, Harmonic, Elemental,
/// GPAC, Shaka Packager) emit them:
///
/// - `SegmentTemplate` at Period, AdaptationSet or Representation level, merged attribute by
///   attribute (the innermost level wins);
/// - `$Number$` with `@duration`: in a dynamic MPD the numbers available at `now_unix_ms`,
///   from `availabilityStartTime`, `Period@start`, `availabilityTimeOffset` and
///   `timeShiftBufferDepth`;
/// - `SegmentTimeline` with `$Time$` (positions are [`SegmentPosition::Time`]) or `$Number$`,
///   including `@r="-1"`;
/// - `$RepresentationID$`, `$Bandwidth$`, `$$` and `%0<width>d` formats;
/// - `BaseURL` at MPD, Period, AdaptationSet and Representation level (the lowest
///   `dvb:priority`, then the first, of each level).
///
/// Unsupported, with [`ContentError::Unsupported`]: `SegmentList`, `SegmentBase` and
/// representations without a template (single-file on-demand profile), `$SubNumber$`, and
/// `$Time$` without a timeline. Remote (`xlink:href`) periods are skipped: the driver must
/// resolve them first. At most [`MAX_LISTED_SEGMENTS`] segments are listed per representation
/// and period (the newest for dynamic MPDs, the first for static ones).
///
/// Ads: a segment is an ad when it falls in a window announced by an SCTE-35 `EventStream`
/// (`urn:scte:scte35:2013:xml`, `urn:scte:scte35:2014:xml+bin`, `urn:scte:scte35:2013:bin`;
/// return-to-network and cancelled splices and non-ad segmentation types excepted; binary
/// payloads are not decoded and count as ad starts), when it is served from a known ad host
/// (MediaTailor, Google DAI's segment redirector), or, in a multi-period MPD, when its period
/// is served from another host than the content. The content host is the MPD-level base's host
/// when some period lives there, else the host most periods without SCTE-35 events use.
pub fn parse_mpd(
    base_url: &str,
    text: &str,
    now_unix_ms: u64,
) -> Result<DashManifest, ContentError> {
    let base = Url::parse(base_url)?;
    if !root_is_mpd(text) {
        return Err(ContentError::MalformedMpd(
            "root element is not <MPD>".into(),
        ));
    }
    reject_oversized_durations(text)?;
    let mpd = dash_mpd_core::parse(text).map_err(|e| ContentError::MalformedMpd(e.to_string()))?;
    let clock = Clock {
        dynamic: mpd.mpdtype.as_deref() == Some("dynamic"),
        availability_start_ms: mpd.availabilityStartTime.map(|t| t.timestamp_millis()),
        now_ms: i64::try_from(now_unix_ms).unwrap_or(i64::MAX),
        time_shift_secs: mpd.timeShiftBufferDepth.map(|d| d.as_secs_f64()),
    };
    let mpd_base = with_base(&base, &mpd.base_url)?;
    let spans = period_spans(&mpd)?;

    let mut periods = Vec::with_capacity(mpd.periods.len());
    for (period, span) in mpd.periods.iter().zip(spans) {
        if period.href.is_some() && period.adaptations.is_empty() {
            continue;
        }
        let period_base = with_base(&mpd_base, &period.BaseURL)?;
        let mut reps = Vec::new();
        for adaptation in &period.adaptations {
            let adaptation_base = with_base(&period_base, &adaptation.BaseURL)?;
            for rep in &adaptation.representations {
                reps.push(build_representation(
                    period,
                    adaptation,
                    rep,
                    &adaptation_base,
                    span,
                    &clock,
                )?);
            }
        }
        periods.push(BuiltPeriod {
            windows: scte35_windows(period),
            reps,
        });
    }
    mark_off_location_periods(&mut periods, &mpd_base);

    let mut representations: Vec<DashRepresentation> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    for period in periods {
        for built in period.reps {
            let segments = built.slots.into_iter().map(|slot| {
                let in_window = period
                    .windows
                    .iter()
                    .any(|(s, e)| slot.mid_secs >= *s && slot.mid_secs < *e);
                let ad = built.off_location || built.known_ad || slot.known_ad || in_window;
                ListedSegment {
                    uri: slot.uri,
                    position: slot.position,
                    duration_secs: slot.duration_secs as f32,
                    shareable: !ad,
                    ad,
                }
            });
            match index.get(&built.info.rendition_url) {
                Some(&at) => {
                    let existing = &mut representations[at];
                    existing.segments.extend(segments);
                    if built.info.initialization.is_some() {
                        existing.initialization = built.info.initialization;
                    }
                }
                None => {
                    index.insert(built.info.rendition_url.clone(), representations.len());
                    let mut info = built.info;
                    info.segments = segments.collect();
                    representations.push(info);
                }
            }
        }
    }
    Ok(DashManifest {
        dynamic: clock.dynamic,
        minimum_update_period_ms: mpd
            .minimumUpdatePeriod
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        representations,
    })
}

/// Time inputs shared by every representation.
struct Clock {
    dynamic: bool,
    availability_start_ms: Option<i64>,
    now_ms: i64,
    time_shift_secs: Option<f64>,
}

/// A period's place on the MPD timeline, in seconds (`end` may be infinite).
#[derive(Clone, Copy, Debug)]
struct Span {
    start: f64,
    end: f64,
}

struct BuiltPeriod {
    /// SCTE-35 ad windows, seconds from the period start.
    windows: Vec<(f64, f64)>,
    reps: Vec<BuiltRepresentation>,
}

struct BuiltRepresentation {
    info: DashRepresentation,
    host: Option<String>,
    known_ad: bool,
    off_location: bool,
    slots: Vec<Slot>,
}

struct Slot {
    uri: String,
    position: SegmentPosition,
    /// Middle of the segment, seconds from the period start.
    mid_secs: f64,
    duration_secs: f64,
    known_ad: bool,
}

fn build_representation(
    period: &Period,
    adaptation: &AdaptationSet,
    rep: &Representation,
    adaptation_base: &Url,
    span: Span,
    clock: &Clock,
) -> Result<BuiltRepresentation, ContentError> {
    let base = with_base(adaptation_base, &rep.BaseURL)?;
    if rep.SegmentList.is_some() || adaptation.SegmentList.is_some() || period.SegmentList.is_some()
    {
        return Err(ContentError::Unsupported("SegmentList".into()));
    }
    let Some(template) = Template::merge([
        rep.SegmentTemplate.as_ref(),
        adaptation.SegmentTemplate.as_ref(),
        period.SegmentTemplate.as_ref(),
    ]) else {
        let what = if rep.SegmentBase.is_some()
            || adaptation.SegmentBase.is_some()
            || period.SegmentBase.is_some()
        {
            "SegmentBase"
        } else {
            "representation without SegmentTemplate"
        };
        return Err(ContentError::Unsupported(what.into()));
    };
    let media = template
        .media
        .ok_or_else(|| ContentError::MalformedMpd("SegmentTemplate without @media".into()))?;
    let id = rep.id.clone().unwrap_or_default();
    let vars = Vars {
        id: rep.id.as_deref(),
        bandwidth: rep.bandwidth,
    };
    let uses_time = media.contains("$Time");
    if !uses_time && !media.contains("$Number") {
        return Err(ContentError::MalformedMpd(
            "media template has neither $Number$ nor $Time$".into(),
        ));
    }
    let timings = match template.timeline {
        Some(timeline) => timeline_timings(&template, timeline, span, clock)?,
        None if uses_time => {
            return Err(ContentError::Unsupported(
                "$Time$ without SegmentTimeline".into(),
            ));
        }
        None => number_timings(&template, span, clock)?,
    };
    let rendition = base.join(&expand(media, &vars, None, None)?)?;
    let host = rendition.host_str().map(str::to_ascii_lowercase);
    let known_ad = host
        .as_deref()
        .is_some_and(|h| is_known_ad_location(h, rendition.path()));
    let initialization = template
        .initialization
        .map(|init| -> Result<String, ContentError> {
            Ok(base.join(&expand(init, &vars, None, None)?)?.into())
        })
        .transpose()?;
    let mut slots = Vec::with_capacity(timings.len());
    for t in timings {
        let url = base.join(&expand(media, &vars, Some(t.number), Some(t.time))?)?;
        let slot_known_ad = url
            .host_str()
            .is_some_and(|h| is_known_ad_location(&h.to_ascii_lowercase(), url.path()));
        slots.push(Slot {
            uri: url.into(),
            position: if uses_time {
                SegmentPosition::Time(t.time)
            } else {
                SegmentPosition::Sequence(t.number)
            },
            mid_secs: t.start_secs + t.duration_secs / 2.0,
            duration_secs: t.duration_secs,
            known_ad: slot_known_ad,
        });
    }
    let content_type = rep
        .contentType
        .clone()
        .or_else(|| adaptation.contentType.clone())
        .or_else(|| {
            let mime = rep.mimeType.as_deref().or(adaptation.mimeType.as_deref())?;
            Some(mime.split('/').next()?.to_owned())
        });
    let resolution = match (
        rep.width.or(adaptation.width),
        rep.height.or(adaptation.height),
    ) {
        (Some(w), Some(h)) => Some((w, h)),
        _ => None,
    };
    Ok(BuiltRepresentation {
        info: DashRepresentation {
            id,
            content_type,
            bandwidth: rep.bandwidth,
            resolution,
            codecs: rep.codecs.clone().or_else(|| adaptation.codecs.clone()),
            rendition_url: rendition.into(),
            initialization,
            segments: Vec::new(),
        },
        host,
        known_ad,
        off_location: false,
        slots,
    })
}

/// Resolves the preferred `BaseURL` of a level against the level above.
fn with_base(parent: &Url, bases: &[BaseURL]) -> Result<Url, ContentError> {
    match bases.iter().min_by_key(|b| b.priority.unwrap_or(1)) {
        Some(b) => Ok(parent.join(b.base.trim())?),
        None => Ok(parent.clone()),
    }
}

/// Start and end of every period: `@start`, else the previous end; end from `@duration`, the
/// next start, or `mediaPresentationDuration` for the last period.
fn period_spans(mpd: &MPD) -> Result<Vec<Span>, ContentError> {
    let mut spans: Vec<Span> = Vec::with_capacity(mpd.periods.len());
    for period in &mpd.periods {
        let start = match (period.start, spans.last()) {
            (Some(start), _) => start.as_secs_f64(),
            (None, None) => 0.0,
            (None, Some(prev)) if prev.end.is_finite() => prev.end,
            (None, Some(_)) => {
                return Err(ContentError::MalformedMpd(
                    "Period without @start after a period without @duration".into(),
                ));
            }
        };
        let end = period
            .duration
            .map_or(f64::INFINITY, |d| start + d.as_secs_f64());
        if let Some(prev) = spans.last_mut().filter(|p| p.end.is_infinite()) {
            prev.end = start;
        }
        spans.push(Span { start, end });
    }
    if let (Some(last), Some(total)) = (spans.last_mut(), mpd.mediaPresentationDuration) {
        if last.end.is_infinite() {
            last.end = total.as_secs_f64();
        }
    }
    Ok(spans)
}

/// Multi-period MPDs: a period none of whose representations is at the content host is an ad.
fn mark_off_location_periods(periods: &mut [BuiltPeriod], mpd_base: &Url) {
    if periods.len() < 2 {
        return;
    }
    let host_of = |p: &BuiltPeriod| {
        p.reps
            .iter()
            .filter(|r| !r.known_ad)
            .find_map(|r| r.host.clone())
    };
    let uncued: Vec<&BuiltPeriod> = periods.iter().filter(|p| p.windows.is_empty()).collect();
    let candidates: Vec<&BuiltPeriod> = if uncued.is_empty() {
        periods.iter().collect()
    } else {
        uncued
    };
    let base_host = mpd_base.host_str().map(str::to_ascii_lowercase);
    let content_host = match base_host.filter(|h| {
        candidates.iter().any(|p| {
            p.reps
                .iter()
                .any(|r| !r.known_ad && r.host.as_ref() == Some(h))
        })
    }) {
        Some(host) => host,
        None => {
            let mut counts: Vec<(String, usize)> = Vec::new();
            for host in candidates.iter().filter_map(|p| host_of(p)) {
                match counts.iter_mut().find(|(h, _)| *h == host) {
                    Some((_, n)) => *n += 1,
                    None => counts.push((host, 1)),
                }
            }
            let best = counts.iter().map(|(_, n)| *n).max().unwrap_or(0);
            match counts.into_iter().find(|(_, n)| *n == best) {
                Some((host, _)) => host,
                None => return,
            }
        }
    };
    for period in periods.iter_mut() {
        if !period
            .reps
            .iter()
            .any(|r| r.host.as_deref() == Some(content_host.as_str()))
        {
            for rep in &mut period.reps {
                rep.off_location = true;
            }
        }
    }
}

/// Whether the first element is `<MPD>` (possibly namespace-prefixed): the XML deserialiser
/// accepts any root element, so an HTML error page would otherwise parse as an empty MPD.
fn root_is_mpd(text: &str) -> bool {
    let mut rest = text.trim_start_matches('\u{feff}');
    loop {
        let Some(open) = rest.find('<') else {
            return false;
        };
        rest = &rest[open + 1..];
        if rest.starts_with('?') || rest.starts_with('!') {
            // XML declaration, processing instruction, comment or doctype.
            let close = if rest.starts_with("!--") {
                rest.find("-->")
            } else {
                rest.find('>')
            };
            match close {
                Some(close) => rest = &rest[close..],
                None => return false,
            }
            continue;
        }
        let name_end = rest
            .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
            .unwrap_or(rest.len());
        let name = &rest[..name_end];
        return name == "MPD" || name.ends_with(":MPD");
    }
}

/// `dash-mpd-core` sums xs:duration parts without overflow checks (a panic in debug builds):
/// refuse durations with an integer part longer than 10 digits before parsing.
fn reject_oversized_durations(text: &str) -> Result<(), ContentError> {
    for quote in ['"', '\''] {
        for value in text.split(quote).skip(1).step_by(2) {
            let value = value.trim();
            let body = value.strip_prefix('-').unwrap_or(value);
            let duration_shaped = body.starts_with('P')
                && body
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b"PYMWDTHS.,".contains(&b));
            if !duration_shaped {
                continue;
            }
            let mut run = 0usize;
            let mut fraction = false;
            for c in body.chars() {
                if c.is_ascii_digit() {
                    run += 1;
                    if run > 10 && !fraction {
                        return Err(ContentError::MalformedMpd("duration out of range".into()));
                    }
                } else {
                    fraction = c == '.' || c == ',';
                    run = 0;
                }
            }
        }
    }
    Ok(())
}
