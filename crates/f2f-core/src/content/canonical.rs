//! URL canonicalisation: one string per piece of content, whichever viewer asks.

use std::borrow::Cow;
use std::fmt::Write as _;

use serde::Deserialize;
use url::Url;
use url::form_urlencoded;

use super::{ContentError, tokens};
use crate::id::{RenditionId, SegmentKey, SegmentPosition, SwarmId, VariantTag};

/// Maps CDN shards and aliases to one canonical host.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostAlias {
    /// The host, or a pattern: `*.cdn.example.com` matches any host with one or more labels
    /// before `.cdn.example.com` (not `cdn.example.com` itself); a `*` inside a label, as in
    /// `cdn*.example.com`, matches any characters within that label. Case-insensitive.
    pub from: String,
    /// The canonical host the matching hosts stand for.
    pub to: String,
}

/// Settings of a [`Canonicalizer`], on top of its built-in rules (see the [module
/// docs](super)).
///
/// Deserialisable from the runtime config; every field defaults to empty.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CanonicalConfig {
    /// Host aliases. Exact hosts are tried first, then patterns in list order; the first match
    /// wins. Default: none (every host stands for itself).
    pub host_aliases: Vec<HostAlias>,
    /// Query parameter names to strip besides the built-in list; case-insensitive; a trailing
    /// `*` makes a prefix (`myauth_*`). Also applies to `name=value` path segments.
    /// Default: none.
    pub strip_params: Vec<String>,
    /// Query parameter names to keep even though a built-in rule or `strip_params` would strip
    /// them (keep wins); same syntax as `strip_params`. Default: none.
    pub keep_params: Vec<String>,
    /// Path segments that announce a per-viewer id in the next segment (`/stream/<id>/`),
    /// besides the built-in `session`, `sid`, `token`, `ks`, ...; the marker and the id are
    /// both removed, only when the id looks random. Case-insensitive. Default: none.
    pub path_token_markers: Vec<String>,
}

/// Turns stream, playlist and segment URLs into canonical strings and ids.
///
/// Build one per runtime config with [`Canonicalizer::new`] and share it (it is immutable).
#[derive(Clone, Debug)]
pub struct Canonicalizer {
    exact_aliases: Vec<(String, String)>,
    pattern_aliases: Vec<(HostPattern, String)>,
    strip: Vec<NamePattern>,
    keep: Vec<NamePattern>,
    markers: Vec<String>,
}

impl Canonicalizer {
    /// Validates `config` and builds the canonicaliser.
    ///
    /// Fails with [`ContentError::InvalidConfig`] on an empty name, a malformed host or
    /// pattern, or a pattern that would match every host.
    pub fn new(config: CanonicalConfig) -> Result<Self, ContentError> {
        let mut exact_aliases = Vec::new();
        let mut pattern_aliases = Vec::new();
        for alias in config.host_aliases {
            let to = validate_host(&alias.to)?;
            let from = alias.from.trim().trim_end_matches('.').to_ascii_lowercase();
            if from.contains('*') {
                pattern_aliases.push((HostPattern::parse(&from)?, to));
            } else {
                exact_aliases.push((validate_host(&from)?, to));
            }
        }
        let names = |list: Vec<String>, what: &str| -> Result<Vec<NamePattern>, ContentError> {
            list.iter().map(|n| NamePattern::parse(n, what)).collect()
        };
        let mut markers = Vec::with_capacity(config.path_token_markers.len());
        for marker in config.path_token_markers {
            let marker = marker.trim().to_ascii_lowercase();
            if marker.is_empty() || marker.contains('/') {
                return Err(ContentError::InvalidConfig(format!(
                    "path token marker {marker:?} must be one non-empty path segment"
                )));
            }
            markers.push(marker);
        }
        Ok(Self {
            exact_aliases,
            pattern_aliases,
            strip: names(config.strip_params, "strip_params")?,
            keep: names(config.keep_params, "keep_params")?,
            markers,
        })
    }

    /// The canonical form of `url`: `host[:port]/path[?sorted content query]`, without scheme,
    /// fragment, user-info, default port or any per-viewer part.
    ///
    /// `url` must be absolute `http` or `https`.
    pub fn canonical_url(&self, url: &str) -> Result<String, ContentError> {
        let parsed = Url::parse(url.trim())?;
        match parsed.scheme() {
            "http" | "https" => {}
            other => return Err(ContentError::UnsupportedScheme(other.to_owned())),
        }
        let raw_host = parsed.host_str().ok_or(ContentError::MissingHost)?;
        let host = raw_host.trim_end_matches('.').to_ascii_lowercase();
        let mut out = String::with_capacity(url.len());
        out.push_str(self.alias(&host));
        if let Some(port) = parsed.port().filter(|p| *p != 80 && *p != 443) {
            let _ = write!(out, ":{port}");
        }
        self.push_path(&mut out, parsed.path(), &host);
        if let Some(query) = parsed.query() {
            self.push_query(&mut out, query, &host);
        }
        Ok(out)
    }

