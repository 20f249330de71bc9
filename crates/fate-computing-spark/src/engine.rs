//! [`SparkEngine`]: the [`fate_computing::Engine`] contract on a Spark cluster, through Spark
//! Connect. Components never see it: the binary hands it to `Computing::on_engine`.
//!
//! A table is a DataFrame `(p INT, h BIGINT, key BINARY, value BINARY)`: the row's logical
//! partition `p = h mod n` (unsigned), the key's hash and the encoded key and value. Every
//! operation's result is materialised with an eager local checkpoint (so lineage never grows
//! over an algorithm's iterations, and a failure is reported by the operation that caused it)
//! and registered as a session temp view `fate_t_<id>`. Physically, every logical partition lies
//! within one Spark partition: tables are distributed by `p`, and kernels that keep keys run as
//! narrow stages. So a kernel task sees whole logical partitions, as the contract requires.
//!
//! | operation | Spark |
//! |---|---|
//! | parallelize | Arrow `LocalRelation`s, `DISTRIBUTE BY p` |
//! | MapInPlace, Sample | `TRANSFORM` (`in-place` / `sample`), no shuffle |
//! | MapShuffle | `TRANSFORM` (`shuffle`), `DISTRIBUTE BY p`, `TRANSFORM` (`group`: last wins) |
//! | MapReduce | `TRANSFORM` (`map-fold`), `DISTRIBUTE BY p`, `TRANSFORM` (`group` + fold) |
//! | Join | `JOIN` on key, `DISTRIBUTE BY p`, `TRANSFORM` (`combine`) |
//! | Union | `FULL OUTER JOIN` on key, `DISTRIBUTE BY p`, `TRANSFORM` (`union`) |
//! | SubtractByKey | `LEFT ANTI JOIN`, `DISTRIBUTE BY p` |
//! | Repartition | new `p`, `DISTRIBUTE BY p` |
//! | reduce | `TRANSFORM` (`fold-part`), partials folded on the driver in partition order |
//! | counts, partition, take, get | `GROUP BY p`, `WHERE p = i`, `LIMIT n`, `WHERE key = X'..'` |
//!
//! The executor side is [`crate::engine_exec`] (`fate spark-executor --op ...`). Kernel names
//! are checked against the registry here, before Spark runs anything. Kernel parameters (they
//! may hold a party's secrets) travel only as session artifacts of the party's own cluster,
//! named by their SHA-256: never in SQL text, plans, Spark's UI, logs or command lines.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fate_computing::{
    ComputingError, Engine, Handle, KernelCall, KernelRegistry, Op, Row, check_partition_count,
};
use parking_lot::Mutex;

use crate::arrow;
use crate::client::{CollectLimits, DataFrame, SparkClient, SparkError, SparkOptions};
use crate::engine_exec::{ExecArgs, ExecOp};
use crate::table::{ExecutorBinary, KernelRunner};

/// Where Spark's executors find the `fate` binary that runs kernels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecutorSource {
    /// Upload this file as a session artifact (the node's own binary, typically).
    Upload(PathBuf),
    /// The binary is installed at this absolute path on every executor.
    Installed(PathBuf),
}

/// How to reach Spark.
#[derive(Debug, Clone)]
pub struct SparkEngineConfig {
    /// `sc://host:port` of the Spark Connect server.
    pub url: String,
    pub executor: ExecutorSource,
    /// Words before the executor arguments (`["spark-executor"]` for the fate binary).
    pub subcommand: Vec<String>,
    /// The user Spark runs the session as.
    pub user: String,
    /// Records per pipe line.
    pub batch: usize,
    /// Session configuration set at connect (FATE's `spark_run.conf`).
    pub conf: Vec<(String, String)>,
    /// How often the idle session is pinged so that Spark Connect does not expire it
    /// (its tables, local checkpoints and temp views, die with it); `None`: never.
    pub keepalive: Option<Duration>,
}

/// Default [`SparkEngineConfig::keepalive`]: well inside Spark Connect's default idle
/// timeout of 60 minutes.
pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(300);

