//! The origin's HTTP face (axum): manifests, init and media segments, with the status codes,
//! ranges and CORS headers a CDN edge would send.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use axum::Router;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use f2f_http::Refused;

use crate::live::{Copy, Live, Rendition, Watermark, unix_secs};
use f2f_http::token::{Session, TOKEN_PARAM, watermark_variant};

/// A running origin.
#[derive(Debug)]
pub struct Origin {
    /// Where it listens.
    pub addr: SocketAddr,
    _server: f2f_http::Server,
}

impl Origin {
    /// Serves `live` on `addr` (port 0: any) until dropped.
    ///
    /// # Errors
    ///
    /// The address cannot be bound.
    pub async fn start(live: Live, addr: SocketAddr) -> std::io::Result<Self> {
        let app = router(Arc::new(live));
        let server = f2f_http::Server::start(addr, "origin", |_| app).await?;
        Ok(Self {
            addr: server.addr,
            _server: server,
        })
    }

    /// The HLS multivariant playlist's URL (without a token).
    pub fn hls_url(&self) -> String {
        format!("http://{}/live/master.m3u8", self.addr)
    }

    /// The DASH MPD's URL (without a token).
    pub fn dash_url(&self) -> String {
        format!("http://{}/live/manifest.mpd", self.addr)
    }
}

/// The origin's routes.
pub fn router(live: Arc<Live>) -> Router {
    Router::new()
        .route("/live/master.m3u8", get(master))
        .route("/live/manifest.mpd", get(mpd))
        .route("/live/{playlist}", get(media))
        .route("/live/{rendition}/{file}", get(segment))
        .route(
            "/live/{rendition}/wm/{variant}/{file}",
            get(variant_segment),
        )
        .route("/ads/{viewer}/{rendition}/{file}", get(ad_segment))
        .with_state(live)
}

/// What a request presents for authorisation: its query and its path.
struct Access {
    params: HashMap<String, String>,
    path: String,
}

impl<S: Send + Sync> FromRequestParts<S> for Access {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let params = Query::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map(|q| q.0)
            .unwrap_or_default();
        let path = parts.uri.path().to_owned();
        Ok(Self { params, path })
    }
}

/// The viewer's session and token, when tokens are on; an error response when they are on and
/// the token is missing, bad, or not for this path.
fn authorise(live: &Live, access: &Access) -> Result<Option<(Session, String)>, Refused> {
    let Some(key) = &live.config().tokens else {
        return Ok(None);
    };
    let token = (access.params)
        .get(TOKEN_PARAM)
        .ok_or_else(|| Refused::new(StatusCode::FORBIDDEN, "missing token"))?;
    let session = key
        .check(token, unix_secs(SystemTime::now()))
        .map_err(|e| Refused::new(StatusCode::FORBIDDEN, e.to_string()))?;
    if !session.covers(&access.path) {
        return Err(Refused::new(
            StatusCode::FORBIDDEN,
            "token not for this path",
        ));
    }
    Ok(Some((session, token.clone())))
}

fn text_response(body: String, content_type: &'static str) -> Response {
    f2f_http::manifest(body, content_type)
}

async fn master(State(live): State<Arc<Live>>, access: Access) -> Response {
    match authorise(&live, &access) {
        Ok(s) => text_response(
            live.hls_master(s.as_ref().map(|(_, t)| t.as_str())),
            "application/vnd.apple.mpegurl",
        ),
        Err(e) => e.into_response(),
    }
}

async fn media(
    State(live): State<Arc<Live>>,
    Path(playlist): Path<String>,
    access: Access,
) -> Response {
    if let Some(listing) = playlist.strip_suffix(".f2f-hashes") {
        let listing = match listing {
            "manifest.mpd" => Some(None),
            _ => (listing.strip_suffix(".m3u8").and_then(Rendition::parse)).map(Some),
        };
        let hashes = listing.and_then(|l| live.signed_hashes(l, SystemTime::now()));
        return match (authorise(&live, &access), hashes) {
            (Err(e), _) => e.into_response(),
            (Ok(_), Some(text)) => text_response(text, "text/plain; charset=utf-8"),
            (Ok(_), None) => {
                Refused::new(StatusCode::NOT_FOUND, "no signed hashes").into_response()
            }
        };
    }
    let rendition = playlist.strip_suffix(".m3u8").and_then(Rendition::parse);
    let Some(rendition) = rendition else {
        return Refused::new(StatusCode::NOT_FOUND, "no such playlist").into_response();
    };
    match authorise(&live, &access) {
        Ok(s) => text_response(
            live.hls_media(
                rendition,
                SystemTime::now(),
                s.as_ref().map(|(s, t)| (s, t.as_str())),
            ),
            "application/vnd.apple.mpegurl",
        ),
        Err(e) => e.into_response(),
    }
}

