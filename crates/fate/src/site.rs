//! One node per party: `fate node` (API, scheduler, computing and a gRPC federation client),
//! `fate router` (a site router, FATE's rollsite/OSX), `fate cert`, `fate doctor`. The
//! configuration files are YAML; route tables are FATE's `route_table.json` unchanged
//! (fate-spec §2.5).

use crate::node::{EngineArgs, build_scheduler_with, runtime};
use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use fate_federation_grpc::{
    CommandHandler, Commands, GrpcTransport, Router, RouterConfig, Routes, TlsConfig,
    TransportConfig, certs,
};
use fate_scheduler::{PartnerError, Partners, Site};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// How often route tables are re-read (OSX reloads on change; rollsite every minute).
const ROUTE_RELOAD: Duration = Duration::from_secs(2);

/// TLS files of a node or router (OSX's `certChainFile`, `privateKeyFile`, `caFile`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The federation CA certificate (PEM).
    pub ca: PathBuf,
    /// This site's certificate (PEM), named `<party_id>.<domain>`.
    pub cert: PathBuf,
    /// This site's private key (PKCS#8 PEM).
    pub key: PathBuf,
    /// Domain of site names (`fate.org`: party 9999 is `9999.fate.org`).
    pub domain: String,
    /// Certificate names allowed to relay any party's packets (an exchange), e.g.
    /// `exchange.fate.org`.
    #[serde(default)]
    pub trusted_relays: Vec<String>,
}

impl TlsFiles {
    fn load(&self, base: &Path) -> Result<TlsConfig> {
        let mut tls = TlsConfig::from_files(
            &base.join(&self.cert),
            &base.join(&self.key),
            &base.join(&self.ca),
            &self.domain,
        )?;
        for relay in &self.trusted_relays {
            tls = tls.trust_relay(relay.clone());
        }
        Ok(tls)
    }
}

