//! `feature_scale`, `statistics` and `data_split` run at guest and host through
//! `fate_runtime::testing::Harness` on FATE's breast data (issue 16): scaled columns and
//! statistics equal a plaintext computation in the test (1e-9), data_split's counts and ids are
//! exact and the same at guest and host, the host receives only sample ids (transcript), and
//! bad parameters are refused naming the field.

use fate_components::data_split::{DataSplit, names};
use fate_components::feature_scale::FeatureScale;
use fate_components::statistics::Statistics;
use fate_components::upload::{UploadMeta, parse_csv};
use fate_computing::{Computing, ComputingConfig};
use fate_federation::testing::Transcript;
use fate_federation::wire::{Head, decode_head, decode_value};
use fate_runtime::testing::{Harness, PartyResult, PartyRun};
use fate_runtime::{ComponentError, DataFrame, InputArtifact, Row};
use fate_types::{Party, Role};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::Path;

fn computing() -> Computing {
    fate_components::testing::computing(ComputingConfig {
        cores: 2,
        default_partitions: 4,
        data_dir: None,
    })
}

fn guest() -> Party {
    Party::new(Role::Guest, "9999")
}

fn host() -> Party {
    Party::new(Role::Host, "10000")
}

fn data_file(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/data")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The breast guest and host tables as `psi` leaves them (the host's rows keyed by the guest's
/// sample id of the same `id`).
fn breast(c: &Computing) -> (DataFrame, DataFrame) {
    let meta = |label: bool| UploadMeta {
        match_id_name: Some("id".into()),
        label_name: label.then(|| "y".to_string()),
        dtype: Some("float64".into()),
        label_type: Some("int64".into()),
        ..UploadMeta::default()
    };
    let (gs, grows) = parse_csv(
        &data_file("breast_hetero_guest.csv"),
        true,
        &meta(true),
        true,
    )
    .unwrap();
    let (hs, hrows) = parse_csv(
        &data_file("breast_hetero_host.csv"),
        true,
        &meta(false),
        true,
    )
    .unwrap();
    let sid_of: std::collections::HashMap<String, String> = grows
        .iter()
        .map(|(sid, r)| (r.match_id.clone(), sid.clone()))
        .collect();
    let hrows: Vec<(String, Row)> = hrows
        .into_iter()
        .filter_map(|(_, r)| sid_of.get(&r.match_id).map(|sid| (sid.clone(), r)))
        .collect();
    (
        DataFrame {
            schema: gs,
            table: c.parallelize(grows, 4),
        },
        DataFrame {
            schema: hs,
            table: c.parallelize(hrows, 4),
        },
    )
}

fn rows(df: &DataFrame) -> Vec<(String, Row)> {
    df.table.collect(usize::MAX).unwrap()
}

fn output(h: &Harness, r: &PartyResult, key: &str) -> Vec<(String, Row)> {
    let d = r
        .outputs
        .data
        .iter()
        .find(|d| d.key == key)
        .unwrap_or_else(|| panic!("{} wrote no {key}", r.party));
    h.computing
        .load(&d.namespace, &d.name)
        .unwrap()
        .collect(usize::MAX)
        .unwrap()
}

fn column(rows: &[(String, Row)], j: usize) -> Vec<f64> {
    rows.iter().map(|(_, r)| r.features[j]).collect()
}

fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len() as f64
}

fn var(x: &[f64], ddof: usize) -> f64 {
    let m = mean(x);
    x.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (x.len() - ddof) as f64
}

/// Population central moment `k`.
fn central(x: &[f64], k: i32) -> f64 {
    let m = mean(x);
    x.iter().map(|v| (v - m).powi(k)).sum::<f64>() / x.len() as f64
}

/// FATE's skewness: m3 / m2^1.5, bias-corrected by sqrt(n(n-1))/(n-2) unless `bias`.
fn skew(x: &[f64], bias: bool) -> f64 {
    let n = x.len() as f64;
    let g = central(x, 3) / central(x, 2).powf(1.5);
    if bias {
        g
    } else {
        g * (n * (n - 1.0)).sqrt() / (n - 2.0)
    }
}

