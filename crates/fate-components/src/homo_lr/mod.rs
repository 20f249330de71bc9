//! FATE 2.2 `homo_lr` (fate-spec §4.6; `components/components/homo_lr.py`,
//! `ml/glm/homo/lr/{client,server}.py`, `ml/aggregator/base.py`): horizontal (homogeneous)
//! logistic regression. Every client (the guest and the hosts) holds rows with the same features
//! and a label; each trains FATE's torch model (`Linear(n, 1)` + sigmoid, `BCELoss`) on its own
//! rows, and after every epoch the arbiter averages the clients' models weighted by their sample
//! counts (FedAvg: `aggregate_strategy epoch`, `aggregate_freq 1`, `weighted_mean`) through
//! **secure aggregation**, so it learns only the weighted sum, never one client's model.
//!
//! # Protocol (per fit, tags `train` and `train.iter-<epoch>`)
//!
//! 1. Each client → arbiter `local_weight`: its sample count, the epochs and the length of its
//!    parameter vector ([`Announce`]); the arbiter checks the clients agree and returns each its
//!    share `n_i / Σn` (`agg_weight`), as FATE's `BaseAggregatorServer` does.
//! 2. Each client → every other client `dh_pubkey`: a fresh X25519 public key
//!    ([`fate_crypto::secagg::SecAggKeyPair`]; rank 0 the guest, then the hosts in party order).
//!    The keys go between clients directly, never through the arbiter, so the arbiter cannot
//!    substitute its own (FATE relays them through the arbiter).
//! 3. Per epoch, each client runs its local mini-batch steps, then sends the arbiter
//!    `local_model`: `share · [weights…, intercept, epoch loss]` in fixed point
//!    ([`FRAC_BITS`] fractional bits) plus the pairwise ChaCha20 masks of round `epoch`
//!    (`Masker::mask_f64`). The masks cancel in the sum, so the arbiter decodes the weighted
//!    mean model and loss and broadcasts them (`agg_model`); every client continues from it.
//!
//! What each party receives: a client gets its share, the other clients' public keys and the
//! aggregate model and loss of each epoch (which FATE gives it too); the arbiter gets the sample
//! counts and epochs (as in FATE) and masked vectors, each uniform in Z_2^64 on its own. No
//! party receives another's rows or labels. Predict stage: each client predicts its own rows
//! with the final (shared) model; nothing is exchanged.
//!
//! Fixed point: each client's value is rounded to `2^-FRAC_BITS`, so an aggregate differs from
//! the float weighted mean by at most `clients · 2^-(FRAC_BITS+1)` (about 1e-12 per value and
//! epoch); the arbiter refuses aggregates whose values exceed [`MAX_ABS`] (training diverged).
//!
//! # Differences from FATE
//!
//! - Batches are consecutive rows in sample-id order, fixed for the fit (FATE's HF trainer
//!   shuffles each epoch, unseeded); the model is float64 (torch's is float32). FATE's AUC range
//!   on breast_homo (0.9666-0.9927) comes from that randomness and the random init.
//! - `init_param.random_state` seeds the `random` init (FATE's torch init is unseeded); with it
//!   every client starts from the same weights.
//! - The learning-rate scheduler steps once per mini-batch (the HF trainer's rule).
//! - Binary only: `ovr: true` is refused at submit; labels must be 0 and 1 (as FATE's
//!   `_check_labels`). A weight column is ignored (FATE's BCE loss has no sample weights).
//! - FedProx (`mu`): FATE 2.2's `homo_lr` has no such parameter, so neither does this.

mod arbiter;
mod client;
pub mod params;

use crate::{artifact, param};
use fate_runtime::{Component, ComponentError, Ctx};
use fate_types::component::{ArtifactKind, ComponentSpec};
use fate_types::{Party, Role};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// Message names (FATE's aggregator suffixes).
pub mod names {
    pub const LOCAL_WEIGHT: &str = "local_weight";
    pub const AGG_WEIGHT: &str = "agg_weight";
    pub const DH_PUBKEY: &str = "dh_pubkey";
    pub const LOCAL_MODEL: &str = "local_model";
    pub const AGG_MODEL: &str = "agg_model";
}

/// Fractional bits of the fixed-point values secure aggregation sums.
pub const FRAC_BITS: u32 = 40;

/// Largest magnitude a weight (or the loss) may reach: beyond it the training diverged, and a
/// weighted sum would no longer fit the fixed-point ring (2^63 / 2^40 ≈ 8.4e6).
pub const MAX_ABS: f64 = 1e6;

/// Most model parameters a client may announce.
pub const MAX_PARAMS: u64 = 1 << 20;

/// What a client tells each other client before training (`dh_pubkey`): its secure
/// aggregation public key and its sample count, from which every client computes its own
/// FedAvg weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerKey {
    pub public_key: [u8; 32],
    pub sample_num: u64,
}

/// What a client tells the arbiter before training (`local_weight`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announce {
    /// Rows the client trains on (FedAvg's weight).
    pub sample_num: u64,
    pub epochs: u64,
    /// Model parameters (features plus the intercept); the masked vectors carry one more value,
    /// the epoch loss.
    pub params: u64,
}

