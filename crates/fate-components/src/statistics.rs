//! FATE 2.x `statistics` (fate-spec §4.7; `components/components/statistics.py`): each party
//! (guest, host) describes its own feature columns; nothing is federated.
//!
//! Metrics (FATE's names): `count` (non-missing values), `sum`, `mean`, `std`, `var` (ddof
//! `ddof`, default 1), `min`, `max`, `missing_count`, `missing_ratio`,
//! `coefficient_of_variation` (std / mean). Computed on the table by the `colstats` kernels.
//!
//! Output: `output_model` `{"meta": {"metrics", "ddof", "bias", "relative_error",
//! "skip_col", "model_type": "statistics"}, "data": {"metrics_summary": {metric: {column:
//! value}}}}` and the same summary as the metric `statistics` (type `statistics`); a value that
//! is undefined (std of one value) is null.
//!
//! Differences from FATE: `median`, `skewness`, `kurtosis` and percentiles (`"90%"`) are
//! refused with a parameter error naming `metrics` (not implemented yet); `bias` and
//! `relative_error` are checked and recorded but only those metrics would use them.

use crate::colstats::{self, get, typed};
use crate::{artifact, param};
use fate_runtime::{Component, ComponentError, Ctx};
use fate_types::Role;
use fate_types::component::{ArtifactKind, ComponentSpec};
use serde_json::{Map, Value, json};

pub struct Statistics;

/// The metrics this component computes.
pub const SUPPORTED: [&str; 10] = [
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
];

/// FATE's metrics this component does not compute yet (refused by name).
const NOT_YET: [&str; 3] = ["median", "skewness", "kurtosis"];

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
                ComponentError::param("metrics", format!("must be a list of metric names, got {v}"))
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
                    format!(
                        "metric `{m}` is not one of {}",
                        SUPPORTED.join(", ")
                    ),
                ));
            }
            if !out.contains(&m) {
                out.push(m);
            }
        }
        let ddof: u64 = typed(p, "ddof", "an integer >= 0")?.unwrap_or(1);
        let bias: bool = typed(p, "bias", "true or false")?.unwrap_or(true);
        let relative_error: f64 =
            typed(p, "relative_error", "a number in (0, 1]")?.unwrap_or(1e-3);
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
                param("ddof", false, Some(json!(1)), "delta degrees of freedom of std and var"),
                param("bias", false, Some(json!(true)), "biased skewness and kurtosis"),
                param("relative_error", false, Some(json!(1e-3)), "relative error of quantiles"),
                param("skip_col", false, None, "columns not described"),
                param("use_anonymous", false, Some(json!(false)), "interpret skip_col as anonymous names (only false)"),
            ],
            inputs: vec![artifact("input_data", ArtifactKind::Data, false, &gh)],
            outputs: vec![artifact("output_model", ArtifactKind::Model, false, &gh)],
        }
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
                    _ => Value::Null,
                };
                per_col.insert(names[c].clone(), v);
            }
            summary.insert(metric.clone(), Value::Object(per_col));
        }
        let summary = Value::Object(summary);
        ctx.metric("statistics", "statistics", summary.clone());
        ctx.output_model(
            "output_model",
            json!({
                "meta": {
                    "metrics": params.metrics,
                    "ddof": params.ddof,
                    "bias": params.bias,
                    "relative_error": params.relative_error,
                    "skip_col": params.skip_col,
                    "model_type": "statistics",
                },
                "data": {"metrics_summary": summary},
            }),
        );
        Ok(())
    }
}
