//! Wire encoding of public keys and ciphertexts. Decoding treats the bytes as hostile: exact
//! lengths, range checks, no allocation beyond the input's size.
//!
//! Public key (version 1): `"FPK" 0x01 | key_bits: u32 BE | n: bits/8 bytes BE | h_s: bits/4
//! bytes BE`. Ciphertexts: each exactly bits/4 bytes big-endian, concatenated.

use rayon::prelude::*;
use rug::Integer;
use rug::integer::Order;
use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::keys::SUPPORTED_KEY_BITS;
use super::{Ciphertext, PublicKey};
use crate::error::{Error, Result};

const PK_MAGIC: [u8; 4] = *b"FPK\x01";
const PK_HEADER: usize = 8;

/// The longest public-key encoding (3072-bit key).
pub const MAX_PUBLIC_KEY_BYTES: usize = PK_HEADER + 3072 / 8 + 3072 / 4;

impl PublicKey {
    /// The wire encoding (see the module docs); does not include the obfuscation setting, which
    /// is the encryptor's local choice.
    pub fn to_bytes(&self) -> Vec<u8> {
        let bits = self.inner.bits as usize;
        let mut out = vec![0u8; PK_HEADER + bits / 8 + bits / 4];
        out[..4].copy_from_slice(&PK_MAGIC);
        out[4..8].copy_from_slice(&self.inner.bits.to_be_bytes());
        let (n_part, hs_part) = out[PK_HEADER..].split_at_mut(bits / 8);
        self.inner.n.write_digits(n_part, Order::Msf);
        self.inner.hs.write_digits(hs_part, Order::Msf);
        out
    }

    /// Decodes and validates a public key from [`PublicKey::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<PublicKey> {
        const WHAT: &str = "Paillier public key";
        if bytes.len() < PK_HEADER {
            return Err(Error::decode(
                WHAT,
                format!("{} bytes is shorter than the header", bytes.len()),
            ));
        }
        if bytes[..4] != PK_MAGIC {
            return Err(Error::decode(WHAT, "bad magic or unsupported version"));
        }
        let bits = u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
        if !SUPPORTED_KEY_BITS.contains(&bits) {
            return Err(Error::decode(
                WHAT,
                format!("unsupported key size {bits} bits"),
            ));
        }
        let n_len = bits as usize / 8;
        let expected = PK_HEADER + n_len + bits as usize / 4;
        if bytes.len() != expected {
            return Err(Error::decode(
                WHAT,
                format!(
                    "{} bytes, expected {expected} for a {bits}-bit key",
                    bytes.len()
                ),
            ));
        }
        let n = Integer::from_digits(&bytes[PK_HEADER..PK_HEADER + n_len], Order::Msf);
        let hs = Integer::from_digits(&bytes[PK_HEADER + n_len..], Order::Msf);
        if n.significant_bits() != bits {
            return Err(Error::decode(
                WHAT,
                format!("n does not have exactly {bits} bits"),
            ));
        }
        PublicKey::from_parts(n, hs).map_err(|e| Error::decode(WHAT, e.to_string()))
    }

    /// One ciphertext as exactly [`PublicKey::ciphertext_bytes`] big-endian bytes.
    pub fn ciphertext_to_bytes(&self, c: &Ciphertext) -> Vec<u8> {
        let mut out = vec![0u8; self.ciphertext_bytes()];
        self.write_ciphertext(c, &mut out);
        out
    }

    fn write_ciphertext(&self, c: &Ciphertext, out: &mut [u8]) {
        if c.0.significant_bits() as usize <= out.len() * 8 {
            c.0.write_digits(out, Order::Msf);
        } else {
            // Only a ciphertext of a larger key can get here; encode it reduced rather than
            // panic (the receiver then decrypts garbage, as it would with any foreign value).
            Integer::from(&c.0 % &self.inner.n2).write_digits(out, Order::Msf);
        }
    }

    /// Concatenated fixed-width encodings of `cs`.
    pub fn ciphertexts_to_bytes(&self, cs: &[Ciphertext]) -> Vec<u8> {
        let w = self.ciphertext_bytes();
        let mut out = vec![0u8; w * cs.len()];
        out.par_chunks_mut(w)
            .zip(cs.par_iter())
            .for_each(|(o, c)| self.write_ciphertext(c, o));
        out
    }

    /// Decodes one ciphertext: exactly [`PublicKey::ciphertext_bytes`] bytes, 0 < c < n².
    pub fn ciphertext_from_bytes(&self, bytes: &[u8]) -> Result<Ciphertext> {
        let w = self.ciphertext_bytes();
        if bytes.len() != w {
            return Err(Error::decode(
                "ciphertext",
                format!(
                    "{} bytes, expected {w} for a {}-bit key",
                    bytes.len(),
                    self.inner.bits
                ),
            ));
        }
        self.parse_ciphertext(bytes, 0)
    }

    fn parse_ciphertext(&self, bytes: &[u8], index: usize) -> Result<Ciphertext> {
        let c = Integer::from_digits(bytes, Order::Msf);
        if c.cmp0() == std::cmp::Ordering::Equal {
            return Err(Error::decode(
                "ciphertext",
                format!("element {index} is zero"),
            ));
        }
        if c >= self.inner.n2 {
            return Err(Error::decode(
                "ciphertext",
                format!("element {index} is not below n^2"),
            ));
        }
        Ok(Ciphertext(c))
    }

    /// Decodes concatenated ciphertexts; the length must be a multiple of the ciphertext width.
    pub fn ciphertexts_from_bytes(&self, bytes: &[u8]) -> Result<Vec<Ciphertext>> {
        let w = self.ciphertext_bytes();
        if !bytes.len().is_multiple_of(w) {
            return Err(Error::decode(
                "ciphertext vector",
                format!(
                    "{} bytes is not a multiple of the {w}-byte ciphertext width",
                    bytes.len()
                ),
            ));
        }
        bytes
            .par_chunks(w)
            .enumerate()
            .map(|(i, b)| self.parse_ciphertext(b, i))
            .collect()
    }

    /// Wraps an integer as a ciphertext after checking 0 < c < n².
    pub fn ciphertext_from_integer(&self, c: Integer) -> Result<Ciphertext> {
        if c.cmp0() != std::cmp::Ordering::Greater || c >= self.inner.n2 {
            return Err(Error::decode(
                "ciphertext",
                "value must satisfy 0 < c < n^2",
            ));
        }
        Ok(Ciphertext(c))
    }
}

impl Serialize for PublicKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.to_bytes())
    }
}

impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct PkVisitor;
        impl<'de> Visitor<'de> for PkVisitor {
            type Value = PublicKey;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("the bytes of a Paillier public key")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> std::result::Result<PublicKey, E> {
                PublicKey::from_bytes(v).map_err(E::custom)
            }
            fn visit_seq<A: SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<PublicKey, A::Error> {
                // Formats without a bytes type (JSON) give a sequence; bound it before collecting.
                let mut buf =
                    Vec::with_capacity(seq.size_hint().unwrap_or(0).min(MAX_PUBLIC_KEY_BYTES));
                while let Some(b) = seq.next_element::<u8>()? {
                    if buf.len() == MAX_PUBLIC_KEY_BYTES {
                        return Err(de::Error::custom("Paillier public key: too many bytes"));
                    }
                    buf.push(b);
                }
                PublicKey::from_bytes(&buf).map_err(de::Error::custom)
            }
        }
        deserializer.deserialize_bytes(PkVisitor)
    }
}
