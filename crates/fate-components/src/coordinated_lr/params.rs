//! The parameters of `coordinated_lr`, parsed and validated as FATE's pydantic models do
//! (`components/core/params/_{optimizer,learning_rate,init_param,he_param}.py`, fate-spec §4.3):
//! string choices are case-insensitive and lower-cased, a partial object takes the model's
//! field defaults (not the component's default object), unknown top-level keys of these objects
//! are ignored as pydantic ignores them. Every error names the parameter and lists what is
//! accepted.

use super::optim::{LrScheduler, OptimSpec};
use fate_runtime::{ComponentError, Ctx};
use serde_json::{Map, Value, json};

/// `safety.phe.paillier.minimum_key_size` of FATE's default configuration (fate-spec §5.1).
pub const MIN_KEY_LENGTH: u32 = 1024;

/// Largest `floating_point_precision`: features are encoded as 64-bit integers `round(x·2^p)`.
pub const MAX_FLOATING_POINT_PRECISION: u32 = 52;

/// Fixed-point bits used for X when `floating_point_precision` is 0 (FATE then multiplies
/// ciphertexts by float features directly, at float precision).
pub const FULL_PRECISION_BITS: u32 = 40;

/// `optimizer.penalty`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Penalty {
    L1,
    L2,
    None,
}

impl Penalty {
    pub fn as_str(self) -> &'static str {
        match self {
            Penalty::L1 => "l1",
            Penalty::L2 => "l2",
            Penalty::None => "none",
        }
    }
}

/// `optimizer`: `{method, penalty, alpha, optimizer_params}` (FATE's `OptimizerParam`).
#[derive(Debug, Clone, PartialEq)]
pub struct OptimizerParam {
    /// Lower-cased torch optimizer name.
    pub method: String,
    pub penalty: Penalty,
    /// Regularization strength (not torch's RMSprop `alpha`, which goes in `optimizer_params`).
    pub alpha: f64,
    /// Keyword arguments of the torch optimizer (`lr`, `weight_decay`, ...).
    pub optimizer_params: Map<String, Value>,
}

impl OptimizerParam {
    /// The component's default: sgd, l2, alpha 1.0, lr 0.01, weight_decay 0.
    pub fn fate_default() -> Self {
        let mut optimizer_params = Map::new();
        optimizer_params.insert("lr".into(), json!(0.01));
        optimizer_params.insert("weight_decay".into(), json!(0));
        OptimizerParam {
            method: "sgd".into(),
            penalty: Penalty::L2,
            alpha: 1.0,
            optimizer_params,
        }
    }

    /// Parses FATE's dict; missing fields take `OptimizerParam`'s field defaults.
    pub fn from_json(v: &Value, name: &str) -> Result<Self, ComponentError> {
        let obj = v.as_object().ok_or_else(|| {
            ComponentError::param(
                name,
                "must be an object {method, penalty, alpha, optimizer_params}",
            )
        })?;
        let method = choice(obj, name, "method", "sgd")?;
        let penalty = match obj.get("penalty") {
            None => Penalty::L2,
            Some(Value::Null) => Penalty::None,
            Some(Value::String(s)) => match s.to_lowercase().as_str() {
                "l1" => Penalty::L1,
                "l2" => Penalty::L2,
                "none" => Penalty::None,
                other => {
                    return Err(ComponentError::param(
                        name,
                        format!("penalty `{other}` is not one of L1, L2, none"),
                    ));
                }
            },
            Some(other) => {
                return Err(ComponentError::param(
                    name,
                    format!("penalty must be a string, got {other}"),
                ));
            }
        };
        let alpha = match obj.get("alpha") {
            None => 1.0,
            Some(a) => finite(a).ok_or_else(|| {
                ComponentError::param(name, format!("alpha must be a finite number, got {a}"))
            })?,
        };
        if alpha < 0.0 {
            return Err(ComponentError::param(
                name,
                format!("alpha must be at least 0, got {alpha}"),
            ));
        }
        let optimizer_params = match obj.get("optimizer_params") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(other) => {
                return Err(ComponentError::param(
                    name,
                    format!("optimizer_params must be an object, got {other}"),
                ));
            }
        };
        let p = OptimizerParam {
            method,
            penalty,
            alpha,
            optimizer_params,
        };
        // Builds the optimizer once so that a bad method or keyword fails before training.
        OptimSpec::from_param(&p, name)?;
        Ok(p)
    }

    /// FATE's `OptimizerParam.dict()`, as stored in the model's meta.
    pub fn to_json(&self) -> Value {
        json!({
            "method": self.method,
            "penalty": self.penalty.as_str(),
            "alpha": self.alpha,
            "optimizer_params": self.optimizer_params,
        })
    }
}

