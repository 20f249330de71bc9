//! Partitioned, immutable key/value tables (fate-spec §1.4): the typed façade components use.
//!
//! Invariants of every [`Table`]: at least one partition; the row with key `k` is in partition
//! `k.partition_hash() % n`; no key twice. On the local engine each partition is sorted by key,
//! which makes `get` a binary search, `join`/`union`/`subtract_by_key` linear merges without
//! hashing, and `collect` a merge of sorted runs.
//!
//! A table is either typed partitions in this process (the local engine: kernels run directly
//! on them, nothing is encoded) or a handle of an [`Engine`] that holds encoded rows elsewhere;
//! components never learn which. Transformations are lazy in their errors: an engine failure
//! makes a failed table, and the next action on it (`count`, `collect`, `reduce`, `save`, ...)
//! returns the error.
//!
//! Persisted partition format ([`PARTITION_FORMAT_VERSION`] 2): one [`StoredRow`] per row, the
//! postcard encoding of the key and the postcard encoding of the value, in key order. The
//! store records the version (the redb header, fate-storage's manifest).

use crate::computing::{Computing, check_name};
use crate::engine::{Engine, Handle, Op, Row};
use crate::error::ComputingError;
use crate::kernel::{Combine, Filter, FlatMap, Fold, KernelCall, MapPartition, MapRow, MapValues};
use crate::key::{Key, Value, mix64, partition_of};
use crate::registry::{decode_row, decode_value, encode_row};
use crate::store::StoredRow;
use rayon::prelude::*;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::sync::Arc;

/// The partitions of a table.
type Partitions<K, V> = Vec<Vec<(K, V)>>;
/// Shared typed partitions of a local table.
type SharedParts<K, V> = Arc<[Vec<(K, V)>]>;

/// Version of the row encoding of persisted partitions (version 1 was one postcard blob per
/// partition, before stores kept rows).
pub const PARTITION_FORMAT_VERSION: u8 = 2;

/// A table held by an [`Engine`]; released when the last clone goes.
pub(crate) struct RemoteTable {
    engine: Arc<dyn Engine>,
    handle: Handle,
}

impl Drop for RemoteTable {
    fn drop(&mut self) {
        self.engine.release(&self.handle);
    }
}

enum Repr<K, V> {
    Local(SharedParts<K, V>),
    Remote(Arc<RemoteTable>),
    Failed {
        error: Arc<ComputingError>,
        partitions: usize,
    },
}

impl<K, V> Clone for Repr<K, V> {
    fn clone(&self) -> Self {
        match self {
            Repr::Local(p) => Repr::Local(Arc::clone(p)),
            Repr::Remote(r) => Repr::Remote(Arc::clone(r)),
            Repr::Failed { error, partitions } => Repr::Failed {
                error: Arc::clone(error),
                partitions: *partitions,
            },
        }
    }
}

/// A partitioned key/value table. Cheap to clone (the partitions are shared); immutable, so
/// every operation returns a new table. The work of an operation is a kernel
/// ([`crate::kernel`]); on the local engine it runs on the owning [`Computing`]'s pool, one
/// task per partition, and operations that keep keys (`map_values`, `filter`, and `join`,
/// `union`, `subtract_by_key` of tables with equal partition counts) never re-hash rows.
pub struct Table<K, V> {
    computing: Computing,
    repr: Repr<K, V>,
}

impl<K, V> Clone for Table<K, V> {
    fn clone(&self) -> Self {
        Table {
            computing: self.computing.clone(),
            repr: self.repr.clone(),
        }
    }
}

impl<K, V> std::fmt::Debug for Table<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Table");
        match &self.repr {
            Repr::Local(parts) => d
                .field("partitions", &parts.len())
                .field("rows", &parts.iter().map(Vec::len).sum::<usize>()),
            Repr::Remote(r) => d
                .field("engine", &r.engine.name())
                .field("partitions", &r.handle.partitions),
            Repr::Failed { error, .. } => d.field("failed", &error.to_string()),
        };
        d.finish()
    }
}

/// Sorts `rows` by key; of equal keys the last (in input order) is kept.
pub(crate) fn sort_dedup_last<K: Ord, V>(rows: &mut Vec<(K, V)>) {
    sort_dedup_last_by(rows, |r| &r.0);
}

/// Sorts `rows` by `key` (stable); of equal keys the last (in input order) is kept.
pub(crate) fn sort_dedup_last_by<T, K: Ord + ?Sized>(rows: &mut Vec<T>, key: impl Fn(&T) -> &K) {
    if rows.windows(2).all(|w| key(&w[0]) < key(&w[1])) {
        return;
    }
    rows.sort_by(|a, b| key(a).cmp(key(b)));
    // `dedup_by` passes (later, kept); swapping moves the later row into the kept slot.
    rows.dedup_by(|later, kept| {
        if key(later) == key(kept) {
            std::mem::swap(later, kept);
            true
        } else {
            false
        }
    });
}

