//! Signed-digit bucket (Pippenger) multi-exponentiation `Π_i c_i^(k_i) mod n²` for i64 scalars.
//!
//! Each scalar is recoded into w signed digits of c bits, d ∈ [−2^(c−1), 2^(c−1)]. For each
//! window (top first) every base is multiplied into the bucket of its digit's magnitude, in a
//! positive or a negative bucket set; the buckets are folded with running products
//! (`Π_j B_j^j` in 2·2^(c−1) multiplications per set) and the window results are combined with
//! c squarings per window. The positive and negative products come back separately so the
//! caller can divide once (one modular inversion) after combining partial results.

use rug::Integer;

use super::{mul_mod, sqr_mod};

/// Products of the positive and of the negative parts; `None` stands for 1.
#[derive(Default)]
pub(crate) struct SignedProduct {
    pub(crate) pos: Option<Integer>,
    pub(crate) neg: Option<Integer>,
}

impl SignedProduct {
    /// Multiplies another partial result into this one.
    pub(crate) fn absorb(&mut self, other: SignedProduct, n2: &Integer) {
        mul_opt(&mut self.pos, other.pos, n2);
        mul_opt(&mut self.neg, other.neg, n2);
    }
}

fn mul_opt(acc: &mut Option<Integer>, x: Option<Integer>, n2: &Integer) {
    match (acc.as_mut(), x) {
        (_, None) => {}
        (None, Some(x)) => *acc = Some(x),
        (Some(a), Some(x)) => mul_mod(a, &x, n2),
    }
}

/// Access to the integer behind a multi-exponentiation base.
pub(crate) trait AsBase {
    fn as_base(&self) -> &Integer;
}

impl AsBase for Integer {
    fn as_base(&self) -> &Integer {
        self
    }
}

impl AsBase for super::Ciphertext {
    fn as_base(&self) -> &Integer {
        &self.0
    }
}

/// Estimated multiplications for window c with `sets` bucket sets: windows × (bucket inserts +
/// folding) plus the squarings between windows.
fn cost(m: usize, bits: u32, c: u32, sets: u64) -> u64 {
    let w = u64::from((bits + 1).div_ceil(c));
    w * (m as u64 + sets * (1u64 << c)) + sets * u64::from(c) * w
}

fn choose_window(m: usize, bits: u32, sets: u64) -> u32 {
    (1..=16u32.min(bits + 1))
        .min_by_key(|&c| cost(m, bits, c, sets))
        .unwrap_or(1)
}

/// Estimated multiplications of one multi-exponentiation over m terms of `bits`-bit scalars,
/// with one bucket set (inverted bases available) or two (positive and negative digits).
pub(crate) fn estimated_cost(m: usize, bits: u32, inverted_bases: bool) -> u64 {
    let sets = if inverted_bases { 1 } else { 2 };
    cost(m, bits, choose_window(m, bits, sets), sets)
}

/// `x_i^−1 mod n2` for every x_i by Montgomery's trick: one inversion and 3(m − 1)
/// multiplications. None if some x_i is not a unit.
pub(crate) fn batch_invert<B: AsBase>(xs: &[B], n2: &Integer) -> Option<Vec<Integer>> {
    if xs.is_empty() {
        return Some(Vec::new());
    }
    let mut prefix: Vec<Integer> = Vec::with_capacity(xs.len());
    for x in xs {
        let mut p = x.as_base().clone();
        if let Some(prev) = prefix.last() {
            mul_mod(&mut p, prev, n2);
        }
        prefix.push(p);
    }
    let mut inv = Integer::from(prefix.last()?.invert_ref(n2)?);
    let mut out = vec![Integer::new(); xs.len()];
    for i in (0..xs.len()).rev() {
        if i == 0 {
            out[0] = inv;
            break;
        }
        let mut xi_inv = inv.clone();
        mul_mod(&mut xi_inv, &prefix[i - 1], n2);
        out[i] = xi_inv;
        mul_mod(&mut inv, xs[i].as_base(), n2);
    }
    Some(out)
}

