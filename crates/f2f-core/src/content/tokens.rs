//! What counts as per-viewer in a URL: the built-in lists and shape tests behind
//! [`super::Canonicalizer`].
//!
//! Names are compared in ASCII lowercase. Every entry here makes two viewers' URLs differ
//! without changing the bytes they receive; anything that can select different bytes (rendition,
//! channel, variant, time range) must not be listed.

/// Query (and `name=value` path segment) names stripped whatever their value.
const STRIP_ALWAYS: &[&str] = &[
    // Generic tokens and signatures (Fastly, Flussonic, Ant Media, Red5, most origins).
    "token",
    "tok",
    "auth",
    "authtoken",
    "auth_token",
    "authorization",
    "access_token",
    "accesstoken",
    "jwt",
    "sig",
    "signature",
    "hash",
    "hmac",
    "md5",
    "secure",
    "securetoken",
    // Expiry (nginx secure_link `expires`, generic `exp`).
    "exp",
    "expire",
    "expires",
    "expiry",
    "expiration",
    // Sessions (servlet, PHP, ColdFusion, Wowza, Kaltura).
    "session",
    "sessionid",
    "session_id",
    "sessid",
    "sid",
    "jsessionid",
    "phpsessid",
    "cfid",
    "cftoken",
    "wowzasessionid",
    "playsessionid",
    // The viewer and its device.
    "uid",
    "userid",
    "user_id",
    "user",
    "username",
    "viewer",
    "viewerid",
    "viewer_id",
    "subscriberid",
    "subscribercode",
    "deviceid",
    "device_id",
    "clientid",
    "client_id",
    "ip",
    "clientip",
    "client_ip",
    // Nonces and cache busters.
    "nonce",
    "paln",
    "_",
    "cb",
    "cachebuster",
    "cachebust",
    "nocache",
    "rand",
    "random",
    "rnd",
    // CloudFront signed URLs (`Expires` is above).
    "policy",
    "key-pair-id",
    // Akamai token auth (query and path forms).
    "hdnts",
    "hdntl",
    "hdnea",
    "__token__",
    "__gda__",
    // Nimble Streamer / Wowza SecureURL-style signatures.
    "wmsauthsign",
    // Google Cloud Storage V2 signed URLs (`Expires` and `Signature` are above).
    "googleaccessid",
    // Tencent and Alibaba CDN auth.
    "txsecret",
    "txtime",
    "auth_key",
    // Common Media Client Data: carries a per-session id.
    "cmcd",
    // Consent strings and click ids: per viewer, never content.
    "gdpr",
    "gdpr_consent",
    "us_privacy",
    "gclid",
    "fbclid",
];

/// Name prefixes stripped whatever their value.
const STRIP_PREFIXES: &[&str] = &[
    // Wowza SecureToken: `wowzatokenhash`, `wowzatokenendtime`, `wowzatokenstarttime`, ...
    "wowzatoken",
    // AWS SigV4 presigned URLs and Google Cloud signed URLs.
    "x-amz-",
    "x-goog-",
    // Edgecast / Verizon token auth: `ec_secure`, `ec_expire`, `ec_clientip`, ...
    "ec_",
    // MediaTailor session and player parameters: `aws.sessionId`, `ads.<targeting key>`.
    "aws.",
    "ads.",
    // Analytics.
    "utm_",
];

/// Names stripped only when the value looks like a timestamp or random number: token schemes
/// use them for start/expiry times or cache busters, but some origins use the same short names
/// for content (`st` = start offset, `e` = episode, `time` = time-shift position).
const STRIP_IF_TIMESTAMP: &[&str] = &[
    "e",
    "st",
    "et",
    "ts",
    "timestamp",
    "time",
    "stime",
    "etime",
    "tm",
    "validfrom",
    "validto",
];

/// Names stripped only when the value is a hash (32+ hex digits): Limelight MediaVault's `h`.
const STRIP_IF_HASH: &[&str] = &["h"];

