//! The guest: labels, gradients, the Paillier key, split decisions and leaf weights
//! (FATE `HeteroSecureBoostGuest` and `HeteroDecisionTreeGuest`, fate-spec §4.5).

use super::binning::Binning;
use super::data::LocalData;
use super::hist::{PointLayout, PointSums};
use super::messages::{
    DONE, Decision, Directions, HostHist, PROTOCOL_VERSION, ShapeNode, TrainMeta, TreeStart, bit,
};
use super::model::{HyperParam, Importance, MODEL_VERSION, Node, SbtModel, Tree};
use super::objective;
use super::params::{Objective, TrainParams};
use super::split::{Candidate, SplitRules, best_split};
use super::{predict, sitename};
use fate_crypto::packing::{GH_PRECISION, GhPacker};
use fate_crypto::paillier::{ObfuscatorPool, PublicKey, SecretKey};
use fate_runtime::{ComponentError, Ctx, LogLevel};
use fate_types::{Party, Role};
use rayon::prelude::*;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Instant;

/// Most obfuscators kept ready (memory: this many ciphertext-sized integers).
const PREFILL_MAX: usize = 1 << 17;

/// Largest number of split points a host may send per node.
const MAX_HOST_POINTS: usize = 1 << 22;

fn crypto_err(what: &str, e: fate_crypto::Error) -> ComponentError {
    ComponentError::Failed(format!("{what}: {e}"))
}

fn host_err(host: &Party, what: &str, reason: impl std::fmt::Display) -> ComponentError {
    ComponentError::Data(format!("`{what}` from {host}: {reason}"))
}

/// Precomputes DJN obfuscators for the next tree's g/h encryption on a thread of its own while
/// the guest waits for the hosts (histograms, directions), so that encrypting g and h costs
/// little more than the plaintext part (fate-spec §4.5: FATE spends most of a tree encrypting).
struct Prefill {
    pool: ObfuscatorPool,
    capacity: usize,
    stop: AtomicBool,
    lock: Mutex<()>,
    wake: Condvar,
}

impl Prefill {
    fn new(pk: PublicKey, capacity: usize) -> Prefill {
        Prefill {
            pool: ObfuscatorPool::new(pk, capacity),
            capacity,
            stop: AtomicBool::new(false),
            lock: Mutex::new(()),
            wake: Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.lock.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The filler loop: fills in small batches, sleeps on the condition variable while full.
    fn run(&self) {
        while !self.stop.load(Ordering::SeqCst) {
            if self.pool.len() < self.capacity {
                self.pool.fill(64);
                continue;
            }
            let guard = self.lock();
            let _guard = self
                .wake
                .wait_while(guard, |_| {
                    !self.stop.load(Ordering::SeqCst) && self.pool.len() >= self.capacity
                })
                .unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Wakes the filler after the pool was drained.
    fn notify(&self) {
        let _guard = self.lock();
        self.wake.notify_all();
    }

    /// Ends the filler loop.
    fn finish(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.notify();
    }
}

/// Stops a [`Prefill`] when training leaves its scope, by success or by error.
struct FinishOnDrop<'a>(&'a Prefill);

impl Drop for FinishOnDrop<'_> {
    fn drop(&mut self) {
        self.0.finish();
    }
}

/// Everything a guest tree needs besides its gradients.
struct TreeBuilder<'a> {
    ctx: &'a Ctx,
    hosts: &'a [Party],
    host_sites: &'a [String],
    sitename: &'a str,
    binning: &'a Binning,
    bins: &'a [Vec<u32>],
    layout: &'a PointLayout,
    feature_names: &'a [String],
    rules: SplitRules,
    params: &'a TrainParams,
    objective: Objective,
    keys: Option<&'a (PublicKey, SecretKey)>,
    prefill: Option<&'a Prefill>,
}

/// A split chosen for one node.
enum Owner {
    Guest { feature: usize, bin: usize },
    Host { host: usize },
}

struct Chosen {
    owner: Owner,
    cand: Candidate,
}

/// What one tree produced at the guest.
struct BuiltTree {
    tree: Tree,
    /// Leaf weight of every training sample.
    sample_weights: Vec<f64>,
    host_importance: BTreeMap<String, Importance>,
}

/// How host histograms are laid out this tree.
#[derive(Clone, Copy)]
struct Layout {
    packer: Option<GhPacker>,
    squeeze: bool,
}

impl TreeBuilder<'_> {
    fn fed(&self) -> &fate_federation::Federation {
        &self.ctx.federation
    }

