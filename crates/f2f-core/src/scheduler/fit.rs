//! Offline fitting of the learned peer model's starting weights from recorded outcomes
//! (simulator traces; see `scripts/fit-peer-model`): ridge-regularised least squares for the log
//! throughput of delivered requests, and Newton's method (IRLS) for the logistic chance of
//! delivery. In `f64`, over exactly the features the online model computes.

use super::learned::{FEATURES, Feature, Weights, features_of};
use super::ranking::{Outcome, PeerMeasurements};

/// Ridge penalty: keeps weights of features that barely vary (or that an ablation hides) at
/// zero instead of wherever round-off puts them.
const RIDGE: f64 = 1.0;

/// Newton steps of the logistic fit (it converges in a handful).
const NEWTON_STEPS: usize = 25;

type Matrix = [[f64; FEATURES]; FEATURES];

/// Weights fitted to `samples`, the model built without `hidden` if given.
pub fn fit(samples: &[(PeerMeasurements, Outcome)], hidden: Option<Feature>) -> Weights {
    let rows: Vec<([f64; FEATURES], Outcome)> = (samples.iter())
        .map(|(m, o)| (features_of(m, hidden).map(f64::from), *o))
        .collect();
    // Log throughput, over deliveries.
    let mut xtx = ridge();
    let mut xty = [0.0; FEATURES];
    for (x, outcome) in &rows {
        if let Outcome::Delivered { bytes, elapsed } = outcome {
            let y = (Outcome::rate_bps(*bytes, *elapsed) / 1e6).max(1e-6).ln();
            add_outer(&mut xtx, x, 1.0);
            for (t, xi) in xty.iter_mut().zip(x) {
                *t += xi * y;
            }
        }
    }
    let rate = solve(xtx, xty);
    // Chance of delivery, over every outcome.
    let mut w = [0.0; FEATURES];
    for _ in 0..NEWTON_STEPS {
        let mut hessian = ridge();
        let mut gradient = w.map(|wi| -RIDGE * wi);
        for (x, outcome) in &rows {
            let p = sigmoid(dot(&w, x));
            let y = f64::from(u8::from(matches!(outcome, Outcome::Delivered { .. })));
            add_outer(&mut hessian, x, (p * (1.0 - p)).max(1e-9));
            for (g, xi) in gradient.iter_mut().zip(x) {
                *g += (y - p) * xi;
            }
        }
        let step = solve(hessian, gradient);
        for (wi, s) in w.iter_mut().zip(step) {
            *wi += s;
        }
    }
    Weights {
        on_time: w.map(|v| v as f32),
        rate: rate.map(|v| v as f32),
    }
}

fn ridge() -> Matrix {
    let mut m = [[0.0; FEATURES]; FEATURES];
    for (i, row) in m.iter_mut().enumerate() {
        row[i] = RIDGE;
    }
    m
}

fn add_outer(m: &mut Matrix, x: &[f64; FEATURES], weight: f64) {
    for (row, xi) in m.iter_mut().zip(x) {
        for (cell, xj) in row.iter_mut().zip(x) {
            *cell += weight * xi * xj;
        }
    }
}

fn dot(w: &[f64; FEATURES], x: &[f64; FEATURES]) -> f64 {
    w.iter().zip(x).map(|(w, x)| w * x).sum()
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// Solves `a · x = b` by Gaussian elimination with partial pivoting (`a` is symmetric positive
/// definite thanks to the ridge, so a pivot is never zero).
fn solve(mut a: Matrix, mut b: [f64; FEATURES]) -> [f64; FEATURES] {
    for col in 0..FEATURES {
        let pivot = (col..FEATURES)
            .max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))
            .unwrap_or(col);
        a.swap(col, pivot);
        b.swap(col, pivot);
        let (pivot_row, bp) = (a[col], b[col]);
        for (row, br) in a.iter_mut().zip(b.iter_mut()).skip(col + 1) {
            let f = row[col] / pivot_row[col];
            for (cell, p) in row.iter_mut().zip(&pivot_row).skip(col) {
                *cell -= f * p;
            }
            *br -= f * bp;
        }
    }
    let mut x = [0.0; FEATURES];
    for row in (0..FEATURES).rev() {
        let rest: f64 = (row + 1..FEATURES).map(|k| a[row][k] * x[k]).sum();
        x[row] = (b[row] - rest) / a[row][row];
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::{LearnedRanker, SourceRanker};
    use crate::time::Duration;

    /// A network where what decides an outcome is the peer's bandwidth and queue.
    fn samples() -> Vec<(PeerMeasurements, Outcome)> {
        let mut out = Vec::new();
        for i in 0..4000u32 {
            let mbps = [0.5, 2.0, 8.0, 30.0][(i % 4) as usize];
            let load = (i / 4 % 3) as u8;
            let m = PeerMeasurements {
                srtt: Some(Duration::from_millis(20 + u64::from(i % 7) * 30)),
                throughput_bps: Some(mbps * 1e6),
                load,
                completed: 10,
                ..PeerMeasurements::default()
            };
            // Slow or loaded peers miss; the rest deliver at their rate, shared by the queue.
            let fails = mbps < 1.0 || (load == 2 && i % 3 == 0);
            let outcome = if fails {
                Outcome::Failed
            } else {
                let rate = mbps * 1e6 / f64::from(load + 1);
                Outcome::Delivered {
                    bytes: 1_000_000,
                    elapsed: Duration::from_secs_f64(8e6 / rate),
                }
            };
            out.push((m, outcome));
        }
        out
    }

    #[test]
    fn fitted_weights_predict_the_outcomes_they_were_fitted_on() {
        let data = samples();
        let model = LearnedRanker::with_weights(fit(&data, None), None);
        let (slow, fast) = (&data[0].0, &data[2].0);
        assert!(model.success(slow) < 0.1, "{}", model.success(slow));
        assert!(model.success(fast) > 0.9, "{}", model.success(fast));
        // 8 Mb/s, idle: predicted within a few percent.
        let rate = model.throughput_bps(fast) / 8e6;
        assert!((rate - 1.0).abs() < 0.1, "{rate}");
        assert!(model.peer_eta(fast, 1_000_000) < model.peer_eta(slow, 1_000_000));
    }

    #[test]
    fn a_hidden_feature_gets_no_weight_beyond_the_bias() {
        let data = samples();
        let w = fit(&data, Some(Feature::Bandwidth));
        let model = LearnedRanker::with_weights(w, Some(Feature::Bandwidth));
        let busy = PeerMeasurements {
            load: 2,
            ..data[2].0
        };
        assert_eq!(model.success(&busy), model.success(&data[2].0));
    }

    #[test]
    fn the_solver_solves() {
        let mut a = ridge();
        let mut x = [0.0; FEATURES];
        for (i, xi) in x.iter_mut().enumerate() {
            *xi = i as f64 - 3.0;
            a[i][(i + 1) % FEATURES] += 0.5;
            a[(i + 1) % FEATURES][i] += 0.5;
            a[i][i] += 2.0;
        }
        let b: [f64; FEATURES] = std::array::from_fn(|r| dot(&a[r], &x));
        let got = solve(a, b);
        for (g, want) in got.iter().zip(x) {
            assert!((g - want).abs() < 1e-9, "{got:?}");
        }
    }
}