impl SparkEngineConfig {
    /// Defaults for the fate binary's executor subcommand.
    pub fn new(url: &str, executor: ExecutorSource) -> SparkEngineConfig {
        SparkEngineConfig {
            url: url.to_owned(),
            executor,
            subcommand: vec!["spark-executor".into()],
            user: "fate".into(),
            batch: 4096,
            conf: Vec::new(),
            keepalive: Some(DEFAULT_KEEPALIVE),
        }
    }
}

struct TableInfo {
    view: String,
    relation: String,
    /// Rows per partition, once asked (tables are immutable): `collect` asks for every
    /// partition in turn, and each would otherwise count the table again.
    counts: Mutex<Option<Vec<u64>>>,
}

struct Inner {
    client: SparkClient,
    runner: KernelRunner,
    registry: Arc<KernelRegistry>,
    tables: Mutex<HashMap<u64, Arc<TableInfo>>>,
    params: Mutex<HashSet<String>>,
    next: AtomicU64,
    batch: usize,
}

/// The Spark engine. Its methods block; it runs its own small tokio runtime for the gRPC
/// session, so it may be called from any thread, inside or outside another runtime.
pub struct SparkEngine {
    inner: Arc<Inner>,
    rt: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for SparkEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SparkEngine")
            .field("server", &self.inner.client.address())
            .field("tables", &self.inner.tables.lock().len())
            .finish()
    }
}

impl From<SparkError> for ComputingError {
    fn from(e: SparkError) -> Self {
        ComputingError::Engine {
            engine: "spark".into(),
            reason: e.to_string(),
        }
    }
}

fn engine_error(reason: impl Into<String>) -> ComputingError {
    ComputingError::Engine {
        engine: "spark".into(),
        reason: reason.into(),
    }
}

/// SQL for the unsigned `h mod n` of a signed BIGINT `h` (Spark has no unsigned types):
/// `((h >>> 1) mod n) * 2 + (h & 1)`, mod n again.
fn logical_partition(h: &str, n: usize) -> String {
    format!("CAST(pmod(pmod(shiftrightunsigned({h}, 1), {n}) * 2 + ({h} & 1), {n}) AS INT)")
}

const ROWS_LINE: &str =
    "concat_ws(':', CAST(p AS STRING), CAST(h AS STRING), base64(key), base64(value))";
const GROUP_LINE: &str = "concat_ws(':', CAST(p AS STRING), CAST(h AS STRING), base64(key), \
     base64(value), base64(CAST(CAST(o AS STRING) AS BINARY)))";

