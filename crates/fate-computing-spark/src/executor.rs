//! The executor side of the pipe: what `fate spark-executor` (hidden subcommand) runs inside
//! each Spark task started by `SELECT TRANSFORM ... USING`.
//!
//! Arguments (all produced by [`crate::table::KernelRunner`], never by a user):
//! `--kernel <name>` the registered kernel; `--mode map|fold`; `--params <artifact>|-` the
//! session artifact holding the kernel's parameters (`-`: empty); `--batch <rows>` records
//! handed to the kernel per call and written per output line.
//!
//! - `map`: rows are read into batches of `--batch` records; each batch goes through the
//!   kernel and its output rows are written at once (a partition-local, row-wise kernel).
//! - `fold`: the kernel combines rows: `state = kernel(state ++ batch)` for each batch, and the
//!   final state is written at end of input (reduce and reduce-by-key; the kernel must be
//!   associative and return one row per key).
//!
//! Failures go to stderr (which Spark keeps with the failed task) and exit with status 1;
//! parameters are never printed.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use crate::Row;
use crate::lines;

/// The dispatch function the binary provides: run kernel `kernel` with its serialized
/// `params` over `rows`.
pub type Dispatch<'a> = &'a dyn Fn(&str, &[u8], Vec<Row>) -> Result<Vec<Row>, String>;

/// How the executor applies the kernel (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Each batch through the kernel, output as it goes.
    Map,
    /// All rows folded through the kernel, the result written at the end.
    Fold,
}

impl Mode {
    /// The `--mode` argument.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Map => "map",
            Mode::Fold => "fold",
        }
    }
}

/// Parsed `spark-executor` arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutorArgs {
    pub kernel: String,
    pub mode: Mode,
    /// Artifact name of the parameters, `None` for none.
    pub params: Option<String>,
    pub batch_rows: usize,
}

/// The most records per kernel call.
pub const MAX_BATCH_ROWS: usize = 1 << 20;

impl ExecutorArgs {
    /// Parses the arguments that follow the subcommand name.
    pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<ExecutorArgs, String> {
        let (mut kernel, mut mode, mut params, mut batch_rows) = (None, None, None, None);
        let mut args = args.into_iter();
        while let Some(flag) = args.next() {
            let value = args
                .next()
                .ok_or_else(|| format!("{flag}: missing value"))?;
            match flag.as_str() {
                "--kernel" => kernel = Some(value),
                "--mode" => {
                    mode = Some(match value.as_str() {
                        "map" => Mode::Map,
                        "fold" => Mode::Fold,
                        other => return Err(format!("--mode: {other:?} is not map or fold")),
                    })
                }
                "--params" => params = Some(value),
                "--batch" => {
                    let n: usize = value
                        .parse()
                        .map_err(|_| format!("--batch: {value:?} is not a number"))?;
                    if n == 0 || n > MAX_BATCH_ROWS {
                        return Err(format!("--batch: {n} is not in 1..={MAX_BATCH_ROWS}"));
                    }
                    batch_rows = Some(n);
                }
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        let kernel = kernel.ok_or("--kernel is required")?;
        if !lines::is_plain_name(&kernel) {
            return Err(format!("--kernel: {kernel:?} is not a plain name"));
        }
        let params = match params.ok_or("--params is required")? {
            dash if dash == "-" => None,
            name if lines::is_plain_name(&name) => Some(name),
            name => return Err(format!("--params: {name:?} is not a plain name")),
        };
        Ok(ExecutorArgs {
            kernel,
            mode: mode.ok_or("--mode is required")?,
            params,
            batch_rows: batch_rows.unwrap_or(4096),
        })
    }

    /// The arguments as a command line (the inverse of [`ExecutorArgs::parse`]).
    pub fn to_args(&self) -> Vec<String> {
        vec![
            "--kernel".into(),
            self.kernel.clone(),
            "--mode".into(),
            self.mode.as_str().into(),
            "--params".into(),
            self.params.clone().unwrap_or_else(|| "-".into()),
            "--batch".into(),
            self.batch_rows.to_string(),
        ]
    }
}

/// Finds a session artifact file `name` from the task's working directory `dir`: `dir/name`
/// or `dir/<one level>/name` (Spark Connect puts a session's files in a directory named after
/// the session). Several matches in different sessions: the first in name order (artifact
/// names are unique per content, so they are copies).
pub fn find_artifact(dir: &Path, name: &str) -> Result<PathBuf, String> {
    if !lines::is_plain_name(name) {
        return Err(format!("artifact {name:?} is not a plain name"));
    }
    let direct = dir.join(name);
    if direct.is_file() {
        return Ok(direct);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("reading {}: {e}", dir.display()))?
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.path().join(name))
        .filter(|path| path.is_file())
        .collect();
    found.sort();
    found.into_iter().next().ok_or_else(|| {
        format!(
            "artifact {name} not found in {} or its subdirectories",
            dir.display()
        )
    })
}

/// What a run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub rows_in: u64,
    pub rows_out: u64,
    pub kernel_calls: u64,
}

