//! The plaintext numerics of CoordinatedLR with torch's semantics, as FATE uses them
//! (`fate/ml/utils/{_optimizer,_convergence,_model_param}.py`, fate-spec §4.3):
//!
//! - [`Optimizer`]: torch's SGD, RMSprop, Adam, AdamW, Adagrad, Adadelta and Adamax update rules
//!   on the arbiter's *shadow* parameter, which starts at zero; the arbiter returns the step's
//!   delta `p_prev − p_new` and each party applies it to its real weights (so `weight_decay`
//!   acts on the shadow parameter, exactly as in FATE).
//! - [`LrScheduler`]: torch's ConstantLR, LinearLR and StepLR in closed form, stepped once per
//!   epoch.
//! - [`Regularizer`]: FATE's L2 gradient term, L1 proximal update and loss norms, applied by the
//!   parties to their own weights.
//! - [`initialize`]: FATE's `initialize_param`; `random_uniform` with a `random_state`
//!   reproduces `torch.rand(n, generator=torch.Generator().manual_seed(seed))` bit for bit
//!   (mt19937, 24 random bits per float).

use super::params::{InitMethod, InitParam, OptimizerParam, Penalty, SchedulerParam};
use fate_runtime::ComponentError;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// Optimizers this build implements (torch names).
pub const SUPPORTED_OPTIMIZERS: [&str; 7] = [
    "sgd", "rmsprop", "adam", "adamw", "adagrad", "adadelta", "adamax",
];

/// FATE's other optimizer names, which are refused with the supported list.
const FATE_ONLY_OPTIMIZERS: [&str; 4] = ["asgd", "nadam", "radam", "rprop"];

/// torch keyword arguments that only select an implementation; accepted and ignored.
const IMPLEMENTATION_FLAGS: [&str; 4] = ["foreach", "capturable", "differentiable", "fused"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Sgd,
    Rmsprop,
    Adam,
    Adamw,
    Adagrad,
    Adadelta,
    Adamax,
}

/// An optimizer method with its torch hyperparameters resolved (torch's defaults for absent
/// keys).
#[derive(Debug, Clone, PartialEq)]
pub struct OptimSpec {
    pub method: Method,
    /// The base learning rate (the scheduler scales it).
    pub lr: f64,
    momentum: f64,
    dampening: f64,
    weight_decay: f64,
    nesterov: bool,
    maximize: bool,
    /// RMSprop's smoothing constant (torch's `alpha`).
    smoothing: f64,
    eps: f64,
    centered: bool,
    beta1: f64,
    beta2: f64,
    amsgrad: bool,
    lr_decay: f64,
    initial_accumulator_value: f64,
    rho: f64,
}

