//! Table-driven tests of content identity: URL shapes, HLS and DASH manifests seen in the wild,
//! and a no-panic property test over garbage input.
//!
//! Every case names the deployment it imitates. Hosts, ids and tokens are made up.

mod dash;
mod fuzz;
mod hls;
mod urls;

use super::{CanonicalConfig, Canonicalizer, HostAlias};

/// The canonicaliser most cases use: a few CDN shard aliases, nothing else.
fn canonicalizer() -> Canonicalizer {
    let alias = |from: &str, to: &str| HostAlias {
        from: from.into(),
        to: to.into(),
    };
    Canonicalizer::new(CanonicalConfig {
        host_aliases: vec![
            alias("*.cdn.example.com", "cdn.example.com"),
            alias("cdn*.example.net", "cdn.example.net"),
            alias("*.googlevideo.com", "googlevideo.com"),
            alias("live-backup.example.org", "live.example.org"),
        ],
        ..CanonicalConfig::default()
    })
    .expect("valid test config")
}
