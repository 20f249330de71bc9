//! fate-components: FATE's components, each a [`fate_runtime::Component`] with FATE's name,
//! roles, parameters and defaults (fate-spec §4).
//!
//! Architecture invariant: components see only `fate_runtime::Ctx`; they never name a concrete
//! computing, federation or storage backend, and they do no IO besides what `Ctx` gives them
//! (upload reads the file it is given, as FATE's upload task does).

use fate_runtime::Registry;
use fate_types::Role;
use fate_types::component::{ArtifactKind, ArtifactSpec, ParamSpec};
use std::sync::Arc;

pub mod colstats;
pub mod coordinated_lr;
pub mod data_split;
pub mod evaluation;
pub mod feature_scale;
pub mod hetero_secureboost;
pub mod homo_lr;
pub mod psi;
pub mod reader;
pub mod secure_add;
pub mod statistics;
pub mod toy;
pub mod upload;

/// Upper bounds of the parameters that size memory or work, checked by the planner before a
/// job is recorded (so a request, or a partner's job, cannot make the node allocate without a
/// bound). FATE sets none; these are far above what FATE's examples and users set.
pub mod limits {
    /// Rows a toy example builds per party (FATE's toy uses 1000 to 1024).
    pub const DATA_NUM: u64 = 10_000_000;
    /// Partitions of a table a task creates (FATE's `computing_partitions` is 4 to 16).
    pub const PARTITIONS: u64 = 1024;
    /// Rows a component brings into memory as a whole (`Table::collect`: CoordinatedLR and
    /// SecureBoost train on arrays, evaluation sorts scores); beyond it the task fails with the
    /// table's size instead of exhausting memory.
    pub const COLLECT_ROWS: usize = 100_000_000;
    /// Training rounds: LR epochs, SecureBoost trees.
    pub const ROUNDS: u64 = 100_000;
    /// Rows of a mini-batch.
    pub const BATCH_SIZE: u64 = 100_000_000;
    /// Bins of a feature histogram.
    pub const MAX_BIN: u64 = 65_536;
    /// Depth of a boosted tree (the component's own check allows up to 64).
    pub const DEPTH: u64 = crate::hetero_secureboost::params::MAX_DEPTH as u64;
    /// Classes of a multi-class objective.
    pub const NUM_CLASS: u64 = 10_000;
}

/// Registers every kernel the components put on tables, so an engine that holds tables
/// elsewhere (and the binary's executor for Spark) can run them by name.
pub fn register_kernels(
    r: &mut fate_computing::KernelRegistry,
) -> Result<(), fate_computing::ComputingError> {
    toy::register_kernels(r)?;
    secure_add::register_kernels(r)?;
    psi::register_kernels(r)?;
    colstats::register_kernels(r)?;
    feature_scale::register_kernels(r)?;
    data_split::register_kernels(r)?;
    Ok(())
}

#[cfg(feature = "testing")]
pub mod testing;

/// Every component this build provides.
pub fn registry() -> Registry {
    let mut r = Registry::new();
    r.register(Arc::new(toy::ToyExample));
    r.register(Arc::new(secure_add::SecureAddExample));
    r.register(Arc::new(upload::Upload));
    r.register(Arc::new(reader::Reader));
    r.register(Arc::new(evaluation::Evaluation));
    r.register(Arc::new(coordinated_lr::CoordinatedLr));
    r.register(Arc::new(psi::Psi));
    r.register(Arc::new(hetero_secureboost::HeteroSecureBoost));
    r.register(Arc::new(homo_lr::HomoLr));
    r.register(Arc::new(feature_scale::FeatureScale));
    r.register(Arc::new(statistics::Statistics));
    r.register(Arc::new(data_split::DataSplit));
    r
}

pub(crate) fn param(
    name: &str,
    required: bool,
    default: Option<serde_json::Value>,
    description: &str,
) -> ParamSpec {
    ParamSpec {
        name: name.into(),
        required,
        default,
        description: description.into(),
        max: None,
    }
}

pub(crate) fn artifact(
    key: &str,
    kind: ArtifactKind,
    optional: bool,
    roles: &[Role],
) -> ArtifactSpec {
    ArtifactSpec {
        key: key.into(),
        kind,
        optional,
        multi: false,
        roles: roles.to_vec(),
    }
}
