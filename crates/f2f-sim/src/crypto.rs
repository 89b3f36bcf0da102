//! Cost models of the signature scheme and of segment verification, for large honest swarms.
//!
//! A real BLS verify costs about a millisecond; 10,000 nodes making and checking a few
//! handshakes each would spend most of a run's wall-clock time on pairings that always succeed.
//! `Modelled` keeps every signature the protocol makes and checks, but as a keyed hash: a
//! signature is `BLAKE3(public key, context, message)`, aggregates are XORs. Wrong keys, messages
//! or domains still fail, so the engine's refusals still work. Anyone who knows a public key can
//! make its signatures, so it models *honest* swarms only: scenarios with attackers use the real
//! scheme ([`f2f_core::identity::Bls`]), as does every scenario by default.

use std::sync::{Mutex, PoisonError};

use bytes::Bytes;
use f2f_core::identity::{Bls, Crypto, Domain, Keypair, PublicKey, Signature, SignatureError};
use f2f_core::integrity::{Hashing, IntegrityError, Outboard, Parents, SegmentHash};
use f2f_core::segment::SegmentData;
use rustc_hash::FxHashMap;

#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Modelled;

fn tag(key: &PublicKey, domain: Domain, msg: &[u8]) -> [u8; 96] {
    let mut h = blake3::Hasher::new();
    h.update(key.as_bytes());
    h.update(domain.context());
    h.update(msg);
    let mut out = [0; 96];
    h.finalize_xof().fill(&mut out);
    out
}

fn xor_all(tags: impl IntoIterator<Item = [u8; 96]>) -> [u8; 96] {
    let mut acc = [0; 96];
    for t in tags {
        for (a, b) in acc.iter_mut().zip(t) {
            *a ^= b;
        }
    }
    acc
}

fn matches(expected: [u8; 96], sig: &Signature) -> Result<(), SignatureError> {
    if &expected == sig.as_bytes() {
        Ok(())
    } else {
        Err(SignatureError::Invalid)
    }
}

impl Crypto for Modelled {
    fn sign(&self, key: &Keypair, domain: Domain, msg: &[u8]) -> Signature {
        Signature::from_bytes(tag(&key.public(), domain, msg))
    }

    fn verify(
        &self,
        key: &PublicKey,
        domain: Domain,
        msg: &[u8],
        sig: &Signature,
    ) -> Result<(), SignatureError> {
        matches(tag(key, domain, msg), sig)
    }

    fn aggregate(&self, sigs: &[Signature]) -> Result<Signature, SignatureError> {
        if sigs.is_empty() {
            return Err(SignatureError::Empty);
        }
        Ok(Signature::from_bytes(xor_all(
            sigs.iter().map(|s| *s.as_bytes()),
        )))
    }

    fn verify_aggregate(
        &self,
        keys: &[PublicKey],
        domain: Domain,
        msg: &[u8],
        sig: &Signature,
    ) -> Result<(), SignatureError> {
        if keys.is_empty() {
            return Err(SignatureError::Empty);
        }
        matches(xor_all(keys.iter().map(|k| tag(k, domain, msg))), sig)
    }

    fn verify_aggregate_distinct(
        &self,
        domain: Domain,
        items: &[(PublicKey, &[u8])],
        sig: &Signature,
    ) -> Result<(), SignatureError> {
        if items.is_empty() {
            return Err(SignatureError::Empty);
        }
        matches(xor_all(items.iter().map(|(k, m)| tag(k, domain, m))), sig)
    }

    fn verify_batch(
        &self,
        domain: Domain,
        items: &[(PublicKey, &[u8], Signature)],
    ) -> Result<(), SignatureError> {
        if items.is_empty() {
            return Err(SignatureError::Empty);
        }
        items
            .iter()
            .try_for_each(|(k, m, s)| self.verify(k, domain, m, s))
    }
}

/// The real scheme ([`Bls`]), with each verification's result remembered for the whole
/// simulated swarm. An attestation or certificate that a thousand nodes check costs the run
/// one pairing instead of a thousand; every node still calls the check and acts on its true
/// result, so forged and tampered signatures still fail (memoised per message, never
/// skipped, as hashing is). What one node's checks cost is measured by the crypto benches.
#[derive(Debug, Default)]
pub(crate) struct Memoised {
    inner: Bls,
    seen: Mutex<FxHashMap<[u8; 32], Result<(), SignatureError>>>,
}

/// Results remembered before the memo starts over (32 bytes and a result each).
const MEMO_CAPACITY: usize = 1 << 20;

