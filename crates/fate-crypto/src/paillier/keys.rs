//! Key generation, the public and secret key types, encryption and decryption.

use std::sync::{Arc, OnceLock};

use rand::{CryptoRng, RngCore};
use rug::Integer;
use rug::integer::{IsPrime, Order};

use super::djn::DjnTable;
use super::{Ciphertext, mul_mod, pow_mod, random_unit, reduce_non_negative};
use crate::encoding;
use crate::error::{Error, Result};

/// Key sizes (bits of n) this crate generates and accepts.
pub const SUPPORTED_KEY_BITS: [u32; 3] = [1024, 2048, 3072];

/// Length of the random DJN exponent a in `ρ = h_s^a` (2κ for κ = 128; see the module docs).
pub const DEFAULT_DJN_EXPONENT_BITS: u32 = 256;

/// Key generation gives up after this many prime pairs that fail the checks (never in practice).
const KEYGEN_ATTEMPTS: usize = 64;

/// How [`PublicKey::encrypt`] obfuscates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Obfuscation {
    /// ρ = h_s^a with a uniform `exponent_bits`-bit a, through a fixed-base table (fast; rests on
    /// the DJN short-exponent assumption). `exponent_bits` is a multiple of 8 in 128..=|n|.
    Djn { exponent_bits: u32 },
    /// ρ = r^n with a uniform r ∈ Z*_n: one full exponentiation per ciphertext (FATE's way).
    Classic,
}

impl Default for Obfuscation {
    fn default() -> Self {
        Obfuscation::Djn {
            exponent_bits: DEFAULT_DJN_EXPONENT_BITS,
        }
    }
}

pub(crate) struct PkInner {
    pub(crate) bits: u32,
    pub(crate) n: Integer,
    pub(crate) n2: Integer,
    /// `floor(n/3)`: encoders accept |m| ≤ max_int, decoders flag the band (max_int, n − max_int)
    /// as overflow (python-paillier / FATE 1.x `max_int`).
    pub(crate) max_int: Integer,
    /// `floor(n/2)`: the boundary between positive and negative residues.
    pub(crate) half_n: Integer,
    pub(crate) hs: Integer,
    pub(crate) obfuscation: Obfuscation,
    pub(crate) table: OnceLock<DjnTable>,
}

/// A Paillier public key: n, the DJN base h_s and the obfuscation setting. Cheap to clone (the
/// fixed-base table is shared). Wire-encodable with [`PublicKey::to_bytes`] and serde.
#[derive(Clone)]
pub struct PublicKey {
    pub(crate) inner: Arc<PkInner>,
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.inner.n == other.inner.n && self.inner.hs == other.inner.hs
    }
}

impl Eq for PublicKey {}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hex = self.inner.n.to_string_radix(16);
        f.debug_struct("PublicKey")
            .field("bits", &self.inner.bits)
            .field("n", &format_args!("{}…", &hex[..hex.len().min(16)]))
            .field("obfuscation", &self.inner.obfuscation)
            .finish()
    }
}

fn check_key_bits(bits: u32) -> Result<()> {
    if SUPPORTED_KEY_BITS.contains(&bits) {
        Ok(())
    } else {
        Err(Error::UnsupportedKeySize { bits })
    }
}

impl PublicKey {
    /// Builds a public key from n and the DJN base h_s, checking that n is odd and has a
    /// supported size and that h_s is a unit mod n² other than 1. Used for keys from peers.
    pub fn from_parts(n: Integer, hs: Integer) -> Result<PublicKey> {
        let bits = n.significant_bits();
        check_key_bits(bits)?;
        if n.is_even() {
            return Err(Error::invalid_key("n is even"));
        }
        let n2 = Integer::from(n.square_ref());
        if hs <= 1 || hs >= n2 {
            return Err(Error::invalid_key(
                "DJN base h_s must satisfy 1 < h_s < n^2",
            ));
        }
        if Integer::from(hs.gcd_ref(&n)) != 1 {
            return Err(Error::invalid_key("DJN base h_s shares a factor with n"));
        }
        Ok(Self::from_checked(bits, n, n2, hs, Obfuscation::default()))
    }

