//! `fate deploy local`: FATE's docker-compose deployment (parties.conf, generate_config.sh,
//! docker_deploy.sh) for one machine: every party gets a node and a site router as separate
//! processes on loopback ports, with FATE route tables, optional mutual TLS (certificates from
//! `fate cert`) and optionally an exchange (star network).

use crate::site::{NodeConfig, RouterFile, TlsFiles, issue_certs};
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Subcommand)]
pub enum DeployCommand {
    /// Generate every party's configuration, route tables and certificates under --dir and
    /// start their nodes and routers as separate processes on loopback; print each party's
    /// API URL. `--stop` stops a deployment.
    Local(LocalArgs),
}

#[derive(Args)]
pub struct LocalArgs {
    /// Directory for configurations, data, logs and `deploy.json`.
    #[arg(long)]
    pub dir: PathBuf,
    /// Party ids, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "9999,10000")]
    pub parties: Vec<String>,
    /// Star network: every site router sends other parties' traffic to one exchange router.
    #[arg(long)]
    pub exchange: bool,
    /// Mutual TLS on every hop, with a CA and per-party certificates under <dir>/certs.
    #[arg(long)]
    pub tls: bool,
    /// The seeds' SNI star: routers reach every peer `<party>.<domain>` through one Apache
    /// Traffic Server port that tunnels by TLS server name (needs --tls and `traffic_server`,
    /// Debian package `trafficserver`).
    #[arg(long, requires = "tls", conflicts_with = "exchange")]
    pub sni: bool,
    /// Domain of certificate names.
    #[arg(long, default_value = "fate.org")]
    pub domain: String,
    /// Seconds a node waits for an unreachable peer before failing its running jobs (as long
    /// as the federation timeout by default, so a partition that heals within it is survived).
    #[arg(long, default_value_t = 600)]
    pub partner_timeout: u64,
    /// A directory every node's uploads and binds may read (repeatable), written into each
    /// node.yaml as `data_roots`; `<node>/data/import` always is one.
    #[arg(long = "data-root", value_name = "DIR")]
    pub data_roots: Vec<PathBuf>,
    /// The Spark Connect server (`sc://host:port`) the parties of `--spark-parties` compute
    /// on (FATE on Spark: their tables are DataFrames, their kernels run on the executors).
    #[arg(long, value_name = "URL")]
    pub spark_connect: Option<String>,
    /// Parties computing on Spark, comma-separated (default: every party, when
    /// `--spark-connect` is given); the others use the local engine.
    #[arg(long, value_delimiter = ',', requires = "spark_connect")]
    pub spark_parties: Vec<String>,
    /// Absolute path of the fate binary on Spark's executors (default: each node uploads its
    /// own binary to its Spark session).
    #[arg(long, value_name = "PATH", requires = "spark_connect")]
    pub spark_executor: Option<PathBuf>,
    /// Where the nodes' data frames travel: `grpc` (through the routers), `rabbitmq` (through
    /// the brokers of `--rabbitmq-route-table`) or `pulsar` (through the brokers of
    /// `--pulsar-route-table`); job commands always use the routers.
    #[arg(long, value_enum, default_value = "grpc")]
    pub federation: crate::site::FederationEngine,
    /// FATE's `rabbitmq_route_table.yaml` for `--federation rabbitmq`: every party's broker,
    /// with the admin `user`/`password` of each deployed party's broker.
    #[arg(long, value_name = "FILE", required_if_eq("federation", "rabbitmq"))]
    pub rabbitmq_route_table: Option<PathBuf>,
    /// `replication` (one broker per party, federated queues) or `client`.
    #[arg(long, value_name = "MODE", requires = "rabbitmq_route_table")]
    pub rabbitmq_mode: Option<String>,
    /// FATE's `pulsar_route_table.yaml` for `--federation pulsar`: every party's broker (its
    /// binary `port` and admin REST `mng_port`).
    #[arg(long, value_name = "FILE", required_if_eq("federation", "pulsar"))]
    pub pulsar_route_table: Option<PathBuf>,
    /// `replication` (the default, FATE's: a party produces on its own broker, which
    /// replicates to the peer's) or `client` (a party produces on its peer's broker).
    #[arg(long, value_name = "MODE", requires = "pulsar_route_table")]
    pub pulsar_mode: Option<String>,
    /// Stop the deployment in --dir instead of starting one.
    #[arg(long)]
    pub stop: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// One started process.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Proc {
    pub name: String,
    pub pid: u32,
    pub log: PathBuf,
}

