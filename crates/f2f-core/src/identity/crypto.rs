//! The signature scheme behind a trait, as rustls puts its crypto behind a provider: the engine
//! calls [`Crypto`], the driver chooses the implementation. [`Bls`] is the real one (blst,
//! public keys in G1, the proof-of-possession scheme); the simulator may swap in a cost model
//! for runs of thousands of honest nodes (see `f2f-sim`).

use std::collections::VecDeque;
use std::fmt;
use std::sync::Mutex;

use blst::{BLST_ERROR, blst_scalar, min_pk};
use rustc_hash::FxHashMap;

use super::keys::{Keypair, PublicKey, Signature};

/// What a signature is for. Each purpose signs under its own context string, so a signature made
/// for one can never be passed off as another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Domain {
    /// A proof of possession: the key signs its own public key (checked before a key is
    /// admitted, so same-message aggregates are safe from rogue keys).
    Possession,
    /// The authority's signature on a peer certificate.
    Certificate,
    /// The authority's signature on a revocation list.
    Revocation,
    /// A node's proof, in the handshake, that it holds its key on this transport session.
    Handshake,
    /// An origin's signature on its segment hashes.
    Manifest,
    /// A peer's signature that a segment it downloaded from the CDN has a given hash.
    Attestation,
    /// A receiver's signature on the bytes an uploader sent it in one window.
    Receipt,
    /// The operator's signature on a version of the remote configuration.
    Config,
}

impl Domain {
    /// The context string signatures for this purpose are made over (prefixed to the message).
    pub fn context(self) -> &'static [u8] {
        match self {
            Self::Possession => b"frog2frog/1/possession\0",
            Self::Certificate => b"frog2frog/1/certificate\0",
            Self::Revocation => b"frog2frog/1/revocation\0",
            Self::Handshake => b"frog2frog/1/handshake\0",
            Self::Manifest => b"frog2frog/1/manifest\0",
            Self::Attestation => b"frog2frog/1/attestation\0",
            Self::Receipt => b"frog2frog/1/receipt\0",
            Self::Config => b"frog2frog/1/config\0",
        }
    }
}

/// Why a signature was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// A key or signature is not a valid point of its group.
    #[error("malformed key or signature")]
    Malformed,
    /// Well-formed, but it does not verify.
    #[error("signature does not verify")]
    Invalid,
    /// Nothing to verify (an empty aggregate or batch).
    #[error("no signatures to verify")]
    Empty,
}

/// A signature scheme with aggregation.
pub trait Crypto: fmt::Debug + Send + Sync {
    /// Signs `msg` for `domain`.
    fn sign(&self, key: &Keypair, domain: Domain, msg: &[u8]) -> Signature;

    /// Checks one signature.
    ///
    /// # Errors
    ///
    /// [`SignatureError`] when the key or signature is malformed or does not verify.
    fn verify(
        &self,
        key: &PublicKey,
        domain: Domain,
        msg: &[u8],
        sig: &Signature,
    ) -> Result<(), SignatureError>;

    /// Adds signatures into one.
    ///
    /// # Errors
    ///
    /// [`SignatureError::Malformed`] if one is not a signature, [`SignatureError::Empty`] for
    /// none.
    fn aggregate(&self, sigs: &[Signature]) -> Result<Signature, SignatureError>;

    /// Checks an aggregate of signatures by `keys` on the same `msg`: one pairing check for any
    /// number of signers. Only for keys whose possession proof was checked.
    ///
    /// # Errors
    ///
    /// As [`Self::verify`].
    fn verify_aggregate(
        &self,
        keys: &[PublicKey],
        domain: Domain,
        msg: &[u8],
        sig: &Signature,
    ) -> Result<(), SignatureError>;

    /// Checks one aggregate of signatures by `items`' keys, each on its own message (the
    /// messages must differ: each names its signer). Fails as a whole if any one is bad.
    ///
    /// # Errors
    ///
    /// As [`Self::verify`].
    fn verify_aggregate_distinct(
        &self,
        domain: Domain,
        items: &[(PublicKey, &[u8])],
        sig: &Signature,
    ) -> Result<(), SignatureError>;

