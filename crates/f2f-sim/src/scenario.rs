//! Scenario files: what is simulated (audience, network, CDN, stream, player, engine knobs).

use std::path::Path;

use f2f_core::scheduler::Feature;
use rand::Rng;
use serde::Deserialize;

/// A value drawn per peer from a distribution.
#[derive(Clone, Debug, Deserialize, PartialEq)]
// No `deny_unknown_fields` here: serde cannot combine it with the tag flattened into `MixPart`.
#[serde(tag = "dist", rename_all = "snake_case")]
pub enum Dist {
    /// Always `value`.
    Const {
        /// The value.
        value: f64,
    },
    /// Uniform in `[min, max)`.
    Uniform {
        /// Lower bound.
        min: f64,
        /// Upper bound.
        max: f64,
    },
    /// Log-normal with the given median and σ of the underlying normal, clamped to `[min, max]`.
    LogNormal {
        /// Median.
        median: f64,
        /// σ of ln(x).
        sigma: f64,
        /// Lower clamp.
        #[serde(default)]
        min: f64,
        /// Upper clamp.
        #[serde(default = "f64_max")]
        max: f64,
    },
    /// A weighted choice of sub-distributions (mixtures: "20 % very poor uplinks").
    Mix {
        /// `(weight, distribution)` pairs.
        parts: Vec<MixPart>,
    },
}

/// One component of a [`Dist::Mix`].
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct MixPart {
    /// Relative weight.
    pub weight: f64,
    /// The component.
    #[serde(flatten)]
    pub dist: Dist,
}

fn f64_max() -> f64 {
    f64::MAX
}

impl Dist {
    /// Draws one value.
    pub fn sample<R: Rng>(&self, rng: &mut R) -> f64 {
        match self {
            Dist::Const { value } => *value,
            Dist::Uniform { min, max } => {
                if max > min {
                    rng.random_range(*min..*max)
                } else {
                    *min
                }
            }
            Dist::LogNormal {
                median,
                sigma,
                min,
                max,
            } => {
                // Box–Muller: two uniforms to one standard normal.
                let u1: f64 = rng.random_range(f64::EPSILON..1.0);
                let u2: f64 = rng.random_range(0.0..1.0);
                let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
                (median * (sigma * z).exp()).clamp(*min, *max)
            }
            Dist::Mix { parts } => {
                let total: f64 = parts.iter().map(|p| p.weight.max(0.0)).sum();
                let mut pick = rng.random_range(0.0..total.max(f64::MIN_POSITIVE));
                for part in parts {
                    if pick < part.weight {
                        return part.dist.sample(rng);
                    }
                    pick -= part.weight.max(0.0);
                }
                parts.last().map_or(0.0, |p| p.dist.sample(rng))
            }
        }
    }

    /// The mean, for reports (Monte-Carlo for mixtures would be needless: computed exactly).
    pub fn mean(&self) -> f64 {
        match self {
            Dist::Const { value } => *value,
            Dist::Uniform { min, max } => (min + max) / 2.0,
            // Clamping ignored: a report figure, not a model input.
            Dist::LogNormal { median, sigma, .. } => median * (sigma * sigma / 2.0).exp(),
            Dist::Mix { parts } => {
                let total: f64 = parts.iter().map(|p| p.weight).sum();
                parts.iter().map(|p| p.weight * p.dist.mean()).sum::<f64>()
                    / total.max(f64::MIN_POSITIVE)
            }
        }
    }
}

/// One rung of an ABR ladder.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RenditionSpec {
    /// Media bitrate, kbit/s.
    pub bitrate_kbps: f64,
    /// Relative share of the viewers watching it.
    #[serde(default = "one")]
    pub share: f64,
}

fn one() -> f64 {
    1.0
}

/// The live stream.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// Media bitrate, kbit/s (of the only rendition, unless `renditions` lists a ladder).
    pub bitrate_kbps: f64,
    /// An ABR ladder: each viewer watches one rung, drawn by share. Empty: one rendition at
    /// `bitrate_kbps`.
    #[serde(default)]
    pub renditions: Vec<RenditionSpec>,
    /// Segment duration, seconds.
    pub segment_s: f64,
    /// Segments listed in the live playlist.
    #[serde(default = "default_window")]
    pub playlist_window: u64,
    /// Relative size variation between segments (0.1 = ±10 %).
    #[serde(default = "default_size_jitter")]
    pub size_jitter: f64,
}

