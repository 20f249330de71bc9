//! The engine handle: a thread pool and a table store.

use crate::engine::Engine;
use crate::error::ComputingError;
use crate::key::{Key, Value, partition_of};
use crate::store::{MemoryStore, RedbStore, TableStore};
use crate::table::{Table, decode_partition, sort_dedup_last, validate_partitions};
use rayon::prelude::*;
use std::path::PathBuf;
use std::sync::Arc;

/// Upper bound on a table's partition count (FATE's default is 8, fate-spec §1.3).
pub const MAX_PARTITIONS: usize = 1 << 16;
/// Upper bound on the thread pool size.
pub const MAX_CORES: usize = 1024;
/// Upper bound on the length of a table namespace or name, in bytes.
pub const MAX_NAME_LEN: usize = 1024;

/// How to build a [`Computing`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComputingConfig {
    /// Threads of the pool that runs partition work (FATE `task_cores`).
    pub cores: usize,
    /// Partitions of a table when the caller does not choose (FATE `computing_partitions`).
    pub default_partitions: usize,
    /// Directory of the persistent table store; `None` keeps saved tables in memory only, for
    /// the life of the `Computing` (and its clones).
    pub data_dir: Option<PathBuf>,
}

impl Default for ComputingConfig {
    /// FATE's standalone defaults: 4 task cores and 8 computing partitions (fate-spec §1.3), no
    /// persistence.
    fn default() -> Self {
        ComputingConfig {
            cores: 4,
            default_partitions: 8,
            data_dir: None,
        }
    }
}

struct Inner {
    pool: rayon::ThreadPool,
    cores: usize,
    default_partitions: usize,
    store: Arc<dyn TableStore>,
    store_name: String,
    /// `None`: the local engine (typed partitions in this process).
    engine: Option<Arc<dyn Engine>>,
}

/// The computing engine: a rayon pool of `cores` threads on which every table operation runs,
/// and the store that `save`/`load` use. Cheap to clone; clones share pool and store.
#[derive(Clone)]
pub struct Computing {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Computing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Computing")
            .field("cores", &self.inner.cores)
            .field("default_partitions", &self.inner.default_partitions)
            .field("store", &self.inner.store_name)
            .field("engine", &self.engine_name())
            .finish()
    }
}

pub(crate) fn check_name(field: &'static str, value: &str) -> Result<(), ComputingError> {
    let reason = if value.is_empty() {
        "must not be empty"
    } else if value.len() > MAX_NAME_LEN {
        "is longer than 1024 bytes"
    } else {
        return Ok(());
    };
    let mut shown: String = value.chars().take(64).collect();
    if shown.len() < value.len() {
        shown.push('…');
    }
    Err(ComputingError::InvalidName {
        field,
        value: shown,
        reason,
    })
}

impl Computing {
    /// Starts the pool and opens the store (`<data_dir>/tables.redb`, or memory).
    pub fn new(cfg: ComputingConfig) -> Result<Self, ComputingError> {
        let (store, store_name): (Arc<dyn TableStore>, String) = match &cfg.data_dir {
            Some(dir) => {
                let store = RedbStore::open(dir)?;
                let name = format!("redb {}", store.path().display());
                (store, name)
            }
            None => (Arc::new(MemoryStore::new()), "memory".to_string()),
        };
        Self::build(cfg, store, store_name, None)
    }

    /// Like [`Computing::new`], with tables held and computed by `engine` instead of this
    /// process's typed partitions (the binary wires concrete engines; components never know).
    pub fn on_engine(
        cfg: ComputingConfig,
        engine: Arc<dyn Engine>,
    ) -> Result<Self, ComputingError> {
        let mut c = Self::new(cfg)?;
        match Arc::get_mut(&mut c.inner) {
            Some(inner) => inner.engine = Some(engine),
            None => unreachable!("a new Computing has one reference"),
        }
        Ok(c)
    }

    /// The engine holding this computing's tables; `None` for the local engine.
    pub(crate) fn engine(&self) -> Option<&Arc<dyn Engine>> {
        self.inner.engine.as_ref()
    }

    /// `local`, or the name of the engine given to [`Computing::on_engine`].
    pub fn engine_name(&self) -> &str {
        self.inner.engine.as_ref().map_or("local", |e| e.name())
    }

    /// Like [`Computing::new`] with a store of the caller's (for example an object store).
    /// `cfg.data_dir` must be `None`.
    pub fn with_store(
        cfg: ComputingConfig,
        store: Arc<dyn TableStore>,
    ) -> Result<Self, ComputingError> {
        if cfg.data_dir.is_some() {
            return Err(ComputingError::InvalidConfig {
                field: "data_dir",
                reason: "must be unset when a store is given".into(),
            });
        }
        Self::build(cfg, store, "custom".to_string(), None)
    }

    /// Like [`Computing::with_store`], with tables held and computed by `engine` when one is
    /// given (the local engine otherwise).
    pub fn with_store_on(
        cfg: ComputingConfig,
        store: Arc<dyn TableStore>,
        engine: Option<Arc<dyn Engine>>,
    ) -> Result<Self, ComputingError> {
        if cfg.data_dir.is_some() {
            return Err(ComputingError::InvalidConfig {
                field: "data_dir",
                reason: "must be unset when a store is given".into(),
            });
        }
        Self::build(cfg, store, "custom".to_string(), engine)
    }

