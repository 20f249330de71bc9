//! `evaluation` run through `fate_runtime::testing::Harness`: the guest has prediction
//! dataframes, the host and the arbiter have none (FATE's layout after a hetero model).

use fate_components::evaluation::{Evaluation, MetricName};
use fate_computing::{Computing, ComputingConfig};
use fate_runtime::testing::{Harness, PartyResult, PartyRun, frame};
use fate_runtime::{ComponentError, InputArtifact, Row};
use fate_types::{Party, Role};
use serde_json::{Value, json};

fn computing() -> Computing {
    fate_components::testing::computing(ComputingConfig {
        cores: 2,
        default_partitions: 2,
        data_dir: None,
    })
}

fn guest() -> Party {
    Party::new(Role::Guest, "9999")
}

fn host() -> Party {
    Party::new(Role::Host, "10000")
}

fn arbiter() -> Party {
    Party::new(Role::Arbiter, "10000")
}

/// Stores a prediction dataframe with the given feature columns; one label and one row of
/// feature values per sample.
fn predictions(
    h: &Harness,
    name: &str,
    columns: &[&str],
    labels: &[f64],
    values: &[Vec<f64>],
) -> InputArtifact {
    let rows = labels
        .iter()
        .zip(values)
        .enumerate()
        .map(|(i, (&label, features))| {
            let id = format!("{i:03}");
            (
                id.clone(),
                Row {
                    match_id: id,
                    label: Some(label),
                    weight: None,
                    features: features.clone(),
                },
            )
        })
        .collect();
    let df = frame(&h.computing, columns, true, rows, 2);
    h.table("output_data_test", name, &df)
}

/// A binary prediction dataframe: `predict_score` and `predict_result` (score > 0.5).
fn binary(h: &Harness, name: &str, labels: &[f64], scores: &[f64]) -> InputArtifact {
    let values: Vec<Vec<f64>> = scores
        .iter()
        .map(|&s| vec![s, f64::from(u8::from(s > 0.5))])
        .collect();
    predictions(
        h,
        name,
        &["predict_score", "predict_result"],
        labels,
        &values,
    )
}

// Descending scores with labels 1 1 0 1 1 0 0 1 0 0 (5 positives, 5 negatives).
// AUC: the positives at ranks 1, 2, 4, 5, 8 are above 5, 5, 4, 4, 2 negatives -> 20/25 = 0.8.
// KS: TPR - FPR after the top k = 0.2 0.4 0.2 0.4 0.6 0.4 0.2 0.4 0.2 -> 0.6 (k = 5).
const LABELS: [f64; 10] = [1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0];
const SCORES: [f64; 10] = [0.9, 0.8, 0.7, 0.6, 0.55, 0.54, 0.53, 0.52, 0.51, 0.4];

/// Runs evaluation at guest (with `inputs`), host and arbiter (without).
fn run(h: &Harness, params: Value, inputs: Vec<InputArtifact>) -> Vec<PartyResult> {
    let mut g = PartyRun::new(guest(), params.clone());
    for input in inputs {
        g = g.input("input_datas", input);
    }
    h.run(
        "evaluation_0",
        &Evaluation,
        vec![
            g,
            PartyRun::new(host(), params.clone()),
            PartyRun::new(arbiter(), params),
        ],
    )
}

fn party<'a>(out: &'a [PartyResult], p: &Party) -> &'a PartyResult {
    out.iter().find(|r| &r.party == p).unwrap()
}

fn metric_names(r: &PartyResult) -> Vec<&str> {
    r.outputs
        .metrics
        .iter()
        .map(|(n, _, _)| n.as_str())
        .collect()
}