    /// The swarm of the stream whose entry URL (master playlist or MPD) is `stream_url`.
    pub fn swarm_id(&self, stream_url: &str) -> Result<SwarmId, ContentError> {
        Ok(SwarmId::from_canonical(&self.canonical_url(stream_url)?))
    }

    /// The rendition behind a media playlist URL, or a DASH representation's
    /// [`rendition_url`](super::DashRepresentation::rendition_url).
    pub fn rendition_id(&self, playlist_url: &str) -> Result<RenditionId, ContentError> {
        Ok(RenditionId::from_canonical(
            &self.canonical_url(playlist_url)?,
        ))
    }

    /// The key of one segment: its place in the swarm and rendition, and this viewer's copy of
    /// it (the canonical segment URL plus the session's watermark variant, if the CDN edge
    /// picks the variant from the token rather than from the URL).
    pub fn segment_key(
        &self,
        swarm: SwarmId,
        rendition: RenditionId,
        position: SegmentPosition,
        segment_url: &str,
        watermark: Option<u8>,
    ) -> Result<SegmentKey, ContentError> {
        let canonical = self.canonical_url(segment_url)?;
        Ok(SegmentKey {
            swarm,
            rendition,
            position,
            variant: VariantTag::new(&canonical, watermark),
        })
    }

    fn alias<'a>(&'a self, host: &'a str) -> &'a str {
        if let Some((_, to)) = self.exact_aliases.iter().find(|(from, _)| from == host) {
            return to;
        }
        match self
            .pattern_aliases
            .iter()
            .find(|(pattern, _)| pattern.matches(host))
        {
            Some((_, to)) => to,
            None => host,
        }
    }

    fn strips(&self, name: &str, value: &str, host: &str, azure_sas: bool) -> bool {
        let lower = name.to_ascii_lowercase();
        if self.keep.iter().any(|p| p.matches(&lower)) {
            return false;
        }
        // A bare token as the whole query (Edgecast: `?a4fbc3710fd3449a...`).
        (value.is_empty() && tokens::looks_like_id(name))
            || self.strip.iter().any(|p| p.matches(&lower))
            || tokens::is_viewer_param(&lower, value, host, azure_sas)
    }

    fn is_marker(&self, segment: &str) -> bool {
        let lower = segment.to_ascii_lowercase();
        tokens::PATH_MARKERS.contains(&lower.as_str()) || self.markers.contains(&lower)
    }

    /// Appends `path` without its per-viewer segments. The last segment (the resource) is
    /// never dropped, only cleaned.
    fn push_path(&self, out: &mut String, path: &str, host: &str) {
        let segments: Vec<&str> = path.split('/').collect();
        let last = segments.len().saturating_sub(1);
        let mut kept: Vec<Cow<'_, str>> = Vec::with_capacity(segments.len());
        let mut i = 0;
        while i < segments.len() {
            let segment = self.strip_matrix_params(segments[i], host);
            if i == last {
                match tokens::strip_wowza_session(&segment) {
                    Some(cleaned) => kept.push(Cow::Owned(cleaned)),
                    None => kept.push(segment),
                }
                break;
            }
            let next = segments[i + 1];
            if i + 1 < last
                && ((self.is_marker(&segment) && tokens::looks_like_id(next))
                    || tokens::is_signature_pair(&segment, next))
            {
                i += 2;
                continue;
            }
            let token_pair = segment
                .split_once('=')
                .is_some_and(|(name, value)| self.strips(name, value, host, false));
            if !(token_pair || tokens::is_cookieless_session(&segment)) {
                kept.push(segment);
            }
            i += 1;
        }
        out.push_str(&kept.join("/"));
    }

    /// Drops `;name=value` matrix parameters that are per-viewer (`;jsessionid=...`).
    fn strip_matrix_params<'a>(&self, segment: &'a str, host: &str) -> Cow<'a, str> {
        let Some((head, params)) = segment.split_once(';') else {
            return Cow::Borrowed(segment);
        };
        let mut cleaned = head.to_owned();
        for param in params.split(';') {
            let (name, value) = param.split_once('=').unwrap_or((param, ""));
            if !self.strips(name, value, host, false) {
                cleaned.push(';');
                cleaned.push_str(param);
            }
        }
        Cow::Owned(cleaned)
    }

    /// Appends the content parameters of `query`, sorted, re-encoded uniformly.
    fn push_query(&self, out: &mut String, query: &str, host: &str) {
        let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let has = |n: &str| pairs.iter().any(|(k, _)| k.eq_ignore_ascii_case(n));
        let azure_sas = has("sv") && has("sig");
        let mut kept: Vec<&(String, String)> = pairs
            .iter()
            .filter(|(k, v)| !self.strips(k, v, host, azure_sas))
            .collect();
        if kept.is_empty() {
            return;
        }
        kept.sort();
        let mut serializer = form_urlencoded::Serializer::new(String::new());
        for (k, v) in kept {
            serializer.append_pair(k, v);
        }
        out.push('?');
        out.push_str(&serializer.finish());
    }
}

/// A parameter name, exact or prefix (`name*`), lowercase.
#[derive(Clone, Debug)]
enum NamePattern {
    Exact(String),
    Prefix(String),
}