/// `node.yaml`: one party's node.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// The parties this node hosts (usually one).
    pub party_ids: Vec<String>,
    /// REST API address (FATE-Flow's HTTP port 9380).
    pub api: SocketAddr,
    /// Where the site router delivers frames and relayed commands (FATE-Flow's gRPC port 9360).
    pub grpc: SocketAddr,
    /// The node's route table: normally `default` → this site's router.
    pub route_table: PathBuf,
    /// Tables, metadata and logs.
    pub data_dir: PathBuf,
    /// Mutual TLS towards the router; absent for plaintext.
    #[serde(default)]
    pub tls: Option<TlsFiles>,
    /// The site router's configuration, read by `fate doctor` to list the peers to check.
    #[serde(default)]
    pub router_config: Option<PathBuf>,
    /// The parties this node federates with, checked by `fate doctor` when no `--party` is
    /// given. Needed behind an exchange, whose site route table lists no peer (`default` sends
    /// everything to the exchange); without it `fate doctor` reads the router's route table.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<String>,
    /// Table partition threads; default all cores.
    #[serde(default)]
    pub cores: Option<usize>,
    /// Default partitions of new tables.
    #[serde(default = "default_partitions")]
    pub partitions: usize,
    /// Seconds a party waits for another party's message.
    #[serde(default = "default_federation_timeout")]
    pub federation_timeout: u64,
    /// Seconds another party's node may stay unreachable before a running job fails.
    #[serde(default = "default_partner_timeout")]
    pub partner_timeout: u64,
    /// Directories whose files uploads, table binds and model exports may name, relative to
    /// this file; `<data_dir>/import` and `<data_dir>/uploads` always are.
    #[serde(default)]
    pub data_roots: Vec<PathBuf>,
    /// Largest file a request may make the node read, and largest multipart upload (bytes).
    #[serde(default = "default_max_upload_bytes")]
    pub max_upload_bytes: u64,
    /// `local` (default) or `encoded` (see `fate node --computing-engine`).
    #[serde(
        default,
        skip_serializing_if = "crate::node::ComputingEngine::is_local"
    )]
    pub computing_engine: crate::node::ComputingEngine,
    /// The Spark Connect server (`sc://host:port`) of `computing_engine: spark`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spark_connect: Option<String>,
    /// Absolute path of the fate binary on every Spark executor; default: upload this binary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spark_executor: Option<PathBuf>,
    /// FATE's client authentication: `auto` (on unless `api` is a loopback address), `on`,
    /// `off`. Clients sign requests with an app id and token (`fate app create`).
    #[serde(default)]
    pub auth: crate::auth::AuthSwitch,
    /// FATE's site permissions: when true, another party may create jobs here only with the
    /// components and datasets granted to it (`/v2/permission/resource/grant`).
    #[serde(default)]
    pub permission: bool,
    /// The board's login (`user`, default `admin`; `password`, default generated into
    /// `<data_dir>/board-password`; `session_minutes`, default 480).
    #[serde(default, skip_serializing_if = "crate::auth::BoardSettings::is_unset")]
    pub board: crate::auth::BoardSettings,
    /// Where tables live (`file:///abs/path`, `hdfs://host:port/path`, `s3://bucket/prefix`);
    /// default the standalone store under `data_dir`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<String>,
    /// How to reach S3 for an `s3://` storage: `endpoint`, `region`, `access_key_id`,
    /// `secret_access_key`, `session_token`, `virtual_host_style`; unset fields come from
    /// the environment (`AWS_*`).
    #[serde(default, skip_serializing_if = "fate_storage::S3Settings::is_unset")]
    pub s3: fate_storage::S3Settings,
    /// Where the metadata lives (`url: mysql://...`, `postgres://...` or `sqlite:///...`);
    /// default SQLite under `data_dir`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabaseConfig>,
    /// Where data frames travel (FATE's `federation_engine`): `grpc` (default, through the
    /// site router), `rabbitmq` (through the parties' brokers, fate-spec §2.7) or `pulsar`
    /// (through the parties' Pulsar brokers, fate-spec §2.6). Job commands
    /// between nodes always go through the routers, as FATE on Spark sends them over its
    /// proxy while data goes through the broker.
    #[serde(default, skip_serializing_if = "FederationEngine::is_grpc")]
    pub federation: FederationEngine,
    /// FATE's `rabbitmq_route_table.yaml` (`federation: rabbitmq`), relative to this file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rabbitmq_route_table: Option<PathBuf>,
    /// `replication` (default: one broker per party, queues federated) or `client`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rabbitmq_mode: Option<String>,
    /// FATE's `pulsar_route_table.yaml` (`federation: pulsar`), relative to this file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pulsar_route_table: Option<PathBuf>,
    /// `replication` (FATE's default: a party produces on its own broker, which replicates to
    /// the peer's) or `client` (a party produces on its peer's broker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pulsar_mode: Option<String>,
    /// Replication: the cluster name of this node's broker (FATE's `pulsar.cluster`, default
    /// `standalone`); peers' brokers are registered on it as clusters named after the party.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pulsar_cluster: Option<String>,
    /// Replication through an SNI proxy: the CA file, as the brokers see it, that this
    /// broker trusts for the peers' brokers (default: the broker's own
    /// `brokerClientTrustCertsFilePath`); `fate doctor` checks the SNI routes against it
    /// (else against `tls.ca`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pulsar_broker_ca: Option<PathBuf>,
    /// Replication: the peers' brokers' advertised listener to use (Pulsar's cluster
    /// `listenerName`), when they advertise their site name on a listener of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pulsar_listener: Option<String>,
}

/// node.yaml `database`: the metadata store's database.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `mysql://user:password@host:port/database`, `postgres://...` or `sqlite:///abs/path`.
    pub url: String,
}

impl std::fmt::Debug for DatabaseConfig {
    /// Never the password: the URL as the store shows it (or that it does not parse).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match fate_store::DatabaseUrl::parse(&self.url) {
            Ok(url) => write!(f, "DatabaseConfig {{ url: {url} }}"),
            Err(_) => f.write_str("DatabaseConfig { url: <invalid> }"),
        }
    }
}

/// The data plane of a node's federation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum FederationEngine {
    /// Frames through the site router (eggroll's DataTransferService).
    #[default]
    Grpc,
    /// Frames through RabbitMQ brokers (FATE's `rabbitmq` federation).
    Rabbitmq,
    /// Frames through Pulsar brokers (FATE's `pulsar` federation).
    Pulsar,
}

impl FederationEngine {
    fn is_grpc(&self) -> bool {
        *self == FederationEngine::Grpc
    }
}

fn default_max_upload_bytes() -> u64 {
    fate_runtime::files::DEFAULT_MAX_FILE_BYTES
}

fn default_partitions() -> usize {
    4
}
fn default_federation_timeout() -> u64 {
    600
}
/// As long as the data plane's federation timeout (600 s): a partition that the tasks' own
/// waits survive (a 60 s outage) must not fail the job through the scheduler's polls.
fn default_partner_timeout() -> u64 {
    600
}

/// `router.yaml`: a site router or an exchange.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouterFile {
    /// Address to listen on (rollsite/OSX's 9370).
    pub listen: SocketAddr,
    /// FATE's `route_table.json`.
    pub route_table: PathBuf,
    /// Mutual TLS; absent for plaintext.
    #[serde(default)]
    pub tls: Option<TlsFiles>,
}

