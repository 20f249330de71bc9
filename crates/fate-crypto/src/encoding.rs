//! Encodings of real numbers and signed integers as Paillier plaintexts.
//!
//! Two schemes:
//!
//! * **Fixed precision** (what FATE's CoordinatedLR does with `floating_point_precision` 23,
//!   fate-spec §4.3): a value x becomes the integer `round(x·2^frac_bits)`; the caller tracks the
//!   scale (a product of two encodings has `2·frac_bits`). [`encode_scaled`], [`encode_i64`],
//!   [`decode_scaled`], and `PublicKey::encrypt_f64` / `SecretKey::decrypt_f64`.
//! * **FATE's base-16 fixed point** (fate-spec §5.1, `fixedpoint` crate): a value carries its own
//!   exponent, `x = mantissa·16^exponent` with a 53-bit mantissa; additions align exponents and
//!   multiplications add them. [`FixedPointEncoder`], [`EncodedNumber`], [`EncryptedNumber`].
//!
//! Negatives are residues n − |m|. Both schemes accept magnitudes up to `max_int = floor(n/3)`
//! (python-paillier and FATE 1.x; FATE 2.x uses n/2, which leaves no room to notice overflow) and
//! report a decrypted residue in the band (max_int, n − max_int) as [`Error::Overflow`] instead of
//! returning a wrapped-around number. Rounding is to nearest, ties away from zero (as FATE's
//! `round`), and exact: no intermediate f64 scaling that could overflow or lose bits.

use rug::Integer;

use crate::error::{Error, Result};
use crate::paillier::{Ciphertext, PublicKey, SecretKey};

/// FATE's default `floating_point_precision` for LR (fate-spec §4.3).
pub const LR_FRAC_BITS: u32 = 23;

/// FATE's fixed-point base (fate-spec §5.1).
pub const BASE: u32 = 16;
const LOG2_BASE: i64 = 4;
const FLOAT_MANTISSA_BITS: i64 = 53;

/// No supported key holds a plaintext longer than this; larger scalings are rejected before any
/// big allocation happens.
const MAX_PLAINTEXT_BITS: i64 = 3072;

/// |x| = mantissa·2^exp2 exactly (mantissa < 2^53); None for NaN and infinities.
fn decompose(x: f64) -> Option<(bool, u64, i64)> {
    if !x.is_finite() {
        return None;
    }
    let bits = x.to_bits();
    let negative = bits >> 63 == 1;
    let biased = ((bits >> 52) & 0x7ff) as i64;
    let fraction = bits & ((1u64 << 52) - 1);
    Some(if biased == 0 {
        (negative, fraction, -1074)
    } else {
        (negative, fraction | (1u64 << 52), biased - 1075)
    })
}

/// `round(x·2^shift)` exactly, ties away from zero.
fn round_scaled(x: f64, shift: i64, what: &'static str) -> Result<Integer> {
    let (negative, mantissa, exp2) = decompose(x).ok_or_else(|| Error::NotEncodable {
        what,
        detail: format!("{x} is not a finite number"),
    })?;
    if mantissa == 0 {
        return Ok(Integer::new());
    }
    let e = exp2 + shift;
    let magnitude_bits = 64 - i64::from(mantissa.leading_zeros()) + e;
    if magnitude_bits > MAX_PLAINTEXT_BITS {
        return Err(Error::Overflow {
            what,
            detail: format!("{x}·2^{shift} needs {magnitude_bits} bits"),
        });
    }
    let mut m = Integer::from(mantissa);
    if e >= 0 {
        m <<= e as u32;
    } else if e < -64 {
        // mantissa < 2^53, so the scaled value is below 1/2 and rounds to zero.
        return Ok(Integer::new());
    } else {
        let s = (-e) as u32;
        m += Integer::from(1) << (s - 1);
        m >>= s;
    }
    if negative {
        m = -m;
    }
    Ok(m)
}

