//! Where persisted partitions live.
//!
//! A [`TableStore`] holds a table's partitions as rows of encoded bytes ([`StoredRow`]: the postcard
//! encoding of the key, the postcard encoding of the value) under `(namespace, name)`, so a
//! store can keep them in a form other engines read (fate-storage writes one Parquet file of
//! `key BINARY, value BINARY` per partition). [`RedbStore`] is the standalone engine's store,
//! one redb file per data directory; [`MemoryStore`] keeps tables for the life of the process.
//! Stores keep rows as given: the placement and order invariants are checked by
//! [`crate::Computing::load`], not by the store.

use crate::error::{BoxError, ComputingError};
use parking_lot::{Condvar, Mutex, RwLock};
use redb::{Database, ReadableTable, TableDefinition, TableError};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};

/// One stored row: the postcard encoding of the key and the postcard encoding of the value.
pub type StoredRow = (Vec<u8>, Vec<u8>);

/// Persistence of table partitions as rows. `put` must be atomic: after a failed `put` the
/// previous table (if any) is unchanged and no partial table is visible.
pub trait TableStore: Send + Sync {
    /// Stores `partitions` (at least one) as `namespace.name`. Without `overwrite`, an existing
    /// table is an error ([`ComputingError::TableExists`]) and stays unchanged.
    fn put(
        &self,
        namespace: &str,
        name: &str,
        partitions: Vec<Vec<StoredRow>>,
        overwrite: bool,
    ) -> Result<(), ComputingError>;
    /// The stored partitions of `namespace.name`, rows in the order they were put, or `None`
    /// if there is no such table.
    fn get(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Vec<Vec<StoredRow>>>, ComputingError>;
    /// Deletes `namespace.name`; `false` if there was no such table.
    fn delete(&self, namespace: &str, name: &str) -> Result<bool, ComputingError>;
    /// Whether `namespace.name` exists.
    fn exists(&self, namespace: &str, name: &str) -> Result<bool, ComputingError>;
    /// Every stored table as `(namespace, name, partitions)`, sorted.
    fn list(&self) -> Result<Vec<(String, String, usize)>, ComputingError>;
    /// FATE's storage engine name of this store, recorded in a table's metadata (`engine`).
    fn engine(&self) -> &'static str {
        "standalone"
    }
    /// Where table `namespace.name` lives in this store, recorded in its metadata (FATE's
    /// `address`): `namespace/name` unless the store has an address of its own (a URI).
    fn address(&self, namespace: &str, name: &str) -> String {
        format!("{namespace}/{name}")
    }
}

/// Version of the layout of [`RedbStore`]: 2 stores rows (`encode_rows`). Version 1 (one
/// opaque postcard blob per partition, before rows) is refused with
/// [`ComputingError::UnsupportedVersion`] naming the table: it cannot be read without the
/// table's types, so such a table must be uploaded again.
pub const STORE_FORMAT_VERSION: u8 = 2;

/// The file inside the data directory.
pub const REDB_FILE: &str = "tables.redb";

/// Header row per table: `[STORE_FORMAT_VERSION, partitions as u32 little-endian]`.
const HEADERS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("fate_table_headers");
/// One row per partition, keyed by `(namespace, name, partition index)`: its rows as
/// [`encode_rows`] writes them.
const PARTITIONS: TableDefinition<(&str, &str, u32), &[u8]> =
    TableDefinition::new("fate_table_partitions");

fn redb_err<E: Into<redb::Error>>(op: impl Into<String>) -> impl FnOnce(E) -> ComputingError {
    let op = op.into();
    move |e| ComputingError::Store {
        backend: "redb",
        op,
        source: Box::new(e.into()) as BoxError,
    }
}

fn encode_header(partitions: u32) -> [u8; 5] {
    let n = partitions.to_le_bytes();
    [STORE_FORMAT_VERSION, n[0], n[1], n[2], n[3]]
}

