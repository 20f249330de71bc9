//! The metadata store of a fate-rs node: what FATE-Flow keeps in its database (fate-spec §3.1,
//! §3.4) and nothing else. It holds jobs and tasks (one row per party, as FATE stores them),
//! table metadata, and the outputs of tasks (metrics, models, references to output tables).
//!
//! [`MetaStore`] is the whole API. It runs on SQLite today, through sqlx *runtime* queries (no
//! compile-time checked `query!` macros, so no database is needed to build), with the versioned
//! migrations in `migrations/` embedded by `sqlx::migrate!()`.
//!
//! Invariants:
//! * The schema is portable SQL (VARCHAR/TEXT/INTEGER/BIGINT, epoch-millisecond timestamps, JSON
//!   as TEXT, no SQLite-only syntax), so MariaDB and PostgreSQL backends can follow by swapping
//!   the pool inside [`MetaStore`]; callers never see the pool.
//! * Every key value is checked against its column's length before it is written, so all
//!   backends accept the same data; violations are [`StoreError::Invalid`] naming the field.
//! * Nothing read back is trusted: an unknown role or status string, or JSON that does not
//!   parse, becomes [`StoreError::Invalid`] naming the `table.column`, never a panic.
//! * Status changes through `set_*_status_checked` follow FATE's transition rules
//!   ([`fate_types::JobStatus::can_transition_to`]) and are compare-and-set on the stored status,
//!   so concurrent writers cannot apply a transition from a status that is no longer current.
//! * SQLite files run in WAL mode with a busy timeout, so readers do not block the writer and
//!   short write contention waits instead of failing with "database is locked" (fate-spec §10.3).

mod apps;
mod error;
mod jobs;
mod outputs;
pub use outputs::ModelSelector;
mod records;
mod rows;
mod tables;
mod tasks;

pub use apps::{AppRecord, SitePermission};
pub use error::{Result, StoreError};
pub use records::{
    JobFilter, JobRecord, JobUpdate, MetricRecord, ModelRecord, OutputDataRecord, TableRecord,
    TaskFilter, TaskRecord,
};

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use std::path::Path;
use std::time::Duration;

/// How long a SQLite connection waits for another writer before reporting "database is locked".
pub const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Connections of a file-backed SQLite pool (WAL allows many readers and one writer).
const SQLITE_MAX_CONNECTIONS: u32 = 4;

/// The migrations in this crate's `migrations/` directory, embedded at build time.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

/// The current time in epoch milliseconds, the unit of every time the store keeps.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The node's metadata database. Cheap to clone (clones share the pool).
#[derive(Debug, Clone)]
pub struct MetaStore {
    pool: SqlitePool,
}

impl MetaStore {
    /// Opens (creating it and its parent directories if needed) the SQLite database at `path`
    /// in WAL mode with [`SQLITE_BUSY_TIMEOUT`], and applies pending migrations. Opening an
    /// up-to-date database again applies nothing.
    pub async fn open_sqlite(path: &Path) -> Result<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|source| StoreError::Io {
                    path: parent.to_path_buf(),
                    source,
                })?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(SQLITE_BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(SQLITE_MAX_CONNECTIONS)
            .connect_with(options)
            .await?;
        tracing::debug!(path = %path.display(), "opened sqlite metadata store");
        Self::migrated(pool).await
    }

    /// Opens a fresh in-memory database (for tests). It lives as long as the store: the pool
    /// holds exactly one connection that never expires, because every SQLite in-memory
    /// connection is a database of its own.
    pub async fn open_memory() -> Result<Self> {
        let options = SqliteConnectOptions::new().busy_timeout(SQLITE_BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await?;
        Self::migrated(pool).await
    }

    async fn migrated(pool: SqlitePool) -> Result<Self> {
        MIGRATOR.run(&pool).await?;
        Ok(MetaStore { pool })
    }

    /// The schema version the database is at (the newest applied migration).
    pub async fn schema_version(&self) -> Result<i64> {
        let v: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success = TRUE")
                .fetch_one(&self.pool)
                .await?;
        Ok(v.unwrap_or(0))
    }

    /// Closes every connection, waiting for them to finish (checkpoints the WAL of a file).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Turns a unique-key violation into [`StoreError::Conflict`]; other errors pass through.
fn conflict_on_unique(
    e: sqlx::Error,
    what: &'static str,
    key: impl FnOnce() -> String,
) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict { what, key: key() }
        }
        _ => StoreError::Database(e),
    }
}

