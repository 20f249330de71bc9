//! The conformance suite every engine passes: every table operation and kernel contract,
//! checked against a plain `BTreeMap` model on deterministic pseudo-random cases. Run it with
//! [`conformance`] on a [`Computing`] of the engine under test (local, [`crate::EncodedEngine`],
//! Spark) whose registry holds [`register_kernels`]; [`engine_contract`] adds the checks of the
//! raw [`Engine`] contract (unknown handles and kernels). Failures are panics naming the case.
//! [`store`] holds the suite every [`crate::TableStore`] passes. Behind the `testing` feature:
//! never compiled into release builds.

pub mod store;
pub use store::{StoreUnderTest, table_store_conformance};

use crate::engine::{Engine, Op, Row};
use crate::error::ComputingError;
use crate::kernel::{
    Combine, Filter, FlatMap, Fold, Kernel, KernelCall, MapPartition, MapRow, MapValues,
};
use crate::key::{Key, Value, partition_of};
use crate::registry::KernelRegistry;
use crate::{Computing, Table};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Cases per property.
pub const CASES: u64 = 48;

/// splitmix64: the suite's deterministic case generator.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        crate::mix64(self.0)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn rows(&mut self) -> Vec<(u64, i64)> {
        let n = self.below(80);
        (0..n)
            .map(|_| (self.below(64), i64::from(self.next() as i32)))
            .collect()
    }
    fn parts(&mut self) -> usize {
        1 + self.below(7) as usize
    }
}

macro_rules! kernel {
    ($t:ident, $name:literal) => {
        #[derive(Debug, Default, Clone, Copy, Serialize, Deserialize)]
        pub struct $t;
        impl Kernel for $t {
            const NAME: &'static str = concat!("fate_computing.testing.", $name);
        }
    };
}

kernel!(ShowValue, "show_value");
impl MapValues for ShowValue {
    type In = i64;
    type Out = String;
    fn apply(&self, v: &i64) -> String {
        format!("v{v}")
    }
}

kernel!(KeepDiv3, "keep_div3");
impl Filter for KeepDiv3 {
    type K = u64;
    type V = i64;
    fn keep(&self, k: &u64, v: &i64) -> bool {
        k.wrapping_add(*v as u64).is_multiple_of(3)
    }
}

kernel!(StringKeys, "string_keys");
impl MapRow for StringKeys {
    type K = u64;
    type V = i64;
    type K2 = String;
    type V2 = i64;
    fn apply(&self, k: &u64, v: &i64) -> (String, i64) {
        (format!("k{}", k * 2 + 1), v.wrapping_neg())
    }
}

kernel!(Collide, "collide");
impl MapRow for Collide {
    type K = u64;
    type V = i64;
    type K2 = u64;
    type V2 = (u64, i64);
    fn apply(&self, k: &u64, v: &i64) -> (u64, (u64, i64)) {
        (k % 5, (*k, *v))
    }
}

kernel!(Shift, "shift");
impl MapPartition for Shift {
    type K = u64;
    type V = i64;
    type K2 = u64;
    type V2 = i64;
    fn apply(&self, _: usize, rows: &[(u64, i64)]) -> Vec<(u64, i64)> {
        rows.iter().map(|(k, v)| (k + 1000, v / 2)).collect()
    }
}

kernel!(WhichPartition, "which_partition");
impl MapPartition for WhichPartition {
    type K = u64;
    type V = i64;
    type K2 = u64;
    type V2 = u64;
    fn apply(&self, i: usize, rows: &[(u64, i64)]) -> Vec<(u64, u64)> {
        rows.iter().map(|(k, _)| (*k, i as u64)).collect()
    }
}

kernel!(Twice, "twice");
impl FlatMap for Twice {
    type K = u64;
    type V = i64;
    type K2 = u64;
    type V2 = i64;
    fn apply(&self, k: &u64, v: &i64, out: &mut Vec<(u64, i64)>) {
        out.extend([(k * 2, *v), (k * 2 + 1, v.wrapping_neg())]);
    }
}

