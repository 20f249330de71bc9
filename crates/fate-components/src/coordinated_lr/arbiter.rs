//! The arbiter's part (`CoordinatedLRModuleArbiter`, fate-spec §4.3): key owner, optimizer and
//! convergence judge. It sees the parties' gradients and the loss in plaintext (FATE's design),
//! never their data.

use super::cipher::{CipherVec, crypto};
use super::model::{ArbiterEstimator, ArbiterModel};
use super::names::*;
use super::optim::{Converge, LrScheduler, OptimSpec, Optimizer};
use super::params::TrainParams;
use super::{MAX_BATCHES, MAX_CLASSES, SETUP_TAG, Session, tag};
use fate_crypto::paillier::{SecretKey, keygen};
use fate_runtime::ComponentError;
use fate_types::Party;
use serde_json::json;

pub(super) fn train(s: &Session, p: &TrainParams) -> Result<(), ComponentError> {
    let ctx = s.ctx;
    let fed = &ctx.federation;
    let warm = ctx
        .input_model("warm_start_model")
        .map(|m| ArbiterModel::from_json(m, "warm_start_model"))
        .transpose()?;

    let bits = p.he_param.key_length;
    let (pk, sk) = s
        .pool(|| keygen(bits, &mut rand::rngs::OsRng))
        .map_err(crypto)?;
    fed.remote(ENCRYPTOR, SETUP_TAG, &s.hosts, &pk)?;
    fed.remote(ENCRYPTOR, SETUP_TAG, std::slice::from_ref(&s.guest), &pk)?;
    let label_count: u64 = fed.get_one(LABEL_COUNT, SETUP_TAG, &s.guest)?;
    if !(2..=MAX_CLASSES as u64).contains(&label_count) {
        return Err(ComponentError::Data(format!(
            "{} announced {label_count} classes (allowed 2..={MAX_CLASSES})",
            s.guest
        )));
    }
    let batch_num: u64 = fed.get_one(BATCH_NUM, SETUP_TAG, &s.guest)?;
    if !(1..=MAX_BATCHES as u64).contains(&batch_num) {
        return Err(ComponentError::Data(format!(
            "{} announced {batch_num} batches (allowed 1..={MAX_BATCHES})",
            s.guest
        )));
    }

    // Warm start keeps the model's optimizer, scheduler and stopping rule (FATE's from_model).
    let mut model = match warm {
        Some(m) => m,
        None => ArbiterModel {
            ovr: false,
            early_stop: p.early_stop,
            tol: p.tol,
            optimizer: p.optimizer.clone(),
            learning_rate_scheduler: p.learning_rate_scheduler.clone(),
            estimators: Vec::new(),
        },
    };
    let ovr = label_count > 2 || model.ovr;
    let n_models = if ovr { label_count as usize } else { 1 };
    if !model.estimators.is_empty() && model.estimators.len() != n_models {
        return Err(ComponentError::Input {
            key: "warm_start_model".into(),
            reason: format!(
                "the model has {} class estimators, the guest's labels need {n_models}",
                model.estimators.len()
            ),
        });
    }
    if model.estimators.is_empty() {
        model.estimators = vec![
            ArbiterEstimator {
                optimizer: None,
                sched: None,
                end_epoch: -1,
                is_converged: false
            };
            n_models
        ];
    }
    model.ovr = ovr;
    let spec = OptimSpec::from_param(&model.optimizer, "optimizer")?;
    let mut losses = Vec::new();
    for c in 0..n_models {
        let class = ovr.then_some(c);
        let mut fit = Fit {
            s,
            sk: &sk,
            class,
            batch_num: batch_num as usize,
            epochs: p.epochs,
            converge: Converge::new(model.early_stop, model.tol),
            spec: spec.clone(),
            model: &model,
        };
        let mut est = model.estimators[c].clone();
        fit.run(&mut est, &mut losses)?;
        model.estimators[c] = est;
    }
    if !losses.is_empty() {
        ctx.metric("lr_loss", "loss", json!(losses));
    }
    ctx.output_model("output_model", model.to_json(p.epochs, p.batch_size));
    Ok(())
}

struct Fit<'a> {
    s: &'a Session<'a>,
    sk: &'a SecretKey,
    class: Option<usize>,
    batch_num: usize,
    epochs: usize,
    converge: Converge,
    spec: OptimSpec,
    model: &'a ArbiterModel,
}

