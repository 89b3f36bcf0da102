//! The handshake: each side proves it holds the certified key *on this transport session*, so a
//! handshake recorded on one connection is worthless on any other.
//!
//! Both sides open with a `Hello` (certificate and a fresh nonce). On the other's `Hello`, each
//! checks the certificate and answers with a `Proof`: its signature over the swarm, both keys,
//! both transport fingerprints (for WebRTC, the DTLS certificate fingerprints the driver
//! reports) and both nonces. The other's nonce makes the proof fresh; the fingerprints tie it to
//! the encrypted channel it arrived on. Messages after a `Proof` are trusted to come from its
//! key, because the channel is.

use std::fmt;

use super::certificate::CertificateError;
use super::crypto::SignatureError;
use super::keys::PublicKey;
use crate::id::SwarmId;

/// A transport's fingerprint of one endpoint (for WebRTC: the SHA-256 of its DTLS certificate).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({:02x}{:02x}…)", self.0[0], self.0[1])
    }
}

/// The transport session a connection runs on, as the driver knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ChannelBinding {
    /// Our endpoint's fingerprint.
    pub local: Fingerprint,
    /// The remote endpoint's fingerprint.
    pub remote: Fingerprint,
}

/// One side of a handshake, as a proof names it.
#[derive(Clone, Copy, Debug)]
pub struct TranscriptSide<'a> {
    /// Its certified key.
    pub key: &'a PublicKey,
    /// Its transport fingerprint.
    pub fingerprint: &'a Fingerprint,
    /// The nonce its `Hello` carried.
    pub nonce: &'a [u8; 32],
}

/// What `signer` signs (under [`super::Domain::Handshake`]) for `receiver`: swarm, then the
/// signer's and the receiver's key, fingerprint and nonce.
pub fn transcript(
    swarm: &SwarmId,
    signer: TranscriptSide<'_>,
    receiver: TranscriptSide<'_>,
) -> Vec<u8> {
    let mut t = Vec::with_capacity(32 + 2 * (48 + 32 + 32));
    t.extend_from_slice(swarm.as_bytes());
    for side in [signer, receiver] {
        t.extend_from_slice(side.key.as_bytes());
        t.extend_from_slice(&side.fingerprint.0);
        t.extend_from_slice(side.nonce);
    }
    t
}

/// Why a peer's handshake was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// It speaks another protocol version.
    #[error("unsupported version {0}")]
    Version(u8),
    /// It joined another swarm.
    #[error("handshake for another swarm")]
    WrongSwarm,
    /// Its certified key is not the key of the peer the transport connected us to.
    #[error("handshake key does not match the connected peer id")]
    NotThePeer,
    /// Its certificate is not acceptable.
    #[error("{0}")]
    Certificate(#[from] CertificateError),
    /// Its proof does not verify for this session (forged, or replayed from another one).
    #[error("handshake proof refused: {0}")]
    Proof(SignatureError),
    /// A handshake message out of turn.
    #[error("{0}")]
    OutOfTurn(&'static str),
}
