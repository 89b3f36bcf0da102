//! DASH MPDs: available segments at a given time, templates, base URLs, ads.

use super::canonicalizer;
use crate::content::{ContentError, DashManifest, DashRepresentation, parse_mpd};
use crate::id::SegmentPosition;

/// 2024-01-01T00:00:00Z in unix milliseconds.
const JAN_1_2024_MS: u64 = 1_704_067_200_000;

fn parse(base: &str, text: &str, now_ms: u64) -> DashManifest {
    parse_mpd(base, text, now_ms).expect("valid MPD")
}

fn rep<'a>(manifest: &'a DashManifest, id: &str) -> &'a DashRepresentation {
    manifest
        .representations
        .iter()
        .find(|r| r.id == id)
        .expect("representation present")
}

fn positions(rep: &DashRepresentation) -> Vec<SegmentPosition> {
    rep.segments.iter().map(|s| s.position).collect()
}

/// `c` content, `A` ad, one letter per segment.
fn ad_pattern(rep: &DashRepresentation) -> String {
    rep.segments
        .iter()
        .map(|s| if s.ad { 'A' } else { 'c' })
        .collect()
}

/// DASH-IF live simulator / Wowza / Unified Origin `$Number$` shape: a fixed-duration template
/// on the adaptation set, BaseURL at MPD, Period and Representation level.
const LIVE_NUMBER: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" profiles="urn:mpeg:dash:profile:isoff-live:2011" type="dynamic"
     availabilityStartTime="2024-01-01T00:00:00Z" publishTime="2024-01-01T00:00:00Z"
     minimumUpdatePeriod="PT2S" timeShiftBufferDepth="PT20S" minBufferTime="PT4S">
  <BaseURL>https://edge-4.cdn.example.com/live/ch1/</BaseURL>
  <Period id="1" start="PT0S">
    <BaseURL>dash/</BaseURL>
    <AdaptationSet mimeType="video/mp4" segmentAlignment="true" startWithSAP="1">
      <SegmentTemplate timescale="1000" duration="4000" startNumber="1"
                       media="$RepresentationID$/seg-$Number%05d$.m4s?bw=$Bandwidth$"
                       initialization="$RepresentationID$/init.mp4"/>
      <Representation id="v720" bandwidth="3000000" width="1280" height="720" codecs="avc1.64001f"/>
      <Representation id="v1080" bandwidth="6000000" width="1920" height="1080" codecs="avc1.640028">
        <BaseURL>hi/</BaseURL>
      </Representation>
    </AdaptationSet>
  </Period>
</MPD>"#;

#[test]
fn live_number_template_window() {
    let base = "https://edge-4.cdn.example.com/live/ch1/manifest.mpd";
    // 61.5 s after availabilityStartTime: segments 1..=15 are complete, 20 s of time shift keep
    // those ending at 44 s or later: numbers 11..=15.
    let manifest = parse(base, LIVE_NUMBER, JAN_1_2024_MS + 61_500);
    assert!(manifest.dynamic);
    assert_eq!(manifest.minimum_update_period_ms, Some(2000));
    let v720 = rep(&manifest, "v720");
    assert_eq!(
        positions(v720),
        (11..=15).map(SegmentPosition::Sequence).collect::<Vec<_>>()
    );
    assert_eq!(
        v720.segments[0].uri,
        "https://edge-4.cdn.example.com/live/ch1/dash/v720/seg-00011.m4s?bw=3000000"
    );
    assert_eq!(
        v720.rendition_url,
        "https://edge-4.cdn.example.com/live/ch1/dash/v720/seg-$Number%05d$.m4s?bw=3000000"
    );
    assert_eq!(
        v720.initialization.as_deref(),
        Some("https://edge-4.cdn.example.com/live/ch1/dash/v720/init.mp4")
    );
    assert_eq!(v720.content_type.as_deref(), Some("video"));
    assert_eq!(v720.resolution, Some((1280, 720)));
    assert_eq!(v720.bandwidth, Some(3_000_000));
    assert!((v720.segments[0].duration_secs - 4.0).abs() < 1e-6);
    assert!(v720.segments.iter().all(|s| s.shareable && !s.ad));
    let v1080 = rep(&manifest, "v1080");
    assert_eq!(
        v1080.segments[4].uri,
        "https://edge-4.cdn.example.com/live/ch1/dash/hi/v1080/seg-00015.m4s?bw=6000000"
    );

    // Before the stream starts nothing is available.
    let early = parse(base, LIVE_NUMBER, JAN_1_2024_MS - 10_000);
    assert!(early.representations.iter().all(|r| r.segments.is_empty()));
}

