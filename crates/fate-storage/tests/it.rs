//! fate-storage against real storage: a local directory, HDFS (Hadoop's MiniDFSCluster) and
//! S3 (moto), the servers started on loopback by `scripts/services/*.sh`.

mod support;

use fate_computing::testing::store::rows as store_rows;
use fate_computing::testing::{StoreUnderTest, table_store_conformance};
use fate_computing::{Computing, ComputingConfig, ComputingError, Table, TableStore};
use fate_storage::{ObjectTableStore, S3Settings, StorageConfig, StorageUri, build_operator};
use std::sync::Arc;
use std::time::Duration;
use support::{Server, free_port};

fn config(uri: &str) -> StorageConfig {
    StorageConfig {
        uri: StorageUri::parse(uri).unwrap(),
        s3: S3Settings::default(),
        max_object_bytes: fate_storage::DEFAULT_MAX_OBJECT_BYTES,
        timeout: Duration::from_secs(60),
    }
}

fn s3_config(endpoint: &str, uri: &str) -> StorageConfig {
    StorageConfig {
        s3: S3Settings {
            endpoint: Some(endpoint.to_string()),
            region: Some("us-east-1".into()),
            access_key_id: Some("fate-test".into()),
            secret_access_key: Some("fate-test-secret".into()),
            ..S3Settings::default()
        },
        ..config(uri)
    }
}

fn conformance(cfg: &StorageConfig) {
    let last: std::sync::Mutex<Option<Arc<ObjectTableStore>>> = Default::default();
    let open = || {
        let store = ObjectTableStore::open(cfg.clone()).unwrap();
        *last.lock().unwrap() = Some(Arc::clone(&store));
        store as Arc<dyn TableStore>
    };
    let fail_write = |nth: usize| {
        last.lock()
            .unwrap()
            .as_ref()
            .expect("the suite opened the store")
            .fail_write(nth)
    };
    table_store_conformance(&StoreUnderTest {
        open: &open,
        fail_write: Some(&fail_write),
        names_are_paths: true,
    });
}

/// Writes `bytes` over the object at `path` (relative to the store's root), behind the store.
fn overwrite_object(cfg: &StorageConfig, path: &str, bytes: Option<Vec<u8>>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let op = {
        let _entered = rt.enter();
        build_operator(&cfg.uri, &cfg.s3).unwrap()
    };
    rt.block_on(async {
        match bytes {
            Some(b) => op.write(path, b).await.map(|_| ()),
            None => op.delete(path).await,
        }
    })
    .unwrap();
}

fn computing(store: Arc<dyn TableStore>) -> Computing {
    Computing::with_store(
        ComputingConfig {
            cores: 2,
            default_partitions: 4,
            data_dir: None,
        },
        store,
    )
    .unwrap()
}

