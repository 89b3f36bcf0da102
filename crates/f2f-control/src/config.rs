//! Remote configuration: numbered versions of the engine settings an operator changes on
//! running agents (`f2f_core::config::Config::SETTABLE`), signed with the operator's key.
//! Agents check the signature and every value before they apply a version, and keep the last
//! good one otherwise.
//!
//! On the wire (and in the database) a version is its JSON text and a signature over it, so
//! the signed bytes are exactly the bytes received.

use std::collections::BTreeMap;

use f2f_core::config::{Config, ConfigError};
use f2f_core::identity::{
    Crypto, Domain, Keypair, PublicKey, RevocationList, SessionId, Signature, SignatureError,
};
use serde::{Deserialize, Serialize};

/// The longest signed config accepted.
pub const MAX_CONFIG_LEN: usize = 16 * 1024;

/// One version of the remote configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteConfig {
    /// Increases with every change; agents ignore a version not above the one they run.
    pub version: u64,
    /// `Config::SETTABLE` key → value.
    pub settings: BTreeMap<String, String>,
}

/// A version and the operator's signature over its text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedConfig {
    /// The [`RemoteConfig`]'s JSON.
    pub body: String,
    /// The operator's signature over `body`.
    #[serde(with = "hex::serde")]
    pub signature: [u8; 96],
}

/// Why a signed config is refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteConfigError {
    /// Longer than [`MAX_CONFIG_LEN`].
    #[error("config of {0} bytes exceeds the limit")]
    TooLong(usize),
    /// Not signed by the operator.
    #[error("config signature: {0}")]
    Signature(#[from] SignatureError),
    /// Not a config.
    #[error("malformed config: {0}")]
    Malformed(#[from] serde_json::Error),
    /// A setting the engine refuses.
    #[error(transparent)]
    Setting(#[from] ConfigError),
}

impl RemoteConfig {
    /// Signs this version with the operator's key.
    pub fn sign(&self, crypto: &dyn Crypto, operator: &Keypair) -> SignedConfig {
        let body = serde_json::to_string(self).expect("a config always serialises");
        let signature = crypto.sign(operator, Domain::Config, body.as_bytes());
        SignedConfig {
            body,
            signature: *signature.as_bytes(),
        }
    }

    /// `base` with these settings applied, checked as a whole.
    ///
    /// # Errors
    ///
    /// A key or value the engine refuses.
    pub fn apply_to(&self, base: &Config) -> Result<Config, ConfigError> {
        let mut config = base.clone();
        for (key, value) in &self.settings {
            config.set(key, value)?;
        }
        config.validate()?;
        Ok(config)
    }
}

impl SignedConfig {
    /// The version, if the operator signed it.
    ///
    /// # Errors
    ///
    /// Too long, not signed by `operator`, or not a config.
    pub fn verify(
        &self,
        crypto: &dyn Crypto,
        operator: &PublicKey,
    ) -> Result<RemoteConfig, RemoteConfigError> {
        if self.body.len() > MAX_CONFIG_LEN {
            return Err(RemoteConfigError::TooLong(self.body.len()));
        }
        let signature = Signature::from_bytes(self.signature);
        crypto.verify(operator, Domain::Config, self.body.as_bytes(), &signature)?;
        Ok(serde_json::from_str(&self.body)?)
    }
}

/// The authority's signed revocation list in JSON; it travels on the config stream beside
/// the config, and agents hand it to their engines (`Input::Revocations`), which check the
/// signature and pass it on to their neighbours.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireRevocations {
    /// Increases with every revocation.
    pub serial: u64,
    /// Revoked certificate sessions (16 bytes each, hex).
    pub sessions: Vec<String>,
    /// Revoked keys (48 bytes each, hex).
    pub keys: Vec<String>,
    /// The authority's signature.
    #[serde(with = "hex::serde")]
    pub signature: [u8; 96],
}

impl From<&RevocationList> for WireRevocations {
    fn from(list: &RevocationList) -> Self {
        Self {
            serial: list.serial,
            sessions: list.sessions.iter().map(|s| hex::encode(s.0)).collect(),
            keys: list
                .keys
                .iter()
                .map(|k| hex::encode(k.as_bytes()))
                .collect(),
            signature: *list.signature.as_bytes(),
        }
    }
}

impl TryFrom<&WireRevocations> for RevocationList {
    type Error = hex::FromHexError;

    fn try_from(w: &WireRevocations) -> Result<Self, Self::Error> {
        let mut sessions = Vec::with_capacity(w.sessions.len());
        for s in &w.sessions {
            let mut id = [0; 16];
            hex::decode_to_slice(s, &mut id)?;
            sessions.push(SessionId(id));
        }
        let mut keys = Vec::with_capacity(w.keys.len());
        for k in &w.keys {
            let mut key = [0; 48];
            hex::decode_to_slice(k, &mut key)?;
            keys.push(PublicKey::from_bytes(key));
        }
        Ok(Self {
            serial: w.serial,
            sessions,
            keys,
            signature: Signature::from_bytes(w.signature),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use f2f_core::identity::Bls;

    #[test]
    fn only_the_operators_signature_and_valid_settings_pass() {
        let crypto = Bls::new();
        let operator = Keypair::from_entropy(&[1; 32]);
        let config = RemoteConfig {
            version: 3,
            settings: [("scheduler.cdn_budget".to_owned(), "2".to_owned())].into(),
        };
        let signed = config.sign(&crypto, &operator);
        let checked = signed.verify(&crypto, &operator.public()).unwrap();
        assert_eq!(checked, config);
        let applied = checked.apply_to(&Config::default()).unwrap();
        assert_eq!(applied.scheduler.cdn_budget, 2.0);

        let other = Keypair::from_entropy(&[2; 32]);
        assert!(matches!(
            signed.verify(&crypto, &other.public()),
            Err(RemoteConfigError::Signature(_))
        ));
        let mut tampered = signed.clone();
        tampered.body = tampered.body.replace("\"2\"", "\"20\"");
        assert!(tampered.verify(&crypto, &operator.public()).is_err());
        let bad = RemoteConfig {
            version: 4,
            settings: [("links.degree".to_owned(), "0".to_owned())].into(),
        };
        assert!(bad.apply_to(&Config::default()).is_err());
    }
}
