//! `hetero_secureboost` run through `fate_runtime::testing::Harness`: FATE's benchmark jobs
//! (breast, default_credit) against FATE's AUCs, the other objectives, prediction, warm start,
//! several hosts, what each party receives, and bad inputs.

use fate_components::evaluation::metrics::{BinaryData, auc};
use fate_components::hetero_secureboost::messages::{Decision, HostHist, TreeStart};
use fate_components::hetero_secureboost::{HeteroSecureBoost, SbtModel};
use fate_components::upload::{UploadMeta, parse_csv};
use fate_computing::{Computing, ComputingConfig};
use fate_federation::Direction;
use fate_federation::testing::Transcript;
use fate_federation::wire::{Head, decode_head, decode_value};
use fate_runtime::testing::{Harness, PartyResult, PartyRun};
use fate_runtime::{DataFrame, InputArtifact, Row};
use fate_types::{Party, Role};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Instant;

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

/// Parses one of FATE's example CSVs (keyed by the shared `id`, as after PSI).
fn csv(c: &Computing, file: &str, label: bool) -> DataFrame {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/data")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let meta = UploadMeta {
        match_id_name: Some("id".into()),
        label_name: label.then(|| "y".into()),
        ..UploadMeta::default()
    };
    let (schema, rows) = parse_csv(&text, true, &meta, false).unwrap();
    DataFrame {
        schema,
        table: c.parallelize(rows, 4),
    }
}

/// A frame from `(features, label)` rows with ids `0..n`.
fn synthetic(c: &Computing, names: &[&str], rows: Vec<(Vec<f64>, Option<f64>)>) -> DataFrame {
    let has_label = rows.first().is_some_and(|r| r.1.is_some());
    let rows = rows
        .into_iter()
        .enumerate()
        .map(|(i, (features, label))| {
            (
                format!("{i:05}"),
                Row {
                    match_id: format!("{i:05}"),
                    label,
                    weight: None,
                    features,
                },
            )
        })
        .collect();
    fate_runtime::testing::frame(c, names, has_label, rows, 4)
}

/// FATE's benchmark parameters (anchors.md, "SBT breast").
fn fate_params(num_trees: u32) -> Value {
    json!({
        "num_trees": num_trees, "max_depth": 3, "max_bin": 32, "objective": "binary:bce",
        "learning_rate": 0.3, "l2": 0.1, "min_child_weight": 1, "gh_pack": true,
        "split_info_pack": true, "hist_sub": true, "he_param": {"kind": "paillier", "key_length": 1024}
    })
}

fn train(
    h: &Harness,
    params: &Value,
    guest_art: InputArtifact,
    host_arts: Vec<(Party, InputArtifact)>,
) -> Vec<PartyResult> {
    let mut runs = vec![PartyRun::new(guest(), params.clone()).input("train_data", guest_art)];
    for (p, art) in host_arts {
        runs.push(PartyRun::new(p, params.clone()).input("train_data", art));
    }
    h.run("hetero_secureboost_0", &HeteroSecureBoost, runs)
}

fn ok(out: &[PartyResult]) {
    for r in out {
        assert!(r.result.is_ok(), "{}: {:?}", r.party, r.result);
    }
}

fn of<'a>(out: &'a [PartyResult], p: &Party) -> &'a PartyResult {
    out.iter().find(|r| &r.party == p).unwrap()
}

/// The rows of data output `key` of `r`, sorted by sample id.
fn output_rows(h: &Harness, r: &PartyResult, key: &str) -> (Vec<String>, Vec<(String, Row)>) {
    let d = r
        .outputs
        .data
        .iter()
        .find(|d| d.key == key)
        .unwrap_or_else(|| panic!("no output {key}"));
    let table = h
        .computing
        .load::<String, Row>(&d.namespace, &d.name)
        .unwrap();
    (
        d.schema.feature_names.clone(),
        table.collect(usize::MAX).unwrap(),
    )
}

fn train_auc(h: &Harness, g: &PartyResult) -> f64 {
    let (names, rows) = output_rows(h, g, "train_output_data");
    assert_eq!(names, vec!["predict_score", "predict_result"]);
    let labels: Vec<f64> = rows.iter().map(|(_, r)| r.label.unwrap()).collect();
    let scores: Vec<f64> = rows.iter().map(|(_, r)| r.features[0]).collect();
    auc(&BinaryData::new(&labels, &scores).unwrap()).unwrap()
}