    /// Checks many signatures on distinct messages at once, faster than one by one. Fails as a
    /// whole if any one is bad.
    ///
    /// # Errors
    ///
    /// As [`Self::verify`].
    fn verify_batch(
        &self,
        domain: Domain,
        items: &[(PublicKey, &[u8], Signature)],
    ) -> Result<(), SignatureError>;
}

/// Proves possession of a key: the key signs its own public key.
pub fn prove_possession(crypto: &dyn Crypto, key: &Keypair) -> Signature {
    crypto.sign(key, Domain::Possession, key.public().as_bytes())
}

/// Checks a possession proof made by [`prove_possession`].
///
/// # Errors
///
/// As [`Crypto::verify`].
pub fn verify_possession(
    crypto: &dyn Crypto,
    key: &PublicKey,
    proof: &Signature,
) -> Result<(), SignatureError> {
    crypto.verify(key, Domain::Possession, key.as_bytes(), proof)
}

/// BLS12-381 with blst: `min_pk` (48-byte keys, 96-byte signatures), the IETF
/// proof-of-possession ciphersuite.
///
/// Decompressing and group-checking a public key costs about a twentieth of a verify, so keys
/// seen before are kept parsed: an aggregate over a hundred known attesters then costs one
/// pairing check and a hundred point additions, not a hundred decompressions.
#[derive(Debug, Default)]
pub struct Bls {
    keys: Mutex<KeyCache>,
}

/// Parsed public keys, oldest dropped first.
#[derive(Default)]
struct KeyCache {
    parsed: FxHashMap<PublicKey, min_pk::PublicKey>,
    order: VecDeque<PublicKey>,
}

impl fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyCache({} keys)", self.parsed.len())
    }
}

/// Parsed keys kept by [`Bls`] (about 1.5 MB at most).
const KEY_CACHE: usize = 8192;

impl Bls {
    /// A scheme with an empty key cache.
    pub fn new() -> Self {
        Self::default()
    }

    fn public(&self, key: &PublicKey) -> Result<min_pk::PublicKey, SignatureError> {
        // A poisoned lock only means another thread panicked mid-insert: the map is still sound.
        let mut cache = self
            .keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(pk) = cache.parsed.get(key) {
            return Ok(*pk);
        }
        // `key_validate` rejects the identity point and points outside the subgroup.
        let pk = min_pk::PublicKey::key_validate(key.as_bytes())
            .map_err(|_| SignatureError::Malformed)?;
        if cache.order.len() >= KEY_CACHE
            && let Some(old) = cache.order.pop_front()
        {
            cache.parsed.remove(&old);
        }
        cache.order.push_back(*key);
        cache.parsed.insert(*key, pk);
        Ok(pk)
    }
}

const SIG_DST: &[u8] = b"BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_";
const POP_DST: &[u8] = b"BLS_POP_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_";

fn dst(domain: Domain) -> &'static [u8] {
    if domain == Domain::Possession {
        POP_DST
    } else {
        SIG_DST
    }
}

/// The IETF possession proof signs the bare public key; everything else its context first.
fn aug(domain: Domain) -> &'static [u8] {
    if domain == Domain::Possession {
        b""
    } else {
        domain.context()
    }
}

fn check(err: BLST_ERROR) -> Result<(), SignatureError> {
    match err {
        BLST_ERROR::BLST_SUCCESS => Ok(()),
        BLST_ERROR::BLST_VERIFY_FAIL => Err(SignatureError::Invalid),
        _ => Err(SignatureError::Malformed),
    }
}

fn signature(sig: &Signature) -> Result<min_pk::Signature, SignatureError> {
    min_pk::Signature::sig_validate(sig.as_bytes(), true).map_err(|_| SignatureError::Malformed)
}

impl Crypto for Bls {
    fn sign(&self, key: &Keypair, domain: Domain, msg: &[u8]) -> Signature {
        let sig = key.secret().sign(msg, dst(domain), aug(domain));
        Signature::from_bytes(sig.to_bytes())
    }

