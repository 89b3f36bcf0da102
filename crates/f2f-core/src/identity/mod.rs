//! Who a node is and why others believe it: BLS12-381 key pairs (`PeerId` = hash of the public
//! key), certificates from the control plane's authority key (Sybil resistance), revocation
//! lists, and the handshake that binds a certified key to one transport session.
//!
//! Signatures go through the [`Crypto`] trait; [`Bls`] (blst) is the implementation every real
//! node uses. A node only exchanges data with peers whose handshake proved a valid, unexpired,
//! unrevoked certificate for its swarm.

mod certificate;
mod crypto;
mod handshake;
mod keys;
mod revocation;

use std::sync::Arc;

pub use certificate::{
    Authority, Certificate, CertificateError, CertificateVerifier, Scope, SessionId, UnixTime,
};
pub use crypto::{Bls, Crypto, Domain, SignatureError, prove_possession, verify_possession};
pub use handshake::{ChannelBinding, Fingerprint, HandshakeError, TranscriptSide, transcript};
pub use keys::{InvalidSecretKey, Keypair, PUBLIC_KEY_LEN, PublicKey, SIGNATURE_LEN, Signature};
pub use revocation::{Applied, RevocationList, Revocations};

/// What a node needs to take part in a swarm: its key pair and certificate, the authority key
/// that vouches for its peers, and the signature implementation.
#[derive(Clone, Debug)]
pub struct Identity {
    /// The node's key pair.
    pub keypair: Keypair,
    /// The authority's certificate for `keypair`'s public key.
    pub certificate: Certificate,
    /// The key peer certificates must be signed with.
    pub authority: PublicKey,
    /// Signs and verifies.
    pub crypto: Arc<dyn Crypto>,
}
