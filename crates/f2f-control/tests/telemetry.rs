//! Telemetry ingestion over HTTP: a batch retried after a lost answer counts once; a receipt
//! bundle that does not verify is refused and counts nothing; a batch that is not gzip JSON is
//! refused with a reason.

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
