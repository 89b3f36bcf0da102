//! Runtime configuration: one [`Config`], a documented default per field.
//!
//! Drivers share it as `Arc<Config>`; remote config replaces it live through
//! [`crate::engine::Input::UpdateConfig`].

use crate::integrity::GROUP_BYTES;
use crate::membership::MembershipConfig;
use crate::swarm_size::SizeConfig;
use crate::time::Duration;
use crate::wire::Limits;

/// Where segments may come from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SourcePreference {
    /// Peers when they can make the deadline, the CDN otherwise (default).
    #[default]
    Auto,
    /// Never a first CDN fetcher: the CDN only when a deadline demands it.
    P2pPreferred,
    /// The CDN only; the node still serves what it holds to peers.
    CdnOnly,
}

/// Download scheduling.
#[derive(Clone, Debug, PartialEq)]
pub struct SchedulerConfig {
    /// Where segments may come from. Default [`SourcePreference::Auto`].
    pub source: SourcePreference,
    /// Expected number of peers in the whole swarm that fetch each new segment from the CDN
    /// straight away. Default 3.
    pub cdn_budget: f64,
    /// Viewers one first fetcher's relay tree may serve: a larger swarm (as its size sketch
    /// estimates it) gets one first fetcher per this many viewers instead of `cdn_budget`, up
    /// to the sketch's `k` capable peers. A tree's depth sets how late its leaves finish: at
    /// 10,000 viewers, 3 trees left hundreds of viewers per segment to the CDN at their
    /// deadlines. Default 400 (below 1,200 viewers the budget stays `cdn_budget`).
    pub viewers_per_first_fetcher: f64,
    /// A node seeds (is eligible as a first fetcher) when its measured uplink is at least this
    /// multiple of the media bit rate. A first fetcher roots one of the few relay trees that
    /// carry each segment to the whole swarm, and the tree's depth (hence how late its leaves
    /// finish) depends most on the root's fan-out: the default gives a root at least four
    /// uploads at once at the default `relay_rate_ratio`, where a root able to serve one or two
    /// left a large swarm within a few hops of its deadlines. Default 6.
    pub seed_uplink_ratio: f64,
    /// How far deadline pressure may raise the budget (a multiplier on `cdn_budget`): each
    /// deadline-forced CDN fetch raises a node's own multiplier by a quarter, each segment from
    /// the swarm lowers it by half a percent. Default 16.
    pub max_budget_gain: f64,
    /// Peers ranked beyond the budget wait this long per budget-width of rank before they
    /// fetch a segment nobody has announced (covers a mis-estimated swarm size). Default 1 s.
    pub rescue_step: Duration,
    /// A peer transfer with no new byte for this long falls back to the CDN. Default 700 ms.
    pub stall_timeout: Duration,
    /// A peer that answered `Busy` is not asked again for the same segment for this long.
    /// Default 250 ms.
    pub busy_backoff: Duration,
    /// Safety margin kept before the playback deadline. Default 400 ms.
    pub deadline_margin: Duration,
    /// Peers one segment may be fetched from at once, each sending its own byte range, when
    /// no single holder can deliver it all by the deadline: slow uplinks add up. Default 4.
    pub max_sources: usize,
    /// CDN round trip assumed before one is measured. Default 100 ms.
    pub cdn_rtt_prior: Duration,
    /// CDN throughput assumed before one is measured, bit/s. Default 20 Mb/s.
    pub cdn_throughput_prior_bps: f64,
    /// Segment size assumed before one is seen, bytes. Default 1 MB.
    pub segment_size_prior: u64,
    /// CDN attempts per segment before the load fails. Default 3.
    pub cdn_attempts: u32,
    /// Wait between CDN attempts. Default 250 ms.
    pub cdn_retry_backoff: Duration,
    /// Segments are forgotten this long after they were listed if never completed. Default 60 s.
    pub forget_after: Duration,
}

