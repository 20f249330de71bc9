//! Packing several non-negative fixed-point values into one plaintext (SecureBoost's gh packing
//! and split-info squeeze, fate-spec §4.5).
//!
//! A packed plaintext is `Σ_i v_i·2^(slot_bits·(k−1−i))`: the first value sits in the most
//! significant slot, as in FATE's `(g << shift_bit) + h`. Slots are sized for sums: a slot of
//! [`PackingScheme::new`] holds the sum of `max_terms` values up to `max_value`, so the packed
//! ciphertexts can be added homomorphically (histograms) without carries between slots. The
//! capacity is `(key_bits − 2) / slot_bits` slots (FATE's `total_pack_num`), which keeps every
//! packed plaintext below 2^(key_bits − 2) < n.

use rayon::prelude::*;
use rug::Integer;

use crate::encoding::{encode_scaled, int_times_pow2_to_f64};
use crate::error::{Error, Result};

/// FATE's `FIX_POINT_PRECISION` for gh packing.
pub const GH_PRECISION: u32 = 52;

/// Slot layout for packing non-negative fixed-point values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackingScheme {
    precision: u32,
    slot_bits: u32,
    capacity: usize,
}

impl PackingScheme {
    /// A scheme whose slots hold the sum of `max_terms` values in [0, max_value] encoded with
    /// `precision` fractional bits, for a key of `key_bits` bits.
    pub fn new(
        key_bits: u32,
        precision: u32,
        max_value: f64,
        max_terms: u64,
    ) -> Result<PackingScheme> {
        if !(max_value.is_finite() && max_value > 0.0) {
            return Err(Error::invalid_argument(
                "max_value",
                format!("{max_value} is not a positive number"),
            ));
        }
        if max_terms == 0 {
            return Err(Error::invalid_argument("max_terms", "must be at least 1"));
        }
        let one = encode_scaled(max_value, precision)?;
        // Rounding may add one unit per term.
        let bound = (one + 1u32) * Integer::from(max_terms);
        Self::with_slot_bits(key_bits, precision, bound.significant_bits())
    }

    /// A scheme with an explicit slot width.
    pub fn with_slot_bits(key_bits: u32, precision: u32, slot_bits: u32) -> Result<PackingScheme> {
        if slot_bits == 0 || slot_bits > key_bits.saturating_sub(2) {
            return Err(Error::invalid_argument(
                "slot_bits",
                format!("{slot_bits}-bit slots do not fit a {key_bits}-bit key"),
            ));
        }
        let capacity = ((key_bits - 2) / slot_bits) as usize;
        Ok(PackingScheme {
            precision,
            slot_bits,
            capacity,
        })
    }

    /// Fractional bits of each value.
    pub fn precision(&self) -> u32 {
        self.precision
    }

    /// Bits per slot.
    pub fn slot_bits(&self) -> u32 {
        self.slot_bits
    }

    /// Slots per plaintext.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// `round(v·2^precision)`, which must be non-negative and fit a slot.
    pub fn encode_value(&self, v: f64) -> Result<Integer> {
        let m = encode_scaled(v, self.precision)?;
        if m.cmp0() == std::cmp::Ordering::Less {
            return Err(Error::invalid_argument(
                "packed value",
                format!("{v} is negative"),
            ));
        }
        if m.significant_bits() > self.slot_bits {
            return Err(Error::Overflow {
                what: "packed value",
                detail: format!("{v} does not fit a {}-bit slot", self.slot_bits),
            });
        }
        Ok(m)
    }

    /// Packs slot integers (each in [0, 2^slot_bits)), first value most significant.
    pub fn pack_integers(&self, values: &[Integer]) -> Result<Integer> {
        if values.len() > self.capacity {
            return Err(Error::DimensionMismatch {
                what: "packed values (capacity)",
                expected: self.capacity,
                got: values.len(),
            });
        }
        let mut acc = Integer::new();
        for v in values {
            if v.cmp0() == std::cmp::Ordering::Less || v.significant_bits() > self.slot_bits {
                return Err(Error::Overflow {
                    what: "packed integer",
                    detail: format!("a value does not fit a {}-bit slot", self.slot_bits),
                });
            }
            acc <<= self.slot_bits;
            acc += v;
        }
        Ok(acc)
    }

    /// Encodes and packs non-negative values.
    pub fn pack(&self, values: &[f64]) -> Result<Integer> {
        let ints = values
            .iter()
            .map(|&v| self.encode_value(v))
            .collect::<Result<Vec<_>>>()?;
        self.pack_integers(&ints)
    }

    /// Splits a (decrypted) packed plaintext into `count` slot integers, first slot first. A value
    /// wider than `count` slots means the top slot overflowed.
    pub fn unpack_integers(&self, packed: &Integer, count: usize) -> Result<Vec<Integer>> {
        if count > self.capacity {
            return Err(Error::DimensionMismatch {
                what: "unpacked slots (capacity)",
                expected: self.capacity,
                got: count,
            });
        }
        let total_bits = (self.slot_bits as usize).saturating_mul(count);
        if packed.cmp0() == std::cmp::Ordering::Less
            || packed.significant_bits() as usize > total_bits
        {
            return Err(Error::Overflow {
                what: "unpack",
                detail: format!(
                    "packed value does not fit {count} slots of {} bits",
                    self.slot_bits
                ),
            });
        }
        let mut out = Vec::with_capacity(count);
        let mut rest = packed.clone();
        for _ in 0..count {
            out.push(Integer::from(rest.keep_bits_ref(self.slot_bits)));
            rest >>= self.slot_bits;
        }
        out.reverse();
        Ok(out)
    }

