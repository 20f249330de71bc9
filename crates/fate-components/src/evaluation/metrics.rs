//! The evaluation metrics as pure functions over labels and predictions, following FATE 2.x
//! `fate/ml/evaluation/classification.py` and `regression.py` (fate-spec §4.7 "evaluation").
//!
//! Binary metrics take a [`BinaryData`]: labels 0/1 and scores sorted once by descending score,
//! as FATE's `sort_score_and_label` does. A sample is predicted positive at threshold `t` when
//! its score is strictly greater than `t` (FATE's `_ConfusionMatrix.compute`); the ROC curve and
//! AUC follow scikit-learn's `roc_curve` / `roc_auc_score` (positive when `score >= t`, ties
//! counted as half a correctly ordered pair).
//!
//! Threshold sets, as FATE chooses them:
//! - *index cuts* ([`index_cuts`]): 100 thresholds, the score at position `floor(n * c/100)` of
//!   the descending scores, `c = 0..100` (KS and the confusion matrix);
//! - *step cuts* ([`step_cuts`]): the same over the distinct scores, with `cuts = c * 0.01`
//!   (lift, gain and the precision / recall / accuracy / F-score tables).
//!
//! Nothing here panics on bad input: lengths, non-finite values and labels are checked and
//! reported as a [`MetricError`].

use serde::Serialize;
use std::collections::BTreeMap;

/// Most points a ROC curve keeps. Collinear points are dropped first, as scikit-learn's
/// `drop_intermediate` does; a longer curve is thinned to evenly spaced points (the AUC itself
/// is always computed from every score).
pub const MAX_ROC_POINTS: usize = 1000;

/// The threshold of FATE's single-value binary metrics (`BinaryMetricWithThreshold`).
pub const DEFAULT_THRESHOLD: f64 = 0.5;

/// Why a metric cannot be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetricError {
    #[error("no rows to evaluate")]
    Empty,
    #[error("{labels} labels but {predictions} predictions")]
    LengthMismatch { labels: usize, predictions: usize },
    #[error("{what} {value} is not a finite number")]
    NonFinite { what: &'static str, value: f64 },
    #[error(
        "label {value} is not binary: binary metrics need labels 0 and 1 \
         (use default_eval_setting \"multi\" or \"regression\" for other labels)"
    )]
    NotBinary { value: f64 },
    #[error("{metric} needs both classes, but every label is {label}")]
    OneClass { metric: &'static str, label: u8 },
    #[error(
        "{what} {value} is not a class id: multi-class metrics need integral labels and predictions"
    )]
    NotClass { what: &'static str, value: f64 },
}

fn check_lengths(labels: &[f64], predictions: &[f64]) -> Result<(), MetricError> {
    if labels.len() != predictions.len() {
        return Err(MetricError::LengthMismatch {
            labels: labels.len(),
            predictions: predictions.len(),
        });
    }
    if labels.is_empty() {
        return Err(MetricError::Empty);
    }
    Ok(())
}

fn check_finite(what: &'static str, values: &[f64]) -> Result<(), MetricError> {
    match values.iter().find(|v| !v.is_finite()) {
        Some(&value) => Err(MetricError::NonFinite { what, value }),
        None => Ok(()),
    }
}

/// `a / b`, or `zero` when `b` is 0 (scikit-learn's `zero_division`, FATE's imputed values).
fn ratio(a: u64, b: u64, zero: f64) -> f64 {
    if b == 0 { zero } else { a as f64 / b as f64 }
}

// ---------------------------------------------------------------------------------------------
// Binary classification
// ---------------------------------------------------------------------------------------------

/// Counts of one threshold's confusion matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Confusion {
    pub tp: u64,
    pub fp: u64,
    #[serde(rename = "fn")]
    pub fn_: u64,
    pub tn: u64,
}

/// Binary labels and scores, sorted by descending score.
#[derive(Debug, Clone)]
pub struct BinaryData {
    /// `(score, is_positive)`, descending by score.
    sorted: Vec<(f64, bool)>,
    /// `pos_prefix[k]`: positives among the first `k` sorted samples.
    pos_prefix: Vec<u64>,
    n_pos: u64,
    n_neg: u64,
}

impl BinaryData {
    /// Checks that labels are 0 or 1 and scores finite, and sorts.
    pub fn new(labels: &[f64], scores: &[f64]) -> Result<Self, MetricError> {
        check_lengths(labels, scores)?;
        check_finite("score", scores)?;
        let mut sorted = Vec::with_capacity(labels.len());
        for (&label, &score) in labels.iter().zip(scores) {
            let positive = if label == 1.0 {
                true
            } else if label == 0.0 {
                false
            } else {
                return Err(MetricError::NotBinary { value: label });
            };
            sorted.push((score, positive));
        }
        sorted.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut pos_prefix = Vec::with_capacity(sorted.len() + 1);
        pos_prefix.push(0u64);
        for (_, positive) in &sorted {
            let last = pos_prefix.last().copied().unwrap_or(0);
            pos_prefix.push(last + u64::from(*positive));
        }
        let n_pos = pos_prefix.last().copied().unwrap_or(0);
        let n_neg = sorted.len() as u64 - n_pos;
        Ok(BinaryData {
            sorted,
            pos_prefix,
            n_pos,
            n_neg,
        })
    }

    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    pub fn positives(&self) -> u64 {
        self.n_pos
    }

