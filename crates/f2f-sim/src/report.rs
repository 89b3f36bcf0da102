//! What a run measured: the figures of DESIGN.md §4, as a table and as JSON.

use std::fmt::Write as _;

use serde::Serialize;

/// Mean and percentiles of a per-viewer figure.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Viewers with a value.
    pub count: usize,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// Largest value.
    pub max: f64,
}

impl Summary {
    /// Summarises `values` (any order).
    pub fn of(mut values: Vec<f64>) -> Self {
        if values.is_empty() {
            return Self::default();
        }
        values.sort_by(f64::total_cmp);
        let pct = |p: f64| values[((values.len() - 1) as f64 * p).round() as usize];
        Self {
            count: values.len(),
            mean: values.iter().sum::<f64>() / values.len() as f64,
            p50: pct(0.5),
            p95: pct(0.95),
            max: values[values.len() - 1],
        }
    }
}

/// One run of a scenario (with P2P, or the CDN-only baseline).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RunReport {
    /// `p2p` or `cdn-only`.
    pub mode: String,
    /// Viewers that joined.
    pub viewers: usize,
    /// P2P bytes / all media bytes received.
    pub offload: f64,
    /// Stalled time / (played + stalled time), over all viewers.
    pub rebuffer_ratio: f64,
    /// Stall events.
    pub stalls: usize,
    /// Join to first frame, seconds.
    pub startup_s: Summary,
    /// Join to first byte from a peer, seconds (viewers that received any).
    pub first_p2p_byte_s: Summary,
    /// Per segment delivered to a player: seconds from its publication at the origin (the
    /// player's playlist refresh included). How fast the swarm spreads a new segment, next to
    /// the CDN-only baseline.
    pub ready_after_publish_s: Summary,
    /// Per-viewer mean distance behind the live point, seconds.
    pub live_distance_s: Summary,
    /// CDN egress per bucket, Mbit/s.
    pub cdn_egress_mbps: Vec<f64>,
    /// Width of an egress bucket, seconds.
    pub egress_bucket_s: f64,
    /// Media bytes from the CDN.
    pub cdn_bytes: u64,
    /// Media bytes between peers.
    pub p2p_bytes: u64,
    /// CDN fetches per published segment (first fetchers, deadline fetches and fallbacks).
    pub cdn_fetches_per_segment: f64,
    /// The same over the steady state: segments published from the end of the join window
    /// (and 10 s of settling) on, the fetches made meanwhile. Without the start-up of a whole
    /// audience at once, this is what an audience of that size costs the CDN per segment.
    pub steady_cdn_fetches: Option<CdnFetches>,
    /// CDN fetches started as a first fetcher, per published segment.
    pub first_fetches_per_segment: f64,
    /// CDN fetches forced by a playback deadline, per published segment.
    pub deadline_fetches_per_segment: f64,
    /// CDN fetches of what a failed peer transfer left, per published segment.
    pub fallback_fetches_per_segment: f64,
    /// Peer transfers abandoned for another source.
    pub p2p_fallbacks: u64,
    /// Peer transfers (segments or ranges) that completed.
    pub p2p_transfers: u64,
    /// Mean throughput per completed peer transfer, Mbit/s: the bytes after its first piece
    /// over the time since that piece (a range that came in one piece: from the request).
    pub p2p_transfer_mbps: f64,
    /// Of those, transfers from a peer still receiving the segment (cut-through relays).
    pub p2p_relayed_transfers: u64,
    /// Their mean throughput, Mbit/s, measured as `p2p_transfer_mbps`.
    pub p2p_relayed_mbps: f64,
    /// Chunk loss: the share of peer transfers abandoned for another source (no first byte
    /// in time, stalled, too slow for the deadline, cut off with the peer's connection or
    /// data link), `p2p_fallbacks / (p2p_transfers + p2p_fallbacks)`.
    pub chunk_loss: f64,
    /// The same, by reason (`NoFirstByte`, `Stalled`, `TooSlow`, `PeerLost`).
    pub fallbacks_by_reason: std::collections::BTreeMap<String, u64>,
    /// Requests peers answered with `Absent` (busy, or no longer held).
    pub p2p_refused: u64,
    /// Requests holders began serving at once.
    pub uploads_started: u64,
    /// Requests holders queued behind busy slots.
    pub uploads_queued: u64,
    /// Of those, withdrawn before a slot came free.
    pub uploads_queue_withdrawn: u64,
    /// Requesters holders told `Busy`.
    pub uploads_turned_away: u64,
    /// Pieces and refusals that answered a request cancelled or repeated since (dropped).
    pub stale_answers: u64,
    /// Frames from peers that did not decode or broke the protocol (each disconnects the
    /// sender).
    pub peer_errors: u64,
    /// Loads that failed outright.
    pub load_failures: u64,
    /// Segments delivered to players.
    pub delivered: u64,
    /// Delivered segments whose bytes differ from the origin's.
    pub corrupt_deliveries: u64,
    /// Rebuffer ratio after the mass-leave event, over viewers that stayed (if there was one).
    pub stayers_rebuffer_after_event: Option<f64>,
    /// The data-link graph and the swaps that refined it.
    pub topology: TopologyReport,
    /// Simulator events processed.
    pub events: u64,
    /// What attackers did and what it cost them (scenarios with attackers only).
    pub attacks: Option<AttackReport>,
    /// Delivery receipts uploaders reported, as the control plane checks them.
    pub receipts: ReceiptReport,
}

