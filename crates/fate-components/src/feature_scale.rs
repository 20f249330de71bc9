//! FATE 2.x `feature_scale` (fate-spec §4.7; `components/components/feature_scale.py`,
//! `ml/preprocessing/feature_scale.py`): each party (guest, host) scales its own feature
//! columns; nothing is federated.
//!
//! - `standard`: `x' = (x − mean) / std`, mean and std (ddof 1) of the training data.
//! - `min_max`: `scale = (range_max − range_min) / (max − min)` (a range below 1e-6 counts as
//!   1.0, as FATE), `scale_min = min · scale`, `x' = x · scale − scale_min + range_min`, clipped
//!   to `[range_min, range_max]` when `strict_range`.
//!
//! Train stage: `train_data` → `train_output_data` and `output_model` (FATE's model:
//! `{"method", "scaler_info": {...}}` with FATE's keys per method, values per column name).
//! Predict stage: `input_model` applied to `test_data` → `test_output_data`.
//!
//! Differences from FATE: FATE's min_max transform subtracts `range_min` (`x·scale −
//! (scale_min + range_min)`, contrary to its own docstring); here it is added, as the docstring
//! and 1.x say (the same for the default range [0, 1]). A standard column whose std is 0 (or
//! undefined: fewer than 2 values) is divided by 1 instead of giving NaN/inf for every row.
//! `use_anonymous` is accepted only as false (columns have no anonymous names here).

use crate::colstats::{self, get, typed};
use crate::{artifact, param};
use fate_computing::{ComputingError, Kernel, KernelRegistry, MapValues};
use fate_runtime::{Component, ComponentError, Ctx, DataFrame, Row};
use fate_types::Role;
use fate_types::component::{ArtifactKind, ComponentSpec};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

pub struct FeatureScale;

/// `method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Standard,
    MinMax,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Standard => "standard",
            Method::MinMax => "min_max",
        }
    }
}

/// `feature_range`: one `[min, max]` for every column or one per column name (others [0, 1]).
#[derive(Debug, Clone, PartialEq)]
pub enum FeatureRange {
    All(f64, f64),
    PerColumn(Vec<(String, f64, f64)>),
}

/// The train stage's parameters, checked before any data is read.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    pub method: Method,
    pub feature_range: FeatureRange,
    pub scale_col: Option<Vec<String>>,
    pub scale_idx: Option<Vec<u64>>,
    pub strict_range: bool,
}

fn range_pair(v: &Value, field: &str) -> Result<(f64, f64), ComponentError> {
    let bad =
        || ComponentError::param(field, format!("must be [min, max] with min < max, got {v}"));
    let a = v.as_array().filter(|a| a.len() == 2).ok_or_else(bad)?;
    let (lo, hi) = (
        a[0].as_f64().ok_or_else(bad)?,
        a[1].as_f64().ok_or_else(bad)?,
    );
    if !(lo.is_finite() && hi.is_finite() && lo < hi) {
        return Err(bad());
    }
    Ok((lo, hi))
}

impl Params {
    /// Parses FATE's parameters (absent or null ones take FATE's defaults); every error names
    /// the field.
    pub fn from_map(p: &Map<String, Value>) -> Result<Self, ComponentError> {
        let method = match get(p, "method").map(|v| v.as_str()) {
            None | Some(Some("standard")) => Method::Standard,
            Some(Some("min_max")) => Method::MinMax,
            _ => {
                return Err(ComponentError::param(
                    "method",
                    format!("{} is not one of standard, min_max", p["method"]),
                ));
            }
        };
        let feature_range = match get(p, "feature_range") {
            None => FeatureRange::All(0.0, 1.0),
            Some(Value::Object(m)) => FeatureRange::PerColumn(
                m.iter()
                    .map(|(k, v)| {
                        range_pair(v, "feature_range").map(|(lo, hi)| (k.clone(), lo, hi))
                    })
                    .collect::<Result<_, _>>()?,
            ),
            Some(v) => {
                let (lo, hi) = range_pair(v, "feature_range")?;
                FeatureRange::All(lo, hi)
            }
        };
        let scale_col: Option<Vec<String>> = typed(p, "scale_col", "a list of column names")?;
        let scale_idx: Option<Vec<u64>> =
            typed(p, "scale_idx", "a list of column indexes (integers >= 0)")?;
        if scale_col.is_some() && scale_idx.is_some() {
            return Err(ComponentError::param(
                "scale_col",
                "`scale_col` and `scale_idx` cannot be specified simultaneously",
            ));
        }
        let strict_range = typed(p, "strict_range", "true or false")?.unwrap_or(true);
        if typed(p, "use_anonymous", "true or false")?.unwrap_or(false) {
            return Err(ComponentError::param(
                "use_anonymous",
                "anonymous column names are not supported; name the columns themselves",
            ));
        }
        Ok(Params {
            method,
            feature_range,
            scale_col,
            scale_idx,
            strict_range,
        })
    }
}

