//! [`EncodedEngine`]: the reference implementation of the [`Engine`] contract, in process.
//!
//! It holds encoded partitions (sorted by key bytes) and runs every kernel through a
//! [`KernelRegistry`] on its own rayon pool, exactly as a remote engine must: nothing typed
//! crosses it, so running the component suites on it proves that every kernel is registered
//! and round-trips through serde. Spark is the other implementation.

use crate::computing::MAX_PARTITIONS;
use crate::engine::{Engine, Handle, Op, Row};
use crate::error::ComputingError;
use crate::key::mix64;
use crate::registry::{FoldFn, KernelRegistry};
use parking_lot::Mutex;
use rayon::prelude::*;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

type Parts = Arc<[Vec<Row>]>;

/// The in-process engine over encoded rows.
pub struct EncodedEngine {
    registry: Arc<KernelRegistry>,
    pool: rayon::ThreadPool,
    tables: Mutex<HashMap<u64, Parts>>,
    next: AtomicU64,
}

impl std::fmt::Debug for EncodedEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncodedEngine")
            .field("tables", &self.tables.lock().len())
            .finish()
    }
}

/// Sorts by key bytes, keeping the last of equal keys.
fn sort_dedup_last(rows: &mut Vec<Row>) {
    crate::table::sort_dedup_last_by(rows, |r| &r.key);
}

fn placement(n: usize, h: u64) -> usize {
    (h % n as u64) as usize
}

/// Buckets each source's rows by target partition and finishes every target.
fn shuffle(per_source: Vec<Vec<Row>>, n: usize) -> Vec<Vec<Row>> {
    let mut targets: Vec<Vec<Row>> = (0..n).map(|_| Vec::new()).collect();
    for rows in per_source {
        for r in rows {
            targets[placement(n, r.hash)].push(r);
        }
    }
    targets.par_iter_mut().for_each(sort_dedup_last);
    targets
}

/// A table's partition count must be `1..=MAX_PARTITIONS` (every engine's check).
pub fn check_partition_count(n: usize) -> Result<(), ComputingError> {
    if n == 0 || n > MAX_PARTITIONS {
        return Err(ComputingError::BadPartition {
            partition: 0,
            partitions: n,
            reason: format!("a table has 1..={MAX_PARTITIONS} partitions"),
        });
    }
    Ok(())
}

/// `mapReducePartitions`' fold of one partition's map output: rows stably sorted by key bytes,
/// the values of equal keys folded left to right; a key met once keeps its row unchanged.
/// Every engine folds this way (the Spark executor too), so results agree across engines.
pub fn fold_equal_keys(mut rows: Vec<Row>, fold: &FoldFn) -> Result<Vec<Row>, ComputingError> {
    rows.sort_by(|x, y| x.key.cmp(&y.key));
    let mut out: Vec<Row> = Vec::with_capacity(rows.len());
    let mut i = 0;
    while i < rows.len() {
        let mut j = i + 1;
        while j < rows.len() && rows[j].key == rows[i].key {
            j += 1;
        }
        if j == i + 1 {
            out.push(std::mem::take(&mut rows[i]));
        } else {
            let value =
                fold(rows[i..j].iter().map(|r| r.value.as_slice()).collect())?.unwrap_or_default();
            out.push(Row {
                hash: rows[i].hash,
                key: std::mem::take(&mut rows[i].key),
                value,
            });
        }
        i = j;
    }
    Ok(out)
}

