//! The component's parameters with FATE's names, defaults and constraints
//! (`components/hetero_secureboost.py`, fate-spec §4.5).

use fate_runtime::{ComponentError, Ctx};
use serde::de::DeserializeOwned;

/// Largest `max_depth` accepted: a deeper tree would have more nodes than any data set has
/// samples, and the host checks the guest's announced depth against this bound.
pub const MAX_DEPTH: u32 = 64;

/// Largest `max_bin` accepted.
pub const MAX_BIN: u32 = 1 << 16;

/// FATE's `safety.phe.paillier.minimum_key_size` (fate-spec §5.1).
pub const MIN_KEY_LENGTH: u32 = 1024;

/// The loss the trees fit (FATE's `objective`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Objective {
    /// `binary:bce`: labels 0/1, sigmoid of the score.
    BinaryBce,
    /// `multi:ce`: labels 0..num_class, softmax over one score per class.
    MultiCe,
    /// `regression:l2`: squared error, scores start at the label mean.
    RegressionL2,
}

impl Objective {
    /// Every objective, in FATE's order.
    pub const ALL: [Objective; 3] = [
        Objective::BinaryBce,
        Objective::MultiCe,
        Objective::RegressionL2,
    ];

    /// FATE's name (`binary:bce`, `multi:ce`, `regression:l2`).
    pub fn as_str(self) -> &'static str {
        match self {
            Objective::BinaryBce => "binary:bce",
            Objective::MultiCe => "multi:ce",
            Objective::RegressionL2 => "regression:l2",
        }
    }

    /// Parses FATE's name, case-insensitively as FATE does.
    pub fn parse(s: &str) -> Option<Objective> {
        let lower = s.to_ascii_lowercase();
        Self::ALL.into_iter().find(|o| o.as_str() == lower)
    }

    /// The evaluation task type (`binary`, `multi`, `regression`).
    pub fn task_type(self) -> &'static str {
        match self {
            Objective::BinaryBce => "binary",
            Objective::MultiCe => "multi",
            Objective::RegressionL2 => "regression",
        }
    }
}

/// `he_param` (fate-spec §5.1): only Paillier is offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeParam {
    /// Bits of the Paillier modulus (1024, 2048 or 3072).
    pub key_length: u32,
}

/// The training parameters, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainParams {
    pub num_trees: u32,
    pub learning_rate: f64,
    pub max_depth: u32,
    pub complete_secure: u32,
    pub max_bin: u32,
    pub objective: Objective,
    pub num_class: u32,
    pub l1: f64,
    pub l2: f64,
    pub min_impurity_split: f64,
    pub min_sample_split: u64,
    pub min_leaf_node: u64,
    pub min_child_weight: f64,
    pub gh_pack: bool,
    pub split_info_pack: bool,
    pub hist_sub: bool,
    pub he: HeParam,
}

impl Default for TrainParams {
    /// FATE's defaults.
    fn default() -> Self {
        TrainParams {
            num_trees: 3,
            learning_rate: 0.3,
            max_depth: 3,
            complete_secure: 0,
            max_bin: 32,
            objective: Objective::BinaryBce,
            num_class: 2,
            l1: 0.0,
            l2: 0.1,
            min_impurity_split: 1e-2,
            min_sample_split: 2,
            min_leaf_node: 1,
            min_child_weight: 1.0,
            gh_pack: true,
            split_info_pack: true,
            hist_sub: true,
            he: HeParam { key_length: 1024 },
        }
    }
}

fn get<T: DeserializeOwned>(ctx: &Ctx, name: &str, default: T) -> Result<T, ComponentError> {
    Ok(ctx.param_opt(name)?.unwrap_or(default))
}

fn positive_int(ctx: &Ctx, name: &str, default: u64, max: u64) -> Result<u64, ComponentError> {
    let v: u64 = get(ctx, name, default)?;
    if v == 0 {
        return Err(ComponentError::param(name, "must be greater than 0"));
    }
    if v > max {
        return Err(ComponentError::param(
            name,
            format!("{v} exceeds the largest supported value {max}"),
        ));
    }
    Ok(v)
}

fn float(ctx: &Ctx, name: &str, default: f64, allow_zero: bool) -> Result<f64, ComponentError> {
    let v: f64 = get(ctx, name, default)?;
    let ok = v.is_finite() && if allow_zero { v >= 0.0 } else { v > 0.0 };
    if !ok {
        let bound = if allow_zero {
            "a finite number >= 0"
        } else {
            "a finite number > 0"
        };
        return Err(ComponentError::param(name, format!("{v} is not {bound}")));
    }
    Ok(v)
}