/// The component.
pub struct HomoLr;

impl Component for HomoLr {
    fn spec(&self) -> ComponentSpec {
        let clients = [Role::Guest, Role::Host];
        ComponentSpec {
            name: "homo_lr".into(),
            legacy_modules: vec![],
            description: "horizontal logistic regression, FedAvg with secure aggregation at the arbiter (FATE HomoLR)".into(),
            roles: vec![Role::Guest, Role::Host, Role::Arbiter],
            params: vec![
                param(
                    "learning_rate_scheduler",
                    false,
                    Some(params::defaults::learning_rate_scheduler()),
                    "torch scheduler: method constant, linear or step with scheduler_params",
                ),
                param("epochs", false, Some(json!(params::defaults::EPOCHS)), "max iteration num (aggregation rounds)")
                    .max(crate::limits::ROUNDS),
                param(
                    "batch_size",
                    false,
                    Some(json!(params::defaults::BATCH_SIZE)),
                    "batch size, int > 0; null, 0 or -1 mean full batch",
                )
                .max(crate::limits::BATCH_SIZE),
                param(
                    "optimizer",
                    false,
                    Some(params::defaults::optimizer()),
                    "method, penalty (l1, l2, none), alpha and torch optimizer_params",
                ),
                param(
                    "init_param",
                    false,
                    Some(params::defaults::init_param()),
                    "model init: method zeros, ones, consts (fill_val) or random; fit_intercept; random_state",
                ),
                param("threshold", false, Some(json!(params::defaults::THRESHOLD)), "predict threshold for binary data"),
                param("ovr", false, Some(json!(false)), "one-vs-rest multi-class (not implemented: must be false)"),
                param("label_num", false, Some(Value::Null), "number of labels for ovr (at least 2)"),
            ],
            inputs: vec![
                // Optional in the declaration because a predict-stage task has none of the train
                // inputs (and the reverse); the run checks what its stage needs.
                artifact("train_data", ArtifactKind::Data, true, &clients),
                artifact("validate_data", ArtifactKind::Data, true, &clients),
                artifact("warm_start_model", ArtifactKind::Model, true, &clients),
                artifact("test_data", ArtifactKind::Data, true, &clients),
                artifact("input_model", ArtifactKind::Model, true, &clients),
            ],
            outputs: vec![
                artifact("train_output_data", ArtifactKind::Data, true, &clients),
                artifact("output_model", ArtifactKind::Model, true, &clients),
                artifact("test_output_data", ArtifactKind::Data, true, &clients),
            ],
        }
    }

    fn check_params(
        &self,
        stage: &str,
        _role: Role,
        params: &Map<String, Value>,
    ) -> Result<(), ComponentError> {
        match stage {
            "predict" => params::predict(params).map(drop),
            _ => params::train(params).map(drop),
        }
    }

    fn run(&self, ctx: &Ctx) -> Result<(), ComponentError> {
        match ctx.stage.as_str() {
            "train" | "default" => {
                let p = params::train(&ctx.params)?;
                let s = Session::new(ctx)?;
                match ctx.role() {
                    Role::Guest | Role::Host => client::train(&s, &p),
                    Role::Arbiter => arbiter::train(&s),
                    other => Err(ComponentError::Failed(format!(
                        "homo_lr does not run as {other}"
                    ))),
                }
            }
            "predict" => {
                let p = params::predict(&ctx.params)?;
                match ctx.role() {
                    Role::Guest | Role::Host => client::predict_stage(ctx, &p),
                    // FATE: "arbiter skip predict".
                    Role::Arbiter => Ok(()),
                    other => Err(ComponentError::Failed(format!(
                        "homo_lr does not run as {other}"
                    ))),
                }
            }
            other => Err(ComponentError::Failed(format!(
                "homo_lr has no `{other}` stage (train, predict)"
            ))),
        }
    }
}

/// The parties of a training run, checked once.
pub(crate) struct Session<'a> {
    pub ctx: &'a Ctx,
    /// The guest, then the hosts: a client's index is its secure-aggregation rank.
    pub clients: Vec<Party>,
    pub arbiter: Party,
}

impl<'a> Session<'a> {
    fn new(ctx: &'a Ctx) -> Result<Self, ComponentError> {
        let mut clients = vec![ctx.guest()?];
        clients.extend(ctx.parties_of(Role::Host));
        if clients.len() < 2 {
            return Err(ComponentError::Failed(
                "homo_lr needs a guest and at least one host: with one client, the arbiter would see its model".into(),
            ));
        }
        let arbiters = ctx.parties_of(Role::Arbiter);
        let [arbiter] = arbiters.as_slice() else {
            return Err(ComponentError::Failed(format!(
                "homo_lr training needs one arbiter, the task has {}",
                arbiters.len()
            )));
        };
        Ok(Session {
            ctx,
            clients,
            arbiter: arbiter.clone(),
        })
    }
}

/// Tag of epoch `e`'s messages.
fn epoch_tag(epoch: usize) -> String {
    format!("train.iter-{epoch}")
}

/// Tag of the setup messages.
const SETUP_TAG: &str = "train";
