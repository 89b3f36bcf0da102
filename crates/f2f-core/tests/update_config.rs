//! Remote config through `Input::UpdateConfig`: an invalid config is refused with an error naming
//! the field and the engine keeps the config it had; a valid one is in force at once, both in
//! `Engine::config()` and in what the engine does.

mod common;

use std::sync::Arc;

use common::Net;
use f2f_core::config::{Config, ConfigError, SourcePreference};
use f2f_core::engine::{EngineError, Input};
use f2f_core::time::Duration;
use f2f_core::wire::Message;

#[test]
fn invalid_config_is_refused_and_the_old_one_kept() {
    let mut net = Net::new(Config::default());
    let a = net.add();
    let before = net.engine(a).config().clone();
    let mut bad = Config::default();
    bad.upload.low_water = bad.upload.high_water;
    let err = net
        .try_input(a, Input::UpdateConfig(Arc::new(bad)))
        .expect_err("refused");
    assert!(
        matches!(
            err,
            EngineError::Config(ConfigError::Invalid {
                field: "upload.low_water",
                ..
            })
        ),
        "{err}"
    );
    assert!(
        Arc::ptr_eq(net.engine(a).config(), &before),
        "the old config stays in force"
    );
    net.input(a, Input::Bootstrap(Vec::new())); // and the engine still takes input
}

#[test]
fn valid_config_applies_at_once() {
    let mut net = Net::new(Config::default());
    let (a, b) = (net.add(), net.add());
    net.bootstrap(b, &[a]);
    net.run_for(Duration::from_secs(3));
    let seg = net.publish(3, 400_000);
    net.load(a, seg, Duration::from_secs(6));
    net.run_for(Duration::from_secs(1));

    // `b` is linked to a holder, so by default it would ask `a`; switched to CDN-only it must not.
    let mut cdn_only = Config::default();
    cdn_only.scheduler.source = SourcePreference::CdnOnly;
    let cdn_only = Arc::new(cdn_only);
    net.input(b, Input::UpdateConfig(cdn_only.clone()));
    assert!(Arc::ptr_eq(net.engine(b).config(), &cdn_only));
    net.load(b, seg, Duration::from_secs(6));
    net.run_for(Duration::from_secs(2));
    let asked = net
        .messages()
        .any(|(from, _, m)| from == b && matches!(m, Message::Request { .. }));
    assert!(!asked, "b asked a peer after switching to CDN-only");
    let [d] = net.nodes[b].delivered.as_slice() else {
        panic!("b got no delivery")
    };
    assert_eq!((d.sources.cdn, d.sources.p2p), (400_000, 0));
}

#[test]
fn membership_settings_apply_at_once() {
    let mut net = Net::new(Config::default());
    let hub = net.add();
    let mut small = Config::default();
    small.membership.active_view = 2;
    small.links.degree = 2;
    small.links.max_degree = 2;
    net.input(hub, Input::UpdateConfig(Arc::new(small)));
    for _ in 0..6 {
        let n = net.add();
        net.bootstrap(n, &[hub]);
        net.run_for(Duration::from_millis(300));
    }
    net.run_for(Duration::from_secs(5));
    let overlay = net.engine(hub).overlay_neighbours().len();
    let data = net.engine(hub).data_neighbours().len();
    assert!(data <= 2, "data links follow the new config: {data}");
    assert!(
        overlay <= 2,
        "active view holds {overlay} peers, the config in force says 2"
    );
}
