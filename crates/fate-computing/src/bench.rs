//! Throughput of table operations against a plain single-threaded baseline, for `fate bench`.
//!
//! Each operation runs on `rows` rows of `u64 -> f64`; the baseline does the same work with a
//! single-threaded loop over the same data held in a `Vec` (map, reduce) or a `HashMap` (join).
//! Every figure is the best of [`REPEATS`] runs after a warm-up, so a busy machine and
//! first-touch page faults distort it less.

use crate::{Combine, Computing, Fold, Kernel, MapValues, Table};
use serde::Serialize;
use std::collections::HashMap;
use std::hint::black_box;
use std::time::Instant;

/// `v * a + b`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Affine {
    pub a: f64,
    pub b: f64,
}
impl Kernel for Affine {
    const NAME: &'static str = "fate_computing.bench.affine";
}
impl MapValues for Affine {
    type In = f64;
    type Out = f64;
    fn apply(&self, v: &f64) -> f64 {
        v * self.a + self.b
    }
}

/// `a + b`, as a join combiner and as a fold.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct Sum;
impl Kernel for Sum {
    const NAME: &'static str = "fate_computing.bench.sum";
}
impl Combine for Sum {
    type A = f64;
    type B = f64;
    type Out = f64;
    fn apply(&self, a: &f64, b: &f64) -> f64 {
        a + b
    }
}

/// [`Sum`] as a fold (a kernel name has one kind).
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct SumFold;
impl Kernel for SumFold {
    const NAME: &'static str = "fate_computing.bench.sum_fold";
}
impl Fold for SumFold {
    type V = f64;
    fn apply(&self, a: f64, b: f64) -> f64 {
        a + b
    }
}

/// Registers the benchmark's kernels.
pub fn register_kernels(r: &mut crate::KernelRegistry) -> Result<(), crate::ComputingError> {
    r.map_values::<Affine>()?
        .combine::<Sum>()?
        .fold::<SumFold>()?;
    Ok(())
}

/// Runs per measurement; the fastest counts.
pub const REPEATS: usize = 5;

/// One measured operation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ThroughputRecord {
    /// `parallelize`, `map_values`, `join` or `reduce`.
    pub op: String,
    /// Rows processed.
    pub rows: usize,
    /// Seconds of the table operation.
    pub secs: f64,
    /// `rows / secs`.
    pub rows_per_sec: f64,
    /// Seconds of the single-threaded baseline.
    pub baseline_secs: f64,
    /// `rows / baseline_secs`.
    pub baseline_rows_per_sec: f64,
}

/// Best-of-[`REPEATS`] seconds of `f` after one untimed warm-up run (which lets the allocator
/// map its pages once, for table and baseline alike); results are dropped outside the timed span.
fn best_secs<T>(mut f: impl FnMut() -> T) -> f64 {
    drop(black_box(f()));
    let mut best = f64::INFINITY;
    for _ in 0..REPEATS {
        let start = Instant::now();
        let out = black_box(f());
        best = best.min(start.elapsed().as_secs_f64());
        drop(out);
    }
    best
}

fn record(op: &str, rows: usize, secs: f64, baseline_secs: f64) -> ThroughputRecord {
    let per_sec = |s: f64| {
        if s > 0.0 {
            rows as f64 / s
        } else {
            f64::INFINITY
        }
    };
    ThroughputRecord {
        op: op.to_string(),
        rows,
        secs,
        rows_per_sec: per_sec(secs),
        baseline_secs,
        baseline_rows_per_sec: per_sec(baseline_secs),
    }
}

/// Measures `parallelize`, `map_values`, `join` and `reduce` on `rows` rows in
/// `computing.default_partitions()` partitions on `computing`'s pool.
pub fn table_throughput(computing: &Computing, rows: usize) -> Vec<ThroughputRecord> {
    let n = computing.default_partitions();
    let left: Vec<(u64, f64)> = (0..rows as u64)
        .map(|k| (k, (k % 1000) as f64 * 0.5))
        .collect();
    let right: Vec<(u64, f64)> = (0..rows as u64).map(|k| (k, (k % 7) as f64)).collect();

    let secs = best_secs(|| computing.parallelize(left.iter().copied(), n));
    let base = best_secs(|| left.iter().copied().collect::<HashMap<u64, f64>>());
    let mut out = vec![record("parallelize", rows, secs, base)];

    let table: Table<u64, f64> = computing.parallelize(left.iter().copied(), n);
    let other: Table<u64, f64> = computing.parallelize(right.iter().copied(), n);

    let secs = best_secs(|| table.map_values(&Affine { a: 2.0, b: 1.0 }));
    let base = best_secs(|| {
        left.iter()
            .map(|&(k, v)| (k, v * 2.0 + 1.0))
            .collect::<Vec<_>>()
    });
    out.push(record("map_values", rows, secs, base));

    let secs = best_secs(|| table.join(&other, &Sum));
    let right_map: HashMap<u64, f64> = right.iter().copied().collect();
    let base = best_secs(|| {
        left.iter()
            .filter_map(|(k, a)| right_map.get(k).map(|b| (*k, a + b)))
            .collect::<Vec<_>>()
    });
    out.push(record("join", rows, secs, base));

    let secs = best_secs(|| table.reduce(&SumFold));
    let base = best_secs(|| left.iter().map(|(_, v)| v).sum::<f64>());
    out.push(record("reduce", rows, secs, base));
    out
}
