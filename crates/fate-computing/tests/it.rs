//! Behaviour of tables against a plain `BTreeMap` model, persistence, and the thread pool.

use fate_computing::bench::table_throughput;
use fate_computing::testing::{self, assert_invariants};
use fate_computing::{
    Computing, ComputingConfig, ComputingError, EncodedEngine, Fold, Kernel, KernelRegistry, Key,
    MapPartition, Table, Value,
};
use fate_types::RetCode;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};

/// The pool a partition ran on: its thread count and the thread's name.
#[derive(Debug, Serialize, Deserialize)]
struct ThreadSeen;
impl Kernel for ThreadSeen {
    const NAME: &'static str = "fate_computing.it.thread_seen";
}
impl MapPartition for ThreadSeen {
    type K = u64;
    type V = u64;
    type K2 = u64;
    type V2 = (usize, String);
    fn apply(&self, _: usize, p: &[(u64, u64)]) -> Vec<(u64, (usize, String))> {
        let name = std::thread::current().name().unwrap_or("").to_string();
        vec![(p.len() as u64, (rayon::current_num_threads(), name))]
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Threads;
impl Kernel for Threads {
    const NAME: &'static str = "fate_computing.it.threads";
}
impl Fold for Threads {
    type V = u64;
    fn apply(&self, _: u64, _: u64) -> u64 {
        rayon::current_num_threads() as u64
    }
}

/// One engine for all property cases (a pool per case would dominate the run time).
fn computing() -> &'static Computing {
    static C: OnceLock<Computing> = OnceLock::new();
    C.get_or_init(|| {
        Computing::new(ComputingConfig {
            cores: 2,
            default_partitions: 4,
            data_dir: None,
        })
        .expect("engine starts")
    })
}

fn on_disk(dir: &Path) -> Computing {
    Computing::new(ComputingConfig {
        cores: 2,
        default_partitions: 3,
        data_dir: Some(dir.to_path_buf()),
    })
    .expect("engine starts")
}

fn model<K: Ord + Clone, V: Clone>(rows: &[(K, V)]) -> BTreeMap<K, V> {
    rows.iter().cloned().collect()
}

fn rows_of<K: Clone, V: Clone>(m: &BTreeMap<K, V>) -> Vec<(K, V)> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn all<K: Key, V: Value>(t: &Table<K, V>) -> Vec<(K, V)> {
    t.collect(usize::MAX).unwrap()
}

/// The one conformance suite, on the local engine.
#[test]
fn local_engine_conforms() {
    testing::conformance(computing());
}

fn encoded(cores: usize) -> (Computing, Arc<EncodedEngine>) {
    let mut registry = KernelRegistry::new();
    testing::register_all(&mut registry).unwrap();
    fate_computing::bench::register_kernels(&mut registry).unwrap();
    registry.map_partitions::<ThreadSeen>().unwrap();
    registry.fold::<Threads>().unwrap();
    let engine = EncodedEngine::new(registry, cores).unwrap();
    let c = Computing::on_engine(
        ComputingConfig {
            cores: 2,
            default_partitions: 4,
            data_dir: None,
        },
        engine.clone(),
    )
    .unwrap();
    (c, engine)
}

/// The same suite on the encoded engine: every kernel runs through the registry over encoded
/// rows, as on Spark.
#[test]
fn encoded_engine_conforms() {
    let (c, engine) = encoded(2);
    assert_eq!(c.engine_name(), "encoded");
    testing::conformance(&c);
    testing::engine_contract(engine.clone());
    // Every table of the suite was released when its last clone went.
    assert_eq!(engine.live_tables(), 0);
}

#[test]
fn a_duplicate_kernel_name_is_an_error() {
    let mut registry = KernelRegistry::new();
    testing::register_all(&mut registry).unwrap();
    let err = testing::register_kernels(&mut registry).unwrap_err();
    assert!(
        matches!(err, ComputingError::DuplicateKernel { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("fate_computing.testing."), "{err}");
}

#[test]
fn bench_runs_on_the_encoded_engine() {
    let (c, _) = encoded(2);
    let records = table_throughput(&c, 500);
    assert_eq!(records.len(), 4);
}

#[test]
fn parallelize_last_row_wins_and_default_partitions() {
    let t = computing().parallelize(
        [(1u64, "a"), (2, "b"), (1, "c")].map(|(k, v)| (k, v.to_string())),
        0,
    );
    assert_eq!(t.num_partitions(), 4);
    assert_eq!(all(&t), vec![(1, "c".to_string()), (2, "b".to_string())]);
    assert_eq!(t.repartition(0).num_partitions(), 4);
    let empty = Table::<u64, u64>::from_partitions(computing(), vec![]).unwrap_err();
    assert!(
        empty.to_string().contains("1..=65536 partitions"),
        "{empty}"
    );
}

#[test]
fn pool_size_is_honoured() {
    let c = Computing::new(ComputingConfig {
        cores: 3,
        default_partitions: 5,
        data_dir: None,
    })
    .unwrap();
    assert_eq!(c.cores(), 3);
    assert_eq!(c.default_partitions(), 5);
    let t = c.parallelize((0..100u64).map(|k| (k, k)), 0);
    let seen = t.map_partitions(&ThreadSeen);
    for (_, (threads, name)) in all(&seen) {
        assert_eq!(threads, 3);
        assert!(
            name.starts_with("fate-computing-"),
            "ran on thread `{name}`"
        );
    }
    let threads = t.reduce(&Threads).unwrap();
    assert_eq!(threads, Some(3));
}

#[test]
fn bad_config_is_rejected() {
    for (cores, parts, field) in [
        (0, 8, "cores"),
        (2, 0, "default_partitions"),
        (2, 1 << 20, "default_partitions"),
    ] {
        let err = Computing::new(ComputingConfig {
            cores,
            default_partitions: parts,
            data_dir: None,
        })
        .unwrap_err();
        assert!(
            matches!(err, ComputingError::InvalidConfig { field: f, .. } if f == field),
            "{err}"
        );
    }
}

#[test]
fn save_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let rows: Vec<(String, (u64, f64))> = (0..500u64)
        .map(|i| (format!("id_{i}"), (i, i as f64 / 3.0)))
        .collect();
    {
        let c = on_disk(dir.path());
        let t = c.parallelize(rows.clone(), 6);
        t.save("ns", "t", false).unwrap();
        assert!(c.exists("ns", "t").unwrap());
        assert_eq!(
            c.list().unwrap(),
            vec![("ns".to_string(), "t".to_string(), 6)]
        );
    }
    let c = on_disk(dir.path());
    let t: Table<String, (u64, f64)> = c.load("ns", "t").unwrap();
    assert_eq!(t.num_partitions(), 6);
    assert_invariants(&t);
    assert_eq!(all(&t), rows_of(&model(&rows)));
    assert!(c.delete("ns", "t").unwrap());
    assert!(!c.exists("ns", "t").unwrap());
    let err = c.load::<String, (u64, f64)>("ns", "t").unwrap_err();
    assert!(err.to_string().contains("table ns.t not found"), "{err}");
    assert_eq!(err.ret_code(), RetCode::TableNotFound);
}

#[test]
fn save_without_overwrite_keeps_the_old_table() {
    for dir in [Some(tempfile::tempdir().unwrap()), None] {
        let c = match &dir {
            Some(d) => on_disk(d.path()),
            None => computing().clone(),
        };
        let old = c.parallelize((0..10u64).map(|k| (k, k)), 2);
        old.save("keep", "t", false).unwrap();
        let new = c.parallelize((0..3u64).map(|k| (k, 100 + k)), 5);
        let err = new.save("keep", "t", false).unwrap_err();
        assert!(matches!(err, ComputingError::TableExists { .. }), "{err}");
        assert!(err.to_string().contains("keep.t"), "{err}");
        assert_eq!(err.ret_code(), RetCode::TableExists);
        let loaded: Table<u64, u64> = c.load("keep", "t").unwrap();
        assert_eq!(all(&loaded), all(&old));
        assert_eq!(loaded.num_partitions(), 2);
        new.save("keep", "t", true).unwrap();
        let loaded: Table<u64, u64> = c.load("keep", "t").unwrap();
        assert_eq!(all(&loaded), all(&new));
        assert_eq!(loaded.num_partitions(), 5);
        c.delete("keep", "t").unwrap();
    }
}

#[test]
fn corrupt_records_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let c = on_disk(dir.path());
    let store = c.store();

    // A key that is not a u64's postcard encoding.
    store
        .put("bad", "key", vec![vec![(vec![0xff, 0xff], vec![0])]], false)
        .unwrap();
    let err = c.load::<u64, u64>("bad", "key").unwrap_err();
    assert!(matches!(err, ComputingError::Corrupt { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("table bad.key partition 0 of 1: corrupt data: row 0 key"),
        "{err}"
    );
    assert_eq!(err.ret_code(), RetCode::FileError);

    // A value with bytes after its encoding.
    store
        .put("bad", "value", vec![vec![(vec![1], vec![1, 0xff])]], false)
        .unwrap();
    let err = c.load::<u64, u64>("bad", "value").unwrap_err();
    assert!(
        err.to_string().contains("bad.value partition 0 of 1")
            && err.to_string().contains("row 0 value: 1 trailing bytes"),
        "{err}"
    );

    // The same key twice in a partition.
    store
        .put(
            "bad",
            "twice",
            vec![vec![(vec![1], vec![1]), (vec![1], vec![2])]],
            false,
        )
        .unwrap();
    let err = c.load::<u64, u64>("bad", "twice").unwrap_err();
    assert!(
        err.to_string().contains("bad.twice partition 0 of 1"),
        "{err}"
    );

    // An empty partition is a valid (empty) table.
    store.put("bad", "empty", vec![vec![]], false).unwrap();
    assert_eq!(
        c.load::<u64, u64>("bad", "empty").unwrap().count().unwrap(),
        0
    );

    // Partitions stored in the wrong order: keys are no longer where their hash puts them.
    c.parallelize((0..100u64).map(|k| (k, k)), 3)
        .save("bad", "order", false)
        .unwrap();
    let mut parts = store.get("bad", "order").unwrap().unwrap();
    parts.reverse();
    store.put("bad", "order", parts, true).unwrap();
    let err = c.load::<u64, u64>("bad", "order").unwrap_err();
    assert!(err.to_string().contains("belongs in partition"), "{err}");

    // Loading with the wrong types fails cleanly.
    c.parallelize((0..100u64).map(|k| (k, k as f64)), 2)
        .save("bad", "types", false)
        .unwrap();
    assert!(c.load::<String, String>("bad", "types").is_err());

    let err = c.load::<u64, u64>("", "x").unwrap_err();
    assert!(
        matches!(
            err,
            ComputingError::InvalidName {
                field: "namespace",
                ..
            }
        ),
        "{err}"
    );
    let err = c
        .parallelize([(1u64, 1u64)], 1)
        .save("ns", &"x".repeat(2000), true)
        .unwrap_err();
    assert!(err.to_string().contains("longer than 1024 bytes"), "{err}");
}

#[test]
fn bench_reports_every_op() {
    let c = Computing::new(ComputingConfig {
        cores: 2,
        default_partitions: 4,
        data_dir: None,
    })
    .unwrap();
    let records = table_throughput(&c, 2000);
    let ops: Vec<&str> = records.iter().map(|r| r.op.as_str()).collect();
    assert_eq!(ops, ["parallelize", "map_values", "join", "reduce"]);
    for r in records {
        assert_eq!(r.rows, 2000);
        assert!(r.secs > 0.0 && r.baseline_secs > 0.0, "{r:?}");
        assert!((r.rows_per_sec * r.secs - 2000.0).abs() < 1e-6, "{r:?}");
    }
}

#[test]
fn memory_and_redb_stores_pass_the_store_conformance_suite() {
    use fate_computing::testing::{StoreUnderTest, table_store_conformance};
    use fate_computing::{MemoryStore, RedbStore, TableStore};
    use std::sync::Arc;
    let memory: Arc<dyn TableStore> = Arc::new(MemoryStore::new());
    table_store_conformance(&StoreUnderTest {
        open: &|| Arc::clone(&memory),
        fail_write: None,
        names_are_paths: false,
    });
    let dir = tempfile::tempdir().unwrap();
    table_store_conformance(&StoreUnderTest {
        open: &|| RedbStore::open(dir.path()).unwrap() as Arc<dyn TableStore>,
        fail_write: None,
        names_are_paths: false,
    });
}
