//! Authorisation over HTTP: certificates issued for a valid CDN token and refused for a
//! missing, forged, expired or other-stream token, past the identity limit and the rate limit;
//! renewal; revocation; and the tracker admitting only certified nodes.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use f2f_control::protocol::{FromTracker, ToTracker, parse, to_text};
use f2f_control::session::{RenewRequest, SessionGrant, SessionRequest};
use f2f_control::{Control, Issuer, IssuerConfig, SessionLimits, Store};
use f2f_core::content::{CanonicalConfig, Canonicalizer};
use f2f_core::identity::{Bls, Keypair, Scope, prove_possession};
use f2f_core::wire::decode_certificate;
use f2f_http::token::{Session, TokenKey};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

const ANY: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
const STREAM: &str = "http://cdn.example/live/ch1/master.m3u8";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn request(token: Option<String>, stream: &str, key: &Keypair) -> SessionRequest {
    SessionRequest {
        token,
        stream: stream.into(),
        public_key: *key.public().as_bytes(),
        possession: *prove_possession(&Bls::new(), key).as_bytes(),
    }
}

async fn post<T: serde::Serialize>(url: String, body: &T) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(url)
        .json(body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn join(control: &Control, key: &Keypair, certificate: Option<&[u8]>) -> FromTracker {
    let (mut ws, _) = tokio_tungstenite::connect_async(control.signal_url())
        .await
        .unwrap();
    let swarm = Canonicalizer::new(CanonicalConfig::default())
        .unwrap()
        .swarm_id(STREAM)
        .unwrap();
    let cert = certificate.map(|c| decode_certificate(c.to_vec().into()).unwrap());
    let possession = prove_possession(&Bls::new(), key);
    let join = ToTracker::join(swarm, &key.public(), &possession, None, cert.as_ref());
    ws.send(Message::Text(to_text(&join).into())).await.unwrap();
    let Some(Ok(Message::Text(text))) = ws.next().await else {
        panic!("no answer");
    };
    parse::<FromTracker>(&text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_become_certificates_within_limits_and_the_tracker_wants_them() {
    let secret = TokenKey::new([4; 32]);
    let authority = Keypair::from_entropy(&[1; 32]);
    let issuer = Issuer::new(IssuerConfig {
        authority: authority.clone(),
        lifetime: Duration::from_secs(7200),
        validator: Some(Box::new(secret.clone())),
        store: std::sync::Arc::new(Store::in_memory().unwrap()),
        limits: SessionLimits {
            identities_per_session: 2,
            per_token_per_minute: 5,
            per_address_per_minute: 1000,
        },
        canonical: CanonicalConfig::default(),
    })
    .unwrap();
    let control = Control::start(issuer, None, ANY).await.unwrap();
    let url = format!("{}/v1/session", control.api_url());
    let keys: Vec<Keypair> = (10..14u8)
        .map(|i| Keypair::from_entropy(&[i; 32]))
        .collect();
    let token = |sid: &str, expires: u64, acl: Option<&str>| {
        secret.issue_session(&Session {
            id: sid.into(),
            expires,
            acl: acl.map(str::to_owned),
            watermark: None,
        })
    };

    // Refused: no token, a forged one, an expired one, one for another stream.
    let valid = token("viewer-1", now() + 600, Some("/live/ch1/*"));
    let refusals = [
        (None, "token refused: missing"),
        (Some(valid.replace("viewer-1", "viewer-9")), "signature"),
        (Some(token("viewer-1", now() - 1, None)), "expired"),
        (
            Some(token("viewer-1", now() + 600, Some("/live/ch2/*"))),
            "not for this stream",
        ),
    ];
    for (bad, reason) in refusals {
        let (status, body) = post(url.clone(), &request(bad, STREAM, &keys[0])).await;
        assert_eq!(status, 403, "{body}");
        assert!(body.contains(reason), "{body}");
    }

    // Issued: a certificate for this key, scoped to the stream's swarm, by our authority.
    let (status, body) = post(url.clone(), &request(Some(valid.clone()), STREAM, &keys[0])).await;
    assert_eq!(status, 200, "{body}");
    let grant: SessionGrant = serde_json::from_str(&body).unwrap();
    let cert = decode_certificate(grant.certificate.clone().into()).unwrap();
    assert_eq!(cert.public_key, keys[0].public());
    assert_eq!(grant.authority, *authority.public().as_bytes());
    let swarm = Canonicalizer::new(CanonicalConfig::default())
        .unwrap()
        .swarm_id(STREAM)
        .unwrap();
    assert_eq!(cert.scope, Scope::Swarm(swarm));
    assert!(cert.not_after.0 > now() + 7000);

    // A second identity for the session, not a third.
    let (status, _) = post(url.clone(), &request(Some(valid.clone()), STREAM, &keys[1])).await;
    assert_eq!(status, 200);
    let (status, body) = post(url.clone(), &request(Some(valid.clone()), STREAM, &keys[2])).await;
    assert_eq!(status, 403);
    assert!(body.contains("identities"), "{body}");
    // Asking again for a key the session holds is fine, up to five requests a minute.
    for expected in [200, 200, 429] {
        let (status, body) =
            post(url.clone(), &request(Some(valid.clone()), STREAM, &keys[0])).await;
        assert_eq!(status, expected, "{body}");
    }

    // The tracker admits a certified node and nobody else.
    let welcome = join(&control, &keys[0], Some(&grant.certificate)).await;
    assert!(
        matches!(welcome, FromTracker::Welcome { .. }),
        "{welcome:?}"
    );
    let refused = join(&control, &keys[3], None).await;
    assert!(matches!(refused, FromTracker::Error { .. }), "{refused:?}");
    let borrowed = join(&control, &keys[3], Some(&grant.certificate)).await;
    assert!(
        matches!(borrowed, FromTracker::Error { .. }),
        "{borrowed:?}"
    );

    // Renewal, then revocation of the viewer: no renewal, no join.
    let renew = RenewRequest {
        certificate: grant.certificate.clone(),
        possession: *prove_possession(&Bls::new(), &keys[0]).as_bytes(),
    };
    let renew_url = format!("{}/v1/session/renew", control.api_url());
    let (status, body) = post(renew_url.clone(), &renew).await;
    assert_eq!(status, 200, "{body}");
    let renewed: SessionGrant = serde_json::from_str(&body).unwrap();
    let renewed = decode_certificate(renewed.certificate.into()).unwrap();
    assert_eq!(
        (renewed.public_key, renewed.scope),
        (cert.public_key, cert.scope)
    );
    assert!(renewed.not_after >= cert.not_after);
    control.issuer().revoke_viewer("viewer-1").unwrap();
    let (status, body) = post(renew_url, &renew).await;
    assert_eq!((status, body.trim()), (403, "revoked"));
    let revoked = join(&control, &keys[0], Some(&grant.certificate)).await;
    assert!(matches!(revoked, FromTracker::Error { .. }), "{revoked:?}");
    let list = control.issuer().revocations().unwrap();
    assert_eq!(list.serial, 1);
    assert_eq!(list.sessions, vec![cert.session]);
}
