//! Federated prediction (FATE `secureboost/common/predict.py`, fate-spec §4.5): the guest walks
//! every tree as far as its own splits take each sample; samples that stop at a host's split go
//! to the hosts in one batch per round, each host walks its own splits and returns the new
//! positions, and the rounds repeat until every sample is at a leaf of every tree. A host never
//! learns leaf weights or scores; the guest never learns a host's features or thresholds, only
//! where samples went.

use super::binning::goes_left;
use super::data::LocalData;
use super::messages::{PROTOCOL_VERSION, PendingSamples, PredictMeta};
use super::model::{Node, SbtModel};
use fate_runtime::{ComponentError, Ctx};
use fate_types::Party;
use rayon::prelude::*;

/// Largest number of trees a peer may announce.
const MAX_TREES: u32 = 1 << 20;

fn peer_err(peer: &Party, what: &str, reason: impl std::fmt::Display) -> ComponentError {
    ComponentError::Data(format!("{what} from {peer}: {reason}"))
}

/// Walks one tree from `pos` while the node is split by `sitename`; returns the node reached.
fn walk(
    nodes: &[Node],
    mut pos: usize,
    sitename: &str,
    row: impl Fn(&str) -> Option<f64>,
) -> usize {
    loop {
        let node = &nodes[pos];
        let Some((l, r)) = node.children() else {
            return pos;
        };
        if node.sitename != sitename {
            return pos;
        }
        let (Some(fid), Some(bid)) = (&node.fid, node.bid) else {
            return pos;
        };
        let Some(x) = row(fid) else { return pos };
        pos = if goes_left(x, bid) { l } else { r };
    }
}

/// Column index of every feature name of the model in `data`.
fn feature_lookup(
    model: &SbtModel,
    data: &LocalData,
    key: &str,
) -> Result<std::collections::HashMap<String, usize>, ComponentError> {
    let names = model.feature_names();
    let cols = data.columns_of(&names, key)?;
    Ok(names.into_iter().zip(cols).collect())
}

/// The guest's side: raw scores (`dim` per sample, the regression init score included) of
/// every sample of `data` under `model`, asking the hosts at their splits. `prefix` names the
/// rounds' tags (`predict`, `warmstart`).
pub fn guest_raw_scores(
    ctx: &Ctx,
    model: &SbtModel,
    data: &LocalData,
    hosts: &[Party],
    prefix: &str,
    key: &str,
) -> Result<Vec<f64>, ComponentError> {
    let lookup = feature_lookup(model, data, key)?;
    let n = data.n();
    let n_trees = model.trees.len();
    let fed = &ctx.federation;
    let meta = PredictMeta {
        version: PROTOCOL_VERSION,
        n_samples: n as u64,
        sample_digest: data.digest,
        n_trees: n_trees as u32,
    };
    fed.remote("predict_meta", prefix, hosts, &meta)?;

    let at_leaf = |t: usize, p: u32| model.trees[t].nodes[p as usize].is_leaf;
    let mut pos = vec![0u32; n * n_trees];
    let mut pending: Vec<u32> = (0..n as u32).collect();
    let max_rounds = model.max_depth() + 2;
    for round in 0.. {
        ctx.check_canceled()?;
        let tag = format!("{prefix}.round-{round}");
        // Walk the guest's own splits.
        let updates: Vec<(u32, Vec<u32>)> = ctx.computing.install(|| {
            pending
                .par_iter()
                .map(|&i| {
                    let i_us = i as usize;
                    let row = |name: &str| lookup.get(name).map(|&c| data.columns[c][i_us]);
                    let walked = (0..n_trees)
                        .map(|t| {
                            walk(
                                &model.trees[t].nodes,
                                pos[i_us * n_trees + t] as usize,
                                &model.sitename,
                                row,
                            ) as u32
                        })
                        .collect();
                    (i, walked)
                })
                .collect()
        });
        for (i, walked) in updates {
            pos[i as usize * n_trees..(i as usize + 1) * n_trees].copy_from_slice(&walked);
        }
        pending.retain(|&i| (0..n_trees).any(|t| !at_leaf(t, pos[i as usize * n_trees + t])));
        let stop = pending.is_empty();
        fed.remote("need_stop", &tag, hosts, &stop)?;
        if stop {
            break;
        }
        if hosts.is_empty() {
            return Err(ComponentError::Input {
                key: key.to_string(),
                reason: "the model has splits of a host, but the task has no host".into(),
            });
        }
        if round >= max_rounds {
            return Err(ComponentError::Failed(format!(
                "prediction did not finish after {round} rounds; a host does not advance its splits"
            )));
        }
        let positions: Vec<u32> = pending
            .iter()
            .flat_map(|&i| {
                pos[i as usize * n_trees..(i as usize + 1) * n_trees]
                    .iter()
                    .copied()
            })
            .collect();
        let batch = PendingSamples {
            samples: pending.clone(),
            positions,
        };
        fed.remote("pending_samples", &tag, hosts, &batch)?;
        let mut changed = vec![false; batch.positions.len()];
        for host in hosts {
            let updated: Vec<u32> = fed.get_one("updated_pos", &tag, host)?;
            if updated.len() != batch.positions.len() {
                return Err(peer_err(
                    host,
                    "updated_pos",
                    format!(
                        "{} positions, expected {}",
                        updated.len(),
                        batch.positions.len()
                    ),
                ));
            }
            for (j, (&new, &old)) in updated.iter().zip(&batch.positions).enumerate() {
                if new == old {
                    continue;
                }
                let t = j % n_trees;
                let nodes = &model.trees[t].nodes;
                let from = &nodes[old as usize];
                let valid = !from.is_leaf
                    && from.sitename != model.sitename
                    && new > old
                    && (new as usize) < nodes.len()
                    && !changed[j];
                if !valid {
                    return Err(peer_err(
                        host,
                        "updated_pos",
                        format!("tree {t}: a move from node {old} to node {new} is not allowed"),
                    ));
                }
                changed[j] = true;
                let i = batch.samples[j / n_trees] as usize;
                pos[i * n_trees + t] = new;
            }
        }
    }

    // Sum the leaf weights in tree order, from the init score, as training accumulates them.
    let dim = model.tree_dim as usize;
    let lr = model.hyper_param.learning_rate.unwrap_or(0.0);
    let init = model.init_score.unwrap_or(0.0);
    let mut raw = vec![init; n * dim];
    for i in 0..n {
        for t in 0..n_trees {
            let leaf = &model.trees[t].nodes[pos[i * n_trees + t] as usize];
            raw[i * dim + t % dim] += lr * leaf.weight;
        }
    }
    Ok(raw)
}