/// How one column is scaled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ColumnScale {
    Standard {
        mean: f64,
        std: f64,
    },
    MinMax {
        scale: f64,
        scale_min: f64,
        range_min: f64,
        range_max: f64,
        strict: bool,
    },
}

impl ColumnScale {
    pub fn apply(&self, x: f64) -> f64 {
        match *self {
            ColumnScale::Standard { mean, std } => {
                let d = if std > 0.0 && std.is_finite() {
                    std
                } else {
                    1.0
                };
                (x - mean) / d
            }
            ColumnScale::MinMax {
                scale,
                scale_min,
                range_min,
                range_max,
                strict,
            } => {
                let y = x * scale - scale_min + range_min;
                if strict && !y.is_nan() {
                    y.clamp(range_min, range_max)
                } else {
                    y
                }
            }
        }
    }
}

/// The table work: scales columns `cols[j]` by `scales[j]`, other columns unchanged.
#[derive(Debug, Serialize, Deserialize)]
pub struct ScaleRows {
    pub cols: Vec<usize>,
    pub scales: Vec<ColumnScale>,
}
impl Kernel for ScaleRows {
    const NAME: &'static str = "fate_components.feature_scale.scale_rows";
}
impl MapValues for ScaleRows {
    type In = Row;
    type Out = Row;
    fn apply(&self, r: &Row) -> Row {
        let mut r = r.clone();
        for (&c, s) in self.cols.iter().zip(&self.scales) {
            if let Some(x) = r.features.get_mut(c) {
                *x = s.apply(*x);
            }
        }
        r
    }
}

pub(crate) fn register_kernels(r: &mut KernelRegistry) -> Result<(), ComputingError> {
    r.map_values::<ScaleRows>()?;
    Ok(())
}

/// A fitted scaler: the columns (by name) and how each is scaled.
#[derive(Debug, Clone, PartialEq)]
pub struct Scaler {
    pub method: Method,
    pub select_col: Vec<String>,
    pub scales: Vec<ColumnScale>,
}

fn by_col(cols: &[String], values: impl Iterator<Item = f64>) -> Value {
    Value::Object(cols.iter().cloned().zip(values.map(|v| json!(v))).collect())
}

impl Scaler {
    /// Fits `params` on `df` (the moments come from the table's kernels).
    pub fn fit(df: &DataFrame, params: &Params) -> Result<Scaler, ComponentError> {
        let names = &df.schema.feature_names;
        let cols = colstats::select_columns(
            names,
            params.scale_col.as_deref(),
            params.scale_idx.as_deref(),
            "scale_col",
            "scale_idx",
        )?;
        let select_col: Vec<String> = cols.iter().map(|&c| names[c].clone()).collect();
        if let FeatureRange::PerColumn(per) = &params.feature_range {
            if let Some((c, _, _)) = per.iter().find(|(c, _, _)| !select_col.contains(c)) {
                return Err(ComponentError::param(
                    "feature_range",
                    format!("column `{c}` is not a scaled column"),
                ));
            }
        }
        let m = colstats::moments(&df.table, &cols)?;
        let scales = (0..cols.len())
            .map(|j| match params.method {
                Method::Standard => ColumnScale::Standard {
                    mean: m.mean[j],
                    std: m.var(j, 1).sqrt(),
                },
                Method::MinMax => {
                    let (range_min, range_max) = match &params.feature_range {
                        FeatureRange::All(lo, hi) => (*lo, *hi),
                        FeatureRange::PerColumn(per) => per
                            .iter()
                            .find(|(c, _, _)| *c == select_col[j])
                            .map(|(_, lo, hi)| (*lo, *hi))
                            .unwrap_or((0.0, 1.0)),
                    };
                    let mut data_range = m.max[j] - m.min[j];
                    // FATE: "for safe division" (also a column of missing values only).
                    if !(data_range >= 1e-6) {
                        data_range = 1.0;
                    }
                    let scale = (range_max - range_min) / data_range;
                    let min = if m.n[j] > 0 { m.min[j] } else { 0.0 };
                    ColumnScale::MinMax {
                        scale,
                        scale_min: min * scale,
                        range_min,
                        range_max,
                        strict: params.strict_range,
                    }
                }
            })
            .collect();
        Ok(Scaler {
            method: params.method,
            select_col,
            scales,
        })
    }