fn load_yaml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<(T, PathBuf)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let value: T =
        serde_yaml_ng::from_str(&text).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let base = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    Ok((value, base))
}

impl NodeConfig {
    pub fn load(path: &Path) -> Result<(Self, PathBuf)> {
        let (config, base): (NodeConfig, PathBuf) = load_yaml(path)?;
        if config.party_ids.is_empty() {
            bail!("{}: party_ids: list at least one party", path.display());
        }
        if config.federation == FederationEngine::Rabbitmq && config.rabbitmq_route_table.is_none()
        {
            bail!(
                "{}: rabbitmq_route_table: required with `federation: rabbitmq` (FATE's \
                 rabbitmq_route_table.yaml)",
                path.display()
            );
        }
        if let Some(mode) = &config.rabbitmq_mode {
            mode.parse::<fate_federation_rabbitmq::Mode>()
                .map_err(|e| anyhow!("{}: rabbitmq_mode: {e}", path.display()))?;
        }
        if config.federation == FederationEngine::Pulsar && config.pulsar_route_table.is_none() {
            bail!(
                "{}: pulsar_route_table: required with `federation: pulsar` (FATE's \
                 pulsar_route_table.yaml)",
                path.display()
            );
        }
        if let Some(mode) = &config.pulsar_mode {
            mode.parse::<fate_federation_pulsar::Mode>()
                .map_err(|e| anyhow!("{}: pulsar_mode: {e}", path.display()))?;
        }
        Ok((config, base))
    }
}

/// Replays commands relayed by the routers (FATE's `unaryCall` relay, fate-spec §2.3) into
/// this node's partner endpoints (`fate_api::partner_router`, served on no TCP listener), with
/// the calling party the routers vouched for as a `PartnerCaller` extension. Only the partner
/// endpoints are reachable this way: another party may create, stop, rerun and poll a job
/// here, never read data or submit its own jobs.
#[derive(Default)]
struct ApiRelay {
    app: OnceLock<axum::Router>,
}

impl CommandHandler for ApiRelay {
    fn handle(
        &self,
        command: fate_federation_grpc::Command,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<bytes::Bytes, String>> + Send + 'static>>
    {
        let app = self.app.get().cloned();
        Box::pin(async move {
            use tower::ServiceExt as _;
            if !command.path.starts_with("/v2/partner/") {
                return Err(format!(
                    "{} is not a partner endpoint; other parties may only call /v2/partner/*",
                    command.path
                ));
            }
            let app = app.ok_or("the node is still starting")?;
            let request = axum::http::Request::builder()
                .method(command.method.as_str())
                .uri(&command.path)
                .header("content-type", "application/json")
                .extension(fate_api::PartnerCaller(command.src_party.clone()))
                .body(axum::body::Body::from(command.body))
                .map_err(|e| format!("bad relayed request: {e}"))?;
            let response = app
                .oneshot(request)
                .await
                .map_err(|e| format!("API: {e}"))?;
            axum::body::to_bytes(response.into_body(), 4 << 20)
                .await
                .map_err(|e| format!("API reply: {e}"))
        })
    }
}

/// Partner calls over the routers.
struct RelayPartners {
    transport: Arc<GrpcTransport>,
}

impl Partners for RelayPartners {
    fn call(
        &self,
        job_id: &str,
        party_id: &str,
        path: &str,
        body: &Value,
        timeout: Duration,
    ) -> Result<Value, String> {
        self.call_coded(job_id, party_id, path, body, timeout)
            .map_err(|e| e.message)
    }

    fn call_coded(
        &self,
        job_id: &str,
        party_id: &str,
        path: &str,
        body: &Value,
        timeout: Duration,
    ) -> Result<Value, PartnerError> {
        let uncoded = |message: String| PartnerError {
            message,
            code: None,
        };
        let body = serde_json::to_vec(body).map_err(|e| uncoded(e.to_string()))?;
        let reply = self
            .transport
            .call(job_id, party_id, path, body, timeout)
            .map_err(uncoded)?;
        let v: Value = serde_json::from_slice(&reply).map_err(|e| {
            uncoded(format!(
                "the node of party {party_id} answered {path} with unreadable JSON: {e}"
            ))
        })?;
        match v.get("code").and_then(Value::as_i64) {
            Some(0) => Ok(v.get("data").cloned().unwrap_or(Value::Null)),
            code => Err(PartnerError {
                message: format!(
                    "the node of party {party_id} refused {path}: {} (code {})",
                    v.get("message").and_then(Value::as_str).unwrap_or(""),
                    code.map(|c| c.to_string()).unwrap_or_else(|| "none".into())
                ),
                code,
            }),
        }
    }
}

#[derive(Args)]
pub struct NodeArgs {
    /// The node's configuration (YAML; see `fate deploy local` for generated examples).
    #[arg(long, short)]
    pub config: PathBuf,
    /// The metadata database's URL (`mysql://...`, `postgres://...`), instead of node.yaml's
    /// `database.url`: so its password can come from the environment, e.g. a Kubernetes
    /// Secret (`fate k8s render` sets it so).
    #[arg(
        long = "database-url",
        value_name = "URL",
        env = "FATE_DATABASE_URL",
        hide_env_values = true
    )]
    pub database: Option<String>,
    #[command(flatten)]
    pub log: crate::LogArgs,
}