    fn tree_hyper_param(&self) -> serde_json::Value {
        json!({
            "max_depth": self.params.max_depth,
            "valid_features": null,
            "l1": self.rules.l1,
            "l2": self.rules.l2,
            "use_missing": false,
            "zero_as_missing": false,
            "objective": self.objective.as_str(),
        })
    }

    /// Encrypts g and h and sends them with the packing layout (FATE `_send_gh`).
    fn send_gh(
        &self,
        tag: &str,
        g: &[f64],
        h: &[f64],
        last: bool,
    ) -> Result<Layout, ComponentError> {
        let (pk, _) = self
            .keys
            .ok_or_else(|| ComponentError::Failed("no Paillier key for a federated tree".into()))?;
        let n = g.len();
        let bits = pk.key_bits();
        if let Some(i) = g.iter().chain(h).position(|v| !v.is_finite()) {
            return Err(ComponentError::Failed(format!(
                "gradient or hessian {i} is not finite; the scores diverged"
            )));
        }
        let packer = if self.params.gh_pack {
            let p = match self.objective {
                Objective::RegressionL2 => {
                    let g_max = g.iter().fold(0.0f64, |m, v| m.max(v.abs()));
                    GhPacker::new(bits, n as u64, if g_max > 0.0 { g_max } else { 1.0 }, 2.0)
                }
                _ => GhPacker::binary(bits, n as u64),
            };
            Some(p.map_err(|e| crypto_err("gh packing", e))?)
        } else {
            None
        };
        let squeeze = packer.is_some() && self.params.split_info_pack;
        let start = TreeStart::Federated {
            max_depth: self.params.max_depth,
            gh_pack: packer.is_some(),
            split_info_pack: squeeze,
            pair_bits: packer.map_or(0, |p| p.pair_bits()),
            pack_capacity: packer.map_or(1, |p| p.squeeze_capacity() as u32),
        };
        self.fed().remote("tree_start", tag, self.hosts, &start)?;
        let started = Instant::now();
        let cts = self
            .ctx
            .computing
            .install(|| -> Result<_, fate_crypto::Error> {
                let plain = match &packer {
                    Some(p) => p.pack_vec(g, h)?,
                    None => g
                        .iter()
                        .chain(h)
                        .map(|&v| fate_crypto::encoding::encode_scaled(v, GH_PRECISION))
                        .collect::<Result<Vec<_>, _>>()?,
                };
                match self.prefill {
                    Some(pre) => plain.par_iter().map(|m| pre.pool.encrypt(m)).collect(),
                    None => pk.encrypt_vec(&plain),
                }
            });
        if let Some(pre) = self.prefill {
            if last { pre.finish() } else { pre.notify() }
        }
        let cts = cts.map_err(|e| crypto_err("encrypting g and h", e))?;
        let bytes = self.ctx.computing.install(|| pk.ciphertexts_to_bytes(&cts));
        self.fed().remote("en_gh", tag, self.hosts, &bytes)?;
        self.ctx.info(format!(
            "{tag}: encrypted {} g/h ciphertexts in {:.2?}",
            cts.len(),
            started.elapsed()
        ));
        Ok(Layout { packer, squeeze })
    }