fn model(r: &PartyResult) -> SbtModel {
    let (_, v) = r
        .outputs
        .models
        .iter()
        .find(|(k, _)| k == "output_model")
        .expect("output_model");
    serde_json::from_value(v.clone()).unwrap()
}

/// Runs the predict stage on `data` with the trained models; returns the guest's output rows.
fn predict(
    h: &mut Harness,
    out: &[PartyResult],
    guest_data: InputArtifact,
    host_data: Vec<(Party, InputArtifact)>,
) -> Vec<PartyResult> {
    h.stage = "predict".into();
    let g = of(out, &guest());
    let mut runs = vec![
        PartyRun::new(guest(), json!({}))
            .input("test_data", guest_data)
            .input("input_model", g.model_artifact("output_model").unwrap()),
    ];
    for (p, art) in host_data {
        let m = of(out, &p).model_artifact("output_model").unwrap();
        runs.push(
            PartyRun::new(p, json!({}))
                .input("test_data", art)
                .input("input_model", m),
        );
    }
    let res = h.run("hetero_secureboost_1", &HeteroSecureBoost, runs);
    h.stage = "train".into();
    res
}

fn assert_same_predictions(h: &Harness, trained: &PartyResult, predicted: &PartyResult) {
    let (names_a, a) = output_rows(h, trained, "train_output_data");
    let (names_b, b) = output_rows(h, predicted, "test_output_data");
    assert_eq!(names_a, names_b);
    assert_eq!(a.len(), b.len());
    for ((ka, ra), (kb, rb)) in a.iter().zip(&b) {
        assert_eq!(ka, kb);
        assert_eq!(ra.label, rb.label);
        for (x, y) in ra.features.iter().zip(&rb.features) {
            assert!(
                (x - y).abs() <= 1e-12,
                "sample {ka}: train {x} vs predict {y}"
            );
        }
    }
}

#[test]
fn breast_reaches_fate_auc_and_predict_reproduces_train_scores() {
    let mut h = Harness::new(computing());
    let g_art = h.table(
        "t",
        "breast_guest",
        &csv(&h.computing, "breast_hetero_guest.csv", true),
    );
    let h_art = h.table(
        "t",
        "breast_host",
        &csv(&h.computing, "breast_hetero_host.csv", false),
    );
    let start = Instant::now();
    let out = train(
        &h,
        &fate_params(10),
        g_art.clone(),
        vec![(host(), h_art.clone())],
    );
    ok(&out);
    let auc = train_auc(&h, of(&out, &guest()));
    println!(
        "breast: 10 trees, train AUC {auc:.6} (FATE 0.999194) in {:.2?}",
        start.elapsed()
    );
    assert!(auc >= 0.997, "train AUC {auc} below 0.997");

    let gm = model(of(&out, &guest()));
    let hm = model(of(&out, &host()));
    assert_eq!((gm.trees.len(), hm.trees.len()), (10, 10));
    assert_eq!(gm.loss_history.len(), 10);
    assert!(
        gm.loss_history.windows(2).all(|w| w[1] <= w[0]),
        "loss must fall: {:?}",
        gm.loss_history
    );
    // Both parties split: the guest records its features' gains, the host its split counts.
    assert!(!gm.feature_importance.is_empty() && !hm.feature_importance.is_empty());
    assert!(gm.host_feature_importance["host_10000"].split > 0);
    let host_splits: u64 = hm.feature_importance.values().map(|i| i.split).sum();
    assert_eq!(host_splits, gm.host_feature_importance["host_10000"].split);
    // The guest holds weights but no host threshold; the host holds thresholds but no weight.
    for (gt, ht) in gm.trees.iter().zip(&hm.trees) {
        assert_eq!(gt.nodes.len(), ht.nodes.len());
        for (gn, hn) in gt.nodes.iter().zip(&ht.nodes) {
            assert_eq!(
                (gn.is_leaf, gn.l, gn.r, &gn.sitename),
                (hn.is_leaf, hn.l, hn.r, &hn.sitename)
            );
            assert_eq!(hn.weight, 0.0);
            assert!(hn.grad.is_none());
            if gn.sitename == "host_10000" && !gn.is_leaf {
                assert!(gn.fid.is_none() && gn.bid.is_none() && gn.split_id.is_some());
                assert!(hn.fid.is_some() && hn.bid.is_some());
                assert_eq!(gn.split_id, hn.split_id);
            }
            if gn.sitename == "guest_9999" && !gn.is_leaf {
                assert!(hn.fid.is_none() && hn.bid.is_none());
            }
        }
    }

    let res = predict(&mut h, &out, g_art, vec![(host(), h_art)]);
    ok(&res);
    assert_same_predictions(&h, of(&out, &guest()), of(&res, &guest()));
}

