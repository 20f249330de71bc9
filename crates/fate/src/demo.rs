//! `fate demo`: FATE's first hour in one command, in one process. The toy (secure sum), then
//! FATE's benchmark jobs on the breast dataset: upload guest and host data, PSI + CoordinatedLR +
//! evaluation and PSI + HeteroSecureBoost + evaluation with FATE's benchmark_quality parameters,
//! each printed with its time and AUC next to FATE 2.2's on this kind of machine (anchors.md).
//! The jobs run on a standalone node whose board (and REST API) listens on loopback while the
//! demo runs, so the user watches them at the printed URL and looks around afterwards (fate-spec
//! §7: FATE's own demo ends at FATE-Board on port 8080).

use crate::node::{EngineArgs, build_scheduler, runtime};
use anyhow::{Context, Result, bail};
use clap::Args;
use fate_scheduler::Scheduler;
use fate_types::{JobStatus, Role};
use serde_json::json;
use std::future::IntoFuture as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Args)]
pub struct DemoArgs {
    /// Folder with FATE's example CSVs (breast_hetero_guest.csv, breast_hetero_host.csv).
    /// Default: the copies built into the binary (the repository's examples/data).
    #[arg(long)]
    pub datasets: Option<PathBuf>,
    /// Only run the toy.
    #[arg(long)]
    pub toy_only: bool,
    /// Port of the board and REST API on 127.0.0.1 while the demo runs (0: any free port; a
    /// port in use is replaced by a free one).
    #[arg(long, default_value_t = 9380)]
    pub port: u16,
    /// Leave when the jobs are done, instead of keeping the board up until Ctrl-C.
    #[arg(long)]
    pub exit: bool,
}

/// FATE's breast CSVs (examples/data, from FATE's examples/data, Apache-2.0), built in so that the
/// demo runs from any directory with no files at hand.
const EMBEDDED: [(&str, &[u8]); 2] = [
    (
        "breast_hetero_guest",
        include_bytes!("../../../examples/data/breast_hetero_guest.csv"),
    ),
    (
        "breast_hetero_host",
        include_bytes!("../../../examples/data/breast_hetero_host.csv"),
    ),
];

/// Where FATE's example CSVs come from.
pub enum Datasets {
    /// A folder holding `<dataset>_hetero_{guest,host}.csv`.
    Dir(PathBuf),
    /// The breast CSVs built into the binary.
    Embedded,
}

impl Datasets {
    /// `dir` if given, else the built-in breast CSVs.
    pub fn or_embedded(dir: Option<PathBuf>) -> Self {
        dir.map(Datasets::Dir).unwrap_or(Datasets::Embedded)
    }

    /// `dir` if given, else the repository's examples/data: under the working directory, or
    /// beside the sources this binary was built from (so `cargo run` works from any directory).
    pub fn or_repository(dir: Option<PathBuf>) -> Result<Self> {
        if let Some(dir) = dir {
            return Ok(Datasets::Dir(dir));
        }
        let candidates = [
            PathBuf::from("examples/data"),
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/data"),
        ];
        candidates
            .into_iter()
            .find(|d| d.join("default_credit_hetero_guest.csv").is_file())
            .map(Datasets::Dir)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "FATE's example CSVs were not found in examples/data: pass --datasets DIR"
                )
            })
    }

    /// The CSV of `name` (e.g. `breast_hetero_guest`); built-in data is written under `scratch`.
    pub fn file(&self, name: &str, scratch: &Path) -> Result<PathBuf> {
        match self {
            Datasets::Dir(dir) => Ok(dir.join(format!("{name}.csv"))),
            Datasets::Embedded => {
                let (_, bytes) = EMBEDDED.iter().find(|(n, _)| *n == name).ok_or_else(|| {
                    anyhow::anyhow!("{name}.csv is not built in: pass --datasets DIR")
                })?;
                let path = scratch.join(format!("{name}.csv"));
                std::fs::write(&path, bytes)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                Ok(path)
            }
        }
    }
}

/// A FATE benchmark job: its DAG and FATE 2.2's figures (anchors.md "Jobs").
pub struct BenchJob {
    name: &'static str,
    dag: &'static str,
    fate_secs: f64,
    fate_auc: f64,
}

/// A dataset of FATE's benchmark: the guest and host CSVs and its jobs.
pub struct Dataset {
    pub name: &'static str,
    jobs: [BenchJob; 2],
}