    fn build(
        cfg: ComputingConfig,
        store: Arc<dyn TableStore>,
        store_name: String,
        engine: Option<Arc<dyn Engine>>,
    ) -> Result<Self, ComputingError> {
        if !(1..=MAX_CORES).contains(&cfg.cores) {
            return Err(ComputingError::InvalidConfig {
                field: "cores",
                reason: format!("is {}, allowed 1..={MAX_CORES}", cfg.cores),
            });
        }
        if !(1..=MAX_PARTITIONS).contains(&cfg.default_partitions) {
            return Err(ComputingError::InvalidConfig {
                field: "default_partitions",
                reason: format!(
                    "is {}, allowed 1..={MAX_PARTITIONS}",
                    cfg.default_partitions
                ),
            });
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(cfg.cores)
            .thread_name(|i| format!("fate-computing-{i}"))
            .build()
            .map_err(|source| ComputingError::ThreadPool {
                cores: cfg.cores,
                source,
            })?;
        Ok(Computing {
            inner: Arc::new(Inner {
                pool,
                cores: cfg.cores,
                default_partitions: cfg.default_partitions,
                store,
                store_name,
                engine,
            }),
        })
    }

    /// Threads of the pool.
    pub fn cores(&self) -> usize {
        self.inner.cores
    }

    /// Partitions used when a caller asks for 0.
    pub fn default_partitions(&self) -> usize {
        self.inner.default_partitions
    }

    /// The store behind `save`/`load`.
    pub fn store(&self) -> &Arc<dyn TableStore> {
        &self.inner.store
    }

    /// Runs `f` on the pool (parallel iterators inside use the pool's threads).
    pub fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        self.inner.pool.install(f)
    }

    /// A partition count to use: 0 means the default; larger than [`MAX_PARTITIONS`] is capped.
    pub(crate) fn resolve_partitions(&self, partitions: usize) -> usize {
        match partitions {
            0 => self.inner.default_partitions,
            n if n > MAX_PARTITIONS => {
                tracing::warn!(
                    requested = n,
                    used = MAX_PARTITIONS,
                    "partition count capped"
                );
                MAX_PARTITIONS
            }
            n => n,
        }
    }

    /// A table of `rows` in `partitions` partitions (0 = [`Computing::default_partitions`]).
    /// Of rows with equal keys the last one wins, as in FATE's `put_all`.
    pub fn parallelize<K: Key, V: Value>(
        &self,
        rows: impl IntoIterator<Item = (K, V)>,
        partitions: usize,
    ) -> Table<K, V> {
        let n = self.resolve_partitions(partitions);
        let rows = rows.into_iter();
        let per_part = rows.size_hint().0 / n + 1;
        let mut parts: Vec<Vec<(K, V)>> = (0..n).map(|_| Vec::with_capacity(per_part)).collect();
        for (k, v) in rows {
            parts[partition_of(&k, n)].push((k, v));
        }
        self.install(|| parts.par_iter_mut().for_each(sort_dedup_last));
        Table::from_parts_unchecked(self.clone(), parts)
    }

    /// Loads the table saved as `namespace.name`. Every stored partition is decoded and checked
    /// (format version, keys in their partition, sorted and unique).
    pub fn load<K: Key, V: Value>(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Table<K, V>, ComputingError> {
        check_name("namespace", namespace)?;
        check_name("name", name)?;
        let Some(encoded) = self.inner.store.get(namespace, name)? else {
            return Err(ComputingError::TableNotFound {
                namespace: namespace.to_string(),
                name: name.to_string(),
            });
        };
        if encoded.is_empty() || encoded.len() > MAX_PARTITIONS {
            return Err(ComputingError::Corrupt {
                what: format!("table {namespace}.{name}"),
                reason: format!(
                    "{} partitions stored, allowed 1..={MAX_PARTITIONS}",
                    encoded.len()
                ),
            });
        }
        let n = encoded.len();
        let what = |i: usize| format!("table {namespace}.{name} partition {i} of {n}");
        let parts = self.install(|| {
            encoded
                .par_iter()
                .enumerate()
                .map(|(i, rows)| decode_partition::<K, V>(rows, || what(i)))
                .collect::<Result<Vec<_>, _>>()
        })?;
        let parts =
            validate_partitions(self, parts).map_err(|(i, reason)| ComputingError::Corrupt {
                what: what(i),
                reason,
            })?;
        tracing::debug!(namespace, name, partitions = n, "loaded table");
        Ok(Table::from_parts_unchecked(self.clone(), parts))
    }

    /// Deletes the saved table `namespace.name`; `false` if there was none.
    pub fn delete(&self, namespace: &str, name: &str) -> Result<bool, ComputingError> {
        check_name("namespace", namespace)?;
        check_name("name", name)?;
        self.inner.store.delete(namespace, name)
    }

    /// Whether a table `namespace.name` is saved.
    pub fn exists(&self, namespace: &str, name: &str) -> Result<bool, ComputingError> {
        check_name("namespace", namespace)?;
        check_name("name", name)?;
        self.inner.store.exists(namespace, name)
    }

    /// Every saved table as `(namespace, name, partitions)`.
    pub fn list(&self) -> Result<Vec<(String, String, usize)>, ComputingError> {
        self.inner.store.list()
    }
}
