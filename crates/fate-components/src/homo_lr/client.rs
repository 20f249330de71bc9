//! A client (guest or host) of `homo_lr`: local training on its own rows, the masked upload of
//! its weighted model after each epoch, prediction with the aggregate model.

use super::names::{AGG_MODEL, AGG_WEIGHT, DH_PUBKEY, LOCAL_MODEL, LOCAL_WEIGHT};
use super::params::{PredictParams, TrainParams};
use super::{Announce, FRAC_BITS, MAX_ABS, PeerKey, SETUP_TAG, Session, epoch_tag};
use crate::coordinated_lr::optim::{LrScheduler, Optimizer, initialize};
use crate::coordinated_lr::params::InitParam;
use fate_crypto::secagg::SecAggKeyPair;
use fate_runtime::data::predict;
use fate_runtime::{ComponentError, Ctx, DataFrame, Row, Schema};
use fate_types::Party;
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// A client's rows in sample-id order.
struct Data {
    schema: Schema,
    ids: Vec<String>,
    rows: Vec<Row>,
    partitions: usize,
}

impl Data {
    /// Loads input `key`: every row with the schema's feature count and finite values, and with
    /// `labelled`, a label of 0 or 1 (FATE's binary `_check_labels`).
    fn load(ctx: &Ctx, key: &str, labelled: bool) -> Result<Data, ComponentError> {
        let df = ctx.input_data(key)?;
        let me = &ctx.local;
        let bad = |reason: String| ComponentError::Input {
            key: key.into(),
            reason,
        };
        if labelled && df.schema.label_name.is_none() {
            return Err(bad(format!(
                "{key} at {me} has no label column; homo_lr needs labels at every client"
            )));
        }
        let n_features = df.schema.feature_names.len();
        if n_features == 0 {
            return Err(bad(format!("{key} at {me} has no feature column")));
        }
        let (ids, rows): (Vec<String>, Vec<Row>) = df
            .table
            .collect(crate::limits::COLLECT_ROWS)?
            .into_iter()
            .unzip();
        for (id, row) in ids.iter().zip(&rows) {
            if row.features.len() != n_features {
                return Err(bad(format!(
                    "at {me}, sample `{id}` has {} features but the schema names {n_features}",
                    row.features.len()
                )));
            }
            if let Some(j) = row.features.iter().position(|x| !x.is_finite()) {
                return Err(bad(format!(
                    "at {me}, sample `{id}` has a non-finite value in column `{}`",
                    df.schema.feature_names[j]
                )));
            }
            if labelled && !matches!(row.label, Some(l) if l == 0.0 || l == 1.0) {
                return Err(bad(format!(
                    "at {me}, sample `{id}` has label {:?}; binary homo_lr needs labels 0 and 1",
                    row.label
                )));
            }
        }
        Ok(Data {
            schema: df.schema.clone(),
            ids,
            rows,
            partitions: df.table.num_partitions(),
        })
    }

    fn n_features(&self) -> usize {
        self.schema.feature_names.len()
    }
}

/// The trained model: FATE's `HomoLRModel` state (weights, then the intercept when fitted).
struct Model {
    w: Vec<f64>,
    fit_intercept: bool,
    threshold: f64,
    header: Vec<String>,
}

impl Model {
    fn n_features(&self) -> usize {
        self.w.len() - usize::from(self.fit_intercept)
    }

    /// `σ(w·x + b)`.
    fn score(&self, x: &[f64]) -> f64 {
        sigmoid(linear(&self.w, x, self.fit_intercept))
    }