#[test]
fn default_credit_reaches_fate_auc() {
    let h = Harness::new(computing());
    let g_art = h.table(
        "t",
        "dc_guest",
        &csv(&h.computing, "default_credit_hetero_guest.csv", true),
    );
    let h_art = h.table(
        "t",
        "dc_host",
        &csv(&h.computing, "default_credit_hetero_host.csv", false),
    );
    let start = Instant::now();
    let out = train(&h, &fate_params(5), g_art, vec![(host(), h_art)]);
    ok(&out);
    let elapsed = start.elapsed();
    let auc = train_auc(&h, of(&out, &guest()));
    println!(
        "default_credit: 5 trees, train AUC {auc:.6} (FATE 0.768586) in {elapsed:.2?} ({:.2?} per tree)",
        elapsed / 5
    );
    assert!(auc >= 0.766, "train AUC {auc} below 0.766");
}

/// Guest features g0, g1 and host features h0, h1 of `n` samples, with a deterministic
/// pseudo-random generator.
fn features(n: usize) -> (Vec<[f64; 2]>, Vec<[f64; 2]>) {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    };
    let g = (0..n).map(|_| [next(), next()]).collect();
    let h = (0..n).map(|_| [next(), next()]).collect();
    (g, h)
}

#[test]
fn regression_fits_a_function_of_both_parties_features() {
    let mut h = Harness::new(computing());
    let n = 300;
    let (gx, hx) = features(n);
    let y: Vec<f64> = (0..n)
        .map(|i| 3.0 * gx[i][0] + 2.0 * (hx[i][1] > 0.0) as u8 as f64 + 10.0)
        .collect();
    let g_df = synthetic(
        &h.computing,
        &["g0", "g1"],
        (0..n).map(|i| (gx[i].to_vec(), Some(y[i]))).collect(),
    );
    let h_df = synthetic(
        &h.computing,
        &["h0", "h1"],
        (0..n).map(|i| (hx[i].to_vec(), None)).collect(),
    );
    let (g_art, h_art) = (h.table("t", "reg_g", &g_df), h.table("t", "reg_h", &h_df));
    let params = json!({"objective": "regression:l2", "num_trees": 8, "max_depth": 3});
    let out = train(&h, &params, g_art.clone(), vec![(host(), h_art.clone())]);
    ok(&out);
    let (_, rows) = output_rows(&h, of(&out, &guest()), "train_output_data");
    let mean = y.iter().sum::<f64>() / n as f64;
    let base: f64 = y.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
    let mse: f64 = rows
        .iter()
        .map(|(_, r)| (r.features[0] - r.label.unwrap()).powi(2))
        .sum::<f64>()
        / n as f64;
    assert!(mse < 0.1 * base, "mse {mse} vs variance {base}");
    assert!(
        rows.iter().all(|(_, r)| r.features[0] == r.features[1]),
        "regression result is the score"
    );
    let gm = model(of(&out, &guest()));
    assert!((gm.init_score.unwrap() - mean).abs() < 1e-9);
    assert!(
        gm.host_feature_importance.contains_key("host_10000"),
        "the host's step feature must be used"
    );
    let res = predict(&mut h, &out, g_art, vec![(host(), h_art)]);
    ok(&res);
    assert_same_predictions(&h, of(&out, &guest()), of(&res, &guest()));
}

