//! Quantile binning of one party's features (FATE `ml/ensemble/utils/binning.py` and
//! `DataFrame.bucketize`, fate-spec §4.5).
//!
//! For each feature FATE asks its Greenwald–Khanna summary (relative error 1e-4) for the
//! quantiles `i / max_bin`, `i = 0..max_bin`, keeps the distinct values in ascending order and
//! replaces the last one by +inf. A value x then falls in bin b when
//! `boundary[b−1] < x <= boundary[b]` (`torch.bucketize`), so "bin ≤ b" is the split
//! "x ≤ boundary[b]". Here the summary is exact (the GK query rule applied to the sorted column),
//! and bins use the same `+1e-8` tolerance as FATE's prediction rule (`_make_decision`), so a
//! split sends a training sample the same way at training and at prediction time.

/// FATE's `FLOAT_ZERO`: a value goes left when `x <= threshold + FLOAT_ZERO`.
pub const FLOAT_ZERO: f64 = 1e-8;

/// FATE's default relative error of the quantile summary.
const RELATIVE_ERROR: f64 = 1e-4;

/// The direction rule of a split (FATE `_make_decision`): true means left.
#[inline]
pub fn goes_left(x: f64, threshold: f64) -> bool {
    x <= threshold + FLOAT_ZERO
}

/// Bin boundaries of every feature: ascending, distinct, the last one +inf.
#[derive(Debug, Clone, PartialEq)]
pub struct Binning {
    boundaries: Vec<Vec<f64>>,
}

impl Binning {
    /// Fits `max_bin` quantile bins to each column (`columns[f][i]`, finite values, at least one
    /// row).
    pub fn fit(columns: &[Vec<f64>], max_bin: u32) -> Binning {
        let boundaries = columns
            .iter()
            .map(|c| feature_boundaries(c, max_bin))
            .collect();
        Binning { boundaries }
    }

    /// Number of bins of feature `f`.
    pub fn n_bins(&self, f: usize) -> usize {
        self.boundaries[f].len()
    }

    /// Number of features.
    pub fn n_features(&self) -> usize {
        self.boundaries.len()
    }

    /// The split value of "bin ≤ b" for feature `f`.
    pub fn threshold(&self, f: usize, b: usize) -> f64 {
        self.boundaries[f][b]
    }

    /// The bin of `x` in feature `f`: the number of boundaries with `x > boundary + 1e-8`.
    pub fn bin_of(&self, f: usize, x: f64) -> u32 {
        let b = &self.boundaries[f];
        let k = b.partition_point(|&t| !goes_left(x, t));
        // The last boundary is +inf, so k < b.len() for every finite x.
        k.min(b.len() - 1) as u32
    }

    /// Every value's bin, column by column (`bins[f][i]`).
    pub fn bucketize(&self, columns: &[Vec<f64>]) -> Vec<Vec<u32>> {
        columns
            .iter()
            .enumerate()
            .map(|(f, c)| c.iter().map(|&x| self.bin_of(f, x)).collect())
            .collect()
    }
}

/// The distinct quantiles of one column, last replaced by +inf.
fn feature_boundaries(column: &[f64], max_bin: u32) -> Vec<f64> {
    let mut sorted = column.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n == 0 {
        return vec![f64::INFINITY];
    }
    // The GK query rule on an exact summary: rank r = floor(phi·n) + floor(eps·n) answers the
    // element of 1-based rank max(r, 1), capped at n.
    let en = (RELATIVE_ERROR * n as f64) as usize;
    let mut out: Vec<f64> = Vec::with_capacity(max_bin as usize);
    for i in 0..max_bin {
        let phi = f64::from(i) / f64::from(max_bin);
        let r = (phi * n as f64).floor() as usize + en;
        let v = sorted[r.max(1).min(n) - 1];
        if out.last() != Some(&v) {
            out.push(v);
        }
    }
    if let Some(last) = out.last_mut() {
        *last = f64::INFINITY;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_are_distinct_quantiles_ending_in_infinity() {
        let col: Vec<f64> = (0..100).map(f64::from).collect();
        let b = Binning::fit(std::slice::from_ref(&col), 4);
        // phi = 0, .25, .5, .75 -> ranks 1, 25, 50, 75 -> values 0, 24, 49, +inf (74 replaced).
        assert_eq!(b.boundaries[0], vec![0.0, 24.0, 49.0, f64::INFINITY]);
        let bins = b.bucketize(&[col]);
        assert_eq!(bins[0][0], 0);
        assert_eq!(bins[0][1], 1);
        assert_eq!(bins[0][24], 1);
        assert_eq!(bins[0][25], 2);
        assert_eq!(bins[0][99], 3);
    }

    #[test]
    fn a_constant_column_has_one_bin_and_no_split_point() {
        let b = Binning::fit(&[vec![3.0; 10]], 32);
        assert_eq!(b.n_bins(0), 1);
        assert_eq!(b.bin_of(0, 3.0), 0);
    }

    #[test]
    fn bins_agree_with_the_prediction_rule() {
        let col: Vec<f64> = (0..57)
            .map(|i| ((i * 37) % 57) as f64 * 0.1 - 2.0)
            .collect();
        let b = Binning::fit(std::slice::from_ref(&col), 8);
        for &x in &col {
            let bin = b.bin_of(0, x) as usize;
            for split in 0..b.n_bins(0) - 1 {
                assert_eq!(
                    bin <= split,
                    goes_left(x, b.threshold(0, split)),
                    "x {x} split {split}"
                );
            }
        }
    }
}