/// `m·2^exp2` as the nearest f64 (ties to even; results in the subnormal range may be off by
/// one unit in the last place).
pub(crate) fn int_times_pow2_to_f64(m: &Integer, exp2: i64) -> f64 {
    if m.cmp0() == std::cmp::Ordering::Equal {
        return 0.0;
    }
    let negative = m.cmp0() == std::cmp::Ordering::Less;
    let a = Integer::from(m.abs_ref());
    let bits = i64::from(a.significant_bits());
    let (top, shift) = if bits <= 64 {
        (a.to_u64_wrapping(), 0)
    } else {
        let s = (bits - 64) as u32;
        let sticky = a.find_one(0).is_some_and(|first| first < s);
        let top = Integer::from(&a >> s).to_u64_wrapping();
        (top | u64::from(sticky), i64::from(s))
    };
    // u64 → f64 rounds to nearest even; the sticky bit in the lowest position keeps ties exact.
    let f = ldexp(top as f64, shift + exp2);
    if negative { -f } else { f }
}

fn ldexp(mut f: f64, mut e: i64) -> f64 {
    let up = 2f64.powi(1000);
    let down = 2f64.powi(-1000);
    while e > 1000 && f.is_finite() {
        f *= up;
        e -= 1000;
    }
    while e < -1000 && f != 0.0 {
        f *= down;
        e += 1000;
    }
    f * 2f64.powi(e.clamp(-1100, 1100) as i32)
}

/// The fixed-precision encoding `round(x·2^frac_bits)` as a signed integer.
pub fn encode_scaled(x: f64, frac_bits: u32) -> Result<Integer> {
    round_scaled(x, i64::from(frac_bits), "fixed-precision value")
}

/// [`encode_scaled`] plus the key's range check |m| ≤ floor(n/3).
pub(crate) fn encode_scaled_checked(x: f64, frac_bits: u32, pk: &PublicKey) -> Result<Integer> {
    let m = encode_scaled(x, frac_bits)?;
    if Integer::from(m.abs_ref()) > *pk.max_int() {
        return Err(Error::Overflow {
            what: "fixed-precision value",
            detail: format!(
                "{x}·2^{frac_bits} exceeds n/3 of a {}-bit key",
                pk.key_bits()
            ),
        });
    }
    Ok(m)
}

/// The fixed-precision encoding as an i64 (for plaintext matrices fed to
/// [`PublicKey::xt_dot`]); values whose encoding does not fit an i64 are an overflow error.
pub fn encode_i64(x: f64, frac_bits: u32) -> Result<i64> {
    let m = encode_scaled(x, frac_bits)?;
    m.to_i64().ok_or_else(|| Error::Overflow {
        what: "fixed-precision i64",
        detail: format!("{x}·2^{frac_bits} does not fit an i64"),
    })
}

/// [`encode_i64`] over a slice.
pub fn encode_i64_vec(x: &[f64], frac_bits: u32) -> Result<Vec<i64>> {
    x.iter().map(|&v| encode_i64(v, frac_bits)).collect()
}

/// `m·2^−frac_bits` as the nearest f64.
pub fn decode_scaled(m: &Integer, frac_bits: u32) -> f64 {
    int_times_pow2_to_f64(m, -i64::from(frac_bits))
}

/// Maps a residue in [0, n) to a signed integer: [0, max_int] positive, [n − max_int, n)
/// negative, anything between is an overflow.
pub fn signed_from_residue(m: Integer, pk: &PublicKey, what: &'static str) -> Result<Integer> {
    let n = pk.n();
    let max_int = pk.max_int();
    if m.cmp0() == std::cmp::Ordering::Less || m >= *n {
        return Err(Error::Overflow {
            what,
            detail: "residue is not in [0, n)".into(),
        });
    }
    if m <= *max_int {
        return Ok(m);
    }
    let negative = m - n;
    if Integer::from(negative.abs_ref()) <= *max_int {
        Ok(negative)
    } else {
        Err(Error::Overflow {
            what,
            detail:
                "decrypted residue lies between n/3 and 2n/3, so the computation wrapped around"
                    .into(),
        })
    }
}

/// A FATE-style fixed-point plaintext: `value = signed(mantissa)·16^exponent`, mantissa in [0, n).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedNumber {
    /// The residue of the signed mantissa in [0, n).
    pub mantissa: Integer,
    /// Base-16 exponent.
    pub exponent: i32,
}

/// A FATE-style fixed-point ciphertext: the encrypted mantissa and its plaintext exponent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedNumber {
    /// Encryption of the mantissa residue.
    pub ciphertext: Ciphertext,
    /// Base-16 exponent.
    pub exponent: i32,
}

