//! FATE 2.x `statistics` (fate-spec §4.7; `components/components/statistics.py`): each party
//! (guest, host) describes its own feature columns; nothing is federated.
//!
//! Metrics (FATE's names, `ml/statistics/statistics.py`): `count` (non-missing values),
//! `sum`, `mean`, `std`, `var` (ddof `ddof`, default 1), `min`, `max`, `missing_count`,
//! `missing_ratio`, `coefficient_of_variation` (std / mean), `skewness` and `kurtosis` (FATE's
//! Fisher-Pearson and Fisher coefficients from the population moments, bias-corrected unless
//! `bias`; 0 for a column whose population variance is below 1e-6). Computed on the table by
//! the `colstats` kernels (pairwise merged central moments up to the fourth).
//!
//! Output: `output_model` in FATE's shape, `{"inner_metric_names": [...], "metrics_summary":
//! {column: {metric: value}}, "metrics": [...]}` (pandas' `to_dict()` of the summary frame),
//! plus `ddof`, `bias` and `skip_col`; the summary also as the metric `statistics` (type
//! `statistics`, metric-major: `{metric: {column: value}}`). An undefined value (the std of one
//! value) is null.
//!
//! Differences from FATE: `median`, `describe` and percentiles (`"90%"`) are refused with a
//! parameter error naming `metrics` (not implemented yet); `missing_ratio` is missing values
//! over rows; `relative_error` (spec §4.7, for quantiles) is checked and recorded only.

use crate::colstats::{self, get, typed};
use crate::{artifact, param};
use fate_runtime::{Component, ComponentError, Ctx};
use fate_types::Role;
use fate_types::component::{ArtifactKind, ComponentSpec};
use serde_json::{Map, Value, json};

pub struct Statistics;

/// The metrics this component computes.
pub const SUPPORTED: [&str; 12] = [
    "count",
    "sum",
    "mean",
    "std",
    "var",
    "min",
    "max",
    "missing_count",
    "missing_ratio",
    "coefficient_of_variation",
    "skewness",
    "kurtosis",
];

/// FATE's metrics this component does not compute yet (refused by name).
const NOT_YET: [&str; 2] = ["median", "describe"];

#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    pub metrics: Vec<String>,
    pub ddof: u64,
    pub bias: bool,
    pub relative_error: f64,
    pub skip_col: Option<Vec<String>>,
}

impl Params {
    pub fn from_map(p: &Map<String, Value>) -> Result<Self, ComponentError> {
        let metrics: Vec<String> = match get(p, "metrics") {
            None => vec!["mean".into(), "std".into(), "min".into(), "max".into()],
            Some(Value::String(s)) => vec![s.clone()],
            Some(v) => serde_json::from_value(v.clone()).map_err(|_| {
                ComponentError::param(
                    "metrics",
                    format!("must be a list of metric names, got {v}"),
                )
            })?,
        };
        if metrics.is_empty() {
            return Err(ComponentError::param("metrics", "is empty"));
        }
        let mut out: Vec<String> = Vec::new();
        for m in metrics {
            let m = m.to_lowercase();
            if NOT_YET.contains(&m.as_str()) || m.ends_with('%') {
                return Err(ComponentError::param(
                    "metrics",
                    format!(
                        "metric `{m}` is not implemented yet; supported metrics are {}",
                        SUPPORTED.join(", ")
                    ),
                ));
            }
            if !SUPPORTED.contains(&m.as_str()) {
                return Err(ComponentError::param(
                    "metrics",
                    format!("metric `{m}` is not one of {}", SUPPORTED.join(", ")),
                ));
            }
            if !out.contains(&m) {
                out.push(m);
            }
        }
        let ddof: u64 = typed(p, "ddof", "an integer >= 0")?.unwrap_or(1);
        let bias: bool = typed(p, "bias", "true or false")?.unwrap_or(true);
        let relative_error: f64 = typed(p, "relative_error", "a number in (0, 1]")?.unwrap_or(1e-3);
        if !(relative_error > 0.0 && relative_error <= 1.0) {
            return Err(ComponentError::param(
                "relative_error",
                format!("must be in (0, 1], got {relative_error}"),
            ));
        }
        let skip_col = typed(p, "skip_col", "a list of column names")?;
        if typed(p, "use_anonymous", "true or false")?.unwrap_or(false) {
            return Err(ComponentError::param(
                "use_anonymous",
                "anonymous column names are not supported; name the columns themselves",
            ));
        }
        Ok(Params {
            metrics: out,
            ddof,
            bias,
            relative_error,
            skip_col,
        })
    }
}

