//! The one error type of the computing engine.

use fate_types::RetCode;

/// Boxed source error of a storage backend.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors of tables, their persistence and the engine's configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ComputingError {
    /// A configuration field is out of range.
    #[error("invalid computing config: `{field}` {reason}")]
    InvalidConfig { field: &'static str, reason: String },
    /// The thread pool could not be started.
    #[error("could not start the computing thread pool of {cores} threads: {source}")]
    ThreadPool {
        cores: usize,
        #[source]
        source: rayon::ThreadPoolBuildError,
    },
    /// A table namespace or name is not acceptable (empty or too long).
    #[error("invalid table {field} `{value}`: {reason}")]
    InvalidName {
        field: &'static str,
        value: String,
        reason: &'static str,
    },
    /// `load` of a table that was never saved (or was deleted).
    #[error("table {namespace}.{name} not found")]
    TableNotFound { namespace: String, name: String },
    /// `save` without `overwrite` over an existing table.
    #[error("table {namespace}.{name} exists already (save with overwrite to replace it)")]
    TableExists { namespace: String, name: String },
    /// A stored or received partition has a format version this build cannot read.
    #[error("{what}: unsupported format version {found} (this build reads version {expected})")]
    UnsupportedVersion {
        what: String,
        found: u8,
        expected: u8,
    },
    /// A stored or received table is malformed.
    #[error("{what}: corrupt data: {reason}")]
    Corrupt { what: String, reason: String },
    /// Rows handed to [`crate::Table::from_partitions`] break the table invariants.
    #[error("partition {partition} of {partitions}: {reason}")]
    BadPartition {
        partition: usize,
        partitions: usize,
        reason: String,
    },
    /// A value could not be encoded for persistence.
    #[error("table {namespace}.{name}: could not encode partition {partition}: {source}")]
    Encode {
        namespace: String,
        name: String,
        partition: usize,
        #[source]
        source: postcard::Error,
    },
    /// A kernel could not run: its parameters or rows do not decode, or it broke a contract.
    #[error("kernel `{name}`: {reason}")]
    Kernel { name: String, reason: String },
    /// An engine was asked for a kernel its registry does not hold.
    #[error("kernel `{name}` is not registered")]
    UnknownKernel { name: String },
    /// A kernel name registered twice.
    #[error("kernel `{name}` is registered twice")]
    DuplicateKernel { name: String },
    /// A handle the engine does not hold (released, or never made there).
    #[error("{engine} engine: no table {id}")]
    UnknownTable { engine: String, id: u64 },
    /// An engine failed (a remote engine's own error, named by the engine).
    #[error("{engine} engine: {reason}")]
    Engine { engine: String, reason: String },
    /// A bounded collect of a table with more rows than its bound.
    #[error("table has {rows} rows, more than the {max} this call may collect")]
    TooManyRows { rows: u64, max: u64 },
    /// An earlier operation of a lazily failed table (reported by the next action on it).
    #[error(transparent)]
    Failed(std::sync::Arc<ComputingError>),
    /// The storage backend failed.
    #[error("table store ({backend}) failed to {op}: {source}")]
    Store {
        backend: &'static str,
        op: String,
        #[source]
        source: BoxError,
    },
}

impl ComputingError {
    /// The FATE-Flow return code this error maps to (fate-spec §3.4).
    pub fn ret_code(&self) -> RetCode {
        match self {
            ComputingError::TableNotFound { .. } => RetCode::TableNotFound,
            ComputingError::TableExists { .. } => RetCode::TableExists,
            ComputingError::InvalidName { .. } | ComputingError::InvalidConfig { .. } => {
                RetCode::InvalidParameter
            }
            ComputingError::BadPartition { .. }
            | ComputingError::Corrupt { .. }
            | ComputingError::UnsupportedVersion { .. } => RetCode::FileError,
            ComputingError::Failed(inner) => inner.ret_code(),
            _ => RetCode::ServerError,
        }
    }
}