kernel!(Nothing, "nothing");
impl FlatMap for Nothing {
    type K = u64;
    type V = i64;
    type K2 = u64;
    type V2 = i64;
    fn apply(&self, _: &u64, _: &i64, _: &mut Vec<(u64, i64)>) {}
}

kernel!(ModSeven, "mod_seven");
impl MapPartition for ModSeven {
    type K = u64;
    type V = i64;
    type K2 = u64;
    type V2 = i64;
    fn apply(&self, _: usize, rows: &[(u64, i64)]) -> Vec<(u64, i64)> {
        rows.iter().map(|(k, v)| (k % 7, *v)).collect()
    }
}

kernel!(ModThreeTwice, "mod_three_twice");
impl MapPartition for ModThreeTwice {
    type K = u64;
    type V = i64;
    type K2 = u64;
    type V2 = u64;
    fn apply(&self, _: usize, rows: &[(u64, i64)]) -> Vec<(u64, u64)> {
        rows.iter()
            .flat_map(|(k, _)| [(k % 3, 1u64), (k % 3, 1u64)])
            .collect()
    }
}

kernel!(WrappingAdd, "wrapping_add");
impl Fold for WrappingAdd {
    type V = i64;
    fn apply(&self, a: i64, b: i64) -> i64 {
        a.wrapping_add(b)
    }
}

kernel!(MaxI64, "max_i64");
impl Fold for MaxI64 {
    type V = i64;
    fn apply(&self, a: i64, b: i64) -> i64 {
        a.max(b)
    }
}

kernel!(AddU64, "add_u64");
impl Fold for AddU64 {
    type V = u64;
    fn apply(&self, a: u64, b: u64) -> u64 {
        a + b
    }
}

kernel!(AddF64, "add_f64");
impl Fold for AddF64 {
    type V = f64;
    fn apply(&self, a: f64, b: f64) -> f64 {
        a + b
    }
}

// Non-commutative: checks the argument order of `union`.
kernel!(MulSub, "mul_sub");
impl Fold for MulSub {
    type V = i64;
    fn apply(&self, x: i64, y: i64) -> i64 {
        x.wrapping_mul(3).wrapping_sub(y)
    }
}

kernel!(ToText, "to_text");
impl MapValues for ToText {
    type In = i64;
    type Out = String;
    fn apply(&self, v: &i64) -> String {
        v.to_string()
    }
}

kernel!(JoinText, "join_text");
impl Combine for JoinText {
    type A = i64;
    type B = String;
    type Out = String;
    fn apply(&self, x: &i64, y: &String) -> String {
        format!("{x}|{y}")
    }
}

kernel!(AddPair, "add_pair");
impl Combine for AddPair {
    type A = u64;
    type B = u64;
    type Out = u64;
    fn apply(&self, x: &u64, y: &u64) -> u64 {
        x + y
    }
}

/// Kernel with parameters: adds `by` to every value (checks that fields travel).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AddBy {
    pub by: i64,
}
impl Kernel for AddBy {
    const NAME: &'static str = "fate_computing.testing.add_by";
}
impl MapValues for AddBy {
    type In = i64;
    type Out = i64;
    fn apply(&self, v: &i64) -> i64 {
        v.wrapping_add(self.by)
    }
}

// Never registered: an engine must refuse it by name.
kernel!(Unregistered, "unregistered");
impl MapValues for Unregistered {
    type In = i64;
    type Out = i64;
    fn apply(&self, v: &i64) -> i64 {
        *v
    }
}

