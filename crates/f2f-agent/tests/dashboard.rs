//! The operator dashboard in headless Chromium (Playwright driving Debian's chromium; set up
//! by `scripts/setup`): three agents play a live stream and report telemetry; the page loads,
//! draws the swarm's three peers with their links and a non-zero offload, and a screenshot is
//! written to `target/dashboard.png`.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use f2f_agent::loader::LoadRequest;
use f2f_agent::{Agent, AgentConfig};
use f2f_control::{Control, Issuer};
use f2f_core::identity::Keypair;
use f2f_origin::{Clip, Live, Origin, OriginConfig};

const ANY: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 0);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_a_live_swarm_in_chromium() {
    let signing = Keypair::from_entropy(&[9; 32]);
    let config = OriginConfig {
        signing: Some(signing.clone()),
        ..OriginConfig::default()
    };
    let origin = Origin::start(Live::new(Clip::builtin(), config, SystemTime::now()), ANY)
        .await
        .unwrap();
    let issuer = Issuer::open(Keypair::from_entropy(&[1; 32]), Duration::from_secs(3600));
    let control = Control::start(issuer, None, ANY).await.unwrap();
    let agents: Vec<Agent> = (2..5u8)
        .map(|seed| {
            let mut config = AgentConfig::new(control.signal_url(), Ipv4Addr::LOCALHOST.into());
            config.trust_origin(signing.public());
            let agent = Agent::new(config, Keypair::from_entropy(&[seed; 32])).unwrap();
            agent.report_telemetry(Duration::from_secs(1));
            agent
        })
        .collect();
    // The players: each agent loads every new segment for a while, and keeps doing so while
    // the browser looks.
    let playlist = format!("http://{}/live/video.m3u8", origin.addr);
    let players: Vec<_> = (agents.iter().cloned())
        .map(|agent| {
            let playlist = playlist.clone();
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
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(8)).await;

    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../f2f-control/dashboard/test");
    assert!(
        dir.join("node_modules/playwright-core").exists(),
        "playwright-core missing: run scripts/setup (npm ci in {})",
        dir.display()
    );
    let screenshot = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/dashboard.png");
    let url = format!("{}/dashboard", control.api_url());
    let shot = screenshot.clone();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .arg(dir.join("check.mjs"))
            .args([url.as_str(), shot.to_str().unwrap(), "3"])
            .output()
    })
    .await
    .unwrap()
    .expect("node runs (scripts/setup installs it)");
    for player in players {
        player.abort();
    }
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    eprintln!("dashboard showed {seen}");
    assert_eq!(seen["peers"], 3, "{seen}");
    assert!(seen["offload"].as_f64().unwrap() > 0.0, "{seen}");
    assert!(
        seen["edges"].as_u64().unwrap() >= 2,
        "the peers' links: {seen}"
    );
    assert!(std::fs::metadata(&screenshot).unwrap().len() > 10_000);
}
