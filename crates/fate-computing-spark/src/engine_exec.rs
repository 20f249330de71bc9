//! The executor side of [`crate::SparkEngine`]: what `fate spark-executor --op ...` runs in each
//! Spark task that `SELECT TRANSFORM ... USING` starts, with the binary's [`KernelRegistry`].
//!
//! **Line format, version 2** (the engine's SQL writes the input, this module the output):
//! - Input: one record per line, fields separated by `:`:
//!   `p:h:key:a:b`: the logical partition `p` and the key's hash `h` (decimal; `h` as Spark's
//!   signed BIGINT), the key, then one or two values (standard base64, Spark SQL's
//!   `base64()` alphabet; `-` for an absent value, as a FULL OUTER JOIN gives). For the
//!   `group` op, `b` is the row's order number, decimal.
//! - Output: records `p:h:key:value:o` separated by `,`, up to `--batch` records per line
//!   (batched so the text pipe does not dominate); Spark splits them back with
//!   `explode(split(line, ','))` and `split_part`, so no UDF runs on the JVM. `o` orders
//!   rows that meet at one key in the next stage (last wins, or fold order).
//!
//! Every op buffers its task's input (one Spark partition: whole logical partitions, since the
//! engine keeps each logical partition within one Spark partition) and runs the kernel per
//! logical partition in ascending `p`, over rows sorted by key bytes, as
//! [`fate_computing::EncodedEngine`] does, so results do not depend on how Spark split the
//! input.
//!
//! Failures go to stderr (Spark reports them with the failed task) and exit with status 1;
//! kernel parameters are read from a session artifact file, never from the command line,
//! and are never printed.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use fate_computing::{ComputingError, KernelCall, KernelRegistry, Row, mix64};

use crate::lines::{MAX_LINE_BYTES, is_plain_name};

/// What a task does with its rows (see the module docs and [`crate::SparkEngine`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecOp {
    /// A rows kernel per partition; keys stay in their partition (checked).
    InPlace,
    /// A rows kernel per partition; output rows go to `hash % partitions`, ordered by source
    /// partition then output position.
    Shuffle,
    /// The map side of map-reduce: a rows kernel per partition, then the values of equal keys
    /// folded (`--fold`) in output order; ordered by source partition.
    MapFold,
    /// Rows meeting at one key, in order: the last wins, or they are folded with `--fold`.
    Group,
    /// Join: a combine kernel over `(a, b)`.
    Combine,
    /// Union: a fold kernel over `(a, b)` where both are present, else the present value.
    Union,
    /// Keeps a row when `mix64(hash ^ salt) >> 11 < threshold`.
    Sample,
    /// Folds each partition's values (in key order) into one `p::value` row.
    FoldPart,
}

impl ExecOp {
    pub fn as_str(self) -> &'static str {
        match self {
            ExecOp::InPlace => "in-place",
            ExecOp::Shuffle => "shuffle",
            ExecOp::MapFold => "map-fold",
            ExecOp::Group => "group",
            ExecOp::Combine => "combine",
            ExecOp::Union => "union",
            ExecOp::Sample => "sample",
            ExecOp::FoldPart => "fold-part",
        }
    }

    fn parse(s: &str) -> Option<ExecOp> {
        [
            ExecOp::InPlace,
            ExecOp::Shuffle,
            ExecOp::MapFold,
            ExecOp::Group,
            ExecOp::Combine,
            ExecOp::Union,
            ExecOp::Sample,
            ExecOp::FoldPart,
        ]
        .into_iter()
        .find(|op| op.as_str() == s)
    }
}

/// The most records per output line.
pub const MAX_BATCH: usize = 1 << 20;

