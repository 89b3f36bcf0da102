//! Peer certificates: the authority (the control plane) vouches that a key belongs to a viewer
//! with a valid CDN session, for one swarm or all, until a wall-clock time. Identities then cost
//! a CDN-authorised session each, which is what makes Sybil attacks expensive.

use std::collections::VecDeque;
use std::fmt;

use rustc_hash::FxHashSet;

use super::crypto::{Crypto, Domain, SignatureError, verify_possession};
use super::keys::{Keypair, PublicKey, Signature};
use super::revocation::Revocations;
use crate::id::SwarmId;

/// Wall-clock time, in whole seconds since the Unix epoch. Certificates expire in it; the
/// engine otherwise runs on its monotonic [`crate::time::Instant`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixTime(pub u64);

/// The viewer session a certificate was issued for (the control plane's id for a validated CDN
/// session token); revocations can name it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId(pub [u8; 16]);

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId(")?;
        for b in &self.0[..4] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

/// Which swarms a certificate admits its holder to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// One stream's swarm.
    Swarm(SwarmId),
    /// Every swarm the authority serves (an agent watching several streams).
    AnySwarm,
}

impl Scope {
    /// Whether the scope admits `swarm`.
    pub fn covers(&self, swarm: &SwarmId) -> bool {
        match self {
            Self::Swarm(s) => s == swarm,
            Self::AnySwarm => true,
        }
    }
}

/// The authority's statement `{key, scope, session, not_after}` and its signature.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Certificate {
    /// The certified node key.
    pub public_key: PublicKey,
    /// Where it may take part.
    pub scope: Scope,
    /// The viewer session it was issued for.
    pub session: SessionId,
    /// The last second it is valid.
    pub not_after: UnixTime,
    /// The authority's signature over the fields above ([`Certificate::signed_bytes`]).
    pub signature: Signature,
}

/// Why a certificate was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertificateError {
    /// Not signed by the authority.
    #[error("certificate not signed by the authority: {0}")]
    Signature(#[from] SignatureError),
    /// Past its `not_after`.
    #[error("certificate expired at {} (now {})", .not_after.0, .now.0)]
    Expired {
        /// When it expired.
        not_after: UnixTime,
        /// The time checked.
        now: UnixTime,
    },
    /// Issued for another swarm.
    #[error("certificate is for another swarm")]
    WrongSwarm,
    /// Its key or session is on the authority's revocation list.
    #[error("certificate revoked")]
    Revoked,
    /// It certifies a key other than the one presented.
    #[error("certificate is for another key")]
    WrongKey,
}

impl Certificate {
    /// Encoded length: key, scope tag and swarm, session, `not_after`, signature.
    pub const ENCODED_LEN: usize = 48 + 1 + 32 + 16 + 8 + 96;

    /// The bytes the authority signs: key (48), scope tag (`0` swarm, `1` any), swarm id (32,
    /// zero for any), session (16), `not_after` (u64, big-endian). The wire carries the same
    /// bytes followed by the signature.
    pub fn signed_bytes(
        public_key: &PublicKey,
        scope: &Scope,
        session: &SessionId,
        not_after: UnixTime,
    ) -> Vec<u8> {
        let mut b = Vec::with_capacity(Self::ENCODED_LEN - 96);
        b.extend_from_slice(public_key.as_bytes());
        match scope {
            Scope::Swarm(s) => {
                b.push(0);
                b.extend_from_slice(s.as_bytes());
            }
            Scope::AnySwarm => {
                b.push(1);
                b.extend_from_slice(&[0; 32]);
            }
        }
        b.extend_from_slice(&session.0);
        b.extend_from_slice(&not_after.0.to_be_bytes());
        b
    }

    /// This certificate's statement: the bytes its signature covers.
    pub fn statement(&self) -> Vec<u8> {
        Self::signed_bytes(&self.public_key, &self.scope, &self.session, self.not_after)
    }
}

/// The signing side: the control plane holds one (so do the simulator and tests).
#[derive(Debug)]
pub struct Authority {
    keypair: Keypair,
}

impl Authority {
    /// An authority signing with `keypair`.
    pub fn new(keypair: Keypair) -> Self {
        Self { keypair }
    }

    /// The key peers check certificates against.
    pub fn public(&self) -> PublicKey {
        self.keypair.public()
    }

    /// Certifies `key` once it proved possession (without that check, same-message aggregates
    /// of attestations would be open to rogue-key forgeries). The caller has validated the
    /// viewer's session.
    ///
    /// # Errors
    ///
    /// The possession proof does not verify.
    pub fn issue(
        &self,
        crypto: &dyn Crypto,
        key: &PublicKey,
        possession: &Signature,
        scope: Scope,
        session: SessionId,
        not_after: UnixTime,
    ) -> Result<Certificate, SignatureError> {
        verify_possession(crypto, key, possession)?;
        let msg = Certificate::signed_bytes(key, &scope, &session, not_after);
        Ok(Certificate {
            public_key: *key,
            scope,
            session,
            not_after,
            signature: crypto.sign(&self.keypair, Domain::Certificate, &msg),
        })
    }

    /// Signs a revocation list (see [`super::revocation`]).
    pub(crate) fn sign(&self, crypto: &dyn Crypto, domain: Domain, msg: &[u8]) -> Signature {
        crypto.sign(&self.keypair, domain, msg)
    }
}

/// Checks certificates against the authority key. The pairing check runs once per certificate:
/// signatures that verified are remembered (a bounded set), while expiry, scope and revocation
/// are checked every time.
#[derive(Debug)]
pub struct CertificateVerifier {
    authority: PublicKey,
    verified: FxHashSet<[u8; 32]>,
    order: VecDeque<[u8; 32]>,
    capacity: usize,
}

impl CertificateVerifier {
    /// A verifier remembering up to `capacity` verified certificates.
    pub fn new(authority: PublicKey, capacity: usize) -> Self {
        Self {
            authority,
            verified: FxHashSet::default(),
            order: VecDeque::new(),
            capacity,
        }
    }

    /// The authority key certificates must carry a signature of.
    pub fn authority(&self) -> &PublicKey {
        &self.authority
    }

    /// Accepts `cert` for `swarm` at `now`, unless revoked.
    ///
    /// # Errors
    ///
    /// The first reason to refuse it: expired, wrong swarm, revoked, or a bad signature.
    pub fn check(
        &mut self,
        crypto: &dyn Crypto,
        cert: &Certificate,
        swarm: &SwarmId,
        now: UnixTime,
        revoked: &Revocations,
    ) -> Result<(), CertificateError> {
        if now > cert.not_after {
            return Err(CertificateError::Expired {
                not_after: cert.not_after,
                now,
            });
        }
        if !cert.scope.covers(swarm) {
            return Err(CertificateError::WrongSwarm);
        }
        if revoked.revokes(cert) {
            return Err(CertificateError::Revoked);
        }
        let msg = cert.statement();
        let mut h = blake3::Hasher::new();
        h.update(&msg);
        h.update(cert.signature.as_bytes());
        let digest = *h.finalize().as_bytes();
        if self.verified.contains(&digest) {
            return Ok(());
        }
        crypto.verify(&self.authority, Domain::Certificate, &msg, &cert.signature)?;
        if self.capacity > 0 {
            if self.order.len() >= self.capacity
                && let Some(old) = self.order.pop_front()
            {
                self.verified.remove(&old);
            }
            self.order.push_back(digest);
            self.verified.insert(digest);
        }
        Ok(())
    }
}