/// CDN fetches per published segment, by why they were made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct CdnFetches {
    /// Every fetch.
    pub all: f64,
    /// As a first fetcher (or a rescue when no neighbour announced the segment).
    pub first: f64,
    /// Forced by a playback deadline.
    pub deadline: f64,
    /// Of what a failed peer transfer left.
    pub fallback: f64,
}

/// The data-link graph, sampled every 10 s over viewers joined at least 10 s before.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TopologyReport {
    /// Samples taken.
    pub samples: u32,
    /// Mean over viewers of their data neighbours' mean RTT, ms, averaged over the samples
    /// after the join window (steady state).
    pub neighbour_rtt_ms: f64,
    /// Most connected components among the settled viewers in one sample (1: connected
    /// throughout; links through newer viewers count).
    pub max_components: usize,
    /// Most viewers without any data neighbour in one sample.
    pub max_isolated: usize,
    /// Median relative error of the RTT network coordinates predict between two viewers, at
    /// the last sample (0.2: off by a fifth).
    pub coordinate_error: f64,
    /// Swaps proposed, over all viewers.
    pub swaps_proposed: u64,
    /// Swaps committed.
    pub swaps_committed: u64,
    /// Swaps aborted.
    pub swaps_aborted: u64,
    /// Old links dropped for a swap's new one (each committed swap drops up to four ends).
    pub swaps_rewired: u64,
}

/// Delivery receipts reported during a run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ReceiptReport {
    /// Bundles reported (one per uploader per window).
    pub bundles: u64,
    /// Bundles whose verification failed.
    pub refused: u64,
    /// Bytes receivers vouched for in verified bundles (windows still open at the end of the
    /// run are not reported yet).
    pub vouched_bytes: u64,
}

/// Attackers and the swarm's answer to them.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct AttackReport {
    /// Viewers that corrupt what they upload.
    pub corrupt_peers: u64,
    /// Viewers that lie in their announcements.
    pub liar_peers: u64,
    /// Viewers with forged certificates.
    pub forged_peers: u64,
    /// Pieces attackers corrupted on their way out.
    pub corrupt_pieces_sent: u64,
    /// Their bytes (wasted uplink and downlink).
    pub corrupt_bytes_sent: u64,
    /// Corrupt pieces receivers caught (each got its sender banned by that receiver).
    pub corrupt_pieces_caught: u64,
    /// Bans issued.
    pub bans: u64,
    /// Attackers that sent corrupted bytes at all.
    pub bad_senders: u64,
    /// ... of which banned by a receiver.
    pub bad_senders_banned: u64,
    /// Handshakes refused from forged identities.
    pub forged_refused: u64,
    /// Viewers in colluding attester groups.
    pub colluder_peers: u64,
    /// Attesters receivers caught vouching for a hash the CDN's bytes do not have.
    pub false_attesters_caught: u64,
    /// ... of which honest viewers (wrongly accused: must be 0).
    pub honest_accused: u64,
    /// CDN spot checks of segments taken on attested hashes.
    pub spot_checks: u64,
}

