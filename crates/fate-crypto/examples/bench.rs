//! Prints the crypto benchmark: `cargo run --release -p fate-crypto --example bench -- [BITS] [SECS]`.

fn main() {
    let mut args = std::env::args().skip(1);
    let bits: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1024);
    let secs: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1.0);
    let result = fate_crypto::bench::run(bits, secs, &mut |r| {
        let vs_base = match (r.baseline_ops_per_sec, &r.baseline) {
            (Some(b), Some(name)) => {
                format!("  {:>6.2}x baseline ({name}: {b:.0}/s)", r.ops_per_sec / b)
            }
            _ => String::new(),
        };
        let vs_fate = r
            .fate_ops_per_sec
            .map(|f| format!("  {:>6.2}x FATE ({f:.0}/s)", r.ops_per_sec / f))
            .unwrap_or_default();
        println!(
            "{:<24} {:>5} {:>12.0}/s{vs_fate}{vs_base}",
            r.op, r.key_bits, r.ops_per_sec
        );
    });
    if let Err(e) = result {
        eprintln!("bench failed: {e}");
        std::process::exit(1);
    }
}