impl Memoised {
    fn remember(
        &self,
        inputs: impl FnOnce(&mut blake3::Hasher),
        check: impl FnOnce() -> Result<(), SignatureError>,
    ) -> Result<(), SignatureError> {
        let mut h = blake3::Hasher::new();
        inputs(&mut h);
        let digest = *h.finalize().as_bytes();
        let memo = || self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(result) = memo().get(&digest) {
            return *result;
        }
        // Not under the lock: engines stepping in parallel check different things at once
        // (two checking the same thing both compute the one true result).
        let result = check();
        let mut seen = memo();
        if seen.len() >= MEMO_CAPACITY {
            seen.clear();
        }
        seen.insert(digest, result);
        result
    }
}

/// Feeds a length-prefixed field into a memo key.
fn field(h: &mut blake3::Hasher, bytes: &[u8]) {
    h.update(&(bytes.len() as u64).to_le_bytes());
    h.update(bytes);
}

impl Crypto for Memoised {
    fn sign(&self, key: &Keypair, domain: Domain, msg: &[u8]) -> Signature {
        self.inner.sign(key, domain, msg)
    }

    fn verify(
        &self,
        key: &PublicKey,
        domain: Domain,
        msg: &[u8],
        sig: &Signature,
    ) -> Result<(), SignatureError> {
        self.remember(
            |h| {
                for f in [b"one".as_slice(), key.as_bytes(), domain.context(), msg] {
                    field(h, f);
                }
                field(h, sig.as_bytes());
            },
            || self.inner.verify(key, domain, msg, sig),
        )
    }

    fn aggregate(&self, sigs: &[Signature]) -> Result<Signature, SignatureError> {
        self.inner.aggregate(sigs)
    }

    fn verify_aggregate(
        &self,
        keys: &[PublicKey],
        domain: Domain,
        msg: &[u8],
        sig: &Signature,
    ) -> Result<(), SignatureError> {
        self.remember(
            |h| {
                field(h, b"same");
                for k in keys {
                    field(h, k.as_bytes());
                }
                for f in [domain.context(), msg, sig.as_bytes()] {
                    field(h, f);
                }
            },
            || self.inner.verify_aggregate(keys, domain, msg, sig),
        )
    }

    fn verify_aggregate_distinct(
        &self,
        domain: Domain,
        items: &[(PublicKey, &[u8])],
        sig: &Signature,
    ) -> Result<(), SignatureError> {
        self.remember(
            |h| {
                field(h, b"distinct");
                for (k, m) in items {
                    field(h, k.as_bytes());
                    field(h, m);
                }
                field(h, domain.context());
                field(h, sig.as_bytes());
            },
            || self.inner.verify_aggregate_distinct(domain, items, sig),
        )
    }

    fn verify_batch(
        &self,
        domain: Domain,
        items: &[(PublicKey, &[u8], Signature)],
    ) -> Result<(), SignatureError> {
        self.inner.verify_batch(domain, items)
    }
}

/// Verification without hashing, for large honest swarms: pieces carry the bare range bytes (no
/// parent hashes), and are taken as they come.
///
/// Real verification copies every piece out of its encoding, which at a thousand nodes is
/// gigabytes of copies of the same segments (the simulator otherwise shares one buffer per
/// segment across the swarm), and hashes each segment once per node. The model keeps the
/// protocol's steps (hashes learned, trees kept, pieces bounded by chunk groups) but not the
/// cost; what it leaves out is the proof bytes on the wire, about 64 bytes per tree level per
/// piece (a few hundred bytes per 64 KiB piece), which shifts the figures slightly (measured in
/// docs/BENCHMARKS.md). It cannot detect corrupt bytes: scenarios with attackers use
/// [`f2f_core::integrity::Blake3`], the default.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ModelledHashing;

impl Hashing for ModelledHashing {
    fn outboard(&self, data: &SegmentData) -> Outboard {
        Outboard::expecting(SegmentHash([0; 32]), data.len())
    }

    fn encode(&self, _: &Outboard, _: u64, data: &Bytes) -> Result<Bytes, IntegrityError> {
        Ok(data.clone())
    }

    fn verify(
        &self,
        _: &Outboard,
        start: u64,
        end: u64,
        encoded: &Bytes,
    ) -> Result<(Bytes, Parents), IntegrityError> {
        if encoded.len() as u64 == end.saturating_sub(start) {
            Ok((encoded.clone(), Parents::default()))
        } else {
            Err(IntegrityError::Length)
        }
    }
}