/// Appends `LIMIT`/`OFFSET` (validated by the caller). An offset without a limit uses the
/// largest limit, which SQLite, PostgreSQL and MariaDB all accept.
fn push_page(
    qb: &mut sqlx::QueryBuilder<'_, sqlx::Sqlite>,
    limit: Option<i64>,
    offset: Option<i64>,
) {
    if limit.is_none() && offset.is_none() {
        return;
    }
    qb.push(" LIMIT ").push_bind(limit.unwrap_or(i64::MAX));
    if let Some(offset) = offset {
        qb.push(" OFFSET ").push_bind(offset);
    }
}

/// How often a compare-and-set status change re-reads the row after losing a race.
const MAX_CAS_ATTEMPTS: usize = 16;

#[cfg(test)]
mod tests {
    //! Tests that need the pool: corrupt rows and connection settings.

    use super::*;
    use fate_types::{JobStatus, Role, TaskStatus};

    fn job() -> JobRecord {
        JobRecord {
            job_id: "j".into(),
            role: Role::Guest,
            party_id: "9999".into(),
            status: JobStatus::Running,
            progress: 0,
            dag: serde_json::json!({}),
            model_id: "j".into(),
            model_version: "0".into(),
            initiator_party_id: "9999".into(),
            scheduler_party_id: "9999".into(),
            parties: serde_json::json!([]),
            description: String::new(),
            user_name: String::new(),
            create_time: 1,
            start_time: None,
            end_time: None,
            elapsed: None,
            error: None,
            cores: 1,
        }
    }

    async fn corrupt(store: &MetaStore, sql: &str) {
        sqlx::query(sql)
            .execute(&store.pool)
            .await
            .expect("corrupting update");
    }

    fn invalid_field(e: StoreError) -> &'static str {
        match e {
            StoreError::Invalid { field, .. } => field,
            other => panic!("expected Invalid, got {other}"),
        }
    }

    #[tokio::test]
    async fn unknown_job_status_read_back_names_the_column() {
        let store = MetaStore::open_memory().await.unwrap();
        store.insert_job(&job()).await.unwrap();
        corrupt(&store, "UPDATE t_job SET f_status = 'exploded'").await;
        let err = store.jobs(&JobFilter::default()).await.unwrap_err();
        assert!(err.to_string().contains("exploded"), "{err}");
        assert_eq!(invalid_field(err), "t_job.f_status");
        let err = store
            .set_job_status_checked("j", Role::Guest, "9999", JobStatus::Success, 2)
            .await
            .unwrap_err();
        assert_eq!(invalid_field(err), "t_job.f_status");
    }

    #[tokio::test]
    async fn unknown_role_or_bad_json_read_back_name_the_column() {
        let store = MetaStore::open_memory().await.unwrap();
        store.insert_job(&job()).await.unwrap();
        corrupt(&store, "UPDATE t_job SET f_dag = '{not json'").await;
        assert_eq!(
            invalid_field(store.jobs(&JobFilter::default()).await.unwrap_err()),
            "t_job.f_dag"
        );
        corrupt(&store, "UPDATE t_job SET f_role = 'captain'").await;
        assert_eq!(
            invalid_field(store.jobs(&JobFilter::default()).await.unwrap_err()),
            "t_job.f_role"
        );
    }

    #[tokio::test]
    async fn unknown_task_status_read_back_names_the_column() {
        let store = MetaStore::open_memory().await.unwrap();
        let task = TaskRecord {
            job_id: "j".into(),
            task_id: TaskRecord::fate_task_id("j", "psi_0"),
            task_name: "psi_0".into(),
            task_version: 0,
            component: "psi".into(),
            role: Role::Host,
            party_id: "10000".into(),
            status: TaskStatus::Running,
            parameters: serde_json::json!({}),
            create_time: 1,
            start_time: Some(1),
            end_time: None,
            elapsed: None,
            error: None,
        };
        store.insert_task(&task).await.unwrap();
        corrupt(&store, "UPDATE t_task SET f_status = ''").await;
        let err = store.tasks(&TaskFilter::default()).await.unwrap_err();
        assert_eq!(invalid_field(err), "t_task.f_status");
        let err = store
            .set_task_status_checked(
                "j",
                "psi_0",
                0,
                Role::Host,
                "10000",
                TaskStatus::Success,
                2,
                None,
            )
            .await
            .unwrap_err();
        assert_eq!(invalid_field(err), "t_task.f_status");
    }

    #[tokio::test]
    async fn sqlite_files_use_wal_and_a_busy_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let store = MetaStore::open_sqlite(&dir.path().join("meta.db"))
            .await
            .unwrap();
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        let timeout: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(timeout, SQLITE_BUSY_TIMEOUT.as_millis() as i64);
        store.close().await;
    }
}
