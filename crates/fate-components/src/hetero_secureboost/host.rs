//! A host: encrypted histograms of its own features, anonymous split ids, and the directions of
//! the splits the guest chose on its side (FATE `HeteroSecureBoostHost` and
//! `HeteroDecisionTreeHost`, fate-spec §4.5). The host never sees a label, a gradient or a
//! guest feature: it sums the guest's ciphertexts, shuffles and packs the sums, and learns only
//! which of its own (anonymous) split points won and where samples go.

use super::binning::Binning;
use super::data::LocalData;
use super::hist::PointLayout;
use super::messages::{
    DONE, Decision, Directions, HostHist, NodeHist, PROTOCOL_VERSION, ShapeNode, TrainMeta,
    TreeStart, pack_bits,
};
use super::model::{HyperParam, Importance, MODEL_VERSION, Node, SbtModel, Tree};
use super::params::{MAX_DEPTH, TrainParams};
use super::{predict, sitename};
use fate_crypto::paillier::{Ciphertext, PublicKey};
use fate_runtime::{ComponentError, Ctx, LogLevel};
use fate_types::Party;
use rand::seq::SliceRandom;
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

/// Largest site name accepted from the guest.
const MAX_SITENAME: usize = 256;

fn guest_err(guest: &Party, what: &str, reason: impl std::fmt::Display) -> ComponentError {
    ComponentError::Data(format!("`{what}` from {guest}: {reason}"))
}

fn crypto_err(what: &str, e: fate_crypto::Error) -> ComponentError {
    ComponentError::Failed(format!("{what}: {e}"))
}

struct TreeBuilder<'a> {
    ctx: &'a Ctx,
    guest: &'a Party,
    guest_site: String,
    sitename: &'a str,
    binning: &'a Binning,
    bins: &'a [Vec<u32>],
    layout: &'a PointLayout,
    feature_names: &'a [String],
    hist_sub: bool,
    n: usize,
}

/// The layout the guest announced for a federated tree.
struct Federated {
    max_depth: u32,
    channels: usize,
    squeeze: Option<(u32, usize)>,
}