    /// FATE's `ModelIO` of `HomoLRClient.get_model`: `data.model` is the torch state dict
    /// (`models.0.weight` as a 1×n matrix, `models.0.bias`), `meta` the settings.
    fn to_json(&self, p: &TrainParams, opt: &Optimizer) -> Value {
        let nf = self.n_features();
        let mut state = serde_json::Map::new();
        state.insert("models.0.weight".into(), json!([&self.w[..nf]]));
        if self.fit_intercept {
            state.insert("models.0.bias".into(), json!([self.w[nf]]));
        }
        json!({
            "data": {
                "model": {"feature_num": nf, "label_num": 1, "state_dict": state},
                "optimizer": opt.state_json(),
            },
            "meta": {
                "batch_size": p.batch_size,
                "max_iter": p.epochs,
                "threshold": self.threshold,
                "optimizer_param": p.optimizer.to_json(),
                "learning_rate_param": p.learning_rate_scheduler.to_json(),
                "init_param": p.init_param.to_json(),
                "ovr": false,
                "label_num": null,
                "header": self.header,
            },
        })
    }

    fn from_json(v: &Value, key: &str) -> Result<Model, ComponentError> {
        let bad = |reason: &str| ComponentError::Input {
            key: key.into(),
            reason: format!("not a homo_lr model: {reason}"),
        };
        let model = v
            .pointer("/data/model")
            .ok_or_else(|| bad("no data.model"))?;
        if model.get("label_num").and_then(Value::as_u64) != Some(1) {
            return Err(bad("only binary models (label_num 1) are supported"));
        }
        let state = model
            .get("state_dict")
            .and_then(Value::as_object)
            .ok_or_else(|| bad("no state_dict"))?;
        let weight: Vec<Vec<f64>> = state
            .get("models.0.weight")
            .cloned()
            .and_then(|w| serde_json::from_value(w).ok())
            .ok_or_else(|| bad("models.0.weight is not a matrix of numbers"))?;
        let [row] = weight.as_slice() else {
            return Err(bad("models.0.weight must have one row"));
        };
        let mut w = row.clone();
        let fit_intercept = match state.get("models.0.bias") {
            None => false,
            Some(b) => {
                let b: Vec<f64> = serde_json::from_value(b.clone())
                    .map_err(|_| bad("models.0.bias is not a list of numbers"))?;
                let [b] = b.as_slice() else {
                    return Err(bad("models.0.bias must have one value"));
                };
                w.push(*b);
                true
            }
        };
        if w.is_empty() || w.iter().any(|x| !x.is_finite()) {
            return Err(bad("the weights are empty or not finite"));
        }
        let meta = v.get("meta");
        let threshold = meta
            .and_then(|m| m.get("threshold"))
            .and_then(Value::as_f64)
            .unwrap_or(super::params::defaults::THRESHOLD);
        let header = meta
            .and_then(|m| m.get("header"))
            .cloned()
            .and_then(|h| serde_json::from_value(h).ok())
            .unwrap_or_default();
        Ok(Model {
            w,
            fit_intercept,
            threshold,
            header,
        })
    }

    fn check_features(&self, data: &Data, key: &str, me: &Party) -> Result<(), ComponentError> {
        if self.n_features() != data.n_features() {
            return Err(ComponentError::Input {
                key: key.into(),
                reason: format!(
                    "feature count mismatch at {me}: the model has {} features but the data has {}",
                    self.n_features(),
                    data.n_features()
                ),
            });
        }
        Ok(())
    }
}

/// FATE's `init_model`: weights by `init_param.method`, the intercept always 0.
fn init_weights(nf: usize, init: &InitParam) -> Vec<f64> {
    let mut w = initialize(
        nf,
        &InitParam {
            fit_intercept: false,
            ..init.clone()
        },
    );
    if init.fit_intercept {
        w.push(0.0);
    }
    w
}