fn num(x: f64) -> Value {
    if x.is_finite() { json!(x) } else { Value::Null }
}

impl Component for Statistics {
    fn spec(&self) -> ComponentSpec {
        let gh = [Role::Guest, Role::Host];
        ComponentSpec {
            name: "statistics".into(),
            legacy_modules: vec!["DataStatistics".into()],
            description: "describes each party's own feature columns".into(),
            roles: gh.to_vec(),
            params: vec![
                param(
                    "metrics",
                    false,
                    Some(json!(["mean", "std", "min", "max"])),
                    "count, sum, mean, std, var, min, max, missing_count, missing_ratio, coefficient_of_variation",
                ),
                param(
                    "ddof",
                    false,
                    Some(json!(1)),
                    "delta degrees of freedom of std and var",
                ),
                param(
                    "bias",
                    false,
                    Some(json!(true)),
                    "biased skewness and kurtosis",
                ),
                param(
                    "relative_error",
                    false,
                    Some(json!(1e-3)),
                    "relative error of quantiles",
                ),
                param("skip_col", false, None, "columns not described"),
                param(
                    "use_anonymous",
                    false,
                    Some(json!(false)),
                    "interpret skip_col as anonymous names (only false)",
                ),
            ],
            inputs: vec![artifact("input_data", ArtifactKind::Data, false, &gh)],
            outputs: vec![artifact("output_model", ArtifactKind::Model, false, &gh)],
        }
    }

    /// Parsed at plan time by the function its run uses: a bad value is refused at submit,
    /// naming the field.
    fn check_params(
        &self,
        _stage: &str,
        _role: Role,
        params: &Map<String, Value>,
    ) -> Result<(), ComponentError> {
        Params::from_map(params).map(drop)
    }

    fn run(&self, ctx: &Ctx) -> Result<(), ComponentError> {
        let params = Params::from_map(&ctx.params)?;
        let df = ctx.input_data("input_data")?;
        let names = &df.schema.feature_names;
        if let Some(skip) = &params.skip_col {
            if let Some(c) = skip.iter().find(|c| !names.contains(c)) {
                return Err(ComponentError::param(
                    "skip_col",
                    format!("column `{c}` is not in the data"),
                ));
            }
        }
        let cols: Vec<usize> = (0..names.len())
            .filter(|&i| {
                params
                    .skip_col
                    .as_ref()
                    .is_none_or(|s| !s.contains(&names[i]))
            })
            .collect();
        let m = colstats::moments(&df.table, &cols)?;
        let mut summary = Map::new();
        for metric in &params.metrics {
            let mut per_col = Map::new();
            for (j, &c) in cols.iter().enumerate() {
                let std = m.var(j, params.ddof).sqrt();
                let v = match metric.as_str() {
                    "count" => json!(m.n[j]),
                    "sum" => num(m.sum[j]),
                    "mean" if m.n[j] > 0 => num(m.mean[j]),
                    "std" => num(std),
                    "var" => num(m.var(j, params.ddof)),
                    "min" => num(m.min[j]),
                    "max" => num(m.max[j]),
                    "missing_count" => json!(m.missing[j]),
                    "missing_ratio" if m.rows > 0 => num(m.missing[j] as f64 / m.rows as f64),
                    "coefficient_of_variation" if m.n[j] > 0 => num(std / m.mean[j]),
                    "skewness" if m.n[j] > 0 => num(m.skewness(j, params.bias)),
                    "kurtosis" if m.n[j] > 0 => num(m.kurtosis(j, params.bias)),
                    _ => Value::Null,
                };
                per_col.insert(names[c].clone(), v);
            }
            summary.insert(metric.clone(), Value::Object(per_col));
        }
        let summary = Value::Object(summary);
        ctx.metric("statistics", "statistics", summary.clone());
        let mut by_column = Map::new();
        for &c in &cols {
            let per_metric: Map<String, Value> = params
                .metrics
                .iter()
                .map(|m| (m.clone(), summary[m][&names[c]].clone()))
                .collect();
            by_column.insert(names[c].clone(), Value::Object(per_metric));
        }
        ctx.output_model(
            "output_model",
            json!({
                "inner_metric_names": params.metrics,
                "metrics_summary": by_column,
                "metrics": params.metrics,
                "ddof": params.ddof,
                "bias": params.bias,
                "skip_col": params.skip_col,
            }),
        );
        Ok(())
    }
}
