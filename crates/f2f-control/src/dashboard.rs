//! The operator dashboard: `GET /dashboard` is one static page (HTML, CSS and JavaScript in
//! `dashboard/index.html`, no build step) that polls `GET /v1/dashboard/state` every two
//! seconds and draws, per swarm, the topology (agents and their data links, coloured by
//! offload), offload over time, CDN vs P2P bandwidth, late loads (rebuffers) and anomalies.
//! The state is computed from the telemetry in the database.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Serialize;

use crate::session::unix_now;
use crate::telemetry::Ingest;

/// The page.
const PAGE: &str = include_str!("../dashboard/index.html");

/// Agents not heard from for this long are not drawn.
const LIVE: u64 = 60;
/// How far back the charts go.
const HISTORY: u64 = 600;
/// A window with this many times the swarm's usual connection openings (and at least
/// [`CHURN_MIN`]) is flagged as sudden churn.
const CHURN_FACTOR: f64 = 3.0;
const CHURN_MIN: u64 = 5;
/// A peer whose failed loads exceed this share of the swarm's average (and at least 3) is
/// flagged.
const FAILURE_OUTLIER: f64 = 3.0;

/// What the page draws.
#[derive(Clone, Debug, Default, Serialize)]
pub struct DashboardState {
    /// Unix seconds.
    pub now: u64,
    /// Per swarm.
    pub swarms: Vec<SwarmView>,
}

/// One swarm.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SwarmView {
    /// The swarm id, hex.
    pub swarm: String,
    /// The stream's canonical URL.
    pub stream: String,
    /// Live agents.
    pub peers: Vec<PeerView>,
    /// Data links between them (each once).
    pub edges: Vec<(String, String)>,
    /// Offload and bandwidth per telemetry window.
    pub series: Vec<Point>,
    /// Share of all bytes so far that came from peers.
    pub offload: f64,
    /// Late loads so far (rebuffers of a player without a buffer).
    pub rebuffers: u64,
    /// What looks wrong.
    pub anomalies: Vec<String>,
}

/// One agent.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PeerView {
    /// Its node id, hex.
    pub id: String,
    /// Share of its bytes from peers.
    pub offload: f64,
    /// Bytes it uploaded.
    pub uploaded: u64,
    /// Peers connected.
    pub connected: u64,
    /// Failed loads, bans, late loads so far.
    pub failures: u64,
    /// See `failures`.
    pub bans: u64,
    /// See `failures`.
    pub late: u64,
}

/// One window of a swarm.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Point {
    /// Window start, Unix seconds.
    pub window: u64,
    /// Share from peers.
    pub offload: f64,
    /// CDN and P2P bandwidth, bit/s over the window.
    pub cdn_bps: f64,
    /// See `cdn_bps`.
    pub p2p_bps: f64,
}

fn share(p2p: u64, cdn: u64) -> f64 {
    if p2p + cdn == 0 {
        0.0
    } else {
        p2p as f64 / (p2p + cdn) as f64
    }
}

