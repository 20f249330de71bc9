//! FATE 2.x `hetero_secureboost` (fate-spec §4.5; `components/hetero_secureboost.py`,
//! `ml/ensemble/...`): gradient-boosted decision trees over vertically split data. The guest
//! holds the labels and some features, each host holds other features of the same samples
//! (aligned by PSI, so both tables are keyed by the guest's sample ids).
//!
//! Training, per tree (one per class and round for `multi:ce`, as FATE does):
//! 1. Every party quantile-bins its own features (`max_bin`, module `binning`).
//! 2. The guest computes g and h from the labels and the current scores, packs each sample's
//!    pair into one plaintext (`fate_crypto::packing::GhPacker`: g offset, 2^52 fixed point),
//!    encrypts it with its Paillier key (DJN obfuscators) and sends the ciphertexts once per
//!    tree.
//! 3. Per depth level each host sums the ciphertexts per (node, feature, bin), deriving the larger
//!    child of each pair as parent − smaller child (`hist_sub`), takes cumulative sums, shuffles
//!    each node's split points (anonymous split ids), squeezes several per ciphertext
//!    (`split_info_pack`), rerandomizes and sends them with plaintext counts. The guest decrypts,
//!    evaluates every split of its own and of every host with FATE's gain and filters
//!    (module `split`), and picks the best per node (a host wins only with a strictly larger gain).
//! 4. The guest tells each host the decisions, with the anonymous split id only for that host's
//!    own splits; the host answers with left/right bits for that node's samples (never its
//!    thresholds), and the guest sends everyone the samples' new nodes.
//! 5. Leaves get weight −G/(H+λ) (truncated as FATE does); scores grow by `learning_rate` times
//!    the weight.
//!
//! Prediction (stage `predict`) walks the trees at the guest and asks the hosts, one batch per
//! round, to move samples through their splits (module `predict`).
//!
//! What each party receives: a host gets the public key, the g/h ciphertexts, the tree shape and
//! the chosen split ids of its own splits, and each sample's node (which every SecureBoost host
//! learns); never a label, a plaintext gradient or a guest feature. The guest gets encrypted,
//! shuffled histograms with counts and the direction bits of host splits; never a host feature
//! value or threshold.
//!
//! Where the time goes and what is done about it: encrypting g/h (DJN fixed-base obfuscators,
//! about 31 multiplications mod n² per sample instead of FATE's full exponentiation, and a
//! thread that precomputes the next tree's obfuscators while the guest waits for the hosts);
//! the hosts' histogram sums (one multiplication per sample and feature, only the smaller child
//! of each pair, parallel over nodes and features on the computing pool); squeezing (FATE's
//! `pack_squeeze`, which costs the host about `2·shift_bit` squarings per split point and saves
//! the guest most decryptions).
//!
//! Not offered: GOSS sampling (`goss` must be false), missing-value handling (features must be
//! finite), kinds of `he_param` other than Paillier. `validate_data` is accepted and, as in FATE
//! 2.x, not used.

mod binning;
mod data;
mod guest;
mod hist;
mod host;
pub mod messages;
pub mod model;
mod objective;
pub mod params;
mod predict;
mod split;

use crate::{artifact, param};
use fate_runtime::{Component, ComponentError, Ctx};
use fate_types::component::{ArtifactKind, ComponentSpec};
use fate_types::{Party, Role};
use serde_json::json;

pub use model::SbtModel;
pub use params::{Objective, TrainParams};

/// The `hetero_secureboost` component.
pub struct HeteroSecureBoost;

/// A party's site name as FATE writes it in models (`guest_9999`, `host_10000`).
pub fn sitename(p: &Party) -> String {
    format!("{}_{}", p.role.as_str(), p.party_id.as_str())
}

