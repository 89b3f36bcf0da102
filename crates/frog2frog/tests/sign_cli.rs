//! `frog2frog sign` as an origin runs it: a playlist and its segment files in, a signed hashes
//! file out that a node accepts with the origin's public key, and refuses once altered.

use std::process::Command;

use f2f_core::identity::{Bls, PublicKey};
use f2f_core::integrity::{SegmentHash, SignedHashes};

const PLAYLIST: &str = "#EXTM3U
#EXT-X-VERSION:3
#EXT-X-TARGETDURATION:2
#EXT-X-MEDIA-SEQUENCE:7
#EXTINF:2.0,
seg7.ts
#EXTINF:2.0,
seg8.ts
";

/// The public key `sign` printed, and the file it wrote, checked with that key.
fn verified(stderr: &str, file: &std::path::Path) -> (PublicKey, SignedHashes) {
    let public = stderr
        .lines()
        .find_map(|l| l.strip_prefix("origin key "))
        .expect("prints the public key");
    let public = PublicKey::from_bytes(hex::FromHex::from_hex(public).expect("48 bytes in hex"));
    let text = std::fs::read_to_string(file).expect("written");
    let signed = SignedHashes::parse(&text, 1 << 20).expect("well formed");
    assert_eq!(signed.verify(&Bls::new(), &public), Ok(()));
    (public, signed)
}

#[test]
fn signs_every_segment_and_every_variant() {
    let dir = std::env::temp_dir().join(format!("f2f-sign-{}", std::process::id()));
    let b = dir.join("B");
    std::fs::create_dir_all(&b).expect("temp dir");
    std::fs::write(dir.join("index.m3u8"), PLAYLIST).expect("write");
    for (name, fill) in [("seg7.ts", 1u8), ("seg8.ts", 2)] {
        std::fs::write(dir.join(name), vec![fill; 5000]).expect("write");
        std::fs::write(b.join(name), vec![fill + 10; 5000]).expect("write");
    }
    let key = dir.join("origin.key");
    let out = Command::new(env!("CARGO_BIN_EXE_frog2frog"))
        .args(["sign", "--new-key", "--key"])
        .arg(&key)
        .arg(format!("--variant=B={}", b.display()))
        .arg(dir.join("index.m3u8"))
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key).expect("key").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the key is private");
    }
    let (public, signed) = verified(&stderr, &dir.join("index.m3u8.f2f-hashes"));
    let listed: Vec<(&str, Option<&str>, u64, SegmentHash)> = (signed.entries.iter())
        .map(|e| (e.uri.as_str(), e.variant.as_deref(), e.size, e.hash))
        .collect();
    assert_eq!(
        listed,
        [
            ("seg7.ts", None, 5000, SegmentHash::of(&[1; 5000])),
            ("seg7.ts", Some("B"), 5000, SegmentHash::of(&[11; 5000])),
            ("seg8.ts", None, 5000, SegmentHash::of(&[2; 5000])),
            ("seg8.ts", Some("B"), 5000, SegmentHash::of(&[12; 5000])),
        ]
    );

    // Signing again keeps the key; an altered file no longer verifies.
    let again = Command::new(env!("CARGO_BIN_EXE_frog2frog"))
        .args(["sign", "--key"])
        .arg(&key)
        .arg(dir.join("index.m3u8"))
        .output()
        .expect("runs");
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("signed 2 segments"));
    let text = std::fs::read_to_string(dir.join("index.m3u8.f2f-hashes")).expect("written");
    let altered = text.replacen("seg8.ts", "seg9.ts", 1);
    let signed = SignedHashes::parse(&altered, 1 << 20).expect("well formed");
    assert!(signed.verify(&Bls::new(), &public).is_err());
}

#[test]
fn a_missing_segment_is_a_clear_error() {
    let dir = std::env::temp_dir().join(format!("f2f-sign-missing-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(dir.join("index.m3u8"), PLAYLIST).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_frog2frog"))
        .args(["sign", "--new-key", "--key"])
        .arg(dir.join("origin.key"))
        .arg(dir.join("index.m3u8"))
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("seg7.ts"), "{stderr}");
}

const MPD: &str = r#"<?xml version="1.0"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT6S"
     profiles="urn:mpeg:dash:profile:isoff-live:2011" minBufferTime="PT2S">
 <Period id="p0" start="PT0S">
  <AdaptationSet contentType="video" mimeType="video/mp4">
   <SegmentTemplate media="v/$RepresentationID$/seg$Number$.m4s"
                    initialization="v/$RepresentationID$/init.mp4"
                    duration="2" timescale="1" startNumber="1"/>
   <Representation id="720p" bandwidth="3000000" codecs="avc1.64001f" width="1280" height="720"/>
  </AdaptationSet>
 </Period>
</MPD>
"#;

#[test]
fn signs_the_segments_a_dash_mpd_names() {
    let dir = std::env::temp_dir().join(format!("f2f-sign-dash-{}", std::process::id()));
    let media = dir.join("v/720p");
    std::fs::create_dir_all(&media).expect("temp dir");
    std::fs::write(dir.join("live.mpd"), MPD).expect("write");
    let files = ["init.mp4", "seg1.m4s", "seg2.m4s", "seg3.m4s"];
    for (i, name) in files.iter().enumerate() {
        std::fs::write(media.join(name), vec![i as u8; 1000 + i]).expect("write");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_frog2frog"))
        .args(["sign", "--new-key", "--key"])
        .arg(dir.join("origin.key"))
        .arg(dir.join("live.mpd"))
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let (_, signed) = verified(&stderr, &dir.join("live.mpd.f2f-hashes"));
    let listed: Vec<(String, u64, SegmentHash)> = (signed.entries.iter())
        .map(|e| (e.uri.clone(), e.size, e.hash))
        .collect();
    let expected: Vec<(String, u64, SegmentHash)> = (files.iter().enumerate())
        .map(|(i, name)| {
            let bytes = vec![i as u8; 1000 + i];
            (
                format!("v/720p/{name}"),
                bytes.len() as u64,
                SegmentHash::of(&bytes),
            )
        })
        .collect();
    assert_eq!(listed, expected);
}