pub const BREAST: Dataset = Dataset {
    name: "breast",
    jobs: [
        BenchJob {
            name: "PSI + CoordinatedLR + evaluation (breast)",
            dag: include_str!("../../../examples/pipeline/breast_psi_lr.yaml"),
            fate_secs: 266.0,
            fate_auc: 0.994411,
        },
        BenchJob {
            name: "PSI + HeteroSecureBoost + evaluation (breast, 10 trees)",
            dag: include_str!("../../../examples/pipeline/breast_psi_sbt.yaml"),
            fate_secs: 238.0,
            fate_auc: 0.999194,
        },
    ],
};

pub const DEFAULT_CREDIT: Dataset = Dataset {
    name: "default_credit",
    jobs: [
        BenchJob {
            name: "PSI + CoordinatedLR + evaluation (default_credit)",
            dag: include_str!("../../../examples/pipeline/default_credit_psi_lr.yaml"),
            fate_secs: 479.0,
            fate_auc: 0.712496,
        },
        BenchJob {
            name: "PSI + HeteroSecureBoost + evaluation (default_credit, 5 trees)",
            dag: include_str!("../../../examples/pipeline/default_credit_psi_sbt.yaml"),
            fate_secs: 764.0,
            fate_auc: 0.768586,
        },
    ],
};

pub(crate) async fn run_job(
    scheduler: &Scheduler,
    dag: fate_dag::DagSchema,
) -> Result<(String, Duration)> {
    let start = Instant::now();
    let s = scheduler.submit(dag, "fate demo").await?;
    let status = scheduler.wait(&s.job_id, Duration::from_secs(3600)).await?;
    if status != JobStatus::Success {
        let jobs = scheduler
            .store()
            .jobs(&fate_store::JobFilter {
                job_id: Some(s.job_id.clone()),
                ..Default::default()
            })
            .await?;
        let err = jobs
            .iter()
            .find_map(|j| j.error.clone())
            .unwrap_or_default();
        bail!("job {} {status}: {err}", s.job_id);
    }
    Ok((s.job_id, start.elapsed()))
}

pub(crate) async fn upload(
    scheduler: &Scheduler,
    file: &Path,
    name: &str,
    label: bool,
) -> Result<Duration> {
    let file = std::fs::canonicalize(file)
        .with_context(|| format!("dataset {} not found (see --datasets)", file.display()))?;
    let meta = if label {
        json!({"label_name": "y", "match_id_name": "id"})
    } else {
        json!({"match_id_name": "id"})
    };
    let dag: fate_dag::DagSchema = serde_json::from_value(json!({
        "dag": {
            "parties": [{"role": "local", "party_id": ["0"]}],
            "tasks": {"upload_0": {"component_ref": "upload", "parameters": {
                "file": file.to_string_lossy(), "head": true, "partitions": 4, "extend_sid": true,
                "meta": meta, "namespace": "experiment", "name": name}}}
        }
    }))?;
    Ok(run_job(scheduler, dag).await?.1)
}

async fn metric(scheduler: &Scheduler, job_id: &str, name: &str) -> Result<Option<f64>> {
    let metrics = scheduler
        .store()
        .metrics(job_id, Role::Guest, "9999", Some("evaluation_0"))
        .await?;
    Ok(metrics
        .iter()
        .find(|m| m.name == name)
        .and_then(|m| m.data[name].as_f64()))
}

pub fn run(args: DemoArgs) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let source = Datasets::or_embedded(args.datasets);
    runtime()?.block_on(async {
        let scheduler = build_scheduler(dir.path(), &engine_args(&source)).await?;
        let board = DemoBoard::start(&scheduler, dir.path(), args.port).await?;
        let toy = crate::toy::run_on(
            &scheduler,
            "9999",
            "10000",
            1000,
            4,
            Duration::from_secs(120),
        )
        .await?;
        println!(
            "success to calculate secure_sum, it is {:?}",
            toy.secure_sum
        );
        println!(
            "toy (guest 9999, host 10000): {:.3} s   FATE 2.2: 30.6 s   ({:.0}x faster)\n",
            toy.elapsed.as_secs_f64(),
            30.6 / toy.elapsed.as_secs_f64()
        );
        if !args.toy_only {
            let jobs =
                run_benchmarks_on(&scheduler, &dir.path().join("import"), &source, &[BREAST])
                    .await?;
            println!("\non the board:");
            for ran in jobs {
                println!(
                    "  {}board/#/job/{}/guest/9999   {}",
                    board.url, ran.job_id, ran.name
                );
            }
        }
        if !args.exit {
            println!(
                "\nthe board stays up at {} until you press Ctrl-C (`fate demo --exit` leaves at once)",
                board.url
            );
            crate::node::shutdown_signal().await;
        }
        board.stop().await;
        Ok(())
    })
}