/// `Π_i bases[i]^(scalar(i)) mod n2`, split into positive and negative parts.
///
/// With `inverses` (the bases' inverses, same length) negative digits multiply the inverse into
/// the single bucket set and the result has no negative part; without, a second bucket set
/// collects them.
pub(crate) fn multi_exp<B: AsBase>(
    bases: &[B],
    inverses: Option<&[Integer]>,
    scalar: &dyn Fn(usize) -> i64,
    n2: &Integer,
) -> SignedProduct {
    let m = bases.len();
    let max_abs = (0..m).map(|i| scalar(i).unsigned_abs()).max().unwrap_or(0);
    if max_abs == 0 {
        return SignedProduct::default();
    }
    let bits = 64 - max_abs.leading_zeros();
    let inverses = inverses.filter(|inv| inv.len() == m);
    let sets = if inverses.is_some() { 1 } else { 2 };
    let c = choose_window(m, bits, sets);
    let w = (bits + 1).div_ceil(c) as usize;
    let half = 1usize << (c - 1);

    // Recode every scalar once: digits[i·w + t] is digit t (least significant first).
    let mut digits = vec![0i32; m * w];
    let mask = (1i128 << c) - 1;
    for i in 0..m {
        let mut k = i128::from(scalar(i));
        let row = &mut digits[i * w..(i + 1) * w];
        for (t, slot) in row.iter_mut().enumerate() {
            if t + 1 == w {
                // The top digit takes the rest; |rest| ≤ 2^(c−1) because |k| < 2^(c·w − 1).
                *slot = k as i32;
                break;
            }
            let mut d = k & mask;
            k >>= c;
            if d >= half as i128 {
                d -= 1i128 << c;
                k += 1;
            }
            *slot = d as i32;
        }
    }

    let mut pos_buckets: Vec<Integer> = vec![Integer::new(); half];
    let mut neg_buckets: Vec<Integer> =
        vec![Integer::new(); if inverses.is_some() { 0 } else { half }];
    let mut pos_filled = vec![false; half];
    let mut neg_filled = vec![false; neg_buckets.len()];
    let mut out = SignedProduct::default();

    for t in (0..w).rev() {
        for acc in [&mut out.pos, &mut out.neg].into_iter().flatten() {
            for _ in 0..c {
                sqr_mod(acc, n2);
            }
        }
        pos_filled.iter_mut().for_each(|f| *f = false);
        neg_filled.iter_mut().for_each(|f| *f = false);
        for (i, base) in bases.iter().enumerate() {
            let d = digits[i * w + t];
            if d == 0 {
                continue;
            }
            let (buckets, filled, x) = match (d > 0, inverses) {
                (true, _) => (&mut pos_buckets, &mut pos_filled, base.as_base()),
                (false, Some(inv)) => (&mut pos_buckets, &mut pos_filled, &inv[i]),
                (false, None) => (&mut neg_buckets, &mut neg_filled, base.as_base()),
            };
            let idx = d.unsigned_abs() as usize - 1;
            if filled[idx] {
                mul_mod(&mut buckets[idx], x, n2);
            } else {
                rug::Assign::assign(&mut buckets[idx], x);
                filled[idx] = true;
            }
        }
        mul_opt(
            &mut out.pos,
            fold_buckets(&pos_buckets, &pos_filled, n2),
            n2,
        );
        mul_opt(
            &mut out.neg,
            fold_buckets(&neg_buckets, &neg_filled, n2),
            n2,
        );
    }
    out
}

/// `Π_j buckets[j]^(j+1)` over filled buckets, by running products from the top.
fn fold_buckets(buckets: &[Integer], filled: &[bool], n2: &Integer) -> Option<Integer> {
    let mut running: Option<Integer> = None;
    let mut total: Option<Integer> = None;
    for j in (0..buckets.len()).rev() {
        if filled[j] {
            match running.as_mut() {
                None => running = Some(buckets[j].clone()),
                Some(r) => mul_mod(r, &buckets[j], n2),
            }
        }
        if let Some(r) = running.as_ref() {
            match total.as_mut() {
                None => total = Some(r.clone()),
                Some(tot) => mul_mod(tot, r, n2),
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plain product with exponentiation per term, as the reference.
    fn reference(bases: &[Integer], scalars: &[i64], n2: &Integer) -> Integer {
        let mut acc = Integer::from(1);
        for (b, &k) in bases.iter().zip(scalars) {
            let e = Integer::from(k);
            let x = Integer::from(b.pow_mod_ref(&e, n2).expect("units are invertible"));
            acc *= x;
            acc %= n2;
        }
        acc
    }

    fn combine(p: SignedProduct, n2: &Integer) -> Integer {
        let pos = p.pos.unwrap_or_else(|| Integer::from(1));
        let neg = p.neg.unwrap_or_else(|| Integer::from(1));
        let inv = neg.invert(n2).expect("unit");
        (pos * inv) % n2
    }

    #[test]
    fn matches_reference_on_extremes_and_mixed_signs() {
        // A small odd modulus whose elements below are units: the algebra does not care.
        let n2 = Integer::from(1_000_000_007u64) * Integer::from(998_244_353u64);
        let bases: Vec<Integer> = (0..40u64).map(|i| Integer::from(3 + 2 * i)).collect();
        let scalar_sets: Vec<Vec<i64>> = vec![
            (0..40)
                .map(|i| if i % 2 == 0 { i64::MAX } else { i64::MIN })
                .collect(),
            (0..40).map(|i| (i as i64 - 20) * 12_345_677).collect(),
            (0..40).map(|i| i as i64 % 3 - 1).collect(),
            vec![0; 40],
            (0..40)
                .map(|i| if i == 7 { -(1 << 30) } else { 0 })
                .collect(),
        ];
        let inverses = batch_invert(&bases, &n2).expect("units");
        for scalars in scalar_sets {
            let want = reference(&bases, &scalars, &n2);
            let two_sets = combine(multi_exp(&bases, None, &|i| scalars[i], &n2), &n2);
            assert_eq!(two_sets, want, "two bucket sets, scalars {scalars:?}");
            let inverted = multi_exp(&bases, Some(&inverses), &|i| scalars[i], &n2);
            assert!(inverted.neg.is_none());
            assert_eq!(
                combine(inverted, &n2),
                want,
                "inverted bases, scalars {scalars:?}"
            );
        }
    }

    #[test]
    fn window_choice_grows_with_term_count() {
        assert!(choose_window(10, 31, 2) < choose_window(10_000, 31, 2));
        assert_eq!(choose_window(1000, 31, 2), 8);
        assert_eq!(choose_window(1000, 31, 1), 8);
    }

    #[test]
    fn batch_inversion_inverts_each_element() {
        let n2 = Integer::from(1_000_000_007u64) * Integer::from(998_244_353u64);
        let xs: Vec<Integer> = (0..17u64).map(|i| Integer::from(5 + 7 * i)).collect();
        let inv = batch_invert(&xs, &n2).expect("units");
        for (x, y) in xs.iter().zip(&inv) {
            assert_eq!(Integer::from(x * y) % &n2, 1);
        }
        let with_zero_divisor = vec![Integer::from(3), Integer::from(1_000_000_007u64)];
        assert!(batch_invert(&with_zero_divisor, &n2).is_none());
        assert_eq!(batch_invert::<Integer>(&[], &n2).map(|v| v.len()), Some(0));
    }
}