/// `deploy.json`: what `--stop` and scripts need.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Deployment {
    pub parties: Vec<PartyInfo>,
    pub exchange: Option<String>,
    /// The Traffic Server port of an SNI star.
    #[serde(default)]
    pub sni: Option<String>,
    pub processes: Vec<Proc>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PartyInfo {
    pub party_id: String,
    pub api: String,
    pub router: String,
    pub node_config: PathBuf,
}

pub fn run(cmd: DeployCommand) -> Result<()> {
    match cmd {
        DeployCommand::Local(args) if args.stop => stop(&args.dir),
        DeployCommand::Local(args) => start(args),
    }
}

/// Writes `<dir>/.gitignore` with `*` (unless one is there): a deployment holds the
/// federation's CA key, party keys, data and logs, none of which belongs in a repository.
pub fn ignore_in_git(dir: &Path) -> Result<()> {
    let path = dir.join(".gitignore");
    if path.exists() {
        return Ok(());
    }
    std::fs::write(
        &path,
        "# Generated by fate: keys, data and logs stay out of git.\n*\n",
    )
    .with_context(|| format!("cannot write {}", path.display()))
}

fn free_port() -> Result<(TcpListener, u16)> {
    let l = TcpListener::bind("127.0.0.1:0").context("cannot bind a loopback port")?;
    let port = l.local_addr()?.port();
    Ok((l, port))
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.contains(") Z "))
            .unwrap_or(false)
}

/// A FATE route-table endpoint (fate-spec §2.5): `{ip, port, is_secure}`, plus fate-rs's
/// `hostname` (the name the next hop's certificate carries) when it is not the destination
/// party's `<party>.<domain>`. `ip` may be a DNS name (a Kubernetes Service).
pub fn endpoint(ip: &str, port: u16, secure: bool, hostname: Option<&str>) -> Value {
    let mut e = json!({"ip": ip, "port": port, "is_secure": secure});
    if let Some(h) = hostname {
        e["hostname"] = json!(h);
    }
    e
}

/// Loopback endpoints of `fate deploy local`.
fn local(port: u16, secure: bool, hostname: Option<&str>) -> Value {
    endpoint("127.0.0.1", port, secure, hostname)
}

/// A node's own route table (`node_route_table.json`): every party through its site router.
pub fn node_route_table(party: &str, router: Value) -> Value {
    json!({
        "self_party": [party],
        "route_table": {"default": {"default": [router]}},
        "permission": {"default_allow": true}
    })
}

/// A site router's route table: its own party to its node (frames and FATE-Flow's `fateflow`
/// commands), each peer of `peers` to that peer's router (direct mode) and, with an exchange,
/// every other party to the exchange (`default`, allowed only then).
pub fn site_route_table(
    party: &str,
    node: Value,
    peers: &[(String, Value)],
    exchange: Option<Value>,
) -> Value {
    let mut table = serde_json::Map::new();
    table.insert(
        party.to_string(),
        json!({"default": [node.clone()], "fateflow": [node]}),
    );
    for (peer, ep) in peers {
        if peer != party {
            table.insert(peer.clone(), json!({"default": [ep]}));
        }
    }
    let default_allow = exchange.is_some();
    if let Some(ex) = exchange {
        table.insert("default".into(), json!({"default": [ex]}));
    }
    json!({
        "self_party": [party],
        "route_table": table,
        "permission": {"default_allow": default_allow}
    })
}

