//! The origin's signed segment hashes: a small text file published next to a live playlist, in
//! which the origin lists the BLAKE3 hash and size of every segment the playlist names (every
//! watermark variant of it, too) and signs the list with its key. A driver fetches it with the
//! playlist, checks the signature with [`SignedHashes::verify`], and feeds the entries to the
//! engine as `Input::SegmentHash`.
//!
//! ```text
//! frog2frog-hashes 1
//! origin <public key, 96 hex digits>
//! seg <uri> <variant> <size> <blake3, 64 hex digits>
//! ...
//! sig <signature, 192 hex digits>
//! ```
//!
//! `uri` is the segment's URI as the playlist writes it (no spaces); `variant` is `-` for the
//! only version of a segment, or the id of an A/B watermark variant when the CDN edge picks the
//! variant by token (variants the playlist names by URI are simply separate lines). The
//! signature, under [`Domain::Manifest`], covers every byte before the `sig` line. Lines end in
//! `\n`; nothing may follow the `sig` line.

use std::fmt::Write as _;

use super::SegmentHash;
use crate::identity::{Crypto, Domain, Keypair, PublicKey, SIGNATURE_LEN, Signature};

const MAGIC: &str = "frog2frog-hashes 1";

/// One segment (or one variant of it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HashEntry {
    /// The segment's URI as the playlist writes it.
    pub uri: String,
    /// The watermark variant, when the CDN picks it by token.
    pub variant: Option<String>,
    /// Length in bytes.
    pub size: u64,
    /// BLAKE3 of the whole segment.
    pub hash: SegmentHash,
}

/// A parsed signed-hashes file (not yet verified).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedHashes {
    /// The key the file says signed it.
    pub origin: PublicKey,
    /// The segments.
    pub entries: Vec<HashEntry>,
    signed: String,
    signature: Signature,
}

