//! HLS playlists: renditions, positions, and which segments are ads.

use super::canonicalizer;
use crate::content::{ContentError, HlsRenditionKind, ListedSegment, parse_master, parse_media};
use crate::id::{RenditionId, SegmentPosition, SwarmId};

/// Ad flags of a media playlist, one letter per segment: `c` content, `A` ad, `g` gap.
fn ad_pattern(base: &str, text: &str) -> String {
    let playlist = parse_media(base, text.as_bytes()).expect("valid playlist");
    playlist
        .segments
        .iter()
        .map(|s| match (s.ad, s.shareable) {
            (true, false) => 'A',
            (false, true) => 'c',
            (false, false) => 'g',
            (true, true) => '!',
        })
        .collect()
}

fn uris(segments: &[ListedSegment]) -> Vec<&str> {
    segments.iter().map(|s| s.uri.as_str()).collect()
}

/// Apple's HLS authoring examples (bipbop advanced): variants, I-frame variants, alternative
/// audio and subtitles; relative URIs.
const APPLE_MASTER: &str = r#"#EXTM3U
#EXT-X-VERSION:6
#EXT-X-INDEPENDENT-SEGMENTS

#EXT-X-STREAM-INF:AVERAGE-BANDWIDTH=2168183,BANDWIDTH=2177116,CODECS="avc1.640020,mp4a.40.2",RESOLUTION=960x540,FRAME-RATE=60.000,AUDIO="aud1",SUBTITLES="sub1"
v5/prog_index.m3u8
#EXT-X-STREAM-INF:AVERAGE-BANDWIDTH=7968416,BANDWIDTH=8001098,CODECS="avc1.64002a,mp4a.40.2",RESOLUTION=1920x1080,FRAME-RATE=60.000,AUDIO="aud1",SUBTITLES="sub1"
v9/prog_index.m3u8?token=abc

#EXT-X-I-FRAME-STREAM-INF:AVERAGE-BANDWIDTH=186522,BANDWIDTH=187230,CODECS="avc1.64002a",RESOLUTION=1920x1080,URI="v9/iframe_index.m3u8"

#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud1",LANGUAGE="en",NAME="English",AUTOSELECT=YES,DEFAULT=YES,CHANNELS="2",URI="a1/prog_index.m3u8"
#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="sub1",NAME="English",LANGUAGE="en",DEFAULT=YES,AUTOSELECT=YES,FORCED=NO,URI="../subs/en/prog_index.m3u8"
#EXT-X-MEDIA:TYPE=CLOSED-CAPTIONS,GROUP-ID="cc1",NAME="English",LANGUAGE="en",INSTREAM-ID="CC1"
"#;

#[test]
fn apple_master_playlist() {
    let base =
        "https://devstreaming-cdn.apple.com/videos/streaming/examples/adv_dv_atmos/main.m3u8";
    let renditions = parse_master(base, APPLE_MASTER.as_bytes()).expect("valid master");
    let kinds: Vec<HlsRenditionKind> = renditions.iter().map(|r| r.kind).collect();
    assert_eq!(
        kinds,
        [
            HlsRenditionKind::Variant,
            HlsRenditionKind::Variant,
            HlsRenditionKind::IFrames,
            HlsRenditionKind::Audio,
            HlsRenditionKind::Subtitles
        ]
    );
    let first = &renditions[0];
    assert_eq!(
        first.uri,
        "https://devstreaming-cdn.apple.com/videos/streaming/examples/adv_dv_atmos/v5/prog_index.m3u8"
    );
    assert_eq!(first.bandwidth, Some(2_177_116));
    assert_eq!(first.resolution, Some((960, 540)));
    assert_eq!(first.codecs.as_deref(), Some("avc1.640020,mp4a.40.2"));
    assert_eq!(first.group_id.as_deref(), Some("aud1"));
    assert!(
        renditions[1]
            .uri
            .ends_with("/adv_dv_atmos/v9/prog_index.m3u8?token=abc"),
        "tokens stay for the driver"
    );
    assert_eq!(
        renditions[4].uri,
        "https://devstreaming-cdn.apple.com/videos/streaming/examples/subs/en/prog_index.m3u8"
    );
    assert_eq!(renditions[3].bandwidth, None);
}