/// An exchange's route table: every party to its site router; nothing else is routed.
pub fn exchange_route_table(parties: &[(String, Value)]) -> Value {
    let table: serde_json::Map<String, Value> = parties
        .iter()
        .map(|(party, ep)| (party.clone(), json!({"default": [ep]})))
        .collect();
    json!({"self_party": [], "route_table": table, "permission": {"default_allow": false}})
}

/// One party's node.yaml as `fate deploy local` and `fate k8s render` write it: the party,
/// its API and gRPC addresses, data dir, TLS and router configuration, everything else at
/// its default (callers set the engines, peers and limits they need).
pub fn node_config(
    party: &str,
    api: SocketAddr,
    grpc: SocketAddr,
    data_dir: PathBuf,
    tls: Option<TlsFiles>,
    router_config: Option<PathBuf>,
) -> NodeConfig {
    NodeConfig {
        party_ids: vec![party.to_string()],
        api,
        grpc,
        route_table: PathBuf::from("node_route_table.json"),
        data_dir,
        tls,
        router_config,
        peers: Vec::new(),
        cores: None,
        partitions: 4,
        federation_timeout: 600,
        partner_timeout: 600,
        data_roots: Vec::new(),
        max_upload_bytes: fate_runtime::files::DEFAULT_MAX_FILE_BYTES,
        computing_engine: crate::node::ComputingEngine::Local,
        spark_connect: None,
        spark_executor: None,
        auth: crate::auth::AuthSwitch::Auto,
        permission: false,
        board: Default::default(),
        storage: None,
        s3: Default::default(),
        database: None,
        federation: crate::site::FederationEngine::Grpc,
        rabbitmq_route_table: None,
        rabbitmq_mode: None,
        pulsar_route_table: None,
        pulsar_mode: None,
        pulsar_cluster: None,
        pulsar_broker_ca: None,
        pulsar_listener: None,
    }
}

/// node.yaml's text, with the header that explains its fields; `by` names the generator.
pub fn node_yaml(config: &NodeConfig, by: &str) -> Result<String> {
    Ok(format!(
        "{}{}",
        NODE_HEADER.replace("GENERATOR", by),
        serde_yaml_ng::to_string(config)?
    ))
}

/// router.yaml's text, with its header; `by` names the generator.
pub fn router_yaml(file: &RouterFile, by: &str) -> Result<String> {
    Ok(format!(
        "{}{}",
        ROUTER_HEADER.replace("GENERATOR", by),
        serde_yaml_ng::to_string(file)?
    ))
}

fn write_json(path: &Path, v: &Value) -> Result<()> {
    std::fs::write(path, serde_json::to_string_pretty(v)? + "\n")
        .with_context(|| format!("cannot write {}", path.display()))
}

const NODE_HEADER: &str = "\
# fate node -c node.yaml: one party's node (generated by `GENERATOR`).
# party_ids: parties whose tasks run here; api: REST API (FATE-Flow's 9380);
# grpc: where the site router delivers frames and relayed partner calls (FATE-Flow's 9360);
# route_table: the node's FATE route_table.json (default -> its router); tls: ca/cert/key PEM
# and the certificate domain; router_config: read by `fate doctor`; partner_timeout: seconds a
# peer node may stay unreachable before a running job fails; data_roots: the only directories
# whose files uploads, table binds and model exports may name (data/import and data/uploads
# always are); max_upload_bytes: largest file read or uploaded; auth: client authentication
# (auto: on unless api is a loopback address; on; off); permission: FATE's site permissions
# (true: other parties may create jobs here only with granted components and datasets);
# computing_engine: local (default) or spark, with spark_connect (sc://host:port) and
# spark_executor (the fate binary's path on the executors; default: uploaded).
# Paths are relative to this file.
";

