//! The engine contract: what an engine that holds tables outside this process's typed
//! partitions (Spark, or the in-process [`crate::EncodedEngine`]) implements.
//!
//! Tables are opaque [`Handle`]s; rows are encoded ([`Row`]: the key's stable partition hash,
//! the postcard encoding of the key and of the value). The work is relational operations
//! ([`Op`]) plus kernels named by a [`KernelCall`], which the engine runs through a
//! [`crate::KernelRegistry`] (on Spark: on the executors, by the `fate` binary itself).
//!
//! Every engine keeps the table invariants of [`crate::Table`], over encoded rows: a table has
//! `1..=MAX_PARTITIONS` partitions; the row with hash `h` is in partition `h % n`; no key (as
//! bytes: postcard encodes each value one way) occurs twice in a table. Rows within a
//! partition are kept in an engine-chosen order (the encoded engine: by key bytes); the typed
//! façade sorts what it collects by the typed key, so components see the same order on every
//! engine. Of rows shuffled to equal keys the last wins (source partitions in order, then each
//! kernel's output order), as on the local engine.
//!
//! `fate-computing` itself never names a concrete remote engine: the binary builds one and
//! hands it to [`crate::Computing::on_engine`].

use crate::error::ComputingError;
use crate::kernel::KernelCall;

/// One encoded row.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Row {
    /// `Key::partition_hash` of the key (the engine places and repartitions by it).
    pub hash: u64,
    /// postcard encoding of the key.
    pub key: Vec<u8>,
    /// postcard encoding of the value.
    pub value: Vec<u8>,
}

/// An engine's table: an id the engine chose and the partition count.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Handle {
    pub id: u64,
    pub partitions: usize,
}

/// A relational operation, with the kernels it runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// One input. A rows kernel (`MapValues`, `Filter`) per partition; keys stay where they
    /// are, so no shuffle.
    MapInPlace(KernelCall),
    /// One input. A rows kernel (`MapRow`, `FlatMap`, `MapPartition`) per partition, its output
    /// shuffled by hash into the same partition count; of equal keys the last wins.
    MapShuffle(KernelCall),
    /// One input. `map` (a `MapPartition`) per partition, then the values of equal keys folded
    /// with `reduce` (a `Fold`): first within each source partition in output order, then
    /// across partitions in partition order.
    MapReduce { map: KernelCall, reduce: KernelCall },
    /// Two inputs: inner join on key, values combined by a `Combine` kernel (left, right). The
    /// result has the left's partition count.
    Join(KernelCall),
    /// Two inputs: every key of either; a `Fold` kernel (left, right) merges keys in both.
    Union(KernelCall),
    /// Two inputs: the left's rows whose key is not in the right.
    SubtractByKey,
    /// One input: keeps a row when `mix64(hash ^ salt) >> 11 < threshold` (see
    /// [`crate::Table::sample`]); keys stay where they are.
    Sample { threshold: u64, salt: u64 },
    /// One input: the same rows in `partitions` partitions (`1..=MAX_PARTITIONS`).
    Repartition { partitions: usize },
}

impl Op {
    /// Number of input tables the operation takes.
    pub fn arity(&self) -> usize {
        match self {
            Op::Join(_) | Op::Union(_) | Op::SubtractByKey => 2,
            _ => 1,
        }
    }
}

/// An engine that holds tables as encoded rows. Object safe; every method may fail (the engine
/// is a remote cluster), and an unknown handle is [`ComputingError::UnknownTable`].
pub trait Engine: Send + Sync {
    /// Short name for logs and errors (`encoded`, `spark`).
    fn name(&self) -> &str;
    /// A table of these partitions; every row is in partition `hash % partitions.len()`, keys
    /// are unique, rows may come in any order.
    fn parallelize(&self, partitions: Vec<Vec<Row>>) -> Result<Handle, ComputingError>;
    /// Runs `op` on `inputs` (as many as [`Op::arity`]) and returns the new table.
    fn apply(&self, op: &Op, inputs: &[&Handle]) -> Result<Handle, ComputingError>;
    /// Folds every value with a `Fold` kernel (per partition in the engine's row order, then the
    /// partition results in partition order); `None` for an empty table.
    fn reduce(&self, t: &Handle, kernel: &KernelCall) -> Result<Option<Vec<u8>>, ComputingError>;
    /// The row count of every partition.
    fn counts(&self, t: &Handle) -> Result<Vec<u64>, ComputingError>;
    /// The rows of partition `index`; more than `max_rows` of them is
    /// [`ComputingError::TooManyRows`] (nothing is transferred).
    fn partition(
        &self,
        t: &Handle,
        index: usize,
        max_rows: u64,
    ) -> Result<Vec<Row>, ComputingError>;
    /// At most `n` rows, in the engine's order.
    fn take(&self, t: &Handle, n: usize) -> Result<Vec<Row>, ComputingError>;
    /// The value of the row with this key (and hash), if any.
    fn get(&self, t: &Handle, hash: u64, key: &[u8]) -> Result<Option<Vec<u8>>, ComputingError>;
    /// Frees the table; later use of the handle is an error. Never fails.
    fn release(&self, t: &Handle);
}
