//! A party's rows as dense matrices: loading and checking a dataframe, FATE's DataLoader batch
//! split (sorted sample ids, no shuffle, fixed for the whole fit) and the plaintext
//! matrix-vector products.

use fate_crypto::encoding::encode_i64_vec;
use fate_runtime::data::predict;
use fate_runtime::{ComponentError, Ctx, DataFrame, Row, Schema};
use fate_types::Party;

/// A dataframe collected in sample-id order.
pub(super) struct Frame {
    pub schema: Schema,
    pub ids: Vec<String>,
    pub rows: Vec<Row>,
    pub partitions: usize,
}

impl Frame {
    /// Loads input `key` and checks that every row has the schema's feature count and finite
    /// values (and a weight when the schema names a weight column).
    pub fn load(ctx: &Ctx, key: &str) -> Result<Frame, ComponentError> {
        let df = ctx.input_data(key)?;
        Frame::from_df(&df, key, &ctx.local)
    }

    pub fn from_df(df: &DataFrame, key: &str, party: &Party) -> Result<Frame, ComponentError> {
        let n_features = df.schema.feature_names.len();
        let (ids, rows): (Vec<String>, Vec<Row>) = df
            .table
            .collect(crate::limits::COLLECT_ROWS)?
            .into_iter()
            .unzip();
        for (id, row) in ids.iter().zip(&rows) {
            if row.features.len() != n_features {
                return Err(ComponentError::Input {
                    key: key.into(),
                    reason: format!(
                        "at {party}, sample `{id}` has {} features but the schema names {n_features}",
                        row.features.len()
                    ),
                });
            }
            if let Some(j) = row.features.iter().position(|x| !x.is_finite()) {
                return Err(ComponentError::Input {
                    key: key.into(),
                    reason: format!(
                        "at {party}, sample `{id}` has a non-finite value in column `{}`",
                        df.schema.feature_names[j]
                    ),
                });
            }
            if df.schema.weight_name.is_some() && !row.weight.is_some_and(f64::is_finite) {
                return Err(ComponentError::Input {
                    key: key.into(),
                    reason: format!("at {party}, sample `{id}` has no finite weight"),
                });
            }
        }
        Ok(Frame {
            schema: df.schema.clone(),
            ids,
            rows,
            partitions: df.table.num_partitions(),
        })
    }

    pub fn n_features(&self) -> usize {
        self.schema.feature_names.len()
    }

    pub fn has_weight(&self) -> bool {
        self.schema.weight_name.is_some()
    }
}

/// One batch as a dense row-major matrix (intercept column last at the guest), its fixed-point
/// encoding for `X^T·[[d]]`, and its weights.
pub(super) struct Batch {
    pub n_rows: usize,
    pub n_cols: usize,
    pub x: Vec<f64>,
    pub x_enc: Vec<i64>,
    pub weight: Option<Vec<f64>>,
    /// Positions of the batch's rows in the frame.
    pub rows: Vec<usize>,
}

impl Batch {
    pub fn build(
        frame: &Frame,
        rows: Vec<usize>,
        intercept: bool,
        precision_bits: u32,
        party: &Party,
    ) -> Result<Batch, ComponentError> {
        let n_cols = frame.n_features() + usize::from(intercept);
        let mut x = Vec::with_capacity(rows.len() * n_cols);
        for &r in &rows {
            x.extend_from_slice(&frame.rows[r].features);
            if intercept {
                x.push(1.0);
            }
        }
        let x_enc = encode_i64_vec(&x, precision_bits).map_err(|e| {
            ComponentError::Data(format!(
                "at {party}: a feature does not fit a 64-bit integer with {precision_bits} fractional bits ({e})"
            ))
        })?;
        let weight = frame.has_weight().then(|| {
            rows.iter()
                .map(|&r| frame.rows[r].weight.unwrap_or(1.0))
                .collect()
        });
        Ok(Batch {
            n_rows: rows.len(),
            n_cols,
            x,
            x_enc,
            weight,
            rows,
        })
    }

    /// `X·w`.
    pub fn matvec(&self, w: &[f64]) -> Vec<f64> {
        self.x
            .chunks_exact(self.n_cols)
            .map(|row| dot(row, w))
            .collect()
    }

    /// `Xᵀ·v`.
    pub fn xt_vec(&self, v: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0; self.n_cols];
        for (row, vi) in self.x.chunks_exact(self.n_cols).zip(v) {
            for (o, xij) in out.iter_mut().zip(row) {
                *o += xij * vi;
            }
        }
        out
    }
}

/// FATE's DataLoader split: `batch_size` consecutive rows in sample-id order (full batch when
/// `None`).
pub(super) fn split(n: usize, batch_size: Option<usize>) -> Vec<Vec<usize>> {
    let size = batch_size.unwrap_or(n).min(n).max(1);
    (0..n)
        .collect::<Vec<_>>()
        .chunks(size)
        .map(<[usize]>::to_vec)
        .collect()
}

/// The dot product of training and prediction (one definition, fate-ml's).
pub(super) use fate_ml::lr::dot;

/// The prediction dataframe's schema (fate-runtime's `predict` convention).
pub(super) fn predict_schema(input: &Schema, classes: Option<&[i64]>) -> Schema {
    let mut feature_names = vec![predict::SCORE.to_string(), predict::RESULT.to_string()];
    if let Some(classes) = classes {
        feature_names.extend(
            classes
                .iter()
                .map(|c| format!("{}{c}", predict::DETAIL_PREFIX)),
        );
    }
    Schema {
        sample_id_name: input.sample_id_name.clone(),
        match_id_name: input.match_id_name.clone(),
        label_name: Some(input.label_name.clone().unwrap_or_else(|| "label".into())),
        weight_name: None,
        feature_names,
        label_type: input.label_type.clone(),
        dtype: "float64".into(),
        dataset_type: None,
    }
}