impl SparkEngine {
    /// Connects to Spark, sets `conf`, and makes the executor binary known to the session
    /// (uploading it for [`ExecutorSource::Upload`]). `registry` must be the one the executor
    /// binary holds.
    pub fn connect(
        config: SparkEngineConfig,
        registry: KernelRegistry,
    ) -> Result<Arc<SparkEngine>, ComputingError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("fate-spark")
            .enable_all()
            .build()
            .map_err(|e| engine_error(format!("starting the Spark client runtime: {e}")))?;
        let (tx, rx) = std::sync::mpsc::channel();
        rt.spawn(async move {
            let r = async {
                let client =
                    SparkClient::connect(&config.url, SparkOptions::new(&config.user)).await?;
                if !config.conf.is_empty() {
                    let pairs: Vec<(&str, &str)> = config
                        .conf
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect();
                    client.set_config(&pairs).await?;
                }
                let words: Vec<&str> = config.subcommand.iter().map(String::as_str).collect();
                let runner = match &config.executor {
                    ExecutorSource::Upload(path) => {
                        KernelRunner::upload(&client, path, &words).await?
                    }
                    ExecutorSource::Installed(path) => KernelRunner::new(
                        &client,
                        ExecutorBinary::Path(path.to_string_lossy().into_owned()),
                        &words,
                    )?,
                };
                Ok::<_, SparkError>((client, runner))
            }
            .await;
            let _ = tx.send(r);
        });
        let (client, runner) = rx
            .recv()
            .map_err(|_| engine_error("the Spark client runtime stopped"))??;
        if let Some(every) = config.keepalive {
            // Ends with the runtime, which the engine's drop shuts down.
            let client = client.clone();
            rt.spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    if let Err(e) = client.ping().await {
                        tracing::warn!(spark = %client.address(), error = %e,
                            "The Spark Connect session did not answer its keepalive.");
                    }
                }
            });
        }
        Ok(Arc::new(SparkEngine {
            inner: Arc::new(Inner {
                client,
                runner,
                registry: Arc::new(registry),
                tables: Mutex::new(HashMap::new()),
                params: Mutex::new(HashSet::new()),
                next: AtomicU64::new(1),
                batch: config.batch.clamp(1, crate::engine_exec::MAX_BATCH),
            }),
            rt: Some(rt),
        }))
    }

    /// `host:port` of the Spark Connect server.
    pub fn address(&self) -> &str {
        self.inner.client.address()
    }

    /// For each of `keys`: whether this session may change it, and the server's value.
    pub fn session_conf(
        &self,
        keys: &[String],
    ) -> Result<Vec<(bool, Option<String>)>, ComputingError> {
        let keys = keys.to_vec();
        self.block(move |inner| async move {
            let modifiable = inner.client.config_modifiable(&keys).await?;
            let values = inner.client.config_values(&keys).await?;
            Ok(modifiable.into_iter().zip(values).collect())
        })
    }

    /// Tables currently held (tests check that released handles are freed).
    pub fn live_tables(&self) -> usize {
        self.inner.tables.lock().len()
    }

    /// Runs `f` on the engine's runtime and waits for it.
    fn block<T, F>(&self, f: impl FnOnce(Arc<Inner>) -> F) -> Result<T, ComputingError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, ComputingError>> + Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::channel();
        let fut = f(self.inner.clone());
        self.rt
            .as_ref()
            .expect("runtime lives as long as the engine")
            .spawn(async move {
                let _ = tx.send(fut.await);
            });
        rx.recv()
            .map_err(|_| engine_error("the Spark client runtime stopped"))?
    }

    fn info(&self, t: &Handle) -> Result<Arc<TableInfo>, ComputingError> {
        self.inner
            .tables
            .lock()
            .get(&t.id)
            .cloned()
            .ok_or(ComputingError::UnknownTable {
                engine: "spark".into(),
                id: t.id,
            })
    }
}

impl Drop for SparkEngine {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            let client = self.inner.client.clone();
            rt.spawn(async move {
                let _ = client.release().await;
            });
            // Never blocks, so an engine may be dropped inside another runtime.
            rt.shutdown_background();
        }
    }
}

impl Inner {
    /// Materialises `sql` as a new table of `partitions` partitions.
    async fn materialize(&self, sql: String, partitions: usize) -> Result<Handle, ComputingError> {
        let relation = self.client.sql(&sql).local_checkpoint().await?;
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let view = format!("fate_t_{id}");
        self.client
            .cached(&relation)
            .create_temp_view(&view)
            .await?;
        self.tables.lock().insert(
            id,
            Arc::new(TableInfo {
                view,
                relation,
                counts: Mutex::new(None),
            }),
        );
        Ok(Handle { id, partitions })
    }

    /// The session artifact holding `params` (uploaded once per content); `None` if empty.
    async fn params_artifact(&self, params: &[u8]) -> Result<Option<String>, ComputingError> {
        use sha2::Digest as _;
        if params.is_empty() {
            return Ok(None);
        }
        let digest = sha2::Sha256::digest(params);
        let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        let name = format!("fate_params_{hex}");
        if !self.params.lock().contains(&name) {
            self.client.add_artifact(&name, params).await?;
            self.params.lock().insert(name.clone());
        }
        Ok(Some(name))
    }

    /// SQL running the executor with `args` over the `line` column of `input` (a query whose
    /// rows are whole logical partitions per Spark partition), giving `(p, h, key, value, o)`.
    async fn transform(
        &self,
        input: &str,
        mut args: ExecArgs,
        kernel: Option<&KernelCall>,
        fold: Option<&KernelCall>,
    ) -> Result<String, ComputingError> {
        args.batch = self.batch;
        if let Some(k) = kernel {
            args.kernel = Some(plain_kernel(&k.name)?);
            args.params = self.params_artifact(&k.params).await?;
        }
        if let Some(k) = fold {
            args.fold = Some(plain_kernel(&k.name)?);
            args.fold_params = self.params_artifact(&k.params).await?;
        }
        let command = self.runner.command_of(args.to_args());
        Ok(format!(
            "SELECT CAST(split_part(r, ':', 1) AS INT) AS p, \
             CAST(split_part(r, ':', 2) AS BIGINT) AS h, \
             unbase64(split_part(r, ':', 3)) AS key, \
             unbase64(split_part(r, ':', 4)) AS value, \
             CAST(split_part(r, ':', 5) AS BIGINT) AS o \
             FROM (SELECT explode(split(line, ',')) AS r FROM (\
             SELECT TRANSFORM(line) USING '{command}' AS (line STRING) FROM ({input})))"
        ))
    }

