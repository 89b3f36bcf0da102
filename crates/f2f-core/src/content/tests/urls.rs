//! URL canonicalisation: pairs that must map to the same content, and pairs that must not.

use super::canonicalizer;
use crate::content::{CanonicalConfig, Canonicalizer, ContentError};
use crate::id::{RenditionId, SegmentPosition, SwarmId};

/// A pair of URLs two viewers (or one viewer twice) might be handed, and whether they are the
/// same content.
struct Pair {
    /// Where the shape comes from.
    source: &'static str,
    a: &'static str,
    b: &'static str,
    same: bool,
}

const SAME: bool = true;
const DIFFERENT: bool = false;

const PAIRS: &[Pair] = &[
    // --- Scheme, port, host, fragment, user-info -----------------------------------------------
    Pair {
        source: "Apple HLS examples (devstreaming-cdn): http vs https",
        a: "https://devstreaming-cdn.apple.com/videos/streaming/examples/bipbop_16x9/bipbop_16x9_variant.m3u8",
        b: "http://devstreaming-cdn.apple.com/videos/streaming/examples/bipbop_16x9/bipbop_16x9_variant.m3u8",
        same: SAME,
    },
    Pair {
        source: "Apple HLS examples: two renditions of the bipbop ladder",
        a: "https://devstreaming-cdn.apple.com/videos/streaming/examples/bipbop_16x9/gear1/prog_index.m3u8",
        b: "https://devstreaming-cdn.apple.com/videos/streaming/examples/bipbop_16x9/gear2/prog_index.m3u8",
        same: DIFFERENT,
    },
    Pair {
        source: "default ports and host case (any origin)",
        a: "https://LIVE.Example.org:443/hls/ch1/index.m3u8",
        b: "http://live.example.org:80/hls/ch1/index.m3u8",
        same: SAME,
    },
    Pair {
        source: "Wowza default port 1935 is not a default HTTP port: kept",
        a: "http://wowza.example.org:1935/live/ch1/playlist.m3u8",
        b: "http://wowza.example.org/live/ch1/playlist.m3u8",
        same: DIFFERENT,
    },
    Pair {
        source: "player-added fragment and credentials in the URL",
        a: "https://viewer:secret@live.example.org/hls/ch1/index.m3u8#t=30",
        b: "https://live.example.org/hls/ch1/index.m3u8",
        same: SAME,
    },
    Pair {
        source: "CDN edge shards with an alias `*.cdn.example.com` configured",
        a: "https://edge-17.cdn.example.com/live/ch1/720p/seg_100.ts",
        b: "https://edge-3.fra.cdn.example.com/live/ch1/720p/seg_100.ts",
        same: SAME,
    },
    Pair {
        source: "cdn1./cdn2. shards with an alias `cdn*.example.net` configured",
        a: "https://cdn1.example.net/live/ch1/seg_100.ts",
        b: "https://cdn2.example.net/live/ch1/seg_100.ts",
        same: SAME,
    },
    Pair {
        source: "exact alias: a backup origin host serving byte-identical content",
        a: "https://live-backup.example.org/hls/ch1/seg_7.ts",
        b: "https://live.example.org/hls/ch1/seg_7.ts",
        same: SAME,
    },
    Pair {
        source: "edge shards of a CDN without an alias stay apart",
        a: "https://edge-17.othercdn.example/live/ch1/seg_100.ts",
        b: "https://edge-3.othercdn.example/live/ch1/seg_100.ts",
        same: DIFFERENT,
    },
    // --- Query tokens --------------------------------------------------------------------------
    Pair {
        source: "AWS MediaPackage behind CloudFront, custom-policy signed URL",
        a: "https://d1abcdefgh.cloudfront.net/out/v1/5f3b9c1d2e/index.m3u8?Policy=eyJTdGF0ZW1lbnQiOlt7IlJlc291cmNlIjoiaHR0cHM6Ly9kMS8qIn1dfQ__&Signature=Xk3l~abcDEF123-ghi&Key-Pair-Id=APKAEIBAERJR2EXAMPLE",
        b: "https://d1abcdefgh.cloudfront.net/out/v1/5f3b9c1d2e/index.m3u8?Key-Pair-Id=APKAEIBAERJR2EXAMPLE&Signature=Q9z~other-SIG_456&Policy=eyJTdGF0ZW1lbnQiOltdfQ__",
        same: SAME,
    },
    Pair {
        source: "CloudFront canned-policy signed URL (Expires/Signature/Key-Pair-Id)",
        a: "https://d1abcdefgh.cloudfront.net/out/v1/5f3b9c1d2e/index_1_100.ts?Expires=1700003600&Signature=abc~DEF&Key-Pair-Id=APKA1",
        b: "https://d1abcdefgh.cloudfront.net/out/v1/5f3b9c1d2e/index_1_100.ts",
        same: SAME,
    },
    Pair {
        source: "AWS MediaPackage: two channels (endpoint ids) are different streams",
        a: "https://abc123.mediapackage.us-east-1.amazonaws.com/out/v1/5f3b9c1d2e/index.m3u8",
        b: "https://abc123.mediapackage.us-east-1.amazonaws.com/out/v1/77aa0e4f1c/index.m3u8",
        same: DIFFERENT,
    },
    Pair {
        source: "Akamai token auth 2.0, hdnts query parameter",
        a: "https://example-lh.akamaihd.net/i/live_1@12345/master.m3u8?hdnts=st=1700000000~exp=1700003600~acl=/i/live_1@12345/*~hmac=0a1b2c3d4e5f",
        b: "https://example-lh.akamaihd.net/i/live_1@12345/master.m3u8?hdnts=exp=1700009999~acl=/*~hmac=ffeeddccbbaa",
        same: SAME,
    },
    Pair {
        source: "Akamai segmented media protection: hdntl token as a path segment",
        a: "https://example.akamaized.net/hdntl=exp=1700003600~acl=%2f*~data=hdntl~hmac=9f8e7d6c/live/ch1/index_720.m3u8",
        b: "https://example.akamaized.net/live/ch1/index_720.m3u8",
        same: SAME,
    },
    Pair {
        source: "Akamai edge auth __token__ query parameter",
        a: "https://example.akamaized.net/live/ch1/seg_5.ts?__token__=exp=1700003600~hmac=abcdef",
        b: "https://example.akamaized.net/live/ch1/seg_5.ts?__token__=exp=1700007200~hmac=123456",
        same: SAME,
    },
    Pair {
        source: "generic `/token=…/` path segment (Akamai-style path token)",
        a: "https://media.example.org/token=Zm9vYmFyYmF6cXV4/live/ch1/seg_5.ts",
        b: "https://media.example.org/live/ch1/seg_5.ts",
        same: SAME,
    },
    Pair {
        source: "Wowza SecureToken v2 (wowzatoken* query parameters)",
        a: "https://wowza.example.org/live/_definst_/myStream/playlist.m3u8?wowzatokenstarttime=1700000000&wowzatokenendtime=1700003600&wowzatokenhash=q1w2e3r4t5y6u7i8o9p0=",
        b: "https://wowza.example.org/live/_definst_/myStream/playlist.m3u8?wowzatokenendtime=1700099999&wowzatokenhash=zxcvbnm0987654321=",
        same: SAME,
    },
    Pair {
        source: "Wowza: `_definst_` is part of the content path",
        a: "https://wowza.example.org/live/_definst_/myStream/playlist.m3u8",
        b: "https://wowza.example.org/live/myStream/playlist.m3u8",
        same: DIFFERENT,
    },
    Pair {
        source: "Wowza session id in chunk-list names (`chunklist_w<session>_b<bitrate>`)",
        a: "https://wowza.example.org/live/_definst_/myStream/chunklist_w1583823424_b800000.m3u8",
        b: "https://wowza.example.org/live/_definst_/myStream/chunklist_w998877665_b800000.m3u8?wowzasessionid=998877665",
        same: SAME,
    },
    Pair {
        source: "Wowza session id in media names; the bitrate part differs",
        a: "https://wowza.example.org/live/_definst_/myStream/media_w1583823424_b800000_42.ts",
        b: "https://wowza.example.org/live/_definst_/myStream/media_w1583823424_b1500000_42.ts",
        same: DIFFERENT,
    },
    Pair {
        source: "nginx secure_link: `/s/<md5 base64url>/<expiry>/`",
        a: "https://live.example.org/s/Yjk3ZDc4OTNhN2Ez_Q2Ne/1700003600/hls/ch1/index.m3u8",
        b: "https://live.example.org/s/hP9xKq2LmZ7wR4tYb3Nc/1700090000/hls/ch1/index.m3u8",
        same: SAME,
    },
    Pair {
        source: "nginx secure_link query form (`md5` and `expires`)",
        a: "https://live.example.org/hls/ch1/seg_9.ts?md5=AAbbCC1234-_x&expires=1700003600",
        b: "https://live.example.org/hls/ch1/seg_9.ts",
        same: SAME,
    },
    Pair {
        source: "generic `/<hex hash>/<10-digit expiry>/` path pair",
        a: "https://media.example.org/0d6e4079e36703ebd2b6b5a2bbf6a1d1/1700003600/live/ch1/seg_9.ts",
        b: "https://media.example.org/9c1185a5c5e9fc54612808977ee8f548/1700007777/live/ch1/seg_9.ts",
        same: SAME,
    },
    Pair {
        source: "Fastly token auth (`?token=<expiry>_<hmac>`)",
        a: "https://live.global.ssl.fastly.net/ch1/seg_9.ts?token=1700003600_6a0f2b1c9d8e7f",
        b: "https://live.global.ssl.fastly.net/ch1/seg_9.ts?token=1700009999_00112233445566",
        same: SAME,
    },
    Pair {
        source: "Edgecast/Verizon token auth: bare encrypted token as the whole query",
        a: "https://wpc.0001.edgecastcdn.net/000001/live/ch1/seg_9.ts?a4fbc3710fd3449a7c99986b0d7e3e7f",
        b: "https://wpc.0001.edgecastcdn.net/000001/live/ch1/seg_9.ts?9e107d9d372bb6826bd81d3542a419d6",
        same: SAME,
    },
    Pair {
        source: "Edgecast ec_* parameters",
        a: "https://wpc.0001.edgecastcdn.net/000001/live/ch1/seg_9.ts?ec_secure=abc&ec_expire=1700003600&ec_clientip=203.0.113.7",
        b: "https://wpc.0001.edgecastcdn.net/000001/live/ch1/seg_9.ts",
        same: SAME,
    },
    Pair {
        source: "Limelight MediaVault (`e` expiry, `h` hash)",
        a: "https://cdn.llnw.example/live/ch1/seg_9.ts?e=1700003600&h=0123456789abcdef0123456789abcdef",
        b: "https://cdn.llnw.example/live/ch1/seg_9.ts?h=fedcba9876543210fedcba9876543210&e=1700099999",
        same: SAME,
    },
    Pair {
        source: "Twitch usher playlist: sig, token and the `p` cache buster differ per viewer",
        a: "https://usher.ttvnw.net/api/channel/hls/somechannel.m3u8?allow_source=true&fast_bread=true&p=4821937&player_backend=mediaplayer&sig=2f3a4b5c6d&token=%7B%22user_id%22%3A1%7D",
        b: "https://usher.ttvnw.net/api/channel/hls/somechannel.m3u8?token=%7B%22user_id%22%3A2%7D&sig=9a8b7c6d5e&p=1193046&allow_source=true&fast_bread=true&player_backend=mediaplayer",
        same: SAME,
    },
    Pair {
        source: "Twitch usher: two channels",
        a: "https://usher.ttvnw.net/api/channel/hls/somechannel.m3u8?allow_source=true&sig=1&token=2",
        b: "https://usher.ttvnw.net/api/channel/hls/otherchannel.m3u8?allow_source=true&sig=1&token=2",
        same: DIFFERENT,
    },
    Pair {
        source: "YouTube-style videoplayback on edge shards: per-request ei/ip/expire/sig stripped",
        a: "https://rr3---sn-abc123.googlevideo.com/videoplayback?id=xyz.1&itag=96&source=yt_live_broadcast&expire=1700003600&ei=k7g7ZeacO-KJ6dsP&ip=203.0.113.7&sparams=expire,ei,ip,id,itag&sig=AOq0QJ8wRQIg&sq=1234",
        b: "https://rr5---sn-def456.googlevideo.com/videoplayback?sq=1234&id=xyz.1&itag=96&source=yt_live_broadcast&expire=1700009999&ei=ZZZZeacO-KJ6dsP&ip=198.51.100.9&sparams=expire,ei,ip,id,itag&sig=BBBBQJ8wRQIg",
        same: SAME,
    },
    Pair {
        source: "YouTube-style: `sq` is the segment number",
        a: "https://rr3---sn-abc123.googlevideo.com/videoplayback?id=xyz.1&itag=96&sq=1234",
        b: "https://rr3---sn-abc123.googlevideo.com/videoplayback?id=xyz.1&itag=96&sq=1235",
        same: DIFFERENT,
    },
    Pair {
        source: "Azure Media Services dynamic packaging: `(format=…)` path parts are content",
        a: "https://amsacct-usea.streaming.media.azure.net/1b2c3d4e-0000-4000-8000-000000000001/stream.ism/manifest(format=m3u8-aapl)",
        b: "https://amsacct-usea.streaming.media.azure.net/1b2c3d4e-0000-4000-8000-000000000001/stream.ism/manifest(format=m3u8-cmaf)",
        same: DIFFERENT,
    },
    Pair {
        source: "Azure Media Services fragment URL with a per-viewer token",
        a: "https://amsacct-usea.streaming.media.azure.net/1b2c3d4e-0000-4000-8000-000000000001/stream.ism/QualityLevels(3579480)/Fragments(video=0,format=m3u8-aapl)?token=Bearer%3DeyJ0eXAi",
        b: "https://amsacct-usea.streaming.media.azure.net/1b2c3d4e-0000-4000-8000-000000000001/stream.ism/QualityLevels(3579480)/Fragments(video=0,format=m3u8-aapl)",
        same: SAME,
    },
    Pair {
        source: "Azure Blob storage SAS on segments",
        a: "https://acct.blob.core.windows.net/live/ch1/seg_9.ts?sv=2021-08-06&se=2024-01-01T00%3A00%3A00Z&sr=b&sp=r&sig=abcDEF%2B123%3D",
        b: "https://acct.blob.core.windows.net/live/ch1/seg_9.ts?sp=r&sr=b&sv=2022-11-02&se=2024-02-01T00%3A00%3A00Z&sig=zzz",
        same: SAME,
    },
    Pair {
        source: "Unified Streaming Origin live `.isml`: two video bitrates",
        a: "https://live.unified-streaming.com/scte35/scte35.isml/scte35-audio_eng=128000-video=1000000.m3u8",
        b: "https://live.unified-streaming.com/scte35/scte35.isml/scte35-audio_eng=128000-video=2200000.m3u8",
        same: DIFFERENT,
    },
    Pair {
        source: "Unified Streaming `.isml` with an Akamai token; `?hls_fmp4` kept",
        a: "https://live.unified-streaming.com/scte35/scte35.isml/.m3u8?hls_fmp4&hdnts=exp=1700003600~hmac=aa",
        b: "https://live.unified-streaming.com/scte35/scte35.isml/.m3u8?hls_fmp4",
        same: SAME,
    },
    Pair {
        source: "Unified Streaming: `hls_fmp4` selects a different packaging",
        a: "https://live.unified-streaming.com/scte35/scte35.isml/.m3u8?hls_fmp4",
        b: "https://live.unified-streaming.com/scte35/scte35.isml/.m3u8",
        same: DIFFERENT,
    },
    Pair {
        source: "AWS MediaTailor session (aws.sessionId) and player params (ads.*)",
        a: "https://a1b2c3.mediatailor.us-east-1.amazonaws.com/v1/master/0f0e0d0c/my-config/out/v1/5f3b9c1d2e/index.m3u8?aws.sessionId=3f1c9a0e-1111-4a4a-9b9b-0123456789ab&ads.deviceType=ios",
        b: "https://a1b2c3.mediatailor.us-east-1.amazonaws.com/v1/master/0f0e0d0c/my-config/out/v1/5f3b9c1d2e/index.m3u8?aws.sessionId=77777777-2222-4b4b-8c8c-ba9876543210",
        same: SAME,
    },
    Pair {
        source: "AWS S3 SigV4 presigned URL (X-Amz-*)",
        a: "https://bucket.s3.amazonaws.com/live/ch1/seg_9.ts?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2F20240101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20240101T000000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Signature=abcdef0123",
        b: "https://bucket.s3.amazonaws.com/live/ch1/seg_9.ts",
        same: SAME,
    },
    Pair {
        source: "Google Cloud Storage signed URLs, V4 (X-Goog-*) and V2 (GoogleAccessId)",
        a: "https://storage.googleapis.com/bucket/live/ch1/seg_9.ts?X-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Credential=sa%40p.iam&X-Goog-Signature=0a0b",
        b: "https://storage.googleapis.com/bucket/live/ch1/seg_9.ts?GoogleAccessId=sa%40p.iam&Expires=1700003600&Signature=c2lnbmF0dXJl",
        same: SAME,
    },
    Pair {
        source: "CMCD (carries a session id) and a jQuery-style `_` cache buster",
        a: "https://live.example.org/hls/ch1/seg_9.ts?CMCD=bl%3D21300%2Cbr%3D3200%2Csid%3D%226e2fb550-c457-11e9-bb97-0800200c9a66%22&_=1700000000123",
        b: "https://live.example.org/hls/ch1/seg_9.ts?CMCD=bl%3D900%2Csid%3D%22other%22&_=1700000999999",
        same: SAME,
    },
    Pair {
        source: "content query parameter `channel`",
        a: "https://live.example.org/play/index.m3u8?channel=5&token=aaa",
        b: "https://live.example.org/play/index.m3u8?channel=6&token=aaa",
        same: DIFFERENT,
    },
    Pair {
        source: "content query parameter `v` (video id)",
        a: "https://live.example.org/watch/index.m3u8?v=dQw4w9WgXcQ",
        b: "https://live.example.org/watch/index.m3u8?v=9bZkp7q19f0",
        same: DIFFERENT,
    },
    Pair {
        source: "content query parameters in either order, plus a viewer token",
        a: "https://live.example.org/play/index.m3u8?channel=5&bitrate=800",
        b: "https://live.example.org/play/index.m3u8?bitrate=800&sid=abc&channel=5",
        same: SAME,
    },
    Pair {
        source: "content query parameter `bitrate`",
        a: "https://live.example.org/play/index.m3u8?channel=5&bitrate=800",
        b: "https://live.example.org/play/index.m3u8?channel=5&bitrate=1500",
        same: DIFFERENT,
    },
    Pair {
        source: "`st` as a content start offset (small value) is kept",
        a: "https://live.example.org/dvr/ch1/index.m3u8?st=300",
        b: "https://live.example.org/dvr/ch1/index.m3u8?st=600",
        same: DIFFERENT,
    },
    Pair {
        source: "`st`/`e` as token start/expiry (unix times) are stripped",
        a: "https://live.example.org/dvr/ch1/index.m3u8?st=1700000000&e=1700003600",
        b: "https://live.example.org/dvr/ch1/index.m3u8?st=1700001111&e=1700004711",
        same: SAME,
    },
    // --- Path sessions ----------------------------------------------------------------------
    Pair {
        source: "servlet containers: `;jsessionid=` matrix parameter",
        a: "https://live.example.org/hls/ch1/index.m3u8;jsessionid=A1B2C3D4E5F6",
        b: "https://live.example.org/hls/ch1/index.m3u8;jsessionid=0F9E8D7C6B5A",
        same: SAME,
    },
    Pair {
        source: "ASP.NET cookieless session segment `(S(…))`",
        a: "https://live.example.org/(S(lit3py55t21z5v55vlm25s55))/hls/ch1/index.m3u8",
        b: "https://live.example.org/(X(1)S(q2w3e4r5t6y7u8i9o0p1a2s3))/hls/ch1/index.m3u8",
        same: SAME,
    },
    Pair {
        source: "`/session/<uuid>/` in the path",
        a: "https://live.example.org/session/3f1c9a0e-1111-4a4a-9b9b-0123456789ab/hls/ch1/index.m3u8",
        b: "https://live.example.org/session/77777777-2222-4b4b-8c8c-ba9876543210/hls/ch1/index.m3u8",
        same: SAME,
    },
    Pair {
        source: "`/sessions/<slug>/` is content (conference recordings), not a session id",
        a: "https://live.example.org/sessions/keynote-2024/index.m3u8",
        b: "https://live.example.org/sessions/closing-2024/index.m3u8",
        same: DIFFERENT,
    },
    Pair {
        source: "Kaltura playManifest: `/ks/<session>/` and `/playSessionId/<uuid>/`",
        a: "https://cdnapisec.kaltura.com/p/1234/sp/123400/playManifest/entryId/1_abcd1234/format/applehttp/protocol/https/ks/djJ8MTIzNHxaQ2FkZ2VyX0tTX3Rva2VuXzEyMzQ1Njc4OTA/playSessionId/3f1c9a0e-1111-4a4a-9b9b-0123456789ab/a.m3u8",
        b: "https://cdnapisec.kaltura.com/p/1234/sp/123400/playManifest/entryId/1_abcd1234/format/applehttp/protocol/https/ks/djJ8MTIzNHxPdGhlclZpZXdlcl9LU185ODc2NTQzMjE/a.m3u8",
        same: SAME,
    },
    Pair {
        source: "Kaltura playManifest: two entries",
        a: "https://cdnapisec.kaltura.com/p/1234/sp/123400/playManifest/entryId/1_abcd1234/format/applehttp/a.m3u8",
        b: "https://cdnapisec.kaltura.com/p/1234/sp/123400/playManifest/entryId/1_wxyz9876/format/applehttp/a.m3u8",
        same: DIFFERENT,
    },
    // --- Watermark variants in the path -------------------------------------------------------
    Pair {
        source: "A/B forensic watermark, variant in a path segment (per-viewer manifest)",
        a: "https://cdn.example.com/live/ch1/720p/A/seg_100.ts",
        b: "https://cdn.example.com/live/ch1/720p/B/seg_100.ts",
        same: DIFFERENT,
    },
    Pair {
        source: "A/B forensic watermark, variant letter in the file name",
        a: "https://cdn.example.com/live/ch1/720p/seg_100_a.ts",
        b: "https://cdn.example.com/live/ch1/720p/seg_100_b.ts",
        same: DIFFERENT,
    },
];