impl SourceSpec {
    /// The renditions viewers choose from.
    pub fn ladder(&self) -> Vec<RenditionSpec> {
        if self.renditions.is_empty() {
            vec![RenditionSpec {
                bitrate_kbps: self.bitrate_kbps,
                share: 1.0,
            }]
        } else {
            self.renditions.clone()
        }
    }

    /// Viewer-weighted mean bitrate, kbit/s.
    pub fn mean_bitrate_kbps(&self) -> f64 {
        let ladder = self.ladder();
        let total: f64 = ladder.iter().map(|r| r.share).sum();
        ladder.iter().map(|r| r.share * r.bitrate_kbps).sum::<f64>() / total
    }
}

fn default_window() -> u64 {
    6
}
fn default_size_jitter() -> f64 {
    0.1
}

/// The player model (hls.js-like live defaults).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PlayerSpec {
    /// Segments behind the newest one where playback starts (hls.js `liveSyncDurationCount`).
    #[serde(default = "default_live_offset")]
    pub live_offset_segments: u64,
    /// Segments buffered before playback starts (and resumes after a stall).
    #[serde(default = "default_startup")]
    pub startup_segments: u64,
    /// Playlist refresh interval, seconds (default: the segment duration).
    #[serde(default)]
    pub poll_s: Option<f64>,
}

fn default_live_offset() -> u64 {
    3
}
fn default_startup() -> u64 {
    1
}

impl Default for PlayerSpec {
    fn default() -> Self {
        Self {
            live_offset_segments: default_live_offset(),
            startup_segments: default_startup(),
            poll_s: None,
        }
    }
}

/// Per-peer access network.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    /// Uplink, kbit/s.
    pub uplink_kbps: Dist,
    /// Downlink, kbit/s.
    pub downlink_kbps: Dist,
    /// One-way access latency, ms; the latency between two peers is the sum of theirs (plus
    /// their distance, with `geo`).
    pub latency_ms: Dist,
    /// Where peers sit: with it, two peers are also as far apart as their places.
    #[serde(default)]
    pub geo: Option<GeoSpec>,
    /// Probability that a message needs a retransmission (adds one round trip).
    #[serde(default)]
    pub loss: f64,
    /// Per-message framing overhead, bytes (SCTP/DTLS/UDP/IP headers).
    #[serde(default = "default_overhead")]
    pub overhead_bytes: u64,
    /// Time to notice that a peer vanished without closing (ICE consent / SCTP heartbeat), ms.
    #[serde(default = "default_crash_detect")]
    pub crash_detect_ms: f64,
    /// Peers whose uplink stalls now and then (a saturated home link, a phone changing cells).
    #[serde(default)]
    pub flaky: Option<FlakySpec>,
    /// Whether peer connections run SCTP's congestion control, as WebRTC data channels do:
    /// a window that grows per round trip, halves on a loss and shrinks while idle, so a
    /// transfer's rate depends on its round trip. Off, frames leave at the uplink's pace.
    #[serde(default)]
    pub congestion_control: bool,
}

/// Geography: peers placed uniformly on a square; the one-way delay between two peers grows
/// with their distance, so who is near whom matters (without it every pair's latency is the sum
/// of two access latencies, and no choice of neighbours changes the mean).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GeoSpec {
    /// One-way delay across the square's diagonal, ms.
    pub span_ms: f64,
}

/// Flaky peers: the uplink of a share of the viewers stops for a while, again and again.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FlakySpec {
    /// Share of the viewers that are flaky.
    pub fraction: f64,
    /// Mean time between the starts of two stalls, seconds (exponential).
    pub every_s: f64,
    /// Mean length of a stall, seconds (exponential).
    pub stall_s: f64,
}

fn default_overhead() -> u64 {
    60
}
fn default_crash_detect() -> f64 {
    3000.0
}

/// The CDN.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CdnSpec {
    /// Time to first byte, ms.
    pub latency_ms: f64,
    /// Throughput cap per request, kbit/s (the viewer's downlink also applies).
    pub per_flow_kbps: f64,
    /// Probability a fetch fails.
    #[serde(default)]
    pub failure_rate: f64,
    /// Total egress capacity, Mbit/s (unlimited when absent): responses queue for it.
    #[serde(default)]
    pub capacity_mbps: Option<f64>,
}

/// Who watches, and when they come and go.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AudienceSpec {
    /// Viewers.
    pub viewers: u32,
    /// Viewers join uniformly within this many seconds from the start.
    pub join_window_s: f64,
    /// Entry peers the bootstrap hands a joining viewer.
    #[serde(default = "default_entry_peers")]
    pub entry_peers: usize,
    /// A mass departure: this fraction of the viewers present leaves at once.
    #[serde(default)]
    pub mass_leave: Option<MassLeave>,
}