    fn from_checked(
        bits: u32,
        n: Integer,
        n2: Integer,
        hs: Integer,
        obfuscation: Obfuscation,
    ) -> PublicKey {
        let max_int = Integer::from(&n / 3u32);
        let half_n = Integer::from(&n >> 1u32);
        PublicKey {
            inner: Arc::new(PkInner {
                bits,
                n,
                n2,
                max_int,
                half_n,
                hs,
                obfuscation,
                table: OnceLock::new(),
            }),
        }
    }

    /// The same key with another obfuscation setting (a new, lazily built table).
    pub fn with_obfuscation(&self, obfuscation: Obfuscation) -> Result<PublicKey> {
        if let Obfuscation::Djn { exponent_bits } = obfuscation
            && (exponent_bits % 8 != 0 || !(128..=self.inner.bits).contains(&exponent_bits))
        {
            return Err(Error::invalid_argument(
                "exponent_bits",
                format!(
                    "DJN exponent length {exponent_bits} must be a multiple of 8 in 128..={}",
                    self.inner.bits
                ),
            ));
        }
        let i = &self.inner;
        Ok(Self::from_checked(
            i.bits,
            i.n.clone(),
            i.n2.clone(),
            i.hs.clone(),
            obfuscation,
        ))
    }

    /// The same key with a DJN base derived locally from a fresh random y, for an encryptor that
    /// does not want to rely on the key owner's h_s (costs one full exponentiation mod n²).
    pub fn with_fresh_djn_base<R: RngCore + CryptoRng + ?Sized>(&self, rng: &mut R) -> PublicKey {
        let i = &self.inner;
        let y = random_unit(&i.n, rng);
        let mut h = Integer::from(y.square_ref());
        h %= &i.n;
        let h = Integer::from(&i.n - &h);
        let hs = pow_mod(&h, &i.n, &i.n2);
        Self::from_checked(i.bits, i.n.clone(), i.n2.clone(), hs, i.obfuscation)
    }

    /// Bits of n (1024, 2048 or 3072).
    pub fn key_bits(&self) -> u32 {
        self.inner.bits
    }

    /// The modulus n.
    pub fn n(&self) -> &Integer {
        &self.inner.n
    }

    /// n².
    pub fn n_squared(&self) -> &Integer {
        &self.inner.n2
    }

    /// The DJN base h_s = h^n mod n².
    pub fn djn_base(&self) -> &Integer {
        &self.inner.hs
    }

    /// The largest magnitude the fixed-point encoders accept: floor(n/3).
    pub fn max_int(&self) -> &Integer {
        &self.inner.max_int
    }

    /// The obfuscation setting used by [`PublicKey::encrypt`].
    pub fn obfuscation(&self) -> Obfuscation {
        self.inner.obfuscation
    }

    /// Bytes of one ciphertext on the wire (2·bits/8).
    pub fn ciphertext_bytes(&self) -> usize {
        (self.inner.bits as usize) / 4
    }

    /// Maps a signed plaintext with |m| < n into [0, n).
    pub(crate) fn reduce_plaintext(&self, m: &Integer, what: &'static str) -> Result<Integer> {
        let n = &self.inner.n;
        if m.cmp0() != std::cmp::Ordering::Less {
            if m < n {
                return Ok(m.clone());
            }
        } else {
            let residue = Integer::from(m + n);
            if residue.cmp0() == std::cmp::Ordering::Greater {
                return Ok(residue);
            }
        }
        Err(Error::PlaintextOutOfRange {
            what,
            key_bits: self.inner.bits,
        })
    }

    /// `(1 + m·n)·base mod n²` for m ∈ [0, n) computed as `base + n·(m·base mod n)`.
    pub(crate) fn mul_plain_part(&self, m: &Integer, base: Integer) -> Integer {
        if m.cmp0() == std::cmp::Ordering::Equal {
            return base;
        }
        let i = &self.inner;
        let mut t = Integer::from(&base % &i.n);
        t *= m;
        t %= &i.n;
        t *= &i.n;
        t += &base;
        if t >= i.n2 {
            t -= &i.n2;
        }
        t
    }

