//! What travels encrypted in CoordinatedLR, and the fixed-point bookkeeping around it.
//!
//! A [`CipherVec`] is a vector of Paillier ciphertexts of fixed-point values: ciphertext i
//! encrypts `round(v_i · divisor · 2^frac_bits)`, so the plain value is
//! `decrypt(c_i) / 2^frac_bits / divisor`. FATE multiplies ciphertexts by the float `1/h`
//! (batch size) with its base-16 fixed point; fate-rs keeps the sum exact and carries `h` as the
//! divisor instead, which the arbiter applies after decryption.

use fate_crypto::paillier::{Ciphertext, PublicKey};
use fate_runtime::ComponentError;
use fate_types::Party;
use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Fractional bits of the floats a party encrypts (`half_d`, `Xw_h`, `d`, `Xw2_h`, `h_loss`).
/// Encryption costs the same whatever the precision, so it is generous (FATE encodes floats
/// with their 53-bit mantissa).
pub const ENC_FRAC_BITS: u32 = 48;

/// Largest `frac_bits` accepted from a peer.
pub const MAX_FRAC_BITS: u32 = 512;

/// Ciphertexts of fixed-point values (see the module docs). Serialized as
/// `(frac_bits, divisor, bytes)` with `bytes` the concatenated fixed-width ciphertexts of
/// [`PublicKey::ciphertexts_to_bytes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CipherVec {
    pub frac_bits: u32,
    pub divisor: u64,
    pub bytes: Vec<u8>,
}

impl CipherVec {
    pub fn new(pk: &PublicKey, cts: &[Ciphertext], frac_bits: u32, divisor: u64) -> Self {
        CipherVec {
            frac_bits,
            divisor,
            bytes: pk.ciphertexts_to_bytes(cts),
        }
    }

    /// Number of ciphertexts for key `pk` (the byte length must be a multiple of the width).
    pub fn len(&self, pk: &PublicKey) -> usize {
        self.bytes.len() / pk.ciphertext_bytes()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Decodes and checks a peer's vector: exactly `expected` valid ciphertexts of `pk`, a
    /// bounded `frac_bits` and a non-zero divisor. `what` and `from` name the message in errors.
    pub fn decode(
        &self,
        pk: &PublicKey,
        expected: usize,
        what: &str,
        from: &Party,
    ) -> Result<Vec<Ciphertext>, ComponentError> {
        let bad = |reason: String| ComponentError::Data(format!("`{what}` from {from}: {reason}"));
        if self.frac_bits > MAX_FRAC_BITS {
            return Err(bad(format!(
                "{} fractional bits (at most {MAX_FRAC_BITS})",
                self.frac_bits
            )));
        }
        if self.divisor == 0 {
            return Err(bad("divisor 0".into()));
        }
        let width = pk.ciphertext_bytes();
        if self.bytes.len() != expected.saturating_mul(width) {
            return Err(bad(format!(
                "{} bytes, expected {expected} ciphertexts of {width} bytes",
                self.bytes.len()
            )));
        }
        pk.ciphertexts_from_bytes(&self.bytes)
            .map_err(|e| bad(e.to_string()))
    }
}

impl Serialize for CipherVec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let mut t = s.serialize_tuple(3)?;
        t.serialize_element(&self.frac_bits)?;
        t.serialize_element(&self.divisor)?;
        t.serialize_element(&Bytes(&self.bytes))?;
        t.end()
    }
}

impl<'de> Deserialize<'de> for CipherVec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (frac_bits, divisor, ByteBuf(bytes)) = <(u32, u64, ByteBuf)>::deserialize(d)?;
        Ok(CipherVec {
            frac_bits,
            divisor,
            bytes,
        })
    }
}

struct Bytes<'a>(&'a [u8]);

impl Serialize for Bytes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

/// Owned bytes deserialized from a bytes value (postcard) or a sequence (JSON).
pub(crate) struct ByteBuf(pub Vec<u8>);

