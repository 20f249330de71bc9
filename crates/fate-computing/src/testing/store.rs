//! The conformance suite every [`TableStore`] must pass (feature `testing`, never in release
//! builds): `fate-computing` runs it on [`crate::MemoryStore`] and [`crate::RedbStore`],
//! `fate-storage` on `file://`, HDFS and S3.

use crate::error::ComputingError;
use crate::store::{StoredRow as Row, TableStore};
use std::sync::Arc;

/// How the suite reaches one store.
pub struct StoreUnderTest<'a> {
    /// Opens the store, again each time it is called, on the same data (a node restart).
    /// The store starts empty.
    pub open: &'a dyn Fn() -> Arc<dyn TableStore>,
    /// Makes the `n`-th (1-based) object written from now on fail, once. `None` for a store
    /// whose `put` is one transaction (redb, memory): it cannot fail midway.
    pub fail_write: Option<&'a dyn Fn(usize)>,
    /// Names become paths in this store: names that `fate_types::ids::check_name` refuses
    /// (`..`, `a/b`, ...) must be refused with [`ComputingError::InvalidName`].
    pub names_are_paths: bool,
}

/// A partition of `n` rows with distinct keys; `seed` varies the values.
pub fn rows(n: usize, seed: u8) -> Vec<Row> {
    (0..n)
        .map(|i| {
            let key = (i as u64).to_be_bytes().to_vec();
            let value = vec![seed; i % 7];
            (key, value)
        })
        .collect()
}

fn tables(store: &dyn TableStore) -> Vec<(String, String, usize)> {
    store.list().expect("list tables")
}

/// Runs every check on the store; panics with a message naming the failed check.
pub fn table_store_conformance(s: &StoreUnderTest<'_>) {
    let store = (s.open)();
    assert_eq!(store.get("ns", "t").unwrap(), None, "empty store: get");
    assert!(!store.exists("ns", "t").unwrap(), "empty store: exists");
    assert!(tables(&*store).is_empty(), "empty store: list");

    // Put: empty partitions, empty keys and values and a 1 MiB value survive as they are.
    let first: Vec<Vec<Row>> = vec![
        rows(50, 1),
        Vec::new(),
        vec![(Vec::new(), Vec::new()), (vec![0], vec![0xab; 1 << 20])],
    ];
    store.put("ns", "t", first.clone(), false).unwrap();
    store.put("ns", "u", vec![rows(3, 2)], false).unwrap();
    assert!(store.exists("ns", "t").unwrap(), "exists after put");
    assert_eq!(
        store.get("ns", "t").unwrap().as_ref(),
        Some(&first),
        "get after put"
    );

    // Without overwrite an existing table stays.
    let err = store.put("ns", "t", vec![rows(1, 9)], false).unwrap_err();
    assert!(matches!(err, ComputingError::TableExists { .. }), "{err}");
    assert!(err.to_string().contains("ns.t"), "{err}");
    assert_eq!(store.get("ns", "t").unwrap().as_ref(), Some(&first), "kept");

    // Overwrite with fewer partitions leaves nothing of the old table.
    let second = vec![rows(20, 3)];
    store.put("ns", "t", second.clone(), true).unwrap();
    assert_eq!(
        store.get("ns", "t").unwrap().as_ref(),
        Some(&second),
        "overwritten"
    );
    store
        .put("other", "t", vec![rows(2, 4), rows(2, 5)], false)
        .unwrap();
    assert_eq!(
        tables(&*store),
        vec![
            ("ns".into(), "t".into(), 1),
            ("ns".into(), "u".into(), 1),
            ("other".into(), "t".into(), 2)
        ],
        "list"
    );

    // A restart: a fresh handle sees the same tables.
    drop(store);
    let store = (s.open)();
    assert_eq!(
        store.get("ns", "t").unwrap().as_ref(),
        Some(&second),
        "after reopening"
    );
    assert_eq!(tables(&*store).len(), 3, "list after reopening");

    // Delete.
    assert!(store.delete("ns", "u").unwrap(), "delete");
    assert!(!store.delete("ns", "u").unwrap(), "delete twice");
    assert_eq!(store.get("ns", "u").unwrap(), None, "get after delete");
    assert!(!store.exists("ns", "u").unwrap(), "exists after delete");
    // A deleted table can be written again.
    store.put("ns", "u", vec![rows(4, 6)], false).unwrap();
    assert_eq!(store.get("ns", "u").unwrap(), Some(vec![rows(4, 6)]));

    let err = store.put("ns", "z", Vec::new(), false).unwrap_err();
    assert!(
        err.to_string().contains("cannot store 0 partitions"),
        "{err}"
    );
    assert!(
        !store.exists("ns", "z").unwrap(),
        "zero partitions write nothing"
    );

    if let Some(fail_write) = s.fail_write {
        // A put that fails midway (the second of three partitions) or at its last write
        // leaves no new table, and the previous table unchanged.
        for nth in [2, 4] {
            fail_write(nth);
            let err = store
                .put(
                    "atomic",
                    "fresh",
                    vec![rows(5, 7), rows(5, 7), rows(5, 7)],
                    false,
                )
                .unwrap_err();
            assert!(
                err.to_string().contains("atomic.fresh")
                    || err.to_string().contains("atomic/fresh"),
                "{err}"
            );
            assert!(
                !store.exists("atomic", "fresh").unwrap(),
                "failed put #{nth}: exists"
            );
            assert_eq!(
                store.get("atomic", "fresh").unwrap(),
                None,
                "failed put #{nth}"
            );
            fail_write(nth);
            store
                .put("ns", "t", vec![rows(5, 8), rows(5, 8), rows(5, 8)], true)
                .unwrap_err();
            assert_eq!(
                store.get("ns", "t").unwrap().as_ref(),
                Some(&second),
                "failed overwrite #{nth} keeps the old table"
            );
        }
        assert!(
            !tables(&*store).iter().any(|(ns, _, _)| ns == "atomic"),
            "failed puts are not listed"
        );
        // The store still works after failures.
        store
            .put("atomic", "fresh", vec![rows(5, 7)], false)
            .unwrap();
        assert_eq!(
            store.get("atomic", "fresh").unwrap(),
            Some(vec![rows(5, 7)])
        );
    }

    if s.names_are_paths {
        let before = tables(&*store).len();
        for (ns, name) in [
            ("..", "t"),
            ("ns", ".."),
            ("../etc", "t"),
            ("ns", "a/b"),
            ("", "t"),
            ("ns", ""),
            ("ns", ".hidden"),
            ("ns", "a\\b"),
            ("n s", "t"),
        ] {
            for result in [
                store.put(ns, name, vec![rows(1, 1)], true).map(|_| ()),
                store.get(ns, name).map(|_| ()),
                store.exists(ns, name).map(|_| ()),
                store.delete(ns, name).map(|_| ()),
            ] {
                let err = result.expect_err("a bad name is refused");
                assert!(
                    matches!(err, ComputingError::InvalidName { .. }),
                    "{ns:?}.{name:?}: {err}"
                );
            }
        }
        assert_eq!(tables(&*store).len(), before, "bad names wrote nothing");
    }
}
