//! The built-in origin as a player and a CDN client see it.

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, SystemTime};

use f2f_origin::{Clip, Copy, Live, Origin, OriginConfig, Rendition, TokenKey, Watermark};

/// `baseMediaDecodeTime` of the fragment's track (`moof/traf/tfdt`, version 1).
fn decode_time(segment: &[u8]) -> u64 {
    let at = segment
        .windows(4)
        .position(|w| w == b"tfdt")
        .expect("a tfdt box");
    assert_eq!(segment[at + 4], 1, "version-1 tfdt");
    u64::from_be_bytes(segment[at + 8..at + 16].try_into().unwrap())
}

fn live(config: OriginConfig, started_ago: Duration) -> Live {
    Live::new(Clip::builtin(), config, SystemTime::now() - started_ago)
}

#[test]
fn segments_run_on_past_the_clip_unique_and_padded_to_the_bit_rate() {
    let live = live(OriginConfig::default(), Duration::ZERO);
    let first = live.segment(Rendition::Video, 0, &Copy::Common);
    let looped = live.segment(Rendition::Video, 8, &Copy::Common);
    // One loop later the video timeline is 16 s (12,800 ticks/s) further on.
    assert_eq!(decode_time(&looped), decode_time(&first) + 16 * 12_800);
    assert_eq!(
        decode_time(&live.segment(Rendition::Audio, 9, &Copy::Common)),
        decode_time(&live.segment(Rendition::Audio, 1, &Copy::Common)) + 16 * 48_000
    );
    assert_ne!(first, looped);
    // 2 Mb/s minus the audio's 70 kb/s, for 2 s.
    assert!(first.len() >= 482_500, "{}", first.len());
    assert_eq!(
        first,
        live.segment(Rendition::Video, 0, &Copy::Common),
        "deterministic"
    );
    let a = live.segment(Rendition::Video, 3, &Copy::Variant('a'));
    let b = live.segment(Rendition::Video, 3, &Copy::Variant('b'));
    assert_ne!(a, b);
    assert_eq!(a.len(), b.len());
}

#[test]
fn the_window_slides_with_the_clock() {
    let live = live(OriginConfig::default(), Duration::from_secs(10));
    let now = SystemTime::now();
    // Started a window (12 s) before, plus 10 s: segments 0..=10 are complete.
    assert_eq!(live.window(now), 5..=10);
    assert_eq!(live.until_published(10, now), Some(Duration::ZERO));
    assert!(live.until_published(11, now).unwrap() <= Duration::from_secs(2));
    assert_eq!(live.until_published(14, now), None);
    let playlist = live.hls_media(Rendition::Video, now, None);
    assert!(playlist.contains("#EXT-X-MEDIA-SEQUENCE:5\n"));
    assert!(playlist.contains("video/10.m4s") && !playlist.contains("video/11.m4s"));
}

async fn start(config: OriginConfig, started_ago: Duration) -> Origin {
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    Origin::start(live(config, started_ago), addr)
        .await
        .unwrap()
}

