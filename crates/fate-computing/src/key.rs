//! Key and value bounds, and the stable partition hash.
//!
//! FATE places a row in partition `hash(key) % n` (fate-spec §1.4, partitioner type 0 uses
//! mmh3 over the pickled key). fate-rs keys are typed, so the hash is defined over the key's own
//! bytes instead; it must never change, because persisted tables are validated against it on
//! load. The exact algorithm is pinned by test vectors in this module:
//!
//! * integers (`u64`, `i64`, `u32`, `usize`) are widened to `u64` (two's complement for `i64`)
//!   and passed through [`mix64`], MurmurHash3's 64-bit finaliser (a bijection);
//! * byte strings (`String`, `Vec<u8>`) use FNV-1a 64 over the bytes, then [`mix64`];
//! * a pair `(a, b)` hashes to `mix64(a.rotate_left(29) ^ b.wrapping_mul(PAIR_PRIME))` of the
//!   parts' hashes.

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::hash::Hash;

/// A table key. Keys are unique within a table; partitions keep their rows sorted by key.
///
/// `partition_hash` must be stable across runs, platforms and Rust versions (tables persist):
/// implement it over the key's bytes by hand, never with `std::hash`. `Debug` is required so
/// errors can name the offending key.
pub trait Key:
    Clone + Eq + Hash + Ord + Debug + Serialize + DeserializeOwned + Send + Sync + 'static
{
    /// A stable 64-bit hash of the key; the row lives in partition `partition_hash() % n`.
    fn partition_hash(&self) -> u64;
}

/// A table value. Implemented for every type with the listed bounds.
pub trait Value: Clone + Serialize + DeserializeOwned + Send + Sync + 'static {}

impl<T: Clone + Serialize + DeserializeOwned + Send + Sync + 'static> Value for T {}

/// MurmurHash3's 64-bit finaliser (`fmix64`): a bijection with full avalanche.
#[inline]
pub fn mix64(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^= x >> 33;
    x
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
const PAIR_PRIME: u64 = 0x9e37_79b9_7f4a_7c15;

/// The stable hash of a byte string: FNV-1a 64 followed by [`mix64`].
#[inline]
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut h = FNV_OFFSET;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    mix64(h)
}

/// The partition (`0..n`) of a key among `n` partitions. `n` must be at least 1.
#[inline]
pub fn partition_of<K: Key>(key: &K, n: usize) -> usize {
    debug_assert!(n > 0);
    // `n` fits u64 on every supported platform; the remainder is below `n`, so it fits usize.
    (key.partition_hash() % n as u64) as usize
}

impl Key for u64 {
    #[inline]
    fn partition_hash(&self) -> u64 {
        mix64(*self)
    }
}

impl Key for i64 {
    #[inline]
    fn partition_hash(&self) -> u64 {
        mix64(*self as u64)
    }
}

impl Key for u32 {
    #[inline]
    fn partition_hash(&self) -> u64 {
        mix64(u64::from(*self))
    }
}

impl Key for usize {
    #[inline]
    fn partition_hash(&self) -> u64 {
        // Same as u64, so a table keyed by usize hashes alike on 32- and 64-bit targets.
        mix64(*self as u64)
    }
}

impl Key for String {
    #[inline]
    fn partition_hash(&self) -> u64 {
        hash_bytes(self.as_bytes())
    }
}

impl Key for Vec<u8> {
    #[inline]
    fn partition_hash(&self) -> u64 {
        hash_bytes(self)
    }
}

impl<A: Key, B: Key> Key for (A, B) {
    #[inline]
    fn partition_hash(&self) -> u64 {
        let a = self.0.partition_hash();
        let b = self.1.partition_hash();
        mix64(a.rotate_left(29) ^ b.wrapping_mul(PAIR_PRIME))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pinned values (computed independently of this code): if one of these changes, tables saved by an earlier build no longer load.
    #[test]
    fn partition_hash_is_pinned() {
        assert_eq!(0u64.partition_hash(), 0);
        assert_eq!(1u64.partition_hash(), 0xb456_bcfc_34c2_cb2c);
        assert_eq!(12_345u64.partition_hash(), 0x17d2_abfb_f90b_aef9);
        assert_eq!((-1i64).partition_hash(), u64::MAX.partition_hash());
        assert_eq!(7u32.partition_hash(), 7u64.partition_hash());
        assert_eq!(7usize.partition_hash(), 7u64.partition_hash());
        assert_eq!(String::new().partition_hash(), mix64(FNV_OFFSET));
        assert_eq!(
            "id_1".to_string().partition_hash(),
            b"id_1".to_vec().partition_hash()
        );
        assert_eq!("id_1".to_string().partition_hash(), 0x38d3_7c5e_ead9_11d5);
        assert_eq!(
            (1u64, "a".to_string()).partition_hash(),
            0xfeb8_3d23_b2be_5c37
        );
    }

    #[test]
    fn pair_hash_depends_on_order() {
        assert_ne!((1u64, 2u64).partition_hash(), (2u64, 1u64).partition_hash());
    }

    #[test]
    fn sequential_keys_spread_over_partitions() {
        let n = 8;
        let mut counts = [0usize; 8];
        for k in 0..80_000u64 {
            counts[partition_of(&k, n)] += 1;
        }
        for c in counts {
            assert!(
                (9_000..11_000).contains(&c),
                "unbalanced partitions: {counts:?}"
            );
        }
        let mut counts = [0usize; 8];
        for k in 0..80_000u64 {
            counts[partition_of(&format!("id_{k}"), n)] += 1;
        }
        for c in counts {
            assert!(
                (9_000..11_000).contains(&c),
                "unbalanced partitions: {counts:?}"
            );
        }
    }
}
