//! What the guest and the hosts send each other (fate-spec §4.5), with FATE's object names.
//!
//! Guest → host: `train_meta` (sample count and id digest, round count), `en_kit` (the Paillier
//! public key), per tree `tree_start` (packing layout) and `en_gh` (one ciphertext per sample),
//! per layer `sync_nodes` (which node splits, on whose side, and, for the receiving host only,
//! the anonymous split id it chose) and `new_sample_pos` (each sample's node); for a
//! guest-only tree `sync_tree` (the tree's shape). Host → guest: per layer `hist` (encrypted,
//! shuffled, packed cumulative histograms and their sample counts) and `updated_data` (left/right
//! bits for the samples of the nodes the host splits). Prediction: guest → host `predict_meta`,
//! `need_stop`, `pending_samples` (sample indexes and their node in every tree); host → guest
//! `updated_pos`.
//!
//! Every message is checked by its receiver against what it expects (counts, lengths, ids), so
//! a peer's bad message is an error naming the peer, never a panic or an unbounded allocation.

use serde::{Deserialize, Serialize};

/// Node position of a sample that has reached a leaf (training) .
pub const DONE: u32 = u32::MAX;

/// Version of this message set; a host refuses a guest speaking another.
pub const PROTOCOL_VERSION: u32 = 1;

/// Guest → host once per fit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainMeta {
    pub version: u32,
    /// Training samples (the guest's, which the host's must equal).
    pub n_samples: u64,
    /// Digest of the sorted sample ids.
    pub sample_digest: u64,
    /// Trees per round.
    pub tree_dim: u32,
    /// Rounds to train now.
    pub num_rounds: u32,
    /// Trees of the warm-start model (0 without warm start).
    pub warm_trees: u32,
    /// Rounds (from the first new one) built from guest features only (`complete_secure`).
    pub complete_secure: u32,
    pub learning_rate: f64,
}

/// Guest → host at the start of each tree.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum TreeStart {
    /// A guest-only tree (complete secure): the host only receives `sync_tree` at the end.
    Local,
    /// A federated tree.
    Federated {
        max_depth: u32,
        /// g and h share one ciphertext per sample (else `en_gh` holds all g then all h).
        gh_pack: bool,
        /// Squeeze `pack_capacity` split points into one ciphertext.
        split_info_pack: bool,
        /// Bits of one packed (g, h) pair (FATE's `split_point_shift_bit`).
        pair_bits: u32,
        /// Split points per squeezed ciphertext (FATE's `total_pack_num`).
        pack_capacity: u32,
    },
}

/// One node's encrypted histogram from a host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeHist {
    /// Samples left of each (shuffled) split point.
    pub counts: Vec<u32>,
    /// Concatenated ciphertexts: squeezed groups, or one (packed) or two (g, h) per point.
    pub ciphertexts: Vec<u8>,
}

/// Host → guest per layer: one histogram per node of the layer, in layer order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostHist {
    pub nodes: Vec<NodeHist>,
}

/// Guest → host per layer: what happens to each node of the layer, in layer order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Decision {
    /// The node is a leaf.
    Leaf,
    /// The node splits into `left` and `right` (new node ids) on `sitename`'s features;
    /// `split_id` is set only in the message to the owning host.
    Split {
        left: u32,
        right: u32,
        sitename: String,
        split_id: Option<u32>,
    },
}

/// Host → guest per layer: for each node this host splits (in layer order), one bit per sample
/// of the node (ascending sample index), 1 = left.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Directions {
    pub nodes: Vec<Vec<u8>>,
}

/// The shape of a guest-only tree, for the hosts' models.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShapeNode {
    pub is_leaf: bool,
    pub l: i64,
    pub r: i64,
    pub sample_num: u64,
}

/// Guest → host before a prediction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictMeta {
    pub version: u32,
    pub n_samples: u64,
    pub sample_digest: u64,
    pub n_trees: u32,
}

/// Guest → host per prediction round: samples still inside some tree and their node in every
/// tree (`positions[j·n_trees + t]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingSamples {
    pub samples: Vec<u32>,
    pub positions: Vec<u32>,
}

/// Packs booleans into bytes, least significant bit first.
pub fn pack_bits(bits: impl ExactSizeIterator<Item = bool>) -> Vec<u8> {
    let mut out = vec![0u8; bits.len().div_ceil(8)];
    for (i, b) in bits.enumerate() {
        if b {
            out[i / 8] |= 1 << (i % 8);
        }
    }
    out
}

/// Bit `i` of [`pack_bits`] output.
pub fn bit(bytes: &[u8], i: usize) -> bool {
    bytes.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0)
}

/// FNV-1a over the sorted sample ids: both parties compute it to check they hold the same
/// samples in the same order (a consistency check, not a secret).
pub fn sample_digest<'a>(keys: impl Iterator<Item = &'a str>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for k in keys {
        for &b in k.as_bytes().iter().chain(std::iter::once(&0xffu8)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_round_trip() {
        let v = [true, false, true, true, false, false, false, false, true];
        let packed = pack_bits(v.iter().copied());
        assert_eq!(packed.len(), 2);
        assert!(v.iter().enumerate().all(|(i, &b)| bit(&packed, i) == b));
        assert!(!bit(&packed, 100));
    }

    #[test]
    fn digest_depends_on_ids_and_boundaries() {
        let a = sample_digest(["1", "23"].into_iter());
        assert_eq!(a, sample_digest(["1", "23"].into_iter()));
        assert_ne!(a, sample_digest(["12", "3"].into_iter()));
        assert_ne!(a, sample_digest(["1", "24"].into_iter()));
    }
}