/// The dashboard's state from the telemetry recorded so far.
///
/// # Errors
///
/// The database failed.
pub fn state(ingest: &Ingest) -> Result<DashboardState, crate::store::StoreError> {
    let store = ingest.store();
    let now = unix_now();
    let agents = store.agents_since(now.saturating_sub(LIVE))?;
    let windows = store.windows_since(now.saturating_sub(HISTORY))?;
    let mut swarms: BTreeMap<[u8; 32], SwarmView> = BTreeMap::new();
    let (mut cdn_total, mut p2p_total) = (BTreeMap::new(), BTreeMap::new());
    for a in &agents {
        let view = swarms.entry(a.swarm).or_insert_with(|| SwarmView {
            swarm: hex::encode(a.swarm),
            stream: a.stream.clone(),
            ..SwarmView::default()
        });
        let id = hex::encode(a.agent);
        for n in &a.neighbours {
            let edge = if id < *n {
                (id.clone(), n.clone())
            } else {
                (n.clone(), id.clone())
            };
            if !view.edges.contains(&edge) {
                view.edges.push(edge);
            }
        }
        view.rebuffers += a.late;
        *cdn_total.entry(a.swarm).or_insert(0) += a.cdn_bytes;
        *p2p_total.entry(a.swarm).or_insert(0) += a.p2p_bytes;
        if a.bans > 0 {
            view.anomalies
                .push(format!("{} banned {} peer(s)", &id[..10], a.bans));
        }
        view.peers.push(PeerView {
            id,
            offload: share(a.p2p_bytes, a.cdn_bytes),
            uploaded: a.uploaded_bytes,
            connected: a.peers,
            failures: a.failures,
            bans: a.bans,
            late: a.late,
        });
    }
    for (swarm, view) in &mut swarms {
        view.offload = share(p2p_total[swarm], cdn_total[swarm]);
        // Only links between agents drawn (a neighbour that reports nothing is not shown).
        let ids: Vec<String> = view.peers.iter().map(|p| p.id.clone()).collect();
        view.edges
            .retain(|(a, b)| ids.contains(a) && ids.contains(b));
        let mean = view.peers.iter().map(|p| p.failures as f64).sum::<f64>()
            / view.peers.len().max(1) as f64;
        for p in &view.peers {
            if p.failures >= 3 && p.failures as f64 > FAILURE_OUTLIER * mean.max(1.0) {
                let id = &p.id[..10];
                view.anomalies
                    .push(format!("{id}: {} failed loads", p.failures));
            }
        }
        let isolated = view.peers.iter().filter(|p| p.connected == 0).count();
        if view.peers.len() > 1 && isolated * 2 > view.peers.len() {
            view.anomalies.push(format!(
                "{isolated} of {} peers have no connection",
                view.peers.len()
            ));
        }
    }
    let secs = crate::telemetry::WINDOW_SECS as f64;
    sudden_churn(
        &mut swarms,
        &store.connections_since(now.saturating_sub(HISTORY))?,
        now,
    );
    // The window still filling would show as a dip.
    let complete = windows
        .into_iter()
        .filter(|w| w.window + crate::telemetry::WINDOW_SECS <= now);
    for w in complete {
        if let Some(view) = swarms.get_mut(&w.swarm) {
            view.series.push(Point {
                window: w.window,
                offload: share(w.p2p_bytes, w.cdn_bytes),
                cdn_bps: w.cdn_bytes as f64 * 8.0 / secs,
                p2p_bps: w.p2p_bytes as f64 * 8.0 / secs,
            });
        }
    }
    Ok(DashboardState {
        now,
        swarms: swarms.into_values().collect(),
    })
}

/// Flags a swarm whose last complete window opened far more connections than its others.
fn sudden_churn(
    swarms: &mut BTreeMap<[u8; 32], SwarmView>,
    rows: &[([u8; 32], u64, u64)],
    now: u64,
) {
    for (swarm, view) in swarms.iter_mut() {
        let series: Vec<(u64, u64)> = (rows.iter())
            .filter(|(s, w, _)| s == swarm && w + crate::telemetry::WINDOW_SECS <= now)
            .map(|(_, w, c)| (*w, *c))
            .collect();
        let Some((&(window, last), before)) = series.split_last() else {
            continue;
        };
        if before.is_empty() {
            continue;
        }
        let mean = before.iter().map(|(_, c)| *c as f64).sum::<f64>() / before.len() as f64;
        if last >= CHURN_MIN && last as f64 > CHURN_FACTOR * mean.max(1.0) {
            view.anomalies.push(format!(
                "sudden churn: {last} connections opened in the window at {window} (usual {mean:.1})"
            ));
        }
    }
}

pub(crate) async fn page() -> Html<&'static str> {
    Html(PAGE)
}

pub(crate) async fn state_json(State(ingest): State<Arc<Ingest>>) -> Response {
    match state(&ingest) {
        Ok(state) => ([(header::CACHE_CONTROL, "no-store")], Json(state)).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}
