//! Authorisation: `POST /v1/session` turns a viewer's CDN session token and a node key into a
//! peer certificate for the stream's swarm; `POST /v1/session/renew` renews one before it
//! expires. The Sybil bound: a token's session can hold only a few identities, and requests
//! are rate-limited per token and per address.
//!
//! Tokens are checked by a [`TokenValidator`]: [`TokenKey`] (the `hdnts` scheme the built-in
//! origin uses) is one; a deployment whose CDN signs tokens another way implements the trait
//! over its scheme (expiry, path, session id are what the issuer needs from it). Without a
//! validator the issuer is open: any key that proves possession is certified (demos, tests).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use f2f_core::content::{CanonicalConfig, Canonicalizer};
use f2f_core::id::SwarmId;
use f2f_core::identity::{
    Authority, Bls, Certificate, CertificateVerifier, Crypto, PublicKey, RevocationList, Scope,
    SessionId, Signature, UnixTime, verify_possession,
};
use f2f_core::wire::{decode_certificate, encode_certificate};
use f2f_http::token::{Session, TokenKey};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::{Deserialize, Serialize};

use crate::store::{Store, StoreError};

/// Checks a viewer's CDN session token.
pub trait TokenValidator: Send + Sync + 'static {
    /// The token's claims if it is genuine and unexpired at `now` (Unix seconds).
    ///
    /// # Errors
    ///
    /// Why it is refused, for the answer's body.
    fn validate(&self, token: &str, now: u64) -> Result<Session, String>;

    /// The private A/B pattern of a session whose token carries a watermark id, for streams
    /// whose edge picks the variant from the token; `None` when the scheme has none.
    fn watermark_pattern(&self, session: &Session) -> Option<[u8; 32]> {
        let _ = session;
        None
    }
}

impl TokenValidator for TokenKey {
    fn validate(&self, token: &str, now: u64) -> Result<Session, String> {
        self.check(token, now).map_err(|e| e.to_string())
    }

    fn watermark_pattern(&self, session: &Session) -> Option<[u8; 32]> {
        (session.watermark.as_deref()).map(|id| TokenKey::watermark_pattern(self, id))
    }
}

/// Bounds on what one viewer can obtain.
#[derive(Clone, Debug)]
pub struct SessionLimits {
    /// Node keys one viewer session may hold certificates for. Default 3 (a few devices or
    /// restarts with a lost key file).
    pub identities_per_session: usize,
    /// Requests one token may make per minute. Default 10.
    pub per_token_per_minute: u32,
    /// Requests one address may make per minute. Default 600 (many viewers behind one NAT).
    pub per_address_per_minute: u32,
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self {
            identities_per_session: 3,
            per_token_per_minute: 10,
            per_address_per_minute: 600,
        }
    }
}

/// How the issuer is set up.
pub struct IssuerConfig {
    /// The key certificates are signed with; agents trust its public half.
    pub authority: f2f_core::identity::Keypair,
    /// Certificate lifetime.
    pub lifetime: Duration,
    /// Checks viewers' tokens; `None`: open issuer (no token needed).
    pub validator: Option<Box<dyn TokenValidator>>,
    /// The database.
    pub store: Arc<Store>,
    /// Per-viewer bounds.
    pub limits: SessionLimits,
    /// How stream URLs map to swarms: must match the agents'.
    pub canonical: CanonicalConfig,
}

/// `POST /v1/session`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SessionRequest {
    /// The viewer's CDN session token (absent for an open issuer).
    #[serde(default)]
    pub token: Option<String>,
    /// The stream URL the viewer plays (its swarm is computed from it).
    pub stream: String,
    /// The node key.
    #[serde(with = "hex::serde")]
    pub public_key: [u8; 48],
    /// Its proof of possession.
    #[serde(with = "hex::serde")]
    pub possession: [u8; 96],
}

/// `POST /v1/session/renew`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RenewRequest {
    /// The certificate in force (wire encoding).
    #[serde(with = "hex::serde")]
    pub certificate: Vec<u8>,
    /// Proof of possession of its key.
    #[serde(with = "hex::serde")]
    pub possession: [u8; 96],
}

/// The answer to both.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SessionGrant {
    /// The certificate (wire encoding).
    #[serde(with = "hex::serde")]
    pub certificate: Vec<u8>,
    /// The authority key it is signed with.
    #[serde(with = "hex::serde")]
    pub authority: [u8; 48],
    /// The session's private watermark pattern (hex), when its token carries a watermark id:
    /// which variant of each segment this viewer gets (`f2f_http::token::watermark_variant`),
    /// so its agent exchanges segments only with peers that hold the same variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark: Option<String>,
}

