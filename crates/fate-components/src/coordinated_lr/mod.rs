//! FATE 2.x `coordinated_lr` (fate-spec §4.3; `components/components/coordinated_lr.py`,
//! `ml/glm/hetero/coordinated_lr/{guest,host,arbiter}.py`): vertical (hetero) logistic
//! regression with a third-party arbiter that holds the Paillier secret key.
//!
//! Roles: guest (labels and features X_g, weights w_g and the intercept), host(s) (features X_h,
//! weights w_h), arbiter (key owner and optimizer). Labels are mapped to y ∈ {+1, −1}; the loss
//! is FATE's Taylor expansion of the log-loss at 0, with residual `d = 0.25·(X_g w_g + Σ X_h w_h)
//! − 0.5·y`. More than two classes train one binary sub-model per class (one-vs-rest).
//!
//! # Protocol (per fit)
//!
//! The arbiter generates a key of `he_param.key_length` bits and sends the public key
//! (`encryptor`) to the guest and hosts; each of them derives its own DJN base from it
//! ([`fate_crypto::paillier::PublicKey::with_fresh_djn_base`]). The guest sends `label_count`
//! to the arbiter and the hosts, the batch split (`batch_indexes`, sample ids per batch) to the
//! hosts and `batch_num` to the arbiter. Then per class, epoch and batch (tags
//! `train[.class-c].iter-e.batch-b`):
//!
//! - **one host** ("asynchronous"): host → guest `[[Xw_h]]` = Enc(0.25·X_h w_h); guest → host
//!   `[[half_d]]` = Enc(0.25·X_g w_g − 0.5·y); the host computes `[[g_h]]` = `X_hᵀ·Xw_h +
//!   X_hᵀ·[[half_d]]` and sends `[[Xw2_h]]` = Enc(Xw_hᵀXw_h) and `[[h_loss]]` (its penalty) to the
//!   guest; the guest computes `[[g_g]]` = `X_gᵀ·half_d + X_gᵀ·[[Xw_h]]` and the encrypted batch
//!   loss (`loss`, to the arbiter).
//! - **several hosts** ("centralized"): every host → guest `[[Xw_h]]`; guest → every host
//!   `[[d]] = 0.25·X_g w_g − 0.5·y + Σ[[Xw_h]]`; each party computes `Xᵀ·[[d]]`; there is no loss,
//!   so `early_stop` must be `weight_diff`.
//!
//! Each party adds its L2 term in plaintext and sends its encrypted gradient `g_enc` to the
//! arbiter, which decrypts them, runs the optimizer on the concatenation and returns each party
//! its own plain delta `g`; the party applies it (with FATE's L1 proximal step for L1). After each
//! epoch the arbiter decides convergence and sends `converge_flag` to everyone.
//!
//! What each party receives: the host gets the public key, `label_count`, the batch ids, Paillier
//! ciphertexts (`half_d` or `d`), its own plain delta and the flags; the guest gets the public
//! key, ciphertexts (`Xw_h`, `Xw2_h`, `h_loss`), its own delta, the flags and, at prediction,
//! each host's plain `X_h·w_h` per sample (`h_pred`, as FATE); the arbiter gets `label_count`,
//! `batch_num` and encrypted gradients and losses, whose plaintext it sees by design (§4.3),
//! never X or y.
//!
//! `X^T·[[d]]` multiplies ciphertexts by the features encoded as `round(x·2^p)` integers with
//! `p = floating_point_precision` ([`fate_crypto::paillier::PublicKey::xt_dot`]); encrypted floats
//! use [`ENC_FRAC_BITS`] fractional bits; every encrypted vector carries its scale
//! ([`CipherVec`]).
//!
//! # Differences from FATE
//!
//! - `Xw2_h` and `h_loss` are encrypted with obfuscation (FATE sends them unobfuscated).
//! - The L1 shrinkage counts epochs from 1 (FATE's `lr/√0` zeroes every coefficient in the
//!   first epoch).
//! - `init_param.method = random` draws normals with its own generator (not torch.randn's
//!   values); `random_uniform` with a `random_state` matches torch bit for bit.
//! - Multi-class `predict_result` is the class label (FATE writes the class index), binary
//!   `predict_result` is the class label of `score > threshold`; there is no `predict_detail`
//!   JSON column for binary tasks and no `type` column (fate-runtime's `predict` convention).
//! - Multi-host with `early_stop` diff or abs is refused before training (FATE fails at the end
//!   of the first epoch).
//! - The optimizers asgd, nadam, radam and rprop are not implemented (a parameter error lists
//!   the supported ones); the cross-validation stage is not offered.

mod arbiter;
mod cipher;
mod data;
mod guest;
mod host;
mod model;
pub mod optim;
pub mod params;

pub use cipher::{CipherVec, ENC_FRAC_BITS};

use crate::{artifact, param};
use fate_runtime::{Component, ComponentError, Ctx};
use fate_types::Party;
use fate_types::Role;
use fate_types::component::{ArtifactKind, ComponentSpec};
use serde_json::json;

