//! The parameters of `homo_lr`, with FATE 2.2's names and defaults
//! (`components/components/homo_lr.py`, fate-spec §4.6), parsed from one party's parameter map.
//! The same function runs when the job is planned ([`super::HomoLr`]'s `check_params`) and when
//! the task runs, so a value refused at run time is refused at submit, naming the field.
//!
//! The objects (`optimizer`, `learning_rate_scheduler`, `init_param`) are FATE's pydantic models
//! shared with `coordinated_lr` ([`crate::coordinated_lr::params`]); `homo_lr` narrows
//! `init_param.method` to what FATE's `init_model` accepts.

use crate::coordinated_lr::optim::{LrScheduler, OptimSpec};
use crate::coordinated_lr::params::{
    InitMethod, InitParam, OptimizerParam, Penalty, SchedulerParam,
};
use fate_runtime::ComponentError;
use serde_json::{Map, Value, json};

/// The component's defaults, declared once: the spec's defaults and the parser's fallbacks.
pub mod defaults {
    use serde_json::{Value, json};

    pub const EPOCHS: u64 = 20;
    pub const BATCH_SIZE: i64 = 100;
    pub const THRESHOLD: f64 = 0.5;

    pub fn learning_rate_scheduler() -> Value {
        json!({"method": "constant", "scheduler_params": {"factor": 1.0}})
    }

    pub fn optimizer() -> Value {
        json!({"method": "sgd", "penalty": "l2", "alpha": 1.0,
               "optimizer_params": {"lr": 0.01, "weight_decay": 0}})
    }

    pub fn init_param() -> Value {
        json!({"method": "random", "fit_intercept": true})
    }
}

/// Train-stage parameters, validated.
#[derive(Debug, Clone)]
pub struct TrainParams {
    pub epochs: usize,
    /// `None`: full batch (FATE's `None`; fate-rs also reads 0 and -1 so, as FATE's predict stage).
    pub batch_size: Option<usize>,
    pub optimizer: OptimizerParam,
    /// The torch optimizer with FATE's penalty folded in (`l2`: `weight_decay = alpha`).
    pub optim: OptimSpec,
    /// `l1`: `alpha`, added to the loss as `alpha·Σ|p|` (FATE's `HomoLRModel.l1`).
    pub l1: f64,
    pub learning_rate_scheduler: SchedulerParam,
    pub init_param: InitParam,
    pub threshold: f64,
}

/// Predict-stage parameters.
#[derive(Debug, Clone)]
pub struct PredictParams {
    pub threshold: Option<f64>,
}

/// Reads the train-stage parameters (absent ones take FATE's defaults).
pub fn train(params: &Map<String, Value>) -> Result<TrainParams, ComponentError> {
    let epochs = match params.get("epochs") {
        None | Some(Value::Null) => defaults::EPOCHS,
        Some(v) => v.as_u64().filter(|&e| e > 0).ok_or_else(|| {
            ComponentError::param(
                "epochs",
                format!("must be an integer greater than 0, got {v}"),
            )
        })?,
    };
    let batch_size = batch_size(params)?;
    let optimizer = match params.get("optimizer") {
        None | Some(Value::Null) => OptimizerParam::from_json(&defaults::optimizer(), "optimizer")?,
        Some(v) => OptimizerParam::from_json(v, "optimizer")?,
    };
    // FATE's HomoLRClient.fit: penalty l2 sets torch's weight_decay to alpha; l1 adds
    // alpha·‖p‖₁ to the loss.
    let mut torch = optimizer.clone();
    let mut l1 = 0.0;
    match optimizer.penalty {
        Penalty::L2 => {
            torch
                .optimizer_params
                .insert("weight_decay".into(), json!(optimizer.alpha));
        }
        Penalty::L1 => l1 = optimizer.alpha,
        Penalty::None => {}
    }
    let optim = OptimSpec::from_param(&torch, "optimizer")?;
    let learning_rate_scheduler = match params.get("learning_rate_scheduler") {
        None | Some(Value::Null) => SchedulerParam::from_json(
            &defaults::learning_rate_scheduler(),
            "learning_rate_scheduler",
        )?,
        Some(v) => SchedulerParam::from_json(v, "learning_rate_scheduler")?,
    };
    LrScheduler::new(
        &learning_rate_scheduler,
        optim.lr,
        "learning_rate_scheduler",
    )?;
    let init_param = match params.get("init_param") {
        None | Some(Value::Null) => InitParam::from_json(&defaults::init_param(), "init_param")?,
        Some(v) => InitParam::from_json(v, "init_param")?,
    };
    if init_param.method == InitMethod::RandomUniform {
        return Err(ComponentError::param(
            "init_param",
            "method `random_uniform` is not one of homo_lr's zeros, ones, consts, random \
             (FATE's init_model)",
        ));
    }
    let threshold = threshold(params)?.unwrap_or(defaults::THRESHOLD);
    match params.get("ovr") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => {}
        Some(Value::Bool(true)) => {
            return Err(ComponentError::param(
                "ovr",
                "one-vs-rest (multi-class) homo_lr is not implemented in fate-rs; labels must be 0 and 1",
            ));
        }
        Some(other) => {
            return Err(ComponentError::param(
                "ovr",
                format!("must be true or false, got {other}"),
            ));
        }
    }
    match params.get("label_num") {
        None | Some(Value::Null) => {}
        Some(v) if v.as_u64().is_some_and(|n| n >= 2) => {}
        Some(v) => {
            return Err(ComponentError::param(
                "label_num",
                format!("must be an integer of at least 2 or null, got {v}"),
            ));
        }
    }
    Ok(TrainParams {
        epochs: epochs as usize,
        batch_size,
        optimizer,
        optim,
        l1,
        learning_rate_scheduler,
        init_param,
        threshold,
    })
}

/// Reads the predict-stage parameters.
pub fn predict(params: &Map<String, Value>) -> Result<PredictParams, ComponentError> {
    batch_size(params)?;
    Ok(PredictParams {
        threshold: threshold(params)?,
    })
}

/// `batch_size`: a positive integer, or null / 0 / -1 for the full batch.
fn batch_size(params: &Map<String, Value>) -> Result<Option<usize>, ComponentError> {
    match params.get("batch_size") {
        None => Ok(Some(defaults::BATCH_SIZE as usize)),
        Some(Value::Null) => Ok(None),
        Some(v) => match v.as_i64() {
            Some(b) if b > 0 => Ok(Some(b as usize)),
            Some(-1 | 0) => Ok(None),
            _ => Err(ComponentError::param(
                "batch_size",
                format!("must be a positive integer, or null, 0 or -1 for the full batch, got {v}"),
            )),
        },
    }
}

fn threshold(params: &Map<String, Value>) -> Result<Option<f64>, ComponentError> {
    match params.get("threshold") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_f64() {
            Some(t) if (0.0..=1.0).contains(&t) => Ok(Some(t)),
            _ => Err(ComponentError::param(
                "threshold",
                format!("must be a number in [0, 1], got {v}"),
            )),
        },
    }
}