impl Component for HeteroSecureBoost {
    fn spec(&self) -> ComponentSpec {
        let gh = &[Role::Guest, Role::Host];
        ComponentSpec {
            name: "hetero_secureboost".into(),
            legacy_modules: vec!["HeteroSecureBoost".into()],
            description:
                "vertical federated gradient boosting trees with Paillier-encrypted gradients"
                    .into(),
            roles: vec![Role::Guest, Role::Host],
            params: vec![
                param("num_trees", false, Some(json!(3)), "boosting rounds")
                    .max(crate::limits::ROUNDS),
                param(
                    "learning_rate",
                    false,
                    Some(json!(0.3)),
                    "shrinkage of each tree",
                ),
                param("max_depth", false, Some(json!(3)), "max depth of a tree")
                    .max(crate::limits::DEPTH),
                param(
                    "complete_secure",
                    false,
                    Some(json!(0)),
                    "first rounds built from guest features only",
                )
                .max(crate::limits::ROUNDS),
                param(
                    "max_bin",
                    false,
                    Some(json!(32)),
                    "max bins of feature binning",
                )
                .max(crate::limits::MAX_BIN),
                param(
                    "objective",
                    false,
                    Some(json!("binary:bce")),
                    "binary:bce, multi:ce or regression:l2",
                ),
                param("num_class", false, Some(json!(2)), "classes of multi:ce")
                    .max(crate::limits::NUM_CLASS),
                param(
                    "goss",
                    false,
                    Some(json!(false)),
                    "GOSS sampling (not supported: must be false)",
                ),
                param(
                    "goss_start_iter",
                    false,
                    Some(json!(5)),
                    "first GOSS iteration",
                )
                .max(crate::limits::ROUNDS),
                param("top_rate", false, Some(json!(0.2)), "GOSS top rate"),
                param("other_rate", false, Some(json!(0.1)), "GOSS other rate"),
                param("l1", false, Some(json!(0)), "L1 regularization"),
                param("l2", false, Some(json!(0.1)), "L2 regularization"),
                param(
                    "min_impurity_split",
                    false,
                    Some(json!(1e-2)),
                    "min gain of a split",
                ),
                param(
                    "min_sample_split",
                    false,
                    Some(json!(2)),
                    "min samples of a node to split",
                ),
                param(
                    "min_leaf_node",
                    false,
                    Some(json!(1)),
                    "min samples of a leaf",
                ),
                param(
                    "min_child_weight",
                    false,
                    Some(json!(1)),
                    "min hessian sum of a leaf",
                ),
                param(
                    "gh_pack",
                    false,
                    Some(json!(true)),
                    "pack g and h into one ciphertext",
                ),
                param(
                    "split_info_pack",
                    false,
                    Some(json!(true)),
                    "squeeze host split infos",
                ),
                param(
                    "hist_sub",
                    false,
                    Some(json!(true)),
                    "histogram subtraction",
                ),
                param(
                    "he_param",
                    false,
                    Some(json!({"kind": "paillier", "key_length": 1024})),
                    "homomorphic encryption",
                ),
                // Declared by FATE; they act only in the cross_validation stage, which fate-rs
                // refuses with a clear error.
                param(
                    "cv_param",
                    false,
                    Some(json!({"n_splits": 5, "shuffle": false, "random_state": null})),
                    "cross validation (cross_validation stage only)",
                ),
                param(
                    "output_cv_data",
                    false,
                    Some(json!(true)),
                    "output cross-validation data (cross_validation stage only)",
                ),
            ],
            inputs: vec![
                artifact("train_data", ArtifactKind::Data, true, gh),
                artifact("validate_data", ArtifactKind::Data, true, gh),
                artifact("warm_start_model", ArtifactKind::Model, true, gh),
                artifact("test_data", ArtifactKind::Data, true, gh),
                artifact("input_model", ArtifactKind::Model, true, gh),
            ],
            outputs: vec![
                artifact("train_output_data", ArtifactKind::Data, true, gh),
                artifact("output_model", ArtifactKind::Model, true, gh),
                artifact("test_output_data", ArtifactKind::Data, true, gh),
            ],
        }
    }

    fn run(&self, ctx: &Ctx) -> Result<(), ComponentError> {
        let role = ctx.role();
        if !matches!(role, Role::Guest | Role::Host) {
            return Err(ComponentError::Failed(format!(
                "hetero_secureboost does not run as {role}"
            )));
        }
        if ctx.stage == "cross_validation" {
            return Err(ComponentError::Failed(
                "hetero_secureboost: the cross_validation stage is not supported by fate-rs (train, predict)".into(),
            ));
        }
        if ctx.stage == "predict" {
            let model = ctx
                .input_model("input_model")
                .ok_or_else(|| ComponentError::Input {
                    key: "input_model".into(),
                    reason: "the predict stage needs the trained model".into(),
                })?;
            let model = SbtModel::from_json(model, role.as_str(), "input_model")?;
            return match role {
                Role::Guest => guest::predict(ctx, &model),
                _ => host::predict(ctx, &model),
            };
        }
        let params = TrainParams::from_ctx(ctx)?;
        match role {
            Role::Guest => guest::train(ctx, &params),
            _ => host::train(ctx, &params),
        }
    }
}