/// `learning_rate_scheduler`: `{method, scheduler_params}` (FATE's `LRSchedulerParam`).
#[derive(Debug, Clone, PartialEq)]
pub struct SchedulerParam {
    /// `constant`, `linear` or `step`.
    pub method: String,
    /// Keyword arguments of the torch scheduler.
    pub scheduler_params: Map<String, Value>,
}

impl SchedulerParam {
    /// The component's default: linear with start_factor 1.0 (a constant learning rate).
    pub fn fate_default() -> Self {
        let mut scheduler_params = Map::new();
        scheduler_params.insert("start_factor".into(), json!(1.0));
        SchedulerParam {
            method: "linear".into(),
            scheduler_params,
        }
    }

    pub fn from_json(v: &Value, name: &str) -> Result<Self, ComponentError> {
        let obj = v.as_object().ok_or_else(|| {
            ComponentError::param(name, "must be an object {method, scheduler_params}")
        })?;
        let method = choice(obj, name, "method", "constant")?;
        let scheduler_params = match obj.get("scheduler_params") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(other) => {
                return Err(ComponentError::param(
                    name,
                    format!("scheduler_params must be an object, got {other}"),
                ));
            }
        };
        let p = SchedulerParam {
            method,
            scheduler_params,
        };
        LrScheduler::new(&p, 1.0, name)?;
        Ok(p)
    }

    pub fn to_json(&self) -> Value {
        json!({"method": self.method, "scheduler_params": self.scheduler_params})
    }
}

/// `init_param.method`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum InitMethod {
    Zeros,
    Ones,
    Consts,
    Random,
    RandomUniform,
}

impl InitMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            InitMethod::Zeros => "zeros",
            InitMethod::Ones => "ones",
            InitMethod::Consts => "consts",
            InitMethod::Random => "random",
            InitMethod::RandomUniform => "random_uniform",
        }
    }
}

/// `init_param`: `{method, fill_val, fit_intercept, random_state}` (FATE's `InitParam`).
#[derive(Debug, Clone, PartialEq)]
pub struct InitParam {
    pub method: InitMethod,
    pub fill_val: f64,
    pub fit_intercept: bool,
    pub random_state: Option<u64>,
}

impl InitParam {
    /// The component's default: random_uniform with an intercept and no seed.
    pub fn fate_default() -> Self {
        InitParam {
            method: InitMethod::RandomUniform,
            fill_val: 0.0,
            fit_intercept: true,
            random_state: None,
        }
    }

    pub fn from_json(v: &Value, name: &str) -> Result<Self, ComponentError> {
        let obj = v.as_object().ok_or_else(|| {
            ComponentError::param(
                name,
                "must be an object {method, fit_intercept, random_state, fill_val}",
            )
        })?;
        let method = match choice(obj, name, "method", "zeros")?.as_str() {
            "zeros" => InitMethod::Zeros,
            "ones" => InitMethod::Ones,
            "consts" => InitMethod::Consts,
            "random" => InitMethod::Random,
            "random_uniform" => InitMethod::RandomUniform,
            other => {
                return Err(ComponentError::param(
                    name,
                    format!(
                        "method `{other}` is not one of zeros, ones, consts, random, random_uniform"
                    ),
                ));
            }
        };
        let fill_val = match obj.get("fill_val") {
            None | Some(Value::Null) => 0.0,
            Some(f) => finite(f).ok_or_else(|| {
                ComponentError::param(name, format!("fill_val must be a finite number, got {f}"))
            })?,
        };
        let fit_intercept = match obj.get("fit_intercept") {
            None => true,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(ComponentError::param(
                    name,
                    format!("fit_intercept must be true or false, got {other}"),
                ));
            }
        };
        let random_state = match obj.get("random_state") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) if n.is_u64() => n.as_u64(),
            Some(other) => {
                return Err(ComponentError::param(
                    name,
                    format!("random_state must be a non-negative integer or null, got {other}"),
                ));
            }
        };
        Ok(InitParam {
            method,
            fill_val,
            fit_intercept,
            random_state,
        })
    }

    pub fn to_json(&self) -> Value {
        json!({
            "method": self.method.as_str(),
            "fill_val": self.fill_val,
            "fit_intercept": self.fit_intercept,
            "random_state": self.random_state,
        })
    }
}