    pub fn negatives(&self) -> u64 {
        self.n_neg
    }

    /// Scores, descending.
    pub fn sorted_scores(&self) -> impl Iterator<Item = f64> + '_ {
        self.sorted.iter().map(|(s, _)| *s)
    }

    fn require_both_classes(&self, metric: &'static str) -> Result<(), MetricError> {
        if self.n_pos == 0 {
            return Err(MetricError::OneClass { metric, label: 0 });
        }
        if self.n_neg == 0 {
            return Err(MetricError::OneClass { metric, label: 1 });
        }
        Ok(())
    }

    /// The confusion matrix when `score > threshold` predicts positive.
    pub fn confusion(&self, threshold: f64) -> Confusion {
        let k = self.sorted.partition_point(|(s, _)| *s > threshold);
        let tp = self.pos_prefix[k];
        let fp = k as u64 - tp;
        Confusion {
            tp,
            fp,
            fn_: self.n_pos - tp,
            tn: self.n_neg - fp,
        }
    }

    /// `(positives, negatives)` with a score at least each distinct score, descending: the
    /// points of the ROC curve before the origin.
    fn cumulative_by_distinct_score(&self) -> Vec<(f64, u64, u64)> {
        let mut out: Vec<(f64, u64, u64)> = Vec::new();
        for (i, (score, _)) in self.sorted.iter().enumerate() {
            let k = i + 1;
            let tp = self.pos_prefix[k];
            let point = (*score, tp, k as u64 - tp);
            match out.last_mut() {
                Some(last) if last.0 == *score => *last = point,
                _ => out.push(point),
            }
        }
        out
    }
}

/// Area under the ROC curve, as scikit-learn's `roc_auc_score`: the share of (positive,
/// negative) pairs ordered correctly, a tie counting one half. Computed exactly in integers.
pub fn auc(data: &BinaryData) -> Result<f64, MetricError> {
    data.require_both_classes("auc")?;
    // Twice the trapezoid area in count units: sum of dfp * (tp_before + tp_after).
    let (mut area2, mut tp_prev, mut fp_prev) = (0u128, 0u64, 0u64);
    for (_, tp, fp) in data.cumulative_by_distinct_score() {
        area2 += u128::from(fp - fp_prev) * u128::from(tp_prev + tp);
        (tp_prev, fp_prev) = (tp, fp);
    }
    Ok(area2 as f64 / (2 * u128::from(data.n_pos) * u128::from(data.n_neg)) as f64)
}

/// One point of the ROC curve: `score >= threshold` predicts positive. The origin's threshold
/// is `None` (above every score; scikit-learn's `inf`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RocPoint {
    pub threshold: Option<f64>,
    pub tpr: f64,
    pub fpr: f64,
}

/// The ROC curve as scikit-learn's `roc_curve(drop_intermediate=True)`: a point per distinct
/// score, collinear points dropped, the origin first; at most [`MAX_ROC_POINTS`] points.
pub fn roc_curve(data: &BinaryData) -> Result<Vec<RocPoint>, MetricError> {
    data.require_both_classes("roc curve")?;
    let points = data.cumulative_by_distinct_score();
    // Keep the ends and every point where the curve changes direction.
    let kept: Vec<(f64, u64, u64)> = if points.len() > 2 {
        let second_diff = |a: u64, b: u64, c: u64| (a + c) != 2 * b;
        let mut kept = vec![points[0]];
        for w in points.windows(3) {
            if second_diff(w[0].1, w[1].1, w[2].1) || second_diff(w[0].2, w[1].2, w[2].2) {
                kept.push(w[1]);
            }
        }
        kept.extend(points.last().copied());
        kept
    } else {
        points
    };
    let (p, n) = (data.n_pos as f64, data.n_neg as f64);
    let mut curve = Vec::with_capacity(kept.len() + 1);
    curve.push(RocPoint {
        threshold: None,
        tpr: 0.0,
        fpr: 0.0,
    });
    curve.extend(kept.into_iter().map(|(t, tp, fp)| RocPoint {
        threshold: Some(t),
        tpr: tp as f64 / p,
        fpr: fp as f64 / n,
    }));
    Ok(thin(curve, MAX_ROC_POINTS))
}

/// At most `max` evenly spaced items of `v`, keeping the first and the last.
fn thin<T: Copy>(v: Vec<T>, max: usize) -> Vec<T> {
    if v.len() <= max || max < 2 {
        return v;
    }
    let last = v.len() - 1;
    (0..max).map(|i| v[i * last / (max - 1)]).collect()
}

/// FATE's `ThresholdCutter.cut_by_index`: thresholds at 100 evenly spaced positions of the
/// descending scores, and the cut (fraction) of each.
pub fn index_cuts(data: &BinaryData) -> (Vec<f64>, Vec<f64>) {
    let n = data.len();
    let cuts: Vec<f64> = (0..100).map(|c| c as f64 / 100.0).collect();
    let thresholds = cuts
        .iter()
        .map(|cut| data.sorted[((n as f64 * cut) as usize).min(n.saturating_sub(1))].0)
        .collect();
    (thresholds, cuts)
}