#[test]
fn multi_class_grows_one_tree_per_class_and_round() {
    let mut h = Harness::new(computing());
    let n = 300;
    let (gx, hx) = features(n);
    let label = |i: usize| {
        if gx[i][0] < -0.3 {
            0.0
        } else if hx[i][0] < 0.2 {
            1.0
        } else {
            2.0
        }
    };
    let g_df = synthetic(
        &h.computing,
        &["g0", "g1"],
        (0..n).map(|i| (gx[i].to_vec(), Some(label(i)))).collect(),
    );
    let h_df = synthetic(
        &h.computing,
        &["h0", "h1"],
        (0..n).map(|i| (hx[i].to_vec(), None)).collect(),
    );
    let (g_art, h_art) = (
        h.table("t", "multi_g", &g_df),
        h.table("t", "multi_h", &h_df),
    );
    let params = json!({"objective": "multi:ce", "num_class": 3, "num_trees": 3});
    let out = train(&h, &params, g_art.clone(), vec![(host(), h_art.clone())]);
    ok(&out);
    let (names, rows) = output_rows(&h, of(&out, &guest()), "train_output_data");
    assert_eq!(
        names,
        vec![
            "predict_score",
            "predict_result",
            "predict_detail_0",
            "predict_detail_1",
            "predict_detail_2"
        ]
    );
    let correct = rows
        .iter()
        .filter(|(_, r)| r.features[1] == r.label.unwrap())
        .count();
    assert!(correct as f64 >= 0.95 * n as f64, "accuracy {correct}/{n}");
    for (_, r) in &rows {
        let p = &r.features[2..];
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        assert_eq!(r.features[0], p.iter().copied().fold(f64::MIN, f64::max));
    }
    let (gm, hm) = (model(of(&out, &guest())), model(of(&out, &host())));
    assert_eq!(
        (gm.trees.len(), hm.trees.len(), gm.tree_dim, hm.tree_dim),
        (9, 9, 3, 3)
    );
    let res = predict(&mut h, &out, g_art, vec![(host(), h_art)]);
    ok(&res);
    assert_same_predictions(&h, of(&out, &guest()), of(&res, &guest()));
}

/// Splits the breast host's 20 features between two hosts.
fn two_hosts(h: &Harness) -> (InputArtifact, Vec<(Party, InputArtifact)>) {
    let g_art = h.table(
        "t",
        "b2_guest",
        &csv(&h.computing, "breast_hetero_guest.csv", true),
    );
    let full = csv(&h.computing, "breast_hetero_host.csv", false);
    let mut arts = Vec::new();
    for (k, range) in [(0usize, 0..10), (1, 10..20)] {
        let mut schema = full.schema.clone();
        schema.feature_names = schema.feature_names[range.clone()].to_vec();
        let r = range.clone();
        let rows = full.table.collect(usize::MAX).unwrap();
        let table = h.computing.parallelize(
            rows.into_iter().map(|(k, row)| {
                let features = row.features[r.clone()].to_vec();
                (k, Row { features, ..row })
            }),
            full.table.num_partitions(),
        );
        let party = Party::new(Role::Host, format!("1000{k}"));
        arts.push((
            party,
            h.table("t", &format!("b2_host{k}"), &DataFrame { schema, table }),
        ));
    }
    (g_art, arts)
}

#[test]
fn two_hosts_both_contribute_and_predict_together() {
    let mut h = Harness::new(computing());
    let (g_art, host_arts) = two_hosts(&h);
    let out = train(&h, &fate_params(4), g_art.clone(), host_arts.clone());
    ok(&out);
    let auc = train_auc(&h, of(&out, &guest()));
    assert!(auc >= 0.99, "AUC {auc}");
    let gm = model(of(&out, &guest()));
    for (p, _) in &host_arts {
        let site = format!("host_{}", p.party_id.as_str());
        let hm = model(of(&out, p));
        let used: u64 = hm.feature_importance.values().map(|i| i.split).sum();
        assert_eq!(
            used,
            gm.host_feature_importance.get(&site).map_or(0, |i| i.split),
            "{site}"
        );
    }
    let res = predict(&mut h, &out, g_art, host_arts);
    ok(&res);
    assert_same_predictions(&h, of(&out, &guest()), of(&res, &guest()));
}