pub(super) fn train(s: &Session, p: &TrainParams) -> Result<(), ComponentError> {
    let ctx = s.ctx;
    let fed = &ctx.federation;
    let me = &ctx.local;
    let arbiter = std::slice::from_ref(&s.arbiter);
    let train = Data::load(ctx, "train_data", true)?;
    let validate = if ctx.inputs.contains_key("validate_data") {
        Some(Data::load(ctx, "validate_data", true)?)
    } else {
        None
    };
    if let Some(v) = &validate
        && v.n_features() != train.n_features()
    {
        return Err(ComponentError::Input {
            key: "validate_data".into(),
            reason: format!(
                "at {me}, validate_data has {} features, train_data {}",
                v.n_features(),
                train.n_features()
            ),
        });
    }
    if train.rows.is_empty() {
        return Err(ComponentError::Input {
            key: "train_data".into(),
            reason: format!("train_data at {me} has no rows"),
        });
    }
    let warm = ctx
        .input_model("warm_start_model")
        .map(|m| Model::from_json(m, "warm_start_model"))
        .transpose()?;
    if let Some(m) = &warm {
        m.check_features(&train, "warm_start_model", me)?;
    }
    let nf = train.n_features();
    let (w0, fit_intercept) = match &warm {
        Some(m) => (m.w.clone(), m.fit_intercept),
        None => (init_weights(nf, &p.init_param), p.init_param.fit_intercept),
    };
    let len = w0.len();

    // Setup: the sample count to the arbiter; X25519 keys and sample counts between clients.
    // Each client computes its own FedAvg weight `n_i / Σn` from what the other clients told
    // it, and refuses an arbiter whose share differs: an arbiter that could hand out shares
    // (1 to one client, ~0 to the others, below the fixed-point resolution) would decode that
    // one client's model from the masked sum.
    let announce = Announce {
        sample_num: train.rows.len() as u64,
        epochs: p.epochs as u64,
        params: len as u64,
    };
    fed.remote(LOCAL_WEIGHT, SETUP_TAG, arbiter, &announce)?;
    let rank = s
        .clients
        .iter()
        .position(|c| c == me)
        .ok_or_else(|| ComponentError::Failed(format!("{me} is not a client of homo_lr")))?;
    let keys = SecAggKeyPair::generate(rank as u32, &mut rand::rngs::OsRng);
    let others: Vec<(usize, &Party)> = s
        .clients
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != rank)
        .collect();
    let other_parties: Vec<Party> = others.iter().map(|(_, p)| (*p).clone()).collect();
    let mine = PeerKey {
        public_key: keys.public_key(),
        sample_num: announce.sample_num,
    };
    fed.remote(DH_PUBKEY, SETUP_TAG, &other_parties, &mine)?;
    let mut peers = Vec::with_capacity(others.len());
    let mut total = announce.sample_num;
    for (i, peer) in &others {
        let theirs: PeerKey = fed.get_one(DH_PUBKEY, SETUP_TAG, peer)?;
        if theirs.sample_num == 0 || theirs.sample_num > crate::limits::COLLECT_ROWS as u64 {
            return Err(ComponentError::Data(format!(
                "{peer} announced {} samples",
                theirs.sample_num
            )));
        }
        total += theirs.sample_num;
        peers.push((*i as u32, theirs.public_key));
    }
    let share = announce.sample_num as f64 / total as f64;
    let arbiters: f64 = fed.get_one(AGG_WEIGHT, SETUP_TAG, &s.arbiter)?;
    if !((arbiters - share).abs() <= 1e-12 * share) {
        return Err(ComponentError::Data(format!(
            "`{AGG_WEIGHT}` from {} is {arbiters}, but {me}'s weight is {share} \
             ({} of {total} samples): refused",
            s.arbiter, announce.sample_num
        )));
    }
    let masker = keys.masker(&peers).map_err(|e| {
        ComponentError::Data(format!("secure aggregation key agreement at {me}: {e}"))
    })?;

    let mut opt = match warm_optimizer(ctx, p, len) {
        Some(o) => o,
        None => Optimizer::new(p.optim.clone(), len),
    };
    opt.param = w0;
    let mut sched = LrScheduler::new(
        &p.learning_rate_scheduler,
        p.optim.lr,
        "learning_rate_scheduler",
    )?;
    let batches = split(train.rows.len(), p.batch_size);
    ctx.info(format!(
        "homo_lr client {me} (rank {rank}): {} rows, {nf} features, {} batches, share {share}, {} clients",
        train.rows.len(),
        batches.len(),
        s.clients.len()
    ));
    for epoch in 0..p.epochs {
        ctx.check_canceled()?;
        let mut loss_sum = 0.0;
        for batch in &batches {
            let (grad, loss) = batch_gradient(&train, batch, &opt.param, fit_intercept, p.l1);
            opt.step(&grad, sched.lr());
            sched.step();
            loss_sum += loss;
        }
        let loss = loss_sum / batches.len() as f64;
        check_bound(&opt.param, loss, me)?;
        let mut v: Vec<f64> = opt.param.iter().map(|x| x * share).collect();
        v.push(loss * share);
        let masked = masker
            .mask_f64(epoch as u64, &v, FRAC_BITS)
            .map_err(|e| ComponentError::Data(format!("masking at {me}: {e}")))?;
        let t = epoch_tag(epoch);
        fed.remote(LOCAL_MODEL, &t, arbiter, &masked)?;
        let agg: Vec<f64> = fed.get_one(AGG_MODEL, &t, &s.arbiter)?;
        if agg.len() != len + 1 || agg.iter().any(|x| !x.is_finite()) {
            return Err(ComponentError::Data(format!(
                "`{AGG_MODEL}` from {} has {} values (expected {}) or a non-finite one",
                s.arbiter,
                agg.len(),
                len + 1
            )));
        }
        opt.param = agg[..len].to_vec();
        ctx.info(format!(
            "epoch {epoch}: local loss {loss:.6}, aggregate loss {:.6}",
            agg[len]
        ));
    }

    let model = Model {
        w: opt.param.clone(),
        fit_intercept,
        threshold: p.threshold,
        header: train.schema.feature_names.clone(),
    };
    ctx.output_model("output_model", model.to_json(p, &opt));
    let mut rows = predict_rows(&model, &train, model.threshold);
    if let Some(v) = &validate {
        let seen: BTreeSet<&String> = train.ids.iter().collect();
        if let Some(id) = v.ids.iter().find(|id| seen.contains(id)) {
            return Err(ComponentError::Input {
                key: "validate_data".into(),
                reason: format!(
                    "sample id `{id}` is also in train_data; the output would hold it twice"
                ),
            });
        }
        rows.extend(predict_rows(&model, v, model.threshold));
    }
    let mut schema = predict_schema(&train.schema);
    schema.dataset_type = Some(predict::TRAIN_SET.into());
    let df = DataFrame {
        schema,
        table: ctx.computing.parallelize(rows, train.partitions),
    };
    ctx.output_data("train_output_data", &df)
}

