//! Revocation reaches running swarms: the operator revokes one viewer while three agents
//! play; the authority's signed list comes down the config stream, every engine checks it,
//! and the revoked viewer's node is cut off by its neighbours.

mod common;

use std::time::{Duration, Instant};

use common::{ANY, agent, play, signed_origin};
use f2f_agent::Agent;
use f2f_control::remote::Revoke;
use f2f_control::{Configs, Control, Issuer};
use f2f_core::identity::Keypair;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_viewer_is_cut_off_by_the_swarm() {
    let (origin, signing) = signed_origin().await;
    let issuer = Issuer::open(Keypair::from_entropy(&[1; 32]), Duration::from_secs(3600));
    let operator = Keypair::from_entropy(&[2; 32]);
    let configs = Configs::new(
        operator.clone(),
        Some("admin".into()),
        issuer.store().clone(),
    );
    let control = Control::start(issuer, Some(configs.unwrap()), ANY)
        .await
        .unwrap();
    let agents: Vec<Agent> = (3..6u8)
        .map(|seed| {
            let agent = agent(&control, &signing, seed, |c| {
                c.operator_key = Some(operator.public());
            });
            agent.follow_config();
            agent
        })
        .collect();
    let players: Vec<_> = agents.iter().map(|a| play(a.clone(), &origin)).collect();
    let connected = |a: &Agent| {
        let a = a.clone();
        async move {
            a.stats()
                .await
                .swarms
                .iter()
                .map(|s| s.connected)
                .sum::<usize>()
        }
    };
    let start = Instant::now();
    while connected(&agents[2]).await < 2 {
        assert!(start.elapsed() < Duration::from_secs(20), "the swarm forms");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The open issuer names each viewer after its node's id.
    let revoke = Revoke {
        viewer: Some(hex::encode(agents[2].id().as_bytes())),
        public_key: None,
    };
    let status = reqwest::Client::new()
        .post(format!("{}/v1/admin/revoke", control.api_url()))
        .bearer_auth("admin")
        .json(&revoke)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 204);
    let start = Instant::now();
    loop {
        let mut revoked = 0;
        for a in &agents[..2] {
            revoked += (a.stats().await.swarms.iter())
                .map(|s| s.engine.peers_revoked)
                .sum::<u64>();
        }
        if revoked >= 2 && connected(&agents[2]).await == 0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "both neighbours cut the revoked node off ({revoked} revocations applied)"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("revocation applied in {} ms", start.elapsed().as_millis());
    for p in players {
        p.abort();
    }
}
