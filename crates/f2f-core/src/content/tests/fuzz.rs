//! No parser panics on garbage: random bytes and mutated real shapes give `Ok` or `Err`.

use proptest::prelude::*;

use super::canonicalizer;
use crate::content::{parse_master, parse_media, parse_mpd};

const BASE: &str = "https://o.example.org/live/ch1/index.m3u8";

const PLAYLIST: &str = "#EXTM3U
#EXT-X-TARGETDURATION:6
#EXT-X-MEDIA-SEQUENCE:100
#EXT-X-PROGRAM-DATE-TIME:2024-01-01T12:00:00.000Z
#EXTINF:6.006,
c100.ts
#EXT-X-DISCONTINUITY
#EXT-X-CUE-OUT:12.012
#EXT-X-DATERANGE:ID=\"a\",START-DATE=\"2024-01-01T12:00:06Z\",DURATION=12,SCTE35-OUT=0xFC
#EXTINF:6.006,
https://ads.example.net/ad/0.ts
#EXT-X-CUE-OUT-CONT:ElapsedTime=6.006,Duration=12.012
#EXTINF:6.006,
https://ads.example.net/ad/1.ts
#EXT-X-DISCONTINUITY
#EXT-X-CUE-IN
#EXTINF:6.006,
c103.ts
";

const MPD: &str = r#"<?xml version="1.0"?>
<MPD type="dynamic" availabilityStartTime="2024-01-01T00:00:00Z" timeShiftBufferDepth="PT30S" minimumUpdatePeriod="PT2S">
  <Period id="p0" start="PT0S">
    <EventStream schemeIdUri="urn:scte:scte35:2013:xml" timescale="90000">
      <Event presentationTime="900000" duration="2700000" />
    </EventStream>
    <AdaptationSet mimeType="video/mp4">
      <SegmentTemplate timescale="90000" media="v/$RepresentationID$/$Time$.m4s">
        <SegmentTimeline><S t="0" d="180000" r="-1"/></SegmentTimeline>
      </SegmentTemplate>
      <Representation id="720p" bandwidth="3000000"/>
    </AdaptationSet>
    <AdaptationSet mimeType="audio/mp4">
      <SegmentTemplate timescale="48000" duration="96000" startNumber="1" media="a/$Number%05d$.m4s"/>
      <Representation id="aac" bandwidth="128000"/>
    </AdaptationSet>
  </Period>
</MPD>"#;

/// 2024-01-01T00:01:00Z.
const NOW_MS: u64 = 1_704_067_260_000;

#[test]
fn seeds_parse() {
    assert!(parse_media(BASE, PLAYLIST.as_bytes()).is_ok());
    assert!(parse_mpd("https://o.example.org/live/x.mpd", MPD, NOW_MS).is_ok());
}

/// Applies `(position, byte, action)` edits to `seed`.
fn mutate(seed: &str, edits: &[(usize, u8, u8)]) -> Vec<u8> {
    let mut bytes = seed.as_bytes().to_vec();
    for &(at, byte, action) in edits {
        if bytes.is_empty() {
            break;
        }
        let at = at % bytes.len();
        match action % 4 {
            0 => bytes[at] = byte,
            1 => bytes.insert(at, byte),
            2 => {
                bytes.remove(at);
            }
            _ => bytes.truncate(at),
        }
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = parse_master(BASE, &bytes);
        let _ = parse_media(BASE, &bytes);
        let _ = parse_mpd(BASE, &String::from_utf8_lossy(&bytes), NOW_MS);
        let _ = canonicalizer().canonical_url(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn prefixed_random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
        let mut playlist = b"#EXTM3U\n".to_vec();
        playlist.extend_from_slice(&bytes);
        let _ = parse_master(BASE, &playlist);
        let _ = parse_media(BASE, &playlist);
        let mut url = b"https://".to_vec();
        url.extend_from_slice(&bytes);
        let _ = canonicalizer().canonical_url(&String::from_utf8_lossy(&url));
    }

    #[test]
    fn mutated_seeds_never_panic(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..8),
        now in any::<u64>(),
    ) {
        let playlist = mutate(PLAYLIST, &edits);
        let _ = parse_media(BASE, &playlist);
        let _ = parse_master(BASE, &playlist);
        let mpd = mutate(MPD, &edits);
        let _ = parse_mpd(BASE, &String::from_utf8_lossy(&mpd), now);
    }

    #[test]
    fn random_urls_never_panic(
        path in "[a-zA-Z0-9/_.;=()~%-]{0,120}",
        query in "[a-zA-Z0-9&=_.~%-]{0,120}",
    ) {
        let _ = canonicalizer().canonical_url(&format!("https://edge-1.cdn.example.com/{path}?{query}"));
    }
}

#[test]
fn hostile_numbers_are_errors_not_panics() {
    let base = "https://o.example.org/x.mpd";
    // dash-mpd-core would overflow summing this duration.
    let huge_duration = MPD.replace("PT30S", "P99999999999999999999Y");
    assert!(parse_mpd(base, &huge_duration, NOW_MS).is_err());
    // Timelines whose times overflow u64.
    let overflow = MPD.replace(
        r#"<S t="0" d="180000" r="-1"/>"#,
        r#"<S t="18446744073709551000" d="1000" r="5"/>"#,
    );
    assert!(parse_mpd(base, &overflow, NOW_MS).is_err());
    // A repeat count of 2^63: bounded output, no hang.
    let many = MPD
        .replace(r#"r="-1""#, r#"r="9223372036854775000""#)
        .replace(r#"d="180000""#, r#"d="1""#);
    if let Ok(manifest) = parse_mpd(base, &many, NOW_MS) {
        assert!(
            manifest
                .representations
                .iter()
                .all(|r| r.segments.len() <= crate::content::MAX_LISTED_SEGMENTS)
        );
    }
    // Far-future and far-past clocks.
    let _ = parse_mpd(base, MPD, u64::MAX);
    assert!(parse_mpd(base, MPD, 0).is_ok());
    let playlist = PLAYLIST.replace("MEDIA-SEQUENCE:100", "MEDIA-SEQUENCE:18446744073709551615");
    assert!(parse_media(BASE, playlist.as_bytes()).is_err());
}