fn default_entry_peers() -> usize {
    3
}

/// A sudden departure of many viewers (a goal scored, a stream ending on another channel).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MassLeave {
    /// When, seconds from the start.
    pub at_s: f64,
    /// Fraction of the viewers present that leave.
    pub fraction: f64,
    /// Whether they vanish without closing connections (tabs killed, network lost).
    #[serde(default = "default_true")]
    pub abrupt: bool,
}

fn default_true() -> bool {
    true
}

/// Engine knobs a scenario may override (the rest keep the engine defaults).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EngineSpec {
    /// `scheduler.cdn_budget`.
    pub cdn_budget: Option<f64>,
    /// `scheduler.viewers_per_first_fetcher`.
    pub viewers_per_first_fetcher: Option<f64>,
    /// `links.degree`.
    pub degree: Option<usize>,
    /// `links.max_degree`.
    pub max_degree: Option<usize>,
    /// `upload.slots`.
    pub upload_slots: Option<usize>,
    /// `upload.queue`.
    pub upload_queue: Option<usize>,
    /// `upload.chunk`, bytes.
    pub chunk_bytes: Option<usize>,
    /// `scheduler.stall_timeout`, ms.
    pub stall_timeout_ms: Option<u64>,
    /// How nodes rank peers as sources.
    #[serde(default)]
    pub ranker: RankerSpec,
    /// `swap.enabled`: nodes propose swaps of data neighbours.
    pub swap: Option<bool>,
    /// `swap.threshold`, Mbit/s.
    pub swap_threshold: Option<f32>,
    /// `links.explore`.
    pub explore: Option<f64>,
}

/// The peer-selection rule every node runs.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum RankerSpec {
    /// The engine's own (`BaselineRanker`): expected arrival from RTT, throughput, load and
    /// failures.
    #[default]
    Baseline,
    /// The nearest peer first (`RttRanker`).
    Rtt,
    /// Bandwidth-weighted random choice, as p2p-media-loader does (`BandwidthLottery`).
    Bandwidth,
    /// The online model trained from each node's own outcomes (`LearnedRanker`).
    Learned,
    /// The model without RTT (ablation).
    LearnedNoRtt,
    /// The model without measured throughput (ablation).
    LearnedNoThroughput,
    /// The model without reported bandwidth and load (ablation).
    LearnedNoBandwidth,
    /// The model without failure and refusal counts (ablation).
    LearnedNoReliability,
    /// The model without connection age (ablation).
    LearnedNoChurn,
}

impl RankerSpec {
    /// Every rule, in report order.
    pub const ALL: [Self; 9] = [
        Self::Baseline,
        Self::Rtt,
        Self::Bandwidth,
        Self::Learned,
        Self::LearnedNoRtt,
        Self::LearnedNoThroughput,
        Self::LearnedNoBandwidth,
        Self::LearnedNoReliability,
        Self::LearnedNoChurn,
    ];

    /// The name scenarios and the command line use.
    pub fn name(self) -> &'static str {
        match self {
            Self::Baseline => "baseline",
            Self::Rtt => "rtt",
            Self::Bandwidth => "bandwidth",
            Self::Learned => "learned",
            Self::LearnedNoRtt => "learned-no-rtt",
            Self::LearnedNoThroughput => "learned-no-throughput",
            Self::LearnedNoBandwidth => "learned-no-bandwidth",
            Self::LearnedNoReliability => "learned-no-reliability",
            Self::LearnedNoChurn => "learned-no-churn",
        }
    }

    /// The learned model this rule runs, if it is one: all features, or all but one.
    pub fn learned(self) -> Option<Option<Feature>> {
        match self {
            Self::Baseline | Self::Rtt | Self::Bandwidth => None,
            Self::Learned => Some(None),
            Self::LearnedNoRtt => Some(Some(Feature::Rtt)),
            Self::LearnedNoThroughput => Some(Some(Feature::Throughput)),
            Self::LearnedNoBandwidth => Some(Some(Feature::Bandwidth)),
            Self::LearnedNoReliability => Some(Some(Feature::Reliability)),
            Self::LearnedNoChurn => Some(Some(Feature::Churn)),
        }
    }
}

impl std::str::FromStr for RankerSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| {
                let known: Vec<&str> = Self::ALL.into_iter().map(Self::name).collect();
                format!("unknown ranker {s:?} ({})", known.join(", "))
            })
    }
}