const ROUTER_HEADER: &str = "\
# fate router -c router.yaml: a site router or exchange (FATE's rollsite/OSX), generated by
# `GENERATOR`. listen: its gRPC port (FATE's 9370); route_table: FATE's
# route_table.json, re-read when it changes; tls: ca/cert/key PEM, the certificate domain and
# trusted_relays (certificate names allowed to relay any party, e.g. an exchange).
";

fn write_text(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

fn tls_files(tls: bool, name: &str, domain: &str, relays: &[String]) -> Option<TlsFiles> {
    tls.then(|| TlsFiles {
        ca: PathBuf::from("../certs/ca.pem"),
        cert: PathBuf::from(format!("../certs/{name}.crt")),
        key: PathBuf::from(format!("../certs/{name}.key")),
        domain: domain.to_string(),
        trusted_relays: relays.to_vec(),
    })
}

/// Starts `fate <what> --config <config>` with its output in `log`, in its own process group;
/// its database is its config's, or `db` when given (`fate compose deploy --local`'s SQLite).
pub(crate) fn spawn(
    exe: &Path,
    what: &str,
    config: &Path,
    log: &Path,
    db: Option<&str>,
) -> Result<Child> {
    use std::os::unix::process::CommandExt as _;
    let out =
        std::fs::File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
    let err = out.try_clone()?;
    let mut cmd = Command::new(exe);
    cmd.arg(what).arg("--config").arg(config);
    if what == "node" {
        // Its log goes with its output into `log` (node.log), beside router.log.
        cmd.arg("--log-stderr");
    }
    // Each node's database is its node.yaml's (or `db`), never one from this shell.
    cmd.env("FATE_LOG", "info").env_remove("FATE_DATABASE_URL");
    if let Some(url) = db {
        cmd.env("FATE_DATABASE_URL", url);
    }
    cmd.stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        // Its own process group: a Ctrl-C in the terminal that ran `deploy` leaves it running.
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot start `fate {what}`"))
}

/// Sends SIGTERM to `procs` in the order given, waits up to 10 s in all for them to end, then
/// sends SIGKILL to those still running.
pub(crate) fn terminate(dir: &Path, procs: &[&Proc]) {
    for p in procs {
        let _ = Command::new("kill")
            .args(["-TERM", &p.pid.to_string()])
            .status();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    for p in procs {
        while running(p, dir) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if running(p, dir) {
            let _ = Command::new("kill")
                .args(["-KILL", &p.pid.to_string()])
                .status();
        }
    }
}

fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(8)..].join("\n")
}

