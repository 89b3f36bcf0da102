//! Certificates over time: revocation lists drop revoked peers and spread through the swarm,
//! lists the authority did not sign are refused, and an engine asks for a new certificate before
//! its own expires and uses it from then on.

mod common;

use common::{CERT_LIFETIME, Net, UNIX_BASE, authority, certify, crypto, swarm};
use f2f_core::config::Config;
use f2f_core::engine::{EngineError, Input};
use f2f_core::identity::{Authority, CertificateError, Keypair, RevocationList, Scope, UnixTime};
use f2f_core::telemetry::Event;
use f2f_core::time::Duration;
use f2f_core::wire::Message;

#[test]
fn a_revoked_peer_is_dropped_and_the_list_spreads() {
    let mut net = Net::new(Config::default());
    let (a, b, c) = (net.add(), net.add(), net.add());
    net.bootstrap(b, &[a]);
    net.bootstrap(c, &[a]);
    net.run_for(Duration::from_secs(3));
    assert!(net.engine(a).data_neighbours().contains(&net.id(b)));

    let list = RevocationList::issue(
        authority(),
        crypto().as_ref(),
        1,
        [net.certs[b].session],
        [],
    );
    net.input(a, Input::Revocations(Box::new(list.clone())));
    net.run_for(Duration::from_secs(5));

    let revoked = |ix: usize| {
        (net.nodes[ix].events.iter())
            .any(|e| matches!(e, Event::PeerRevoked { peer } if *peer == net.id(b)))
    };
    assert!(revoked(a), "a dropped b when the list came in");
    assert!(
        net.messages()
            .any(|(f, t, m)| (f, t) == (a, c) && *m == Message::Revocations(Box::new(list.clone()))),
        "a passed the list on to c"
    );
    assert!(
        revoked(c) || !net.is_connected(b, c),
        "c does not keep b either"
    );
    assert!(!net.engine(a).data_neighbours().contains(&net.id(b)));
    assert!(
        !net.is_connected(a, b),
        "b cannot come back with its revoked certificate"
    );
    assert!(net.engine(a).data_neighbours().contains(&net.id(c)));
}

#[test]
fn a_list_not_signed_by_the_authority_is_refused() {
    let mut net = Net::new(Config::default());
    let (a, b) = (net.add(), net.add());
    net.bootstrap(b, &[a]);
    net.run_for(Duration::from_secs(3));

    let rogue = Authority::new(Keypair::from_entropy(&[0x77; 32]));
    let list = RevocationList::issue(&rogue, crypto().as_ref(), 9, [net.certs[b].session], []);
    net.input(a, Input::Revocations(Box::new(list)));
    net.run_for(Duration::from_secs(2));

    let refused = (net.nodes[a].events.iter())
        .any(|e| matches!(e, Event::RevocationsRefused { error } if error.contains("verify")));
    assert!(refused, "{:?}", net.nodes[a].events);
    assert!(net.engine(a).data_neighbours().contains(&net.id(b)));
}

#[test]
fn an_engine_renews_its_certificate_before_it_expires() {
    let mut net = Net::new(Config::default());
    // Expires 30 s after the one-hour renewal margin begins.
    let a = net.add_expiring(UNIX_BASE + 3600 + 30);
    net.run_for(Duration::from_secs(20));
    assert!(net.nodes[a].renewals.is_empty(), "too early to renew");
    net.run_for(Duration::from_secs(15));
    assert_eq!(net.nodes[a].renewals, [UnixTime(UNIX_BASE + 3630)]);

    let other_key = Keypair::from_entropy(&[0x55; 32]);
    let foreign = certify(&other_key, Scope::Swarm(swarm()), UNIX_BASE + CERT_LIFETIME);
    assert_eq!(
        net.try_input(a, Input::Certificate(Box::new(foreign))),
        Err(EngineError::Identity(CertificateError::WrongKey))
    );
    let renewed = certify(
        &net.keys[a],
        Scope::Swarm(swarm()),
        UNIX_BASE + CERT_LIFETIME,
    );
    net.input(a, Input::Certificate(Box::new(renewed.clone())));

    // New connections see the renewed certificate.
    let x = net.add_scripted();
    net.connect(x, a);
    net.run_for(Duration::from_millis(100));
    let presented = net.messages().find_map(|(f, t, m)| match m {
        Message::Handshake(h) if (f, t) == (a, x) => Some(h.certificate.clone()),
        _ => None,
    });
    assert_eq!(presented, Some(renewed));
    net.run_for(Duration::from_secs(5));
    assert_eq!(net.nodes[a].renewals.len(), 1, "asked once per certificate");
}