#[test]
fn packing_options_and_complete_secure_keep_the_model_quality() {
    let h = Harness::new(computing());
    let g_art = h.table(
        "t",
        "opt_guest",
        &csv(&h.computing, "breast_hetero_guest.csv", true),
    );
    let h_art = h.table(
        "t",
        "opt_host",
        &csv(&h.computing, "breast_hetero_host.csv", false),
    );
    let base = train(
        &h,
        &fate_params(2),
        g_art.clone(),
        vec![(host(), h_art.clone())],
    );
    ok(&base);
    let base_auc = train_auc(&h, of(&base, &guest()));
    for (name, patch) in [
        ("no gh_pack", json!({"gh_pack": false})),
        ("no split_info_pack", json!({"split_info_pack": false})),
        ("no hist_sub", json!({"hist_sub": false})),
    ] {
        let mut params = fate_params(2);
        params
            .as_object_mut()
            .unwrap()
            .extend(patch.as_object().unwrap().clone());
        let out = train(&h, &params, g_art.clone(), vec![(host(), h_art.clone())]);
        ok(&out);
        let auc = train_auc(&h, of(&out, &guest()));
        assert!(
            (auc - base_auc).abs() < 2e-3,
            "{name}: AUC {auc} vs {base_auc}"
        );
    }
    let mut params = fate_params(2);
    params["complete_secure"] = json!(1);
    let out = train(&h, &params, g_art, vec![(host(), h_art)]);
    ok(&out);
    let (gm, hm) = (model(of(&out, &guest())), model(of(&out, &host())));
    assert!(
        gm.trees[0].nodes.iter().all(|n| n.sitename == "guest_9999"),
        "tree 0 uses guest features only"
    );
    assert_eq!(hm.trees[0].nodes.len(), gm.trees[0].nodes.len());
    assert!(hm.trees[0].nodes.iter().all(|n| n.fid.is_none()));
}

#[test]
fn warm_start_continues_from_a_model() {
    let mut h = Harness::new(computing());
    let g_art = h.table(
        "t",
        "ws_guest",
        &csv(&h.computing, "breast_hetero_guest.csv", true),
    );
    let h_art = h.table(
        "t",
        "ws_host",
        &csv(&h.computing, "breast_hetero_host.csv", false),
    );
    let first = train(
        &h,
        &fate_params(2),
        g_art.clone(),
        vec![(host(), h_art.clone())],
    );
    ok(&first);
    let first_loss = model(of(&first, &guest())).loss_history;
    let params = fate_params(2);
    let runs = vec![
        PartyRun::new(guest(), params.clone())
            .input("train_data", g_art.clone())
            .input(
                "warm_start_model",
                of(&first, &guest()).model_artifact("output_model").unwrap(),
            ),
        PartyRun::new(host(), params)
            .input("train_data", h_art.clone())
            .input(
                "warm_start_model",
                of(&first, &host()).model_artifact("output_model").unwrap(),
            ),
    ];
    let second = h.run("hetero_secureboost_2", &HeteroSecureBoost, runs);
    ok(&second);
    let (gm, hm) = (model(of(&second, &guest())), model(of(&second, &host())));
    assert_eq!(
        (gm.trees.len(), hm.trees.len(), gm.hyper_param.num_trees),
        (4, 4, 4)
    );
    assert_eq!(&gm.loss_history[..2], &first_loss[..]);
    assert!(gm.loss_history[3] < gm.loss_history[1]);
    let res = predict(&mut h, &second, g_art, vec![(host(), h_art)]);
    ok(&res);
    let (_, a) = output_rows(&h, of(&second, &guest()), "train_output_data");
    let (_, b) = output_rows(&h, of(&res, &guest()), "test_output_data");
    for ((_, x), (_, y)) in a.iter().zip(&b) {
        assert!((x.features[0] - y.features[0]).abs() < 1e-9);
    }
}

/// The little-endian bytes of the distinctive values of `df` (postcard's f64 encoding).
fn value_patterns(df: &DataFrame) -> Vec<[u8; 8]> {
    let mut out = BTreeSet::new();
    for (_, row) in df.table.collect(usize::MAX).unwrap() {
        for x in row.features {
            let b = x.to_le_bytes();
            if b.iter().collect::<BTreeSet<_>>().len() >= 5 {
                out.insert(b);
            }
        }
    }
    out.into_iter().collect()
}

fn payloads(entries: &[fate_federation::testing::TranscriptEntry]) -> Vec<u8> {
    let mut all = Vec::new();
    for e in entries {
        all.extend_from_slice(&e.frame);
    }
    all
}