impl EncodedEngine {
    /// An engine running `registry`'s kernels on a pool of `cores` threads.
    pub fn new(registry: KernelRegistry, cores: usize) -> Result<Arc<Self>, ComputingError> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(cores.clamp(1, crate::computing::MAX_CORES))
            .thread_name(|i| format!("fate-encoded-{i}"))
            .build()
            .map_err(|source| ComputingError::ThreadPool { cores, source })?;
        Ok(Arc::new(EncodedEngine {
            registry: Arc::new(registry),
            pool,
            tables: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
        }))
    }

    /// Tables currently held (tests check that released handles are freed).
    pub fn live_tables(&self) -> usize {
        self.tables.lock().len()
    }

    fn parts(&self, t: &Handle) -> Result<Parts, ComputingError> {
        self.tables
            .lock()
            .get(&t.id)
            .cloned()
            .ok_or_else(|| ComputingError::UnknownTable {
                engine: "encoded".into(),
                id: t.id,
            })
    }

    fn put(&self, parts: Vec<Vec<Row>>) -> Handle {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let partitions = parts.len();
        self.tables.lock().insert(id, parts.into());
        Handle { id, partitions }
    }

    fn co_partitioned(a: &Parts, b: Parts) -> Parts {
        if a.len() == b.len() {
            return b;
        }
        shuffle(b.iter().cloned().collect(), a.len()).into()
    }

    fn apply_inner(&self, op: &Op, inputs: &[Parts]) -> Result<Vec<Vec<Row>>, ComputingError> {
        let reg = &self.registry;
        let a = &inputs[0];
        Ok(match op {
            Op::MapInPlace(k) => {
                let f = reg.rows_fn(k)?;
                let out = a
                    .par_iter()
                    .enumerate()
                    .map(|(i, p)| f(i, p.clone()))
                    .collect::<Result<Vec<_>, _>>()?;
                // A kernel of this kind keeps keys; check it rather than trust it.
                for (i, p) in out.iter().enumerate() {
                    if p.iter().any(|r| placement(a.len(), r.hash) != i) {
                        return Err(ComputingError::Kernel {
                            name: k.name.clone(),
                            reason: "moved a key in an in-place map".into(),
                        });
                    }
                }
                out
            }
            Op::MapShuffle(k) => {
                let f = reg.rows_fn(k)?;
                let out = a
                    .par_iter()
                    .enumerate()
                    .map(|(i, p)| f(i, p.clone()))
                    .collect::<Result<Vec<_>, _>>()?;
                shuffle(out, a.len())
            }
            Op::MapReduce { map, reduce } => {
                let m = reg.rows_fn(map)?;
                let r = reg.fold_fn(reduce)?;
                let fold_groups = |rows: Vec<Row>| fold_equal_keys(rows, &r);
                let per_source = a
                    .par_iter()
                    .enumerate()
                    .map(|(i, p)| fold_groups(m(i, p.clone())?))
                    .collect::<Result<Vec<_>, _>>()?;
                let n = a.len();
                let mut targets: Vec<Vec<Row>> = (0..n).map(|_| Vec::new()).collect();
                for rows in per_source {
                    for row in rows {
                        targets[placement(n, row.hash)].push(row);
                    }
                }
                targets
                    .into_par_iter()
                    .map(fold_groups)
                    .collect::<Result<Vec<_>, _>>()?
            }
            Op::Join(k) => {
                let f = reg.combine_fn(k)?;
                let b = Self::co_partitioned(a, inputs[1].clone());
                a.par_iter()
                    .zip(b.par_iter())
                    .map(|(pa, pb)| {
                        let mut out = Vec::new();
                        let (mut i, mut j) = (0, 0);
                        while let (Some(x), Some(y)) = (pa.get(i), pb.get(j)) {
                            match x.key.cmp(&y.key) {
                                std::cmp::Ordering::Less => i += 1,
                                std::cmp::Ordering::Greater => j += 1,
                                std::cmp::Ordering::Equal => {
                                    out.push(Row {
                                        hash: x.hash,
                                        key: x.key.clone(),
                                        value: f(&x.value, &y.value)?,
                                    });
                                    i += 1;
                                    j += 1;
                                }
                            }
                        }
                        Ok(out)
                    })
                    .collect::<Result<Vec<_>, ComputingError>>()?
            }
            Op::Union(k) => {
                let f = reg.fold_fn(k)?;
                let b = Self::co_partitioned(a, inputs[1].clone());
                a.par_iter()
                    .zip(b.par_iter())
                    .map(|(pa, pb)| {
                        let mut out = Vec::with_capacity(pa.len() + pb.len());
                        let (mut i, mut j) = (0, 0);
                        loop {
                            match (pa.get(i), pb.get(j)) {
                                (Some(x), Some(y)) => match x.key.cmp(&y.key) {
                                    std::cmp::Ordering::Less => {
                                        out.push(x.clone());
                                        i += 1;
                                    }
                                    std::cmp::Ordering::Greater => {
                                        out.push(y.clone());
                                        j += 1;
                                    }
                                    std::cmp::Ordering::Equal => {
                                        let v = f(vec![&x.value, &y.value])?.unwrap_or_default();
                                        out.push(Row {
                                            hash: x.hash,
                                            key: x.key.clone(),
                                            value: v,
                                        });
                                        i += 1;
                                        j += 1;
                                    }
                                },
                                (Some(x), None) => {
                                    out.push(x.clone());
                                    i += 1;
                                }
                                (None, Some(y)) => {
                                    out.push(y.clone());
                                    j += 1;
                                }
                                (None, None) => break,
                            }
                        }
                        Ok(out)
                    })
                    .collect::<Result<Vec<_>, ComputingError>>()?
            }
            Op::SubtractByKey => {
                let b = Self::co_partitioned(a, inputs[1].clone());
                a.par_iter()
                    .zip(b.par_iter())
                    .map(|(pa, pb)| {
                        pa.iter()
                            .filter(|x| pb.binary_search_by(|y| y.key.cmp(&x.key)).is_err())
                            .cloned()
                            .collect()
                    })
                    .collect()
            }
            Op::Sample { threshold, salt } => a
                .par_iter()
                .map(|p| {
                    p.iter()
                        .filter(|r| mix64(r.hash ^ salt) >> 11 < *threshold)
                        .cloned()
                        .collect()
                })
                .collect(),
            Op::Repartition { partitions } => {
                check_partition_count(*partitions)?;
                shuffle(a.iter().cloned().collect(), *partitions)
            }
        })
    }
}

