//! Per-column moments of a dataframe's features, computed on the table by kernels (one
//! [`PartitionMoments`] per partition, merged by [`MergeMoments`]): what `feature_scale` fits
//! and `statistics` reports. Means and squared deviations are merged with Chan's pairwise
//! update, so the variance does not lose precision as `Σx² − n·mean²` would. A missing value
//! is a NaN feature (FATE's `NaN`); it is counted in `missing`, not in the moments.

use fate_computing::{ComputingError, Fold, Kernel, KernelRegistry, MapPartition, Table};
use fate_runtime::Row;
use serde::{Deserialize, Serialize};

/// Moments of the selected columns (index `j` of each vector is the `j`-th selected column).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Moments {
    /// Rows seen.
    pub rows: u64,
    /// Non-missing values per column.
    pub n: Vec<u64>,
    pub mean: Vec<f64>,
    /// Σ (x − mean)².
    pub m2: Vec<f64>,
    /// Σ (x − mean)³ and Σ (x − mean)⁴ (Pébay's pairwise update).
    pub m3: Vec<f64>,
    pub m4: Vec<f64>,
    pub sum: Vec<f64>,
    pub min: Vec<f64>,
    pub max: Vec<f64>,
    pub missing: Vec<u64>,
}

impl Moments {
    pub fn empty(cols: usize) -> Self {
        Moments {
            rows: 0,
            n: vec![0; cols],
            mean: vec![0.0; cols],
            m2: vec![0.0; cols],
            m3: vec![0.0; cols],
            m4: vec![0.0; cols],
            sum: vec![0.0; cols],
            min: vec![f64::INFINITY; cols],
            max: vec![f64::NEG_INFINITY; cols],
            missing: vec![0; cols],
        }
    }

    /// Adds one row's selected values (the pairwise merge with a single value).
    fn push(&mut self, values: impl Iterator<Item = f64>) {
        self.rows += 1;
        for (j, x) in values.enumerate() {
            if x.is_nan() {
                self.missing[j] += 1;
                continue;
            }
            self.merge_column(j, 1, x, 0.0, 0.0, 0.0);
            self.sum[j] += x;
            self.min[j] = self.min[j].min(x);
            self.max[j] = self.max[j].max(x);
        }
    }

    /// Merges moments (n, mean, M2, M3, M4) of another set into column `j` (Chan et al.,
    /// Pébay 2008: every update reads the old M2 and M3 before they change).
    fn merge_column(&mut self, j: usize, nb: u64, mb: f64, m2b: f64, m3b: f64, m4b: f64) {
        if nb == 0 {
            return;
        }
        let (na, nbf) = (self.n[j] as f64, nb as f64);
        let n = na + nbf;
        let d = mb - self.mean[j];
        let (m2a, m3a) = (self.m2[j], self.m3[j]);
        self.m4[j] += m4b
            + d.powi(4) * na * nbf * (na * na - na * nbf + nbf * nbf) / (n * n * n)
            + 6.0 * d * d * (na * na * m2b + nbf * nbf * m2a) / (n * n)
            + 4.0 * d * (na * m3b - nbf * m3a) / n;
        self.m3[j] += m3b
            + d.powi(3) * na * nbf * (na - nbf) / (n * n)
            + 3.0 * d * (na * m2b - nbf * m2a) / n;
        self.m2[j] += m2b + d * d * na * nbf / n;
        self.mean[j] += d * nbf / n;
        self.n[j] += nb;
    }

    /// Merges two column sets of the same width.
    pub fn merge(mut self, b: Moments) -> Moments {
        self.rows += b.rows;
        for j in 0..self.n.len().min(b.n.len()) {
            self.merge_column(j, b.n[j], b.mean[j], b.m2[j], b.m3[j], b.m4[j]);
            self.sum[j] += b.sum[j];
            self.min[j] = self.min[j].min(b.min[j]);
            self.max[j] = self.max[j].max(b.max[j]);
            self.missing[j] += b.missing[j];
        }
        self
    }

    /// FATE's skewness (`StatisticsSummary.compute_skewness`): `m3 / m2^1.5` with the
    /// population moments, times `sqrt(n(n−1)) / (n−2)` unless `bias`; 0 when m2 < 1e-6.
    pub fn skewness(&self, j: usize, bias: bool) -> f64 {
        let n = self.n[j] as f64;
        let m2 = self.m2[j] / n;
        if !(m2 >= 1e-6) {
            return 0.0;
        }
        let g = (self.m3[j] / n) / m2.powf(1.5);
        if bias {
            g
        } else {
            g * (n * (n - 1.0)).sqrt() / (n - 2.0)
        }
    }

    /// FATE's (Fisher) kurtosis (`compute_kurtosis`): `m4 / m2² − 3`, corrected by
    /// `((n²−1)·k − 3(n−1)²) / ((n−2)(n−3)) + 3` before the −3 unless `bias`; 0 when m2 < 1e-6.
    pub fn kurtosis(&self, j: usize, bias: bool) -> f64 {
        let n = self.n[j] as f64;
        let m2 = self.m2[j] / n;
        if !(m2 >= 1e-6) {
            return 0.0;
        }
        let mut k = (self.m4[j] / n) / (m2 * m2);
        if !bias {
            k = ((n * n - 1.0) * k - 3.0 * (n - 1.0) * (n - 1.0)) / ((n - 2.0) * (n - 3.0)) + 3.0;
        }
        k - 3.0
    }