/// FATE's `ThresholdCutter.cut_by_step(steps=0.01)`: thresholds at 100 evenly spaced positions
/// of the distinct scores (descending), and the cuts `0, 0.01, ..., 0.99`.
pub fn step_cuts(data: &BinaryData) -> (Vec<f64>, Vec<f64>) {
    let mut distinct: Vec<f64> = data.sorted_scores().collect();
    distinct.dedup();
    let m = distinct.len();
    let cuts: Vec<f64> = (0..100).map(|c| c as f64 * 0.01).collect();
    let thresholds = cuts
        .iter()
        .map(|cut| distinct[((m as f64 * cut) as usize).min(m.saturating_sub(1))])
        .collect();
    (thresholds, cuts)
}

/// One point of the KS curve: `score > threshold` predicts positive.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct KsPoint {
    pub threshold: f64,
    pub cuts: f64,
    pub tpr: f64,
    pub fpr: f64,
}

/// FATE's KS: the largest `TPR - FPR` over the 100 index-cut thresholds, and the curve (those
/// 100 points and a final `(1, 1)` point at threshold 0, cut 1, as FATE's `ks_table`). When the
/// index cuts reach every sample (up to ~100 rows) this is [`ks_exact`]; above, it is FATE's
/// sampled value, at most [`ks_exact`].
pub fn ks(data: &BinaryData) -> Result<(f64, Vec<KsPoint>), MetricError> {
    data.require_both_classes("ks")?;
    let (p, n) = (data.n_pos as f64, data.n_neg as f64);
    let (thresholds, cuts) = index_cuts(data);
    let mut curve: Vec<KsPoint> = thresholds
        .iter()
        .zip(&cuts)
        .map(|(&threshold, &cuts)| {
            let c = data.confusion(threshold);
            KsPoint {
                threshold,
                cuts,
                tpr: c.tp as f64 / p,
                fpr: c.fp as f64 / n,
            }
        })
        .collect();
    let value = curve
        .iter()
        .map(|k| k.tpr - k.fpr)
        .fold(f64::NEG_INFINITY, f64::max);
    curve.push(KsPoint {
        threshold: 0.0,
        cuts: 1.0,
        tpr: 1.0,
        fpr: 1.0,
    });
    Ok((value, curve))
}

/// The exact KS statistic: the largest `TPR - FPR` over every distinct score as threshold.
pub fn ks_exact(data: &BinaryData) -> Result<f64, MetricError> {
    data.require_both_classes("ks")?;
    let (p, n) = (data.n_pos as f64, data.n_neg as f64);
    // Threshold = a distinct score s: the positives are the samples before s's group.
    let mut best = 0.0f64;
    let mut before = (0u64, 0u64);
    for (_, tp, fp) in data.cumulative_by_distinct_score() {
        best = best.max(before.0 as f64 / p - before.1 as f64 / n);
        before = (tp, fp);
    }
    Ok(best)
}

/// FATE's `ConfusionMatrix`: the confusion matrix at each index-cut threshold.
pub fn confusion_matrix(data: &BinaryData) -> Vec<(f64, f64, Confusion)> {
    let (thresholds, cuts) = index_cuts(data);
    thresholds
        .into_iter()
        .zip(cuts)
        .map(|(t, c)| (t, c, data.confusion(t)))
        .collect()
}

/// One row of a threshold table: the metric's value at `threshold` (`cuts` as FATE reports it).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CurveRow {
    pub threshold: f64,
    pub cuts: f64,
    pub value: f64,
}

/// Step cuts plus a last threshold just below the lowest (`add_to_end` in FATE's
/// `BiClassMetric.prepare_confusion_mat`), and each threshold's confusion matrix.
fn step_cuts_to_end(data: &BinaryData) -> Vec<(f64, f64, Confusion)> {
    let (mut thresholds, mut cuts) = step_cuts(data);
    let lowest = thresholds.iter().copied().fold(f64::INFINITY, f64::min);
    thresholds.push(lowest - 0.001);
    cuts.push(1.0);
    thresholds
        .into_iter()
        .zip(cuts)
        .map(|(t, c)| (t, c, data.confusion(t)))
        .collect()
}

/// FATE's `BiClassPrecisionTable`: precision at each step cut (1.0 where nothing is predicted
/// positive, as FATE imputes for drawing PR curves).
pub fn precision_table(data: &BinaryData) -> Vec<CurveRow> {
    step_cuts_to_end(data)
        .into_iter()
        .map(|(threshold, cuts, c)| CurveRow {
            threshold,
            cuts,
            value: ratio(c.tp, c.tp + c.fp, 1.0),
        })
        .collect()
}

/// FATE's `BiClassRecallTable`: recall at each step cut.
pub fn recall_table(data: &BinaryData) -> Result<Vec<CurveRow>, MetricError> {
    data.require_both_classes("biclass_recall_table")?;
    Ok(step_cuts_to_end(data)
        .into_iter()
        .map(|(threshold, cuts, c)| CurveRow {
            threshold,
            cuts,
            value: ratio(c.tp, c.tp + c.fn_, 0.0),
        })
        .collect())
}

/// FATE's `BiClassAccuracyTable`: accuracy at each step cut (the added last threshold dropped).
pub fn accuracy_table(data: &BinaryData) -> Vec<CurveRow> {
    let n = data.len() as u64;
    let mut rows: Vec<CurveRow> = step_cuts_to_end(data)
        .into_iter()
        .map(|(threshold, cuts, c)| CurveRow {
            threshold,
            cuts,
            value: ratio(c.tp + c.tn, n, 0.0),
        })
        .collect();
    rows.pop();
    rows
}