impl Engine for EncodedEngine {
    fn name(&self) -> &str {
        "encoded"
    }

    fn parallelize(&self, partitions: Vec<Vec<Row>>) -> Result<Handle, ComputingError> {
        let n = partitions.len();
        check_partition_count(n)?;
        let mut parts = partitions;
        self.pool.install(|| {
            parts.par_iter_mut().enumerate().try_for_each(|(i, rows)| {
                if rows.iter().any(|r| placement(n, r.hash) != i) {
                    return Err(ComputingError::BadPartition {
                        partition: i,
                        partitions: n,
                        reason: "a row's hash places it in another partition".into(),
                    });
                }
                let len = rows.len();
                sort_dedup_last(rows);
                if rows.len() != len {
                    return Err(ComputingError::BadPartition {
                        partition: i,
                        partitions: n,
                        reason: "a key occurs twice".into(),
                    });
                }
                Ok(())
            })
        })?;
        Ok(self.put(parts))
    }

    fn apply(&self, op: &Op, inputs: &[&Handle]) -> Result<Handle, ComputingError> {
        if inputs.len() != op.arity() {
            return Err(ComputingError::Engine {
                engine: "encoded".into(),
                reason: format!("{op:?} takes {} tables, got {}", op.arity(), inputs.len()),
            });
        }
        let parts = inputs
            .iter()
            .map(|h| self.parts(h))
            .collect::<Result<Vec<_>, _>>()?;
        let out = self.pool.install(|| self.apply_inner(op, &parts))?;
        Ok(self.put(out))
    }

    fn reduce(
        &self,
        t: &Handle,
        kernel: &crate::KernelCall,
    ) -> Result<Option<Vec<u8>>, ComputingError> {
        let parts = self.parts(t)?;
        let f = self.registry.fold_fn(kernel)?;
        let partials = self.pool.install(|| {
            parts
                .par_iter()
                .map(|p| f(p.iter().map(|r| r.value.as_slice()).collect()))
                .collect::<Result<Vec<_>, _>>()
        })?;
        let partials: Vec<Vec<u8>> = partials.into_iter().flatten().collect();
        f(partials.iter().map(Vec::as_slice).collect())
    }

    fn counts(&self, t: &Handle) -> Result<Vec<u64>, ComputingError> {
        Ok(self.parts(t)?.iter().map(|p| p.len() as u64).collect())
    }

    fn partition(
        &self,
        t: &Handle,
        index: usize,
        max_rows: u64,
    ) -> Result<Vec<Row>, ComputingError> {
        let parts = self.parts(t)?;
        let Some(p) = parts.get(index) else {
            return Err(ComputingError::Engine {
                engine: "encoded".into(),
                reason: format!("table {} has no partition {index}", t.id),
            });
        };
        if p.len() as u64 > max_rows {
            return Err(ComputingError::TooManyRows {
                rows: p.len() as u64,
                max: max_rows,
            });
        }
        Ok(p.clone())
    }

    fn take(&self, t: &Handle, n: usize) -> Result<Vec<Row>, ComputingError> {
        let parts = self.parts(t)?;
        Ok(parts.iter().flatten().take(n).cloned().collect())
    }

    fn get(&self, t: &Handle, hash: u64, key: &[u8]) -> Result<Option<Vec<u8>>, ComputingError> {
        let parts = self.parts(t)?;
        let p = &parts[placement(parts.len(), hash)];
        Ok(p.binary_search_by(|r| r.key.as_slice().cmp(key))
            .ok()
            .map(|i| p[i].value.clone()))
    }

    fn release(&self, t: &Handle) {
        self.tables.lock().remove(&t.id);
    }
}
