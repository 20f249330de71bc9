//! FATE 2.x `evaluation` (fate-spec §4.7; `components/evaluation.py`, `ml/evaluation/tool.py`):
//! scores one or more prediction dataframes at the party that has them.
//!
//! Each `input_datas` artifact is a prediction dataframe (`fate_runtime::data::predict`): the
//! true label in `Row.label`, the prediction in the `predict_score` column (binary, regression)
//! or `predict_result` column (multi-class). Without `metrics`, `default_eval_setting` picks
//! FATE's default set; with `metrics`, exactly those are computed. A party without
//! `input_datas` (FATE's host) and the arbiter do nothing and succeed.
//!
//! Metrics recorded per input, in the order computed (metric *type* is the metric's setting,
//! `binary`, `multi` or `regression`; `data[<name>]` is always the metric's value and
//! `data.input` names the input table):
//! - `auc`: `{"auc": x, "roc": [{threshold, tpr, fpr}]}` (`threshold` null at the origin)
//! - `ks`: `{"ks": x, "curve": [{threshold, cuts, tpr, fpr}]}` (FATE's `ks_table`)
//! - `confusion_matrix`: `{"confusion_matrix": [{threshold, cuts, tp, fp, fn, tn}]}`
//! - `lift` / `gain`: `{"lift": [{threshold, liftx: [neg, pos], lifty: [neg, pos]}]}`
//!   (`gainx` / `gainy` for gain)
//! - `biclass_precision_table` / `biclass_recall_table` / `biclass_accuracy_table` /
//!   `fscore_table`: rows `{threshold, cuts, p | r | accuracy | f_score}`
//! - `binary_accuracy`, `binary_precision`, `binary_recall`, `binary_f1_score`: the number and
//!   `threshold` 0.5
//! - `multi_accuracy`, `multi_precision`, `multi_recall` (macro), `multi_f1_score` (micro, as
//!   FATE; `macro` given too): the number and `average`
//! - `rmse`, `mse`, `mae`, `r2_score`: the number.
//!
//! Then one metric `evaluation` of type `evaluation` in FATE's own shape: `{<producer task>:
//! {<data set>: [{"metric", "val"} | [..] per metric]}}` (data set `train_set`, `test_set`, ...,
//! or `origin` for a frame that names none; the table name for a warehouse table), tables as column lists (`DataFrame.to_dict(
//! orient="list")`). Metrics are recorded only once every input has been evaluated.
//!
//! Differences from FATE: with an explicit `metrics` list, multi-class metrics read
//! `predict_result` (FATE reads `predict_score` for every metric and then fails on probabilities);
//! FATE's `psi` metric, which needs two score sets, is not offered here.

pub mod metrics;

use crate::param;
use fate_computing::Table;
use fate_runtime::data::predict;
use fate_runtime::{Component, ComponentError, Ctx, InputArtifact, Row, Schema};
use fate_types::Role;
use fate_types::component::{ArtifactKind, ArtifactSpec, ComponentSpec};
use metrics::{BinaryData, CurveRow, MetricError, PairRow};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// The component's one (multi, optional) data input.
/// FATE 2.2 names this input `input_datas` (`cpn.dataframe_inputs`), as its pipeline SDK sends it.
pub const INPUT: &str = "input_datas";

pub struct Evaluation;

/// FATE's `default_eval_setting`, and the category (metric type) of each metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvalSetting {
    Binary,
    Multi,
    Regression,
}

impl EvalSetting {
    pub const ALL: [EvalSetting; 3] = [
        EvalSetting::Binary,
        EvalSetting::Multi,
        EvalSetting::Regression,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EvalSetting::Binary => "binary",
            EvalSetting::Multi => "multi",
            EvalSetting::Regression => "regression",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// FATE's default metrics of the setting (`tool.py`: `get_binary_metrics`, ...).
    pub fn default_metrics(self) -> &'static [MetricName] {
        use MetricName::*;
        match self {
            EvalSetting::Binary => &[
                Auc,
                Ks,
                ConfusionMatrix,
                Gain,
                Lift,
                BiclassPrecisionTable,
                BiclassRecallTable,
                BiclassAccuracyTable,
                FscoreTable,
            ],
            EvalSetting::Multi => &[MultiAccuracy, MultiPrecision, MultiRecall],
            EvalSetting::Regression => &[Rmse, Mae, Mse, R2Score],
        }
    }

    /// The prediction column read when `predict_column_name` is not given.
    pub fn default_predict_column(self) -> &'static str {
        match self {
            EvalSetting::Multi => predict::RESULT,
            EvalSetting::Binary | EvalSetting::Regression => predict::SCORE,
        }
    }
}