#[test]
fn playlist_kind_and_header_errors() {
    let base = "https://live.example.org/hls/master.m3u8";
    assert!(matches!(
        parse_media(base, APPLE_MASTER.as_bytes()),
        Err(ContentError::WrongPlaylistKind {
            expected: "media",
            found: "master"
        })
    ));
    assert!(matches!(
        parse_master(base, APPLE_LIVE.as_bytes()),
        Err(ContentError::WrongPlaylistKind {
            expected: "master",
            found: "media"
        })
    ));
    assert!(matches!(
        parse_media(base, b"<html>404</html>"),
        Err(ContentError::MalformedPlaylist(_))
    ));
    assert!(matches!(
        parse_media(base, b""),
        Err(ContentError::MalformedPlaylist(_))
    ));
    assert!(matches!(
        parse_media("not a url", APPLE_LIVE.as_bytes()),
        Err(ContentError::InvalidUrl(_))
    ));
    // A STREAM-INF whose BANDWIDTH is broken would silently re-point the previous variant.
    let broken = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1000\na.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=x\nb.m3u8\n";
    assert!(matches!(
        parse_master(base, broken.as_bytes()),
        Err(ContentError::MalformedPlaylist(_))
    ));
    // Invalid UTF-8 in the middle must not truncate the segment list silently.
    let mut bad = APPLE_LIVE.as_bytes().to_vec();
    let at = bad.len() / 2;
    bad.splice(at..at, [0xff, 0xfe, b'\n']);
    assert!(matches!(
        parse_media(base, &bad),
        Err(ContentError::MalformedPlaylist(_))
    ));
}

/// Apple HLS spec (RFC 8216 §8.3) live playlist shape, as served by most origins.
const APPLE_LIVE: &str = "#EXTM3U
#EXT-X-VERSION:3
#EXT-X-TARGETDURATION:8
#EXT-X-MEDIA-SEQUENCE:2680

#EXTINF:7.975,
https://priv.example.com/fileSequence2680.ts
#EXTINF:7.941,
fileSequence2681.ts?token=viewer-1
#EXTINF:7.975,
../other/fileSequence2682.ts
";

#[test]
fn apple_live_media_playlist() {
    let base = "https://priv.example.com/live/ch1/prog_index.m3u8?token=viewer-1";
    let playlist = parse_media(base, APPLE_LIVE.as_bytes()).expect("valid");
    assert_eq!(playlist.target_duration, 8);
    assert_eq!(playlist.media_sequence, 2680);
    assert!(!playlist.ended);
    assert_eq!(
        uris(&playlist.segments),
        [
            "https://priv.example.com/fileSequence2680.ts",
            "https://priv.example.com/live/ch1/fileSequence2681.ts?token=viewer-1",
            "https://priv.example.com/live/other/fileSequence2682.ts",
        ]
    );
    let positions: Vec<SegmentPosition> = playlist.segments.iter().map(|s| s.position).collect();
    assert_eq!(positions, [2680, 2681, 2682].map(SegmentPosition::Sequence));
    assert!((playlist.segments[1].duration_secs - 7.941).abs() < 1e-4);
    assert!(playlist.segments.iter().all(|s| s.shareable && !s.ad));
}

#[test]
fn byte_order_mark_missing_newline_and_endlist() {
    let text = "\u{feff}#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXT-X-MEDIA-SEQUENCE:1\n#EXTINF:6,\na.ts\n#EXT-X-ENDLIST";
    let playlist = parse_media("https://o.example.org/x/i.m3u8", text.as_bytes()).expect("valid");
    assert!(playlist.ended);
    // Without the trailing-newline fix, m3u8-rs reads the last tag as a segment URI.
    assert_eq!(uris(&playlist.segments), ["https://o.example.org/x/a.ts"]);
}