#[test]
fn viewers_on_different_shards_share_renditions_and_segments() {
    // Akamai-style path token in the BaseURL, different edge shards per viewer.
    let viewer = |shard: u8, token: &str| {
        LIVE_NUMBER.replace(
            "https://edge-4.cdn.example.com/live/ch1/",
            &format!(
                "https://edge-{shard}.cdn.example.com/hdntl=exp={token}~hmac={token}/live/ch1/"
            ),
        )
    };
    let c = canonicalizer();
    let now = JAN_1_2024_MS + 61_500;
    let a = parse(
        "https://cdn.example.com/live/ch1/manifest.mpd",
        &viewer(4, "1700000000"),
        now,
    );
    let b = parse(
        "https://cdn.example.com/live/ch1/manifest.mpd",
        &viewer(9, "1799999999"),
        now,
    );
    let (ra, rb) = (rep(&a, "v720"), rep(&b, "v720"));
    assert_ne!(ra.rendition_url, rb.rendition_url);
    assert_eq!(
        c.rendition_id(&ra.rendition_url).ok(),
        c.rendition_id(&rb.rendition_url).ok()
    );
    assert_ne!(
        c.rendition_id(&ra.rendition_url).ok(),
        c.rendition_id(&rep(&a, "v1080").rendition_url).ok()
    );
    for (sa, sb) in ra.segments.iter().zip(&rb.segments) {
        assert_eq!(c.canonical_url(&sa.uri).ok(), c.canonical_url(&sb.uri).ok());
    }
}

/// Unified Origin live: `$Time$` timeline on an epoch-based availabilityStartTime.
const LIVE_TIME: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="dynamic" availabilityStartTime="1970-01-01T00:00:00Z"
     timeShiftBufferDepth="PT1M" minimumUpdatePeriod="PT2S" profiles="urn:mpeg:dash:profile:isoff-live:2011">
  <Period id="1" start="PT0S">
    <AdaptationSet contentType="video" mimeType="video/mp4">
      <SegmentTemplate timescale="90000" initialization="ch1-$RepresentationID$.dash" media="ch1-$RepresentationID$-$Time$.dash">
        <SegmentTimeline>
          <S t="153366048000000" d="180000" r="2"/>
          <S d="179999"/>
        </SegmentTimeline>
      </SegmentTemplate>
      <Representation id="video=800000" bandwidth="800000" codecs="avc1.4D401F"/>
    </AdaptationSet>
  </Period>
</MPD>"#;

#[test]
fn live_time_timeline() {
    let base = "https://live.unified-streaming.com/ch1/ch1.isml/.mpd";
    let t0: u64 = 153_366_048_000_000; // 2024-01-01T00:00:00Z at 90 kHz
    let manifest = parse(base, LIVE_TIME, JAN_1_2024_MS + 10_000);
    let video = rep(&manifest, "video=800000");
    assert_eq!(
        positions(video),
        [t0, t0 + 180_000, t0 + 360_000, t0 + 540_000].map(SegmentPosition::Time)
    );
    assert_eq!(
        video.segments[1].uri,
        format!(
            "https://live.unified-streaming.com/ch1/ch1.isml/ch1-video=800000-{}.dash",
            t0 + 180_000
        )
    );
    assert_eq!(
        video.rendition_url,
        "https://live.unified-streaming.com/ch1/ch1.isml/ch1-video=800000-$Time$.dash"
    );

    // 65 s later the time-shift buffer (60 s) has dropped the segments ending before 5 s.
    let later = parse(base, LIVE_TIME, JAN_1_2024_MS + 65_000);
    assert_eq!(
        positions(rep(&later, "video=800000")),
        [t0 + 360_000, t0 + 540_000].map(SegmentPosition::Time)
    );
}

