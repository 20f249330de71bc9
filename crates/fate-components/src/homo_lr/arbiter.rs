//! The arbiter (server) of `homo_lr`: FedAvg over masked vectors. It learns the clients' sample
//! counts and, per epoch, only the weighted mean of their models and losses.

use super::names::{AGG_MODEL, AGG_WEIGHT, LOCAL_MODEL, LOCAL_WEIGHT};
use super::{Announce, FRAC_BITS, MAX_ABS, MAX_PARAMS, SETUP_TAG, Session, epoch_tag};
use fate_crypto::secagg;
use fate_runtime::ComponentError;
use serde_json::json;

pub(super) fn train(s: &Session) -> Result<(), ComponentError> {
    let ctx = s.ctx;
    let fed = &ctx.federation;
    let mut announces: Vec<Announce> = Vec::with_capacity(s.clients.len());
    for c in &s.clients {
        let a: Announce = fed.get_one(LOCAL_WEIGHT, SETUP_TAG, c)?;
        if a.sample_num == 0 || a.sample_num > crate::limits::COLLECT_ROWS as u64 {
            return Err(ComponentError::Data(format!(
                "{c} announced {} samples",
                a.sample_num
            )));
        }
        if a.epochs == 0 || a.epochs > crate::limits::ROUNDS {
            return Err(ComponentError::Data(format!(
                "{c} announced {} epochs",
                a.epochs
            )));
        }
        if a.params == 0 || a.params > MAX_PARAMS {
            return Err(ComponentError::Data(format!(
                "{c} announced {} model parameters (at most {MAX_PARAMS})",
                a.params
            )));
        }
        if let Some(f) = announces.first()
            && (a.epochs, a.params) != (f.epochs, f.params)
        {
            return Err(ComponentError::Data(format!(
                "{c} trains {} epochs of {} parameters, {} {} of {}: the clients' \
                 parameters or feature counts differ",
                a.epochs, a.params, s.clients[0], f.epochs, f.params
            )));
        }
        announces.push(a);
    }
    let total: u64 = announces.iter().map(|a| a.sample_num).sum();
    for (c, a) in s.clients.iter().zip(&announces) {
        let share = a.sample_num as f64 / total as f64;
        fed.remote(AGG_WEIGHT, SETUP_TAG, std::slice::from_ref(c), &share)?;
    }
    let epochs = announces[0].epochs as usize;
    let len = announces[0].params as usize + 1;
    ctx.info(format!(
        "homo_lr arbiter: {} clients, {total} samples, {epochs} epochs, {} parameters",
        s.clients.len(),
        len - 1
    ));
    let mut losses = Vec::with_capacity(epochs);
    for epoch in 0..epochs {
        ctx.check_canceled()?;
        let t = epoch_tag(epoch);
        let masked: Vec<Vec<u64>> = fed.get(LOCAL_MODEL, &t, &s.clients)?;
        for (c, m) in s.clients.iter().zip(&masked) {
            if m.len() != len {
                return Err(ComponentError::Data(format!(
                    "`{LOCAL_MODEL}` from {c} has {} values, expected {len}",
                    m.len()
                )));
            }
        }
        let refs: Vec<&[u64]> = masked.iter().map(Vec::as_slice).collect();
        let sum = secagg::aggregate(&refs)
            .map_err(|e| ComponentError::Data(format!("secure aggregation: {e}")))?;
        let agg = secagg::decode_f64(&sum, FRAC_BITS);
        if agg.iter().any(|x| !x.is_finite() || x.abs() > MAX_ABS) {
            return Err(ComponentError::Failed(format!(
                "the aggregate model of epoch {epoch} exceeds {MAX_ABS:e}: a client diverged \
                 or sent a bad masked vector"
            )));
        }
        fed.remote(AGG_MODEL, &t, &s.clients, &agg)?;
        losses.push(agg[len - 1]);
    }
    // FATE's aggregated loss per epoch.
    ctx.metric("loss", "loss", json!(losses));
    Ok(())
}