impl Fit<'_> {
    /// Decrypts a party's encrypted vector of `expected` values (any length when `None`).
    fn decrypt(
        &self,
        msg: &CipherVec,
        expected: Option<usize>,
        what: &str,
        from: &Party,
    ) -> Result<Vec<f64>, ComponentError> {
        let pk = self.sk.public_key();
        let n = expected.unwrap_or_else(|| msg.len(pk));
        if n == 0 {
            return Err(ComponentError::Data(format!(
                "`{what}` from {from} is empty"
            )));
        }
        let cts = msg.decode(pk, n, what, from)?;
        let values = self
            .s
            .pool(|| self.sk.decrypt_f64_vec(&cts, msg.frac_bits))
            .map_err(|e| {
                ComponentError::Data(format!(
                    "`{what}` from {from} does not decrypt to a value: {e}"
                ))
            })?;
        let divisor = msg.divisor as f64;
        Ok(values.into_iter().map(|v| v / divisor).collect())
    }

    fn run(
        &mut self,
        est: &mut ArbiterEstimator,
        losses: &mut Vec<serde_json::Value>,
    ) -> Result<(), ComponentError> {
        let ctx = self.s.ctx;
        let fed = &ctx.federation;
        let guest = &self.s.guest;
        let hosts = &self.s.hosts;
        let mut sizes: Option<Vec<usize>> = est.optimizer.as_ref().map(|_| Vec::new());
        est.is_converged = false;
        for epoch in 0..self.epochs {
            ctx.check_canceled()?;
            let mut iter_loss: Option<f64> = None;
            let mut iter_delta: Vec<f64> = Vec::new();
            for b in 0..self.batch_num {
                let t = tag(self.class, &format!("iter-{epoch}.batch-{b}"));
                // Sizes are fixed by the first batch (or by the warm-start optimizer's length).
                let expected = |i: usize| sizes.as_ref().and_then(|s| s.get(i).copied());
                let msg: CipherVec = fed.get_one(G_ENC, &t, guest)?;
                let mut parts = vec![self.decrypt(&msg, expected(0), G_ENC, guest)?];
                let msgs: Vec<CipherVec> = fed.get(G_ENC, &t, hosts)?;
                for (i, (msg, host)) in msgs.iter().zip(hosts).enumerate() {
                    parts.push(self.decrypt(msg, expected(i + 1), G_ENC, host)?);
                }
                let got: Vec<usize> = parts.iter().map(Vec::len).collect();
                let total: usize = got.iter().sum();
                match &mut sizes {
                    Some(s) if s.is_empty() => {
                        // Warm start: the restored optimizer fixes the total length.
                        let len = est.optimizer.as_ref().map_or(0, |o| o.param.len());
                        if total != len {
                            return Err(ComponentError::Input {
                                key: "warm_start_model".into(),
                                reason: format!(
                                    "the model's optimizer has {len} parameters, the parties sent {total} gradients"
                                ),
                            });
                        }
                        *s = got;
                    }
                    Some(_) => {}
                    None => {
                        est.optimizer = Some(Optimizer::new(self.spec.clone(), total));
                        sizes = Some(got);
                    }
                }
                if est.sched.is_none() {
                    est.sched = Some(LrScheduler::new(
                        &self.model.learning_rate_scheduler,
                        self.spec.lr,
                        "learning_rate_scheduler",
                    )?);
                }
                let lr = est.sched.as_ref().map_or(self.spec.lr, LrScheduler::lr);
                let g_total: Vec<f64> = parts.concat();
                let optimizer = est
                    .optimizer
                    .as_mut()
                    .ok_or_else(|| ComponentError::Failed("optimizer missing".into()))?;
                let delta = optimizer.step(&g_total, lr);
                let mut at = 0;
                for (i, n) in sizes.iter().flatten().enumerate() {
                    let part = &delta[at..at + n];
                    let dst = if i == 0 { guest } else { &hosts[i - 1] };
                    fed.remote(G, &t, std::slice::from_ref(dst), &part)?;
                    at += n;
                }
                if iter_delta.is_empty() {
                    iter_delta = delta;
                } else {
                    iter_delta.iter_mut().zip(&delta).for_each(|(a, d)| *a += d);
                }
                if hosts.len() == 1 {
                    let msg: CipherVec = fed.get_one(LOSS, &t, guest)?;
                    let loss = self.decrypt(&msg, Some(1), LOSS, guest)?[0];
                    *iter_loss.get_or_insert(0.0) += loss;
                }
            }
            if let Some(l) = iter_loss {
                let mut entry = json!({"metric": l, "step": epoch});
                if let Some(c) = self.class {
                    entry["class"] = json!(c);
                }
                losses.push(entry);
                ctx.info(format!("epoch {epoch}: loss {l}"));
            }
            let converged = self.converge.check(iter_loss, &iter_delta).ok_or_else(|| {
                ComponentError::param(
                    "early_stop",
                    "needs the loss, which is only computed with one host; use weight_diff",
                )
            })?;
            let flag_tag = tag(self.class, &format!("iter-{epoch}"));
            fed.remote(CONVERGE_FLAG, &flag_tag, hosts, &converged)?;
            fed.remote(
                CONVERGE_FLAG,
                &flag_tag,
                std::slice::from_ref(guest),
                &converged,
            )?;
            if converged {
                est.is_converged = true;
                est.end_epoch = epoch as i64;
                break;
            }
            if epoch + 1 < self.epochs
                && let Some(s) = est.sched.as_mut()
            {
                s.step();
            }
        }
        if !est.is_converged {
            est.end_epoch = self.epochs as i64;
        }
        Ok(())
    }
}
