//! Segment templates: inheritance, the segments a template yields at a given time, and
//! identifier substitution.

use dash_mpd_core::SegmentTemplate;

use super::{Clock, MAX_LISTED_SEGMENTS, Span};
use crate::content::ContentError;

/// One segment before its URL is built.
pub(super) struct Timing {
    pub(super) number: u64,
    pub(super) time: u64,
    /// Seconds from the period start.
    pub(super) start_secs: f64,
    pub(super) duration_secs: f64,
}

/// A `SegmentTemplate` after inheritance.
pub(super) struct Template<'a> {
    pub(super) media: Option<&'a str>,
    pub(super) initialization: Option<&'a str>,
    pub(super) start_number: u64,
    pub(super) end_number: Option<u64>,
    pub(super) duration: Option<f64>,
    pub(super) timescale: u64,
    pub(super) presentation_time_offset: u64,
    pub(super) availability_time_offset: f64,
    pub(super) timeline: Option<&'a dash_mpd_core::SegmentTimeline>,
}

impl<'a> Template<'a> {
    /// Merges the levels, innermost first; `None` when no level has a template.
    pub(super) fn merge(levels: [Option<&'a SegmentTemplate>; 3]) -> Option<Self> {
        let levels: Vec<&SegmentTemplate> = levels.into_iter().flatten().collect();
        if levels.is_empty() {
            return None;
        }
        fn pick<'t, T>(
            levels: &[&'t SegmentTemplate],
            f: impl Fn(&'t SegmentTemplate) -> Option<T>,
        ) -> Option<T> {
            levels.iter().find_map(|t| f(t))
        }
        Some(Self {
            media: pick(&levels, |t| t.media.as_deref()),
            initialization: pick(&levels, |t| {
                t.initialization
                    .as_deref()
                    .or_else(|| t.Initialization.as_ref()?.sourceURL.as_deref())
            }),
            start_number: pick(&levels, |t| t.startNumber).unwrap_or(1),
            end_number: pick(&levels, |t| t.endNumber),
            duration: pick(&levels, |t| t.duration),
            timescale: pick(&levels, |t| t.timescale).unwrap_or(1),
            presentation_time_offset: pick(&levels, |t| t.presentationTimeOffset).unwrap_or(0),
            availability_time_offset: pick(&levels, |t| t.availabilityTimeOffset)
                .filter(|o| o.is_finite())
                .unwrap_or(0.0),
            timeline: pick(&levels, |t| t.SegmentTimeline.as_ref()),
        })
    }

    fn timescale(&self) -> Result<f64, ContentError> {
        if self.timescale == 0 {
            return Err(ContentError::MalformedMpd(
                "SegmentTemplate@timescale is 0".into(),
            ));
        }
        Ok(self.timescale as f64)
    }
}

/// `$Number$` with a fixed `@duration`.
pub(super) fn number_timings(
    template: &Template<'_>,
    span: Span,
    clock: &Clock,
) -> Result<Vec<Timing>, ContentError> {
    let timescale = template.timescale()?;
    let ticks = template
        .duration
        .filter(|d| d.is_finite() && *d > 0.0)
        .ok_or_else(|| {
            ContentError::MalformedMpd("$Number$ template without a positive @duration".into())
        })?;
    let seg = ticks / timescale;
    let period_len = span.end - span.start;
    let mut in_period = if period_len.is_finite() {
        (period_len / seg - 1e-9).ceil().max(0.0) as u64
    } else {
        u64::MAX
    };
    if let Some(end) = template.end_number {
        in_period = in_period.min(end.saturating_sub(template.start_number).saturating_add(1));
    }
    let max = MAX_LISTED_SEGMENTS as u64;
    let (first, end) = if clock.dynamic {
        let ast = clock.availability_start_ms.ok_or_else(|| {
            ContentError::MalformedMpd("dynamic MPD without availabilityStartTime".into())
        })?;
        let elapsed = (clock.now_ms.saturating_sub(ast)) as f64 / 1000.0 - span.start;
        let end = (((elapsed + template.availability_time_offset) / seg)
            .floor()
            .max(0.0) as u64)
            .min(in_period);
        let oldest = clock.time_shift_secs.map_or(0, |depth| {
            ((elapsed - depth) / seg - 1.0).ceil().max(0.0) as u64
        });
        (oldest.max(end.saturating_sub(max)), end)
    } else {
        if in_period == u64::MAX {
            return Err(ContentError::MalformedMpd(
                "static $Number$ template without a period or presentation duration".into(),
            ));
        }
        (0, in_period.min(max))
    };
    (first..end)
        .map(|k| {
            let number = template.start_number.checked_add(k).ok_or_else(overflow)?;
            let time = template
                .presentation_time_offset
                .saturating_add((k as f64 * ticks) as u64);
            Ok(Timing {
                number,
                time,
                start_secs: k as f64 * seg,
                duration_secs: seg,
            })
        })
        .collect()
}

/// `SegmentTimeline`: explicit `S` runs.
pub(super) fn timeline_timings(
    template: &Template<'_>,
    timeline: &dash_mpd_core::SegmentTimeline,
    span: Span,
    clock: &Clock,
) -> Result<Vec<Timing>, ContentError> {
    let timescale = template.timescale()?;
    let pto = template.presentation_time_offset;
    // How far an open-ended run (`r="-1"` on the last S) may go, in ticks.
    let period_end_ticks = (span.end - span.start) * timescale + pto as f64;
    let now_ticks = match (clock.dynamic, clock.availability_start_ms) {
        (true, Some(ast)) => {
            let elapsed = clock.now_ms.saturating_sub(ast) as f64 / 1000.0 - span.start;
            (elapsed + template.availability_time_offset) * timescale + pto as f64
        }
        _ => f64::INFINITY,
    };
    let mut runs: Vec<(u64, u64, u64)> = Vec::with_capacity(timeline.segments.len());
    let mut next_t: Option<u64> = None;
    for (i, s) in timeline.segments.iter().enumerate() {
        if s.d == 0 {
            return Err(ContentError::MalformedMpd(
                "SegmentTimeline S@d is 0".into(),
            ));
        }
        let t = s.t.or(next_t).unwrap_or(0);
        let count = match s.r.unwrap_or(0) {
            r if r >= 0 => u64::try_from(r).unwrap_or(u64::MAX).saturating_add(1),
            _ => match timeline.segments.get(i + 1).and_then(|n| n.t) {
                Some(limit) => limit.saturating_sub(t).div_ceil(s.d),
                None => {
                    let by_period = ((period_end_ticks - t as f64) / s.d as f64 - 1e-9).ceil();
                    let by_now = ((now_ticks - t as f64) / s.d as f64).floor();
                    let count = by_period.min(by_now);
                    if !count.is_finite() {
                        return Err(ContentError::MalformedMpd(
                            "open-ended S@r=\"-1\" with no period end and no clock".into(),
                        ));
                    }
                    count.max(0.0) as u64
                }
            },
        };
        runs.push((t, s.d, count));
        next_t = Some(
            s.d.checked_mul(count)
                .and_then(|len| t.checked_add(len))
                .ok_or_else(overflow)?,
        );
    }
    let total = runs.iter().fold(0u64, |n, r| n.saturating_add(r.2));
    let max = MAX_LISTED_SEGMENTS as u64;
    let (skip, take) = if clock.dynamic {
        (total.saturating_sub(max), max)
    } else {
        (0, max)
    };
    let oldest_end_ticks = match (
        clock.dynamic,
        clock.availability_start_ms,
        clock.time_shift_secs,
    ) {
        (true, Some(ast), Some(depth)) => {
            let elapsed = clock.now_ms.saturating_sub(ast) as f64 / 1000.0 - span.start;
            (elapsed - depth) * timescale + pto as f64
        }
        _ => f64::NEG_INFINITY,
    };
    let mut out = Vec::new();
    let mut index = 0u64;
    for (t, d, count) in runs {
        if index.saturating_add(count) <= skip {
            index = index.saturating_add(count);
            continue;
        }
        let from = skip.saturating_sub(index);
        for k in from..count {
            if out.len() as u64 >= take {
                break;
            }
            let time = t + d * k; // t + d * count was checked above.
            let number = template
                .start_number
                .checked_add(index + k)
                .ok_or_else(overflow)?;
            if ((time + d) as f64) < oldest_end_ticks {
                continue;
            }
            out.push(Timing {
                number,
                time,
                start_secs: (time as f64 - pto as f64) / timescale,
                duration_secs: d as f64 / timescale,
            });
        }
        index = index.saturating_add(count);
    }
    Ok(out)
}

fn overflow() -> ContentError {
    ContentError::MalformedMpd("segment number or time overflows".into())
}

/// Template variables of one representation.
pub(super) struct Vars<'a> {
    pub(super) id: Option<&'a str>,
    pub(super) bandwidth: Option<u64>,
}

/// Fills a `media`/`initialization` template. `$Number$` and `$Time$` stay as written when
/// `number`/`time` is `None` (for the rendition URL).
pub(super) fn expand(
    template: &str,
    vars: &Vars<'_>,
    number: Option<u64>,
    time: Option<u64>,
) -> Result<String, ContentError> {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(open) = rest.find('$') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after.find('$').ok_or_else(|| {
            ContentError::MalformedMpd("unterminated $ in segment template".into())
        })?;
        let ident = &after[..close];
        rest = &after[close + 1..];
        if ident.is_empty() {
            out.push('$');
            continue;
        }
        let (name, format) = match ident.split_once('%') {
            Some((name, format)) => (name, Some(format)),
            None => (ident, None),
        };
        let value = match name {
            "RepresentationID" => {
                if format.is_some() {
                    return Err(ContentError::MalformedMpd(
                        "format on $RepresentationID$".into(),
                    ));
                }
                let id = vars.id.ok_or_else(|| {
                    ContentError::MalformedMpd(
                        "$RepresentationID$ without Representation@id".into(),
                    )
                })?;
                out.push_str(id);
                continue;
            }
            "Bandwidth" => Some(vars.bandwidth.ok_or_else(|| {
                ContentError::MalformedMpd("$Bandwidth$ without Representation@bandwidth".into())
            })?),
            "Number" => number,
            "Time" => time,
            other => {
                return Err(ContentError::Unsupported(format!(
                    "${other}$ in segment template"
                )));
            }
        };
        let width = format.map(format_width).transpose()?.unwrap_or(0);
        match value {
            Some(v) => out.push_str(&format!("{v:0width$}")),
            None => {
                out.push('$');
                out.push_str(ident);
                out.push('$');
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// `0<width>d` (the part after `%`), as in `$Number%05d$`.
fn format_width(format: &str) -> Result<usize, ContentError> {
    let digits = format
        .strip_suffix('d')
        .ok_or_else(|| ContentError::MalformedMpd(format!("template format %{format}")))?;
    if digits.is_empty() {
        return Ok(0);
    }
    digits
        .parse::<usize>()
        .ok()
        .filter(|w| *w <= 32)
        .ok_or_else(|| ContentError::MalformedMpd(format!("template format %{format}")))
}