/// Registers the suite's kernels.
pub fn register_kernels(r: &mut KernelRegistry) -> Result<(), ComputingError> {
    r.map_values::<ShowValue>()?
        .map_values::<ToText>()?
        .map_values::<AddBy>()?
        .filter::<KeepDiv3>()?
        .map::<StringKeys>()?
        .map::<Collide>()?
        .map_partitions::<Shift>()?
        .map_partitions::<WhichPartition>()?
        .map_partitions::<ModSeven>()?
        .map_partitions::<ModThreeTwice>()?
        .flat_map::<Twice>()?
        .flat_map::<Nothing>()?
        .fold::<WrappingAdd>()?
        .fold::<MaxI64>()?
        .fold::<AddU64>()?
        .fold::<AddF64>()?
        .fold::<MulSub>()?
        .combine::<JoinText>()?
        .combine::<AddPair>()?;
    Ok(())
}

const ALL: usize = usize::MAX;

fn rows<K: Key, V: Value>(t: &Table<K, V>) -> Vec<(K, V)> {
    t.collect(ALL).expect("collect")
}

fn count<K: Key, V: Value>(t: &Table<K, V>) -> usize {
    t.count().expect("count")
}

/// Every key in its partition; every partition sorted with unique keys (as seen through the
/// façade).
pub fn assert_invariants<K: Key, V: Value>(t: &Table<K, V>) {
    let n = t.num_partitions();
    assert!(n >= 1);
    t.for_each_partition::<ComputingError>(ALL, |i, part| {
        for (k, _) in part {
            assert_eq!(partition_of(k, n), i, "key {k:?} in partition {i} of {n}");
        }
        assert!(
            part.windows(2).all(|w| w[0].0 < w[1].0),
            "partition {i} not strictly sorted"
        );
        Ok(())
    })
    .expect("partitions");
}

fn model<K: Ord + Clone, V: Clone>(rows: &[(K, V)]) -> BTreeMap<K, V> {
    rows.iter().cloned().collect()
}

fn rows_of<K: Clone, V: Clone>(m: &BTreeMap<K, V>) -> Vec<(K, V)> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn table<K: Key, V: Value>(c: &Computing, rows: &[(K, V)], parts: usize) -> Table<K, V> {
    let t = c.parallelize(rows.iter().cloned(), parts);
    assert_eq!(t.num_partitions(), parts);
    assert_invariants(&t);
    t
}

fn partitions_of<K: Key, V: Value>(t: &Table<K, V>) -> Vec<Vec<(K, V)>> {
    let mut out = Vec::new();
    t.for_each_partition::<ComputingError>(ALL, |_, p| {
        out.push(p.to_vec());
        Ok(())
    })
    .expect("partitions");
    out
}

/// Runs every property of the table contract on `c`'s engine.
pub fn conformance(c: &Computing) {
    conformance_cases(c, CASES);
}

/// [`conformance`] with `cases` cases per property (a remote engine, where every operation is
/// a cluster job, runs fewer; the fixed checks run in full).
pub fn conformance_cases(c: &Computing, cases: u64) {
    for case in 0..cases {
        let g = &mut Gen(case.wrapping_mul(0x1234_5678_9abc_def1) ^ 0xfa7e);
        let what = format!("engine {} case {case}", c.engine_name());
        basic(c, g, &what);
        keys(c, g);
        maps(c, g, &what);
        map_reduce(c, g);
        binary(c, g);
        unbalanced(c, g);
        reduce(c, g);
        sample(c, g);
        from_partitions(c, g);
    }
    bounded(c);
    persistence(c);
    if c.engine_name() != "local" {
        // An engine failure makes a failed table; the next action reports it.
        let t = c.parallelize((0..10u64).map(|k| (k, k as i64)), 2);
        let failed = t.map_values(&Unregistered).map_values(&AddBy { by: 1 });
        let err = failed.count().unwrap_err();
        assert!(err.to_string().contains("unregistered"), "{err}");
        assert!(failed.collect(ALL).is_err());
    }
}