/// Starts the node's gRPC transport (outside any async runtime: it binds on its own).
fn start_transport(
    config: &NodeConfig,
    base: &Path,
    commands: Option<Commands>,
) -> Result<Arc<GrpcTransport>> {
    let routes = Routes::watch(&base.join(&config.route_table), ROUTE_RELOAD)
        .map_err(|e| anyhow!("route table: {e}"))?;
    let tls = config.tls.as_ref().map(|t| t.load(base)).transpose()?;
    let transport = GrpcTransport::start(TransportConfig {
        tls,
        commands,
        ..TransportConfig::new(config.grpc, routes)
    })
    .with_context(|| format!("cannot start the node's gRPC server on {}", config.grpc))?;
    Ok(transport)
}

/// Starts the node's RabbitMQ transport for its parties (`federation: rabbitmq`).
fn start_rabbitmq(config: &NodeConfig, base: &Path) -> Result<Arc<dyn fate_federation::Transport>> {
    use fate_federation_rabbitmq::{Mode, RabbitConfig, RabbitTransport, RouteTable};
    let file = base.join(
        config
            .rabbitmq_route_table
            .as_ref()
            .expect("checked when the configuration was loaded"),
    );
    let routes = RouteTable::load(&file).map_err(|e| anyhow!("{}: {e}", file.display()))?;
    let mode = match &config.rabbitmq_mode {
        Some(mode) => mode.parse().map_err(|e| anyhow!("rabbitmq_mode: {e}"))?,
        None => Mode::Replication,
    };
    let transport =
        RabbitTransport::start(RabbitConfig::new(routes, config.party_ids.clone(), mode))
            .map_err(|e| anyhow!("{}: {e}", file.display()))?;
    tracing::info!(route_table = %file.display(), ?mode, "Data frames go through RabbitMQ.");
    Ok(transport)
}

/// Starts the node's Pulsar transport for its parties (`federation: pulsar`, fate-spec §2.6).
fn start_pulsar(config: &NodeConfig, base: &Path) -> Result<Arc<dyn fate_federation::Transport>> {
    use fate_federation_pulsar::{Mode, PulsarConfig, PulsarTransport, RouteTable};
    let file = base.join(
        config
            .pulsar_route_table
            .as_ref()
            .expect("checked when the configuration was loaded"),
    );
    let routes = RouteTable::load(&file).map_err(|e| anyhow!("{}: {e}", file.display()))?;
    let mode: Mode = match &config.pulsar_mode {
        Some(mode) => mode.parse().map_err(|e| anyhow!("pulsar_mode: {e}"))?,
        // FATE's default (fate-spec §2.6).
        None => Mode::Replication,
    };
    let mut settings = PulsarConfig {
        mode,
        ..PulsarConfig::new(routes, config.party_ids.clone())
    };
    if let Some(cluster) = &config.pulsar_cluster {
        settings.cluster = cluster.clone();
    }
    settings.broker_trust_certs = config
        .pulsar_broker_ca
        .as_ref()
        .map(|ca| base.join(ca).display().to_string());
    settings.listener_name = config.pulsar_listener.clone();
    let transport = PulsarTransport::start(settings).map_err(|e| match e {
        // These are the node's settings, not the route table's.
        fate_federation_pulsar::PulsarError::Config(reason) if reason.contains("mode") => {
            anyhow!("pulsar_mode: {reason}")
        }
        fate_federation_pulsar::PulsarError::Config(reason) if reason.starts_with("cluster") => {
            anyhow!("pulsar_cluster: {reason}")
        }
        e @ fate_federation_pulsar::PulsarError::Broker { .. }
            if e.to_string().contains("clusterName") =>
        {
            anyhow!("pulsar_cluster: {e}")
        }
        e => anyhow!("{}: {e}", file.display()),
    })?;
    tracing::info!(route_table = %file.display(), ?mode, "Data frames go through Pulsar.");
    Ok(transport)
}

