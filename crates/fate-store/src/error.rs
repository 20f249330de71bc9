//! The store's error type.

use std::path::PathBuf;

/// Shorthand for results of [`crate::MetaStore`] methods.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// What can go wrong in the metadata store. Every variant names the thing that is wrong.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The addressed row does not exist (`what` is the record kind, `key` its identity).
    #[error("{what} {key} not found")]
    NotFound { what: &'static str, key: String },
    /// A row with the same identity already exists.
    #[error("{what} {key} already exists")]
    Conflict { what: &'static str, key: String },
    /// A value to be written, or a value read back, is not acceptable. `field` names the
    /// record field or the `table.column` it came from.
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    /// The database server named by `url` (redacted) could not be reached or refused the
    /// connection.
    #[error("cannot connect to the database {url}: {source}")]
    Connect { url: String, source: sqlx::Error },
    /// The database reported an error.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Applying the embedded migrations failed (for example a released migration was edited).
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The directory for the database file could not be created.
    #[error("cannot create directory {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl StoreError {
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        StoreError::Invalid {
            field,
            reason: reason.into(),
        }
    }
}