/// Open-ended repeat (`r="-1"`), bounded by the clock (DASH-IF IOP live profile).
#[test]
fn open_ended_repeat_stops_at_now() {
    let text = r#"<MPD type="dynamic" availabilityStartTime="2024-01-01T00:00:00Z">
  <Period start="PT0S">
    <AdaptationSet mimeType="audio/mp4">
      <SegmentTemplate timescale="1000" media="a/$Time$.m4s">
        <SegmentTimeline><S t="0" d="2000" r="-1"/></SegmentTimeline>
      </SegmentTemplate>
      <Representation id="aac" bandwidth="128000"/>
    </AdaptationSet>
  </Period>
</MPD>"#;
    let manifest = parse(
        "https://o.example.org/live/m.mpd",
        text,
        JAN_1_2024_MS + 9_500,
    );
    assert_eq!(
        positions(rep(&manifest, "aac")),
        [0, 2000, 4000, 6000].map(SegmentPosition::Time)
    );
}

/// AWS MediaPackage multi-period output: `$Number$` timelines, and a new period at each SCTE-35
/// marker carrying the splice in an EventStream (out-of-network: an ad avail).
const MEDIAPACKAGE: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" xmlns:scte35="http://www.scte.org/schemas/35/2016" type="static" mediaPresentationDuration="PT24S">
  <Period start="PT0.000S" id="0" duration="PT12S">
    <AdaptationSet mimeType="video/mp4" segmentAlignment="true" startWithSAP="1">
      <Representation id="1" width="960" height="540" bandwidth="1000000" codecs="avc1.4D401F">
        <SegmentTemplate timescale="30000" media="index_video_1_0_$Number$.mp4?m=1528413503" initialization="index_video_1_0_init.mp4?m=1528413503" startNumber="6" presentationTimeOffset="0">
          <SegmentTimeline><S t="0" d="60060" r="5"/></SegmentTimeline>
        </SegmentTemplate>
      </Representation>
    </AdaptationSet>
  </Period>
  <Period start="PT12S" id="21">
    <EventStream timescale="90000" schemeIdUri="urn:scte:scte35:2013:xml">
      <Event>
        <scte35:SpliceInfoSection protocolVersion="0" ptsAdjustment="183003" tier="4095">
          <scte35:SpliceInsert spliceEventId="1000" spliceEventCancelIndicator="false" outOfNetworkIndicator="true" spliceImmediateFlag="false" uniqueProgramId="7" availNum="1" availsExpected="4">
            <scte35:Program><scte35:SpliceTime ptsTime="3783780"/></scte35:Program>
          </scte35:SpliceInsert>
        </scte35:SpliceInfoSection>
      </Event>
    </EventStream>
    <AdaptationSet mimeType="video/mp4" segmentAlignment="true" startWithSAP="1">
      <Representation id="1" width="960" height="540" bandwidth="1000000" codecs="avc1.4D401F">
        <SegmentTemplate timescale="30000" media="index_video_1_0_$Number$.mp4?m=1528413503" initialization="index_video_1_0_init.mp4?m=1528413503" startNumber="12" presentationTimeOffset="360360">
          <SegmentTimeline><S t="360360" d="60060" r="2"/></SegmentTimeline>
        </SegmentTemplate>
      </Representation>
    </AdaptationSet>
  </Period>
</MPD>"#;

#[test]
fn mediapackage_scte35_period_is_an_ad() {
    let manifest = parse(
        "https://abc.mediapackage.us-east-1.amazonaws.com/out/v1/5f3b/index.mpd",
        MEDIAPACKAGE,
        JAN_1_2024_MS,
    );
    assert!(!manifest.dynamic);
    assert_eq!(
        manifest.representations.len(),
        1,
        "same template in both periods: one rendition"
    );
    let video = &manifest.representations[0];
    assert_eq!(
        positions(video),
        (6..=14).map(SegmentPosition::Sequence).collect::<Vec<_>>()
    );
    assert_eq!(ad_pattern(video), "ccccccAAA");
    assert!(video.segments.iter().all(|s| s.shareable != s.ad));
}

