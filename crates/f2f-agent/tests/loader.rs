//! The segment loader API as an embedding program uses it: two agents on one live stream of
//! the built-in origin, loading each new segment with progress events (the core's own test,
//! `p2p_delivery`, checks that they add up to a transfer's bytes); a prefetch hint that
//! makes the later request an instant answer from the node's store; a P2P-preferred and a
//! CDN-only request.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, SystemTime};

use f2f_agent::loader::{LoadEvent, LoadRequest, Source};
use f2f_agent::{Agent, AgentConfig};
use f2f_control::{Control, Issuer};
use f2f_core::identity::Keypair;
use f2f_origin::{Clip, Live, Origin, OriginConfig};
use tokio::sync::mpsc;

const ANY: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 0);

fn agent(control: &Control, origin_key: &Keypair, seed: u8) -> Agent {
    let mut config = AgentConfig::new(control.signal_url(), Ipv4Addr::LOCALHOST.into());
    config.trust_origin(origin_key.public());
    Agent::new(config, Keypair::from_entropy(&[seed; 32])).unwrap()
}

/// The newest segment URLs of the video playlist, as `agent` lists them.
async fn newest(agent: &Agent, playlist: &str) -> Vec<String> {
    let manifest = agent.manifest(playlist).await.unwrap();
    let text = String::from_utf8(manifest.body.to_vec()).unwrap();
    let base = playlist.rsplit_once('/').unwrap().0;
    (text.lines())
        .filter(|l| l.ends_with(".m4s"))
        .map(|l| format!("{base}/{l}"))
        .collect()
}

/// Loads `url` with events on; the segment and every event reported.
async fn load(
    agent: &Agent,
    url: &str,
    source: Source,
) -> (f2f_agent::loader::Segment, Vec<LoadEvent>) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut request = LoadRequest::new(url);
    request.source = source;
    request.events = Some(tx);
    let segment = agent.load_segment(request).await.unwrap();
    let mut events = Vec::new();
    while let Ok(event) = rx.try_recv() {
        events.push(event);
    }
    (segment, events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_events_prefetch_hints_and_cdn_only_requests() {
    let signing = Keypair::from_entropy(&[9; 32]);
    let config = OriginConfig {
        signing: Some(signing.clone()),
        ..OriginConfig::default()
    };
    let live = Live::new(Clip::builtin(), config, SystemTime::now());
    let origin = Origin::start(live, ANY).await.unwrap();
    let issuer = Issuer::open(Keypair::from_entropy(&[1; 32]), Duration::from_secs(3600));
    let control = Control::start(issuer, None, ANY).await.unwrap();
    let (a, b) = (agent(&control, &signing, 2), agent(&control, &signing, 3));
    let playlist = format!("http://{}/live/video.m3u8", origin.addr);
    newest(&a, &playlist).await;
    newest(&b, &playlist).await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Each new segment, on both agents, for a few segment durations.
    let (mut loads, mut from_peers) = (0, 0);
    let mut done = std::collections::BTreeSet::new();
    let until = tokio::time::Instant::now() + Duration::from_secs(14);
    while tokio::time::Instant::now() < until {
        let urls = newest(&a, &playlist).await;
        newest(&b, &playlist).await;
        let url = urls.last().unwrap().clone();
        if done.insert(url.clone()) {
            let direct = reqwest::get(&url).await.unwrap().bytes().await.unwrap();
            let (first, second) =
                tokio::join!(load(&a, &url, Source::Auto), load(&b, &url, Source::Auto));
            for (segment, events) in [first, second] {
                assert_eq!(segment.bytes, direct, "{url}: the origin's bytes");
                assert_eq!(events.first(), Some(&LoadEvent::Swarm), "{events:?}");
                let reported: u64 = (events.iter())
                    .map(|e| match e {
                        LoadEvent::PeerBytes(n) => *n,
                        _ => 0,
                    })
                    .sum();
                // Bytes that arrived before the request (the engine fetches what neighbours
                // announce) are in the segment but were no progress of this load.
                assert!(reported <= segment.p2p_bytes, "{url}: progress {reported}");
                loads += 1;
                from_peers += usize::from(segment.p2p_bytes > 0);
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(loads >= 8, "{loads} loads");
    assert!(from_peers > 0, "no load took bytes from the other agent");

    // A prefetch hint: the swarm loads the segment now, the request later is answered from
    // the node's store, with no bytes moving for it.
    let next = loop {
        let urls = newest(&b, &playlist).await;
        newest(&a, &playlist).await;
        let url = urls.last().unwrap().clone();
        if !done.contains(&url) {
            break url;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(b.prefetch(&next).await);
    assert!(!b.prefetch("http://127.0.0.1:9/never-listed.m4s").await);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (segment, events) = load(&b, &next, Source::Auto).await;
    assert_eq!(events, vec![LoadEvent::Swarm], "answered from the store");
    let direct = reqwest::get(&next).await.unwrap().bytes().await.unwrap();
    assert_eq!(segment.bytes, direct);

    // P2P-preferred: through the swarm, the origin's bytes.
    let preferred = loop {
        let urls = newest(&a, &playlist).await;
        newest(&b, &playlist).await;
        let url = urls.last().unwrap().clone();
        if url != next {
            break url;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let (segment, events) = load(&b, &preferred, Source::P2pPreferred).await;
    assert_eq!(events.first(), Some(&LoadEvent::Swarm));
    let direct = reqwest::get(&preferred)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(segment.bytes, direct);

    // CDN only: one direct request, no swarm.
    let (segment, events) = load(&a, &next, Source::CdnOnly).await;
    assert_eq!(events, vec![LoadEvent::CdnAttempt(0)]);
    let direct = reqwest::get(&next).await.unwrap().bytes().await.unwrap();
    assert_eq!((segment.p2p_bytes, segment.bytes), (0, direct));
}