/// Parsed `spark-executor --op` arguments (all written by the engine, never by a user).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecArgs {
    pub op: ExecOp,
    /// The kernel (a rows, combine or fold kernel, as the op needs).
    pub kernel: Option<String>,
    /// Artifact holding the kernel's parameters.
    pub params: Option<String>,
    /// The fold kernel of `map-fold` and `group`.
    pub fold: Option<String>,
    pub fold_params: Option<String>,
    /// The output table's partition count.
    pub partitions: usize,
    pub batch: usize,
    pub threshold: u64,
    pub salt: u64,
}

impl ExecArgs {
    /// Arguments of `op` with nothing else set.
    pub fn new(op: ExecOp, partitions: usize) -> ExecArgs {
        ExecArgs {
            op,
            kernel: None,
            params: None,
            fold: None,
            fold_params: None,
            partitions,
            batch: 4096,
            threshold: 0,
            salt: 0,
        }
    }

    /// Parses the arguments after `spark-executor`.
    pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<ExecArgs, String> {
        let mut out = ExecArgs::new(ExecOp::InPlace, 0);
        let mut op = None;
        let mut args = args.into_iter();
        let name = |flag: &str, v: String| -> Result<Option<String>, String> {
            match v.as_str() {
                "-" => Ok(None),
                _ if is_plain_name(&v) => Ok(Some(v)),
                _ => Err(format!("{flag}: {v:?} is not a plain name")),
            }
        };
        let number = |flag: &str, v: &str| -> Result<u64, String> {
            v.parse()
                .map_err(|_| format!("{flag}: {v:?} is not a number"))
        };
        while let Some(flag) = args.next() {
            let v = args
                .next()
                .ok_or_else(|| format!("{flag}: missing value"))?;
            match flag.as_str() {
                "--op" => {
                    op = Some(ExecOp::parse(&v).ok_or_else(|| format!("--op: unknown op {v:?}"))?)
                }
                "--kernel" => out.kernel = name(&flag, v)?,
                "--params" => out.params = name(&flag, v)?,
                "--fold" => out.fold = name(&flag, v)?,
                "--fold-params" => out.fold_params = name(&flag, v)?,
                "--partitions" => out.partitions = number(&flag, &v)? as usize,
                "--batch" => out.batch = number(&flag, &v)? as usize,
                "--threshold" => out.threshold = number(&flag, &v)?,
                "--salt" => out.salt = number(&flag, &v)?,
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        out.op = op.ok_or("--op is required")?;
        if !(1..=fate_computing::MAX_PARTITIONS).contains(&out.partitions) {
            return Err(format!(
                "--partitions: {} is not in 1..={}",
                out.partitions,
                fate_computing::MAX_PARTITIONS
            ));
        }
        if !(1..=MAX_BATCH).contains(&out.batch) {
            return Err(format!("--batch: {} is not in 1..={MAX_BATCH}", out.batch));
        }
        let needs_kernel = !matches!(out.op, ExecOp::Sample | ExecOp::Group);
        if needs_kernel && out.kernel.is_none() {
            return Err(format!("--op {}: --kernel is required", out.op.as_str()));
        }
        if out.op == ExecOp::MapFold && out.fold.is_none() {
            return Err("--op map-fold: --fold is required".into());
        }
        Ok(out)
    }

    /// The arguments as words (the inverse of [`ExecArgs::parse`]); every word is plain.
    pub fn to_args(&self) -> Vec<String> {
        let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
        vec![
            "--op".into(),
            self.op.as_str().into(),
            "--kernel".into(),
            opt(&self.kernel),
            "--params".into(),
            opt(&self.params),
            "--fold".into(),
            opt(&self.fold),
            "--fold-params".into(),
            opt(&self.fold_params),
            "--partitions".into(),
            self.partitions.to_string(),
            "--batch".into(),
            self.batch.to_string(),
            "--threshold".into(),
            self.threshold.to_string(),
            "--salt".into(),
            self.salt.to_string(),
        ]
    }
}

/// One input record.
#[derive(Debug, Clone, PartialEq, Eq)]
struct InRow {
    p: usize,
    hash: u64,
    key: Vec<u8>,
    a: Option<Vec<u8>>,
    b: Option<Vec<u8>>,
}

fn parse_record(line: &[u8]) -> Result<InRow, String> {
    let mut fields = line.split(|&c| c == b':');
    let mut next = |what: &str| fields.next().ok_or_else(|| format!("no {what}"));
    let text = |bytes: &[u8], what: &str| {
        std::str::from_utf8(bytes)
            .map_err(|_| format!("{what} is not text"))
            .map(str::to_owned)
    };
    let p = text(next("partition")?, "partition")?;
    let p: usize = p
        .parse()
        .map_err(|_| format!("partition {p:?} is not a number"))?;
    let h = text(next("hash")?, "hash")?;
    let hash = h
        .parse::<i64>()
        .map_err(|_| format!("hash {h:?} is not a number"))? as u64;
    let bytes = |field: &[u8], what: &str| -> Result<Option<Vec<u8>>, String> {
        if field == b"-" {
            return Ok(None);
        }
        STANDARD
            .decode(field)
            .map(Some)
            .map_err(|e| format!("{what}: {e}"))
    };
    let key = bytes(next("key")?, "key")?.ok_or("the key is absent")?;
    let a = bytes(next("value")?, "value")?;
    let b = match fields.next() {
        None => None,
        Some(f) => bytes(f, "second value")?,
    };
    if fields.next().is_some() {
        return Err("more than five fields".into());
    }
    Ok(InRow { p, hash, key, a, b })
}

/// One output record.
struct OutRow {
    p: usize,
    row: Row,
    order: u64,
}

struct Writer<W: Write> {
    out: std::io::BufWriter<W>,
    text: String,
    in_line: usize,
    batch: usize,
    rows: u64,
}

impl<W: Write> Writer<W> {
    fn new(out: W, batch: usize) -> Self {
        Writer {
            out: std::io::BufWriter::with_capacity(1 << 20, out),
            text: String::new(),
            in_line: 0,
            batch,
            rows: 0,
        }
    }

    fn push(&mut self, r: OutRow) -> Result<(), String> {
        use std::fmt::Write as _;
        if self.in_line > 0 {
            self.text.push(',');
        }
        let _ = write!(self.text, "{}:{}:", r.p, r.row.hash as i64);
        STANDARD.encode_string(&r.row.key, &mut self.text);
        self.text.push(':');
        STANDARD.encode_string(&r.row.value, &mut self.text);
        let _ = write!(self.text, ":{}", r.order);
        self.in_line += 1;
        self.rows += 1;
        if self.in_line >= self.batch || self.text.len() > MAX_LINE_BYTES / 2 {
            self.end_line()?;
        }
        Ok(())
    }

    fn end_line(&mut self) -> Result<(), String> {
        if self.in_line == 0 {
            return Ok(());
        }
        self.text.push('\n');
        self.out
            .write_all(self.text.as_bytes())
            .map_err(|e| format!("writing stdout: {e}"))?;
        self.text.clear();
        self.in_line = 0;
        Ok(())
    }

    fn finish(mut self) -> Result<u64, String> {
        self.end_line()?;
        self.out
            .flush()
            .map_err(|e| format!("writing stdout: {e}"))?;
        Ok(self.rows)
    }
}

fn kernel_error(e: ComputingError) -> String {
    e.to_string()
}

fn call(name: &Option<String>, params: &[u8]) -> Result<KernelCall, String> {
    Ok(KernelCall {
        name: name.clone().ok_or("no kernel given")?,
        params: params.to_vec(),
    })
}

fn target(hash: u64, n: usize) -> usize {
    (hash % n as u64) as usize
}

fn to_row(r: InRow, what: &str) -> Result<Row, String> {
    Ok(Row {
        hash: r.hash,
        key: r.key,
        value: r
            .a
            .ok_or_else(|| format!("{what}: a row without a value"))?,
    })
}

/// Kernel parameters, read by the caller from their artifacts.
#[derive(Default)]
pub struct Params {
    pub kernel: Vec<u8>,
    pub fold: Vec<u8>,
}

/// Runs one task: records from `input`, kernels from `registry`, records to `output`.
/// Returns the number of rows written.
pub fn run(
    args: &ExecArgs,
    registry: &KernelRegistry,
    params: &Params,
    mut input: impl BufRead,
    output: impl Write,
) -> Result<u64, String> {
    let mut rows: Vec<InRow> = Vec::new();
    let mut line = Vec::new();
    let mut line_no = 0u64;
    loop {
        line.clear();
        let mut bounded = std::io::Read::take(&mut input, MAX_LINE_BYTES as u64 + 1);
        let n = bounded
            .read_until(b'\n', &mut line)
            .map_err(|e| format!("reading stdin: {e}"))?;
        if n == 0 {
            break;
        }
        line_no += 1;
        if line.last() == Some(&b'\n') {
            line.pop();
        } else if line.len() > MAX_LINE_BYTES {
            return Err(format!(
                "line {line_no} is longer than {MAX_LINE_BYTES} bytes"
            ));
        }
        if line.is_empty() {
            continue;
        }
        rows.push(parse_record(&line).map_err(|e| format!("line {line_no}: {e}"))?);
    }
    let n = args.partitions;
    let mut w = Writer::new(output, args.batch);
    let by_partition = |rows: Vec<InRow>| -> Result<BTreeMap<usize, Vec<Row>>, String> {
        let mut parts: BTreeMap<usize, Vec<Row>> = BTreeMap::new();
        for r in rows {
            parts.entry(r.p).or_default().push(to_row(r, "input")?);
        }
        for rows in parts.values_mut() {
            rows.sort_by(|x, y| x.key.cmp(&y.key));
        }
        Ok(parts)
    };
    match args.op {
        ExecOp::InPlace | ExecOp::Shuffle | ExecOp::MapFold => {
            let f = registry
                .rows_fn(&call(&args.kernel, &params.kernel)?)
                .map_err(kernel_error)?;
            let fold = match args.op {
                ExecOp::MapFold => Some(
                    registry
                        .fold_fn(&call(&args.fold, &params.fold)?)
                        .map_err(kernel_error)?,
                ),
                _ => None,
            };
            for (p, part) in by_partition(rows)? {
                let mut out = f(p, part).map_err(kernel_error)?;
                if let Some(fold) = &fold {
                    out = fate_computing::fold_equal_keys(out, fold).map_err(kernel_error)?;
                }
                for (i, row) in out.into_iter().enumerate() {
                    let to = target(row.hash, n);
                    let order = match args.op {
                        ExecOp::InPlace if to != p => {
                            return Err(format!(
                                "kernel `{}`: moved a key in an in-place map",
                                args.kernel.as_deref().unwrap_or("")
                            ));
                        }
                        ExecOp::InPlace => 0,
                        ExecOp::Shuffle => ((p as u64) << 40) | i as u64,
                        _ => p as u64,
                    };
                    w.push(OutRow { p: to, row, order })?;
                }
            }
        }
        ExecOp::Group => {
            let fold = match &args.fold {
                Some(_) => Some(
                    registry
                        .fold_fn(&call(&args.fold, &params.fold)?)
                        .map_err(kernel_error)?,
                ),
                None => None,
            };
            let mut ordered: Vec<(usize, u64, Row)> = Vec::with_capacity(rows.len());
            for r in rows {
                let order = match &r.b {
                    Some(b) => std::str::from_utf8(b)
                        .ok()
                        .and_then(|s| s.parse::<u64>().ok())
                        .ok_or("group: the order field is not a number")?,
                    None => 0,
                };
                ordered.push((r.p, order, to_row(r, "group")?));
            }
            ordered.sort_by(|x, y| (x.0, &x.2.key, x.1).cmp(&(y.0, &y.2.key, y.1)));
            let mut i = 0;
            while i < ordered.len() {
                let mut j = i + 1;
                while j < ordered.len()
                    && ordered[j].0 == ordered[i].0
                    && ordered[j].2.key == ordered[i].2.key
                {
                    j += 1;
                }
                let p = ordered[i].0;
                let row = match &fold {
                    _ if j == i + 1 => std::mem::take(&mut ordered[i].2),
                    None => std::mem::take(&mut ordered[j - 1].2),
                    Some(fold) => {
                        let values = ordered[i..j].iter().map(|x| x.2.value.as_slice()).collect();
                        let value = fold(values).map_err(kernel_error)?.unwrap_or_default();
                        Row {
                            hash: ordered[i].2.hash,
                            key: std::mem::take(&mut ordered[i].2.key),
                            value,
                        }
                    }
                };
                w.push(OutRow { p, row, order: 0 })?;
                i = j;
            }
        }
        ExecOp::Combine => {
            let f = registry
                .combine_fn(&call(&args.kernel, &params.kernel)?)
                .map_err(kernel_error)?;
            for r in rows {
                let (Some(a), Some(b)) = (&r.a, &r.b) else {
                    return Err("combine: a joined row lacks a value".into());
                };
                let value = f(a, b).map_err(kernel_error)?;
                w.push(OutRow {
                    p: r.p,
                    row: Row {
                        hash: r.hash,
                        key: r.key,
                        value,
                    },
                    order: 0,
                })?;
            }
        }
        ExecOp::Union => {
            let f = registry
                .fold_fn(&call(&args.kernel, &params.kernel)?)
                .map_err(kernel_error)?;
            for r in rows {
                let value = match (r.a, r.b) {
                    (Some(a), Some(b)) => {
                        f(vec![&a, &b]).map_err(kernel_error)?.unwrap_or_default()
                    }
                    (Some(v), None) | (None, Some(v)) => v,
                    (None, None) => return Err("union: a row without values".into()),
                };
                w.push(OutRow {
                    p: r.p,
                    row: Row {
                        hash: r.hash,
                        key: r.key,
                        value,
                    },
                    order: 0,
                })?;
            }
        }
        ExecOp::Sample => {
            for r in rows {
                if mix64(r.hash ^ args.salt) >> 11 < args.threshold {
                    let p = r.p;
                    w.push(OutRow {
                        p,
                        row: to_row(r, "sample")?,
                        order: 0,
                    })?;
                }
            }
        }
        ExecOp::FoldPart => {
            let f = registry
                .fold_fn(&call(&args.kernel, &params.kernel)?)
                .map_err(kernel_error)?;
            for (p, part) in by_partition(rows)? {
                let values = part.iter().map(|r| r.value.as_slice()).collect();
                if let Some(value) = f(values).map_err(kernel_error)? {
                    w.push(OutRow {
                        p,
                        row: Row {
                            hash: 0,
                            key: Vec::new(),
                            value,
                        },
                        order: 0,
                    })?;
                }
            }
        }
    }
    w.finish()
}

/// Reads artifact `name` (if any) from the task's working directory.
fn read_params(name: &Option<String>) -> Result<Vec<u8>, String> {
    let Some(name) = name else {
        return Ok(Vec::new());
    };
    let cwd = std::env::current_dir().map_err(|e| format!("working directory: {e}"))?;
    let path = crate::executor::find_artifact(&cwd, name)?;
    std::fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()))
}

