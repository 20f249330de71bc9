//! The metadata store of a fate-rs node: what FATE-Flow keeps in its database (fate-spec §3.1,
//! §3.4) and nothing else. It holds jobs and tasks (one row per party, as FATE stores them),
//! table metadata, and the outputs of tasks (metrics, models, references to output tables).
//!
//! [`MetaStore`] is the whole API, the store contract every backend keeps: SQLite (the default,
//! a file under the node's data dir), MariaDB/MySQL and PostgreSQL, chosen by the URL given to
//! [`MetaStore::open`] (node.yaml `database: {url}`). The conformance suite (`tests/it.rs`) runs
//! every test of that contract against all three, on real servers.
//!
//! The store keeps one enum over the three sqlx pools, not sqlx's `AnyPool`: `Any` passes SQL
//! through unchanged (PostgreSQL still needs `$1` where the others take `?`, and
//! `QueryBuilder<Any>` writes `?`), decodes only a few value types, and builds connections from
//! a URL, which loses the SQLite options set here (WAL, busy timeout). With the enum each driver
//! keeps its own options and types; [`with_pool!`] writes a query body once and compiles it for
//! each driver, `QueryBuilder` numbers PostgreSQL's placeholders itself, and [`Dialect::sql`]
//! turns the `?` of a fixed statement into `$n` for PostgreSQL. Each backend has its own
//! migration set (`migrations/<dialect>/`), the same versions with the same tables, columns and
//! keys.
//!
//! Invariants:
//! * The SQL of every operation is the same on every backend (portable SQL, no upserts, no
//!   `RETURNING`); only the placeholders and the migrations differ per dialect.
//! * Keys compare and sort byte for byte on every backend (SQLite's default; PostgreSQL columns
//!   `COLLATE "C"`; MariaDB tables `utf8mb4_nopad_bin`), so the same data gives the same answers.
//! * Every key value is checked against its column's length before it is written, so all
//!   backends accept the same data; violations are [`StoreError::Invalid`] naming the field.
//! * Nothing read back is trusted: an unknown role or status string, or JSON that does not
//!   parse, becomes [`StoreError::Invalid`] naming the `table.column`, never a panic.
//! * Status changes through `set_*_status_checked` follow FATE's transition rules
//!   ([`fate_types::JobStatus::can_transition_to`]) and are compare-and-set on the stored status,
//!   so concurrent writers (also two nodes sharing one database server) cannot apply a
//!   transition from a status that is no longer current.
//! * SQLite files run in WAL mode with a busy timeout, so readers do not block the writer and
//!   short write contention waits instead of failing with "database is locked" (fate-spec §10.3).
//! * A database URL's password is never shown: [`DatabaseUrl`]'s `Display` and `Debug` redact it,
//!   and errors name the redacted URL.

mod apps;
mod error;
mod jobs;
mod outputs;
pub use outputs::ModelSelector;
mod records;
mod rows;
mod tables;
mod tasks;
mod url;

pub use apps::{AppRecord, SitePermission};
pub use error::{Result, StoreError};
pub use records::{
    JobFilter, JobRecord, JobUpdate, MetricRecord, ModelRecord, OutputDataRecord, TableRecord,
    TaskFilter, TaskRecord,
};
pub use url::{Backend, DatabaseUrl};

use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use std::borrow::Cow;
use std::path::Path;
use std::time::Duration;

/// How long a SQLite connection waits for another writer before reporting "database is locked".
pub const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Connections of a file-backed SQLite pool (WAL allows many readers and one writer).
const SQLITE_MAX_CONNECTIONS: u32 = 4;

/// Connections of a MariaDB or PostgreSQL pool: the scheduler's party threads and the API
/// share it; a server's default limit (151 and 100) leaves room for many nodes.
const SERVER_MAX_CONNECTIONS: u32 = 8;

/// How long opening a store on a server waits for its first connection (an unreachable server
/// fails the node's start after this, naming the URL).
pub const SERVER_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The migrations of each dialect, embedded at build time.
static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static MYSQL_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/mysql");
static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// The current time in epoch milliseconds, the unit of every time the store keeps.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The pool of one backend.
#[derive(Debug, Clone)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    MySql(MySqlPool),
    Postgres(PgPool),
}

/// Runs `$body` once with `$pool` bound to the store's pool and `$db` naming its sqlx
/// database type: the body is written once and compiled for each backend.
macro_rules! with_pool {
    ($store:expr, $pool:ident, $db:ident => $body:expr) => {
        match &$store.pool {
            $crate::Pool::Sqlite($pool) => {
                #[allow(dead_code)]
                type $db = sqlx::Sqlite;
                $body
            }
            $crate::Pool::MySql($pool) => {
                #[allow(dead_code)]
                type $db = sqlx::MySql;
                $body
            }
            $crate::Pool::Postgres($pool) => {
                #[allow(dead_code)]
                type $db = sqlx::Postgres;
                $body
            }
        }
    };
}
pub(crate) use with_pool;

/// How a backend writes the placeholders of a fixed statement.
pub(crate) trait Dialect {
    /// `text` with its `?` placeholders as this backend wants them.
    fn sql(text: &str) -> Cow<'_, str>;
}

impl Dialect for sqlx::Sqlite {
    fn sql(text: &str) -> Cow<'_, str> {
        Cow::Borrowed(text)
    }
}

impl Dialect for sqlx::MySql {
    fn sql(text: &str) -> Cow<'_, str> {
        Cow::Borrowed(text)
    }
}

