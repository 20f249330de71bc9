//! Single-core throughput of the crypto engine next to an in-run raw-GMP baseline and FATE's
//! measured rates (anchors: FATE 2.2.0's `fate_utils` on the project's reference machine).
//!
//! Every measurement runs on one thread (a one-thread rayon pool), so the figures compare with
//! FATE's per-core numbers. Baselines are measured in the same run, on the same machine and load,
//! so ratios to them are meaningful even when the machine is busy.

use std::hint::black_box;
use std::time::Instant;

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rug::{Assign, Integer};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::paillier::{self, Ciphertext, SUPPORTED_KEY_BITS};
use crate::psi::EcdhSecret;

/// One benchmark result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchRecord {
    /// Operation name (`keygen`, `encrypt`, `decrypt`, `add`, `scalar_mul_23bit`, `dot`, ...).
    pub op: String,
    /// Paillier key size; 0 for operations without a key.
    pub key_bits: u32,
    /// Operations per second on one core.
    pub ops_per_sec: f64,
    /// What the baseline measures, when there is one.
    pub baseline: Option<String>,
    /// The baseline's operations per second, measured in the same run.
    pub baseline_ops_per_sec: Option<f64>,
    /// FATE 2.2.0's rate for the same operation on the reference machine, when known.
    pub fate_ops_per_sec: Option<f64>,
}

/// FATE's per-core rates (anchors): keygen, encrypt, decrypt, add, ct×float (53-bit), ct×32-bit
/// integer.
fn fate_rates(key_bits: u32) -> Option<[f64; 6]> {
    match key_bits {
        1024 => Some([180.0, 674.0, 2267.0, 351_000.0, 11_200.0, 18_600.0]),
        2048 => Some([19.0, 97.9, 338.5, 117_000.0, 3_180.0, 5_260.0]),
        _ => None,
    }
}

/// Runs `batch` (which performs `per_batch` operations) until `min_secs` have passed, after one
/// warm-up batch, and returns operations per second.
fn rate(min_secs: f64, per_batch: u64, mut batch: impl FnMut()) -> f64 {
    batch();
    let start = Instant::now();
    let mut done = 0u64;
    loop {
        batch();
        done += per_batch;
        let elapsed = start.elapsed().as_secs_f64();
        if elapsed >= min_secs {
            return done as f64 / elapsed;
        }
    }
}

/// Measures an operation and its baseline in alternating batches (each `(ops per batch, batch)`)
/// until both have run `min_secs`, so load changes during the run affect both alike.
fn rate_pair(
    min_secs: f64,
    (per_op, mut op): (u64, impl FnMut()),
    (per_base, mut base): (u64, impl FnMut()),
) -> (f64, f64) {
    op();
    base();
    let (mut t_op, mut t_base) = (0.0f64, 0.0f64);
    let (mut n_op, mut n_base) = (0u64, 0u64);
    loop {
        let start = Instant::now();
        op();
        t_op += start.elapsed().as_secs_f64();
        n_op += per_op;
        let start = Instant::now();
        base();
        t_base += start.elapsed().as_secs_f64();
        n_base += per_base;
        if t_op >= min_secs && t_base >= min_secs {
            break;
        }
    }
    (
        n_op as f64 / t_op.max(f64::MIN_POSITIVE),
        n_base as f64 / t_base.max(f64::MIN_POSITIVE),
    )
}