/// Everything `frog2frog sim` reports.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// Seed.
    pub seed: u64,
    /// Simulated seconds.
    pub duration_s: f64,
    /// Stream bitrate, kbit/s.
    pub bitrate_kbps: f64,
    /// Offload ceiling from upload capacity: min(1 − 1/N, Σ uplink / (N · bitrate)).
    pub upload_bound: f64,
    /// The run with P2P.
    pub p2p: RunReport,
    /// The same scenario without its attackers (scenarios with attackers only).
    pub honest: Option<RunReport>,
    /// The same scenario, CDN only.
    pub baseline: Option<RunReport>,
}

impl Report {
    /// Deterministic JSON (same seed, same bytes).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("report serialises")
    }

    /// A side-by-side table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "scenario {} · seed {} · {:.0} s · {:.0} kbit/s · upload bound {:.1} %",
            self.scenario,
            self.seed,
            self.duration_s,
            self.bitrate_kbps,
            self.upload_bound * 100.0
        );
        let runs: Vec<&RunReport> = std::iter::once(&self.p2p)
            .chain(self.honest.as_ref())
            .chain(self.baseline.as_ref())
            .collect();
        let _ = write!(s, "{:<34}", "");
        for r in &runs {
            let _ = write!(s, "{:>16}", r.mode);
        }
        s.push('\n');
        let mut row = |name: &str, f: &dyn Fn(&RunReport) -> String| {
            let _ = write!(s, "{name:<34}");
            for r in &runs {
                let _ = write!(s, "{:>16}", f(r));
            }
            s.push('\n');
        };
        row("viewers", &|r| r.viewers.to_string());
        row("offload", &|r| format!("{:.2} %", r.offload * 100.0));
        row("rebuffer ratio", &|r| {
            format!("{:.3} %", r.rebuffer_ratio * 100.0)
        });
        row("stalls", &|r| r.stalls.to_string());
        row("startup mean / p95 (s)", &|r| {
            format!("{:.2} / {:.2}", r.startup_s.mean, r.startup_s.p95)
        });
        row("first P2P byte mean / p95 (s)", &|r| {
            if r.first_p2p_byte_s.count == 0 {
                "-".into()
            } else {
                format!(
                    "{:.2} / {:.2}",
                    r.first_p2p_byte_s.mean, r.first_p2p_byte_s.p95
                )
            }
        });
        row("ready after publish mean / p95 (s)", &|r| {
            format!(
                "{:.2} / {:.2}",
                r.ready_after_publish_s.mean, r.ready_after_publish_s.p95
            )
        });
        row("live distance mean / p95 (s)", &|r| {
            format!(
                "{:.2} / {:.2}",
                r.live_distance_s.mean, r.live_distance_s.p95
            )
        });
        row("CDN egress peak (Mbit/s)", &|r| {
            format!(
                "{:.1}",
                r.cdn_egress_mbps.iter().copied().fold(0.0, f64::max)
            )
        });
        row("CDN fetches per segment", &|r| {
            format!("{:.2}", r.cdn_fetches_per_segment)
        });
        row("  of which first fetches", &|r| {
            format!("{:.2}", r.first_fetches_per_segment)
        });
        row("  of which deadline fetches", &|r| {
            format!("{:.2}", r.deadline_fetches_per_segment)
        });
        row("  of which fallbacks", &|r| {
            format!("{:.2}", r.fallback_fetches_per_segment)
        });
        let steady = |part: fn(&CdnFetches) -> f64| {
            move |r: &RunReport| {
                (r.steady_cdn_fetches.as_ref()).map_or("-".into(), |f| format!("{:.2}", part(f)))
            }
        };
        row("  after the join window (steady)", &steady(|f| f.all));
        row("    of which first fetches", &steady(|f| f.first));
        row("    of which deadline fetches", &steady(|f| f.deadline));
        row("    of which fallbacks", &steady(|f| f.fallback));
        row("P2P transfers / mean Mbit/s", &|r| {
            format!("{} / {:.2}", r.p2p_transfers, r.p2p_transfer_mbps)
        });
        row("  of which from relays (receiving)", &|r| {
            format!("{} / {:.2}", r.p2p_relayed_transfers, r.p2p_relayed_mbps)
        });
        row("chunk loss", &|r| format!("{:.2} %", r.chunk_loss * 100.0));
        row("P2P fallbacks", &|r| r.p2p_fallbacks.to_string());
        row("  no first byte / stalled", &|r| {
            let n = |k: &str| r.fallbacks_by_reason.get(k).copied().unwrap_or(0);
            format!("{} / {}", n("NoFirstByte"), n("Stalled"))
        });
        row("  too slow / peer lost", &|r| {
            let n = |k: &str| r.fallbacks_by_reason.get(k).copied().unwrap_or(0);
            format!("{} / {}", n("TooSlow"), n("PeerLost"))
        });
        row("requests refused (busy/absent)", &|r| {
            r.p2p_refused.to_string()
        });
        row("uploads at once / queued", &|r| {
            format!("{} / {}", r.uploads_started, r.uploads_queued)
        });
        row("  queued, withdrawn unstarted", &|r| {
            r.uploads_queue_withdrawn.to_string()
        });
        row("uploads turned away (busy)", &|r| {
            r.uploads_turned_away.to_string()
        });
        row("stale answers / peer errors", &|r| {
            format!("{} / {}", r.stale_answers, r.peer_errors)
        });
        row("neighbour RTT (ms)", &|r| {
            format!("{:.1}", r.topology.neighbour_rtt_ms)
        });
        row("coordinate RTT error (median)", &|r| {
            format!("{:.1} %", r.topology.coordinate_error * 100.0)
        });
        row("components / isolated (max)", &|r| {
            format!(
                "{} / {}",
                r.topology.max_components, r.topology.max_isolated
            )
        });
        row("swaps proposed / committed", &|r| {
            format!(
                "{} / {}",
                r.topology.swaps_proposed, r.topology.swaps_committed
            )
        });
        row("load failures", &|r| r.load_failures.to_string());
        row("corrupt deliveries", &|r| r.corrupt_deliveries.to_string());
        row("receipt bundles / refused", &|r| {
            format!("{} / {}", r.receipts.bundles, r.receipts.refused)
        });
        row("bytes vouched by receipts (MB)", &|r| {
            format!("{:.1}", r.receipts.vouched_bytes as f64 / 1e6)
        });
        if let Some(a) = &self.p2p.attacks {
            let both = |x: u64, y: u64| format!("{x} / {y}");
            row("attackers corrupt/liar/forged/colluding", &|r| {
                r.attacks.as_ref().map_or("-".into(), |_| {
                    format!(
                        "{}/{}/{}/{}",
                        a.corrupt_peers, a.liar_peers, a.forged_peers, a.colluder_peers
                    )
                })
            });
            let attacked = |r: &RunReport, f: &dyn Fn(&AttackReport) -> String| {
                r.attacks.as_ref().map_or("-".into(), f)
            };
            row("corrupt pieces sent / caught", &|r| {
                attacked(r, &|a| both(a.corrupt_pieces_sent, a.corrupt_pieces_caught))
            });
            row("corrupt bytes sent (MB)", &|r| {
                attacked(r, &|a| format!("{:.1}", a.corrupt_bytes_sent as f64 / 1e6))
            });
            row("bans issued", &|r| attacked(r, &|a| a.bans.to_string()));
            row("bad senders / banned", &|r| {
                attacked(r, &|a| both(a.bad_senders, a.bad_senders_banned))
            });
            row("forged handshakes refused", &|r| {
                attacked(r, &|a| a.forged_refused.to_string())
            });
            row("spot checks / false attesters caught", &|r| {
                attacked(r, &|a| both(a.spot_checks, a.false_attesters_caught))
            });
            row("honest viewers accused", &|r| {
                attacked(r, &|a| a.honest_accused.to_string())
            });
        }
        if runs
            .iter()
            .any(|r| r.stayers_rebuffer_after_event.is_some())
        {
            row("stayers' rebuffer after event", &|r| {
                r.stayers_rebuffer_after_event
                    .map_or("-".into(), |v| format!("{:.3} %", v * 100.0))
            });
        }
        let _ = writeln!(
            s,
            "CDN egress over time (Mbit/s per {:.0} s):",
            self.p2p.egress_bucket_s
        );
        for r in &runs {
            let series: Vec<String> = r
                .cdn_egress_mbps
                .iter()
                .map(|v| format!("{v:.0}"))
                .collect();
            let _ = writeln!(s, "  {:<9} {}", r.mode, series.join(" "));
        }
        s
    }
}

