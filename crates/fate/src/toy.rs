//! `fate toy`: FATE's first-hour check that two parties can run a job together.

use crate::client::Client;
use crate::node::{EngineArgs, build_scheduler, runtime};
use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

#[derive(Args)]
pub struct ToyArgs {
    /// Guest party id (FATE's `--guest-party-id`, `-gid`; `--guest` also works).
    #[arg(
        short = 'g',
        long = "guest-party-id",
        aliases = ["gid", "guest"],
        default_value = "9999"
    )]
    pub guest: String,
    /// Host party id (FATE's `--host-party-id`, `-hid`; `--host` also works); several hosts
    /// comma-separated (`--host-party-id 10000,8888`, with `--api`). Named after FATE's
    /// `flow test toy`, so it is not mistaken for `fate standalone --host`, a listen address.
    #[arg(long = "host-party-id", aliases = ["hid", "host"], default_value = "10000")]
    pub host: String,
    /// Submit FATE 2.x `toy_example` to the node at this URL (or `FATE_API`, as for every
    /// client command) instead of running in this process.
    #[arg(long, env = "FATE_API")]
    pub api: Option<String>,
    /// Rows per party (1000 for the 1.x toy, 1024 for the 2.x toy, as FATE's defaults).
    #[arg(long)]
    pub data_num: Option<u64>,
    /// Table partitions.
    #[arg(long, default_value_t = 4)]
    pub partition: u32,
    /// Seconds to wait for the job.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// Print JSON instead of the human-readable result.
    #[arg(long)]
    pub json: bool,
}

/// FATE 1.x DSL v2 and runtime conf of the toy (`secure_add_example`, fate-spec §4.1).
pub fn toy_dsl_conf(guest: &str, host: &str, data_num: u64, partition: u32) -> (Value, Value) {
    let dsl = json!({"components": {"secure_add_example_0": {"module": "SecureAddExample"}}});
    let conf = json!({
        "dsl_version": 2,
        "initiator": {"role": "guest", "party_id": guest},
        "role": {"guest": [guest], "host": [host]},
        "job_parameters": {"common": {"job_type": "train"}},
        "component_parameters": {
            "common": {"secure_add_example_0": {"data_num": data_num, "partition": partition}},
            "role": {
                "guest": {"0": {"secure_add_example_0": {"seed": 123}}},
                "host": {"0": {"secure_add_example_0": {"seed": 321}}}
            }
        }
    });
    (dsl, conf)
}

/// FATE 2.x toy DAG as `flow test toy` submits it.
pub fn toy_dag(guest: &str, host: &str, data_num: u64, partition: u32) -> Value {
    json!({
        "dag_schema": {
            "dag": {
                "parties": [
                    {"role": "guest", "party_id": [guest]},
                    {"role": "host", "party_id": host.split(',').map(str::trim).collect::<Vec<_>>()}
                ],
                "conf": {"initiator_party_id": guest, "scheduler_party_id": guest},
                "tasks": {
                    "toy_example_0": {
                        "component_ref": "toy_example",
                        "parameters": {"data_num": data_num, "partition": partition}
                    }
                }
            },
            "schema_version": "2.2.0",
            "kind": "fate"
        }
    })
}

/// Result of an in-process toy run.
pub struct ToyOutcome {
    pub job_id: String,
    pub secure_sum: f64,
    pub elapsed: Duration,
}

/// Runs the 1.x toy between `guest` and `host` in this process, in a temporary data dir.
pub fn run_in_process(
    guest: &str,
    host: &str,
    data_num: u64,
    partition: u32,
    timeout: Duration,
) -> Result<ToyOutcome> {
    let dir = tempfile::tempdir().context("cannot create a temporary data dir")?;
    runtime()?.block_on(async {
        let engine = EngineArgs {
            cores: None,
            partitions: partition as usize,
            federation_timeout: timeout.as_secs(),
            data_roots: Vec::new(),
            max_upload_bytes: fate_runtime::files::DEFAULT_MAX_FILE_BYTES,
            computing_engine: Default::default(),
            spark_connect: None,
            spark_executor: None,
            storage: None,
            database: None,
            s3: Default::default(),
        };
        let scheduler = build_scheduler(dir.path(), &engine).await?;
        run_on(&scheduler, guest, host, data_num, partition, timeout).await
    })
}

