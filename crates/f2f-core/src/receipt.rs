//! Delivery receipts: proof, for the control plane, of the bytes each peer uploaded.
//!
//! Once per time window (not per transfer: 10,000 viewers would cost thousands of pairings a
//! second), each receiver signs, for every peer that sent it verified bytes, `(uploader,
//! receiver, swarm, window, bytes, segments)` and hands it to that uploader. The uploader adds
//! the signatures it holds into one aggregate and reports a [`ReceiptBundle`]; the control plane
//! checks it with one aggregate verification. The uploader cannot raise a count or invent a
//! receiver: every statement is the receiver's, under a key the authority certified.

use rustc_hash::FxHashSet;

use crate::id::{PeerId, SwarmId};
use crate::identity::{
    Certificate, CertificateError, CertificateVerifier, Crypto, Domain, PublicKey, Revocations,
    Signature, SignatureError, UnixTime,
};

/// What one receiver vouches for about one uploader in one window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The window's first second (Unix time, a multiple of the window length).
    pub window: u64,
    /// Verified media bytes the receiver got from the uploader in the window.
    pub bytes: u64,
    /// Segments those bytes belong to.
    pub segments: u32,
}

impl Delivery {
    /// What the receiver signs (under [`Domain::Receipt`]).
    pub fn statement(&self, uploader: &PeerId, receiver: &PeerId, swarm: &SwarmId) -> Vec<u8> {
        let mut b = Vec::with_capacity(32 * 3 + 8 + 8 + 4);
        b.extend_from_slice(uploader.as_bytes());
        b.extend_from_slice(receiver.as_bytes());
        b.extend_from_slice(swarm.as_bytes());
        b.extend_from_slice(&self.window.to_be_bytes());
        b.extend_from_slice(&self.bytes.to_be_bytes());
        b.extend_from_slice(&self.segments.to_be_bytes());
        b
    }
}

/// One receiver's part of a bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiptEntry {
    /// The receiver's certificate (the control plane checks it was issued by its authority).
    pub receiver: Certificate,
    /// What it vouched for.
    pub delivery: Delivery,
}

/// An uploader's receipts, with their signatures added into one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiptBundle {
    /// Who uploaded.
    pub uploader: PeerId,
    /// The swarm.
    pub swarm: SwarmId,
    /// The receipts.
    pub entries: Vec<ReceiptEntry>,
    /// The aggregate of every entry's receipt signature.
    pub signature: Signature,
}

/// Why a bundle was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiptError {
    /// No receipts.
    #[error("receipt bundle is empty")]
    Empty,
    /// One receiver's receipt for one window appears twice (it would count twice).
    #[error("receipt bundle holds two receipts from one receiver for one window")]
    Duplicate,
    /// A receipt names the uploader as its own receiver.
    #[error("receipt bundle holds a receipt the uploader issued itself")]
    SelfIssued,
    /// A receiver's certificate is not valid for this swarm at the window's end.
    #[error("receipt {index}: {error}")]
    Certificate {
        /// The entry.
        index: usize,
        /// What is wrong with the receiver's certificate.
        error: CertificateError,
    },
    /// The aggregate does not verify: some statement is not what its receiver signed.
    #[error("receipt signatures: {0}")]
    Signature(#[from] SignatureError),
}

impl ReceiptBundle {
    /// Total bytes vouched for.
    pub fn bytes(&self) -> u64 {
        self.entries.iter().map(|e| e.delivery.bytes).sum()
    }

    /// Checks every receiver's certificate against the authority (valid at `at`, not in
    /// `revoked`) and the aggregate signature over all statements. Within a bundle each
    /// receiver counts once per window; across bundles (an uploader can report one twice) the
    /// control plane must count each (uploader, receiver, window) once.
    ///
    /// # Errors
    ///
    /// [`ReceiptError`] naming the first problem; nothing in a refused bundle counts.
    pub fn verify(
        &self,
        crypto: &dyn Crypto,
        verifier: &mut CertificateVerifier,
        revoked: &Revocations,
        at: UnixTime,
    ) -> Result<(), ReceiptError> {
        if self.entries.is_empty() {
            return Err(ReceiptError::Empty);
        }
        let mut seen = FxHashSet::default();
        let mut statements: Vec<(PublicKey, Vec<u8>)> = Vec::with_capacity(self.entries.len());
        for (index, e) in self.entries.iter().enumerate() {
            let receiver = e.receiver.public_key.peer_id();
            if receiver == self.uploader {
                return Err(ReceiptError::SelfIssued);
            }
            if !seen.insert((receiver, e.delivery.window)) {
                return Err(ReceiptError::Duplicate);
            }
            (verifier.check(crypto, &e.receiver, &self.swarm, at, revoked))
                .map_err(|error| ReceiptError::Certificate { index, error })?;
            let msg = e.delivery.statement(&self.uploader, &receiver, &self.swarm);
            statements.push((e.receiver.public_key, msg));
        }
        let items: Vec<(PublicKey, &[u8])> =
            statements.iter().map(|(k, m)| (*k, m.as_slice())).collect();
        crypto.verify_aggregate_distinct(Domain::Receipt, &items, &self.signature)?;
        Ok(())
    }
}
