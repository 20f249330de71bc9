//! `fate bench`: benchmarks that print our figure next to an in-run baseline and FATE's anchor
//! (FATE 2.2 measured on this kind of machine, shared/reference/anchors.md). Benchmarks are not
//! tests: they print, they do not assert.

use anyhow::Result;
use clap::Subcommand;
use serde_json::json;
use std::time::{Duration, Instant};

/// FATE 2.2 standalone anchors on this machine kind (anchors.md "Jobs").
const FATE_TOY_SECS: f64 = 30.6;
const FATE_UPLOAD_SECS: f64 = 15.0;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Paillier, ECDH PSI and secure-aggregation primitives, one core, against raw GMP.
    Crypto {
        /// Paillier key size (1024, 2048 or 3072).
        #[arg(long, default_value_t = 1024)]
        key_bits: u32,
        /// Seconds to measure each operation.
        #[arg(long, default_value_t = 1.0)]
        seconds: f64,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// FATE's vertical benchmark jobs (PSI + CoordinatedLR, PSI + SecureBoost, with evaluation)
    /// on breast and default_credit, end to end in one process, beside FATE 2.2's times and AUCs;
    /// then the same DAGs as a user runs them, through a `fate standalone` node's REST API with
    /// the CLI's submit and wait, beside the in-process time (AUCs must be equal).
    Vfl {
        /// Folder with FATE's example CSVs. Default: the repository's examples/data.
        #[arg(long)]
        datasets: Option<std::path::PathBuf>,
        /// Only the breast jobs.
        #[arg(long)]
        breast_only: bool,
        /// An argument for the `fate standalone` node of the REST API table (repeat it:
        /// `--node-arg=--partitions --node-arg=4`), to compare a node's settings.
        #[arg(long = "node-arg", value_name = "ARG", allow_hyphen_values = true)]
        node_args: Vec<String>,
    },
    /// FATE's horizontal benchmark job (reader + HomoLR with secure aggregation + evaluation at
    /// each client, breast_homo, FATE's benchmark parameters) end to end in one process, beside
    /// FATE 2.2's 63 s and AUC and a plaintext FedAvg of the same rows timed in the same run.
    Hfl {
        /// Folder with breast_homo_guest.csv and breast_homo_host.csv. Default: the
        /// repository's examples/data.
        #[arg(long)]
        datasets: Option<std::path::PathBuf>,
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
    /// One object from guest 9999 to host 10000 through a federation backend (1 MiB slices),
    /// beside that backend's raw client moving the same bytes in the same run; the receiver's
    /// object is checked against the sent one. `grpc`: two site routers (FATE's eggroll
    /// `push`), with and without mutual TLS, against a raw gRPC stream. `rabbitmq`, `pulsar`:
    /// our transport between two nodes' brokers against lapin / the pulsar crate alone, on
    /// brokers already running (scripts/services/rabbitmq.sh, pulsar.sh).
    Federation {
        /// Object size in MiB.
        #[arg(long, default_value_t = 1024)]
        size_mib: usize,
        /// Which transport: `grpc` (routers), `rabbitmq` or `pulsar` (brokers).
        #[arg(long, default_value = "grpc", value_parser = ["grpc", "rabbitmq", "pulsar"])]
        backend: String,
        /// gRPC only: which routed runs, `on` (mutual TLS on every hop), `off` (plaintext)
        /// or `both` (the default).
        #[arg(long, value_parser = ["on", "off", "both"])]
        mtls: Option<String>,
        /// RabbitMQ or Pulsar: the backend's route table in FATE's format, as the node reads
        /// it (rabbitmq_route_table.yaml: `{host, port, mng_port, user, password}` per party;
        /// pulsar_route_table.yaml: `{host, port, mng_port}`), with entries for 9999 (the
        /// sender) and 10000 (the receiver). Default: one broker on loopback for both
        /// (RabbitMQ 5672, management 15672, guest/guest; Pulsar 6650, admin 8080).
        #[arg(long, value_name = "FILE")]
        route_table: Option<std::path::PathBuf>,
        /// RabbitMQ or Pulsar: `replication` (FATE's and the node's default: each party
        /// consumes from its own broker, the brokers carry the frames between them) or
        /// `client`.
        #[arg(long, value_parser = ["replication", "client"])]
        mode: Option<String>,
        /// Pulsar replication: the brokers' own cluster name (the node's `pulsar_cluster`).
        #[arg(long, value_name = "NAME")]
        pulsar_cluster: Option<String>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// FATE on Spark against the local engine in one run: PSI of N x N ids and one
    /// CoordinatedLR epoch on N rows, then the same on 100 rows (the per-task overhead).
    Spark {
        /// The Spark Connect server, `sc://host:port`.
        #[arg(long, value_name = "URL", env = "FATE_SPARK_CONNECT")]
        spark_connect: String,
        /// Absolute path of this fate binary on the executors (default: uploaded).
        #[arg(long, value_name = "PATH")]
        spark_executor: Option<std::path::PathBuf>,
        /// Ids at each party (all shared, so PSI keeps N rows for LR).
        #[arg(long, default_value_t = 1_000_000)]
        rows: usize,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// The board's history with many jobs: the requests its first page makes (session, the
    /// first page of `/v2/job/list/query`, the page's assets) against a node holding N job
    /// rows, beside the 1 s bound of issue 14.
    Board {
        /// Job rows in the node's metadata store.
        #[arg(long, default_value_t = 10_000)]
        jobs: usize,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// The standalone skeleton: toy end to end, upload, and table map/join/reduce throughput
    /// against a plain single-threaded loop.
    Standalone {
        /// Rows for the table throughput runs.
        #[arg(long, default_value_t = 1_000_000)]
        rows: usize,
        /// Toy runs (the median is reported).
        #[arg(long, default_value_t = 5)]
        toy_runs: usize,
        /// CSV to upload (default: FATE's breast guest data, built in).
        #[arg(long)]
        upload_file: Option<std::path::PathBuf>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

pub fn run(cmd: BenchCommand) -> Result<()> {
    match cmd {
        BenchCommand::Crypto {
            key_bits,
            seconds,
            json,
        } => {
            if !json {
                println!(
                    "{:<18} {:>6} {:>14} {:>14} {:>9} {:>12} {:>9}",
                    "op",
                    "bits",
                    "ops/s (1 core)",
                    "baseline op/s",
                    "x base",
                    "FATE op/s",
                    "x FATE"
                );
            }
            fate_crypto::bench::run(key_bits, seconds, &mut |r| {
                if json {
                    println!("{}", serde_json::to_string(&r).unwrap_or_default());
                } else {
                    let ratio = |a: Option<f64>| {
                        a.map(|b| format!("{:.2}", r.ops_per_sec / b))
                            .unwrap_or_else(|| "-".into())
                    };
                    let num =
                        |a: Option<f64>| a.map(|b| format!("{b:.0}")).unwrap_or_else(|| "-".into());
                    println!(
                        "{:<18} {:>6} {:>14.0} {:>14} {:>9} {:>12} {:>9}",
                        r.op,
                        r.key_bits,
                        r.ops_per_sec,
                        num(r.baseline_ops_per_sec),
                        ratio(r.baseline_ops_per_sec),
                        num(r.fate_ops_per_sec),
                        ratio(r.fate_ops_per_sec)
                    );
                }
            })?;
            Ok(())
        }
        BenchCommand::Vfl {
            datasets,
            breast_only,
            node_args,
        } => {
            let sets: &[crate::demo::Dataset] = if breast_only {
                &[crate::demo::BREAST]
            } else {
                &[crate::demo::BREAST, crate::demo::DEFAULT_CREDIT]
            };
            let source = if breast_only {
                crate::demo::Datasets::or_embedded(datasets)
            } else {
                crate::demo::Datasets::or_repository(datasets)?
            };
            crate::demo::run_benchmarks(&source, sets, &node_args)
        }
        BenchCommand::Hfl { datasets, json } => crate::demo::run_hfl_benchmark(datasets, json),
        BenchCommand::Standalone {
            rows,
            toy_runs,
            upload_file,
            json,
        } => standalone(rows, toy_runs.max(1), upload_file, json),
        BenchCommand::Federation {
            size_mib,
            backend,
            mtls,
            route_table,
            mode,
            pulsar_cluster,
            json,
        } => {
            anyhow::ensure!(size_mib > 0, "--size-mib must be at least 1");
            if backend == "grpc" {
                for (set, option) in [
                    (route_table.is_some(), "--route-table"),
                    (mode.is_some(), "--mode"),
                    (pulsar_cluster.is_some(), "--pulsar-cluster"),
                ] {
                    anyhow::ensure!(!set, "{option} applies to --backend rabbitmq or pulsar");
                }
                return federation(size_mib, mtls.as_deref().unwrap_or("both"), json);
            }
            anyhow::ensure!(mtls.is_none(), "--mtls applies to --backend grpc only");
            anyhow::ensure!(
                backend == "pulsar" || pulsar_cluster.is_none(),
                "--pulsar-cluster applies to --backend pulsar only"
            );
            let broker = BrokerBench {
                backend: &backend,
                size_mib,
                route_table: route_table.as_deref(),
                mode: mode.as_deref().unwrap_or("replication"),
                pulsar_cluster: pulsar_cluster.as_deref().unwrap_or("standalone"),
            };
            federation_broker(&broker, json)
        }
        BenchCommand::Board { jobs, json } => board(jobs, json),
        BenchCommand::Spark {
            spark_connect,
            spark_executor,
            rows,
            json,
        } => crate::bench_spark::run(spark_connect, spark_executor, rows, json),
    }
}

/// `fate bench federation`: one row per routed run. A checksum mismatch is an error (after the
/// row is printed): it means the federation lost or changed bytes.
fn federation(size_mib: usize, mtls: &str, json_out: bool) -> Result<()> {
    use fate_federation_grpc::bench::{BenchOptions, bench};
    let runs: &[bool] = match mtls {
        "on" => &[true],
        "off" => &[false],
        _ => &[true, false],
    };
    if !json_out {
        println!(
            "{:>8} {:>5} {:>11} {:>10} {:>6} {:>15} {:>6} {:>14} {:>9}",
            "MiB",
            "mTLS",
            "ours GiB/s",
            "raw GiB/s",
            "ratio",
            "tuned raw GiB/s",
            "ratio",
            "raw TLS GiB/s",
            "checksum"
        );
    }
    let mut bad = Vec::new();
    for &mtls in runs {
        let options = BenchOptions {
            mtls,
            raw_tls: true,
            ..BenchOptions::new(size_mib << 20)
        };
        let r = bench(&options)?;
        let raw_tls = r.raw_tls_gib_per_s();
        if json_out {
            println!(
                "{}",
                json!({
                    "bench": "federation",
                    "backend": "grpc",
                    "size_mib": size_mib,
                    "slice_kib": r.max_message_size >> 10,
                    "routers": 2,
                    "mtls": mtls,
                    "ours_gib_per_s": r.routed_gib_per_s(),
                    "raw_gib_per_s": r.raw_gib_per_s(),
                    "ratio": r.ratio(),
                    "raw_tuned_gib_per_s": r.raw_tuned_gib_per_s(),
                    "ratio_to_tuned_raw": r.ratio_to_tuned_raw(),
                    "raw_tls_gib_per_s": raw_tls,
                    "ours_cpu_secs": r.routed_cpu.map(|d| d.as_secs_f64()),
                    "checksum_ok": r.checksum_ok(),
                    "sent_checksum": format!("{:016x}", r.sent_checksum),
                    "received_checksum": format!("{:016x}", r.received_checksum),
                })
            );
        } else {
            println!(
                "{:>8} {:>5} {:>11.3} {:>10.3} {:>6.2} {:>15.3} {:>6.2} {:>14} {:>9}",
                size_mib,
                if mtls { "on" } else { "off" },
                r.routed_gib_per_s(),
                r.raw_gib_per_s(),
                r.ratio(),
                r.raw_tuned_gib_per_s(),
                r.ratio_to_tuned_raw(),
                raw_tls.map_or("-".to_string(), |g| format!("{g:.3}")),
                checksum_word(r.checksum_ok())
            );
        }
        if !r.checksum_ok() {
            bad.push(format!(
                "mTLS {}: sent {} bytes with checksum {:016x}, received {} bytes with checksum \
                 {:016x}",
                if mtls { "on" } else { "off" },
                r.bytes,
                r.sent_checksum,
                r.received_bytes,
                r.received_checksum
            ));
        }
    }
    if !json_out {
        println!(
            "ours: guest transport -> guest router -> host router -> host transport, the \
             receiver taking the frames as Federation::get does. raw: one tonic client stream \
             of the same bytes in packets of the same size (tonic's HTTP/2 defaults, tokio's \
             default runtime); tuned raw: the same with our HTTP/2 settings on one thread; raw \
             TLS: raw over TLS"
        );
    }
    anyhow::ensure!(
        bad.is_empty(),
        "the object changed in transit: {}",
        bad.join("; ")
    );
    Ok(())
}

/// The word of a checksum column.
fn checksum_word(ok: bool) -> &'static str {
    if ok { "equal" } else { "DIFFERENT" }
}

/// `fate bench federation --backend rabbitmq|pulsar`.
struct BrokerBench<'a> {
    backend: &'a str,
    size_mib: usize,
    route_table: Option<&'a std::path::Path>,
    mode: &'a str,
    pulsar_cluster: &'a str,
}

/// The route table a broker benchmark uses when none is given: one broker on loopback at the
/// brokers' default ports for both parties.
fn default_route_table(backend: &str) -> String {
    let entry = match backend {
        "rabbitmq" => {
            "{host: 127.0.0.1, port: 5672, mng_port: 15672, user: guest, password: guest}"
        }
        _ => "{host: 127.0.0.1, port: 6650, mng_port: 8080}",
    };
    format!("9999: {entry}\n10000: {entry}\n")
}

/// Runs a broker backend's benchmark and prints its row; a checksum mismatch is an error
/// (after the row is printed).
fn federation_broker(b: &BrokerBench, json_out: bool) -> Result<()> {
    let bytes = b.size_mib << 20;
    let text = match b.route_table {
        Some(file) => std::fs::read_to_string(file)
            .map_err(|e| anyhow::anyhow!("--route-table {}: {e}", file.display()))?,
        None => default_route_table(b.backend),
    };
    let source = b
        .route_table
        .map_or("the default route table".to_string(), |f| {
            f.display().to_string()
        });
    let report = match b.backend {
        "rabbitmq" => {
            use fate_federation_rabbitmq::{RouteTable, bench};
            let routes = RouteTable::parse(&text).map_err(|e| anyhow::anyhow!("{source}: {e}"))?;
            let options = bench::BenchOptions {
                mode: b.mode.parse()?,
                ..bench::BenchOptions::new(routes, bytes)
            };
            bench::bench(&options).map_err(|e| anyhow::anyhow!("{source}: {e}"))?
        }
        _ => {
            use fate_federation_pulsar::{RouteTable, bench};
            let routes = RouteTable::parse(&text).map_err(|e| anyhow::anyhow!("{source}: {e}"))?;
            let options = bench::BenchOptions {
                mode: b.mode.parse()?,
                cluster: b.pulsar_cluster.to_string(),
                ..bench::BenchOptions::new(routes, bytes)
            };
            bench::bench(&options).map_err(|e| anyhow::anyhow!("{source}: {e}"))?
        }
    };
    let r = &report;
    if json_out {
        println!(
            "{}",
            json!({
                "bench": "federation",
                "backend": r.backend,
                "mode": r.mode,
                "size_mib": b.size_mib,
                "slice_kib": r.max_message_size >> 10,
                "frames": r.frames,
                "ours_gib_per_s": r.ours_gib_per_s(),
                "raw_gib_per_s": r.raw_gib_per_s(),
                "ratio": r.ratio(),
                "ours_secs": r.ours.as_secs_f64(),
                "raw_secs": r.raw.as_secs_f64(),
                "checksum_ok": r.checksum_ok(),
                "sent_checksum": format!("{:016x}", r.sent_checksum),
                "received_checksum": format!("{:016x}", r.received_checksum),
                "raw_checksum": format!("{:016x}", r.raw_checksum),
            })
        );
    } else {
        println!(
            "{:>8} {:>9} {:>12} {:>11} {:>10} {:>6} {:>9}",
            "MiB", "backend", "mode", "ours GiB/s", "raw GiB/s", "ratio", "checksum"
        );
        println!(
            "{:>8} {:>9} {:>12} {:>11.3} {:>10.3} {:>6.2} {:>9}",
            b.size_mib,
            r.backend,
            r.mode,
            r.ours_gib_per_s(),
            r.raw_gib_per_s(),
            r.ratio(),
            checksum_word(r.checksum_ok())
        );
        let raw = match r.backend {
            "rabbitmq" => {
                "lapin alone on the sender's broker: one durable queue, each message persistent \
                 and confirmed before the next, consumed with the same prefetch and one ack \
                 per message"
            }
            _ => {
                "the pulsar crate alone on the receiver's broker: one persistent topic, LZ4 \
                 as ours, each receipt awaited before the next send, consumed with the same \
                 receiver queue and one ack per message"
            }
        };
        println!(
            "ours: guest 9999's transport -> broker{} -> host 10000's transport, {} frames of \
             up to {} KiB, each confirmed before the next as Federation::remote sends them, taken \
             in order as Federation::get does. raw: {raw}; same bytes, same message size.",
            if r.mode == "replication" {
                "s (replicated between them)"
            } else {
                ""
            },
            r.frames,
            r.max_message_size >> 10
        );
    }
    anyhow::ensure!(
        r.checksum_ok(),
        "the object changed in transit: sent {} bytes with checksum {:016x}; ours received {} \
         bytes with checksum {:016x}, raw {} bytes with checksum {:016x}",
        r.bytes,
        r.sent_checksum,
        r.received_bytes,
        r.received_checksum,
        r.raw_bytes,
        r.raw_checksum
    );
    Ok(())
}

fn standalone(
    rows: usize,
    toy_runs: usize,
    upload_file: Option<std::path::PathBuf>,
    json_out: bool,
) -> Result<()> {
    // Toy end to end: submit to success, in process, the same job FATE's 30.6 s anchor measures.
    let mut toy = Vec::new();
    for _ in 0..toy_runs {
        let out = crate::toy::run_in_process("9999", "10000", 1000, 4, Duration::from_secs(120))?;
        toy.push(out.elapsed.as_secs_f64());
    }
    let toy_secs = median(toy);
    let toy_rec = json!({"bench": "toy_end_to_end", "secs": toy_secs, "fate_secs": FATE_TOY_SECS, "speedup_vs_fate": FATE_TOY_SECS / toy_secs});

    // Upload of FATE's breast guest CSV through the upload job (the built-in copy by default).
    let scratch = tempfile::tempdir()?;
    let file = match upload_file {
        Some(file) => file,
        None => crate::demo::Datasets::Embedded.file("breast_hetero_guest", scratch.path())?,
    };
    let secs = upload_secs(&file)?;
    let upload_rec = json!({"bench": "upload", "file": file.display().to_string(), "secs": secs, "fate_secs": FATE_UPLOAD_SECS, "speedup_vs_fate": FATE_UPLOAD_SECS / secs});

    // Table throughput against a plain single-threaded loop over the same data.
    let computing = fate_computing::Computing::new(fate_computing::ComputingConfig {
        cores: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2),
        default_partitions: 8,
        data_dir: None,
    })?;
    let tables = fate_computing::bench::table_throughput(&computing, rows);

    if json_out {
        println!("{toy_rec}");
        println!("{upload_rec}");
        for t in &tables {
            println!("{}", serde_json::to_string(t)?);
        }
    } else {
        println!(
            "toy end to end (median of {toy_runs}): {:.3} s   FATE 2.2: {FATE_TOY_SECS} s   ({:.0}x faster)",
            toy_secs,
            FATE_TOY_SECS / toy_secs
        );
        println!(
            "upload {}: {secs:.3} s   FATE 2.2: {FATE_UPLOAD_SECS} s   ({:.0}x faster)",
            file.display(),
            FATE_UPLOAD_SECS / secs
        );
        println!(
            "{:<12} {:>10} {:>16} {:>22} {:>8}",
            "table op", "rows", "rows/s", "plain loop rows/s", "ratio"
        );
        for t in &tables {
            println!(
                "{:<12} {:>10} {:>16.0} {:>22.0} {:>8.2}",
                t.op,
                t.rows,
                t.rows_per_sec,
                t.baseline_rows_per_sec,
                t.rows_per_sec / t.baseline_rows_per_sec
            );
        }
    }
    Ok(())
}

fn upload_secs(file: &std::path::Path) -> Result<f64> {
    let dir = tempfile::tempdir()?;
    let file = std::fs::canonicalize(file)?;
    crate::node::runtime()?.block_on(async {
        let engine = crate::node::EngineArgs {
            cores: None,
            partitions: 4,
            federation_timeout: 60,
            data_roots: file
                .parent()
                .map(|d| vec![d.to_path_buf()])
                .unwrap_or_default(),
            max_upload_bytes: fate_runtime::files::DEFAULT_MAX_FILE_BYTES,
            computing_engine: Default::default(),
            spark_connect: None,
            spark_executor: None,
            storage: None,
            database: None,
            s3: Default::default(),
        };
        let scheduler = crate::node::build_scheduler(dir.path(), &engine).await?;
        let dag: fate_dag::DagSchema = serde_json::from_value(json!({
            "dag": {
                "parties": [{"role": "local", "party_id": ["0"]}],
                "tasks": {"upload_0": {"component_ref": "upload", "parameters": {
                    "file": file.to_string_lossy(), "head": true, "partitions": 4,
                    "meta": {"label_name": "y", "match_id_name": "id"},
                    "namespace": "experiment", "name": "bench_upload"}}}
            },
            "schema_version": "2.2.0"
        }))?;
        let start = Instant::now();
        let s = scheduler.submit(dag, "bench").await?;
        let status = scheduler.wait(&s.job_id, Duration::from_secs(120)).await?;
        anyhow::ensure!(
            status == fate_types::JobStatus::Success,
            "upload job {status}"
        );
        Ok(start.elapsed().as_secs_f64())
    })
}

/// The bound issue 14 sets for the history's first page with 10,000 jobs.
const BOARD_FIRST_PAGE_BOUND_MS: f64 = 1000.0;

/// `fate bench board`: N job rows in a node's store, then what the history's first page
/// fetches over HTTP from the node's own router, timed from login to the last byte (median
/// of 5 loads).
fn board(jobs: usize, json_out: bool) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let engine = crate::node::EngineArgs {
        cores: Some(1),
        partitions: 1,
        federation_timeout: 60,
        data_roots: Vec::new(),
        max_upload_bytes: fate_runtime::files::DEFAULT_MAX_FILE_BYTES,
        computing_engine: Default::default(),
        spark_connect: None,
        spark_executor: None,
        storage: None,
        database: None,
        s3: Default::default(),
    };
    crate::node::runtime()?.block_on(async {
        let scheduler = crate::node::build_scheduler(dir.path(), &engine).await?;
        let store = scheduler.store().clone();
        let started = Instant::now();
        for i in 0..jobs {
            let job_id = format!("2026010100000000{i:05}");
            let ended = i % 7 != 0;
            let job = fate_store::JobRecord {
                job_id,
                role: fate_types::Role::Guest,
                party_id: "9999".into(),
                status: if ended {
                    fate_types::JobStatus::Success
                } else {
                    fate_types::JobStatus::Failed
                },
                progress: 100,
                dag: json!({"dag": {"parties": [], "tasks": {}}, "schema_version": "2.2.0"}),
                model_id: format!("model_{i}"),
                model_version: "0".into(),
                initiator_party_id: "9999".into(),
                scheduler_party_id: "9999".into(),
                parties: json!([{"role": "guest", "party_id": ["9999"]}, {"role": "host", "party_id": ["10000"]}]),
                description: format!("bench job {i}"),
                user_name: String::new(),
                create_time: 1_767_225_600_000 + i as i64,
                start_time: Some(1_767_225_600_000 + i as i64),
                end_time: Some(1_767_225_601_000 + i as i64),
                elapsed: Some(1000),
                error: None,
                cores: 1,
            };
            store.insert_job(&job).await?;
        }
        let fill_secs = started.elapsed().as_secs_f64();
        let board = std::sync::Arc::new(fate_api::Board::new(fate_api::BoardConfig {
            user: "admin".into(),
            password: "bench".into(),
            session_minutes: 10,
        }));
        let state = fate_api::ApiState {
            scheduler,
            upload_dir: dir.path().join("uploads"),
            address: "127.0.0.1:0".into(),
            auth: None,
            board: Some(board),
            serving: Default::default(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, fate_api::router(state)).await;
        });
        let url = format!("http://{addr}");
        let loads = tokio::task::spawn_blocking(move || -> Result<Vec<(f64, f64, u64)>> {
            let agent = ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(30))
                .build();
            let login = agent
                .post(&format!("{url}/board/login"))
                .send_json(json!({"user": "admin", "password": "bench"}))?;
            let cookie = login
                .header("set-cookie")
                .and_then(|c| c.split(';').next())
                .unwrap_or_default()
                .to_string();
            let get = |path: &str| -> Result<Vec<u8>> {
                let mut body = Vec::new();
                std::io::Read::read_to_end(
                    &mut agent
                        .get(&format!("{url}{path}"))
                        .set("cookie", &cookie)
                        .call()?
                        .into_reader(),
                    &mut body,
                )?;
                Ok(body)
            };
            let mut out = Vec::new();
            for _ in 0..5 {
                let t = Instant::now();
                for asset in ["/board/", "/board/style.css", "/board/app.js", "/board/api.js",
                              "/board/views.js", "/board/detail.js", "/board/charts.js",
                              "/board/api/session"] {
                    get(asset)?;
                }
                let assets_ms = t.elapsed().as_secs_f64() * 1000.0;
                let t = Instant::now();
                let body = get("/v2/job/list/query?page=1&limit=20")?;
                let list_ms = t.elapsed().as_secs_f64() * 1000.0;
                let v: serde_json::Value = serde_json::from_slice(&body)?;
                let count = v["data"]["count"].as_u64().unwrap_or(0);
                anyhow::ensure!(
                    v["data"]["data"].as_array().map(Vec::len) == Some(20),
                    "the first page does not hold 20 jobs: {v}"
                );
                out.push((assets_ms, list_ms, count));
            }
            Ok(out)
        })
        .await??;
        server.abort();
        let count = loads[0].2;
        let list_ms = median(loads.iter().map(|l| l.1).collect());
        let assets_ms = median(loads.iter().map(|l| l.0).collect());
        let total = list_ms + assets_ms;
        let rec = json!({"bench": "board_history_first_page", "jobs": count, "list_ms": list_ms,
            "assets_ms": assets_ms, "first_page_ms": total, "bound_ms": BOARD_FIRST_PAGE_BOUND_MS,
            "fill_secs": fill_secs});
        if json_out {
            println!("{rec}");
        } else {
            println!(
                "board history, first page with {count} jobs: {total:.1} ms \
                 (list query {list_ms:.1} ms + page and assets {assets_ms:.1} ms; median of 5; \
                 bound {BOARD_FIRST_PAGE_BOUND_MS:.0} ms{})",
                if total < BOARD_FIRST_PAGE_BOUND_MS { ", met" } else { ", NOT met" }
            );
        }
        Ok(())
    })
}