impl NamePattern {
    fn parse(raw: &str, what: &str) -> Result<Self, ContentError> {
        let name = raw.trim().to_ascii_lowercase();
        let invalid = || ContentError::InvalidConfig(format!("{what}: invalid name {raw:?}"));
        match name.strip_suffix('*') {
            Some(prefix) if prefix.is_empty() || prefix.contains('*') => Err(invalid()),
            Some(prefix) => Ok(Self::Prefix(prefix.to_owned())),
            None if name.is_empty() || name.contains('*') => Err(invalid()),
            None => Ok(Self::Exact(name)),
        }
    }

    fn matches(&self, name: &str) -> bool {
        match self {
            Self::Exact(n) => n == name,
            Self::Prefix(p) => name.starts_with(p.as_str()),
        }
    }
}

/// A host pattern with `*` wildcards; a leading `*` label stands for one or more labels.
#[derive(Clone, Debug)]
struct HostPattern {
    any_prefix: bool,
    labels: Vec<String>,
}

impl HostPattern {
    fn parse(pattern: &str) -> Result<Self, ContentError> {
        let invalid = |why: &str| {
            ContentError::InvalidConfig(format!("host alias pattern {pattern:?}: {why}"))
        };
        let mut labels: Vec<String> = pattern.split('.').map(str::to_owned).collect();
        let any_prefix = labels.first().is_some_and(|l| l == "*");
        if any_prefix {
            labels.remove(0);
        }
        if labels.is_empty() || labels.iter().all(|l| l == "*") {
            return Err(invalid("would match every host"));
        }
        for label in &labels {
            if label.is_empty() {
                return Err(invalid("empty label"));
            }
            if label.contains("**") {
                return Err(invalid("`**` is not supported"));
            }
            if !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_*".contains(&b))
            {
                return Err(invalid("labels may hold letters, digits, `-`, `_` and `*`"));
            }
        }
        Ok(Self { any_prefix, labels })
    }

    fn matches(&self, host: &str) -> bool {
        let host_labels: Vec<&str> = host.split('.').collect();
        let n = self.labels.len();
        let tail = if self.any_prefix {
            if host_labels.len() <= n {
                return false;
            }
            &host_labels[host_labels.len() - n..]
        } else {
            if host_labels.len() != n {
                return false;
            }
            &host_labels[..]
        };
        self.labels.iter().zip(tail).all(|(p, l)| glob(p, l))
    }
}

/// `*` matches any run of characters; everything else matches itself.
fn glob(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let Some(first) = parts.next() else {
        return text.is_empty();
    };
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

fn validate_host(raw: &str) -> Result<String, ContentError> {
    let host = raw.trim().trim_end_matches('.').to_ascii_lowercase();
    if host.is_empty() || host.contains('*') || url::Host::parse(&host).is_err() {
        return Err(ContentError::InvalidConfig(format!("invalid host {raw:?}")));
    }
    Ok(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_within_a_label() {
        assert!(glob("cdn*", "cdn1"));
        assert!(glob("cdn*", "cdn"));
        assert!(glob("edge-*-eu", "edge-17-eu"));
        assert!(!glob("edge-*-eu", "edge-17-us"));
        assert!(glob("a*b*c", "aXbYc"));
        assert!(!glob("a*b*c", "aXbY"));
        assert!(glob("exact", "exact"));
        assert!(!glob("exact", "exacts"));
    }

    #[test]
    fn host_patterns() {
        let p = HostPattern::parse("*.cdn.example.com").expect("valid");
        assert!(p.matches("edge-17.cdn.example.com"));
        assert!(p.matches("a.b.cdn.example.com"));
        assert!(!p.matches("cdn.example.com"));
        assert!(!p.matches("evilcdn.example.com"));
        let p = HostPattern::parse("cdn*.example.com").expect("valid");
        assert!(p.matches("cdn1.example.com"));
        assert!(p.matches("cdn2.example.com"));
        assert!(!p.matches("img.example.com"));
        assert!(HostPattern::parse("*").is_err());
        assert!(HostPattern::parse("*.*").is_err());
        assert!(HostPattern::parse("a..b").is_err());
    }

    #[test]
    fn config_validation() {
        let bad = |config: CanonicalConfig| Canonicalizer::new(config).is_err();
        let alias = |from: &str, to: &str| CanonicalConfig {
            host_aliases: vec![HostAlias {
                from: from.into(),
                to: to.into(),
            }],
            ..CanonicalConfig::default()
        };
        assert!(bad(alias("*.cdn.example.com", "")));
        assert!(bad(alias("*.cdn.example.com", "*.example.com")));
        assert!(bad(alias("", "cdn.example.com")));
        assert!(!bad(alias("CDN1.Example.com", "cdn.example.com")));
        assert!(bad(CanonicalConfig {
            strip_params: vec!["".into()],
            ..Default::default()
        }));
        assert!(bad(CanonicalConfig {
            keep_params: vec!["*".into()],
            ..Default::default()
        }));
        assert!(bad(CanonicalConfig {
            path_token_markers: vec!["a/b".into()],
            ..Default::default()
        }));
        assert!(Canonicalizer::new(CanonicalConfig::default()).is_ok());
    }
}
