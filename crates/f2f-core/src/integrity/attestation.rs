//! Hash attestations, for streams whose origin signs nothing: a certified peer that downloaded a
//! whole segment from the CDN signs `(segment key, hash, size)`. Same-message signatures add up
//! into one, so a set of signers travels as their certificates plus one aggregate, and is
//! checked with a single pairing whatever its size. A receiver trusts a hash once `k` distinct
//! certified peers attest it (see `engine::quorum`); a group of `k − 1` colluders cannot make
//! it accept a forged one.

use rustc_hash::FxHashSet;

use super::SegmentHash;
use crate::id::{PeerId, SegmentKey, SwarmId};
use crate::identity::{
    Certificate, CertificateError, CertificateVerifier, Crypto, Domain, Keypair, PublicKey,
    Revocations, Signature, SignatureError, UnixTime,
};

/// Certified peers' joint statement that segment `key` is `size` bytes with BLAKE3 `hash`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attestation {
    /// The segment.
    pub key: SegmentKey,
    /// Its hash, as the signers downloaded it from the CDN.
    pub hash: SegmentHash,
    /// Its length.
    pub size: u64,
    /// The signers' certificates (distinct keys).
    pub signers: Vec<Certificate>,
    /// The aggregate of every signer's signature over [`Attestation::statement`].
    pub signature: Signature,
}

/// Why an attestation was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AttestationError {
    /// No signers.
    #[error("attestation has no signers")]
    Empty,
    /// One key signs twice (it would count twice towards the quorum).
    #[error("attestation lists a signer twice")]
    DuplicateSigner,
    /// A signer's certificate is not valid for this swarm now.
    #[error("attestation signer {index}: {error}")]
    Certificate {
        /// The signer's position in the list.
        index: usize,
        /// What is wrong with its certificate.
        error: CertificateError,
    },
    /// The aggregate signature does not verify.
    #[error("attestation signature: {0}")]
    Signature(#[from] SignatureError),
}

impl Attestation {
    /// What every signer signs (under [`Domain::Attestation`]).
    pub fn statement(key: &SegmentKey, hash: &SegmentHash, size: u64) -> Vec<u8> {
        let mut b = Vec::with_capacity(SegmentKey::ENCODED_LEN + 32 + 8);
        b.extend_from_slice(&key.to_bytes());
        b.extend_from_slice(&hash.0);
        b.extend_from_slice(&size.to_be_bytes());
        b
    }

    /// One signer's attestation.
    pub fn sign(
        crypto: &dyn Crypto,
        keypair: &Keypair,
        certificate: &Certificate,
        key: SegmentKey,
        hash: SegmentHash,
        size: u64,
    ) -> Self {
        let msg = Self::statement(&key, &hash, size);
        Self {
            key,
            hash,
            size,
            signers: vec![certificate.clone()],
            signature: crypto.sign(keypair, Domain::Attestation, &msg),
        }
    }

    /// The signers' peer ids.
    pub fn signer_ids(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.signers.iter().map(|c| c.public_key.peer_id())
    }

    /// Checks every signer's certificate for `swarm` (a pairing once per certificate, through
    /// `verifier`'s cache) and the aggregate signature (one pairing).
    ///
    /// # Errors
    ///
    /// [`AttestationError`] naming the first problem.
    pub fn verify(
        &self,
        crypto: &dyn Crypto,
        verifier: &mut CertificateVerifier,
        revocations: &Revocations,
        swarm: &SwarmId,
        now: UnixTime,
    ) -> Result<(), AttestationError> {
        if self.signers.is_empty() {
            return Err(AttestationError::Empty);
        }
        let mut seen = FxHashSet::default();
        let mut keys: Vec<PublicKey> = Vec::with_capacity(self.signers.len());
        for (index, cert) in self.signers.iter().enumerate() {
            if !seen.insert(cert.public_key) {
                return Err(AttestationError::DuplicateSigner);
            }
            verifier
                .check(crypto, cert, swarm, now, revocations)
                .map_err(|error| AttestationError::Certificate { index, error })?;
            keys.push(cert.public_key);
        }
        let msg = Self::statement(&self.key, &self.hash, self.size);
        crypto.verify_aggregate(&keys, Domain::Attestation, &msg, &self.signature)?;
        Ok(())
    }

