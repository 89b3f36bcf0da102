//! Finding server-side inserted ads in an HLS media playlist.
//!
//! A segment is an ad when any of these says so:
//!
//! 1. **Cue tags** (AWS Elemental, MediaPackage, Wowza, most SSAI vendors): between
//!    `EXT-X-CUE-OUT` and `EXT-X-CUE-IN`, while `EXT-X-CUE-OUT-CONT` says a break goes on, or
//!    until the `CUE-OUT` duration has elapsed; Adobe's `EXT-X-SCTE35` with `CUE-OUT`/`CUE-IN`.
//!    A `CUE-IN` with no earlier cue means the window opened inside a break: the segments
//!    before it are ads.
//! 2. **`EXT-X-DATERANGE`** with `SCTE35-OUT` or `CLASS="com.apple.hls.interstitial"`, from
//!    its start until `END-DATE`, `DURATION`, a matching `SCTE35-IN` or `PLANNED-DURATION`
//!    (open-ended otherwise). Ranges are placed by `START-DATE` against the segments'
//!    `EXT-X-PROGRAM-DATE-TIME` when the playlist has one, by the tag's position otherwise. For
//!    interstitials the primary segments under the range are marked too (the player skips
//!    them); the interstitial assets themselves are separate playlists.
//! 3. **Known ad-segment locations**: AWS MediaTailor hosts and Google DAI's segment
//!    redirector (see `is_known_ad_location`).
//! 4. **Location**: when the playlist has discontinuities, a discontinuity-bounded run none of
//!    whose segments is at the content location is an ad (MediaTailor, Google DAI and other
//!    stitchers serve ads from another host or directory). The content location is the
//!    playlist's own host if un-cued segments live there, else the host holding most un-cued
//!    duration; its directory counts only when it holds at least half of that host's un-cued
//!    duration (so per-segment directories, as in path-parameter URLs, compare by host only).
//!
//! Limitations: CDN shards alternating *within* one playlist across discontinuities look like a
//! change of location; `END-ON-NEXT` date ranges are open-ended.

use std::collections::BTreeMap;

use super::attributes::{attributes, parse_rfc3339_ms};
use crate::content::is_known_ad_location;

/// What the ad heuristics need to know about one segment.
#[derive(Debug)]
pub(super) struct SegmentFacts {
    /// Absolute URI.
    pub(super) uri: String,
    /// Lowercase host of `uri`.
    pub(super) host: Option<String>,
    /// Directory of `uri`'s path (up to the last `/`).
    pub(super) dir: Option<String>,
    /// `EXTINF` duration, seconds.
    pub(super) duration: f64,
    /// Preceded by `EXT-X-DISCONTINUITY`.
    pub(super) discontinuity: bool,
    /// `EXT-X-PROGRAM-DATE-TIME`, unix milliseconds.
    pub(super) program_date_time_ms: Option<i64>,
    /// Tags `m3u8-rs` did not interpret, in order: (name without `#EXT-`, value).
    pub(super) tags: Vec<(String, Option<String>)>,
}

/// The heuristics' answer for one segment.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Verdict {
    pub(super) ad: bool,
    pub(super) gap: bool,
}

/// An `EXT-X-DATERANGE` tag and the index of the segment it precedes.
///
/// Scanned from the text rather than taken from `m3u8-rs`, which keeps only the last date range
/// before each segment and drops those after the last segment.
#[derive(Debug)]
pub(super) struct DateRangeTag {
    before_segment: usize,
    attrs: Vec<(String, String)>,
}