fn number(r: &PartyResult, name: &str) -> f64 {
    r.metric(name).unwrap_or_else(|| panic!("no metric {name}"))[name]
        .as_f64()
        .unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

#[test]
fn binary_default_metrics_at_the_guest_host_and_arbiter_do_nothing() {
    let h = Harness::new(computing());
    let input = binary(&h, "lr_0_output", &LABELS, &SCORES);
    let out = run(&h, json!({}), vec![input]);
    for r in &out {
        assert!(r.result.is_ok(), "{}: {:?}", r.party, r.result);
    }
    assert!(party(&out, &host()).outputs.metrics.is_empty());
    assert!(party(&out, &arbiter()).outputs.metrics.is_empty());

    let g = party(&out, &guest());
    assert_eq!(
        metric_names(g),
        vec![
            "auc",
            "ks",
            "confusion_matrix",
            "gain",
            "lift",
            "biclass_precision_table",
            "biclass_recall_table",
            "biclass_accuracy_table",
            "fscore_table",
            "evaluation"
        ]
    );
    assert!(
        g.outputs
            .metrics
            .iter()
            .filter(|(n, _, _)| n != "evaluation")
            .all(|(_, t, _)| t == "binary")
    );
    assert!(close(number(g, "auc"), 0.8), "{}", number(g, "auc"));
    assert!(close(number(g, "ks"), 0.6), "{}", number(g, "ks"));
    assert_eq!(g.metric("auc").unwrap()["input"], "lr_0_output");

    // The KS curve is FATE's ks_table: 100 index cuts and the final (1, 1) point.
    let curve = g.metric("ks").unwrap()["curve"].as_array().unwrap();
    assert_eq!(curve.len(), 101);
    assert_eq!(
        curve[100],
        json!({"threshold": 0.0, "cuts": 1.0, "tpr": 1.0, "fpr": 1.0})
    );
    let best = curve
        .iter()
        .map(|p| p["tpr"].as_f64().unwrap() - p["fpr"].as_f64().unwrap())
        .fold(0.0, f64::max);
    assert!(close(best, 0.6));
    // Cut 0.5 is position 5 of the descending scores (0.54): above it 4 positives, 1 negative.
    assert_eq!(curve[50]["threshold"], 0.54);
    assert_eq!(
        (curve[50]["tpr"].as_f64(), curve[50]["fpr"].as_f64()),
        (Some(0.8), Some(0.2))
    );

    // ROC points from the origin to (1, 1), increasing.
    let roc = g.metric("auc").unwrap()["roc"].as_array().unwrap();
    assert_eq!(roc[0], json!({"threshold": null, "tpr": 0.0, "fpr": 0.0}));
    assert_eq!(
        (
            roc.last().unwrap()["tpr"].as_f64(),
            roc.last().unwrap()["fpr"].as_f64()
        ),
        (Some(1.0), Some(1.0))
    );

    let cm = g.metric("confusion_matrix").unwrap()["confusion_matrix"]
        .as_array()
        .unwrap();
    assert_eq!(cm.len(), 100);
    assert_eq!(
        cm[50],
        json!({"threshold": 0.54, "cuts": 0.5, "tp": 4, "fp": 1, "fn": 1, "tn": 4})
    );
    let lift = g.metric("lift").unwrap()["lift"].as_array().unwrap();
    assert_eq!(lift.len(), 100);
    assert_eq!(lift[0]["liftx"].as_array().unwrap().len(), 2);
    assert_eq!(
        g.metric("biclass_precision_table").unwrap()["biclass_precision_table"]
            .as_array()
            .unwrap()
            .len(),
        101
    );
    assert_eq!(
        g.metric("biclass_accuracy_table").unwrap()["biclass_accuracy_table"]
            .as_array()
            .unwrap()
            .len(),
        100
    );
    assert_eq!(
        g.metric("fscore_table").unwrap()["fscore_table"][50]["threshold"],
        0.5
    );

    // FATE's own record: {input: {"origin": [EvalResult dicts]}}, tables as column lists.
    let fate = g.metric("evaluation").unwrap();
    let origin = fate["lr_0_output"]["origin"].as_array().unwrap();
    assert_eq!(origin.len(), 9);
    assert_eq!(origin[0]["metric"], "auc");
    assert!(close(origin[0]["val"].as_f64().unwrap(), 0.8));
    assert_eq!(origin[1][0]["metric"], "ks");
    assert_eq!(origin[1][1]["metric"], "ks_table");
    assert_eq!(origin[1][1]["val"]["tpr"].as_array().unwrap().len(), 101);
    assert_eq!(origin[2]["val"]["tp"].as_array().unwrap().len(), 100);
}

#[test]
fn named_metrics_only_and_each_input_evaluated() {
    let h = Harness::new(computing());
    let first = binary(&h, "lr_0_train", &LABELS, &SCORES);
    // Reversed scores: AUC 0.2.
    let reversed: Vec<f64> = SCORES.iter().map(|s| 1.0 - s).collect();
    let second = binary(&h, "lr_0_validate", &LABELS, &reversed);
    let params = json!({"metrics": ["auc", "ks", "binary_accuracy", "binary_f1_score"]});
    let out = run(&h, params, vec![first, second]);
    let g = party(&out, &guest());
    assert!(g.result.is_ok(), "{:?}", g.result);
    assert_eq!(
        metric_names(g),
        vec![
            "auc",
            "ks",
            "binary_accuracy",
            "binary_f1_score",
            "auc",
            "ks",
            "binary_accuracy",
            "binary_f1_score",
            "evaluation"
        ]
    );
    let aucs: Vec<(String, f64)> = g
        .outputs
        .metrics
        .iter()
        .filter(|(n, _, _)| n == "auc")
        .map(|(_, _, d)| {
            (
                d["input"].as_str().unwrap().to_string(),
                d["auc"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(aucs[0].0, "lr_0_train");
    assert!(close(aucs[0].1, 0.8));
    assert_eq!(aucs[1].0, "lr_0_validate");
    assert!(close(aucs[1].1, 0.2));
    // Scores > 0.5 on the first input: all but 0.4 -> tp 5, fp 4, tn 1: accuracy 0.6, F1 10/14.
    assert!(close(number(g, "binary_accuracy"), 0.6));
    assert!(close(number(g, "binary_f1_score"), 10.0 / 14.0));
    assert_eq!(g.metric("binary_accuracy").unwrap()["threshold"], 0.5);
    let fate = g.metric("evaluation").unwrap();
    assert_eq!(fate["lr_0_validate"]["origin"].as_array().unwrap().len(), 4);
}

#[test]
fn unknown_metric_is_a_parameter_error_listing_the_supported_ones() {
    let h = Harness::new(computing());
    let input = binary(&h, "p", &LABELS, &SCORES);
    let out = run(&h, json!({"metrics": ["auc", "gini"]}), vec![input]);
    let g = party(&out, &guest());
    match &g.result {
        Err(ComponentError::Param { name, reason }) => {
            assert_eq!(name, "metrics");
            assert!(reason.contains("`gini`"), "{reason}");
            for m in MetricName::ALL {
                assert!(reason.contains(m.as_str()), "{reason} lacks {}", m.as_str());
            }
        }
        other => panic!("expected a parameter error, got {other:?}"),
    }
    assert!(g.outputs.metrics.is_empty());
}

#[test]
fn bad_setting_is_a_parameter_error() {
    let h = Harness::new(computing());
    let input = binary(&h, "p", &LABELS, &SCORES);
    let out = run(&h, json!({"default_eval_setting": "ranking"}), vec![input]);
    let err = party(&out, &guest())
        .result
        .as_ref()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("default_eval_setting") && err.contains("`ranking`"),
        "{err}"
    );
}

#[test]
fn non_binary_labels_under_binary_are_an_error() {
    let h = Harness::new(computing());
    let mut labels = LABELS;
    labels[3] = 2.0;
    let input = binary(&h, "multi_preds", &labels, &SCORES);
    let out = run(&h, json!({"default_eval_setting": "binary"}), vec![input]);
    let g = party(&out, &guest());
    let err = g.result.as_ref().unwrap_err();
    assert!(matches!(err, ComponentError::Data(_)), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("multi_preds")
            && msg.contains("label 2 is not binary")
            && msg.contains("multi"),
        "{msg}"
    );
    assert!(g.outputs.metrics.is_empty());
}

#[test]
fn one_class_labels_are_an_error_for_auc() {
    let h = Harness::new(computing());
    let input = binary(&h, "p", &[1.0; 10], &SCORES);
    let out = run(&h, json!({"metrics": ["auc"]}), vec![input]);
    let msg = party(&out, &guest())
        .result
        .as_ref()
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("metric `auc`") && msg.contains("both classes"),
        "{msg}"
    );
}

#[test]
fn regression_metrics() {
    let h = Harness::new(computing());
    // errors 0.5, -0.5, 0, -1: MSE 0.375, MAE 0.5; scikit-learn's r2_score example 0.948608137...
    let labels = [3.0, -0.5, 2.0, 7.0];
    let values: Vec<Vec<f64>> = [2.5, 0.0, 2.0, 8.0].iter().map(|&p| vec![p, p]).collect();
    let input = predictions(
        &h,
        "linr_0_output",
        &["predict_score", "predict_result"],
        &labels,
        &values,
    );
    let out = run(
        &h,
        json!({"default_eval_setting": "regression"}),
        vec![input],
    );
    let g = party(&out, &guest());
    assert!(g.result.is_ok(), "{:?}", g.result);
    assert_eq!(
        metric_names(g),
        vec!["rmse", "mae", "mse", "r2_score", "evaluation"]
    );
    assert!(
        g.outputs
            .metrics
            .iter()
            .filter(|(n, _, _)| n != "evaluation")
            .all(|(_, t, _)| t == "regression")
    );
    assert_eq!(number(g, "mse"), 0.375);
    assert_eq!(number(g, "rmse"), 0.375f64.sqrt());
    assert_eq!(number(g, "mae"), 0.5);
    assert!(close(number(g, "r2_score"), 0.9486081370449679));
}

#[test]
fn multi_metrics_read_predict_result() {
    let h = Harness::new(computing());
    // labels 0 0 1 1 2, predicted 0 1 1 1 0: accuracy 3/5; macro precision (1/2 + 2/3 + 0)/3;
    // macro recall (1/2 + 1 + 0)/3 = 1/2.
    let labels = [0.0, 0.0, 1.0, 1.0, 2.0];
    let predicted = [0.0, 1.0, 1.0, 1.0, 0.0];
    let columns = [
        "predict_score",
        "predict_result",
        "predict_detail_0",
        "predict_detail_1",
        "predict_detail_2",
    ];
    let values: Vec<Vec<f64>> = predicted
        .iter()
        .map(|&p| {
            let mut detail = [0.1, 0.1, 0.1];
            detail[p as usize] = 0.8;
            vec![0.8, p, detail[0], detail[1], detail[2]]
        })
        .collect();
    let input = predictions(&h, "nn_0_output", &columns, &labels, &values);
    let out = run(
        &h,
        json!({"default_eval_setting": "multi"}),
        vec![input.clone()],
    );
    let g = party(&out, &guest());
    assert!(g.result.is_ok(), "{:?}", g.result);
    assert_eq!(
        metric_names(g),
        vec![
            "multi_accuracy",
            "multi_precision",
            "multi_recall",
            "evaluation"
        ]
    );
    assert!(
        g.outputs
            .metrics
            .iter()
            .filter(|(n, _, _)| n != "evaluation")
            .all(|(_, t, _)| t == "multi")
    );
    assert!(close(number(g, "multi_accuracy"), 0.6));
    assert!(close(number(g, "multi_precision"), (0.5 + 2.0 / 3.0) / 3.0));
    assert!(close(number(g, "multi_recall"), 0.5));
    assert_eq!(g.metric("multi_recall").unwrap()["average"], "macro");

    // Named: multi_f1_score is FATE's micro average (= accuracy here), the macro one alongside.
    let out = run(&h, json!({"metrics": ["multi_f1_score"]}), vec![input]);
    let g = party(&out, &guest());
    assert!(g.result.is_ok(), "{:?}", g.result);
    let f1 = g.metric("multi_f1_score").unwrap();
    assert!(close(f1["multi_f1_score"].as_f64().unwrap(), 0.6));
    assert_eq!(f1["average"], "micro");
    assert!(close(f1["macro"].as_f64().unwrap(), (0.5 + 0.8) / 3.0));
}

#[test]
fn column_names_can_be_chosen_and_missing_columns_are_named() {
    let h = Harness::new(computing());
    // The score lives in `prob`, the true label in feature `truth` (the row label is noise).
    let values: Vec<Vec<f64>> = SCORES
        .iter()
        .zip(LABELS)
        .map(|(&s, l)| vec![s, l])
        .collect();
    let input = predictions(&h, "custom", &["prob", "truth"], &[0.0; 10], &values);
    let params =
        json!({"metrics": ["auc"], "predict_column_name": "prob", "label_column_name": "truth"});
    let out = run(&h, params, vec![input.clone()]);
    let g = party(&out, &guest());
    assert!(g.result.is_ok(), "{:?}", g.result);
    assert!(close(number(g, "auc"), 0.8));

    // Without predict_column_name the default predict_score is looked for and not found.
    let out = run(
        &h,
        json!({"metrics": ["auc"], "label_column_name": "truth"}),
        vec![input.clone()],
    );
    let err = party(&out, &guest()).result.as_ref().unwrap_err();
    assert!(matches!(err, ComponentError::Input { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("`predict_score`")
            && msg.contains("prob, truth")
            && msg.contains("predict_column_name"),
        "{msg}"
    );

    // A named column that does not exist is a parameter error.
    let out = run(&h, json!({"predict_column_name": "score"}), vec![input]);
    match &party(&out, &guest()).result {
        Err(ComponentError::Param { name, reason }) => {
            assert_eq!(name, "predict_column_name");
            assert!(reason.contains("`score`"), "{reason}");
        }
        other => panic!("expected a parameter error, got {other:?}"),
    }
}

#[test]
fn registered_with_an_optional_multi_input() {
    let registry = fate_components::registry();
    let spec = registry
        .get("evaluation")
        .expect("evaluation is registered")
        .spec();
    assert_eq!(spec.roles, vec![Role::Guest, Role::Host, Role::Arbiter]);
    let input = spec.inputs.iter().find(|i| i.key == "input_datas").unwrap();
    assert!(input.multi && input.optional);
    assert_eq!(
        spec.param("default_eval_setting").unwrap().default,
        Some(json!("binary"))
    );
    assert_eq!(spec.param("metrics").unwrap().default, Some(Value::Null));
}
