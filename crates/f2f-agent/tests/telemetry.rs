//! Telemetry in one process: three agents play a live stream of the built-in origin and
//! report to the control plane; its billing totals equal the bytes the agents' engines
//! counted, and the receipt bundles they earned for their uploads are verified there.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, SystemTime};

use f2f_agent::loader::LoadRequest;
use f2f_agent::{Agent, AgentConfig};
use f2f_control::{Control, Issuer};
use f2f_core::identity::Keypair;
use f2f_origin::{Clip, Live, Origin, OriginConfig};

const ANY: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 0);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn billing_matches_the_bytes_moved_and_receipts_are_verified() {
    let signing = Keypair::from_entropy(&[9; 32]);
    let config = OriginConfig {
        signing: Some(signing.clone()),
        ..OriginConfig::default()
    };
    let live = Live::new(Clip::builtin(), config, SystemTime::now());
    let origin = Origin::start(live, ANY).await.unwrap();
    let issuer = Issuer::open(Keypair::from_entropy(&[1; 32]), Duration::from_secs(3600));
    let control = Control::start(issuer, None, ANY).await.unwrap();
    let agents: Vec<Agent> = (2..5u8)
        .map(|seed| {
            let mut config = AgentConfig::new(control.signal_url(), Ipv4Addr::LOCALHOST.into());
            config.trust_origin(signing.public());
            // Receipts every 2 s rather than every minute, so a short test earns some.
            config.engine.receipts.window = Duration::from_secs(2);
            Agent::new(config, Keypair::from_entropy(&[seed; 32])).unwrap()
        })
        .collect();
    for agent in &agents {
        agent.report_telemetry(Duration::from_secs(1));
    }
    let playlist = format!("http://{}/live/video.m3u8", origin.addr);
    let base = playlist.rsplit_once('/').unwrap().0.to_owned();
    let mut done = std::collections::BTreeSet::new();
    let until = tokio::time::Instant::now() + Duration::from_secs(16);
    while tokio::time::Instant::now() < until {
        let mut newest = None;
        for agent in &agents {
            let manifest = agent.manifest(&playlist).await.unwrap();
            let text = String::from_utf8(manifest.body.to_vec()).unwrap();
            newest = text
                .lines()
                .rfind(|l| l.ends_with(".m4s"))
                .map(str::to_owned);
        }
        let url = format!("{base}/{}", newest.unwrap());
        if done.insert(url.clone()) {
            let loads = agents
                .iter()
                .map(|a| a.load_segment(LoadRequest::new(&url)));
            for loaded in futures_util::future::join_all(loads).await {
                loaded.unwrap();
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // The stream ends (no new segment moves any more); the last receipt window closes and
    // its bundles go out.
    drop(origin);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (mut cdn, mut p2p, mut uploaded) = (0, 0, 0);
    for agent in &agents {
        assert!(
            agent.flush_telemetry().await,
            "the control plane took the batch"
        );
        for node in agent.stats().await.swarms {
            cdn += node.engine.cdn_bytes;
            p2p += node.engine.p2p_bytes;
            uploaded += node.engine.uploaded_bytes;
        }
    }
    let billed = control.issuer().store().billing().unwrap();
    assert_eq!(billed.len(), 1, "one stream: {billed:?}");
    let b = &billed[0];
    assert!(b.stream.ends_with("/live/video.m3u8"), "{}", b.stream);
    assert!(!b.stream.contains("http://"), "canonical: {}", b.stream);
    assert_eq!(
        (b.cdn_bytes, b.p2p_bytes, b.uploaded_bytes),
        (cdn, p2p, uploaded)
    );
    assert!(p2p > 0, "peers moved bytes");
    let counters = control.ingest().counters();
    assert!(counters.receipts_verified > 0, "{counters:?}");
    assert_eq!(counters.receipts_refused, 0, "{counters:?}");
    let vouched: u64 = (control.issuer().store().receipt_bytes().unwrap())
        .iter()
        .map(|(_, bytes)| bytes)
        .sum();
    assert!(
        vouched > 0 && vouched <= uploaded,
        "{vouched} vouched of {uploaded} uploaded"
    );
    let metrics = reqwest::get(format!("{}/metrics", control.api_url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("f2f_control_billed_bytes_total{stream="),
        "{metrics}"
    );
}