/// Waits until `ready` holds, or fails naming the process and quoting its log.
pub(crate) fn wait_ready(
    child: &mut Child,
    name: &str,
    log: &Path,
    ready: impl Fn() -> bool,
) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if ready() {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            bail!(
                "{name} exited ({status}) while starting; last lines of {}:\n{}",
                log.display(),
                log_tail(log)
            );
        }
        if Instant::now() > deadline {
            bail!(
                "{name} did not become ready within 30 s; see {}:\n{}",
                log.display(),
                log_tail(log)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn start(args: LocalArgs) -> Result<()> {
    let mut parties = args.parties.clone();
    parties.dedup();
    if parties.len() < 2 {
        bail!("--parties: give at least two party ids, comma-separated");
    }
    for p in &parties {
        if p.is_empty() || !p.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            bail!("--parties: {p:?} is not a party id");
        }
    }
    // Absolute, since each node.yaml resolves paths relative to itself.
    let data_roots = args
        .data_roots
        .iter()
        .map(|d| {
            d.canonicalize()
                .with_context(|| format!("--data-root {}: not a directory", d.display()))
        })
        .collect::<Result<Vec<_>>>()?;
    let rabbitmq_route_table = args
        .rabbitmq_route_table
        .as_ref()
        .map(|f| {
            f.canonicalize()
                .with_context(|| format!("--rabbitmq-route-table {}: no such file", f.display()))
        })
        .transpose()?;
    let pulsar_route_table = args
        .pulsar_route_table
        .as_ref()
        .map(|f| {
            f.canonicalize()
                .with_context(|| format!("--pulsar-route-table {}: no such file", f.display()))
        })
        .transpose()?;
    let dir = &args.dir;
    let state_file = dir.join("deploy.json");
    if let Ok(text) = std::fs::read_to_string(&state_file)
        && let Ok(old) = serde_json::from_str::<Deployment>(&text)
        && old.processes.iter().any(|p| alive(p.pid))
    {
        bail!(
            "a deployment is running in {} (see deploy.json); stop it first with `fate deploy \
             local --dir {} --stop`",
            dir.display(),
            dir.display()
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", dir.display()))?;
    ignore_in_git(&dir)?;
    let exe = std::env::current_exe().context("cannot find the fate binary")?;
    let secure = args.tls;
    let domain = &args.domain;
    if secure {
        let mut names = parties.clone();
        if args.exchange {
            names.push("exchange".into());
        }
        issue_certs(&dir.join("certs"), domain, &names)?;
    }
    // Ports: api, grpc (node) and router per party, and the exchange's.
    let mut holders = Vec::new();
    let mut port = || -> Result<u16> {
        let (l, p) = free_port()?;
        holders.push(l);
        Ok(p)
    };
    struct Ports {
        api: u16,
        grpc: u16,
        router: u16,
    }
    let ports: Vec<Ports> = parties
        .iter()
        .map(|_| {
            Ok(Ports {
                api: port()?,
                grpc: port()?,
                router: port()?,
            })
        })
        .collect::<Result<_>>()?;
    let exchange_port = if args.exchange { Some(port()?) } else { None };
    let sni_port = if args.sni { Some(port()?) } else { None };
    drop(holders);
    let ats_binary = match sni_port {
        Some(_) => Some(fate_federation_grpc::sni::binary()?),
        None => None,
    };
    let exchange_name = format!("exchange.{domain}");
    let relays: Vec<String> = if args.exchange {
        vec![exchange_name.clone()]
    } else {
        Vec::new()
    };
    // Configuration files.
    if let Some(bad) = args.spark_parties.iter().find(|s| !parties.contains(s)) {
        anyhow::bail!(
            "--spark-parties: {bad} is not one of --parties {}",
            parties.join(",")
        );
    }
    let on_spark = |party: &String| {
        args.spark_connect.is_some()
            && (args.spark_parties.is_empty() || args.spark_parties.contains(party))
    };
    for (party, p) in parties.iter().zip(&ports) {
        let pdir = dir.join(party);
        std::fs::create_dir_all(&pdir)?;
        // The node's table: everything goes to this site's router.
        write_json(
            &pdir.join("node_route_table.json"),
            &node_route_table(party, local(p.router, secure, None)),
        )?;
        // The router's table: own party -> node (frames and fateflow commands); peers ->
        // their routers (through the SNI proxy, the peer is chosen by the TLS server name),
        // or everything else -> the exchange.
        let peers: Vec<(String, Value)> = match exchange_port {
            Some(_) => Vec::new(),
            None => parties
                .iter()
                .zip(&ports)
                .filter(|(peer, _)| *peer != party)
                .map(|(peer, q)| {
                    let ep = match sni_port {
                        Some(ats) => local(ats, true, Some(&format!("{peer}.{domain}"))),
                        None => local(q.router, secure, None),
                    };
                    (peer.clone(), ep)
                })
                .collect(),
        };
        let exchange = exchange_port.map(|ex| local(ex, secure, Some(&exchange_name)));
        write_json(
            &pdir.join("route_table.json"),
            &site_route_table(party, local(p.grpc, secure, None), &peers, exchange),
        )?;
        write_text(
            &pdir.join("router.yaml"),
            &router_yaml(
                &RouterFile {
                    listen: SocketAddr::from(([127, 0, 0, 1], p.router)),
                    route_table: PathBuf::from("route_table.json"),
                    tls: tls_files(secure, party, domain, &relays),
                },
                "fate deploy local",
            )?,
        )?;
        let config = NodeConfig {
            peers: parties.iter().filter(|q| *q != party).cloned().collect(),
            cores: Some(1),
            partner_timeout: args.partner_timeout,
            data_roots: data_roots.clone(),
            computing_engine: if on_spark(party) {
                crate::node::ComputingEngine::Spark
            } else {
                crate::node::ComputingEngine::Local
            },
            spark_connect: args.spark_connect.clone().filter(|_| on_spark(party)),
            spark_executor: args.spark_executor.clone().filter(|_| on_spark(party)),
            federation: args.federation,
            rabbitmq_route_table: rabbitmq_route_table.clone(),
            rabbitmq_mode: args.rabbitmq_mode.clone(),
            pulsar_route_table: pulsar_route_table.clone(),
            pulsar_mode: args.pulsar_mode.clone(),
            ..node_config(
                party,
                SocketAddr::from(([127, 0, 0, 1], p.api)),
                SocketAddr::from(([127, 0, 0, 1], p.grpc)),
                PathBuf::from("data"),
                tls_files(secure, party, domain, &[]),
                Some(PathBuf::from("router.yaml")),
            )
        };
        write_text(
            &pdir.join("node.yaml"),
            &node_yaml(&config, "fate deploy local")?,
        )?;
    }
    if let Some(ex) = exchange_port {
        let edir = dir.join("exchange");
        std::fs::create_dir_all(&edir)?;
        let parties: Vec<(String, Value)> = parties
            .iter()
            .zip(&ports)
            .map(|(party, p)| (party.clone(), local(p.router, secure, None)))
            .collect();
        write_json(
            &edir.join("route_table.json"),
            &exchange_route_table(&parties),
        )?;
        write_text(
            &edir.join("router.yaml"),
            &router_yaml(
                &RouterFile {
                    listen: SocketAddr::from(([127, 0, 0, 1], ex)),
                    route_table: PathBuf::from("route_table.json"),
                    tls: tls_files(secure, "exchange", domain, &[]),
                },
                "fate deploy local",
            )?,
        )?;
    }
    if let (Some(ats), Some(binary)) = (sni_port, &ats_binary) {
        let tunnels = parties
            .iter()
            .zip(&ports)
            .map(|(party, p)| {
                fate_federation_grpc::sni::Tunnel::new(
                    format!("{party}.{domain}"),
                    SocketAddr::from(([127, 0, 0, 1], p.router)),
                )
            })
            .collect();
        fate_federation_grpc::sni::write_config(
            &dir.join("sni"),
            binary,
            SocketAddr::from(([127, 0, 0, 1], ats)),
            &fate_federation_grpc::sni::AtsConfig::new(tunnels),
        )?;
    }
    // Start: the SNI proxy and routers first, then nodes.
    let mut procs: Vec<Proc> = Vec::new();
    let mut started: Vec<Child> = Vec::new();
    let result = (|| -> Result<()> {
        if let (Some(ats), Some(binary)) = (sni_port, &ats_binary) {
            use std::os::unix::process::CommandExt as _;
            let sdir = dir.join("sni");
            let log = sdir.join("traffic_server.log");
            let out = std::fs::File::create(&log)?;
            let mut child = Command::new(binary)
                .env("TS_RUNROOT", sdir.join("runroot.yaml"))
                .current_dir(&sdir)
                .stdin(Stdio::null())
                .stdout(out.try_clone()?)
                .stderr(out)
                .process_group(0)
                .spawn()
                .with_context(|| format!("cannot run {}", binary.display()))?;
            let addr = SocketAddr::from(([127, 0, 0, 1], ats));
            let r = wait_ready(&mut child, "traffic server", &log, || {
                TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
            });
            procs.push(Proc {
                name: "traffic server".into(),
                pid: child.id(),
                log,
            });
            started.push(child);
            r?;
        }
        let mut routers: Vec<(PathBuf, u16, String)> = parties
            .iter()
            .zip(&ports)
            .map(|(party, p)| (dir.join(party), p.router, format!("router of {party}")))
            .collect();
        if let Some(ex) = exchange_port {
            routers.push((dir.join("exchange"), ex, "exchange router".into()));
        }
        for (rdir, port, name) in &routers {
            let log = rdir.join("router.log");
            let mut child = spawn(&exe, "router", &rdir.join("router.yaml"), &log, None)?;
            let addr = SocketAddr::from(([127, 0, 0, 1], *port));
            // Ready once it says it listens (a port that answers may be someone else's).
            let r = wait_ready(&mut child, name, &log, || {
                std::fs::read_to_string(&log).is_ok_and(|t| t.contains("Router listening"))
                    && TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
            });
            procs.push(Proc {
                name: name.clone(),
                pid: child.id(),
                log,
            });
            started.push(child);
            r?;
        }
        for (party, p) in parties.iter().zip(&ports) {
            let pdir = dir.join(party);
            let log = pdir.join("node.log");
            let mut child = spawn(&exe, "node", &pdir.join("node.yaml"), &log, None)?;
            let url = format!("http://127.0.0.1:{}/v2/site/info/query", p.api);
            let agent = ureq::AgentBuilder::new()
                .timeout(Duration::from_millis(500))
                .build();
            let name = format!("node of {party}");
            // Ready once its API answers with its own party id.
            let r = wait_ready(&mut child, &name, &log, || {
                agent
                    .get(&url)
                    .call()
                    .ok()
                    .and_then(|r| r.into_json::<Value>().ok())
                    .is_some_and(|v| v["data"]["party_id"] == party.as_str())
            });
            procs.push(Proc {
                name,
                pid: child.id(),
                log,
            });
            started.push(child);
            r?;
        }
        Ok(())
    })();
    let deployment = Deployment {
        parties: parties
            .iter()
            .zip(&ports)
            .map(|(party, p)| PartyInfo {
                party_id: party.clone(),
                api: format!("http://127.0.0.1:{}", p.api),
                router: format!("127.0.0.1:{}", p.router),
                node_config: dir.join(party).join("node.yaml"),
            })
            .collect(),
        exchange: exchange_port.map(|p| format!("127.0.0.1:{p}")),
        sni: sni_port.map(|p| format!("127.0.0.1:{p}")),
        processes: procs,
    };
    std::fs::write(&state_file, serde_json::to_string_pretty(&deployment)?)?;
    if let Err(e) = result {
        for child in &mut started {
            let _ = child.kill();
            let _ = child.wait();
        }
        return Err(e);
    }
    if args.json {
        println!("{}", serde_json::to_string(&deployment)?);
    } else {
        println!(
            "federation of {} parties started in {} ({}{})",
            parties.len(),
            dir.display(),
            if args.exchange {
                "exchange"
            } else if args.sni {
                "SNI star through Traffic Server"
            } else {
                "direct"
            },
            if secure { ", mutual TLS" } else { "" }
        );
        println!("{:<10} {:<28} {:<18} NODE CONFIG", "PARTY", "API", "ROUTER");
        for p in &deployment.parties {
            println!(
                "{:<10} {:<28} {:<18} {}",
                p.party_id,
                p.api,
                p.router,
                p.node_config.display()
            );
        }
        if let Some(ex) = &deployment.exchange {
            println!("exchange   {ex}");
        }
        if let Some(sni) = &deployment.sni {
            println!("SNI proxy  {sni} (Traffic Server; tunnels <party>.{domain})");
        }
        println!(
            "try: fate toy --guest {} --host {} --api {}\nstop: fate deploy local --dir {} --stop",
            parties[0],
            parties[1],
            deployment.parties[0].api,
            dir.display()
        );
    }
    Ok(())
}

/// Whether `p` is still the process `fate deploy local` started: alive, and (so that a
/// recycled pid is never signalled) its command line or working directory lies under `dir`.
pub(crate) fn running(p: &Proc, dir: &Path) -> bool {
    alive(p.pid) && belongs_to(p.pid, dir)
}

fn belongs_to(pid: u32, dir: &Path) -> bool {
    let dir = dir.to_string_lossy();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    String::from_utf8_lossy(&cmdline)
        .split('\0')
        .any(|a| a.starts_with(dir.as_ref()))
        || std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd.starts_with(&*dir))
}

/// `fate node`/`fate router` processes started by hand on this deployment's configurations
/// (a node restarted after a crash, say), which deploy.json does not list.
fn restarted(dir: &Path, known: &[Proc]) -> Vec<Proc> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() || known.iter().any(|p| p.pid == pid) || !alive(pid) {
            continue;
        }
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let args: Vec<String> = String::from_utf8_lossy(&cmdline)
            .split('\0')
            .map(String::from)
            .collect();
        let is_fate = args.first().is_some_and(|a| {
            Path::new(a)
                .file_name()
                .is_some_and(|f| f.to_string_lossy().starts_with("fate"))
        });
        let Some(what) = args.get(1).filter(|w| *w == "node" || *w == "router") else {
            continue;
        };
        let Some(config) = args
            .iter()
            .position(|a| a == "--config" || a == "-c")
            .and_then(|i| args.get(i + 1))
        else {
            continue;
        };
        let config = match std::fs::read_link(format!("/proc/{pid}/cwd")) {
            Ok(cwd) => cwd.join(config),
            Err(_) => PathBuf::from(config),
        };
        let Ok(config) = config.canonicalize() else {
            continue;
        };
        if !is_fate || !config.starts_with(dir) {
            continue;
        }
        let party = config
            .parent()
            .and_then(Path::file_name)
            .map(|p| p.to_string_lossy().to_string())
            .unwrap_or_default();
        let name = if party == "exchange" {
            "exchange router".to_string()
        } else {
            format!("{what} of {party}")
        };
        found.push(Proc {
            name,
            pid,
            log: PathBuf::new(),
        });
    }
    found
}

