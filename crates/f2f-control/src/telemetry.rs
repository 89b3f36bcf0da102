//! Telemetry from agents, on separate channels in one batch (`POST /v1/telemetry`, gzip):
//!
//! - **billing**: bytes per swarm and source (CDN, P2P, uploaded) per time window;
//! - **verification**: the delivery receipt bundles uploaders earned (`f2f_core::receipt`),
//!   verified here before they count, each (uploader, receiver, window) once;
//! - **health**: per window and swarm, connections opened, peers lost, failed loads, bans;
//! - **debug**: recent notable events, best effort.
//!
//! A batch carries the agent's sequence number: a batch retried after a lost answer is
//! recognised and counted once.

use bytes::Bytes;
use f2f_core::id::{PeerId, SwarmId};
use f2f_core::identity::Signature;
use f2f_core::receipt::{Delivery, ReceiptBundle, ReceiptEntry};
use f2f_core::wire::{DecodeError, decode_certificate, encode_certificate};
use serde::{Deserialize, Serialize};

use crate::protocol::HexPeer;

/// Length of a billing and health window, seconds (window starts are multiples of it).
pub const WINDOW_SECS: u64 = 10;

/// The largest batch accepted, decompressed.
pub const MAX_BATCH_LEN: usize = 4 << 20;

/// One agent's telemetry since its last acknowledged batch.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    /// The agent's node id.
    pub agent: HexPeer,
    /// Increases by one per batch; a retry repeats it.
    pub seq: u64,
    /// Billing counters.
    #[serde(default)]
    pub billing: Vec<Billing>,
    /// Receipt bundles.
    #[serde(default)]
    pub receipts: Vec<WireBundle>,
    /// Health counters.
    #[serde(default)]
    pub health: Vec<Health>,
    /// Debug events.
    #[serde(default)]
    pub debug: Vec<String>,
    /// The remote configuration version the agent runs (0: none).
    #[serde(default)]
    pub config_version: u64,
}

/// Bytes of one swarm in one window.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Billing {
    /// Window start, Unix seconds (several windows may have been merged into this one while
    /// the control plane was away: the totals stay exact, the time resolution coarsens).
    pub window: u64,
    /// The swarm.
    #[serde(with = "hex::serde")]
    pub swarm: [u8; 32],
    /// The stream, as canonical URL (customer and stream attribution).
    pub stream: String,
    /// Media bytes from the CDN.
    pub cdn_bytes: u64,
    /// Media bytes from peers.
    pub p2p_bytes: u64,
    /// Bytes uploaded to peers.
    pub uploaded_bytes: u64,
}

/// Health counters of one swarm in one window.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// Window start, Unix seconds.
    pub window: u64,
    /// The swarm.
    #[serde(with = "hex::serde")]
    pub swarm: [u8; 32],
    /// Peer connections opened.
    pub connections: u64,
    /// Loads that failed.
    pub failures: u64,
    /// Peers banned (bytes failing verification, false attestations).
    pub bans: u64,
    /// Segment loads slower than the segment's duration (a player without a buffer would
    /// have rebuffered).
    #[serde(default)]
    pub late: u64,
    /// Peers connected at the window's end.
    pub peers: u64,
    /// The agent's neighbours at the window's end (for the topology).
    #[serde(default)]
    pub neighbours: Vec<HexPeer>,
}

/// A receipt bundle in JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireBundle {
    /// The uploader.
    pub uploader: HexPeer,
    /// The swarm.
    #[serde(with = "hex::serde")]
    pub swarm: [u8; 32],
    /// The receipts.
    pub entries: Vec<WireEntry>,
    /// The aggregate signature.
    #[serde(with = "hex::serde")]
    pub signature: [u8; 96],
}

/// One receipt of a [`WireBundle`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireEntry {
    /// The receiver's certificate (wire encoding).
    #[serde(with = "hex::serde")]
    pub receiver: Vec<u8>,
    /// The window.
    pub window: u64,
    /// Bytes vouched for.
    pub bytes: u64,
    /// Segments vouched for.
    pub segments: u32,
}

impl From<&ReceiptBundle> for WireBundle {
    fn from(b: &ReceiptBundle) -> Self {
        Self {
            uploader: b.uploader.into(),
            swarm: *b.swarm.as_bytes(),
            entries: (b.entries.iter())
                .map(|e| WireEntry {
                    receiver: encode_certificate(&e.receiver).to_vec(),
                    window: e.delivery.window,
                    bytes: e.delivery.bytes,
                    segments: e.delivery.segments,
                })
                .collect(),
            signature: *b.signature.as_bytes(),
        }
    }
}

