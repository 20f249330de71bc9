//! The guest's part (`CoordinatedLRModuleGuest`, fate-spec §4.3).

use super::cipher::{CipherVec, ENC_FRAC_BITS, crypto, mul_pow2, prepare_encryptor};
use super::data::{Batch, Frame, dot, predict_schema, split};
use super::model::{Meta, PartyEstimator, PartyModel};
use super::names::*;
use super::optim::{LrScheduler, OptimSpec, Regularizer, initialize};
use super::params::{TrainParams, x_precision_bits};
use super::{SETUP_TAG, Session, apply_arbiter_update, check_plain, finish_epoch, tag};
use fate_computing::Table;
use fate_crypto::encoding::encode_i64_vec;
use fate_crypto::paillier::{Ciphertext, PublicKey};
use fate_runtime::fedtable::get_table;
use fate_runtime::{ComponentError, DataFrame, Row};
use fate_types::Party;
use std::collections::{BTreeSet, HashMap};

/// The guest's train stage: fit, write the model, predict the train (and validate) data.
pub(super) fn train(s: &Session, p: &TrainParams) -> Result<(), ComponentError> {
    let ctx = s.ctx;
    let fed = &ctx.federation;
    let me = &ctx.local;
    let arbiter = s.arbiter()?.clone();
    let train = Frame::load(ctx, "train_data")?;
    let labels = labels_of(&train, "train_data", me)?;
    let validate = if ctx.inputs.contains_key("validate_data") {
        Some(Frame::load(ctx, "validate_data")?)
    } else {
        None
    };
    let classes = classes_of(&labels, me)?;
    let warm = ctx
        .input_model("warm_start_model")
        .map(|m| PartyModel::from_json(m, true, "warm_start_model"))
        .transpose()?;

    let label_count = classes.len() as u64;
    fed.remote(
        LABEL_COUNT,
        SETUP_TAG,
        std::slice::from_ref(&arbiter),
        &label_count,
    )?;
    fed.remote(LABEL_COUNT, SETUP_TAG, &s.hosts, &label_count)?;
    let pk: PublicKey = fed.get_one(ENCRYPTOR, SETUP_TAG, &arbiter)?;
    let pk = s.pool(|| pk.with_fresh_djn_base(&mut rand::rngs::OsRng));
    prepare_encryptor(&pk)?;

    // On warm start FATE keeps the model's settings and takes only epochs and batch_size anew.
    let meta = match warm.as_ref().and_then(|w| w.meta.clone()) {
        Some(m) => Meta {
            epochs: p.epochs,
            batch_size: p.batch_size,
            ..m
        },
        None => Meta {
            epochs: p.epochs,
            batch_size: p.batch_size,
            optimizer: p.optimizer.clone(),
            learning_rate_scheduler: p.learning_rate_scheduler.clone(),
            init_param: p.init_param.clone(),
            floating_point_precision: p.floating_point_precision,
        },
    };
    let threshold = warm.as_ref().map_or(p.threshold, |w| w.threshold);
    let ovr = classes.len() > 2 || warm.as_ref().is_some_and(|w| w.ovr);
    let n_models = if ovr { classes.len() } else { 1 };
    if !ovr && !classes.contains(&1) {
        return Err(ComponentError::Input {
            key: "train_data".into(),
            reason: format!(
                "at {me}, binary labels must include the positive class 1, got {classes:?}"
            ),
        });
    }
    if let Some(w) = &warm {
        if w.estimators.len() != n_models {
            return Err(ComponentError::Input {
                key: "warm_start_model".into(),
                reason: format!(
                    "the model has {} class estimators, the data needs {n_models}",
                    w.estimators.len()
                ),
            });
        }
        check_features(&w.estimators[0], &train, "warm_start_model", me)?;
    }
    let fit_intercept = warm.as_ref().map_or(meta.init_param.fit_intercept, |w| {
        w.estimators[0].fit_intercept
    });

    // FATE's DataLoader: sorted sample ids cut into batches once for the whole fit.
    let splits = split(train.rows.len(), meta.batch_size);
    let batch_ids: Vec<Vec<&String>> = splits
        .iter()
        .map(|rows| rows.iter().map(|&r| &train.ids[r]).collect())
        .collect();
    fed.remote(BATCH_INDEXES, SETUP_TAG, &s.hosts, &batch_ids)?;
    fed.remote(
        BATCH_NUM,
        SETUP_TAG,
        std::slice::from_ref(&arbiter),
        &(splits.len() as u64),
    )?;
    let precision = x_precision_bits(meta.floating_point_precision);
    let batches: Vec<Batch> = splits
        .into_iter()
        .map(|rows| Batch::build(&train, rows, fit_intercept, precision, me))
        .collect::<Result<_, _>>()?;
    ctx.info(format!(
        "coordinated_lr guest: {} rows, {} features, {} batches, {} hosts, {} classes{}",
        train.rows.len(),
        train.n_features(),
        batches.len(),
        s.hosts.len(),
        classes.len(),
        if ovr { " (one-vs-rest)" } else { "" }
    ));

    let mut estimators = Vec::with_capacity(n_models);
    for (c, &class) in classes.iter().enumerate().take(n_models) {
        let class_label = class as f64;
        let y: Vec<f64> = labels
            .iter()
            .map(|&l| {
                let positive = if ovr {
                    l == class_label
                } else {
                    (l - 1.0).abs() < 1e-8
                };
                if positive { 1.0 } else { -1.0 }
            })
            .collect();
        let mut est = match &warm {
            Some(w) => w.estimators[c].clone(),
            None => new_estimator(&meta, &train)?,
        };
        let fit = Fit {
            s,
            pk: &pk,
            arbiter: &arbiter,
            class: ovr.then_some(c),
            precision,
            epochs: meta.epochs,
        };
        fit.run(&mut est, &batches, &y)?;
        ctx.info(format!(
            "class {c}: finished at epoch {} (converged: {})",
            est.end_epoch, est.is_converged
        ));
        estimators.push(est);
    }
    let model = PartyModel {
        ovr,
        labels: classes,
        label_count: n_models,
        threshold,
        meta: Some(meta),
        estimators,
    };
    ctx.output_model("output_model", model.to_json(true));

    let mut rows = predict_rows(s, &model, &train, "train_data", "predict")?;
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
        rows.extend(predict_rows(
            s,
            &model,
            v,
            "validate_data",
            "validate_predict",
        )?);
    }
    let mut schema = predict_schema(&train.schema, model.ovr.then_some(model.labels.as_slice()));
    schema.dataset_type = Some(fate_runtime::data::predict::TRAIN_SET.into());
    let df = DataFrame {
        schema,
        table: ctx.computing.parallelize(rows, train.partitions),
    };
    ctx.output_data("train_output_data", &df)
}