    /// One obfuscator according to the key's [`Obfuscation`].
    pub(crate) fn obfuscator<R: RngCore + CryptoRng + ?Sized>(&self, rng: &mut R) -> Integer {
        match self.inner.obfuscation {
            Obfuscation::Djn { .. } => self.djn_table().obfuscator(rng, &self.inner.n2),
            Obfuscation::Classic => {
                let r = random_unit(&self.inner.n, rng);
                pow_mod(&r, &self.inner.n, &self.inner.n2)
            }
        }
    }

    pub(crate) fn djn_table(&self) -> &DjnTable {
        let bits = match self.inner.obfuscation {
            Obfuscation::Djn { exponent_bits } => exponent_bits,
            Obfuscation::Classic => DEFAULT_DJN_EXPONENT_BITS,
        };
        if let Some(table) = self.inner.table.get() {
            return table;
        }
        // Built outside `OnceLock::get_or_init`: the build is parallel (rayon), and a worker
        // waiting inside it may pick up another encryption for this key, which would then block
        // on the same lock forever. Two threads may build the table at once; one result is kept.
        let table = DjnTable::build(&self.inner.hs, &self.inner.n2, bits);
        let _ = self.inner.table.set(table);
        self.inner.table.get().expect("the table was just set")
    }

    /// Encrypts m (|m| < n; negatives as n − |m|) with the thread's CSPRNG.
    pub fn encrypt(&self, m: &Integer) -> Result<Ciphertext> {
        self.encrypt_with_rng(m, &mut rand::thread_rng())
    }

    /// Encrypts m (|m| < n) with obfuscation drawn from `rng`.
    pub fn encrypt_with_rng<R: RngCore + CryptoRng + ?Sized>(
        &self,
        m: &Integer,
        rng: &mut R,
    ) -> Result<Ciphertext> {
        let m = self.reduce_plaintext(m, "m")?;
        let obf = self.obfuscator(rng);
        Ok(Ciphertext(self.mul_plain_part(&m, obf)))
    }

    /// Textbook encryption `(1 + m·n)·r^n mod n²` with a caller-chosen nonce r ∈ Z*_n
    /// (deterministic; for known-answer tests and interoperability checks).
    pub fn encrypt_with_nonce(&self, m: &Integer, r: &Integer) -> Result<Ciphertext> {
        let m = self.reduce_plaintext(m, "m")?;
        let n = &self.inner.n;
        if r.cmp0() != std::cmp::Ordering::Greater || r >= n || Integer::from(r.gcd_ref(n)) != 1 {
            return Err(Error::invalid_argument(
                "r",
                "nonce must be a unit in [1, n)",
            ));
        }
        let obf = pow_mod(r, n, &self.inner.n2);
        Ok(Ciphertext(self.mul_plain_part(&m, obf)))
    }

    /// Encrypts an i64.
    pub fn encrypt_i64(&self, m: i64) -> Result<Ciphertext> {
        self.encrypt(&Integer::from(m))
    }

    /// Encrypts `round(x·2^frac_bits)` (the fixed-precision encoding of
    /// [`crate::encoding::encode_scaled`]; FATE's LR uses `frac_bits` = 23).
    pub fn encrypt_f64(&self, x: f64, frac_bits: u32) -> Result<Ciphertext> {
        let m = encoding::encode_scaled_checked(x, frac_bits, self)?;
        self.encrypt(&m)
    }

    /// Multiplies a ciphertext by a fresh obfuscator: same plaintext, unlinkable ciphertext.
    pub fn rerandomize(&self, c: &Ciphertext) -> Ciphertext {
        let mut obf = self.obfuscator(&mut rand::thread_rng());
        mul_mod(&mut obf, &c.0, &self.inner.n2);
        Ciphertext(obf)
    }