impl TryFrom<&WireBundle> for ReceiptBundle {
    type Error = DecodeError;

    fn try_from(w: &WireBundle) -> Result<Self, DecodeError> {
        let mut entries = Vec::with_capacity(w.entries.len());
        for e in &w.entries {
            entries.push(ReceiptEntry {
                receiver: decode_certificate(Bytes::copy_from_slice(&e.receiver))?,
                delivery: Delivery {
                    window: e.window,
                    bytes: e.bytes,
                    segments: e.segments,
                },
            });
        }
        Ok(Self {
            uploader: PeerId::from(w.uploader),
            swarm: SwarmId::from_bytes(w.swarm),
            entries,
            signature: Signature::from_bytes(w.signature),
        })
    }
}

/// Receives batches: verifies their receipts, records everything once, keeps recent debug
/// events in memory.
pub struct Ingest {
    issuer: std::sync::Arc<crate::Issuer>,
    crypto: f2f_core::identity::Bls,
    debug: std::sync::Mutex<std::collections::VecDeque<String>>,
    counters: std::sync::Mutex<IngestCounters>,
    /// Each agent's config version, as it last reported.
    versions: std::sync::Mutex<std::collections::HashMap<HexPeer, u64>>,
}

/// What ingestion saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IngestCounters {
    /// Batches recorded.
    pub batches: u64,
    /// Batches seen again (retries), not counted twice.
    pub duplicates: u64,
    /// Receipt bundles verified.
    pub receipts_verified: u64,
    /// Receipt bundles refused (bad signature, unknown or revoked receiver certificate).
    pub receipts_refused: u64,
}

/// Debug events kept (oldest dropped first).
const DEBUG_MEMORY: usize = 1024;

impl std::fmt::Debug for Ingest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingest").finish_non_exhaustive()
    }
}