/// The demo node's board and REST API on loopback, serving while the demo runs.
struct DemoBoard {
    url: String,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl DemoBoard {
    /// Listens on 127.0.0.1:`port` (a free port if that one is taken) and prints the board's
    /// URL and login. The password is FATE_BOARD_PASSWORD or a new random one, printed: the
    /// node lives only as long as the demo and only this machine reaches it.
    async fn start(scheduler: &Scheduler, data_dir: &Path, port: u16) -> Result<DemoBoard> {
        let listener = match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
            Ok(l) => l,
            Err(e) if port != 0 && e.kind() == std::io::ErrorKind::AddrInUse => {
                println!(
                    "port {port} is in use (a FATE node?): the demo's board takes a free port"
                );
                tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?
            }
            Err(e) => return Err(e).with_context(|| format!("cannot listen on 127.0.0.1:{port}")),
        };
        let local = listener.local_addr()?;
        let user = "admin";
        let password = std::env::var("FATE_BOARD_PASSWORD")
            .ok()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(fate_api::board::random_password);
        let board = fate_api::Board::new(fate_api::BoardConfig {
            user: user.into(),
            password: password.clone(),
            session_minutes: crate::auth::BOARD_SESSION_MINUTES,
        });
        let state = fate_api::ApiState {
            scheduler: scheduler.clone(),
            upload_dir: data_dir.join("uploads"),
            address: local.to_string(),
            // Off on loopback, as for `fate standalone` (--auth auto).
            auth: crate::auth::client_auth(
                crate::auth::AuthSwitch::Auto,
                &local,
                scheduler.store(),
                data_dir,
            )
            .await?,
            board: Some(std::sync::Arc::new(board)),
            serving: Default::default(),
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(
            axum::serve(listener, fate_api::router(state))
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .into_future(),
        );
        let url = crate::node::board_url(&local);
        println!(
            "board at {url} (log in as {user}, password {password}): the demo's jobs appear there as they run\n"
        );
        Ok(DemoBoard { url, stop, server })
    }

    /// Stops serving; a browser's open connection gets a few seconds to finish.
    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(5), self.server).await;
    }
}

fn engine_args(source: &Datasets) -> EngineArgs {
    EngineArgs {
        cores: None,
        partitions: 4,
        federation_timeout: 600,
        data_roots: match source {
            Datasets::Dir(d) => vec![d.clone()],
            Datasets::Embedded => Vec::new(),
        },
        max_upload_bytes: fate_runtime::files::DEFAULT_MAX_FILE_BYTES,
        computing_engine: Default::default(),
        spark_connect: None,
        spark_executor: None,
        storage: None,
        database: None,
        s3: Default::default(),
    }
}

/// Uploads each dataset's guest and host CSVs and runs its FATE benchmark jobs in this process,
/// printing time and AUC next to FATE 2.2's.
pub fn run_benchmarks(source: &Datasets, datasets: &[Dataset], node_args: &[String]) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let ran = runtime()?.block_on(async {
        let scheduler = build_scheduler(dir.path(), &engine_args(source)).await?;
        run_benchmarks_on(&scheduler, &dir.path().join("import"), source, datasets).await
    })?;
    through_api(source, datasets, &ran, node_args)
}

/// One benchmark job that ran: its name, job id, seconds and AUC.
struct Ran {
    name: &'static str,
    job_id: String,
    secs: f64,
    auc: Option<f64>,
}

