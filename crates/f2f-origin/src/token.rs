//! CDN session tokens in Akamai's `hdnts` shape: `exp=<unix seconds>~sid=<session>~hmac=<hex>`,
//! the MAC a keyed BLAKE3 over the text before `~hmac=`. The origin refuses requests without a
//! valid one when tokens are on, and copies the viewer's token onto every URL it lists, as
//! token-authorising CDNs do.

/// The query parameter that carries the token.
pub const TOKEN_PARAM: &str = "hdnts";

/// Why a token is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenError {
    /// Not `exp=…~sid=…~hmac=…`.
    #[error("malformed token")]
    Malformed,
    /// The MAC does not match.
    #[error("token signature does not match")]
    BadSignature,
    /// `exp` has passed.
    #[error("token expired")]
    Expired,
}

/// A validated token's claims.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// The viewer's session id.
    pub id: String,
    /// Expiry, Unix seconds.
    pub expires: u64,
}

/// Issues and checks tokens with one secret.
#[derive(Clone)]
pub struct TokenKey([u8; 32]);

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

impl TokenKey {
    /// A key from 32 secret bytes.
    pub fn new(secret: [u8; 32]) -> Self {
        Self(secret)
    }

    fn mac(&self, claims: &str) -> String {
        blake3::keyed_hash(&self.0, claims.as_bytes()).to_hex()[..32].to_owned()
    }

    /// A token for session `sid` (letters, digits, `-`, `_`) until `expires`.
    pub fn issue(&self, sid: &str, expires: u64) -> String {
        let claims = format!("exp={expires}~sid={sid}");
        let mac = self.mac(&claims);
        format!("{claims}~hmac={mac}")
    }

    /// The session a token names, if it is genuine and unexpired at `now` (Unix seconds).
    ///
    /// # Errors
    ///
    /// Malformed, forged or expired tokens.
    pub fn check(&self, token: &str, now: u64) -> Result<Session, TokenError> {
        let (claims, mac) = token.rsplit_once("~hmac=").ok_or(TokenError::Malformed)?;
        let mut parts = claims.split('~');
        let expires = (parts.next().and_then(|p| p.strip_prefix("exp=")))
            .and_then(|e| e.parse::<u64>().ok())
            .ok_or(TokenError::Malformed)?;
        let id = (parts.next().and_then(|p| p.strip_prefix("sid=")))
            .filter(|s| {
                !s.is_empty()
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
            .ok_or(TokenError::Malformed)?;
        if parts.next().is_some() {
            return Err(TokenError::Malformed);
        }
        // Both are hex of one length: comparing as strings leaks nothing useful, but compare
        // in constant time anyway.
        let expected = self.mac(claims);
        let same = expected.len() == mac.len()
            && expected
                .bytes()
                .zip(mac.bytes())
                .fold(0u8, |d, (a, b)| d | (a ^ b))
                == 0;
        if !same {
            return Err(TokenError::BadSignature);
        }
        if expires <= now {
            return Err(TokenError::Expired);
        }
        Ok(Session {
            id: id.to_owned(),
            expires,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_tokens_check_and_tampering_is_refused() {
        let key = TokenKey::new([7; 32]);
        let token = key.issue("viewer-1", 1_000);
        let session = key.check(&token, 999).expect("valid");
        assert_eq!(session.id, "viewer-1");
        assert_eq!(key.check(&token, 1_000), Err(TokenError::Expired));
        let forged = token.replace("viewer-1", "viewer-2");
        assert_eq!(key.check(&forged, 0), Err(TokenError::BadSignature));
        let longer = token.replace("exp=1000", "exp=9000");
        assert_eq!(key.check(&longer, 0), Err(TokenError::BadSignature));
        let other = TokenKey::new([8; 32]);
        assert_eq!(other.check(&token, 0), Err(TokenError::BadSignature));
        for bad in [
            "",
            "exp=1~sid=a",
            "sid=a~exp=1~hmac=00",
            "exp=x~sid=a~hmac=00",
            "exp=1~sid=a/b~hmac=00",
        ] {
            assert_eq!(key.check(bad, 0), Err(TokenError::Malformed), "{bad}");
        }
    }
}
