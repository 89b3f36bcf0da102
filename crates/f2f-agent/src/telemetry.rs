//! The agent's telemetry: buffers per channel, and batches sent to the control plane
//! (`POST /v1/telemetry`, gzip) until one is acknowledged.
//!
//! Bounds while the control plane is away: billing and health are per-window counters, and
//! when more than [`MAX_WINDOWS`] windows wait, the two oldest merge into one (totals stay
//! exact, only the time resolution coarsens), so nothing is dropped and the buffer stays
//! small. Receipt bundles (one per swarm and receipt window) are kept up to [`MAX_BUNDLES`]
//! (a week of one-minute windows); only beyond that is the oldest dropped, and counted. Debug
//! events are dropped oldest first beyond [`MAX_DEBUG`]. An unacknowledged batch is sent again
//! unchanged (same sequence number) until the control plane takes it, so a retry after a lost
//! answer counts once; what arrives meanwhile waits for the next batch.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use f2f_control::protocol::HexPeer;
use f2f_control::telemetry::{Batch, Billing, Health, WireBundle, encode_batch};
use f2f_core::id::{PeerId, SwarmId};
use f2f_core::receipt::ReceiptBundle;

use crate::node::NodeStats;

/// Billing and health window length: fine enough for a live dashboard.
pub const WINDOW: Duration = Duration::from_secs(f2f_control::telemetry::WINDOW_SECS);
/// Windows buffered before the oldest two merge.
pub const MAX_WINDOWS: usize = 64;
/// Receipt bundles buffered.
pub const MAX_BUNDLES: usize = 10_080;
/// Debug events buffered.
pub const MAX_DEBUG: usize = 256;

/// Cumulative counters of one node, as last sampled.
#[derive(Clone, Copy, Debug, Default)]
struct Seen {
    cdn: u64,
    p2p: u64,
    uploaded: u64,
    connections: u64,
    failures: u64,
    bans: u64,
    late: u64,
}

#[derive(Debug, Default)]
struct Buffers {
    billing: BTreeMap<(u64, SwarmId), Billing>,
    health: BTreeMap<(u64, SwarmId), Health>,
    receipts: VecDeque<WireBundle>,
    receipts_dropped: u64,
    debug: VecDeque<String>,
    seen: HashMap<SwarmId, Seen>,
    in_flight: Option<Batch>,
    seq: u64,
}

/// The agent's telemetry buffers, shared with its nodes.
#[derive(Clone, Debug, Default)]
pub(crate) struct Telemetry(Arc<Mutex<Buffers>>);

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// Merges the two oldest windows of `map` while it holds more than [`MAX_WINDOWS`] windows.
fn bound<T>(map: &mut BTreeMap<(u64, SwarmId), T>, merge: impl Fn(&mut T, T)) {
    loop {
        let windows: Vec<u64> = {
            let mut w: Vec<u64> = map.keys().map(|(w, _)| *w).collect();
            w.dedup();
            w
        };
        if windows.len() <= MAX_WINDOWS {
            return;
        }
        let (oldest, next) = (windows[0], windows[1]);
        let moved: Vec<(u64, SwarmId)> = map.keys().filter(|(w, _)| *w == next).copied().collect();
        for key in moved {
            if let Some(value) = map.remove(&key) {
                match map.get_mut(&(oldest, key.1)) {
                    Some(into) => merge(into, value),
                    None => {
                        map.insert((oldest, key.1), value);
                    }
                }
            }
        }
    }
}

impl Telemetry {
    fn buffers(&self) -> std::sync::MutexGuard<'_, Buffers> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A receipt bundle a node earned.
    pub(crate) fn receipts(&self, bundle: &ReceiptBundle) {
        let mut b = self.buffers();
        b.receipts.push_back(WireBundle::from(bundle));
        while b.receipts.len() > MAX_BUNDLES {
            b.receipts.pop_front();
            b.receipts_dropped += 1;
        }
    }

    /// A notable event (bans, misbehaving peers).
    pub(crate) fn debug(&self, event: String) {
        let mut b = self.buffers();
        b.debug.push_back(event);
        while b.debug.len() > MAX_DEBUG {
            b.debug.pop_front();
        }
    }

