//! Content identity: which swarm a stream belongs to, and which bytes a segment is.
//!
//! Two viewers of the same live stream get different URLs: every CDN signs the viewer's requests
//! with tokens, puts session ids in paths and queries, and spreads load over host shards. This
//! module turns such URLs into *canonical* strings so that the same content gets the same
//! [`SwarmId`], [`RenditionId`] and [`SegmentKey`], and different content does not.
//!
//! # What is stripped
//!
//! - **Scheme, default port, fragment, user-info.** `http` and `https` serve the same bytes.
//! - **Host shards and aliases**, through [`CanonicalConfig::host_aliases`]
//!   (`edge-17.cdn.example.com` → `cdn.example.com`). Hosts are lowercased.
//! - **Per-viewer query parameters**: generic token, signature, expiry, session, user and
//!   cache-buster names; CloudFront `Policy`/`Signature`/`Key-Pair-Id`; Akamai
//!   `hdnts`/`hdntl`/`hdnea`/`__token__`; Wowza `wowzatoken*`; `X-Amz-*`, `X-Goog-*`; Azure SAS
//!   (`sv`, `se`, `sp`, ... when a SAS signature is present); Edgecast `ec_*`; MediaTailor
//!   `aws.*`/`ads.*`; CMCD; analytics (`utm_*`); a bare random token as a parameter name
//!   (Edgecast). The full list, with the reason for each group,
//!   is in `tokens.rs`. Names such as `st`, `e` or `ts` are only stripped when their value looks
//!   like a timestamp, since some origins use them for content.
//! - **Per-viewer path parts**: `name=value` segments whose name is a token name (Akamai
//!   `/hdnts=…/`), `/<hash>/<expiry>/` pairs (nginx `secure_link`), `/session/<id>/`-style
//!   marker pairs (with the id required to look random), `;jsessionid=` matrix parameters,
//!   ASP.NET `(S(…))` cookieless sessions, and Wowza's `_w<session>` in chunk-list and media
//!   file names. The last path segment (the resource itself) is never removed.
//!
//! # What is kept
//!
//! Everything else: the path (rendition names, watermark variant letters, Wowza `_definst_`,
//! Azure `(format=m3u8-aapl)`, Unified Streaming `.isml/` paths), non-default ports, and content
//! query parameters (`?channel=`, `?v=`, `?bitrate=`, `?sq=`), sorted so that order does not
//! matter. When in doubt a part is kept: a leftover per-viewer part only costs sharing (each
//! viewer ends up alone in its swarm), while stripping a content part would let peers exchange
//! different bytes under the same key.
//!
//! # Ads
//!
//! Server-side inserted ads are personal: [`ListedSegment::shareable`] is `false` for them and
//! the driver always fetches them from the CDN. The HLS parser finds them from cue tags
//! (`EXT-X-CUE-OUT`/`-CONT`/`-IN`, `EXT-X-DATERANGE` with `SCTE35-OUT`, interstitials) and from
//! discontinuity-bounded runs served from another host or directory than the stream's content;
//! the DASH parser from SCTE-35 event streams and periods served from another host.
//!
//! # Panics
//!
//! None of the functions here panic on remote input; malformed input gives a [`ContentError`].

mod canonical;
mod dash;
mod hls;
mod tokens;

#[cfg(test)]
mod tests;

pub use canonical::{CanonicalConfig, Canonicalizer, HostAlias};
pub use dash::{DashManifest, DashRepresentation, MAX_LISTED_SEGMENTS, parse_mpd};
pub use hls::{HlsRendition, HlsRenditionKind, MediaPlaylist, parse_master, parse_media};

use crate::id::SegmentPosition;
#[cfg(doc)]
use crate::id::{RenditionId, SegmentKey, SwarmId};

/// One media segment as listed by a playlist or manifest.
#[derive(Clone, Debug, PartialEq)]
pub struct ListedSegment {
    /// Absolute URL, resolved against the playlist URL, with the viewer's tokens intact: this is
    /// what the driver requests from the CDN. Canonicalise it before building a [`SegmentKey`].
    pub uri: String,
    /// Position in the rendition's timeline (HLS media sequence, DASH `$Number$` or `$Time$`).
    pub position: SegmentPosition,
    /// Duration in seconds, as announced by the playlist.
    pub duration_secs: f32,
    /// Whether peers may exchange this segment. `false` for ads and for HLS gap segments.
    pub shareable: bool,
    /// Whether the segment lies in an ad break (server-side inserted ads are personal).
    pub ad: bool,
}

/// Why a URL, playlist or manifest could not be turned into content identity.
///
/// Messages never contain the URL itself: URLs carry the viewer's tokens.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ContentError {
    /// A URL could not be parsed, or a relative reference could not be resolved.
    #[error("invalid URL: {0}")]
    InvalidUrl(#[from] url::ParseError),
    /// The URL's scheme is neither `http` nor `https`.
    #[error("unsupported URL scheme {0:?}: only http and https are canonicalised")]
    UnsupportedScheme(String),
    /// The URL has no host (canonical ids are rooted at a host).
    #[error("URL has no host")]
    MissingHost,
    /// The [`CanonicalConfig`] is invalid.
    #[error("invalid content config: {0}")]
    InvalidConfig(String),
    /// The HLS playlist is not well formed.
    #[error("malformed HLS playlist: {0}")]
    MalformedPlaylist(String),
    /// A master playlist was given where a media playlist was expected, or the other way round.
    #[error("expected an HLS {expected} playlist, got a {found} playlist")]
    WrongPlaylistKind {
        /// The kind the caller asked for.
        expected: &'static str,
        /// The kind the text turned out to be.
        found: &'static str,
    },
    /// The DASH MPD is not well formed, or its values are inconsistent.
    #[error("malformed DASH MPD: {0}")]
    MalformedMpd(String),
    /// The manifest uses a shape this module does not handle (see [`parse_mpd`]).
    #[error("unsupported manifest feature: {0}")]
    Unsupported(String),
}

/// Locations that only ever serve ad segments: AWS MediaTailor's own hosts
/// (`segments.mediatailor.<region>.amazonaws.com`, `<id>.mediatailor.<region>.amazonaws.com`;
/// MediaTailor points content segments at the origin or CDN, never at itself) and Google DAI's
/// segment redirector (`dai.google.com/segments/redirect/`).
pub(crate) fn is_known_ad_location(host: &str, path: &str) -> bool {
    (host.contains(".mediatailor.") && host.ends_with(".amazonaws.com"))
        || (host == "dai.google.com" && path.starts_with("/segments/redirect/"))
}