    /// Decrypts one host's layer histograms into `(G_L, H_L, count_L)` per shuffled split point.
    fn decode_hist(
        &self,
        host: &Party,
        hist: HostHist,
        node_counts: &[u64],
        layout: Layout,
    ) -> Result<Vec<Vec<PointSums>>, ComponentError> {
        let (pk, sk) = self
            .keys
            .ok_or_else(|| ComponentError::Failed("no Paillier key".into()))?;
        if hist.nodes.len() != node_counts.len() {
            return Err(host_err(
                host,
                "hist",
                format!(
                    "{} node histograms for a layer of {} nodes",
                    hist.nodes.len(),
                    node_counts.len()
                ),
            ));
        }
        let mut out = Vec::with_capacity(hist.nodes.len());
        let n_points = hist.nodes.first().map_or(0, |h| h.counts.len());
        for (k, node) in hist.nodes.into_iter().enumerate() {
            let p = node.counts.len();
            if p != n_points || p > MAX_HOST_POINTS {
                return Err(host_err(
                    host,
                    "hist",
                    format!("node {k} has {p} split points, the first node {n_points}"),
                ));
            }
            if let Some(c) = node.counts.iter().find(|&&c| u64::from(c) > node_counts[k]) {
                return Err(host_err(
                    host,
                    "hist",
                    format!(
                        "a split point of node {k} counts {c} of its {} samples",
                        node_counts[k]
                    ),
                ));
            }
            let per_ct = match layout.packer {
                Some(packer) if layout.squeeze => packer.squeeze_capacity().max(1),
                _ => 1,
            };
            let expected = match layout.packer {
                Some(_) => p.div_ceil(per_ct),
                None => 2 * p,
            };
            if node.ciphertexts.len() != expected * pk.ciphertext_bytes() {
                return Err(host_err(
                    host,
                    "hist",
                    format!(
                        "node {k}: {} bytes, expected {expected} ciphertexts",
                        node.ciphertexts.len()
                    ),
                ));
            }
            let plain = self
                .ctx
                .computing
                .install(|| -> Result<_, fate_crypto::Error> {
                    let cts = pk.ciphertexts_from_bytes(&node.ciphertexts)?;
                    Ok(sk.decrypt_vec(&cts))
                });
            let plain = plain.map_err(|e| host_err(host, "hist", e))?;
            let counts: Vec<u64> = node.counts.iter().map(|&c| u64::from(c)).collect();
            let mut points = Vec::with_capacity(p);
            match layout.packer {
                Some(packer) => {
                    for (m, group) in plain.iter().zip(counts.chunks(per_ct)) {
                        let sums = if layout.squeeze {
                            packer.unpack_squeezed(m, group)
                        } else {
                            packer.unpack_sum(m, group[0]).map(|s| vec![s])
                        };
                        let sums = sums.map_err(|e| host_err(host, "hist", e))?;
                        points.extend(sums.into_iter().zip(group).map(|((g, h), &c)| (g, h, c)));
                    }
                }
                None => {
                    for (pair, &c) in plain.chunks(2).zip(&counts) {
                        let mut gh = [0.0; 2];
                        for (slot, m) in gh.iter_mut().zip(pair) {
                            let signed = fate_crypto::encoding::signed_from_residue(
                                m.clone(),
                                pk,
                                "histogram sum",
                            )
                            .map_err(|e| host_err(host, "hist", e))?;
                            *slot = fate_crypto::encoding::decode_scaled(&signed, GH_PRECISION);
                        }
                        points.push((gh[0], gh[1], c));
                    }
                }
            }
            out.push(points);
        }
        Ok(out)
    }