/// `he_param`: `{kind, key_length}`; only Paillier is offered.
#[derive(Debug, Clone, PartialEq)]
pub struct HeParam {
    pub kind: String,
    pub key_length: u32,
}

impl HeParam {
    pub fn fate_default() -> Self {
        HeParam {
            kind: "paillier".into(),
            key_length: 1024,
        }
    }

    pub fn from_json(v: &Value, name: &str) -> Result<Self, ComponentError> {
        let obj = v
            .as_object()
            .ok_or_else(|| ComponentError::param(name, "must be an object {kind, key_length}"))?;
        let kind = match obj.get("kind") {
            Some(Value::String(s)) => s.to_lowercase(),
            Some(other) => {
                return Err(ComponentError::param(
                    name,
                    format!("kind must be a string, got {other}"),
                ));
            }
            None => return Err(ComponentError::param(name, "kind is required (paillier)")),
        };
        match kind.as_str() {
            "paillier" => {}
            "ou" | "mock" => {
                return Err(ComponentError::param(
                    name,
                    format!(
                        "kind `{kind}` is not supported by fate-rs coordinated_lr; use paillier"
                    ),
                ));
            }
            other => {
                return Err(ComponentError::param(
                    name,
                    format!("kind `{other}` is not one of paillier, ou, mock"),
                ));
            }
        }
        let key_length = match obj.get("key_length") {
            None => 1024,
            Some(Value::Number(n)) => {
                n.as_u64()
                    .and_then(|k| u32::try_from(k).ok())
                    .ok_or_else(|| {
                        ComponentError::param(
                            name,
                            format!("key_length must be a positive integer, got {n}"),
                        )
                    })?
            }
            Some(other) => {
                return Err(ComponentError::param(
                    name,
                    format!("key_length must be an integer, got {other}"),
                ));
            }
        };
        if key_length < MIN_KEY_LENGTH {
            return Err(ComponentError::param(
                name,
                format!(
                    "key_length {key_length} is too small, minimum is {MIN_KEY_LENGTH} \
                     (FATE's safety.phe.paillier.minimum_key_size)"
                ),
            ));
        }
        if !fate_crypto::paillier::SUPPORTED_KEY_BITS.contains(&key_length) {
            return Err(ComponentError::param(
                name,
                format!(
                    "key_length {key_length} is not supported; use one of {:?}",
                    fate_crypto::paillier::SUPPORTED_KEY_BITS
                ),
            ));
        }
        Ok(HeParam { kind, key_length })
    }
}

/// `early_stop`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EarlyStop {
    /// |loss_{t−1} − loss_t| < tol.
    Diff,
    /// loss ≤ tol.
    Abs,
    /// ‖Σ_epoch Δw‖₂ < tol.
    WeightDiff,
}

impl EarlyStop {
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_lowercase().as_str() {
            "diff" => Some(EarlyStop::Diff),
            "abs" => Some(EarlyStop::Abs),
            "weight_diff" => Some(EarlyStop::WeightDiff),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EarlyStop::Diff => "diff",
            EarlyStop::Abs => "abs",
            EarlyStop::WeightDiff => "weight_diff",
        }
    }
}

/// Every train-stage parameter, validated.
#[derive(Debug, Clone)]
pub struct TrainParams {
    pub epochs: usize,
    /// `None`: full batch.
    pub batch_size: Option<usize>,
    pub optimizer: OptimizerParam,
    pub learning_rate_scheduler: SchedulerParam,
    /// As given (0 means float precision in FATE).
    pub floating_point_precision: u32,
    pub tol: f64,
    pub early_stop: EarlyStop,
    pub he_param: HeParam,
    pub init_param: InitParam,
    pub threshold: f64,
}