    fn verify(
        &self,
        key: &PublicKey,
        domain: Domain,
        msg: &[u8],
        sig: &Signature,
    ) -> Result<(), SignatureError> {
        let (pk, sig) = (self.public(key)?, signature(sig)?);
        check(sig.verify(false, msg, dst(domain), aug(domain), &pk, false))
    }

    fn aggregate(&self, sigs: &[Signature]) -> Result<Signature, SignatureError> {
        if sigs.is_empty() {
            return Err(SignatureError::Empty);
        }
        let parsed = sigs.iter().map(signature).collect::<Result<Vec<_>, _>>()?;
        let refs: Vec<&min_pk::Signature> = parsed.iter().collect();
        let agg = min_pk::AggregateSignature::aggregate(&refs, false)
            .map_err(|_| SignatureError::Malformed)?;
        Ok(Signature::from_bytes(agg.to_signature().to_bytes()))
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
        let pks = (keys.iter())
            .map(|k| self.public(k))
            .collect::<Result<Vec<_>, _>>()?;
        let refs: Vec<&min_pk::PublicKey> = pks.iter().collect();
        let sig = signature(sig)?;
        let msg = [aug(domain), msg].concat();
        check(sig.fast_aggregate_verify(false, &msg, dst(domain), &refs))
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
        let pks = (items.iter())
            .map(|(k, _)| self.public(k))
            .collect::<Result<Vec<_>, _>>()?;
        let msgs: Vec<Vec<u8>> = items
            .iter()
            .map(|(_, m)| [aug(domain), m].concat())
            .collect();
        let pk_refs: Vec<&min_pk::PublicKey> = pks.iter().collect();
        let msg_refs: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
        let sig = signature(sig)?;
        check(sig.aggregate_verify(false, &msg_refs, dst(domain), &pk_refs, false))
    }

