//! Homomorphic operations, single and over slices (parallel with rayon).

use rayon::prelude::*;
use rug::Integer;

use super::multiexp::{self, SignedProduct, multi_exp};
use super::{Ciphertext, PublicKey, SecretKey, mul_mod, mul_mod_new, pow_mod};
use crate::encoding;
use crate::error::{Error, Result};

fn check_len(what: &'static str, expected: usize, got: usize) -> Result<()> {
    if expected == got {
        Ok(())
    } else {
        Err(Error::DimensionMismatch {
            what,
            expected,
            got,
        })
    }
}

impl PublicKey {
    /// `[[a]] + [[b]]`: one multiplication mod n².
    pub fn add(&self, a: &Ciphertext, b: &Ciphertext) -> Ciphertext {
        Ciphertext(mul_mod_new(&a.0, &b.0, &self.inner.n2))
    }

    /// `[[a]] += [[b]]` in place.
    pub fn add_assign(&self, a: &mut Ciphertext, b: &Ciphertext) {
        mul_mod(&mut a.0, &b.0, &self.inner.n2);
    }

    /// `[[a]] + m` for a plaintext |m| < n, without any exponentiation.
    pub fn add_plain(&self, a: &Ciphertext, m: &Integer) -> Result<Ciphertext> {
        let m = self.reduce_plaintext(m, "m")?;
        Ok(Ciphertext(self.mul_plain_part(&m, a.0.clone())))
    }

    /// `[[a]] + m` for an i64.
    pub fn add_plain_i64(&self, a: &Ciphertext, m: i64) -> Result<Ciphertext> {
        self.add_plain(a, &Integer::from(m))
    }

    /// `−[[a]]`: one modular inversion.
    pub fn neg(&self, a: &Ciphertext) -> Result<Ciphertext> {
        a.0.invert_ref(&self.inner.n2)
            .map(|x| Ciphertext(Integer::from(x)))
            .ok_or(Error::NotInvertible { what: "neg" })
    }