impl OptimSpec {
    /// Resolves `optimizer.method` and `optimizer.optimizer_params` as torch's constructors do;
    /// errors name `name` (the parameter) and the offending key.
    pub fn from_param(p: &OptimizerParam, name: &str) -> Result<Self, ComponentError> {
        let method = match p.method.as_str() {
            "sgd" => Method::Sgd,
            "rmsprop" => Method::Rmsprop,
            "adam" => Method::Adam,
            "adamw" => Method::Adamw,
            "adagrad" => Method::Adagrad,
            "adadelta" => Method::Adadelta,
            "adamax" => Method::Adamax,
            other => {
                let what = if FATE_ONLY_OPTIMIZERS.contains(&other) {
                    "is a FATE optimizer that fate-rs does not implement"
                } else {
                    "is not an optimizer"
                };
                return Err(ComponentError::param(
                    name,
                    format!(
                        "method `{other}` {what}; supported methods are {}",
                        SUPPORTED_OPTIMIZERS.join(", ")
                    ),
                ));
            }
        };
        let (lr, accepted): (f64, &[&str]) = match method {
            Method::Sgd => (
                1e-3,
                &[
                    "lr",
                    "momentum",
                    "dampening",
                    "weight_decay",
                    "nesterov",
                    "maximize",
                ],
            ),
            Method::Rmsprop => (
                1e-2,
                &[
                    "lr",
                    "alpha",
                    "eps",
                    "weight_decay",
                    "momentum",
                    "centered",
                    "maximize",
                ],
            ),
            Method::Adam | Method::Adamw => (
                1e-3,
                &["lr", "betas", "eps", "weight_decay", "amsgrad", "maximize"],
            ),
            Method::Adagrad => (
                1e-2,
                &[
                    "lr",
                    "lr_decay",
                    "weight_decay",
                    "initial_accumulator_value",
                    "eps",
                    "maximize",
                ],
            ),
            Method::Adadelta => (1.0, &["lr", "rho", "eps", "weight_decay", "maximize"]),
            Method::Adamax => (2e-3, &["lr", "betas", "eps", "weight_decay", "maximize"]),
        };
        let kw = &p.optimizer_params;
        for key in kw.keys() {
            if !accepted.contains(&key.as_str()) && !IMPLEMENTATION_FLAGS.contains(&key.as_str()) {
                return Err(ComponentError::param(
                    name,
                    format!(
                        "optimizer_params.{key} is not a keyword of torch's {}; accepted: {}",
                        p.method,
                        accepted.join(", ")
                    ),
                ));
            }
        }
        let num = |key: &str, default: f64| -> Result<f64, ComponentError> {
            match kw.get(key) {
                None | Some(Value::Null) => Ok(default),
                Some(v) => v.as_f64().filter(|x| x.is_finite()).ok_or_else(|| {
                    ComponentError::param(
                        name,
                        format!("optimizer_params.{key} must be a finite number, got {v}"),
                    )
                }),
            }
        };
        let flag = |key: &str| -> Result<bool, ComponentError> {
            match kw.get(key) {
                None | Some(Value::Null) => Ok(false),
                Some(Value::Bool(b)) => Ok(*b),
                Some(v) => Err(ComponentError::param(
                    name,
                    format!("optimizer_params.{key} must be true or false, got {v}"),
                )),
            }
        };
        let (beta1, beta2) = match kw.get("betas") {
            None | Some(Value::Null) => (0.9, 0.999),
            Some(Value::Array(b)) if b.len() == 2 => match (b[0].as_f64(), b[1].as_f64()) {
                (Some(x), Some(y)) => (x, y),
                _ => {
                    return Err(ComponentError::param(
                        name,
                        "optimizer_params.betas must be two numbers",
                    ));
                }
            },
            Some(v) => {
                return Err(ComponentError::param(
                    name,
                    format!("optimizer_params.betas must be two numbers, got {v}"),
                ));
            }
        };
        let default_wd = if method == Method::Adamw { 1e-2 } else { 0.0 };
        let spec = OptimSpec {
            method,
            lr: num("lr", lr)?,
            momentum: num("momentum", 0.0)?,
            dampening: num("dampening", 0.0)?,
            weight_decay: num("weight_decay", default_wd)?,
            nesterov: flag("nesterov")?,
            maximize: flag("maximize")?,
            smoothing: num("alpha", 0.99)?,
            eps: num(
                "eps",
                if method == Method::Adagrad {
                    1e-10
                } else if method == Method::Adadelta {
                    1e-6
                } else {
                    1e-8
                },
            )?,
            centered: flag("centered")?,
            beta1,
            beta2,
            amsgrad: flag("amsgrad")?,
            lr_decay: num("lr_decay", 0.0)?,
            initial_accumulator_value: num("initial_accumulator_value", 0.0)?,
            rho: num("rho", 0.9)?,
        };
        // torch's own argument checks.
        let bad = |what: String| Err(ComponentError::param(name, what));
        if spec.lr < 0.0 {
            return bad(format!(
                "optimizer_params.lr must be at least 0, got {}",
                spec.lr
            ));
        }
        for (key, v) in [
            ("eps", spec.eps),
            ("momentum", spec.momentum),
            ("weight_decay", spec.weight_decay),
            ("lr_decay", spec.lr_decay),
            ("alpha", spec.smoothing),
            ("initial_accumulator_value", spec.initial_accumulator_value),
        ] {
            if v < 0.0 {
                return bad(format!(
                    "optimizer_params.{key} must be at least 0, got {v}"
                ));
            }
        }
        if !(0.0..1.0).contains(&spec.beta1) || !(0.0..1.0).contains(&spec.beta2) {
            return bad(format!(
                "optimizer_params.betas must be in [0, 1), got [{}, {}]",
                spec.beta1, spec.beta2
            ));
        }
        if !(0.0..=1.0).contains(&spec.rho) {
            return bad(format!(
                "optimizer_params.rho must be in [0, 1], got {}",
                spec.rho
            ));
        }
        if spec.nesterov && (spec.momentum <= 0.0 || spec.dampening != 0.0) {
            return bad("optimizer_params.nesterov requires a momentum and zero dampening".into());
        }
        Ok(spec)
    }
}

/// torch's optimizer on the arbiter's shadow parameter.
#[derive(Debug, Clone)]
pub struct Optimizer {
    pub spec: OptimSpec,
    /// The shadow parameter (zeros at the start, as FATE's `init_optimizer`).
    pub param: Vec<f64>,
    /// Per-method state vectors by torch's names (`square_avg`, `exp_avg`, ...).
    pub state: BTreeMap<String, Vec<f64>>,
    pub step: u64,
}

