//! The HTTP proxy: how an unmodified player uses the agent.
//!
//! - **Rewriting mode**: the player opens `http://<agent>/<origin URL>`; manifests come back
//!   with every URL pointing at the agent again, so each segment request passes through it.
//! - **Forward-proxy mode**: a plain-HTTP player configured with `http_proxy=http://<agent>`
//!   sends absolute-form requests; manifests pass unchanged, segments still go through the
//!   engine.
//!
//! Also on the proxy's port: `GET /metrics` (Prometheus) and `GET /f2f/v1/deliveries` (the
//! most recent segments returned: canonical URL, length, BLAKE3, bytes from peers).
//!
//! Manifests always come from the CDN; segments come from [`Agent::load_segment`]. Errors map
//! to `502` (the CDN failed) or `504` (nothing in time), with a one-line reason; CORS headers
//! let browser players read everything.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use f2f_http::Refused;

use crate::agent::{Agent, ManifestKind};
use crate::cdn::CdnError;
use crate::loader::{LoadError, LoadRequest};
use crate::rewrite;

/// A running proxy.
#[derive(Debug)]
pub struct Proxy {
    /// Where it listens.
    pub addr: SocketAddr,
    _server: f2f_http::Server,
}

impl Proxy {
    /// Serves `agent` on `addr` (port 0: any).
    ///
    /// # Errors
    ///
    /// The address cannot be bound.
    pub async fn start(agent: Agent, addr: SocketAddr) -> std::io::Result<Self> {
        let server = f2f_http::Server::start(addr, "proxy", |addr| {
            let state = ProxyState {
                agent,
                base: format!("http://{addr}"),
            };
            Router::new().fallback(handle).with_state(state)
        })
        .await?;
        Ok(Self {
            addr: server.addr,
            _server: server,
        })
    }

    /// The URL to give a player for `origin_url` (rewriting mode).
    pub fn url_for(&self, origin_url: &str) -> String {
        rewrite::proxied(&format!("http://{}", self.addr), origin_url)
    }
}

#[derive(Clone)]
struct ProxyState {
    agent: Agent,
    base: String,
}

/// The origin URL a request names, and whether manifests are rewritten.
fn target(request: &Request) -> Option<(String, bool)> {
    let uri = request.uri();
    if uri.scheme().is_some() {
        return Some((uri.to_string(), false));
    }
    let path = uri.path_and_query()?.as_str().strip_prefix('/')?;
    // Some clients merge the `//` after the scheme.
    for (scheme, merged) in [("http://", "http:/"), ("https://", "https:/")] {
        if path.starts_with(scheme) {
            return Some((path.to_owned(), true));
        }
        if let Some(rest) = path.strip_prefix(merged) {
            return Some((format!("{scheme}{rest}"), true));
        }
    }
    None
}

fn looks_like_manifest(url: &str) -> bool {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    path.ends_with(".m3u8") || path.ends_with(".mpd") || path.ends_with(".m3u")
}

async fn handle(State(state): State<ProxyState>, request: Request) -> Response {
    if request.method() == Method::OPTIONS {
        let mut response = StatusCode::NO_CONTENT.into_response();
        let headers = response.headers_mut();
        f2f_http::cors(headers);
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            "GET, HEAD, OPTIONS".parse().expect("static"),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            "Range".parse().expect("static"),
        );
        return response;
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return Refused::new(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD").into_response();
    }
    match request.uri().path() {
        "/metrics" if request.uri().scheme().is_none() => {
            let text = crate::metrics::render(&state.agent.stats().await);
            return f2f_http::manifest(
                text,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            );
        }
        "/f2f/v1/deliveries" if request.uri().scheme().is_none() => {
            let json = serde_json::to_string(&state.agent.deliveries()).unwrap_or_default();
            return f2f_http::manifest(json, "application/json");
        }
        _ => {}
    }
    let Some((url, rewriting)) = target(&request) else {
        return Refused::new(
            StatusCode::NOT_FOUND,
            "ask for http://<agent>/<absolute origin URL>",
        )
        .into_response();
    };
    let headers = request.headers().clone();
    if looks_like_manifest(&url) {
        manifest(&state, &url, rewriting).await
    } else {
        segment(&state, url, &headers).await
    }
}

async fn manifest(state: &ProxyState, url: &str, rewriting: bool) -> Response {
    match state.agent.manifest(url).await {
        Ok(manifest) => {
            let content_type = manifest.kind.content_type();
            if !rewriting {
                return f2f_http::manifest(manifest.body, content_type);
            }
            let Ok(base) = url::Url::parse(url) else {
                return Refused::new(StatusCode::BAD_REQUEST, "bad URL").into_response();
            };
            let text = String::from_utf8_lossy(&manifest.body);
            let body = match manifest.kind {
                ManifestKind::HlsMaster | ManifestKind::HlsMedia => {
                    rewrite::hls(&text, &base, &state.base)
                }
                ManifestKind::Dash => rewrite::dash(&text, &base, &state.base),
            };
            f2f_http::manifest(body, content_type)
        }
        Err(e) => failure(&e),
    }
}

async fn segment(state: &ProxyState, url: String, headers: &HeaderMap) -> Response {
    match state.agent.load_segment(LoadRequest::new(url)).await {
        Ok(segment) => {
            let content_type = segment.content_type.as_deref().unwrap_or("video/mp4");
            f2f_http::media(segment.bytes, headers, content_type)
        }
        Err(e) => failure(&e),
    }
}

fn failure(e: &LoadError) -> Response {
    let status = match e {
        LoadError::BadUrl => StatusCode::BAD_REQUEST,
        LoadError::Timeout | LoadError::Cdn(CdnError::Timeout) => StatusCode::GATEWAY_TIMEOUT,
        // The CDN's own answer to a missing segment is the player's business.
        LoadError::Cdn(CdnError::Status(404)) => StatusCode::NOT_FOUND,
        LoadError::Cdn(CdnError::Status(403)) => StatusCode::FORBIDDEN,
        LoadError::Cdn(_) => StatusCode::BAD_GATEWAY,
    };
    Refused::new(status, e.to_string()).into_response()
}
