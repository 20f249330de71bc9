//! Model JSON of each party, in FATE 2.x's shape (`CoordinatedLRModule{Guest,Host,Arbiter}.
//! get_model`): `{"data": {"estimator": <estimator> | {"<class index>": <estimator>}}, "meta":
//! {...}}`, plus `"version"` (fate-rs's model format version; FATE's own models, which have
//! none, are read too). Weights are FATE's `serialize_param`: `coef_` as a column (`[[w0],
//! [w1], ...]`), `intercept_` as `[b]` or null.

use super::optim::{LrScheduler, OptimSpec, Optimizer, Regularizer};
use super::params::{EarlyStop, InitParam, OptimizerParam, Penalty, SchedulerParam};
use fate_runtime::ComponentError;
use serde_json::{Map, Value, json};

/// The model format version fate-rs writes.
pub const MODEL_VERSION: u64 = 1;

fn bad(key: &str, reason: impl Into<String>) -> ComponentError {
    ComponentError::Input {
        key: key.into(),
        reason: reason.into(),
    }
}

fn check_version(v: &Value, key: &str) -> Result<(), ComponentError> {
    match v.get("version") {
        None => Ok(()),
        Some(x) if x.as_u64() == Some(MODEL_VERSION) => Ok(()),
        Some(x) => Err(bad(
            key,
            format!(
                "model version {x} is not supported (this build reads version {MODEL_VERSION})"
            ),
        )),
    }
}

fn field<'a>(v: &'a Value, path: &[&str], key: &str) -> Result<&'a Value, ComponentError> {
    let mut cur = v;
    for p in path {
        cur = cur
            .get(p)
            .ok_or_else(|| bad(key, format!("model has no `{}`", path.join("."))))?;
    }
    Ok(cur)
}

/// A guest's or host's fitted estimator (one per class with OvR).
#[derive(Debug, Clone)]
pub(super) struct PartyEstimator {
    /// Coefficients, then the intercept when `fit_intercept`.
    pub w: Vec<f64>,
    pub fit_intercept: bool,
    pub reg: Regularizer,
    pub optimizer: OptimizerParam,
    pub sched: LrScheduler,
    pub end_epoch: i64,
    pub is_converged: bool,
    pub header: Vec<String>,
}

impl PartyEstimator {
    pub fn n_features(&self) -> usize {
        self.w.len() - usize::from(self.fit_intercept)
    }

    /// The weights as the shared predict functions (fate-ml) take them.
    pub fn linear(&self) -> fate_ml::lr::Linear {
        fate_ml::lr::Linear {
            w: self.w.clone(),
            fit_intercept: self.fit_intercept,
            header: Vec::new(),
        }
    }

    pub fn to_json(&self, guest: bool) -> Value {
        let n = self.n_features();
        let coef: Vec<Value> = self.w[..n].iter().map(|x| json!([x])).collect();
        let intercept = if self.fit_intercept {
            json!([self.w[n]])
        } else {
            Value::Null
        };
        let mut m = Map::new();
        m.insert(
            "param".into(),
            json!({"coef_": coef, "intercept_": intercept, "dtype": "float64"}),
        );
        m.insert(
            "optimizer".into(),
            json!({
                "method": self.optimizer.method,
                "optim_param": self.optimizer.optimizer_params,
                "l1_penalty": self.reg.penalty == Penalty::L1,
                "l2_penalty": self.reg.penalty == Penalty::L2,
                "alpha": self.reg.alpha,
            }),
        );
        m.insert("lr_scheduler".into(), self.sched.to_json());
        m.insert("end_epoch".into(), json!(self.end_epoch));
        m.insert("is_converged".into(), json!(self.is_converged));
        if guest {
            m.insert("fit_intercept".into(), json!(self.fit_intercept));
        }
        m.insert("header".into(), json!(self.header));
        Value::Object(m)
    }

    /// Reads an estimator; `fit_intercept` is false at hosts (FATE's host never has one).
    pub fn from_json(v: &Value, guest: bool, key: &str) -> Result<Self, ComponentError> {
        // The weights are read by the same function online serving uses (fate-ml).
        let fate_ml::lr::Linear {
            w,
            fit_intercept,
            header,
        } = fate_ml::lr::Linear::from_json(v, guest).map_err(|e| bad(key, e))?;
        let opt = v.get("optimizer");
        let alpha = opt
            .and_then(|o| o.get("alpha"))
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        let flag = |k: &str| {
            opt.and_then(|o| o.get(k))
                .and_then(Value::as_bool)
                .unwrap_or(false)
        };
        let penalty = if flag("l1_penalty") {
            Penalty::L1
        } else if flag("l2_penalty") {
            Penalty::L2
        } else {
            Penalty::None
        };
        let optimizer = OptimizerParam {
            method: opt
                .and_then(|o| o.get("method"))
                .and_then(Value::as_str)
                .unwrap_or("sgd")
                .to_string(),
            penalty,
            alpha,
            optimizer_params: opt
                .and_then(|o| o.get("optim_param"))
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
        };
        let sched = match v.get("lr_scheduler") {
            Some(s) => LrScheduler::from_json(s, key)?,
            None => LrScheduler::new(&SchedulerParam::fate_default(), 0.01, key)?,
        };
        Ok(PartyEstimator {
            w,
            fit_intercept,
            reg: Regularizer { penalty, alpha },
            optimizer,
            sched,
            end_epoch: v.get("end_epoch").and_then(Value::as_i64).unwrap_or(-1),
            is_converged: v
                .get("is_converged")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            header,
        })
    }
}

