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
    let public = stderr
        .lines()
        .find_map(|l| l.strip_prefix("origin key "))
        .expect("prints the public key");
    let public = PublicKey::from_bytes(hex::FromHex::from_hex(public).expect("48 bytes in hex"));

    let text = std::fs::read_to_string(dir.join("index.m3u8.f2f-hashes")).expect("written");
    let signed = SignedHashes::parse(&text, 1 << 20).expect("well formed");
    assert_eq!(signed.verify(&Bls::new(), &public), Ok(()));
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
