//! Wiring a node: the only place that names concrete backends.

use anyhow::{Context, Result, bail};
use clap::Args;
use fate_computing::{Computing, ComputingConfig};
use fate_federation::FederationConfig;
use fate_federation::Transport;
use fate_federation::local::LocalTransport;
use fate_scheduler::{Scheduler, SchedulerConfig, Site};
use fate_store::MetaStore;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[derive(Args)]
pub struct StandaloneArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// HTTP port of the REST API (FATE-Flow's default is 9380).
    #[arg(long, default_value_t = 9380)]
    pub port: u16,
    /// Where tables, metadata (SQLite) and logs live.
    #[arg(long, env = "FATE_HOME", default_value_os_t = crate::default_data_dir())]
    pub data_dir: PathBuf,
    /// FATE's client authentication: `auto` is on unless the API listens on a loopback
    /// address. When on, requests must be signed with an app id and token; the node creates an
    /// admin app on first start and names the file holding its credentials.
    #[arg(long, value_enum, default_value_t = crate::auth::AuthSwitch::Auto)]
    pub auth: crate::auth::AuthSwitch,
    /// The board's user (the board is served at `/` on the API's port).
    #[arg(long, default_value = "admin")]
    pub board_user: String,
    /// How long a board login lasts, in minutes.
    #[arg(long, default_value_t = crate::auth::BOARD_SESSION_MINUTES)]
    pub board_session_minutes: u64,
    #[command(flatten)]
    pub engine: EngineArgs,
    #[command(flatten)]
    pub log: crate::LogArgs,
}

#[derive(Args, Clone)]
pub struct EngineArgs {
    /// Threads that run table partitions (FATE's task cores). Default: all cores.
    #[arg(long)]
    pub cores: Option<usize>,
    /// Default partitions of new tables (FATE's computing_partitions).
    #[arg(long, default_value_t = 8)]
    pub partitions: usize,
    /// Seconds a party waits for a message from another party before the task fails.
    #[arg(long, default_value_t = 600)]
    pub federation_timeout: u64,
    /// A directory whose files uploads, table binds and model exports may name (repeatable).
    /// `<data-dir>/import` and `<data-dir>/uploads` always are; without this option a
    /// standalone node on a loopback address also allows the directory it was started in
    /// (unless that is `/`).
    #[arg(long = "data-root", value_name = "DIR")]
    pub data_roots: Vec<PathBuf>,
    /// Largest file a request may make the node read, and largest multipart upload, in bytes.
    #[arg(long, default_value_t = fate_runtime::files::DEFAULT_MAX_FILE_BYTES)]
    pub max_upload_bytes: u64,
    /// Where tables live: `file:///abs/path`, `hdfs://host:port/path` or `s3://bucket/prefix`
    /// (S3 settings from `AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`). Default: the standalone store under the data dir.
    #[arg(long, value_name = "URI", env = "FATE_STORAGE")]
    pub storage: Option<String>,
    /// S3 settings from node.yaml (unset fields come from the environment).
    #[arg(skip)]
    pub s3: fate_storage::S3Settings,
    /// Where the metadata (jobs, tasks, tables, outputs) lives: `sqlite:///abs/path`,
    /// `mysql://user:password@host:port/database` (MariaDB or MySQL) or
    /// `postgres://user:password@host:port/database` (node.yaml `database: {url}`). The
    /// database must exist; the node creates its tables. Default: SQLite under the data dir.
    #[arg(
        long = "database-url",
        value_name = "URL",
        env = "FATE_DATABASE_URL",
        hide_env_values = true
    )]
    pub database: Option<String>,
    /// Where tables are held and computed: `local` (typed partitions in this process),
    /// `spark` (a Spark cluster through Spark Connect, `--spark-connect`), or `encoded` (the
    /// in-process reference engine of the engine contract: every kernel runs through the
    /// kernel registry over encoded rows, as on Spark).
    #[arg(long, value_enum, default_value_t = ComputingEngine::Local, env = "FATE_COMPUTING_ENGINE")]
    pub computing_engine: ComputingEngine,
    /// The Spark Connect server of `--computing-engine spark`, `sc://host:port`.
    #[arg(long, value_name = "URL", env = "FATE_SPARK_CONNECT")]
    pub spark_connect: Option<String>,
    /// Absolute path of this fate binary on every Spark executor (it runs the kernels);
    /// default: this binary is uploaded to the Spark session as an artifact.
    #[arg(long, value_name = "PATH", env = "FATE_SPARK_EXECUTOR")]
    pub spark_executor: Option<PathBuf>,
}

