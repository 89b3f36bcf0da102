//! Upload deficit: who fetches new segments from the CDN at once when the swarm's uplinks
//! together carry less than the stream.
//!
//! Then at least the missing share of every segment comes from the CDN whatever the swarm
//! does. Fetched at the playback deadline, such a copy feeds only its fetcher; fetched as soon
//! as the segment is listed, by the peers with the fastest uplinks, it roots the relay trees
//! that carry the rest while there is still time to relay. So in a starved swarm a node fetches
//! every segment from the CDN at once, whoever announced it already, when its uplink ranks
//! within the deficit's share at the top of its neighbourhood. A
//! swarm whose uplinks carry the stream has no deficit and keeps its small first-fetch budget.

/// The share of the stream a neighbourhood's uplinks cannot carry: 0 when they carry it all,
/// or when a rate is unknown. `mine` and `neighbours` are upload rates in bit/s (the
/// neighbours' as they reported them; unknown ones left out), `media_bps` the stream's rate.
pub(crate) fn deficit(mine: f64, neighbours: &[f64], media_bps: f64) -> f64 {
    if media_bps <= 0.0 || mine <= 0.0 || neighbours.is_empty() {
        return 0.0;
    }
    let mean = (mine + neighbours.iter().sum::<f64>()) / (neighbours.len() as f64 + 1.0);
    (1.0 - mean / media_bps).clamp(0.0, 1.0)
}

/// Whether this node covers part of the upload deficit: its uplink ranks within the deficit's
/// share at the top of its neighbourhood (arguments as for [`deficit`]).
pub(crate) fn covers_deficit(mine: f64, neighbours: &[f64], media_bps: f64) -> bool {
    let deficit = deficit(mine, neighbours, media_bps);
    let rank = neighbours.iter().filter(|&&r| r < mine).count() as f64 / neighbours.len() as f64;
    deficit > 0.0 && rank >= 1.0 - deficit
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEDIA: f64 = 4e6;

    #[test]
    fn in_a_starved_swarm_the_fastest_uplinks_fetch_early() {
        // Mean uplink 0.55 of the stream: a deficit of 45 %.
        let hood = [0.8e6, 1.2e6, 1.6e6, 2.0e6, 2.4e6, 2.8e6, 3.2e6];
        assert!(covers_deficit(3.6e6, &hood, MEDIA), "fastest of eight");
        assert!(covers_deficit(2.6e6, &hood, MEDIA), "above five of seven");
        assert!(!covers_deficit(1.0e6, &hood, MEDIA), "slow uplinks wait");
    }

    #[test]
    fn a_swarm_whose_uplinks_carry_the_stream_has_no_deficit() {
        let hood = [6e6, 8e6, 10e6, 20e6];
        assert!(!covers_deficit(40e6, &hood, MEDIA));
        // Slower than the stream, but among neighbours that more than make up for it.
        assert!(!covers_deficit(3e6, &[2e6, 9e6, 9e6], MEDIA));
    }

    #[test]
    fn the_deficit_is_the_share_the_neighbourhood_cannot_carry() {
        let hood = [1e6, 2e6, 3e6];
        assert!(
            (deficit(2e6, &hood, MEDIA) - 0.5).abs() < 1e-9,
            "mean 2 of 4 Mb/s"
        );
        assert_eq!(deficit(2e6, &[6e6, 8e6, 10e6], MEDIA), 0.0);
        assert_eq!(deficit(0.0, &hood, MEDIA), 0.0, "own uplink unknown");
    }

    #[test]
    fn nothing_measured_means_no_early_fetch() {
        assert!(!covers_deficit(0.0, &[1e6], MEDIA), "own uplink unknown");
        assert!(!covers_deficit(3e6, &[], MEDIA), "no neighbour reported");
        assert!(!covers_deficit(3e6, &[1e6], 0.0), "media rate unknown");
    }
}
