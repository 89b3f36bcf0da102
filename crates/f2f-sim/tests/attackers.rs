//! A swarm with attackers among its viewers: peers that corrupt every piece they upload, peers
//! that claim every segment and never answer, peers with forged certificates. No bad byte
//! reaches a player, every peer that sent bad bytes is banned, forged identities are refused,
//! and playback suffers no more than in the honest run of the same audience.

use f2f_sim::Scenario;

const HOSTILE: &str = r#"
name = "hostile"
seed = 5
duration_s = 60

[source]
bitrate_kbps = 4000
segment_s = 2.0

[network]
uplink_kbps = { dist = "log_normal", median = 12000, sigma = 0.6, min = 2000 }
downlink_kbps = { dist = "log_normal", median = 60000, sigma = 0.5, min = 10000 }
latency_ms = { dist = "uniform", min = 5.0, max = 40.0 }

[cdn]
latency_ms = 40
per_flow_kbps = 50000

[audience]
viewers = 50
join_window_s = 10

[security]
corrupt_fraction = 0.1
liar_fraction = 0.1
forged_fraction = 0.06
"#;

#[test]
fn attackers_are_caught_and_cost_the_players_nothing() {
    let scenario = Scenario::parse(HOSTILE).expect("valid scenario");
    let report = f2f_sim::run(&scenario, false, &mut |_, _| {});
    let (p2p, honest) = (&report.p2p, report.honest.as_ref().expect("honest run"));
    let attacks = p2p.attacks.as_ref().expect("attack figures");
    assert!(attacks.corrupt_peers > 0 && attacks.liar_peers > 0 && attacks.forged_peers > 0);
    assert!(
        attacks.corrupt_pieces_sent > 0,
        "the attack happened: {attacks:?}"
    );
    assert_eq!(p2p.corrupt_deliveries, 0, "a bad byte reached a player");
    assert_eq!(p2p.load_failures, 0);
    assert!(attacks.bad_senders > 0);
    assert_eq!(
        attacks.bad_senders_banned, attacks.bad_senders,
        "a peer that sent bad bytes was never banned"
    );
    assert!(attacks.corrupt_pieces_caught >= attacks.bans);
    assert!(attacks.forged_refused > 0, "forged identities were let in");
    assert!(
        p2p.rebuffer_ratio <= honest.rebuffer_ratio + 0.002,
        "rebuffer {} with attackers, {} without",
        p2p.rebuffer_ratio,
        honest.rebuffer_ratio
    );
    assert!(honest.attacks.is_none());
}

#[test]
fn attackers_need_the_real_checks() {
    let modelled = HOSTILE.replace("[security]", "[security]\nhashing = \"modelled\"");
    let err = Scenario::parse(&modelled).expect_err("refused");
    assert!(err.to_string().contains("attackers need"), "{err}");
}