/// The computing engines this binary can wire.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum ComputingEngine {
    #[default]
    Local,
    Spark,
    Encoded,
}

impl ComputingEngine {
    pub fn is_local(&self) -> bool {
        *self == ComputingEngine::Local
    }
}

/// The node's table store: the storage URI's if one is configured, else redb under
/// `<data_dir>/tables`. Errors name the setting.
fn open_store(data_dir: &Path, engine: &EngineArgs) -> Result<Arc<dyn fate_computing::TableStore>> {
    Ok(match &engine.storage {
        None => fate_computing::RedbStore::open(&data_dir.join("tables"))
            .context("cannot open table storage")?,
        Some(uri) => {
            let uri = fate_storage::StorageUri::parse(uri)?;
            let shown = uri.to_string();
            let storage = fate_storage::StorageConfig {
                s3: engine.s3.clone().with_env(|k| std::env::var(k).ok()),
                ..fate_storage::StorageConfig::new(uri)
            };
            let store = fate_storage::ObjectTableStore::open(storage)
                .with_context(|| format!("cannot open the table storage {shown}"))?;
            tracing::info!(storage = %shown, "Tables are stored under the storage URI.");
            store
        }
    })
}

/// The node's engines: its default computing (`--computing-engine`) and what jobs may ask for
/// per party ([`NodeEngines`]). Every engine shares the one table store, so a table one engine
/// wrote reads back equal on another.
fn open_computing(
    data_dir: &Path,
    engine: &EngineArgs,
    cores: usize,
) -> Result<(Computing, Arc<NodeEngines>)> {
    let cfg = ComputingConfig {
        cores,
        default_partitions: engine.partitions,
        data_dir: None,
    };
    let store = open_store(data_dir, engine)?;
    let local = Computing::with_store_on(cfg.clone(), store.clone(), None)
        .context("cannot start the computing engine")?;
    let spark = match &engine.spark_connect {
        Some(url) => Some(SparkSetup {
            url: url.clone(),
            executor: match &engine.spark_executor {
                Some(path) => fate_computing_spark::ExecutorSource::Installed(path.clone()),
                None => fate_computing_spark::ExecutorSource::Upload(
                    std::env::current_exe()
                        .context("cannot find this fate binary to upload to Spark")?,
                ),
            },
            shared: std::sync::Mutex::new(None),
        }),
        None => None,
    };
    let mut engines = NodeEngines {
        cfg,
        store,
        local: local.clone(),
        default: local,
        default_engine: engine.computing_engine,
        spark,
    };
    // The only place that names a concrete computing engine.
    engines.default = match engine.computing_engine {
        ComputingEngine::Local => engines.local.clone(),
        ComputingEngine::Encoded => {
            let encoded = fate_computing::EncodedEngine::new(kernel_registry()?, cores)
                .context("cannot start the encoded engine")?;
            Computing::with_store_on(engines.cfg.clone(), engines.store.clone(), Some(encoded))
                .context("cannot start the computing engine")?
        }
        ComputingEngine::Spark => {
            let Some(setup) = &engines.spark else {
                bail!(
                    "--computing-engine spark needs --spark-connect sc://host:port (node.yaml `spark_connect`)"
                );
            };
            let url = setup.url.clone();
            let c = engines
                .shared_spark()
                .map_err(anyhow::Error::msg)
                .with_context(|| {
                    format!("cannot start the Spark engine at {url} (--spark-connect)")
                })?;
            tracing::info!(spark = %url, "Tables are computed on Spark.");
            c
        }
    };
    Ok((engines.default.clone(), Arc::new(engines)))
}

/// A node's Spark Connect server, connected on first use.
struct SparkSetup {
    url: String,
    executor: fate_computing_spark::ExecutorSource,
    /// The node's Spark session, one for every job without session settings of its own.
    shared: std::sync::Mutex<Option<(Arc<fate_computing_spark::SparkEngine>, Computing)>>,
}