impl<'de> Deserialize<'de> for ByteBuf {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ByteBuf;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<ByteBuf, E> {
                Ok(ByteBuf(v.to_vec()))
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<ByteBuf, E> {
                Ok(ByteBuf(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ByteBuf, A::Error> {
                // A self-describing format's hint is bounded by its input; cap it anyway.
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
                while let Some(b) = seq.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(ByteBuf(out))
            }
        }
        d.deserialize_bytes(V)
    }
}

/// Builds `pk`'s DJN fixed-base table now, on the calling thread (which must not be a worker of
/// a rayon pool that also runs encryptions).
///
/// fate-crypto builds the table lazily inside a `OnceLock` with a parallel iterator. If the
/// first encryption happens inside a parallel loop, the rayon worker that builds the table can
/// steal another encryption job of the same key while it waits, which then blocks on the
/// `OnceLock` its own thread holds: a deadlock (seen with two tests sharing a key, and possible
/// between parties sharing the computing pool). One encryption from the party's own thread
/// initializes the table safely: that thread is not a worker and never steals jobs.
pub fn prepare_encryptor(pk: &PublicKey) -> Result<(), ComponentError> {
    pk.encrypt_f64(0.0, 0).map(drop).map_err(crypto)
}

/// `c · 2^k` (exact; split into factors an i64 holds).
pub fn mul_pow2(pk: &PublicKey, c: &Ciphertext, mut k: u32) -> Result<Ciphertext, ComponentError> {
    let mut out = c.clone();
    while k > 0 {
        let step = k.min(62);
        out = pk.mul_i64(&out, 1i64 << step).map_err(crypto)?;
        k -= step;
    }
    Ok(out)
}

/// A crypto failure as a component error.
pub fn crypto(e: fate_crypto::Error) -> ComponentError {
    ComponentError::Failed(format!("paillier: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use fate_federation::wire::{decode_value, encode_value};
    use fate_types::Role;

    #[test]
    fn cipher_vec_round_trips_and_rejects_bad_peer_vectors() {
        let (pk, sk) = fate_crypto::testing::test_keypair_1024();
        prepare_encryptor(&pk).unwrap();
        let from = Party::new(Role::Host, "10000");
        let cts = pk.encrypt_f64_vec(&[1.5, -2.25], ENC_FRAC_BITS).unwrap();
        let v = CipherVec::new(&pk, &cts, ENC_FRAC_BITS, 4);
        let back: CipherVec = decode_value(&encode_value(&v).unwrap()).unwrap();
        assert_eq!(back, v);
        let got = back.decode(&pk, 2, "x", &from).unwrap();
        assert_eq!(
            sk.decrypt_f64_vec(&got, ENC_FRAC_BITS).unwrap(),
            vec![1.5, -2.25]
        );

        let e = v.decode(&pk, 3, "x", &from).unwrap_err().to_string();
        assert!(
            e.contains("`x` from host:10000") && e.contains("expected 3 ciphertexts"),
            "{e}"
        );
        let e = CipherVec {
            divisor: 0,
            ..v.clone()
        }
        .decode(&pk, 2, "x", &from)
        .unwrap_err()
        .to_string();
        assert!(e.contains("divisor 0"), "{e}");
        let e = CipherVec {
            frac_bits: 4096,
            ..v.clone()
        }
        .decode(&pk, 2, "x", &from)
        .unwrap_err()
        .to_string();
        assert!(e.contains("fractional bits"), "{e}");
        let mut zero = v.clone();
        zero.bytes[..pk.ciphertext_bytes()].fill(0);
        assert!(zero.decode(&pk, 2, "x", &from).is_err());
    }

    #[test]
    fn mul_pow2_scales_exactly_beyond_an_i64() {
        let (pk, sk) = fate_crypto::testing::test_keypair_1024();
        prepare_encryptor(&pk).unwrap();
        let c = pk.encrypt_f64_vec(&[3.0], 0).unwrap();
        let scaled = mul_pow2(&pk, &c[0], 100).unwrap();
        assert_eq!(sk.decrypt_f64(&scaled, 100).unwrap(), 3.0);
    }
}