    fn verify_batch(
        &self,
        domain: Domain,
        items: &[(PublicKey, &[u8], Signature)],
    ) -> Result<(), SignatureError> {
        if items.is_empty() {
            return Err(SignatureError::Empty);
        }
        let mut pks = Vec::with_capacity(items.len());
        let mut sigs = Vec::with_capacity(items.len());
        let mut msgs = Vec::with_capacity(items.len());
        // The random weights that stop a forger from making bad signatures cancel out come from
        // a hash of everything being verified (the core has no entropy source): a forger cannot
        // choose signatures to suit weights that depend on those very signatures.
        let mut transcript = blake3::Hasher::new_derive_key("frog2frog/1/batch-weights");
        for (pk, msg, sig) in items {
            pks.push(self.public(pk)?);
            sigs.push(signature(sig)?);
            msgs.push([aug(domain), msg].concat());
            transcript.update(pk.as_bytes());
            transcript.update(&(msg.len() as u64).to_le_bytes());
            transcript.update(msg);
            transcript.update(sig.as_bytes());
        }
        let mut xof = transcript.finalize_xof();
        let rands: Vec<blst_scalar> = (0..items.len())
            .map(|_| {
                let mut b = [0u8; 32];
                xof.fill(&mut b[..8]);
                blst_scalar { b }
            })
            .collect();
        let pk_refs: Vec<&min_pk::PublicKey> = pks.iter().collect();
        let sig_refs: Vec<&min_pk::Signature> = sigs.iter().collect();
        let msg_refs: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
        check(min_pk::Signature::verify_multiple_aggregate_signatures(
            &msg_refs,
            dst(domain),
            &pk_refs,
            false,
            &sig_refs,
            false,
            &rands,
            64,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::InvalidSecretKey;

    fn key(n: u8) -> Keypair {
        Keypair::from_entropy(&[n; 32])
    }

    #[test]
    fn a_signature_verifies_only_for_its_key_message_and_domain() {
        let bls = Bls::new();
        let (a, b) = (key(1), key(2));
        let sig = bls.sign(&a, Domain::Handshake, b"hello");
        assert_eq!(
            bls.verify(&a.public(), Domain::Handshake, b"hello", &sig),
            Ok(())
        );
        let wrong = [
            bls.verify(&b.public(), Domain::Handshake, b"hello", &sig),
            bls.verify(&a.public(), Domain::Handshake, b"hellp", &sig),
            bls.verify(&a.public(), Domain::Certificate, b"hello", &sig),
        ];
        assert_eq!(wrong, [Err(SignatureError::Invalid); 3]);
    }

    #[test]
    fn garbage_keys_and_signatures_are_malformed_not_panics() {
        let bls = Bls::new();
        let a = key(1);
        let sig = bls.sign(&a, Domain::Handshake, b"m");
        let junk_pk = PublicKey::from_bytes([0xff; 48]);
        let junk_sig = Signature::from_bytes([0x17; 96]);
        assert_eq!(
            bls.verify(&junk_pk, Domain::Handshake, b"m", &sig),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            bls.verify(&a.public(), Domain::Handshake, b"m", &junk_sig),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            bls.aggregate(&[sig, junk_sig]),
            Err(SignatureError::Malformed)
        );
    }

    #[test]
    fn possession_proofs_are_not_ordinary_signatures() {
        let bls = Bls::new();
        let a = key(3);
        let proof = prove_possession(&bls, &a);
        assert_eq!(verify_possession(&bls, &a.public(), &proof), Ok(()));
        // The same bytes signed under the ordinary ciphersuite are no proof.
        let plain = bls.sign(&a, Domain::Handshake, a.public().as_bytes());
        assert!(verify_possession(&bls, &a.public(), &plain).is_err());
    }

    #[test]
    fn same_message_aggregate_needs_every_signer() {
        let bls = Bls::new();
        let keys: Vec<Keypair> = (10..20).map(key).collect();
        let pks: Vec<PublicKey> = keys.iter().map(Keypair::public).collect();
        let sigs: Vec<Signature> = (keys.iter())
            .map(|k| bls.sign(k, Domain::Handshake, b"segment 7 is abc"))
            .collect();
        let agg = bls.aggregate(&sigs).expect("valid signatures");
        let msg = b"segment 7 is abc";
        assert_eq!(
            bls.verify_aggregate(&pks, Domain::Handshake, msg, &agg),
            Ok(())
        );
        assert_eq!(
            bls.verify_aggregate(&pks[1..], Domain::Handshake, msg, &agg),
            Err(SignatureError::Invalid)
        );
        let short = bls.aggregate(&sigs[1..]).expect("valid signatures");
        assert_eq!(
            bls.verify_aggregate(&pks, Domain::Handshake, msg, &short),
            Err(SignatureError::Invalid)
        );
    }

    #[test]
    fn a_batch_fails_when_one_signature_is_bad() {
        let bls = Bls::new();
        let keys: Vec<Keypair> = (30..40).map(key).collect();
        let msgs: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i; 40]).collect();
        let mut items: Vec<(PublicKey, &[u8], Signature)> = (keys.iter().zip(&msgs))
            .map(|(k, m)| (k.public(), m.as_slice(), bls.sign(k, Domain::Handshake, m)))
            .collect();
        assert_eq!(bls.verify_batch(Domain::Handshake, &items), Ok(()));
        items[4].2 = items[5].2;
        assert_eq!(
            bls.verify_batch(Domain::Handshake, &items),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            bls.verify_batch(Domain::Handshake, &[]),
            Err(SignatureError::Empty)
        );
    }

    #[test]
    fn a_keypair_survives_saving_its_secret() {
        let a = key(5);
        let back = Keypair::from_secret_bytes(&a.secret_bytes()).expect("valid secret");
        assert_eq!(back.public(), a.public());
        assert_eq!(back.peer_id(), a.public().peer_id());
        assert_eq!(
            Keypair::from_secret_bytes(&[0; 32]).map(|k| k.public()),
            Err(InvalidSecretKey)
        );
    }
}