fn decode_header(namespace: &str, name: &str, bytes: &[u8]) -> Result<u32, ComputingError> {
    let what = || format!("header of table {namespace}.{name}");
    match bytes {
        [STORE_FORMAT_VERSION, a, b, c, d] => Ok(u32::from_le_bytes([*a, *b, *c, *d])),
        [version, ..] if *version != STORE_FORMAT_VERSION => {
            Err(ComputingError::UnsupportedVersion {
                what: what(),
                found: *version,
                expected: STORE_FORMAT_VERSION,
            })
        }
        _ => Err(ComputingError::Corrupt {
            what: what(),
            reason: format!("expected 5 bytes, found {}", bytes.len()),
        }),
    }
}

fn partition_count(namespace: &str, name: &str, n: usize) -> Result<u32, ComputingError> {
    match u32::try_from(n) {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(ComputingError::Corrupt {
            what: format!("table {namespace}.{name}"),
            reason: format!("cannot store {n} partitions (allowed 1..={})", u32::MAX),
        }),
    }
}

/// A partition's rows in one redb value: the row count as u64 little-endian, then per row the
/// key length (u32 LE), the key, the value length (u32 LE), the value.
fn encode_rows(rows: &[StoredRow]) -> Result<Vec<u8>, String> {
    let size: usize = rows.iter().map(|(k, v)| 8 + k.len() + v.len()).sum();
    let mut out = Vec::with_capacity(8 + size);
    out.extend_from_slice(&(rows.len() as u64).to_le_bytes());
    for (k, v) in rows {
        for part in [k, v] {
            let len = u32::try_from(part.len())
                .map_err(|_| format!("a row part of {} bytes exceeds 4 GiB", part.len()))?;
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(part);
        }
    }
    Ok(out)
}

/// Reads what [`encode_rows`] wrote; every length is checked against the bytes left before
/// anything is allocated.
fn decode_rows(bytes: &[u8]) -> Result<Vec<StoredRow>, String> {
    fn take<'a>(bytes: &mut &'a [u8], n: usize, what: &str) -> Result<&'a [u8], String> {
        if bytes.len() < n {
            return Err(format!("{what}: needs {n} bytes, {} left", bytes.len()));
        }
        let (head, rest) = bytes.split_at(n);
        *bytes = rest;
        Ok(head)
    }
    let mut rest = bytes;
    let count = u64::from_le_bytes(
        take(&mut rest, 8, "row count")?
            .try_into()
            .unwrap_or([0; 8]),
    );
    // Every row needs at least 8 bytes of lengths, which bounds the allocation.
    if count > (rest.len() / 8) as u64 {
        return Err(format!("{count} rows announced in {} bytes", rest.len()));
    }
    let mut rows = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let mut part = || -> Result<Vec<u8>, String> {
            let len = take(&mut rest, 4, "row length")?;
            let len = u32::from_le_bytes(len.try_into().unwrap_or([0; 4])) as usize;
            Ok(take(&mut rest, len, "row")?.to_vec())
        };
        let k = part()?;
        let v = part()?;
        rows.push((k, v));
    }
    if !rest.is_empty() {
        return Err(format!("{} trailing bytes after the rows", rest.len()));
    }
    Ok(rows)
}

/// Process-wide registry of open redb files: redb locks its file, so two `Computing`s on the
/// same data directory must share one `Database`.
struct Registry {
    open: Mutex<HashMap<PathBuf, (u64, Weak<RedbStore>)>>,
    closed: Condvar,
}

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| Registry {
        open: Mutex::new(HashMap::new()),
        closed: Condvar::new(),
    })
}

static NEXT_STORE_ID: AtomicU64 = AtomicU64::new(0);

/// The standalone engine's store: one redb database `<data_dir>/tables.redb`, header rows keyed
/// by `(namespace, name)` and partition rows keyed by `(namespace, name, index)`. Each `put` and
/// `delete` is one redb write transaction, hence atomic.
pub struct RedbStore {
    id: u64,
    path: PathBuf,
    db: Option<Database>,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.path)
            .finish()
    }
}

