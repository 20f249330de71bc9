//! The component trait and the registry the scheduler and the DAG planner read.

use crate::ctx::Ctx;
use fate_types::component::ComponentSpec;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Why a component failed. The message is shown to the user at the initiator, so it names the
/// parameter, column or party that is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ComponentError {
    #[error("parameter `{name}`: {reason}")]
    Param { name: String, reason: String },
    #[error("input `{key}`: {reason}")]
    Input { key: String, reason: String },
    #[error("data: {0}")]
    Data(String),
    #[error(transparent)]
    Federation(#[from] fate_federation::FederationError),
    #[error(transparent)]
    Computing(#[from] fate_computing::ComputingError),
    #[error("canceled")]
    Canceled,
    #[error("{0}")]
    Failed(String),
}

impl ComponentError {
    pub fn param(name: &str, reason: impl Into<String>) -> Self {
        ComponentError::Param {
            name: name.to_string(),
            reason: reason.into(),
        }
    }
}

/// A FATE component: a declaration (name, roles, parameters, artifacts) and the code that runs
/// one party's part of it.
pub trait Component: Send + Sync + 'static {
    fn spec(&self) -> ComponentSpec;
    fn run(&self, ctx: &Ctx) -> Result<(), ComponentError>;

    /// Checks the parameters one party of a task would run with (the planner's per-party
    /// parameters: defaults applied, then the task's and the party's overrides) when the job is
    /// planned, before anything is recorded, so a bad value is refused at submit naming the task
    /// and the field. The default accepts whatever the spec accepts (names and `max`).
    fn check_params(
        &self,
        _stage: &str,
        _role: fate_types::Role,
        _params: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), ComponentError> {
        Ok(())
    }
}

/// Components by name. Built once by the binary (`fate_components::registry()`), shared
/// read-only afterwards.
#[derive(Default, Clone)]
pub struct Registry {
    components: BTreeMap<String, Arc<dyn Component>>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn register(&mut self, component: Arc<dyn Component>) {
        self.components
            .insert(component.spec().name.clone(), component);
    }

    pub fn get(&self, name: &str) -> Option<Arc<dyn Component>> {
        self.components.get(name).cloned()
    }

    pub fn specs(&self) -> Vec<ComponentSpec> {
        self.components.values().map(|c| c.spec()).collect()
    }

    pub fn names(&self) -> Vec<String> {
        self.components.keys().cloned().collect()
    }
}