/// Azure storage SAS fields, stripped when the query carries a SAS (`sv` and `sig`): alone,
/// names such as `sp` or `sr` are too short to claim.
const AZURE_SAS: &[&str] = &[
    "sv", "ss", "srt", "sp", "se", "st", "spr", "sr", "si", "sdd", "skoid", "sktid", "skt", "ske",
    "sks", "skv", "ses",
];

/// Per-request names that only mean so on one platform's hosts.
const HOST_SCOPED: &[(&str, &[&str])] = &[
    // YouTube-style `videoplayback` URLs: request id, viewer IP, signature lists, edge routing.
    (
        "googlevideo.com",
        &[
            "ei",
            "ip",
            "ipbits",
            "sparams",
            "lsparams",
            "lsig",
            "mt",
            "mh",
            "mm",
            "mn",
            "ms",
            "mv",
            "mvi",
            "pl",
            "initcwndbps",
        ],
    ),
    // Twitch usher: `p` is a random cache buster, `play_session_id` the session.
    ("ttvnw.net", &["p", "play_session_id", "acmb"]),
];

/// Path segments announcing a per-viewer id in the next segment (`/session/<id>/`, Kaltura
/// `/ks/<ks>/` and `/playSessionId/<id>/`).
pub(crate) const PATH_MARKERS: &[&str] = &[
    "session",
    "sessions",
    "sessionid",
    "session_id",
    "sid",
    "token",
    "auth",
    "ks",
    "playsessionid",
];

/// Whether the built-in lists strip `name` (lowercase) with this value.
///
/// `host` is the URL's lowercase host, before aliasing; `azure_sas` whether the query carries an
/// Azure SAS.
pub(crate) fn is_viewer_param(name: &str, value: &str, host: &str, azure_sas: bool) -> bool {
    STRIP_ALWAYS.contains(&name)
        || STRIP_PREFIXES.iter().any(|p| name.starts_with(p))
        || (STRIP_IF_TIMESTAMP.contains(&name) && is_timestamp(value))
        || (STRIP_IF_HASH.contains(&name) && value.len() >= 32 && is_hex(value))
        || (azure_sas && AZURE_SAS.contains(&name))
        || HOST_SCOPED
            .iter()
            .any(|(suffix, names)| host_has_suffix(host, suffix) && names.contains(&name))
}

/// `host` is `suffix` or a subdomain of it.
pub(crate) fn host_has_suffix(host: &str, suffix: &str) -> bool {
    host.strip_suffix(suffix)
        .is_some_and(|rest| rest.is_empty() || rest.ends_with('.'))
}

/// A unix time in seconds or milliseconds, or a long random number.
fn is_timestamp(value: &str) -> bool {
    (9..=19).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_digit())
}

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// At least 16 token characters whose letter case and digits alternate like random output
/// does: base64url tokens and hex hashes pass, slugs such as `Keynote-2024-Final` do not.
pub(crate) fn looks_random(s: &str) -> bool {
    let bytes = s.as_bytes();
    if bytes.len() < 16
        || !bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.~+=%".contains(b))
    {
        return false;
    }
    let class = |b: u8| match b {
        b'0'..=b'9' => 1,
        b'a'..=b'z' => 2,
        b'A'..=b'Z' => 3,
        _ => 0,
    };
    let mut switches = 0usize;
    let mut prev = 0;
    for &b in bytes {
        let c = class(b);
        if c == 0 {
            continue;
        }
        if prev != 0 && c != prev {
            switches += 1;
        }
        prev = c;
    }
    switches * 3 >= bytes.len()
}

fn is_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && is_hex(p))
}

/// An opaque per-viewer id: UUID, hex of 16+ digits, 6+ decimal digits or a random-looking token.
pub(crate) fn looks_like_id(s: &str) -> bool {
    is_uuid(s)
        || (s.len() >= 16 && is_hex(s) && s.bytes().any(|b| b.is_ascii_digit()))
        || (s.len() >= 6 && s.bytes().all(|b| b.is_ascii_digit()))
        || looks_random(s)
}

