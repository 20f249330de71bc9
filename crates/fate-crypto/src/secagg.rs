//! Secure-aggregation primitives (fate-spec §4.6): pairwise X25519 key agreement between clients
//! and ChaCha20 mask streams that cancel when the masked vectors of all clients are summed.
//!
//! Like FATE, each pair of clients derives a shared seed with X25519 and each client *adds* the
//! stream shared with a lower-ranked peer and *subtracts* the stream shared with a higher-ranked
//! one. Unlike FATE, which masks floats with Uniform(−1e7, 1e7) draws (so cancellation is only
//! approximate), values are masked in the ring Z_2^64: a float becomes the two's-complement
//! fixed-point integer `round(x·2^frac_bits)` and masks are uniform u64 words, so masks cancel
//! exactly and a masked value reveals nothing about the input. The aggregate is correct whenever
//! the true sum fits an i64 at that scale.
//!
//! The seed of a pair is `SHA-256("fate-rs/secagg/v1" ‖ min rank ‖ max rank ‖ shared secret)`
//! and round r uses ChaCha20 stream r of that seed, so every round (epoch, batch) gets fresh masks
//! without a new key exchange.

use rand::{CryptoRng, RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use sha2::{Digest, Sha256};
use x25519_dalek::{PublicKey as X25519Public, StaticSecret};

use crate::encoding::encode_i64;
use crate::error::{Error, Result};

const SEED_DOMAIN: &[u8] = b"fate-rs/secagg/v1";

/// A client's X25519 key pair for secure aggregation, tied to its rank among the clients.
pub struct SecAggKeyPair {
    rank: u32,
    secret: StaticSecret,
    public: X25519Public,
}

impl std::fmt::Debug for SecAggKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecAggKeyPair")
            .field("rank", &self.rank)
            .finish_non_exhaustive()
    }
}

impl SecAggKeyPair {
    /// A fresh key pair for the client of rank `rank`.
    pub fn generate<R: RngCore + CryptoRng>(rank: u32, rng: &mut R) -> SecAggKeyPair {
        let secret = StaticSecret::random_from_rng(rng);
        let public = X25519Public::from(&secret);
        SecAggKeyPair {
            rank,
            secret,
            public,
        }
    }

    /// This client's rank.
    pub fn rank(&self) -> u32 {
        self.rank
    }

    /// The public key to send to the other clients.
    pub fn public_key(&self) -> [u8; 32] {
        self.public.to_bytes()
    }

    /// Agrees a seed with every peer `(rank, public key)` and returns the masker. Rejects this
    /// client's own rank, duplicate ranks and peer keys that give no shared secret.
    pub fn masker(&self, peers: &[(u32, [u8; 32])]) -> Result<Masker> {
        let mut streams = Vec::with_capacity(peers.len());
        for &(rank, public) in peers {
            if rank == self.rank {
                return Err(Error::KeyAgreement {
                    rank,
                    reason: "a peer has this client's own rank".into(),
                });
            }
            if streams.iter().any(|s: &PeerSeed| s.rank == rank) {
                return Err(Error::KeyAgreement {
                    rank,
                    reason: "rank listed twice".into(),
                });
            }
            let shared = self.secret.diffie_hellman(&X25519Public::from(public));
            if !shared.was_contributory() {
                return Err(Error::KeyAgreement {
                    rank,
                    reason: "public key is a low-order point".into(),
                });
            }
            let (lo, hi) = (self.rank.min(rank), self.rank.max(rank));
            let mut h = Sha256::new();
            h.update(SEED_DOMAIN);
            h.update(lo.to_be_bytes());
            h.update(hi.to_be_bytes());
            h.update(shared.as_bytes());
            streams.push(PeerSeed {
                rank,
                seed: h.finalize().into(),
            });
        }
        Ok(Masker {
            rank: self.rank,
            streams,
        })
    }
}

struct PeerSeed {
    rank: u32,
    seed: [u8; 32],
}

/// Applies the pairwise masks of one client. Holds seeds, not keys; not serializable.
pub struct Masker {
    rank: u32,
    streams: Vec<PeerSeed>,
}

impl std::fmt::Debug for Masker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Masker")
            .field("rank", &self.rank)
            .field("peers", &self.streams.len())
            .finish()
    }
}

impl Masker {
    /// Masks `values` in place for round `round` (wrapping arithmetic mod 2^64).
    pub fn mask_u64(&self, round: u64, values: &mut [u64]) {
        for peer in &self.streams {
            let mut rng = ChaCha20Rng::from_seed(peer.seed);
            rng.set_stream(round);
            let add = peer.rank < self.rank;
            for v in values.iter_mut() {
                let mask = rng.next_u64();
                *v = if add {
                    v.wrapping_add(mask)
                } else {
                    v.wrapping_sub(mask)
                };
            }
        }
    }

    /// Encodes `values` as fixed point with `frac_bits` fractional bits and masks them.
    pub fn mask_f64(&self, round: u64, values: &[f64], frac_bits: u32) -> Result<Vec<u64>> {
        let mut out = values
            .iter()
            .map(|&v| encode_i64(v, frac_bits).map(|x| x as u64))
            .collect::<Result<Vec<u64>>>()?;
        self.mask_u64(round, &mut out);
        Ok(out)
    }
}

/// Sums masked vectors of all clients (wrapping), so the masks cancel.
pub fn aggregate(inputs: &[&[u64]]) -> Result<Vec<u64>> {
    let Some(first) = inputs.first() else {
        return Ok(Vec::new());
    };
    let mut sum = first.to_vec();
    for v in inputs.iter().skip(1) {
        if v.len() != sum.len() {
            return Err(Error::DimensionMismatch {
                what: "secure aggregation input",
                expected: sum.len(),
                got: v.len(),
            });
        }
        for (s, x) in sum.iter_mut().zip(v.iter()) {
            *s = s.wrapping_add(*x);
        }
    }
    Ok(sum)
}

/// Decodes an aggregate of fixed-point values (two's complement, `frac_bits` fractional bits).
pub fn decode_f64(sum: &[u64], frac_bits: u32) -> Vec<f64> {
    let scale = 2f64.powi(-(frac_bits as i32));
    sum.iter().map(|&s| (s as i64) as f64 * scale).collect()
}