/// The guest's predict stage: `test_data` + `input_model` → `test_output_data`.
pub(super) fn predict_stage(s: &Session) -> Result<(), ComponentError> {
    let ctx = s.ctx;
    let model_json = ctx
        .input_model("input_model")
        .ok_or_else(|| ComponentError::Input {
            key: "input_model".into(),
            reason: "the predict stage needs the trained model".into(),
        })?;
    let model = PartyModel::from_json(model_json, true, "input_model")?;
    let test = Frame::load(ctx, "test_data")?;
    let rows = predict_rows(s, &model, &test, "test_data", "predict")?;
    let mut schema = predict_schema(&test.schema, model.ovr.then_some(model.labels.as_slice()));
    schema.dataset_type = Some(fate_runtime::data::predict::TEST_SET.into());
    let df = DataFrame {
        schema,
        table: ctx.computing.parallelize(rows, test.partitions),
    };
    ctx.output_data("test_output_data", &df)
}

fn new_estimator(meta: &Meta, train: &Frame) -> Result<PartyEstimator, ComponentError> {
    let spec = OptimSpec::from_param(&meta.optimizer, "optimizer")?;
    Ok(PartyEstimator {
        w: initialize(train.n_features(), &meta.init_param),
        fit_intercept: meta.init_param.fit_intercept,
        reg: Regularizer {
            penalty: meta.optimizer.penalty,
            alpha: meta.optimizer.alpha,
        },
        optimizer: meta.optimizer.clone(),
        sched: LrScheduler::new(
            &meta.learning_rate_scheduler,
            spec.lr,
            "learning_rate_scheduler",
        )?,
        end_epoch: -1,
        is_converged: false,
        header: train.schema.feature_names.clone(),
    })
}

/// Every row's label; a missing label column or label is an error naming the party.
fn labels_of(frame: &Frame, key: &str, me: &Party) -> Result<Vec<f64>, ComponentError> {
    if frame.schema.label_name.is_none() {
        return Err(ComponentError::Input {
            key: key.into(),
            reason: format!(
                "{key} at {me} has no label column; the guest's data must carry the label"
            ),
        });
    }
    frame
        .ids
        .iter()
        .zip(&frame.rows)
        .map(|(id, r)| match r.label {
            Some(l) if l.is_finite() => Ok(l),
            _ => Err(ComponentError::Input {
                key: key.into(),
                reason: format!("at {me}, sample `{id}` has no label"),
            }),
        })
        .collect()
}