    /// Builds tree `t` (FATE `booster_fit`).
    fn build(
        &self,
        t: usize,
        g: &[f64],
        h: &[f64],
        local: bool,
        last_federated: bool,
    ) -> Result<BuiltTree, ComponentError> {
        let n = g.len();
        let tag = format!("tree-{t}");
        let federated = !local;
        let layout = if federated {
            Some(self.send_gh(&tag, g, h, last_federated)?)
        } else {
            if !self.hosts.is_empty() {
                self.fed()
                    .remote("tree_start", &tag, self.hosts, &TreeStart::Local)?;
            }
            None
        };

        let mut nodes = vec![Node::new(0, None, None, false, n as u64)];
        nodes[0].grad = Some(g.iter().sum());
        nodes[0].hess = Some(h.iter().sum());
        nodes[0].sitename = self.sitename.to_string();
        let mut importance: BTreeMap<String, Importance> = BTreeMap::new();
        let mut host_importance: BTreeMap<String, Importance> = BTreeMap::new();
        // pos[i]: index of sample i's node in the current layer, or DONE.
        let mut pos = vec![0u32; n];
        let mut leaf_of = vec![0u32; n];
        let mut layer: Vec<u32> = vec![0];
        let mut last_id = 0u32;

        for depth in 0..self.params.max_depth {
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
            let node_counts: Vec<u64> = node_samples.iter().map(|s| s.len() as u64).collect();

            // Best guest split of every node.
            let plain = self
                .ctx
                .computing
                .install(|| self.layout.plain(self.bins, g, h, &node_samples));
            let mut chosen: Vec<Option<Chosen>> = layer
                .iter()
                .zip(&plain)
                .map(|(&nid, points)| {
                    let node = &nodes[nid as usize];
                    best_split(
                        &self.rules,
                        node.grad.unwrap_or(0.0),
                        node.hess.unwrap_or(0.0),
                        node.sample_num,
                        points.iter().copied(),
                    )
                    .and_then(|cand| {
                        let (feature, bin) = self.layout.point(cand.index as usize)?;
                        Some(Chosen {
                            owner: Owner::Guest { feature, bin },
                            cand,
                        })
                    })
                })
                .collect();

            // Best host splits, from their encrypted histograms.
            if let Some(layout) = layout {
                for (hi, host) in self.hosts.iter().enumerate() {
                    let tw = Instant::now();
                    let hist: HostHist = self.fed().get_one("hist", &ltag, host)?;
                    let td = Instant::now();
                    let points = self.decode_hist(host, hist, &node_counts, layout)?;
                    self.ctx.log.log(
                        LogLevel::Debug,
                        &format!(
                            "{ltag}: waited {:.2?} for {host}, decrypted in {:.2?}",
                            td - tw,
                            td.elapsed()
                        ),
                    );
                    for (k, &nid) in layer.iter().enumerate() {
                        let node = &nodes[nid as usize];
                        let cand = best_split(
                            &self.rules,
                            node.grad.unwrap_or(0.0),
                            node.hess.unwrap_or(0.0),
                            node.sample_num,
                            points[k].iter().copied(),
                        );
                        if let Some(cand) = cand
                            && chosen[k].as_ref().is_none_or(|c| cand.gain > c.cand.gain)
                        {
                            chosen[k] = Some(Chosen {
                                owner: Owner::Host { host: hi },
                                cand,
                            });
                        }
                    }
                }
            }

            // Update the tree (FATE `_update_tree`).
            let mut next_layer = Vec::new();
            let mut decisions = Vec::with_capacity(layer.len());
            for (k, &nid) in layer.iter().enumerate() {
                let Some(c) = &chosen[k] else {
                    let node = &mut nodes[nid as usize];
                    node.is_leaf = true;
                    node.sitename = self.sitename.to_string();
                    decisions.push(Decision::Leaf);
                    continue;
                };
                let (l, r) = (last_id + 1, last_id + 2);
                last_id += 2;
                let (pg, ph, pc) = {
                    let p = &nodes[nid as usize];
                    (p.grad.unwrap_or(0.0), p.hess.unwrap_or(0.0), p.sample_num)
                };
                let node = &mut nodes[nid as usize];
                node.l = i64::from(l);
                node.r = i64::from(r);
                match c.owner {
                    Owner::Guest { feature, bin } => {
                        node.sitename = self.sitename.to_string();
                        node.fid = Some(self.feature_names[feature].clone());
                        node.bid = Some(self.binning.threshold(feature, bin));
                        importance
                            .entry(self.feature_names[feature].clone())
                            .or_default()
                            .add(c.cand.gain);
                    }
                    Owner::Host { host } => {
                        node.sitename = self.host_sites[host].clone();
                        node.split_id = Some(c.cand.index);
                        host_importance
                            .entry(self.host_sites[host].clone())
                            .or_default()
                            .add(c.cand.gain);
                    }
                }
                decisions.push(Decision::Split {
                    left: l,
                    right: r,
                    sitename: node.sitename.clone(),
                    split_id: node.split_id,
                });
                let (gl, hl, cl) = (c.cand.gl, c.cand.hl, c.cand.cl);
                let mut left = Node::new(l, Some(nid), Some(r), true, cl);
                left.grad = Some(gl);
                left.hess = Some(hl);
                left.weight = self.rules.node_weight(gl, hl);
                let mut right = Node::new(r, Some(nid), Some(l), false, pc - cl);
                right.grad = Some(pg - gl);
                right.hess = Some(ph - hl);
                right.weight = self.rules.node_weight(pg - gl, ph - hl);
                nodes.push(left);
                nodes.push(right);
                next_layer.push(l);
                next_layer.push(r);
            }

            // Tell each host the decisions, with split ids only for its own splits.
            if federated {
                for (hi, host) in self.hosts.iter().enumerate() {
                    let mine: Vec<Decision> = decisions
                        .iter()
                        .map(|d| match d {
                            Decision::Split {
                                left,
                                right,
                                sitename,
                                split_id,
                            } => Decision::Split {
                                left: *left,
                                right: *right,
                                sitename: sitename.clone(),
                                split_id: if *sitename == self.host_sites[hi] {
                                    *split_id
                                } else {
                                    None
                                },
                            },
                            Decision::Leaf => Decision::Leaf,
                        })
                        .collect();
                    self.fed()
                        .remote("sync_nodes", &ltag, std::slice::from_ref(host), &mine)?;
                }
            }

            // Directions: the guest's own splits here, the hosts' from `updated_data`.
            let mut go_left: Vec<Option<Vec<bool>>> = vec![None; layer.len()];
            for (k, c) in chosen.iter().enumerate() {
                if let Some(Chosen {
                    owner: Owner::Guest { feature, bin },
                    ..
                }) = c
                {
                    let column = &self.bins[*feature];
                    go_left[k] = Some(
                        node_samples[k]
                            .iter()
                            .map(|&i| column[i as usize] as usize <= *bin)
                            .collect(),
                    );
                }
            }
            if federated {
                for (hi, host) in self.hosts.iter().enumerate() {
                    let dirs: Directions = self.fed().get_one("updated_data", &ltag, host)?;
                    let owned: Vec<usize> = (0..layer.len())
                        .filter(|&k| matches!(chosen[k], Some(Chosen { owner: Owner::Host { host }, .. }) if host == hi))
                        .collect();
                    if dirs.nodes.len() != owned.len() {
                        return Err(host_err(
                            host,
                            "updated_data",
                            format!(
                                "directions for {} nodes, expected {}",
                                dirs.nodes.len(),
                                owned.len()
                            ),
                        ));
                    }
                    for (&k, bits) in owned.iter().zip(dirs.nodes) {
                        let m = node_samples[k].len();
                        if bits.len() != m.div_ceil(8) || (m..bits.len() * 8).any(|j| bit(&bits, j))
                        {
                            return Err(host_err(
                                host,
                                "updated_data",
                                format!(
                                    "node {} has {m} samples, the bit set does not fit",
                                    layer[k]
                                ),
                            ));
                        }
                        let dirs: Vec<bool> = (0..m).map(|j| bit(&bits, j)).collect();
                        let lefts = dirs.iter().filter(|&&b| b).count() as u64;
                        let expected = chosen[k].as_ref().map_or(0, |c| c.cand.cl);
                        if lefts != expected {
                            return Err(host_err(
                                host,
                                "updated_data",
                                format!(
                                    "node {} sends {lefts} samples left, its histogram said {expected}",
                                    layer[k]
                                ),
                            ));
                        }
                        go_left[k] = Some(dirs);
                    }
                }
            }

            // New sample positions (FATE `_update_sample_pos`); samples on leaves drop out.
            let mut next_index = std::collections::HashMap::with_capacity(next_layer.len());
            for (j, &nid) in next_layer.iter().enumerate() {
                next_index.insert(nid, j as u32);
            }
            let mut new_nids = vec![DONE; n];
            for (k, &nid) in layer.iter().enumerate() {
                let node = &nodes[nid as usize];
                match (&go_left[k], node.children()) {
                    (Some(dirs), Some((l, r))) => {
                        for (&i, &left) in node_samples[k].iter().zip(dirs) {
                            let child = if left { l } else { r } as u32;
                            new_nids[i as usize] = child;
                            pos[i as usize] = next_index[&child];
                        }
                    }
                    _ => {
                        for &i in &node_samples[k] {
                            leaf_of[i as usize] = nid;
                            pos[i as usize] = DONE;
                        }
                    }
                }
            }
            if federated && depth + 1 < self.params.max_depth && !next_layer.is_empty() {
                self.fed()
                    .remote("new_sample_pos", &ltag, self.hosts, &new_nids)?;
            }
            layer = next_layer;
        }
        // The last layer's nodes are leaves.
        for &nid in &layer {
            let node = &mut nodes[nid as usize];
            node.is_leaf = true;
            node.sitename = self.sitename.to_string();
        }
        for (i, &p) in pos.iter().enumerate() {
            if p != DONE {
                leaf_of[i] = layer[p as usize];
            }
        }
        let sample_weights = leaf_of.iter().map(|&l| nodes[l as usize].weight).collect();
        if local && !self.hosts.is_empty() {
            let shape: Vec<ShapeNode> = nodes
                .iter()
                .map(|n| ShapeNode {
                    is_leaf: n.is_leaf,
                    l: n.l,
                    r: n.r,
                    sample_num: n.sample_num,
                })
                .collect();
            self.fed().remote("sync_tree", &tag, self.hosts, &shape)?;
        }
        Ok(BuiltTree {
            tree: Tree {
                nodes,
                feature_importance: importance,
                hyper_param: self.tree_hyper_param(),
            },
            sample_weights,
            host_importance,
        })
    }
}