/// A metric FATE's `evaluation` accepts by name in `metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MetricName {
    Auc,
    MultiAccuracy,
    MultiRecall,
    MultiPrecision,
    BinaryAccuracy,
    BinaryRecall,
    BinaryPrecision,
    MultiF1Score,
    BinaryF1Score,
    Ks,
    ConfusionMatrix,
    Lift,
    Gain,
    BiclassPrecisionTable,
    BiclassRecallTable,
    BiclassAccuracyTable,
    FscoreTable,
    Rmse,
    Mse,
    Mae,
    R2Score,
}

impl MetricName {
    /// Every metric, in FATE's listing order.
    pub const ALL: [MetricName; 21] = {
        use MetricName::*;
        [
            Auc,
            MultiAccuracy,
            MultiRecall,
            MultiPrecision,
            BinaryAccuracy,
            BinaryRecall,
            BinaryPrecision,
            MultiF1Score,
            BinaryF1Score,
            Ks,
            ConfusionMatrix,
            Lift,
            Gain,
            BiclassPrecisionTable,
            BiclassRecallTable,
            BiclassAccuracyTable,
            FscoreTable,
            Rmse,
            Mse,
            Mae,
            R2Score,
        ]
    };

    pub fn as_str(self) -> &'static str {
        use MetricName::*;
        match self {
            Auc => "auc",
            MultiAccuracy => "multi_accuracy",
            MultiRecall => "multi_recall",
            MultiPrecision => "multi_precision",
            BinaryAccuracy => "binary_accuracy",
            BinaryRecall => "binary_recall",
            BinaryPrecision => "binary_precision",
            MultiF1Score => "multi_f1_score",
            BinaryF1Score => "binary_f1_score",
            Ks => "ks",
            ConfusionMatrix => "confusion_matrix",
            Lift => "lift",
            Gain => "gain",
            BiclassPrecisionTable => "biclass_precision_table",
            BiclassRecallTable => "biclass_recall_table",
            BiclassAccuracyTable => "biclass_accuracy_table",
            FscoreTable => "fscore_table",
            Rmse => "rmse",
            Mse => "mse",
            Mae => "mae",
            R2Score => "r2_score",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }

    /// The metric's category: its metric type and the labels it needs.
    pub fn setting(self) -> EvalSetting {
        use MetricName::*;
        match self {
            MultiAccuracy | MultiRecall | MultiPrecision | MultiF1Score => EvalSetting::Multi,
            Rmse | Mse | Mae | R2Score => EvalSetting::Regression,
            _ => EvalSetting::Binary,
        }
    }
}

/// The resolved parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalConfig {
    /// Metrics to compute, in order, without repeats.
    pub metrics: Vec<MetricName>,
    pub predict_column_name: Option<String>,
    pub label_column_name: Option<String>,
}

impl EvalConfig {
    /// Validates FATE's parameters: an unknown setting or metric is a parameter error that
    /// lists the accepted values.
    pub fn new(
        default_eval_setting: Option<&str>,
        metrics: Option<&[String]>,
        predict_column_name: Option<String>,
        label_column_name: Option<String>,
    ) -> Result<Self, ComponentError> {
        let setting_name = default_eval_setting.unwrap_or("binary");
        let setting = EvalSetting::parse(setting_name).ok_or_else(|| {
            ComponentError::param(
                "default_eval_setting",
                format!("`{setting_name}` is not one of binary, multi, regression"),
            )
        })?;
        let metrics = match metrics {
            None => setting.default_metrics().to_vec(),
            Some([]) => {
                return Err(ComponentError::param(
                    "metrics",
                    "is empty; give metric names or null for the defaults",
                ));
            }
            Some(names) => {
                let mut out = Vec::new();
                for name in names {
                    let m = MetricName::parse(name).ok_or_else(|| {
                        let supported: Vec<&str> =
                            MetricName::ALL.iter().map(|m| m.as_str()).collect();
                        ComponentError::param(
                            "metrics",
                            format!(
                                "metric `{name}` is not supported; supported metrics are {}",
                                supported.join(", ")
                            ),
                        )
                    })?;
                    if !out.contains(&m) {
                        out.push(m);
                    }
                }
                out
            }
        };
        Ok(EvalConfig {
            metrics,
            predict_column_name,
            label_column_name,
        })
    }