#[test]
fn two_viewers_get_the_same_segment_keys() {
    // Per-viewer playlists from a token-authenticated CDN with shard hosts (Akamai-style).
    let viewer = |token: &str, shard: u8| {
        format!(
            "#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXT-X-MEDIA-SEQUENCE:500\n\
             #EXTINF:6.0,\nhttps://edge-{shard}.cdn.example.com/live/ch1/720p/seg_500.ts?hdnts={token}\n\
             #EXTINF:6.0,\nhttps://edge-{shard}.cdn.example.com/live/ch1/720p/seg_501.ts?hdnts={token}\n"
        )
    };
    let c = canonicalizer();
    let playlist_url =
        |token: &str| format!("https://edge-9.cdn.example.com/live/ch1/720p.m3u8?hdnts={token}");
    let keys = |token: &str, shard: u8| {
        let swarm: SwarmId = c
            .swarm_id(&format!(
                "https://cdn.example.com/live/ch1/master.m3u8?hdnts={token}"
            ))
            .expect("valid");
        let rendition: RenditionId = c.rendition_id(&playlist_url(token)).expect("valid");
        let playlist =
            parse_media(&playlist_url(token), viewer(token, shard).as_bytes()).expect("valid");
        playlist
            .segments
            .iter()
            .map(|s| {
                c.segment_key(swarm, rendition, s.position, &s.uri, None)
                    .expect("valid")
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(keys("exp=1~hmac=aa", 1), keys("exp=2~hmac=bb", 7));
}

/// AWS Elemental MediaLive / MediaPackage: CUE-OUT with duration, CUE-OUT-CONT on every ad
/// segment, CUE-IN on return.
#[test]
fn cue_out_cont_in() {
    let text = "#EXTM3U
#EXT-X-TARGETDURATION:6
#EXT-X-MEDIA-SEQUENCE:100
#EXTINF:6.006,
c100.ts
#EXT-X-CUE-OUT:12.012
#EXTINF:6.006,
c101.ts
#EXT-X-CUE-OUT-CONT:ElapsedTime=6.006,Duration=12.012,SCTE35=/DAlAAAAAAAAAP/wFAUAAAABf+/+AAAAAAAA
#EXTINF:6.006,
c102.ts
#EXT-X-CUE-IN
#EXTINF:6.006,
c103.ts
#EXTINF:6.006,
c104.ts
";
    assert_eq!(
        ad_pattern("https://o.example.org/live/ch1/index.m3u8", text),
        "cAAcc"
    );
}

/// Wowza / older packagers: CUE-OUT with a duration and no CUE-IN; the break ends when the
/// duration has elapsed.
#[test]
fn cue_out_duration_elapses() {
    let text = "#EXTM3U
#EXT-X-TARGETDURATION:4
#EXTINF:4,
a.ts
#EXT-X-CUE-OUT:DURATION=8
#EXTINF:4,
b.ts
#EXTINF:4,
c.ts
#EXTINF:4,
d.ts
";
    assert_eq!(
        ad_pattern("https://o.example.org/live/index.m3u8", text),
        "cAAc"
    );
}

/// The live window opened inside a break: only the CUE-IN (or the CONT tags) are visible.
#[test]
fn window_opens_inside_a_break() {
    let only_in = "#EXTM3U
#EXT-X-TARGETDURATION:6
#EXTINF:6,
a.ts
#EXTINF:6,
b.ts
#EXT-X-CUE-IN
#EXTINF:6,
c.ts
";
    assert_eq!(
        ad_pattern("https://o.example.org/live/index.m3u8", only_in),
        "AAc"
    );
    // Elemental `x/y` CONT form: 6 s of a 12 s break left.
    let cont = "#EXTM3U
#EXT-X-TARGETDURATION:6
#EXT-X-CUE-OUT-CONT:6/12
#EXTINF:6,
a.ts
#EXTINF:6,
b.ts
";
    assert_eq!(
        ad_pattern("https://o.example.org/live/index.m3u8", cont),
        "Ac"
    );
}

/// Adobe Primetime / Anvato `EXT-X-SCTE35` cue tags.
#[test]
fn adobe_scte35_tags() {
    let text = "#EXTM3U
#EXT-X-TARGETDURATION:6
#EXTINF:6,
a.ts
#EXT-X-SCTE35:CUE=\"/DAlAAAAAAAAAP/wFAUAAAABf+/+AAAAAAAA\",ID=\"1\",CUE-OUT=YES,DURATION=30
#EXTINF:6,
b.ts
#EXT-X-SCTE35:CUE=\"/DAl\",ID=\"1\",CUE-OUT=CONT
#EXTINF:6,
c.ts
#EXT-X-SCTE35:CUE=\"/DAl\",ID=\"1\",CUE-IN=YES
#EXTINF:6,
d.ts
";
    assert_eq!(
        ad_pattern("https://o.example.org/live/index.m3u8", text),
        "cAAc"
    );
}

/// AWS MediaTailor / RFC 8216 §4.4.5.1: SCTE35-OUT date range with DURATION, placed by
/// START-DATE against EXT-X-PROGRAM-DATE-TIME (the tag sits one segment early here).
#[test]
fn daterange_scte35_by_program_date_time() {
    let text = "#EXTM3U
#EXT-X-TARGETDURATION:6
#EXT-X-MEDIA-SEQUENCE:10
#EXT-X-PROGRAM-DATE-TIME:2024-01-01T12:00:00.000Z
#EXTINF:6.0,
s10.ts
#EXT-X-DATERANGE:ID=\"splice-6FFFFFF0\",START-DATE=\"2024-01-01T12:00:12.000Z\",DURATION=12.0,SCTE35-OUT=0xFC302000000000000000FFF00F05
#EXTINF:6.0,
s11.ts
#EXTINF:6.0,
s12.ts
#EXTINF:6.0,
s13.ts
#EXTINF:6.0,
s14.ts
";
    assert_eq!(
        ad_pattern("https://o.example.org/live/index.m3u8", text),
        "ccAAc"
    );
}

/// RFC 8216 shape: the OUT and, later, the IN date range share an ID; no program date time,
/// so the tags' positions are used.
#[test]
fn daterange_out_then_in_by_position() {
    let text = "#EXTM3U
#EXT-X-TARGETDURATION:6
#EXTINF:6,
a.ts
#EXT-X-DATERANGE:ID=\"ad1\",START-DATE=\"2024-01-01T00:00:06Z\",SCTE35-OUT=0xFC30
#EXTINF:6,
b.ts
#EXTINF:6,
c.ts
#EXT-X-DATERANGE:ID=\"ad1\",START-DATE=\"2024-01-01T00:00:18Z\",SCTE35-IN=0xFC30
#EXTINF:6,
d.ts
";
    assert_eq!(
        ad_pattern("https://o.example.org/live/index.m3u8", text),
        "cAAc"
    );
}

/// Apple HLS interstitials (CLASS="com.apple.hls.interstitial"); a chapter date range next
/// to it is not an ad.
#[test]
fn daterange_interstitial_and_non_ad_class() {
    let text = "#EXTM3U
#EXT-X-TARGETDURATION:6
#EXT-X-PROGRAM-DATE-TIME:2024-01-01T00:00:00Z
#EXTINF:6,
a.ts
#EXT-X-DATERANGE:ID=\"chapter-2\",CLASS=\"com.example.chapter\",START-DATE=\"2024-01-01T00:00:06Z\",DURATION=600
#EXT-X-DATERANGE:ID=\"ad2\",CLASS=\"com.apple.hls.interstitial\",START-DATE=\"2024-01-01T00:00:12Z\",DURATION=6,X-ASSET-URI=\"https://ads.example.net/a.m3u8\",X-RESUME-OFFSET=0
#EXTINF:6,
b.ts
#EXTINF:6,
c.ts
#EXTINF:6,
d.ts
";
    assert_eq!(
        ad_pattern("https://o.example.org/live/index.m3u8", text),
        "ccAc"
    );
}

/// AWS MediaTailor HLS: ad segments on `segments.mediatailor.<region>.amazonaws.com`, bounded
/// by discontinuities, without cue tags (cue passthrough off).
#[test]
fn mediatailor_ads_on_their_host() {
    let text = "#EXTM3U
#EXT-X-VERSION:3
#EXT-X-TARGETDURATION:7
#EXT-X-MEDIA-SEQUENCE:4810
#EXT-X-DISCONTINUITY-SEQUENCE:12
#EXTINF:6.006,
https://d1abcdefgh.cloudfront.net/out/v1/5f3b9c1d2e/index_1_4810.ts
#EXT-X-DISCONTINUITY
#EXTINF:6.0,
https://segments.mediatailor.us-east-1.amazonaws.com/tm/3c1d2e/0f6a9b8c7d/asset_720_3_0_00001.ts
#EXTINF:6.0,
https://segments.mediatailor.us-east-1.amazonaws.com/tm/3c1d2e/0f6a9b8c7d/asset_720_3_0_00002.ts
#EXT-X-DISCONTINUITY
#EXTINF:6.006,
https://d1abcdefgh.cloudfront.net/out/v1/5f3b9c1d2e/index_1_4813.ts
";
    let base = "https://a1b2c3.mediatailor.us-east-1.amazonaws.com/v1/manifest/0f0e/my-config/3f1c9a0e/1.m3u8";
    assert_eq!(ad_pattern(base, text), "cAAc");
}

/// Google DAI / generic stitcher: ad pods from another (unknown) host between discontinuities,
/// no cue tags; the playlist itself comes from a third host.
#[test]
fn stitched_ads_from_another_host() {
    let text = "#EXTM3U
#EXT-X-TARGETDURATION:6
#EXT-X-MEDIA-SEQUENCE:77
#EXTINF:6,
https://content.cdn.example.com/live/ch1/720p/seg_77.ts
#EXTINF:6,
https://content.cdn.example.com/live/ch1/720p/seg_78.ts
#EXT-X-DISCONTINUITY
#EXTINF:5,
https://pod-server.ads.example.net/ad/creative-1/720p/0.ts
#EXTINF:5,
https://pod-server.ads.example.net/ad/creative-1/720p/1.ts
#EXT-X-DISCONTINUITY
#EXTINF:5,
https://pod-server.ads.example.net/ad/creative-2/720p/0.ts
#EXT-X-DISCONTINUITY
#EXTINF:6,
https://content.cdn.example.com/live/ch1/720p/seg_79.ts
";
    let base = "https://dai.example.com/linear/hls/event/abc/stream/xyz/variant/720p.m3u8";
    assert_eq!(ad_pattern(base, text), "ccAAAc");
}

/// A stitcher that serves ads from the same host as the content, under another directory.
#[test]
fn stitched_ads_from_another_directory() {
    let text = "#EXTM3U
#EXT-X-TARGETDURATION:6
#EXTINF:6,
seg_1.ts
#EXTINF:6,
seg_2.ts
#EXT-X-DISCONTINUITY
#EXTINF:6,
/ads/5d41402abc4b2a76/720p/0.ts
#EXT-X-DISCONTINUITY
#EXTINF:6,
seg_3.ts
#EXTINF:6,
seg_4.ts
";
    assert_eq!(
        ad_pattern("https://o.example.org/live/ch1/720p/index.m3u8", text),
        "ccAcc"
    );
}

/// Discontinuities without a change of location (encoder restart, program boundary) and
/// per-segment directories without discontinuities (path-parameter URLs) are content.
#[test]
fn discontinuity_alone_is_not_an_ad() {
    let restart = "#EXTM3U
#EXT-X-TARGETDURATION:6
#EXTINF:6,
seg_1.ts
#EXT-X-DISCONTINUITY
#EXTINF:6,
seg_2.ts
#EXTINF:6,
seg_3.ts
";
    assert_eq!(
        ad_pattern("https://o.example.org/live/ch1/index.m3u8", restart),
        "ccc"
    );
    let path_params = "#EXTM3U
#EXT-X-TARGETDURATION:5
#EXTINF:5,
https://rr3---sn-abc.googlevideo.com/videoplayback/id/xyz.1/itag/96/sq/1234/file/seg.ts
#EXTINF:5,
https://rr3---sn-abc.googlevideo.com/videoplayback/id/xyz.1/itag/96/sq/1235/file/seg.ts
";
    assert_eq!(
        ad_pattern(
            "https://manifest.googlevideo.com/api/manifest/hls_playlist/index.m3u8",
            path_params
        ),
        "cc"
    );
}

/// RFC 8216bis: EXT-X-GAP segments must not be fetched (nor shared); EXT-X-SKIP in a delta
/// update shifts the first listed sequence number; LL-HLS parts are not listed.
#[test]
fn gap_skip_and_parts() {
    let text = "#EXTM3U
#EXT-X-VERSION:9
#EXT-X-TARGETDURATION:4
#EXT-X-SERVER-CONTROL:CAN-SKIP-UNTIL=24,PART-HOLD-BACK=3.0
#EXT-X-PART-INF:PART-TARGET=1.0
#EXT-X-MEDIA-SEQUENCE:266
#EXT-X-SKIP:SKIPPED-SEGMENTS=3
#EXTINF:4.0,
fileSequence269.mp4
#EXT-X-GAP
#EXTINF:4.0,
fileSequence270.mp4
#EXT-X-PART:DURATION=1.0,URI=\"filePart271.0.mp4\",INDEPENDENT=YES
#EXT-X-PART:DURATION=1.0,URI=\"filePart271.1.mp4\"
#EXTINF:4.0,
fileSequence271.mp4
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"filePart272.0.mp4\"
";
    let base = "https://o.example.org/live/index.m3u8?_HLS_skip=YES";
    let playlist = parse_media(base, text.as_bytes()).expect("valid");
    let positions: Vec<SegmentPosition> = playlist.segments.iter().map(|s| s.position).collect();
    assert_eq!(positions, [269, 270, 271].map(SegmentPosition::Sequence));
    assert_eq!(ad_pattern(base, text), "cgc");
}