impl DateRangeTag {
    fn attr(&self, key: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    fn seconds(&self, key: &str) -> Option<f64> {
        self.attr(key)?
            .parse::<f64>()
            .ok()
            .filter(|d| d.is_finite() && *d >= 0.0)
    }
}

/// Breaks shorter than this past their announced duration are considered over (rounding of
/// `EXTINF` sums).
const DURATION_SLACK_SECS: f64 = 0.1;

const INTERSTITIAL_CLASS: &str = "com.apple.hls.interstitial";

/// Classifies every segment; see the module docs.
pub(super) fn classify(
    facts: &[SegmentFacts],
    date_ranges: &[DateRangeTag],
    playlist_host: Option<&str>,
) -> Vec<Verdict> {
    let cues = cue_breaks(facts);
    let ranges = date_range_breaks(facts, date_ranges);
    let marked: Vec<bool> = facts
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let known_ad = match (f.host.as_deref(), f.dir.as_deref()) {
                (Some(host), Some(dir)) => is_known_ad_location(host, dir),
                _ => false,
            };
            cues[i] || ranges[i] || known_ad
        })
        .collect();
    let moved = location_breaks(facts, &marked, playlist_host);
    facts
        .iter()
        .enumerate()
        .map(|(i, f)| Verdict {
            ad: marked[i] || moved[i],
            gap: f.tags.iter().any(|(t, _)| t == "X-GAP"),
        })
        .collect()
}

/// Rule 1: cue tags, positional.
fn cue_breaks(facts: &[SegmentFacts]) -> Vec<bool> {
    let mut out = vec![false; facts.len()];
    let mut in_break = false;
    let mut remaining: Option<f64> = None;
    let mut seen_cue = false;
    for (i, segment) in facts.iter().enumerate() {
        for (tag, value) in &segment.tags {
            let value = value.as_deref().unwrap_or("");
            match tag.as_str() {
                "X-CUE-OUT" => {
                    (in_break, remaining) = (true, cue_out_duration(value));
                    seen_cue = true;
                }
                "X-CUE-OUT-CONT" => {
                    (in_break, remaining) = (true, cue_out_cont_remaining(value));
                    seen_cue = true;
                }
                "X-CUE-IN" => {
                    if !seen_cue {
                        out[..i].fill(true);
                    }
                    (in_break, remaining, seen_cue) = (false, None, true);
                }
                "X-SCTE35" => {
                    let attrs = attributes(value);
                    let get = |k: &str| {
                        attrs
                            .iter()
                            .find(|(a, _)| a.eq_ignore_ascii_case(k))
                            .map(|(_, v)| v.as_str())
                    };
                    if get("CUE-IN").is_some_and(|v| v.eq_ignore_ascii_case("YES")) {
                        if !seen_cue {
                            out[..i].fill(true);
                        }
                        (in_break, remaining, seen_cue) = (false, None, true);
                    } else if let Some(out_value) = get("CUE-OUT") {
                        if out_value.eq_ignore_ascii_case("YES") {
                            remaining = get("DURATION").and_then(positive_seconds);
                        }
                        in_break |= !out_value.eq_ignore_ascii_case("NO");
                        seen_cue = true;
                    }
                }
                _ => {}
            }
        }
        out[i] = in_break;
        if let (true, Some(left)) = (in_break, remaining.as_mut()) {
            *left -= segment.duration;
            if *left <= DURATION_SLACK_SECS {
                (in_break, remaining) = (false, None);
            }
        }
    }
    out
}

/// `EXT-X-CUE-OUT:30`, `EXT-X-CUE-OUT:30.000`, `EXT-X-CUE-OUT:DURATION=30`.
fn cue_out_duration(value: &str) -> Option<f64> {
    if value.contains('=') {
        attributes(value)
            .into_iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("DURATION"))
            .and_then(|(_, v)| positive_seconds(&v))
    } else {
        positive_seconds(value.split(',').next().unwrap_or(""))
    }
}

/// `EXT-X-CUE-OUT-CONT:ElapsedTime=5.005,Duration=30,SCTE35=...` or `EXT-X-CUE-OUT-CONT:5/30`.
fn cue_out_cont_remaining(value: &str) -> Option<f64> {
    let (elapsed, duration) = if value.contains('=') {
        let attrs = attributes(value);
        let get = |k: &str| {
            attrs
                .iter()
                .find(|(a, _)| a.eq_ignore_ascii_case(k))
                .map(|(_, v)| v)
        };
        (
            get("ElapsedTime").and_then(|v| v.parse::<f64>().ok()),
            get("Duration").and_then(|v| positive_seconds(v)),
        )
    } else {
        let (e, d) = value.split_once('/')?;
        (e.trim().parse::<f64>().ok(), positive_seconds(d))
    };
    let left = duration? - elapsed?;
    left.is_finite().then_some(left)
}

fn positive_seconds(value: &str) -> Option<f64> {
    value
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|d| d.is_finite() && *d > 0.0)
}