    fn from_ctx(ctx: &Ctx) -> Result<Self, ComponentError> {
        let setting: Option<String> = ctx.param_opt("default_eval_setting")?;
        let metrics: Option<Vec<String>> = ctx.param_opt("metrics")?;
        EvalConfig::new(
            setting.as_deref(),
            metrics.as_deref(),
            ctx.param_opt("predict_column_name")?,
            ctx.param_opt("label_column_name")?,
        )
    }

    /// The prediction column `metric` reads.
    pub fn predict_column(&self, metric: MetricName) -> &str {
        self.predict_column_name
            .as_deref()
            .unwrap_or_else(|| metric.setting().default_predict_column())
    }
}

/// One metric's result on one input.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricOutput {
    pub name: MetricName,
    /// The data of the metric's own record (`data[name]` is the value).
    pub data: Map<String, Value>,
    /// FATE's `EvalResult.to_dict()` of the metric (a list for KS: value and table).
    pub fate: Value,
}

fn data_error(input: &str, reason: impl std::fmt::Display) -> ComponentError {
    ComponentError::Data(format!("{INPUT} `{input}`: {reason}"))
}

fn metric_error(input: &str, metric: MetricName, e: MetricError) -> ComponentError {
    data_error(input, format_args!("metric `{}`: {e}", metric.as_str()))
}

/// Where a value of each row is read from.
enum Column {
    Label,
    Feature(usize),
}

fn column_values(
    input: &str,
    rows: &[(String, Row)],
    column: &Column,
    name: &str,
) -> Result<Vec<f64>, ComponentError> {
    rows.iter()
        .map(|(sid, row)| match column {
            Column::Label => row
                .label
                .ok_or_else(|| data_error(input, format_args!("sample `{sid}` has no label"))),
            Column::Feature(i) => row.features.get(*i).copied().ok_or_else(|| {
                data_error(
                    input,
                    format_args!("sample `{sid}` has no value for column `{name}`"),
                )
            }),
        })
        .collect()
}

fn columns_list(schema: &Schema) -> String {
    let mut names: Vec<&str> = schema.label_name.iter().map(String::as_str).collect();
    names.extend(schema.feature_names.iter().map(String::as_str));
    names.join(", ")
}

/// Resolves a column by name: the label (its schema name or `label`) or a feature column.
fn resolve(
    input: &str,
    schema: &Schema,
    name: &str,
    param_name: &str,
    given: bool,
) -> Result<Column, ComponentError> {
    if schema.label_name.as_deref() == Some(name)
        || (name == "label" && schema.label_name.is_some())
    {
        return Ok(Column::Label);
    }
    if let Some(i) = schema.column(name) {
        return Ok(Column::Feature(i));
    }
    let reason = format!(
        "column `{name}` is not in {INPUT} `{input}` (columns: {})",
        columns_list(schema)
    );
    Err(if given {
        ComponentError::param(param_name, reason)
    } else {
        ComponentError::Input {
            key: INPUT.into(),
            reason: format!("{reason}; set {param_name}"),
        }
    })
}

fn labels(
    config: &EvalConfig,
    input: &str,
    schema: &Schema,
    rows: &[(String, Row)],
) -> Result<Vec<f64>, ComponentError> {
    let column = match &config.label_column_name {
        Some(name) => resolve(input, schema, name, "label_column_name", true)?,
        None if schema.label_name.is_some() => Column::Label,
        None => {
            return Err(ComponentError::Input {
                key: INPUT.into(),
                reason: format!("`{input}` has no label column; set label_column_name"),
            });
        }
    };
    column_values(
        input,
        rows,
        &column,
        config.label_column_name.as_deref().unwrap_or("label"),
    )
}

/// Column-oriented form of rows of objects (pandas `to_dict(orient="list")`).
fn columns_of(rows: &[Value]) -> Value {
    let mut out = Map::new();
    for row in rows {
        if let Value::Object(fields) = row {
            for (k, v) in fields {
                if let Value::Array(col) = out
                    .entry(k.clone())
                    .or_insert_with(|| Value::Array(Vec::new()))
                {
                    col.push(v.clone());
                }
            }
        }
    }
    Value::Object(out)
}

fn to_values<T: serde::Serialize>(rows: &[T]) -> Vec<Value> {
    rows.iter()
        .map(|r| serde_json::to_value(r).unwrap_or(Value::Null))
        .collect()
}

fn curve_rows(rows: &[CurveRow], key: &str) -> Vec<Value> {
    rows.iter()
        .map(|r| json!({"threshold": r.threshold, "cuts": r.cuts, key: r.value}))
        .collect()
}