/// Telestream / SCTE 214 single-period signalling: time_signal with segmentation descriptors.
/// A placement-opportunity start (0x34) of 30 s opens a window; its end (0x35) and a
/// return-to-network splice do not.
#[test]
fn scte35_time_signal_windows() {
    let text = r#"<MPD xmlns:scte35="http://www.scte.org/schemas/35/2016" type="static" mediaPresentationDuration="PT60S">
  <Period start="PT0S" duration="PT60S">
    <EventStream timescale="90000" schemeIdUri="urn:scte:scte35:2013:xml">
      <Event presentationTime="900000">
        <scte35:SpliceInfoSection>
          <scte35:TimeSignal/>
          <scte35:SegmentationDescriptor spliceEventId="1" segmentationTypeId="52" segmentationDuration="2700000" segmentationUpidType="9" segmentationUpid="1" segmentNum="1" segmentsExpected="1"/>
        </scte35:SpliceInfoSection>
      </Event>
      <Event presentationTime="3600000">
        <scte35:SpliceInfoSection>
          <scte35:TimeSignal/>
          <scte35:SegmentationDescriptor spliceEventId="1" segmentationTypeId="53" segmentationUpidType="9" segmentationUpid="2" segmentNum="1" segmentsExpected="1"/>
        </scte35:SpliceInfoSection>
      </Event>
      <Event presentationTime="4500000">
        <scte35:SpliceInfoSection>
          <scte35:SpliceInsert spliceEventId="2" outOfNetworkIndicator="false"/>
        </scte35:SpliceInfoSection>
      </Event>
    </EventStream>
    <AdaptationSet mimeType="video/mp4">
      <SegmentTemplate timescale="1" duration="5" startNumber="0" media="v_$Number$.m4s"/>
      <Representation id="v" bandwidth="1000000"/>
    </AdaptationSet>
  </Period>
</MPD>"#;
    let manifest = parse("https://o.example.org/vod/m.mpd", text, JAN_1_2024_MS);
    assert_eq!(ad_pattern(rep(&manifest, "v")), "ccAAAAAAcccc");
}

/// Google DAI stitched into a multi-period MPD (Telenet SSAI shape): content periods with
/// absolute media templates on the content CDN, ad periods with a BaseURL elsewhere.
fn dai_shaped(ad_base: &str) -> String {
    let content = |id: &str, start_number: u32, pto: u32| {
        format!(
            r#"<Period id="{id}" duration="PT10S">
    <AdaptationSet mimeType="video/mp4">
      <SegmentTemplate timescale="1000" duration="2000" startNumber="{start_number}" presentationTimeOffset="{pto}"
        media="https://vod.cdn.example.com/geo/SSAI/show/S4/E8/video/720/segment_$Number$.m4s"
        initialization="https://vod.cdn.example.com/geo/SSAI/show/S4/E8/video/720/init.mp4"/>
      <Representation id="720" bandwidth="2000000"/>
    </AdaptationSet>
  </Period>"#
        )
    };
    format!(
        r#"<MPD type="static" mediaPresentationDuration="PT30S">
  <BaseURL>https://vod.cdn.example.com/geo/SSAI/show/S4/E8/</BaseURL>
  {}
  <Period id="mid-roll-1-ad-1" duration="PT10S">
    <BaseURL>{ad_base}</BaseURL>
    <AdaptationSet mimeType="video/mp4">
      <SegmentTemplate timescale="90000" duration="180000" startNumber="1" media="$Number$.mp4?orig=https%3A%2F%2Fr9---sn-x.googlevideo.com%2Fvideoplayback%3Fid%3Dd84b"/>
      <Representation id="ad-720" bandwidth="2000000"/>
    </AdaptationSet>
  </Period>
  {}
</MPD>"#,
        content("content-1", 0, 0),
        content("content-2", 5, 10000)
    )
}