/// The meta every party's model carries (FATE's `meta`), with the new run's epochs and
/// batch_size on warm start.
#[derive(Debug, Clone)]
pub(super) struct Meta {
    pub epochs: usize,
    pub batch_size: Option<usize>,
    pub optimizer: OptimizerParam,
    pub learning_rate_scheduler: SchedulerParam,
    pub init_param: InitParam,
    pub floating_point_precision: u32,
}

/// A guest or host model: one estimator, or one per class (OvR).
#[derive(Debug, Clone)]
pub(super) struct PartyModel {
    pub ovr: bool,
    /// Guest: sorted class labels. Host: empty.
    pub labels: Vec<i64>,
    /// Host: the class count the guest announced.
    pub label_count: usize,
    pub threshold: f64,
    pub meta: Option<Meta>,
    pub estimators: Vec<PartyEstimator>,
}

impl PartyModel {
    pub fn to_json(&self, guest: bool) -> Value {
        let estimator = if self.ovr {
            Value::Object(
                self.estimators
                    .iter()
                    .enumerate()
                    .map(|(i, e)| (i.to_string(), e.to_json(guest)))
                    .collect(),
            )
        } else {
            self.estimators
                .first()
                .map(|e| e.to_json(guest))
                .unwrap_or(Value::Null)
        };
        let mut meta = Map::new();
        if let Some(m) = &self.meta {
            meta.insert("epochs".into(), json!(m.epochs));
            meta.insert("batch_size".into(), json!(m.batch_size));
            meta.insert(
                "learning_rate_param".into(),
                m.learning_rate_scheduler.to_json(),
            );
            meta.insert("init_param".into(), m.init_param.to_json());
            meta.insert("optimizer_param".into(), m.optimizer.to_json());
            meta.insert(
                "floating_point_precision".into(),
                json!(m.floating_point_precision),
            );
        }
        meta.insert("ovr".into(), json!(self.ovr));
        if guest {
            meta.insert("labels".into(), json!(self.labels));
            meta.insert("threshold".into(), json!(self.threshold));
        } else {
            meta.insert(
                "label_count".into(),
                json!(if self.ovr {
                    json!(self.label_count)
                } else {
                    json!(false)
                }),
            );
        }
        json!({"version": MODEL_VERSION, "data": {"estimator": estimator}, "meta": meta})
    }

    pub fn from_json(v: &Value, guest: bool, key: &str) -> Result<Self, ComponentError> {
        check_version(v, key)?;
        let meta_v = field(v, &["meta"], key)?;
        let ovr = meta_v.get("ovr").and_then(Value::as_bool).unwrap_or(false);
        let estimators = fate_ml::lr::estimators_json(v, ovr)
            .map_err(|e| bad(key, e))?
            .into_iter()
            .map(|e| PartyEstimator::from_json(e, guest, key))
            .collect::<Result<Vec<_>, _>>()?;
        let labels: Vec<i64> = if guest {
            serde_json::from_value(field(meta_v, &["labels"], key)?.clone())
                .map_err(|e| bad(key, format!("meta.labels: {e}")))?
        } else {
            Vec::new()
        };
        if guest && ovr && labels.len() != estimators.len() {
            return Err(bad(
                key,
                format!(
                    "{} labels but {} class estimators",
                    labels.len(),
                    estimators.len()
                ),
            ));
        }
        let label_count = if ovr { estimators.len() } else { 2 };
        if estimators
            .iter()
            .any(|e| e.n_features() != estimators[0].n_features())
        {
            return Err(bad(key, "class estimators have different feature counts"));
        }
        let meta = parse_meta(meta_v, key).ok();
        Ok(PartyModel {
            ovr,
            labels,
            label_count,
            threshold: meta_v
                .get("threshold")
                .and_then(Value::as_f64)
                .unwrap_or(0.5),
            meta,
            estimators,
        })
    }
}

