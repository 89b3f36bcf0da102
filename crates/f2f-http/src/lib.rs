//! # f2f-http — HTTP answers as a CDN edge gives them
//!
//! The agent's proxy stands in for the CDN in front of a player, and the built-in origin plays
//! the CDN: both answer media requests the same way, so the rules live here once. Whole bodies
//! or one byte range (`206` with `Content-Range`, `416` past the end), CORS for browser
//! players, and errors with a one-line reason. CDN session tokens ([`token`]) too: the origin
//! checks them as a CDN edge does, the control plane before it certifies a viewer.

pub mod token;

use std::ops::Bound;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use headers::HeaderMapExt;

/// Lets browser players (hls.js, dash.js on another origin) read bodies and ranges.
pub fn cors(headers: &mut HeaderMap) {
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Content-Length, Content-Range"),
    );
}

/// A refused request: its status and a one-line reason for the body.
#[derive(Debug)]
pub struct Refused(pub StatusCode, pub String);

impl Refused {
    /// A refusal with `status` and reason `why`.
    pub fn new(status: StatusCode, why: impl Into<String>) -> Self {
        Self(status, why.into())
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let mut response = (self.0, format!("{}\n", self.1)).into_response();
        cors(response.headers_mut());
        response
    }
}

/// A text body (a manifest) that must not be cached.
pub fn manifest(body: impl Into<Bytes>, content_type: &str) -> Response {
    let mut response = body.into().into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(content_type) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    cors(headers);
    response
}

/// A media body, whole or the one byte range `request` asks for.
pub fn media(bytes: Bytes, request: &HeaderMap, content_type: &str) -> Response {
    let len = bytes.len() as u64;
    let ranges = (request.typed_get::<headers::Range>())
        .map(|r| r.satisfiable_ranges(len).collect::<Vec<_>>());
    let mut response = match ranges.as_deref() {
        None => (StatusCode::OK, bytes).into_response(),
        Some([(from, to)]) => {
            let start = match *from {
                Bound::Included(s) => s,
                Bound::Excluded(s) => s + 1,
                Bound::Unbounded => 0,
            };
            let end = match *to {
                Bound::Included(e) => (e + 1).min(len),
                Bound::Excluded(e) => e.min(len),
                Bound::Unbounded => len,
            };
            if start >= end {
                return unsatisfiable(len);
            }
            let body = bytes.slice(start as usize..end as usize);
            let mut r = (StatusCode::PARTIAL_CONTENT, body).into_response();
            if let Ok(range) = headers::ContentRange::bytes(start..end, len) {
                r.headers_mut().typed_insert(range);
            }
            r
        }
        Some([]) => return unsatisfiable(len),
        // Several ranges would need multipart/byteranges; the whole body is a valid answer.
        Some(_) => (StatusCode::OK, bytes).into_response(),
    };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(content_type) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=60"),
    );
    cors(headers);
    response
}

fn unsatisfiable(len: u64) -> Response {
    let mut r =
        Refused::new(StatusCode::RANGE_NOT_SATISFIABLE, "range not satisfiable").into_response();
    r.headers_mut()
        .typed_insert(headers::ContentRange::unsatisfied_bytes(len));
    r
}

/// An axum router served on its own task, stopped when this is dropped.
#[derive(Debug)]
pub struct Server {
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Binds `addr` (port 0: any) and serves the router `app` makes for the bound address;
    /// `name` labels the error if serving ends.
    ///
    /// # Errors
    ///
    /// The address cannot be bound.
    pub async fn start(
        addr: std::net::SocketAddr,
        name: &'static str,
        app: impl FnOnce(std::net::SocketAddr) -> axum::Router,
    ) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let app = app(addr);
        let task = tokio::spawn(async move {
            let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!("{name} stopped: {e}");
            }
        });
        Ok(Self { addr, task })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}