impl Optimizer {
    pub fn new(spec: OptimSpec, len: usize) -> Self {
        Optimizer {
            spec,
            param: vec![0.0; len],
            state: BTreeMap::new(),
            step: 0,
        }
    }

    /// One torch step with gradient `grad` at learning rate `lr`; returns `p_prev − p_new`.
    pub fn step(&mut self, grad: &[f64], lr: f64) -> Vec<f64> {
        let s = self.spec.clone();
        let n = self.param.len();
        let prev = self.param.clone();
        let mut g: Vec<f64> = grad
            .iter()
            .map(|&x| if s.maximize { -x } else { x })
            .collect();
        self.step += 1;
        let t = self.step as f64;
        if s.weight_decay != 0.0 && s.method != Method::Adamw {
            for (gi, pi) in g.iter_mut().zip(&self.param) {
                *gi += s.weight_decay * pi;
            }
        }
        let init = self.spec.initial_accumulator_value;
        let take = |state: &mut BTreeMap<String, Vec<f64>>, key: &str, fill: f64| -> Vec<f64> {
            state
                .remove(key)
                .filter(|v| v.len() == n)
                .unwrap_or_else(|| vec![fill; n])
        };
        let p = &mut self.param;
        match s.method {
            Method::Sgd => {
                if s.momentum != 0.0 {
                    let buf = match self
                        .state
                        .remove("momentum_buffer")
                        .filter(|v| v.len() == n)
                    {
                        None => g.clone(),
                        Some(b) => b
                            .iter()
                            .zip(&g)
                            .map(|(b, g)| s.momentum * b + (1.0 - s.dampening) * g)
                            .collect(),
                    };
                    if s.nesterov {
                        for (gi, bi) in g.iter_mut().zip(&buf) {
                            *gi += s.momentum * bi;
                        }
                    } else {
                        g.clone_from(&buf);
                    }
                    self.state.insert("momentum_buffer".into(), buf);
                }
                for (pi, gi) in p.iter_mut().zip(&g) {
                    *pi -= lr * gi;
                }
            }
            Method::Rmsprop => {
                let mut sq = take(&mut self.state, "square_avg", 0.0);
                let a = s.smoothing;
                for (si, gi) in sq.iter_mut().zip(&g) {
                    *si = a * *si + (1.0 - a) * gi * gi;
                }
                let avg: Vec<f64> = if s.centered {
                    let mut ga = take(&mut self.state, "grad_avg", 0.0);
                    for (gai, gi) in ga.iter_mut().zip(&g) {
                        *gai += (1.0 - a) * (gi - *gai);
                    }
                    let avg = sq
                        .iter()
                        .zip(&ga)
                        .map(|(s2, m)| (s2 - m * m).sqrt() + s.eps)
                        .collect();
                    self.state.insert("grad_avg".into(), ga);
                    avg
                } else {
                    sq.iter().map(|s2| s2.sqrt() + s.eps).collect()
                };
                if s.momentum > 0.0 {
                    let mut buf = take(&mut self.state, "momentum_buffer", 0.0);
                    for ((bi, gi), ai) in buf.iter_mut().zip(&g).zip(&avg) {
                        *bi = s.momentum * *bi + gi / ai;
                    }
                    for (pi, bi) in p.iter_mut().zip(&buf) {
                        *pi -= lr * bi;
                    }
                    self.state.insert("momentum_buffer".into(), buf);
                } else {
                    for ((pi, gi), ai) in p.iter_mut().zip(&g).zip(&avg) {
                        *pi -= lr * gi / ai;
                    }
                }
                self.state.insert("square_avg".into(), sq);
            }
            Method::Adam | Method::Adamw => {
                if s.method == Method::Adamw {
                    for pi in p.iter_mut() {
                        *pi *= 1.0 - lr * s.weight_decay;
                    }
                }
                let mut m = take(&mut self.state, "exp_avg", 0.0);
                let mut v = take(&mut self.state, "exp_avg_sq", 0.0);
                for ((mi, vi), gi) in m.iter_mut().zip(v.iter_mut()).zip(&g) {
                    *mi += (1.0 - s.beta1) * (gi - *mi);
                    *vi = s.beta2 * *vi + (1.0 - s.beta2) * gi * gi;
                }
                let bc1 = 1.0 - s.beta1.powf(t);
                let bc2_sqrt = (1.0 - s.beta2.powf(t)).sqrt();
                let step_size = lr / bc1;
                let denom_src = if s.amsgrad {
                    let mut mx = take(&mut self.state, "max_exp_avg_sq", 0.0);
                    for (xi, vi) in mx.iter_mut().zip(&v) {
                        *xi = xi.max(*vi);
                    }
                    let d = mx.clone();
                    self.state.insert("max_exp_avg_sq".into(), mx);
                    d
                } else {
                    v.clone()
                };
                for ((pi, mi), di) in p.iter_mut().zip(&m).zip(&denom_src) {
                    *pi -= step_size * mi / (di.sqrt() / bc2_sqrt + s.eps);
                }
                self.state.insert("exp_avg".into(), m);
                self.state.insert("exp_avg_sq".into(), v);
            }
            Method::Adagrad => {
                let mut sum = take(&mut self.state, "sum", init);
                let clr = lr / (1.0 + (t - 1.0) * s.lr_decay);
                for ((pi, si), gi) in p.iter_mut().zip(sum.iter_mut()).zip(&g) {
                    *si += gi * gi;
                    *pi -= clr * gi / (si.sqrt() + s.eps);
                }
                self.state.insert("sum".into(), sum);
            }
            Method::Adadelta => {
                let mut sq = take(&mut self.state, "square_avg", 0.0);
                let mut acc = take(&mut self.state, "acc_delta", 0.0);
                for (((pi, si), ai), gi) in
                    p.iter_mut().zip(sq.iter_mut()).zip(acc.iter_mut()).zip(&g)
                {
                    *si = s.rho * *si + (1.0 - s.rho) * gi * gi;
                    let std = (*si + s.eps).sqrt();
                    let delta = (*ai + s.eps).sqrt() / std * gi;
                    *ai = s.rho * *ai + (1.0 - s.rho) * delta * delta;
                    *pi -= lr * delta;
                }
                self.state.insert("square_avg".into(), sq);
                self.state.insert("acc_delta".into(), acc);
            }
            Method::Adamax => {
                let mut m = take(&mut self.state, "exp_avg", 0.0);
                let mut u = take(&mut self.state, "exp_inf", 0.0);
                let clr = lr / (1.0 - s.beta1.powf(t));
                for (((pi, mi), ui), gi) in p.iter_mut().zip(m.iter_mut()).zip(u.iter_mut()).zip(&g)
                {
                    *mi += (1.0 - s.beta1) * (gi - *mi);
                    *ui = (*ui * s.beta2).max(gi.abs() + s.eps);
                    *pi -= clr * *mi / *ui;
                }
                self.state.insert("exp_avg".into(), m);
                self.state.insert("exp_inf".into(), u);
            }
        }
        prev.iter()
            .zip(self.param.iter())
            .map(|(a, b)| a - b)
            .collect()
    }