fn basic(c: &Computing, g: &mut Gen, what: &str) {
    let (r, parts, n) = (g.rows(), g.parts(), g.below(90) as usize);
    let t = table(c, &r, parts);
    let m = model(&r);
    assert_eq!(rows(&t), rows_of(&m), "{what}");
    assert_eq!(count(&t), m.len(), "{what}");
    assert_eq!(t.partition_counts().unwrap().iter().sum::<usize>(), m.len());
    for k in 0..70u64 {
        assert_eq!(t.get(&k).unwrap(), m.get(&k).copied(), "{what} get {k}");
    }
    let taken = t.take(n).unwrap();
    assert_eq!(taken.len(), n.min(m.len()), "{what}");
    assert!(taken.windows(2).all(|w| w[0].0 < w[1].0));
    for (k, v) in &taken {
        assert_eq!(m.get(k), Some(v));
    }
    if c.engine_name() == "local" {
        let first: Vec<_> = rows_of(&m).into_iter().take(n).collect();
        assert_eq!(taken, first, "{what}");
    }
    // Kernel fields travel with the kernel.
    let by = g.next() as i64;
    let added = t.map_values(&AddBy { by });
    assert_eq!(
        rows(&added),
        m.iter()
            .map(|(k, v)| (*k, v.wrapping_add(by)))
            .collect::<Vec<_>>()
    );
    let to = g.parts();
    let r2 = t.repartition(to);
    assert_invariants(&r2);
    assert_eq!(r2.num_partitions(), to);
    assert_eq!(rows(&r2), rows_of(&m));
}

fn keys(c: &Computing, g: &mut Gen) {
    let n = g.below(60);
    let r: Vec<(String, u32, i64)> = (0..n)
        .map(|_| {
            let len = g.below(4) as usize;
            let s: String = (0..len)
                .map(|_| (b'a' + g.below(3) as u8) as char)
                .collect();
            (s, g.next() as u32, g.next() as i64)
        })
        .collect();
    let parts = g.parts();
    let by_string: Vec<(String, i64)> = r.iter().map(|(s, _, v)| (s.clone(), *v)).collect();
    assert_eq!(
        rows(&table(c, &by_string, parts)),
        rows_of(&model(&by_string))
    );
    let by_pair: Vec<((u32, String), i64)> = r
        .iter()
        .map(|(s, u, v)| ((*u % 4, s.clone()), *v))
        .collect();
    assert_eq!(rows(&table(c, &by_pair, parts)), rows_of(&model(&by_pair)));
    let by_bytes: Vec<(Vec<u8>, i64)> = r
        .iter()
        .map(|(s, _, v)| (s.as_bytes().to_vec(), *v))
        .collect();
    assert_eq!(
        rows(&table(c, &by_bytes, parts)),
        rows_of(&model(&by_bytes))
    );
}

fn maps(c: &Computing, g: &mut Gen, what: &str) {
    let (r, parts) = (g.rows(), g.parts());
    let t = table(c, &r, parts);
    let m = model(&r);
    let mapped = t.map_values(&ShowValue);
    assert_invariants(&mapped);
    let expected: Vec<_> = m.iter().map(|(k, v)| (*k, format!("v{v}"))).collect();
    assert_eq!(rows(&mapped), expected, "{what}");
    let kept = t.filter(&KeepDiv3);
    assert_invariants(&kept);
    let expected: Vec<_> = m
        .iter()
        .filter(|(k, v)| KeepDiv3.keep(k, v))
        .map(|(k, v)| (*k, *v))
        .collect();
    assert_eq!(rows(&kept), expected, "{what}");
    assert_eq!(kept.num_partitions(), parts);

    let mapped = t.map(&StringKeys);
    assert_invariants(&mapped);
    assert_eq!(mapped.num_partitions(), parts);
    let expected: BTreeMap<String, i64> = m.iter().map(|(k, v)| StringKeys.apply(k, v)).collect();
    assert_eq!(rows(&mapped), rows_of(&expected), "{what}");
    let collided = t.map(&Collide);
    assert_invariants(&collided);
    let out = rows(&collided);
    let ks: BTreeSet<u64> = m.keys().map(|k| k % 5).collect();
    assert_eq!(out.iter().map(|(k, _)| *k).collect::<BTreeSet<_>>(), ks);
    for (k, (src_k, src_v)) in out {
        assert_eq!(src_k % 5, k);
        assert_eq!(m.get(&src_k), Some(&src_v));
    }

    let shifted = t.map_partitions(&Shift);
    assert_invariants(&shifted);
    let expected: BTreeMap<u64, i64> = m.iter().map(|(k, v)| (k + 1000, v / 2)).collect();
    assert_eq!(rows(&shifted), rows_of(&expected), "{what}");
    for (k, i) in rows(&t.map_partitions(&WhichPartition)) {
        assert_eq!(partition_of(&k, parts) as u64, i, "{what}");
    }
    let flat = t.flat_map(&Twice);
    assert_invariants(&flat);
    let expected: BTreeMap<u64, i64> = m
        .iter()
        .flat_map(|(k, v)| [(k * 2, *v), (k * 2 + 1, v.wrapping_neg())])
        .collect();
    assert_eq!(rows(&flat), rows_of(&expected), "{what}");
    let none = t.flat_map(&Nothing);
    assert_eq!(count(&none), 0);
    assert_eq!(none.num_partitions(), parts);
}

