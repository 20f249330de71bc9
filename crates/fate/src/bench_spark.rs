//! `fate bench spark`: FATE on Spark against the local engine, in the same run and process:
//! PSI of N x N ids and one CoordinatedLR epoch (batches of 100 000) on the N intersected rows (guest: label and 5
//! features, host: 5 features), then the same job on 100 rows, whose task times are the
//! per-task overhead of each engine. Beside them, FATE's published PSI figure (anchors.md:
//! FATE 2.0, 2 x 16 cores, about 33 k ids/s). A benchmark: it prints, it does not assert.

use crate::node::{ComputingEngine, EngineArgs, build_scheduler, runtime};
use anyhow::{Context, Result};
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};

/// FATE 2.0's PSI throughput on 2 x 16 cores (anchors.md "Published FATE figures").
const FATE_PSI_IDS_PER_SEC: f64 = 33_000.0;
const SMALL: usize = 100;

/// Writes the guest and host CSVs of `rows` ids (the same ids at both: PSI keeps them all).
fn write_csvs(dir: &Path, rows: usize) -> Result<(PathBuf, PathBuf)> {
    let (g, h) = (
        dir.join(format!("bench_guest_{rows}.csv")),
        dir.join(format!("bench_host_{rows}.csv")),
    );
    let mut guest = std::io::BufWriter::new(std::fs::File::create(&g)?);
    let mut host = std::io::BufWriter::new(std::fs::File::create(&h)?);
    writeln!(guest, "id,y,x0,x1,x2,x3,x4")?;
    writeln!(host, "id,x5,x6,x7,x8,x9")?;
    for i in 0..rows as u64 {
        let r = |j: u64| (fate_computing::mix64(i * 16 + j) >> 11) as f64 / (1u64 << 53) as f64;
        let xs: Vec<f64> = (0..10).map(|j| r(j) * 2.0 - 1.0).collect();
        let y = u8::from(xs[0] + xs[5] - xs[2] > 0.0);
        let f = |s: &[f64]| {
            s.iter()
                .map(|x| format!("{x:.6}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        writeln!(guest, "id{i},{y},{}", f(&xs[..5]))?;
        writeln!(host, "id{i},{}", f(&xs[5..]))?;
    }
    guest.flush()?;
    host.flush()?;
    Ok((g, h))
}

fn dag(guest: &str, host: &str) -> Result<fate_dag::DagSchema> {
    let reader = |name: &str| json!({"tasks": {"reader_0": {"parameters": {"name": name, "namespace": "experiment"}}}});
    let both =
        json!([{"role": "guest", "party_id": ["9999"]}, {"role": "host", "party_id": ["10000"]}]);
    let mut guest_tasks = reader(guest);
    guest_tasks["parties"] = json!([{"role": "guest", "party_id": ["9999"]}]);
    let mut host_tasks = reader(host);
    host_tasks["parties"] = json!([{"role": "host", "party_id": ["10000"]}]);
    Ok(serde_json::from_value(json!({
        "dag": {
            "parties": [
                {"role": "guest", "party_id": ["9999"]},
                {"role": "host", "party_id": ["10000"]},
                {"role": "arbiter", "party_id": ["10000"]}
            ],
            "party_tasks": {"guest_9999": guest_tasks, "host_10000": host_tasks},
            "stage": "train",
            "tasks": {
                "reader_0": {"component_ref": "reader", "parameters": {}},
                "psi_0": {
                    "component_ref": "psi", "dependent_tasks": ["reader_0"], "parties": both,
                    "inputs": {"data": {"input_data": {"task_output_artifact": {
                        "output_artifact_key": "output_data", "producer_task": "reader_0",
                        "parties": both}}}},
                    "parameters": {}
                },
                "lr_0": {
                    "component_ref": "coordinated_lr", "dependent_tasks": ["psi_0"],
                    "inputs": {"data": {"train_data": {"task_output_artifact": {
                        "output_artifact_key": "output_data", "producer_task": "psi_0",
                        "parties": both}}}},
                    "parameters": {"epochs": 1, "batch_size": 100000, "early_stop": "diff",
                        "optimizer": {"method": "sgd", "penalty": "l2", "alpha": 0.01,
                            "optimizer_params": {"lr": 0.15}}}
                }
            }
        },
        "schema_version": "2.2.0"
    }))?)
}

/// Seconds of each guest task of `job_id`.
async fn task_secs(
    scheduler: &fate_scheduler::Scheduler,
    job_id: &str,
) -> Result<std::collections::BTreeMap<String, f64>> {
    let tasks = scheduler
        .store()
        .tasks(&fate_store::TaskFilter {
            job_id: Some(job_id.to_string()),
            role: Some(fate_types::Role::Guest),
            ..Default::default()
        })
        .await?;
    Ok(tasks
        .into_iter()
        .filter_map(|t| t.elapsed.map(|ms| (t.task_name, ms as f64 / 1000.0)))
        .collect())
}

struct Run {
    engine: &'static str,
    rows: usize,
    upload: f64,
    psi: f64,
    lr: f64,
    job: f64,
}

pub fn run(
    spark_connect: String,
    spark_executor: Option<PathBuf>,
    rows: usize,
    json_out: bool,
) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let csvs = dir.path().join("csv");
    std::fs::create_dir_all(&csvs)?;
    let sizes = [SMALL, rows.max(SMALL)];
    let mut files = Vec::new();
    for n in sizes {
        files.push((n, write_csvs(&csvs, n)?));
    }
    let mut runs: Vec<Run> = Vec::new();
    runtime()?.block_on(async {
        for (name, engine) in [
            ("local", ComputingEngine::Local),
            ("spark", ComputingEngine::Spark),
        ] {
            let args = EngineArgs {
                cores: None,
                partitions: 4,
                federation_timeout: 3600,
                data_roots: vec![csvs.clone()],
                max_upload_bytes: fate_runtime::files::DEFAULT_MAX_FILE_BYTES,
                computing_engine: engine,
                spark_connect: Some(spark_connect.clone()),
                spark_executor: spark_executor.clone(),
                storage: None,
                database: None,
                s3: Default::default(),
            };
            let scheduler = build_scheduler(&dir.path().join(name), &args)
                .await
                .with_context(|| format!("starting the {name} engine"))?;
            for (n, (g, h)) in &files {
                let (gn, hn) = (format!("bench_guest_{n}"), format!("bench_host_{n}"));
                let upload = crate::demo::upload(&scheduler, g, &gn, true).await?
                    + crate::demo::upload(&scheduler, h, &hn, false).await?;
                let (job_id, took) = crate::demo::run_job(&scheduler, dag(&gn, &hn)?)
                    .await
                    .with_context(|| format!("PSI + LR on {n} rows, {name} engine"))?;
                let secs = task_secs(&scheduler, &job_id).await?;
                let run = Run {
                    engine: name,
                    rows: *n,
                    upload: upload.as_secs_f64(),
                    psi: secs.get("psi_0").copied().unwrap_or(f64::NAN),
                    lr: secs.get("lr_0").copied().unwrap_or(f64::NAN),
                    job: took.as_secs_f64(),
                };
                if !json_out {
                    eprintln!("{name} engine, {n} rows: job {:.1} s", run.job);
                }
                runs.push(run);
            }
        }
        Ok::<_, anyhow::Error>(())
    })?;
    let find = |engine: &str, rows: usize| {
        runs.iter()
            .find(|r| r.engine == engine && r.rows == rows)
            .expect("every run is recorded")
    };
    let big = sizes[1];
    let (local, spark) = (find("local", big), find("spark", big));
    let (local_small, spark_small) = (find("local", SMALL), find("spark", SMALL));
    let psi_rate = |r: &Run| r.rows as f64 / r.psi;
    if json_out {
        for r in &runs {
            println!(
                "{}",
                json!({"bench": "spark", "engine": r.engine, "rows": r.rows, "upload_secs": r.upload,
                    "psi_secs": r.psi, "psi_ids_per_sec": psi_rate(r), "lr_epoch_secs": r.lr, "job_secs": r.job})
            );
        }
        println!(
            "{}",
            json!({"bench": "spark_summary", "rows": big,
                "psi_throughput_spark_over_local": psi_rate(spark) / psi_rate(local),
                "lr_epoch_spark_over_local": local.lr / spark.lr,
                "per_task_overhead_secs": {"local": local_small.psi, "spark": spark_small.psi},
                "fate_psi_ids_per_sec": FATE_PSI_IDS_PER_SEC})
        );
        return Ok(());
    }
    println!(
        "{:<7} {:>9} {:>11} {:>9} {:>13} {:>13} {:>9}",
        "engine", "rows", "upload (s)", "PSI (s)", "PSI ids/s", "LR epoch (s)", "job (s)"
    );
    for r in &runs {
        println!(
            "{:<7} {:>9} {:>11.2} {:>9.2} {:>13.0} {:>13.2} {:>9.2}",
            r.engine,
            r.rows,
            r.upload,
            r.psi,
            psi_rate(r),
            r.lr,
            r.job
        );
    }
    println!(
        "PSI of {big} x {big} ids: spark {:.0} ids/s, local {:.0} ids/s: spark/local throughput {:.2} (goal >= 0.5); FATE 2.0 published {:.0} ids/s on 2 x 16 cores",
        psi_rate(spark),
        psi_rate(local),
        psi_rate(spark) / psi_rate(local),
        FATE_PSI_IDS_PER_SEC
    );
    println!(
        "one CoordinatedLR epoch on {big} rows: spark {:.2} s, local {:.2} s (spark/local throughput {:.2})",
        spark.lr,
        local.lr,
        local.lr / spark.lr
    );
    println!(
        "per-task overhead ({SMALL}-row PSI task): spark {:.2} s, local {:.2} s",
        spark_small.psi, local_small.psi
    );
    Ok(())
}
