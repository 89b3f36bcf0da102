//! Revocation: the authority withdraws certificates by session or by key. A numbered, signed
//! list reaches nodes with the remote config and spreads between neighbours; the newest list a
//! node verified is the one it applies.

use std::collections::BTreeSet;

use super::certificate::{Authority, Certificate, SessionId};
use super::crypto::{Crypto, Domain, SignatureError};
use super::keys::{PublicKey, Signature};

/// A signed revocation list. Each list replaces the previous one whole (`serial` orders them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevocationList {
    /// Higher replaces lower.
    pub serial: u64,
    /// Revoked sessions, ascending.
    pub sessions: Vec<SessionId>,
    /// Revoked node keys, ascending.
    pub keys: Vec<PublicKey>,
    /// The authority's signature over [`RevocationList::signed_bytes`].
    pub signature: Signature,
}

impl RevocationList {
    /// Builds and signs a list (the control plane does this).
    pub fn issue(
        authority: &Authority,
        crypto: &dyn Crypto,
        serial: u64,
        sessions: impl IntoIterator<Item = SessionId>,
        keys: impl IntoIterator<Item = PublicKey>,
    ) -> Self {
        let sessions: Vec<SessionId> = sessions
            .into_iter()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let keys: Vec<PublicKey> = keys
            .into_iter()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let msg = Self::signed_bytes(serial, &sessions, &keys);
        Self {
            serial,
            signature: authority.sign(crypto, Domain::Revocation, &msg),
            sessions,
            keys,
        }
    }

    /// Serial (u64), session count (u32) and sessions, key count (u32) and keys; big-endian.
    pub fn signed_bytes(serial: u64, sessions: &[SessionId], keys: &[PublicKey]) -> Vec<u8> {
        let mut b = Vec::with_capacity(16 + sessions.len() * 16 + keys.len() * 48);
        b.extend_from_slice(&serial.to_be_bytes());
        b.extend_from_slice(&(sessions.len() as u32).to_be_bytes());
        for s in sessions {
            b.extend_from_slice(&s.0);
        }
        b.extend_from_slice(&(keys.len() as u32).to_be_bytes());
        for k in keys {
            b.extend_from_slice(k.as_bytes());
        }
        b
    }

    fn verify(&self, crypto: &dyn Crypto, authority: &PublicKey) -> Result<(), SignatureError> {
        let msg = Self::signed_bytes(self.serial, &self.sessions, &self.keys);
        crypto.verify(authority, Domain::Revocation, &msg, &self.signature)
    }
}

/// What a list changed when it was applied.
#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    /// Not newer than the list in force: nothing changed.
    Stale,
    /// Now in force: pass it on.
    Newer,
}

/// The revocations in force at one node.
#[derive(Debug, Default)]
pub struct Revocations {
    current: Option<RevocationList>,
    sessions: BTreeSet<SessionId>,
    keys: BTreeSet<PublicKey>,
}

impl Revocations {
    /// Puts `list` in force if the authority signed it and it is newer than the one in force.
    ///
    /// # Errors
    ///
    /// The signature does not verify; the list in force stays.
    pub fn apply(
        &mut self,
        crypto: &dyn Crypto,
        authority: &PublicKey,
        list: &RevocationList,
    ) -> Result<Applied, SignatureError> {
        if self
            .current
            .as_ref()
            .is_some_and(|c| c.serial >= list.serial)
        {
            return Ok(Applied::Stale);
        }
        list.verify(crypto, authority)?;
        self.sessions = list.sessions.iter().copied().collect();
        self.keys = list.keys.iter().copied().collect();
        self.current = Some(list.clone());
        Ok(Applied::Newer)
    }

    /// Whether `cert`'s session or key is revoked.
    pub fn revokes(&self, cert: &Certificate) -> bool {
        self.sessions.contains(&cert.session) || self.keys.contains(&cert.public_key)
    }

    /// The list in force, to pass on to neighbours.
    pub fn current(&self) -> Option<&RevocationList> {
        self.current.as_ref()
    }
}
