//! Remote configuration end to end in one process: the operator changes a setting through the
//! control plane's admin API; every agent following the config stream runs the new signed
//! version within moments; an agent whose own settings make a version unworkable keeps its last
//! good one; an agent that connects later pulls the newest version.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use f2f_agent::{Agent, AgentConfig};
use f2f_control::remote::ConfigChange;
use f2f_control::{Configs, Control, Issuer};
use f2f_core::identity::Keypair;

const ANY: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
const ADMIN: &str = "admin-secret";

async fn set(control: &Control, token: &str, pairs: &[(&str, &str)]) -> u16 {
    let change = ConfigChange {
        set: (pairs.iter())
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    };
    reqwest::Client::new()
        .post(format!("{}/v1/admin/config", control.api_url()))
        .bearer_auth(token)
        .json(&change)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn until(agents: &[Agent], version: u64, within: Duration) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < within {
        if agents.iter().all(|a| a.config_version() == version) {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_change_settings_on_running_agents() {
    let issuer = Issuer::open(Keypair::from_entropy(&[1; 32]), Duration::from_secs(3600));
    let operator = Keypair::from_entropy(&[2; 32]);
    let configs = Configs::new(operator.clone(), Some(ADMIN.into()), issuer.store().clone());
    let control = Control::start(issuer, Some(configs.unwrap()), ANY)
        .await
        .unwrap();
    let agent = |seed: u8, degree: usize| {
        let mut config = AgentConfig::new(control.signal_url(), Ipv4Addr::LOCALHOST.into());
        config.operator_key = Some(operator.public());
        config.engine.links.degree = degree;
        config.engine.links.max_degree = degree + 4;
        let agent = Agent::new(config, Keypair::from_entropy(&[seed; 32])).unwrap();
        agent.follow_config();
        agent
    };
    // Three agents as shipped, one whose own link degree is 10.
    let agents: Vec<Agent> = (10..13).map(|s| agent(s, 8)).collect();
    let wide = agent(13, 10);
    tokio::time::sleep(Duration::from_millis(500)).await;

    assert_eq!(
        set(&control, "wrong", &[("scheduler.cdn_budget", "2")]).await,
        401
    );
    assert_eq!(set(&control, ADMIN, &[("scheduler.sauce", "2")]).await, 400);
    assert_eq!(set(&control, ADMIN, &[("links.degree", "0")]).await, 400);

    assert_eq!(
        set(&control, ADMIN, &[("scheduler.cdn_budget", "2")]).await,
        200
    );
    let mut everyone = agents.clone();
    everyone.push(wide.clone());
    let took = until(&everyone, 1, Duration::from_secs(10)).await;
    let took = took.expect("every agent runs version 1");
    eprintln!(
        "config version 1 reached 4 agents in {} ms",
        took.as_millis()
    );

    // Fine for the shipped agents, unworkable for the one whose degree is 10.
    assert_eq!(
        set(&control, ADMIN, &[("links.max_degree", "9")]).await,
        200
    );
    let took = until(&agents, 2, Duration::from_secs(10)).await;
    assert!(took.is_some(), "the shipped agents run version 2");
    // The wide agent hears of version 2 on its own stream, maybe after the others took it.
    let start = Instant::now();
    while wide.stats().await.configs_refused == 0 && start.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(wide.stats().await.configs_refused, 1);
    assert_eq!(wide.config_version(), 1, "the last good version stays");

    // A latecomer pulls the newest version when it connects.
    let late = agent(14, 8);
    assert!(until(&[late], 2, Duration::from_secs(10)).await.is_some());
}
