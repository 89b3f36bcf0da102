//! `frog2frog sim` as a user runs it: a scenario file in, a table on stdout, JSON on request,
//! and a clear error (not a panic) for a broken scenario.

use std::process::Command;

const SCENARIO: &str = r#"
name = "cli"
seed = 11
duration_s = 30

[source]
bitrate_kbps = 2000
segment_s = 2.0

[network]
uplink_kbps = { dist = "const", value = 10000 }
downlink_kbps = { dist = "const", value = 50000 }
latency_ms = { dist = "const", value = 20.0 }

[cdn]
latency_ms = 30
per_flow_kbps = 40000

[audience]
viewers = 20
join_window_s = 5
"#;

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("f2f-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[test]
fn sim_prints_a_table_and_writes_json() {
    let dir = temp_dir("ok");
    let scenario = dir.join("s.toml");
    let json = dir.join("report.json");
    std::fs::write(&scenario, SCENARIO).expect("write scenario");
    let out = Command::new(env!("CARGO_BIN_EXE_frog2frog"))
        .args(["sim", "-q", "--json"])
        .arg(&json)
        .arg(&scenario)
        .output()
        .expect("run frog2frog");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8(out.stdout).expect("utf-8");
    assert!(
        table.contains("offload") && table.contains("cdn-only"),
        "{table}"
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("json written")).expect("valid json");
    assert_eq!(report["p2p"]["viewers"], 20);
    assert!(report["p2p"]["offload"].as_f64().expect("number") > 0.0);
    assert_eq!(report["baseline"]["offload"].as_f64(), Some(0.0));
}

#[test]
fn a_broken_scenario_is_a_clear_error() {
    let dir = temp_dir("bad");
    let scenario = dir.join("bad.toml");
    std::fs::write(&scenario, SCENARIO.replace("viewers = 20", "viewers = 0")).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_frog2frog"))
        .args(["sim", "-q"])
        .arg(&scenario)
        .output()
        .expect("run frog2frog");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("audience.viewers"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn several_seeds_give_one_row_each_and_a_json_array() {
    let dir = temp_dir("seeds");
    let scenario = dir.join("s.toml");
    let json = dir.join("reports.json");
    std::fs::write(&scenario, SCENARIO).expect("write scenario");
    let out = Command::new(env!("CARGO_BIN_EXE_frog2frog"))
        .args(["sim", "-q", "--no-baseline", "--seeds", "2", "--json"])
        .arg(&json)
        .arg(&scenario)
        .output()
        .expect("run frog2frog");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8(out.stdout).expect("utf-8");
    assert!(table.contains("offload mean"), "{table}");
    let reports: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("json written")).expect("valid json");
    let seeds: Vec<u64> = reports
        .as_array()
        .expect("array")
        .iter()
        .map(|r| r["seed"].as_u64().expect("seed"))
        .collect();
    assert_eq!(seeds, [11, 12]);
}

#[test]
fn rankers_are_compared_over_the_same_seeds() {
    let dir = temp_dir("rankers");
    let scenario = dir.join("s.toml");
    let json = dir.join("rankers.json");
    std::fs::write(&scenario, SCENARIO).expect("write scenario");
    let sim = |rankers: &str| {
        Command::new(env!("CARGO_BIN_EXE_frog2frog"))
            .args(["sim", "-q", "--seeds", "2", "--rankers", rankers, "--json"])
            .arg(&json)
            .arg(&scenario)
            .output()
            .expect("run frog2frog")
    };
    let out = sim("baseline,bandwidth");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8(out.stdout).expect("utf-8");
    let rows: Vec<&str> = table.lines().skip(2).collect();
    assert_eq!(rows.len(), 2, "{table}");
    assert!(rows[0].starts_with("baseline") && rows[1].starts_with("bandwidth"));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("json written")).expect("valid json");
    for rule in ["baseline", "bandwidth"] {
        let seeds: Vec<u64> = (report[rule].as_array().expect("reports per rule"))
            .iter()
            .map(|r| r["seed"].as_u64().expect("seed"))
            .collect();
        assert_eq!(seeds, [11, 12]);
    }
    let out = sim("baseline,psychic");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown ranker"), "{err}");
}