/// A host's side of [`guest_raw_scores`].
pub fn host_serve(
    ctx: &Ctx,
    model: &SbtModel,
    data: &LocalData,
    guest: &Party,
    prefix: &str,
    key: &str,
) -> Result<(), ComponentError> {
    let lookup = feature_lookup(model, data, key)?;
    let fed = &ctx.federation;
    let meta: PredictMeta = fed.get_one("predict_meta", prefix, guest)?;
    if meta.version != PROTOCOL_VERSION {
        return Err(peer_err(
            guest,
            "predict_meta",
            format!(
                "protocol version {} (expected {PROTOCOL_VERSION})",
                meta.version
            ),
        ));
    }
    let n = data.n();
    if meta.n_samples != n as u64 || meta.sample_digest != data.digest {
        return Err(ComponentError::Input {
            key: key.to_string(),
            reason: format!(
                "the guest predicts {} samples and this host has {n}, or their sample ids differ; both parties need the same samples (run psi first)",
                meta.n_samples
            ),
        });
    }
    let n_trees = model.trees.len();
    if meta.n_trees > MAX_TREES || meta.n_trees as usize != n_trees {
        return Err(ComponentError::Input {
            key: key.to_string(),
            reason: format!(
                "the guest's model has {} trees but this host's has {n_trees}",
                meta.n_trees
            ),
        });
    }
    let max_rounds = model.max_depth() + 2;
    for round in 0.. {
        ctx.check_canceled()?;
        let tag = format!("{prefix}.round-{round}");
        let stop: bool = fed.get_one("need_stop", &tag, guest)?;
        if stop {
            break;
        }
        if round >= max_rounds {
            return Err(peer_err(
                guest,
                "need_stop",
                format!(
                    "more than {max_rounds} rounds for trees of depth {}",
                    model.max_depth()
                ),
            ));
        }
        let batch: PendingSamples = fed.get_one("pending_samples", &tag, guest)?;
        let ok_samples = batch.samples.windows(2).all(|w| w[0] < w[1])
            && batch.samples.last().is_none_or(|&i| (i as usize) < n);
        if !ok_samples || batch.positions.len() != batch.samples.len().saturating_mul(n_trees) {
            return Err(peer_err(
                guest,
                "pending_samples",
                "sample indexes or position count do not match the data",
            ));
        }
        if let Some((j, &p)) = batch
            .positions
            .iter()
            .enumerate()
            .find(|&(j, &p)| p as usize >= model.trees[j % n_trees].nodes.len())
        {
            return Err(peer_err(
                guest,
                "pending_samples",
                format!("position {p} is not a node of tree {}", j % n_trees),
            ));
        }
        let updated: Vec<u32> = ctx.computing.install(|| {
            batch
                .positions
                .par_iter()
                .enumerate()
                .map(|(j, &p)| {
                    let i = batch.samples[j / n_trees] as usize;
                    let row = |name: &str| lookup.get(name).map(|&c| data.columns[c][i]);
                    walk(
                        &model.trees[j % n_trees].nodes,
                        p as usize,
                        &model.sitename,
                        row,
                    ) as u32
                })
                .collect()
        });
        fed.remote("updated_pos", &tag, std::slice::from_ref(guest), &updated)?;
    }
    Ok(())
}
