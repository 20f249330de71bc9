//! Against a real Spark Connect server (`scripts/services/spark.sh`, pyspark's Spark on
//! `local[2]`, loopback), started once for this test binary.

#[allow(dead_code)]
mod server;

use std::collections::BTreeMap;
use std::time::Instant;

use fate_computing_spark::table::{KernelRunner, SparkTable};
use fate_computing_spark::{CollectLimits, Row, SparkClient, SparkError, SparkOptions};

fn u64_bytes(n: u64) -> Vec<u8> {
    postcard::to_allocvec(&n).unwrap()
}

fn u64_of(bytes: &[u8]) -> u64 {
    postcard::from_bytes(bytes).unwrap()
}

fn sorted(mut rows: Vec<Row>) -> Vec<Row> {
    rows.sort();
    rows
}

async fn client() -> SparkClient {
    let server = server::spark();
    SparkClient::connect(&server.url(), SparkOptions::new("fate-test"))
        .await
        .expect("connect to the test Spark")
}

async fn runner(client: &SparkClient) -> KernelRunner {
    let binary = std::path::Path::new(env!("CARGO_BIN_EXE_fate-spark-test-executor"));
    KernelRunner::upload(client, binary, &["spark-executor"])
        .await
        .expect("upload the executor")
        .with_batch_rows(64)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A table spread over `n_partitions` partitions.
async fn spread(client: &SparkClient, rows: &[Row], n_partitions: u32) -> SparkTable {
    let view = client
        .create_dataframe(rows)
        .await
        .unwrap()
        .to_view()
        .await
        .unwrap();
    SparkTable::from_dataframe(client.sql(&format!(
        "SELECT /*+ REPARTITION({n_partitions}) */ key, value FROM {view}"
    )))
}

#[test]
fn rows_round_trip_through_a_dataframe() {
    runtime().block_on(async {
        let client = client().await;
        let mut rows: Vec<Row> = (0u32..2000)
            .map(|i| {
                (
                    i.to_be_bytes().to_vec(),
                    vec![(i % 256) as u8; (i % 300) as usize],
                )
            })
            .collect();
        rows.push((Vec::new(), Vec::new()));
        rows.push((b"\n\t,:'\\".to_vec(), (0..=255).collect()));
        let df = client.create_dataframe(&rows).await.unwrap();
        assert_eq!(df.count().await.unwrap(), rows.len() as u64);
        assert_eq!(
            sorted(df.collect_rows().await.unwrap()),
            sorted(rows.clone())
        );

        // Parquet at a path and back.
        let dir = server::spark().dir.join(client.unique_name("parquet"));
        let path = dir.display().to_string();
        SparkTable::from_rows(&client, &rows)
            .await
            .unwrap()
            .write_parquet(&path)
            .await
            .unwrap();
        let back = SparkTable::read_parquet(&client, &path);
        assert_eq!(
            sorted(back.collect(CollectLimits::default()).await.unwrap()),
            sorted(rows)
        );
    });
}

#[test]
fn a_large_upload_goes_in_several_local_relations() {
    runtime().block_on(async {
        let server = server::spark();
        let mut options = SparkOptions::new("fate-test");
        // A 1 MiB message budget: 4 MiB of rows must be split into many relations.
        options.max_message_bytes = 1 << 20;
        let client = SparkClient::connect(&server.url(), options).await.unwrap();
        let rows: Vec<Row> = (0u32..4096)
            .map(|i| (i.to_be_bytes().to_vec(), vec![7; 1024]))
            .collect();
        let df = client.create_dataframe(&rows).await.unwrap();
        assert_eq!(df.count().await.unwrap(), 4096);
    });
}

#[test]
fn kernels_run_on_executors_through_transform() {
    runtime().block_on(async {
        let client = client().await;
        let runner = runner(&client).await;
        let rows: Vec<Row> = (0u64..1000)
            .map(|i| (u64_bytes(i), u64_bytes(i * 3)))
            .collect();
        let table = spread(&client, &rows, 4).await;

        let doubled = runner.map(&table, "test.double_values", &[]).await.unwrap();
        let got = sorted(doubled.collect(CollectLimits::default()).await.unwrap());
        let want = sorted(
            rows.iter()
                .map(|(k, v)| (k.clone(), [v.clone(), v.clone()].concat()))
                .collect(),
        );
        assert_eq!(got, want);

        // Parameters reach the kernel (through an artifact, not the SQL).
        let added = runner
            .map(&table, "test.add_param", &u64_bytes(5))
            .await
            .unwrap();
        let got: BTreeMap<u64, u64> = added
            .collect(CollectLimits::default())
            .await
            .unwrap()
            .iter()
            .map(|(k, v)| (u64_of(k), u64_of(v)))
            .collect();
        assert_eq!(got.len(), 1000);
        assert!(got.iter().all(|(k, v)| *v == k * 3 + 5), "{got:?}");

        // A failing kernel fails the query with Spark's error, which names the script.
        let failing = runner.map(&table, "test.fail", &[]).await.unwrap();
        let error = failing.count().await.unwrap_err();
        assert!(matches!(error, SparkError::Spark { .. }), "{error}");
        assert!(
            error
                .to_string()
                .contains(server::spark().address().as_str()),
            "{error}"
        );
        eprintln!("failing kernel: {error}");
    });
}

#[test]
fn join_reduce_by_key_reduce_and_subtract() {
    runtime().block_on(async {
        let client = client().await;
        let runner = runner(&client).await;
        let left: Vec<Row> = (0u64..500).map(|i| (u64_bytes(i), u64_bytes(i))).collect();
        let right: Vec<Row> = (0u64..500)
            .filter(|i| i % 3 == 0)
            .map(|i| (u64_bytes(i), u64_bytes(i + 1)))
            .collect();
        let (l, r) = (
            spread(&client, &left, 3).await,
            spread(&client, &right, 2).await,
        );

        let joined = runner.join(&l, &r, "test.join_combine", &[]).await.unwrap();
        let got: BTreeMap<u64, u64> = joined
            .collect(CollectLimits::default())
            .await
            .unwrap()
            .iter()
            .map(|(k, v)| (u64_of(k), u64_of(v)))
            .collect();
        let want: BTreeMap<u64, u64> = (0u64..500)
            .filter(|i| i % 3 == 0)
            .map(|i| (i, i * 1000 + i + 1))
            .collect();
        assert_eq!(got, want);

        // Keys repeat across partitions: 10 keys, 100 values each.
        let many: Vec<Row> = (0u64..1000)
            .map(|i| (u64_bytes(i % 10), u64_bytes(i)))
            .collect();
        let spread_many = spread(&client, &many, 4).await;
        let sums = runner
            .reduce_by_key(&spread_many, "test.sum_by_key", &[])
            .await
            .unwrap();
        let got: BTreeMap<u64, u64> = sums
            .collect(CollectLimits::default())
            .await
            .unwrap()
            .iter()
            .map(|(k, v)| (u64_of(k), u64_of(v)))
            .collect();
        let mut want = BTreeMap::new();
        for i in 0u64..1000 {
            *want.entry(i % 10).or_insert(0) += i;
        }
        assert_eq!(got, want);

        let total = runner
            .reduce(&spread_many, "test.sum_all", &[], CollectLimits::default())
            .await
            .unwrap();
        assert_eq!(total, vec![(b"total".to_vec(), u64_bytes((0..1000).sum()))]);

        let rest = l.subtract_by_key(&r).await.unwrap();
        let got: Vec<u64> = sorted(rest.collect(CollectLimits::default()).await.unwrap())
            .iter()
            .map(|(k, _)| u64_of(k))
            .collect();
        let mut want: Vec<u64> = (0u64..500).filter(|i| i % 3 != 0).collect();
        let mut got = got;
        got.sort();
        want.sort();
        assert_eq!(got, want);
    });
}

#[test]
fn bad_sql_is_an_error_with_sparks_message_and_the_address() {
    runtime().block_on(async {
        let client = client().await;
        let error = client
            .sql("SELEC 1 FROM nowhere")
            .collect_rows()
            .await
            .unwrap_err();
        assert!(matches!(error, SparkError::Spark { .. }), "{error}");
        let text = error.to_string();
        assert!(text.contains("PARSE_SYNTAX_ERROR"), "{text}");
        assert!(text.contains(&server::spark().address()), "{text}");

        let error = client
            .sql("SELECT * FROM no_such_table_x")
            .count()
            .await
            .unwrap_err();
        assert!(error.message().contains("no_such_table_x"), "{error}");
    });
}

#[test]
fn collect_is_bounded_by_rows_and_bytes() {
    runtime().block_on(async {
        let client = client().await;
        let df = client.sql("SELECT encode(CAST(id AS STRING), 'UTF-8') AS key, unhex(repeat('ab', 100)) AS value FROM range(1000)");
        let rows = df
            .collect_rows_within(CollectLimits { max_rows: 1000, max_bytes: 1 << 20 })
            .await
            .unwrap();
        assert_eq!(rows.len(), 1000);
        let error = df
            .collect_rows_within(CollectLimits { max_rows: 999, max_bytes: 1 << 20 })
            .await
            .unwrap_err();
        assert!(matches!(error, SparkError::Limit { .. }), "{error}");
        assert!(error.to_string().contains("999 rows"), "{error}");
        let error = df
            .collect_rows_within(CollectLimits { max_rows: 1000, max_bytes: 10_000 })
            .await
            .unwrap_err();
        assert!(matches!(error, SparkError::Limit { .. }), "{error}");
    });
}

#[test]
fn an_unreachable_server_is_a_connect_error_naming_it() {
    runtime().block_on(async {
        let port = server::free_port();
        let error = SparkClient::connect(&format!("sc://127.0.0.1:{port}"), SparkOptions::new("x"))
            .await
            .err()
            .expect("nothing listens there");
        assert!(matches!(error, SparkError::Connect { .. }), "{error}");
        assert!(
            error.to_string().contains(&format!("127.0.0.1:{port}")),
            "{error}"
        );
        let error = SparkClient::connect("http://127.0.0.1:1", SparkOptions::new("x"))
            .await
            .err()
            .unwrap();
        assert!(matches!(error, SparkError::Invalid { .. }), "{error}");
    });
}

#[test]
fn sparks_rest_api_shows_the_jobs_that_ran() {
    runtime().block_on(async {
        let server = server::spark();
        let jobs_before = server.succeeded_jobs();
        let client = client().await;
        let runner = runner(&client).await;
        let rows: Vec<Row> = (0u64..100).map(|i| (u64_bytes(i), u64_bytes(i))).collect();
        let table = spread(&client, &rows, 2).await;
        let n = runner
            .map(&table, "test.identity", &[])
            .await
            .unwrap()
            .count()
            .await
            .unwrap();
        assert_eq!(n, 100);
        let jobs_after = server.succeeded_jobs();
        assert!(
            jobs_after > jobs_before,
            "jobs {jobs_before} -> {jobs_after}"
        );
    });
}

/// Rows per second through the pipe on `local[2]` (printed; not a timed assertion), with
/// `count(*)` of the same generated table as the baseline.
#[test]
fn pipe_throughput() {
    runtime().block_on(async {
        let client = client().await;
        let n: u64 = std::env::var("FATE_SPARK_PIPE_ROWS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(200_000);
        let source = client.sql(&format!(
            "SELECT encode(CAST(id AS STRING), 'UTF-8') AS key, unhex(repeat('ab', 300)) AS value FROM range({n})"
        ));
        let table = SparkTable::from_dataframe(source.clone());
        let started = Instant::now();
        assert_eq!(table.count().await.unwrap(), n);
        let baseline = started.elapsed();
        for batch_rows in [1usize, 4096] {
            let runner = runner(&client).await.with_batch_rows(batch_rows);
            let started = Instant::now();
            let out = runner.map(&table, "test.identity", &[]).await.unwrap();
            assert_eq!(out.count().await.unwrap(), n);
            let took = started.elapsed();
            eprintln!(
                "pipe: {n} rows of 300-byte values, batch {batch_rows}: {:.2} s, {:.0} rows/s (count(*) alone {:.2} s)",
                took.as_secs_f64(),
                n as f64 / took.as_secs_f64(),
                baseline.as_secs_f64()
            );
        }
    });
}

/// The engine on the test server, its executor the test binary (uploaded as an artifact, or
/// run from where cargo built it).
fn spark_engine(upload: bool) -> std::sync::Arc<fate_computing_spark::SparkEngine> {
    use fate_computing_spark::{ExecutorSource, SparkEngine, SparkEngineConfig};
    let server = server::spark();
    let binary = std::path::PathBuf::from(env!("CARGO_BIN_EXE_fate-spark-test-executor"));
    let source = if upload {
        ExecutorSource::Upload(binary)
    } else {
        ExecutorSource::Installed(binary)
    };
    let mut registry = fate_computing::KernelRegistry::new();
    fate_computing::testing::register_all(&mut registry).unwrap();
    let mut config = SparkEngineConfig::new(&server.url(), source);
    config.batch = 64;
    SparkEngine::connect(config, registry).expect("the Spark engine connects")
}

#[test]
fn the_spark_engine_keeps_the_raw_contract() {
    let engine = spark_engine(true);
    fate_computing::testing::engine_contract(engine.clone());
    assert_eq!(engine.live_tables(), 0, "released tables are freed");
}

#[test]
fn the_spark_engine_passes_the_conformance_suite() {
    let server = server::spark();
    let before = server.succeeded_jobs();
    let engine = spark_engine(false);
    let c = fate_computing::Computing::on_engine(
        fate_computing::ComputingConfig {
            cores: 2,
            default_partitions: 3,
            data_dir: None,
        },
        engine,
    )
    .unwrap();
    let started = Instant::now();
    fate_computing::testing::conformance_cases(&c, 2);
    eprintln!(
        "conformance on Spark: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // The work ran on Spark: its REST API shows the jobs.
    assert!(server.succeeded_jobs() > before + 50);
}

/// Spark Connect drops a session idle for `defaultSessionTimeout` (60 min by default), and its
/// tables with it: a node idle over lunch failed every later job on Spark. The engine pings
/// its session; here the server expires idle sessions after 12 s, an engine without the
/// keepalive loses its table, and one with it keeps it.
#[test]
fn a_pinged_session_outlives_sparks_idle_timeout() {
    use fate_computing::{Engine, Row as KvRow};
    use fate_computing_spark::{ExecutorSource, SparkEngine, SparkEngineConfig};
    let server = server::start_with(&[
        "spark.connect.session.manager.defaultSessionTimeout=12s",
        "spark.connect.session.manager.maintenanceInterval=1s",
    ]);
    let binary = std::path::PathBuf::from(env!("CARGO_BIN_EXE_fate-spark-test-executor"));
    let engine = |keepalive: Option<std::time::Duration>| {
        let mut registry = fate_computing::KernelRegistry::new();
        fate_computing::testing::register_all(&mut registry).unwrap();
        let mut config =
            SparkEngineConfig::new(&server.url(), ExecutorSource::Installed(binary.clone()));
        config.keepalive = keepalive;
        SparkEngine::connect(config, registry).expect("the Spark engine connects")
    };
    let row = KvRow {
        hash: fate_computing::Key::partition_hash(&1u64),
        key: postcard::to_allocvec(&1u64).unwrap(),
        value: postcard::to_allocvec(&1i64).unwrap(),
    };
    let rows: Vec<Vec<KvRow>> = vec![vec![row]];
    // Each engine makes its table at once (the server's first job takes seconds, longer than
    // the timeout some runs), then both sit idle for longer than the timeout.
    let kept = engine(Some(std::time::Duration::from_secs(2)));
    let kept_table = kept.parallelize(rows.clone()).unwrap();
    let idle = engine(None);
    let idle_table = idle.parallelize(rows).unwrap();
    std::thread::sleep(std::time::Duration::from_secs(30));
    assert_eq!(kept.counts(&kept_table).unwrap(), vec![1]);
    let lost = idle.counts(&idle_table);
    assert!(
        lost.is_err(),
        "the server did not expire the idle session, so the test shows nothing: {lost:?}"
    );
}
