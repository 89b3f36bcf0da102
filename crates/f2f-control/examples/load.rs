//! Load test of the control plane: how many session issuances (`POST /v1/session`, token
//! checked, key certified, recorded in SQLite) and tracker joins (certificate and proof of
//! possession checked, entry peers handed out) it sustains per second on this machine.
//!
//! `cargo run --release -p f2f-control --example load -- [CLIENTS] [SECONDS]` (default 32
//! concurrent clients for 10 s per phase). Keys and their proofs are made before the clock
//! starts, so the figures are the server's work, with the clients on the same machine.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use f2f_control::protocol::{FromTracker, ToTracker, parse, to_text};
use f2f_control::session::{SessionGrant, SessionRequest};
use f2f_control::{Control, Issuer, IssuerConfig, SessionLimits, Store};
use f2f_core::content::{CanonicalConfig, Canonicalizer};
use f2f_core::identity::{Bls, Keypair, Signature, prove_possession};
use f2f_core::wire::decode_certificate;
use f2f_http::token::TokenKey;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

const STREAM: &str = "http://cdn.example/live/ch1/master.m3u8";

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let clients: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(32);
    let secs: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let secret = TokenKey::new([5; 32]);
    let dir = std::env::temp_dir().join(format!("f2f-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let issuer = Issuer::new(IssuerConfig {
        authority: Keypair::from_entropy(&[1; 32]),
        lifetime: Duration::from_secs(3600),
        validator: Some(Box::new(secret.clone())),
        store: Arc::new(Store::open(&dir.join("control.db")).unwrap()),
        limits: SessionLimits {
            identities_per_session: 3,
            per_token_per_minute: 1_000_000,
            per_address_per_minute: 1_000_000,
        },
        canonical: CanonicalConfig::default(),
    })
    .unwrap();
    let any = SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 0);
    let control = Control::start(issuer, None, any).await.unwrap();
    let swarm = Canonicalizer::new(CanonicalConfig::default())
        .unwrap()
        .swarm_id(STREAM)
        .unwrap();

    // Enough keys for the fastest plausible rate, made before the clock starts.
    let needed = 2000 * secs as usize;
    eprintln!("making {needed} keys and proofs…");
    let crypto = Bls::new();
    let requests: Vec<(Keypair, SessionRequest)> = (0..needed)
        .map(|n| {
            let key = Keypair::from_entropy(&(n as u64).to_le_bytes().repeat(4));
            let token = secret.issue(&format!("viewer-{n}"), u64::from(u32::MAX));
            let request = SessionRequest {
                token: Some(token),
                stream: STREAM.into(),
                public_key: *key.public().as_bytes(),
                possession: *prove_possession(&crypto, &key).as_bytes(),
            };
            (key, request)
        })
        .collect();
    let requests = Arc::new(requests);

    // Phase 1: sessions.
    let next = Arc::new(AtomicU64::new(0));
    let grants = Arc::new(std::sync::Mutex::new(Vec::new()));
    let url = format!("{}/v1/session", control.api_url());
    let until = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (next, grants, url, requests) =
                (next.clone(), grants.clone(), url.clone(), requests.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                while Instant::now() < until {
                    let n = next.fetch_add(1, Ordering::Relaxed) as usize;
                    let Some((key, request)) = requests.get(n) else {
                        break;
                    };
                    let response = http.post(&url).json(request).send().await.unwrap();
                    assert!(response.status().is_success(), "{}", response.status());
                    let grant: SessionGrant = response.json().await.unwrap();
                    grants
                        .lock()
                        .unwrap()
                        .push((key.public(), request.possession, grant));
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let issued = grants.lock().unwrap().len();
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "sessions: {issued} in {elapsed:.1} s = {:.0}/s ({clients} clients)",
        issued as f64 / elapsed
    );

    // Phase 2: tracker joins with those certificates (one socket each, closed after the
    // welcome, as a member that leaves at once).
    let grants = Arc::new(std::mem::take(&mut *grants.lock().unwrap()));
    let next = Arc::new(AtomicU64::new(0));
    let joined = Arc::new(AtomicU64::new(0));
    let signal = control.signal_url();
    let until = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (next, joined, grants, signal) =
                (next.clone(), joined.clone(), grants.clone(), signal.clone());
            tokio::spawn(async move {
                while Instant::now() < until {
                    let n = next.fetch_add(1, Ordering::Relaxed) as usize;
                    let Some((key, possession, grant)) = grants.get(n) else {
                        break;
                    };
                    let cert = decode_certificate(grant.certificate.clone().into()).unwrap();
                    let possession = Signature::from_bytes(*possession);
                    let join = ToTracker::join(swarm, key, &possession, None, Some(&cert));
                    let (mut ws, _) = tokio_tungstenite::connect_async(&signal).await.unwrap();
                    ws.send(Message::Text(to_text(&join).into())).await.unwrap();
                    let Some(Ok(Message::Text(text))) = ws.next().await else {
                        panic!("no welcome");
                    };
                    let welcome = parse::<FromTracker>(&text).unwrap();
                    assert!(
                        matches!(welcome, FromTracker::Welcome { .. }),
                        "{welcome:?}"
                    );
                    joined.fetch_add(1, Ordering::Relaxed);
                    let _ = ws.close(None).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let joins = joined.load(Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "joins: {joins} in {elapsed:.1} s = {:.0}/s ({clients} clients, a new WebSocket each)",
        joins as f64 / elapsed
    );
    let _ = std::fs::remove_dir_all(&dir);
}