impl TreeBuilder<'_> {
    fn fed(&self) -> &fate_federation::Federation {
        &self.ctx.federation
    }

    fn check_start(
        &self,
        start: TreeStart,
        pk: &PublicKey,
    ) -> Result<Option<Federated>, ComponentError> {
        let TreeStart::Federated {
            max_depth,
            gh_pack,
            split_info_pack,
            pair_bits,
            pack_capacity,
        } = start
        else {
            return Ok(None);
        };
        if max_depth == 0 || max_depth > MAX_DEPTH {
            return Err(guest_err(
                self.guest,
                "tree_start",
                format!("max_depth {max_depth} is outside 1..={MAX_DEPTH}"),
            ));
        }
        let squeeze = if split_info_pack {
            let fits = gh_pack
                && pair_bits > 0
                && pack_capacity > 0
                && u64::from(pair_bits) * u64::from(pack_capacity) < u64::from(pk.key_bits()) - 1;
            if !fits {
                return Err(guest_err(
                    self.guest,
                    "tree_start",
                    format!(
                        "{pack_capacity} split points of {pair_bits} bits do not fit a {}-bit key",
                        pk.key_bits()
                    ),
                ));
            }
            Some((pair_bits, pack_capacity as usize))
        } else {
            None
        };
        Ok(Some(Federated {
            max_depth,
            channels: if gh_pack { 1 } else { 2 },
            squeeze,
        }))
    }

    /// A guest-only tree: the host keeps its shape.
    fn local_tree(&self, tag: &str) -> Result<Vec<Node>, ComponentError> {
        let shape: Vec<ShapeNode> = self.fed().get_one("sync_tree", tag, self.guest)?;
        let len = shape.len();
        if len == 0 || len > 2 * self.n + 1 {
            return Err(guest_err(
                self.guest,
                "sync_tree",
                format!("{len} nodes for {} samples", self.n),
            ));
        }
        let mut nodes: Vec<Node> = (0..len)
            .map(|i| Node::new(i as u32, None, None, false, 0))
            .collect();
        for (i, s) in shape.iter().enumerate() {
            nodes[i].is_leaf = s.is_leaf;
            nodes[i].sample_num = s.sample_num;
            nodes[i].sitename = self.guest_site.clone();
            if !s.is_leaf {
                let ok = |c: i64| c > i as i64 && (c as usize) < len;
                if !ok(s.l) || !ok(s.r) || s.l == s.r {
                    return Err(guest_err(
                        self.guest,
                        "sync_tree",
                        format!("node {i} has bad children {} and {}", s.l, s.r),
                    ));
                }
                nodes[i].l = s.l;
                nodes[i].r = s.r;
                for (c, sib, left) in [(s.l, s.r, true), (s.r, s.l, false)] {
                    let child = &mut nodes[c as usize];
                    child.parent_nodeid = Some(i as u32);
                    child.sibling_nodeid = Some(sib as u32);
                    child.is_left_node = left;
                }
            }
        }
        Ok(nodes)
    }

    /// Shuffles, packs and rerandomizes one node's cumulative histogram; returns the message
    /// and the permutation (shuffled split id → split point).
    fn node_message(
        &self,
        pk: &PublicKey,
        pk_rand: &PublicKey,
        cum: &[Ciphertext],
        counts: &[u32],
        f: &Federated,
    ) -> Result<(NodeHist, Vec<u32>), ComponentError> {
        let p = counts.len();
        let mut perm: Vec<u32> = (0..p as u32).collect();
        perm.shuffle(&mut rand::thread_rng());
        let shuffled_counts = perm.iter().map(|&q| counts[q as usize]).collect();
        let shuffled: Vec<Ciphertext> = perm
            .iter()
            .flat_map(|&q| {
                cum[q as usize * f.channels..(q as usize + 1) * f.channels]
                    .iter()
                    .cloned()
            })
            .collect();
        let packed = match f.squeeze {
            Some((pair_bits, capacity)) => self
                .ctx
                .computing
                .install(|| pk.pack_squeeze_vec(&shuffled, pair_bits, capacity))
                .map_err(|e| crypto_err("packing split infos", e))?,
            None => shuffled,
        };
        // Fresh obfuscation: sums of one sample would otherwise be the guest's own ciphertext.
        let bytes = self
            .ctx
            .computing
            .install(|| pk.ciphertexts_to_bytes(&pk_rand.rerandomize_vec(&packed)));
        Ok((
            NodeHist {
                counts: shuffled_counts,
                ciphertexts: bytes,
            },
            perm,
        ))
    }

    /// Builds tree `t` on the host's side.
    fn build(
        &self,
        t: usize,
        start: TreeStart,
        pk: Option<&(PublicKey, PublicKey)>,
    ) -> Result<(Tree, BTreeMap<String, Importance>), ComponentError> {
        let tag = format!("tree-{t}");
        let mut importance: BTreeMap<String, Importance> = BTreeMap::new();
        let hyper = json!({"max_depth": null, "valid_features": null, "use_missing": false, "zero_as_missing": false});
        let federated = match (start, pk) {
            (TreeStart::Local, _) => None,
            (TreeStart::Federated { .. }, None) => {
                return Err(guest_err(
                    self.guest,
                    "tree_start",
                    "a federated tree before the public key",
                ));
            }
            (TreeStart::Federated { .. }, Some((pk, pk_rand))) => {
                self.check_start(start, pk)?.map(|f| (pk, pk_rand, f))
            }
        };
        let Some((pk, pk_rand, f)) = federated else {
            return Ok((
                Tree {
                    nodes: self.local_tree(&tag)?,
                    feature_importance: BTreeMap::new(),
                    hyper_param: hyper,
                },
                BTreeMap::new(),
            ));
        };
        let n = self.n;
        let bytes: Vec<u8> = self.fed().get_one("en_gh", &tag, self.guest)?;
        if bytes.len() != n * f.channels * pk.ciphertext_bytes() {
            return Err(guest_err(
                self.guest,
                "en_gh",
                format!(
                    "{} bytes, expected {} ciphertexts",
                    bytes.len(),
                    n * f.channels
                ),
            ));
        }
        let gh = self
            .ctx
            .computing
            .install(|| pk.ciphertexts_from_bytes(&bytes))
            .map_err(|e| guest_err(self.guest, "en_gh", e))?;
        drop(bytes);

        let mut nodes = vec![Node::new(0, None, None, false, n as u64)];
        nodes[0].sitename = self.guest_site.clone();
        let mut pos = vec![0u32; n];
        let mut layer: Vec<u32> = vec![0];
        let mut last_id = 0u32;
        let mut parent_cum: HashMap<u32, Vec<Ciphertext>> = HashMap::new();
        let mut hist_time = std::time::Duration::ZERO;

        for depth in 0..f.max_depth {
            if layer.is_empty() {
                break;
            }
            let ltag = format!("{tag}.layer-{depth}");
            let mut node_samples: Vec<Vec<u32>> = vec![Vec::new(); layer.len()];
            for (i, &p) in pos.iter().enumerate() {
                if p != DONE {
                    node_samples[p as usize].push(i as u32);
                }
            }
            for (k, &nid) in layer.iter().enumerate() {
                nodes[nid as usize].sample_num = node_samples[k].len() as u64;
            }

            // Encrypted cumulative histograms; with hist_sub the larger child of each pair is
            // its parent minus the smaller one.
            let started = Instant::now();
            let mut direct: Vec<usize> = Vec::new();
            let mut derived: Vec<(usize, usize, u32)> = Vec::new();
            for k in 0..layer.len() {
                let parent = nodes[layer[k] as usize].parent_nodeid;
                let pair = k % 2 == 0
                    && k + 1 < layer.len()
                    && parent.is_some()
                    && nodes[layer[k + 1] as usize].parent_nodeid == parent
                    && parent.is_some_and(|p| parent_cum.contains_key(&p));
                if self.hist_sub && pair {
                    let (a, b) = (k, k + 1);
                    // FATE's rule: the right sibling is computed when it is strictly smaller.
                    let (weak, strong) = if node_samples[b].len() < node_samples[a].len() {
                        (b, a)
                    } else {
                        (a, b)
                    };
                    direct.push(weak);
                    derived.push((strong, weak, parent.unwrap_or_default()));
                } else if !derived.iter().any(|&(s, w, _)| s == k || w == k) {
                    direct.push(k);
                }
            }
            let sample_refs: Vec<&[u32]> =
                direct.iter().map(|&k| node_samples[k].as_slice()).collect();
            let computed = self.ctx.computing.install(|| {
                self.layout
                    .encrypted(pk, self.bins, &gh, f.channels, &sample_refs)
            });
            let mut cums: Vec<Option<Vec<Ciphertext>>> = vec![None; layer.len()];
            for (&k, c) in direct.iter().zip(computed) {
                cums[k] = Some(c);
            }
            for &(strong, weak, parent) in &derived {
                let (Some(parent_hist), Some(weak_hist)) =
                    (parent_cum.get(&parent), cums[weak].as_ref())
                else {
                    return Err(ComponentError::Failed(
                        "histogram subtraction lost a parent histogram".into(),
                    ));
                };
                let sub = self
                    .ctx
                    .computing
                    .install(|| pk.sub_vec(parent_hist, weak_hist))
                    .map_err(|e| crypto_err("histogram subtraction", e))?;
                cums[strong] = Some(sub);
            }
            let cums: Vec<Vec<Ciphertext>> =
                cums.into_iter().map(Option::unwrap_or_default).collect();
            let t_hist = started.elapsed();
            let mut perms = Vec::with_capacity(layer.len());
            let mut msg = HostHist {
                nodes: Vec::with_capacity(layer.len()),
            };
            for (k, cum) in cums.iter().enumerate() {
                let counts = self.layout.counts(self.bins, &node_samples[k]);
                let (node_hist, perm) = self.node_message(pk, pk_rand, cum, &counts, &f)?;
                msg.nodes.push(node_hist);
                perms.push(perm);
            }
            hist_time += started.elapsed();
            self.ctx.log.log(
                LogLevel::Debug,
                &format!(
                    "{ltag}: {} histograms summed in {t_hist:.2?}, sent after {:.2?}",
                    direct.len(),
                    started.elapsed()
                ),
            );
            self.fed()
                .remote("hist", &ltag, std::slice::from_ref(self.guest), &msg)?;
            drop(msg);

            // The guest's decisions; resolve this host's anonymous split ids.
            let decisions: Vec<Decision> = self.fed().get_one("sync_nodes", &ltag, self.guest)?;
            if decisions.len() != layer.len() {
                return Err(guest_err(
                    self.guest,
                    "sync_nodes",
                    format!(
                        "{} decisions for a layer of {} nodes",
                        decisions.len(),
                        layer.len()
                    ),
                ));
            }
            let mut next_layer = Vec::new();
            let mut directions = Directions { nodes: Vec::new() };
            for (k, d) in decisions.into_iter().enumerate() {
                let nid = layer[k];
                match d {
                    Decision::Leaf => {
                        let node = &mut nodes[nid as usize];
                        node.is_leaf = true;
                        node.sitename = self.guest_site.clone();
                    }
                    Decision::Split {
                        left,
                        right,
                        sitename,
                        split_id,
                    } => {
                        if left != last_id + 1
                            || right != last_id + 2
                            || sitename.is_empty()
                            || sitename.len() > MAX_SITENAME
                        {
                            return Err(guest_err(
                                self.guest,
                                "sync_nodes",
                                format!(
                                    "node {nid}: children {left}/{right} or site name do not follow the tree"
                                ),
                            ));
                        }
                        last_id += 2;
                        let node = &mut nodes[nid as usize];
                        node.l = i64::from(left);
                        node.r = i64::from(right);
                        if sitename == self.sitename {
                            let resolved =
                                split_id.and_then(|s| perms[k].get(s as usize).map(|&p| (s, p)));
                            let Some((s, p)) = resolved else {
                                return Err(guest_err(
                                    self.guest,
                                    "sync_nodes",
                                    format!(
                                        "node {nid}: no valid split id {split_id:?} for this host"
                                    ),
                                ));
                            };
                            let Some((feature, bin)) = self.layout.point(p as usize) else {
                                return Err(ComponentError::Failed(format!(
                                    "split point {p} is not in the layout"
                                )));
                            };
                            let threshold = self.binning.threshold(feature, bin);
                            node.fid = Some(self.feature_names[feature].clone());
                            node.bid = Some(threshold);
                            node.split_id = Some(s);
                            importance
                                .entry(self.feature_names[feature].clone())
                                .or_default()
                                .add(0.0);
                            let column = &self.bins[feature];
                            directions.nodes.push(pack_bits(
                                node_samples[k]
                                    .iter()
                                    .map(|&i| column[i as usize] as usize <= bin),
                            ));
                        } else if split_id.is_some() {
                            return Err(guest_err(
                                self.guest,
                                "sync_nodes",
                                format!("node {nid}: a split id for another party's split"),
                            ));
                        }
                        node.sitename = sitename;
                        nodes.push(Node::new(left, Some(nid), Some(right), true, 0));
                        nodes.push(Node::new(right, Some(nid), Some(left), false, 0));
                        next_layer.push(left);
                        next_layer.push(right);
                    }
                }
            }
            self.fed().remote(
                "updated_data",
                &ltag,
                std::slice::from_ref(self.guest),
                &directions,
            )?;

            if depth + 1 < f.max_depth && !next_layer.is_empty() {
                let new_pos: Vec<u32> = self.fed().get_one("new_sample_pos", &ltag, self.guest)?;
                if new_pos.len() != n {
                    return Err(guest_err(
                        self.guest,
                        "new_sample_pos",
                        format!("{} positions for {n} samples", new_pos.len()),
                    ));
                }
                let index: HashMap<u32, u32> = next_layer
                    .iter()
                    .enumerate()
                    .map(|(j, &nid)| (nid, j as u32))
                    .collect();
                for (i, &v) in new_pos.iter().enumerate() {
                    pos[i] = if v == DONE {
                        DONE
                    } else {
                        match (pos[i], index.get(&v)) {
                            (p, Some(&j)) if p != DONE => j,
                            _ => {
                                return Err(guest_err(
                                    self.guest,
                                    "new_sample_pos",
                                    format!(
                                        "sample {i} moves to {v}, which is not a node of the next layer"
                                    ),
                                ));
                            }
                        }
                    };
                }
            }
            if self.hist_sub {
                parent_cum = layer.iter().copied().zip(cums).collect();
            }
            layer = next_layer;
        }
        for &nid in &layer {
            let node = &mut nodes[nid as usize];
            node.is_leaf = true;
            node.sitename = self.guest_site.clone();
        }
        self.ctx.info(format!(
            "{tag}: histograms of {} split points took {hist_time:.2?}",
            self.layout.n_points()
        ));
        Ok((
            Tree {
                nodes,
                feature_importance: importance.clone(),
                hyper_param: hyper,
            },
            importance,
        ))
    }
}