    /// The unobfuscated encryption of 0 (the integer 1): the identity of ciphertext addition.
    /// It hides nothing; rerandomize before sending it anywhere.
    pub fn trivial_zero(&self) -> Ciphertext {
        Ciphertext(Integer::from(1))
    }
}

/// A Paillier secret key (with its public key). It has no serde and no wire encoding by design:
/// the secret stays in the process that generated it.
#[derive(Clone)]
pub struct SecretKey {
    pk: PublicKey,
    crt: Crt,
}

/// The factorization and the constants CRT decryption and encryption need (p < q).
#[derive(Clone)]
struct Crt {
    p: Integer,
    q: Integer,
    p2: Integer,
    q2: Integer,
    pm1: Integer,
    qm1: Integer,
    hp: Integer,
    hq: Integer,
    /// p^-1 mod q.
    p_inv_q: Integer,
    /// (p²)^-1 mod q².
    p2_inv_q2: Integer,
}

impl Crt {
    /// `x^e mod n²` via CRT (x a unit mod n, e ≥ 0).
    fn pow(&self, x: &Integer, e: &Integer) -> Integer {
        let half = |prime: &Integer, sq: &Integer, pm1: &Integer| {
            // Exponents reduce modulo φ(prime²) = prime·(prime − 1).
            let order = Integer::from(prime * pm1);
            let e = Integer::from(e % &order);
            pow_mod(&Integer::from(x % sq), &e, sq)
        };
        let xp = half(&self.p, &self.p2, &self.pm1);
        let xq = half(&self.q, &self.q2, &self.qm1);
        self.combine_squares(xp, &xq)
    }

    /// The x mod n² with x ≡ xp (mod p²), x ≡ xq (mod q²).
    fn combine_squares(&self, xp: Integer, xq: &Integer) -> Integer {
        let mut t = Integer::from(xq - &xp);
        t *= &self.p2_inv_q2;
        reduce_non_negative(&mut t, &self.q2);
        t *= &self.p2;
        t += xp;
        t
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretKey")
            .field("public_key", &self.pk)
            .finish_non_exhaustive()
    }
}

/// Generates a key pair with n of exactly `bits` bits (1024, 2048 or 3072): primes of `bits/2`
/// bits with the top two bits set, p ≠ q, gcd(n, φ(n)) = 1 (fate-spec §5.1), plus the DJN base.
pub fn keygen<R: RngCore + CryptoRng + ?Sized>(
    bits: u32,
    rng: &mut R,
) -> Result<(PublicKey, SecretKey)> {
    check_key_bits(bits)?;
    for _ in 0..KEYGEN_ATTEMPTS {
        let p = random_prime(bits / 2, rng);
        let q = random_prime(bits / 2, rng);
        if let Ok(sk) = SecretKey::from_checked_primes(p, q, rng) {
            return Ok((sk.pk.clone(), sk));
        }
    }
    Err(Error::invalid_key(format!(
        "no valid {bits}-bit key after {KEYGEN_ATTEMPTS} attempts"
    )))
}

/// A random prime of exactly `bits` bits whose two top bits are set, so that the product of two
/// such primes has exactly `2·bits` bits.
fn random_prime<R: RngCore + CryptoRng + ?Sized>(bits: u32, rng: &mut R) -> Integer {
    let n_bytes = bits.div_ceil(8) as usize;
    let mut bytes = vec![0u8; n_bytes];
    loop {
        rng.fill_bytes(&mut bytes);
        let mut x = Integer::from_digits(&bytes, Order::Msf);
        x.keep_bits_mut(bits);
        x.set_bit(bits - 1, true);
        x.set_bit(bits - 2, true);
        x.set_bit(0, true);
        x.next_prime_mut();
        if x.significant_bits() == bits {
            return x;
        }
    }
}

