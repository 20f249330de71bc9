//! Behaviour of tables against a plain `BTreeMap` model, persistence, and the thread pool.

use fate_computing::bench::table_throughput;
use fate_computing::{Computing, ComputingConfig, ComputingError, Key, Table, Value, partition_of};
use fate_types::RetCode;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::OnceLock;

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

/// Every key in its partition; every partition sorted with unique keys.
fn assert_invariants<K: Key, V: Value>(t: &Table<K, V>) {
    let n = t.num_partitions();
    assert!(n >= 1);
    for (i, part) in t.partitions().iter().enumerate() {
        for (k, _) in part {
            assert_eq!(partition_of(k, n), i, "key {k:?} in partition {i} of {n}");
        }
        assert!(
            part.windows(2).all(|w| w[0].0 < w[1].0),
            "partition {i} not strictly sorted"
        );
    }
}

/// The model of a table: later rows win, as in `parallelize`.
fn model<K: Ord + Clone, V: Clone>(rows: &[(K, V)]) -> BTreeMap<K, V> {
    rows.iter().cloned().collect()
}

fn rows_of<K: Clone, V: Clone>(m: &BTreeMap<K, V>) -> Vec<(K, V)> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn table<K: Key, V: Value>(rows: &[(K, V)], parts: usize) -> Table<K, V> {
    let t = computing().parallelize(rows.iter().cloned(), parts);
    assert_eq!(t.num_partitions(), parts);
    assert_invariants(&t);
    t
}

