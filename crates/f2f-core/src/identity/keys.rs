//! BLS12-381 keys and signatures as they travel: fixed-size byte strings, parsed (and
//! group-checked) only when a signature is verified.

use std::fmt;

use blst::min_pk;

use crate::id::PeerId;

/// Length of a compressed public key (a G1 point).
pub const PUBLIC_KEY_LEN: usize = 48;
/// Length of a compressed signature (a G2 point).
pub const SIGNATURE_LEN: usize = 96;

/// A node's or an authority's public key, compressed.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PublicKey([u8; PUBLIC_KEY_LEN]);

impl PublicKey {
    /// Wraps compressed bytes (as carried on the wire); validity is checked when used.
    pub const fn from_bytes(bytes: [u8; PUBLIC_KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// The compressed bytes.
    pub const fn as_bytes(&self) -> &[u8; PUBLIC_KEY_LEN] {
        &self.0
    }

    /// The peer id this key speaks for: the BLAKE3 hash of the compressed key.
    pub fn peer_id(&self) -> PeerId {
        PeerId::from_bytes(*blake3::hash(&self.0).as_bytes())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.peer_id())
    }
}

/// A signature, compressed.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature([u8; SIGNATURE_LEN]);

impl Signature {
    /// Wraps compressed bytes (as carried on the wire); validity is checked when verified.
    pub const fn from_bytes(bytes: [u8; SIGNATURE_LEN]) -> Self {
        Self(bytes)
    }

    /// The compressed bytes.
    pub const fn as_bytes(&self) -> &[u8; SIGNATURE_LEN] {
        &self.0
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({:02x}{:02x}…)", self.0[0], self.0[1])
    }
}

/// A key pair. The secret is zeroised when dropped (blst does it) and never printed.
#[derive(Clone)]
pub struct Keypair {
    secret: min_pk::SecretKey,
    public: PublicKey,
}

/// The secret key bytes were not a valid scalar.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a valid BLS12-381 secret key")]
pub struct InvalidSecretKey;

impl Keypair {
    /// Derives a key pair from at least 32 bytes of secret randomness (the caller's: the core
    /// has no entropy source of its own), per the IETF BLS `KeyGen`.
    ///
    /// # Panics
    ///
    /// If `ikm` is shorter than 32 bytes: a key from less entropy is a bug in the caller.
    pub fn from_entropy(ikm: &[u8]) -> Self {
        assert!(ikm.len() >= 32, "key material needs at least 32 bytes");
        let secret = min_pk::SecretKey::key_gen(ikm, &[]).expect("ikm length checked above");
        Self::from_secret(secret)
    }

    /// Restores a key pair saved with [`Self::secret_bytes`].
    ///
    /// # Errors
    ///
    /// If the bytes are not a secret key (zero, or not below the group order).
    pub fn from_secret_bytes(bytes: &[u8; 32]) -> Result<Self, InvalidSecretKey> {
        let secret = min_pk::SecretKey::from_bytes(bytes).map_err(|_| InvalidSecretKey)?;
        Ok(Self::from_secret(secret))
    }

    fn from_secret(secret: min_pk::SecretKey) -> Self {
        let public = PublicKey(secret.sk_to_pk().to_bytes());
        Self { secret, public }
    }

    /// The secret key, for the owner to persist (the Linux agent keeps it in a 0600 file).
    pub fn secret_bytes(&self) -> [u8; 32] {
        self.secret.to_bytes()
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        self.public
    }

    /// The peer id of this key pair.
    pub fn peer_id(&self) -> PeerId {
        self.public.peer_id()
    }

    pub(crate) fn secret(&self) -> &min_pk::SecretKey {
        &self.secret
    }
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keypair({})", self.peer_id())
    }
}