/// How signatures are made and checked.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CryptoSpec {
    /// Real BLS12-381 (blst), as every node runs it; each check's result is remembered across
    /// the simulated swarm (see `crypto.rs`).
    #[default]
    Bls,
    /// Keyed hashes in place of pairings, for large honest swarms (see `crypto.rs`).
    Modelled,
}

/// How segment bytes from peers are verified.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum HashingSpec {
    /// Real BLAKE3/bao verification of every piece, as every node runs it.
    #[default]
    Blake3,
    /// Pieces taken as they come, without proof bytes, for large honest swarms (see
    /// `crypto.rs`).
    Modelled,
}

/// Where viewers learn the hashes they check peers' bytes against.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum HashesSpec {
    /// The origin's signed hashes, fetched with the playlist.
    #[default]
    Signed,
    /// Attestations of `quorum` distinct certified peers that downloaded the segment.
    Attested,
}

/// Identity and security settings.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SecuritySpec {
    /// Signature implementation. Default `bls`.
    #[serde(default)]
    pub crypto: CryptoSpec,
    /// Piece verification. Default `blake3`.
    #[serde(default)]
    pub hashing: HashingSpec,
    /// Share of viewers that corrupt every piece they upload. Default 0.
    #[serde(default)]
    pub corrupt_fraction: f64,
    /// Share of viewers that claim every live segment and never answer for what they lack.
    /// Default 0.
    #[serde(default)]
    pub liar_fraction: f64,
    /// Share of viewers with a certificate from a key the swarm does not trust. Default 0.
    #[serde(default)]
    pub forged_fraction: f64,
    /// Where segment hashes come from. Default `signed`.
    #[serde(default)]
    pub hashes: HashesSpec,
    /// Distinct attesters a hash needs, with `hashes = "attested"`. Default 3.
    #[serde(default = "default_quorum")]
    pub quorum: usize,
    /// Share of segments from peers spot-checked against the CDN, with `hashes = "attested"`.
    /// Default 0.02.
    #[serde(default = "default_spot_check")]
    pub spot_check: f64,
    /// Groups of `quorum − 1` viewers that attest a false hash of every segment they announce,
    /// together, and corrupt what they upload. Default 0.
    #[serde(default)]
    pub colluder_groups: u32,
}

fn default_quorum() -> usize {
    3
}

fn default_spot_check() -> f64 {
    0.02
}

impl Default for SecuritySpec {
    fn default() -> Self {
        Self {
            crypto: CryptoSpec::default(),
            hashing: HashingSpec::default(),
            corrupt_fraction: 0.0,
            liar_fraction: 0.0,
            forged_fraction: 0.0,
            hashes: HashesSpec::default(),
            quorum: default_quorum(),
            spot_check: default_spot_check(),
            colluder_groups: 0,
        }
    }
}

impl SecuritySpec {
    /// Whether the scenario has attackers (and so an honest run to compare with).
    pub fn has_attackers(&self) -> bool {
        self.corrupt_fraction + self.liar_fraction + self.forged_fraction > 0.0
            || self.colluder_groups > 0
    }

    /// How many viewers collude.
    pub fn colluders(&self) -> u32 {
        self.colluder_groups * (self.quorum.saturating_sub(1) as u32)
    }

    /// The same settings without attackers.
    pub fn honest(&self) -> Self {
        Self {
            corrupt_fraction: 0.0,
            liar_fraction: 0.0,
            forged_fraction: 0.0,
            colluder_groups: 0,
            ..self.clone()
        }
    }
}

/// A complete scenario.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Name used in reports.
    pub name: String,
    /// Seed of every random draw.
    #[serde(default)]
    pub seed: u64,
    /// Simulated stream time, seconds.
    pub duration_s: f64,
    /// The stream.
    pub source: SourceSpec,
    /// The player.
    #[serde(default)]
    pub player: PlayerSpec,
    /// The viewers' networks.
    pub network: NetworkSpec,
    /// The CDN.
    pub cdn: CdnSpec,
    /// The audience.
    pub audience: AudienceSpec,
    /// Engine overrides.
    #[serde(default)]
    pub engine: EngineSpec,
    /// Identity and security.
    #[serde(default)]
    pub security: SecuritySpec,
}