#[test]
fn url_pairs() {
    let c = canonicalizer();
    let mut failures = Vec::new();
    for pair in PAIRS {
        let a = c.canonical_url(pair.a).expect(pair.source);
        let b = c.canonical_url(pair.b).expect(pair.source);
        if (a == b) != pair.same {
            failures.push(format!("{}:\n    {a}\n    {b}", pair.source));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} pairs wrong:\n{}",
        failures.len(),
        PAIRS.len(),
        failures.join("\n")
    );
}

#[test]
fn canonical_strings_show_what_is_kept() {
    let c = canonicalizer();
    let cases = [
        (
            "https://edge-17.cdn.example.com:443/live/ch1/720p/seg_100.ts?token=x&channel=5#frag",
            "cdn.example.com/live/ch1/720p/seg_100.ts?channel=5",
        ),
        (
            "http://wowza.example.org:1935/live/_definst_/s/chunklist_w12345678.m3u8",
            "wowza.example.org:1935/live/_definst_/s/chunklist.m3u8",
        ),
        (
            "https://live.example.org/s/Yjk3ZDc4OTNhN2Ez_Q2Ne/1700003600/hls/ch1/index.m3u8",
            "live.example.org/s/hls/ch1/index.m3u8",
        ),
        (
            "https://live.example.org/a/index.m3u8?b=2&a=1&a=0",
            "live.example.org/a/index.m3u8?a=0&a=1&b=2",
        ),
        (
            "https://[2001:db8::1]:8443/live/x.ts",
            "[2001:db8::1]:8443/live/x.ts",
        ),
        (
            "https://live.example.org./live/x.ts",
            "live.example.org/live/x.ts",
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(c.canonical_url(input).expect(input), expected);
    }
}

#[test]
fn ids_follow_canonical_urls() {
    let c = canonicalizer();
    let p = &PAIRS[0];
    assert_eq!(
        c.swarm_id(p.a).expect("valid"),
        c.swarm_id(p.b).expect("valid")
    );
    assert_eq!(
        c.rendition_id(p.a).expect("valid"),
        c.rendition_id(p.b).expect("valid")
    );
    let q = &PAIRS[1];
    assert_ne!(
        c.swarm_id(q.a).expect("valid"),
        c.swarm_id(q.b).expect("valid")
    );
    assert_ne!(
        c.rendition_id(q.a).expect("valid"),
        c.rendition_id(q.b).expect("valid")
    );
}

#[test]
fn segment_keys_and_watermarks() {
    let c = canonicalizer();
    let swarm = SwarmId::from_canonical("live.example.org/hls/ch1/master.m3u8");
    let rendition = RenditionId::from_canonical("live.example.org/hls/ch1/720p.m3u8");
    let at = SegmentPosition::Sequence(100);
    let key =
        |url: &str, wm: Option<u8>| c.segment_key(swarm, rendition, at, url, wm).expect("valid");

    // Two viewers, different tokens and shards, no watermark: same key.
    let viewer_a = "https://edge-1.cdn.example.com/live/ch1/720p/seg_100.ts?token=aaa";
    let viewer_b = "http://edge-2.cdn.example.com/live/ch1/720p/seg_100.ts?token=bbb";
    assert_eq!(key(viewer_a, None), key(viewer_b, None));

    // Edge-chosen watermark (token-picked variant): same URL, variants 0 and 1 must differ.
    assert_ne!(key(viewer_a, Some(0)), key(viewer_b, Some(1)));
    assert_eq!(key(viewer_a, Some(1)), key(viewer_b, Some(1)));
    assert_ne!(key(viewer_a, None), key(viewer_a, Some(0)));

    // Manifest-chosen watermark: the variant is in the path.
    assert_ne!(
        key("https://cdn.example.com/live/ch1/720p/A/seg_100.ts", None),
        key("https://cdn.example.com/live/ch1/720p/B/seg_100.ts", None)
    );

    // Position is part of the key.
    let next = c
        .segment_key(
            swarm,
            rendition,
            SegmentPosition::Sequence(101),
            viewer_a,
            None,
        )
        .expect("valid");
    assert_ne!(key(viewer_a, None), next);
}

#[test]
fn config_extends_and_overrides_the_built_in_rules() {
    let default = canonicalizer();
    let configured = Canonicalizer::new(CanonicalConfig {
        strip_params: vec!["myauth_*".into(), "viewerkey".into()],
        keep_params: vec!["token".into()],
        path_token_markers: vec!["stream".into()],
        ..CanonicalConfig::default()
    })
    .expect("valid");

    // An origin whose content selector happens to be called `token`.
    let a = "https://origin.example.org/live/index.m3u8?token=news";
    let b = "https://origin.example.org/live/index.m3u8?token=sport";
    assert_eq!(default.canonical_url(a).ok(), default.canonical_url(b).ok());
    assert_ne!(
        configured.canonical_url(a).ok(),
        configured.canonical_url(b).ok()
    );

    // Extra strip names, exact and prefix.
    let a = "https://origin.example.org/live/index.m3u8?myauth_sig=1&myauth_exp=2&viewerkey=3&ch=1";
    assert_eq!(
        configured.canonical_url(a).ok().as_deref(),
        Some("origin.example.org/live/index.m3u8?ch=1")
    );

    // Google DAI-style stream ids in the path: `/stream/<id>/` once configured.
    let a = "https://dai.google.com/linear/hls/pa/event/sN_IYUG8STe1ZzhIIE_ksA/stream/2b7d4a31-9c0e-4f5b-8a6d-1e2f3a4b5c6d/master.m3u8";
    let b = "https://dai.google.com/linear/hls/pa/event/sN_IYUG8STe1ZzhIIE_ksA/stream/8f9e0d1c-2b3a-4c5d-9e8f-7a6b5c4d3e2f/master.m3u8";
    assert_ne!(default.canonical_url(a).ok(), default.canonical_url(b).ok());
    assert_eq!(
        configured.canonical_url(a).ok(),
        configured.canonical_url(b).ok()
    );
}

#[test]
fn config_deserialises_with_defaults() {
    // serde_json is not a dependency of the core; exercise Deserialize through a tiny map.
    use serde::Deserialize;
    use serde::de::value::{Error, MapDeserializer};
    let map = MapDeserializer::<_, Error>::new(std::iter::empty::<(&str, &str)>());
    let config = CanonicalConfig::deserialize(map).expect("empty map gives defaults");
    assert_eq!(config, CanonicalConfig::default());
}

#[test]
fn invalid_urls_are_errors() {
    let c = canonicalizer();
    assert!(
        matches!(c.canonical_url("ftp://example.org/a.ts"), Err(ContentError::UnsupportedScheme(s)) if s == "ftp")
    );
    assert!(matches!(
        c.canonical_url("not a url"),
        Err(ContentError::InvalidUrl(_))
    ));
    assert!(matches!(
        c.canonical_url("/relative/path.ts"),
        Err(ContentError::InvalidUrl(_))
    ));
    assert!(matches!(
        c.canonical_url("data:text/plain,hello"),
        Err(ContentError::UnsupportedScheme(_))
    ));
    assert!(c.canonical_url("").is_err());
}