/// Tables through `Computing`: they survive a restart, corrupt or missing partitions and
/// oversized files are errors naming the full URI, a failed upload leaves no table, and the
/// store works from rayon threads and inside a tokio runtime.
fn tables_and_failures(cfg: &StorageConfig) {
    let rows: Vec<(String, (u64, f64))> = (0..2000u64)
        .map(|i| (format!("id_{i}"), (i, i as f64 / 7.0)))
        .collect();
    let expected = {
        let store = ObjectTableStore::open(cfg.clone()).unwrap();
        let c = computing(store.clone());
        let t = c.parallelize(rows.clone(), 5);
        t.save("tables", "breast", false).unwrap();
        t.collect(usize::MAX).unwrap()
    };
    // A node restart: a new store on the same URI reads the table back equal.
    let store = ObjectTableStore::open(cfg.clone()).unwrap();
    let c = computing(store.clone());
    let back: Table<String, (u64, f64)> = c.load("tables", "breast").unwrap();
    assert_eq!(back.num_partitions(), 5);
    assert_eq!(back.collect(usize::MAX).unwrap(), expected);
    assert_eq!(
        store.address("tables", "breast"),
        format!(
            "{}/tables/breast",
            cfg.uri.to_string().trim_end_matches('/')
        )
    );

    // An upload that fails midway (third of five partitions) leaves no table.
    store.fail_write(3);
    let err = c
        .parallelize(rows.clone(), 5)
        .save("tables", "half", false)
        .unwrap_err();
    assert!(err.to_string().contains("tables/half/"), "{err}");
    let err = c.load::<String, (u64, f64)>("tables", "half").unwrap_err();
    assert!(matches!(err, ComputingError::TableNotFound { .. }), "{err}");

    // A corrupt partition is an error naming its full URI.
    let parts = store.partition_uris("tables", "breast").unwrap();
    assert_eq!(parts.len(), 5);
    let root = cfg.uri.join("");
    let rel = |uri: &str| {
        uri.strip_prefix(&root)
            .unwrap()
            .trim_start_matches('/')
            .to_string()
    };
    let third = &parts[3];
    assert!(third.ends_with("/part-00003.parquet"), "{third}");
    overwrite_object(
        cfg,
        &rel(third),
        Some(b"PAR1 this is not parquet PAR1".to_vec()),
    );
    let err = c
        .load::<String, (u64, f64)>("tables", "breast")
        .unwrap_err();
    assert!(err.to_string().contains(third.as_str()), "{err}");
    assert!(matches!(err, ComputingError::Corrupt { .. }), "{err}");

    // A missing partition too.
    overwrite_object(cfg, &rel(&parts[1]), None);
    let err = c
        .load::<String, (u64, f64)>("tables", "breast")
        .unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("{}: corrupt data: missing", parts[1])),
        "{err}"
    );

    // A partition larger than the store reads is refused before it is read.
    let small = ObjectTableStore::open(StorageConfig {
        max_object_bytes: 1000,
        ..cfg.clone()
    })
    .unwrap();
    computing(store.clone())
        .parallelize(rows.clone(), 2)
        .save("tables", "big", false)
        .unwrap();
    let err = small.get("tables", "big").unwrap_err();
    let big = store.partition_uris("tables", "big").unwrap();
    assert!(
        err.to_string().contains(&big[0]) && err.to_string().contains("more than the 1000"),
        "{err}"
    );

    // From rayon threads: several tables saved and loaded in parallel.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .build()
        .unwrap();
    pool.install(|| {
        use rayon::prelude::*;
        (0..6).into_par_iter().for_each(|i| {
            let name = format!("rayon_{i}");
            store
                .put("par", &name, vec![store_rows(10, i as u8)], false)
                .unwrap();
            assert_eq!(
                store.get("par", &name).unwrap(),
                Some(vec![store_rows(10, i as u8)])
            );
        });
    });
    // Inside a tokio runtime: on a current-thread runtime's own thread, in spawn_blocking on a
    // multi-thread runtime, and dropped there.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let inner = ObjectTableStore::open(cfg.clone()).unwrap();
        inner
            .put("tokio", "t", vec![store_rows(3, 1)], false)
            .unwrap();
        assert_eq!(
            inner.get("tokio", "t").unwrap(),
            Some(vec![store_rows(3, 1)])
        );
        drop(inner);
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let s2 = store.clone();
    rt.block_on(async move {
        tokio::task::spawn_blocking(move || s2.get("tokio", "t").unwrap())
            .await
            .unwrap()
    })
    .map(|p| assert_eq!(p, vec![store_rows(3, 1)]))
    .unwrap();
}

#[test]
fn file_store_passes_the_conformance_suite_and_keeps_tables() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&format!("file://{}/a", dir.path().display()));
    conformance(&cfg);
    let cfg = config(&format!("file://{}/b", dir.path().display()));
    tables_and_failures(&cfg);
    // A manifest that is not JSON names its URI.
    let table = dir.path().join("b/tables/breast");
    let manifest = std::fs::read_dir(&table)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("_manifest-")
        })
        .unwrap();
    std::fs::write(&manifest, b"{not json").unwrap();
    let store = ObjectTableStore::open(cfg.clone()).unwrap();
    let err = store.get("tables", "breast").unwrap_err();
    assert!(
        err.to_string().contains(&format!(
            "file://{}: corrupt data: not a manifest",
            manifest.display()
        )),
        "{err}"
    );
    // Nothing was written outside the store's root.
    let top: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(top.len(), 2, "{top:?}");
}

#[test]
fn hdfs_store_on_a_real_minidfscluster() {
    let port = free_port().to_string();
    let server = Server::start("hdfs", &["{dir}", &port]);
    assert_eq!(server.address, format!("hdfs://127.0.0.1:{port}"));
    conformance(&config(&format!("{}/fate/conformance", server.address)));
    tables_and_failures(&config(&format!("{}/fate/tables", server.address)));
}

#[test]
fn s3_store_on_a_real_s3_server() {
    let port = free_port().to_string();
    let server = Server::start("s3", &[&port, "fate-conformance", "fate-tables"]);
    conformance(&s3_config(
        &server.address,
        "s3://fate-conformance/site/9999",
    ));
    tables_and_failures(&s3_config(&server.address, "s3://fate-tables"));
    // A bucket that does not exist is an error at open naming the URI.
    let err =
        ObjectTableStore::open(s3_config(&server.address, "s3://no-such-bucket/x")).unwrap_err();
    assert!(err.to_string().contains("s3://no-such-bucket/x"), "{err}");
}

#[test]
fn unreachable_storage_is_a_clear_error_at_open() {
    let port = free_port();
    let cfg = StorageConfig {
        timeout: Duration::from_secs(10),
        ..config(&format!("hdfs://127.0.0.1:{port}/fate"))
    };
    let err = ObjectTableStore::open(cfg).unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("hdfs://127.0.0.1:{port}/fate")),
        "{err}"
    );
    let cfg = StorageConfig {
        timeout: Duration::from_secs(10),
        ..s3_config(&format!("http://127.0.0.1:{port}"), "s3://fate-x/p")
    };
    let err = ObjectTableStore::open(cfg).unwrap_err();
    assert!(err.to_string().contains("s3://fate-x/p"), "{err}");
}