fn map_reduce(c: &Computing, g: &mut Gen) {
    let (r, parts) = (g.rows(), g.parts());
    let t = table(c, &r, parts);
    let m = model(&r);
    let sums = t.map_reduce_partitions(&ModSeven, &WrappingAdd);
    assert_invariants(&sums);
    let mut expected: BTreeMap<u64, i64> = BTreeMap::new();
    for (k, v) in &m {
        let e = expected.entry(k % 7).or_insert(0);
        *e = e.wrapping_add(*v);
    }
    assert_eq!(rows(&sums), rows_of(&expected));
    // Several rows of one key from the same partition are reduced too.
    let counts = t.map_reduce_partitions(&ModThreeTwice, &AddU64);
    let mut expected: BTreeMap<u64, u64> = BTreeMap::new();
    for k in m.keys() {
        *expected.entry(k % 3).or_insert(0) += 2;
    }
    assert_eq!(rows(&counts), rows_of(&expected));
}

fn binary(c: &Computing, g: &mut Gen) {
    let (a, pa, b, pb) = (g.rows(), g.parts(), g.rows(), g.parts());
    let (ta, tb) = (table(c, &a, pa), table(c, &b, pb));
    let (ma, mb) = (model(&a), model(&b));
    let joined = ta.join(&tb.map_values(&ToText), &JoinText);
    assert_invariants(&joined);
    assert_eq!(joined.num_partitions(), pa);
    let expected: Vec<_> = ma
        .iter()
        .filter_map(|(k, x)| mb.get(k).map(|y| (*k, format!("{x}|{y}"))))
        .collect();
    assert_eq!(rows(&joined), expected);

    let united = ta.union(&tb, &MulSub);
    assert_invariants(&united);
    assert_eq!(united.num_partitions(), pa);
    let mut expected = mb.clone();
    for (k, x) in &ma {
        let v = match mb.get(k) {
            Some(y) => MulSub.apply(*x, *y),
            None => *x,
        };
        expected.insert(*k, v);
    }
    assert_eq!(rows(&united), rows_of(&expected));

    let rest = ta.subtract_by_key(&tb);
    assert_invariants(&rest);
    let expected: Vec<_> = ma
        .iter()
        .filter(|(k, _)| !mb.contains_key(k))
        .map(|(k, v)| (*k, *v))
        .collect();
    assert_eq!(rows(&rest), expected);
}