/// One row per seed of the same scenario, then mean, min and max: what a figure quoted "over
/// five seeds" means.
pub fn seed_table(reports: &[Report]) -> String {
    let mut s = String::new();
    let Some(first) = reports.first() else {
        return s;
    };
    let _ = writeln!(
        s,
        "scenario {} · {} seeds · {:.0} s · {:.0} kbit/s",
        first.scenario,
        reports.len(),
        first.duration_s,
        first.bitrate_kbps
    );
    let _ = writeln!(
        s,
        "{:>6} {:>9} {:>9} {:>12} {:>12} {:>10} {:>10} {:>9} {:>9} {:>9}",
        "seed",
        "offload",
        "bound",
        "rebuf p2p",
        "rebuf cdn",
        "live p2p",
        "live cdn",
        "cdn/seg",
        "steady",
        "stayers"
    );
    let pct = |v: f64| format!("{:.2} %", v * 100.0);
    let mut offloads = Vec::new();
    for r in reports {
        let b = r.baseline.as_ref();
        offloads.push(r.p2p.offload);
        let _ = writeln!(
            s,
            "{:>6} {:>9} {:>9} {:>12} {:>12} {:>10.3} {:>10} {:>9.2} {:>9} {:>9}",
            r.seed,
            pct(r.p2p.offload),
            pct(r.upload_bound),
            format!("{:.4} %", r.p2p.rebuffer_ratio * 100.0),
            b.map_or("-".into(), |b| format!("{:.4} %", b.rebuffer_ratio * 100.0)),
            r.p2p.live_distance_s.mean,
            b.map_or("-".into(), |b| format!("{:.3}", b.live_distance_s.mean)),
            r.p2p.cdn_fetches_per_segment,
            r.p2p
                .steady_cdn_fetches
                .map_or("-".into(), |f| format!("{:.2}", f.all)),
            r.p2p
                .stayers_rebuffer_after_event
                .map_or("-".into(), |v| format!("{:.4} %", v * 100.0)),
        );
    }
    let summary = Summary::of(offloads);
    let min = reports
        .iter()
        .map(|r| r.p2p.offload)
        .fold(f64::INFINITY, f64::min);
    let _ = writeln!(
        s,
        "offload mean {} · min {} · max {}",
        pct(summary.mean),
        pct(min),
        pct(summary.max)
    );
    s
}