    /// The optimizer's state for the arbiter's model (warm start).
    pub fn state_json(&self) -> Value {
        json!({"step": self.step, "state": self.state, "model_parameter": self.param})
    }

    /// Restores [`Optimizer::state_json`].
    pub fn restore(spec: OptimSpec, v: &Value) -> Option<Self> {
        let step = v.get("step")?.as_u64()?;
        let param: Vec<f64> = serde_json::from_value(v.get("model_parameter")?.clone()).ok()?;
        let state: BTreeMap<String, Vec<f64>> =
            serde_json::from_value(v.get("state")?.clone()).ok()?;
        if state.values().any(|s| s.len() != param.len()) {
            return None;
        }
        Some(Optimizer {
            spec,
            param,
            state,
            step,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
enum SchedKind {
    Constant {
        factor: f64,
        total_iters: u64,
    },
    Linear {
        start_factor: f64,
        end_factor: f64,
        total_iters: u64,
    },
    Step {
        step_size: u64,
        gamma: f64,
    },
}

/// torch's learning-rate schedulers, stepped once per epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct LrScheduler {
    kind: SchedKind,
    pub base_lr: f64,
    /// Epochs stepped so far (torch's `last_epoch`).
    pub last_epoch: u64,
    param: SchedulerParam,
}

impl LrScheduler {
    /// A scheduler over base learning rate `base_lr`; errors name `name`.
    pub fn new(p: &SchedulerParam, base_lr: f64, name: &str) -> Result<Self, ComponentError> {
        let kw = &p.scheduler_params;
        let accepted: &[&str] = match p.method.as_str() {
            "constant" => &["factor", "total_iters"],
            "linear" => &["start_factor", "end_factor", "total_iters"],
            "step" => &["step_size", "gamma"],
            other => {
                return Err(ComponentError::param(
                    name,
                    format!("method `{other}` is not one of constant, linear, step"),
                ));
            }
        };
        for key in kw.keys() {
            if !accepted.contains(&key.as_str()) && key != "last_epoch" && key != "verbose" {
                return Err(ComponentError::param(
                    name,
                    format!(
                        "scheduler_params.{key} is not a keyword of the {} scheduler; accepted: {}",
                        p.method,
                        accepted.join(", ")
                    ),
                ));
            }
        }
        let num = |key: &str, default: f64| -> Result<f64, ComponentError> {
            let v = match kw.get(key) {
                None | Some(Value::Null) if default.is_nan() => {
                    return Err(ComponentError::param(
                        name,
                        format!(
                            "scheduler_params.{key} is required by the {} scheduler",
                            p.method
                        ),
                    ));
                }
                None | Some(Value::Null) => default,
                Some(v) => v.as_f64().filter(|x| x.is_finite()).ok_or_else(|| {
                    ComponentError::param(
                        name,
                        format!("scheduler_params.{key} must be a finite number, got {v}"),
                    )
                })?,
            };
            if (key == "total_iters" || key == "step_size") && (v < 0.0 || v.fract() != 0.0) {
                return Err(ComponentError::param(
                    name,
                    format!("scheduler_params.{key} must be a non-negative integer, got {v}"),
                ));
            }
            Ok(v)
        };
        let kind = match p.method.as_str() {
            "constant" => SchedKind::Constant {
                factor: num("factor", 1.0 / 3.0)?,
                total_iters: num("total_iters", 5.0)? as u64,
            },
            "linear" => SchedKind::Linear {
                start_factor: num("start_factor", 1.0 / 3.0)?,
                end_factor: num("end_factor", 1.0)?,
                total_iters: num("total_iters", 5.0)? as u64,
            },
            // "step", the only other method `accepted` let through.
            _ => SchedKind::Step {
                step_size: num("step_size", f64::NAN)? as u64,
                gamma: num("gamma", 0.1)?,
            },
        };
        match &kind {
            SchedKind::Constant { factor, .. } if !(0.0..=1.0).contains(factor) => {
                return Err(ComponentError::param(
                    name,
                    format!("scheduler_params.factor must be in [0, 1], got {factor}"),
                ));
            }
            SchedKind::Linear {
                start_factor,
                end_factor,
                ..
            } if !(*start_factor > 0.0
                && *start_factor <= 1.0
                && (0.0..=1.0).contains(end_factor)) =>
            {
                return Err(ComponentError::param(
                    name,
                    format!(
                        "scheduler_params.start_factor must be in (0, 1] and end_factor in [0, 1], got {start_factor} and {end_factor}"
                    ),
                ));
            }
            SchedKind::Step { step_size: 0, .. } => {
                return Err(ComponentError::param(
                    name,
                    "scheduler_params.step_size must be at least 1",
                ));
            }
            _ => {}
        }
        Ok(LrScheduler {
            kind,
            base_lr,
            last_epoch: 0,
            param: p.clone(),
        })
    }

    /// The learning rate of the current epoch.
    pub fn lr(&self) -> f64 {
        let e = self.last_epoch;
        match self.kind {
            SchedKind::Constant {
                factor,
                total_iters,
            } => {
                if e < total_iters {
                    self.base_lr * factor
                } else {
                    self.base_lr
                }
            }
            SchedKind::Linear {
                start_factor,
                end_factor,
                total_iters,
            } => {
                let frac = if total_iters == 0 {
                    1.0
                } else {
                    e.min(total_iters) as f64 / total_iters as f64
                };
                self.base_lr * (start_factor + (end_factor - start_factor) * frac)
            }
            SchedKind::Step { step_size, gamma } => {
                self.base_lr * gamma.powi((e / step_size).min(i32::MAX as u64) as i32)
            }
        }
    }

    pub fn step(&mut self) {
        self.last_epoch += 1;
    }

    /// FATE's `LRScheduler.state_dict()` shape.
    pub fn to_json(&self) -> Value {
        json!({
            "method": self.param.method,
            "lr_params": self.param.scheduler_params,
            "lr_scheduler": {"last_epoch": self.last_epoch, "base_lrs": [self.base_lr], "_last_lr": [self.lr()]},
        })
    }

    /// Restores [`LrScheduler::to_json`] (also reads FATE's torch `state_dict`).
    pub fn from_json(v: &Value, name: &str) -> Result<Self, ComponentError> {
        let bad = |what: &str| ComponentError::Input {
            key: name.to_string(),
            reason: format!("lr_scheduler: {what}"),
        };
        let method = v
            .get("method")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("method is missing"))?;
        let lr_params = match v.get("lr_params") {
            Some(Value::Object(m)) => m.clone(),
            _ => Map::new(),
        };
        let state = v
            .get("lr_scheduler")
            .ok_or_else(|| bad("state is missing"))?;
        let base_lr = state
            .get("base_lrs")
            .and_then(|b| b.get(0))
            .and_then(Value::as_f64)
            .ok_or_else(|| bad("base_lrs is missing"))?;
        let last_epoch = state
            .get("last_epoch")
            .and_then(Value::as_u64)
            .ok_or_else(|| bad("last_epoch is missing"))?;
        let p = SchedulerParam {
            method: method.to_string(),
            scheduler_params: lr_params,
        };
        let mut s = LrScheduler::new(&p, base_lr, name)?;
        s.last_epoch = last_epoch;
        Ok(s)
    }
}

/// FATE's penalty handling at a party (`Optimizer.add_regular_to_grad`, `update_weights`,
/// `loss_norm`). `w` has the intercept last when `fit_intercept`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Regularizer {
    pub penalty: Penalty,
    pub alpha: f64,
}

impl Regularizer {
    /// The L2 gradient term `alpha·w` (intercept excluded), or zeros.
    pub fn grad_term(&self, w: &[f64], fit_intercept: bool) -> Vec<f64> {
        let mut out: Vec<f64> = match self.penalty {
            Penalty::L2 => w.iter().map(|x| self.alpha * x).collect(),
            _ => vec![0.0; w.len()],
        };
        if fit_intercept && let Some(last) = out.last_mut() {
            *last = 0.0;
        }
        out
    }