fn unbalanced(c: &Computing, g: &mut Gen) {
    let big: Vec<u64> = (0..g.below(600)).map(|_| g.below(2000)).collect();
    let small: Vec<u64> = (0..g.below(8)).map(|_| g.below(2000)).collect();
    let (pa, pb) = (1 + g.below(3) as usize, 1 + g.below(3) as usize);
    let tb = table(c, &big.iter().map(|k| (*k, *k)).collect::<Vec<_>>(), pa);
    let ts = table(c, &small.iter().map(|k| (*k, 1u64)).collect::<Vec<_>>(), pb);
    let expected: Vec<(u64, u64)> = small
        .iter()
        .copied()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|k| big.contains(k))
        .map(|k| (k, k + 1))
        .collect();
    assert_eq!(rows(&tb.join(&ts, &AddPair)), expected);
    assert_eq!(rows(&ts.join(&tb, &AddPair)), expected);
}

fn reduce(c: &Computing, g: &mut Gen) {
    let (r, parts) = (g.rows(), g.parts());
    let t = table(c, &r, parts);
    let m = model(&r);
    assert_eq!(
        t.reduce(&WrappingAdd).unwrap(),
        m.values().copied().reduce(i64::wrapping_add)
    );
    assert_eq!(t.reduce(&MaxI64).unwrap(), m.values().copied().max());
    // Floats: the order of the fold is the engine's, the sum the same within 1e-12.
    let fl: Vec<(u64, f64)> = m.iter().map(|(k, v)| (*k, *v as f64 / 1e9 + 0.1)).collect();
    let tf = table(c, &fl, parts);
    let exact: f64 = fl.iter().map(|(_, v)| v).sum();
    let got = tf.reduce(&AddF64).unwrap().unwrap_or(0.0);
    assert!(
        (got - exact).abs() <= 1e-12 * exact.abs().max(1.0),
        "{got} vs {exact}"
    );
    let again = tf
        .repartition(parts % 7 + 1)
        .reduce(&AddF64)
        .unwrap()
        .unwrap_or(0.0);
    assert!((again - exact).abs() <= 1e-12 * exact.abs().max(1.0));
}

fn sample(c: &Computing, g: &mut Gen) {
    let (r, parts) = (g.rows(), g.parts());
    let fraction = g.below(1000) as f64 / 1000.0;
    let seed = g.next();
    let t = table(c, &r, parts);
    let m = model(&r);
    let s = t.sample(fraction, seed);
    assert_invariants(&s);
    for (k, v) in rows(&s) {
        assert_eq!(m.get(&k), Some(&v));
    }
    assert_eq!(rows(&s), rows(&t.sample(fraction, seed)));
    assert_eq!(
        rows(&s),
        rows(&t.repartition(parts % 7 + 1).sample(fraction, seed))
    );
    assert_eq!(count(&t.sample(0.0, seed)), 0);
    assert_eq!(count(&t.sample(f64::NAN, seed)), 0);
    assert_eq!(rows(&t.sample(1.0, seed)), rows_of(&m));
}

fn from_partitions(c: &Computing, g: &mut Gen) {
    let (r, parts) = (g.rows(), g.parts());
    let t = table(c, &r, parts);
    let p = partitions_of(&t);
    let reversed: Vec<Vec<_>> = p
        .iter()
        .map(|p| p.iter().rev().cloned().collect())
        .collect();
    let back = Table::from_partitions(c, reversed).unwrap();
    assert_invariants(&back);
    assert_eq!(rows(&back), rows(&t));
    if parts > 1
        && let Some(i) = p.iter().position(|p| !p.is_empty())
    {
        let mut moved = p.clone();
        let row = moved[i].pop().unwrap();
        moved[(i + 1) % parts].push(row);
        let err = Table::from_partitions(c, moved).unwrap_err();
        assert!(err.to_string().contains("belongs in partition"), "{err}");
    }
    if let Some(i) = p.iter().position(|p| !p.is_empty()) {
        let mut doubled = p.clone();
        let row = doubled[i][0];
        doubled[i].push(row);
        let err = Table::from_partitions(c, doubled).unwrap_err();
        assert!(err.to_string().contains("occurs twice"), "{err}");
    }
}