/// FATE's base-16 fixed-point encoder and evaluator for one public key (fate-spec §5.1).
#[derive(Debug, Clone)]
pub struct FixedPointEncoder {
    pk: PublicKey,
}

impl FixedPointEncoder {
    /// An encoder for `pk`.
    pub fn new(pk: PublicKey) -> FixedPointEncoder {
        FixedPointEncoder { pk }
    }

    /// The key.
    pub fn public_key(&self) -> &PublicKey {
        &self.pk
    }

    fn residue(&self, m: Integer, x: f64) -> Result<Integer> {
        if Integer::from(m.abs_ref()) > *self.pk.max_int() {
            return Err(Error::Overflow {
                what: "fixed-point mantissa",
                detail: format!(
                    "the mantissa of {x} exceeds n/3 of a {}-bit key",
                    self.pk.key_bits()
                ),
            });
        }
        self.pk.reduce_plaintext(&m, "fixed-point mantissa")
    }

    /// FATE's float encoding: `exponent = floor((frexp_exp(x) − 53)/4)`, so the full 53-bit
    /// mantissa is kept exactly.
    pub fn encode_f64(&self, x: f64) -> Result<EncodedNumber> {
        let (_, mantissa, exp2) = decompose(x).ok_or_else(|| Error::NotEncodable {
            what: "fixed-point value",
            detail: format!("{x} is not a finite number"),
        })?;
        // frexp's exponent: x = f·2^fe with f ∈ [0.5, 1); frexp(0) = (0, 0).
        let frexp_exp = if mantissa == 0 {
            0
        } else {
            exp2 + 64 - i64::from(mantissa.leading_zeros())
        };
        let exponent = (frexp_exp - FLOAT_MANTISSA_BITS).div_euclid(LOG2_BASE);
        self.encode_f64_with_exponent(x, exponent as i32)
    }

    /// Encodes with a given exponent: `mantissa = round(x·16^−exponent)`.
    pub fn encode_f64_with_exponent(&self, x: f64, exponent: i32) -> Result<EncodedNumber> {
        let m = round_scaled(x, -LOG2_BASE * i64::from(exponent), "fixed-point value")?;
        Ok(EncodedNumber {
            mantissa: self.residue(m, x)?,
            exponent,
        })
    }

    /// python-paillier's precision mode: `exponent = floor(log16(precision))`.
    pub fn encode_f64_with_precision(&self, x: f64, precision: f64) -> Result<EncodedNumber> {
        if !(precision.is_finite() && precision > 0.0) {
            return Err(Error::invalid_argument(
                "precision",
                format!("{precision} is not a positive number"),
            ));
        }
        let exponent = (precision.log2() / LOG2_BASE as f64).floor() as i32;
        self.encode_f64_with_exponent(x, exponent)
    }

    /// An integer with exponent 0.
    pub fn encode_i64(&self, x: i64) -> Result<EncodedNumber> {
        let mantissa = self
            .pk
            .reduce_plaintext(&Integer::from(x), "fixed-point integer")?;
        Ok(EncodedNumber {
            mantissa,
            exponent: 0,
        })
    }

    fn signed_mantissa(&self, e: &EncodedNumber) -> Result<Integer> {
        signed_from_residue(e.mantissa.clone(), &self.pk, "fixed-point decode")
    }

    /// `signed(mantissa)·16^exponent` as the nearest f64.
    pub fn decode_f64(&self, e: &EncodedNumber) -> Result<f64> {
        let m = self.signed_mantissa(e)?;
        Ok(int_times_pow2_to_f64(&m, LOG2_BASE * i64::from(e.exponent)))
    }

    /// The value truncated toward zero, which must fit an i64.
    pub fn decode_i64(&self, e: &EncodedNumber) -> Result<i64> {
        let m = self.signed_mantissa(e)?;
        let shift = LOG2_BASE * i64::from(e.exponent);
        let overflow = || Error::Overflow {
            what: "fixed-point decode_i64",
            detail: format!("value with exponent {} does not fit an i64", e.exponent),
        };
        let v = if shift >= 0 {
            if shift > 64 && m.cmp0() != std::cmp::Ordering::Equal {
                return Err(overflow());
            }
            m << shift.min(64) as u32
        } else if shift < -(MAX_PLAINTEXT_BITS + 64) {
            Integer::new()
        } else {
            m / (Integer::from(1) << (-shift) as u32)
        };
        v.to_i64().ok_or_else(overflow)
    }