/// FATE's `FScoreTable` (beta 1): F1 at the fixed thresholds `0, 0.01, ..., 0.99`, reported
/// with the step cuts. Precision is 1.0 where nothing is predicted positive; a zero
/// denominator is replaced by 1e-6, as FATE does.
pub fn fscore_table(data: &BinaryData) -> Result<Vec<CurveRow>, MetricError> {
    data.require_both_classes("fscore_table")?;
    let (_, cuts) = step_cuts(data);
    Ok((0..100)
        .zip(cuts)
        .map(|(i, cuts)| {
            let threshold = i as f64 * 0.01;
            let c = data.confusion(threshold);
            let p = ratio(c.tp, c.tp + c.fp, 1.0);
            let r = ratio(c.tp, c.tp + c.fn_, 0.0);
            let denominator = if p + r == 0.0 { 1e-6 } else { p + r };
            CurveRow {
                threshold,
                cuts,
                value: 2.0 * p * r / denominator,
            }
        })
        .collect())
}

/// One row of FATE's lift or gain table: `[negative class, positive class]` values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PairRow {
    pub threshold: f64,
    pub x: [f64; 2],
    pub y: [f64; 2],
}

/// The confusion matrix seen from the negative class (FATE swaps tp/tn and fp/fn).
fn swap(c: Confusion) -> Confusion {
    Confusion {
        tp: c.tn,
        fp: c.fn_,
        fn_: c.fp,
        tn: c.tp,
    }
}

fn lift_point(c: Confusion, n: u64) -> (f64, f64) {
    let x = ratio(c.tp + c.fp, n, 1.0);
    let denominator = ratio(c.tp + c.fn_, n, 1.0);
    let numerator = ratio(c.tp, c.tp + c.fp, 1.0);
    let y = if denominator == 0.0 {
        f64::MAX
    } else {
        numerator / denominator
    };
    (x, y)
}

fn gain_point(c: Confusion, n: u64) -> (f64, f64) {
    (ratio(c.tp + c.fp, n, 1.0), ratio(c.tp, c.tp + c.fn_, 1.0))
}

fn pair_table(data: &BinaryData, point: fn(Confusion, u64) -> (f64, f64)) -> Vec<PairRow> {
    let n = data.len() as u64;
    let (thresholds, _) = step_cuts(data);
    thresholds
        .into_iter()
        .map(|threshold| {
            let c = data.confusion(threshold);
            let (xp, yp) = point(c, n);
            let (xn, yn) = point(swap(c), n);
            PairRow {
                threshold,
                x: [xn, xp],
                y: [yn, yp],
            }
        })
        .collect()
}

/// FATE's `Lift` at each step cut: `x` is the share predicted as the class, `y` that class's
/// precision over its base rate (`f64::MAX` when the class is absent).
pub fn lift(data: &BinaryData) -> Vec<PairRow> {
    pair_table(data, lift_point)
}

/// FATE's `Gain` at each step cut: `x` is the share predicted as the class, `y` the share of the
/// class found (1.0 when the class is absent).
pub fn gain(data: &BinaryData) -> Vec<PairRow> {
    pair_table(data, gain_point)
}

/// Accuracy, precision, recall and F1 with `score > threshold` predicting positive (FATE's
/// `binary_*` metrics; scikit-learn's zero-division value 0).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BinaryScores {
    pub accuracy: f64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

pub fn binary_scores(data: &BinaryData, threshold: f64) -> BinaryScores {
    let c = data.confusion(threshold);
    BinaryScores {
        accuracy: ratio(c.tp + c.tn, data.len() as u64, 0.0),
        precision: ratio(c.tp, c.tp + c.fp, 0.0),
        recall: ratio(c.tp, c.tp + c.fn_, 0.0),
        f1: ratio(2 * c.tp, 2 * c.tp + c.fp + c.fn_, 0.0),
    }
}

// ---------------------------------------------------------------------------------------------
// Multi-class
// ---------------------------------------------------------------------------------------------

/// Multi-class scores over predicted class ids. Precision and recall are macro averages over
/// the classes seen in labels or predictions (FATE's `multi_precision` / `multi_recall`,
/// `average="macro"`); FATE's `multi_f1_score` is the micro average, which for single-label
/// data equals accuracy; the macro F1 is given too.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MultiScores {
    pub accuracy: f64,
    pub macro_precision: f64,
    pub macro_recall: f64,
    pub micro_f1: f64,
    pub macro_f1: f64,
}

fn class_id(what: &'static str, v: f64) -> Result<i64, MetricError> {
    if !v.is_finite() {
        return Err(MetricError::NonFinite { what, value: v });
    }
    if v.fract() != 0.0 || v.abs() > (1u64 << 53) as f64 {
        return Err(MetricError::NotClass { what, value: v });
    }
    Ok(v as i64)
}