/// Runs the 1.x toy between `guest` and `host` on `scheduler` (a standalone node hosting both).
pub async fn run_on(
    scheduler: &fate_scheduler::Scheduler,
    guest: &str,
    host: &str,
    data_num: u64,
    partition: u32,
    timeout: Duration,
) -> Result<ToyOutcome> {
    let start = Instant::now();
    let (dsl, conf) = toy_dsl_conf(guest, host, data_num, partition);
    let dag = fate_dag::dsl_to_dag(&dsl, &conf, &scheduler.registry().specs())?;
    let submitted = scheduler.submit(dag, "fate toy").await?;
    let status = scheduler.wait(&submitted.job_id, timeout).await?;
    let elapsed = start.elapsed();
    let guest_role = fate_types::Role::Guest;
    if status != fate_types::JobStatus::Success {
        let jobs = scheduler
            .store()
            .jobs(&fate_store::JobFilter {
                job_id: Some(submitted.job_id.clone()),
                ..Default::default()
            })
            .await?;
        let err = jobs
            .iter()
            .find_map(|j| j.error.clone())
            .unwrap_or_default();
        bail!("toy job {} {status}: {err}", submitted.job_id);
    }
    let metrics = scheduler
        .store()
        .metrics(&submitted.job_id, guest_role, guest, None)
        .await?;
    let secure_sum = metrics
        .iter()
        .find(|m| m.name == "secure_sum")
        .and_then(|m| m.data["secure_sum"].as_f64())
        .context("the guest recorded no secure_sum")?;
    Ok(ToyOutcome {
        job_id: submitted.job_id,
        secure_sum,
        elapsed,
    })
}

pub fn run(args: ToyArgs) -> Result<()> {
    let timeout = Duration::from_secs(args.timeout);
    match &args.api {
        None => {
            let data_num = args.data_num.unwrap_or(1000);
            let out = run_in_process(&args.guest, &args.host, data_num, args.partition, timeout)?;
            if args.json {
                println!(
                    "{}",
                    json!({"job_id": out.job_id, "secure_sum": out.secure_sum, "elapsed_ms": out.elapsed.as_secs_f64() * 1000.0, "status": "success"})
                );
            } else {
                println!(
                    "success to calculate secure_sum, it is {:?}",
                    out.secure_sum
                );
                println!(
                    "toy job {} between guest {} and host {}: success in {:.3} s",
                    out.job_id,
                    args.guest,
                    args.host,
                    out.elapsed.as_secs_f64()
                );
            }
            Ok(())
        }
        Some(api) => {
            let data_num = args.data_num.unwrap_or(1024);
            let client = Client::new(api);
            let start = Instant::now();
            let resp = client.post(
                "/job/submit",
                &toy_dag(&args.guest, &args.host, data_num, args.partition),
            )?;
            let job_id = resp["job_id"].as_str().unwrap_or_default().to_string();
            let job = client.wait_job(&job_id, timeout, args.json)?;
            let status = job["status"].as_str().unwrap_or("unknown").to_string();
            if args.json {
                println!(
                    "{}",
                    json!({"job_id": job_id, "status": status, "elapsed_ms": start.elapsed().as_secs_f64() * 1000.0})
                );
            } else {
                println!(
                    "toy job {job_id} between guest {} and host {}: {status} in {:.3} s",
                    args.guest,
                    args.host,
                    start.elapsed().as_secs_f64()
                );
            }
            if status != "success" {
                let error = job["error"].as_str().unwrap_or("");
                bail!("toy job {job_id} {status}: {error} (see `fate job logs -j {job_id}`)");
            }
            Ok(())
        }
    }
}