    /// Variance with `ddof` delta degrees of freedom; NaN when fewer than `ddof + 1` values.
    pub fn var(&self, j: usize, ddof: u64) -> f64 {
        if self.n[j] <= ddof {
            return f64::NAN;
        }
        self.m2[j] / (self.n[j] - ddof) as f64
    }
}

/// One partition's moments of columns `cols` (a row shorter than a column counts it missing).
#[derive(Debug, Serialize, Deserialize)]
pub struct PartitionMoments {
    pub cols: Vec<usize>,
}
impl Kernel for PartitionMoments {
    const NAME: &'static str = "fate_components.colstats.partition_moments";
}
impl MapPartition for PartitionMoments {
    type K = String;
    type V = Row;
    type K2 = u64;
    type V2 = Moments;
    fn apply(&self, index: usize, rows: &[(String, Row)]) -> Vec<(u64, Moments)> {
        let mut m = Moments::empty(self.cols.len());
        for (_, r) in rows {
            m.push(
                self.cols
                    .iter()
                    .map(|&c| r.features.get(c).copied().unwrap_or(f64::NAN)),
            );
        }
        vec![(index as u64, m)]
    }
}

/// Merges two partitions' moments.
#[derive(Debug, Serialize, Deserialize)]
pub struct MergeMoments;
impl Kernel for MergeMoments {
    const NAME: &'static str = "fate_components.colstats.merge_moments";
}
impl Fold for MergeMoments {
    type V = Moments;
    fn apply(&self, a: Moments, b: Moments) -> Moments {
        a.merge(b)
    }
}

/// The moments of columns `cols` of `table`.
pub fn moments(table: &Table<String, Row>, cols: &[usize]) -> Result<Moments, ComputingError> {
    let per_partition = table.map_partitions(&PartitionMoments {
        cols: cols.to_vec(),
    });
    Ok(per_partition
        .reduce(&MergeMoments)?
        .unwrap_or_else(|| Moments::empty(cols.len())))
}

pub(crate) fn register_kernels(r: &mut KernelRegistry) -> Result<(), ComputingError> {
    r.map_partitions::<PartitionMoments>()?
        .fold::<MergeMoments>()?;
    Ok(())
}

/// The selected columns of `names`: by name (`col_field`) or by index (`idx_field`), at most
/// one of the two; neither selects every column. Unknown names and indexes out of range are
/// parameter errors naming the field.
pub(crate) fn select_columns(
    names: &[String],
    by_name: Option<&[String]>,
    by_idx: Option<&[u64]>,
    col_field: &str,
    idx_field: &str,
) -> Result<Vec<usize>, fate_runtime::ComponentError> {
    use fate_runtime::ComponentError;
    let cols: Vec<usize> = match (by_name, by_idx) {
        (Some(_), Some(_)) => {
            return Err(ComponentError::param(
                col_field,
                format!("`{col_field}` and `{idx_field}` cannot be specified simultaneously"),
            ));
        }
        (Some(wanted), None) => wanted
            .iter()
            .map(|w| {
                names.iter().position(|n| n == w).ok_or_else(|| {
                    ComponentError::param(col_field, format!("column `{w}` is not in the data"))
                })
            })
            .collect::<Result<_, _>>()?,
        (None, Some(idx)) => idx
            .iter()
            .map(|&i| {
                if (i as usize) < names.len() {
                    Ok(i as usize)
                } else {
                    Err(ComponentError::param(
                        idx_field,
                        format!(
                            "index {i} is out of range: the data has {} feature columns",
                            names.len()
                        ),
                    ))
                }
            })
            .collect::<Result<_, _>>()?,
        (None, None) => (0..names.len()).collect(),
    };
    let mut seen = std::collections::BTreeSet::new();
    for &c in &cols {
        if !seen.insert(c) {
            let field = if by_name.is_some() {
                col_field
            } else {
                idx_field
            };
            return Err(ComponentError::param(
                field,
                format!("column `{}` is selected twice", names[c]),
            ));
        }
    }
    Ok(cols)
}

/// A parameter of `params`: absent and null are `None`.
pub(crate) fn get<'a>(
    params: &'a serde_json::Map<String, serde_json::Value>,
    name: &str,
) -> Option<&'a serde_json::Value> {
    params.get(name).filter(|v| !v.is_null())
}

/// A parameter deserialized as `T`; the error names it.
pub(crate) fn typed<T: serde::de::DeserializeOwned>(
    params: &serde_json::Map<String, serde_json::Value>,
    name: &str,
    what: &str,
) -> Result<Option<T>, fate_runtime::ComponentError> {
    match get(params, name) {
        None => Ok(None),
        Some(v) => serde_json::from_value(v.clone()).map(Some).map_err(|_| {
            fate_runtime::ComponentError::param(name, format!("must be {what}, got {v}"))
        }),
    }
}