/// Collect is bounded: beyond its bound it is an error, and nothing is collected.
fn bounded(c: &Computing) {
    let t = c.parallelize((0..100u64).map(|k| (k, k as i64)), 4);
    assert_eq!(t.collect(100).unwrap().len(), 100);
    let err = t.collect(99).unwrap_err();
    assert!(
        matches!(err, ComputingError::TooManyRows { rows: 100, max: 99 }),
        "{err}"
    );
    let err = t
        .for_each_partition::<ComputingError>(1, |_, _| Ok(()))
        .unwrap_err();
    assert!(
        matches!(err, ComputingError::TooManyRows { max: 1, .. }),
        "{err}"
    );
}

/// Save and load round trip; a missing table is a clear error.
fn persistence(c: &Computing) {
    let ns = format!("conformance_{}", c.engine_name());
    let t = c.parallelize((0..50u64).map(|k| (k, format!("v{k}"))), 3);
    t.save(&ns, "t", true).unwrap();
    let back: Table<u64, String> = c.load(&ns, "t").unwrap();
    assert_eq!(back.num_partitions(), 3);
    assert_eq!(rows(&back), rows(&t));
    assert_eq!(
        rows(&back.map_values(&ToTextLen)),
        rows(&t.map_values(&ToTextLen))
    );
    let err = c.load::<u64, String>(&ns, "missing").unwrap_err();
    assert!(matches!(err, ComputingError::TableNotFound { .. }), "{err}");
    assert!(c.delete(&ns, "t").unwrap());
}

kernel!(ToTextLen, "to_text_len");
impl MapValues for ToTextLen {
    type In = String;
    type Out = u64;
    fn apply(&self, v: &String) -> u64 {
        v.len() as u64
    }
}

/// Registers [`ToTextLen`] too (separate so [`register_kernels`] stays one chain).
pub fn register_all(r: &mut KernelRegistry) -> Result<(), ComputingError> {
    register_kernels(r)?;
    r.map_values::<ToTextLen>()?;
    Ok(())
}

/// The raw contract of an [`Engine`] whose registry holds [`register_all`]: released handles and
/// unregistered kernels are errors naming them; bad placement is refused.
pub fn engine_contract(engine: Arc<dyn Engine>) {
    let row = |k: u64, v: i64| Row {
        hash: k.partition_hash(),
        key: postcard::to_allocvec(&k).unwrap(),
        value: postcard::to_allocvec(&v).unwrap(),
    };
    let h = engine
        .parallelize(vec![vec![row(1, 1), row(2, 2), row(3, 3)]])
        .unwrap();
    assert_eq!(engine.counts(&h).unwrap(), vec![3]);
    let call = KernelCall::of(&Unregistered).unwrap();
    let err = engine.apply(&Op::MapInPlace(call), &[&h]).unwrap_err();
    assert!(
        err.to_string()
            .contains("fate_computing.testing.unregistered"),
        "{err}"
    );
    let err = engine
        .apply(
            &Op::MapInPlace(KernelCall::of(&WrappingAdd).unwrap()),
            &[&h],
        )
        .unwrap_err();
    assert!(err.to_string().contains("expected a rows kernel"), "{err}");
    let err = engine.apply(&Op::SubtractByKey, &[&h]).unwrap_err();
    assert!(err.to_string().contains("takes 2 tables"), "{err}");
    let err = engine.partition(&h, 0, 2).unwrap_err();
    assert!(
        matches!(err, ComputingError::TooManyRows { rows: 3, max: 2 }),
        "{err}"
    );
    let mut bad = row(4, 4);
    bad.hash = 1;
    let err = engine.parallelize(vec![vec![bad], vec![]]).unwrap_err();
    assert!(matches!(err, ComputingError::BadPartition { .. }), "{err}");
    engine.release(&h);
    let err = engine.counts(&h).unwrap_err();
    assert!(matches!(err, ComputingError::UnknownTable { .. }), "{err}");
}