impl SchedulerConfig {
    /// Expected first fetchers of each new segment in a swarm of `viewers`.
    pub fn first_fetchers(&self, viewers: f64) -> f64 {
        self.cdn_budget
            .max(viewers / self.viewers_per_first_fetcher)
    }
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            source: SourcePreference::Auto,
            cdn_budget: 3.0,
            viewers_per_first_fetcher: 400.0,
            max_budget_gain: 16.0,
            seed_uplink_ratio: 6.0,
            rescue_step: Duration::from_millis(1000),
            stall_timeout: Duration::from_millis(700),
            busy_backoff: Duration::from_millis(250),
            deadline_margin: Duration::from_millis(400),
            max_sources: 4,
            cdn_rtt_prior: Duration::from_millis(100),
            cdn_throughput_prior_bps: 20e6,
            segment_size_prior: 1_000_000,
            cdn_attempts: 3,
            cdn_retry_backoff: Duration::from_millis(250),
            forget_after: Duration::from_secs(60),
        }
    }
}

/// Serving segments to neighbours.
#[derive(Clone, Debug, PartialEq)]
pub struct UploadConfig {
    /// Transfers sent at once, at least. One: a whole copy as early as possible spreads a
    /// segment fastest (the next transfer starts while the last bytes of the previous are still
    /// in flight). Default 1.
    pub slots: usize,
    /// Transfers sent at once, at most: a fast uplink serves as many as it can feed at
    /// `relay_rate_ratio` times the media bit rate each. Default 8.
    pub max_slots: usize,
    /// Rate each parallel transfer gets, at least, as a multiple of the media bit rate: above 1,
    /// so a segment relayed hop by hop still arrives faster than it plays. Default 1.5.
    pub relay_rate_ratio: f64,
    /// The same, once the swarm outgrows its first-fetch budget (its estimated size asks for
    /// more than `scheduler.cdn_budget` first fetchers, 1,200 viewers by default). Relay trees
    /// are deep there, and a wider fan-out shortens them: fewer requests wait in queues until
    /// their first-byte timeout, and fewer reach the CDN. At 10,000 viewers 1.0 took steady
    /// CDN requests per segment from 111 to 80, offload and stalls unchanged. Default 1.0.
    pub relay_rate_ratio_at_scale: f64,
    /// Requests queued behind the slots; beyond, requesters hear `Busy` and look elsewhere
    /// rather than wait. Default 2.
    pub queue: usize,
    /// Bytes per `Piece` message, at most: whole 16 KiB chunk groups (the unit a receiver
    /// verifies). Default 64 KiB.
    pub chunk: usize,
    /// Bytes handed to the driver for one connection and not yet sent, at most. Default 256 KiB.
    pub high_water: u64,
    /// ... and at most this much sending time at the measured uplink rate, so that on a slow
    /// uplink the next requester's first byte does not wait behind seconds of backlog (never
    /// below one piece above `low_water`). Default 150 ms.
    pub high_water_time: Duration,
    /// The driver reports the send buffer of a connection when it falls to this, as
    /// `bufferedamountlow` does: only after it rose above it. So no bigger than a piece, or a
    /// connection that carries one piece at a time (a relay passing bytes on as they arrive)
    /// never reports and looks full for good. Default 16 KiB.
    pub low_water: u64,
    /// A transfer that cannot finish (the receiver stopped reading) frees its slot after this.
    /// Default 10 s.
    pub timeout: Duration,
}

impl Default for UploadConfig {
    fn default() -> Self {
        Self {
            slots: 1,
            max_slots: 8,
            relay_rate_ratio: 1.5,
            relay_rate_ratio_at_scale: 1.0,
            queue: 2,
            chunk: 64 * 1024,
            high_water: 256 * 1024,
            high_water_time: Duration::from_millis(150),
            low_water: 16 * 1024,
            timeout: Duration::from_secs(10),
        }
    }
}