impl Ingest {
    /// Ingestion checking receipts against `issuer`'s authority and recording in its store.
    pub fn new(issuer: std::sync::Arc<crate::Issuer>) -> Self {
        Self {
            issuer,
            crypto: f2f_core::identity::Bls::new(),
            debug: std::sync::Mutex::new(std::collections::VecDeque::new()),
            counters: std::sync::Mutex::new(IngestCounters::default()),
            versions: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// Records `batch`. Receipt bundles that do not verify are left out and counted.
    ///
    /// # Errors
    ///
    /// The database failed.
    pub fn ingest(&self, batch: &Batch) -> Result<(), crate::store::StoreError> {
        use f2f_core::identity::{CertificateVerifier, Revocations, UnixTime};
        let revoked = self.issuer.store().revoked()?;
        let mut verifier = CertificateVerifier::new(self.issuer.authority(), 256);
        let none = Revocations::default();
        let mut receipts = Vec::new();
        let (mut verified, mut refused) = (0, 0);
        for wire in &batch.receipts {
            let Ok(bundle) = ReceiptBundle::try_from(wire) else {
                refused += 1;
                continue;
            };
            // Receivers' certificates are checked as of arrival: an outage longer than their
            // lifetime costs those receipts (the simulator checks the same way).
            let at = UnixTime(crate::session::unix_now());
            let revoked_receiver = bundle.entries.iter().any(|e| {
                revoked.keys.contains(&e.receiver.public_key)
                    || revoked.sessions.contains(&e.receiver.session)
            });
            if revoked_receiver
                || bundle
                    .verify(&self.crypto, &mut verifier, &none, at)
                    .is_err()
            {
                refused += 1;
                continue;
            }
            verified += 1;
            for e in &bundle.entries {
                receipts.push((
                    bundle.swarm,
                    crate::store::VerifiedReceipt {
                        uploader: *bundle.uploader.as_bytes(),
                        receiver: *e.receiver.public_key.peer_id().as_bytes(),
                        window: e.delivery.window,
                        bytes: e.delivery.bytes,
                        segments: e.delivery.segments,
                    },
                ));
            }
        }
        let fresh =
            (self.issuer.store()).record_batch(batch, &receipts, crate::session::unix_now())?;
        (self.versions.lock().unwrap_or_else(|e| e.into_inner()))
            .insert(batch.agent, batch.config_version);
        let mut counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        if fresh {
            counters.batches += 1;
            counters.receipts_verified += verified;
            counters.receipts_refused += refused;
            let mut debug = self.debug.lock().unwrap_or_else(|e| e.into_inner());
            debug.extend(batch.debug.iter().cloned());
            while debug.len() > DEBUG_MEMORY {
                debug.pop_front();
            }
        } else {
            counters.duplicates += 1;
        }
        Ok(())
    }

    /// The database the telemetry is recorded in.
    pub fn store(&self) -> &crate::store::Store {
        self.issuer.store()
    }

    /// How many agents run each config version, as they last reported.
    pub fn config_versions(&self) -> std::collections::BTreeMap<u64, usize> {
        let versions = self.versions.lock().unwrap_or_else(|e| e.into_inner());
        let mut count = std::collections::BTreeMap::new();
        for v in versions.values() {
            *count.entry(*v).or_insert(0) += 1;
        }
        count
    }

    /// What ingestion saw so far.
    pub fn counters(&self) -> IngestCounters {
        *self.counters.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The most recent debug events, oldest first.
    pub fn debug_events(&self) -> Vec<String> {
        let debug = self.debug.lock().unwrap_or_else(|e| e.into_inner());
        debug.iter().cloned().collect()
    }
}

/// Reads a gzip-compressed batch, at most [`MAX_BATCH_LEN`] bytes once decompressed.
///
/// # Errors
///
/// Not gzip, too large, or not a batch.
pub fn decode_batch(gzipped: &[u8]) -> Result<Batch, String> {
    use std::io::Read;
    let mut json = Vec::new();
    let mut reader = flate2::read::GzDecoder::new(gzipped).take(MAX_BATCH_LEN as u64 + 1);
    reader
        .read_to_end(&mut json)
        .map_err(|e| format!("gzip: {e}"))?;
    if json.len() > MAX_BATCH_LEN {
        return Err("batch too large".into());
    }
    serde_json::from_slice(&json).map_err(|e| format!("batch: {e}"))
}

/// Compresses a batch for sending.
pub fn encode_batch(batch: &Batch) -> Vec<u8> {
    use std::io::Write;
    let json = serde_json::to_vec(batch).expect("a batch always serialises");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&json).expect("writing to memory");
    gz.finish().expect("writing to memory")
}

pub(crate) async fn receive(
    axum::extract::State(ingest): axum::extract::State<std::sync::Arc<Ingest>>,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    let refused = |status, why: String| f2f_http::Refused::new(status, why).into_response();
    let batch = match decode_batch(&body) {
        Ok(batch) => batch,
        Err(why) => return refused(StatusCode::BAD_REQUEST, why),
    };
    match ingest.ingest(&batch) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => refused(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// The control plane's Prometheus exposition: ingestion counters and billing totals.
pub(crate) async fn metrics(
    axum::extract::State(ingest): axum::extract::State<std::sync::Arc<Ingest>>,
) -> String {
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;
    let mut registry = prometheus_client::registry::Registry::with_prefix("f2f_control");
    let c = ingest.counters();
    for (name, help, value) in [
        ("telemetry_batches", "Telemetry batches recorded", c.batches),
        (
            "telemetry_duplicates",
            "Telemetry batches seen again (retries)",
            c.duplicates,
        ),
        (
            "receipts_verified",
            "Receipt bundles verified",
            c.receipts_verified,
        ),
        (
            "receipts_refused",
            "Receipt bundles refused",
            c.receipts_refused,
        ),
    ] {
        let counter = Counter::<u64>::default();
        counter.inc_by(value);
        registry.register(name, help, counter);
    }
    let billed = Family::<Vec<(String, String)>, Counter<u64>>::default();
    for s in ingest.issuer.store().billing().unwrap_or_default() {
        for (source, bytes) in [
            ("cdn", s.cdn_bytes),
            ("p2p", s.p2p_bytes),
            ("uploaded", s.uploaded_bytes),
        ] {
            let labels = vec![
                ("stream".into(), s.stream.clone()),
                ("source".into(), source.into()),
            ];
            billed.get_or_create(&labels).inc_by(bytes);
        }
    }
    let vouched = Counter::<u64>::default();
    let receipts = ingest.issuer.store().receipt_bytes().unwrap_or_default();
    vouched.inc_by(receipts.iter().map(|(_, bytes)| bytes).sum());
    registry.register(
        "verified_delivery_bytes",
        "Peer-delivered bytes vouched for by verified receipts (kept across restarts)",
        vouched,
    );
    registry.register(
        "billed_bytes",
        "Bytes reported for billing, by stream and source",
        billed,
    );
    let running =
        Family::<Vec<(String, String)>, prometheus_client::metrics::gauge::Gauge>::default();
    for (version, agents) in ingest.config_versions() {
        let labels = vec![("version".into(), version.to_string())];
        running.get_or_create(&labels).set(agents as i64);
    }
    registry.register(
        "agents_by_config_version",
        "Agents running each remote config version, as they last reported",
        running,
    );
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("writing to a String");
    text
}
