//! `fate demo`: FATE's first hour in one command, in one process. The toy (secure sum), then
//! FATE's benchmark jobs on the breast dataset: upload guest and host data, PSI + CoordinatedLR +
//! evaluation and PSI + HeteroSecureBoost + evaluation with FATE's benchmark_quality parameters,
//! each printed with its time and AUC next to FATE 2.2's on this kind of machine (anchors.md).

use crate::node::{EngineArgs, build_scheduler, runtime};
use anyhow::{Context, Result, bail};
use clap::Args;
use fate_scheduler::Scheduler;
use fate_types::{JobStatus, Role};
use serde_json::json;
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
    let toy = crate::toy::run_in_process("9999", "10000", 1000, 4, Duration::from_secs(120))?;
    println!(
        "success to calculate secure_sum, it is {:?}",
        toy.secure_sum
    );
    println!(
        "toy (guest 9999, host 10000): {:.3} s   FATE 2.2: 30.6 s   ({:.0}x faster)\n",
        toy.elapsed.as_secs_f64(),
        30.6 / toy.elapsed.as_secs_f64()
    );
    if args.toy_only {
        return Ok(());
    }
    run_benchmarks(&Datasets::or_embedded(args.datasets), &[BREAST])
}

/// Uploads each dataset's guest and host CSVs and runs its FATE benchmark jobs in this process,
/// printing time and AUC next to FATE 2.2's.
pub fn run_benchmarks(source: &Datasets, datasets: &[Dataset]) -> Result<()> {
    let dir = tempfile::tempdir()?;
    runtime()?.block_on(async {
        let engine = EngineArgs {
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
        };
        let scheduler = build_scheduler(dir.path(), &engine).await?;
        // Built-in CSVs go to the node's own import folder, one of its data roots.
        let import = dir.path().join("import");
        println!(
            "{:<64} {:>9} {:>9} {:>8} {:>10} {:>10} {:>8}",
            "job", "ours (s)", "FATE (s)", "speedup", "AUC", "FATE AUC", "KS"
        );
        for ds in datasets {
            let (g, h) = (
                format!("{}_hetero_guest", ds.name),
                format!("{}_hetero_host", ds.name),
            );
            let up = upload(&scheduler, &source.file(&g, &import)?, &g, true).await?
                + upload(&scheduler, &source.file(&h, &import)?, &h, false).await?;
            println!(
                "{:<64} {:>9.2} {:>9} {:>7.0}x",
                format!("upload {} guest + host", ds.name),
                up.as_secs_f64(),
                "30",
                30.0 / up.as_secs_f64()
            );
            for job in &ds.jobs {
                let dag = fate_dag::parse_dag(job.dag)?;
                let (job_id, elapsed) = run_job(&scheduler, dag).await.with_context(|| job.name)?;
                let auc = metric(&scheduler, &job_id, "auc").await?;
                let ks = metric(&scheduler, &job_id, "ks").await?;
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
            }
        }
        Ok(())
    })
}
