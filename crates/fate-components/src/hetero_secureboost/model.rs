//! The model JSON of each party, in FATE's shape (`HeteroBoostingTree.get_model`,
//! `DecisionTree.get_model`, `Node.to_dict`) plus a format version.
//!
//! The guest's trees hold the structure, its own split features and thresholds, every node's
//! gradient sums and the leaf weights; nodes split by a host carry only that host's site name and
//! the anonymous split id. A host's trees hold the same structure with its own split features
//! and thresholds and nothing else: no weights, gradients or guest splits.
//!
//! Loading ([`SbtModel::from_json`]) treats the JSON as untrusted: node ids must equal their
//! positions, children must come after their parent (so every walk ends), values are finite and
//! the trees match the declared tree dimension.

use fate_runtime::ComponentError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Version of this JSON layout.
pub const MODEL_VERSION: u32 = 1;

/// Split count and total gain of one feature (FATE's `FeatureImportance`).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Importance {
    pub gain: f64,
    pub split: u64,
}

impl Importance {
    pub fn add(&mut self, gain: f64) {
        self.gain += gain;
        self.split += 1;
    }
}

/// One tree node (FATE's `Node.to_dict`). `fid` is the feature name and `bid` the split value
/// at the owner's side; both are `null` elsewhere.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub nid: u32,
    pub sitename: String,
    pub fid: Option<String>,
    pub bid: Option<f64>,
    pub weight: f64,
    pub is_leaf: bool,
    pub grad: Option<f64>,
    pub hess: Option<f64>,
    /// Left child id, −1 for none.
    pub l: i64,
    /// Right child id, −1 for none.
    pub r: i64,
    pub missing_dir: i32,
    pub sample_num: u64,
    pub is_left_node: bool,
    pub sibling_nodeid: Option<u32>,
    pub parent_nodeid: Option<u32>,
    pub split_id: Option<u32>,
}

impl Node {
    /// A node with only its place in the tree known.
    pub fn new(
        nid: u32,
        parent: Option<u32>,
        sibling: Option<u32>,
        is_left: bool,
        sample_num: u64,
    ) -> Node {
        Node {
            nid,
            sitename: String::new(),
            fid: None,
            bid: None,
            weight: 0.0,
            is_leaf: false,
            grad: None,
            hess: None,
            l: -1,
            r: -1,
            missing_dir: 1,
            sample_num,
            is_left_node: is_left,
            sibling_nodeid: sibling,
            parent_nodeid: parent,
            split_id: None,
        }
    }

    /// The children ids of a split node.
    pub fn children(&self) -> Option<(usize, usize)> {
        if self.is_leaf || self.l < 0 || self.r < 0 {
            None
        } else {
            Some((self.l as usize, self.r as usize))
        }
    }
}

/// One decision tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    pub nodes: Vec<Node>,
    pub feature_importance: BTreeMap<String, Importance>,
    pub hyper_param: serde_json::Value,
}

/// The boosting hyper-parameters saved with the model (FATE's `_get_hyper_param`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HyperParam {
    pub num_trees: u32,
    pub max_depth: u32,
    pub max_bin: u32,
    pub complete_secure: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learning_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objective: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub l2: Option<f64>,
    /// 2 for binary, the class count for multi, null for regression (guest only).
    #[serde(default)]
    pub num_class: Option<u32>,
}

/// One party's model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SbtModel {
    pub model_version: u32,
    /// `guest` or `host`.
    pub role: String,
    /// The owner's site name (`guest_9999`, `host_10000`): nodes with this site name are split
    /// by this party's features.
    pub sitename: String,
    pub hyper_param: HyperParam,
    /// Trees per boosting round (the class count for multi:ce).
    pub tree_dim: u32,
    pub trees: Vec<Tree>,
    /// Feature index (as a string, as FATE's JSON has it) to name, in training column order.
    pub fid_name_mapping: BTreeMap<String, String>,
    pub feature_importance: BTreeMap<String, Importance>,
    /// Guest only: split count and gain of the splits each host made, by host site name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub host_feature_importance: BTreeMap<String, Importance>,
    /// Guest only: the regression init score (label mean).
    #[serde(default)]
    pub init_score: Option<f64>,
    /// Guest only: training loss after each boosting round.
    #[serde(default)]
    pub loss_history: Vec<f64>,
}

fn bad(reason: impl Into<String>) -> ComponentError {
    ComponentError::Input {
        key: "model".into(),
        reason: reason.into(),
    }
}

impl SbtModel {
    /// The feature names in training column order.
    pub fn feature_names(&self) -> Vec<String> {
        (0..self.fid_name_mapping.len())
            .filter_map(|i| self.fid_name_mapping.get(&i.to_string()).cloned())
            .collect()
    }