    async fn collect(
        &self,
        sql: &str,
        max_rows: usize,
    ) -> Result<Vec<arrow_array::RecordBatch>, ComputingError> {
        let df: DataFrame = self.client.sql(sql);
        Ok(df
            .collect_batches(CollectLimits {
                max_rows,
                max_bytes: usize::MAX,
            })
            .await?)
    }

    async fn rows(&self, sql: &str, max_rows: usize) -> Result<Vec<Row>, ComputingError> {
        let mut rows = Vec::new();
        for batch in self.collect(sql, max_rows).await? {
            arrow::append_engine_rows(&batch, &mut rows).map_err(engine_error)?;
        }
        Ok(rows)
    }

    async fn counts(&self, t: &TableInfo, partitions: usize) -> Result<Vec<u64>, ComputingError> {
        if let Some(counts) = t.counts.lock().clone() {
            return Ok(counts);
        }
        let view = &t.view;
        let sql = format!("SELECT p, count(*) AS c FROM {view} GROUP BY p");
        let mut pairs = Vec::new();
        for batch in self.collect(&sql, partitions).await? {
            arrow::append_int_pairs(&batch, &mut pairs).map_err(engine_error)?;
        }
        let mut counts = vec![0u64; partitions];
        for (p, c) in pairs {
            let slot = usize::try_from(p)
                .ok()
                .and_then(|p| counts.get_mut(p))
                .ok_or_else(|| engine_error(format!("a row of {view} is in partition {p}")))?;
            *slot = c as u64;
        }
        *t.counts.lock() = Some(counts.clone());
        Ok(counts)
    }
}

fn plain_kernel(name: &str) -> Result<String, ComputingError> {
    if crate::lines::is_plain_name(name) {
        Ok(name.to_owned())
    } else {
        Err(ComputingError::Kernel {
            name: name.to_owned(),
            reason: "a kernel name run on Spark must be [A-Za-z0-9._-]+".into(),
        })
    }
}

impl Engine for SparkEngine {
    fn name(&self) -> &str {
        "spark"
    }

    fn parallelize(&self, partitions: Vec<Vec<Row>>) -> Result<Handle, ComputingError> {
        let n = partitions.len();
        check_partition_count(n)?;
        for (i, rows) in partitions.iter().enumerate() {
            let mut seen = HashSet::with_capacity(rows.len());
            for r in rows {
                if (r.hash % n as u64) as usize != i {
                    return Err(ComputingError::BadPartition {
                        partition: i,
                        partitions: n,
                        reason: "a row's hash places it in another partition".into(),
                    });
                }
                if !seen.insert(r.key.as_slice()) {
                    return Err(ComputingError::BadPartition {
                        partition: i,
                        partitions: n,
                        reason: "a key occurs twice".into(),
                    });
                }
            }
        }
        self.block(move |inner| async move {
            let rows: Vec<&Row> = partitions.iter().flatten().collect();
            let local = inner
                .client
                .create_engine_dataframe(&rows)
                .await?
                .to_view()
                .await?;
            let sql = format!(
                "SELECT * FROM (SELECT {} AS p, h, key, value FROM {local}) DISTRIBUTE BY p",
                logical_partition("h", n)
            );
            let handle = inner.materialize(sql, n).await;
            let _ = inner
                .client
                .sql(&format!("DROP VIEW IF EXISTS {local}"))
                .collect_batches(CollectLimits {
                    max_rows: 1,
                    max_bytes: 1 << 20,
                })
                .await;
            handle
        })
    }