fn pair_rows(rows: &[PairRow], x: &str, y: &str) -> Vec<Value> {
    rows.iter()
        .map(|r| json!({"threshold": r.threshold, x: r.x, y: r.y}))
        .collect()
}

fn scalar(name: MetricName, value: f64, extra: &[(&str, Value)]) -> MetricOutput {
    let mut data = Map::new();
    data.insert(name.as_str().into(), json!(value));
    for (k, v) in extra {
        data.insert((*k).into(), v.clone());
    }
    MetricOutput {
        name,
        data,
        fate: json!({"metric": name.as_str(), "val": value}),
    }
}

fn table(name: MetricName, rows: Vec<Value>) -> MetricOutput {
    let fate = json!({"metric": name.as_str(), "val": columns_of(&rows)});
    let mut data = Map::new();
    data.insert(name.as_str().into(), Value::Array(rows));
    MetricOutput { name, data, fate }
}

/// Evaluates one prediction dataframe (`rows` in a fixed order) with `config`. `input` names
/// it in errors. Pure: the component's IO is loading the table.
pub fn evaluate(
    config: &EvalConfig,
    input: &str,
    schema: &Schema,
    rows: &[(String, Row)],
) -> Result<Vec<MetricOutput>, ComponentError> {
    if rows.is_empty() {
        return Err(data_error(input, "no rows to evaluate"));
    }
    let y = labels(config, input, schema, rows)?;
    let given = config.predict_column_name.is_some();
    let mut predictions: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut binary: BTreeMap<String, BinaryData> = BTreeMap::new();
    let mut out = Vec::with_capacity(config.metrics.len());
    for &m in &config.metrics {
        let col = config.predict_column(m).to_string();
        if !predictions.contains_key(&col) {
            let column = resolve(input, schema, &col, "predict_column_name", given)?;
            predictions.insert(col.clone(), column_values(input, rows, &column, &col)?);
        }
        let p = &predictions[&col];
        let err = |e| metric_error(input, m, e);
        let result = match m.setting() {
            EvalSetting::Binary => {
                if !binary.contains_key(&col) {
                    binary.insert(col.clone(), BinaryData::new(&y, p).map_err(err)?);
                }
                binary_metric(m, &binary[&col]).map_err(err)?
            }
            EvalSetting::Multi => {
                let s = metrics::multi_scores(&y, p).map_err(err)?;
                let (value, average) = match m {
                    MetricName::MultiAccuracy => (s.accuracy, None),
                    MetricName::MultiPrecision => (s.macro_precision, Some("macro")),
                    MetricName::MultiRecall => (s.macro_recall, Some("macro")),
                    _ => (s.micro_f1, Some("micro")),
                };
                let mut extra = vec![];
                if let Some(a) = average {
                    extra.push(("average", json!(a)));
                }
                if m == MetricName::MultiF1Score {
                    extra.push(("macro", json!(s.macro_f1)));
                }
                scalar(m, value, &extra)
            }
            EvalSetting::Regression => {
                let s = metrics::regression_scores(&y, p).map_err(err)?;
                let value = match m {
                    MetricName::Rmse => s.rmse,
                    MetricName::Mse => s.mse,
                    MetricName::Mae => s.mae,
                    _ => s.r2,
                };
                scalar(m, value, &[])
            }
        };
        out.push(result);
    }
    Ok(out)
}

fn binary_metric(m: MetricName, d: &BinaryData) -> Result<MetricOutput, MetricError> {
    use MetricName::*;
    Ok(match m {
        Auc => {
            let mut o = scalar(m, metrics::auc(d)?, &[]);
            o.data.insert(
                "roc".into(),
                Value::Array(to_values(&metrics::roc_curve(d)?)),
            );
            o
        }
        Ks => {
            let (value, curve) = metrics::ks(d)?;
            let rows = to_values(&curve);
            let fate = json!([
                {"metric": "ks", "val": value},
                {"metric": "ks_table", "val": columns_of(&rows)},
            ]);
            let mut data = Map::new();
            data.insert("ks".into(), json!(value));
            data.insert("curve".into(), Value::Array(rows));
            MetricOutput {
                name: m,
                data,
                fate,
            }
        }
        ConfusionMatrix => {
            let rows = metrics::confusion_matrix(d)
                .into_iter()
                .map(|(threshold, cuts, c)| {
                    json!({"threshold": threshold, "cuts": cuts, "tp": c.tp, "fp": c.fp, "fn": c.fn_, "tn": c.tn})
                })
                .collect();
            table(m, rows)
        }
        Lift => table(m, pair_rows(&metrics::lift(d), "liftx", "lifty")),
        Gain => table(m, pair_rows(&metrics::gain(d), "gainx", "gainy")),
        BiclassPrecisionTable => table(m, curve_rows(&metrics::precision_table(d), "p")),
        BiclassRecallTable => table(m, curve_rows(&metrics::recall_table(d)?, "r")),
        BiclassAccuracyTable => table(m, curve_rows(&metrics::accuracy_table(d), "accuracy")),
        FscoreTable => table(m, curve_rows(&metrics::fscore_table(d)?, "f_score")),
        // The single-value metrics at threshold 0.5 (`evaluate` sends only binary metrics here).
        _ => {
            let s = metrics::binary_scores(d, metrics::DEFAULT_THRESHOLD);
            let value = match m {
                BinaryAccuracy => s.accuracy,
                BinaryPrecision => s.precision,
                BinaryRecall => s.recall,
                _ => s.f1,
            };
            scalar(
                m,
                value,
                &[("threshold", json!(metrics::DEFAULT_THRESHOLD))],
            )
        }
    })
}