    /// FATE's model: `{"method", "scaler_info"}` (`FeatureScale.to_model`).
    pub fn to_model(&self) -> Value {
        let cols = &self.select_col;
        let info = match self.method {
            Method::Standard => {
                let get = |f: fn(&ColumnScale) -> f64| by_col(cols, self.scales.iter().map(f));
                json!({
                    "mean": get(|s| match s { ColumnScale::Standard { mean, .. } => *mean, _ => f64::NAN }),
                    "mean_dtype": "float64",
                    "std": get(|s| match s { ColumnScale::Standard { std, .. } => *std, _ => f64::NAN }),
                    "std_dtype": "float64",
                    "select_col": cols,
                })
            }
            Method::MinMax => {
                let field = |i: usize| {
                    by_col(
                        cols,
                        self.scales.iter().map(move |s| match s {
                            ColumnScale::MinMax {
                                scale,
                                scale_min,
                                range_min,
                                range_max,
                                ..
                            } => [*scale, *scale_min, *range_min, *range_max][i],
                            _ => f64::NAN,
                        }),
                    )
                };
                let strict = self
                    .scales
                    .iter()
                    .any(|s| matches!(s, ColumnScale::MinMax { strict: true, .. }));
                json!({
                    "scale": field(0), "scale_dtype": "float64",
                    "scale_min": field(1), "scale_min_dtype": "float64",
                    "range_min": field(2), "range_min_dtype": "float64",
                    "range_max": field(3), "range_max_dtype": "float64",
                    "strict_range": strict || self.scales.is_empty(),
                    "select_col": cols,
                })
            }
        };
        json!({"method": self.method.as_str(), "scaler_info": info})
    }

    /// Reads a model written by [`Scaler::to_model`] (or FATE); errors name the model field.
    pub fn from_model(model: &Value) -> Result<Scaler, ComponentError> {
        let bad = |field: &str, why: &str| ComponentError::Input {
            key: "input_model".into(),
            reason: format!("`{field}` {why}"),
        };
        let method = match model.get("method").and_then(Value::as_str) {
            Some("standard") => Method::Standard,
            Some("min_max") => Method::MinMax,
            _ => return Err(bad("method", "is not standard or min_max")),
        };
        let info = model
            .get("scaler_info")
            .and_then(Value::as_object)
            .ok_or_else(|| bad("scaler_info", "is missing"))?;
        let select_col: Vec<String> = info
            .get("select_col")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .ok_or_else(|| bad("scaler_info.select_col", "is not a list of column names"))?;
        let number = |field: &str, col: &str| -> Result<f64, ComponentError> {
            info.get(field)
                .and_then(|m| m.get(col))
                .and_then(Value::as_f64)
                .ok_or_else(|| {
                    bad(
                        &format!("scaler_info.{field}.{col}"),
                        "is missing or not a number",
                    )
                })
        };
        let strict = info
            .get("strict_range")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        let scales = select_col
            .iter()
            .map(|c| {
                Ok(match method {
                    Method::Standard => ColumnScale::Standard {
                        mean: number("mean", c)?,
                        std: number("std", c)?,
                    },
                    Method::MinMax => ColumnScale::MinMax {
                        scale: number("scale", c)?,
                        scale_min: number("scale_min", c)?,
                        range_min: number("range_min", c)?,
                        range_max: number("range_max", c)?,
                        strict,
                    },
                })
            })
            .collect::<Result<_, ComponentError>>()?;
        Ok(Scaler {
            method,
            select_col,
            scales,
        })
    }

