//! SCTE-35 event streams: which period times are announced as ad breaks.

use dash_mpd_core::{Event, Period};

const SCTE35_SCHEMES: &[&str] = &[
    "urn:scte:scte35:2013:xml",
    "urn:scte:scte35:2014:xml+bin",
    "urn:scte:scte35:2013:bin",
];

/// SCTE-35 segmentation types that open an ad break: break start (0x22), provider/distributor
/// advertisement start (0x30, 0x32), placement opportunity start (0x34, 0x36), overlay
/// placement opportunity start (0x38, 0x3A), ad block start (0x44, 0x46).
const AD_START_TYPES: &[u8] = &[0x22, 0x30, 0x32, 0x34, 0x36, 0x38, 0x3A, 0x44, 0x46];

/// Ad windows announced by a period's SCTE-35 event streams, seconds from the period start.
pub(super) fn scte35_windows(period: &Period) -> Vec<(f64, f64)> {
    let mut windows = Vec::new();
    for stream in &period.event_streams {
        if !SCTE35_SCHEMES.contains(&stream.schemeIdUri.trim()) {
            continue;
        }
        let timescale = stream.timescale.unwrap_or(1);
        if timescale == 0 {
            continue;
        }
        let timescale = timescale as f64;
        let offset = stream.presentationTimeOffset.unwrap_or(0) as f64;
        for event in &stream.event {
            let Some(break_ticks_90k) = ad_break(event) else {
                continue;
            };
            let start = (event.presentationTime.unwrap_or(0) as f64 - offset) / timescale;
            let length = event
                .duration
                .map(|d| d as f64 / timescale)
                .or(break_ticks_90k.map(|d| d as f64 / 90_000.0))
                .filter(|l| *l > 0.0)
                .unwrap_or(f64::INFINITY);
            windows.push((start, start + length));
        }
    }
    windows
}

/// `None` when the event does not open an ad break; else the break duration in 90 kHz ticks,
/// if the splice says.
fn ad_break(event: &Event) -> Option<Option<u64>> {
    let sections = event.splice_info_section.iter().chain(
        event
            .signal
            .iter()
            .filter_map(|s| s.splice_info_section.as_ref()),
    );
    for section in sections {
        if let Some(insert) = &section.splice_insert {
            if insert.splice_event_cancel_indicator == Some(true)
                || insert.out_of_network_indicator == Some(false)
            {
                return None;
            }
            return Some(insert.break_duration.as_ref().map(|b| b.duration));
        }
        if let Some(descriptor) = &section.segmentation_descriptor {
            if descriptor.segmentation_event_cancel_indicator == Some(true) {
                return None;
            }
            return match descriptor.segmentation_type_id {
                Some(kind) if !AD_START_TYPES.contains(&kind) => None,
                _ => Some(descriptor.segmentation_duration),
            };
        }
    }
    // Binary or empty payload: not decoded; an ad start of unknown length.
    Some(None)
}
