//! fate-computing: FATE's partitioned key/value tables (fate-spec §1.4) for the standalone
//! engine.
//!
//! A [`Computing`] owns a rayon thread pool of `cores` threads (FATE `task_cores`) and a
//! [`TableStore`]; a [`Table`] is an immutable, cheaply cloned set of partitions on which the
//! operations FATE's algorithms use run in parallel, one task per partition: `map_values`,
//! `map`, `map_partitions`, `map_reduce_partitions`, `flat_map`, `filter`, `join`, `union`,
//! `subtract_by_key`, `reduce`, `sample`, `collect`, `count`, `take`, `get`.
//!
//! The seam (issue 12): the work put on tables is [`kernel`]s (named, serialisable), so the
//! same operations run on the local engine (typed partitions, kernels called directly) or on an
//! [`Engine`] over encoded rows (Spark; [`EncodedEngine`] in process), which looks kernels up
//! in a [`KernelRegistry`]. [`testing::conformance`] is the one suite every engine passes.
//!
//! Invariants:
//! * a row with key `k` lives in partition `k.partition_hash() % n`, and that hash is stable
//!   across runs and Rust versions ([`Key`], pinned by tests), because tables persist;
//! * each partition is sorted by key with unique keys, so every operation is deterministic and
//!   `collect` returns rows in key order;
//! * operations that keep keys never re-hash rows; operations that change keys shuffle rows by
//!   the new key and keep the last row of equal keys (FATE `put_all`);
//! * persisted partitions are rows of (postcard key, postcard value) bytes ([`Row`]) in a
//!   store that records their format version; `load` checks every row (decoding, partition
//!   placement, order) and bad data is an error naming the table, never a panic.

pub mod bench;
mod computing;
mod encoded;
mod engine;
mod error;
pub mod kernel;
mod key;
mod registry;
mod store;
mod table;
#[cfg(feature = "testing")]
pub mod testing;

pub use computing::{Computing, ComputingConfig, MAX_CORES, MAX_NAME_LEN, MAX_PARTITIONS};
pub use encoded::{EncodedEngine, check_partition_count, fold_equal_keys};
pub use engine::{Engine, Handle, Op, Row};
pub use error::{BoxError, ComputingError};
pub use kernel::{
    Combine, Filter, FlatMap, Fold, Kernel, KernelCall, MapPartition, MapRow, MapValues, Secret,
};
pub use key::{Key, Value, hash_bytes, mix64, partition_of};
pub use registry::{CombineFn, FoldFn, KernelRegistry, RowsFn};
pub use store::{MemoryStore, REDB_FILE, RedbStore, STORE_FORMAT_VERSION, StoredRow, TableStore};
pub use table::{PARTITION_FORMAT_VERSION, Table};
