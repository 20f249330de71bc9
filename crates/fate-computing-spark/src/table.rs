//! Tables on Spark and the operations over them.
//!
//! A table is a DataFrame of `(key BINARY, value BINARY)` rows (postcard key, postcard value:
//! the engine contract's `Row`). Relational work runs as Spark plans; the work of a kernel
//! runs on the executors in the executor binary, fed by `SELECT TRANSFORM`:
//!
//! | operation | Spark |
//! |---|---|
//! | map kernel (map_values, filter, flat_map, mapPartitions) | `TRANSFORM` of each partition, `--mode map` |
//! | join (inner) + value combiner | `l JOIN r ON l.key = r.key` in Spark, then the combiner as a map kernel over `key:left:right` records |
//! | reduce_by_key | fold kernel per partition, `DISTRIBUTE BY key`, fold again |
//! | reduce | fold kernel per partition, `REPARTITION(1)`, fold again, collect |
//! | subtract_by_key | `l LEFT ANTI JOIN r ON l.key = r.key` |
//! | union with a combiner (not here yet) | `FULL OUTER JOIN` on key; rows present on both sides through the combiner kernel |
//! | count / collect / take | `count(*)` / bounded collect / `LIMIT n` |
//! | repartition / sample (not here yet) | `REPARTITION(n)` / `TABLESAMPLE` or `Sample` relation |
//!
//! Kernel parameters travel as a session artifact file (`files/fate_params_<n>`), which the
//! executor finds in its working directory: they are never part of the SQL text, the plan,
//! Spark's UI or event log, or a process's command line.

use std::path::Path;

use crate::Row;
use crate::client::{CollectLimits, DataFrame, SparkClient, SparkError};
use crate::executor::{ExecutorArgs, Mode};
use crate::lines::is_plain_name;

/// A table of `(key, value)` byte rows held by Spark.
#[derive(Clone)]
pub struct SparkTable {
    df: DataFrame,
}

impl SparkTable {
    /// A table of local rows (uploaded as Arrow `LocalRelation`s).
    pub async fn from_rows(client: &SparkClient, rows: &[Row]) -> Result<SparkTable, SparkError> {
        Ok(SparkTable {
            df: client.create_dataframe(rows).await?,
        })
    }

    /// A table of a DataFrame whose columns are `(key BINARY, value BINARY)`.
    pub fn from_dataframe(df: DataFrame) -> SparkTable {
        SparkTable { df }
    }

    /// Reads a table written by [`SparkTable::write_parquet`].
    pub fn read_parquet(client: &SparkClient, path: &str) -> SparkTable {
        SparkTable {
            df: client.read_parquet(path),
        }
    }

    /// The DataFrame.
    pub fn dataframe(&self) -> &DataFrame {
        &self.df
    }

    /// All rows, within `limits`.
    pub async fn collect(&self, limits: CollectLimits) -> Result<Vec<Row>, SparkError> {
        self.df.collect_rows_within(limits).await
    }

    /// The number of rows.
    pub async fn count(&self) -> Result<u64, SparkError> {
        self.df.count().await
    }

    /// Writes the table as Parquet at `path` (replacing it).
    pub async fn write_parquet(&self, path: &str) -> Result<(), SparkError> {
        self.df.write_parquet(path).await
    }

    /// The rows of `self` whose key is not in `other`.
    pub async fn subtract_by_key(&self, other: &SparkTable) -> Result<SparkTable, SparkError> {
        let client = self.df.client();
        let left = self.df.to_view().await?;
        let right = other.df.to_view().await?;
        Ok(SparkTable {
            df: client.sql(&format!(
                "SELECT l.key, l.value FROM {left} l LEFT ANTI JOIN {right} r ON l.key = r.key"
            )),
        })
    }
}

/// Where the executors find the executor binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecutorBinary {
    /// A session artifact of this name (uploaded by [`KernelRunner::upload`]).
    Artifact(String),
    /// A path installed on every executor (a configured path).
    Path(String),
}

/// Runs kernels on Spark's executors through `SELECT TRANSFORM ... USING` and the executor
/// binary's hidden subcommand.
#[derive(Clone)]
pub struct KernelRunner {
    client: SparkClient,
    binary: ExecutorBinary,
    subcommand: Vec<String>,
    batch_rows: usize,
}

