//! Delivery receipts: a receiver signs, once per window, what each uploader sent it; the
//! uploader reports the receipts as one aggregate the control plane can check, and cannot
//! raise a count, invent a receiver or count one twice.

mod common;

use std::sync::Arc;

use common::Net;
use f2f_core::config::{Config, SourcePreference};
use f2f_core::engine::Input;
use f2f_core::identity::{
    Authority, Bls, CertificateVerifier, Crypto, Domain, Keypair, Revocations, Scope, UnixTime,
};
use f2f_core::receipt::{Delivery, ReceiptBundle, ReceiptEntry, ReceiptError};
use f2f_core::time::Duration;

const WINDOW: u64 = 5;

/// `a` serves a segment to `b`; returns `a`'s reported bundles, `b`'s peer bytes, and the
/// network.
fn served() -> (Net, Vec<ReceiptBundle>, u64) {
    serve(WINDOW, WINDOW)
}

/// [`served`] with windows of `first` seconds, changed live to `then` once `b` has the segment.
fn serve(first: u64, then: u64) -> (Net, Vec<ReceiptBundle>, u64) {
    let mut config = Config::default();
    config.receipts.window = Duration::from_secs(first);
    let mut holder = config.clone();
    holder.scheduler.source = SourcePreference::CdnOnly;
    config.scheduler.source = SourcePreference::P2pPreferred;
    let mut net = Net::new(config.clone());
    let a = net.add_with(Arc::new(holder.clone()));
    let b = net.add();
    net.bootstrap(b, &[a]);
    net.run_for(Duration::from_secs(2));
    let seg = net.publish(3, 300_000);
    net.load(a, seg, Duration::from_secs(3));
    net.run_for(Duration::from_millis(500));
    net.load(b, seg, Duration::from_secs(4));
    // A third into the first window: receipts signed at the change cover a window that
    // started more than two new windows ago.
    net.run_for(Duration::from_secs(4 + first / 3));
    for (ix, mut config) in [(a, holder), (b, config)] {
        config.receipts.window = Duration::from_secs(then);
        net.input(ix, Input::UpdateConfig(Arc::new(config)));
    }
    net.run_for(Duration::from_secs(3 * then));
    let p2p = net.nodes[b].delivered[0].sources.p2p;
    assert!(p2p > 0, "precondition: b took the segment from a");
    let bundles = net.nodes[a].receipts.clone();
    (net, bundles, p2p)
}

fn check(net: &Net, bundle: &ReceiptBundle) -> Result<(), ReceiptError> {
    let mut verifier = CertificateVerifier::new(common::authority().public(), 64);
    let revoked = Revocations::default();
    bundle.verify(
        common::crypto().as_ref(),
        &mut verifier,
        &revoked,
        net.unix(),
    )
}

#[test]
fn an_uploader_reports_what_its_receiver_signed() {
    let (net, bundles, p2p) = served();
    let [bundle] = bundles.as_slice() else {
        panic!("one window with deliveries, one bundle: {bundles:?}")
    };
    assert_eq!(bundle.uploader, net.id(0));
    let [entry] = bundle.entries.as_slice() else {
        panic!("one receiver")
    };
    assert_eq!(entry.receiver, net.certs[1]);
    assert_eq!(
        entry.delivery.bytes, p2p,
        "exactly the verified bytes b got"
    );
    assert_eq!(entry.delivery.segments, 1);
    assert_eq!(check(&net, bundle), Ok(()));
    // The receiver never reports receipts for what it only downloaded.
    assert!(net.nodes[1].receipts.is_empty());
}

/// The window length is a remote setting: shortening it while receipts are under way loses
/// none of them.
#[test]
fn a_live_change_of_the_window_loses_no_receipt() {
    let (net, bundles, p2p) = serve(60, WINDOW);
    let vouched: u64 = bundles.iter().map(ReceiptBundle::bytes).sum();
    assert_eq!(vouched, p2p, "{bundles:?}");
    for bundle in &bundles {
        assert_eq!(check(&net, bundle), Ok(()));
    }
}

#[test]
fn an_uploader_cannot_inflate_or_forge_receipts() {
    let (net, bundles, _) = served();
    let honest = bundles[0].clone();
    let bls = common::crypto();
    let sign = |kp: &Keypair, d: &Delivery, receiver| {
        bls.sign(
            kp,
            Domain::Receipt,
            &d.statement(&honest.uploader, &receiver, &honest.swarm),
        )
    };
    let add = |bundle: &ReceiptBundle, entry: ReceiptEntry, sig| ReceiptBundle {
        entries: [bundle.entries.clone(), vec![entry]].concat(),
        signature: bls.aggregate(&[bundle.signature, sig]).expect("valid"),
        ..bundle.clone()
    };

    // Raising the byte count, or moving the receipt to another window.
    let mut inflated = honest.clone();
    inflated.entries[0].delivery.bytes *= 2;
    assert!(matches!(
        check(&net, &inflated),
        Err(ReceiptError::Signature(_))
    ));
    let mut moved = honest.clone();
    moved.entries[0].delivery.window += WINDOW;
    assert!(matches!(
        check(&net, &moved),
        Err(ReceiptError::Signature(_))
    ));

    // Counting the same receipt twice.
    let twice = ReceiptBundle {
        entries: [honest.entries.clone(), honest.entries.clone()].concat(),
        signature: bls.aggregate(&[honest.signature; 2]).expect("valid"),
        ..honest.clone()
    };
    assert_eq!(check(&net, &twice), Err(ReceiptError::Duplicate));

    // A receipt "from" another certified viewer, signed with the uploader's own key.
    let delivery = Delivery {
        window: honest.entries[0].delivery.window,
        bytes: 10_000_000,
        segments: 5,
    };
    let other = net.certs[1].clone();
    let forged = ReceiptEntry {
        receiver: other,
        delivery: Delivery {
            window: delivery.window + WINDOW,
            ..delivery
        },
    };
    let sig = sign(&net.keys[0], &forged.delivery, net.id(1));
    assert!(matches!(
        check(&net, &add(&honest, forged, sig)),
        Err(ReceiptError::Signature(_))
    ));

    // A receipt the uploader issues to itself, under its own certificate.
    let own = ReceiptEntry {
        receiver: net.certs[0].clone(),
        delivery,
    };
    let sig = sign(&net.keys[0], &delivery, net.id(0));
    assert_eq!(
        check(&net, &add(&honest, own, sig)),
        Err(ReceiptError::SelfIssued)
    );

    // A made-up receiver whose key the uploader holds, certified by anyone but the authority.
    let puppet = Keypair::from_entropy(&[42; 32]);
    let rogue = Authority::new(Keypair::from_entropy(&[43; 32]));
    let pop = f2f_core::identity::prove_possession(&Bls::new(), &puppet);
    let cert = (rogue.issue(
        &Bls::new(),
        &puppet.public(),
        &pop,
        Scope::AnySwarm,
        net.certs[1].session,
        UnixTime(u64::MAX),
    ))
    .expect("valid proof");
    let entry = ReceiptEntry {
        receiver: cert,
        delivery,
    };
    let sig = sign(&puppet, &delivery, puppet.peer_id());
    assert!(matches!(
        check(&net, &add(&honest, entry, sig)),
        Err(ReceiptError::Certificate { index: 1, .. })
    ));
}