    /// Joins verified attestations of the same statement whose signer sets do not overlap
    /// into one (no pairing: the signatures just add up).
    ///
    /// # Errors
    ///
    /// [`SignatureError`] if a signature is malformed (never, for verified parts).
    ///
    /// # Panics
    ///
    /// If `parts` is empty.
    pub fn join(crypto: &dyn Crypto, parts: &[&Self]) -> Result<Self, SignatureError> {
        let first = parts.first().expect("at least one part");
        let sigs: Vec<Signature> = parts.iter().map(|p| p.signature).collect();
        Ok(Self {
            key: first.key,
            hash: first.hash,
            size: first.size,
            signers: parts.iter().flat_map(|p| p.signers.clone()).collect(),
            signature: crypto.aggregate(&sigs)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::{RenditionId, SegmentPosition, VariantTag};
    use crate::identity::{Authority, Bls, Scope, SessionId, prove_possession};

    const NOW: UnixTime = UnixTime(1_000);

    fn swarm() -> SwarmId {
        SwarmId::from_canonical("live/ch1")
    }

    fn key() -> SegmentKey {
        SegmentKey {
            swarm: swarm(),
            rendition: RenditionId::from_canonical("720p"),
            position: SegmentPosition::Sequence(7),
            variant: VariantTag::from_u64(0),
        }
    }

    struct Setup {
        authority: Authority,
        peers: Vec<(Keypair, Certificate)>,
    }

    fn setup(n: u8) -> Setup {
        let authority = Authority::new(Keypair::from_entropy(&[200; 32]));
        let peers = (0..n)
            .map(|i| {
                let kp = Keypair::from_entropy(&[i; 32]);
                let cert = certify(&authority, &kp, Scope::Swarm(swarm()));
                (kp, cert)
            })
            .collect();
        Setup { authority, peers }
    }

    fn certify(authority: &Authority, kp: &Keypair, scope: Scope) -> Certificate {
        let pop = prove_possession(&Bls::new(), kp);
        (authority.issue(
            &Bls::new(),
            &kp.public(),
            &pop,
            scope,
            SessionId([1; 16]),
            NOW,
        ))
        .expect("valid possession proof")
    }

    fn attest(s: &Setup, i: usize, hash: [u8; 32]) -> Attestation {
        let (kp, cert) = &s.peers[i];
        Attestation::sign(&Bls::new(), kp, cert, key(), SegmentHash(hash), 1234)
    }

    fn check(s: &Setup, att: &Attestation) -> Result<(), AttestationError> {
        let mut verifier = CertificateVerifier::new(s.authority.public(), 16);
        att.verify(
            &Bls::new(),
            &mut verifier,
            &Revocations::default(),
            &swarm(),
            NOW,
        )
    }

    #[test]
    fn disjoint_attestations_join_into_one_that_verifies() {
        let s = setup(3);
        let parts: Vec<Attestation> = (0..3).map(|i| attest(&s, i, [5; 32])).collect();
        let joined = Attestation::join(&Bls::new(), &parts.iter().collect::<Vec<_>>()).unwrap();
        assert_eq!(joined.signers.len(), 3);
        assert_eq!(check(&s, &joined), Ok(()));
    }

    #[test]
    fn a_changed_hash_size_or_signer_list_fails() {
        let s = setup(2);
        let parts = [attest(&s, 0, [5; 32]), attest(&s, 1, [5; 32])];
        let good = Attestation::join(&Bls::new(), &[&parts[0], &parts[1]]).unwrap();
        let mut forged = good.clone();
        forged.hash = SegmentHash([6; 32]);
        assert!(matches!(
            check(&s, &forged),
            Err(AttestationError::Signature(_))
        ));
        let mut inflated = good.clone();
        inflated.size += 1;
        assert!(matches!(
            check(&s, &inflated),
            Err(AttestationError::Signature(_))
        ));
        // Claiming a signer who did not sign.
        let mut padded = parts[0].clone();
        padded.signers.push(s.peers[1].1.clone());
        assert!(matches!(
            check(&s, &padded),
            Err(AttestationError::Signature(_))
        ));
    }

    #[test]
    fn a_signer_counted_twice_is_refused() {
        let s = setup(1);
        let one = attest(&s, 0, [5; 32]);
        let twice = Attestation::join(&Bls::new(), &[&one, &one]).unwrap();
        assert_eq!(check(&s, &twice), Err(AttestationError::DuplicateSigner));
    }

    #[test]
    fn signers_need_a_certificate_for_this_swarm() {
        let s = setup(1);
        let (kp, _) = &s.peers[0];
        let elsewhere = certify(&s.authority, kp, Scope::Swarm(SwarmId::from_canonical("x")));
        let att = Attestation::sign(&Bls::new(), kp, &elsewhere, key(), SegmentHash([5; 32]), 1);
        assert!(matches!(
            check(&s, &att),
            Err(AttestationError::Certificate {
                index: 0,
                error: CertificateError::WrongSwarm
            })
        ));
        // Self-issued: a rogue authority's certificate.
        let rogue = Authority::new(Keypair::from_entropy(&[99; 32]));
        let cert = certify(&rogue, kp, Scope::Swarm(swarm()));
        let att = Attestation::sign(&Bls::new(), kp, &cert, key(), SegmentHash([5; 32]), 1);
        assert!(matches!(
            check(&s, &att),
            Err(AttestationError::Certificate { index: 0, .. })
        ));
        let empty = Attestation {
            signers: Vec::new(),
            ..att
        };
        assert_eq!(check(&s, &empty), Err(AttestationError::Empty));
    }
}