impl KernelRunner {
    /// Uploads the executor binary at `local_path` as a session artifact (named after its
    /// file name and content checksum, so a changed binary gets a new name) and runs it as
    /// `<binary> <subcommand...> <executor args>`.
    pub async fn upload(
        client: &SparkClient,
        local_path: &Path,
        subcommand: &[&str],
    ) -> Result<KernelRunner, SparkError> {
        let data = std::fs::read(local_path).map_err(|e| {
            client.invalid(format!(
                "reading the executor binary {}: {e}",
                local_path.display()
            ))
        })?;
        let stem = local_path
            .file_name()
            .and_then(|name| name.to_str())
            .filter(|name| is_plain_name(name))
            .ok_or_else(|| {
                client.invalid(format!(
                    "executor binary {}: its file name must be [A-Za-z0-9._-]+",
                    local_path.display()
                ))
            })?;
        let name = format!("{stem}-{:08x}-{}", crc32fast::hash(&data), data.len());
        client.add_artifact(&name, &data).await?;
        KernelRunner::new(client, ExecutorBinary::Artifact(name), subcommand)
    }

    /// A runner for a binary already known to the executors.
    pub fn new(
        client: &SparkClient,
        binary: ExecutorBinary,
        subcommand: &[&str],
    ) -> Result<KernelRunner, SparkError> {
        let plain_path =
            |path: &str| path.starts_with('/') && path.split('/').skip(1).all(is_plain_name);
        match &binary {
            ExecutorBinary::Artifact(name) if !is_plain_name(name) => {
                return Err(
                    client.invalid(format!("executor artifact {name:?} is not a plain name"))
                );
            }
            ExecutorBinary::Path(path) if !plain_path(path) => {
                return Err(client.invalid(format!(
                    "executor path {path:?} must be absolute, of [A-Za-z0-9._-] components"
                )));
            }
            _ => {}
        }
        if let Some(bad) = subcommand.iter().find(|word| !is_plain_name(word)) {
            return Err(client.invalid(format!("executor subcommand word {bad:?} is not plain")));
        }
        Ok(KernelRunner {
            client: client.clone(),
            binary,
            subcommand: subcommand.iter().map(|word| (*word).to_owned()).collect(),
            batch_rows: 4096,
        })
    }

    /// Records per kernel call and per pipe line (default 4096).
    pub fn with_batch_rows(mut self, batch_rows: usize) -> KernelRunner {
        self.batch_rows = batch_rows.clamp(1, crate::executor::MAX_BATCH_ROWS);
        self
    }

    /// The shell command Spark runs for one task (`/bin/bash -c <command>`). Every word in
    /// it is a plain name, so it needs no quoting inside the SQL string literal.
    fn command(&self, args: &ExecutorArgs) -> String {
        self.command_of(args.to_args())
    }

    /// The shell command running the executor with these argument words (each plain).
    pub(crate) fn command_of(&self, args: Vec<String>) -> String {
        let mut words = self.subcommand.clone();
        words.extend(args);
        let words = words.join(" ");
        match &self.binary {
            ExecutorBinary::Path(path) => format!("exec {path} {words}"),
            ExecutorBinary::Artifact(name) => format!(
                "for f in ./{name} ./*/{name}; do if [ -f \"$f\" ]; then chmod u+x \"$f\" 2>/dev/null; exec \"$f\" {words}; fi; done; \
                 echo \"fate executor {name} not found under $PWD\" >&2; exit 127"
            ),
        }
    }

    async fn upload_params(&self, params: &[u8]) -> Result<Option<String>, SparkError> {
        if params.is_empty() {
            return Ok(None);
        }
        let name = self.client.unique_name("fate_params");
        self.client.add_artifact(&name, params).await?;
        Ok(Some(name))
    }

    /// SQL running the executor over the `line` column of `input_sql`, giving
    /// `(key, value)` rows.
    /// The DataFrame of `kernel` run over the rows `input_sql` selects (see `transform_sql`).
    async fn transformed(
        &self,
        input_sql: &str,
        kernel: &str,
        params: &[u8],
        mode: Mode,
    ) -> Result<DataFrame, SparkError> {
        let sql = self.transform_sql(input_sql, kernel, params, mode).await?;
        Ok(self.client.sql(&sql))
    }

