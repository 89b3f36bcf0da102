//! `frog2frog control`: the control plane (certificates for viewers' tokens, the bootstrap
//! tracker).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use f2f_control::remote::{ConfigChange, Revoke};
use f2f_control::{Configs, Control, Issuer, IssuerConfig, SessionLimits, Store, TokenValidator};
use f2f_core::content::CanonicalConfig;
use f2f_core::identity::Keypair;
use f2f_http::token::TokenKey;

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct ControlArgs {
    /// Talk to a running control plane instead of starting one.
    #[command(subcommand)]
    pub(crate) action: Option<ControlAction>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8090")]
    pub(crate) listen: SocketAddr,
    /// Lifetime of the peer certificates it issues, hours.
    #[arg(long, default_value_t = 6)]
    pub(crate) certificate_hours: u64,
    /// The SQLite database of identities and revocations (kept across restarts); without it,
    /// one in memory.
    #[arg(long)]
    pub(crate) db: Option<PathBuf>,
    /// The authority key certificates are signed with (created with mode 0600 if missing);
    /// without it, a fresh key every start (agents then need new certificates).
    #[arg(long)]
    pub(crate) key_file: Option<PathBuf>,
    /// The CDN's token secret (64 hex digits): viewers need a valid `hdnts` session token for
    /// the stream to get a certificate. Without it the control plane certifies any node key
    /// that proves possession.
    #[arg(long)]
    pub(crate) token_secret: Option<String>,
    /// Node keys one viewer session may hold certificates for.
    #[arg(long, default_value_t = 3)]
    pub(crate) identities_per_session: usize,
    /// The operator key remote configuration is signed with (created with mode 0600 if
    /// missing); without it, a fresh key every start. Agents are given its public half.
    #[arg(long)]
    pub(crate) operator_key: Option<PathBuf>,
    /// The bearer token `control config set` must present; without it, configuration cannot
    /// be changed.
    #[arg(long, env = "F2F_ADMIN_TOKEN")]
    pub(crate) admin_token: Option<String>,
}

#[derive(clap::Subcommand)]
pub(crate) enum ControlAction {
    /// Remote configuration of the running agents.
    #[command(subcommand)]
    Config(ConfigAction),
    /// Revokes a viewer's certificates (or one node key); the signed list reaches running
    /// agents on their config stream and spreads between neighbours.
    Revoke {
        /// The viewer session id (`sid` of its CDN token).
        #[arg(long, required_unless_present = "key")]
        viewer: Option<String>,
        /// One node key (96 hex digits).
        #[arg(long)]
        key: Option<String>,
        /// The control plane's API.
        #[arg(long, default_value = "http://127.0.0.1:8090")]
        api: String,
        /// Its admin token.
        #[arg(long, env = "F2F_ADMIN_TOKEN")]
        admin_token: String,
    },
}

#[derive(clap::Subcommand)]
pub(crate) enum ConfigAction {
    /// Sets engine settings on every agent, live: a new signed version.
    Set {
        /// `KEY=VALUE` pairs (keys: scheduler.source, scheduler.cdn_budget, … see the README).
        #[arg(required = true)]
        settings: Vec<String>,
        /// The control plane's API.
        #[arg(long, default_value = "http://127.0.0.1:8090")]
        api: String,
        /// Its admin token.
        #[arg(long, env = "F2F_ADMIN_TOKEN")]
        admin_token: String,
    },
}

/// A fresh key from the system's randomness.
pub(crate) fn fresh_key() -> anyhow::Result<Keypair> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(Keypair::from_entropy(&seed))
}

/// A 32-byte secret given as 64 hex digits.
pub(crate) fn secret(hex_text: &str, flag: &str) -> anyhow::Result<[u8; 32]> {
    let bytes = hex::decode(hex_text).map_err(|e| anyhow::anyhow!("{flag}: {e}"))?;
    bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("{flag} must be 32 bytes (64 hex digits)"))
}

pub(crate) async fn start(args: &ControlArgs) -> anyhow::Result<Control> {
    let authority = match &args.key_file {
        Some(path) => f2f_agent::keyfile::load_or_create(path)?,
        None => fresh_key()?,
    };
    let store = std::sync::Arc::new(match &args.db {
        Some(path) => Store::open(path).with_context(|| format!("opening {}", path.display()))?,
        None => Store::in_memory()?,
    });
    let operator = match &args.operator_key {
        Some(path) => f2f_agent::keyfile::load_or_create(path)?,
        None => fresh_key()?,
    };
    let configs = Configs::new(operator, args.admin_token.clone(), store.clone())?;
    let validator = match &args.token_secret {
        Some(hex_text) => {
            let key = TokenKey::new(secret(hex_text, "--token-secret")?);
            Some(Box::new(key) as Box<dyn TokenValidator>)
        }
        None => None,
    };
    let issuer = Issuer::new(IssuerConfig {
        authority,
        lifetime: Duration::from_secs(args.certificate_hours * 3600),
        validator,
        store,
        limits: SessionLimits {
            identities_per_session: args.identities_per_session,
            ..SessionLimits::default()
        },
        canonical: CanonicalConfig::default(),
    })
    .map_err(|e| anyhow::anyhow!(e))?;
    Control::start(issuer, Some(configs), args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))
}

pub(crate) async fn control(args: ControlArgs) -> anyhow::Result<()> {
    match args.action {
        Some(ControlAction::Config(ConfigAction::Set {
            settings,
            api,
            admin_token,
        })) => return set_config(&settings, &api, &admin_token).await,
        Some(ControlAction::Revoke {
            viewer,
            key,
            api,
            admin_token,
        }) => {
            let revoke = Revoke {
                viewer,
                public_key: key,
            };
            admin_post(&api, "/v1/admin/revoke", &admin_token, &revoke).await?;
            println!("revoked");
            return Ok(());
        }
        None => {}
    }
    let control = start(&args).await?;
    println!("authority: {}", hex::encode(control.authority.as_bytes()));
    if let Some(operator) = control.operator() {
        println!("operator: {}", hex::encode(operator.as_bytes()));
    }
    println!("api: {}", control.api_url());
    println!("tracker: {}", control.signal_url());
    tokio::signal::ctrl_c().await?;
    Ok(())
}

async fn set_config(settings: &[String], api: &str, admin_token: &str) -> anyhow::Result<()> {
    let mut change = ConfigChange::default();
    for pair in settings {
        let (key, value) =
            (pair.split_once('=')).ok_or_else(|| anyhow::anyhow!("`{pair}` is not KEY=VALUE"))?;
        change
            .set
            .insert(key.trim().to_owned(), value.trim().to_owned());
    }
    let body = admin_post(api, "/v1/admin/config", admin_token, &change).await?;
    println!("config: {body}");
    Ok(())
}

/// An authenticated admin call; the answer's body.
async fn admin_post<T: serde::Serialize>(
    api: &str,
    path: &str,
    admin_token: &str,
    body: &T,
) -> anyhow::Result<String> {
    let response = reqwest::Client::new()
        .post(format!("{}{path}", api.trim_end_matches('/')))
        .bearer_auth(admin_token)
        .json(body)
        .send()
        .await
        .with_context(|| format!("reaching {api}"))?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    anyhow::ensure!(status.is_success(), "refused ({status}): {}", body.trim());
    Ok(body)
}