    /// Splits and decodes `count` slots (each `slot·2^−precision`).
    pub fn unpack(&self, packed: &Integer, count: usize) -> Result<Vec<f64>> {
        Ok(self
            .unpack_integers(packed, count)?
            .iter()
            .map(|m| int_times_pow2_to_f64(m, -i64::from(self.precision)))
            .collect())
    }
}

/// SecureBoost's gradient/hessian packing (fate-spec §4.5): `(round((g + g_offset)·2^52) <<
/// shift_bit) + round(h·2^52)`, one plaintext per sample, with slots wide enough for the sums over
/// all samples of a histogram.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GhPacker {
    scheme: PackingScheme,
    key_bits: u32,
    g_offset: f64,
}

impl GhPacker {
    /// A packer for `n_samples` samples with g ∈ [−g_max_abs, g_max_abs] and h ∈ [0, h_max].
    /// `g_offset` = g_max_abs and the slot width is FATE's `shift_bit`.
    pub fn new(key_bits: u32, n_samples: u64, g_max_abs: f64, h_max: f64) -> Result<GhPacker> {
        if !(g_max_abs.is_finite() && g_max_abs > 0.0) {
            return Err(Error::invalid_argument(
                "g_max_abs",
                format!("{g_max_abs} is not a positive number"),
            ));
        }
        let g_slot = PackingScheme::new(key_bits, GH_PRECISION, 2.0 * g_max_abs, n_samples)?;
        let h_slot = PackingScheme::new(key_bits, GH_PRECISION, h_max, n_samples)?;
        let shift_bit = g_slot.slot_bits().max(h_slot.slot_bits());
        let scheme = PackingScheme::with_slot_bits(key_bits, GH_PRECISION, shift_bit)?;
        if scheme.capacity() < 2 {
            return Err(Error::invalid_argument(
                "n_samples",
                format!("a g/h pair of {shift_bit}-bit slots does not fit a {key_bits}-bit key"),
            ));
        }
        Ok(GhPacker {
            scheme,
            key_bits,
            g_offset: g_max_abs,
        })
    }

    /// The binary-objective packer: g = p − y ∈ [−1, 1], h = p(1 − p) ∈ [0, 1].
    pub fn binary(key_bits: u32, n_samples: u64) -> Result<GhPacker> {
        Self::new(key_bits, n_samples, 1.0, 1.0)
    }

    /// FATE's `shift_bit`: the width of each of the g and h slots.
    pub fn shift_bit(&self) -> u32 {
        self.scheme.slot_bits()
    }

    /// The offset added to every g.
    pub fn g_offset(&self) -> f64 {
        self.g_offset
    }

    /// Width of one packed (g, h) pair, the slot width for [`crate::paillier::PublicKey::pack_squeeze`].
    pub fn pair_bits(&self) -> u32 {
        2 * self.shift_bit()
    }

    /// How many (g, h) sums one squeezed ciphertext holds (FATE's `total_pack_num`).
    pub fn squeeze_capacity(&self) -> usize {
        ((self.key_bits - 2) / self.pair_bits()) as usize
    }

    /// Packs one sample's g and h.
    pub fn pack(&self, g: f64, h: f64) -> Result<Integer> {
        let shifted = g + self.g_offset;
        if shifted.is_nan() || shifted < 0.0 {
            return Err(Error::invalid_argument(
                "g",
                format!("{g} is below −{}", self.g_offset),
            ));
        }
        self.scheme.pack(&[shifted, h])
    }

    /// Packs every sample in parallel.
    pub fn pack_vec(&self, g: &[f64], h: &[f64]) -> Result<Vec<Integer>> {
        if g.len() != h.len() {
            return Err(Error::DimensionMismatch {
                what: "gh packing hessians",
                expected: g.len(),
                got: h.len(),
            });
        }
        g.par_iter()
            .zip(h.par_iter())
            .map(|(&g, &h)| self.pack(g, h))
            .collect()
    }

    /// Decodes a decrypted sum of `count` packed samples into (Σg, Σh), removing the offsets.
    pub fn unpack_sum(&self, packed: &Integer, count: u64) -> Result<(f64, f64)> {
        let parts = self.scheme.unpack(packed, 2)?;
        Ok((parts[0] - count as f64 * self.g_offset, parts[1]))
    }

    /// Splits a decrypted squeezed plaintext into its `counts.len()` pair sums (first pair first),
    /// `counts[i]` being the number of samples summed into pair i.
    pub fn unpack_squeezed(&self, packed: &Integer, counts: &[u64]) -> Result<Vec<(f64, f64)>> {
        let pairs = PackingScheme::with_slot_bits(self.key_bits, GH_PRECISION, self.pair_bits())?;
        pairs
            .unpack_integers(packed, counts.len())?
            .iter()
            .zip(counts)
            .map(|(pair, &count)| self.unpack_sum(pair, count))
            .collect()
    }
}