/// The optimizer state of a warm-start model, when it has one of this length.
fn warm_optimizer(ctx: &Ctx, p: &TrainParams, len: usize) -> Option<Optimizer> {
    let state = ctx
        .input_model("warm_start_model")?
        .pointer("/data/optimizer")?;
    Optimizer::restore(p.optim.clone(), state).filter(|o| o.param.len() == len)
}

/// The predict stage: `test_data` + `input_model` → `test_output_data`, locally.
pub(super) fn predict_stage(ctx: &Ctx, p: &PredictParams) -> Result<(), ComponentError> {
    let model_json = ctx
        .input_model("input_model")
        .ok_or_else(|| ComponentError::Input {
            key: "input_model".into(),
            reason: "the predict stage needs the trained model".into(),
        })?;
    let model = Model::from_json(model_json, "input_model")?;
    let test = Data::load(ctx, "test_data", false)?;
    model.check_features(&test, "test_data", &ctx.local)?;
    let rows = predict_rows(&model, &test, p.threshold.unwrap_or(model.threshold));
    let mut schema = predict_schema(&test.schema);
    schema.dataset_type = Some(predict::TEST_SET.into());
    let df = DataFrame {
        schema,
        table: ctx.computing.parallelize(rows, test.partitions),
    };
    ctx.output_data("test_output_data", &df)
}