/// [`run_benchmarks`] on a node's `scheduler`; built-in CSVs are written to `import`, one of
/// the node's data roots. Returns each job that ran.
async fn run_benchmarks_on(
    scheduler: &Scheduler,
    import: &Path,
    source: &Datasets,
    datasets: &[Dataset],
) -> Result<Vec<Ran>> {
    let mut ran = Vec::new();
    println!(
        "{:<64} {:>9} {:>9} {:>8} {:>10} {:>10} {:>8}",
        "job", "ours (s)", "FATE (s)", "speedup", "AUC", "FATE AUC", "KS"
    );
    for ds in datasets {
        let (g, h) = (
            format!("{}_hetero_guest", ds.name),
            format!("{}_hetero_host", ds.name),
        );
        let up = upload(scheduler, &source.file(&g, import)?, &g, true).await?
            + upload(scheduler, &source.file(&h, import)?, &h, false).await?;
        println!(
            "{:<64} {:>9.2} {:>9} {:>7.0}x",
            format!("upload {} guest + host", ds.name),
            up.as_secs_f64(),
            "30",
            30.0 / up.as_secs_f64()
        );
        for job in &ds.jobs {
            let dag = fate_dag::parse_dag(job.dag)?;
            let (job_id, elapsed) = run_job(scheduler, dag).await.with_context(|| job.name)?;
            let auc = metric(scheduler, &job_id, "auc").await?;
            let ks = metric(scheduler, &job_id, "ks").await?;
            let f = |v: Option<f64>| v.map(|x| format!("{x:.6}")).unwrap_or_else(|| "-".into());
            println!(
                "{:<64} {:>9.2} {:>9.0} {:>7.0}x {:>10} {:>10.6} {:>8}",
                job.name,
                elapsed.as_secs_f64(),
                job.fate_secs,
                job.fate_secs / elapsed.as_secs_f64(),
                f(auc),
                job.fate_auc,
                f(ks)
            );
            ran.push(Ran {
                name: job.name,
                job_id,
                secs: elapsed.as_secs_f64(),
                auc,
            });
        }
    }
    Ok(ran)
}