/// Session settings fate-rs's Spark engine sets itself; a job may not change them.
const ENGINE_OWNED_SPARK_CONF: [&str; 1] = ["spark.sql.chunkBase64String.enabled"];

/// The engines a node runs jobs on: the local engine always, its default engine, and its Spark
/// engine when a Spark Connect server is configured (connected at start when it is the
/// default, else at the first job that asks for SPARK). A job picks per party with
/// `computing_engine` (fate-dag's `engines`).
///
/// `spark_run` / `engine_run` on Spark: Spark Connect fixes the cluster (`master`, executors,
/// their cores and memory) when its server starts, and a session can change only runtime SQL
/// settings. So entries Spark says a session may set (`spark.conf.isModifiable`, the
/// `spark.sql.*` runtime confs) are applied to a Spark session of the job's own, opened for it
/// and released when its run ends (session settings are per session: two jobs sharing the
/// node's session would see each other's); every other entry (`num-executors`,
/// `executor-memory`, `master`, static SQL confs) is accepted only when the server has no
/// value for it or the same value, and refused naming the field when it has another. A job
/// that expects a cluster it will not get fails at submit, and FATE's usual
/// `num-executors`/`executor-cores` lines, which a Spark Connect server without those
/// properties cannot contradict, do not stop a FATE job from running unchanged.
pub struct NodeEngines {
    cfg: ComputingConfig,
    store: Arc<dyn fate_computing::TableStore>,
    local: Computing,
    default: Computing,
    default_engine: ComputingEngine,
    spark: Option<SparkSetup>,
}

impl NodeEngines {
    fn connect_spark(
        &self,
        conf: Vec<(String, String)>,
    ) -> Result<(Arc<fate_computing_spark::SparkEngine>, Computing), String> {
        let setup = self
            .spark
            .as_ref()
            .ok_or("this node has no Spark Connect server")?;
        let mut config =
            fate_computing_spark::SparkEngineConfig::new(&setup.url, setup.executor.clone());
        config.conf = conf;
        let registry = kernel_registry().map_err(|e| format!("{e:#}"))?;
        let spark = fate_computing_spark::SparkEngine::connect(config, registry)
            .map_err(|e| e.to_string())?;
        let engine: Arc<dyn fate_computing::Engine> = spark.clone();
        let computing =
            Computing::with_store_on(self.cfg.clone(), self.store.clone(), Some(engine))
                .map_err(|e| e.to_string())?;
        Ok((spark, computing))
    }

    /// The node's shared Spark session, connecting it if it is not yet.
    fn shared_spark(&self) -> Result<Computing, String> {
        Ok(self.shared_spark_engine()?.1)
    }

    fn shared_spark_engine(
        &self,
    ) -> Result<(Arc<fate_computing_spark::SparkEngine>, Computing), String> {
        let setup = self
            .spark
            .as_ref()
            .ok_or("this node has no Spark Connect server")?;
        let mut shared = setup.shared.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = shared.as_ref() {
            return Ok(s.clone());
        }
        let s = self.connect_spark(Vec::new())?;
        *shared = Some(s.clone());
        Ok(s)
    }

    /// The engine a party runs on: the job's `computing_engine`, else the node's default.
    fn wants_spark(&self, settings: &fate_dag::EngineSettings) -> bool {
        match &settings.computing_engine {
            Some(c) => c.value == fate_dag::ComputingEngine::Spark,
            None => self.default_engine == ComputingEngine::Spark,
        }
    }