impl RedbStore {
    /// Opens (creating if needed) the store in `data_dir`. Opening a directory that is already
    /// open in this process returns the same store.
    pub fn open(data_dir: &Path) -> Result<Arc<RedbStore>, ComputingError> {
        let io_err = |op: String| {
            move |e: std::io::Error| ComputingError::Store {
                backend: "redb",
                op,
                source: Box::new(e),
            }
        };
        std::fs::create_dir_all(data_dir).map_err(io_err(format!(
            "create data directory {}",
            data_dir.display()
        )))?;
        let dir = data_dir.canonicalize().map_err(io_err(format!(
            "resolve data directory {}",
            data_dir.display()
        )))?;
        let path = dir.join(REDB_FILE);
        let reg = registry();
        let mut open = reg.open.lock();
        while let Some((_, weak)) = open.get(&path) {
            match weak.upgrade() {
                Some(store) => return Ok(store),
                // The last handle is being dropped right now; wait until its file is closed.
                None => reg.closed.wait(&mut open),
            }
        }
        let db = Database::create(&path).map_err(redb_err(format!("open {}", path.display())))?;
        let id = NEXT_STORE_ID.fetch_add(1, Ordering::Relaxed);
        let store = Arc::new(RedbStore {
            id,
            path: path.clone(),
            db: Some(db),
        });
        open.insert(path, (id, Arc::downgrade(&store)));
        tracing::debug!(path = %store.path.display(), "opened table store");
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn db(&self) -> &Database {
        // Only `Drop` takes the database out.
        self.db
            .as_ref()
            .expect("RedbStore database is present until drop")
    }
}

impl Drop for RedbStore {
    fn drop(&mut self) {
        let reg = registry();
        let mut open = reg.open.lock();
        // Close the file while holding the registry lock, so a concurrent `open` of the same
        // directory either finds this entry (and waits) or finds the file closed.
        drop(self.db.take());
        if open.get(&self.path).is_some_and(|(id, _)| *id == self.id) {
            open.remove(&self.path);
        }
        reg.closed.notify_all();
    }
}

impl TableStore for RedbStore {
    fn put(
        &self,
        namespace: &str,
        name: &str,
        partitions: Vec<Vec<StoredRow>>,
        overwrite: bool,
    ) -> Result<(), ComputingError> {
        let n = partition_count(namespace, name, partitions.len())?;
        let encoded = partitions
            .iter()
            .enumerate()
            .map(|(i, rows)| {
                encode_rows(rows).map_err(|reason| ComputingError::Corrupt {
                    what: format!("table {namespace}.{name} partition {i}"),
                    reason,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let op = |what: &str| format!("{what} table {namespace}.{name}");
        let txn = self.db().begin_write().map_err(redb_err(op("save")))?;
        {
            let mut headers = txn.open_table(HEADERS).map_err(redb_err(op("save")))?;
            let exists = headers
                .get((namespace, name))
                .map_err(redb_err(op("save")))?
                .is_some();
            if exists && !overwrite {
                // Dropping the transaction aborts it; nothing was written.
                return Err(ComputingError::TableExists {
                    namespace: namespace.to_string(),
                    name: name.to_string(),
                });
            }
            let mut parts = txn.open_table(PARTITIONS).map_err(redb_err(op("save")))?;
            // Remove every old partition by range, so a corrupt old header cannot leave orphans.
            parts
                .retain_in(
                    (namespace, name, 0u32)..=(namespace, name, u32::MAX),
                    |_, _| false,
                )
                .map_err(redb_err(op("replace")))?;
            for (idx, bytes) in (0..n).zip(&encoded) {
                parts
                    .insert((namespace, name, idx), bytes.as_slice())
                    .map_err(redb_err(format!(
                        "write partition {idx} of {namespace}.{name}"
                    )))?;
            }
            headers
                .insert((namespace, name), encode_header(n).as_slice())
                .map_err(redb_err(op("save")))?;
        }
        txn.commit().map_err(redb_err(op("commit")))?;
        Ok(())
    }

    fn get(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Vec<Vec<StoredRow>>>, ComputingError> {
        let op = || format!("read table {namespace}.{name}");
        let txn = self.db().begin_read().map_err(redb_err(op()))?;
        let headers = match txn.open_table(HEADERS) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(redb_err(op())(e)),
        };
        let Some(header) = headers.get((namespace, name)).map_err(redb_err(op()))? else {
            return Ok(None);
        };
        let n = decode_header(namespace, name, header.value())?;
        let parts = txn.open_table(PARTITIONS).map_err(redb_err(op()))?;
        let mut out = Vec::with_capacity(n.min(1 << 16) as usize);
        for idx in 0..n {
            let Some(bytes) = parts.get((namespace, name, idx)).map_err(redb_err(op()))? else {
                return Err(ComputingError::Corrupt {
                    what: format!("table {namespace}.{name}"),
                    reason: format!("partition {idx} of {n} is missing"),
                });
            };
            let rows = decode_rows(bytes.value()).map_err(|reason| ComputingError::Corrupt {
                what: format!("table {namespace}.{name} partition {idx} of {n}"),
                reason,
            })?;
            out.push(rows);
        }
        Ok(Some(out))
    }

    fn delete(&self, namespace: &str, name: &str) -> Result<bool, ComputingError> {
        let op = || format!("delete table {namespace}.{name}");
        let txn = self.db().begin_write().map_err(redb_err(op()))?;
        let existed = {
            let mut headers = txn.open_table(HEADERS).map_err(redb_err(op()))?;
            let existed = headers
                .remove((namespace, name))
                .map_err(redb_err(op()))?
                .is_some();
            let mut parts = txn.open_table(PARTITIONS).map_err(redb_err(op()))?;
            parts
                .retain_in(
                    (namespace, name, 0u32)..=(namespace, name, u32::MAX),
                    |_, _| false,
                )
                .map_err(redb_err(op()))?;
            existed
        };
        txn.commit().map_err(redb_err(op()))?;
        Ok(existed)
    }

    fn exists(&self, namespace: &str, name: &str) -> Result<bool, ComputingError> {
        let op = || format!("look up table {namespace}.{name}");
        let txn = self.db().begin_read().map_err(redb_err(op()))?;
        let headers = match txn.open_table(HEADERS) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(false),
            Err(e) => return Err(redb_err(op())(e)),
        };
        Ok(headers
            .get((namespace, name))
            .map_err(redb_err(op()))?
            .is_some())
    }

    fn list(&self) -> Result<Vec<(String, String, usize)>, ComputingError> {
        let op = "list tables";
        let txn = self.db().begin_read().map_err(redb_err(op))?;
        let headers = match txn.open_table(HEADERS) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(redb_err(op)(e)),
        };
        let mut out = Vec::new();
        for row in headers.iter().map_err(redb_err(op))? {
            let (key, header) = row.map_err(redb_err(op))?;
            let (namespace, name) = key.value();
            let n = decode_header(namespace, name, header.value())?;
            out.push((namespace.to_string(), name.to_string(), n as usize));
        }
        Ok(out)
    }
}

/// Encoded partitions by `(namespace, name)`.
type StoredTables = BTreeMap<(String, String), Arc<Vec<Vec<StoredRow>>>>;

/// Tables kept in memory for the life of the store (used when no data directory is configured).
#[derive(Debug, Default)]
pub struct MemoryStore {
    tables: RwLock<StoredTables>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl TableStore for MemoryStore {
    fn put(
        &self,
        namespace: &str,
        name: &str,
        partitions: Vec<Vec<StoredRow>>,
        overwrite: bool,
    ) -> Result<(), ComputingError> {
        partition_count(namespace, name, partitions.len())?;
        let mut tables = self.tables.write();
        let key = (namespace.to_string(), name.to_string());
        if !overwrite && tables.contains_key(&key) {
            return Err(ComputingError::TableExists {
                namespace: namespace.to_string(),
                name: name.to_string(),
            });
        }
        tables.insert(key, Arc::new(partitions));
        Ok(())
    }

    fn get(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Vec<Vec<StoredRow>>>, ComputingError> {
        let tables = self.tables.read();
        let key = (namespace.to_string(), name.to_string());
        Ok(tables.get(&key).map(|parts| parts.as_ref().clone()))
    }

    fn delete(&self, namespace: &str, name: &str) -> Result<bool, ComputingError> {
        let key = (namespace.to_string(), name.to_string());
        Ok(self.tables.write().remove(&key).is_some())
    }

    fn exists(&self, namespace: &str, name: &str) -> Result<bool, ComputingError> {
        let key = (namespace.to_string(), name.to_string());
        Ok(self.tables.read().contains_key(&key))
    }

    fn list(&self) -> Result<Vec<(String, String, usize)>, ComputingError> {
        Ok(self
            .tables
            .read()
            .iter()
            .map(|((ns, name), parts)| (ns.clone(), name.clone(), parts.len()))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One partition of one row per byte: key `[b]`, value `[b, b]`.
    fn p(bytes: &[u8]) -> Vec<StoredRow> {
        bytes.iter().map(|&b| (vec![b], vec![b, b])).collect()
    }

    fn stores(dir: &Path) -> Vec<Arc<dyn TableStore>> {
        vec![RedbStore::open(dir).unwrap(), Arc::new(MemoryStore::new())]
    }

    #[test]
    fn put_get_delete_list() {
        let dir = tempfile::tempdir().unwrap();
        for store in stores(dir.path()) {
            assert_eq!(store.get("ns", "t").unwrap(), None);
            assert!(!store.exists("ns", "t").unwrap());
            assert!(store.list().unwrap().is_empty());
            store
                .put("ns", "t", vec![p(&[1, 2]), p(&[]), p(&[3])], false)
                .unwrap();
            store.put("ns", "u", vec![p(&[9])], false).unwrap();
            assert!(store.exists("ns", "t").unwrap());
            assert_eq!(
                store.get("ns", "t").unwrap(),
                Some(vec![p(&[1, 2]), p(&[]), p(&[3])])
            );
            let err = store.put("ns", "t", vec![p(&[7])], false).unwrap_err();
            assert!(matches!(err, ComputingError::TableExists { .. }), "{err}");
            assert_eq!(
                store.get("ns", "t").unwrap().unwrap().len(),
                3,
                "old table kept"
            );
            // Overwrite with fewer partitions leaves no old partition behind.
            store.put("ns", "t", vec![p(&[7])], true).unwrap();
            assert_eq!(store.get("ns", "t").unwrap(), Some(vec![p(&[7])]));
            assert_eq!(
                store.list().unwrap(),
                vec![("ns".into(), "t".into(), 1), ("ns".into(), "u".into(), 1)]
            );
            assert!(store.delete("ns", "t").unwrap());
            assert!(!store.delete("ns", "t").unwrap());
            assert_eq!(store.get("ns", "t").unwrap(), None);
            let err = store.put("ns", "z", vec![], false).unwrap_err();
            assert!(
                err.to_string().contains("cannot store 0 partitions"),
                "{err}"
            );
        }
    }

    #[test]
    fn same_directory_shares_one_database() {
        let dir = tempfile::tempdir().unwrap();
        let a = RedbStore::open(dir.path()).unwrap();
        let b = RedbStore::open(&dir.path().join(".")).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        drop((a, b));
        // After the last handle is gone the file can be opened again (redb locks it).
        let c = RedbStore::open(dir.path()).unwrap();
        c.put("ns", "t", vec![p(&[1])], false).unwrap();
    }

    fn write_raw(path: &Path, f: impl FnOnce(&redb::WriteTransaction)) {
        let db = Database::create(path).unwrap();
        let txn = db.begin_write().unwrap();
        f(&txn);
        txn.commit().unwrap();
    }

    #[test]
    fn corrupt_headers_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = {
            let store = RedbStore::open(dir.path()).unwrap();
            store.put("ns", "t", vec![p(&[1]), p(&[2])], false).unwrap();
            store.path().to_path_buf()
        };
        write_raw(&path, |txn| {
            let mut h = txn.open_table(HEADERS).unwrap();
            h.insert(("ns", "v9"), [9u8, 1, 0, 0, 0].as_slice())
                .unwrap();
            h.insert(("ns", "short"), [STORE_FORMAT_VERSION, 1].as_slice())
                .unwrap();
            // Claims three partitions; only two are stored.
            h.insert(("ns", "t"), encode_header(3).as_slice()).unwrap();
        });
        write_raw(&path, |txn| {
            // A table as version 1 wrote it: header version 1, one opaque blob per partition.
            txn.open_table(HEADERS)
                .unwrap()
                .insert(("ns", "v1"), [1u8, 1, 0, 0, 0].as_slice())
                .unwrap();
            let mut parts = txn.open_table(PARTITIONS).unwrap();
            parts.insert(("ns", "v1", 0), [1u8, 0].as_slice()).unwrap();
            // Version 2 header, but the partition's rows are cut short.
            txn.open_table(HEADERS)
                .unwrap()
                .insert(("ns", "cut"), encode_header(1).as_slice())
                .unwrap();
            let mut rows = encode_rows(&p(&[1, 2, 3])).unwrap();
            rows.truncate(rows.len() - 1);
            parts.insert(("ns", "cut", 0), rows.as_slice()).unwrap();
        });
        let store = RedbStore::open(dir.path()).unwrap();
        let err = store.get("ns", "v1").unwrap_err();
        assert!(
            matches!(
                err,
                ComputingError::UnsupportedVersion {
                    found: 1,
                    expected: 2,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("header of table ns.v1"), "{err}");
        let err = store.get("ns", "cut").unwrap_err();
        assert!(
            err.to_string().contains(
                "table ns.cut partition 0 of 1: corrupt data: row: needs 2 bytes, 1 left"
            ),
            "{err}"
        );
        let err = store.get("ns", "v9").unwrap_err();
        assert!(
            matches!(err, ComputingError::UnsupportedVersion { found: 9, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("ns.v9"), "{err}");
        let err = store.get("ns", "short").unwrap_err();
        assert!(
            err.to_string().contains("expected 5 bytes, found 2"),
            "{err}"
        );
        let err = store.get("ns", "t").unwrap_err();
        assert!(
            err.to_string().contains("partition 2 of 3 is missing"),
            "{err}"
        );
        assert!(store.list().is_err());
        // A corrupt table can still be replaced and deleted.
        store.put("ns", "v9", vec![p(&[5])], true).unwrap();
        assert_eq!(store.get("ns", "v9").unwrap(), Some(vec![p(&[5])]));
        assert!(store.delete("ns", "short").unwrap());
    }
}

#[cfg(test)]
mod row_tests {
    use super::*;

    #[test]
    fn rows_round_trip_and_hostile_counts_are_refused() {
        let rows: Vec<StoredRow> = vec![
            (vec![], vec![1]),
            (vec![2, 3], vec![]),
            (vec![4], vec![5; 300]),
        ];
        assert_eq!(decode_rows(&encode_rows(&rows).unwrap()).unwrap(), rows);
        assert_eq!(
            decode_rows(&encode_rows(&[]).unwrap()).unwrap(),
            Vec::<StoredRow>::new()
        );
        // A count of 2^64-1 rows in 8 bytes is refused before any allocation.
        let err = decode_rows(&[0xff; 16]).unwrap_err();
        assert!(err.contains("rows announced in 8 bytes"), "{err}");
        let err = decode_rows(&[1, 2]).unwrap_err();
        assert!(err.contains("row count: needs 8 bytes, 2 left"), "{err}");
        let mut long = encode_rows(&rows).unwrap();
        long.push(0);
        assert!(decode_rows(&long).unwrap_err().contains("1 trailing bytes"));
        // A row length beyond the data.
        let mut bad = encode_rows(&[(vec![1], vec![2])]).unwrap();
        bad[8] = 200;
        assert!(decode_rows(&bad).unwrap_err().contains("needs 200 bytes"));
    }
}
