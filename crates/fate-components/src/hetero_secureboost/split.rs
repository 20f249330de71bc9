//! Split gains and leaf weights exactly as FATE's `SBTSplitter` computes them
//! (`tree_core/splitter.py`, fate-spec §4.5): values truncated to 10 decimals, L1 soft
//! threshold on gradients, gain `G_L²/(H_L+λ) + G_R²/(H_R+λ) − G²/(H+λ)`, and the filters
//! min_leaf_node, min_child_weight, min_impurity_split and min_sample_split.

use super::params::TrainParams;

/// FATE's `TREE_DECIMAL_ROUND`.
const DECIMALS: f64 = 1e10;

/// `floor(x·10^10)/10^10` (FATE's `truncate`).
pub fn truncate(x: f64) -> f64 {
    (x * DECIMALS).floor() / DECIMALS
}

/// The regularisation and stopping rules of one tree.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SplitRules {
    pub l1: f64,
    pub l2: f64,
    pub min_impurity_split: f64,
    pub min_sample_split: u64,
    pub min_leaf_node: u64,
    pub min_child_weight: f64,
}

impl SplitRules {
    pub fn from_params(p: &TrainParams) -> SplitRules {
        SplitRules {
            l1: p.l1,
            l2: p.l2,
            min_impurity_split: p.min_impurity_split,
            min_sample_split: p.min_sample_split,
            min_leaf_node: p.min_leaf_node,
            min_child_weight: p.min_child_weight,
        }
    }

    fn l1_reg(&self, g: f64) -> f64 {
        if self.l1 == 0.0 {
            g
        } else if g < -self.l1 {
            g + self.l1
        } else if g > self.l1 {
            g - self.l1
        } else {
            0.0
        }
    }

    fn node_gain(&self, g: f64, h: f64) -> f64 {
        let g = self.l1_reg(truncate(g));
        let h = truncate(h);
        let d = h + self.l2;
        if d == 0.0 { f64::NAN } else { g * g / d }
    }

    /// A node's weight `−l1(G)/(H+λ)`, truncated (0 when H + λ is 0).
    pub fn node_weight(&self, g: f64, h: f64) -> f64 {
        let d = h + self.l2;
        if d == 0.0 {
            return 0.0;
        }
        truncate(-(self.l1_reg(g) / d))
    }

    /// The gain of sending `(gl, hl, cl)` left out of a node with totals `(g, h, c)`, or `None`
    /// when a filter rejects the split.
    pub fn gain(&self, gl: f64, hl: f64, cl: u64, g: f64, h: f64, c: u64) -> Option<f64> {
        let cr = c.checked_sub(cl)?;
        if cl < self.min_leaf_node || cr < self.min_leaf_node {
            return None;
        }
        let (gr, hr) = (g - gl, h - hl);
        if hl < self.min_child_weight || hr < self.min_child_weight {
            return None;
        }
        let gain = truncate(self.node_gain(gl, hl) + self.node_gain(gr, hr) - self.node_gain(g, h));
        if gain.is_nan() || gain < self.min_impurity_split {
            None
        } else {
            Some(gain)
        }
    }

    /// Whether a node of `count` samples may split at all.
    pub fn may_split(&self, count: u64) -> bool {
        count >= self.min_sample_split
    }
}

/// The best split of one node among one party's split points.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// Index of the split point in the party's list (guest: FATE's split order; host: the
    /// shuffled, anonymous id).
    pub index: u32,
    pub gain: f64,
    pub gl: f64,
    pub hl: f64,
    pub cl: u64,
}

/// The first best candidate of `points` (`(gl, hl, cl)` per split point) for a node with totals
/// `(g, h, c)`, as `torch.max` picks the first maximum.
pub fn best_split(
    rules: &SplitRules,
    g: f64,
    h: f64,
    c: u64,
    points: impl Iterator<Item = (f64, f64, u64)>,
) -> Option<Candidate> {
    if !rules.may_split(c) {
        return None;
    }
    let mut best: Option<Candidate> = None;
    for (i, (gl, hl, cl)) in points.enumerate() {
        if let Some(gain) = rules.gain(gl, hl, cl, g, h, c)
            && best.is_none_or(|b| gain > b.gain)
        {
            best = Some(Candidate {
                index: i as u32,
                gain,
                gl,
                hl,
                cl,
            });
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> SplitRules {
        SplitRules::from_params(&TrainParams::default())
    }

    #[test]
    fn gain_matches_the_formula() {
        let r = rules();
        // G = 0, H = 2: left (-3, 1), right (3, 1).
        let gain = r.gain(-3.0, 1.0, 5, 0.0, 2.0, 10).unwrap();
        let expected = 9.0 / 1.1 + 9.0 / 1.1 - 0.0;
        assert!((gain - expected).abs() < 1e-9, "{gain} vs {expected}");
        assert!((r.node_weight(-3.0, 1.0) - truncate(3.0 / 1.1)).abs() < 1e-12);
    }

    #[test]
    fn filters_reject_small_children_and_small_gains() {
        let r = rules();
        assert_eq!(
            r.gain(-3.0, 0.5, 5, 0.0, 2.0, 10),
            None,
            "left hessian below min_child_weight"
        );
        assert_eq!(
            r.gain(-3.0, 1.0, 10, 0.0, 2.0, 10),
            None,
            "empty right child"
        );
        assert_eq!(r.gain(0.0, 1.0, 5, 0.0, 2.0, 10), None, "no gain");
        assert!(!r.may_split(1));
        let l1 = SplitRules { l1: 5.0, ..r };
        assert_eq!(
            l1.node_weight(-3.0, 1.0),
            0.0,
            "|G| within l1 gives weight 0"
        );
    }

    #[test]
    fn best_split_takes_the_first_maximum() {
        let r = rules();
        let pts = [
            (-1.0, 1.0, 5),
            (-3.0, 1.0, 5),
            (-3.0, 1.0, 5),
            (3.0, 1.0, 5),
        ];
        let b = best_split(&r, 0.0, 2.0, 10, pts.into_iter()).unwrap();
        assert_eq!(b.index, 1);
        assert_eq!(
            best_split(&r, 0.0, 2.0, 1, pts.into_iter()),
            None,
            "min_sample_split"
        );
    }
}
