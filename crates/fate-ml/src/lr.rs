//! CoordinatedLR's model and predict (fate-spec §4.3 "Predict"): the guest's score is
//! `σ(X_g·w_g + b + Σ_host X_h·w_h)`, each host contributing its plain partial score
//! `X_h·w_h` (FATE's `h_pred`); more than two classes are one-vs-rest, one estimator per class.
//!
//! The model is FATE 2.x's JSON (`CoordinatedLRModule{Guest,Host}.get_model`): `{"data":
//! {"estimator": <estimator> | {"<class index>": <estimator>}}, "meta": {...}}`, each
//! estimator's weights in `param.coef_` (a column) and `param.intercept_`.
//!
//! The sums are taken in one fixed order (guest's dot product, plus its intercept, plus each
//! host in the order of the model's hosts), the order of the batch predict stage, so a score
//! served online equals the predict job's bit for bit.

use serde_json::Value;

fn field<'a>(v: &'a Value, path: &[&str]) -> Result<&'a Value, String> {
    let mut cur = v;
    for p in path {
        cur = cur
            .get(p)
            .ok_or_else(|| format!("model has no `{}`", path.join(".")))?;
    }
    Ok(cur)
}

/// One estimator's weights: the coefficients, then the intercept when `fit_intercept`.
#[derive(Debug, Clone, PartialEq)]
pub struct Linear {
    pub w: Vec<f64>,
    pub fit_intercept: bool,
    /// Feature names, one per coefficient.
    pub header: Vec<String>,
}

impl Linear {
    /// Coefficients without the intercept.
    pub fn n_features(&self) -> usize {
        self.w.len() - usize::from(self.fit_intercept)
    }

    /// Reads an estimator's `param` (and `fit_intercept` and `header`); `fit_intercept` is
    /// false at hosts (FATE's host never has one). Errors say which field is wrong.
    pub fn from_json(v: &Value, guest: bool) -> Result<Linear, String> {
        let fit_intercept = guest && field(v, &["fit_intercept"])?.as_bool().unwrap_or(false);
        let param = field(v, &["param"])?;
        let coef = field(param, &["coef_"])?
            .as_array()
            .ok_or("param.coef_ is not a list")?;
        let scalar = |x: &Value| -> Option<f64> {
            match x {
                Value::Array(a) if a.len() == 1 => a[0].as_f64(),
                other => other.as_f64(),
            }
        };
        let mut w: Vec<f64> = coef
            .iter()
            .map(|x| scalar(x).ok_or_else(|| format!("param.coef_ has a non-number {x}")))
            .collect::<Result<_, _>>()?;
        if fit_intercept {
            let b = param
                .get("intercept_")
                .and_then(scalar)
                .ok_or("param.intercept_ is missing")?;
            w.push(b);
        }
        if w.iter().any(|x| !x.is_finite()) {
            return Err("the model has non-finite weights".into());
        }
        let header: Vec<String> = match v.get("header") {
            Some(h) => serde_json::from_value(h.clone()).map_err(|e| format!("header: {e}"))?,
            None => (0..coef.len()).map(|i| format!("x{i}")).collect(),
        };
        if header.len() != coef.len() {
            return Err(format!(
                "header names {} features but coef_ has {}",
                header.len(),
                coef.len()
            ));
        }
        Ok(Linear {
            w,
            fit_intercept,
            header,
        })
    }

    /// This party's linear part of one row: `x·w (+ b)`. At a host (no intercept) this is
    /// the partial score it sends the guest. `x` must have [`Linear::n_features`] values.
    pub fn linear(&self, x: &[f64]) -> f64 {
        let nf = self.n_features();
        let b = if self.fit_intercept { self.w[nf] } else { 0.0 };
        dot(x, &self.w[..nf]) + b
    }

    /// A host's partial score `x·w` (FATE's `h_pred`).
    pub fn partial(&self, x: &[f64]) -> f64 {
        dot(x, &self.w)
    }
}