/// Data-neighbour set: the peers we exchange availability and segments with.
#[derive(Clone, Debug, PartialEq)]
pub struct LinkConfig {
    /// Data neighbours we try to keep. Default 8.
    pub degree: usize,
    /// Data neighbours we accept at most (inbound links beyond `degree`). Default 12.
    pub max_degree: usize,
    /// How often the link set is maintained. Default 1 s.
    pub maintain_interval: Duration,
    /// A connection with no use for this long is closed. Default 10 s.
    pub idle_timeout: Duration,
    /// Segments whose announcements (who holds them) are remembered. Default 24.
    pub have_memory: usize,
    /// Share of link refills that take a random candidate instead of the best ranked, so
    /// peers the model misjudges get measured again. Default 0.1.
    pub explore: f64,
}

impl Default for LinkConfig {
    fn default() -> Self {
        Self {
            degree: 8,
            max_degree: 12,
            maintain_interval: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(10),
            have_memory: 24,
            explore: 0.1,
        }
    }
}

/// Swap refinement of the data neighbours (see [`crate::swap`]).
#[derive(Clone, Debug, PartialEq)]
pub struct SwapConfig {
    /// Whether this node proposes swaps (it always answers others'). Default false.
    pub enabled: bool,
    /// Summed predicted gain a swap must clear, Mbit/s of expected segment throughput. The
    /// proposer also needs its own share above it. Default 1.0.
    pub threshold: f32,
    /// How often a node considers proposing. Default 5 s.
    pub interval: Duration,
    /// How long a party stays locked for a swap, and rests after. Default 4 s.
    pub lock: Duration,
    /// Data neighbours per node that no swap takes away (random links that keep the graph
    /// connected while the rest cluster by locality). Default 2.
    pub anchors: usize,
}

impl Default for SwapConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            threshold: 1.0,
            interval: Duration::from_secs(5),
            lock: Duration::from_secs(4),
            anchors: 2,
        }
    }
}

/// Certificates: our own renewal, and remembering peers' verified ones.
#[derive(Clone, Debug, PartialEq)]
pub struct IdentityConfig {
    /// Ask the driver for a new certificate this long before ours expires, so the swarm keeps
    /// us while the control plane is briefly down. Default 1 h.
    pub renew_before: Duration,
    /// Peer certificates whose signature is remembered as verified (a pairing check is ~1 ms;
    /// expiry and revocation are still checked every time). Default 4,096.
    pub certificate_cache: usize,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        Self {
            renew_before: Duration::from_secs(3600),
            certificate_cache: 4096,
        }
    }
}

/// Where a node learns the hashes it checks peers' bytes against.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum HashSource {
    /// The origin's signed hashes, fed by the driver (`Input::SegmentHash`, asked for with
    /// `Output::NeedHash`). The default.
    #[default]
    Signed,
    /// For origins that sign nothing: peers that download a whole segment from the CDN attest
    /// its hash, and a hash is trusted once `quorum` distinct certified peers attest it.
    Attested {
        /// Distinct attesters needed; `quorum − 1` colluders cannot forge a hash.
        quorum: usize,
        /// Fraction of segments taken from peers that are checked afterwards against one
        /// chunk group fetched from the CDN (a false quorum bans its attesters).
        spot_check: f64,
    },
}

/// Delivery receipts.
#[derive(Clone, Debug, PartialEq)]
pub struct ReceiptConfig {
    /// Receivers sign one receipt per uploader per window of this length (wall clock, whole
    /// seconds), so the cost does not grow with the number of transfers. Default 60 s.
    pub window: Duration,
}

impl Default for ReceiptConfig {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(60),
        }
    }
}

