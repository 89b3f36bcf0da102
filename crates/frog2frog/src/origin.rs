//! `frog2frog origin`: the built-in live origin on its own.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use f2f_origin::{Clip, Live, Origin, OriginConfig, TOKEN_PARAM, TokenKey, Watermark};

#[derive(clap::Args)]
pub(crate) struct OriginArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub(crate) listen: SocketAddr,
    /// Stream bit rate in kb/s (segments are padded to it).
    #[arg(long, default_value_t = 2000)]
    pub(crate) bitrate_kbps: u64,
    /// Segments in the live window.
    #[arg(long, default_value_t = 6)]
    pub(crate) window: u64,
    /// Require `hdnts` session tokens signed with this secret (64 hex digits).
    #[arg(long)]
    pub(crate) token_secret: Option<String>,
    /// A/B watermark variants: `off`, `paths` (per-session playlists) or `token` (the origin
    /// picks from the token).
    #[arg(long, default_value = "off", value_parser = parse_watermark)]
    pub(crate) watermark: Watermark,
    /// Make every N-th segment a personal ad (HLS, CUE-OUT/CUE-IN).
    #[arg(long)]
    pub(crate) ad_every: Option<u64>,
    /// Publish signed segment hashes (`<playlist>.f2f-hashes`) under a new origin key, printed
    /// at start (give it to agents as `--origin-key`).
    #[arg(long)]
    pub(crate) sign: bool,
}

fn parse_watermark(s: &str) -> Result<Watermark, String> {
    match s {
        "off" => Ok(Watermark::Off),
        "paths" => Ok(Watermark::Paths),
        "token" => Ok(Watermark::Token),
        _ => Err(format!("{s:?}: expected off, paths or token")),
    }
}

impl OriginArgs {
    /// The origin's configuration.
    pub(crate) fn config(&self) -> anyhow::Result<OriginConfig> {
        let tokens = match &self.token_secret {
            Some(hex_secret) => {
                let secret = crate::control::secret(hex_secret, "--token-secret")?;
                Some(TokenKey::new(secret))
            }
            None => None,
        };
        anyhow::ensure!(self.window >= 3, "--window must be at least 3 segments");
        anyhow::ensure!(
            self.watermark == Watermark::Off || tokens.is_some(),
            "--watermark needs --token-secret: variants follow the session in the token"
        );
        Ok(OriginConfig {
            bitrate_bps: self.bitrate_kbps * 1000,
            window: self.window,
            tokens,
            watermark: self.watermark,
            ad_every: self.ad_every,
            signing: self.sign.then(crate::control::fresh_key).transpose()?,
        })
    }
}

pub(crate) async fn origin(args: OriginArgs) -> anyhow::Result<()> {
    let config = args.config()?;
    let tokens = config.tokens.clone();
    if let Some(key) = &config.signing {
        println!("origin key: {}", hex::encode(key.public().as_bytes()));
    }
    let live = Live::new(Clip::builtin(), config, SystemTime::now());
    let origin = Origin::start(live, args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let query = match tokens {
        Some(key) => {
            let expires = SystemTime::now() + Duration::from_secs(24 * 3600);
            let expires = expires.duration_since(UNIX_EPOCH)?.as_secs();
            format!("?{TOKEN_PARAM}={}", key.issue("demo-viewer", expires))
        }
        None => String::new(),
    };
    println!("HLS:  {}{query}", origin.hls_url());
    println!("DASH: {}{query}", origin.dash_url());
    tokio::signal::ctrl_c().await?;
    Ok(())
}