/// The sorted distinct classes; FATE's `get_dummies` labels must be integers.
fn classes_of(labels: &[f64], me: &Party) -> Result<Vec<i64>, ComponentError> {
    let mut classes = BTreeSet::new();
    for &l in labels {
        if l.fract() != 0.0 || l.abs() > 1e15 {
            return Err(ComponentError::Input {
                key: "train_data".into(),
                reason: format!("at {me}, label {l} is not an integer class"),
            });
        }
        classes.insert(l as i64);
        if classes.len() > super::MAX_CLASSES {
            return Err(ComponentError::Input {
                key: "train_data".into(),
                reason: format!("more than {} classes", super::MAX_CLASSES),
            });
        }
    }
    if classes.len() < 2 {
        return Err(ComponentError::Input {
            key: "train_data".into(),
            reason: format!(
                "at {me}, the label has {} class(es); logistic regression needs at least 2",
                classes.len()
            ),
        });
    }
    Ok(classes.into_iter().collect())
}

fn check_features(
    est: &PartyEstimator,
    frame: &Frame,
    key: &str,
    me: &Party,
) -> Result<(), ComponentError> {
    if est.n_features() != frame.n_features() {
        return Err(ComponentError::Input {
            key: key.into(),
            reason: format!(
                "feature count mismatch at {me}: the model has {} features but the data has {}",
                est.n_features(),
                frame.n_features()
            ),
        });
    }
    Ok(())
}

/// One binary fit (one class of OvR).
struct Fit<'a> {
    s: &'a Session<'a>,
    pk: &'a PublicKey,
    arbiter: &'a Party,
    class: Option<usize>,
    precision: u32,
    epochs: usize,
}