/// Rule 2: `EXT-X-DATERANGE` ad ranges, by date when the playlist has program date times.
fn date_range_breaks(facts: &[SegmentFacts], tags: &[DateRangeTag]) -> Vec<bool> {
    let mut out = vec![false; facts.len()];
    if tags.is_empty() || facts.is_empty() {
        return out;
    }
    let wall = wall_clock_starts(facts);
    let by_date = wall.is_some();
    let starts = wall.unwrap_or_else(|| offsets_ms(facts));
    let end_of_list =
        starts.last().copied().unwrap_or(0.0) + facts.last().map_or(0.0, |f| f.duration * 1000.0);
    let anchor = |tag: &DateRangeTag| {
        starts
            .get(tag.before_segment)
            .copied()
            .unwrap_or(end_of_list)
    };
    let date = |tag: &DateRangeTag, key: &str| {
        by_date
            .then(|| tag.attr(key).and_then(parse_rfc3339_ms))
            .flatten()
            .map(|ms| ms as f64)
    };
    let start_of = |tag: &DateRangeTag| date(tag, "START-DATE").unwrap_or_else(|| anchor(tag));

    // Group by ID; tags without an ID stand alone.
    let mut groups: BTreeMap<String, Vec<&DateRangeTag>> = BTreeMap::new();
    for (i, tag) in tags.iter().enumerate() {
        let key = tag
            .attr("ID")
            .map_or_else(|| format!("\u{0}{i}"), str::to_owned);
        groups.entry(key).or_default().push(tag);
    }
    let opens = |t: &DateRangeTag| {
        t.attr("SCTE35-OUT").is_some() || t.attr("CLASS") == Some(INTERSTITIAL_CLASS)
    };
    let mut ranges: Vec<(f64, f64)> = Vec::new();
    let mut closers: Vec<f64> = Vec::new();
    for group in groups.values() {
        let Some(start) = group
            .iter()
            .filter(|t| opens(t))
            .map(|t| start_of(t))
            .reduce(f64::min)
        else {
            if group.iter().any(|t| t.attr("SCTE35-IN").is_some()) {
                closers.extend(group.iter().map(|t| start_of(t)));
            }
            continue;
        };
        let end = group
            .iter()
            .find_map(|t| date(t, "END-DATE"))
            .or_else(|| {
                group
                    .iter()
                    .find_map(|t| t.seconds("DURATION"))
                    .map(|d| start + d * 1000.0)
            })
            .or_else(|| {
                group
                    .iter()
                    .filter(|t| t.attr("SCTE35-IN").is_some() && !opens(t))
                    .map(|t| start_of(t))
                    .find(|at| *at > start)
            })
            .or_else(|| {
                group
                    .iter()
                    .find_map(|t| t.seconds("PLANNED-DURATION"))
                    .map(|d| start + d * 1000.0)
            })
            .unwrap_or(f64::INFINITY);
        ranges.push((start, end));
    }
    // An `SCTE35-IN` under another ID closes the latest open range that started before it.
    closers.sort_by(f64::total_cmp);
    for at in closers {
        if let Some(range) = ranges
            .iter_mut()
            .filter(|(s, e)| e.is_infinite() && *s < at)
            .max_by(|a, b| a.0.total_cmp(&b.0))
        {
            range.1 = at;
        }
    }
    for (i, segment) in facts.iter().enumerate() {
        let mid = starts[i] + segment.duration * 500.0;
        out[i] = ranges.iter().any(|(s, e)| mid >= *s && mid < *e);
    }
    out
}

/// Segment start times in unix ms, extrapolated from the program date times by duration.
fn wall_clock_starts(facts: &[SegmentFacts]) -> Option<Vec<f64>> {
    let first = facts
        .iter()
        .position(|f| f.program_date_time_ms.is_some())?;
    let mut starts = vec![0.0; facts.len()];
    let mut at = 0.0;
    for (i, f) in facts.iter().enumerate().skip(first) {
        at = f.program_date_time_ms.map_or(at, |ms| ms as f64);
        starts[i] = at;
        at += f.duration * 1000.0;
    }
    for i in (0..first).rev() {
        starts[i] = starts[i + 1] - facts[i].duration * 1000.0;
    }
    Some(starts)
}