fn rows_strategy() -> impl Strategy<Value = Vec<(u64, i64)>> {
    prop::collection::vec((0u64..64, any::<i32>().prop_map(i64::from)), 0..80)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn parallelize_collect_get_take(rows in rows_strategy(), parts in 1usize..8, n in 0usize..90) {
        let t = table(&rows, parts);
        let m = model(&rows);
        prop_assert_eq!(t.collect(), rows_of(&m));
        prop_assert_eq!(t.count(), m.len());
        for k in 0..70u64 {
            prop_assert_eq!(t.get(&k), m.get(&k).copied());
        }
        let first: Vec<_> = rows_of(&m).into_iter().take(n).collect();
        prop_assert_eq!(t.take(n), first);
    }

    #[test]
    fn string_and_pair_keys(
        rows in prop::collection::vec(("[a-c]{0,3}", any::<u32>(), any::<i64>()), 0..60),
        parts in 1usize..8,
    ) {
        let by_string: Vec<(String, i64)> = rows.iter().map(|(s, _, v)| (s.clone(), *v)).collect();
        let t = table(&by_string, parts);
        prop_assert_eq!(t.collect(), rows_of(&model(&by_string)));
        let by_pair: Vec<((u32, String), i64)> =
            rows.iter().map(|(s, u, v)| ((*u % 4, s.clone()), *v)).collect();
        let t = table(&by_pair, parts);
        prop_assert_eq!(t.collect(), rows_of(&model(&by_pair)));
        let by_bytes: Vec<(Vec<u8>, i64)> =
            rows.iter().map(|(s, _, v)| (s.as_bytes().to_vec(), *v)).collect();
        let t = table(&by_bytes, parts);
        prop_assert_eq!(t.collect(), rows_of(&model(&by_bytes)));
    }

    #[test]
    fn map_values_and_filter(rows in rows_strategy(), parts in 1usize..8) {
        let t = table(&rows, parts);
        let m = model(&rows);
        let mapped = t.map_values(|v| format!("v{v}"));
        assert_invariants(&mapped);
        let expected: Vec<_> = m.iter().map(|(k, v)| (*k, format!("v{v}"))).collect();
        prop_assert_eq!(mapped.collect(), expected);
        let kept = t.filter(|k, v| k.wrapping_add(*v as u64).is_multiple_of(3));
        assert_invariants(&kept);
        let expected: Vec<_> = m
            .iter()
            .filter(|(k, v)| k.wrapping_add(**v as u64).is_multiple_of(3))
            .map(|(k, v)| (*k, *v))
            .collect();
        prop_assert_eq!(kept.collect(), expected);
        prop_assert_eq!(kept.num_partitions(), parts);
    }

    #[test]
    fn map_changes_keys(rows in rows_strategy(), parts in 1usize..8) {
        let t = table(&rows, parts);
        let m = model(&rows);
        // Injective: exactly the model.
        let mapped = t.map(|k, v| (format!("k{}", k * 2 + 1), v.wrapping_neg()));
        assert_invariants(&mapped);
        prop_assert_eq!(mapped.num_partitions(), parts);
        let expected: BTreeMap<String, i64> =
            m.iter().map(|(k, v)| (format!("k{}", k * 2 + 1), v.wrapping_neg())).collect();
        prop_assert_eq!(mapped.collect(), rows_of(&expected));
        // Colliding keys: one row per new key, with a value some source row produced.
        let collided = t.map(|k, v| (k % 5, (*k, *v)));
        assert_invariants(&collided);
        let out = collided.collect();
        let keys: BTreeSet<u64> = m.keys().map(|k| k % 5).collect();
        prop_assert_eq!(out.iter().map(|(k, _)| *k).collect::<BTreeSet<_>>(), keys);
        for (k, (src_k, src_v)) in out {
            prop_assert_eq!(src_k % 5, k);
            prop_assert_eq!(m.get(&src_k), Some(&src_v));
        }
    }

    #[test]
    fn map_partitions_and_flat_map(rows in rows_strategy(), parts in 1usize..8) {
        let t = table(&rows, parts);
        let m = model(&rows);
        let mapped = t.map_partitions(|p| p.iter().map(|(k, v)| (k + 1000, v / 2)).collect());
        assert_invariants(&mapped);
        let expected: BTreeMap<u64, i64> = m.iter().map(|(k, v)| (k + 1000, v / 2)).collect();
        prop_assert_eq!(mapped.collect(), rows_of(&expected));
        let indexed = t.map_partitions_with_index(|i, p| {
            p.iter().map(|(k, _)| (*k, i)).collect()
        });
        for (k, i) in indexed.collect() {
            prop_assert_eq!(partition_of(&k, parts), i);
        }
        let flat = t.flat_map(|k, v| [(k * 2, *v), (k * 2 + 1, v.wrapping_neg())]);
        assert_invariants(&flat);
        let expected: BTreeMap<u64, i64> = m
            .iter()
            .flat_map(|(k, v)| [(k * 2, *v), (k * 2 + 1, v.wrapping_neg())])
            .collect();
        prop_assert_eq!(flat.collect(), rows_of(&expected));
        let none = t.flat_map(|_, _| Vec::<(u64, i64)>::new());
        prop_assert_eq!(none.count(), 0);
        prop_assert_eq!(none.num_partitions(), parts);
    }

    #[test]
    fn map_reduce_partitions_groups(rows in rows_strategy(), parts in 1usize..8) {
        let t = table(&rows, parts);
        let m = model(&rows);
        let sums = t.map_reduce_partitions(
            |p| p.iter().map(|(k, v)| (k % 7, *v)).collect(),
            i64::wrapping_add,
        );
        assert_invariants(&sums);
        let mut expected: BTreeMap<u64, i64> = BTreeMap::new();
        for (k, v) in &m {
            let e = expected.entry(k % 7).or_insert(0);
            *e = e.wrapping_add(*v);
        }
        prop_assert_eq!(sums.collect(), rows_of(&expected));
        // Several rows of one key from the same partition are reduced too.
        let counts = t.map_reduce_partitions(
            |p| p.iter().flat_map(|(k, _)| [(k % 3, 1u64), (k % 3, 1u64)]).collect(),
            |a, b| a + b,
        );
        let mut expected: BTreeMap<u64, u64> = BTreeMap::new();
        for k in m.keys() {
            *expected.entry(k % 3).or_insert(0) += 2;
        }
        prop_assert_eq!(counts.collect(), rows_of(&expected));
    }

    #[test]
    fn join_union_subtract(
        a in rows_strategy(), pa in 1usize..8,
        b in rows_strategy(), pb in 1usize..8,
    ) {
        let (ta, tb) = (table(&a, pa), table(&b, pb));
        let (ma, mb) = (model(&a), model(&b));
        // Non-commutative merge functions check the argument order.
        let f = |x: &i64, y: &i64| x.wrapping_mul(3).wrapping_sub(*y);

        let joined = ta.join(&tb.map_values(|v| v.to_string()), |x, y| format!("{x}|{y}"));
        assert_invariants(&joined);
        prop_assert_eq!(joined.num_partitions(), pa);
        let expected: Vec<_> = ma
            .iter()
            .filter_map(|(k, x)| mb.get(k).map(|y| (*k, format!("{x}|{y}"))))
            .collect();
        prop_assert_eq!(joined.collect(), expected);

        let united = ta.union(&tb, f);
        assert_invariants(&united);
        prop_assert_eq!(united.num_partitions(), pa);
        let mut expected = mb.clone();
        for (k, x) in &ma {
            let v = match mb.get(k) { Some(y) => f(x, y), None => *x };
            expected.insert(*k, v);
        }
        prop_assert_eq!(united.collect(), rows_of(&expected));

        let rest = ta.subtract_by_key(&tb);
        assert_invariants(&rest);
        let expected: Vec<_> =
            ma.iter().filter(|(k, _)| !mb.contains_key(k)).map(|(k, v)| (*k, *v)).collect();
        prop_assert_eq!(rest.collect(), expected);
    }

    #[test]
    fn join_of_unbalanced_sizes(
        big in prop::collection::vec(0u64..2000, 0..600), small in prop::collection::vec(0u64..2000, 0..8),
        pa in 1usize..4, pb in 1usize..4,
    ) {
        let tb = table(&big.iter().map(|k| (*k, *k)).collect::<Vec<_>>(), pa);
        let ts = table(&small.iter().map(|k| (*k, 1u64)).collect::<Vec<_>>(), pb);
        let expected: Vec<(u64, u64)> = small
            .iter()
            .copied()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .filter(|k| big.contains(k))
            .map(|k| (k, k + 1))
            .collect();
        prop_assert_eq!(tb.join(&ts, |x, y| x + y).collect(), expected.clone());
        prop_assert_eq!(ts.join(&tb, |y, x| x + y).collect(), expected);
    }

    #[test]
    fn reduce_matches_fold(rows in rows_strategy(), parts in 1usize..8) {
        let t = table(&rows, parts);
        let m = model(&rows);
        prop_assert_eq!(t.reduce(i64::wrapping_add), m.values().copied().reduce(i64::wrapping_add));
        prop_assert_eq!(t.reduce(i64::max), m.values().copied().max());
    }

    #[test]
    fn sample_is_a_deterministic_subset(
        rows in rows_strategy(), parts in 1usize..8, fraction in 0.0f64..1.0, seed in any::<u64>(),
    ) {
        let t = table(&rows, parts);
        let m = model(&rows);
        let s = t.sample(fraction, seed);
        assert_invariants(&s);
        for (k, v) in s.collect() {
            prop_assert_eq!(m.get(&k), Some(&v));
        }
        prop_assert_eq!(s.collect(), t.sample(fraction, seed).collect());
        // Independent of the partitioning.
        prop_assert_eq!(s.collect(), t.repartition(parts % 7 + 1).sample(fraction, seed).collect());
        prop_assert_eq!(t.sample(0.0, seed).count(), 0);
        prop_assert_eq!(t.sample(f64::NAN, seed).count(), 0);
        prop_assert_eq!(t.sample(1.0, seed).collect(), rows_of(&m));
    }

    #[test]
    fn repartition_keeps_rows(rows in rows_strategy(), parts in 1usize..8, to in 1usize..8) {
        let t = table(&rows, parts);
        let r = t.repartition(to);
        assert_invariants(&r);
        prop_assert_eq!(r.num_partitions(), to);
        prop_assert_eq!(r.collect(), rows_of(&model(&rows)));
    }

    #[test]
    fn from_partitions_checks_placement(rows in rows_strategy(), parts in 1usize..8) {
        let t = table(&rows, parts);
        // Unsorted partitions are accepted and sorted.
        let reversed: Vec<Vec<_>> =
            t.partitions().iter().map(|p| p.iter().rev().cloned().collect()).collect();
        let back = Table::from_partitions(computing(), reversed).unwrap();
        assert_invariants(&back);
        prop_assert_eq!(back.collect(), t.collect());
        if parts > 1 && let Some(i) = t.partitions().iter().position(|p| !p.is_empty()) {
            let mut moved = t.partitions().to_vec();
            let row = moved[i].pop().unwrap();
            moved[(i + 1) % parts].push(row);
            let err = Table::from_partitions(computing(), moved).unwrap_err();
            prop_assert!(err.to_string().contains("belongs in partition"), "{}", err);
        }
        if let Some(i) = t.partitions().iter().position(|p| !p.is_empty()) {
            let mut doubled = t.partitions().to_vec();
            let row = doubled[i][0];
            doubled[i].push(row);
            let err = Table::from_partitions(computing(), doubled).unwrap_err();
            prop_assert!(err.to_string().contains("occurs twice"), "{}", err);
        }
    }
}