    /// Serializes the model.
    pub fn to_json(&self) -> serde_json::Value {
        // Every float of a model is finite (checked when it is built), so this cannot fail; an
        // error would only drop the model, never panic.
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// Parses and checks a model of `role` given as input `key`.
    pub fn from_json(
        v: &serde_json::Value,
        role: &str,
        key: &str,
    ) -> Result<SbtModel, ComponentError> {
        let relabel = |e: ComponentError| match e {
            ComponentError::Input { reason, .. } => ComponentError::Input {
                key: key.to_string(),
                reason,
            },
            other => other,
        };
        let m: SbtModel = serde_json::from_value(v.clone())
            .map_err(|e| bad(format!("not a hetero_secureboost model: {e}")))
            .map_err(relabel)?;
        m.validate(role).map_err(relabel)?;
        Ok(m)
    }

    fn validate(&self, role: &str) -> Result<(), ComponentError> {
        if self.model_version != MODEL_VERSION {
            return Err(bad(format!(
                "model_version {} is not supported (expected {MODEL_VERSION})",
                self.model_version
            )));
        }
        if self.role != role {
            return Err(bad(format!(
                "this is a {} model, but this party is the {role}",
                self.role
            )));
        }
        if self.tree_dim == 0 || !self.trees.len().is_multiple_of(self.tree_dim as usize) {
            return Err(bad(format!(
                "{} trees do not make whole rounds of tree_dim {}",
                self.trees.len(),
                self.tree_dim
            )));
        }
        let names = self.feature_names();
        if names.len() != self.fid_name_mapping.len() {
            return Err(bad("fid_name_mapping keys must be 0..n"));
        }
        if role == "guest" {
            let objective = self.hyper_param.objective.as_deref().unwrap_or("");
            let Some(obj) = super::params::Objective::parse(objective) else {
                return Err(bad(format!("unknown objective `{objective}`")));
            };
            let expected_dim = if obj == super::params::Objective::MultiCe {
                self.hyper_param.num_class.unwrap_or(0)
            } else {
                1
            };
            if self.tree_dim != expected_dim {
                return Err(bad("tree_dim does not match the objective and num_class"));
            }
            let lr = self.hyper_param.learning_rate.unwrap_or(f64::NAN);
            if !(lr.is_finite() && lr > 0.0) {
                return Err(bad("learning_rate must be a positive number"));
            }
            if obj == super::params::Objective::RegressionL2
                && !self.init_score.is_some_and(f64::is_finite)
            {
                return Err(bad("a regression model needs a finite init_score"));
            }
        }
        for (t, tree) in self.trees.iter().enumerate() {
            if tree.nodes.is_empty() {
                return Err(bad(format!("tree {t} has no nodes")));
            }
            let len = tree.nodes.len();
            for (i, node) in tree.nodes.iter().enumerate() {
                let at = || format!("tree {t} node {i}");
                if node.nid as usize != i {
                    return Err(bad(format!(
                        "{}: nid {} differs from its position",
                        at(),
                        node.nid
                    )));
                }
                if !node.weight.is_finite() {
                    return Err(bad(format!("{}: weight is not finite", at())));
                }
                if node.is_leaf {
                    continue;
                }
                let ok = |c: i64| c > i as i64 && (c as usize) < len;
                if !ok(node.l) || !ok(node.r) || node.l == node.r {
                    return Err(bad(format!(
                        "{}: children {} and {} are not later nodes of the tree",
                        at(),
                        node.l,
                        node.r
                    )));
                }
                if node.sitename == self.sitename {
                    let Some(fid) = &node.fid else {
                        return Err(bad(format!(
                            "{}: a split of this party has no feature",
                            at()
                        )));
                    };
                    if !names.contains(fid) {
                        return Err(bad(format!(
                            "{}: feature `{fid}` is not in fid_name_mapping",
                            at()
                        )));
                    }
                    if !node.bid.is_some_and(f64::is_finite) {
                        return Err(bad(format!(
                            "{}: split value is missing or not finite",
                            at()
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// The longest root-to-leaf path over all trees (in edges).
    pub fn max_depth(&self) -> usize {
        let mut max = 0;
        for tree in &self.trees {
            let mut depth = vec![0usize; tree.nodes.len()];
            for (i, n) in tree.nodes.iter().enumerate() {
                if let Some((l, r)) = n.children() {
                    depth[l] = depth[i] + 1;
                    depth[r] = depth[i] + 1;
                    max = max.max(depth[i] + 1);
                }
            }
        }
        max
    }
}