/// Trains at a host and writes `output_model`.
pub fn train(ctx: &Ctx, params: &TrainParams) -> Result<(), ComponentError> {
    let df = ctx.input_data("train_data")?;
    let data = LocalData::load(&df, "train_data")?;
    let warm = ctx
        .input_model("warm_start_model")
        .map(|v| SbtModel::from_json(v, "host", "warm_start_model"))
        .transpose()?;
    let guest = ctx.guest()?;
    let site = sitename(&ctx.local);
    let fed = &ctx.federation;

    let binning = Binning::fit(&data.columns, params.max_bin);
    let bins = binning.bucketize(&data.columns);
    let layout = PointLayout::new(&binning);

    let meta: TrainMeta = fed.get_one("train_meta", "fit", &guest)?;
    if meta.version != PROTOCOL_VERSION {
        return Err(guest_err(
            &guest,
            "train_meta",
            format!(
                "protocol version {} (expected {PROTOCOL_VERSION})",
                meta.version
            ),
        ));
    }
    if meta.n_samples != data.n() as u64 || meta.sample_digest != data.digest {
        return Err(ComponentError::Input {
            key: "train_data".into(),
            reason: format!(
                "the guest trains on {} samples and this host has {}, or their sample ids differ; both parties need the same samples (run psi first)",
                meta.n_samples,
                data.n()
            ),
        });
    }
    let warm_trees = warm.as_ref().map_or(0, |m| m.trees.len());
    if meta.warm_trees as usize != warm_trees {
        return Err(ComponentError::Input {
            key: "warm_start_model".into(),
            reason: format!(
                "the guest warm-starts from {} trees and this host from {warm_trees}",
                meta.warm_trees
            ),
        });
    }
    if meta.tree_dim == 0 || meta.tree_dim > 1 << 16 || meta.num_rounds > 100_000 {
        return Err(guest_err(
            &guest,
            "train_meta",
            "tree_dim or num_rounds out of range",
        ));
    }
    if let Some(m) = &warm {
        predict::host_serve(ctx, m, &data, &guest, "warmstart", "train_data")?;
    }

    let builder = TreeBuilder {
        ctx,
        guest: &guest,
        guest_site: sitename(&guest),
        sitename: &site,
        binning: &binning,
        bins: &bins,
        layout: &layout,
        feature_names: &data.feature_names,
        hist_sub: params.hist_sub,
        n: data.n(),
    };
    let mut trees = warm.as_ref().map(|m| m.trees.clone()).unwrap_or_default();
    let mut importance = warm
        .as_ref()
        .map(|m| m.feature_importance.clone())
        .unwrap_or_default();
    let mut keys: Option<(PublicKey, PublicKey)> = None;
    let mut max_depth = 0;
    for _round in 0..meta.num_rounds {
        for _k in 0..meta.tree_dim {
            ctx.check_canceled()?;
            let tag = format!("tree-{}", trees.len());
            let start: TreeStart = fed.get_one("tree_start", &tag, &guest)?;
            if let TreeStart::Federated { max_depth: d, .. } = start {
                max_depth = d;
                if keys.is_none() {
                    let pk: PublicKey = fed.get_one("en_kit", "fit", &guest)?;
                    // Rerandomize with a DJN base of our own, not the guest's.
                    let pk_rand = pk.with_fresh_djn_base(&mut rand::thread_rng());
                    keys = Some((pk, pk_rand));
                }
            }
            let (tree, imp) = builder.build(trees.len(), start, keys.as_ref())?;
            for (name, i) in imp {
                let e: &mut Importance = importance.entry(name).or_default();
                e.gain += i.gain;
                e.split += i.split;
            }
            trees.push(tree);
        }
    }
    let model = SbtModel {
        model_version: MODEL_VERSION,
        role: "host".into(),
        sitename: site,
        hyper_param: HyperParam {
            num_trees: (warm_trees as u32) / meta.tree_dim + meta.num_rounds,
            max_depth,
            max_bin: params.max_bin,
            complete_secure: meta.complete_secure,
            learning_rate: None,
            objective: None,
            l2: None,
            num_class: None,
        },
        tree_dim: meta.tree_dim,
        trees,
        fid_name_mapping: data
            .feature_names
            .iter()
            .enumerate()
            .map(|(i, n)| (i.to_string(), n.clone()))
            .collect(),
        feature_importance: importance,
        host_feature_importance: BTreeMap::new(),
        init_score: None,
        loss_history: Vec::new(),
    };
    ctx.output_model("output_model", model.to_json());
    Ok(())
}

/// Serves the guest's prediction at a host.
pub fn predict(ctx: &Ctx, model: &SbtModel) -> Result<(), ComponentError> {
    let df = ctx.input_data("test_data")?;
    let data = LocalData::load(&df, "test_data")?;
    let guest = ctx.guest()?;
    predict::host_serve(ctx, model, &data, &guest, "predict", "test_data")
}