/// Sorts `rows` by key and folds the values of equal keys left to right with `f`.
fn sort_reduce<K: Ord, V>(mut rows: Vec<(K, V)>, f: &impl Fn(V, V) -> V) -> Vec<(K, V)> {
    if rows.windows(2).all(|w| w[0].0 < w[1].0) {
        return rows;
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out: Vec<(K, V)> = Vec::with_capacity(rows.len());
    for (k, v) in rows {
        match out.pop() {
            Some((last_k, last_v)) if last_k == k => out.push((last_k, f(last_v, v))),
            Some(last) => {
                out.push(last);
                out.push((k, v));
            }
            None => out.push((k, v)),
        }
    }
    out
}

/// Splits one source partition's output rows by target partition, preserving their order.
fn bucket<K: Key, V>(rows: Vec<(K, V)>, n: usize) -> Vec<Vec<(K, V)>> {
    if n == 1 {
        return vec![rows];
    }
    // n <= MAX_PARTITIONS, so a target index fits u32; one small index array instead of
    // growing n vectors blindly.
    let mut counts = vec![0usize; n];
    let targets: Vec<u32> = rows
        .iter()
        .map(|(k, _)| {
            let t = partition_of(k, n);
            counts[t] += 1;
            t as u32
        })
        .collect();
    let mut buckets: Vec<Vec<(K, V)>> = counts.iter().map(|&c| Vec::with_capacity(c)).collect();
    for (row, t) in rows.into_iter().zip(targets) {
        buckets[t as usize].push(row);
    }
    buckets
}

/// Moves the buckets of every source to their target partition (in source order) and finishes
/// each target partition with `finish`, in parallel. Runs inside the pool.
fn gather<K: Key, V: Value>(
    per_source: Vec<Vec<Vec<(K, V)>>>,
    n: usize,
    finish: impl Fn(Vec<(K, V)>) -> Vec<(K, V)> + Sync,
) -> Vec<Vec<(K, V)>> {
    let mut per_target: Vec<Vec<Vec<(K, V)>>> = (0..n)
        .map(|_| Vec::with_capacity(per_source.len()))
        .collect();
    for source in per_source {
        for (target, rows) in per_target.iter_mut().zip(source) {
            if !rows.is_empty() {
                target.push(rows);
            }
        }
    }
    per_target
        .into_par_iter()
        .map(|mut chunks| {
            let rows = if chunks.len() == 1 {
                chunks.pop().unwrap_or_default()
            } else {
                let mut rows = Vec::with_capacity(chunks.iter().map(Vec::len).sum());
                for chunk in chunks {
                    rows.extend(chunk);
                }
                rows
            };
            finish(rows)
        })
        .collect()
}

/// Inner join of two sorted partitions. Gallops through the larger side when the sizes differ
/// a lot.
fn merge_join<K: Key, V, W, U>(
    a: &[(K, V)],
    b: &[(K, W)],
    f: &(impl Fn(&V, &W) -> U + Sync),
) -> Vec<(K, U)> {
    let mut out = Vec::with_capacity(a.len().min(b.len()));
    if a.len() > 16 * b.len().max(1) {
        let mut rest = a;
        for (k, w) in b {
            let i = rest.partition_point(|(ka, _)| ka < k);
            rest = &rest[i..];
            match rest.first() {
                Some((ka, v)) if ka == k => out.push((k.clone(), f(v, w))),
                Some(_) => {}
                None => break,
            }
        }
        return out;
    }
    if b.len() > 16 * a.len().max(1) {
        let mut rest = b;
        for (k, v) in a {
            let i = rest.partition_point(|(kb, _)| kb < k);
            rest = &rest[i..];
            match rest.first() {
                Some((kb, w)) if kb == k => out.push((k.clone(), f(v, w))),
                Some(_) => {}
                None => break,
            }
        }
        return out;
    }
    let (mut i, mut j) = (0, 0);
    while let (Some((ka, v)), Some((kb, w))) = (a.get(i), b.get(j)) {
        match ka.cmp(kb) {
            Ordering::Less => i += 1,
            Ordering::Greater => j += 1,
            Ordering::Equal => {
                out.push((ka.clone(), f(v, w)));
                i += 1;
                j += 1;
            }
        }
    }
    out
}

/// Outer merge of two sorted partitions; `f` merges values of keys in both.
fn merge_union<K: Key, V: Value>(
    a: &[(K, V)],
    b: &[(K, V)],
    f: &(impl Fn(&V, &V) -> V + Sync),
) -> Vec<(K, V)> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while let (Some((ka, va)), Some((kb, vb))) = (a.get(i), b.get(j)) {
        match ka.cmp(kb) {
            Ordering::Less => {
                out.push((ka.clone(), va.clone()));
                i += 1;
            }
            Ordering::Greater => {
                out.push((kb.clone(), vb.clone()));
                j += 1;
            }
            Ordering::Equal => {
                out.push((ka.clone(), f(va, vb)));
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

/// Rows of sorted `a` whose key is not in sorted `b`.
fn merge_subtract<K: Key, V: Value, W>(a: &[(K, V)], b: &[(K, W)]) -> Vec<(K, V)> {
    let mut out = Vec::with_capacity(a.len());
    let mut j = 0;
    for (k, v) in a {
        while b.get(j).is_some_and(|(kb, _)| kb < k) {
            j += 1;
        }
        if b.get(j).is_none_or(|(kb, _)| kb != k) {
            out.push((k.clone(), v.clone()));
        }
    }
    out
}

/// Encodes one partition as rows: postcard of each key and of each value.
pub(crate) fn encode_partition<K: Key, V: Value>(
    rows: &[(K, V)],
) -> Result<Vec<StoredRow>, postcard::Error> {
    rows.iter()
        .map(|(k, v)| Ok((postcard::to_allocvec(k)?, postcard::to_allocvec(v)?)))
        .collect()
}

/// Decodes one postcard value that must use all of `bytes`.
fn decode_exact<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    // serde caps the preallocation of a sequence by its announced length, so a hostile length
    // prefix cannot allocate more than the data supports.
    let (value, rest) = postcard::take_from_bytes::<T>(bytes).map_err(|e| e.to_string())?;
    if !rest.is_empty() {
        return Err(format!("{} trailing bytes", rest.len()));
    }
    Ok(value)
}

/// Decodes one partition written by [`encode_partition`]; `what` names it in errors.
pub(crate) fn decode_partition<K: Key, V: Value>(
    rows: &[StoredRow],
    what: impl Fn() -> String,
) -> Result<Vec<(K, V)>, ComputingError> {
    rows.iter()
        .enumerate()
        .map(|(i, (k, v))| {
            let corrupt = |part: &str, reason: String| ComputingError::Corrupt {
                what: what(),
                reason: format!("row {i} {part}: {reason}"),
            };
            let k = decode_exact::<K>(k).map_err(|e| corrupt("key", e))?;
            let v = decode_exact::<V>(v).map_err(|e| corrupt("value", e))?;
            Ok((k, v))
        })
        .collect()
}

/// Checks that every key is in its partition and sorts partitions that are not; a key that
/// occurs twice is an error. Returns `(partition, reason)` on the first violation.
pub(crate) fn validate_partitions<K: Key, V: Value>(
    computing: &Computing,
    mut parts: Vec<Vec<(K, V)>>,
) -> Result<Partitions<K, V>, (usize, String)> {
    let n = parts.len();
    computing.install(|| {
        parts.par_iter_mut().enumerate().try_for_each(|(i, rows)| {
            if let Some((k, _)) = rows.iter().find(|(k, _)| partition_of(k, n) != i) {
                return Err((
                    i,
                    format!("key {k:?} belongs in partition {}", partition_of(k, n)),
                ));
            }
            if !rows.windows(2).all(|w| w[0].0 < w[1].0) {
                rows.sort_by(|a, b| a.0.cmp(&b.0));
                if let Some(w) = rows.windows(2).find(|w| w[0].0 == w[1].0) {
                    return Err((i, format!("key {:?} occurs twice", w[0].0)));
                }
            }
            Ok(())
        })
    })?;
    Ok(parts)
}

/// Encodes typed rows for an engine.
fn encode_rows<K: Key, V: Value>(rows: &[(K, V)]) -> Result<Vec<Row>, ComputingError> {
    rows.iter()
        .map(|(k, v)| encode_row("table", k, v))
        .collect()
}

/// Decodes an engine's rows.
fn decode_rows<K: Key, V: Value>(rows: &[Row]) -> Result<Vec<(K, V)>, ComputingError> {
    rows.iter().map(|r| decode_row("table", r)).collect()
}

impl<K: Key, V: Value> Table<K, V> {
    /// Wraps partitions that already satisfy the table invariants (and are sorted), on the
    /// computing's engine.
    pub(crate) fn from_parts_unchecked(computing: Computing, parts: Vec<Vec<(K, V)>>) -> Self {
        debug_assert!(!parts.is_empty());
        let Some(engine) = computing.engine().cloned() else {
            return Table {
                computing,
                repr: Repr::Local(parts.into()),
            };
        };
        let partitions = parts.len();
        let made = computing
            .install(|| {
                parts
                    .par_iter()
                    .map(|p| encode_rows(p))
                    .collect::<Result<Vec<_>, _>>()
            })
            .and_then(|encoded| engine.parallelize(encoded));
        let repr = match made {
            Ok(handle) => Repr::Remote(Arc::new(RemoteTable { engine, handle })),
            Err(e) => Repr::Failed {
                error: Arc::new(e),
                partitions,
            },
        };
        Table { computing, repr }
    }

    /// A table from partitions built elsewhere (e.g. received from another party). Each key
    /// must be in partition `partition_hash % parts.len()` and occur once; partitions need not
    /// be sorted.
    pub fn from_partitions(
        computing: &Computing,
        parts: Vec<Vec<(K, V)>>,
    ) -> Result<Self, ComputingError> {
        let partitions = parts.len();
        if partitions == 0 || partitions > crate::computing::MAX_PARTITIONS {
            return Err(ComputingError::BadPartition {
                partition: 0,
                partitions,
                reason: format!(
                    "a table has 1..={} partitions",
                    crate::computing::MAX_PARTITIONS
                ),
            });
        }
        let parts = validate_partitions(computing, parts).map_err(|(partition, reason)| {
            ComputingError::BadPartition {
                partition,
                partitions,
                reason,
            }
        })?;
        let t = Self::from_parts_unchecked(computing.clone(), parts);
        t.check()?;
        Ok(t)
    }

    /// The engine this table runs on.
    pub fn computing(&self) -> &Computing {
        &self.computing
    }

    /// Number of partitions.
    pub fn num_partitions(&self) -> usize {
        match &self.repr {
            Repr::Local(p) => p.len(),
            Repr::Remote(r) => r.handle.partitions,
            Repr::Failed { partitions, .. } => *partitions,
        }
    }

    /// The error of a failed table.
    fn check(&self) -> Result<(), ComputingError> {
        match &self.repr {
            Repr::Failed { error, .. } => Err(ComputingError::Failed(Arc::clone(error))),
            _ => Ok(()),
        }
    }

    /// The row count of every partition.
    pub fn partition_counts(&self) -> Result<Vec<usize>, ComputingError> {
        match &self.repr {
            Repr::Local(p) => Ok(p.iter().map(Vec::len).collect()),
            Repr::Remote(r) => Ok(r
                .engine
                .counts(&r.handle)?
                .into_iter()
                .map(|c| c as usize)
                .collect()),
            Repr::Failed { .. } => self.check().map(|_| Vec::new()),
        }
    }

    /// Number of rows.
    pub fn count(&self) -> Result<usize, ComputingError> {
        Ok(self.partition_counts()?.iter().sum())
    }

    /// The typed partitions on the local engine, `None` on any other (tests and encoders;
    /// components use [`Table::for_each_partition`]).
    pub fn local_partitions(&self) -> Option<&[Vec<(K, V)>]> {
        match &self.repr {
            Repr::Local(p) => Some(p),
            _ => None,
        }
    }

    /// Calls `f` with every partition in order (index, rows in key order), one partition in
    /// memory at a time; a partition of more than `max_rows` rows is
    /// [`ComputingError::TooManyRows`].
    pub fn for_each_partition<E: From<ComputingError>>(
        &self,
        max_rows: usize,
        mut f: impl FnMut(usize, &[(K, V)]) -> Result<(), E>,
    ) -> Result<(), E> {
        match &self.repr {
            Repr::Local(parts) => {
                for (i, p) in parts.iter().enumerate() {
                    if p.len() > max_rows {
                        return Err(ComputingError::TooManyRows {
                            rows: p.len() as u64,
                            max: max_rows as u64,
                        }
                        .into());
                    }
                    f(i, p)?;
                }
                Ok(())
            }
            Repr::Remote(r) => {
                for i in 0..r.handle.partitions {
                    let rows = r.engine.partition(&r.handle, i, max_rows as u64)?;
                    let mut typed: Vec<(K, V)> = decode_rows(&rows)?;
                    typed.sort_by(|a, b| a.0.cmp(&b.0));
                    f(i, &typed)?;
                }
                Ok(())
            }
            Repr::Failed { .. } => Ok(self.check()?),
        }
    }

    /// Every partition, typed (for `save`).
    fn typed_partitions(&self) -> Result<SharedParts<K, V>, ComputingError> {
        if let Repr::Local(p) = &self.repr {
            return Ok(Arc::clone(p));
        }
        let mut parts = Vec::with_capacity(self.num_partitions());
        self.for_each_partition::<ComputingError>(usize::MAX, |_, p| {
            parts.push(p.to_vec());
            Ok(())
        })?;
        Ok(parts.into())
    }

    /// This table on `engine` (encoded and sent there if it is local).
    fn on_engine(&self, engine: &Arc<dyn Engine>) -> Result<Arc<RemoteTable>, ComputingError> {
        match &self.repr {
            Repr::Remote(r) if Arc::ptr_eq(&r.engine, engine) => Ok(Arc::clone(r)),
            Repr::Remote(r) => Err(ComputingError::Engine {
                engine: engine.name().to_string(),
                reason: format!(
                    "a table of the {} engine cannot join this one",
                    r.engine.name()
                ),
            }),
            Repr::Failed { .. } => Err(self.check().unwrap_err()),
            Repr::Local(parts) => {
                let encoded = self.computing.install(|| {
                    parts
                        .par_iter()
                        .map(|p| encode_rows(p))
                        .collect::<Result<Vec<_>, _>>()
                })?;
                let handle = engine.parallelize(encoded)?;
                Ok(Arc::new(RemoteTable {
                    engine: Arc::clone(engine),
                    handle,
                }))
            }
        }
    }

    /// Runs `op` on the engine of `self` (with `other` as second input), as a new table.
    fn remote<K2, V2, W>(
        &self,
        op: impl FnOnce() -> Result<Op, ComputingError>,
        other: Option<&Table<K, W>>,
    ) -> Table<K2, V2>
    where
        W: Value,
    {
        let partitions = self.num_partitions();
        let run = || -> Result<Arc<RemoteTable>, ComputingError> {
            self.check()?;
            if let Some(o) = other {
                o.check()?;
            }
            let engine = match (&self.repr, other.map(|o| &o.repr)) {
                (Repr::Remote(r), _) | (_, Some(Repr::Remote(r))) => Arc::clone(&r.engine),
                _ => {
                    return Err(ComputingError::Engine {
                        engine: "local".into(),
                        reason: "no engine holds either table".into(),
                    });
                }
            };
            let me = self.on_engine(&engine)?;
            let op = op()?;
            let handle = match other {
                None => me.engine.apply(&op, &[&me.handle])?,
                Some(o) => {
                    let o = o.on_engine(&me.engine)?;
                    me.engine.apply(&op, &[&me.handle, &o.handle])?
                }
            };
            Ok(Arc::new(RemoteTable {
                engine: Arc::clone(&me.engine),
                handle,
            }))
        };
        let repr = match run() {
            Ok(r) => Repr::Remote(r),
            Err(e) => Repr::Failed {
                error: Arc::new(e),
                partitions,
            },
        };
        Table {
            computing: self.computing.clone(),
            repr,
        }
    }

    fn is_local(&self) -> Option<&SharedParts<K, V>> {
        match &self.repr {
            Repr::Local(p) => Some(p),
            _ => None,
        }
    }

    fn local<K2, V2>(&self, parts: Vec<Vec<(K2, V2)>>) -> Table<K2, V2> {
        Table {
            computing: self.computing.clone(),
            repr: Repr::Local(parts.into()),
        }
    }

    /// Runs `f` on every local partition in parallel, keeping partition order.
    fn per_partition<T: Send>(
        &self,
        parts: &[Vec<(K, V)>],
        f: impl Fn(&[(K, V)]) -> T + Sync,
    ) -> Vec<T> {
        self.computing
            .install(|| parts.par_iter().map(|p| f(p)).collect())
    }

    /// Shuffles the rows that `produce` makes from each local partition into `n` partitions by
    /// key; of equal keys the last wins (source partitions in order, then output order).
    fn shuffle<K2: Key, V2: Value>(
        &self,
        parts: &[Vec<(K, V)>],
        n: usize,
        produce: impl Fn(usize, &[(K, V)]) -> Vec<(K2, V2)> + Sync,
    ) -> Table<K2, V2> {
        let parts = self.computing.install(|| {
            let per_source: Vec<_> = parts
                .par_iter()
                .enumerate()
                .map(|(i, p)| bucket(produce(i, p), n))
                .collect();
            gather(per_source, n, |mut rows| {
                sort_dedup_last(&mut rows);
                rows
            })
        });
        self.local(parts)
    }

    /// All rows, sorted by key; a table of more than `max_rows` rows is
    /// [`ComputingError::TooManyRows`] (nothing is collected). The one way to bring a whole
    /// table into memory.
    pub fn collect(&self, max_rows: usize) -> Result<Vec<(K, V)>, ComputingError> {
        let count = self.count()?;
        if count > max_rows {
            return Err(ComputingError::TooManyRows {
                rows: count as u64,
                max: max_rows as u64,
            });
        }
        let mut rows = Vec::with_capacity(count);
        self.for_each_partition::<ComputingError>(max_rows, |_, p| {
            rows.extend_from_slice(p);
            Ok(())
        })?;
        // A stable sort merges the already sorted runs (one per partition).
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(rows)
    }

    /// `n` rows in key order: on the local engine the first `n` keys of the table; on another
    /// engine the first `n` the engine yields.
    pub fn take(&self, n: usize) -> Result<Vec<(K, V)>, ComputingError> {
        let parts = match &self.repr {
            Repr::Local(p) => p,
            Repr::Remote(r) => {
                let mut rows: Vec<(K, V)> = decode_rows(&r.engine.take(&r.handle, n)?)?;
                rows.sort_by(|a, b| a.0.cmp(&b.0));
                rows.truncate(n);
                return Ok(rows);
            }
            Repr::Failed { .. } => return self.check().map(|_| Vec::new()),
        };
        let mut heap: BinaryHeap<Reverse<(&K, usize, usize)>> = parts
            .iter()
            .enumerate()
            .filter_map(|(pi, p)| p.first().map(|(k, _)| Reverse((k, pi, 0))))
            .collect();
        let mut out = Vec::with_capacity(n.min(parts.iter().map(Vec::len).sum()));
        while out.len() < n {
            let Some(Reverse((_, pi, pos))) = heap.pop() else {
                break;
            };
            let part = &parts[pi];
            out.push(part[pos].clone());
            if let Some((k, _)) = part.get(pos + 1) {
                heap.push(Reverse((k, pi, pos + 1)));
            }
        }
        Ok(out)
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &K) -> Result<Option<V>, ComputingError> {
        match &self.repr {
            Repr::Local(parts) => {
                let part = &parts[partition_of(key, parts.len())];
                Ok(part
                    .binary_search_by(|(k, _)| k.cmp(key))
                    .ok()
                    .map(|i| part[i].1.clone()))
            }
            Repr::Remote(r) => {
                let probe = encode_row("table", key, &())?;
                match r.engine.get(&r.handle, probe.hash, &probe.key)? {
                    None => Ok(None),
                    Some(value) => {
                        let (_, v) = decode_row::<K, V>(
                            "table",
                            &Row {
                                hash: probe.hash,
                                key: probe.key,
                                value,
                            },
                        )?;
                        Ok(Some(v))
                    }
                }
            }
            Repr::Failed { .. } => self.check().map(|_| None),
        }
    }

    /// FATE `mapValues`: same keys and partitioning, values mapped by the kernel.
    pub fn map_values<M: MapValues<In = V>>(&self, m: &M) -> Table<K, M::Out> {
        if let Some(parts) = self.is_local() {
            return self.local(self.per_partition(parts, |p| {
                p.iter().map(|(k, v)| (k.clone(), m.apply(v))).collect()
            }));
        }
        self.remote(
            || Ok(Op::MapInPlace(KernelCall::of(m)?)),
            None::<&Table<K, V>>,
        )
    }

    /// FATE `map`: rows mapped by the kernel and shuffled to their new keys' partitions (same
    /// partition count); of equal new keys the last wins.
    pub fn map<M: MapRow<K = K, V = V>>(&self, m: &M) -> Table<M::K2, M::V2> {
        if let Some(parts) = self.is_local() {
            return self.shuffle(parts, parts.len(), |_, p| {
                p.iter().map(|(k, v)| m.apply(k, v)).collect()
            });
        }
        self.remote(
            || Ok(Op::MapShuffle(KernelCall::of(m)?)),
            None::<&Table<K, V>>,
        )
    }

    /// FATE `mapPartitions` / `mapPartitionsWithIndex`: the kernel maps each whole partition
    /// (its index and rows in key order) to rows, which are shuffled by key; of equal keys the
    /// last wins.
    pub fn map_partitions<M: MapPartition<K = K, V = V>>(&self, m: &M) -> Table<M::K2, M::V2> {
        if let Some(parts) = self.is_local() {
            return self.shuffle(parts, parts.len(), |i, p| m.apply(i, p));
        }
        self.remote(
            || Ok(Op::MapShuffle(KernelCall::of(m)?)),
            None::<&Table<K, V>>,
        )
    }

    /// FATE `mapReducePartitions`: `map` each partition to rows, then `reduce` the values of
    /// equal keys (first within each partition, then across partitions in partition order).
    pub fn map_reduce_partitions<M, R>(&self, map: &M, reduce: &R) -> Table<M::K2, M::V2>
    where
        M: MapPartition<K = K, V = V>,
        R: Fold<V = M::V2>,
    {
        if let Some(parts) = self.is_local() {
            let n = parts.len();
            let f = |a, b| reduce.apply(a, b);
            let out = self.computing.install(|| {
                let per_source: Vec<_> = parts
                    .par_iter()
                    .enumerate()
                    .map(|(i, p)| bucket(sort_reduce(map.apply(i, p), &f), n))
                    .collect();
                gather(per_source, n, |rows| sort_reduce(rows, &f))
            });
            return self.local(out);
        }
        self.remote(
            || {
                Ok(Op::MapReduce {
                    map: KernelCall::of(map)?,
                    reduce: KernelCall::of(reduce)?,
                })
            },
            None::<&Table<K, V>>,
        )
    }

    /// FATE `flatMap`: each row maps to any number of rows, shuffled by key; of equal keys the
    /// last wins.
    pub fn flat_map<M: FlatMap<K = K, V = V>>(&self, m: &M) -> Table<M::K2, M::V2> {
        if let Some(parts) = self.is_local() {
            return self.shuffle(parts, parts.len(), |_, p| {
                let mut out = Vec::with_capacity(p.len());
                for (k, v) in p {
                    m.apply(k, v, &mut out);
                }
                out
            });
        }
        self.remote(
            || Ok(Op::MapShuffle(KernelCall::of(m)?)),
            None::<&Table<K, V>>,
        )
    }

    /// FATE `filter`: the rows the kernel keeps (no re-hashing).
    pub fn filter<F: Filter<K = K, V = V>>(&self, f: &F) -> Table<K, V> {
        if let Some(parts) = self.is_local() {
            return self.local(self.per_partition(parts, |p| {
                p.iter().filter(|(k, v)| f.keep(k, v)).cloned().collect()
            }));
        }
        self.remote(
            || Ok(Op::MapInPlace(KernelCall::of(f)?)),
            None::<&Table<K, V>>,
        )
    }

    /// `other`'s local partitions with this table's partition count (re-hashed only if the
    /// counts differ); `None` unless both are local.
    fn co_partitioned<W: Value>(&self, other: &Table<K, W>) -> Option<SharedParts<K, W>> {
        let n = self.is_local()?.len();
        let theirs = other.is_local()?;
        if theirs.len() == n {
            return Some(Arc::clone(theirs));
        }
        match other.repartition(n).repr {
            Repr::Local(p) => Some(p),
            _ => None,
        }
    }

    /// FATE `join`: inner join on key, values combined by the kernel (self value, other value).
    /// The result has this table's partitioning; `other` is re-partitioned if its count
    /// differs.
    pub fn join<W: Value, C: Combine<A = V, B = W>>(
        &self,
        other: &Table<K, W>,
        c: &C,
    ) -> Table<K, C::Out> {
        if let (Some(parts), Some(theirs)) = (self.is_local(), self.co_partitioned(other)) {
            let f = |a: &V, b: &W| c.apply(a, b);
            let out = self.computing.install(|| {
                parts
                    .par_iter()
                    .zip(theirs.par_iter())
                    .map(|(a, b)| merge_join(a, b, &f))
                    .collect()
            });
            return self.local(out);
        }
        self.remote(|| Ok(Op::Join(KernelCall::of(c)?)), Some(other))
    }

    /// FATE `union`: every key of either table; the kernel folds (self value, other value) of
    /// keys in both.
    pub fn union<F: Fold<V = V>>(&self, other: &Table<K, V>, f: &F) -> Table<K, V> {
        if let (Some(parts), Some(theirs)) = (self.is_local(), self.co_partitioned(other)) {
            let g = |a: &V, b: &V| f.apply(a.clone(), b.clone());
            let out = self.computing.install(|| {
                parts
                    .par_iter()
                    .zip(theirs.par_iter())
                    .map(|(a, b)| merge_union(a, b, &g))
                    .collect()
            });
            return self.local(out);
        }
        self.remote(|| Ok(Op::Union(KernelCall::of(f)?)), Some(other))
    }

    /// FATE `subtractByKey`: the rows whose key is not in `other`.
    pub fn subtract_by_key<W: Value>(&self, other: &Table<K, W>) -> Table<K, V> {
        if let (Some(parts), Some(theirs)) = (self.is_local(), self.co_partitioned(other)) {
            let out = self.computing.install(|| {
                parts
                    .par_iter()
                    .zip(theirs.par_iter())
                    .map(|(a, b)| merge_subtract(a, b))
                    .collect()
            });
            return self.local(out);
        }
        self.remote(|| Ok(Op::SubtractByKey), Some(other))
    }

    /// FATE `reduce`: folds all values with the kernel (per partition in parallel, in key
    /// order on the local engine, then the partition results in partition order); `None` for
    /// an empty table. The kernel should be associative and commutative for a result
    /// independent of partitioning and engine.
    pub fn reduce<F: Fold<V = V>>(&self, f: &F) -> Result<Option<V>, ComputingError> {
        match &self.repr {
            Repr::Local(parts) => Ok(self.computing.install(|| {
                let partials: Vec<Option<V>> = parts
                    .par_iter()
                    .map(|p| {
                        let mut rows = p.iter();
                        let first = rows.next()?.1.clone();
                        Some(rows.fold(first, |acc, (_, v)| f.apply(acc, v.clone())))
                    })
                    .collect();
                partials.into_iter().flatten().reduce(|a, b| f.apply(a, b))
            })),
            Repr::Remote(r) => {
                let Some(bytes) = r.engine.reduce(&r.handle, &KernelCall::of(f)?)? else {
                    return Ok(None);
                };
                Ok(Some(decode_value(F::NAME, &bytes)?))
            }
            Repr::Failed { .. } => self.check().map(|_| None),
        }
    }

    /// FATE `sample` (without replacement): keeps each row with probability `fraction`. The
    /// choice is a hash of the key and `seed`, so it is deterministic for a seed and does not
    /// depend on the partitioning or the engine.
    pub fn sample(&self, fraction: f64, seed: u64) -> Table<K, V> {
        if fraction.is_nan() || fraction <= 0.0 {
            if self.is_local().is_some() {
                return self.local(vec![Vec::new(); self.num_partitions()]);
            }
            return self.remote(
                || {
                    Ok(Op::Sample {
                        threshold: 0,
                        salt: 0,
                    })
                },
                None::<&Table<K, V>>,
            );
        }
        if fraction >= 1.0 {
            return self.clone();
        }
        // Keep a row when a uniform 53-bit draw is below the threshold.
        let threshold = (fraction * (1u64 << 53) as f64) as u64;
        let salt = mix64(seed ^ 0x5851_f42d_4c95_7f2d);
        if let Some(parts) = self.is_local() {
            return self.local(self.per_partition(parts, |p| {
                p.iter()
                    .filter(|(k, _)| mix64(k.partition_hash() ^ salt) >> 11 < threshold)
                    .cloned()
                    .collect()
            }));
        }
        self.remote(|| Ok(Op::Sample { threshold, salt }), None::<&Table<K, V>>)
    }

    /// The same rows in `partitions` partitions (0 = the default count).
    pub fn repartition(&self, partitions: usize) -> Table<K, V> {
        let n = self.computing.resolve_partitions(partitions);
        if n == self.num_partitions() {
            return self.clone();
        }
        let Some(parts) = self.is_local() else {
            return self.remote(
                || Ok(Op::Repartition { partitions: n }),
                None::<&Table<K, V>>,
            );
        };
        let parts = self.computing.install(|| {
            let per_source: Vec<_> = parts
                .par_iter()
                .map(|p| {
                    let mut buckets: Vec<Vec<(K, V)>> = (0..n)
                        .map(|_| Vec::with_capacity(p.len() / n + 1))
                        .collect();
                    for (k, v) in p {
                        buckets[partition_of(k, n)].push((k.clone(), v.clone()));
                    }
                    buckets
                })
                .collect();
            // Keys are unique, so each target is a concatenation of sorted runs: only sorting
            // is needed, and a stable sort merges runs.
            gather(per_source, n, |mut rows| {
                rows.sort_by(|a, b| a.0.cmp(&b.0));
                rows
            })
        });
        self.local(parts)
    }

    /// Persists the table as `namespace.name` in the engine's store. Without `overwrite` an
    /// existing table is an error ([`ComputingError::TableExists`]); a failed save leaves the
    /// previous table as it was.
    pub fn save(&self, namespace: &str, name: &str, overwrite: bool) -> Result<(), ComputingError> {
        check_name("namespace", namespace)?;
        check_name("name", name)?;
        let parts = self.typed_partitions()?;
        let encoded = self.computing.install(|| {
            parts
                .par_iter()
                .enumerate()
                .map(|(partition, p)| {
                    encode_partition(p).map_err(|source| ComputingError::Encode {
                        namespace: namespace.to_string(),
                        name: name.to_string(),
                        partition,
                        source,
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        })?;
        let bytes: usize = encoded
            .iter()
            .flatten()
            .map(|(k, v)| k.len() + v.len())
            .sum();
        self.computing
            .store()
            .put(namespace, name, encoded, overwrite)?;
        tracing::debug!(
            namespace,
            name,
            partitions = parts.len(),
            bytes,
            "saved table"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_dedup_last_keeps_the_last_of_equal_keys() {
        let mut rows = vec![(3, 'a'), (1, 'b'), (3, 'c'), (2, 'd'), (3, 'e'), (1, 'f')];
        sort_dedup_last(&mut rows);
        assert_eq!(rows, vec![(1, 'f'), (2, 'd'), (3, 'e')]);
    }

    #[test]
    fn sort_reduce_folds_in_input_order() {
        let rows = vec![
            (2, "x".to_string()),
            (1, "a".into()),
            (2, "y".into()),
            (1, "b".into()),
        ];
        let out = sort_reduce(rows, &|a: String, b: String| a + &b);
        assert_eq!(out, vec![(1, "ab".to_string()), (2, "xy".to_string())]);
    }

    #[test]
    fn merge_join_gallops_both_ways() {
        let big: Vec<(u64, u64)> = (0..1000).map(|k| (k, k)).collect();
        let small: Vec<(u64, u64)> = vec![(3, 30), (500, 5000), (2000, 1)];
        let expected = vec![(3, 33), (500, 5500)];
        assert_eq!(merge_join(&big, &small, &|a, b| a + b), expected);
        assert_eq!(merge_join(&small, &big, &|a, b| a + b), expected);
        assert_eq!(
            merge_join(&big, &[] as &[(u64, u64)], &|a, b| a + b),
            vec![]
        );
    }

    #[test]
    fn decode_rejects_bad_records() {
        let what = || "test partition".to_string();
        let good = encode_partition(&[(1u64, 2.5f64), (7, -1.0)]).unwrap();
        assert_eq!(good[0], (vec![1], 2.5f64.to_le_bytes().to_vec()));
        assert_eq!(
            decode_partition::<u64, f64>(&good, what).unwrap(),
            vec![(1, 2.5), (7, -1.0)]
        );
        assert_eq!(decode_partition::<u64, f64>(&[], what).unwrap(), vec![]);
        let mut cut = good.clone();
        cut[1].1.pop();
        let err = decode_partition::<u64, f64>(&cut, what).unwrap_err();
        assert!(matches!(err, ComputingError::Corrupt { .. }), "{err}");
        assert!(
            err.to_string()
                .starts_with("test partition: corrupt data: row 1 value"),
            "{err}"
        );
        let mut long = good.clone();
        long[0].0.push(0);
        let err = decode_partition::<u64, f64>(&long, what).unwrap_err();
        assert!(
            err.to_string().contains("row 0 key: 1 trailing bytes"),
            "{err}"
        );
        // A huge announced length with no data behind it is an error, not an allocation.
        let hostile = vec![(vec![1], vec![0xff, 0xff, 0xff, 0xff, 0x0f])];
        assert!(decode_partition::<u64, Vec<u64>>(&hostile, what).is_err());
    }
}