fn parse_meta(m: &Value, key: &str) -> Result<Meta, ComponentError> {
    Ok(Meta {
        epochs: field(m, &["epochs"], key)?.as_u64().unwrap_or(20) as usize,
        batch_size: m
            .get("batch_size")
            .and_then(Value::as_u64)
            .map(|b| b as usize),
        optimizer: OptimizerParam::from_json(field(m, &["optimizer_param"], key)?, key)?,
        learning_rate_scheduler: SchedulerParam::from_json(
            field(m, &["learning_rate_param"], key)?,
            key,
        )?,
        init_param: InitParam::from_json(field(m, &["init_param"], key)?, key)?,
        floating_point_precision: m
            .get("floating_point_precision")
            .and_then(Value::as_u64)
            .unwrap_or(23) as u32,
    })
}

/// The arbiter's per-class state: the optimizer on the shadow parameter and its scheduler.
#[derive(Debug, Clone)]
pub(super) struct ArbiterEstimator {
    pub optimizer: Option<Optimizer>,
    pub sched: Option<LrScheduler>,
    pub end_epoch: i64,
    pub is_converged: bool,
}

/// The arbiter's model.
#[derive(Debug, Clone)]
pub(super) struct ArbiterModel {
    pub ovr: bool,
    pub early_stop: EarlyStop,
    pub tol: f64,
    pub optimizer: OptimizerParam,
    pub learning_rate_scheduler: SchedulerParam,
    pub estimators: Vec<ArbiterEstimator>,
}

impl ArbiterModel {
    pub fn to_json(&self, epochs: usize, batch_size: Option<usize>) -> Value {
        let one = |e: &ArbiterEstimator| {
            json!({
                "optimizer": e.optimizer.as_ref().map(|o| {
                    let mut v = o.state_json();
                    if let Value::Object(m) = &mut v {
                        m.insert("method".into(), json!(self.optimizer.method));
                        m.insert("optim_param".into(), json!(self.optimizer.optimizer_params));
                        m.insert("l1_penalty".into(), json!(self.optimizer.penalty == Penalty::L1));
                        m.insert("l2_penalty".into(), json!(self.optimizer.penalty == Penalty::L2));
                        m.insert("alpha".into(), json!(self.optimizer.alpha));
                    }
                    v
                }),
                "lr_scheduler": e.sched.as_ref().map(LrScheduler::to_json),
                "end_epoch": e.end_epoch,
                "is_converged": e.is_converged,
                "tol": self.tol,
                "early_stop": self.early_stop.as_str(),
            })
        };
        let estimator = if self.ovr {
            Value::Object(
                self.estimators
                    .iter()
                    .enumerate()
                    .map(|(i, e)| (i.to_string(), one(e)))
                    .collect(),
            )
        } else {
            self.estimators.first().map(one).unwrap_or(Value::Null)
        };
        json!({
            "version": MODEL_VERSION,
            "data": {"estimator": estimator},
            "meta": {
                "epochs": epochs,
                "ovr": self.ovr,
                "early_stop": self.early_stop.as_str(),
                "tol": self.tol,
                "batch_size": batch_size,
                "learning_rate_param": self.learning_rate_scheduler.to_json(),
                "optimizer_param": self.optimizer.to_json(),
            },
        })
    }