/// The estimators of `data.estimator` in class order: one for a binary model, one per class
/// (keys "0".."n-1") for one-vs-rest.
pub fn estimators_json(v: &Value, ovr: bool) -> Result<Vec<&Value>, String> {
    let est = field(v, &["data", "estimator"])?;
    if !ovr {
        return Ok(vec![est]);
    }
    let obj = est
        .as_object()
        .ok_or("data.estimator of a one-vs-rest model is not an object")?;
    let mut pairs: Vec<(usize, &Value)> = obj
        .iter()
        .map(|(k, e)| {
            k.parse::<usize>()
                .map(|i| (i, e))
                .map_err(|_| format!("class index `{k}` is not a number"))
        })
        .collect::<Result<_, _>>()?;
    pairs.sort_by_key(|(i, _)| *i);
    if pairs.iter().enumerate().any(|(j, (i, _))| *i != j) {
        return Err("class indices of data.estimator are not 0..n".into());
    }
    Ok(pairs.into_iter().map(|(_, e)| e).collect())
}

/// A guest's or host's CoordinatedLR model as prediction needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct LrModel {
    pub ovr: bool,
    /// Guest: sorted class labels. Host: empty.
    pub labels: Vec<i64>,
    pub threshold: f64,
    /// One per class with one-vs-rest, else one.
    pub estimators: Vec<Linear>,
}

impl LrModel {
    /// Reads FATE's model JSON of the guest (`guest`) or a host.
    pub fn from_json(v: &Value, guest: bool) -> Result<LrModel, String> {
        let meta = field(v, &["meta"])?;
        let ovr = meta.get("ovr").and_then(Value::as_bool).unwrap_or(false);
        let estimators = estimators_json(v, ovr)?
            .into_iter()
            .map(|e| Linear::from_json(e, guest))
            .collect::<Result<Vec<_>, _>>()?;
        let labels: Vec<i64> = if guest {
            serde_json::from_value(field(meta, &["labels"])?.clone())
                .map_err(|e| format!("meta.labels: {e}"))?
        } else {
            Vec::new()
        };
        if guest && ovr && labels.len() != estimators.len() {
            return Err(format!(
                "{} labels but {} class estimators",
                labels.len(),
                estimators.len()
            ));
        }
        if estimators
            .iter()
            .any(|e| e.n_features() != estimators[0].n_features())
        {
            return Err("class estimators have different feature counts".into());
        }
        Ok(LrModel {
            ovr,
            labels,
            threshold: meta.get("threshold").and_then(Value::as_f64).unwrap_or(0.5),
            estimators,
        })
    }

    /// Features each row must have.
    pub fn n_features(&self) -> usize {
        self.estimators.first().map_or(0, Linear::n_features)
    }

    /// Feature names (the first estimator's header).
    pub fn header(&self) -> &[String] {
        self.estimators.first().map_or(&[], |e| e.header.as_slice())
    }

    /// Classes scored (1 for a binary model).
    pub fn n_classes(&self) -> usize {
        self.estimators.len()
    }

    /// The guest's linear part of one row, per class.
    pub fn guest_linear(&self, x: &[f64]) -> Vec<f64> {
        self.estimators.iter().map(|e| e.linear(x)).collect()
    }

    /// A host's partial scores of one row, per class (what it sends the guest).
    pub fn host_partials(&self, x: &[f64]) -> Vec<f64> {
        self.estimators.iter().map(|e| e.partial(x)).collect()
    }

    /// The prediction of one row from its guest linear part and each host's partials (in the
    /// order of the model's hosts); every slice has one value per class.
    pub fn predict(&self, guest: &[f64], hosts: &[&[f64]]) -> Prediction {
        let mut z = guest.to_vec();
        for h in hosts {
            add_partial(&mut z, h);
        }
        outcome(&z, self.ovr, &self.labels, self.threshold)
    }
}

