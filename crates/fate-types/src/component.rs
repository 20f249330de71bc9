//! What a component declares about itself: its name, the roles it runs as, its parameters and
//! its input and output artifacts. The DAG planner (`fate-dag`) validates a job against these
//! declarations before anything runs; the runtime registry (`fate-runtime`) pairs each
//! declaration with the code that runs it.

use crate::party::Role;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComponentSpec {
    /// FATE 2.x component name, e.g. `toy_example`, `psi`, `coordinated_lr`.
    pub name: String,
    /// FATE 1.x module name(s) that map to this component, e.g. `SecureAddExample`.
    #[serde(default)]
    pub legacy_modules: Vec<String>,
    pub description: String,
    /// Roles this component can run as.
    pub roles: Vec<Role>,
    pub params: Vec<ParamSpec>,
    pub inputs: Vec<ArtifactSpec>,
    pub outputs: Vec<ArtifactSpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParamSpec {
    pub name: String,
    pub required: bool,
    /// Default applied when the parameter is absent (FATE's default).
    pub default: Option<serde_json::Value>,
    pub description: String,
    /// Largest value a job may set for a numeric parameter that sizes memory or work (rows,
    /// partitions, rounds, depth); the planner refuses more, naming the field. `None`: no bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u64>,
}

impl ParamSpec {
    /// The same parameter with an upper bound.
    pub fn max(mut self, max: u64) -> Self {
        self.max = Some(max);
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArtifactKind {
    Data,
    Model,
    Metric,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArtifactSpec {
    /// Artifact key, e.g. `input_data`, `train_data`, `output_data`, `output_model`.
    pub key: String,
    pub kind: ArtifactKind,
    /// For inputs: whether the task can run without it.
    pub optional: bool,
    /// For inputs: whether several upstream artifacts may feed this key.
    pub multi: bool,
    /// Roles that have this artifact; empty means every role of the component.
    #[serde(default)]
    pub roles: Vec<Role>,
}

impl ComponentSpec {
    pub fn param(&self, name: &str) -> Option<&ParamSpec> {
        self.params.iter().find(|p| p.name == name)
    }
    pub fn input(&self, key: &str) -> Option<&ArtifactSpec> {
        self.inputs.iter().find(|a| a.key == key)
    }
    pub fn output(&self, key: &str) -> Option<&ArtifactSpec> {
        self.outputs.iter().find(|a| a.key == key)
    }
}