    pub fn from_json(v: &Value, key: &str) -> Result<Self, ComponentError> {
        check_version(v, key)?;
        let meta = field(v, &["meta"], key)?;
        let ovr = meta.get("ovr").and_then(Value::as_bool).unwrap_or(false);
        let early_stop = meta
            .get("early_stop")
            .and_then(Value::as_str)
            .and_then(EarlyStop::parse)
            .ok_or_else(|| bad(key, "meta.early_stop is missing or unknown"))?;
        let tol = meta
            .get("tol")
            .and_then(Value::as_f64)
            .ok_or_else(|| bad(key, "meta.tol is missing"))?;
        let optimizer = OptimizerParam::from_json(field(meta, &["optimizer_param"], key)?, key)?;
        let learning_rate_scheduler =
            SchedulerParam::from_json(field(meta, &["learning_rate_param"], key)?, key)?;
        let spec = OptimSpec::from_param(&optimizer, key)?;
        let one = |e: &Value| -> Result<ArbiterEstimator, ComponentError> {
            let optimizer = match e.get("optimizer") {
                None | Some(Value::Null) => None,
                Some(o) => Some(
                    Optimizer::restore(spec.clone(), o)
                        .ok_or_else(|| bad(key, "the arbiter's optimizer state is malformed"))?,
                ),
            };
            let sched = match e.get("lr_scheduler") {
                None | Some(Value::Null) => None,
                Some(s) => Some(LrScheduler::from_json(s, key)?),
            };
            Ok(ArbiterEstimator {
                optimizer,
                sched,
                end_epoch: e.get("end_epoch").and_then(Value::as_i64).unwrap_or(-1),
                is_converged: e
                    .get("is_converged")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
            })
        };
        let est = field(v, &["data", "estimator"], key)?;
        let estimators = if ovr {
            let obj = est.as_object().ok_or_else(|| {
                bad(
                    key,
                    "data.estimator of a one-vs-rest model is not an object",
                )
            })?;
            let mut pairs: Vec<(usize, &Value)> = obj
                .iter()
                .filter_map(|(k, e)| k.parse::<usize>().ok().map(|i| (i, e)))
                .collect();
            pairs.sort_by_key(|(i, _)| *i);
            pairs
                .into_iter()
                .map(|(_, e)| one(e))
                .collect::<Result<Vec<_>, _>>()?
        } else {
            vec![one(est)?]
        };
        Ok(ArbiterModel {
            ovr,
            early_stop,
            tol,
            optimizer,
            learning_rate_scheduler,
            estimators,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coordinated_lr::optim::Regularizer;

    fn estimator() -> PartyEstimator {
        let sched = LrScheduler::new(&SchedulerParam::fate_default(), 0.1, "x").unwrap();
        PartyEstimator {
            w: vec![0.5, -1.0, 0.25],
            fit_intercept: true,
            reg: Regularizer {
                penalty: Penalty::L2,
                alpha: 0.01,
            },
            optimizer: OptimizerParam::fate_default(),
            sched,
            end_epoch: 3,
            is_converged: true,
            header: vec!["a".into(), "b".into()],
        }
    }

    #[test]
    fn guest_model_round_trips_in_fates_shape() {
        let m = PartyModel {
            ovr: false,
            labels: vec![0, 1],
            label_count: 2,
            threshold: 0.4,
            meta: Some(Meta {
                epochs: 5,
                batch_size: None,
                optimizer: OptimizerParam::fate_default(),
                learning_rate_scheduler: SchedulerParam::fate_default(),
                init_param: InitParam::fate_default(),
                floating_point_precision: 23,
            }),
            estimators: vec![estimator()],
        };
        let j = m.to_json(true);
        assert_eq!(
            j["data"]["estimator"]["param"]["coef_"],
            json!([[0.5], [-1.0]])
        );
        assert_eq!(j["data"]["estimator"]["param"]["intercept_"], json!([0.25]));
        let back = PartyModel::from_json(&j, true, "input_model").unwrap();
        assert_eq!(back.estimators[0].w, vec![0.5, -1.0, 0.25]);
        assert_eq!(back.threshold, 0.4);
        assert_eq!(back.meta.unwrap().epochs, 5);

        let mut future = j.clone();
        future["version"] = json!(2);
        let e = PartyModel::from_json(&future, true, "input_model")
            .unwrap_err()
            .to_string();
        assert!(e.contains("input_model") && e.contains("version 2"), "{e}");
    }

    /// A model as FATE 2.x writes it (no version, torch state dicts) is read for prediction.
    #[test]
    fn reads_a_fate_written_host_model() {
        let fate = json!({
            "data": {"estimator": {
                "param": {"coef_": [[0.1], [0.2], [-0.3]], "intercept_": null, "dtype": "float32"},
                "optimizer": {"l2_penalty": true, "l1_penalty": false, "alpha": 0.01, "method": "rmsprop",
                    "optim_param": {"lr": 0.15}, "optimizer": {"state": {}, "param_groups": []},
                    "model_parameter": [[0.0], [0.0], [0.0]], "model_parameter_dtype": "float32"},
                "lr_scheduler": {"method": "constant", "lr_params": {"factor": 0.5, "total_iters": 5},
                    "lr_scheduler": {"factor": 0.5, "total_iters": 5, "base_lrs": [0.15], "last_epoch": 19, "_last_lr": [0.15]}},
                "end_epoch": 20, "is_converged": false, "header": ["x0", "x1", "x2"]}},
            "meta": {"label_count": false, "ovr": false, "epochs": 20, "batch_size": 240,
                "learning_rate_param": {"method": "constant", "scheduler_params": {"factor": 0.5, "total_iters": 5}},
                "optimizer_param": {"method": "rmsprop", "penalty": "L2", "alpha": 0.01, "optimizer_params": {"lr": 0.15}},
                "init_param": {"method": "random_uniform", "fill_val": 0.0, "fit_intercept": false, "random_state": 42},
                "floating_point_precision": 23}
        });
        let m = PartyModel::from_json(&fate, false, "input_model").unwrap();
        assert_eq!(m.estimators[0].w, vec![0.1, 0.2, -0.3]);
        assert_eq!(m.estimators[0].sched.last_epoch, 19);
        assert_eq!(m.estimators[0].reg.penalty, Penalty::L2);
        let bad = json!({"data": {"estimator": {"param": {"coef_": "no"}}}, "meta": {}});
        let e = PartyModel::from_json(&bad, false, "input_model")
            .unwrap_err()
            .to_string();
        assert!(e.contains("coef_"), "{e}");
    }
}