pub fn multi_scores(labels: &[f64], predictions: &[f64]) -> Result<MultiScores, MetricError> {
    check_lengths(labels, predictions)?;
    // Per class: (true positives, predicted, actual).
    let mut classes: BTreeMap<i64, (u64, u64, u64)> = BTreeMap::new();
    let mut correct = 0u64;
    for (&l, &p) in labels.iter().zip(predictions) {
        let (l, p) = (class_id("label", l)?, class_id("prediction", p)?);
        classes.entry(p).or_default().1 += 1;
        let actual = classes.entry(l).or_default();
        actual.2 += 1;
        if l == p {
            actual.0 += 1;
            correct += 1;
        }
    }
    let k = classes.len() as f64;
    let (mut precision, mut recall, mut f1) = (0.0, 0.0, 0.0);
    for &(tp, predicted, actual) in classes.values() {
        precision += ratio(tp, predicted, 0.0);
        recall += ratio(tp, actual, 0.0);
        f1 += ratio(2 * tp, predicted + actual, 0.0);
    }
    let accuracy = correct as f64 / labels.len() as f64;
    Ok(MultiScores {
        accuracy,
        macro_precision: precision / k,
        macro_recall: recall / k,
        micro_f1: accuracy,
        macro_f1: f1 / k,
    })
}

// ---------------------------------------------------------------------------------------------
// Regression
// ---------------------------------------------------------------------------------------------

/// Regression errors (scikit-learn's `mean_squared_error`, `mean_absolute_error`, `r2_score`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RegressionScores {
    pub mse: f64,
    pub rmse: f64,
    pub mae: f64,
    /// 1 - SS_res / SS_tot; for constant labels 1.0 on a perfect fit and 0.0 otherwise
    /// (scikit-learn's `force_finite`).
    pub r2: f64,
}