fn predict_rows(model: &Model, data: &Data, threshold: f64) -> Vec<(String, Row)> {
    data.ids
        .iter()
        .zip(&data.rows)
        .map(|(id, row)| {
            let score = model.score(&row.features);
            (
                id.clone(),
                Row {
                    match_id: row.match_id.clone(),
                    label: row.label,
                    weight: None,
                    features: vec![score, if score > threshold { 1.0 } else { 0.0 }],
                },
            )
        })
        .collect()
}

/// The prediction dataframe's schema (fate-runtime's `predict` convention).
fn predict_schema(input: &Schema) -> Schema {
    Schema {
        sample_id_name: input.sample_id_name.clone(),
        match_id_name: input.match_id_name.clone(),
        label_name: Some(input.label_name.clone().unwrap_or_else(|| "label".into())),
        weight_name: None,
        feature_names: vec![predict::SCORE.to_string(), predict::RESULT.to_string()],
        label_type: input.label_type.clone(),
        dtype: "float64".into(),
        dataset_type: None,
    }
}

/// `batch_size` consecutive rows in sample-id order (full batch when `None`).
fn split(n: usize, batch_size: Option<usize>) -> Vec<std::ops::Range<usize>> {
    let size = batch_size.unwrap_or(n).clamp(1, n.max(1));
    (0..n).step_by(size).map(|s| s..(s + size).min(n)).collect()
}

/// The gradient and loss of torch's `BCELoss` (mean over the batch, logs clamped at −100) of
/// `σ(w·x + b)`, plus FATE's L1 term `l1·Σ|p|` (subgradient `l1·sign(p)`, 0 at 0).
fn batch_gradient(
    data: &Data,
    batch: &std::ops::Range<usize>,
    w: &[f64],
    fit_intercept: bool,
    l1: f64,
) -> (Vec<f64>, f64) {
    let nf = data.n_features();
    let mut grad = vec![0.0; w.len()];
    let mut loss = 0.0;
    for row in &data.rows[batch.clone()] {
        let y = row.label.unwrap_or(0.0);
        let prob = sigmoid(linear(w, &row.features, fit_intercept));
        let r = prob - y;
        for (g, x) in grad[..nf].iter_mut().zip(&row.features) {
            *g += r * x;
        }
        if fit_intercept {
            grad[nf] += r;
        }
        loss -= y * prob.ln().max(-100.0) + (1.0 - y) * (1.0 - prob).ln().max(-100.0);
    }
    let n = batch.len() as f64;
    for g in &mut grad {
        *g /= n;
    }
    loss /= n;
    if l1 != 0.0 {
        for (g, p) in grad.iter_mut().zip(w) {
            *g += l1
                * if *p > 0.0 {
                    1.0
                } else if *p < 0.0 {
                    -1.0
                } else {
                    0.0
                };
        }
        loss += l1 * w.iter().map(|p| p.abs()).sum::<f64>();
    }
    (grad, loss)
}

fn linear(w: &[f64], x: &[f64], fit_intercept: bool) -> f64 {
    let nf = x.len();
    let z: f64 = w[..nf].iter().zip(x).map(|(a, b)| a * b).sum();
    if fit_intercept { z + w[nf] } else { z }
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// Weights or a loss beyond [`MAX_ABS`] mean the training diverged (and would not fit the
/// fixed-point ring of secure aggregation).
fn check_bound(w: &[f64], loss: f64, me: &Party) -> Result<(), ComponentError> {
    if w.iter()
        .chain([&loss])
        .any(|x| !x.is_finite() || x.abs() > MAX_ABS)
    {
        return Err(ComponentError::Failed(format!(
            "weights or loss at {me} exceed {MAX_ABS:e}: the training diverged; lower the learning rate"
        )));
    }
    Ok(())
}