/// Runs the loop: lines from `input`, kernel through `dispatch`, lines to `output`.
pub fn run(
    args: &ExecutorArgs,
    params: &[u8],
    dispatch: Dispatch<'_>,
    mut input: impl BufRead,
    output: impl Write,
) -> Result<Stats, String> {
    let mut output = std::io::BufWriter::with_capacity(1 << 20, output);
    let mut stats = Stats::default();
    let mut line = Vec::new();
    let mut batch: Vec<Row> = Vec::new();
    let mut state: Vec<Row> = Vec::new();
    let mut line_no = 0u64;
    let kernel = |rows: Vec<Row>, stats: &mut Stats| -> Result<Vec<Row>, String> {
        stats.kernel_calls += 1;
        dispatch(&args.kernel, params, rows).map_err(|e| format!("kernel {}: {e}", args.kernel))
    };
    loop {
        line.clear();
        let mut bounded = std::io::Read::take(&mut input, lines::MAX_LINE_BYTES as u64 + 1);
        let n = bounded
            .read_until(b'\n', &mut line)
            .map_err(|e| format!("reading stdin: {e}"))?;
        let at_end = n == 0;
        if !at_end {
            line_no += 1;
            if line.last() == Some(&b'\n') {
                line.pop();
            } else if line.len() > lines::MAX_LINE_BYTES {
                return Err(format!(
                    "line {line_no} is longer than {} bytes",
                    lines::MAX_LINE_BYTES
                ));
            }
            let before = batch.len();
            lines::parse_line(&line, &mut batch).map_err(|e| format!("line {line_no}: {e}"))?;
            stats.rows_in += (batch.len() - before) as u64;
        }
        if !batch.is_empty() && (batch.len() >= args.batch_rows || at_end) {
            let rows = std::mem::take(&mut batch);
            match args.mode {
                Mode::Map => {
                    let out = kernel(rows, &mut stats)?;
                    stats.rows_out += out.len() as u64;
                    lines::write_lines(&out, args.batch_rows, &mut output)
                        .map_err(|e| format!("writing stdout: {e}"))?;
                }
                Mode::Fold => {
                    let mut all = std::mem::take(&mut state);
                    all.extend(rows);
                    state = kernel(all, &mut stats)?;
                }
            }
        }
        if at_end {
            break;
        }
    }
    if args.mode == Mode::Fold && !state.is_empty() {
        stats.rows_out += state.len() as u64;
        lines::write_lines(&state, args.batch_rows, &mut output)
            .map_err(|e| format!("writing stdout: {e}"))?;
    }
    output.flush().map_err(|e| format!("writing stdout: {e}"))?;
    Ok(stats)
}