    async fn transform_sql(
        &self,
        input_sql: &str,
        kernel: &str,
        params: &[u8],
        mode: Mode,
    ) -> Result<String, SparkError> {
        if !is_plain_name(kernel) {
            return Err(self
                .client
                .invalid(format!("kernel name {kernel:?} is not a plain name")));
        }
        let args = ExecutorArgs {
            kernel: kernel.to_owned(),
            mode,
            params: self.upload_params(params).await?,
            batch_rows: self.batch_rows,
        };
        let command = self.command(&args);
        Ok(format!(
            "SELECT unbase64(split_part(r, ':', 1)) AS key, unbase64(split_part(r, ':', 2)) AS value \
             FROM (SELECT explode(split(line, ',')) AS r FROM ( \
             SELECT TRANSFORM(line) USING '{command}' AS (line STRING) FROM ({input_sql})))"
        ))
    }

    fn lines_of(view: &str) -> String {
        format!("SELECT concat(base64(key), ':', base64(value)) AS line FROM {view}")
    }

    /// `kernel` over every partition's rows (partition-local; keys may change).
    pub async fn map(
        &self,
        table: &SparkTable,
        kernel: &str,
        params: &[u8],
    ) -> Result<SparkTable, SparkError> {
        let view = table.df.to_view().await?;
        let sql = self
            .transformed(&Self::lines_of(&view), kernel, params, Mode::Map)
            .await?;
        Ok(SparkTable { df: sql })
    }

    /// Inner join by key; `kernel` combines each pair: it receives `(key,
    /// lines::join_value(left, right))` and returns the joined row.
    pub async fn join(
        &self,
        left: &SparkTable,
        right: &SparkTable,
        kernel: &str,
        params: &[u8],
    ) -> Result<SparkTable, SparkError> {
        let l = left.df.to_view().await?;
        let r = right.df.to_view().await?;
        let input = format!(
            "SELECT concat(base64(l.key), ':', base64(l.value), ':', base64(r.value)) AS line \
             FROM {l} l JOIN {r} r ON l.key = r.key"
        );
        let sql = self.transformed(&input, kernel, params, Mode::Map).await?;
        Ok(SparkTable { df: sql })
    }

    /// Combines the rows of each key with the associative fold `kernel` (see
    /// [`Mode::Fold`]): once per partition, then per key after a shuffle by key.
    pub async fn reduce_by_key(
        &self,
        table: &SparkTable,
        kernel: &str,
        params: &[u8],
    ) -> Result<SparkTable, SparkError> {
        let view = table.df.to_view().await?;
        let partial = self
            .transformed(&Self::lines_of(&view), kernel, params, Mode::Fold)
            .await?;
        let partial_view = partial.to_view().await?;
        let shuffled = format!(
            "SELECT concat(base64(key), ':', base64(value)) AS line \
             FROM (SELECT key, value FROM {partial_view} DISTRIBUTE BY key)"
        );
        let sql = self
            .transformed(&shuffled, kernel, params, Mode::Fold)
            .await?;
        Ok(SparkTable { df: sql })
    }

    /// Folds all rows with `kernel`: per partition, then once more in one partition; returns
    /// the kernel's final rows (at most `limits`).
    pub async fn reduce(
        &self,
        table: &SparkTable,
        kernel: &str,
        params: &[u8],
        limits: CollectLimits,
    ) -> Result<Vec<Row>, SparkError> {
        let view = table.df.to_view().await?;
        let partial = self
            .transformed(&Self::lines_of(&view), kernel, params, Mode::Fold)
            .await?;
        let partial_view = partial.to_view().await?;
        let single = format!(
            "SELECT concat(base64(key), ':', base64(value)) AS line \
             FROM (SELECT /*+ REPARTITION(1) */ key, value FROM {partial_view})"
        );
        let sql = self
            .transformed(&single, kernel, params, Mode::Fold)
            .await?;
        sql.collect_rows_within(limits).await
    }
}
