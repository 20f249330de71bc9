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
            _ => RetCode::ServerError,
        }
    }
}