fn contains(hay: &[u8], needle: &[u8; 8]) -> bool {
    hay.windows(8).any(|w| w == needle)
}

/// Privacy (fate-spec §4.5): the host receives the key, g/h ciphertexts and split decisions,
/// never labels, plaintext g/h or guest features; the guest receives encrypted histograms,
/// counts and direction bits, never host features or thresholds.
#[test]
fn transcript_shows_only_ciphertexts_and_split_decisions() {
    let transcript = Transcript::new();
    let mut h = Harness::new(computing()).with_observer(transcript.clone());
    let g_df = csv(&h.computing, "breast_hetero_guest.csv", true);
    let h_df = csv(&h.computing, "breast_hetero_host.csv", false);
    let (g_art, h_art) = (
        h.table("t", "tr_guest", &g_df),
        h.table("t", "tr_host", &h_df),
    );
    let out = train(
        &h,
        &fate_params(2),
        g_art.clone(),
        vec![(host(), h_art.clone())],
    );
    ok(&out);

    let received = |p: &Party| -> Vec<_> {
        transcript
            .received_by(p)
            .into_iter()
            .filter(|e| e.direction == Direction::Recv)
            .collect()
    };
    let host_rx = received(&host());
    let guest_rx = received(&guest());
    let names = |v: &[fate_federation::testing::TranscriptEntry]| {
        v.iter().map(|e| e.name.clone()).collect::<BTreeSet<_>>()
    };
    let allowed_host: BTreeSet<String> = [
        "train_meta",
        "en_kit",
        "tree_start",
        "en_gh",
        "sync_nodes",
        "new_sample_pos",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert!(
        names(&host_rx).is_subset(&allowed_host),
        "host received {:?}",
        names(&host_rx)
    );
    let allowed_guest: BTreeSet<String> = ["hist", "updated_data"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(
        names(&guest_rx),
        allowed_guest,
        "guest received {:?}",
        names(&guest_rx)
    );

    // No guest feature value reaches the host, no host feature value (nor threshold, which is
    // one) reaches the guest.
    let host_bytes = payloads(&host_rx);
    let guest_patterns = value_patterns(&g_df);
    assert!(guest_patterns.len() > 1000);
    assert!(
        !guest_patterns.iter().any(|p| contains(&host_bytes, p)),
        "a guest feature value reached the host"
    );
    let guest_bytes = payloads(&guest_rx);
    let host_patterns = value_patterns(&h_df);
    assert!(host_patterns.len() > 1000);
    assert!(
        !host_patterns.iter().any(|p| contains(&guest_bytes, p)),
        "a host feature value reached the guest"
    );

    // What the host could read: en_gh is 569 distinct full-size ciphertexts per tree, the
    // decisions carry split ids only for its own splits.
    let decode = |e: &fate_federation::testing::TranscriptEntry| -> Vec<u8> {
        let Ok(Head::Inline(payload)) = decode_head(&e.frame, 1 << 30) else {
            panic!("{} is not inline", e.name)
        };
        payload.to_vec()
    };
    let mut gh_messages = 0;
    for e in host_rx.iter().filter(|e| e.name == "en_gh") {
        gh_messages += 1;
        let bytes: Vec<u8> = decode_value(&decode(e)).unwrap();
        assert_eq!(bytes.len(), 569 * 256);
        let cts: BTreeSet<&[u8]> = bytes.chunks(256).collect();
        assert_eq!(cts.len(), 569, "ciphertexts are all different");
        // A packed plaintext has about 140 bits; ciphertexts fill 2048 bits.
        assert!(
            bytes.chunks(256).all(|c| c[..32].iter().any(|&b| b != 0)),
            "a ciphertext looks like a plaintext"
        );
    }
    assert_eq!(gh_messages, 2, "one en_gh per tree");
    // The histograms the guest gets are rerandomized: none is a ciphertext it sent.
    let sent: BTreeSet<Vec<u8>> = host_rx
        .iter()
        .filter(|e| e.name == "en_gh")
        .flat_map(|e| {
            let bytes: Vec<u8> = decode_value(&decode(e)).unwrap();
            bytes.chunks(256).map(<[u8]>::to_vec).collect::<Vec<_>>()
        })
        .collect();
    let mut hist_cts = 0;
    for e in guest_rx.iter().filter(|e| e.name == "hist") {
        let hist: HostHist = decode_value(&decode(e)).unwrap();
        for node in hist.nodes {
            assert!(
                node.ciphertexts.len() < node.counts.len() * 256,
                "split infos are squeezed"
            );
            for c in node.ciphertexts.chunks(256) {
                hist_cts += 1;
                assert!(
                    !sent.contains(c),
                    "a histogram ciphertext equals a g/h ciphertext"
                );
            }
        }
    }
    assert!(hist_cts > 0);
    let mut own_splits = 0;
    for e in host_rx.iter().filter(|e| e.name == "sync_nodes") {
        let decisions: Vec<Decision> = decode_value(&decode(e)).unwrap();
        for d in decisions {
            if let Decision::Split {
                sitename, split_id, ..
            } = d
            {
                assert_eq!(split_id.is_some(), sitename == "host_10000");
                own_splits += usize::from(split_id.is_some());
            }
        }
    }
    assert!(own_splits > 0, "the host made some split");
    for e in host_rx.iter().filter(|e| e.name == "tree_start") {
        let start: TreeStart = decode_value(&decode(e)).unwrap();
        assert!(matches!(
            start,
            TreeStart::Federated {
                gh_pack: true,
                split_info_pack: true,
                ..
            }
        ));
    }

    // Without squeezing, a split point with one sample would be that sample's own ciphertext if
    // the host did not rerandomize.
    transcript.clear();
    let mut params = fate_params(1);
    params["split_info_pack"] = json!(false);
    ok(&train(
        &h,
        &params,
        g_art.clone(),
        vec![(host(), h_art.clone())],
    ));
    let sent: BTreeSet<Vec<u8>> = received(&host())
        .iter()
        .filter(|e| e.name == "en_gh")
        .flat_map(|e| {
            let bytes: Vec<u8> = decode_value(&decode(e)).unwrap();
            bytes.chunks(256).map(<[u8]>::to_vec).collect::<Vec<_>>()
        })
        .collect();
    let mut singletons = 0;
    for e in received(&guest()).iter().filter(|e| e.name == "hist") {
        let hist: HostHist = decode_value(&decode(e)).unwrap();
        for node in hist.nodes {
            assert_eq!(node.ciphertexts.len(), node.counts.len() * 256);
            for (c, &count) in node.ciphertexts.chunks(256).zip(&node.counts) {
                singletons += usize::from(count == 1);
                assert!(
                    !sent.contains(c),
                    "a split point's sum is a g/h ciphertext the guest sent"
                );
            }
        }
    }
    assert!(singletons > 0, "some split point holds a single sample");

    // Prediction: the host gets sample positions, the guest the positions the host's splits
    // give; neither gets the other's features.
    transcript.clear();
    let res = predict(&mut h, &out, g_art, vec![(host(), h_art)]);
    ok(&res);
    let (host_rx, guest_rx) = (received(&host()), received(&guest()));
    let expected: BTreeSet<String> = ["predict_meta", "need_stop", "pending_samples"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(names(&host_rx), expected);
    assert_eq!(
        names(&guest_rx),
        BTreeSet::from(["updated_pos".to_string()])
    );
    let host_bytes = payloads(&host_rx);
    assert!(!guest_patterns.iter().any(|p| contains(&host_bytes, p)));
    let guest_bytes = payloads(&guest_rx);
    assert!(!host_patterns.iter().any(|p| contains(&guest_bytes, p)));
}

#[test]
fn bad_inputs_fail_with_clear_errors() {
    let mut h = Harness::new(computing());
    let (gx, hx) = features(40);
    // Labels 0, 1, 2 under binary:bce.
    let g_df = synthetic(
        &h.computing,
        &["g0", "g1"],
        (0..40)
            .map(|i| (gx[i].to_vec(), Some((i % 3) as f64)))
            .collect(),
    );
    let h_df = synthetic(
        &h.computing,
        &["h0", "h1"],
        (0..40).map(|i| (hx[i].to_vec(), None)).collect(),
    );
    let (g_bad, h_art) = (h.table("t", "bad_g", &g_df), h.table("t", "bad_h", &h_df));
    let out = train(&h, &json!({}), g_bad, vec![(host(), h_art.clone())]);
    let err = of(&out, &guest()).result.as_ref().unwrap_err().to_string();
    assert!(
        err.contains("label 2") && err.contains("binary:bce"),
        "{err}"
    );
    assert!(of(&out, &host()).result.is_err(), "the host is canceled");

    let g_df = synthetic(
        &h.computing,
        &["g0", "g1"],
        (0..40)
            .map(|i| (gx[i].to_vec(), Some((i % 2) as f64)))
            .collect(),
    );
    let g_art = h.table("t", "good_g", &g_df);
    let out = train(
        &h,
        &json!({"he_param": {"kind": "paillier", "key_length": 512}}),
        g_art.clone(),
        vec![(host(), h_art.clone())],
    );
    let err = of(&out, &guest()).result.as_ref().unwrap_err().to_string();
    assert!(err.contains("he_param") && err.contains("512"), "{err}");

    let out = train(
        &h,
        &json!({"goss": true}),
        g_art.clone(),
        vec![(host(), h_art.clone())],
    );
    let err = of(&out, &guest()).result.as_ref().unwrap_err().to_string();
    assert!(err.contains("goss"), "{err}");

    // Host data with other samples than the guest's.
    let h_short = h.table(
        "t",
        "short_h",
        &synthetic(
            &h.computing,
            &["h0", "h1"],
            (0..30).map(|i| (hx[i].to_vec(), None)).collect(),
        ),
    );
    let out = train(
        &h,
        &json!({"num_trees": 1}),
        g_art.clone(),
        vec![(host(), h_short)],
    );
    let err = of(&out, &host()).result.as_ref().unwrap_err().to_string();
    assert!(err.contains("psi"), "{err}");

    // A model trained on two guest features cannot predict data with one.
    let out = train(
        &h,
        &json!({"num_trees": 1}),
        g_art,
        vec![(host(), h_art.clone())],
    );
    ok(&out);
    let g_one = h.table(
        "t",
        "one_g",
        &synthetic(
            &h.computing,
            &["g0"],
            (0..40).map(|i| (vec![gx[i][0]], Some(0.0))).collect(),
        ),
    );
    let res = predict(&mut h, &out, g_one, vec![(host(), h_art)]);
    let err = of(&res, &guest()).result.as_ref().unwrap_err().to_string();
    assert!(
        err.contains("test_data") && err.contains("1 features") && err.contains("trained on 2"),
        "{err}"
    );
}

#[test]
fn spec_uses_fate_names_and_defaults() {
    let spec = fate_components::registry()
        .get("hetero_secureboost")
        .expect("registered")
        .spec();
    assert_eq!(spec.roles, vec![Role::Guest, Role::Host]);
    fn keys(a: &[fate_types::component::ArtifactSpec]) -> Vec<&str> {
        a.iter().map(|a| a.key.as_str()).collect()
    }
    assert_eq!(
        keys(&spec.inputs),
        [
            "train_data",
            "validate_data",
            "warm_start_model",
            "test_data",
            "input_model"
        ]
    );
    assert_eq!(
        keys(&spec.outputs),
        ["train_output_data", "output_model", "test_output_data"]
    );
    let default = |name: &str| {
        spec.param(name)
            .and_then(|p| p.default.clone())
            .unwrap_or(Value::Null)
    };
    for (name, value) in [
        ("num_trees", json!(3)),
        ("learning_rate", json!(0.3)),
        ("max_depth", json!(3)),
        ("max_bin", json!(32)),
        ("objective", json!("binary:bce")),
        ("num_class", json!(2)),
        ("l1", json!(0)),
        ("l2", json!(0.1)),
        ("min_impurity_split", json!(1e-2)),
        ("min_sample_split", json!(2)),
        ("min_leaf_node", json!(1)),
        ("min_child_weight", json!(1)),
        ("goss", json!(false)),
        ("complete_secure", json!(0)),
        ("gh_pack", json!(true)),
        ("split_info_pack", json!(true)),
        ("hist_sub", json!(true)),
        ("he_param", json!({"kind": "paillier", "key_length": 1024})),
    ] {
        assert_eq!(default(name), value, "{name}");
    }
}
