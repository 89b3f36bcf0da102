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
    /// Serve a signalling contact here (`ws://ADDR/v1/signal`), advertised to the tracker:
    /// members that come back while the control plane is away rejoin through this agent.
    #[arg(long)]
    pub(crate) contact_listen: Option<SocketAddr>,
    /// Leave a swarm after this many seconds without a request for it.
    #[arg(long, default_value_t = 20)]
    pub(crate) swarm_idle_secs: u64,
    /// Record every message sent to peers in this file (length-prefixed wire frames; peer
    /// traffic is encrypted on the network). A debugging aid.
    #[arg(long)]
    pub(crate) capture_peer_messages: Option<PathBuf>,
    /// The operator's key (96 hex digits): follow the control plane's remote configuration
    /// signed with it, applied live.
    #[arg(long)]
    pub(crate) operator_key: Option<String>,
    /// Send telemetry (billing, receipts, health, debug) to the control plane this often,
    /// seconds; 0: never.
    #[arg(long, default_value_t = 10)]
    pub(crate) telemetry_secs: u64,
}

pub(crate) async fn agent(args: AgentArgs) -> anyhow::Result<()> {
    let keypair = f2f_agent::keyfile::load_or_create(&args.key_file)?;
    let mut config = AgentConfig::new(args.tracker, args.ice_addr);
    if let Some(key) = &args.origin_key {
        config.trust_origin(public_key(key, "--origin-key")?);
    }
    if let Some(key) = &args.operator_key {
        config.operator_key = Some(public_key(key, "--operator-key")?);
    }
    config.swarm_idle = std::time::Duration::from_secs(args.swarm_idle_secs);
    config.capture = args.capture_peer_messages;
    let agent = Agent::new(config, keypair)?;
    agent.follow_config();
    if args.telemetry_secs > 0 {
        agent.report_telemetry(std::time::Duration::from_secs(args.telemetry_secs));
    }
    let _contact = match args.contact_listen {
        Some(addr) => {
            let contact =
                (agent.serve_contact(addr).await).with_context(|| format!("binding {addr}"))?;
            println!("contact: ws://{}/v1/signal", contact.addr);
            Some(contact)
        }
        None => None,
    };
    let proxy = Proxy::start(agent.clone(), args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    println!("agent {} proxying on http://{}", agent.id(), proxy.addr);
    if let Some(url) = args.play {
        println!("player URL: {}", proxy.url_for(&url));
    }
    tokio::signal::ctrl_c().await?;
    agent.flush_telemetry().await;
    agent.shutdown().await;
    Ok(())
}

/// A public key given as 96 hex digits.
fn public_key(hex_text: &str, flag: &str) -> anyhow::Result<PublicKey> {
    let bytes = hex::decode(hex_text).map_err(|e| anyhow::anyhow!("{flag}: {e}"))?;
    let bytes: [u8; 48] = (bytes.try_into())
        .map_err(|_| anyhow::anyhow!("{flag} must be 48 bytes (96 hex digits)"))?;
    Ok(PublicKey::from_bytes(bytes))
}