/// Segment start times in ms from the start of the playlist.
fn offsets_ms(facts: &[SegmentFacts]) -> Vec<f64> {
    let mut at = 0.0;
    facts
        .iter()
        .map(|f| {
            let start = at;
            at += f.duration * 1000.0;
            start
        })
        .collect()
}

/// Rule 4: discontinuity-bounded runs away from the content location.
fn location_breaks(
    facts: &[SegmentFacts],
    marked: &[bool],
    playlist_host: Option<&str>,
) -> Vec<bool> {
    let mut out = vec![false; facts.len()];
    if !facts.iter().any(|f| f.discontinuity) {
        return out;
    }
    let candidates: Vec<&SegmentFacts> = facts
        .iter()
        .zip(marked)
        .filter(|(f, m)| !**m && f.host.is_some())
        .map(|(f, _)| f)
        .collect();
    let weight = |f: &SegmentFacts| f.duration + 1e-3;
    let content_host =
        match playlist_host.filter(|h| candidates.iter().any(|f| f.host.as_deref() == Some(h))) {
            Some(host) => host,
            None => match heaviest(
                candidates
                    .iter()
                    .filter_map(|f| Some((f.host.as_deref()?, weight(f)))),
            ) {
                Some(host) => host,
                None => return out,
            },
        };
    let on_host: Vec<&&SegmentFacts> = candidates
        .iter()
        .filter(|f| f.host.as_deref() == Some(content_host))
        .collect();
    let total: f64 = on_host.iter().map(|f| weight(f)).sum();
    let content_dir = heaviest(
        on_host
            .iter()
            .filter_map(|f| Some((f.dir.as_deref()?, weight(f)))),
    )
    .filter(|dir| {
        let held: f64 = on_host
            .iter()
            .filter(|f| f.dir.as_deref() == Some(*dir))
            .map(|f| weight(f))
            .sum();
        held * 2.0 >= total
    });
    let at_content = |f: &SegmentFacts| {
        f.host.as_deref() == Some(content_host)
            && content_dir.is_none_or(|dir| f.dir.as_deref() == Some(dir))
    };
    let mut run_start = 0;
    for end in 1..=facts.len() {
        if end < facts.len() && !facts[end].discontinuity {
            continue;
        }
        if !facts[run_start..end].iter().any(at_content) {
            out[run_start..end].fill(true);
        }
        run_start = end;
    }
    out
}

/// The key with the largest summed weight; the first seen wins ties.
fn heaviest<'a>(items: impl Iterator<Item = (&'a str, f64)>) -> Option<&'a str> {
    let mut totals: Vec<(&str, f64)> = Vec::new();
    for (key, w) in items {
        match totals.iter_mut().find(|(k, _)| *k == key) {
            Some((_, sum)) => *sum += w,
            None => totals.push((key, w)),
        }
    }
    totals
        .into_iter()
        .fold(None, |best: Option<(&str, f64)>, (k, w)| match best {
            Some((_, bw)) if bw >= w => best,
            _ => Some((k, w)),
        })
        .map(|(k, _)| k)
}

/// Finds every `EXT-X-DATERANGE` line and the segment it precedes, counting URI lines the way
/// `m3u8-rs` does (a non-empty line not starting with `#`).
pub(super) fn scan_date_ranges(text: &[u8]) -> Vec<DateRangeTag> {
    let Ok(text) = std::str::from_utf8(text) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut segment = 0;
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("#EXT-X-DATERANGE:") {
            out.push(DateRangeTag {
                before_segment: segment,
                attrs: attributes(rest),
            });
        } else if !line.is_empty() && !line.starts_with('#') {
            segment += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cue_durations() {
        assert_eq!(cue_out_duration("30"), Some(30.0));
        assert_eq!(cue_out_duration("DURATION=15.5"), Some(15.5));
        assert_eq!(cue_out_duration(""), None);
        assert_eq!(
            cue_out_cont_remaining("ElapsedTime=10,Duration=30,SCTE35=/DA"),
            Some(20.0)
        );
        assert_eq!(cue_out_cont_remaining("12/30"), Some(18.0));
        assert_eq!(cue_out_cont_remaining("Duration=30"), None);
    }
}