impl SecretKey {
    /// Builds a key from two primes (checked with a probabilistic primality test) and draws the
    /// DJN base from `rng`. Requirements: p ≠ q, equal bit lengths, n = p·q of a supported size,
    /// gcd(n, φ(n)) = 1.
    pub fn from_primes<R: RngCore + CryptoRng + ?Sized>(
        p: Integer,
        q: Integer,
        rng: &mut R,
    ) -> Result<SecretKey> {
        for (name, x) in [("p", &p), ("q", &q)] {
            if x.cmp0() != std::cmp::Ordering::Greater || x.is_probably_prime(25) == IsPrime::No {
                return Err(Error::invalid_key(format!("{name} is not prime")));
            }
        }
        Self::from_checked_primes(p, q, rng)
    }

    fn from_checked_primes<R: RngCore + CryptoRng + ?Sized>(
        p: Integer,
        q: Integer,
        rng: &mut R,
    ) -> Result<SecretKey> {
        if p == q {
            return Err(Error::invalid_key("p == q"));
        }
        let (p, q) = if p < q { (p, q) } else { (q, p) };
        if p.significant_bits() != q.significant_bits() {
            return Err(Error::invalid_key("p and q have different bit lengths"));
        }
        let n = Integer::from(&p * &q);
        let bits = n.significant_bits();
        check_key_bits(bits)?;
        if bits != 2 * p.significant_bits() {
            return Err(Error::invalid_key(format!(
                "n has {bits} bits, not twice the prime size"
            )));
        }
        let pm1 = Integer::from(&p - 1u32);
        let qm1 = Integer::from(&q - 1u32);
        let phi = Integer::from(&pm1 * &qm1);
        if Integer::from(n.gcd_ref(&phi)) != 1 {
            return Err(Error::invalid_key("gcd(n, phi(n)) != 1"));
        }
        let n2 = Integer::from(n.square_ref());
        let p2 = Integer::from(p.square_ref());
        let q2 = Integer::from(q.square_ref());
        let g = Integer::from(&n + 1u32);
        let hp = h_prime(&g, &p, &p2, &pm1)?;
        let hq = h_prime(&g, &q, &q2, &qm1)?;
        let p_inv_q = Integer::from(
            p.invert_ref(&q)
                .ok_or_else(|| Error::invalid_key("p^-1 mod q"))?,
        );
        let p2_inv_q2 = Integer::from(
            p2.invert_ref(&q2)
                .ok_or_else(|| Error::invalid_key("p^-2 mod q^2"))?,
        );

        let crt = Crt {
            p,
            q,
            p2,
            q2,
            pm1,
            qm1,
            hp,
            hq,
            p_inv_q,
            p2_inv_q2,
        };
        // DJN base: h = -y^2 mod n for a random unit y, h_s = h^n mod n^2 computed via CRT.
        let y = random_unit(&n, rng);
        let mut h = Integer::from(y.square_ref());
        h %= &n;
        let h = Integer::from(&n - &h);
        let hs = crt.pow(&h, &n);
        let pk = PublicKey::from_checked(bits, n, n2, hs, Obfuscation::default());
        Ok(SecretKey { pk, crt })
    }

    /// The primes (p < q), for in-crate baselines only.
    pub(crate) fn primes(&self) -> (&Integer, &Integer) {
        (&self.crt.p, &self.crt.q)
    }

