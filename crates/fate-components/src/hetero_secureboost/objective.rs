//! The three objectives of FATE's SecureBoost (`tree_core/loss.py`): initial scores, gradients
//! and hessians, predictions and the loss. Scores are stored sample-major, `dim` values per
//! sample (one per class for `multi:ce`, else one).

use super::params::Objective;

/// The logistic function (scipy's `expit`).
pub fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn softmax_into(scores: &[f64], out: &mut [f64]) {
    let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for (o, s) in out.iter_mut().zip(scores) {
        *o = (s - max).exp();
        sum += *o;
    }
    for o in out.iter_mut() {
        *o /= sum;
    }
}

/// Initial raw scores (`n·dim`) and the regression init score: 0 for classification, the label
/// mean for `regression:l2` (FATE's `L2Loss.initialize`).
pub fn init_scores(objective: Objective, labels: &[f64], dim: usize) -> (Vec<f64>, Option<f64>) {
    match objective {
        Objective::RegressionL2 => {
            let mean = labels.iter().sum::<f64>() / labels.len().max(1) as f64;
            (vec![mean; labels.len()], Some(mean))
        }
        _ => (vec![0.0; labels.len() * dim], None),
    }
}

/// Gradients and hessians of every tree dimension: `(g[k][i], h[k][i])`.
pub fn gradients(
    objective: Objective,
    scores: &[f64],
    labels: &[f64],
    dim: usize,
) -> (Vec<Vec<f64>>, Vec<Vec<f64>>) {
    let n = labels.len();
    match objective {
        Objective::BinaryBce => {
            let p: Vec<f64> = scores.iter().map(|&s| sigmoid(s)).collect();
            let g = p.iter().zip(labels).map(|(p, y)| p - y).collect();
            let h = p.iter().map(|p| p * (1.0 - p)).collect();
            (vec![g], vec![h])
        }
        Objective::RegressionL2 => {
            let g = scores
                .iter()
                .zip(labels)
                .map(|(s, y)| 2.0 * (s - y))
                .collect();
            (vec![g], vec![vec![2.0; n]])
        }
        Objective::MultiCe => {
            let mut g = vec![vec![0.0; n]; dim];
            let mut h = vec![vec![0.0; n]; dim];
            let mut p = vec![0.0; dim];
            for i in 0..n {
                softmax_into(&scores[i * dim..(i + 1) * dim], &mut p);
                for k in 0..dim {
                    let y = if labels[i] as usize == k { 1.0 } else { 0.0 };
                    g[k][i] = p[k] - y;
                    h[k][i] = 2.0 * p[k] * (1.0 - p[k]);
                }
            }
            (g, h)
        }
    }
}

/// The prediction of one sample's raw scores: the positive-class probability (binary), the class
/// probabilities (multi) or the value (regression).
pub fn predict(objective: Objective, raw: &[f64]) -> Vec<f64> {
    match objective {
        Objective::BinaryBce => vec![sigmoid(raw[0])],
        Objective::RegressionL2 => vec![raw[0]],
        Objective::MultiCe => {
            let mut p = vec![0.0; raw.len()];
            softmax_into(raw, &mut p);
            p
        }
    }
}

/// The mean training loss (FATE's `compute_loss`), probabilities clamped away from 0 and 1.
pub fn loss(objective: Objective, scores: &[f64], labels: &[f64], dim: usize) -> f64 {
    const EPS: f64 = 1e-15;
    let n = labels.len().max(1) as f64;
    let total: f64 = match objective {
        Objective::BinaryBce => scores
            .iter()
            .zip(labels)
            .map(|(&s, &y)| {
                let p = sigmoid(s).clamp(EPS, 1.0 - EPS);
                -(y * p.ln() + (1.0 - y) * (1.0 - p).ln())
            })
            .sum(),
        Objective::RegressionL2 => scores
            .iter()
            .zip(labels)
            .map(|(s, y)| (y - s) * (y - s))
            .sum(),
        Objective::MultiCe => {
            let mut p = vec![0.0; dim];
            labels
                .iter()
                .enumerate()
                .map(|(i, &y)| {
                    softmax_into(&scores[i * dim..(i + 1) * dim], &mut p);
                    -p[y as usize].clamp(EPS, 1.0).ln()
                })
                .sum()
        }
    };
    total / n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_gradients_are_p_minus_y_and_p_one_minus_p() {
        let (g, h) = gradients(Objective::BinaryBce, &[0.0, 0.0], &[1.0, 0.0], 1);
        assert_eq!(g[0], vec![-0.5, 0.5]);
        assert_eq!(h[0], vec![0.25, 0.25]);
    }

    #[test]
    fn multi_gradients_sum_to_zero_per_sample() {
        let scores = [0.3, -1.0, 2.0];
        let (g, h) = gradients(Objective::MultiCe, &scores, &[2.0], 3);
        let sum: f64 = (0..3).map(|k| g[k][0]).sum();
        assert!(sum.abs() < 1e-12);
        assert!(g[2][0] < 0.0 && g[0][0] > 0.0);
        assert!((0..3).all(|k| h[k][0] > 0.0 && h[k][0] <= 0.5));
        let p = predict(Objective::MultiCe, &scores);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn regression_starts_at_the_mean() {
        let (s, init) = init_scores(Objective::RegressionL2, &[1.0, 2.0, 6.0], 1);
        assert_eq!(init, Some(3.0));
        assert_eq!(s, vec![3.0; 3]);
        let (g, h) = gradients(Objective::RegressionL2, &s, &[1.0, 2.0, 6.0], 1);
        assert_eq!(g[0], vec![4.0, 2.0, -6.0]);
        assert_eq!(h[0], vec![2.0; 3]);
        assert!(
            (loss(Objective::RegressionL2, &s, &[1.0, 2.0, 6.0], 1) - 14.0 / 3.0).abs() < 1e-12
        );
    }
}