/// Trains at the guest and writes `train_output_data` and `output_model`.
pub fn train(ctx: &Ctx, params: &TrainParams) -> Result<(), ComponentError> {
    let df = ctx.input_data("train_data")?;
    if ctx.inputs.contains_key("validate_data") {
        ctx.info("validate_data is accepted but not used during training (as in FATE 2.x)");
    }
    let data = LocalData::load(&df, "train_data")?;
    let warm = ctx
        .input_model("warm_start_model")
        .map(|v| SbtModel::from_json(v, "guest", "warm_start_model"))
        .transpose()?;
    let mut params = params.clone();
    if let Some(m) = &warm {
        // FATE's `from_model`: the model's objective, class count and learning rate win.
        if let Some(obj) = m
            .hyper_param
            .objective
            .as_deref()
            .and_then(Objective::parse)
        {
            params.objective = obj;
        }
        params.num_class = m.hyper_param.num_class.unwrap_or(params.num_class);
        params.learning_rate = m.hyper_param.learning_rate.unwrap_or(params.learning_rate);
    }
    let objective = params.objective;
    let labels = data.checked_labels(objective, params.num_class, "train_data")?;
    let dim = params.tree_dim() as usize;
    let hosts = ctx.parties_of(Role::Host);
    let host_sites: Vec<String> = hosts.iter().map(sitename).collect();
    let site = sitename(&ctx.local);
    let n = data.n();

    let binning = Binning::fit(&data.columns, params.max_bin);
    let bins = binning.bucketize(&data.columns);
    let layout = PointLayout::new(&binning);
    let warm_trees = warm.as_ref().map_or(0, |m| m.trees.len());
    let warm_rounds = (warm_trees / dim) as u32;

    let meta = TrainMeta {
        version: PROTOCOL_VERSION,
        n_samples: n as u64,
        sample_digest: data.digest,
        tree_dim: dim as u32,
        num_rounds: params.num_trees,
        warm_trees: warm_trees as u32,
        complete_secure: params.complete_secure,
        learning_rate: params.learning_rate,
    };
    ctx.federation.remote("train_meta", "fit", &hosts, &meta)?;

    let (mut scores, mut init_score) = objective::init_scores(objective, &labels, dim);
    if let Some(m) = &warm {
        scores = predict::guest_raw_scores(ctx, m, &data, &hosts, "warmstart", "train_data")?;
        init_score = m.init_score;
    }

    let any_federated = (0..params.num_trees).any(|r| warm_rounds + r >= params.complete_secure);
    let keys = if any_federated && !hosts.is_empty() {
        let started = Instant::now();
        let keys = fate_crypto::paillier::keygen(params.he.key_length, &mut rand::thread_rng())
            .map_err(|e| crypto_err("Paillier key generation", e))?;
        ctx.federation.remote("en_kit", "fit", &hosts, &keys.0)?;
        ctx.info(format!(
            "generated a {}-bit Paillier key in {:.2?}",
            params.he.key_length,
            started.elapsed()
        ));
        Some(keys)
    } else {
        None
    };

    // Rounds whose trees use the hosts' features; the last one stops the obfuscator prefill.
    let federated: Vec<bool> = (0..params.num_trees)
        .map(|r| warm_rounds + r >= params.complete_secure && !hosts.is_empty())
        .collect();
    let last_federated = federated.iter().rposition(|&f| f);
    let prefill = keys.as_ref().map(|(pk, _)| {
        // Build the key's fixed-base table on the computing pool before the filler uses it.
        let _ = ctx
            .computing
            .install(|| pk.encrypt_vec(&[Default::default()]));
        Prefill::new(pk.clone(), n.min(PREFILL_MAX))
    });
    let builder = TreeBuilder {
        ctx,
        hosts: &hosts,
        host_sites: &host_sites,
        sitename: &site,
        binning: &binning,
        bins: &bins,
        layout: &layout,
        feature_names: &data.feature_names,
        rules: SplitRules::from_params(&params),
        params: &params,
        objective,
        keys: keys.as_ref(),
        prefill: prefill.as_ref(),
    };
    let mut trees = warm.as_ref().map(|m| m.trees.clone()).unwrap_or_default();
    let mut importance = warm
        .as_ref()
        .map(|m| m.feature_importance.clone())
        .unwrap_or_default();
    let mut host_importance = warm
        .as_ref()
        .map(|m| m.host_feature_importance.clone())
        .unwrap_or_default();
    let mut loss_history = warm
        .as_ref()
        .map(|m| m.loss_history.clone())
        .unwrap_or_default();
    let mut boost = || -> Result<(), ComponentError> {
        for round in 0..params.num_trees {
            ctx.check_canceled()?;
            let started = Instant::now();
            let (g, h) = objective::gradients(objective, &scores, &labels, dim);
            let r = round as usize;
            for k in 0..dim {
                let last = last_federated == Some(r) && k + 1 == dim;
                let built = builder.build(trees.len(), &g[k], &h[k], !federated[r], last)?;
                for (i, w) in built.sample_weights.iter().enumerate() {
                    scores[i * dim + k] += params.learning_rate * w;
                }
                for (name, imp) in &built.tree.feature_importance {
                    let e: &mut Importance = importance.entry(name.clone()).or_default();
                    e.gain += imp.gain;
                    e.split += imp.split;
                }
                for (name, imp) in &built.host_importance {
                    let e: &mut Importance = host_importance.entry(name.clone()).or_default();
                    e.gain += imp.gain;
                    e.split += imp.split;
                }
                trees.push(built.tree);
            }
            let loss = objective::loss(objective, &scores, &labels, dim);
            loss_history.push(loss);
            ctx.info(format!(
                "round {} done in {:.2?}, loss {loss:.6}",
                warm_rounds + round,
                started.elapsed()
            ));
        }
        Ok(())
    };
    match &prefill {
        Some(pre) => std::thread::scope(|scope| {
            let _finish = FinishOnDrop(pre);
            scope.spawn(|| pre.run());
            boost()
        })?,
        None => boost()?,
    }
    ctx.metric(
        "sbt_loss",
        "loss",
        json!(
            loss_history
                .iter()
                .enumerate()
                .map(|(i, l)| json!({"step": i, "loss": l}))
                .collect::<Vec<_>>()
        ),
    );

    let mut out = data.prediction_frame(ctx, objective, &scores, dim);
    out.schema.dataset_type = Some(fate_runtime::data::predict::TRAIN_SET.into());
    ctx.output_data("train_output_data", &out)?;
    let model = SbtModel {
        model_version: MODEL_VERSION,
        role: "guest".into(),
        sitename: site,
        hyper_param: HyperParam {
            num_trees: warm_rounds + params.num_trees,
            max_depth: params.max_depth,
            max_bin: params.max_bin,
            complete_secure: params.complete_secure,
            learning_rate: Some(params.learning_rate),
            objective: Some(objective.as_str().into()),
            l2: Some(params.l2),
            num_class: match objective {
                Objective::BinaryBce => Some(2),
                Objective::MultiCe => Some(params.num_class),
                Objective::RegressionL2 => None,
            },
        },
        tree_dim: dim as u32,
        trees,
        fid_name_mapping: data
            .feature_names
            .iter()
            .enumerate()
            .map(|(i, n)| (i.to_string(), n.clone()))
            .collect(),
        feature_importance: importance,
        host_feature_importance: host_importance,
        init_score,
        loss_history,
    };
    ctx.output_model("output_model", model.to_json());
    Ok(())
}

/// Predicts at the guest and writes `test_output_data`.
pub fn predict(ctx: &Ctx, model: &SbtModel) -> Result<(), ComponentError> {
    let df = ctx.input_data("test_data")?;
    let data = LocalData::load(&df, "test_data")?;
    let hosts = ctx.parties_of(Role::Host);
    let objective = model
        .hyper_param
        .objective
        .as_deref()
        .and_then(Objective::parse)
        .unwrap_or(Objective::BinaryBce);
    let raw = predict::guest_raw_scores(ctx, model, &data, &hosts, "predict", "test_data")?;
    let mut out = data.prediction_frame(ctx, objective, &raw, model.tree_dim as usize);
    out.schema.dataset_type = Some(fate_runtime::data::predict::TEST_SET.into());
    ctx.output_data("test_output_data", &out)
}