/// `fate bench vfl`'s second table (issue 19): the same DAGs as a user runs them, through a
/// `fate standalone` process of this binary and the CLI's own client (`fate job submit --wait`'s
/// submit and wait loop), each job timed from its submit to the client seeing it end, beside
/// the in-process time of the first table, so the two cannot drift apart unnoticed. The node's
/// own `elapsed` (its first task's start to its end) is printed too: the gap between the two
/// is submit, scheduling and the client's polling.
fn through_api(
    source: &Datasets,
    datasets: &[Dataset],
    in_process: &[Ran],
    node_args: &[String],
) -> Result<()> {
    use crate::client::Client;
    let dir = tempfile::tempdir()?;
    let import = dir.path().join("import");
    std::fs::create_dir_all(&import)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut cmd = std::process::Command::new(std::env::current_exe()?);
    cmd.args([
        "standalone",
        "--host",
        "127.0.0.1",
        "--port",
        &port.to_string(),
    ])
    .args(node_args)
    .arg("--data-dir")
    .arg(dir.path().join("fate-data"))
    .arg("--data-root")
    .arg(&import)
    .stdin(std::process::Stdio::null())
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null());
    if let Datasets::Dir(d) = source {
        cmd.arg("--data-root").arg(std::fs::canonicalize(d)?);
    }
    struct Node(std::process::Child);
    impl Drop for Node {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut node = Node(cmd.spawn().context("cannot start `fate standalone`")?);
    let client = Client::new(&format!("http://127.0.0.1:{port}"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while client.get("/job/list/query", &[("limit", "1")]).is_err() {
        if let Some(status) = node.0.try_wait()? {
            bail!("`fate standalone` on port {port} exited ({status}) before answering");
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the node did not answer within 60 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    println!(
        "\nthrough a node's REST API (`fate standalone` on 127.0.0.1:{port}, the CLI's submit and wait):"
    );
    println!(
        "{:<64} {:>9} {:>9} {:>8} {:>9} {:>10}",
        "job", "API (s)", "node (s)", "in-proc", "API/in", "AUC"
    );
    let timeout = Duration::from_secs(3600);
    for ds in datasets {
        for (side, label) in [("guest", true), ("host", false)] {
            let name = format!("{}_hetero_{side}", ds.name);
            let file = std::fs::canonicalize(source.file(&name, &import)?)?;
            let meta = if label {
                json!({"label_name": "y", "match_id_name": "id"})
            } else {
                json!({"match_id_name": "id"})
            };
            let resp = client.post(
                "/data/component/upload",
                &json!({"file": file.to_string_lossy(), "head": true, "partitions": 4,
                        "extend_sid": true, "meta": meta, "namespace": "experiment",
                        "name": name}),
            )?;
            let job_id = resp["job_id"].as_str().unwrap_or_default().to_string();
            let job = client.wait_job(&job_id, timeout, true)?;
            anyhow::ensure!(job["status"] == "success", "upload of {name}: {job}");
        }
        for job in &ds.jobs {
            let dag: serde_json::Value = serde_yaml_ng::from_str(job.dag)?;
            let started = Instant::now();
            let resp = client.post_text("/job/submit", &json!({"dag_schema": dag}).to_string())?;
            let job_id = resp["job_id"]
                .as_str()
                .ok_or_else(|| anyhow::anyhow!("{}: no job id in {resp}", job.name))?
                .to_string();
            let end = client.wait_job(&job_id, timeout, true)?;
            let api_secs = started.elapsed().as_secs_f64();
            anyhow::ensure!(end["status"] == "success", "{}: {end}", job.name);
            let node_secs = end["elapsed"].as_f64().map(|ms| ms / 1e3);
            let metrics = client.get(
                "/output/metric/query",
                &[
                    ("job_id", &job_id),
                    ("role", "guest"),
                    ("party_id", "9999"),
                    ("task_name", "evaluation_0"),
                ],
            )?;
            let auc = metrics["data"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|m| m["name"] == "auc")
                .and_then(|m| m["data"]["auc"].as_f64());
            let inproc = in_process.iter().find(|r| r.name == job.name);
            let f = |v: Option<f64>, p: usize| {
                v.map(|x| format!("{x:.p$}")).unwrap_or_else(|| "-".into())
            };
            println!(
                "{:<64} {:>9.2} {:>9} {:>8} {:>9} {:>10}",
                job.name,
                api_secs,
                f(node_secs, 2),
                f(inproc.map(|r| r.secs), 2),
                f(inproc.map(|r| api_secs / r.secs), 2),
                f(auc, 6)
            );
            if let (Some(a), Some(b)) = (auc, inproc.and_then(|r| r.auc)) {
                anyhow::ensure!(
                    (a - b).abs() < 1e-9,
                    "{}: AUC through the API {a} differs from in-process {b}",
                    job.name
                );
            }
        }
    }
    Ok(())
}

/// FATE 2.2's breast_homo HomoLR job on this machine kind (anchors.md "Jobs"): submit to
/// success, and the AUC of its runs (unseeded: 0.9666-0.9927, median 0.9756).
const FATE_HFL_SECS: f64 = 63.0;
const FATE_HFL_AUC: f64 = 0.9756;

/// `fate bench hfl`: uploads breast_homo's guest and host CSVs and runs
/// examples/pipeline/breast_homo_lr.yaml (reader, homo_lr with FATE's benchmark parameters and
/// secure aggregation, evaluation at each client) in this process, beside FATE 2.2's time and
/// AUC and beside a plaintext FedAvg of the same rows (no federation, no masks) timed in the
/// same run.
pub fn run_hfl_benchmark(datasets: Option<PathBuf>, json_out: bool) -> Result<()> {
    let dir = match datasets {
        Some(d) => d,
        None => [
            PathBuf::from("examples/data"),
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/data"),
        ]
        .into_iter()
        .find(|d| d.join("breast_homo_guest.csv").is_file())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "breast_homo_guest.csv was not found in examples/data: pass --datasets DIR"
            )
        })?,
    };
    let source = Datasets::Dir(dir.clone());
    let scratch = tempfile::tempdir()?;
    let (job_secs, aucs) = runtime()?.block_on(async {
        let scheduler = build_scheduler(scratch.path(), &engine_args(&source)).await?;
        for side in ["guest", "host"] {
            let name = format!("breast_homo_{side}");
            upload(&scheduler, &dir.join(format!("{name}.csv")), &name, true).await?;
        }
        let dag = fate_dag::parse_dag(include_str!(
            "../../../examples/pipeline/breast_homo_lr.yaml"
        ))?;
        let (job_id, elapsed) = run_job(&scheduler, dag).await.context("breast_homo_lr")?;
        let mut aucs = Vec::new();
        for (role, id) in [(Role::Guest, "9999"), (Role::Host, "10000")] {
            let m = scheduler
                .store()
                .metrics(&job_id, role, id, Some("evaluation_0"))
                .await?;
            let auc = m
                .iter()
                .find(|m| m.name == "auc")
                .and_then(|m| m.data["auc"].as_f64());
            aucs.push((format!("{role} {id}"), auc));
        }
        anyhow::Ok((elapsed.as_secs_f64(), aucs))
    })?;
    let started = Instant::now();
    let plain_auc = plaintext_fedavg_auc(&dir)?;
    let plain_secs = started.elapsed().as_secs_f64();
    if json_out {
        println!(
            "{}",
            json!({"job": "breast_homo_lr", "ours_secs": job_secs, "fate_secs": FATE_HFL_SECS,
                   "speedup": FATE_HFL_SECS / job_secs,
                   "auc": aucs.iter().map(|(p, a)| json!({"party": p, "auc": a})).collect::<Vec<_>>(),
                   "fate_auc": FATE_HFL_AUC, "fate_auc_range": [0.9666, 0.9927],
                   "plaintext_secs": plain_secs, "plaintext_auc": plain_auc})
        );
        return Ok(());
    }
    println!(
        "{:<52} {:>9} {:>9} {:>8} {:>22} {:>10}",
        "job", "ours (s)", "FATE (s)", "speedup", "AUC (guest, host)", "FATE AUC"
    );
    let f = |v: Option<f64>| v.map(|x| format!("{x:.6}")).unwrap_or_else(|| "-".into());
    println!(
        "{:<52} {:>9.2} {:>9.0} {:>7.0}x {:>22} {:>10}",
        "reader + HomoLR (secure aggregation) + evaluation",
        job_secs,
        FATE_HFL_SECS,
        FATE_HFL_SECS / job_secs,
        format!("{}, {}", f(aucs[0].1), f(aucs[1].1)),
        "0.9756",
    );
    println!(
        "{:<52} {:>9.3} {:>9} {:>8} {:>22}",
        "plaintext FedAvg, same rows (in process, no federation)",
        plain_secs,
        "-",
        "-",
        format!("{plain_auc:.6} (both)"),
    );
    println!("FATE's AUC over its runs: 0.9666-0.9927 (unseeded init and shuffling)");
    Ok(())
}

/// The baseline: FedAvg of guest and host in plain floats with the DAG's parameters (sgd, lr
/// 0.01, l2 weight_decay 1.0, batch 16, 10 epochs) from zero weights (the job's `random` init
/// is unseeded, as FATE's), AUC over both clients' rows.
fn plaintext_fedavg_auc(dir: &Path) -> Result<f64> {
    let meta = fate_components::upload::UploadMeta {
        match_id_name: Some("id".into()),
        label_name: Some("y".into()),
        ..Default::default()
    };
    let mut clients = Vec::new();
    for side in ["guest", "host"] {
        let path = dir.join(format!("breast_homo_{side}.csv"));
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let (_, mut rows) = fate_components::upload::parse_csv(&text, true, &meta, true)
            .map_err(anyhow::Error::msg)?;
        // The component's order: sample ids as strings.
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        let x: Vec<Vec<f64>> = rows.iter().map(|(_, r)| r.features.clone()).collect();
        let y: Vec<f64> = rows.iter().map(|(_, r)| r.label.unwrap_or(0.0)).collect();
        clients.push((x, y));
    }
    let nf = clients[0].0.first().map_or(0, Vec::len);
    let total: f64 = clients.iter().map(|c| c.1.len() as f64).sum();
    let (lr, wd, batch, epochs) = (0.01, 1.0, 16, 10);
    let mut global = vec![0.0; nf + 1];
    for _ in 0..epochs {
        let mut next = vec![0.0; nf + 1];
        for (x, y) in &clients {
            let mut w = global.clone();
            for start in (0..y.len()).step_by(batch) {
                let end = (start + batch).min(y.len());
                let mut g = vec![0.0; nf + 1];
                for i in start..end {
                    let z: f64 = w[..nf].iter().zip(&x[i]).map(|(a, b)| a * b).sum::<f64>() + w[nf];
                    let r = 1.0 / (1.0 + (-z).exp()) - y[i];
                    for (gj, xj) in g[..nf].iter_mut().zip(&x[i]) {
                        *gj += r * xj;
                    }
                    g[nf] += r;
                }
                for (wj, gj) in w.iter_mut().zip(&g) {
                    *wj -= lr * (gj / (end - start) as f64 + wd * *wj);
                }
            }
            for (n, wj) in next.iter_mut().zip(&w) {
                *n += y.len() as f64 / total * wj;
            }
        }
        global = next;
    }
    let (mut labels, mut scores) = (Vec::new(), Vec::new());
    for (x, y) in &clients {
        for (xi, yi) in x.iter().zip(y) {
            let z: f64 = global[..nf].iter().zip(xi).map(|(a, b)| a * b).sum::<f64>() + global[nf];
            scores.push(1.0 / (1.0 + (-z).exp()));
            labels.push(*yi);
        }
    }
    let data = fate_components::evaluation::metrics::BinaryData::new(&labels, &scores)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    fate_components::evaluation::metrics::auc(&data).map_err(|e| anyhow::anyhow!("{e}"))
}
