//! The operator dashboard in headless Chromium (Playwright driving Debian's chromium; set up
//! by `scripts/setup`): three agents play a live stream and report telemetry; the page loads,
//! draws the swarm's three peers with their links and a non-zero offload, and a screenshot is
//! written to `target/dashboard.png`.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{ANY, agent, play, signed_origin};
use f2f_agent::Agent;
use f2f_control::{Control, Issuer};
use f2f_core::identity::Keypair;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_a_live_swarm_in_chromium() {
    let (origin, signing) = signed_origin().await;
    let issuer = Issuer::open(Keypair::from_entropy(&[1; 32]), Duration::from_secs(3600));
    let control = Control::start(issuer, None, ANY).await.unwrap();
    let agents: Vec<Agent> = (2..5u8)
        .map(|seed| {
            let agent = agent(&control, &signing, seed, |_| {});
            agent.report_telemetry(Duration::from_secs(1));
            agent
        })
        .collect();
    // The players keep playing while the browser looks.
    let players: Vec<_> = agents.iter().map(|a| play(a.clone(), &origin)).collect();
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