#[test]
fn parallelize_last_row_wins_and_default_partitions() {
    let t = computing().parallelize(
        [(1u64, "a"), (2, "b"), (1, "c")].map(|(k, v)| (k, v.to_string())),
        0,
    );
    assert_eq!(t.num_partitions(), 4);
    assert_eq!(
        t.collect(),
        vec![(1, "c".to_string()), (2, "b".to_string())]
    );
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
    let seen = t.map_partitions(|p| {
        let name = std::thread::current().name().unwrap_or("").to_string();
        vec![(p.len() as u64, (rayon::current_num_threads(), name))]
    });
    for (_, (threads, name)) in seen.collect() {
        assert_eq!(threads, 3);
        assert!(
            name.starts_with("fate-computing-"),
            "ran on thread `{name}`"
        );
    }
    let threads = t.reduce(|_, _| rayon::current_num_threads() as u64);
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
    assert_eq!(t.collect(), rows_of(&model(&rows)));
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
        assert_eq!(loaded.collect(), old.collect());
        assert_eq!(loaded.num_partitions(), 2);
        new.save("keep", "t", true).unwrap();
        let loaded: Table<u64, u64> = c.load("keep", "t").unwrap();
        assert_eq!(loaded.collect(), new.collect());
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
    assert_eq!(c.load::<u64, u64>("bad", "empty").unwrap().count(), 0);

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