    /// Applies the arbiter's delta: `w − delta`, or FATE's L1 proximal step with shrinkage
    /// `alpha·lr/√iters`. FATE counts `iters` from 0, which makes the first epoch's shrinkage
    /// infinite (every coefficient becomes 0); fate-rs counts from 1.
    pub fn update(
        &self,
        w: &[f64],
        delta: &[f64],
        fit_intercept: bool,
        lr: f64,
        epoch: usize,
    ) -> Vec<f64> {
        match self.penalty {
            Penalty::L1 => {
                let shrink = self.alpha * lr / ((epoch + 1) as f64).sqrt();
                let n_coef = if fit_intercept {
                    w.len().saturating_sub(1)
                } else {
                    w.len()
                };
                w.iter()
                    .zip(delta)
                    .enumerate()
                    .map(|(i, (wi, di))| {
                        let v = wi - di;
                        if i < n_coef {
                            v.signum() * (v.abs() - shrink).max(0.0)
                        } else {
                            v
                        }
                    })
                    .collect()
            }
            _ => w.iter().zip(delta).map(|(a, b)| a - b).collect(),
        }
    }

    /// FATE's loss norm: `alpha·Σw` (L1, as FATE writes it) or `0.5·alpha·wᵀw` (L2), intercept
    /// included as in FATE.
    pub fn loss_norm(&self, w: &[f64]) -> Option<f64> {
        match self.penalty {
            Penalty::L1 => Some(w.iter().map(|x| self.alpha * x).sum()),
            Penalty::L2 => Some(0.5 * self.alpha * w.iter().map(|x| x * x).sum::<f64>()),
            Penalty::None => None,
        }
    }
}

/// FATE's convergence functions (`_convergence.py`).
#[derive(Debug, Clone, PartialEq)]
pub enum Converge {
    Diff { tol: f64, prev: Option<f64> },
    Abs { tol: f64 },
    WeightDiff { tol: f64 },
}

impl Converge {
    pub fn new(early_stop: super::params::EarlyStop, tol: f64) -> Self {
        use super::params::EarlyStop;
        match early_stop {
            EarlyStop::Diff => Converge::Diff { tol, prev: None },
            EarlyStop::Abs => Converge::Abs { tol },
            EarlyStop::WeightDiff => Converge::WeightDiff { tol },
        }
    }

