//! What the agent's swarm tests share: the built-in origin with signed hashes, agents that
//! trust it, and a player that loads every new segment through an agent.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, SystemTime};

use f2f_agent::loader::LoadRequest;
use f2f_agent::{Agent, AgentConfig};
use f2f_control::Control;
use f2f_core::identity::Keypair;
use f2f_origin::{Clip, Live, Origin, OriginConfig};

pub(crate) const ANY: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 0);

/// The built-in origin, signing its segment hashes with the returned key.
pub(crate) async fn signed_origin() -> (Origin, Keypair) {
    let signing = Keypair::from_entropy(&[9; 32]);
    let config = OriginConfig {
        signing: Some(signing.clone()),
        ..OriginConfig::default()
    };
    let live = Live::new(Clip::builtin(), config, SystemTime::now());
    (Origin::start(live, ANY).await.unwrap(), signing)
}

/// An agent of `control` trusting `origin`'s hashes, with `tune` applied to its config.
pub(crate) fn agent(
    control: &Control,
    origin: &Keypair,
    seed: u8,
    tune: impl FnOnce(&mut AgentConfig),
) -> Agent {
    let mut config = AgentConfig::new(control.signal_url(), Ipv4Addr::LOCALHOST.into());
    config.trust_origin(origin.public());
    tune(&mut config);
    Agent::new(config, Keypair::from_entropy(&[seed; 32])).unwrap()
}

/// A player on `agent`: loads each new segment of the video playlist as it appears, until
/// the task is aborted.
pub(crate) fn play(agent: Agent, origin: &Origin) -> tokio::task::JoinHandle<()> {
    let playlist = format!("http://{}/live/video.m3u8", origin.addr);
    tokio::spawn(async move {
        let base = playlist.rsplit_once('/').unwrap().0.to_owned();
        let mut last = String::new();
        loop {
            if let Ok(m) = agent.manifest(&playlist).await {
                let text = String::from_utf8_lossy(&m.body).into_owned();
                if let Some(newest) = text.lines().rfind(|l| l.ends_with(".m4s")) {
                    if newest != last {
                        last = newest.to_owned();
                        let url = format!("{base}/{newest}");
                        let _ = agent.load_segment(LoadRequest::new(url)).await;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })
}