/// Why a signed-hashes file was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// Larger than the caller's bound.
    #[error("signed hashes file of {len} bytes exceeds the limit of {max}")]
    TooLong {
        /// Its length.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// Not the expected format.
    #[error("signed hashes line {line}: {why}")]
    Format {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        why: &'static str,
    },
    /// Signed by another key than the one the driver trusts.
    #[error("signed hashes are from another origin key")]
    WrongOrigin,
    /// The signature does not verify.
    #[error("signed hashes signature: {0}")]
    Signature(#[from] crate::identity::SignatureError),
}

/// `N` bytes from exactly `2 N` hex digits.
fn unhex<const N: usize>(text: &str) -> Option<[u8; N]>
where
    [u8; N]: hex::FromHex,
{
    hex::FromHex::from_hex(text).ok()
}

impl SignedHashes {
    /// Writes and signs the file for `entries` (the origin side: `frog2frog sign`).
    ///
    /// # Panics
    ///
    /// If a URI or variant contains whitespace: the caller lists what a playlist names.
    pub fn sign(crypto: &dyn Crypto, origin: &Keypair, entries: &[HashEntry]) -> String {
        let mut text = format!(
            "{MAGIC}\norigin {}\n",
            hex::encode(origin.public().as_bytes())
        );
        for e in entries {
            let variant = e.variant.as_deref().unwrap_or("-");
            assert!(
                !e.uri.contains(char::is_whitespace) && !variant.contains(char::is_whitespace),
                "URIs and variants have no whitespace"
            );
            let _ = writeln!(
                text,
                "seg {} {variant} {} {}",
                e.uri,
                e.size,
                hex::encode(e.hash.0)
            );
        }
        let signature = crypto.sign(origin, Domain::Manifest, text.as_bytes());
        let _ = writeln!(text, "sig {}", hex::encode(signature.as_bytes()));
        text
    }

    /// Parses a file of at most `max_len` bytes; allocation is bounded by it.
    ///
    /// # Errors
    ///
    /// [`ManifestError::TooLong`] or [`ManifestError::Format`] naming the first bad line.
    pub fn parse(text: &str, max_len: usize) -> Result<Self, ManifestError> {
        if text.len() > max_len {
            return Err(ManifestError::TooLong {
                len: text.len(),
                max: max_len,
            });
        }
        let bad = |line, why| ManifestError::Format { line, why };
        let sig_at = text
            .rfind("\nsig ")
            .map(|i| i + 1)
            .ok_or(bad(1, "no signature line"))?;
        let (signed, sig_line) = text.split_at(sig_at);
        let mut lines = signed.lines().enumerate().map(|(i, l)| (i + 1, l));
        if lines.next().map(|(_, l)| l) != Some(MAGIC) {
            return Err(bad(1, "not a frog2frog-hashes 1 file"));
        }
        let origin = match lines.next() {
            Some((_, l)) => l
                .strip_prefix("origin ")
                .and_then(unhex::<48>)
                .map(PublicKey::from_bytes)
                .ok_or(bad(2, "expected `origin <key>`"))?,
            None => return Err(bad(2, "expected `origin <key>`")),
        };
        let mut entries = Vec::new();
        for (n, line) in lines {
            let mut f = line.split(' ');
            let (Some("seg"), Some(uri), Some(variant), Some(size), Some(hash), None) =
                (f.next(), f.next(), f.next(), f.next(), f.next(), f.next())
            else {
                return Err(bad(n, "expected `seg <uri> <variant> <size> <hash>`"));
            };
            if uri.is_empty() || variant.is_empty() {
                return Err(bad(n, "empty uri or variant"));
            }
            entries.push(HashEntry {
                uri: uri.to_owned(),
                variant: (variant != "-").then(|| variant.to_owned()),
                size: size.parse().map_err(|_| bad(n, "size is not a number"))?,
                hash: SegmentHash(unhex::<32>(hash).ok_or(bad(n, "hash is not 64 hex digits"))?),
            });
        }
        let line = signed.lines().count() + 1;
        let sig_hex = sig_line
            .strip_prefix("sig ")
            .and_then(|s| s.strip_suffix('\n'))
            .ok_or(bad(line, "expected `sig <signature>` and a final newline"))?;
        let signature = unhex::<SIGNATURE_LEN>(sig_hex)
            .map(Signature::from_bytes)
            .ok_or(bad(line, "signature is not 192 hex digits"))?;
        Ok(Self {
            origin,
            entries,
            signed: signed.to_owned(),
            signature,
        })
    }

    /// Checks that `origin` (the key the driver trusts for this stream) signed the file.
    ///
    /// # Errors
    ///
    /// [`ManifestError::WrongOrigin`] or a signature that does not verify.
    pub fn verify(&self, crypto: &dyn Crypto, origin: &PublicKey) -> Result<(), ManifestError> {
        if self.origin != *origin {
            return Err(ManifestError::WrongOrigin);
        }
        crypto.verify(
            origin,
            Domain::Manifest,
            self.signed.as_bytes(),
            &self.signature,
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Bls;

    fn entries() -> Vec<HashEntry> {
        (0..3)
            .map(|i| HashEntry {
                uri: format!("seg{i}.ts"),
                variant: (i == 2).then(|| "B".to_owned()),
                size: 1_000_000 + i,
                hash: SegmentHash::of(&[i as u8; 10]),
            })
            .collect()
    }

    #[test]
    fn a_signed_file_parses_back_and_verifies() {
        let (bls, origin) = (Bls::new(), Keypair::from_entropy(&[9; 32]));
        let text = SignedHashes::sign(&bls, &origin, &entries());
        let parsed = SignedHashes::parse(&text, 1 << 20).expect("well formed");
        assert_eq!(parsed.entries, entries());
        assert_eq!(parsed.verify(&bls, &origin.public()), Ok(()));
    }

    #[test]
    fn a_changed_hash_or_another_key_is_refused() {
        let (bls, origin) = (Bls::new(), Keypair::from_entropy(&[9; 32]));
        let text = SignedHashes::sign(&bls, &origin, &entries());
        let tampered = text.replacen("1000001", "1000002", 1);
        let parsed = SignedHashes::parse(&tampered, 1 << 20).expect("well formed");
        assert!(matches!(
            parsed.verify(&bls, &origin.public()),
            Err(ManifestError::Signature(_))
        ));
        let other = Keypair::from_entropy(&[8; 32]);
        let parsed = SignedHashes::parse(&text, 1 << 20).expect("well formed");
        assert_eq!(
            parsed.verify(&bls, &other.public()),
            Err(ManifestError::WrongOrigin)
        );
    }

    #[test]
    fn malformed_files_name_their_bad_line() {
        let (bls, origin) = (Bls::new(), Keypair::from_entropy(&[9; 32]));
        let text = SignedHashes::sign(&bls, &origin, &entries());
        assert!(matches!(
            SignedHashes::parse(&text, 100),
            Err(ManifestError::TooLong { .. })
        ));
        let cases = [
            (text.replacen("frog2frog-hashes 1", "m3u8", 1), 1),
            (text.replacen("seg seg1.ts", "seg  seg1.ts", 1), 4),
            (text.replacen(" 1000001 ", " lots ", 1), 4),
            (text.replace("\nsig ", "\nsignature "), 1),
            (format!("{text}trailing\n"), 6),
        ];
        for (bad, line) in cases {
            match SignedHashes::parse(&bad, 1 << 20) {
                Err(ManifestError::Format { line: l, .. }) => assert_eq!(l, line, "{bad}"),
                other => panic!("{other:?} for {bad}"),
            }
        }
    }
}