/// Why a session request was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The request is malformed.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The token is missing, forged, expired, or not for this stream.
    #[error("token refused: {0}")]
    Token(String),
    /// The key does not prove possession, or the certificate is not ours or not valid.
    #[error("identity refused: {0}")]
    Identity(String),
    /// The session holds as many identities as it may.
    #[error("this session holds {0} identities already")]
    IdentityLimit(usize),
    /// Revoked.
    #[error("revoked")]
    Revoked,
    /// Too many requests from this token or address.
    #[error("too many requests")]
    RateLimited,
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl IntoResponse for SessionError {
    fn into_response(self) -> Response {
        let status = match &self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Token(_) | Self::Identity(_) | Self::IdentityLimit(_) | Self::Revoked => {
                StatusCode::FORBIDDEN
            }
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        f2f_http::Refused::new(status, self.to_string()).into_response()
    }
}

/// Issues, renews and checks peer certificates.
pub struct Issuer {
    authority: Authority,
    crypto: Bls,
    lifetime: Duration,
    validator: Option<Box<dyn TokenValidator>>,
    store: Arc<Store>,
    limits: SessionLimits,
    canon: Canonicalizer,
    by_token: DefaultKeyedRateLimiter<[u8; 32]>,
    by_address: DefaultKeyedRateLimiter<IpAddr>,
    /// The newest revocation serial, for the config stream.
    revoked: tokio::sync::watch::Sender<u64>,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("authority", &self.authority.public())
            .field("open", &self.validator.is_none())
            .finish_non_exhaustive()
    }
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

fn per_minute(n: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN))
}

/// The certificate session id of a viewer session: stable, so revoking it revokes every
/// certificate the viewer holds.
fn certificate_session(viewer: &str) -> SessionId {
    let hash = blake3::derive_key("frog2frog viewer session v1", viewer.as_bytes());
    let mut id = [0; 16];
    id.copy_from_slice(&hash[..16]);
    SessionId(id)
}

impl Issuer {
    /// An issuer.
    ///
    /// # Errors
    ///
    /// The canonicalisation config is invalid.
    pub fn new(config: IssuerConfig) -> Result<Self, String> {
        let canon = Canonicalizer::new(config.canonical).map_err(|e| e.to_string())?;
        let serial = config.store.revoked().map_err(|e| e.to_string())?.serial;
        Ok(Self {
            revoked: tokio::sync::watch::channel(serial).0,
            authority: Authority::new(config.authority),
            crypto: Bls::new(),
            lifetime: config.lifetime,
            validator: config.validator,
            store: config.store,
            by_token: RateLimiter::keyed(per_minute(config.limits.per_token_per_minute)),
            by_address: RateLimiter::keyed(per_minute(config.limits.per_address_per_minute)),
            limits: config.limits,
            canon,
        })
    }

    /// An open issuer with an in-memory database: certifies any key that proves possession.
    ///
    /// # Panics
    ///
    /// Never: an in-memory database and the default canonicalisation always work.
    pub fn open(authority: f2f_core::identity::Keypair, lifetime: Duration) -> Self {
        Self::new(IssuerConfig {
            authority,
            lifetime,
            validator: None,
            store: Arc::new(Store::in_memory().expect("in-memory database")),
            limits: SessionLimits::default(),
            canonical: CanonicalConfig::default(),
        })
        .expect("default canonicalisation")
    }

    /// The key certificates are signed with.
    pub fn authority(&self) -> PublicKey {
        self.authority.public()
    }

    /// The database.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Certifies `request`'s key for its stream's swarm, from `address`.
    ///
    /// # Errors
    ///
    /// See [`SessionError`].
    pub fn issue(
        &self,
        request: &SessionRequest,
        address: IpAddr,
    ) -> Result<SessionGrant, SessionError> {
        if self.by_address.check_key(&address).is_err() {
            return Err(SessionError::RateLimited);
        }
        let now = unix_now();
        let key = PublicKey::from_bytes(request.public_key);
        let mut pattern = None;
        let viewer = match (&self.validator, &request.token) {
            (None, _) => hex::encode(key.peer_id().as_bytes()),
            (Some(_), None) => return Err(SessionError::Token("missing".into())),
            (Some(validator), Some(token)) => {
                let digest = *blake3::hash(token.as_bytes()).as_bytes();
                if self.by_token.check_key(&digest).is_err() {
                    return Err(SessionError::RateLimited);
                }
                let session = validator
                    .validate(token, now)
                    .map_err(SessionError::Token)?;
                let path = url::Url::parse(&request.stream)
                    .map_err(|e| SessionError::BadRequest(format!("stream URL: {e}")))?;
                if !session.covers(path.path()) {
                    return Err(SessionError::Token("not for this stream".into()));
                }
                pattern = validator.watermark_pattern(&session);
                session.id
            }
        };
        let swarm = (self.canon)
            .swarm_id(&request.stream)
            .map_err(|e| SessionError::BadRequest(format!("stream URL: {e}")))?;
        let possession = Signature::from_bytes(request.possession);
        verify_possession(&self.crypto, &key, &possession)
            .map_err(|_| SessionError::Identity("no proof of possession".into()))?;
        let session = certificate_session(&viewer);
        self.check_revoked(&key, &session)?;
        let not_after = now + self.lifetime.as_secs();
        let limit = self.limits.identities_per_session;
        if !(self.store).certify(&key, &viewer, &swarm, now, not_after, limit)? {
            return Err(SessionError::IdentityLimit(limit));
        }
        let mut grant = self.grant(&key, &possession, Scope::Swarm(swarm), session, not_after)?;
        grant.watermark = pattern.map(hex::encode);
        Ok(grant)
    }