    /// Adds what each node's counters moved since the last sample to the current window.
    /// `stream` gives a swarm's canonical stream URL.
    pub(crate) fn sample(
        &self,
        nodes: &[(SwarmId, NodeStats, u64)],
        stream: impl Fn(SwarmId) -> String,
        now: u64,
    ) {
        let window = now - now % WINDOW.as_secs();
        let mut b = self.buffers();
        for (swarm, stats, late) in nodes {
            let e = &stats.engine;
            let current = Seen {
                cdn: e.cdn_bytes,
                p2p: e.p2p_bytes,
                uploaded: e.uploaded_bytes,
                connections: e.connections,
                failures: e.load_failures,
                bans: e.corrupt_pieces + e.false_attesters,
                late: *late,
            };
            // A node that restarted counts from zero again.
            let last = b.seen.insert(*swarm, current).unwrap_or_default();
            let delta = |now: u64, then: u64| if now >= then { now - then } else { now };
            let billing = b
                .billing
                .entry((window, *swarm))
                .or_insert_with(|| Billing {
                    window,
                    swarm: *swarm.as_bytes(),
                    stream: stream(*swarm),
                    ..Billing::default()
                });
            billing.cdn_bytes += delta(current.cdn, last.cdn);
            billing.p2p_bytes += delta(current.p2p, last.p2p);
            billing.uploaded_bytes += delta(current.uploaded, last.uploaded);
            let health = b.health.entry((window, *swarm)).or_insert_with(|| Health {
                window,
                swarm: *swarm.as_bytes(),
                ..Health::default()
            });
            health.connections += delta(current.connections, last.connections);
            health.failures += delta(current.failures, last.failures);
            health.bans += delta(current.bans, last.bans);
            health.late += delta(current.late, last.late);
            health.peers = stats.connected as u64;
            health.neighbours = stats.neighbours.iter().map(|p| HexPeer::from(*p)).collect();
        }
        bound(&mut b.billing, |into, from| {
            into.cdn_bytes += from.cdn_bytes;
            into.p2p_bytes += from.p2p_bytes;
            into.uploaded_bytes += from.uploaded_bytes;
        });
        bound(&mut b.health, |into, from| {
            into.connections += from.connections;
            into.failures += from.failures;
            into.bans += from.bans;
            into.late += from.late;
        });
    }

    /// The batch to send: the one in flight, else everything buffered as a new one.
    fn batch(&self, agent: PeerId, config_version: u64) -> Option<Batch> {
        let mut b = self.buffers();
        if let Some(batch) = &b.in_flight {
            return Some(batch.clone());
        }
        if b.billing.is_empty()
            && b.receipts.is_empty()
            && b.health.is_empty()
            && b.debug.is_empty()
        {
            return None;
        }
        b.seq += 1;
        let mut debug: Vec<String> = b.debug.drain(..).collect();
        if b.receipts_dropped > 0 {
            debug.push(format!("{} receipt bundles dropped", b.receipts_dropped));
            b.receipts_dropped = 0;
        }
        let batch = Batch {
            agent: agent.into(),
            seq: b.seq,
            billing: std::mem::take(&mut b.billing).into_values().collect(),
            receipts: b.receipts.drain(..).collect(),
            health: std::mem::take(&mut b.health).into_values().collect(),
            debug,
            config_version,
        };
        b.in_flight = Some(batch.clone());
        Some(batch)
    }

    /// Sends what is buffered (or the batch still unacknowledged); true when the control
    /// plane took it or there was nothing to send.
    pub(crate) async fn send(
        &self,
        http: &reqwest::Client,
        api: &str,
        (agent, config_version): (PeerId, u64),
    ) -> bool {
        let Some(batch) = self.batch(agent, config_version) else {
            return true;
        };
        let sent = http
            .post(format!("{api}/v1/telemetry"))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::CONTENT_ENCODING, "gzip")
            .body(encode_batch(&batch))
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => {
                self.buffers().in_flight = None;
                true
            }
            Ok(response) => {
                tracing::debug!("telemetry refused: {}", response.status());
                // A refused batch would be refused again: it is dropped.
                if response.status().is_client_error() {
                    self.buffers().in_flight = None;
                }
                false
            }
            Err(e) => {
                tracing::debug!("telemetry not sent: {e}");
                false
            }
        }
    }
}

/// The current Unix time, for sampling.
pub(crate) fn now() -> u64 {
    unix_now()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(cdn: u64, p2p: u64) -> NodeStats {
        let mut s = NodeStats::default();
        s.engine.cdn_bytes = cdn;
        s.engine.p2p_bytes = p2p;
        s
    }

    #[test]
    fn counters_stay_exact_and_bounded_however_long_nobody_listens() {
        let t = Telemetry::default();
        let swarm = SwarmId::from_bytes([1; 32]);
        let stream = |_| "cdn/live/master.m3u8".to_owned();
        // A day of samples, a minute apart, nobody taking them.
        let mut start = 1_000_000 - 1_000_000 % 60;
        for minute in 1..=1440u64 {
            t.sample(
                &[(swarm, stats(minute * 10, minute * 90), 0)],
                stream,
                start,
            );
            start += 60;
        }
        let batch = t.batch(PeerId::from_bytes([7; 32]), 0).unwrap();
        assert!(batch.billing.len() <= MAX_WINDOWS);
        let cdn: u64 = batch.billing.iter().map(|b| b.cdn_bytes).sum();
        let p2p: u64 = batch.billing.iter().map(|b| b.p2p_bytes).sum();
        assert_eq!((cdn, p2p), (14_400, 129_600), "every byte billed once");
        // Until acknowledged, the same batch (same sequence number) goes again.
        t.sample(&[(swarm, stats(20_000, 0), 0)], stream, start);
        let again = t.batch(PeerId::from_bytes([7; 32]), 0).unwrap();
        assert_eq!(again, batch);
    }
}