    /// `[[a]] − [[b]]`.
    pub fn sub(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext> {
        let mut nb = self.neg(b)?;
        self.add_assign(&mut nb, a);
        Ok(nb)
    }

    /// `k·[[a]]` for an i64 scalar: an exponentiation with |k|'s own length; a negative k adds
    /// one inversion (never a full-size exponent).
    pub fn mul_i64(&self, a: &Ciphertext, k: i64) -> Result<Ciphertext> {
        match k {
            0 => Ok(self.trivial_zero()),
            1 => Ok(a.clone()),
            -1 => self.neg(a),
            _ => {
                let x = pow_mod(&a.0, &Integer::from(k.unsigned_abs()), &self.inner.n2);
                if k > 0 {
                    Ok(Ciphertext(x))
                } else {
                    self.neg(&Ciphertext(x))
                }
            }
        }
    }

    /// `k·[[a]]` for an arbitrary integer k. k is reduced mod n to the representative of smallest
    /// magnitude, so a "negative" k near n costs a short exponent plus one inversion.
    pub fn mul_integer(&self, a: &Ciphertext, k: &Integer) -> Result<Ciphertext> {
        let n = &self.inner.n;
        let mut k = Integer::from(k % n);
        if k.cmp0() == std::cmp::Ordering::Less {
            k += n;
        }
        if k > self.inner.half_n {
            let e = Integer::from(n - &k);
            self.neg(&Ciphertext(pow_mod(&a.0, &e, &self.inner.n2)))
        } else {
            Ok(Ciphertext(pow_mod(&a.0, &k, &self.inner.n2)))
        }
    }

    /// `Σ [[a_i]]` (the trivial zero for an empty slice), in parallel.
    pub fn sum(&self, a: &[Ciphertext]) -> Ciphertext {
        let n2 = &self.inner.n2;
        let total = a
            .par_chunks(256)
            .map(|chunk| {
                let mut acc = chunk[0].0.clone();
                for c in &chunk[1..] {
                    mul_mod(&mut acc, &c.0, n2);
                }
                acc
            })
            .reduce_with(|mut x, y| {
                mul_mod(&mut x, &y, n2);
                x
            });
        Ciphertext(total.unwrap_or_else(|| Integer::from(1)))
    }

    /// `Σ k_i·[[a_i]]` by signed multi-exponentiation.
    pub fn weighted_sum(&self, a: &[Ciphertext], k: &[i64]) -> Result<Ciphertext> {
        check_len("weighted_sum scalars", a.len(), k.len())?;
        let mut out = self.xt_dot(k, 1, a)?;
        Ok(out.pop().unwrap_or_else(|| self.trivial_zero()))
    }

    /// The hetero-LR gradient kernel `X^T·[[d]]` (fate-spec §4.3): given `x`, an m × f matrix of
    /// i64 in row-major order (`x[i·n_cols + j]`, e.g. features encoded with
    /// [`crate::encoding::encode_i64`]) and m ciphertexts d, returns the f ciphertexts
    /// `Σ_i x[i][j]·[[d_i]]`. Each column is one signed multi-exponentiation; columns and row
    /// chunks run in parallel; negatives cost one inversion per column. Results are not
    /// rerandomized (see [`PublicKey::rerandomize`]).
    pub fn xt_dot(&self, x: &[i64], n_cols: usize, d: &[Ciphertext]) -> Result<Vec<Ciphertext>> {
        let m = d.len();
        let expected = m.checked_mul(n_cols).ok_or_else(|| {
            Error::invalid_argument("n_cols", format!("{m} rows x {n_cols} columns overflows"))
        })?;
        check_len("xt_dot matrix elements (rows x columns)", expected, x.len())?;
        if n_cols == 0 {
            return Ok(Vec::new());
        }
        let n2 = &self.inner.n2;
        let threads = rayon::current_num_threads().max(1);
        // Split rows only when columns alone cannot keep the threads busy; keep chunks large
        // enough that bucket folding stays a small share of the work.
        let n_chunks = if n_cols >= threads {
            1
        } else {
            (2 * threads).div_ceil(n_cols).min(m / 512).max(1)
        };
        let chunk_len = m.div_ceil(n_chunks).max(1);
        // Inverting the bases once (Montgomery's trick, about 3 multiplications per row) lets
        // negative digits share the positive buckets, halving the folding work of every column;
        // worth it when there are enough columns to share the inversions.
        let max_abs = x.iter().map(|v| v.unsigned_abs()).max().unwrap_or(0);
        let bits = 64 - max_abs.leading_zeros();
        let per_chunk =
            |inverted| multiexp::estimated_cost(chunk_len, bits, inverted) * n_cols as u64;
        let inversion_cost = 3 * chunk_len as u64;
        let use_inverses = bits > 0 && per_chunk(true) + inversion_cost < per_chunk(false);
        let inverses: Option<Vec<Vec<Integer>>> = if use_inverses {
            let inv = d
                .par_chunks(chunk_len)
                .map(|chunk| multiexp::batch_invert(chunk, n2))
                .collect::<Option<Vec<_>>>()
                .ok_or(Error::NotInvertible { what: "xt_dot" })?;
            Some(inv)
        } else {
            None
        };
        let partials: Vec<(usize, SignedProduct)> = (0..n_cols * n_chunks)
            .into_par_iter()
            .map(|task| {
                let col = task / n_chunks;
                let chunk = task % n_chunks;
                let start = (chunk * chunk_len).min(m);
                let end = (start + chunk_len).min(m);
                let scalar = |i: usize| x[(start + i) * n_cols + col];
                let inv = inverses
                    .as_ref()
                    .and_then(|v| v.get(chunk))
                    .map(Vec::as_slice);
                (col, multi_exp(&d[start..end], inv, &scalar, n2))
            })
            .collect();
        let mut per_col: Vec<SignedProduct> =
            (0..n_cols).map(|_| SignedProduct::default()).collect();
        for (col, p) in partials {
            per_col[col].absorb(p, n2);
        }
        per_col
            .into_par_iter()
            .map(|p| {
                let pos = p.pos.unwrap_or_else(|| Integer::from(1));
                match p.neg {
                    None => Ok(Ciphertext(pos)),
                    Some(neg) => {
                        let mut inv = neg
                            .invert(n2)
                            .map_err(|_| Error::NotInvertible { what: "xt_dot" })?;
                        mul_mod(&mut inv, &pos, n2);
                        Ok(Ciphertext(inv))
                    }
                }
            })
            .collect()
    }

    /// Squeezes ciphertexts of small plaintexts into one (SecureBoost `pack_squeeze`, fate-spec
    /// §4.5): `c ← c^(2^slot_bits)·c_next`, so the first plaintext lands in the most significant
    /// slot. The caller guarantees every plaintext is below 2^slot_bits and that
    /// `slot_bits·a.len()` fits the key (see [`crate::packing::PackingScheme`]).
    pub fn pack_squeeze(&self, a: &[Ciphertext], slot_bits: u32) -> Result<Ciphertext> {
        let total = (slot_bits as usize).saturating_mul(a.len().max(1));
        if slot_bits == 0 || total >= self.inner.bits as usize - 1 {
            return Err(Error::invalid_argument(
                "slot_bits",
                format!(
                    "{} slots of {slot_bits} bits do not fit a {}-bit key",
                    a.len(),
                    self.inner.bits
                ),
            ));
        }
        let n2 = &self.inner.n2;
        let shift = Integer::from(1) << slot_bits;
        let mut iter = a.iter();
        let Some(first) = iter.next() else {
            return Ok(self.trivial_zero());
        };
        let mut acc = first.0.clone();
        for c in iter {
            acc = pow_mod(&acc, &shift, n2);
            mul_mod(&mut acc, &c.0, n2);
        }
        Ok(Ciphertext(acc))
    }

    /// [`PublicKey::pack_squeeze`] over consecutive groups of `per_ciphertext` ciphertexts, in
    /// parallel.
    pub fn pack_squeeze_vec(
        &self,
        a: &[Ciphertext],
        slot_bits: u32,
        per_ciphertext: usize,
    ) -> Result<Vec<Ciphertext>> {
        if per_ciphertext == 0 {
            return Err(Error::invalid_argument(
                "per_ciphertext",
                "must be at least 1",
            ));
        }
        a.par_chunks(per_ciphertext)
            .map(|g| self.pack_squeeze(g, slot_bits))
            .collect()
    }

    /// Encrypts each m_i (|m_i| < n) in parallel.
    pub fn encrypt_vec(&self, m: &[Integer]) -> Result<Vec<Ciphertext>> {
        m.par_iter().map(|x| self.encrypt(x)).collect()
    }

    /// Encrypts each i64 in parallel.
    pub fn encrypt_i64_vec(&self, m: &[i64]) -> Result<Vec<Ciphertext>> {
        m.par_iter().map(|&x| self.encrypt_i64(x)).collect()
    }

    /// Encrypts each `round(x_i·2^frac_bits)` in parallel.
    pub fn encrypt_f64_vec(&self, x: &[f64], frac_bits: u32) -> Result<Vec<Ciphertext>> {
        x.par_iter()
            .map(|&v| self.encrypt_f64(v, frac_bits))
            .collect()
    }

    /// Element-wise `[[a_i]] + [[b_i]]`.
    pub fn add_vec(&self, a: &[Ciphertext], b: &[Ciphertext]) -> Result<Vec<Ciphertext>> {
        check_len("add_vec right operand", a.len(), b.len())?;
        Ok(a.par_iter()
            .zip(b.par_iter())
            .map(|(x, y)| self.add(x, y))
            .collect())
    }

    /// Element-wise `[[a_i]] += [[b_i]]`.
    pub fn add_assign_vec(&self, a: &mut [Ciphertext], b: &[Ciphertext]) -> Result<()> {
        check_len("add_assign_vec right operand", a.len(), b.len())?;
        a.par_iter_mut()
            .zip(b.par_iter())
            .for_each(|(x, y)| self.add_assign(x, y));
        Ok(())
    }

    /// Element-wise `[[a_i]] − [[b_i]]`.
    pub fn sub_vec(&self, a: &[Ciphertext], b: &[Ciphertext]) -> Result<Vec<Ciphertext>> {
        check_len("sub_vec right operand", a.len(), b.len())?;
        a.par_iter()
            .zip(b.par_iter())
            .map(|(x, y)| self.sub(x, y))
            .collect()
    }

    /// Element-wise `[[a_i]] + m_i`.
    pub fn add_plain_vec(&self, a: &[Ciphertext], m: &[Integer]) -> Result<Vec<Ciphertext>> {
        check_len("add_plain_vec plaintexts", a.len(), m.len())?;
        a.par_iter()
            .zip(m.par_iter())
            .map(|(x, y)| self.add_plain(x, y))
            .collect()
    }

    /// Element-wise `[[a_i]] + round(x_i·2^frac_bits)`.
    pub fn add_f64_vec(
        &self,
        a: &[Ciphertext],
        x: &[f64],
        frac_bits: u32,
    ) -> Result<Vec<Ciphertext>> {
        check_len("add_f64_vec plaintexts", a.len(), x.len())?;
        a.par_iter()
            .zip(x.par_iter())
            .map(|(c, &v)| self.add_plain(c, &encoding::encode_scaled_checked(v, frac_bits, self)?))
            .collect()
    }

    /// Element-wise `k_i·[[a_i]]`.
    pub fn mul_i64_vec(&self, a: &[Ciphertext], k: &[i64]) -> Result<Vec<Ciphertext>> {
        check_len("mul_i64_vec scalars", a.len(), k.len())?;
        a.par_iter()
            .zip(k.par_iter())
            .map(|(x, &s)| self.mul_i64(x, s))
            .collect()
    }

    /// `k·[[a_i]]` for every element.
    pub fn mul_i64_broadcast(&self, a: &[Ciphertext], k: i64) -> Result<Vec<Ciphertext>> {
        a.par_iter().map(|x| self.mul_i64(x, k)).collect()
    }

    /// Rerandomizes every element in parallel.
    pub fn rerandomize_vec(&self, a: &[Ciphertext]) -> Vec<Ciphertext> {
        a.par_iter().map(|c| self.rerandomize(c)).collect()
    }
}

impl SecretKey {
    /// Decrypts each ciphertext (to [0, n)) in parallel.
    pub fn decrypt_vec(&self, c: &[Ciphertext]) -> Vec<Integer> {
        c.par_iter().map(|x| self.decrypt(x)).collect()
    }

    /// Decrypts each ciphertext to a signed i64 in parallel.
    pub fn decrypt_i64_vec(&self, c: &[Ciphertext]) -> Result<Vec<i64>> {
        c.par_iter().map(|x| self.decrypt_i64(x)).collect()
    }

    /// Decrypts each fixed-precision value with `frac_bits` fractional bits in parallel.
    pub fn decrypt_f64_vec(&self, c: &[Ciphertext], frac_bits: u32) -> Result<Vec<f64>> {
        c.par_iter()
            .map(|x| self.decrypt_f64(x, frac_bits))
            .collect()
    }

    /// Encrypts each m_i with CRT obfuscators in parallel.
    pub fn encrypt_vec(&self, m: &[Integer]) -> Result<Vec<Ciphertext>> {
        m.par_iter().map(|x| self.encrypt(x)).collect()
    }
}
