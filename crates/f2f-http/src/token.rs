//! CDN session tokens in Akamai's `hdnts` shape: `exp=<unix seconds>~acl=<path>~sid=<session>~wm=<watermark id>~hmac=<hex>`,
//! the MAC a keyed BLAKE3 over the text before `~hmac=`; `acl` (a path, or a prefix ending in
//! `*`) and `wm` are optional. The origin refuses requests without a valid one when tokens are
//! on and copies the viewer's token onto every URL it lists, as token-authorising CDNs do; the
//! control plane checks the same token before it certifies a viewer's node.

/// The query parameter that carries the token.
pub const TOKEN_PARAM: &str = "hdnts";

/// Why a token is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenError {
    /// Not `exp=…~sid=…~hmac=…` with the optional fields in their place.
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
    /// The path (or `prefix*`) the token is good for; any path when absent.
    pub acl: Option<String>,
    /// The watermark id the session's A/B pattern derives from, when the stream is
    /// watermarked by token.
    pub watermark: Option<String>,
}

impl Session {
    /// Whether the token's `acl` allows `path`.
    pub fn covers(&self, path: &str) -> bool {
        match self.acl.as_deref() {
            None => true,
            Some(acl) => match acl.strip_suffix('*') {
                Some(prefix) => path.starts_with(prefix),
                None => path == acl,
            },
        }
    }
}

/// Issues and checks tokens with one secret.
#[derive(Clone)]
pub struct TokenKey([u8; 32]);

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

fn is_id(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn is_path(s: &str) -> bool {
    s.starts_with('/') && !s.contains(['~', '?', '#', '&', ' '])
}

impl TokenKey {
    /// A key from 32 secret bytes.
    pub fn new(secret: [u8; 32]) -> Self {
        Self(secret)
    }

    fn mac(&self, claims: &str) -> String {
        blake3::keyed_hash(&self.0, claims.as_bytes()).to_hex()[..32].to_owned()
    }

    /// A token for session `sid` (letters, digits, `-`, `_`) until `expires`, for any path.
    pub fn issue(&self, sid: &str, expires: u64) -> String {
        self.issue_session(&Session {
            id: sid.to_owned(),
            expires,
            acl: None,
            watermark: None,
        })
    }

    /// A token carrying `session`'s claims.
    pub fn issue_session(&self, session: &Session) -> String {
        let mut claims = format!("exp={}", session.expires);
        if let Some(acl) = &session.acl {
            claims.push_str(&format!("~acl={acl}"));
        }
        claims.push_str(&format!("~sid={}", session.id));
        if let Some(wm) = &session.watermark {
            claims.push_str(&format!("~wm={wm}"));
        }
        let mac = self.mac(&claims);
        format!("{claims}~hmac={mac}")
    }

    /// The private A/B watermark pattern of watermark id `id`: only holders of the secret (the
    /// edge that applies watermarks, the control plane that hands each viewer its own) can
    /// tell which variant of a segment a session gets.
    pub fn watermark_pattern(&self, id: &str) -> [u8; 32] {
        let mut h = blake3::Hasher::new_keyed(&self.0);
        h.update(b"frog2frog watermark pattern v1\0");
        h.update(id.as_bytes());
        *h.finalize().as_bytes()
    }

    /// The session a token names, if it is genuine and unexpired at `now` (Unix seconds).
    ///
    /// # Errors
    ///
    /// Malformed, forged or expired tokens.
    pub fn check(&self, token: &str, now: u64) -> Result<Session, TokenError> {
        let (claims, mac) = token.rsplit_once("~hmac=").ok_or(TokenError::Malformed)?;
        let mut parts = claims.split('~').peekable();
        let mut field = |name: &str| {
            let value = parts.peek().and_then(|p| p.strip_prefix(name))?;
            parts.next();
            Some(value)
        };
        let expires = field("exp=")
            .and_then(|e| e.parse::<u64>().ok())
            .ok_or(TokenError::Malformed)?;
        let acl = field("acl=").map(str::to_owned);
        let id = field("sid=")
            .filter(|s| is_id(s))
            .ok_or(TokenError::Malformed)?;
        let watermark = field("wm=").map(str::to_owned);
        if parts.next().is_some()
            || acl.as_deref().is_some_and(|a| !is_path(a))
            || watermark.as_deref().is_some_and(|w| !is_id(w))
        {
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
            acl,
            watermark,
        })
    }
}

/// The variant (`b'a'` or `b'b'`) segment `number` takes in the watermark `pattern`.
pub fn watermark_variant(pattern: &[u8; 32], number: u64) -> u8 {
    let mut h = blake3::Hasher::new();
    h.update(pattern);
    h.update(&number.to_le_bytes());
    if h.finalize().as_bytes()[0] & 1 == 0 {
        b'a'
    } else {
        b'b'
    }
}

/// The token in a URL's query (`hdnts=…`), if any.
pub fn token_of(url: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    let query = query.split('#').next().unwrap_or(query);
    (query.split('&'))
        .find_map(|pair| pair.strip_prefix(TOKEN_PARAM)?.strip_prefix('='))
        .map(str::to_owned)
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
            "exp=1~sid=a~acl=/x~hmac=00",
            "exp=1~acl=x~sid=a~hmac=00",
            "exp=1~sid=a~wm=a/b~hmac=00",
            "exp=1~sid=a~extra=1~hmac=00",
        ] {
            assert_eq!(key.check(bad, 0), Err(TokenError::Malformed), "{bad}");
        }
    }

    #[test]
    fn optional_claims_round_trip_and_bind_the_path() {
        let key = TokenKey::new([7; 32]);
        let session = Session {
            id: "v".into(),
            expires: 50,
            acl: Some("/live/*".into()),
            watermark: Some("w-17".into()),
        };
        let token = key.issue_session(&session);
        assert_eq!(key.check(&token, 0), Ok(session.clone()));
        assert!(session.covers("/live/master.m3u8"));
        assert!(!session.covers("/other/master.m3u8"));
        let widened = token.replace("acl=/live/*", "acl=/*");
        assert_eq!(key.check(&widened, 0), Err(TokenError::BadSignature));
        let pattern = key.watermark_pattern("w-17");
        assert_ne!(
            pattern,
            TokenKey::new([8; 32]).watermark_pattern("w-17"),
            "secret"
        );
        assert_ne!(pattern, key.watermark_pattern("w-18"));
        let variants: Vec<u8> = (0..64).map(|n| watermark_variant(&pattern, n)).collect();
        assert!(variants.contains(&b'a') && variants.contains(&b'b'));
        let url = format!("http://cdn/live/master.m3u8?a=1&hdnts={token}");
        assert_eq!(token_of(&url), Some(token));
        assert_eq!(token_of("http://cdn/live/master.m3u8?a=1"), None);
    }
}
