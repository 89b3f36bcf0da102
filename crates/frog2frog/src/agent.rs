//! `frog2frog agent`: the Linux agent, as an HTTP proxy for unmodified players.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context as _;
use f2f_agent::proxy::Proxy;
use f2f_agent::{Agent, AgentConfig};
use f2f_core::identity::PublicKey;

#[derive(clap::Args)]
pub(crate) struct AgentArgs {
    /// The control plane's signalling socket.
    #[arg(long, default_value = "ws://127.0.0.1:8090/v1/signal")]
    pub(crate) tracker: String,
    /// Address the HTTP proxy listens on.
    #[arg(long, default_value = "127.0.0.1:8081")]
    pub(crate) listen: SocketAddr,
    /// Address peer connections use (their ICE host candidate).
    #[arg(long, default_value = "127.0.0.1")]
    pub(crate) ice_addr: IpAddr,
    /// The node key (created with mode 0600 if missing).
    #[arg(long, default_value = "frog2frog-node.key")]
    pub(crate) key_file: PathBuf,
    /// Print the proxy URL to give a player for this stream URL.
    #[arg(long)]
    pub(crate) play: Option<String>,
    /// The origin's key (96 hex digits), when it publishes signed segment hashes: peers'
    /// bytes are checked against those instead of peer attestations.
    #[arg(long)]
    pub(crate) origin_key: Option<String>,
}

pub(crate) async fn agent(args: AgentArgs) -> anyhow::Result<()> {
    let keypair = f2f_agent::keyfile::load_or_create(&args.key_file)?;
    let mut config = AgentConfig::new(args.tracker, args.ice_addr);
    if let Some(key) = &args.origin_key {
        let bytes = hex::decode(key).map_err(|e| anyhow::anyhow!("--origin-key: {e}"))?;
        let bytes: [u8; 48] = (bytes.try_into())
            .map_err(|_| anyhow::anyhow!("--origin-key must be 48 bytes (96 hex digits)"))?;
        config.trust_origin(PublicKey::from_bytes(bytes));
    }
    let agent = Agent::new(config, keypair)?;
    let proxy = Proxy::start(agent.clone(), args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    println!("agent {} proxying on http://{}", agent.id(), proxy.addr);
    if let Some(url) = args.play {
        println!("player URL: {}", proxy.url_for(&url));
    }
    tokio::signal::ctrl_c().await?;
    agent.shutdown().await;
    Ok(())
}