fn stop(dir: &Path) -> Result<()> {
    let state_file = dir.join("deploy.json");
    let text = std::fs::read_to_string(&state_file)
        .with_context(|| format!("no deployment in {} (no deploy.json)", dir.display()))?;
    let deployment: Deployment = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a deploy.json", state_file.display()))?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", dir.display()))?;
    let mut processes = deployment.processes.clone();
    let restarted = restarted(&dir, &processes);
    processes.extend(restarted.iter().cloned());
    // What runs now, before any signal: a process already dead is "not running".
    let live: Vec<bool> = processes.iter().map(|p| running(p, &dir)).collect();
    // Nodes first (reverse start order), then routers.
    let order: Vec<&Proc> = processes
        .iter()
        .zip(&live)
        .rev()
        .filter(|(_, l)| **l)
        .map(|(p, _)| p)
        .collect();
    terminate(&dir, &order);
    for (p, l) in processes.iter().zip(&live) {
        let again = if restarted.iter().any(|r| r.pid == p.pid) {
            ", started again by hand"
        } else {
            ""
        };
        println!(
            "{} (pid {}{again}): {}",
            p.name,
            p.pid,
            if *l { "stopped" } else { "not running" }
        );
    }
    let n_stopped = live.iter().filter(|l| **l).count();
    println!(
        "stopped {n_stopped} processes of the deployment in {}{}",
        dir.display(),
        match processes.len() - n_stopped {
            0 => String::new(),
            n => format!("; {n} not running"),
        }
    );
    Ok(())
}