impl Fit<'_> {
    fn run(
        &self,
        est: &mut PartyEstimator,
        batches: &[Batch],
        y: &[f64],
    ) -> Result<(), ComponentError> {
        let ctx = self.s.ctx;
        let ys: Vec<Vec<f64>> = batches
            .iter()
            .map(|b| b.rows.iter().map(|&r| y[r]).collect())
            .collect();
        est.is_converged = false;
        for epoch in 0..self.epochs {
            ctx.check_canceled()?;
            for (b, (batch, yb)) in batches.iter().zip(&ys).enumerate() {
                let t = tag(self.class, &format!("iter-{epoch}.batch-{b}"));
                let g = if self.s.hosts.len() > 1 {
                    self.centralized_gradient(&t, batch, yb, est)?
                } else {
                    self.asynchronous_gradient(&t, batch, yb, est)?
                };
                let fit_intercept = est.fit_intercept;
                apply_arbiter_update(ctx, &t, self.arbiter, &g, est, fit_intercept, epoch)?;
            }
            if finish_epoch(ctx, self.class, epoch, self.epochs, self.arbiter, est)? {
                break;
            }
        }
        if !est.is_converged {
            est.end_epoch = self.epochs as i64;
        }
        Ok(())
    }

    fn encode(&self, v: &[f64], what: &str) -> Result<Vec<i64>, ComponentError> {
        encode_i64_vec(v, self.precision).map_err(|e| {
            ComponentError::Data(format!(
                "at {}: {what} does not fit a 64-bit fixed-point integer ({e})",
                self.s.ctx.local
            ))
        })
    }

    /// The single-host path: `[[half_d]]` to the host, `[[Xw_h]]` back, the encrypted loss to
    /// the arbiter; returns `[[Σ d·x]] + h·alpha·w` with divisor h.
    fn asynchronous_gradient(
        &self,
        t: &str,
        batch: &Batch,
        y: &[f64],
        est: &PartyEstimator,
    ) -> Result<CipherVec, ComponentError> {
        let (s, pk, fed) = (self.s, self.pk, &self.s.ctx.federation);
        let host = &s.hosts[0];
        let h = batch.n_rows;
        let hf = h as f64;
        let xw = batch.matvec(&est.w);
        let mut half_d: Vec<f64> = xw
            .iter()
            .zip(y)
            .map(|(z, yi)| 0.25 * z - 0.5 * yi)
            .collect();
        if let Some(wt) = &batch.weight {
            half_d.iter_mut().zip(wt).for_each(|(d, w)| *d *= w);
        }
        let enc_half_d = s
            .pool(|| pk.encrypt_f64_vec(&half_d, ENC_FRAC_BITS))
            .map_err(crypto)?;
        fed.remote(
            HALF_D,
            t,
            std::slice::from_ref(host),
            &CipherVec::new(pk, &enc_half_d, ENC_FRAC_BITS, 1),
        )?;
        drop(enc_half_d);
        let half_g = batch.xt_vec(&half_d);

        let msg: CipherVec = fed.get_one(XW_H, t, host)?;
        let mut xw_h = s.pool(|| msg.decode(pk, h, XW_H, host))?;
        let mut frac = msg.frac_bits;
        if let Some(wt) = &batch.weight {
            let k = self.encode(wt, "a sample weight")?;
            xw_h = s.pool(|| pk.mul_i64_vec(&xw_h, &k)).map_err(crypto)?;
            frac += self.precision;
        }
        let host_half_g = s
            .pool(|| pk.xt_dot(&batch.x_enc, batch.n_cols, &xw_h))
            .map_err(crypto)?;
        let g_frac = frac + self.precision;

        // Loss (FATE's asynchronous_compute_gradient), kept as h·loss at scale 2^L:
        // h·(log2 − 1 + norm) + 0.125·XwᵀXw − 2·half_dᵀy + (Xw − 2y)ᵀ[[Xw_h]] + 2·[[Xw2_h]] + h·[[h_loss]].
        let mut loss_plain =
            std::f64::consts::LN_2 - 1.0 + 0.125 / hf * dot(&xw, &xw) - 2.0 / hf * dot(&half_d, y);
        if let Some(norm) = est.reg.loss_norm(&est.w) {
            loss_plain += norm;
        }
        let coef: Vec<f64> = xw.iter().zip(y).map(|(z, yi)| z - 2.0 * yi).collect();
        let coef = self.encode(&coef, "Xw − 2y")?;
        let l_frac = frac + self.precision;
        let mut loss = s.pool(|| pk.weighted_sum(&xw_h, &coef)).map_err(crypto)?;
        let xw2: CipherVec = fed.get_one(XW2_H, t, host)?;
        let xw2_ct = one(&xw2, pk, XW2_H, host)?;
        let shift = l_frac
            .checked_sub(xw2.frac_bits)
            .ok_or_else(|| too_fine(XW2_H, host))?;
        loss = pk.add(
            &loss,
            &mul_pow2(pk, &pk.mul_i64(&xw2_ct, 2).map_err(crypto)?, shift)?,
        );
        let h_loss: Option<CipherVec> = fed.get_one(H_LOSS, t, host)?;
        if let Some(hl) = &h_loss {
            let c = one(hl, pk, H_LOSS, host)?;
            let shift = l_frac
                .checked_sub(hl.frac_bits)
                .ok_or_else(|| too_fine(H_LOSS, host))?;
            let scaled = pk
                .mul_i64(&c, i64::try_from(h).unwrap_or(i64::MAX))
                .map_err(crypto)?;
            loss = pk.add(&loss, &mul_pow2(pk, &scaled, shift)?);
        }
        let loss = pk
            .add_f64_vec(&[loss], &[hf * loss_plain], l_frac)
            .map_err(crypto)?;
        fed.remote(
            LOSS,
            t,
            std::slice::from_ref(self.arbiter),
            &CipherVec::new(pk, &loss, l_frac, h as u64),
        )?;

        let reg = est.reg.grad_term(&est.w, est.fit_intercept);
        let plain: Vec<f64> = half_g.iter().zip(&reg).map(|(g, r)| g + hf * r).collect();
        let g = s
            .pool(|| pk.add_f64_vec(&host_half_g, &plain, g_frac))
            .map_err(crypto)?;
        Ok(CipherVec::new(pk, &g, g_frac, h as u64))
    }

    /// The multi-host path: `[[d]] = 0.25·Xw − 0.5·y + Σ[[Xw_h]]` to every host; returns
    /// `Xᵀ[[d]] + h·alpha·w` with divisor h.
    fn centralized_gradient(
        &self,
        t: &str,
        batch: &Batch,
        y: &[f64],
        est: &PartyEstimator,
    ) -> Result<CipherVec, ComponentError> {
        let (s, pk, fed) = (self.s, self.pk, &self.s.ctx.federation);
        let h = batch.n_rows;
        let xw = batch.matvec(&est.w);
        let d: Vec<f64> = xw
            .iter()
            .zip(y)
            .map(|(z, yi)| 0.25 * z - 0.5 * yi)
            .collect();
        let msgs: Vec<CipherVec> = fed.get(XW_H, t, &s.hosts)?;
        let mut sum: Option<Vec<Ciphertext>> = None;
        for (msg, host) in msgs.iter().zip(&s.hosts) {
            if msg.frac_bits != ENC_FRAC_BITS {
                return Err(ComponentError::Data(format!(
                    "`{XW_H}` from {host} has {} fractional bits, expected {ENC_FRAC_BITS}",
                    msg.frac_bits
                )));
            }
            let c = s.pool(|| msg.decode(pk, h, XW_H, host))?;
            sum = Some(match sum {
                None => c,
                Some(acc) => s.pool(|| pk.add_vec(&acc, &c)).map_err(crypto)?,
            });
        }
        let sum = sum.ok_or_else(|| ComponentError::Failed("no host sent Xw_h".into()))?;
        let mut enc_d = s
            .pool(|| pk.add_f64_vec(&sum, &d, ENC_FRAC_BITS))
            .map_err(crypto)?;
        let mut frac = ENC_FRAC_BITS;
        if let Some(wt) = &batch.weight {
            let k = self.encode(wt, "a sample weight")?;
            enc_d = s.pool(|| pk.mul_i64_vec(&enc_d, &k)).map_err(crypto)?;
            frac += self.precision;
        }
        fed.remote(D, t, &s.hosts, &CipherVec::new(pk, &enc_d, frac, 1))?;
        let g = s
            .pool(|| pk.xt_dot(&batch.x_enc, batch.n_cols, &enc_d))
            .map_err(crypto)?;
        let g_frac = frac + self.precision;
        let reg: Vec<f64> = est
            .reg
            .grad_term(&est.w, est.fit_intercept)
            .iter()
            .map(|r| h as f64 * r)
            .collect();
        let g = s
            .pool(|| pk.add_f64_vec(&g, &reg, g_frac))
            .map_err(crypto)?;
        Ok(CipherVec::new(pk, &g, g_frac, h as u64))
    }
}

