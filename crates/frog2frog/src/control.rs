//! `frog2frog control`: the control plane (today: certificates and the bootstrap tracker).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use f2f_control::{Control, Tracker};
use f2f_core::identity::Keypair;

#[derive(clap::Args)]
pub(crate) struct ControlArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8090")]
    pub(crate) listen: SocketAddr,
    /// Lifetime of the peer certificates it issues, hours.
    #[arg(long, default_value_t = 6)]
    pub(crate) certificate_hours: u64,
}

/// A fresh key from the system's randomness. The control plane's authority key is one (its
/// durable key store comes with the control-plane issue; until then every start signs with a
/// new key).
pub(crate) fn fresh_key() -> anyhow::Result<Keypair> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(Keypair::from_entropy(&seed))
}

pub(crate) async fn start(args: &ControlArgs) -> anyhow::Result<Control> {
    let lifetime = Duration::from_secs(args.certificate_hours * 3600);
    let tracker = Tracker::new(fresh_key()?, lifetime);
    Control::start(tracker, args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))
}

pub(crate) async fn control(args: ControlArgs) -> anyhow::Result<()> {
    let control = start(&args).await?;
    println!("tracker: {}", control.signal_url());
    tokio::signal::ctrl_c().await?;
    Ok(())
}
