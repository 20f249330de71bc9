//! Partitioned, immutable key/value tables (fate-spec §1.4).
//!
//! Invariants of every [`Table`]: at least one partition; the row with key `k` is in partition
//! `k.partition_hash() % n`; each partition is sorted by key, with no key twice. Sorted
//! partitions make `get` a binary search, `join`/`union`/`subtract_by_key` linear merges
//! without hashing, and `collect` a merge of sorted runs.
//!
//! Persisted partition format ([`PARTITION_FORMAT_VERSION`] 2): one [`Row`] per row, the
//! postcard encoding of the key and the postcard encoding of the value, in key order. The
//! store records the version (the redb header, fate-storage's manifest).

use crate::computing::{Computing, check_name};
use crate::error::ComputingError;
use crate::key::{Key, Value, mix64, partition_of};
use crate::store::Row;
use rayon::prelude::*;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::sync::Arc;

/// The partitions of a table.
type Partitions<K, V> = Vec<Vec<(K, V)>>;

/// Version of the row encoding of persisted partitions (version 1 was one postcard blob per
/// partition, before stores kept rows).
pub const PARTITION_FORMAT_VERSION: u8 = 2;

/// A partitioned key/value table. Cheap to clone (the partitions are shared); immutable, so
/// every operation returns a new table. All partition work runs on the owning
/// [`Computing`]'s pool; operations that keep keys (`map_values`, `filter`, and `join`,
/// `union`, `subtract_by_key` of tables with equal partition counts) never re-hash rows.
pub struct Table<K, V> {
    computing: Computing,
    parts: Arc<[Vec<(K, V)>]>,
}

impl<K, V> Clone for Table<K, V> {
    fn clone(&self) -> Self {
        Table {
            computing: self.computing.clone(),
            parts: Arc::clone(&self.parts),
        }
    }
}

impl<K, V> std::fmt::Debug for Table<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table")
            .field("partitions", &self.parts.len())
            .field("rows", &self.parts.iter().map(Vec::len).sum::<usize>())
            .finish()
    }
}