/// FATE's Fisher kurtosis.
fn kurt(x: &[f64], bias: bool) -> f64 {
    let n = x.len() as f64;
    let mut k = central(x, 4) / central(x, 2).powi(2);
    if !bias {
        k = ((n * n - 1.0) * k - 3.0 * (n - 1.0) * (n - 1.0)) / ((n - 2.0) * (n - 3.0)) + 3.0;
    }
    k - 3.0
}

fn min(x: &[f64]) -> f64 {
    x.iter().copied().fold(f64::INFINITY, f64::min)
}

fn max(x: &[f64]) -> f64 {
    x.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

fn close(a: f64, b: f64, what: &str) {
    assert!(
        (a - b).abs() <= 1e-9 * (1.0 + b.abs()),
        "{what}: {a} != {b}"
    );
}

fn ok(results: &[PartyResult]) {
    for r in results {
        if let Err(e) = &r.result {
            panic!("{} failed: {e}", r.party);
        }
    }
}

/// Both parties' runs of one component with the same parameters on their breast tables.
fn both(
    h: &Harness,
    key: &str,
    g: &InputArtifact,
    ho: &InputArtifact,
    params: Value,
) -> Vec<PartyRun> {
    let _ = h;
    vec![
        PartyRun::new(guest(), params.clone()).input(key, g.clone()),
        PartyRun::new(host(), params).input(key, ho.clone()),
    ]
}

#[test]
fn standard_scale_equals_plaintext_at_each_party_and_predict_applies_the_model() {
    let c = computing();
    let (g, ho) = breast(&c);
    let h = Harness::new(c.clone());
    let ga = h.table("t", "g", &g);
    let ha = h.table("t", "h", &ho);
    let results = h.run(
        "scale_0",
        &FeatureScale,
        both(&h, "train_data", &ga, &ha, json!({})),
    );
    ok(&results);
    for (r, df) in results.iter().zip([&g, &ho]) {
        let before = rows(df);
        let after = output(&h, r, "train_output_data");
        assert_eq!(after.len(), before.len());
        let model = &r
            .outputs
            .models
            .iter()
            .find(|(k, _)| k == "output_model")
            .unwrap()
            .1;
        assert_eq!(model["method"], "standard");
        for (j, name) in df.schema.feature_names.iter().enumerate() {
            let x = column(&before, j);
            let (m, s) = (mean(&x), var(&x, 1).sqrt());
            close(
                model["scaler_info"]["mean"][name].as_f64().unwrap(),
                m,
                "mean",
            );
            close(
                model["scaler_info"]["std"][name].as_f64().unwrap(),
                s,
                "std",
            );
            for ((kb, b), (ka, a)) in before.iter().zip(&after) {
                assert_eq!(kb, ka);
                close(a.features[j], (b.features[j] - m) / s, name);
                assert_eq!(a.label, b.label);
                assert_eq!(a.match_id, b.match_id);
            }
        }
    }
    // Predict: the model applied to other data (the training rows shifted by 1).
    let shifted = |df: &DataFrame| DataFrame {
        schema: df.schema.clone(),
        table: c.parallelize(
            rows(df).into_iter().map(|(k, mut r)| {
                r.features.iter_mut().for_each(|x| *x += 1.0);
                (k, r)
            }),
            4,
        ),
    };
    let mut hp = Harness::new(c.clone());
    hp.stage = "predict".into();
    let (gt, ht) = (shifted(&g), shifted(&ho));
    let runs: Vec<PartyRun> = [(&results[0], &gt, guest()), (&results[1], &ht, host())]
        .into_iter()
        .map(|(r, t, p)| {
            PartyRun::new(p.clone(), json!({}))
                .input(
                    "test_data",
                    hp.table("t", &format!("test_{}", p.party_id), t),
                )
                .input("input_model", r.model_artifact("output_model").unwrap())
        })
        .collect();
    let predicted = hp.run("scale_1", &FeatureScale, runs);
    ok(&predicted);
    for (r, df) in predicted.iter().zip([&g, &ho]) {
        let train = rows(df);
        let out = output(&hp, r, "test_output_data");
        for j in 0..df.schema.feature_names.len() {
            let x = column(&train, j);
            let (m, s) = (mean(&x), var(&x, 1).sqrt());
            for ((_, b), (_, a)) in train.iter().zip(&out) {
                close(a.features[j], (b.features[j] + 1.0 - m) / s, "predict");
            }
        }
    }
}

#[test]
fn min_max_scales_selected_columns_into_the_range_and_clips_in_predict() {
    let c = computing();
    let (g, _) = breast(&c);
    let h = Harness::new(c.clone());
    let ga = h.table("t", "g", &g);
    let params = json!({"method": "min_max", "scale_idx": [0, 2], "feature_range": [-1.0, 2.0]});
    let results = h.run(
        "scale_0",
        &FeatureScale,
        vec![PartyRun::new(guest(), params).input("train_data", ga)],
    );
    ok(&results);
    let before = rows(&g);
    let after = output(&h, &results[0], "train_output_data");
    for j in 0..g.schema.feature_names.len() {
        let x = column(&before, j);
        let (lo, hi) = (min(&x), max(&x));
        for ((_, b), (_, a)) in before.iter().zip(&after) {
            if j == 0 || j == 2 {
                let want = (b.features[j] - lo) * (3.0 / (hi - lo)) - 1.0;
                close(a.features[j], want, "min_max");
                assert!((-1.0..=2.0).contains(&a.features[j]));
            } else {
                assert_eq!(a.features[j], b.features[j], "column {j} is not selected");
            }
        }
    }
    // Predict on values beyond the training range: strict_range clips them to [-1, 2].
    let wide = DataFrame {
        schema: g.schema.clone(),
        table: c.parallelize(
            rows(&g).into_iter().map(|(k, mut r)| {
                r.features.iter_mut().for_each(|x| *x *= 10.0);
                (k, r)
            }),
            4,
        ),
    };
    let mut hp = Harness::new(c.clone());
    hp.stage = "predict".into();
    let run = PartyRun::new(guest(), json!({}))
        .input("test_data", hp.table("t", "wide", &wide))
        .input(
            "input_model",
            results[0].model_artifact("output_model").unwrap(),
        );
    let predicted = hp.run("scale_1", &FeatureScale, vec![run]);
    ok(&predicted);
    let out = output(&hp, &predicted[0], "test_output_data");
    let x0 = column(&out, 0);
    assert!(x0.iter().all(|v| (-1.0..=2.0).contains(v)));
    assert!(
        x0.contains(&-1.0) && x0.contains(&2.0),
        "wide values are clipped to both ends"
    );
}

#[test]
fn statistics_equal_plaintext_at_each_party() {
    let c = computing();
    let (g, ho) = breast(&c);
    let h = Harness::new(c.clone());
    let ga = h.table("t", "g", &g);
    let ha = h.table("t", "h", &ho);
    let metrics = json!([
        "count",
        "sum",
        "mean",
        "std",
        "var",
        "min",
        "max",
        "missing_count",
        "skewness",
        "kurtosis"
    ]);
    let results = h.run(
        "stat_0",
        &Statistics,
        both(
            &h,
            "input_data",
            &ga,
            &ha,
            json!({"metrics": metrics, "ddof": 1}),
        ),
    );
    ok(&results);
    for (r, df) in results.iter().zip([&g, &ho]) {
        let data = rows(df);
        let s = r.metric("statistics").expect("statistics metric");
        let model = &r
            .outputs
            .models
            .iter()
            .find(|(k, _)| k == "output_model")
            .unwrap()
            .1;
        assert_eq!(model["inner_metric_names"], metrics);
        for (j, name) in df.schema.feature_names.iter().enumerate() {
            let x = column(&data, j);
            let got = |m: &str| s[m][name].as_f64().unwrap_or_else(|| panic!("{m} {name}"));
            assert_eq!(got("count"), x.len() as f64);
            assert_eq!(got("missing_count"), 0.0);
            close(got("sum"), x.iter().sum(), "sum");
            close(got("kurtosis"), kurt(&x, true), "kurtosis");
            close(got("mean"), mean(&x), "mean");
            close(got("var"), var(&x, 1), "var");
            close(got("std"), var(&x, 1).sqrt(), "std");
            assert_eq!(got("min"), min(&x));
            assert_eq!(got("max"), max(&x));
            // FATE's model is column-major (`metrics_summary[column][metric]`).
            assert_eq!(model["metrics_summary"][name]["mean"], s["mean"][name]);
            close(got("skewness"), skew(&x, true), "skewness");
        }
    }
    // The defaults: mean, std, min, max; ddof 0 changes std.
    let results = h.run(
        "stat_1",
        &Statistics,
        vec![PartyRun::new(guest(), json!({"ddof": 0})).input("input_data", ga.clone())],
    );
    ok(&results);
    let s = results[0].metric("statistics").unwrap();
    let keys: BTreeSet<&str> = s.as_object().unwrap().keys().map(|k| k.as_str()).collect();
    assert_eq!(keys, BTreeSet::from(["max", "mean", "min", "std"]));
    let x = column(&rows(&g), 3);
    close(
        s["std"]["x3"].as_f64().unwrap(),
        var(&x, 0).sqrt(),
        "std ddof 0",
    );
    // bias false: the corrected skewness and kurtosis.
    let results = h.run(
        "stat_2",
        &Statistics,
        vec![
            PartyRun::new(
                guest(),
                json!({"metrics": ["skewness", "kurtosis"], "bias": false}),
            )
            .input("input_data", ga.clone()),
        ],
    );
    ok(&results);
    let s = results[0].metric("statistics").unwrap();
    for (j, name) in g.schema.feature_names.iter().enumerate() {
        let x = column(&rows(&g), j);
        close(
            s["skewness"][name].as_f64().unwrap(),
            skew(&x, false),
            "unbiased skewness",
        );
        close(
            s["kurtosis"][name].as_f64().unwrap(),
            kurt(&x, false),
            "unbiased kurtosis",
        );
    }
}

/// The ids of a data output, in key order.
fn ids(h: &Harness, r: &PartyResult, key: &str) -> Vec<String> {
    output(h, r, key).into_iter().map(|(k, _)| k).collect()
}

#[test]
fn data_split_guest_decides_hosts_follow_and_receive_only_ids() {
    let c = computing();
    let (g, ho) = breast(&c);
    let transcript = Transcript::new();
    let h = Harness::new(c.clone()).with_observer(transcript.clone());
    let ga = h.table("t", "g", &g);
    let ha = h.table("t", "h", &ho);
    let results = h.run(
        "split_0",
        &DataSplit,
        both(&h, "input_data", &ga, &ha, json!({"random_state": 42})),
    );
    ok(&results);
    let n = rows(&g).len();
    assert_eq!(n, 569);
    let train = ids(&h, &results[0], "train_output_data");
    let validate = ids(&h, &results[0], "validate_output_data");
    // 0.8 / 0.2 / 0.0: round(0.8 · 569) = 455, the rest 114, no test set.
    assert_eq!(train.len(), 455);
    assert_eq!(validate.len(), 114);
    for r in &results {
        assert!(r.outputs.data.iter().all(|d| d.key != "test_output_data"));
        let s = r.metric("summary").unwrap();
        assert_eq!(s["original_count"], 569);
        assert_eq!(s["train_count"], 455);
        assert_eq!(s["validate_count"], 114);
        assert_eq!(s["test_count"], Value::Null);
    }
    let all: BTreeSet<&String> = train.iter().chain(&validate).collect();
    assert_eq!(all.len(), n, "the sets are disjoint and cover every row");
    assert_eq!(
        ids(&h, &results[1], "train_output_data"),
        train,
        "host's train ids"
    );
    assert_eq!(
        ids(&h, &results[1], "validate_output_data"),
        validate,
        "host's validate ids"
    );
    // The host's rows are its own (its features, not the guest's).
    let host_rows = output(&h, &results[1], "train_output_data");
    assert_eq!(host_rows[0].1.features.len(), ho.schema.feature_names.len());
    assert!(host_rows.iter().all(|(_, r)| r.label.is_none()));

    // Transcript: the guest receives nothing; the host receives the three id lists only.
    assert_eq!(transcript.received_by(&guest()).len(), 0);
    let to_host = transcript.received_by(&host());
    assert_eq!(to_host.len(), 3);
    let names_got: BTreeSet<String> = to_host.iter().map(|e| e.name.clone()).collect();
    assert_eq!(
        names_got,
        BTreeSet::from([
            names::TRAIN_SID.to_string(),
            names::VALIDATE_SID.to_string(),
            names::TEST_SID.to_string()
        ])
    );
    for e in &to_host {
        assert_eq!(e.slice, None, "one frame per list");
        let body = match decode_head(&e.frame, 1 << 30) {
            Ok(Head::Inline(p)) => p.to_vec(),
            other => panic!("{}: expected an inline frame, got {other:?}", e.name),
        };
        let got: Option<Vec<String>> = decode_value(&body).unwrap();
        let want = match e.name.as_str() {
            names::TRAIN_SID => Some(train.clone()),
            names::VALIDATE_SID => Some(validate.clone()),
            _ => None,
        };
        assert_eq!(got, want, "{} carries exactly the ids", e.name);
    }

    // The same seed gives the same split.
    let again = h.run(
        "split_1",
        &DataSplit,
        both(&h, "input_data", &ga, &ha, json!({"random_state": 42})),
    );
    ok(&again);
    assert_eq!(ids(&h, &again[0], "train_output_data"), train);
}

#[test]
fn data_split_counts_stratified_and_unsynced() {
    let c = computing();
    let (g, ho) = breast(&c);
    let h = Harness::new(c.clone());
    let ga = h.table("t", "g", &g);
    let ha = h.table("t", "h", &ho);
    // Integer sizes: train 100, validate 50, test the rest (419).
    let results = h.run(
        "split_0",
        &DataSplit,
        both(
            &h,
            "input_data",
            &ga,
            &ha,
            json!({"train_size": 100, "validate_size": 50, "random_state": 1}),
        ),
    );
    ok(&results);
    for r in &results {
        assert_eq!(ids(&h, r, "train_output_data").len(), 100);
        assert_eq!(ids(&h, r, "validate_output_data").len(), 50);
        assert_eq!(ids(&h, r, "test_output_data").len(), 419);
    }
    assert_eq!(
        ids(&h, &results[0], "test_output_data"),
        ids(&h, &results[1], "test_output_data")
    );
    // Fractions round as Python does (ties to even): round(0.5 · 569) = 284, the test set
    // takes the one row left.
    let results = h.run(
        "split_half",
        &DataSplit,
        both(
            &h,
            "input_data",
            &ga,
            &ha,
            json!({"train_size": 0.5, "validate_size": 0.5, "test_size": 0.0, "random_state": 1}),
        ),
    );
    ok(&results);
    for r in &results {
        assert_eq!(ids(&h, r, "train_output_data").len(), 284);
        assert_eq!(ids(&h, r, "validate_output_data").len(), 284);
        assert_eq!(ids(&h, r, "test_output_data").len(), 1);
    }
    // Stratified: each label's share of the train set is round(label_rows / rows · 455).
    let results = h.run(
        "split_1",
        &DataSplit,
        vec![
            PartyRun::new(
                guest(),
                json!({"stratified": true, "hetero_sync": false, "random_state": 3}),
            )
            .input("input_data", ga.clone()),
        ],
    );
    ok(&results);
    let all = rows(&g);
    let pos = all.iter().filter(|(_, r)| r.label == Some(1.0)).count();
    let neg = all.len() - pos;
    let train = output(&h, &results[0], "train_output_data");
    let train_neg = train.iter().filter(|(_, r)| r.label == Some(0.0)).count();
    assert_eq!(train.len(), 455);
    assert_eq!(
        train_neg,
        ((neg as f64 / all.len() as f64) * 455.0).round_ties_even() as usize
    );
    assert_eq!(train.len() - train_neg, 455 - train_neg);
    let validate = output(&h, &results[0], "validate_output_data");
    assert_eq!(validate.len(), 114);
}

fn refused(results: &[PartyResult], field: &str) {
    for r in results {
        match &r.result {
            Err(ComponentError::Param { name, .. }) => assert_eq!(name, field, "{}", r.party),
            other => panic!(
                "{}: expected a parameter error on `{field}`, got {other:?}",
                r.party
            ),
        }
        assert!(
            r.outputs.data.is_empty() && r.outputs.models.is_empty(),
            "nothing written"
        );
    }
}

#[test]
fn bad_parameters_are_refused_naming_the_field() {
    let c = computing();
    let (g, ho) = breast(&c);
    let h = Harness::new(c.clone());
    let ga = h.table("t", "g", &g);
    let ha = h.table("t", "h", &ho);
    for (params, field) in [
        (json!({"method": "robust"}), "method"),
        (
            json!({"method": "min_max", "feature_range": [1, 0]}),
            "feature_range",
        ),
        (json!({"feature_range": {"x0": [0]}}), "feature_range"),
        (json!({"scale_col": ["x0"], "scale_idx": [1]}), "scale_col"),
        (json!({"scale_col": ["nope"]}), "scale_col"),
        (json!({"scale_idx": [99]}), "scale_idx"),
        (json!({"strict_range": "yes"}), "strict_range"),
    ] {
        let results = h.run(
            "scale_bad",
            &FeatureScale,
            both(&h, "train_data", &ga, &ha, params),
        );
        refused(&results, field);
    }
    for (params, field) in [
        (json!({"metrics": ["mean", "mode"]}), "metrics"),
        (json!({"metrics": ["median"]}), "metrics"),
        (json!({"ddof": -1}), "ddof"),
        (json!({"skip_col": ["nope"]}), "skip_col"),
    ] {
        let results = h.run(
            "stat_bad",
            &Statistics,
            both(&h, "input_data", &ga, &ha, params),
        );
        refused(&results, field);
    }
    for (params, field) in [
        (
            json!({"train_size": 0.9, "validate_size": 0.2}),
            "train_size",
        ),
        (json!({"validate_size": 1.5}), "validate_size"),
        (json!({"test_size": "half"}), "test_size"),
        (json!({"random_state": -3}), "random_state"),
        (
            json!({"train_size": 100, "validate_size": 500, "test_size": 0, "hetero_sync": false}),
            "train_size",
        ),
    ] {
        let results = h.run(
            "split_bad",
            &DataSplit,
            both(&h, "input_data", &ga, &ha, params),
        );
        refused(&results, field);
    }
    // A synced split without a host.
    let results = h.run(
        "split_alone",
        &DataSplit,
        vec![PartyRun::new(guest(), json!({})).input("input_data", ga.clone())],
    );
    refused(&results, "hetero_sync");
}

/// What needs no data is refused when the job is planned (`Component::check_params`, which the
/// scheduler runs at submit), by the same parser the run uses; FATE's defaults pass.
#[test]
fn bad_parameters_are_refused_at_plan_time_naming_the_field() {
    let check = |c: &dyn fate_runtime::Component, stage: &str, params: serde_json::Value| {
        c.check_params(stage, fate_types::Role::Guest, params.as_object().unwrap())
    };
    let field = |r: Result<(), ComponentError>| match r {
        Err(ComponentError::Param { name, .. }) => name,
        other => panic!("expected a parameter error, got {other:?}"),
    };
    for (c, stage) in [
        (&FeatureScale as &dyn fate_runtime::Component, "train"),
        (&FeatureScale, "predict"),
        (&Statistics, "default"),
        (&DataSplit, "default"),
    ] {
        check(c, stage, json!({})).unwrap_or_else(|e| panic!("{stage}: defaults refused: {e:?}"));
    }
    assert_eq!(
        field(check(&FeatureScale, "train", json!({"method": "robust"}))),
        "method"
    );
    assert_eq!(
        field(check(
            &FeatureScale,
            "train",
            json!({"method": "min_max", "feature_range": [1, 0]})
        )),
        "feature_range"
    );
    // The predict stage scales with the trained model's parameters, not its own.
    check(&FeatureScale, "predict", json!({"method": "robust"})).unwrap();
    assert_eq!(
        field(check(&Statistics, "default", json!({"ddof": -1}))),
        "ddof"
    );
    assert_eq!(
        field(check(
            &Statistics,
            "default",
            json!({"metrics": ["mean", "mode"]})
        )),
        "metrics"
    );
    assert_eq!(
        field(check(&DataSplit, "default", json!({"validate_size": 1.5}))),
        "validate_size"
    );
    assert_eq!(
        field(check(&DataSplit, "default", json!({"random_state": -3}))),
        "random_state"
    );
}