async fn mpd(State(live): State<Arc<Live>>, access: Access) -> Response {
    match authorise(&live, &access) {
        Ok(s) => text_response(
            live.mpd(SystemTime::now(), s.as_ref().map(|(_, t)| t.as_str())),
            "application/dash+xml",
        ),
        Err(e) => e.into_response(),
    }
}

/// `<n>.m4s` → `n`.
fn number(file: &str) -> Option<u64> {
    file.strip_suffix(".m4s")?.parse().ok()
}

fn rendition(name: &str) -> Result<Rendition, Refused> {
    Rendition::parse(name).ok_or_else(|| Refused::new(StatusCode::NOT_FOUND, "no such rendition"))
}

/// The segment a file name asks for, once it is published. A request for a segment in progress
/// is held until it is complete, as a live origin with chunked delivery would: clients that
/// compute the live edge from the clock (ffmpeg's DASH reader) ask for it early.
async fn published(live: &Live, file: &str) -> Result<u64, Refused> {
    let not_found = || Refused::new(StatusCode::NOT_FOUND, "no such segment");
    let n = number(file).ok_or_else(not_found)?;
    let wait = live
        .until_published(n, SystemTime::now())
        .ok_or_else(not_found)?;
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }
    Ok(n)
}

async fn segment(
    State(live): State<Arc<Live>>,
    Path((name, file)): Path<(String, String)>,
    access: Access,
    headers: HeaderMap,
) -> Response {
    let result = async {
        let session = authorise(&live, &access)?;
        let rendition = rendition(&name)?;
        if file == "init.mp4" {
            return Ok::<_, Refused>(live.init(rendition));
        }
        let n = published(&live, &file).await?;
        let copy = match (rendition, live.config().watermark, &session) {
            (Rendition::Video, Watermark::Token, Some((s, _))) => {
                // The session's private pattern, from its watermark id (or its session id).
                let keys = live.config().tokens.as_ref();
                let id = s.watermark.as_deref().unwrap_or(&s.id);
                let pattern = keys.map(|k| k.watermark_pattern(id)).unwrap_or_default();
                Copy::Variant(char::from(watermark_variant(&pattern, n)))
            }
            _ => Copy::Common,
        };
        Ok(live.segment(rendition, n, &copy))
    };
    match result.await {
        Ok(bytes) => body(bytes, &headers),
        Err(e) => e.into_response(),
    }
}

async fn variant_segment(
    State(live): State<Arc<Live>>,
    Path((name, variant, file)): Path<(String, String, String)>,
    access: Access,
    headers: HeaderMap,
) -> Response {
    let result = async {
        authorise(&live, &access)?;
        let variant = match (rendition(&name)?, variant.as_str()) {
            (Rendition::Video, "a") => 'a',
            (Rendition::Video, "b") => 'b',
            _ => return Err(Refused::new(StatusCode::NOT_FOUND, "no such variant")),
        };
        let n = published(&live, &file).await?;
        Ok(live.segment(Rendition::Video, n, &Copy::Variant(variant)))
    };
    match result.await {
        Ok(bytes) => body(bytes, &headers),
        Err(e) => e.into_response(),
    }
}

async fn ad_segment(
    State(live): State<Arc<Live>>,
    Path((viewer, name, file)): Path<(String, String, String)>,
    access: Access,
    headers: HeaderMap,
) -> Response {
    let result = async {
        authorise(&live, &access)?;
        let rendition = rendition(&name)?;
        let n = published(&live, &file).await?;
        if !live.is_ad(n) {
            return Err(Refused::new(StatusCode::NOT_FOUND, "no ad in this slot"));
        }
        Ok(live.segment(rendition, n, &Copy::Ad(viewer)))
    };
    match result.await {
        Ok(bytes) => body(bytes, &headers),
        Err(e) => e.into_response(),
    }
}

fn body(bytes: Bytes, request: &HeaderMap) -> Response {
    f2f_http::media(bytes, request, "video/mp4")
}