    /// The public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.pk
    }

    /// Encrypts m (|m| < n) with a full-entropy obfuscator computed via CRT (about three times
    /// faster than textbook encryption; no short-exponent assumption).
    pub fn encrypt(&self, m: &Integer) -> Result<Ciphertext> {
        self.encrypt_with_rng(m, &mut rand::thread_rng())
    }

    /// [`SecretKey::encrypt`] with randomness from `rng`.
    pub fn encrypt_with_rng<R: RngCore + CryptoRng + ?Sized>(
        &self,
        m: &Integer,
        rng: &mut R,
    ) -> Result<Ciphertext> {
        let m = self.pk.reduce_plaintext(m, "m")?;
        // r^n mod p² depends only on r mod p and ranges over the order-(p−1) subgroup, which is
        // also the image of u ↦ u^p; so u^p with uniform u ∈ Z*_p has the distribution of r^n.
        let up = random_unit(&self.crt.p, rng);
        let uq = random_unit(&self.crt.q, rng);
        let xp = pow_mod(&up, &self.crt.p, &self.crt.p2);
        let xq = pow_mod(&uq, &self.crt.q, &self.crt.q2);
        let obf = self.crt.combine_squares(xp, &xq);
        Ok(Ciphertext(self.pk.mul_plain_part(&m, obf)))
    }

    /// Decrypts to m ∈ [0, n) with CRT (fate-spec §5.1).
    pub fn decrypt(&self, c: &Ciphertext) -> Integer {
        let mp = half_decrypt(&c.0, &self.crt.p, &self.crt.p2, &self.crt.pm1, &self.crt.hp);
        let mq = half_decrypt(&c.0, &self.crt.q, &self.crt.q2, &self.crt.qm1, &self.crt.hq);
        let mut t = Integer::from(&mq - &mp);
        t *= &self.crt.p_inv_q;
        reduce_non_negative(&mut t, &self.crt.q);
        t *= &self.crt.p;
        t += mp;
        t
    }

    /// Decrypts with the textbook formula `L(c^λ mod n²)·μ mod n` (slow; a reference for CRT).
    pub fn decrypt_without_crt(&self, c: &Ciphertext) -> Integer {
        let n = self.pk.n();
        let n2 = self.pk.n_squared();
        let lambda = Integer::from(self.crt.pm1.lcm_ref(&self.crt.qm1));
        let l = |x: Integer| (x - 1u32) / n;
        let g = Integer::from(n + 1u32);
        let mu = l(pow_mod(&g, &lambda, n2)).invert(n).unwrap_or_default();
        let mut m = l(pow_mod(&c.0, &lambda, n2));
        m *= &mu;
        reduce_non_negative(&mut m, n);
        m
    }

    /// Decrypts to the signed representative in (−n/2, n/2].
    pub fn decrypt_signed(&self, c: &Ciphertext) -> Integer {
        let m = self.decrypt(c);
        if m > self.pk.inner.half_n {
            m - self.pk.n()
        } else {
            m
        }
    }

    /// Decrypts a signed value that must fit an i64.
    pub fn decrypt_i64(&self, c: &Ciphertext) -> Result<i64> {
        let m = self.decrypt_signed(c);
        m.to_i64().ok_or_else(|| Error::Overflow {
            what: "decrypt_i64",
            detail: format!(
                "decrypted value has {} bits, more than an i64 holds",
                m.signed_bits()
            ),
        })
    }

    /// Decrypts a value encoded with `frac_bits` fractional bits ([`crate::encoding`]), flagging
    /// results in the wrap-around band (n/3, 2n/3) as overflow.
    pub fn decrypt_f64(&self, c: &Ciphertext, frac_bits: u32) -> Result<f64> {
        let m = self.decrypt(c);
        let signed = encoding::signed_from_residue(m, &self.pk, "decrypt_f64")?;
        Ok(encoding::decode_scaled(&signed, frac_bits))
    }
}

/// `h_p = L_p(g^(p−1) mod p²)^−1 mod p`.
fn h_prime(g: &Integer, p: &Integer, p2: &Integer, pm1: &Integer) -> Result<Integer> {
    let x = pow_mod(&Integer::from(g % p2), pm1, p2);
    let l = (x - 1u32) / p;
    l.invert(p)
        .map_err(|_| Error::invalid_key("L_p(g^(p-1)) is not invertible mod p"))
}

/// `L_p(c^(p−1) mod p²)·h_p mod p`.
fn half_decrypt(c: &Integer, p: &Integer, p2: &Integer, pm1: &Integer, hp: &Integer) -> Integer {
    let x = pow_mod(&Integer::from(c % p2), pm1, p2);
    let mut l = (x - 1u32) / p;
    l *= hp;
    reduce_non_negative(&mut l, p);
    l
}
