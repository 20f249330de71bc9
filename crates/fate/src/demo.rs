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
            for (name, job_id) in jobs {
                println!("  {}board/#/job/{job_id}/guest/9999   {name}", board.url);
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
pub fn run_benchmarks(source: &Datasets, datasets: &[Dataset]) -> Result<()> {
    let dir = tempfile::tempdir()?;
    runtime()?.block_on(async {
        let scheduler = build_scheduler(dir.path(), &engine_args(source)).await?;
        run_benchmarks_on(&scheduler, &dir.path().join("import"), source, datasets).await?;
        Ok(())
    })
}

/// [`run_benchmarks`] on a node's `scheduler`; built-in CSVs are written to `import`, one of
/// the node's data roots. Returns each job's name and id.
async fn run_benchmarks_on(
    scheduler: &Scheduler,
    import: &Path,
    source: &Datasets,
    datasets: &[Dataset],
) -> Result<Vec<(&'static str, String)>> {
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
            ran.push((job.name, job_id));
        }
    }
    Ok(ran)
}