pub fn node(args: NodeArgs) -> Result<()> {
    let (config, base) = NodeConfig::load(&args.config)?;
    let data_dir = base.join(&config.data_dir);
    let claimed = crate::node::DataDir::claim(&data_dir)?;
    let started = AtomicBool::new(false);
    let result = serve_node(&args, config, &base, data_dir, &started);
    if result.is_err() && !started.load(Ordering::SeqCst) {
        claimed.remove_if_new();
    }
    result
}

/// Runs the node on its claimed data dir; sets `started` once it serves.
fn serve_node(
    args: &NodeArgs,
    config: NodeConfig,
    base: &Path,
    data_dir: PathBuf,
    started: &AtomicBool,
) -> Result<()> {
    let log_file = crate::init_node_tracing(&args.log, &data_dir)?;
    let relay = Arc::new(ApiRelay::default());
    let transport = start_transport(&config, base, Some(Commands(relay.clone())))?;
    // The routers always carry the job commands; the data frames go through them too unless
    // the node federates through RabbitMQ or Pulsar.
    let data: Arc<dyn fate_federation::Transport> = match config.federation {
        FederationEngine::Grpc => transport.clone(),
        FederationEngine::Rabbitmq => start_rabbitmq(&config, base)?,
        FederationEngine::Pulsar => start_pulsar(&config, base)?,
    };
    let mut site = Site::new(
        config.party_ids.clone(),
        Arc::new(RelayPartners {
            transport: transport.clone(),
        }),
    );
    site.partner_timeout = Duration::from_secs(config.partner_timeout.max(1));
    site.permission = config.permission;
    if config.tls.is_none() {
        tracing::warn!(
            "No tls in the node's configuration: partner calls are plaintext and the calling party is whatever the packet claims; configure mutual TLS for a federation between organisations."
        );
    }
    let engine = EngineArgs {
        cores: config.cores,
        partitions: config.partitions,
        federation_timeout: config.federation_timeout,
        data_roots: config.data_roots.iter().map(|d| base.join(d)).collect(),
        max_upload_bytes: config.max_upload_bytes,
        computing_engine: config.computing_engine,
        spark_connect: config.spark_connect.clone(),
        spark_executor: config.spark_executor.clone(),
        storage: config.storage.clone(),
        s3: config.s3.clone(),
        database: args
            .database
            .clone()
            .or_else(|| config.database.as_ref().map(|d| d.url.clone())),
    };
    runtime()?.block_on(async move {
        let scheduler = build_scheduler_with(&data_dir, &engine, data, Some(site)).await?;
        let listener = tokio::net::TcpListener::bind(config.api)
            .await
            .with_context(|| format!("cannot listen on {}", config.api))?;
        let local = listener.local_addr()?;
        let auth = crate::auth::client_auth(config.auth, &local, scheduler.store(), &data_dir).await?;
        let (board, login) = crate::auth::board(&config.board, &data_dir)?;
        let state = fate_api::ApiState {
            scheduler,
            upload_dir: data_dir.join("uploads"),
            address: local.to_string(),
            auth,
            board: Some(board),
            serving: Default::default(),
        };
        let _ = relay.app.set(fate_api::partner_router(state.clone()));
        let shutdown_scheduler = state.scheduler.clone();
        fate_api::sweep_uploads(&state)
            .await
            .map_err(anyhow::Error::msg)?;
        let app = fate_api::router(state);
        tracing::info!(parties = ?config.party_ids, api = %local, grpc = %transport.local_addr(), "Node started.");
        println!(
            "board at {}: {login}\nfate node for parties {}: API at http://{local}, gRPC at {} (data in {}{})",
            crate::node::board_url(&local),
            config.party_ids.join(","),
            transport.local_addr(),
            data_dir.display(),
            crate::log_note(log_file.as_deref())
        );
        started.store(true, Ordering::SeqCst);
        axum::serve(listener, app)
            .with_graceful_shutdown(crate::node::end_jobs_on_signal(shutdown_scheduler))
            .await?;
        Ok(())
    })
}

use crate::node::shutdown_signal;

#[derive(Args)]
pub struct RouterArgs {
    /// The router's configuration (YAML: listen, route_table, tls).
    #[arg(long, short)]
    pub config: PathBuf,
}