/// Peer-selection rules side by side on the same scenario and seeds: per rule, the mean and
/// the range over the seeds of what selection is judged by.
pub fn ranker_table(runs: &[(String, Vec<Report>)]) -> String {
    let mut s = String::new();
    let Some(first) = runs.first().and_then(|(_, r)| r.first()) else {
        return s;
    };
    let seeds = runs[0].1.len();
    let _ = writeln!(
        s,
        "scenario {} · {} viewers · {seeds} seeds from {} · {:.0} s · mean (min–max) over seeds",
        first.scenario, first.p2p.viewers, first.seed, first.duration_s
    );
    let _ = writeln!(
        s,
        "{:<22} {:>28} {:>26} {:>26} {:>26} {:>26} {:>11} {:>10}",
        "rule",
        "throughput/transfer Mbit/s",
        "chunk loss %",
        "offload %",
        "rebuffer %",
        "neighbour RTT ms",
        "components",
        "swaps"
    );
    let spread = |reports: &[Report], f: &dyn Fn(&RunReport) -> f64, digits: usize| {
        let values: Vec<f64> = reports.iter().map(|r| f(&r.p2p)).collect();
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let summary = Summary::of(values);
        format!(
            "{:.digits$} ({:.digits$}–{:.digits$})",
            summary.mean, min, summary.max
        )
    };
    for (name, reports) in runs {
        let _ = writeln!(
            s,
            "{name:<22} {:>28} {:>26} {:>26} {:>26} {:>26} {:>11} {:>10}",
            spread(reports, &|r| r.p2p_transfer_mbps, 2),
            spread(reports, &|r| r.chunk_loss * 100.0, 2),
            spread(reports, &|r| r.offload * 100.0, 2),
            spread(reports, &|r| r.rebuffer_ratio * 100.0, 3),
            spread(reports, &|r| r.topology.neighbour_rtt_ms, 1),
            reports
                .iter()
                .map(|r| r.p2p.topology.max_components)
                .max()
                .unwrap_or(0),
            reports
                .iter()
                .map(|r| r.p2p.topology.swaps_committed)
                .sum::<u64>(),
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let s = Summary::of((1..=100).map(f64::from).collect());
        assert_eq!(s.count, 100);
        assert!((s.mean - 50.5).abs() < 1e-9);
        assert_eq!(s.p50, 51.0);
        assert_eq!(s.p95, 95.0);
        assert_eq!(s.max, 100.0);
        assert_eq!(Summary::of(vec![]), Summary::default());
    }
}