/// Parses `he_param` (`{kind: paillier, key_length: 1024}`).
pub fn parse_he_param(v: Option<&serde_json::Value>) -> Result<HeParam, ComponentError> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(HeParam { key_length: 1024 });
    };
    let obj = v.as_object().ok_or_else(|| {
        ComponentError::param(
            "he_param",
            "must be an object like {\"kind\": \"paillier\", \"key_length\": 1024}",
        )
    })?;
    let kind = match obj.get("kind") {
        None | Some(serde_json::Value::Null) => "paillier".to_string(),
        Some(serde_json::Value::String(s)) => s.to_ascii_lowercase(),
        Some(other) => {
            return Err(ComponentError::param(
                "he_param",
                format!("kind {other} is not a string"),
            ));
        }
    };
    if kind != "paillier" {
        return Err(ComponentError::param(
            "he_param",
            format!(
                "kind `{kind}` is not supported by hetero_secureboost here (supported: paillier)"
            ),
        ));
    }
    let key_length = match obj.get("key_length") {
        None | Some(serde_json::Value::Null) => 1024,
        Some(k) => k
            .as_u64()
            .and_then(|k| u32::try_from(k).ok())
            .ok_or_else(|| {
                ComponentError::param(
                    "he_param",
                    format!("key_length {k} is not a positive integer"),
                )
            })?,
    };
    if key_length < MIN_KEY_LENGTH {
        return Err(ComponentError::param(
            "he_param",
            format!(
                "key_length {key_length} is below the minimum Paillier key size {MIN_KEY_LENGTH} (FATE's safety.phe.paillier.minimum_key_size)"
            ),
        ));
    }
    if !fate_crypto::paillier::SUPPORTED_KEY_BITS.contains(&key_length) {
        return Err(ComponentError::param(
            "he_param",
            format!("key_length {key_length} is not supported (supported: 1024, 2048, 3072)"),
        ));
    }
    Ok(HeParam { key_length })
}

impl TrainParams {
    /// Reads and checks every training parameter; absent ones take FATE's defaults.
    pub fn from_ctx(ctx: &Ctx) -> Result<TrainParams, ComponentError> {
        let d = TrainParams::default();
        let objective_name: String = get(ctx, "objective", d.objective.as_str().to_string())?;
        let objective = Objective::parse(&objective_name).ok_or_else(|| {
            ComponentError::param(
                "objective",
                format!("`{objective_name}` is not one of binary:bce, multi:ce, regression:l2"),
            )
        })?;
        let goss: bool = get(ctx, "goss", false)?;
        if goss {
            return Err(ComponentError::param(
                "goss",
                "GOSS sampling is not supported by this hetero_secureboost; set goss to false",
            ));
        }
        // Accepted for DAG compatibility and checked as FATE checks them; unused without goss.
        let _goss_start_iter: u64 = get(ctx, "goss_start_iter", 5)?;
        for (name, default) in [("top_rate", 0.2), ("other_rate", 0.1)] {
            let v: f64 = get(ctx, name, default)?;
            if !(v > 0.0 && v < 1.0) {
                return Err(ComponentError::param(name, format!("{v} is not in (0, 1)")));
            }
        }
        let p = TrainParams {
            num_trees: positive_int(ctx, "num_trees", d.num_trees.into(), 100_000)? as u32,
            learning_rate: float(ctx, "learning_rate", d.learning_rate, false)?,
            max_depth: positive_int(ctx, "max_depth", d.max_depth.into(), MAX_DEPTH.into())? as u32,
            complete_secure: {
                let v: u64 = get(ctx, "complete_secure", 0)?;
                u32::try_from(v)
                    .map_err(|_| ComponentError::param("complete_secure", "too large"))?
            },
            max_bin: positive_int(ctx, "max_bin", d.max_bin.into(), MAX_BIN.into())? as u32,
            objective,
            num_class: positive_int(ctx, "num_class", d.num_class.into(), 1 << 16)? as u32,
            l1: float(ctx, "l1", d.l1, true)?,
            l2: float(ctx, "l2", d.l2, true)?,
            min_impurity_split: float(ctx, "min_impurity_split", d.min_impurity_split, false)?,
            min_sample_split: positive_int(ctx, "min_sample_split", d.min_sample_split, u64::MAX)?,
            min_leaf_node: positive_int(ctx, "min_leaf_node", d.min_leaf_node, u64::MAX)?,
            min_child_weight: float(ctx, "min_child_weight", d.min_child_weight, false)?,
            gh_pack: get(ctx, "gh_pack", d.gh_pack)?,
            split_info_pack: get(ctx, "split_info_pack", d.split_info_pack)?,
            hist_sub: get(ctx, "hist_sub", d.hist_sub)?,
            he: parse_he_param(ctx.params.get("he_param"))?,
        };
        if p.objective == Objective::MultiCe && p.num_class < 3 {
            return Err(ComponentError::param(
                "num_class",
                format!(
                    "multi:ce needs num_class greater than 2, got {}",
                    p.num_class
                ),
            ));
        }
        Ok(p)
    }

    /// Trees per boosting round: one per class for `multi:ce` (FATE's `tree_dim`), else one.
    pub fn tree_dim(&self) -> u32 {
        if self.objective == Objective::MultiCe {
            self.num_class
        } else {
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn he_param_rejects_short_keys_and_other_kinds() {
        assert_eq!(parse_he_param(None).unwrap().key_length, 1024);
        assert_eq!(
            parse_he_param(Some(&json!({"kind": "paillier", "key_length": 2048})))
                .unwrap()
                .key_length,
            2048
        );
        let e = parse_he_param(Some(&json!({"kind": "paillier", "key_length": 512})))
            .unwrap_err()
            .to_string();
        assert!(e.contains("key_length 512") && e.contains("minimum"), "{e}");
        let e = parse_he_param(Some(&json!({"kind": "ou"})))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`ou`"), "{e}");
        let e = parse_he_param(Some(&json!({"key_length": 1536})))
            .unwrap_err()
            .to_string();
        assert!(e.contains("1536"), "{e}");
    }

    #[test]
    fn objectives_parse_by_fate_name() {
        for o in Objective::ALL {
            assert_eq!(Objective::parse(o.as_str()), Some(o));
        }
        assert_eq!(Objective::parse("BINARY:BCE"), Some(Objective::BinaryBce));
        assert_eq!(Objective::parse("binary"), None);
    }
}