pub fn router(args: RouterArgs) -> Result<()> {
    let (file, base): (RouterFile, PathBuf) = load_yaml(&args.config)?;
    let routes = Routes::watch(&base.join(&file.route_table), ROUTE_RELOAD)
        .map_err(|e| anyhow!("route table: {e}"))?;
    let tls = file.tls.as_ref().map(|t| t.load(&base)).transpose()?;
    let config = RouterConfig {
        tls,
        ..RouterConfig::new(file.listen, routes.clone())
    };
    println!(
        "fate router on {} for parties [{}] (route table {})",
        file.listen,
        routes.current().self_party().join(","),
        base.join(&file.route_table).display()
    );
    runtime()?.block_on(async move {
        Router::serve(config, shutdown_signal())
            .await
            .map_err(|e| anyhow!("router: {e}"))
    })
}

#[derive(Args)]
pub struct CertArgs {
    /// Directory for `ca.pem`, `ca.key` and `<name>.crt`/`<name>.key`. An existing CA there is
    /// reused, so more parties can be added later.
    #[arg(long)]
    pub dir: PathBuf,
    /// Domain of site names: party 9999 gets `9999.<domain>`.
    #[arg(long, default_value = "fate.org")]
    pub domain: String,
    /// Parties to issue certificates for, comma-separated (e.g. 9999,10000).
    #[arg(long, value_delimiter = ',', required = true)]
    pub parties: Vec<String>,
    /// Also issue `exchange.<domain>` for an exchange router.
    #[arg(long)]
    pub exchange: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Creates (or loads) the CA and issues the requested certificates; returns (name, cert, key).
pub fn issue_certs(
    dir: &Path,
    domain: &str,
    names: &[String],
) -> Result<Vec<(String, PathBuf, PathBuf)>> {
    let ca = if dir.join("ca.pem").exists() && dir.join("ca.key").exists() {
        certs::CertAuthority::load(dir, domain)?
    } else {
        let ca = certs::CertAuthority::new(domain)?;
        ca.write(dir)?;
        ca
    };
    // The CA key must never reach a repository.
    crate::deploy::ignore_in_git(dir)?;
    let mut out = Vec::new();
    for name in names {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            bail!("--parties: {name:?} is not a party id or site label (letters, digits, '-')");
        }
        let files = ca.issue(&[name.as_str()])?.write(dir)?;
        out.push((name.clone(), files.cert_chain_file, files.private_key_file));
    }
    Ok(out)
}

pub fn cert(args: CertArgs) -> Result<()> {
    let mut names = args.parties.clone();
    if args.exchange {
        names.push("exchange".into());
    }
    let issued = issue_certs(&args.dir, &args.domain, &names)?;
    if args.json {
        let rows: Vec<Value> = issued
            .iter()
            .map(|(n, c, k)| json!({"name": format!("{n}.{}", args.domain), "cert": c, "key": k}))
            .collect();
        println!(
            "{}",
            json!({"ca": args.dir.join("ca.pem"), "certificates": rows})
        );
    } else {
        println!("CA: {}", args.dir.join("ca.pem").display());
        println!("{:<24} {:<40} KEY", "NAME", "CERTIFICATE");
        for (n, c, k) in &issued {
            println!(
                "{:<24} {:<40} {}",
                format!("{n}.{}", args.domain),
                c.display(),
                k.display()
            );
        }
    }
    Ok(())
}

