//! Histograms over split points (FATE `tree_core/hist.py` and `fate.arch.histogram`,
//! fate-spec §4.5): for each node, each split point "feature f, bin ≤ b" gets the sums of g, h
//! and the sample count of the node's samples that go left. The guest sums plaintext g and h;
//! a host sums the guest's ciphertexts (one multiplication mod n² per sample and feature) and
//! derives one child of each pair from its parent (`hist_sub`).
//!
//! Split points skip the last bin of every feature: it would send every sample left, so it is
//! never a split, and its samples contribute to no cumulative sum of another point.

use super::binning::Binning;
use fate_crypto::paillier::{Ciphertext, PublicKey};
use rayon::prelude::*;

/// `(G_L, H_L, count_L)` of one split point.
pub type PointSums = (f64, f64, u64);

/// Where each feature's split points start in the point list.
#[derive(Debug, Clone)]
pub struct PointLayout {
    /// Split points of feature f: bins 0..n_bins(f)−1.
    per_feature: Vec<usize>,
    offsets: Vec<usize>,
    n_points: usize,
}

impl PointLayout {
    pub fn new(binning: &Binning) -> PointLayout {
        let per_feature: Vec<usize> = (0..binning.n_features())
            .map(|f| binning.n_bins(f).saturating_sub(1))
            .collect();
        let mut offsets = Vec::with_capacity(per_feature.len());
        let mut acc = 0;
        for &p in &per_feature {
            offsets.push(acc);
            acc += p;
        }
        PointLayout {
            per_feature,
            offsets,
            n_points: acc,
        }
    }

    /// Number of split points.
    pub fn n_points(&self) -> usize {
        self.n_points
    }

    /// The (feature, bin) of split point `p`.
    pub fn point(&self, p: usize) -> Option<(usize, usize)> {
        if p >= self.n_points {
            return None;
        }
        let f = self.offsets.partition_point(|&o| o <= p) - 1;
        Some((f, p - self.offsets[f]))
    }

    /// Cumulative left counts of every split point for `samples`.
    pub fn counts(&self, bins: &[Vec<u32>], samples: &[u32]) -> Vec<u32> {
        let mut out = vec![0u32; self.n_points];
        for (f, column) in bins.iter().enumerate() {
            let (off, np) = (self.offsets[f], self.per_feature[f]);
            let slot = &mut out[off..off + np];
            for &i in samples {
                let b = column[i as usize] as usize;
                if b < np {
                    slot[b] += 1;
                }
            }
            for b in 1..np {
                slot[b] += slot[b - 1];
            }
        }
        out
    }

    /// The guest's plaintext cumulative `(G_L, H_L, count_L)` of every split point, per node.
    pub fn plain(
        &self,
        bins: &[Vec<u32>],
        g: &[f64],
        h: &[f64],
        nodes: &[Vec<u32>],
    ) -> Vec<Vec<PointSums>> {
        nodes
            .par_iter()
            .map(|samples| {
                let mut out = vec![(0.0, 0.0, 0u64); self.n_points];
                for (f, column) in bins.iter().enumerate() {
                    let (off, np) = (self.offsets[f], self.per_feature[f]);
                    let slot = &mut out[off..off + np];
                    for &i in samples {
                        let i = i as usize;
                        let b = column[i] as usize;
                        if b < np {
                            let s = &mut slot[b];
                            s.0 += g[i];
                            s.1 += h[i];
                            s.2 += 1;
                        }
                    }
                    for b in 1..np {
                        let prev = slot[b - 1];
                        let s = &mut slot[b];
                        s.0 += prev.0;
                        s.1 += prev.1;
                        s.2 += prev.2;
                    }
                }
                out
            })
            .collect()
    }

    /// Encrypted cumulative histograms of several nodes: for node k, `channels` ciphertexts per
    /// split point (`out[k][p·channels + c]`), summing `gh[c·n + i]` over the node's samples i.
    /// Work runs in parallel over (node, feature).
    pub fn encrypted(
        &self,
        pk: &PublicKey,
        bins: &[Vec<u32>],
        gh: &[Ciphertext],
        channels: usize,
        nodes: &[&[u32]],
    ) -> Vec<Vec<Ciphertext>> {
        let n = gh.len() / channels.max(1);
        let n_features = bins.len();
        let tasks: Vec<(usize, usize)> = (0..nodes.len())
            .flat_map(|k| (0..n_features).map(move |f| (k, f)))
            .collect();
        let parts: Vec<Vec<Ciphertext>> = tasks
            .par_iter()
            .map(|&(k, f)| {
                let np = self.per_feature[f];
                let mut acc = vec![pk.trivial_zero(); np * channels];
                if np == 0 {
                    return acc;
                }
                let column = &bins[f];
                for &i in nodes[k] {
                    let i = i as usize;
                    let b = column[i] as usize;
                    if b < np {
                        for c in 0..channels {
                            pk.add_assign(&mut acc[b * channels + c], &gh[c * n + i]);
                        }
                    }
                }
                for b in 1..np {
                    let (done, rest) = acc.split_at_mut(b * channels);
                    for c in 0..channels {
                        pk.add_assign(&mut rest[c], &done[(b - 1) * channels + c]);
                    }
                }
                acc
            })
            .collect();
        let mut out: Vec<Vec<Ciphertext>> = (0..nodes.len())
            .map(|_| Vec::with_capacity(self.n_points * channels))
            .collect();
        for ((k, _), part) in tasks.into_iter().zip(parts) {
            out[k].extend(part);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_maps_points_to_feature_bins_and_counts_cumulatively() {
        let columns = vec![
            (0..8).map(f64::from).collect::<Vec<_>>(),
            vec![1.0; 8],
            (0..8).map(|i| f64::from(i % 2)).collect(),
        ];
        let binning = Binning::fit(&columns, 4);
        let layout = PointLayout::new(&binning);
        let bins = binning.bucketize(&columns);
        // Feature 0: 4 bins -> 3 points; feature 1: 1 bin -> none; feature 2: 2 bins -> 1 point.
        assert_eq!(layout.n_points(), 4);
        assert_eq!(layout.point(3), Some((2, 0)));
        assert_eq!(layout.point(4), None);
        let all: Vec<u32> = (0..8).collect();
        let counts = layout.counts(&bins, &all);
        assert_eq!(counts[3], 4, "half of feature 2 is 0");
        let g: Vec<f64> = (0..8).map(f64::from).collect();
        let h = vec![1.0; 8];
        let plain = layout.plain(&bins, &g, &h, std::slice::from_ref(&all));
        for (p, &(gl, hl, cl)) in plain[0].iter().enumerate() {
            assert_eq!(cl, u64::from(counts[p]));
            assert_eq!(hl, cl as f64);
            let (f, b) = layout.point(p).unwrap();
            let expected: f64 = all
                .iter()
                .filter(|&&i| bins[f][i as usize] as usize <= b)
                .map(|&i| g[i as usize])
                .sum();
            assert_eq!(gl, expected);
        }
    }
}