/// Benchmarks every operation for a key of `key_bits` bits, spending at least `min_secs_per_op`
/// seconds on each measurement, and hands each record to `on_record` as soon as it is measured.
pub fn run(
    key_bits: u32,
    min_secs_per_op: f64,
    on_record: &mut dyn FnMut(BenchRecord),
) -> Result<()> {
    if !SUPPORTED_KEY_BITS.contains(&key_bits) {
        return Err(Error::UnsupportedKeySize { bits: key_bits });
    }
    if !(min_secs_per_op.is_finite() && min_secs_per_op >= 0.0) {
        return Err(Error::invalid_argument(
            "min_secs_per_op",
            format!("{min_secs_per_op} is not a duration"),
        ));
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .map_err(|e| Error::invalid_argument("bench thread pool", e.to_string()))?;
    run_single_threaded(&pool, key_bits, min_secs_per_op, on_record)
}

/// Every operation below runs on the calling thread; the only rayon user (`xt_dot`) runs inside
/// the one-thread `pool`.
fn run_single_threaded(
    pool: &rayon::ThreadPool,
    key_bits: u32,
    secs: f64,
    emit: &mut dyn FnMut(BenchRecord),
) -> Result<()> {
    let mut rng = ChaCha20Rng::seed_from_u64(0x0fa7e);
    let fate = fate_rates(key_bits);
    let record =
        |op: &str, ops: f64, baseline: Option<(&str, f64)>, fate_idx: Option<usize>| BenchRecord {
            op: op.to_string(),
            key_bits,
            ops_per_sec: ops,
            baseline: baseline.map(|b| b.0.to_string()),
            baseline_ops_per_sec: baseline.map(|b| b.1),
            fate_ops_per_sec: fate_idx.and_then(|i| fate.map(|f| f[i])),
        };

    // Key generation.
    let keygen_rate = rate(secs, 1, || {
        black_box(paillier::keygen(key_bits, &mut rng).ok());
    });
    emit(record("keygen", keygen_rate, None, Some(0)));

    let (pk, sk) = paillier::keygen(key_bits, &mut rng)?;
    let n = pk.n().clone();
    let n2 = pk.n_squared().clone();
    let random_plain = |rng: &mut ChaCha20Rng| paillier::random_below(&n, rng);
    let powm = |base: &Integer, e: &Integer, m: &Integer, out: &mut Integer| {
        out.assign(
            base.pow_mod_ref(e, m)
                .map(Integer::from)
                .unwrap_or_default(),
        );
    };
    let mut out = Integer::new();
    let mut out2 = Integer::new();

    // Encryption (DJN fixed-base obfuscator) against one raw r^n mod n^2.
    const POWMOD_RN: &str = "raw GMP powmod r^n mod n^2";
    let m = random_plain(&mut rng);
    let r = random_plain(&mut rng);
    let mut enc_rng = ChaCha20Rng::seed_from_u64(1);
    let (enc, powmod) = rate_pair(
        secs,
        (1, || {
            black_box(pk.encrypt_with_rng(&m, &mut enc_rng).ok());
        }),
        (1, || {
            powm(&r, &n, &n2, &mut out);
            black_box(&out);
        }),
    );
    emit(record("encrypt", enc, Some((POWMOD_RN, powmod)), Some(1)));

    let classic = pk.with_obfuscation(paillier::Obfuscation::Classic)?;
    let enc_classic = rate(secs, 1, || {
        black_box(classic.encrypt_with_rng(&m, &mut rng).ok());
    });
    emit(record(
        "encrypt_classic_r^n",
        enc_classic,
        Some((POWMOD_RN, powmod)),
        Some(1),
    ));
    let enc_sk = rate(secs, 1, || {
        black_box(sk.encrypt_with_rng(&m, &mut rng).ok());
    });
    emit(record(
        "encrypt_secret_key_crt",
        enc_sk,
        Some((POWMOD_RN, powmod)),
        Some(1),
    ));

    // Decryption (CRT) against the two half-size exponentiations it cannot avoid.
    let c = pk.encrypt_with_rng(&m, &mut rng)?;
    let (p, q) = sk.primes();
    let (p2, q2) = (Integer::from(p.square_ref()), Integer::from(q.square_ref()));
    let (pm1, qm1) = (Integer::from(p - 1u32), Integer::from(q - 1u32));
    let (dec, half_powmods) = rate_pair(
        secs,
        (1, || {
            black_box(sk.decrypt(&c));
        }),
        (1, || {
            powm(c.as_integer(), &pm1, &p2, &mut out);
            powm(c.as_integer(), &qm1, &q2, &mut out2);
            black_box((&out, &out2));
        }),
    );
    let dec_base = "raw GMP c^(p-1) mod p^2 and c^(q-1) mod q^2";
    emit(record(
        "decrypt",
        dec,
        Some((dec_base, half_powmods)),
        Some(2),
    ));

    // Addition against one raw multiplication mod n^2.
    let c2 = pk.encrypt_with_rng(&random_plain(&mut rng), &mut rng)?;
    let batch = 256u64;
    let mut acc = c.as_integer().clone();
    let mut scratch = Integer::new();
    let (add, mulmod) = rate_pair(
        secs,
        (batch, || {
            for _ in 0..batch {
                black_box(pk.add(&c, &c2));
            }
        }),
        (batch, || {
            for _ in 0..batch {
                scratch.assign(&acc * c2.as_integer());
                acc.assign(&scratch % &n2);
            }
            black_box(&acc);
        }),
    );
    emit(record(
        "add",
        add,
        Some(("raw GMP multiply mod n^2", mulmod)),
        Some(3),
    ));

    // Ciphertext times a 23-bit scalar (LR's fixed-point precision).
    let k: i64 = rng.gen_range((1 << 22)..(1 << 23));
    let ki = Integer::from(k);
    let (smul, smul_raw) = rate_pair(
        secs,
        (16, || {
            for _ in 0..16 {
                black_box(pk.mul_i64(&c, k).ok());
            }
        }),
        (16, || {
            for _ in 0..16 {
                powm(c.as_integer(), &ki, &n2, &mut out);
            }
            black_box(&out);
        }),
    );
    let smul_base = "raw GMP powmod, 23-bit exponent";
    emit(record(
        "scalar_mul_23bit",
        smul,
        Some((smul_base, smul_raw)),
        Some(4),
    ));

    // X^T [[d]] over 1000 x 10 random 32-bit signed entries, per matrix element, against one
    // 32-bit exponentiation per element.
    let (rows, cols) = (1000usize, 10usize);
    let d: Vec<Ciphertext> = (0..rows)
        .map(|_| pk.encrypt_with_rng(&random_plain(&mut rng), &mut rng))
        .collect::<Result<_>>()?;
    let x: Vec<i64> = (0..rows * cols)
        .map(|_| i64::from(rng.next_u32() as i32))
        .collect();
    let k32 = Integer::from(x[0].unsigned_abs());
    let (dot, pow32) = rate_pair(
        secs,
        ((rows * cols) as u64, || {
            black_box(pool.install(|| pk.xt_dot(&x, cols, &d)).ok());
        }),
        (16, || {
            for _ in 0..16 {
                powm(c.as_integer(), &k32, &n2, &mut out);
            }
            black_box(&out);
        }),
    );
    let dot_base = "raw GMP powmod, 32-bit exponent, per element";
    emit(record("dot", dot, Some((dot_base, pow32)), Some(5)));

    // The PSI primitive: hash an id to the curve and multiply by the secret.
    let secret = EcdhSecret::random(&mut rng);
    let mut i = 0u64;
    let psi = rate(secs, 64, || {
        for _ in 0..64 {
            i += 1;
            black_box(secret.encrypt_id(&i.to_le_bytes()));
        }
    });
    emit(BenchRecord {
        op: "ecdh_hash_mul".into(),
        key_bits: 0,
        ops_per_sec: psi,
        baseline: None,
        baseline_ops_per_sec: None,
        fate_ops_per_sec: None,
    });
    Ok(())
}
