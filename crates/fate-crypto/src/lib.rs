//! fate-crypto: the cryptography of fate-rs, as pure computation.
//!
//! * [`paillier`]: Paillier keys, encryption, decryption and homomorphic operations (single and
//!   over slices, parallel with rayon), including the hetero-LR kernel `X^T·[[d]]`, DJN
//!   fixed-base obfuscators, CRT decryption and CRT encryption for the key owner, and the wire
//!   encoding of public keys and ciphertexts.
//! * [`encoding`]: fixed-precision (`2^23`-style, LR) and FATE base-16 fixed-point encodings.
//! * [`packing`]: several fixed-point values per plaintext (SecureBoost gh packing, squeeze).
//! * [`psi`]: FATE 2.x's ECDH PSI primitive on Curve25519 (byte-compatible with FATE).
//! * [`secagg`]: X25519 pairwise seeds and ChaCha20 masks for secure aggregation.
//! * [`bench`](mod@bench): single-core throughput against raw GMP and FATE's measured rates.
//! * `testing` (feature `testing`, never in release builds): pregenerated keys for fast tests
//!   here and in the crates above.
//!
//! Invariants: no IO, no async, no background threads (rayon only inside calls; the
//! [`paillier::ObfuscatorPool`] is filled by threads the caller owns). Secret keys
//! ([`paillier::SecretKey`], [`psi::EcdhSecret`], [`secagg::SecAggKeyPair`]) have no serde or
//! wire encoding. Everything decoded from bytes is length- and range-checked and fails with an
//! [`Error`], never a panic.

pub mod bench;
pub mod encoding;
mod error;
pub mod packing;
pub mod paillier;
pub mod psi;
pub mod secagg;
#[cfg(feature = "testing")]
pub mod testing;

pub use error::{Error, Result};
