//! A host's part (`CoordinatedLRModuleHost`, fate-spec §4.3). A host never has an intercept.

use super::cipher::{CipherVec, ENC_FRAC_BITS, crypto, prepare_encryptor};
use super::data::{Batch, Frame, dot};
use super::model::{Meta, PartyEstimator, PartyModel};
use super::names::*;
use super::optim::{LrScheduler, OptimSpec, Regularizer, initialize};
use super::params::{InitParam, TrainParams, x_precision_bits};
use super::{
    MAX_BATCHES, MAX_CLASSES, SETUP_TAG, Session, apply_arbiter_update, finish_epoch, tag,
};
use fate_crypto::paillier::PublicKey;
use fate_runtime::ComponentError;
use fate_runtime::fedtable::remote_table;
use fate_types::Party;
use std::collections::HashMap;

/// The host's train stage: fit, write the model, send its part of the train (and validate)
/// predictions to the guest.
pub(super) fn train(s: &Session, p: &TrainParams) -> Result<(), ComponentError> {
    let ctx = s.ctx;
    let fed = &ctx.federation;
    let me = &ctx.local;
    let arbiter = s.arbiter()?.clone();
    let train = Frame::load(ctx, "train_data")?;
    if train.n_features() == 0 {
        return Err(ComponentError::Input {
            key: "train_data".into(),
            reason: format!("train_data at {me} has no feature column"),
        });
    }
    let validate = if ctx.inputs.contains_key("validate_data") {
        Some(Frame::load(ctx, "validate_data")?)
    } else {
        None
    };
    let warm = ctx
        .input_model("warm_start_model")
        .map(|m| PartyModel::from_json(m, false, "warm_start_model"))
        .transpose()?;

    let pk: PublicKey = fed.get_one(ENCRYPTOR, SETUP_TAG, &arbiter)?;
    let pk = s.pool(|| pk.with_fresh_djn_base(&mut rand::rngs::OsRng));
    prepare_encryptor(&pk)?;
    let label_count: u64 = fed.get_one(LABEL_COUNT, SETUP_TAG, &s.guest)?;
    if !(2..=MAX_CLASSES as u64).contains(&label_count) {
        return Err(ComponentError::Data(format!(
            "{} announced {label_count} classes (allowed 2..={MAX_CLASSES})",
            s.guest
        )));
    }
    let label_count = label_count as usize;
    let batch_ids: Vec<Vec<String>> = fed.get_one(BATCH_INDEXES, SETUP_TAG, &s.guest)?;
    if batch_ids.is_empty() || batch_ids.len() > MAX_BATCHES {
        return Err(ComponentError::Data(format!(
            "{} announced {} batches",
            s.guest,
            batch_ids.len()
        )));
    }

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
            init_param: InitParam {
                fit_intercept: false,
                ..p.init_param.clone()
            },
            floating_point_precision: p.floating_point_precision,
        },
    };
    let ovr = label_count > 2 || warm.as_ref().is_some_and(|w| w.ovr);
    let n_models = if ovr { label_count } else { 1 };
    if let Some(w) = &warm {
        if w.estimators.len() != n_models {
            return Err(ComponentError::Input {
                key: "warm_start_model".into(),
                reason: format!(
                    "the model has {} class estimators, the guest's labels need {n_models}",
                    w.estimators.len()
                ),
            });
        }
        check_features(&w.estimators[0], &train, "warm_start_model", me)?;
    }

    // The guest's batches, in the guest's order (rows re-keyed by the guest's ids after psi).
    let position: HashMap<&str, usize> = train
        .ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let precision = x_precision_bits(meta.floating_point_precision);
    let mut batches = Vec::with_capacity(batch_ids.len());
    for (b, ids) in batch_ids.iter().enumerate() {
        let rows = ids
            .iter()
            .map(|id| {
                position.get(id.as_str()).copied().ok_or_else(|| {
                    ComponentError::Data(format!(
                        "sample `{id}` of the guest's batch {b} is not in train_data at {me}; run psi on both parties' data first"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if rows.is_empty() {
            return Err(ComponentError::Data(format!(
                "{} sent an empty batch {b}",
                s.guest
            )));
        }
        batches.push(Batch::build(&train, rows, false, precision, me)?);
    }
    ctx.info(format!(
        "coordinated_lr host: {} rows, {} features, {} batches, {} classes",
        train.rows.len(),
        train.n_features(),
        batches.len(),
        label_count
    ));

    let mut estimators = Vec::with_capacity(n_models);
    for c in 0..n_models {
        let mut est = match &warm {
            Some(w) => w.estimators[c].clone(),
            None => {
                let spec = OptimSpec::from_param(&meta.optimizer, "optimizer")?;
                PartyEstimator {
                    w: initialize(train.n_features(), &meta.init_param),
                    fit_intercept: false,
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
                }
            }
        };
        let fit = Fit {
            s,
            pk: &pk,
            arbiter: &arbiter,
            class: ovr.then_some(c),
            precision,
            epochs: meta.epochs,
        };
        fit.run(&mut est, &batches)?;
        estimators.push(est);
    }
    let model = PartyModel {
        ovr,
        labels: Vec::new(),
        label_count,
        threshold: 0.5,
        meta: Some(meta),
        estimators,
    };
    ctx.output_model("output_model", model.to_json(false));

    send_predictions(s, &model, &train, "train_data", "predict")?;
    if let Some(v) = &validate {
        send_predictions(s, &model, v, "validate_data", "validate_predict")?;
    }
    Ok(())
}

/// The host's predict stage: sends `X_h·w_h` of `test_data` to the guest (FATE's host writes no
/// output data).
pub(super) fn predict_stage(s: &Session) -> Result<(), ComponentError> {
    let ctx = s.ctx;
    let model_json = ctx
        .input_model("input_model")
        .ok_or_else(|| ComponentError::Input {
            key: "input_model".into(),
            reason: "the predict stage needs the trained model".into(),
        })?;
    let model = PartyModel::from_json(model_json, false, "input_model")?;
    let test = Frame::load(ctx, "test_data")?;
    send_predictions(s, &model, &test, "test_data", "predict")
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

/// `h_pred`: each sample's `X_h·w_h` per class, as a table keyed by sample id.
fn send_predictions(
    s: &Session,
    model: &PartyModel,
    frame: &Frame,
    key: &str,
    t: &str,
) -> Result<(), ComponentError> {
    let ctx = s.ctx;
    let first = model
        .estimators
        .first()
        .ok_or_else(|| ComponentError::Input {
            key: key.into(),
            reason: "the model has no estimator".into(),
        })?;
    check_features(first, frame, key, &ctx.local)?;
    let rows = frame.ids.iter().zip(&frame.rows).map(|(id, row)| {
        // The partial score online serving sends too (fate-ml).
        let v: Vec<f64> = model
            .estimators
            .iter()
            .map(|e| dot(&row.features, &e.w))
            .collect();
        (id.clone(), v)
    });
    let table = ctx.computing.parallelize(rows, frame.partitions);
    remote_table(
        &ctx.federation,
        H_PRED,
        t,
        std::slice::from_ref(&s.guest),
        &table,
    )
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
    fn run(&self, est: &mut PartyEstimator, batches: &[Batch]) -> Result<(), ComponentError> {
        let ctx = self.s.ctx;
        est.is_converged = false;
        for epoch in 0..self.epochs {
            ctx.check_canceled()?;
            for (b, batch) in batches.iter().enumerate() {
                let t = tag(self.class, &format!("iter-{epoch}.batch-{b}"));
                let g = self.gradient(&t, batch, est, self.s.hosts.len() > 1)?;
                apply_arbiter_update(ctx, &t, self.arbiter, &g, est, false, epoch)?;
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

    /// `[[Xw_h]]` to the guest, then `[[Σ d·x]] + h·alpha·w` (divisor h): from `[[half_d]]` plus
    /// the plain `X_hᵀ·Xw_h` with one host, from `[[d]]` with several.
    fn gradient(
        &self,
        t: &str,
        batch: &Batch,
        est: &PartyEstimator,
        centralized: bool,
    ) -> Result<CipherVec, ComponentError> {
        let (s, pk, fed) = (self.s, self.pk, &self.s.ctx.federation);
        let guest = &s.guest;
        let h = batch.n_rows;
        let hf = h as f64;
        let xw_h: Vec<f64> = batch.matvec(&est.w).into_iter().map(|z| 0.25 * z).collect();
        let enc = s
            .pool(|| pk.encrypt_f64_vec(&xw_h, ENC_FRAC_BITS))
            .map_err(crypto)?;
        fed.remote(
            XW_H,
            t,
            std::slice::from_ref(guest),
            &CipherVec::new(pk, &enc, ENC_FRAC_BITS, 1),
        )?;
        drop(enc);
        let reg = est.reg.grad_term(&est.w, false);
        let (name, plain) = if centralized {
            (D, reg.iter().map(|r| hf * r).collect::<Vec<f64>>())
        } else {
            let half_g = batch.xt_vec(&xw_h);
            (
                HALF_D,
                half_g.iter().zip(&reg).map(|(g, r)| g + hf * r).collect(),
            )
        };
        let msg: CipherVec = fed.get_one(name, t, guest)?;
        let d = s.pool(|| msg.decode(pk, h, name, guest))?;
        let g = s
            .pool(|| pk.xt_dot(&batch.x_enc, batch.n_cols, &d))
            .map_err(crypto)?;
        let g_frac = msg.frac_bits + self.precision;
        if !centralized {
            let xw2 = s
                .pool(|| pk.encrypt_f64_vec(&[dot(&xw_h, &xw_h)], ENC_FRAC_BITS))
                .map_err(crypto)?;
            fed.remote(
                XW2_H,
                t,
                std::slice::from_ref(guest),
                &CipherVec::new(pk, &xw2, ENC_FRAC_BITS, 1),
            )?;
            let h_loss = match est.reg.loss_norm(&est.w) {
                Some(n) => {
                    let c = s
                        .pool(|| pk.encrypt_f64_vec(&[n], ENC_FRAC_BITS))
                        .map_err(crypto)?;
                    Some(CipherVec::new(pk, &c, ENC_FRAC_BITS, 1))
                }
                None => None,
            };
            fed.remote(H_LOSS, t, std::slice::from_ref(guest), &h_loss)?;
        }
        let g = s
            .pool(|| pk.add_f64_vec(&g, &plain, g_frac))
            .map_err(crypto)?;
        Ok(CipherVec::new(pk, &g, g_frac, h as u64))
    }
}