    fn apply(&self, op: &Op, inputs: &[&Handle]) -> Result<Handle, ComputingError> {
        if inputs.len() != op.arity() {
            return Err(engine_error(format!(
                "{op:?} takes {} tables, got {}",
                op.arity(),
                inputs.len()
            )));
        }
        // Kernels are checked (name, kind, parameters) before Spark runs anything.
        let reg = &self.inner.registry;
        match op {
            Op::MapInPlace(k) | Op::MapShuffle(k) => drop(reg.rows_fn(k)?),
            Op::MapReduce { map, reduce } => {
                drop(reg.rows_fn(map)?);
                drop(reg.fold_fn(reduce)?);
            }
            Op::Join(k) => drop(reg.combine_fn(k)?),
            Op::Union(k) => drop(reg.fold_fn(k)?),
            Op::Repartition { partitions } => check_partition_count(*partitions)?,
            Op::SubtractByKey | Op::Sample { .. } => {}
        }
        let infos = inputs
            .iter()
            .map(|h| self.info(h))
            .collect::<Result<Vec<_>, _>>()?;
        let n = inputs[0].partitions;
        let op = op.clone();
        self.block(move |inner| async move {
            let a = &infos[0].view;
            let rows_input = format!("SELECT {ROWS_LINE} AS line FROM {a}");
            let project = |sql: String| format!("SELECT p, h, key, value FROM ({sql})");
            let grouped = |sql: String| {
                format!("SELECT p, {GROUP_LINE} AS line FROM ({sql}) DISTRIBUTE BY p")
            };
            let (sql, partitions) = match &op {
                Op::MapInPlace(k) => {
                    let t = inner
                        .transform(&rows_input, ExecArgs::new(ExecOp::InPlace, n), Some(k), None)
                        .await?;
                    (project(t), n)
                }
                Op::MapShuffle(k) => {
                    let t = inner
                        .transform(&rows_input, ExecArgs::new(ExecOp::Shuffle, n), Some(k), None)
                        .await?;
                    let g = inner
                        .transform(&grouped(t), ExecArgs::new(ExecOp::Group, n), None, None)
                        .await?;
                    (project(g), n)
                }
                Op::MapReduce { map, reduce } => {
                    let t = inner
                        .transform(
                            &rows_input,
                            ExecArgs::new(ExecOp::MapFold, n),
                            Some(map),
                            Some(reduce),
                        )
                        .await?;
                    let g = inner
                        .transform(
                            &grouped(t),
                            ExecArgs::new(ExecOp::Group, n),
                            None,
                            Some(reduce),
                        )
                        .await?;
                    (project(g), n)
                }
                Op::Join(k) => {
                    let b = &infos[1].view;
                    let input = format!(
                        "SELECT p, line FROM (SELECT l.p AS p, concat_ws(':', CAST(l.p AS STRING), \
                         CAST(l.h AS STRING), base64(l.key), base64(l.value), base64(r.value)) AS line \
                         FROM {a} l JOIN {b} r ON l.key = r.key) DISTRIBUTE BY p"
                    );
                    let t = inner
                        .transform(&input, ExecArgs::new(ExecOp::Combine, n), Some(k), None)
                        .await?;
                    (project(t), n)
                }
                Op::Union(k) => {
                    let b = &infos[1].view;
                    let p = format!("coalesce(l.p, {})", logical_partition("r.h", n));
                    let input = format!(
                        "SELECT p, line FROM (SELECT {p} AS p, concat_ws(':', CAST({p} AS STRING), \
                         CAST(coalesce(l.h, r.h) AS STRING), base64(coalesce(l.key, r.key)), \
                         coalesce(base64(l.value), '-'), coalesce(base64(r.value), '-')) AS line \
                         FROM {a} l FULL OUTER JOIN {b} r ON l.key = r.key) DISTRIBUTE BY p"
                    );
                    let t = inner
                        .transform(&input, ExecArgs::new(ExecOp::Union, n), Some(k), None)
                        .await?;
                    (project(t), n)
                }
                Op::SubtractByKey => {
                    let b = &infos[1].view;
                    (
                        format!(
                            "SELECT * FROM (SELECT l.p, l.h, l.key, l.value FROM {a} l \
                             LEFT ANTI JOIN {b} r ON l.key = r.key) DISTRIBUTE BY p"
                        ),
                        n,
                    )
                }
                Op::Sample { threshold, salt } => {
                    let mut args = ExecArgs::new(ExecOp::Sample, n);
                    args.threshold = *threshold;
                    args.salt = *salt;
                    let t = inner.transform(&rows_input, args, None, None).await?;
                    (project(t), n)
                }
                Op::Repartition { partitions } => (
                    format!(
                        "SELECT * FROM (SELECT {} AS p, h, key, value FROM {a}) DISTRIBUTE BY p",
                        logical_partition("h", *partitions)
                    ),
                    *partitions,
                ),
            };
            inner.materialize(sql, partitions).await
        })
    }