    /// Checks the epoch's summed loss (diff, abs) or summed delta (weight_diff).
    pub fn check(&mut self, loss: Option<f64>, delta_sum: &[f64]) -> Option<bool> {
        match self {
            Converge::Diff { tol, prev } => {
                let loss = loss?;
                let done = prev.is_some_and(|p| (p - loss).abs() < *tol);
                *prev = Some(loss);
                Some(done)
            }
            Converge::Abs { tol } => Some(loss? <= *tol),
            Converge::WeightDiff { tol } => {
                Some(delta_sum.iter().map(|x| x * x).sum::<f64>().sqrt() < *tol)
            }
        }
    }
}

/// FATE's `initialize_param(coef_len, **init_param)`: `coef_len` weights plus an intercept
/// (last) when `fit_intercept`.
pub fn initialize(coef_len: usize, init: &InitParam) -> Vec<f64> {
    let len = coef_len + usize::from(init.fit_intercept);
    match init.method {
        InitMethod::Zeros => vec![0.0; len],
        InitMethod::Ones => vec![1.0; len],
        InitMethod::Consts => vec![init.fill_val; len],
        InitMethod::RandomUniform => {
            let seed = init
                .random_state
                .unwrap_or_else(|| rand::thread_rng().r#gen());
            let mut mt = Mt19937::new(seed as u32);
            (0..len).map(|_| torch_uniform_f32(&mut mt)).collect()
        }
        InitMethod::Random => {
            // Standard normal by Box–Muller; not bit-identical to torch.randn.
            let mut rng = match init.random_state {
                Some(s) => rand_chacha::ChaCha8Rng::seed_from_u64(s),
                None => rand_chacha::ChaCha8Rng::from_entropy(),
            };
            (0..len)
                .map(|_| {
                    let u1: f64 = 1.0 - rng.r#gen::<f64>();
                    let u2: f64 = rng.r#gen();
                    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
                })
                .collect()
        }
    }
}

/// torch's CPU `uniform_real_distribution<float>`: 24 low bits of one mt19937 draw over 2^24.
fn torch_uniform_f32(mt: &mut Mt19937) -> f64 {
    f64::from(mt.next_u32() & 0x00FF_FFFF) / f64::from(1u32 << 24)
}

/// The 32-bit Mersenne Twister (MT19937), seeded as torch's `at::mt19937`.
struct Mt19937 {
    mt: [u32; 624],
    idx: usize,
}

impl Mt19937 {
    fn new(seed: u32) -> Self {
        let mut mt = [0u32; 624];
        mt[0] = seed;
        for i in 1..624 {
            mt[i] = 1_812_433_253u32
                .wrapping_mul(mt[i - 1] ^ (mt[i - 1] >> 30))
                .wrapping_add(i as u32);
        }
        Mt19937 { mt, idx: 624 }
    }

    fn next_u32(&mut self) -> u32 {
        if self.idx >= 624 {
            for i in 0..624 {
                let y = (self.mt[i] & 0x8000_0000) | (self.mt[(i + 1) % 624] & 0x7FFF_FFFF);
                let mut v = self.mt[(i + 397) % 624] ^ (y >> 1);
                if y & 1 != 0 {
                    v ^= 0x9908_B0DF;
                }
                self.mt[i] = v;
            }
            self.idx = 0;
        }
        let mut y = self.mt[self.idx];
        self.idx += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9D2C_5680;
        y ^= (y << 15) & 0xEFC6_0000;
        y ^ (y >> 18)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coordinated_lr::params::EarlyStop;

    fn spec(method: &str, kw: Value) -> OptimSpec {
        let p = OptimizerParam {
            method: method.into(),
            penalty: Penalty::L2,
            alpha: 0.0,
            optimizer_params: kw.as_object().cloned().unwrap_or_default(),
        };
        OptimSpec::from_param(&p, "optimizer").unwrap()
    }

    #[test]
    fn mt19937_matches_the_reference_and_torch_rand() {
        // The C++ standard's check value: the 10000th output of mt19937 seeded 5489.
        let mut mt = Mt19937::new(5489);
        let mut last = 0;
        for _ in 0..10000 {
            last = mt.next_u32();
        }
        assert_eq!(last, 4_123_659_995);
        // torch.manual_seed(42); torch.rand(3) -> [0.8823, 0.9150, 0.3829].
        let w = initialize(
            2,
            &InitParam {
                method: InitMethod::RandomUniform,
                fill_val: 0.0,
                fit_intercept: true,
                random_state: Some(42),
            },
        );
        let expected = [0.8823, 0.9150, 0.3829];
        for (a, b) in w.iter().zip(expected) {
            assert!((a - b).abs() < 1e-4, "{w:?}");
        }
    }

    #[test]
    fn sgd_delta_is_lr_times_gradient() {
        let mut o = Optimizer::new(spec("sgd", json!({"lr": 0.5})), 2);
        assert_eq!(o.step(&[1.0, -2.0], 0.5), vec![0.5, -1.0]);
    }

    #[test]
    fn rmsprop_first_step_matches_torch() {
        // torch: square_avg = 0.01·g², step = lr·g/(√square_avg + eps) = lr·g/(0.1|g|) = 10·lr·sign(g).
        let mut o = Optimizer::new(spec("rmsprop", json!({"lr": 0.15})), 2);
        let d = o.step(&[0.3, -4.0], 0.15);
        assert!(
            (d[0] - 1.5).abs() < 1e-6 && (d[1] + 1.5).abs() < 1e-6,
            "{d:?}"
        );
    }

    #[test]
    fn adam_first_step_is_lr_times_sign() {
        let mut o = Optimizer::new(spec("adam", json!({"lr": 0.1})), 2);
        let d = o.step(&[2.0, -0.5], 0.1);
        assert!(
            (d[0] - 0.1).abs() < 1e-6 && (d[1] + 0.1).abs() < 1e-6,
            "{d:?}"
        );
    }

    #[test]
    fn unsupported_optimizers_list_the_supported_ones() {
        let p = OptimizerParam {
            method: "nadam".into(),
            penalty: Penalty::L2,
            alpha: 1.0,
            optimizer_params: Map::new(),
        };
        let e = OptimSpec::from_param(&p, "optimizer")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("nadam") && e.contains("rmsprop") && e.contains("adagrad"),
            "{e}"
        );
        let p = OptimizerParam {
            method: "sgd".into(),
            penalty: Penalty::L2,
            alpha: 1.0,
            optimizer_params: json!({"lr": 0.1, "betas": [0.9, 0.9]})
                .as_object()
                .cloned()
                .unwrap(),
        };
        let e = OptimSpec::from_param(&p, "optimizer")
            .unwrap_err()
            .to_string();
        assert!(e.contains("betas"), "{e}");
    }

    #[test]
    fn schedulers_follow_torch() {
        let sched = |method: &str, kw: Value| {
            let p = SchedulerParam {
                method: method.into(),
                scheduler_params: kw.as_object().cloned().unwrap(),
            };
            LrScheduler::new(&p, 0.15, "learning_rate_scheduler").unwrap()
        };
        let mut c = sched("constant", json!({"factor": 0.5, "total_iters": 5}));
        let mut lrs = Vec::new();
        for _ in 0..7 {
            lrs.push(c.lr());
            c.step();
        }
        assert_eq!(lrs, vec![0.075, 0.075, 0.075, 0.075, 0.075, 0.15, 0.15]);
        let mut l = sched("linear", json!({"start_factor": 0.5, "total_iters": 4}));
        let mut lrs = Vec::new();
        for _ in 0..6 {
            lrs.push((l.lr() * 1e6).round() / 1e6);
            l.step();
        }
        assert_eq!(lrs, vec![0.075, 0.09375, 0.1125, 0.13125, 0.15, 0.15]);
        let mut s = sched("step", json!({"step_size": 2, "gamma": 0.5}));
        s.step();
        s.step();
        assert_eq!(s.lr(), 0.075);
        let p = SchedulerParam {
            method: "step".into(),
            scheduler_params: Map::new(),
        };
        assert!(
            LrScheduler::new(&p, 0.1, "x")
                .unwrap_err()
                .to_string()
                .contains("step_size")
        );
        let p = SchedulerParam {
            method: "cosine".into(),
            scheduler_params: Map::new(),
        };
        assert!(
            LrScheduler::new(&p, 0.1, "x")
                .unwrap_err()
                .to_string()
                .contains("constant, linear, step")
        );
    }

    #[test]
    fn l1_update_shrinks_coefficients_but_not_the_intercept() {
        let r = Regularizer {
            penalty: Penalty::L1,
            alpha: 1.0,
        };
        let w = r.update(&[0.5, -0.05, 2.0], &[0.0, 0.0, 0.0], true, 0.1, 0);
        assert_eq!(w, vec![0.4, 0.0, 2.0]);
        let r = Regularizer {
            penalty: Penalty::L2,
            alpha: 0.5,
        };
        assert_eq!(r.grad_term(&[2.0, 4.0], true), vec![1.0, 0.0]);
    }

    #[test]
    fn convergence_functions() {
        let mut d = Converge::new(EarlyStop::Diff, 0.1);
        assert_eq!(d.check(Some(1.0), &[]), Some(false));
        assert_eq!(d.check(Some(0.95), &[]), Some(true));
        assert_eq!(Converge::new(EarlyStop::Abs, 0.1).check(None, &[]), None);
        assert_eq!(
            Converge::new(EarlyStop::WeightDiff, 0.1).check(None, &[0.03, 0.04]),
            Some(true)
        );
    }
}