#[test]
fn dai_ad_period_on_known_and_unknown_hosts() {
    for ad_base in [
        "https://dai.google.com/segments/redirect/c/",
        "https://ad-cdn.example.net/creatives/123/",
    ] {
        let manifest = parse(
            "https://vod.cdn.example.com/geo/SSAI/show/S4/E8/manifest.mpd",
            &dai_shaped(ad_base),
            JAN_1_2024_MS,
        );
        assert_eq!(manifest.representations.len(), 2, "{ad_base}");
        let content = rep(&manifest, "720");
        assert_eq!(
            positions(content),
            (0..10).map(SegmentPosition::Sequence).collect::<Vec<_>>()
        );
        assert_eq!(ad_pattern(content), "cccccccccc", "{ad_base}");
        let ad = rep(&manifest, "ad-720");
        assert_eq!(ad_pattern(ad), "AAAAA", "{ad_base}");
        assert!(ad.segments.iter().all(|s| !s.shareable));
    }
}

/// Unified Origin + AWS MediaTailor AVOD: the adaptation set's template holds the timescale and
/// timeline, the representation's the media name; ad periods sit on MediaTailor's host.
#[test]
fn mediatailor_periods_and_template_inheritance() {
    let text = r#"<MPD type="static" mediaPresentationDuration="PT12S">
  <BaseURL>https://demo.unified-streaming.com/k8s/avod/stable/remix/avod.mp4/</BaseURL>
  <Period duration="PT6S" id="1_PT0S" start="PT0S">
    <BaseURL>dash/</BaseURL>
    <EventStream schemeIdUri="urn:scte:scte35:2014:xml+bin" timescale="1"></EventStream>
    <AdaptationSet contentType="video" mimeType="video/mp4">
      <SegmentTemplate timescale="90000" presentationTimeOffset="0" initialization="avod-$RepresentationID$.dash" media="avod-$RepresentationID$-$Time$.dash">
        <SegmentTimeline><S t="0" d="270000" r="1"/></SegmentTimeline>
      </SegmentTemplate>
      <Representation bandwidth="1000000" id="video=1000000"/>
    </AdaptationSet>
  </Period>
  <Period duration="PT6S" id="1_PT6S_0" start="PT6S">
    <BaseURL>https://f83c5e82d5.mediatailor.eu-west-1.amazonaws.com/v1/dashsegment/cf64/usp-demo/c37f9c60-39fb-4937-8765-cf23dc2f64b5/1_PT6S/1_PT6S_0/</BaseURL>
    <AdaptationSet mimeType="video/mp4">
      <SegmentTemplate timescale="90000">
        <SegmentTimeline><S d="360000" t="0"/><S d="180000" t="360000"/></SegmentTimeline>
      </SegmentTemplate>
      <Representation bandwidth="4016000" codecs="avc1.640028" height="1080" id="1" width="1920">
        <SegmentTemplate initialization="asset_1080_4_2_init.mp4" media="asset_1080_4_2_$Time$.mp4"/>
      </Representation>
    </AdaptationSet>
  </Period>
</MPD>"#;
    let manifest = parse(
        "https://demo.unified-streaming.com/k8s/avod/stable/remix/avod.mp4/.mpd",
        text,
        JAN_1_2024_MS,
    );
    let content = rep(&manifest, "video=1000000");
    assert_eq!(ad_pattern(content), "cc");
    let ad = rep(&manifest, "1");
    assert_eq!(positions(ad), [0, 360_000].map(SegmentPosition::Time));
    assert_eq!(ad_pattern(ad), "AA");
    assert!(
        ad.segments[0]
            .uri
            .ends_with("/1_PT6S_0/asset_1080_4_2_0.mp4")
    );
    assert_eq!(ad.resolution, Some((1920, 1080)));
}

/// DVB-DASH redundant BaseURLs: the lowest `dvb:priority` wins.
#[test]
fn base_url_priority() {
    let text = r#"<MPD xmlns:dvb="urn:dvb:dash:dash-extensions:2014-1" type="static" mediaPresentationDuration="PT4S">
  <BaseURL dvb:priority="2" serviceLocation="b">https://backup.example.org/ch1/</BaseURL>
  <BaseURL dvb:priority="1" serviceLocation="a">https://primary.example.org/ch1/</BaseURL>
  <Period>
    <AdaptationSet mimeType="video/mp4">
      <SegmentTemplate timescale="1" duration="2" media="$RepresentationID$_$Number$.m4s"/>
      <Representation id="v" bandwidth="1"/>
    </AdaptationSet>
  </Period>
</MPD>"#;
    let manifest = parse("https://o.example.org/m.mpd", text, JAN_1_2024_MS);
    assert_eq!(
        rep(&manifest, "v").segments[0].uri,
        "https://primary.example.org/ch1/v_1.m4s"
    );
}