    /// Encodes with [`FixedPointEncoder::encode_f64`] and encrypts.
    pub fn encrypt(&self, x: f64) -> Result<EncryptedNumber> {
        self.encrypt_encoded(&self.encode_f64(x)?)
    }

    /// Encrypts an encoded number.
    pub fn encrypt_encoded(&self, e: &EncodedNumber) -> Result<EncryptedNumber> {
        Ok(EncryptedNumber {
            ciphertext: self.pk.encrypt(&e.mantissa)?,
            exponent: e.exponent,
        })
    }

    /// Decrypts and decodes.
    pub fn decrypt(&self, sk: &SecretKey, c: &EncryptedNumber) -> Result<f64> {
        self.decode_f64(&self.decrypt_encoded(sk, c))
    }

    /// Decrypts to the encoded number.
    pub fn decrypt_encoded(&self, sk: &SecretKey, c: &EncryptedNumber) -> EncodedNumber {
        EncodedNumber {
            mantissa: sk.decrypt(&c.ciphertext),
            exponent: c.exponent,
        }
    }

    /// Lowers the exponent of `c` to `exponent` by multiplying the mantissa by 16^Δ.
    fn lower_exponent(&self, c: &EncryptedNumber, exponent: i32) -> Result<Ciphertext> {
        let delta = i64::from(c.exponent) - i64::from(exponent);
        if delta == 0 {
            return Ok(c.ciphertext.clone());
        }
        if delta < 0 || LOG2_BASE * delta > i64::from(self.pk.key_bits()) {
            return Err(Error::Overflow {
                what: "fixed-point exponent alignment",
                detail: format!("exponents {} and {exponent} are too far apart", c.exponent),
            });
        }
        let factor = Integer::from(1) << (LOG2_BASE * delta) as u32;
        self.pk.mul_integer(&c.ciphertext, &factor)
    }

    /// `[[a]] + [[b]]`, aligning to the smaller exponent (fate-spec §5.1).
    pub fn add(&self, a: &EncryptedNumber, b: &EncryptedNumber) -> Result<EncryptedNumber> {
        let exponent = a.exponent.min(b.exponent);
        let ca = self.lower_exponent(a, exponent)?;
        let cb = self.lower_exponent(b, exponent)?;
        Ok(EncryptedNumber {
            ciphertext: self.pk.add(&ca, &cb),
            exponent,
        })
    }

    /// `[[a]] + x` for a plaintext float.
    pub fn add_f64(&self, a: &EncryptedNumber, x: f64) -> Result<EncryptedNumber> {
        let e = self.encode_f64(x)?;
        let exponent = a.exponent.min(e.exponent);
        let ca = self.lower_exponent(a, exponent)?;
        let scaled = self.encode_f64_with_exponent(x, exponent)?;
        Ok(EncryptedNumber {
            ciphertext: self.pk.add_plain(&ca, &scaled.mantissa)?,
            exponent,
        })
    }

    /// `[[a]]·x` for a plaintext float: the ciphertext raised to x's (signed) mantissa, exponents
    /// added.
    pub fn mul_f64(&self, a: &EncryptedNumber, x: f64) -> Result<EncryptedNumber> {
        let e = self.encode_f64(x)?;
        let exponent = a
            .exponent
            .checked_add(e.exponent)
            .ok_or_else(|| Error::Overflow {
                what: "fixed-point multiplication",
                detail: "exponent out of range".into(),
            })?;
        let k = self.signed_mantissa(&e)?;
        Ok(EncryptedNumber {
            ciphertext: self.pk.mul_integer(&a.ciphertext, &k)?,
            exponent,
        })
    }

    /// `−[[a]]`.
    pub fn neg(&self, a: &EncryptedNumber) -> Result<EncryptedNumber> {
        Ok(EncryptedNumber {
            ciphertext: self.pk.neg(&a.ciphertext)?,
            exponent: a.exponent,
        })
    }
}