impl Component for Evaluation {
    fn spec(&self) -> ComponentSpec {
        ComponentSpec {
            name: "evaluation".into(),
            legacy_modules: vec!["Evaluation".into()],
            description:
                "scores prediction dataframes: AUC, KS, curves and tables; multi-class; regression"
                    .into(),
            roles: vec![Role::Guest, Role::Host, Role::Arbiter],
            params: vec![
                param(
                    "default_eval_setting",
                    false,
                    Some(json!("binary")),
                    "binary, multi or regression",
                ),
                param(
                    "metrics",
                    false,
                    Some(Value::Null),
                    "metric names; null for the setting's defaults",
                ),
                param(
                    "predict_column_name",
                    false,
                    Some(Value::Null),
                    "prediction column (predict_score / predict_result)",
                ),
                param(
                    "label_column_name",
                    false,
                    Some(Value::Null),
                    "label column (the dataframe's label)",
                ),
            ],
            inputs: vec![ArtifactSpec {
                key: INPUT.into(),
                kind: ArtifactKind::Data,
                optional: true,
                multi: true,
                roles: vec![Role::Guest, Role::Host],
            }],
            outputs: vec![],
        }
    }

    fn run(&self, ctx: &Ctx) -> Result<(), ComponentError> {
        if ctx.role() == Role::Arbiter {
            ctx.info("evaluation: nothing to do at the arbiter");
            return Ok(());
        }
        let config = EvalConfig::from_ctx(ctx)?;
        let artifacts = ctx.inputs.get(INPUT).map(Vec::as_slice).unwrap_or_default();
        if artifacts.is_empty() {
            ctx.info(format!(
                "evaluation: no {INPUT} at {}, nothing to evaluate",
                ctx.local
            ));
            return Ok(());
        }
        let mut records = Vec::new();
        let mut fate = Map::new();
        for (i, artifact) in artifacts.iter().enumerate() {
            ctx.check_canceled()?;
            let InputArtifact::Data {
                namespace,
                name,
                schema,
                source_task,
            } = artifact
            else {
                return Err(ComponentError::Input {
                    key: INPUT.into(),
                    reason: format!("artifact {i} is not a dataframe"),
                });
            };
            let table: Table<String, Row> = ctx.computing.load(namespace, name)?;
            let mut rows = table.collect(crate::limits::COLLECT_ROWS)?;
            rows.sort_by(|a, b| a.0.cmp(&b.0));
            let results = evaluate(&config, name, schema, &rows)?;
            ctx.info(format!(
                "evaluation: {} metrics on {namespace}.{name} ({} rows)",
                results.len(),
                rows.len()
            ));
            // FATE keys each input by the task that produced it, then by data set (the
            // `type` column; `origin` for a frame without one): components/evaluation.py.
            let source = source_task.as_deref().unwrap_or(name);
            let key = if fate.contains_key(source) {
                format!("{source}_{i}")
            } else {
                source.to_string()
            };
            let set = schema.dataset_type.as_deref().unwrap_or("origin");
            let fate_list: Vec<Value> = results.iter().map(|r| r.fate.clone()).collect();
            fate.insert(key.clone(), json!({ set: fate_list }));
            for r in results {
                let mut data = r.data;
                data.insert("input".into(), json!(key));
                records.push((r.name, Value::Object(data)));
            }
        }
        for (name, data) in records {
            ctx.metric(name.as_str(), name.setting().as_str(), data);
        }
        ctx.metric("evaluation", "evaluation", Value::Object(fate));
        Ok(())
    }
}