fn one(
    v: &CipherVec,
    pk: &PublicKey,
    what: &str,
    from: &Party,
) -> Result<Ciphertext, ComponentError> {
    let mut c = v.decode(pk, 1, what, from)?;
    c.pop()
        .ok_or_else(|| ComponentError::Data(format!("`{what}` from {from} is empty")))
}

fn too_fine(what: &str, from: &Party) -> ComponentError {
    ComponentError::Data(format!(
        "`{what}` from {from} has more fractional bits than the loss"
    ))
}

/// σ(X_g w_g + Σ_host X_h w_h) per class, as prediction rows.
fn predict_rows(
    s: &Session,
    model: &PartyModel,
    frame: &Frame,
    key: &str,
    t: &str,
) -> Result<Vec<(String, Row)>, ComponentError> {
    let ctx = s.ctx;
    let me = &ctx.local;
    let first = model
        .estimators
        .first()
        .ok_or_else(|| ComponentError::Input {
            key: key.into(),
            reason: "the model has no estimator".into(),
        })?;
    check_features(first, frame, key, me)?;
    let k = model.estimators.len();
    // The same predict functions as online serving (fate-ml), so their scores cannot drift.
    let linear: Vec<fate_ml::lr::Linear> = model.estimators.iter().map(|e| e.linear()).collect();
    let mut z: Vec<f64> = Vec::with_capacity(frame.rows.len() * k);
    for row in &frame.rows {
        for est in &linear {
            z.push(est.linear(&row.features));
        }
    }
    for host in &s.hosts {
        let table: Table<String, Vec<f64>> =
            get_table(&ctx.federation, &ctx.computing, H_PRED, t, host)?;
        let by_id: HashMap<String, Vec<f64>> = table
            .collect(crate::limits::COLLECT_ROWS)?
            .into_iter()
            .collect();
        for (i, id) in frame.ids.iter().enumerate() {
            let v = by_id
                .get(id)
                .ok_or_else(|| ComponentError::Data(format!("{host} sent no `{H_PRED}` for sample `{id}` of {key}; run psi on both parties' data first")))?;
            check_plain(v, k, H_PRED, host)?;
            fate_ml::lr::add_partial(&mut z[i * k..(i + 1) * k], v);
        }
    }
    let rows = frame
        .ids
        .iter()
        .zip(&frame.rows)
        .zip(z.chunks_exact(k))
        .map(|((id, row), zs)| {
            let features =
                fate_ml::lr::outcome(zs, model.ovr, &model.labels, model.threshold).into_row();
            (
                id.clone(),
                Row {
                    match_id: row.match_id.clone(),
                    label: row.label,
                    weight: None,
                    features,
                },
            )
        })
        .collect();
    Ok(rows)
}
