//! Telemetry ingestion over HTTP: a batch retried after a lost answer counts once; a receipt
//! bundle that does not verify is refused and counts nothing; a batch that is not gzip JSON is
//! refused with a reason. The dashboard's state drawn from it: topology, offload, churn.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use f2f_control::protocol::HexPeer;
use f2f_control::telemetry::{Batch, Billing, WireBundle, WireEntry, encode_batch};
use f2f_control::{Control, Issuer};
use f2f_core::identity::Keypair;

const ANY: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 0);

async fn post(control: &Control, body: Vec<u8>) -> u16 {
    reqwest::Client::new()
        .post(format!("{}/v1/telemetry", control.api_url()))
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn retries_count_once_and_forged_receipts_count_nothing() {
    let issuer = Issuer::open(Keypair::from_entropy(&[1; 32]), Duration::from_secs(3600));
    let control = Control::start(issuer, None, ANY).await.unwrap();
    let forged = WireBundle {
        uploader: HexPeer([3; 32]),
        swarm: [4; 32],
        entries: vec![WireEntry {
            receiver: vec![0; 201],
            window: 1,
            bytes: 1_000_000,
            segments: 1,
        }],
        signature: [0; 96],
    };
    let batch = Batch {
        agent: HexPeer([2; 32]),
        seq: 1,
        billing: vec![Billing {
            window: 60,
            swarm: [4; 32],
            stream: "cdn.example/live/master.m3u8".into(),
            cdn_bytes: 100,
            p2p_bytes: 900,
            uploaded_bytes: 50,
        }],
        receipts: vec![forged],
        ..Batch::default()
    };
    assert_eq!(post(&control, encode_batch(&batch)).await, 204);
    assert_eq!(post(&control, encode_batch(&batch)).await, 204);
    let billed = control.issuer().store().billing().unwrap();
    assert_eq!((billed[0].cdn_bytes, billed[0].p2p_bytes), (100, 900));
    let counters = control.ingest().counters();
    assert_eq!((counters.batches, counters.duplicates), (1, 1));
    assert_eq!(
        (counters.receipts_verified, counters.receipts_refused),
        (0, 1)
    );
    assert!(control.issuer().store().receipt_bytes().unwrap().is_empty());

    assert_eq!(post(&control, b"{\"agent\":".to_vec()).await, 400);
}

#[tokio::test]
async fn the_dashboard_state_draws_topology_and_flags_churn() {
    use f2f_control::telemetry::Health;
    let issuer = Issuer::open(Keypair::from_entropy(&[1; 32]), Duration::from_secs(3600));
    let control = Control::start(issuer, None, ANY).await.unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let last = now - now % 10 - 10;
    // Two agents linked to each other; quiet windows, then a burst of new connections.
    for (agent, other) in [(2u8, 3u8), (3, 2)] {
        let health = (0..6u64)
            .map(|k| Health {
                window: last - 10 * (5 - k),
                swarm: [4; 32],
                connections: if k == 5 { 20 } else { 1 },
                peers: 1,
                neighbours: vec![HexPeer([other; 32])],
                ..Health::default()
            })
            .collect();
        let billing = vec![Billing {
            window: last,
            swarm: [4; 32],
            stream: "cdn.example/live/master.m3u8".into(),
            cdn_bytes: 100,
            p2p_bytes: 300,
            uploaded_bytes: 0,
        }];
        let batch = Batch {
            agent: HexPeer([agent; 32]),
            seq: 1,
            billing,
            health,
            ..Batch::default()
        };
        assert_eq!(post(&control, encode_batch(&batch)).await, 204);
    }
    let state: serde_json::Value =
        reqwest::get(format!("{}/v1/dashboard/state", control.api_url()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let swarm = &state["swarms"][0];
    assert_eq!(swarm["peers"].as_array().unwrap().len(), 2, "{state}");
    assert_eq!(
        swarm["edges"].as_array().unwrap().len(),
        1,
        "one link, once: {state}"
    );
    assert_eq!(swarm["offload"], 0.75);
    let anomalies = swarm["anomalies"].to_string();
    assert!(
        anomalies.contains("sudden churn: 40 connections"),
        "{anomalies}"
    );
    let page = reqwest::get(format!("{}/dashboard", control.api_url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("/v1/dashboard/state"));
}