/// nginx `secure_link` and similar: a hash (32+ hex, or 20+ random base64url) next to a
/// 10-digit unix expiry, in either order.
pub(crate) fn is_signature_pair(a: &str, b: &str) -> bool {
    let is_hash = |s: &str| {
        (s.len() >= 32 && is_hex(s))
            || (s.len() >= 20
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_=".contains(&b))
                && looks_random(s))
    };
    let is_expiry = |s: &str| s.len() == 10 && s.bytes().all(|b| b.is_ascii_digit());
    (is_hash(a) && is_expiry(b)) || (is_expiry(a) && is_hash(b))
}

/// ASP.NET cookieless session segments: `(S(abc))`, `(A(x)S(y)F(z))`, `(X(1)S(y))`.
///
/// Azure Media Services' `(format=m3u8-aapl)` is content and does not match.
pub(crate) fn is_cookieless_session(seg: &str) -> bool {
    let Some(mut rest) = seg.strip_prefix('(').and_then(|s| s.strip_suffix(')')) else {
        return false;
    };
    let mut has_session = false;
    while !rest.is_empty() {
        let mut chars = rest.chars();
        let (Some(letter), Some('(')) = (chars.next(), chars.next()) else {
            return false;
        };
        if !letter.is_ascii_uppercase() {
            return false;
        }
        let Some(close) = rest.find(')') else {
            return false;
        };
        has_session |= letter == 'S';
        rest = &rest[close + 1..];
    }
    has_session
}

/// Wowza puts the session in chunk-list and media file names: `chunklist_w1234567890.m3u8`,
/// `media_w1234567890_b800000_42.ts`. Returns the name without `_w<digits>`, if there was one.
pub(crate) fn strip_wowza_session(file: &str) -> Option<String> {
    if !(file.starts_with("chunklist") || file.starts_with("media")) {
        return None;
    }
    let (stem, ext) = match file.rfind('.') {
        Some(dot) => file.split_at(dot),
        None => (file, ""),
    };
    let is_session = |part: &str| {
        part.strip_prefix('w')
            .is_some_and(|d| d.len() >= 5 && d.bytes().all(|b| b.is_ascii_digit()))
    };
    let parts: Vec<&str> = stem.split('_').collect();
    let kept: Vec<&str> = parts
        .iter()
        .enumerate()
        .filter(|&(i, part)| i == 0 || !is_session(part))
        .map(|(_, part)| *part)
        .collect();
    (kept.len() != parts.len()).then(|| format!("{}{ext}", kept.join("_")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn randomness_test_separates_tokens_from_slugs() {
        assert!(looks_random("aZ3kQ9xP0mN2vB7cRt5Y"));
        assert!(looks_random("3f9a0c7e4b1d8a2f6c0e9b7d5a3c1e2f"));
        assert!(!looks_random("Keynote2024Final"));
        assert!(!looks_random("WWDC2024-Keynote"));
        assert!(!looks_random("my-great-video-2024"));
        assert!(!looks_random("short"));
    }

    #[test]
    fn shapes() {
        assert!(is_uuid("123e4567-e89b-12d3-a456-426614174000"));
        assert!(is_signature_pair(
            "0d6e4079e36703ebd2b6b5a2bbf6a1d1",
            "1700000000"
        ));
        assert!(is_signature_pair(
            "1700000000",
            "0d6e4079e36703ebd2b6b5a2bbf6a1d1"
        ));
        assert!(!is_signature_pair("720p", "1700000000"));
        assert!(is_cookieless_session("(S(lit3py55t21z5v55vlm25s55))"));
        assert!(is_cookieless_session("(X(1)S(abc))"));
        assert!(!is_cookieless_session("(format=m3u8-aapl)"));
        assert!(!is_cookieless_session("(A(x))"));
        assert_eq!(
            strip_wowza_session("chunklist_w1234567890.m3u8").as_deref(),
            Some("chunklist.m3u8")
        );
        assert_eq!(
            strip_wowza_session("media_w1234567890_b800000_42.ts").as_deref(),
            Some("media_b800000_42.ts")
        );
        assert_eq!(strip_wowza_session("media_42.ts"), None);
        assert!(host_has_suffix(
            "rr3---sn-abc.googlevideo.com",
            "googlevideo.com"
        ));
        assert!(!host_has_suffix("notgooglevideo.com", "googlevideo.com"));
    }
}