/// Everything an [`crate::engine::Engine`] is configured with.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Seed of every random choice the engine makes (mixed with its peer id). Default 0.
    pub seed: u64,
    /// Gossip overlay.
    pub membership: MembershipConfig,
    /// Data neighbours.
    pub links: LinkConfig,
    /// Swap refinement of the data neighbours.
    pub swap: SwapConfig,
    /// Downloads.
    pub scheduler: SchedulerConfig,
    /// Uploads.
    pub upload: UploadConfig,
    /// Swarm-size estimation.
    pub size: SizeConfig,
    /// Certificates.
    pub identity: IdentityConfig,
    /// Where trusted segment hashes come from.
    pub hashes: HashSource,
    /// Delivery receipts.
    pub receipts: ReceiptConfig,
    /// Decoder bounds for peer input.
    pub limits: Limits,
    /// Segments kept for serving after playback. Default 12.
    pub cache_segments: usize,
    /// Largest segment accepted from a peer, bytes. Default 32 MiB.
    pub max_segment_bytes: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            seed: 0,
            membership: MembershipConfig::default(),
            links: LinkConfig::default(),
            swap: SwapConfig::default(),
            scheduler: SchedulerConfig::default(),
            upload: UploadConfig::default(),
            size: SizeConfig::default(),
            identity: IdentityConfig::default(),
            hashes: HashSource::default(),
            receipts: ReceiptConfig::default(),
            limits: Limits::default(),
            cache_segments: 12,
            max_segment_bytes: 32 * 1024 * 1024,
        }
    }
}

/// A configuration that cannot work.
#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum ConfigError {
    /// A field is out of its valid range.
    #[error("config field `{field}` is invalid: {why}")]
    Invalid {
        /// The field's path.
        field: &'static str,
        /// What is wrong.
        why: &'static str,
    },
    /// [`Config::set`] does not know the key.
    #[error("unknown config key `{0}` (settable: {keys})", keys = Config::SETTABLE.join(", "))]
    UnknownKey(String),
    /// [`Config::set`] cannot read the value for the key.
    #[error("config key `{key}` cannot take `{value}`")]
    BadValue {
        /// The key.
        key: &'static str,
        /// The value given.
        value: String,
    },
}

fn parse<T: std::str::FromStr>(key: &'static str, value: &str) -> Result<T, ConfigError> {
    value.trim().parse().map_err(|_| ConfigError::BadValue {
        key,
        value: value.to_owned(),
    })
}

fn millis(key: &'static str, value: &str) -> Result<Duration, ConfigError> {
    parse::<u64>(key, value).map(Duration::from_millis)
}