    /// The job's Spark session settings (the entries a session may set), after checking the
    /// others against the server.
    fn session_conf(
        &self,
        spark: &fate_computing_spark::SparkEngine,
        run: &fate_dag::SparkRun,
    ) -> Result<Vec<(String, String)>, EngineRefusal> {
        let props: Vec<(&str, &fate_dag::Setting<String>)> = run.properties().collect();
        if let Some((k, s)) = props
            .iter()
            .find(|(k, _)| ENGINE_OWNED_SPARK_CONF.contains(k))
        {
            return Err(EngineRefusal {
                field: s.field.clone(),
                message: format!("{k} is set by fate-rs's Spark engine itself"),
            });
        }
        let keys: Vec<String> = props.iter().map(|(k, _)| k.to_string()).collect();
        let answers = spark.session_conf(&keys).map_err(|e| EngineRefusal {
            field: props
                .first()
                .map(|(_, s)| s.field.clone())
                .unwrap_or_default(),
            message: format!("cannot ask Spark Connect about the Spark settings: {e}"),
        })?;
        let mut conf = Vec::new();
        for ((key, setting), (modifiable, server)) in props.iter().zip(answers) {
            if modifiable {
                conf.push((key.to_string(), setting.value.clone()));
                continue;
            }
            if let Some(server) = server
                && !server.trim().eq_ignore_ascii_case(&setting.value)
            {
                return Err(EngineRefusal {
                    field: setting.field.clone(),
                    message: format!(
                        "{key} is fixed by the Spark cluster behind Spark Connect (its server \
                         has {server}, the job asks for {}); a session cannot change it: \
                         remove the entry or ask for {server}",
                        setting.value
                    ),
                });
            }
        }
        Ok(conf)
    }
}

use fate_scheduler::{EngineRefusal, JobEngines};

impl JobEngines for NodeEngines {
    fn check(
        &self,
        _party: &fate_types::Party,
        settings: &fate_dag::EngineSettings,
    ) -> Result<(), EngineRefusal> {
        if !self.wants_spark(settings) {
            // Engine-specific run settings of another engine are ignored, as FATE does.
            return Ok(());
        }
        let field = settings
            .computing_engine
            .as_ref()
            .map(|c| c.field.clone())
            .unwrap_or_default();
        let Some(setup) = &self.spark else {
            return Err(EngineRefusal {
                field,
                message: "SPARK needs a Spark Connect server, and this node has none \
                          configured (--spark-connect / node.yaml spark_connect)"
                    .into(),
            });
        };
        let (spark, _) = self.shared_spark_engine().map_err(|e| EngineRefusal {
            field: field.clone(),
            message: format!("cannot reach the Spark Connect server {}: {e}", setup.url),
        })?;
        if let Some(run) = &settings.spark_run {
            self.session_conf(&spark, run)?;
        }
        Ok(())
    }

    fn open(
        &self,
        job_id: &str,
        party: &fate_types::Party,
        settings: &fate_dag::EngineSettings,
    ) -> Result<Computing, String> {
        match &settings.computing_engine {
            None if !self.wants_spark(settings) => return Ok(self.default.clone()),
            Some(c) if c.value == fate_dag::ComputingEngine::Standalone => {
                return Ok(self.local.clone());
            }
            _ => {}
        }
        let (spark, shared) = self.shared_spark_engine()?;
        let conf = match &settings.spark_run {
            Some(run) => self
                .session_conf(&spark, run)
                .map_err(|r| format!("{}: {}", r.field, r.message))?,
            None => Vec::new(),
        };
        if conf.is_empty() {
            return Ok(shared);
        }
        tracing::info!(job_id, party = %party, settings = conf.len(),
            "The job's Spark settings get a Spark session of their own.");
        Ok(self.connect_spark(conf)?.1)
    }
}

/// Every kernel of the components, by name: what an engine outside this process runs.
pub fn kernel_registry() -> Result<fate_computing::KernelRegistry> {
    let mut registry = fate_computing::KernelRegistry::new();
    fate_components::register_kernels(&mut registry)
        .context("cannot register the components' kernels")?;
    Ok(registry)
}