/// Message names (FATE's transfer keys).
pub mod names {
    pub const ENCRYPTOR: &str = "encryptor";
    pub const LABEL_COUNT: &str = "label_count";
    pub const BATCH_INDEXES: &str = "batch_indexes";
    pub const BATCH_NUM: &str = "batch_num";
    pub const HALF_D: &str = "half_d";
    pub const XW_H: &str = "Xw_h";
    pub const XW2_H: &str = "Xw2_h";
    pub const H_LOSS: &str = "h_loss";
    pub const D: &str = "d";
    pub const G_ENC: &str = "g_enc";
    pub const G: &str = "g";
    pub const LOSS: &str = "loss";
    pub const CONVERGE_FLAG: &str = "converge_flag";
    pub const H_PRED: &str = "h_pred";
}

/// Most classes a peer may announce.
pub const MAX_CLASSES: usize = 4096;

/// Most batches a peer may announce.
pub const MAX_BATCHES: usize = 1 << 24;

/// The component.
pub struct CoordinatedLr;

impl Component for CoordinatedLr {
    fn spec(&self) -> ComponentSpec {
        let gh = [Role::Guest, Role::Host];
        ComponentSpec {
            name: "coordinated_lr".into(),
            legacy_modules: vec![],
            description: "vertical logistic regression with an arbiter holding the Paillier key (FATE CoordinatedLR)".into(),
            roles: vec![Role::Guest, Role::Host, Role::Arbiter],
            params: vec![
                param(
                    "learning_rate_scheduler",
                    false,
                    Some(json!({"method": "linear", "scheduler_params": {"start_factor": 1.0}})),
                    "torch scheduler: method constant, linear or step with scheduler_params",
                ),
                param("epochs", false, Some(json!(20)), "max iteration num")
                .max(crate::limits::ROUNDS),
                param("batch_size", false, Some(json!(null)), "batch size, null for full batch, else at least 10")
                .max(crate::limits::BATCH_SIZE),
                param(
                    "optimizer",
                    false,
                    Some(json!({"method": "sgd", "penalty": "l2", "alpha": 1.0, "optimizer_params": {"lr": 0.01, "weight_decay": 0}})),
                    "method, penalty (L1, L2, none), alpha and torch optimizer_params",
                ),
                param("floating_point_precision", false, Some(json!(23)), "fixed-point bits of X in X^T [[d]]"),
                param("tol", false, Some(json!(1e-4)), "convergence tolerance"),
                param("early_stop", false, Some(json!("diff")), "diff, abs or weight_diff"),
                param("he_param", false, Some(json!({"kind": "paillier", "key_length": 1024})), "homomorphic encryption param"),
                param(
                    "init_param",
                    false,
                    Some(json!({"method": "random_uniform", "fit_intercept": true, "random_state": null})),
                    "weight init: method zeros, ones, consts, random or random_uniform; fit_intercept; random_state",
                ),
                param("threshold", false, Some(json!(0.5)), "predict threshold for binary data"),
                // Cross-validation parameters FATE declares (its SDK always sends
                // output_cv_data); they only act in the cross_validation stage, which fate-rs
                // refuses with a clear error.
                param("cv_param", false, Some(json!({"n_splits": 5, "shuffle": false, "random_state": null})), "cross validation (cross_validation stage only)"),
                param("metrics", false, Some(json!(["auc"])), "cross-validation metrics (cross_validation stage only)"),
                param("output_cv_data", false, Some(json!(true)), "output cross-validation data (cross_validation stage only)"),
            ],
            inputs: vec![
                // Optional in the declaration because a predict-stage task has none of the train
                // inputs (and the reverse); the run checks what its stage needs.
                artifact("train_data", ArtifactKind::Data, true, &gh),
                artifact("validate_data", ArtifactKind::Data, true, &gh),
                artifact("warm_start_model", ArtifactKind::Model, true, &[Role::Guest, Role::Host, Role::Arbiter]),
                artifact("test_data", ArtifactKind::Data, true, &gh),
                artifact("input_model", ArtifactKind::Model, true, &gh),
            ],
            outputs: vec![
                artifact("train_output_data", ArtifactKind::Data, true, &gh),
                artifact("output_model", ArtifactKind::Model, true, &[Role::Guest, Role::Host, Role::Arbiter]),
                artifact("test_output_data", ArtifactKind::Data, true, &gh),
            ],
        }
    }

    fn run(&self, ctx: &Ctx) -> Result<(), ComponentError> {
        match ctx.stage.as_str() {
            "train" | "default" => {
                let params = params::TrainParams::from_ctx(ctx)?;
                let s = Session::new(ctx)?;
                if s.hosts.len() > 1 && params.early_stop != params::EarlyStop::WeightDiff {
                    return Err(ComponentError::param(
                        "early_stop",
                        format!(
                            "`{}` needs the loss, which is not computed with {} hosts (fate-spec §4.3); use weight_diff",
                            params.early_stop.as_str(),
                            s.hosts.len()
                        ),
                    ));
                }
                match ctx.role() {
                    Role::Guest => guest::train(&s, &params),
                    Role::Host => host::train(&s, &params),
                    Role::Arbiter => arbiter::train(&s, &params),
                    other => Err(ComponentError::Failed(format!(
                        "coordinated_lr does not run as {other}"
                    ))),
                }
            }
            "predict" => {
                let s = Session::new(ctx)?;
                match ctx.role() {
                    Role::Guest => guest::predict_stage(&s),
                    Role::Host => host::predict_stage(&s),
                    // FATE's predict stage has no arbiter part.
                    Role::Arbiter => Ok(()),
                    other => Err(ComponentError::Failed(format!(
                        "coordinated_lr does not run as {other}"
                    ))),
                }
            }
            other => Err(ComponentError::Failed(format!(
                "coordinated_lr has no `{other}` stage (train, predict)"
            ))),
        }
    }
}