/// The whole subcommand: parse `args`, read the parameters artifact from the working
/// directory, run over stdin/stdout. Errors are printed to stderr, and the exit code is 1.
pub fn main(args: Vec<String>, dispatch: Dispatch<'_>) -> std::process::ExitCode {
    match main_inner(args, dispatch) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("fate spark-executor: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn main_inner(args: Vec<String>, dispatch: Dispatch<'_>) -> Result<(), String> {
    let args = ExecutorArgs::parse(args)?;
    let params = match &args.params {
        None => Vec::new(),
        Some(name) => {
            let cwd = std::env::current_dir().map_err(|e| format!("working directory: {e}"))?;
            let path = find_artifact(&cwd, name)?;
            std::fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()))?
        }
    };
    let stdin = std::io::stdin().lock();
    let stdout = std::io::stdout().lock();
    run(&args, &params, dispatch, stdin, stdout)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(mode: Mode, batch_rows: usize) -> ExecutorArgs {
        ExecutorArgs {
            kernel: "t.k".into(),
            mode,
            params: None,
            batch_rows,
        }
    }

    fn input(rows: &[Row], per_line: usize) -> Vec<u8> {
        let mut text = Vec::new();
        lines::write_lines(rows, per_line, &mut text).unwrap();
        text
    }

    fn output(text: &[u8]) -> Vec<Row> {
        let mut rows = Vec::new();
        for line in text.split(|&b| b == b'\n') {
            lines::parse_line(line, &mut rows).unwrap();
        }
        rows
    }

    #[test]
    fn arguments_round_trip_and_bad_ones_are_named() {
        let a = ExecutorArgs {
            kernel: "psi.hash".into(),
            mode: Mode::Fold,
            params: Some("params_3".into()),
            batch_rows: 10,
        };
        assert_eq!(ExecutorArgs::parse(a.to_args()).unwrap(), a);
        let parse = |s: &str| ExecutorArgs::parse(s.split(' ').map(String::from));
        assert!(
            parse("--kernel k --mode map")
                .unwrap_err()
                .contains("--params")
        );
        assert!(parse("--kernel k;rm --mode map --params -").is_err());
        assert!(
            parse("--kernel k --mode x --params -")
                .unwrap_err()
                .contains("--mode")
        );
        assert!(parse("--kernel k --mode map --params - --batch 0").is_err());
        assert!(parse("--kernel k --mode map --params ../x").is_err());
    }

    #[test]
    fn map_hands_batches_to_the_kernel_and_writes_its_rows() {
        let rows: Vec<Row> = (0u8..10).map(|i| (vec![i], vec![i; 3])).collect();
        let calls = std::cell::Cell::new(0);
        let dispatch = |kernel: &str, params: &[u8], rows: Vec<Row>| {
            assert_eq!((kernel, params), ("t.k", &b"p"[..]));
            calls.set(calls.get() + 1);
            Ok(rows
                .into_iter()
                .map(|(k, v)| (k, [v.clone(), v].concat()))
                .collect())
        };
        let mut out = Vec::new();
        let stats = run(
            &args(Mode::Map, 4),
            b"p",
            &dispatch,
            &input(&rows, 1)[..],
            &mut out,
        )
        .unwrap();
        assert_eq!(calls.get(), 3);
        assert_eq!((stats.rows_in, stats.rows_out), (10, 10));
        let back = output(&out);
        assert_eq!(back.len(), 10);
        assert!(back.iter().all(|(k, v)| v == &vec![k[0]; 6]));
    }

    #[test]
    fn fold_combines_everything_and_writes_once() {
        let rows: Vec<Row> = (0u64..100)
            .map(|i| (vec![(i % 3) as u8], i.to_le_bytes().to_vec()))
            .collect();
        let sum_by_key = |_: &str, _: &[u8], rows: Vec<Row>| {
            let mut sums = std::collections::BTreeMap::<Vec<u8>, u64>::new();
            for (k, v) in rows {
                *sums.entry(k).or_default() += u64::from_le_bytes(v.try_into().unwrap());
            }
            Ok(sums
                .into_iter()
                .map(|(k, s)| (k, s.to_le_bytes().to_vec()))
                .collect())
        };
        let mut out = Vec::new();
        run(
            &args(Mode::Fold, 7),
            &[],
            &sum_by_key,
            &input(&rows, 5)[..],
            &mut out,
        )
        .unwrap();
        let back = output(&out);
        let total: u64 = back
            .iter()
            .map(|(_, v)| u64::from_le_bytes(v.clone().try_into().unwrap()))
            .sum();
        assert_eq!(back.len(), 3);
        assert_eq!(total, (0..100).sum::<u64>());
    }

    #[test]
    fn kernel_errors_and_bad_lines_fail_the_run() {
        let failing = |_: &str, _: &[u8], _: Vec<Row>| Err("boom".to_string());
        let rows = vec![(b"k".to_vec(), b"v".to_vec())];
        let error = run(
            &args(Mode::Map, 1),
            &[],
            &failing,
            &input(&rows, 1)[..],
            Vec::new(),
        )
        .unwrap_err();
        assert_eq!(error, "kernel t.k: boom");
        let echo = |_: &str, _: &[u8], rows: Vec<Row>| Ok(rows);
        let error = run(
            &args(Mode::Map, 1),
            &[],
            &echo,
            &b"aw==:aw==\n!!\n"[..],
            Vec::new(),
        )
        .unwrap_err();
        assert!(error.starts_with("line 2: record 0"), "{error}");
    }

    #[test]
    fn artifacts_are_found_in_a_session_directory() {
        let dir = std::env::temp_dir().join(format!("fate-exec-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("session-a")).unwrap();
        std::fs::write(dir.join("session-a").join("params_1"), b"x").unwrap();
        assert_eq!(
            find_artifact(&dir, "params_1").unwrap(),
            dir.join("session-a").join("params_1")
        );
        assert!(
            find_artifact(&dir, "params_2")
                .unwrap_err()
                .contains("not found")
        );
        assert!(find_artifact(&dir, "../params_1").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
