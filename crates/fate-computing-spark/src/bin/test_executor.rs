//! The executor binary of this crate's tests (cargo feature `test-executor`): the
//! `spark-executor` loop with demo kernels, standing in for the `fate` binary's kernel
//! registry. Values are postcard-encoded `u64`s unless a kernel says otherwise.

use fate_computing_spark::{Row, executor, lines};

fn u64_of(bytes: &[u8]) -> Result<u64, String> {
    postcard::from_bytes(bytes).map_err(|e| format!("value is not a postcard u64: {e}"))
}

fn bytes_of(n: u64) -> Vec<u8> {
    postcard::to_allocvec(&n).expect("postcard encodes u64")
}

fn dispatch(kernel: &str, params: &[u8], rows: Vec<Row>) -> Result<Vec<Row>, String> {
    match kernel {
        // Raw bytes: each value twice.
        "test.double_values" => Ok(rows
            .into_iter()
            .map(|(k, v)| (k, [v.as_slice(), v.as_slice()].concat()))
            .collect()),
        // Adds the u64 in the params to every value: shows the params reach the executor.
        "test.add_param" => {
            let add = u64_of(params)?;
            rows.into_iter()
                .map(|(k, v)| Ok((k, bytes_of(u64_of(&v)? + add))))
                .collect()
        }
        // Fold: one row per key, the sum of its values.
        "test.sum_by_key" => {
            let mut sums = std::collections::BTreeMap::<Vec<u8>, u64>::new();
            for (k, v) in rows {
                *sums.entry(k).or_default() += u64_of(&v)?;
            }
            Ok(sums.into_iter().map(|(k, s)| (k, bytes_of(s))).collect())
        }
        // Fold: everything into one row keyed "total".
        "test.sum_all" => {
            let mut total = 0u64;
            for (_, v) in rows {
                total += u64_of(&v)?;
            }
            Ok(vec![(b"total".to_vec(), bytes_of(total))])
        }
        // Join combiner: left * 1000 + right.
        "test.join_combine" => rows
            .into_iter()
            .map(|(k, v)| {
                let (left, right) = lines::decode_join_value(&v)?;
                Ok((k, bytes_of(u64_of(&left)? * 1000 + u64_of(&right)?)))
            })
            .collect(),
        "test.identity" => Ok(rows),
        "test.fail" => Err("this kernel always fails".to_owned()),
        other => Err(format!("unknown kernel {other:?}")),
    }
}

fn main() -> std::process::ExitCode {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("spark-executor") => {
            let args: Vec<String> = args.collect();
            if args.iter().any(|a| a == "--op") {
                // The engine's ops, with the conformance suite's kernels.
                let mut registry = fate_computing::KernelRegistry::new();
                if let Err(e) = fate_computing::testing::register_all(&mut registry) {
                    eprintln!("registering kernels: {e}");
                    return std::process::ExitCode::FAILURE;
                }
                fate_computing_spark::engine_exec::main(args, &registry)
            } else {
                executor::main(args, &dispatch)
            }
        }
        _ => {
            eprintln!(
                "usage: fate-spark-test-executor spark-executor --kernel K --mode M --params P --batch N"
            );
            std::process::ExitCode::from(2)
        }
    }
}
