//! Serving remote configuration: `POST /v1/admin/config` (operator, bearer token) merges
//! settings into a new version, checks it against the engine's defaults, signs it with the
//! operator key and stores it; `GET /v1/config` gives the newest version and
//! `GET /v1/config/stream` (server-sent events) gives it on connect and every new one as it is
//! made, so a reconnecting agent pulls what it missed. The same stream carries the authority's
//! signed revocation list (`POST /v1/admin/revoke` adds to it).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use f2f_core::config::Config;
use f2f_core::identity::{Bls, Keypair, PublicKey};
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, watch};

use crate::config::{RemoteConfig, SignedConfig, WireRevocations};
use crate::session::Issuer;
use crate::session::unix_now;
use crate::store::Store;

/// `POST /v1/admin/revoke`: what to revoke.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Revoke {
    /// A viewer session id (from its CDN token): every certificate it holds.
    #[serde(default)]
    pub viewer: Option<String>,
    /// One node key (96 hex digits).
    #[serde(default)]
    pub public_key: Option<String>,
}

/// What the remote routes need: the config versions and the issuer (revocations).
#[derive(Clone, Debug)]
pub(crate) struct Remote {
    pub(crate) configs: Arc<Configs>,
    pub(crate) issuer: Arc<Issuer>,
}

/// `POST /v1/admin/config`: settings to change.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ConfigChange {
    /// `Config::SETTABLE` key → new value.
    pub set: BTreeMap<String, String>,
}

/// The remote configuration's versions and who may change them.
pub struct Configs {
    operator: Keypair,
    admin_token: Option<String>,
    store: Arc<Store>,
    crypto: Bls,
    current: watch::Sender<Option<SignedConfig>>,
    /// Serialises changes (read, merge, sign, store).
    change: Mutex<()>,
}

impl std::fmt::Debug for Configs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Configs")
            .field("operator", &self.operator.public())
            .finish_non_exhaustive()
    }
}

impl Configs {
    /// Versions signed by `operator`, changed by whoever presents `admin_token` (nobody when
    /// `None`), kept in `store`.
    ///
    /// # Errors
    ///
    /// The database failed.
    pub fn new(
        operator: Keypair,
        admin_token: Option<String>,
        store: Arc<Store>,
    ) -> Result<Self, crate::store::StoreError> {
        let latest = store.latest_config()?;
        Ok(Self {
            operator,
            admin_token,
            store,
            crypto: Bls::new(),
            current: watch::channel(latest).0,
            change: Mutex::new(()),
        })
    }

    /// The key agents check versions against.
    pub fn operator(&self) -> PublicKey {
        self.operator.public()
    }

    /// The newest version, signed.
    pub fn latest(&self) -> Option<SignedConfig> {
        self.current.borrow().clone()
    }

    /// Applies `change` on top of the newest version: a new version, signed, stored and
    /// pushed to every connected agent.
    ///
    /// # Errors
    ///
    /// A setting the engine refuses (checked against its defaults), or the database failed.
    pub async fn change(&self, change: &ConfigChange) -> Result<RemoteConfig, String> {
        let _one_at_a_time = self.change.lock().await;
        let mut next = match self.latest() {
            Some(signed) => {
                (signed.verify(&self.crypto, &self.operator.public())).map_err(|e| e.to_string())?
            }
            None => RemoteConfig::default(),
        };
        next.version += 1;
        next.settings
            .extend(change.set.iter().map(|(k, v)| (k.clone(), v.clone())));
        next.apply_to(&Config::default())
            .map_err(|e| e.to_string())?;
        let signed = next.sign(&self.crypto, &self.operator);
        (self.store)
            .save_config(next.version, &signed, unix_now())
            .map_err(|e| e.to_string())?;
        self.current.send_replace(Some(signed));
        Ok(next)
    }

    fn authorised(&self, headers: &HeaderMap) -> bool {
        let presented = (headers.get(header::AUTHORIZATION))
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match (&self.admin_token, presented) {
            (Some(token), Some(presented)) => {
                // Constant-time: the admin token is a secret.
                token.len() == presented.len()
                    && (token.bytes().zip(presented.bytes())).fold(0u8, |d, (a, b)| d | (a ^ b))
                        == 0
            }
            _ => false,
        }
    }
}

pub(crate) async fn admin_change(
    State(Remote { configs, .. }): State<Remote>,
    headers: HeaderMap,
    Json(change): Json<ConfigChange>,
) -> Response {
    if !configs.authorised(&headers) {
        let why = "admin token required";
        return f2f_http::Refused::new(StatusCode::UNAUTHORIZED, why).into_response();
    }
    match configs.change(&change).await {
        Ok(version) => Json(version).into_response(),
        Err(why) => f2f_http::Refused::new(StatusCode::BAD_REQUEST, why).into_response(),
    }
}

pub(crate) async fn admin_revoke(
    State(Remote { configs, issuer }): State<Remote>,
    headers: HeaderMap,
    Json(revoke): Json<Revoke>,
) -> Response {
    if !configs.authorised(&headers) {
        let why = "admin token required";
        return f2f_http::Refused::new(StatusCode::UNAUTHORIZED, why).into_response();
    }
    let key = match revoke.public_key.as_deref().map(hex::decode) {
        Some(Ok(bytes)) => match <[u8; 48]>::try_from(bytes) {
            Ok(key) => Some(PublicKey::from_bytes(key)),
            Err(_) => None,
        },
        _ => None,
    };
    let done = match (&revoke.viewer, key, &revoke.public_key) {
        (Some(viewer), _, _) => issuer.revoke_viewer(viewer),
        (None, Some(key), _) => issuer.revoke_key(&key),
        (None, None, _) => {
            let why = "name a viewer or a public_key (96 hex digits)";
            return f2f_http::Refused::new(StatusCode::BAD_REQUEST, why).into_response();
        }
    };
    match done {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

pub(crate) async fn latest(State(Remote { configs, .. }): State<Remote>) -> Response {
    match configs.latest() {
        Some(signed) => Json(signed).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    }
}

/// What the stream says next.
enum Next {
    Config,
    Revocations,
}

pub(crate) async fn stream(
    State(Remote { configs, issuer }): State<Remote>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let config_rx = configs.current.subscribe();
    let revoked_rx = issuer.watch_revocations();
    // On connect: the config, then the revocations; afterwards whichever changes.
    let start = vec![Next::Config, Next::Revocations];
    let state = (config_rx, revoked_rx, start, issuer);
    let events =
        futures_util::stream::unfold(state, |(mut c, mut r, mut queue, issuer)| async move {
            let next = match queue.pop() {
                Some(next) => next,
                None => tokio::select! {
                    changed = c.changed() => { changed.ok()?; Next::Config }
                    changed = r.changed() => { changed.ok()?; Next::Revocations }
                },
            };
            let event = match next {
                Next::Config => match c.borrow_and_update().clone() {
                    Some(signed) => Event::default().event("config").json_data(&signed),
                    None => Ok(Event::default().event("none").data("")),
                },
                Next::Revocations => {
                    r.borrow_and_update();
                    match issuer.revocations() {
                        Ok(list) if list.serial > 0 => Event::default()
                            .event("revocations")
                            .json_data(WireRevocations::from(&list)),
                        _ => Ok(Event::default().event("none").data("")),
                    }
                }
            };
            Some((Ok(event.unwrap_or_default()), (c, r, queue, issuer)))
        });
    Sse::new(events).keep_alive(KeepAlive::default())
}