#[test]
fn unsupported_and_malformed_shapes() {
    let base = "https://o.example.org/m.mpd";
    let wrap = |inner: &str| {
        format!(
            r#"<MPD type="static" mediaPresentationDuration="PT10S"><Period><AdaptationSet mimeType="video/mp4">{inner}</AdaptationSet></Period></MPD>"#
        )
    };
    let err = |inner: &str| parse_mpd(base, &wrap(inner), JAN_1_2024_MS).expect_err(inner);
    let unsupported = |e: ContentError| matches!(e, ContentError::Unsupported(_));
    let malformed = |e: ContentError| matches!(e, ContentError::MalformedMpd(_));

    assert!(unsupported(err(
        r#"<Representation id="v" bandwidth="1"><SegmentList duration="2"><SegmentURL media="a.m4s"/></SegmentList></Representation>"#
    )));
    assert!(unsupported(err(
        r#"<Representation id="v" bandwidth="1"><BaseURL>v.mp4</BaseURL><SegmentBase indexRange="0-99"/></Representation>"#
    )));
    assert!(unsupported(err(
        r#"<Representation id="v" bandwidth="1"><BaseURL>v.mp4</BaseURL></Representation>"#
    )));
    assert!(unsupported(err(
        r#"<SegmentTemplate duration="2" media="$Number$_$SubNumber$.m4s"/><Representation id="v"/>"#
    )));
    assert!(unsupported(err(
        r#"<SegmentTemplate duration="2" media="$Time$.m4s"/><Representation id="v"/>"#
    )));
    assert!(malformed(err(
        r#"<SegmentTemplate timescale="0" duration="2" media="$Number$.m4s"/><Representation id="v"/>"#
    )));
    assert!(malformed(err(
        r#"<SegmentTemplate duration="2" media="fixed.m4s"/><Representation id="v"/>"#
    )));
    assert!(malformed(err(
        r#"<SegmentTemplate media="$Number$.m4s"/><Representation id="v"/>"#
    )));
    assert!(malformed(err(
        r#"<SegmentTemplate duration="2" media="$Number.m4s"/><Representation id="v"/>"#
    )));
    assert!(malformed(err(
        r#"<SegmentTemplate duration="2" media="$RepresentationID$/$Number$.m4s"/><Representation/>"#
    )));

    let dynamic_without_start = r#"<MPD type="dynamic"><Period><AdaptationSet><SegmentTemplate duration="2" media="$Number$.m4s"/><Representation id="v"/></AdaptationSet></Period></MPD>"#;
    assert!(malformed(
        parse_mpd(base, dynamic_without_start, JAN_1_2024_MS).expect_err("no AST")
    ));
    assert!(malformed(
        parse_mpd(base, "<html>not an mpd", JAN_1_2024_MS).expect_err("garbage")
    ));
    assert!(matches!(
        parse_mpd("relative.mpd", LIVE_NUMBER, JAN_1_2024_MS),
        Err(ContentError::InvalidUrl(_))
    ));
}

#[test]
fn remote_periods_are_skipped() {
    let text = r#"<MPD xmlns:xlink="http://www.w3.org/1999/xlink" type="static" mediaPresentationDuration="PT4S">
  <Period xlink:href="https://ads.example.net/period.xml" xlink:actuate="onLoad"/>
  <Period start="PT0S" duration="PT4S">
    <AdaptationSet mimeType="video/mp4">
      <SegmentTemplate timescale="1" duration="2" media="$Number$.m4s"/>
      <Representation id="v" bandwidth="1"/>
    </AdaptationSet>
  </Period>
</MPD>"#;
    let manifest = parse("https://o.example.org/m.mpd", text, JAN_1_2024_MS);
    assert_eq!(manifest.representations.len(), 1);
    assert_eq!(rep(&manifest, "v").segments.len(), 2);
}