/// A scenario file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("cannot read scenario {path}: {source}")]
    Read {
        /// The path.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML is malformed or has unknown fields.
    #[error("invalid scenario: {0}")]
    Parse(#[from] toml::de::Error),
    /// A value is out of range.
    #[error("invalid scenario: {0}")]
    Invalid(String),
}

impl Scenario {
    /// Reads and validates a scenario file.
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text)
    }

    /// Parses and validates scenario TOML.
    pub fn parse(text: &str) -> Result<Self, ScenarioError> {
        let s: Scenario = toml::from_str(text)?;
        s.validate()?;
        Ok(s)
    }

    fn validate(&self) -> Result<(), ScenarioError> {
        let bad = |why: &str| Err(ScenarioError::Invalid(why.to_string()));
        if self.audience.viewers == 0 {
            return bad("audience.viewers must be at least 1");
        }
        let positive = |v: f64| v.is_finite() && v > 0.0;
        if !positive(self.source.segment_s) || !positive(self.source.bitrate_kbps) {
            return bad("source.segment_s and source.bitrate_kbps must be positive");
        }
        if self
            .source
            .renditions
            .iter()
            .any(|r| !positive(r.bitrate_kbps) || !positive(r.share))
        {
            return bad("source.renditions need positive bitrate_kbps and share");
        }
        if self.source.renditions.len() > 16 {
            return bad("source.renditions: at most 16 rungs");
        }
        if !positive(self.duration_s) {
            return bad("duration_s must be positive");
        }
        if !(0.0..1.0).contains(&self.network.loss) || !(0.0..1.0).contains(&self.cdn.failure_rate)
        {
            return bad("network.loss and cdn.failure_rate must be in [0, 1)");
        }
        if self.cdn.capacity_mbps.is_some_and(|c| !positive(c)) {
            return bad("cdn.capacity_mbps must be positive");
        }
        if let Some(f) = &self.network.flaky {
            if !(0.0..=1.0).contains(&f.fraction) || !positive(f.every_s) || !positive(f.stall_s) {
                return bad("network.flaky: fraction in [0, 1], every_s and stall_s positive");
            }
        }
        if let Some(m) = &self.audience.mass_leave {
            if !(0.0..=1.0).contains(&m.fraction) {
                return bad("audience.mass_leave.fraction must be in [0, 1]");
            }
        }
        let sec = &self.security;
        let shares = [sec.corrupt_fraction, sec.liar_fraction, sec.forged_fraction];
        if shares.iter().any(|f| !(0.0..=1.0).contains(f)) || shares.iter().sum::<f64>() > 0.5 {
            return bad("security: attacker fractions must be in [0, 1] and add up to at most 0.5");
        }
        if sec.has_attackers()
            && (sec.crypto != CryptoSpec::Bls || sec.hashing != HashingSpec::Blake3)
        {
            return bad("security: attackers need crypto = \"bls\" and hashing = \"blake3\"");
        }
        if sec.quorum == 0 || !(0.0..=1.0).contains(&sec.spot_check) {
            return bad("security: quorum must be at least 1 and spot_check in [0, 1]");
        }
        if sec.colluder_groups > 0 && (sec.hashes != HashesSpec::Attested || sec.quorum < 2) {
            return bad("security: colluders need hashes = \"attested\" and a quorum of 2 or more");
        }
        if sec.colluders() > self.audience.viewers / 2 {
            return bad("security: colluders may be at most half the audience");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;

    #[test]
    fn mixtures_sample_their_parts() {
        let d: Dist = toml::from_str(
            r#"
            dist = "mix"
            parts = [ { weight = 1.0, dist = "const", value = 1.0 },
                      { weight = 3.0, dist = "const", value = 5.0 } ]
            "#,
        )
        .expect("valid");
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let n = 10_000;
        let fives = (0..n).filter(|_| d.sample(&mut rng) == 5.0).count();
        assert!((fives as f64 / n as f64 - 0.75).abs() < 0.02);
        assert!((d.mean() - 4.0).abs() < 1e-9);
    }

    #[test]
    fn lognormal_median_holds() {
        let d = Dist::LogNormal {
            median: 10.0,
            sigma: 0.6,
            min: 0.0,
            max: f64::MAX,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let mut v: Vec<f64> = (0..20_001).map(|_| d.sample(&mut rng)).collect();
        v.sort_by(f64::total_cmp);
        assert!((v[10_000] - 10.0).abs() < 0.3, "{}", v[10_000]);
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let err = Scenario::parse("name = 'x'\nduration_s = 1\nbogus = 2\n").expect_err("bogus");
        assert!(
            err.to_string().contains("bogus") || err.to_string().contains("missing"),
            "{err}"
        );
    }
}
