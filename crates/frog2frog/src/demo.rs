//! `frog2frog demo`: the whole system on one machine with no set-up. The built-in origin, the
//! control plane and N agents on loopback, and one headless player (ffmpeg reading the live
//! stream through its agent's proxy, as an unmodified player would) per agent; a live status
//! line, and a summary table at the end or on Ctrl-C.

use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use f2f_agent::proxy::Proxy;
use f2f_agent::{Agent, AgentConfig, AgentStats};
use f2f_origin::{Clip, Live, Origin, OriginConfig};

use crate::control::{ControlArgs, start as start_control};

#[derive(clap::Args)]
pub(crate) struct DemoArgs {
    /// Viewers: one agent and one player each.
    #[arg(long, default_value_t = 8)]
    pub(crate) viewers: usize,
    /// Seconds to run; 0 runs until Ctrl-C.
    #[arg(long, default_value_t = 60)]
    pub(crate) duration: u64,
    /// Stream bit rate, kb/s.
    #[arg(long, default_value_t = 2000)]
    pub(crate) bitrate_kbps: u64,
    /// Play the DASH manifest instead of HLS.
    #[arg(long)]
    pub(crate) dash: bool,
}

struct Viewer {
    agent: Agent,
    _proxy: Proxy,
    /// The agent's signalling contact: the swarm re-forms through it without the tracker.
    _contact: f2f_http::Server,
    player: tokio::process::Child,
}

const LOOPBACK: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 0);

pub(crate) async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.viewers >= 1, "--viewers must be at least 1");
    let origin_key = crate::control::fresh_key()?;
    let origin_public = origin_key.public();
    let config = OriginConfig {
        bitrate_bps: args.bitrate_kbps * 1000,
        signing: Some(origin_key),
        ..OriginConfig::default()
    };
    let live = Live::new(Clip::builtin(), config, SystemTime::now());
    let origin = Origin::start(live, LOOPBACK).await?;
    let control = start_control(&ControlArgs {
        listen: LOOPBACK,
        certificate_hours: 6,
        db: None,
        key_file: None,
        token_secret: None,
        identities_per_session: 3,
        operator_key: None,
        admin_token: None,
        action: None,
    })
    .await?;
    let stream = if args.dash {
        origin.dash_url()
    } else {
        origin.hls_url()
    };
    println!("origin    {stream}");
    println!("tracker   {}", control.signal_url());
    let mut viewers = Vec::new();
    for i in 0..args.viewers {
        let keypair = crate::control::fresh_key()?;
        let mut config = AgentConfig::new(control.signal_url(), Ipv4Addr::LOCALHOST.into());
        config.trust_origin(origin_public);
        let agent = Agent::new(config, keypair)?;
        let contact = agent.serve_contact(LOOPBACK).await?;
        agent.report_telemetry(Duration::from_secs(5));
        let proxy = Proxy::start(agent.clone(), LOOPBACK).await?;
        let url = proxy.url_for(&stream);
        if i == 0 {
            println!("player    ffmpeg -i {url} -c copy -f null -   (one per agent)");
        }
        let player = tokio::process::Command::new("ffmpeg")
            .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-i", &url])
            .args(["-c", "copy", "-f", "null", "-"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting ffmpeg (the demo's headless player): is ffmpeg installed?")?;
        viewers.push(Viewer {
            agent,
            _proxy: proxy,
            _contact: contact,
            player,
        });
        // Viewers arrive over a few seconds, as they do.
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    let started = Instant::now();
    let until = (args.duration > 0).then(|| started + Duration::from_secs(args.duration));
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = tokio::signal::ctrl_c() => break,
        }
        let stats = collect(&mut viewers).await;
        status(&stats, started.elapsed());
        if until.is_some_and(|u| Instant::now() >= u) {
            break;
        }
    }
    println!();
    let stats = collect(&mut viewers).await;
    summary(&viewers, &stats);
    for v in &viewers {
        v.agent.shutdown().await;
    }
    Ok(())
}

async fn collect(viewers: &mut [Viewer]) -> Vec<(AgentStats, bool)> {
    let mut out = Vec::with_capacity(viewers.len());
    for v in viewers.iter_mut() {
        let playing = matches!(v.player.try_wait(), Ok(None));
        out.push((v.agent.stats().await, playing));
    }
    out
}

fn totals(stats: &[(AgentStats, bool)]) -> AgentStats {
    let mut t = AgentStats::default();
    for (s, _) in stats {
        t.segments += s.segments;
        t.failed += s.failed;
        t.late += s.late;
        t.bytes += s.bytes;
        t.served_p2p_bytes += s.served_p2p_bytes;
    }
    t
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

fn status(stats: &[(AgentStats, bool)], elapsed: Duration) {
    let t = totals(stats);
    let playing = stats.iter().filter(|(_, p)| *p).count();
    let neighbours: usize = (stats.iter())
        .flat_map(|(s, _)| s.swarms.iter().map(|n| n.neighbours.len()))
        .sum();
    print!(
        "\r{:>4}s  viewers {playing}/{}  offload {:5.1} %  p2p {:7.1} MB  cdn {:7.1} MB  neighbours {:4.1}  late {}  failed {}   ",
        elapsed.as_secs(),
        stats.len(),
        t.offload() * 100.0,
        mb(t.served_p2p_bytes),
        mb(t.bytes - t.served_p2p_bytes),
        neighbours as f64 / stats.len().max(1) as f64,
        t.late,
        t.failed,
    );
    let _ = std::io::stdout().flush();
}

fn summary(viewers: &[Viewer], stats: &[(AgentStats, bool)]) {
    println!(
        "{:<12} {:>8} {:>9} {:>9} {:>8} {:>9} {:>10} {:>5} {:>6}",
        "agent",
        "segments",
        "p2p MB",
        "cdn MB",
        "offload",
        "upload MB",
        "neighbours",
        "late",
        "failed"
    );
    for (v, (s, _)) in viewers.iter().zip(stats) {
        let neighbours: usize = s.swarms.iter().map(|n| n.neighbours.len()).sum();
        println!(
            "{:<12} {:>8} {:>9.1} {:>9.1} {:>7.1}% {:>9.1} {:>10} {:>5} {:>6}",
            v.agent.id().to_string(),
            s.segments,
            mb(s.served_p2p_bytes),
            mb(s.bytes - s.served_p2p_bytes),
            s.offload() * 100.0,
            mb(s.uploaded_bytes()),
            neighbours,
            s.late,
            s.failed
        );
    }
    let t = totals(stats);
    println!(
        "{:<12} {:>8} {:>9.1} {:>9.1} {:>7.1}% {:>9} {:>10} {:>5} {:>6}",
        "all",
        t.segments,
        mb(t.served_p2p_bytes),
        mb(t.bytes - t.served_p2p_bytes),
        t.offload() * 100.0,
        "",
        "",
        t.late,
        t.failed
    );
}