    fn reduce(&self, t: &Handle, kernel: &KernelCall) -> Result<Option<Vec<u8>>, ComputingError> {
        let f = self.inner.registry.fold_fn(kernel)?;
        let info = self.info(t)?;
        let (n, kernel) = (t.partitions, kernel.clone());
        let mut partials = self.block(move |inner| async move {
            let input = format!("SELECT {ROWS_LINE} AS line FROM {}", info.view);
            let t = inner
                .transform(
                    &input,
                    ExecArgs::new(ExecOp::FoldPart, n),
                    Some(&kernel),
                    None,
                )
                .await?;
            let mut partials = Vec::new();
            for batch in inner
                .collect(&format!("SELECT p, value FROM ({t})"), n)
                .await?
            {
                arrow::append_int_binary(&batch, &mut partials).map_err(engine_error)?;
            }
            Ok(partials)
        })?;
        partials.sort_by_key(|(p, _)| *p);
        f(partials.iter().map(|(_, v)| v.as_slice()).collect())
    }

    fn counts(&self, t: &Handle) -> Result<Vec<u64>, ComputingError> {
        let info = self.info(t)?;
        let n = t.partitions;
        self.block(move |inner| async move { inner.counts(&info, n).await })
    }

    fn partition(
        &self,
        t: &Handle,
        index: usize,
        max_rows: u64,
    ) -> Result<Vec<Row>, ComputingError> {
        if index >= t.partitions {
            return Err(engine_error(format!(
                "table {} has no partition {index}",
                t.id
            )));
        }
        let info = self.info(t)?;
        let n = t.partitions;
        self.block(move |inner| async move {
            let rows = inner.counts(&info, n).await?[index];
            if rows > max_rows {
                return Err(ComputingError::TooManyRows {
                    rows,
                    max: max_rows,
                });
            }
            let sql = format!("SELECT h, key, value FROM {} WHERE p = {index}", info.view);
            inner.rows(&sql, rows as usize).await
        })
    }

    fn take(&self, t: &Handle, n: usize) -> Result<Vec<Row>, ComputingError> {
        let info = self.info(t)?;
        if n == 0 {
            return Ok(Vec::new());
        }
        let limit = n.min(i32::MAX as usize);
        self.block(move |inner| async move {
            let sql = format!("SELECT h, key, value FROM {} LIMIT {limit}", info.view);
            inner.rows(&sql, limit).await
        })
    }

    fn get(&self, t: &Handle, hash: u64, key: &[u8]) -> Result<Option<Vec<u8>>, ComputingError> {
        let info = self.info(t)?;
        let p = (hash % t.partitions as u64) as usize;
        let hex: String = key.iter().map(|b| format!("{b:02X}")).collect();
        self.block(move |inner| async move {
            let sql = format!(
                "SELECT h, key, value FROM {} WHERE p = {p} AND key = X'{hex}'",
                info.view
            );
            Ok(inner.rows(&sql, 1).await?.pop().map(|r| r.value))
        })
    }

    fn release(&self, t: &Handle) {
        let Some(info) = self.inner.tables.lock().remove(&t.id) else {
            return;
        };
        let client = self.inner.client.clone();
        if let Some(rt) = &self.rt {
            rt.spawn(async move {
                let drop_view = client.sql(&format!("DROP VIEW IF EXISTS {}", info.view));
                let _ = drop_view
                    .collect_batches(CollectLimits {
                        max_rows: 1,
                        max_bytes: 1 << 20,
                    })
                    .await;
                if let Err(e) = client.remove_cached(&info.relation).await {
                    tracing::debug!(error = %e, "could not free a Spark table");
                }
            });
        }
    }
}