#[tokio::test]
async fn tokens_ranges_and_errors_follow_http() {
    let key = TokenKey::new([3; 32]);
    let config = OriginConfig {
        tokens: Some(key.clone()),
        watermark: Watermark::Paths,
        ad_every: Some(4),
        ..OriginConfig::default()
    };
    let origin = start(config, Duration::ZERO).await;
    let base = format!("http://{}", origin.addr);
    let client = reqwest::Client::new();
    let get = |path: &str| client.get(format!("{base}{path}")).send();

    let refused = get("/live/video.m3u8").await.unwrap();
    assert_eq!(refused.status(), 403);
    assert_eq!(refused.headers()["access-control-allow-origin"], "*");
    let token = key.issue("s1", u64::MAX / 2);
    let playlist = get(&format!("/live/video.m3u8?hdnts={token}"))
        .await
        .unwrap();
    assert_eq!(playlist.status(), 200);
    let playlist = playlist.text().await.unwrap();
    // Per-session variant paths and personal ads, every link carrying the viewer's token.
    assert!(playlist.contains(&format!(
        "video/wm/{}/0.m4s?hdnts={token}",
        f2f_origin::variant_of("s1", 0)
    )));
    assert!(playlist.contains(&format!("#EXT-X-CUE-OUT:DURATION=2.000\n#EXTINF:2.000,\n/ads/s1/video/3.m4s?hdnts={token}\n#EXT-X-CUE-IN")));
    // A token bound to a path (`acl`) opens that path only.
    let narrow = key.issue_session(&f2f_origin::Session {
        id: "s1".into(),
        expires: u64::MAX / 2,
        acl: Some("/live/*".into()),
        watermark: None,
    });
    let status = |path: String| {
        let request = client.get(format!("{base}{path}")).send();
        async move { request.await.unwrap().status() }
    };
    assert_eq!(
        status(format!("/live/video.m3u8?hdnts={narrow}")).await,
        200
    );
    assert_eq!(
        status(format!("/ads/s1/video/3.m4s?hdnts={narrow}")).await,
        403
    );
    let forged = token.replace("sid=s1", "sid=s2");
    assert_eq!(
        get(&format!("/live/video/1.m4s?hdnts={forged}"))
            .await
            .unwrap()
            .status(),
        403
    );

    let path = format!("/live/video/wm/a/1.m4s?hdnts={token}");
    let whole = get(&path).await.unwrap().bytes().await.unwrap();
    let part = client
        .get(format!("{base}{path}"))
        .header("range", "bytes=100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(
        part.headers()["content-range"],
        format!("bytes 100-199/{}", whole.len()).as_str()
    );
    assert_eq!(part.bytes().await.unwrap(), whole.slice(100..200));
    let beyond = client
        .get(format!("{base}{path}"))
        .header("range", format!("bytes={}-", whole.len()))
        .send()
        .await
        .unwrap();
    assert_eq!(beyond.status(), 416);
    let future = get(&format!("/live/video/99.m4s?hdnts={token}"))
        .await
        .unwrap();
    assert_eq!(future.status(), 404);
    let not_an_ad = get(&format!("/ads/s1/video/2.m4s?hdnts={token}"))
        .await
        .unwrap();
    assert_eq!(not_an_ad.status(), 404);
}

/// ffmpeg (a real player's demuxer) reads a stretch of the live stream that crosses the clip's
/// loop, without a single warning: timestamps run on, segments decode.
fn ffmpeg_reads_cleanly(url: &str, extra: &[&str]) {
    let output = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "warning"])
        .args(extra)
        .args(["-i", url, "-t", "8", "-c", "copy", "-f", "null", "-"])
        .output()
        .expect("ffmpeg is installed (.ci/run installs it)");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "ffmpeg failed: {stderr}");
    // ffmpeg's HLS reader reloads the init segment before each fragment and says so.
    let warnings: Vec<_> = (stderr.lines())
        .filter(|l| !l.contains("duplicated MOOV") && !l.contains("Last message repeated"))
        .collect();
    assert!(warnings.is_empty(), "{warnings:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn ffmpeg_plays_hls_and_dash_across_the_loop() {
    // 16 s in: the window (segments 5..=12) spans the loop at segment 8.
    let origin = start(OriginConfig::default(), Duration::from_secs(16)).await;
    let (hls, dash) = (origin.hls_url(), origin.dash_url());
    tokio::task::spawn_blocking(move || {
        ffmpeg_reads_cleanly(&hls, &["-live_start_index", "0"]);
    })
    .await
    .unwrap();
    tokio::task::spawn_blocking(move || ffmpeg_reads_cleanly(&dash, &[]))
        .await
        .unwrap();
}

#[tokio::test]
async fn signed_hashes_verify_and_match_the_served_bytes() {
    let key = f2f_core::identity::Keypair::from_entropy(&[9; 32]);
    let public = key.public();
    let config = OriginConfig {
        signing: Some(key),
        ..OriginConfig::default()
    };
    let origin = start(config, Duration::ZERO).await;
    let base = format!("http://{}/live/", origin.addr);
    for listing in ["video.m3u8", "manifest.mpd"] {
        let text = reqwest::get(format!("{base}{listing}.f2f-hashes"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let hashes = f2f_core::integrity::SignedHashes::parse(&text, 1 << 20).unwrap();
        hashes
            .verify(&f2f_core::identity::Bls::new(), &public)
            .expect("signed by the origin's key");
        let renditions = if listing == "video.m3u8" { 1 } else { 2 };
        assert_eq!(
            hashes.entries.len(),
            6 * renditions,
            "the window's segments"
        );
        for entry in &hashes.entries {
            let bytes = reqwest::get(format!("{base}{}", entry.uri))
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            assert_eq!(entry.size, bytes.len() as u64);
            assert_eq!(entry.hash, f2f_core::integrity::SegmentHash::of(&bytes));
        }
    }
}