/// The parties of a run, checked once.
pub(crate) struct Session<'a> {
    pub ctx: &'a Ctx,
    pub guest: Party,
    pub hosts: Vec<Party>,
    pub arbiter: Option<Party>,
}

impl<'a> Session<'a> {
    fn new(ctx: &'a Ctx) -> Result<Self, ComponentError> {
        let guest = ctx.guest()?;
        let hosts = ctx.parties_of(Role::Host);
        if hosts.is_empty() {
            return Err(ComponentError::Failed(
                "coordinated_lr needs at least one host".into(),
            ));
        }
        let arbiters = ctx.parties_of(Role::Arbiter);
        if arbiters.len() > 1 {
            return Err(ComponentError::Failed(format!(
                "coordinated_lr takes one arbiter, the task has {}",
                arbiters.len()
            )));
        }
        Ok(Session {
            ctx,
            guest,
            hosts,
            arbiter: arbiters.into_iter().next(),
        })
    }

    /// The arbiter, which training needs.
    fn arbiter(&self) -> Result<&Party, ComponentError> {
        self.arbiter.as_ref().ok_or_else(|| {
            ComponentError::Failed("coordinated_lr training needs an arbiter".into())
        })
    }

    /// Runs CPU-heavy crypto on the computing pool.
    fn pool<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        self.ctx.computing.install(f)
    }
}

/// Tag of a message of the fit: `train[.class-c].{rest}`.
fn tag(class: Option<usize>, rest: &str) -> String {
    match class {
        Some(c) => format!("train.class-{c}.{rest}"),
        None => format!("train.{rest}"),
    }
}

/// Tag of the setup messages.
const SETUP_TAG: &str = "train";

/// A fixed-size plain vector from a peer: length and finiteness checked.
/// One batch at a guest or host (fate-spec §4.3): its encrypted gradient goes to the arbiter,
/// the plain update comes back and is applied to this party's weights.
fn apply_arbiter_update(
    ctx: &fate_runtime::Ctx,
    t: &str,
    arbiter: &Party,
    g: &(impl serde::Serialize + ?Sized),
    est: &mut model::PartyEstimator,
    fit_intercept: bool,
    epoch: usize,
) -> Result<(), ComponentError> {
    let fed = &ctx.federation;
    fed.remote(names::G_ENC, t, std::slice::from_ref(arbiter), g)?;
    let delta: Vec<f64> = fed.get_one(names::G, t, arbiter)?;
    check_plain(&delta, est.w.len(), names::G, arbiter)?;
    est.w = est
        .reg
        .update(&est.w, &delta, fit_intercept, est.sched.lr(), epoch);
    check_overflow(&est.w, &ctx.local)
}

/// The end of an epoch at a guest or host: reads the arbiter's converge flag; `true` stops
/// training (and records where), otherwise the learning-rate scheduler steps.
fn finish_epoch(
    ctx: &fate_runtime::Ctx,
    class: Option<usize>,
    epoch: usize,
    epochs: usize,
    arbiter: &Party,
    est: &mut model::PartyEstimator,
) -> Result<bool, ComponentError> {
    let converged: bool = ctx.federation.get_one(
        names::CONVERGE_FLAG,
        &tag(class, &format!("iter-{epoch}")),
        arbiter,
    )?;
    fate_runtime::fault::point("lr.epoch");
    if converged {
        est.is_converged = true;
        est.end_epoch = epoch as i64;
        return Ok(true);
    }
    if epoch + 1 < epochs {
        est.sched.step();
    }
    Ok(false)
}

fn check_plain(v: &[f64], expected: usize, what: &str, from: &Party) -> Result<(), ComponentError> {
    if v.len() != expected {
        return Err(ComponentError::Data(format!(
            "`{what}` from {from} has {} values, expected {expected}",
            v.len()
        )));
    }
    if v.iter().any(|x| !x.is_finite()) {
        return Err(ComponentError::Data(format!(
            "`{what}` from {from} has a non-finite value"
        )));
    }
    Ok(())
}

/// FATE's `check_overflow`: weights beyond 1e8 mean the training diverged.
fn check_overflow(w: &[f64], party: &Party) -> Result<(), ComponentError> {
    if w.iter().any(|x| !x.is_finite() || x.abs() > 1e8) {
        return Err(ComponentError::Failed(format!(
            "weights at {party} exceed 1e8: the training diverged; lower the learning rate"
        )));
    }
    Ok(())
}