/// Adds a host's partial scores to the per-class sums.
pub fn add_partial(z: &mut [f64], host: &[f64]) {
    for (zc, vc) in z.iter_mut().zip(host) {
        *zc += vc;
    }
}

/// One row's prediction.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// Binary: σ(z), the positive class's probability. One-vs-rest: the best class's.
    pub score: f64,
    /// The predicted class label.
    pub label: f64,
    /// One-vs-rest: each class's probability. Binary: empty.
    pub probs: Vec<f64>,
}

impl Prediction {
    /// The prediction frame's row (fate-runtime's `predict` convention): score, result, then
    /// each class's probability for one-vs-rest.
    pub fn into_row(self) -> Vec<f64> {
        let mut f = vec![self.score, self.label];
        f.extend(self.probs);
        f
    }
}

/// The prediction from the total linear sums per class: binary uses `threshold` and label 1
/// as the positive class (FATE's y mapping); one-vs-rest picks the most probable class.
pub fn outcome(z: &[f64], ovr: bool, labels: &[i64], threshold: f64) -> Prediction {
    let probs: Vec<f64> = z.iter().map(|&v| sigmoid(v)).collect();
    if ovr {
        let (best, score) =
            probs
                .iter()
                .enumerate()
                .fold(
                    (0, f64::NEG_INFINITY),
                    |acc, (j, &p)| if p > acc.1 { (j, p) } else { acc },
                );
        Prediction {
            score,
            label: labels.get(best).copied().unwrap_or(best as i64) as f64,
            probs,
        }
    } else {
        let score = probs.first().copied().unwrap_or(f64::NAN);
        let neg = labels.iter().find(|&&l| l != 1).copied().unwrap_or(0) as f64;
        Prediction {
            score,
            label: if score > threshold { 1.0 } else { neg },
            probs: Vec::new(),
        }
    }
}

pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

pub fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn guest_json() -> Value {
        json!({"data": {"estimator": {"param": {"coef_": [[0.5], [-1.0]], "intercept_": [0.25]},
            "fit_intercept": true, "header": ["a", "b"]}},
            "meta": {"ovr": false, "labels": [0, 1], "threshold": 0.5}})
    }

    #[test]
    fn binary_score_is_the_sigmoid_of_guest_plus_hosts() {
        let g = LrModel::from_json(&guest_json(), true).unwrap();
        let h = LrModel::from_json(
            &json!({"data": {"estimator": {"param": {"coef_": [[2.0]], "intercept_": null}}},
                "meta": {"ovr": false}}),
            false,
        )
        .unwrap();
        let x_g = [1.0, 2.0];
        let x_h = [0.75];
        let gl = g.guest_linear(&x_g);
        assert_eq!(gl, vec![0.5 - 2.0 + 0.25]);
        let hp = h.host_partials(&x_h);
        assert_eq!(hp, vec![1.5]);
        let p = g.predict(&gl, &[&hp]);
        assert_eq!(p.score, sigmoid(0.25));
        assert_eq!(p.label, 1.0);
        // Below the threshold: the label that is not 1.
        assert_eq!(g.predict(&gl, &[&[0.0]]).label, 0.0);
    }

    #[test]
    fn one_vs_rest_picks_the_most_probable_class_label() {
        let p = outcome(&[-1.0, 2.0, 0.5], true, &[3, 5, 7], 0.5);
        assert_eq!(p.label, 5.0);
        assert_eq!(p.score, sigmoid(2.0));
        assert_eq!(p.probs.len(), 3);
        let bad = json!({"data": {"estimator": {"x": {}}}, "meta": {"ovr": true, "labels": [1]}});
        let e = LrModel::from_json(&bad, true).unwrap_err();
        assert!(e.contains("class index `x`"), "{e}");
        let missing = json!({"data": {"estimator": {"param": {}}}, "meta": {}});
        let e = LrModel::from_json(&missing, false).unwrap_err();
        assert!(e.contains("`coef_`"), "{e}");
    }
}
