//! The ECDH PSI primitive of FATE 2.x (fate-spec §4.2, `fate_utils` `psi/curve25519.rs`):
//! `E_a(id) = (hash_to_montgomery(id) · a)` as 32 bytes and `E_b(E_a(id)) = E_a(E_b(id))`, so two
//! parties can compare double-encrypted ids without revealing the others.
//!
//! The hash to the curve is curve25519-dalek's `nonspec_map_to_curve::<Sha512>` (the function
//! FATE calls under its 3.x name `hash_from_bytes`), mapped to the Montgomery form; scalars are
//! `Scalar::from_bytes_mod_order` of 32 random bytes and multiplication is the unclamped
//! Montgomery ladder, exactly as FATE, so outputs are byte-compatible with FATE 2.x (the tests
//! hold vectors produced by FATE's own `fate_utils` wheel). FATE 2.x feeds raw UTF-8 match ids.

use curve25519_dalek::edwards::EdwardsPoint;
use curve25519_dalek::montgomery::MontgomeryPoint;
use curve25519_dalek::scalar::Scalar;
use rand::{CryptoRng, RngCore};
use rayon::prelude::*;
use sha2::Sha512;

use crate::error::{Error, Result};

/// A 32-byte Montgomery u-coordinate: a hashed id or an encrypted one.
pub type Point = [u8; 32];

/// One party's PSI secret scalar. Not serializable; `Debug` does not show it.
#[derive(Clone)]
pub struct EcdhSecret(Scalar);

impl std::fmt::Debug for EcdhSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EcdhSecret(..)")
    }
}

/// Maps an id to the curve (Montgomery form), before any secret is applied.
pub fn hash_to_point(id: &[u8]) -> MontgomeryPoint {
    // Deprecated in dalek 4 because it is not the RFC 9380 hash-to-curve; it is kept on purpose
    // for byte compatibility with FATE.
    #[allow(deprecated)]
    EdwardsPoint::nonspec_map_to_curve::<Sha512>(id).to_montgomery()
}

/// Checks that a peer's value is exactly 32 bytes.
pub fn point_from_slice(bytes: &[u8]) -> Result<Point> {
    bytes
        .try_into()
        .map_err(|_| Error::decode("PSI point", format!("{} bytes, expected 32", bytes.len())))
}

impl EcdhSecret {
    /// A fresh secret: 32 random bytes reduced mod the group order (as FATE).
    pub fn random<R: RngCore + CryptoRng + ?Sized>(rng: &mut R) -> EcdhSecret {
        let mut bytes = [0u8; 32];
        rng.fill_bytes(&mut bytes);
        EcdhSecret::from_bytes(bytes)
    }

    /// A secret from 32 bytes, reduced mod the group order (for known-answer tests).
    pub fn from_bytes(bytes: [u8; 32]) -> EcdhSecret {
        EcdhSecret(Scalar::from_bytes_mod_order(bytes))
    }

    /// `E(id) = hash_to_point(id)·secret`.
    pub fn encrypt_id(&self, id: &[u8]) -> Point {
        (hash_to_point(id) * self.0).to_bytes()
    }

    /// [`EcdhSecret::encrypt_id`] over many ids in parallel.
    pub fn encrypt_ids<T: AsRef<[u8]> + Sync>(&self, ids: &[T]) -> Vec<Point> {
        ids.par_iter()
            .map(|id| self.encrypt_id(id.as_ref()))
            .collect()
    }

    /// Applies the secret to a peer's point: `E_self(E_peer(id))`.
    pub fn diffie_hellman(&self, point: &Point) -> Point {
        (MontgomeryPoint(*point) * self.0).to_bytes()
    }

    /// [`EcdhSecret::diffie_hellman`] over many points in parallel.
    pub fn diffie_hellman_batch(&self, points: &[Point]) -> Vec<Point> {
        points.par_iter().map(|p| self.diffie_hellman(p)).collect()
    }
}