impl TrainParams {
    /// Reads and validates every parameter (absent ones take FATE's component defaults).
    pub fn from_ctx(ctx: &Ctx) -> Result<Self, ComponentError> {
        let epochs = ctx.param_opt::<u64>("epochs")?.unwrap_or(20);
        if epochs == 0 {
            return Err(ComponentError::param("epochs", "must be greater than 0"));
        }
        let batch_size = ctx.param_opt::<u64>("batch_size")?;
        if let Some(b) = batch_size
            && b < 10
        {
            return Err(ComponentError::param(
                "batch_size",
                format!("{b} is too small: null (full batch) or at least 10"),
            ));
        }
        let optimizer = match ctx.params.get("optimizer") {
            None | Some(Value::Null) => OptimizerParam::fate_default(),
            Some(v) => OptimizerParam::from_json(v, "optimizer")?,
        };
        let learning_rate_scheduler = match ctx.params.get("learning_rate_scheduler") {
            None | Some(Value::Null) => SchedulerParam::fate_default(),
            Some(v) => SchedulerParam::from_json(v, "learning_rate_scheduler")?,
        };
        let floating_point_precision = ctx
            .param_opt::<u32>("floating_point_precision")?
            .unwrap_or(23);
        if floating_point_precision > MAX_FLOATING_POINT_PRECISION {
            return Err(ComponentError::param(
                "floating_point_precision",
                format!(
                    "{floating_point_precision} is too large: features are encoded as 64-bit integers, \
                     at most {MAX_FLOATING_POINT_PRECISION} fractional bits"
                ),
            ));
        }
        let tol = ctx.param_opt::<f64>("tol")?.unwrap_or(1e-4);
        if !(tol >= 0.0 && tol.is_finite()) {
            return Err(ComponentError::param(
                "tol",
                format!("must be a finite number at least 0, got {tol}"),
            ));
        }
        let early_stop_name = ctx
            .param_opt::<String>("early_stop")?
            .unwrap_or_else(|| "diff".into());
        let early_stop = EarlyStop::parse(&early_stop_name).ok_or_else(|| {
            ComponentError::param(
                "early_stop",
                format!("`{early_stop_name}` is not one of weight_diff, diff, abs"),
            )
        })?;
        let he_param = match ctx.params.get("he_param") {
            None | Some(Value::Null) => HeParam::fate_default(),
            Some(v) => HeParam::from_json(v, "he_param")?,
        };
        let init_param = match ctx.params.get("init_param") {
            None | Some(Value::Null) => InitParam::fate_default(),
            Some(v) => InitParam::from_json(v, "init_param")?,
        };
        let threshold = ctx.param_opt::<f64>("threshold")?.unwrap_or(0.5);
        if !(0.0..=1.0).contains(&threshold) {
            return Err(ComponentError::param(
                "threshold",
                format!("must be in [0, 1], got {threshold}"),
            ));
        }
        Ok(TrainParams {
            epochs: epochs as usize,
            batch_size: batch_size.map(|b| b as usize),
            optimizer,
            learning_rate_scheduler,
            floating_point_precision,
            tol,
            early_stop,
            he_param,
            init_param,
            threshold,
        })
    }
}

/// The fixed-point bits features are encoded with for `X^T·[[d]]`.
pub fn x_precision_bits(floating_point_precision: u32) -> u32 {
    if floating_point_precision == 0 {
        FULL_PRECISION_BITS
    } else {
        floating_point_precision
    }
}

fn choice(
    obj: &Map<String, Value>,
    name: &str,
    field: &str,
    default: &str,
) -> Result<String, ComponentError> {
    match obj.get(field) {
        None => Ok(default.to_string()),
        Some(Value::String(s)) => Ok(s.to_lowercase()),
        Some(other) => Err(ComponentError::param(
            name,
            format!("{field} must be a string, got {other}"),
        )),
    }
}

fn finite(v: &Value) -> Option<f64> {
    v.as_f64().filter(|x| x.is_finite())
}