#[derive(Args)]
pub struct DoctorArgs {
    /// The node's configuration (with --preflight: optional, for its ports and data dir).
    #[arg(long, short, required_unless_present = "preflight")]
    pub config: Option<PathBuf>,
    /// Check this host before installing a party instead (FATE's deployment preflight):
    /// ulimit nofile/nproc, ports 9360/9370/9380/8080 (or node.yaml's) free, disk, swap,
    /// leftover fate processes; each failed check says how to fix it.
    #[arg(long)]
    pub preflight: bool,
    /// Check only these peer parties (comma-separated); default: the node configuration's
    /// `peers`, else every party of the site router's route table (`router_config`).
    #[arg(long, value_delimiter = ',')]
    pub party: Vec<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `federation: rabbitmq`: every broker of the route table (its AMQP listener and management
/// API) and the admin login of the brokers of this node's parties, one row each.
fn rabbitmq_checks(
    config: &NodeConfig,
    base: &Path,
    checks: &mut Vec<(String, String, Result<String, String>)>,
) {
    use fate_federation_rabbitmq::{Management, RouteTable, probe};
    let file = base.join(
        config
            .rabbitmq_route_table
            .as_ref()
            .expect("checked when the configuration was loaded"),
    );
    let routes = match RouteTable::load(&file) {
        Ok(routes) => routes,
        Err(e) => {
            checks.push((
                "rabbitmq route table".into(),
                file.display().to_string(),
                Err(e.to_string()),
            ));
            return;
        }
    };
    let mine = |p: &str| config.party_ids.iter().any(|m| m == p);
    // The node's own parties first: without their brokers nothing federates.
    let mut parties: Vec<&str> = routes.parties().collect();
    parties.sort_by_key(|p| !mine(p));
    for party in &config.party_ids {
        if let Err(e) = routes.broker(party) {
            checks.push((
                format!("rabbitmq broker of party {party}"),
                "-".into(),
                Err(e.to_string()),
            ));
        }
    }
    for party in parties {
        let broker = routes.broker(party).expect("listed by the table");
        let whose = if mine(party) { "own " } else { "" };
        checks.push((
            format!("rabbitmq AMQP of {whose}party {party}"),
            broker.amqp_addr(),
            probe::amqp(party, broker).map_err(|e| e.to_string()),
        ));
        checks.push((
            format!("rabbitmq management of {whose}party {party}"),
            broker.mng_addr(),
            probe::management(party, broker).map_err(|e| e.to_string()),
        ));
        if mine(party) {
            let login = Management::new(party, broker).and_then(|m| m.check_admin());
            checks.push((
                format!("rabbitmq admin login of party {party}"),
                broker.mng_addr(),
                login.map_err(|e| e.to_string()),
            ));
        }
    }
}

/// `federation: pulsar`: every broker of the route table (and of the node's own parties and
/// `peers`, which may resolve through its `default` entry): its binary-protocol port and its
/// admin REST (clusters, FATE's tenant), one row each naming the party and `host:port`.
fn pulsar_checks(
    config: &NodeConfig,
    base: &Path,
    checks: &mut Vec<(String, String, Result<String, String>)>,
) {
    use fate_federation_pulsar::{DEFAULT_TENANT, RouteTable, probe};
    let file = base.join(
        config
            .pulsar_route_table
            .as_ref()
            .expect("checked when the configuration was loaded"),
    );
    let routes = match RouteTable::load(&file) {
        Ok(routes) => routes,
        Err(e) => {
            checks.push((
                "pulsar route table".into(),
                file.display().to_string(),
                Err(e.to_string()),
            ));
            return;
        }
    };
    let mine = |p: &str| config.party_ids.iter().any(|m| m == p);
    // The node's own parties first: without their brokers nothing federates.
    let mut parties: Vec<&str> = config.party_ids.iter().map(String::as_str).collect();
    for party in routes
        .parties()
        .chain(config.peers.iter().map(String::as_str))
    {
        if !parties.contains(&party) {
            parties.push(party);
        }
    }
    for party in parties {
        let whose = if mine(party) { "own " } else { "" };
        let broker = match routes.broker(party) {
            Ok(broker) => broker,
            Err(e) => {
                checks.push((
                    format!("pulsar broker of {whose}party {party}"),
                    "-".into(),
                    Err(e.to_string()),
                ));
                continue;
            }
        };
        // A peer behind an SNI proxy is its broker's to reach (replication), through the
        // proxy: the node checks that hop, not the peer's broker itself.
        if let (false, Some(proxy)) = (mine(party), &broker.proxy) {
            // The CA the brokers trust for their peers, else the site's own.
            let ca = config
                .pulsar_broker_ca
                .as_ref()
                .map(|c| base.join(c))
                .or_else(|| config.tls.as_ref().map(|t| base.join(&t.ca)));
            checks.push((
                format!("pulsar SNI route of party {party}"),
                proxy.clone(),
                match ca {
                    Some(ca) => fate_federation_pulsar::sni::check_sni_route(
                        proxy,
                        &broker.host,
                        &ca,
                        Duration::from_secs(10),
                    )
                    .map(|()| format!("{} certified by {}", broker.host, ca.display())),
                    None => Err(
                        "no CA to check the broker's certificate against: set `tls` \
                                 or `pulsar_broker_ca`"
                            .into(),
                    ),
                },
            ));
            continue;
        }
        checks.push((
            format!("pulsar binary of {whose}party {party}"),
            broker.addr(),
            probe::binary(party, &broker).map_err(|e| e.to_string()),
        ));
        checks.push((
            format!("pulsar admin of {whose}party {party}"),
            broker.mng_addr(),
            probe::admin(party, &broker, DEFAULT_TENANT).map_err(|e| e.to_string()),
        ));
    }
}

/// The kind of failure an error text shows.
pub fn classify(error: &str) -> &'static str {
    let e = error.to_ascii_lowercase();
    if e.contains("no route") || e.contains("no default entry") || e.contains("default not allowed")
    {
        "missing route"
    } else if e.contains("refused the login") || e.contains("http 401") {
        "credentials"
    } else if e.contains("does not back") || e.contains("permission") {
        "permission"
    } else if e.contains("certificate") || e.contains("tls") || e.contains("handshake") {
        "TLS/certificate"
    } else if e.contains("refused") {
        "refused"
    } else if e.contains("timed out") || e.contains("deadline") || e.contains("timeout") {
        "timeout"
    } else if e.contains("lookup") || e.contains("resolve") || e.contains("name or service") {
        "name resolution"
    } else if e.contains("unreachable") {
        "unreachable"
    } else {
        "error"
    }
}

pub fn doctor(args: DoctorArgs) -> Result<()> {
    if args.preflight {
        return crate::preflight::preflight(args.config.as_deref(), args.json);
    }
    let config_path = args.config.as_ref().expect("clap requires --config");
    let (config, base) = NodeConfig::load(config_path)?;
    let mut checks: Vec<(String, String, Result<String, String>)> = Vec::new();
    // 1. The node's API.
    let api = format!("http://{}", config.api);
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(5))
        .build();
    let api_check = match agent.get(&format!("{api}/v2/site/info/query")).call() {
        Ok(r) => Ok(format!("HTTP {}", r.status())),
        Err(ureq::Error::Status(code, _)) => Ok(format!("HTTP {code}")),
        Err(e) => Err(e.to_string()),
    };
    checks.push(("local node API".into(), api.clone(), api_check));
    // 2. Through the site router back to this node, then 3. to each peer's node.
    let listen: SocketAddr = "127.0.0.1:0".parse().expect("address");
    let probe = NodeConfig {
        grpc: listen,
        ..config.clone()
    };
    let transport = start_transport(&probe, &base, None)?;
    let me = config.party_ids[0].clone();
    let ping = |party: &str| -> Result<String, String> {
        let reply = transport.call(
            "doctor",
            party,
            fate_scheduler::site::paths::PING,
            b"{}".to_vec(),
            Duration::from_secs(5),
        )?;
        let v: Value = serde_json::from_slice(&reply).map_err(|e| e.to_string())?;
        match v["code"].as_i64() {
            Some(0) => Ok(format!("node hosts {}", v["data"]["party_ids"])),
            _ => Err(format!("node answered: {}", v["message"])),
        }
    };
    checks.push((
        "local router -> this node".into(),
        format!("fateflow:{me}"),
        ping(&me),
    ));
    let peers: Vec<String> = if !args.party.is_empty() {
        args.party.clone()
    } else if !config.peers.is_empty() {
        config.peers.clone()
    } else if let Some(router) = &config.router_config {
        let (file, rbase): (RouterFile, PathBuf) = load_yaml(&base.join(router))?;
        let table = fate_federation_grpc::RouteTable::load(&rbase.join(&file.route_table))
            .map_err(|e| anyhow!("{e}"))?;
        table
            .parties()
            .filter(|p| *p != "default" && !config.party_ids.iter().any(|m| m == p))
            .map(String::from)
            .collect()
    } else {
        Vec::new()
    };
    if peers.is_empty() {
        // Behind an exchange the site's route table lists no peer: say so rather than report
        // a healthy federation after checking nothing beyond this site.
        checks.push((
            "peer parties".into(),
            "-".into(),
            Err(
                "no peer party to check: the route table lists none (behind an exchange?); \
                 pass --party ID[,ID] or list them under `peers:` in the node's configuration"
                    .into(),
            ),
        ));
    }
    for peer in &peers {
        checks.push((
            format!("route to party {peer}"),
            format!("fateflow:{peer}"),
            ping(peer),
        ));
    }
    if config.federation == FederationEngine::Rabbitmq {
        rabbitmq_checks(&config, &base, &mut checks);
    }
    if config.federation == FederationEngine::Pulsar {
        pulsar_checks(&config, &base, &mut checks);
    }
    let failed = checks.iter().filter(|c| c.2.is_err()).count();
    if args.json {
        let rows: Vec<Value> = checks
            .iter()
            .map(|(hop, target, r)| match r {
                Ok(d) => json!({"hop": hop, "target": target, "ok": true, "detail": d}),
                Err(e) => json!({"hop": hop, "target": target, "ok": false,
                                  "kind": classify(e), "detail": e}),
            })
            .collect();
        println!("{}", json!({"checks": rows, "failed": failed}));
    } else {
        println!("{:<32} {:<24} {:<16} DETAIL", "HOP", "TARGET", "RESULT");
        for (hop, target, r) in &checks {
            let (result, detail) = match r {
                Ok(d) => ("ok".to_string(), d.clone()),
                Err(e) => (format!("FAIL {}", classify(e)), e.clone()),
            };
            println!("{hop:<32} {target:<24} {result:<16} {detail}");
        }
    }
    if failed > 0 {
        bail!("{failed} of {} checks failed", checks.len());
    }
    Ok(())
}