    /// Scales `df`'s selected columns; a column the model names that `df` lacks is an error.
    pub fn transform(&self, df: &DataFrame, input: &str) -> Result<DataFrame, ComponentError> {
        let cols = self
            .select_col
            .iter()
            .map(|c| {
                df.schema.column(c).ok_or_else(|| ComponentError::Input {
                    key: input.into(),
                    reason: format!("the model scales column `{c}`, which the data does not have"),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(DataFrame {
            schema: df.schema.clone(),
            table: df.table.map_values(&ScaleRows {
                cols,
                scales: self.scales.clone(),
            }),
        })
    }
}

impl Component for FeatureScale {
    fn spec(&self) -> ComponentSpec {
        let gh = [Role::Guest, Role::Host];
        ComponentSpec {
            name: "feature_scale".into(),
            legacy_modules: vec!["FeatureScale".into()],
            description: "scales each party's own feature columns (standard or min_max)".into(),
            roles: gh.to_vec(),
            params: vec![
                param(
                    "method",
                    false,
                    Some(json!("standard")),
                    "standard or min_max",
                ),
                param(
                    "feature_range",
                    false,
                    Some(json!([0, 1])),
                    "min_max result range: [min, max] for all columns or {column: [min, max]} (others [0, 1])",
                ),
                param(
                    "scale_col",
                    false,
                    None,
                    "column names to scale (default all); not with scale_idx",
                ),
                param(
                    "scale_idx",
                    false,
                    None,
                    "column indexes to scale (default all); not with scale_col",
                ),
                param(
                    "strict_range",
                    false,
                    Some(json!(true)),
                    "min_max: clip transformed values to feature_range",
                ),
                param(
                    "use_anonymous",
                    false,
                    Some(json!(false)),
                    "interpret scale_col as anonymous names (only false)",
                ),
            ],
            inputs: vec![
                // Optional in the declaration: each stage has its own inputs; the run checks.
                artifact("train_data", ArtifactKind::Data, true, &gh),
                artifact("test_data", ArtifactKind::Data, true, &gh),
                artifact("input_model", ArtifactKind::Model, true, &gh),
            ],
            outputs: vec![
                artifact("train_output_data", ArtifactKind::Data, true, &gh),
                artifact("output_model", ArtifactKind::Model, true, &gh),
                artifact("test_output_data", ArtifactKind::Data, true, &gh),
            ],
        }
    }

    /// The train stage's parameters are parsed at plan time by the function its run uses, so a
    /// bad value is refused at submit naming the field (the predict stage takes the model's).
    fn check_params(
        &self,
        stage: &str,
        _role: Role,
        params: &Map<String, Value>,
    ) -> Result<(), ComponentError> {
        match stage {
            "predict" => Ok(()),
            _ => Params::from_map(params).map(drop),
        }
    }

    fn run(&self, ctx: &Ctx) -> Result<(), ComponentError> {
        match ctx.stage.as_str() {
            "train" | "default" => {
                let params = Params::from_map(&ctx.params)?;
                let df = ctx.input_data("train_data")?;
                let scaler = Scaler::fit(&df, &params)?;
                ctx.output_model("output_model", scaler.to_model());
                let out = scaler.transform(&df, "train_data")?;
                ctx.output_data("train_output_data", &out)
            }
            "predict" => {
                let model =
                    ctx.input_model("input_model")
                        .ok_or_else(|| ComponentError::Input {
                            key: "input_model".into(),
                            reason: "the predict stage needs the model of a trained feature_scale"
                                .into(),
                        })?;
                let scaler = Scaler::from_model(model)?;
                let df = ctx.input_data("test_data")?;
                let out = scaler.transform(&df, "test_data")?;
                ctx.output_data("test_output_data", &out)
            }
            other => Err(ComponentError::Failed(format!(
                "feature_scale has no `{other}` stage (train, predict)"
            ))),
        }
    }
}
