//! Network coordinates: Vivaldi (Dabek et al., SIGCOMM 2004) with height vectors.
//!
//! Each node keeps a point on a plane plus a height (its access link), moved a little towards
//! or away from each peer it measures so that distances come to predict round-trip times. A node
//! can then estimate its RTT to a peer it never measured from that peer's coordinate, which is
//! what lets a swap proposal prefer a near stranger to a far neighbour. The samples fed in
//! should be propagation delay (the minimum RTT seen on a connection), not RTTs inflated by
//! queues.

/// A node's coordinate, in microseconds of round-trip delay: integers, so wire
/// messages stay comparable and hashable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Coord {
    /// Plane position, µs.
    pub x: i32,
    /// Plane position, µs.
    pub y: i32,
    /// Height (the access link's share of every RTT), µs, never negative.
    pub height: i32,
}

impl Coord {
    /// The RTT these coordinates predict between two nodes.
    pub fn rtt_us(&self, other: &Self) -> f32 {
        let (dx, dy) = ((self.x - other.x) as f32, (self.y - other.y) as f32);
        dx.hypot(dy) + (self.height + other.height) as f32
    }
}

/// A coordinate with the node's confidence in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Position {
    /// Where the node thinks it is.
    pub coord: Coord,
    /// Its relative error, ‰ (1000: no idea yet).
    pub error_permille: u16,
}

impl Default for Position {
    fn default() -> Self {
        Self {
            coord: Coord::default(),
            error_permille: 1000,
        }
    }
}

/// Gain of the error estimate (the paper's `ce`).
const ERROR_GAIN: f32 = 0.25;
/// Gain of each move (the paper's `cc`).
const MOVE_GAIN: f32 = 0.25;
/// The lowest height, µs: a node is never closer than this to anyone.
const MIN_HEIGHT: f32 = 100.0;
/// Error is never claimed better than this (keeps weights finite).
const MIN_ERROR: f32 = 0.01;

/// This node's coordinate, learnt from RTT samples.
#[derive(Clone, Debug, PartialEq)]
pub struct Vivaldi {
    x: f32,
    y: f32,
    height: f32,
    error: f32,
    /// Where a sample pushes when both nodes sit on the same point (derived from the node's
    /// id, so two fresh nodes push apart).
    tie: (f32, f32),
}

impl Vivaldi {
    /// A node with no samples yet; `tie_seed` picks the direction it moves when it coincides
    /// with a peer.
    pub fn new(tie_seed: u64) -> Self {
        let angle = (tie_seed % 3600) as f32 / 3600.0 * std::f32::consts::TAU;
        Self {
            x: 0.0,
            y: 0.0,
            height: MIN_HEIGHT,
            error: 1.0,
            tie: (angle.cos(), angle.sin()),
        }
    }

    /// Our position, as told to peers.
    pub fn position(&self) -> Position {
        Position {
            coord: Coord {
                x: self.x as i32,
                y: self.y as i32,
                height: self.height as i32,
            },
            error_permille: (self.error * 1000.0).clamp(0.0, 1000.0) as u16,
        }
    }

    /// The RTT our coordinate predicts to `other`, µs.
    pub fn rtt_us(&self, other: &Coord) -> f32 {
        self.position().coord.rtt_us(other)
    }

    /// One RTT sample to a peer at `theirs`: move so that our distance to it explains `rtt_us`.
    pub fn observe(&mut self, rtt_us: f32, theirs: Position) {
        if !(rtt_us.is_finite() && rtt_us > 0.0) {
            return;
        }
        let their_error = (f32::from(theirs.error_permille) / 1000.0).max(MIN_ERROR);
        let other = theirs.coord;
        let (dx, dy) = (self.x - other.x as f32, self.y - other.y as f32);
        let plane = dx.hypot(dy);
        let predicted = plane + self.height + other.height as f32;
        let weight = self.error / (self.error + their_error);
        let relative = (predicted - rtt_us).abs() / rtt_us;
        self.error = (relative * ERROR_GAIN * weight + self.error * (1.0 - ERROR_GAIN * weight))
            .clamp(MIN_ERROR, 1.0);
        let force = MOVE_GAIN * weight * (rtt_us - predicted);
        let (ux, uy) = if plane > 1.0 {
            (dx / plane, dy / plane)
        } else {
            self.tie
        };
        self.x += force * ux;
        self.y += force * uy;
        // The heights take their share of the push, in proportion to their part of the
        // predicted distance (as Serf's implementation of the paper does).
        let heights = self.height + other.height as f32;
        self.height = (self.height + force * heights / predicted.max(1.0)).max(MIN_HEIGHT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nodes on a plane with access links: the true RTT is distance plus both accesses.
    fn truth(a: (f32, f32, f32), b: (f32, f32, f32)) -> f32 {
        (a.0 - b.0).hypot(a.1 - b.1) + a.2 + b.2
    }

    #[test]
    fn coordinates_come_to_predict_rtts() {
        // 30 nodes, 0–160 ms apart plus 2–40 ms of access; each measures random others.
        let mut seed = 7u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as f32 / (1u64 << 31) as f32
        };
        let places: Vec<_> = (0..30)
            .map(|_| {
                (
                    next() * 113_000.0,
                    next() * 113_000.0,
                    1000.0 + next() * 19_000.0,
                )
            })
            .collect();
        let mut nodes: Vec<_> = (0..30).map(|i| Vivaldi::new(i as u64 * 977)).collect();
        for _ in 0..3000 {
            let (i, j) = ((next() * 30.0) as usize % 30, (next() * 30.0) as usize % 30);
            if i != j {
                let theirs = nodes[j].position();
                nodes[i].observe(truth(places[i], places[j]), theirs);
            }
        }
        let mut errors = Vec::new();
        for i in 0..30 {
            for j in 0..30 {
                if i != j {
                    let real = truth(places[i], places[j]);
                    let guess = nodes[i].rtt_us(&nodes[j].position().coord);
                    errors.push((guess - real).abs() / real);
                }
            }
        }
        errors.sort_by(f32::total_cmp);
        let median = errors[errors.len() / 2];
        assert!(median < 0.08, "median relative error {median}");
        // And the nodes know roughly how good they are.
        let claimed: f32 = (nodes.iter())
            .map(|n| f32::from(n.position().error_permille) / 1000.0)
            .sum::<f32>()
            / 30.0;
        assert!(claimed < 0.15, "mean claimed error {claimed}");
    }

    #[test]
    fn nonsense_samples_are_ignored() {
        let mut v = Vivaldi::new(1);
        let before = v.clone();
        for rtt in [0.0, -5.0, f32::NAN, f32::INFINITY] {
            v.observe(rtt, Position::default());
        }
        assert_eq!(v, before);
    }
}