impl Dialect for sqlx::Postgres {
    /// `?` becomes `$1`, `$2`, ... in order; quoted literals and identifiers are copied as they
    /// are (the store's statements quote no `?`, but a rewrite must not depend on that).
    fn sql(text: &str) -> Cow<'_, str> {
        let mut out = String::with_capacity(text.len() + 16);
        let mut n = 0;
        let mut quote: Option<char> = None;
        for c in text.chars() {
            match (quote, c) {
                (None, '?') => {
                    n += 1;
                    out.push('$');
                    out.push_str(&n.to_string());
                    continue;
                }
                (None, '\'' | '"') => quote = Some(c),
                (Some(q), c) if c == q => quote = None,
                _ => {}
            }
            out.push(c);
        }
        Cow::Owned(out)
    }
}

/// The node's metadata database. Cheap to clone (clones share the pool).
#[derive(Debug, Clone)]
pub struct MetaStore {
    pool: Pool,
}

impl MetaStore {
    /// Opens the database `url` names and applies pending migrations: a SQLite file (created
    /// with its parent directories if missing), or a database on a MariaDB/MySQL or PostgreSQL
    /// server (the database must exist; the tables are created). Errors name the redacted URL.
    pub async fn open(url: &DatabaseUrl) -> Result<Self> {
        let connect = |e: sqlx::Error| StoreError::Connect {
            url: url.to_string(),
            source: e,
        };
        match url.backend() {
            Backend::Sqlite => match url.sqlite_path() {
                None => Self::open_memory().await,
                Some(path) => Self::open_sqlite(&path).await,
            },
            Backend::MySql => {
                let options: MySqlConnectOptions = url.expose().parse().map_err(connect)?;
                let pool = MySqlPoolOptions::new()
                    .max_connections(SERVER_MAX_CONNECTIONS)
                    .acquire_timeout(SERVER_CONNECT_TIMEOUT)
                    // READ COMMITTED (InnoDB's default is REPEATABLE READ): a replace (delete
                    // then insert in one transaction) takes no gap locks, so two nodes replacing
                    // different rows do not deadlock; every read the store makes is one statement.
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            sqlx::Executor::execute(
                                conn,
                                "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
                            )
                            .await
                            .map(|_| ())
                        })
                    })
                    .connect_with(options.charset("utf8mb4"))
                    .await
                    .map_err(connect)?;
                tracing::debug!(url = %url, "opened mysql metadata store");
                MYSQL_MIGRATOR.run(&pool).await?;
                Ok(MetaStore {
                    pool: Pool::MySql(pool),
                })
            }
            Backend::Postgres => {
                let options: PgConnectOptions = url.expose().parse().map_err(connect)?;
                let pool = PgPoolOptions::new()
                    .max_connections(SERVER_MAX_CONNECTIONS)
                    .acquire_timeout(SERVER_CONNECT_TIMEOUT)
                    .connect_with(options)
                    .await
                    .map_err(connect)?;
                tracing::debug!(url = %url, "opened postgres metadata store");
                POSTGRES_MIGRATOR.run(&pool).await?;
                Ok(MetaStore {
                    pool: Pool::Postgres(pool),
                })
            }
        }
    }

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
        Self::migrated_sqlite(pool).await
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
        Self::migrated_sqlite(pool).await
    }

    async fn migrated_sqlite(pool: SqlitePool) -> Result<Self> {
        SQLITE_MIGRATOR.run(&pool).await?;
        Ok(MetaStore {
            pool: Pool::Sqlite(pool),
        })
    }

    /// Which backend the store runs on.
    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::MySql(_) => Backend::MySql,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// The schema version the database is at (the newest applied migration).
    pub async fn schema_version(&self) -> Result<i64> {
        let v: Option<i64> = with_pool!(self, pool, DB => {
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success = TRUE")
                .fetch_one(pool)
                .await?
        });
        Ok(v.unwrap_or(0))
    }

    /// Closes every connection, waiting for them to finish (checkpoints the WAL of a file).
    pub async fn close(&self) {
        with_pool!(self, pool, DB => pool.close().await)
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

/// Whether `e` is a unique-key violation.
fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// Appends `LIMIT`/`OFFSET` (validated by the caller). An offset without a limit uses the
/// largest limit, which SQLite, PostgreSQL and MariaDB all accept.
fn push_page<'a, DB: sqlx::Database>(
    qb: &mut sqlx::QueryBuilder<'a, DB>,
    limit: Option<i64>,
    offset: Option<i64>,
) where
    i64: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
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
        with_pool!(store, pool, DB => sqlx::query(sql).execute(pool).await.map(|_| ()))
            .expect("corrupting update");
    }

    fn sqlite(store: &MetaStore) -> &SqlitePool {
        match &store.pool {
            Pool::Sqlite(pool) => pool,
            other => panic!("not sqlite: {other:?}"),
        }
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

    #[test]
    fn postgres_placeholders_are_numbered_outside_quotes() {
        assert_eq!(
            <sqlx::Postgres as Dialect>::sql("SELECT a FROM t WHERE b = ? AND c = '?' AND d = ?"),
            "SELECT a FROM t WHERE b = $1 AND c = '?' AND d = $2"
        );
        assert_eq!(<sqlx::MySql as Dialect>::sql("b = ?"), "b = ?");
    }

    #[tokio::test]
    async fn sqlite_files_use_wal_and_a_busy_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let store = MetaStore::open_sqlite(&dir.path().join("meta.db"))
            .await
            .unwrap();
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(sqlite(&store))
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        let timeout: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
            .fetch_one(sqlite(&store))
            .await
            .unwrap();
        assert_eq!(timeout, SQLITE_BUSY_TIMEOUT.as_millis() as i64);
        store.close().await;
    }
}