/// `fate spark-executor ...`: what Spark's executors run (see `fate_computing_spark::engine_exec`).
pub fn spark_executor(args: Vec<String>) -> std::process::ExitCode {
    match kernel_registry() {
        Ok(registry) => fate_computing_spark::engine_exec::main(args, &registry),
        Err(e) => {
            eprintln!("fate spark-executor: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The data roots of a node: `<data_dir>/import` and `<data_dir>/uploads` (where multipart
/// uploads land), then the configured ones.
pub fn data_roots(data_dir: &Path, engine: &EngineArgs) -> Result<fate_runtime::DataRoots> {
    let mut dirs = vec![data_dir.join("import"), data_dir.join("uploads")];
    for d in &dirs {
        std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    dirs.extend(engine.data_roots.iter().cloned());
    fate_runtime::DataRoots::new(dirs, engine.max_upload_bytes).map_err(|e| anyhow::anyhow!(e))
}

/// The node's metadata store: the database `url` names (`database.url` / `--database-url`),
/// else SQLite at `<data_dir>/fate_flow.sqlite`. Errors name `database.url` and show the URL
/// without its password.
pub async fn open_meta_store(data_dir: &Path, url: Option<&str>) -> Result<MetaStore> {
    let url = match url {
        Some(url) => fate_store::DatabaseUrl::parse(url).map_err(|e| anyhow::anyhow!(e))?,
        None => fate_store::DatabaseUrl::sqlite_file(&data_dir.join("fate_flow.sqlite")),
    };
    let store = MetaStore::open(&url)
        .await
        .with_context(|| format!("cannot open the metadata store (database.url {url})"))?;
    tracing::info!(database = %url, "Metadata store open.");
    Ok(store)
}

/// Builds a standalone scheduler over `data_dir`: redb tables, SQLite metadata, in-process
/// federation.
pub async fn build_scheduler(data_dir: &Path, engine: &EngineArgs) -> Result<Scheduler> {
    build_scheduler_with(data_dir, engine, LocalTransport::new(), None).await
}

/// Builds a scheduler over `data_dir` (redb tables, SQLite metadata) with the given federation
/// transport; `site` names the parties this node hosts when it is one node of a federation.
pub async fn build_scheduler_with(
    data_dir: &Path,
    engine: &EngineArgs,
    transport: Arc<dyn Transport>,
    site: Option<Site>,
) -> Result<Scheduler> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create data dir {}", data_dir.display()))?;
    let data_roots = data_roots(data_dir, engine)?;
    let cores = engine.cores.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    });
    let (computing, engines) = open_computing(data_dir, engine, cores)?;
    let store = open_meta_store(data_dir, engine.database.as_deref()).await?;
    let federation = FederationConfig {
        timeout: Duration::from_secs(engine.federation_timeout),
        ..FederationConfig::default()
    };
    let scheduler = Scheduler::new(
        store,
        computing,
        transport,
        fate_components::registry(),
        SchedulerConfig {
            logs_dir: data_dir.join("logs"),
            federation,
            site,
            data_roots,
            engines: Some(engines),
        },
    )
    .await?;
    Ok(scheduler)
}

/// The board's address for a user: the API's, with `127.0.0.1` for an unspecified host.
pub fn board_url(local: &std::net::SocketAddr) -> String {
    if local.ip().is_unspecified() {
        format!("http://127.0.0.1:{}/", local.port())
    } else {
        format!("http://{local}/")
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

pub fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

pub fn standalone(mut args: StandaloneArgs) -> Result<()> {
    if args.engine.data_roots.is_empty() && is_loopback(&args.host) {
        // A node only this machine reaches may read files where it was started, as a user
        // running `fate standalone` in a project directory expects; never the whole disk.
        if let Ok(cwd) = std::env::current_dir()
            && cwd.parent().is_some()
        {
            args.engine.data_roots.push(cwd);
        }
    }
    let data_dir = DataDir::claim(&args.data_dir)?;
    let started = AtomicBool::new(false);
    let result = (|| -> Result<()> {
        let log_file = crate::init_node_tracing(&args.log, &args.data_dir)?;
        runtime()?.block_on(async {
            let scheduler = build_scheduler(&args.data_dir, &args.engine).await?;
            let addr = format!("{}:{}", args.host, args.port);
            let listener = tokio::net::TcpListener::bind(&addr)
                .await
                .with_context(|| format!("cannot listen on {addr}"))?;
            let local = listener.local_addr()?;
            let auth =
                crate::auth::client_auth(args.auth, &local, scheduler.store(), &args.data_dir)
                    .await?;
            // The board password: FATE_BOARD_PASSWORD, else generated under the data dir.
            let (board, login) = crate::auth::board(
                &crate::auth::BoardSettings {
                    user: Some(args.board_user.clone()),
                    password: std::env::var("FATE_BOARD_PASSWORD")
                        .ok()
                        .filter(|p| !p.is_empty()),
                    session_minutes: Some(args.board_session_minutes),
                },
                &args.data_dir,
            )?;
            let state = fate_api::ApiState {
                scheduler,
                upload_dir: args.data_dir.join("uploads"),
                address: local.to_string(),
                auth,
                board: Some(board),
                serving: Default::default(),
            };
            fate_api::sweep_uploads(&state)
                .await
                .map_err(anyhow::Error::msg)?;
            let shutdown_scheduler = state.scheduler.clone();
            let app = fate_api::router(state);
            tracing::info!(data_dir = %args.data_dir.display(), "Standalone node started.");
            // One write for both lines: a caller that reads up to the API line and closes the
            // pipe must not make a later print fail.
            println!(
                "board at {}: {login}\nfate standalone: API at http://{local} (data in {}{})",
                board_url(&local),
                args.data_dir.display(),
                crate::log_note(log_file.as_deref())
            );
            started.store(true, Ordering::SeqCst);
            axum::serve(listener, app)
                .with_graceful_shutdown(end_jobs_on_signal(shutdown_scheduler))
                .await?;
            Ok(())
        })
    })();
    if result.is_err() && !started.load(Ordering::SeqCst) {
        data_dir.remove_if_new();
    }
    result
}

/// A node's data dir, held while the node runs: an exclusive lock on `<dir>/fate.lock` keeps a
/// second node off it (two nodes on one table store and SQLite file would fail with the
/// store's own lock error, or worse), and a start that fails removes the dir if this start
/// created it.
pub struct DataDir {
    path: PathBuf,
    created: bool,
    _lock: std::fs::File,
}

/// The lock file of a data dir; it holds the pid of the node that has the dir.
pub const LOCK_FILE: &str = "fate.lock";

impl DataDir {
    /// Creates `path` if it does not exist and takes its lock; an error names the node that
    /// holds it.
    pub fn claim(path: &Path) -> Result<DataDir> {
        use std::io::{Read as _, Seek as _, Write as _};
        let created = !path.exists();
        std::fs::create_dir_all(path)
            .with_context(|| format!("cannot create data dir {}", path.display()))?;
        let lock_path = path.join(LOCK_FILE);
        let mut lock = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .with_context(|| format!("cannot open {}", lock_path.display()))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = lock.read_to_string(&mut pid);
                let pid = pid.trim();
                let who = if pid.is_empty() {
                    String::new()
                } else {
                    format!(" (pid {pid})")
                };
                bail!(
                    "another fate node{who} holds the data dir {}: stop it first, or start this \
                     node on another data dir",
                    path.display()
                );
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", lock_path.display()));
            }
        }
        // Best effort: the pid only makes the message above more helpful.
        let _ = lock
            .set_len(0)
            .and_then(|()| lock.rewind())
            .and_then(|()| writeln!(lock, "{}", std::process::id()));
        Ok(DataDir {
            path: path.to_path_buf(),
            created,
            _lock: lock,
        })
    }

    /// After a failed start: removes the dir if `claim` created it, so a mistyped option or a
    /// port in use leaves nothing behind.
    pub fn remove_if_new(self) {
        if self.created {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// How long running tasks get to stop by themselves at shutdown before their end is recorded
/// for them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Resolves on SIGTERM (what docker and systemd send) or SIGINT.
pub async fn shutdown_signal() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "Cannot watch SIGTERM; only Ctrl-C stops this node.");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Waits for [`shutdown_signal`], then ends every running job of this node, recording each
/// task's end here and telling the job's other parties (`Scheduler::shutdown`), before the
/// API stops. The federation link stays up meanwhile, so the stop messages get through.
pub async fn end_jobs_on_signal(scheduler: Scheduler) {
    shutdown_signal().await;
    tracing::info!("Shutting down: ending running jobs.");
    match scheduler.shutdown(SHUTDOWN_GRACE).await {
        Ok(ended) if ended.is_empty() => {}
        Ok(ended) => {
            tracing::info!(jobs = ?ended, "Jobs ended by the shutdown.");
            println!("fate: shut down; ended jobs {}", ended.join(", "));
        }
        Err(e) => tracing::error!(error = %e, "Shutdown could not record every job's end."),
    }
}
