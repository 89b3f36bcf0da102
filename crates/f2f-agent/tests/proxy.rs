//! The proxy as a player sees it, in both modes, against the built-in origin on loopback.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, SystemTime};

use f2f_agent::proxy::Proxy;
use f2f_agent::{Agent, AgentConfig};
use f2f_control::{Control, Issuer};
use f2f_core::identity::Keypair;
use f2f_origin::{Clip, Live, Origin, OriginConfig};

const ANY: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 0);

async fn setup() -> (Origin, Control, Proxy) {
    let live = Live::new(Clip::builtin(), OriginConfig::default(), SystemTime::now());
    let origin = Origin::start(live, ANY).await.unwrap();
    let issuer = Issuer::open(Keypair::from_entropy(&[1; 32]), Duration::from_secs(3600));
    let control = Control::start(issuer, None, ANY).await.unwrap();
    let config = AgentConfig::new(control.signal_url(), Ipv4Addr::LOCALHOST.into());
    let agent = Agent::new(config, Keypair::from_entropy(&[2; 32])).unwrap();
    let proxy = Proxy::start(agent, ANY).await.unwrap();
    (origin, control, proxy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewriting_mode_points_every_url_back_and_serves_ranges() {
    let (origin, _control, proxy) = setup().await;
    let client = reqwest::Client::new();
    let master = client
        .get(proxy.url_for(&origin.hls_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(master.status(), 200);
    assert_eq!(
        master.headers()["content-type"],
        "application/vnd.apple.mpegurl"
    );
    assert_eq!(master.headers()["access-control-allow-origin"], "*");
    let master = master.text().await.unwrap();
    let base = format!("http://{}/http://{}/live/", proxy.addr, origin.addr);
    assert!(master.contains(&format!("{base}video.m3u8")), "{master}");
    let media = client
        .get(format!("{base}video.m3u8"))
        .send()
        .await
        .unwrap();
    let media = media.text().await.unwrap();
    let segment = (media.lines())
        .find(|l| l.ends_with(".m4s"))
        .expect("a segment line");
    assert!(segment.starts_with(&base), "{segment}");
    let whole = client.get(segment).send().await.unwrap();
    assert_eq!(whole.status(), 200);
    let whole = whole.bytes().await.unwrap();
    let direct = reqwest::get(segment.trim_start_matches(&format!("http://{}/", proxy.addr)))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(whole, direct, "the origin's bytes");
    let part = client
        .get(segment)
        .header("range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.bytes().await.unwrap(), whole.slice(10..20));
    // Errors keep their meaning, with a reason in the body.
    let missing = client
        .get(format!("{base}video/999999.m4s"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let unreachable = client
        .get(format!("http://{}/http://127.0.0.1:9/x.m4s", proxy.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(unreachable.status(), 502);
    assert!(!unreachable.text().await.unwrap().is_empty());
    let nonsense = client
        .get(format!("http://{}/nothing", proxy.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(nonsense.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_mode_passes_manifests_unchanged() {
    let (origin, _control, proxy) = setup().await;
    let via = reqwest::Client::builder()
        .proxy(reqwest::Proxy::http(format!("http://{}", proxy.addr)).unwrap())
        .build()
        .unwrap();
    let url = format!("http://{}/live/video.m3u8", origin.addr);
    let through = via.get(&url).send().await.unwrap().text().await.unwrap();
    assert!(through.contains("\nvideo/") && !through.contains(&proxy.addr.to_string()));
    let segment = format!(
        "http://{}/live/{}",
        origin.addr,
        through.lines().find(|l| l.ends_with(".m4s")).unwrap()
    );
    let got = via
        .get(&segment)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let direct = reqwest::get(&segment).await.unwrap().bytes().await.unwrap();
    assert_eq!(got, direct);
}