    /// Renews a certificate this issuer gave, before it expires.
    ///
    /// # Errors
    ///
    /// See [`SessionError`].
    pub fn renew(
        &self,
        request: &RenewRequest,
        address: IpAddr,
    ) -> Result<SessionGrant, SessionError> {
        if self.by_address.check_key(&address).is_err() {
            return Err(SessionError::RateLimited);
        }
        let cert = decode_certificate(request.certificate.clone().into())
            .map_err(|e| SessionError::BadRequest(e.to_string()))?;
        let Scope::Swarm(swarm) = cert.scope else {
            return Err(SessionError::Identity("not a swarm certificate".into()));
        };
        self.check(&cert, &swarm)?;
        let possession = Signature::from_bytes(request.possession);
        let now = unix_now();
        let not_after = now + self.lifetime.as_secs();
        let Some((viewer, _)) = self.store.identity(&cert.public_key)? else {
            return Err(SessionError::Identity("not issued here".into()));
        };
        let limit = self.limits.identities_per_session;
        if !(self.store).certify(&cert.public_key, &viewer, &swarm, now, not_after, limit)? {
            return Err(SessionError::IdentityLimit(limit));
        }
        self.grant(
            &cert.public_key,
            &possession,
            cert.scope,
            cert.session,
            not_after,
        )
    }

    /// Accepts a certificate a node presents (tracker joins): ours, unexpired, for `swarm`,
    /// not revoked.
    ///
    /// # Errors
    ///
    /// Why it is refused.
    pub fn check(&self, cert: &Certificate, swarm: &SwarmId) -> Result<(), SessionError> {
        let none = f2f_core::identity::Revocations::default();
        let mut verifier = CertificateVerifier::new(self.authority.public(), 1);
        let now = UnixTime(unix_now());
        verifier
            .check(&self.crypto, cert, swarm, now, &none)
            .map_err(|e| SessionError::Identity(e.to_string()))?;
        self.check_revoked(&cert.public_key, &cert.session)
    }

    fn check_revoked(&self, key: &PublicKey, session: &SessionId) -> Result<(), SessionError> {
        let revoked = self.store.revoked()?;
        if revoked.keys.contains(key) || revoked.sessions.contains(session) {
            return Err(SessionError::Revoked);
        }
        Ok(())
    }

    fn grant(
        &self,
        key: &PublicKey,
        possession: &Signature,
        scope: Scope,
        session: SessionId,
        not_after: u64,
    ) -> Result<SessionGrant, SessionError> {
        let cert = (self.authority)
            .issue(
                &self.crypto,
                key,
                possession,
                scope,
                session,
                UnixTime(not_after),
            )
            .map_err(|_| SessionError::Identity("no proof of possession".into()))?;
        Ok(SessionGrant {
            certificate: encode_certificate(&cert).to_vec(),
            authority: *self.authority.public().as_bytes(),
            watermark: None,
        })
    }

    /// Revokes every certificate of a viewer session.
    ///
    /// # Errors
    ///
    /// The database failed.
    pub fn revoke_viewer(&self, viewer: &str) -> Result<(), SessionError> {
        let session = certificate_session(viewer);
        self.store.revoke_session(&session, unix_now())?;
        self.announce_revocations()
    }

    /// Revokes one node key.
    ///
    /// # Errors
    ///
    /// The database failed.
    pub fn revoke_key(&self, key: &PublicKey) -> Result<(), SessionError> {
        self.store.revoke_key(key, unix_now())?;
        self.announce_revocations()
    }

    fn announce_revocations(&self) -> Result<(), SessionError> {
        let serial = self.store.revoked()?.serial;
        self.revoked.send_replace(serial);
        Ok(())
    }

    /// Follows the revocation serial (it changes with every revocation).
    pub fn watch_revocations(&self) -> tokio::sync::watch::Receiver<u64> {
        self.revoked.subscribe()
    }

    /// The signed list of everything revoked, for agents.
    ///
    /// # Errors
    ///
    /// The database failed.
    pub fn revocations(&self) -> Result<RevocationList, SessionError> {
        let revoked = self.store.revoked()?;
        Ok(RevocationList::issue(
            &self.authority,
            &self.crypto as &dyn Crypto,
            revoked.serial,
            revoked.sessions,
            revoked.keys,
        ))
    }
}

pub(crate) async fn issue(
    State(issuer): State<Arc<Issuer>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    Json(request): Json<SessionRequest>,
) -> Result<Json<SessionGrant>, SessionError> {
    issuer.issue(&request, peer.ip()).map(Json)
}

pub(crate) async fn renew(
    State(issuer): State<Arc<Issuer>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    Json(request): Json<RenewRequest>,
) -> Result<Json<SessionGrant>, SessionError> {
    issuer.renew(&request, peer.ip()).map(Json)
}