pub fn regression_scores(
    labels: &[f64],
    predictions: &[f64],
) -> Result<RegressionScores, MetricError> {
    check_lengths(labels, predictions)?;
    check_finite("label", labels)?;
    check_finite("prediction", predictions)?;
    let n = labels.len() as f64;
    let mean = labels.iter().sum::<f64>() / n;
    let (mut ss_res, mut abs, mut ss_tot) = (0.0, 0.0, 0.0);
    for (&y, &p) in labels.iter().zip(predictions) {
        ss_res += (y - p) * (y - p);
        abs += (y - p).abs();
        ss_tot += (y - mean) * (y - mean);
    }
    let mse = ss_res / n;
    let r2 = if ss_tot == 0.0 {
        if ss_res == 0.0 { 1.0 } else { 0.0 }
    } else {
        1.0 - ss_res / ss_tot
    };
    Ok(RegressionScores {
        mse,
        rmse: mse.sqrt(),
        mae: abs / n,
        r2,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use std::cmp::Ordering;

    fn data(labels: &[f64], scores: &[f64]) -> BinaryData {
        BinaryData::new(labels, scores).unwrap()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    /// Brute force O(n^2): correctly ordered (positive, negative) pairs, ties one half.
    fn auc_reference(labels: &[f64], scores: &[f64]) -> f64 {
        let (mut twice, mut pairs) = (0u128, 0u128);
        for (i, &li) in labels.iter().enumerate() {
            for (j, &lj) in labels.iter().enumerate() {
                if li == 1.0 && lj == 0.0 {
                    pairs += 1;
                    twice += match scores[i].partial_cmp(&scores[j]) {
                        Some(Ordering::Greater) => 2,
                        Some(Ordering::Equal) => 1,
                        _ => 0,
                    };
                }
            }
        }
        twice as f64 / (2 * pairs) as f64
    }

    /// Brute force O(n^2): TPR - FPR with `score > t` for every score `t`, the largest.
    fn ks_reference(labels: &[f64], scores: &[f64]) -> f64 {
        let p = labels.iter().filter(|&&l| l == 1.0).count() as f64;
        let n = labels.len() as f64 - p;
        scores
            .iter()
            .map(|&t| {
                let tp = labels
                    .iter()
                    .zip(scores)
                    .filter(|(l, s)| **l == 1.0 && **s > t)
                    .count() as f64;
                let fp = labels
                    .iter()
                    .zip(scores)
                    .filter(|(l, s)| **l == 0.0 && **s > t)
                    .count() as f64;
                tp / p - fp / n
            })
            .fold(0.0, f64::max)
    }

    #[test]
    fn auc_of_hand_computed_examples() {
        // scikit-learn's documented example: roc_auc_score([0,0,1,1], [0.1,0.4,0.35,0.8]) = 0.75.
        assert_eq!(
            auc(&data(&[0.0, 0.0, 1.0, 1.0], &[0.1, 0.4, 0.35, 0.8])).unwrap(),
            0.75
        );
        // Perfect and reversed orderings.
        assert_eq!(auc(&data(&[0.0, 1.0], &[0.2, 0.9])).unwrap(), 1.0);
        assert_eq!(auc(&data(&[0.0, 1.0], &[0.9, 0.2])).unwrap(), 0.0);
        // A tie between a positive and a negative counts one half: pairs (p1,n1)=1, (p1,n2)=0.5,
        // (p2,n1)=1, (p2,n2)=1 -> 3.5 / 4.
        assert_eq!(
            auc(&data(&[1.0, 1.0, 0.0, 0.0], &[0.5, 0.9, 0.1, 0.5])).unwrap(),
            0.875
        );
        // Every score equal: 0.5.
        assert_eq!(auc(&data(&[1.0, 0.0, 1.0], &[0.3, 0.3, 0.3])).unwrap(), 0.5);
    }

    #[test]
    fn one_class_and_bad_labels_are_errors() {
        assert_eq!(
            auc(&data(&[1.0, 1.0], &[0.1, 0.2])).unwrap_err(),
            MetricError::OneClass {
                metric: "auc",
                label: 1
            }
        );
        assert_eq!(
            BinaryData::new(&[0.0, 2.0], &[0.1, 0.2]).unwrap_err(),
            MetricError::NotBinary { value: 2.0 }
        );
        assert_eq!(
            BinaryData::new(&[0.0, 1.0], &[0.1, f64::NAN])
                .unwrap_err()
                .to_string(),
            "score NaN is not a finite number"
        );
        assert_eq!(BinaryData::new(&[], &[]).unwrap_err(), MetricError::Empty);
        assert_eq!(
            BinaryData::new(&[0.0], &[0.1, 0.2]).unwrap_err(),
            MetricError::LengthMismatch {
                labels: 1,
                predictions: 2
            }
        );
    }

    #[test]
    fn ks_of_a_hand_computed_example() {
        // Descending: 0.9(1) 0.8(1) 0.7(0) 0.6(1) 0.2(0) 0.1(0); P = N = 3.
        // score > 0.8: tpr 1/3, fpr 0 -> 1/3; > 0.7: 2/3 - 0; > 0.6: 2/3 - 1/3; > 0.2: 1 - 1/3 = 2/3.
        let d = data(
            &[1.0, 1.0, 0.0, 1.0, 0.0, 0.0],
            &[0.9, 0.8, 0.7, 0.6, 0.2, 0.1],
        );
        let (value, curve) = ks(&d).unwrap();
        assert!(close(value, 2.0 / 3.0), "{value}");
        assert!(close(ks_exact(&d).unwrap(), 2.0 / 3.0));
        assert_eq!(curve.len(), 101);
        assert_eq!(
            curve[100],
            KsPoint {
                threshold: 0.0,
                cuts: 1.0,
                tpr: 1.0,
                fpr: 1.0
            }
        );
        // First cut: threshold is the top score, nothing above it.
        assert_eq!(
            curve[0],
            KsPoint {
                threshold: 0.9,
                cuts: 0.0,
                tpr: 0.0,
                fpr: 0.0
            }
        );
    }

    #[test]
    fn index_and_step_cuts_follow_fate() {
        // 4 samples, 2 distinct scores. Index cut c picks position floor(4 * c/100).
        let d = data(&[1.0, 0.0, 1.0, 0.0], &[0.8, 0.8, 0.3, 0.3]);
        let (t, cuts) = index_cuts(&d);
        assert_eq!((t.len(), cuts.len()), (100, 100));
        assert_eq!(
            (t[0], t[24], t[25], t[49], t[50], t[99]),
            (0.8, 0.8, 0.8, 0.8, 0.3, 0.3)
        );
        assert_eq!(cuts[7], 0.07);
        // Step cuts over the 2 distinct scores: position floor(2 * c * 0.01).
        let (t, cuts) = step_cuts(&d);
        assert_eq!((t[0], t[49], t[50], t[99]), (0.8, 0.8, 0.3, 0.3));
        assert_eq!(cuts[7], 7.0 * 0.01);
    }

    #[test]
    fn confusion_counts_are_strictly_above_the_threshold() {
        let d = data(&[1.0, 0.0, 1.0, 0.0], &[0.8, 0.8, 0.3, 0.1]);
        assert_eq!(
            d.confusion(0.8),
            Confusion {
                tp: 0,
                fp: 0,
                fn_: 2,
                tn: 2
            }
        );
        assert_eq!(
            d.confusion(0.3),
            Confusion {
                tp: 1,
                fp: 1,
                fn_: 1,
                tn: 1
            }
        );
        assert_eq!(
            d.confusion(0.0),
            Confusion {
                tp: 2,
                fp: 2,
                fn_: 0,
                tn: 0
            }
        );
        let table = confusion_matrix(&d);
        assert_eq!(table.len(), 100);
        assert_eq!(
            table[0].2,
            Confusion {
                tp: 0,
                fp: 0,
                fn_: 2,
                tn: 2
            }
        );
        // Position floor(4 * 0.5) = 2 has score 0.3.
        assert_eq!(
            table[50],
            (
                0.3,
                0.5,
                Confusion {
                    tp: 1,
                    fp: 1,
                    fn_: 1,
                    tn: 1
                }
            )
        );
    }

    #[test]
    fn threshold_tables_of_a_hand_computed_example() {
        // Distinct scores 0.9 0.6 0.4 0.2; labels 1 1 0 0 (perfectly separated).
        let d = data(&[1.0, 1.0, 0.0, 0.0], &[0.9, 0.6, 0.4, 0.2]);
        let p = precision_table(&d);
        let r = recall_table(&d).unwrap();
        let a = accuracy_table(&d);
        assert_eq!((p.len(), r.len(), a.len()), (101, 101, 100));
        // Cut 0: threshold 0.9, nothing above -> precision imputed 1, recall 0, accuracy 1/2.
        assert_eq!(
            (p[0].threshold, p[0].value, r[0].value, a[0].value),
            (0.9, 1.0, 0.0, 0.5)
        );
        // Cut 25 -> position 1 -> threshold 0.6: one positive above -> p 1, r 1/2, acc 3/4.
        assert_eq!(
            (p[25].threshold, p[25].value, r[25].value, a[25].value),
            (0.6, 1.0, 0.5, 0.75)
        );
        // Cut 50 -> threshold 0.4: both positives -> p 1, r 1, acc 1.
        assert_eq!((p[50].value, r[50].value, a[50].value), (1.0, 1.0, 1.0));
        // Added last threshold 0.2 - 0.001: everything positive -> p 1/2, r 1, cut 1.
        assert_eq!(
            (p[100].threshold, p[100].cuts, p[100].value, r[100].value),
            (0.2 - 0.001, 1.0, 0.5, 1.0)
        );

        let f = fscore_table(&d).unwrap();
        assert_eq!(f.len(), 100);
        // Threshold 0.5: both positives above, no negative -> F1 = 1.
        assert!(close(f[50].value, 1.0) && close(f[50].threshold, 0.5));
        // Threshold 0.0: everything positive -> p 1/2, r 1 -> F1 2/3.
        assert!(close(f[0].value, 2.0 / 3.0));
        // Threshold 0.95: nothing positive -> p imputed 1, r 0 -> F1 0.
        assert_eq!(f[95].value, 0.0);
    }

    #[test]
    fn lift_and_gain_of_a_hand_computed_example() {
        let d = data(&[1.0, 1.0, 0.0, 0.0], &[0.9, 0.6, 0.4, 0.2]);
        let l = lift(&d);
        let g = gain(&d);
        assert_eq!((l.len(), g.len()), (100, 100));
        // Threshold 0.6 (cut 25): predicted positive {0.9}: tp 1, fp 0, fn 1, tn 2.
        // Positive class: x = 1/4, precision 1 over base rate 1/2 -> lift 2; gain y = 1/2.
        // Negative class (swapped): tp 2, fp 1 -> x = 3/4, precision 2/3 over 1/2 -> 4/3; gain 1.
        assert_eq!(l[25].threshold, 0.6);
        assert_eq!(l[25].x, [0.75, 0.25]);
        assert!(close(l[25].y[0], 4.0 / 3.0) && close(l[25].y[1], 2.0));
        assert_eq!((g[25].x, g[25].y), ([0.75, 0.25], [1.0, 0.5]));
        // Threshold 0.9 (cut 0): nothing predicted positive: precision taken as 1 -> lift 2.
        assert_eq!(l[0].y[1], 2.0);
        assert_eq!(l[0].x[1], 0.0);
    }

    #[test]
    fn binary_scores_at_half() {
        // Scores > 0.5 -> predicted 1 1 0 1; labels 1 0 0 1: tp 2, fp 1, fn 0, tn 1.
        let d = data(&[1.0, 0.0, 0.0, 1.0], &[0.9, 0.7, 0.5, 0.6]);
        let s = binary_scores(&d, DEFAULT_THRESHOLD);
        assert_eq!(s.accuracy, 0.75);
        assert!(close(s.precision, 2.0 / 3.0));
        assert_eq!(s.recall, 1.0);
        assert!(close(s.f1, 0.8));
        // Nothing predicted positive: precision and F1 are 0 (zero division), not NaN.
        let s = binary_scores(&data(&[1.0, 0.0], &[0.1, 0.2]), DEFAULT_THRESHOLD);
        assert_eq!(
            (s.precision, s.recall, s.f1, s.accuracy),
            (0.0, 0.0, 0.0, 0.5)
        );
    }

    #[test]
    fn roc_curve_drops_collinear_points() {
        let d = data(&[0.0, 0.0, 1.0, 1.0], &[0.1, 0.4, 0.35, 0.8]);
        let roc = roc_curve(&d).unwrap();
        // scikit-learn: fpr [0, 0, 0.5, 0.5, 1], tpr [0, 0.5, 0.5, 1, 1], thresholds [inf, .8, .4, .35, .1].
        let fpr: Vec<f64> = roc.iter().map(|p| p.fpr).collect();
        let tpr: Vec<f64> = roc.iter().map(|p| p.tpr).collect();
        let thr: Vec<Option<f64>> = roc.iter().map(|p| p.threshold).collect();
        assert_eq!(fpr, vec![0.0, 0.0, 0.5, 0.5, 1.0]);
        assert_eq!(tpr, vec![0.0, 0.5, 0.5, 1.0, 1.0]);
        assert_eq!(thr, vec![None, Some(0.8), Some(0.4), Some(0.35), Some(0.1)]);
        // Collinear middle points go (all positives first, then all negatives); the first kept
        // point is the first distinct score, as scikit-learn keeps it.
        let d = data(
            &[1.0, 1.0, 1.0, 0.0, 0.0, 0.0],
            &[0.9, 0.8, 0.7, 0.3, 0.2, 0.1],
        );
        let tf: Vec<(f64, f64)> = roc_curve(&d)
            .unwrap()
            .iter()
            .map(|p| (p.tpr, p.fpr))
            .collect();
        assert_eq!(
            tf,
            vec![(0.0, 0.0), (1.0 / 3.0, 0.0), (1.0, 0.0), (1.0, 1.0)]
        );
    }

    #[test]
    fn long_roc_curves_are_thinned_keeping_the_ends() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let n = 20_000;
        let labels: Vec<f64> = (0..n).map(|_| f64::from(rng.gen_range(0..2u8))).collect();
        let scores: Vec<f64> = (0..n).map(|_| rng.r#gen::<f64>()).collect();
        let roc = roc_curve(&data(&labels, &scores)).unwrap();
        assert_eq!(roc.len(), MAX_ROC_POINTS);
        assert_eq!((roc[0].tpr, roc[0].fpr), (0.0, 0.0));
        let last = roc[roc.len() - 1];
        assert_eq!((last.tpr, last.fpr), (1.0, 1.0));
        assert!(
            roc.windows(2)
                .all(|w| w[0].tpr <= w[1].tpr && w[0].fpr <= w[1].fpr)
        );
    }

    #[test]
    fn multi_scores_of_a_hand_computed_example() {
        // labels 0 0 1 1 2, predictions 0 1 1 1 0.
        // class 0: tp 1, predicted 2, actual 2 -> p 1/2, r 1/2, f1 1/2
        // class 1: tp 2, predicted 3, actual 2 -> p 2/3, r 1,   f1 4/5
        // class 2: tp 0, predicted 0, actual 1 -> p 0,   r 0,   f1 0
        let s = multi_scores(&[0.0, 0.0, 1.0, 1.0, 2.0], &[0.0, 1.0, 1.0, 1.0, 0.0]).unwrap();
        assert!(close(s.accuracy, 0.6) && close(s.micro_f1, 0.6));
        assert!(close(s.macro_precision, (0.5 + 2.0 / 3.0) / 3.0));
        assert!(close(s.macro_recall, 0.5));
        assert!(close(s.macro_f1, (0.5 + 0.8) / 3.0));
        assert_eq!(
            multi_scores(&[0.0, 1.0], &[0.0, 0.7]).unwrap_err(),
            MetricError::NotClass {
                what: "prediction",
                value: 0.7
            }
        );
    }

    #[test]
    fn regression_scores_of_a_hand_computed_example() {
        // errors 0.5, -0.5, 0, -1 -> squares .25 .25 0 1 (sum 1.5), abs sum 2.
        let labels = [3.0, -0.5, 2.0, 7.0];
        let preds = [2.5, 0.0, 2.0, 8.0];
        let s = regression_scores(&labels, &preds).unwrap();
        assert_eq!(s.mse, 0.375);
        assert_eq!(s.rmse, 0.375f64.sqrt());
        assert_eq!(s.mae, 0.5);
        // scikit-learn's documented r2_score of this example: 0.9486081370449679.
        assert!(close(s.r2, 0.9486081370449679), "{}", s.r2);
        assert_eq!(regression_scores(&[1.0, 1.0], &[1.0, 1.0]).unwrap().r2, 1.0);
        assert_eq!(regression_scores(&[1.0, 1.0], &[1.0, 2.0]).unwrap().r2, 0.0);
        assert_eq!(regression_scores(&[], &[]).unwrap_err(), MetricError::Empty);
    }

    /// Random binary data with many ties (scores on a coarse grid) and both classes present.
    fn random_case(rng: &mut ChaCha8Rng, max_n: usize) -> (Vec<f64>, Vec<f64>) {
        let n = rng.gen_range(2..=max_n);
        let grid = rng.gen_range(1..=n as u32 + 1);
        let mut labels: Vec<f64> = (0..n).map(|_| f64::from(rng.gen_range(0..2u8))).collect();
        labels[0] = 1.0;
        labels[1] = 0.0;
        let scores = (0..n)
            .map(|_| f64::from(rng.gen_range(0..grid)) / f64::from(grid))
            .collect();
        (labels, scores)
    }

    // Property checks against the brute-force references. Seeded so a failure reproduces; the
    // crate has no `proptest` dependency, so cases are drawn from ChaCha.
    #[test]
    fn auc_equals_the_pairwise_reference() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..500 {
            let (labels, scores) = random_case(&mut rng, 60);
            let d = data(&labels, &scores);
            assert_eq!(
                auc(&d).unwrap(),
                auc_reference(&labels, &scores),
                "{labels:?} {scores:?}"
            );
        }
    }

    #[test]
    fn ks_equals_the_threshold_reference() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        for _ in 0..500 {
            let (labels, scores) = random_case(&mut rng, 300);
            let d = data(&labels, &scores);
            let exact = ks_exact(&d).unwrap();
            assert_eq!(
                exact,
                ks_reference(&labels, &scores),
                "{labels:?} {scores:?}"
            );
            let (fate, _) = ks(&d).unwrap();
            // FATE samples 100 positions: exact up to 50 rows (every position is reached),
            // never above the exact value.
            assert!(fate <= exact, "{fate} > {exact}");
            if labels.len() <= 50 {
                assert_eq!(fate, exact, "{labels:?} {scores:?}");
            }
        }
    }

    #[test]
    fn roc_curve_area_is_the_auc() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for _ in 0..300 {
            let (labels, scores) = random_case(&mut rng, 80);
            let d = data(&labels, &scores);
            let roc = roc_curve(&d).unwrap();
            let area: f64 = roc
                .windows(2)
                .map(|w| (w[1].fpr - w[0].fpr) * (w[1].tpr + w[0].tpr) / 2.0)
                .sum();
            assert!((area - auc(&d).unwrap()).abs() < 1e-9, "{area}");
        }
    }
}