/// Sorts `rows` by key; of equal keys the last (in input order) is kept.
pub(crate) fn sort_dedup_last<K: Ord, V>(rows: &mut Vec<(K, V)>) {
    if rows.windows(2).all(|w| w[0].0 < w[1].0) {
        return;
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    // `dedup_by` passes (later, kept); swapping moves the later row into the kept slot.
    rows.dedup_by(|later, kept| {
        if later.0 == kept.0 {
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
) -> Result<Vec<Row>, postcard::Error> {
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
    rows: &[Row],
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

impl<K: Key, V: Value> Table<K, V> {
    /// Wraps partitions that already satisfy the table invariants.
    pub(crate) fn from_parts_unchecked(computing: Computing, parts: Vec<Vec<(K, V)>>) -> Self {
        debug_assert!(!parts.is_empty());
        Table {
            computing,
            parts: parts.into(),
        }
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
        Ok(Self::from_parts_unchecked(computing.clone(), parts))
    }

    /// The engine this table runs on.
    pub fn computing(&self) -> &Computing {
        &self.computing
    }

    /// Number of partitions.
    pub fn num_partitions(&self) -> usize {
        self.parts.len()
    }

    /// Number of rows.
    pub fn count(&self) -> usize {
        self.parts.iter().map(Vec::len).sum()
    }

    /// The partitions, each sorted by key (read access for federation and encoding).
    pub fn partitions(&self) -> &[Vec<(K, V)>] {
        &self.parts
    }

    /// Runs `f` on every partition in parallel, keeping partition order.
    fn per_partition<T: Send>(&self, f: impl Fn(&[(K, V)]) -> T + Sync) -> Vec<T> {
        self.computing
            .install(|| self.parts.par_iter().map(|p| f(p)).collect())
    }

    /// A table with the same keys and partitioning (no re-hashing).
    fn same_keys<W: Value>(&self, parts: Vec<Vec<(K, W)>>) -> Table<K, W> {
        Table::from_parts_unchecked(self.computing.clone(), parts)
    }

    /// Shuffles the rows that `produce` makes from each partition into `n` partitions by key;
    /// of equal keys the last wins (source partitions in order, then output order).
    fn shuffle<K2: Key, V2: Value>(
        &self,
        n: usize,
        produce: impl Fn(usize, &[(K, V)]) -> Vec<(K2, V2)> + Sync,
    ) -> Table<K2, V2> {
        let parts = self.computing.install(|| {
            let per_source: Vec<_> = self
                .parts
                .par_iter()
                .enumerate()
                .map(|(i, p)| bucket(produce(i, p), n))
                .collect();
            gather(per_source, n, |mut rows| {
                sort_dedup_last(&mut rows);
                rows
            })
        });
        Table::from_parts_unchecked(self.computing.clone(), parts)
    }

    /// All rows, sorted by key.
    pub fn collect(&self) -> Vec<(K, V)> {
        let mut rows = Vec::with_capacity(self.count());
        for p in self.parts.iter() {
            rows.extend_from_slice(p);
        }
        // A stable sort merges the already sorted runs (one per partition).
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        rows
    }

    /// The first `n` rows in key order.
    pub fn take(&self, n: usize) -> Vec<(K, V)> {
        if n >= self.count() {
            return self.collect();
        }
        let mut heap: BinaryHeap<Reverse<(&K, usize, usize)>> = self
            .parts
            .iter()
            .enumerate()
            .filter_map(|(pi, p)| p.first().map(|(k, _)| Reverse((k, pi, 0))))
            .collect();
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let Some(Reverse((_, pi, pos))) = heap.pop() else {
                break;
            };
            let part = &self.parts[pi];
            out.push(part[pos].clone());
            if let Some((k, _)) = part.get(pos + 1) {
                heap.push(Reverse((k, pi, pos + 1)));
            }
        }
        out
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &K) -> Option<V> {
        let part = &self.parts[partition_of(key, self.parts.len())];
        part.binary_search_by(|(k, _)| k.cmp(key))
            .ok()
            .map(|i| part[i].1.clone())
    }

    /// FATE `mapValues`: same keys and partitioning, values mapped by `f`.
    pub fn map_values<W: Value>(&self, f: impl Fn(&V) -> W + Send + Sync) -> Table<K, W> {
        self.same_keys(self.per_partition(|p| p.iter().map(|(k, v)| (k.clone(), f(v))).collect()))
    }

    /// FATE `map`: rows mapped by `f` and shuffled to their new keys' partitions (same
    /// partition count); of equal new keys the last wins.
    pub fn map<K2: Key, V2: Value>(
        &self,
        f: impl Fn(&K, &V) -> (K2, V2) + Send + Sync,
    ) -> Table<K2, V2> {
        self.shuffle(self.parts.len(), |_, p| {
            p.iter().map(|(k, v)| f(k, v)).collect()
        })
    }

    /// FATE `mapPartitions`: `f` maps each whole partition to rows, which are shuffled by key;
    /// of equal keys the last wins.
    pub fn map_partitions<K2: Key, V2: Value>(
        &self,
        f: impl Fn(&[(K, V)]) -> Vec<(K2, V2)> + Send + Sync,
    ) -> Table<K2, V2> {
        self.shuffle(self.parts.len(), |_, p| f(p))
    }

    /// FATE `mapPartitionsWithIndex`: like [`Table::map_partitions`] with the partition index.
    pub fn map_partitions_with_index<K2: Key, V2: Value>(
        &self,
        f: impl Fn(usize, &[(K, V)]) -> Vec<(K2, V2)> + Send + Sync,
    ) -> Table<K2, V2> {
        self.shuffle(self.parts.len(), f)
    }

    /// FATE `mapReducePartitions`: `map` each partition to rows, then `reduce` the values of
    /// equal keys (first within each partition, then across partitions in partition order).
    /// `reduce` should be associative.
    pub fn map_reduce_partitions<K2: Key, V2: Value>(
        &self,
        map: impl Fn(&[(K, V)]) -> Vec<(K2, V2)> + Send + Sync,
        reduce: impl Fn(V2, V2) -> V2 + Send + Sync,
    ) -> Table<K2, V2> {
        let n = self.parts.len();
        let parts = self.computing.install(|| {
            let per_source: Vec<_> = self
                .parts
                .par_iter()
                .map(|p| bucket(sort_reduce(map(p), &reduce), n))
                .collect();
            gather(per_source, n, |rows| sort_reduce(rows, &reduce))
        });
        Table::from_parts_unchecked(self.computing.clone(), parts)
    }

    /// FATE `flatMap`: each row maps to any number of rows, shuffled by key; of equal keys the
    /// last wins.
    pub fn flat_map<K2: Key, V2: Value, I: IntoIterator<Item = (K2, V2)>>(
        &self,
        f: impl Fn(&K, &V) -> I + Send + Sync,
    ) -> Table<K2, V2> {
        self.shuffle(self.parts.len(), |_, p| {
            let mut out = Vec::with_capacity(p.len());
            for (k, v) in p {
                out.extend(f(k, v));
            }
            out
        })
    }

    /// FATE `filter`: the rows for which `f` is true (no re-hashing).
    pub fn filter(&self, f: impl Fn(&K, &V) -> bool + Send + Sync) -> Table<K, V> {
        self.same_keys(self.per_partition(|p| p.iter().filter(|(k, v)| f(k, v)).cloned().collect()))
    }

    /// `other` with this table's partition count (re-hashed only if the counts differ).
    fn co_partitioned<W: Value>(&self, other: &Table<K, W>) -> Table<K, W> {
        if other.parts.len() == self.parts.len() {
            other.clone()
        } else {
            other.repartition(self.parts.len())
        }
    }

    /// FATE `join`: inner join on key, values combined by `f(self_value, other_value)`. The
    /// result has this table's partitioning; `other` is re-partitioned if its count differs.
    pub fn join<W: Value, U: Value>(
        &self,
        other: &Table<K, W>,
        f: impl Fn(&V, &W) -> U + Send + Sync,
    ) -> Table<K, U> {
        let other = self.co_partitioned(other);
        let parts = self.computing.install(|| {
            self.parts
                .par_iter()
                .zip(other.parts.par_iter())
                .map(|(a, b)| merge_join(a, b, &f))
                .collect()
        });
        self.same_keys(parts)
    }

    /// FATE `union`: every key of either table; `f(self_value, other_value)` for keys in both.
    pub fn union(&self, other: &Table<K, V>, f: impl Fn(&V, &V) -> V + Send + Sync) -> Table<K, V> {
        let other = self.co_partitioned(other);
        let parts = self.computing.install(|| {
            self.parts
                .par_iter()
                .zip(other.parts.par_iter())
                .map(|(a, b)| merge_union(a, b, &f))
                .collect()
        });
        self.same_keys(parts)
    }

    /// FATE `subtractByKey`: the rows whose key is not in `other`.
    pub fn subtract_by_key<W: Value>(&self, other: &Table<K, W>) -> Table<K, V> {
        let other = self.co_partitioned(other);
        let parts = self.computing.install(|| {
            self.parts
                .par_iter()
                .zip(other.parts.par_iter())
                .map(|(a, b)| merge_subtract(a, b))
                .collect()
        });
        self.same_keys(parts)
    }

    /// FATE `reduce`: folds all values with `f` (per partition in parallel, in key order, then
    /// the partition results in partition order); `None` for an empty table. `f` should be
    /// associative and commutative for a result independent of partitioning.
    pub fn reduce(&self, f: impl Fn(V, V) -> V + Send + Sync) -> Option<V> {
        self.computing.install(|| {
            let partials: Vec<Option<V>> = self
                .parts
                .par_iter()
                .map(|p| {
                    let mut rows = p.iter();
                    let first = rows.next()?.1.clone();
                    Some(rows.fold(first, |acc, (_, v)| f(acc, v.clone())))
                })
                .collect();
            partials.into_iter().flatten().reduce(&f)
        })
    }

    /// FATE `sample` (without replacement): keeps each row with probability `fraction`. The
    /// choice is a hash of the key and `seed`, so it is deterministic for a seed and does not
    /// depend on the partitioning.
    pub fn sample(&self, fraction: f64, seed: u64) -> Table<K, V> {
        if fraction.is_nan() || fraction <= 0.0 {
            return self.same_keys(vec![Vec::new(); self.parts.len()]);
        }
        if fraction >= 1.0 {
            return self.clone();
        }
        // Keep a row when a uniform 53-bit draw is below the threshold.
        let threshold = (fraction * (1u64 << 53) as f64) as u64;
        let salt = mix64(seed ^ 0x5851_f42d_4c95_7f2d);
        self.same_keys(self.per_partition(|p| {
            p.iter()
                .filter(|(k, _)| mix64(k.partition_hash() ^ salt) >> 11 < threshold)
                .cloned()
                .collect()
        }))
    }

    /// The same rows in `partitions` partitions (0 = the default count).
    pub fn repartition(&self, partitions: usize) -> Table<K, V> {
        let n = self.computing.resolve_partitions(partitions);
        if n == self.parts.len() {
            return self.clone();
        }
        let parts = self.computing.install(|| {
            let per_source: Vec<_> = self
                .parts
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
        Table::from_parts_unchecked(self.computing.clone(), parts)
    }

    /// Persists the table as `namespace.name` in the engine's store. Without `overwrite` an
    /// existing table is an error ([`ComputingError::TableExists`]); a failed save leaves the
    /// previous table as it was.
    pub fn save(&self, namespace: &str, name: &str, overwrite: bool) -> Result<(), ComputingError> {
        check_name("namespace", namespace)?;
        check_name("name", name)?;
        let encoded = self.computing.install(|| {
            self.parts
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
            partitions = self.parts.len(),
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