/// The whole subcommand: parse `args`, read parameter artifacts, run over stdin/stdout.
/// Errors are printed to stderr and the exit code is 1.
pub fn main(args: Vec<String>, registry: &KernelRegistry) -> std::process::ExitCode {
    let result = (|| {
        let args = ExecArgs::parse(args)?;
        let params = Params {
            kernel: read_params(&args.params)?,
            fold: read_params(&args.fold_params)?,
        };
        let stdin = std::io::stdin().lock();
        let stdout = std::io::stdout().lock();
        run(&args, registry, &params, stdin, stdout)
    })();
    match result {
        Ok(_) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("fate spark-executor: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fate_computing::{Fold, Kernel, Key, MapValues};
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize)]
    struct Add(i64);
    impl Kernel for Add {
        const NAME: &'static str = "t.add";
    }
    impl MapValues for Add {
        type In = i64;
        type Out = i64;
        fn apply(&self, v: &i64) -> i64 {
            v + self.0
        }
    }
    #[derive(Serialize, Deserialize)]
    struct Sum;
    impl Kernel for Sum {
        const NAME: &'static str = "t.sum";
    }
    impl Fold for Sum {
        type V = i64;
        fn apply(&self, a: i64, b: i64) -> i64 {
            a + b
        }
    }

    fn registry() -> KernelRegistry {
        let mut r = KernelRegistry::new();
        r.map_values::<Add>().unwrap().fold::<Sum>().unwrap();
        r
    }

    fn line(p: usize, k: u64, a: Option<i64>, b: Option<&str>) -> String {
        let enc = |v: i64| STANDARD.encode(postcard::to_allocvec(&v).unwrap());
        let key = STANDARD.encode(postcard::to_allocvec(&k).unwrap());
        let mut s = format!(
            "{p}:{}:{key}:{}",
            k.partition_hash() as i64,
            a.map_or("-".to_string(), enc)
        );
        if let Some(b) = b {
            s.push(':');
            s.push_str(b);
        }
        s.push('\n');
        s
    }

    fn records(out: &[u8]) -> Vec<(usize, u64, i64, u64)> {
        let text = std::str::from_utf8(out).unwrap();
        text.lines()
            .flat_map(|l| l.split(','))
            .map(|r| {
                let f: Vec<&str> = r.split(':').collect();
                let key: u64 = postcard::from_bytes(&STANDARD.decode(f[2]).unwrap()).unwrap();
                let v: i64 = postcard::from_bytes(&STANDARD.decode(f[3]).unwrap()).unwrap();
                (f[0].parse().unwrap(), key, v, f[4].parse().unwrap())
            })
            .collect()
    }

    #[test]
    fn arguments_round_trip_and_bad_ones_are_named() {
        let mut a = ExecArgs::new(ExecOp::MapFold, 8);
        a.kernel = Some("k.map".into());
        a.fold = Some("k.fold".into());
        a.params = Some("fate_params_1".into());
        a.salt = 7;
        assert_eq!(ExecArgs::parse(a.to_args()).unwrap(), a);
        let parse = |s: &str| ExecArgs::parse(s.split(' ').map(String::from));
        assert!(
            parse("--op shuffle --partitions 2")
                .unwrap_err()
                .contains("--kernel")
        );
        assert!(
            parse("--op nope --partitions 2")
                .unwrap_err()
                .contains("--op")
        );
        assert!(
            parse("--op sample --partitions 0")
                .unwrap_err()
                .contains("--partitions")
        );
        assert!(parse("--op in-place --kernel a;b --partitions 1").is_err());
        assert!(parse("--op group --partitions 1 --params ../x").is_err());
    }

    #[test]
    fn in_place_runs_per_partition_and_checks_placement() {
        let r = registry();
        let params = Params {
            kernel: postcard::to_allocvec(&Add(10)).unwrap(),
            ..Params::default()
        };
        let n = 3;
        let input: String = (0..20u64)
            .map(|k| line(partition_of_u64(k, n), k, Some(k as i64), None))
            .collect();
        let mut a = ExecArgs::new(ExecOp::InPlace, n);
        a.kernel = Some("t.add".into());
        a.batch = 4;
        let mut out = Vec::new();
        assert_eq!(
            run(&a, &r, &params, input.as_bytes(), &mut out).unwrap(),
            20
        );
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 5);
        for (p, k, v, _) in records(&out) {
            assert_eq!((p, v), (partition_of_u64(k, n), k as i64 + 10));
        }
        // A row given in the wrong partition is caught (a kernel that moves keys is, too).
        let wrong = line((partition_of_u64(1, n) + 1) % n, 1, Some(1), None);
        let err = run(&a, &r, &params, wrong.as_bytes(), Vec::new()).unwrap_err();
        assert!(err.contains("moved a key"), "{err}");
    }

    fn partition_of_u64(k: u64, n: usize) -> usize {
        (k.partition_hash() % n as u64) as usize
    }

    #[test]
    fn group_keeps_the_last_or_folds_in_order() {
        let r = registry();
        let input = [
            line(0, 5, Some(1), Some(&STANDARD.encode("3"))),
            line(0, 5, Some(2), Some(&STANDARD.encode("9"))),
            line(0, 5, Some(4), Some(&STANDARD.encode("1"))),
            line(0, 6, Some(7), Some(&STANDARD.encode("0"))),
        ]
        .concat();
        let mut a = ExecArgs::new(ExecOp::Group, 1);
        let mut out = Vec::new();
        run(&a, &r, &Params::default(), input.as_bytes(), &mut out).unwrap();
        let got: Vec<(u64, i64)> = records(&out).into_iter().map(|x| (x.1, x.2)).collect();
        assert!(
            got.contains(&(5, 2)) && got.contains(&(6, 7)) && got.len() == 2,
            "{got:?}"
        );
        a.fold = Some("t.sum".into());
        let mut out = Vec::new();
        run(&a, &r, &Params::default(), input.as_bytes(), &mut out).unwrap();
        let got: Vec<(u64, i64)> = records(&out).into_iter().map(|x| (x.1, x.2)).collect();
        assert!(got.contains(&(5, 7)) && got.len() == 2, "{got:?}");
    }

    #[test]
    fn union_folds_rows_in_both_and_passes_the_others() {
        let r = registry();
        let input = [
            line(
                0,
                1,
                Some(1),
                Some(&STANDARD.encode(postcard::to_allocvec(&5i64).unwrap())),
            ),
            line(
                0,
                2,
                None,
                Some(&STANDARD.encode(postcard::to_allocvec(&9i64).unwrap())),
            ),
            line(0, 3, Some(4), Some("-")),
        ]
        .concat();
        let mut a = ExecArgs::new(ExecOp::Union, 1);
        a.kernel = Some("t.sum".into());
        let mut out = Vec::new();
        run(&a, &r, &Params::default(), input.as_bytes(), &mut out).unwrap();
        let mut got: Vec<(u64, i64)> = records(&out).into_iter().map(|x| (x.1, x.2)).collect();
        got.sort();
        assert_eq!(got, vec![(1, 6), (2, 9), (3, 4)]);
    }

    #[test]
    fn bad_input_and_unknown_kernels_fail_naming_them() {
        let r = registry();
        let mut a = ExecArgs::new(ExecOp::InPlace, 1);
        a.kernel = Some("t.nope".into());
        let err = run(&a, &r, &Params::default(), &b""[..], Vec::new()).unwrap_err();
        assert!(err.contains("t.nope"), "{err}");
        a.kernel = Some("t.add".into());
        let err = run(
            &a,
            &r,
            &Params::default(),
            &b"0:1:!!:AA==\n"[..],
            Vec::new(),
        )
        .unwrap_err();
        assert!(err.starts_with("line 1: key"), "{err}");
        let mut s = ExecArgs::new(ExecOp::FoldPart, 1);
        s.kernel = Some("t.add".into());
        let err = run(&s, &r, &Params::default(), &b""[..], Vec::new()).unwrap_err();
        assert!(err.contains("expected a fold kernel"), "{err}");
    }
}
