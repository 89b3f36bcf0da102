//! `frog2frog`: the one command of Frog2Frog.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

mod agent;
mod control;
mod demo;
mod origin;
mod sign;

/// mimalloc: the simulator allocates and frees millions of small buffers (frames, messages,
/// timers) across 10,000 engines; with the system allocator a 10,000-viewer run is ~20 % slower.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "frog2frog", version, about = "Peer-assisted live streaming")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Simulate a swarm in virtual time and report offload, rebuffering and latency.
    Sim(SimArgs),
    /// Sign the hashes of an HLS playlist's segments (the origin side of segment integrity).
    Sign(sign::SignArgs),
    /// Serve a live HLS and DASH stream of real media (the built-in origin).
    Origin(origin::OriginArgs),
    /// Run the control plane (peer certificates, bootstrap tracker, signalling).
    Control(control::ControlArgs),
    /// Run the agent: an HTTP proxy that plays streams through the swarm.
    Agent(agent::AgentArgs),
    /// The whole system on loopback: origin, control plane, agents and headless players.
    Demo(demo::DemoArgs),
}

#[derive(clap::Args)]
struct SimArgs {
    /// Scenario file (see `scenarios/`).
    scenario: PathBuf,
    /// Override the scenario's seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Run this many consecutive seeds (from the scenario's, or `--seed`) and print one row per
    /// seed with the mean and spread; `--json` then writes an array of reports.
    #[arg(long, default_value_t = 1)]
    seeds: u64,
    /// Override the number of viewers.
    #[arg(long)]
    viewers: Option<u32>,
    /// Override the simulated duration, seconds.
    #[arg(long)]
    duration: Option<f64>,
    /// Write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Skip the CDN-only baseline run.
    #[arg(long)]
    no_baseline: bool,
    /// Compare peer-selection rules (`baseline`, `rtt`, `bandwidth`, `learned`, comma-separated): run each
    /// over the same seeds, without the CDN-only baseline, and print one row per rule.
    #[arg(long, value_delimiter = ',')]
    rankers: Vec<f2f_sim::RankerSpec>,
    /// Compare swap refinement off and on (`off,on`): like `--rankers`, and combined with it.
    #[arg(long, value_delimiter = ',', value_parser = parse_switch)]
    swap: Vec<bool>,
    /// No progress on stderr.
    #[arg(long, short)]
    quiet: bool,
}

fn main() -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Sim(args) => sim(args),
        Command::Sign(args) => sign::sign(args),
        Command::Origin(args) => runtime()?.block_on(origin::origin(args)),
        Command::Control(args) => runtime()?.block_on(control::control(args)),
        Command::Agent(args) => runtime()?.block_on(agent::agent(args)),
        Command::Demo(args) => runtime()?.block_on(demo::demo(args)),
    }
}

/// `on`/`off` (or `true`/`false`) on the command line.
fn parse_switch(s: &str) -> Result<bool, String> {
    match s {
        "on" | "true" => Ok(true),
        "off" | "false" => Ok(false),
        _ => Err(format!("{s:?}: expected on or off")),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn sim(args: SimArgs) -> anyhow::Result<()> {
    let mut scenario = f2f_sim::Scenario::load(&args.scenario)?;
    if let Some(seed) = args.seed {
        scenario.seed = seed;
    }
    if let Some(v) = args.viewers {
        scenario.audience.viewers = v;
    }
    if let Some(d) = args.duration {
        scenario.duration_s = d;
    }
    let started = Instant::now();
    let quiet = args.quiet;
    let mut progress = |run: usize, f: f64| {
        if !quiet {
            let name = ["p2p", "cdn-only", "honest"][run.min(2)];
            eprint!(
                "\r{name:>8} run: {:5.1} % of virtual time, {:6.1} s wall",
                f * 100.0,
                started.elapsed().as_secs_f64()
            );
            let _ = std::io::stderr().flush();
        }
    };
    let first_seed = scenario.seed;
    let seeds = first_seed..first_seed + args.seeds.max(1);
    // One set of runs per rule compared (none asked: one set, with the CDN-only baseline).
    let compared = !args.rankers.is_empty() || !args.swap.is_empty();
    let rankers: Vec<Option<f2f_sim::RankerSpec>> = if args.rankers.is_empty() {
        vec![None]
    } else {
        args.rankers.iter().copied().map(Some).collect()
    };
    let swaps: Vec<Option<bool>> = if args.swap.is_empty() {
        vec![None]
    } else {
        args.swap.iter().copied().map(Some).collect()
    };
    let mut runs = Vec::new();
    for ranker in &rankers {
        for swap in &swaps {
            if let Some(ranker) = ranker {
                scenario.engine.ranker = *ranker;
            }
            if swap.is_some() {
                scenario.engine.swap = *swap;
            }
            let reports: Vec<_> = (seeds.clone())
                .map(|seed| {
                    scenario.seed = seed;
                    f2f_sim::run(&scenario, !compared && !args.no_baseline, &mut progress)
                })
                .collect();
            let name = match swap {
                None => scenario.engine.ranker.name().to_owned(),
                Some(on) => format!(
                    "{} swap {}",
                    scenario.engine.ranker.name(),
                    if *on { "on" } else { "off" }
                ),
            };
            runs.push((name, reports));
        }
    }
    if !quiet {
        eprintln!(
            "\rdone in {:.1} s wall-clock{:30}",
            started.elapsed().as_secs_f64(),
            ""
        );
    }
    let json = match (!compared, runs[0].1.as_slice()) {
        (true, [one]) => {
            print!("{}", one.table());
            one.to_json()
        }
        (true, many) => {
            print!("{}", f2f_sim::seed_table(many));
            serde_json::to_string_pretty(many).context("serialising reports")?
        }
        (false, _) => {
            print!("{}", f2f_sim::ranker_table(&runs));
            let by_rule: std::collections::BTreeMap<_, _> = runs.into_iter().collect();
            serde_json::to_string_pretty(&by_rule).context("serialising reports")?
        }
    };
    if let Some(path) = args.json {
        std::fs::write(&path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