impl Config {
    /// The keys remote configuration may set ([`Config::set`]): the knobs an operator turns
    /// on a running swarm.
    pub const SETTABLE: &'static [&'static str] = &[
        "scheduler.source",
        "scheduler.cdn_budget",
        "scheduler.viewers_per_first_fetcher",
        "scheduler.stall_timeout_ms",
        "scheduler.deadline_margin_ms",
        "scheduler.max_sources",
        "links.degree",
        "links.max_degree",
        "links.idle_timeout_ms",
        "links.explore",
        "swap.enabled",
        "swap.threshold",
        "swap.interval_ms",
        "swap.lock_ms",
        "swap.anchors",
        "upload.max_slots",
        "upload.relay_rate_ratio",
        "upload.relay_rate_ratio_at_scale",
        "hashes.spot_check",
        "receipts.window_secs",
        "cache_segments",
    ];

    /// The rate each parallel upload gets at least, as a multiple of the media rate, in a swarm
    /// of `viewers`: `upload.relay_rate_ratio_at_scale` once the swarm asks for more first
    /// fetchers than `scheduler.cdn_budget`, `upload.relay_rate_ratio` below.
    pub fn relay_rate_ratio(&self, viewers: f64) -> f64 {
        if self.scheduler.first_fetchers(viewers) > self.scheduler.cdn_budget {
            self.upload.relay_rate_ratio_at_scale
        } else {
            self.upload.relay_rate_ratio
        }
    }

    /// Sets one field from remote configuration's text (`auto`, `p2p-preferred`, `cdn-only`
    /// for the source; numbers otherwise, durations in milliseconds). Call
    /// [`Config::validate`] once every key is set.
    ///
    /// # Errors
    ///
    /// An unknown key, a value that does not parse, or a spot-check rate on a stream whose
    /// hashes are signed (there is nothing to sample).
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let k = Self::SETTABLE
            .iter()
            .find(|k| **k == key)
            .ok_or_else(|| ConfigError::UnknownKey(key.to_owned()))?;
        match *k {
            "scheduler.source" => {
                self.scheduler.source = match value.trim() {
                    "auto" => SourcePreference::Auto,
                    "p2p-preferred" => SourcePreference::P2pPreferred,
                    "cdn-only" => SourcePreference::CdnOnly,
                    _ => {
                        return Err(ConfigError::BadValue {
                            key: k,
                            value: value.to_owned(),
                        });
                    }
                }
            }
            "scheduler.cdn_budget" => self.scheduler.cdn_budget = parse(k, value)?,
            "scheduler.viewers_per_first_fetcher" => {
                self.scheduler.viewers_per_first_fetcher = parse(k, value)?;
            }
            "scheduler.stall_timeout_ms" => self.scheduler.stall_timeout = millis(k, value)?,
            "scheduler.deadline_margin_ms" => self.scheduler.deadline_margin = millis(k, value)?,
            "scheduler.max_sources" => self.scheduler.max_sources = parse(k, value)?,
            "links.degree" => self.links.degree = parse(k, value)?,
            "links.max_degree" => self.links.max_degree = parse(k, value)?,
            "links.idle_timeout_ms" => self.links.idle_timeout = millis(k, value)?,
            "links.explore" => self.links.explore = parse(k, value)?,
            "swap.enabled" => self.swap.enabled = parse(k, value)?,
            "swap.threshold" => self.swap.threshold = parse(k, value)?,
            "swap.interval_ms" => self.swap.interval = millis(k, value)?,
            "swap.lock_ms" => self.swap.lock = millis(k, value)?,
            "swap.anchors" => self.swap.anchors = parse(k, value)?,
            "receipts.window_secs" => {
                self.receipts.window = Duration::from_secs(parse(k, value)?);
            }
            "upload.max_slots" => self.upload.max_slots = parse(k, value)?,
            "upload.relay_rate_ratio" => self.upload.relay_rate_ratio = parse(k, value)?,
            "upload.relay_rate_ratio_at_scale" => {
                self.upload.relay_rate_ratio_at_scale = parse(k, value)?;
            }
            "hashes.spot_check" => match &mut self.hashes {
                HashSource::Attested { spot_check, .. } => *spot_check = parse(k, value)?,
                HashSource::Signed => {
                    return Err(ConfigError::BadValue {
                        key: k,
                        value: value.to_owned(),
                    });
                }
            },
            _ => self.cache_segments = parse(k, value)?,
        }
        Ok(())
    }

    /// Checks the fields that would make the engine misbehave.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let check = |ok: bool, field, why| {
            if ok {
                Ok(())
            } else {
                Err(ConfigError::Invalid { field, why })
            }
        };
        check(
            self.membership.active_view >= 1,
            "membership.active_view",
            "must be at least 1",
        )?;
        check(
            self.membership.passive_view >= 1,
            "membership.passive_view",
            "must be at least 1",
        )?;
        check(self.links.degree >= 1, "links.degree", "must be at least 1")?;
        check(
            self.links.max_degree >= self.links.degree,
            "links.max_degree",
            "must be >= degree",
        )?;
        check(
            (0.0..=1.0).contains(&self.links.explore),
            "links.explore",
            "must be within 0..=1",
        )?;
        check(
            self.swap.threshold.is_finite() && self.swap.threshold >= 0.0,
            "swap.threshold",
            "must be a non-negative number",
        )?;
        check(
            !self.swap.interval.is_zero(),
            "swap.interval",
            "must be positive",
        )?;
        check(!self.swap.lock.is_zero(), "swap.lock", "must be positive")?;
        check(self.upload.slots >= 1, "upload.slots", "must be at least 1")?;
        check(
            self.upload.max_slots >= self.upload.slots,
            "upload.max_slots",
            "must be >= upload.slots",
        )?;
        check(
            self.upload.relay_rate_ratio > 0.0,
            "upload.relay_rate_ratio",
            "must be positive",
        )?;
        check(
            self.upload.relay_rate_ratio_at_scale > 0.0,
            "upload.relay_rate_ratio_at_scale",
            "must be positive",
        )?;
        check(
            self.upload.low_water < self.upload.high_water,
            "upload.low_water",
            "must be below upload.high_water",
        )?;
        check(
            self.upload.low_water <= self.upload.chunk as u64,
            "upload.low_water",
            "must not exceed upload.chunk",
        )?;
        let chunk = self.upload.chunk as u64;
        check(
            chunk > 0 && chunk % GROUP_BYTES == 0,
            "upload.chunk",
            "must be whole 16 KiB chunk groups",
        )?;
        check(
            self.upload.chunk + 1024 <= self.limits.max_piece_len,
            "upload.chunk",
            "with its proof (under 1 KiB) must fit limits.max_piece_len",
        )?;
        check(
            self.scheduler.max_budget_gain >= 1.0,
            "scheduler.max_budget_gain",
            "must be at least 1",
        )?;
        check(
            self.scheduler.max_sources >= 1,
            "scheduler.max_sources",
            "must be at least 1",
        )?;
        check(
            self.scheduler.cdn_budget > 0.0,
            "scheduler.cdn_budget",
            "must be positive",
        )?;
        check(
            self.scheduler.viewers_per_first_fetcher > 0.0,
            "scheduler.viewers_per_first_fetcher",
            "must be positive (inf: never more than cdn_budget)",
        )?;
        check(self.size.k >= 2, "size.k", "must be at least 2")?;
        check(
            self.receipts.window.as_secs() >= 1,
            "receipts.window",
            "must be at least 1 s",
        )?;
        if let HashSource::Attested { quorum, spot_check } = self.hashes {
            check(quorum >= 1, "hashes.quorum", "must be at least 1")?;
            check(
                quorum <= self.limits.max_attesters,
                "hashes.quorum",
                "must fit one message (limits.max_attesters)",
            )?;
            check(
                (0.0..=1.0).contains(&spot_check),
                "hashes.spot_check",
                "must be a fraction in 0..=1",
            )?;
        }
        check(
            self.cache_segments >= 1,
            "cache_segments",
            "must be at least 1",
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        Config::default().validate().expect("valid");
    }

    #[test]
    fn bad_fields_are_named() {
        let mut c = Config::default();
        c.links.max_degree = 2;
        let err = c.validate().expect_err("max_degree < degree");
        assert!(err.to_string().contains("links.max_degree"), "{err}");
    }

    #[test]
    fn pieces_must_be_whole_chunk_groups() {
        let mut c = Config::default();
        c.upload.chunk = 40 * 1024;
        let err = c.validate().expect_err("not whole groups");
        assert!(err.to_string().contains("upload.chunk"), "{err}");
        c.upload.chunk = 32 * 1024;
        c.upload.low_water = 16 * 1024;
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn a_low_water_mark_above_one_piece_is_refused() {
        // A connection carrying one piece at a time would never report its buffer drained.
        let mut c = Config::default();
        c.upload.low_water = c.upload.chunk as u64 + 1;
        let err = c.validate().expect_err("low_water > chunk");
        assert!(err.to_string().contains("upload.low_water"), "{err}");
    }

    #[test]
    fn remote_keys_set_typed_fields_and_refuse_the_rest() {
        let mut config = Config::default();
        config.set("scheduler.source", "p2p-preferred").unwrap();
        config.set("scheduler.cdn_budget", "1.5").unwrap();
        config.set("scheduler.stall_timeout_ms", "900").unwrap();
        config.set("links.degree", "6").unwrap();
        config.set("receipts.window_secs", "30").unwrap();
        assert_eq!(config.receipts.window, Duration::from_secs(30));
        assert_eq!(config.scheduler.source, SourcePreference::P2pPreferred);
        assert_eq!(config.scheduler.cdn_budget, 1.5);
        assert_eq!(config.scheduler.stall_timeout, Duration::from_millis(900));
        assert_eq!(config.links.degree, 6);
        config.validate().unwrap();
        assert!(matches!(
            config.set("scheduler.sauce", "auto"),
            Err(ConfigError::UnknownKey(_))
        ));
        assert!(matches!(
            config.set("links.degree", "six"),
            Err(ConfigError::BadValue { .. })
        ));
        // Signed hashes have nothing to sample.
        assert!(config.set("hashes.spot_check", "0.1").is_err());
        // A value that parses but cannot work is caught by validate.
        config.set("links.max_degree", "2").unwrap();
        assert!(config.validate().is_err());
    }

    #[test]
    fn first_fetchers_grow_only_with_swarms_too_large_for_the_budgets_trees() {
        let mut cfg = SchedulerConfig::default();
        assert_eq!(cfg.first_fetchers(100.0), 3.0);
        assert_eq!(cfg.first_fetchers(1_000.0), 3.0, "large.toml keeps 3 trees");
        assert_eq!(cfg.first_fetchers(10_000.0), 25.0);
        let mut config = Config::default();
        config
            .set("scheduler.viewers_per_first_fetcher", "inf")
            .unwrap();
        config.validate().unwrap();
        cfg.viewers_per_first_fetcher = config.scheduler.viewers_per_first_fetcher;
        assert_eq!(cfg.first_fetchers(10_000.0), 3.0, "growth switched off");
        config
            .set("scheduler.viewers_per_first_fetcher", "0")
            .unwrap();
        assert!(config.validate().is_err());
    }

    #[test]
    fn uploads_fan_out_wider_once_the_swarm_outgrows_its_first_fetch_budget() {
        let mut config = Config::default();
        assert_eq!(config.relay_rate_ratio(1_000.0), 1.5);
        assert_eq!(
            config.relay_rate_ratio(1_200.0),
            1.5,
            "3 first fetchers still"
        );
        assert_eq!(config.relay_rate_ratio(10_000.0), 1.0);
        config.scheduler.viewers_per_first_fetcher = f64::INFINITY;
        assert_eq!(
            config.relay_rate_ratio(10_000.0),
            1.5,
            "growth switched off"
        );
        config.upload.relay_rate_ratio_at_scale = 0.0;
        let err = config.validate().expect_err("zero rate");
        assert!(
            err.to_string().contains("relay_rate_ratio_at_scale"),
            "{err}"
        );
    }

    #[test]
    fn an_operator_sets_the_fan_out_of_a_running_swarm() {
        let mut config = Config::default();
        config.set("upload.relay_rate_ratio", "2").unwrap();
        config
            .set("upload.relay_rate_ratio_at_scale", "1.2")
            .unwrap();
        config.validate().unwrap();
        assert_eq!(config.relay_rate_ratio(100.0), 2.0);
        assert_eq!(config.relay_rate_ratio(10_000.0), 1.2);
        assert!(config.set("upload.relay_rate_ratio", "fast").is_err());
        config.set("upload.relay_rate_ratio", "-1").unwrap();
        assert!(config.validate().is_err(), "a negative rate is refused");
    }

    #[test]
    fn swap_and_exploration_knobs_are_remote_keys() {
        let mut config = Config::default();
        assert!(!config.swap.enabled, "swaps are opt-in");
        config.set("swap.enabled", "true").unwrap();
        config.set("swap.threshold", "0.5").unwrap();
        config.set("swap.interval_ms", "2000").unwrap();
        config.set("swap.lock_ms", "6000").unwrap();
        config.set("swap.anchors", "3").unwrap();
        config.set("links.explore", "0.05").unwrap();
        config.validate().unwrap();
        assert!(config.swap.enabled);
        assert_eq!(config.swap.threshold, 0.5);
        assert_eq!(config.swap.interval, Duration::from_secs(2));
        assert_eq!(config.swap.lock, Duration::from_secs(6));
        assert_eq!(config.swap.anchors, 3);
        assert_eq!(config.links.explore, 0.05);
        for (key, bad) in [
            ("links.explore", "1.5"),
            ("swap.threshold", "-1"),
            ("swap.lock_ms", "0"),
        ] {
            let mut c = config.clone();
            c.set(key, bad).unwrap();
            assert!(c.validate().is_err(), "{key} = {bad} passed validation");
        }
    }
}
