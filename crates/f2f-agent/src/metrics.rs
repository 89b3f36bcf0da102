//! Prometheus text exposition of the agent's counters (`GET /metrics` on the proxy port).

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::agent::AgentStats;

fn counter(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let c = Counter::<u64>::default();
    c.inc_by(value);
    registry.register(name, help, c);
}

/// One counter per value of `label`.
fn labelled(registry: &mut Registry, name: &str, help: &str, label: &str, values: &[(&str, u64)]) {
    let family = Family::<Vec<(String, String)>, Counter<u64>>::default();
    for (value, count) in values {
        family
            .get_or_create(&vec![(label.into(), (*value).into())])
            .inc_by(*count);
    }
    registry.register(name, help, family);
}

fn gauge(registry: &mut Registry, name: &str, help: &str, value: i64) {
    let g = Gauge::<i64>::default();
    g.set(value);
    registry.register(name, help, g);
}

/// The exposition text for `stats`.
pub(crate) fn render(stats: &AgentStats) -> String {
    let mut registry = Registry::with_prefix("f2f");
    counter(
        &mut registry,
        "segments",
        "Segments returned to players",
        stats.segments,
    );
    counter(
        &mut registry,
        "segment_failures",
        "Segment loads that failed",
        stats.failed,
    );
    counter(
        &mut registry,
        "segments_late",
        "Segment loads slower than the segment's duration",
        stats.late,
    );
    let p2p = stats.served_p2p_bytes;
    labelled(
        &mut registry,
        "served_bytes",
        "Segment bytes returned to players, by source",
        "source",
        &[("p2p", p2p), ("cdn", stats.bytes - p2p)],
    );
    labelled(
        &mut registry,
        "received_bytes",
        "Media bytes the engines received (what billing counts), by source",
        "source",
        &[("p2p", stats.p2p_bytes()), ("cdn", stats.cdn_bytes())],
    );
    counter(
        &mut registry,
        "uploaded_bytes",
        "Bytes uploaded to peers",
        stats.uploaded_bytes(),
    );
    let sum = |f: fn(&crate::node::NodeStats) -> u64| stats.swarms.iter().map(f).sum::<u64>();
    counter(
        &mut registry,
        "corrupt_pieces",
        "Peer pieces that failed verification",
        sum(|s| s.engine.corrupt_pieces),
    );
    labelled(
        &mut registry,
        "signals_sent",
        "WebRTC offers and answers sent, by route (tracker, overlay relay, guest socket)",
        "via",
        &[
            ("tracker", sum(|s| s.signals.tracker)),
            ("overlay", sum(|s| s.signals.overlay)),
            ("guest", sum(|s| s.signals.guest)),
        ],
    );
    labelled(
        &mut registry,
        "upload_requests",
        "Peers' requests by what became of them: started at once, queued behind busy slots, \
         withdrawn from the queue before they started, turned away busy",
        "outcome",
        &[
            ("started", sum(|s| s.engine.uploads_started)),
            ("queued", sum(|s| s.engine.uploads_queued)),
            ("queue_withdrawn", sum(|s| s.engine.uploads_queue_withdrawn)),
            ("turned_away", sum(|s| s.engine.uploads_turned_away)),
        ],
    );
    counter(
        &mut registry,
        "guests_admitted",
        "Members that came back through this agent's signalling contact",
        sum(|s| s.guests_admitted),
    );
    counter(
        &mut registry,
        "connections_opened",
        "Peer connections opened in the swarms joined now",
        sum(|s| s.engine.connections),
    );
    let sum_gauge =
        |f: fn(&crate::node::NodeStats) -> usize| stats.swarms.iter().map(f).sum::<usize>() as i64;
    gauge(
        &mut registry,
        "swarms",
        "Swarms joined",
        stats.swarms.len() as i64,
    );
    gauge(
        &mut registry,
        "peers_connected",
        "Open peer connections",
        sum_gauge(|s| s.connected),
    );
    gauge(
        &mut registry,
        "data_neighbours",
        "Data neighbours",
        sum_gauge(|s| s.neighbours.len()),
    );
    gauge(
        &mut registry,
        "swarms_via_member",
        "Swarms joined through a member's contact while the tracker was away",
        sum_gauge(|s| usize::from(s.via_member)),
    );
    gauge(
        &mut registry,
        "tracker_connected",
        "Swarms whose signalling socket (the tracker, or a member's contact) is up",
        sum_gauge(|s| usize::from(s.tracker)),
    );
    gauge(
        &mut registry,
        "config_version",
        "Remote configuration version in force (0: none)",
        stats.config_version as i64,
    );
    counter(
        &mut registry,
        "configs_refused",
        "Remote configuration versions refused (signature or settings); the last good one stays",
        stats.configs_refused,
    );
    let mut text = String::new();
    encode(&mut text, &registry).expect("writing to a String cannot fail");
    text
}
