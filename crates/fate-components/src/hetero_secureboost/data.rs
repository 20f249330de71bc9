//! One party's samples as dense columns, and the prediction dataframe the guest writes.

use super::messages::sample_digest;
use super::objective;
use super::params::Objective;
use fate_runtime::data::predict;
use fate_runtime::{ComponentError, Ctx, DataFrame, Row, Schema};

/// A party's input table collected in sample-id order (the order both parties share after
/// PSI), with features column by column.
pub struct LocalData {
    pub keys: Vec<String>,
    pub match_ids: Vec<String>,
    pub labels: Vec<Option<f64>>,
    /// `columns[f][i]`: feature f of sample i.
    pub columns: Vec<Vec<f64>>,
    pub feature_names: Vec<String>,
    pub schema: Schema,
    pub partitions: usize,
    pub digest: u64,
}

impl LocalData {
    /// Collects input `key`; every feature must be a finite number (SecureBoost here has no
    /// missing-value handling, as FATE 2.x's `use_missing` is off).
    pub fn load(df: &DataFrame, key: &str) -> Result<LocalData, ComponentError> {
        let input_err = |reason: String| ComponentError::Input {
            key: key.to_string(),
            reason,
        };
        let rows = df.table.collect(crate::limits::COLLECT_ROWS)?;
        if rows.is_empty() {
            return Err(input_err("the table has no rows".into()));
        }
        if u32::try_from(rows.len()).is_err() {
            return Err(input_err(format!(
                "{} rows exceed the supported {}",
                rows.len(),
                u32::MAX
            )));
        }
        let n_features = df.schema.feature_names.len();
        let mut columns = vec![Vec::with_capacity(rows.len()); n_features];
        let mut keys = Vec::with_capacity(rows.len());
        let mut match_ids = Vec::with_capacity(rows.len());
        let mut labels = Vec::with_capacity(rows.len());
        for (sid, row) in rows {
            if row.features.len() != n_features {
                return Err(input_err(format!(
                    "sample `{sid}` has {} features but the schema names {n_features}",
                    row.features.len()
                )));
            }
            for (f, &x) in row.features.iter().enumerate() {
                if !x.is_finite() {
                    return Err(input_err(format!(
                        "sample `{sid}`, feature `{}`: {x} is not a finite number (hetero_secureboost has no missing-value handling)",
                        df.schema.feature_names[f]
                    )));
                }
                columns[f].push(x);
            }
            labels.push(row.label);
            match_ids.push(row.match_id);
            keys.push(sid);
        }
        let digest = sample_digest(keys.iter().map(String::as_str));
        Ok(LocalData {
            keys,
            match_ids,
            labels,
            columns,
            feature_names: df.schema.feature_names.clone(),
            schema: df.schema.clone(),
            partitions: df.table.num_partitions(),
            digest,
        })
    }

    pub fn n(&self) -> usize {
        self.keys.len()
    }

    /// Column indexes of `names` (a model's features) in this data; the data must have exactly
    /// those features.
    pub fn columns_of(&self, names: &[String], key: &str) -> Result<Vec<usize>, ComponentError> {
        let input_err = |reason: String| ComponentError::Input {
            key: key.to_string(),
            reason,
        };
        if names.len() != self.feature_names.len() {
            return Err(input_err(format!(
                "the data has {} features ({}) but the model was trained on {} ({})",
                self.feature_names.len(),
                self.feature_names.join(","),
                names.len(),
                names.join(",")
            )));
        }
        names
            .iter()
            .map(|name| {
                self.feature_names
                    .iter()
                    .position(|f| f == name)
                    .ok_or_else(|| {
                        input_err(format!("feature `{name}` of the model is not in the data"))
                    })
            })
            .collect()
    }

    /// The labels checked for `objective`: present, and 0/1 with both classes (binary), integers
    /// in 0..num_class (multi) or finite (regression).
    pub fn checked_labels(
        &self,
        objective: Objective,
        num_class: u32,
        key: &str,
    ) -> Result<Vec<f64>, ComponentError> {
        let input_err = |reason: String| ComponentError::Input {
            key: key.to_string(),
            reason,
        };
        let mut out = Vec::with_capacity(self.n());
        for (i, y) in self.labels.iter().enumerate() {
            let Some(y) = *y else {
                return Err(input_err(format!(
                    "sample `{}` has no label; the guest's train data needs one",
                    self.keys[i]
                )));
            };
            let ok = match objective {
                Objective::BinaryBce => y == 0.0 || y == 1.0,
                Objective::MultiCe => y >= 0.0 && y.fract() == 0.0 && y < f64::from(num_class),
                Objective::RegressionL2 => y.is_finite(),
            };
            if !ok {
                let want = match objective {
                    Objective::BinaryBce => "binary:bce needs labels 0 and 1".to_string(),
                    Objective::MultiCe => {
                        format!("multi:ce needs integer labels in 0..{num_class}")
                    }
                    Objective::RegressionL2 => "regression:l2 needs finite labels".to_string(),
                };
                return Err(input_err(format!(
                    "sample `{}` has label {y}: {want}",
                    self.keys[i]
                )));
            }
            out.push(y);
        }
        if objective == Objective::BinaryBce {
            let pos = out.iter().filter(|&&y| y == 1.0).count();
            if pos == 0 || pos == out.len() {
                return Err(input_err(format!(
                    "binary classification needs both labels 0 and 1, but every label is {}",
                    out[0]
                )));
            }
        }
        Ok(out)
    }

    /// The guest's prediction dataframe (`fate_runtime::data::predict`): `predict_score`,
    /// `predict_result` and, for multi-class, `predict_detail_<k>`, the true label kept.
    /// `raw` holds `dim` raw scores per sample.
    pub fn prediction_frame(
        &self,
        ctx: &Ctx,
        objective: Objective,
        raw: &[f64],
        dim: usize,
    ) -> DataFrame {
        let mut names = vec![predict::SCORE.to_string(), predict::RESULT.to_string()];
        if objective == Objective::MultiCe {
            names.extend((0..dim).map(|k| format!("{}{k}", predict::DETAIL_PREFIX)));
        }
        let rows: Vec<(String, Row)> = (0..self.n())
            .map(|i| {
                let p = objective::predict(objective, &raw[i * dim..(i + 1) * dim]);
                let features = match objective {
                    Objective::BinaryBce => vec![p[0], if p[0] > 0.5 { 1.0 } else { 0.0 }],
                    Objective::RegressionL2 => vec![p[0], p[0]],
                    Objective::MultiCe => {
                        let (best, max) =
                            p.iter()
                                .enumerate()
                                .fold(
                                    (0, f64::NEG_INFINITY),
                                    |acc, (k, &v)| if v > acc.1 { (k, v) } else { acc },
                                );
                        let mut f = vec![max, best as f64];
                        f.extend(&p);
                        f
                    }
                };
                (
                    self.keys[i].clone(),
                    Row {
                        match_id: self.match_ids[i].clone(),
                        label: self.labels[i],
                        weight: None,
                        features,
                    },
                )
            })
            .collect();
        let has_label = self.labels.iter().any(Option::is_some);
        DataFrame {
            schema: Schema {
                sample_id_name: self.schema.sample_id_name.clone(),
                match_id_name: self.schema.match_id_name.clone(),
                label_name: has_label.then(|| "label".to_string()),
                weight_name: None,
                feature_names: names,
                label_type: self.schema.label_type.clone(),
                dtype: "float64".into(),
                dataset_type: None,
            },
            table: ctx.computing.parallelize(rows, self.partitions),
        }
    }
}
