//! `homo_lr` run at guest, host and arbiter through `fate_runtime::testing::Harness`: FATE's
//! breast_homo benchmark (anchors.md: epochs 10, batch_size 16, other defaults; AUC 0.9666-0.9927
//! over FATE's runs) against a plaintext FedAvg computed here, evaluation at each client, the
//! predict stage, the privacy transcript (the arbiter sees only masked vectors) and bad
//! parameters refused by the plan-time check.

use fate_components::coordinated_lr::optim::initialize;
use fate_components::coordinated_lr::params::InitParam;
use fate_components::evaluation::Evaluation;
use fate_components::evaluation::metrics::{BinaryData, auc};
use fate_components::homo_lr::{FRAC_BITS, HomoLr, names};
use fate_components::upload::{UploadMeta, parse_csv};
use fate_computing::{Computing, ComputingConfig};
use fate_federation::testing::{Transcript, TranscriptEntry};
use fate_federation::wire::{Head, decode_head, decode_value};
use fate_runtime::testing::{Harness, PartyResult, PartyRun};
use fate_runtime::{Component, DataFrame, InputArtifact, Row, Schema};
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

fn host2() -> Party {
    Party::new(Role::Host, "10001")
}

fn arbiter() -> Party {
    Party::new(Role::Arbiter, "10000")
}

/// An uploaded CSV of `examples/data` (labels `y`, match id `id`, sample ids by line).
fn csv(c: &Computing, name: &str) -> DataFrame {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/data")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let meta = UploadMeta {
        match_id_name: Some("id".into()),
        label_name: Some("y".into()),
        dtype: Some("float64".into()),
        label_type: Some("int64".into()),
        ..UploadMeta::default()
    };
    let (schema, rows) = parse_csv(&text, true, &meta, true).unwrap();
    DataFrame {
        schema,
        table: c.parallelize(rows, 4),
    }
}

/// FATE's breast_homo benchmark configuration (anchors.md), the `random` init seeded so the
/// run is reproducible and every client starts from the same weights.
fn breast_params() -> Value {
    json!({
        "epochs": 10,
        "batch_size": 16,
        "init_param": {"method": "random", "fit_intercept": true, "random_state": 42},
    })
}

fn train(h: &Harness, params: &Value, clients: Vec<(Party, InputArtifact)>) -> Vec<PartyResult> {
    let mut runs: Vec<PartyRun> = clients
        .into_iter()
        .map(|(p, d)| PartyRun::new(p, params.clone()).input("train_data", d))
        .collect();
    runs.push(PartyRun::new(arbiter(), params.clone()));
    h.run("homo_lr_0", &HomoLr, runs)
}

fn party<'a>(out: &'a [PartyResult], p: &Party) -> &'a PartyResult {
    out.iter().find(|r| &r.party == p).unwrap()
}

fn assert_ok(out: &[PartyResult]) {
    for r in out {
        assert!(r.result.is_ok(), "{}: {:?}", r.party, r.result);
    }
}

fn output_rows(h: &Harness, r: &PartyResult, key: &str) -> (Schema, Vec<(String, Row)>) {
    let d = r
        .outputs
        .data
        .iter()
        .find(|d| d.key == key)
        .unwrap_or_else(|| panic!("{} wrote no {key}", r.party));
    let t = h
        .computing
        .load::<String, Row>(&d.namespace, &d.name)
        .unwrap();
    (d.schema.clone(), t.collect(usize::MAX).unwrap())
}

fn auc_of(rows: &[(String, Row)]) -> f64 {
    let labels: Vec<f64> = rows.iter().map(|(_, r)| r.label.unwrap()).collect();
    let scores: Vec<f64> = rows.iter().map(|(_, r)| r.features[0]).collect();
    auc(&BinaryData::new(&labels, &scores).unwrap()).unwrap()
}

/// The model's weights (features, then the intercept).
fn weights(r: &PartyResult) -> Vec<f64> {
    let m = &r
        .outputs
        .models
        .iter()
        .find(|(k, _)| k == "output_model")
        .unwrap_or_else(|| panic!("{} wrote no model", r.party))
        .1;
    let state = &m["data"]["model"]["state_dict"];
    let mut w: Vec<f64> = serde_json::from_value(state["models.0.weight"][0].clone()).unwrap();
    w.push(state["models.0.bias"][0].as_f64().unwrap());
    w
}

/// A client's rows as the component sees them: sample-id order (the table's key order).
struct Rows {
    x: Vec<Vec<f64>>,
    y: Vec<f64>,
}

fn rows_of(df: &DataFrame) -> Rows {
    let rows = df.table.collect(usize::MAX).unwrap();
    Rows {
        x: rows.iter().map(|(_, r)| r.features.clone()).collect(),
        y: rows.iter().map(|(_, r)| r.label.unwrap()).collect(),
    }
}

/// Plaintext FedAvg with FATE's defaults (sgd, lr 0.01, l2 alpha 1.0 as torch weight_decay on
/// every parameter, BCE loss, intercept): per epoch each client runs its mini-batches from the
/// global model, then the global model is the sample-weighted mean of the local ones. Returns
/// the global model after each epoch and each client's local model of each epoch.
fn plaintext_fedavg(
    clients: &[&Rows],
    w0: &[f64],
    epochs: usize,
    batch: usize,
) -> (Vec<Vec<f64>>, Vec<Vec<Vec<f64>>>) {
    let (lr, wd) = (0.01, 1.0);
    let total: f64 = clients.iter().map(|c| c.y.len() as f64).sum();
    let nf = w0.len() - 1;
    let mut global = w0.to_vec();
    let mut globals = Vec::new();
    let mut locals = Vec::new();
    for _ in 0..epochs {
        let mut next = vec![0.0; w0.len()];
        let mut epoch_locals = Vec::new();
        for c in clients {
            let mut w = global.clone();
            for start in (0..c.y.len()).step_by(batch) {
                let end = (start + batch).min(c.y.len());
                let mut g = vec![0.0; w.len()];
                for i in start..end {
                    let z: f64 =
                        w[..nf].iter().zip(&c.x[i]).map(|(a, b)| a * b).sum::<f64>() + w[nf];
                    let r = 1.0 / (1.0 + (-z).exp()) - c.y[i];
                    for (gj, xj) in g[..nf].iter_mut().zip(&c.x[i]) {
                        *gj += r * xj;
                    }
                    g[nf] += r;
                }
                for (gj, wj) in g.iter_mut().zip(&w) {
                    *gj = *gj / (end - start) as f64 + wd * wj;
                }
                for (wj, gj) in w.iter_mut().zip(&g) {
                    *wj -= lr * gj;
                }
            }
            let share = c.y.len() as f64 / total;
            for (n, wj) in next.iter_mut().zip(&w) {
                *n += share * wj;
            }
            epoch_locals.push(w);
        }
        global = next;
        globals.push(global.clone());
        locals.push(epoch_locals);
    }
    (globals, locals)
}

/// The seeded `random` init of [`breast_params`]: normal weights, intercept 0 (FATE's
/// `init_model`).
fn init(nf: usize) -> Vec<f64> {
    let mut w = initialize(
        nf,
        &InitParam::from_json(
            &json!({"method": "random", "fit_intercept": false, "random_state": 42}),
            "init_param",
        )
        .unwrap(),
    );
    w.push(0.0);
    w
}

/// FATE's breast_homo job with one init seed: the model equals a plaintext FedAvg to 1e-9, each
/// client's train AUC is high (FATE's range is checked over seeds below), evaluation runs at
/// each client, and the predict stage scores the test set with the same model.
#[test]
fn breast_homo_equals_plaintext_fedavg_evaluates_and_predicts() {
    let h = Harness::new(computing());
    let gdf = csv(&h.computing, "breast_homo_guest.csv");
    let hdf = csv(&h.computing, "breast_homo_host.csv");
    let tdf = csv(&h.computing, "breast_homo_test.csv");
    let g = h.table("t", "breast_homo_guest", &gdf);
    let ho = h.table("t", "breast_homo_host", &hdf);
    let started = std::time::Instant::now();
    let out = train(&h, &breast_params(), vec![(guest(), g), (host(), ho)]);
    let took = started.elapsed();
    assert_ok(&out);

    // One model at both clients, equal to plaintext FedAvg. Secure aggregation rounds each
    // client's weighted value to 2^-40 per epoch, so the models differ by about 1e-12; 1e-9
    // leaves room for that error to propagate through ten epochs of SGD.
    let (wg, wh) = (
        weights(party(&out, &guest())),
        weights(party(&out, &host())),
    );
    assert_eq!(wg, wh, "the clients must end with the same aggregate model");
    let (grows, hrows) = (rows_of(&gdf), rows_of(&hdf));
    let (globals, _) = plaintext_fedavg(&[&grows, &hrows], &init(30), 10, 16);
    let plain = globals.last().unwrap();
    let max_diff = wg
        .iter()
        .zip(plain)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(
        max_diff < 1e-9,
        "secure FedAvg differs from plaintext by {max_diff:e}"
    );

    // The arbiter's aggregate loss per epoch decreases overall.
    let losses: Vec<f64> =
        serde_json::from_value(party(&out, &arbiter()).metric("loss").unwrap().clone()).unwrap();
    assert_eq!(losses.len(), 10);
    assert!(losses[9] < losses[0], "loss {losses:?}");

    // AUC of each client's train output in FATE's range (anchors.md: 0.9666-0.9927).
    let mut aucs = Vec::new();
    for p in [guest(), host()] {
        let (schema, rows) = output_rows(&h, party(&out, &p), "train_output_data");
        assert_eq!(schema.feature_names, ["predict_score", "predict_result"]);
        assert_eq!(schema.dataset_type.as_deref(), Some("train_set"));
        let a = auc_of(&rows);
        aucs.push(a);
    }
    let (grows_out, hrows_out) = (
        output_rows(&h, party(&out, &guest()), "train_output_data").1,
        output_rows(&h, party(&out, &host()), "train_output_data").1,
    );
    assert_eq!(grows_out.len(), 227);
    assert_eq!(hrows_out.len(), 228);
    let all: Vec<(String, Row)> = grows_out.into_iter().chain(hrows_out).collect();
    let global_auc = auc_of(&all);
    eprintln!(
        "homo_lr breast_homo: guest AUC {:.6}, host AUC {:.6}, both {:.6}, train {:?} (FATE 63 s job, AUC 0.9756); |secure - plaintext| <= {max_diff:e}",
        aucs[0], aucs[1], global_auc, took
    );
    for a in &aucs {
        assert!(*a > 0.95, "a client's train AUC {a}");
    }

    // Evaluation at each client on its own train output (FATE's per-party evaluation).
    let g_pred = party(&out, &guest())
        .data_artifact("train_output_data")
        .unwrap();
    let h_pred = party(&out, &host())
        .data_artifact("train_output_data")
        .unwrap();
    let params = json!({"metrics": ["auc", "ks"]});
    let eval = h.run(
        "evaluation_0",
        &Evaluation,
        vec![
            PartyRun::new(guest(), params.clone()).input("input_datas", g_pred),
            PartyRun::new(host(), params.clone()).input("input_datas", h_pred),
            PartyRun::new(arbiter(), params),
        ],
    );
    assert_ok(&eval);
    for (p, a) in [(guest(), aucs[0]), (host(), aucs[1])] {
        let got = party(&eval, &p).metric("auc").unwrap()["auc"]
            .as_f64()
            .unwrap();
        assert!(
            (got - a).abs() < 1e-12,
            "{p}: evaluation auc {got}, expected {a}"
        );
    }

    // Predict stage on the test set at the guest, with the trained model.
    let mut hp = Harness::new(h.computing.clone());
    hp.stage = "predict".into();
    let test = hp.table("t", "breast_homo_test", &tdf);
    let model = party(&out, &guest())
        .model_artifact("output_model")
        .unwrap();
    let pout = hp.run(
        "homo_lr_0",
        &HomoLr,
        vec![
            PartyRun::new(guest(), json!({}))
                .input("test_data", test)
                .input("input_model", model),
            PartyRun::new(arbiter(), json!({})),
        ],
    );
    assert_ok(&pout);
    let (schema, rows) = output_rows(&hp, party(&pout, &guest()), "test_output_data");
    assert_eq!(schema.dataset_type.as_deref(), Some("test_set"));
    assert_eq!(rows.len(), 114);
    let trows = rows_of(&tdf);
    for ((_, r), x) in rows.iter().zip(&trows.x) {
        let z: f64 = plain[..30].iter().zip(x).map(|(a, b)| a * b).sum::<f64>() + plain[30];
        let p = 1.0 / (1.0 + (-z).exp());
        assert!((r.features[0] - p).abs() < 1e-9);
        assert_eq!(r.features[1], f64::from(u8::from(r.features[0] > 0.5)));
    }
    let test_auc = auc_of(&rows);
    eprintln!("homo_lr breast_homo: test AUC {test_auc:.6}");
    assert!(test_auc > 0.95, "test AUC {test_auc}");
}

fn frames_of(entries: &[TranscriptEntry], name: &str) -> Vec<(Party, String, Vec<u8>)> {
    entries
        .iter()
        .filter(|e| e.name == name && e.slice.is_none())
        .map(|e| match decode_head(&e.frame, 1 << 30) {
            Ok(Head::Inline(p)) => (e.src.clone(), e.tag.clone(), p.to_vec()),
            other => panic!("{name}: expected an inline frame, got {other:?}"),
        })
        .collect()
}

/// Privacy (fate-spec §4.6): the arbiter receives each client's sample count and masked
/// vectors, never a client's model in the clear nor any row or label; the clients receive only
/// their share, each other's public keys and the aggregates. The masked vectors of one epoch sum
/// to the aggregate the clients get back.
#[test]
fn transcript_shows_the_arbiter_only_masked_vectors() {
    let transcript = Transcript::new();
    let h = Harness::new(computing()).with_observer(transcript.clone());
    let gdf = csv(&h.computing, "breast_homo_guest.csv");
    let hdf = csv(&h.computing, "breast_homo_host.csv");
    let g = h.table("t", "g", &gdf);
    let ho = h.table("t", "h", &hdf);
    let mut params = breast_params();
    params["epochs"] = json!(3);
    let out = train(&h, &params, vec![(guest(), g), (host(), ho)]);
    assert_ok(&out);

    let names_of = |es: &[TranscriptEntry]| -> BTreeSet<String> {
        es.iter().map(|e| e.name.clone()).collect()
    };
    let arbiter_in = transcript.received_by(&arbiter());
    let guest_in = transcript.received_by(&guest());
    let host_in = transcript.received_by(&host());
    use names::*;
    assert_eq!(
        names_of(&arbiter_in),
        BTreeSet::from([LOCAL_WEIGHT.to_string(), LOCAL_MODEL.to_string()])
    );
    for (who, got) in [("guest", &guest_in), ("host", &host_in)] {
        assert_eq!(
            names_of(got),
            BTreeSet::from([
                AGG_WEIGHT.to_string(),
                DH_PUBKEY.to_string(),
                AGG_MODEL.to_string()
            ]),
            "{who}"
        );
    }
    // The public keys went from client to client, not through the arbiter.
    assert!(
        guest_in
            .iter()
            .filter(|e| e.name == DH_PUBKEY)
            .all(|e| e.src == host())
    );

    // What each client's masked vector would be without masks, from a plaintext run.
    let (grows, hrows) = (rows_of(&gdf), rows_of(&hdf));
    let (globals, locals) = plaintext_fedavg(&[&grows, &hrows], &init(30), 3, 16);
    let shares = [227.0 / 455.0, 228.0 / 455.0];
    let masked = frames_of(&arbiter_in, LOCAL_MODEL);
    assert_eq!(masked.len(), 2 * 3);
    let scale = 2f64.powi(FRAC_BITS as i32);
    for epoch in 0..3 {
        let tag = format!("train.iter-{epoch}");
        let mut sum = vec![0u64; 32];
        for (c, client) in [guest(), host()].iter().enumerate() {
            let (_, _, bytes) = masked
                .iter()
                .find(|(src, t, _)| src == client && t == &tag)
                .unwrap_or_else(|| panic!("no {LOCAL_MODEL} from {client} at {tag}"));
            let v: Vec<u64> = decode_value(bytes).unwrap();
            assert_eq!(v.len(), 32);
            // Each value is masked: far from the client's true weighted weight (which is below 2
            // in magnitude), as a uniform 64-bit word is.
            let far = v
                .iter()
                .zip(&locals[epoch][c])
                .filter(|(m, w)| ((**m as i64) as f64 / scale - shares[c] * **w).abs() > 1.0)
                .count();
            assert!(
                far >= 30,
                "epoch {epoch}, {client}: only {far} of 31 weights are masked"
            );
            for (s, m) in sum.iter_mut().zip(&v) {
                *s = s.wrapping_add(*m);
            }
        }
        // The masks cancel: the sum is the aggregate model the clients received.
        let agg: Vec<f64> = sum.iter().map(|&s| (s as i64) as f64 / scale).collect();
        for (a, p) in agg[..31].iter().zip(&globals[epoch]) {
            assert!(
                (a - p).abs() < 1e-9,
                "epoch {epoch}: aggregate {a} vs plaintext {p}"
            );
        }
        let (_, _, sent) = frames_of(&guest_in, AGG_MODEL)
            .into_iter()
            .find(|(_, t, _)| t == &tag)
            .unwrap();
        let received: Vec<f64> = decode_value(&sent).unwrap();
        assert_eq!(received, agg);
    }
    // No frame to the arbiter carries a client's features: the largest message is the masked
    // vector (32 words), far below one row per sample.
    assert!(
        arbiter_in.iter().all(|e| e.bytes < 600),
        "a large frame reached the arbiter"
    );
}

/// Three clients: two hosts and the guest aggregate to the plaintext FedAvg of all three.
#[test]
fn two_hosts_aggregate_like_plaintext() {
    let h = Harness::new(computing());
    let gdf = csv(&h.computing, "breast_homo_guest.csv");
    let hdf = csv(&h.computing, "breast_homo_host.csv");
    let tdf = csv(&h.computing, "breast_homo_test.csv");
    let mut params = breast_params();
    params["epochs"] = json!(3);
    let out = train(
        &h,
        &params,
        vec![
            (guest(), h.table("t", "g", &gdf)),
            (host(), h.table("t", "h", &hdf)),
            (host2(), h.table("t", "t", &tdf)),
        ],
    );
    assert_ok(&out);
    let w = weights(party(&out, &host2()));
    let (globals, _) = plaintext_fedavg(
        &[&rows_of(&gdf), &rows_of(&hdf), &rows_of(&tdf)],
        &init(30),
        3,
        16,
    );
    for (a, b) in w.iter().zip(globals.last().unwrap()) {
        assert!((a - b).abs() < 1e-9, "{a} vs {b}");
    }
}

/// Bad parameters are refused by the component's plan-time check (`Component::check_params`,
/// which the scheduler runs at submit), naming the field; the run refuses the same values.
#[test]
fn bad_parameters_are_refused_at_plan_time_naming_the_field() {
    let cases = [
        (json!({"epochs": 0}), "epochs", "greater than 0"),
        (json!({"batch_size": -5}), "batch_size", "positive integer"),
        (json!({"threshold": 1.5}), "threshold", "[0, 1]"),
        (
            json!({"optimizer": {"method": "nadam", "optimizer_params": {}}}),
            "optimizer",
            "nadam",
        ),
        (
            json!({"optimizer": {"method": "sgd", "penalty": "l3", "optimizer_params": {}}}),
            "optimizer",
            "l3",
        ),
        (
            json!({"learning_rate_scheduler": {"method": "cosine"}}),
            "learning_rate_scheduler",
            "cosine",
        ),
        (
            json!({"init_param": {"method": "random_uniform"}}),
            "init_param",
            "random_uniform",
        ),
        (json!({"ovr": true}), "ovr", "not implemented"),
        (json!({"label_num": 1}), "label_num", "at least 2"),
    ];
    for (params, field, word) in &cases {
        let map = params.as_object().unwrap();
        let e = HomoLr
            .check_params("train", Role::Guest, map)
            .expect_err(&format!("{params} must be refused"));
        let msg = e.to_string();
        assert!(
            msg.contains(&format!("parameter `{field}`")) && msg.contains(word),
            "{params}: `{msg}`"
        );
    }
    // FATE's defaults and the benchmark configuration pass.
    for ok in [
        json!({}),
        breast_params(),
        json!({"batch_size": null}),
        json!({"batch_size": -1}),
    ] {
        HomoLr
            .check_params("train", Role::Host, ok.as_object().unwrap())
            .unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    // The predict stage checks its own parameters.
    assert!(
        HomoLr
            .check_params(
                "predict",
                Role::Guest,
                json!({"threshold": -1}).as_object().unwrap()
            )
            .is_err()
    );
    // The spec declares FATE's defaults.
    let spec = HomoLr.spec();
    let default = |n: &str| spec.param(n).unwrap().default.clone().unwrap();
    assert_eq!(default("epochs"), json!(20));
    assert_eq!(default("batch_size"), json!(100));
    assert_eq!(default("optimizer")["optimizer_params"]["lr"], json!(0.01));
    assert_eq!(
        default("learning_rate_scheduler")["method"],
        json!("constant")
    );
    assert_eq!(default("init_param")["method"], json!("random"));

    // A run with a bad value fails at every party before any message (the arbiter too).
    let h = Harness::new(computing());
    let gdf = csv(&h.computing, "breast_homo_guest.csv");
    let out = train(
        &h,
        &json!({"epochs": 0}),
        vec![
            (guest(), h.table("t", "g", &gdf)),
            (host(), h.table("t", "h", &gdf)),
        ],
    );
    for r in &out {
        let e = r.result.as_ref().unwrap_err().to_string();
        assert!(e.contains("epochs"), "{}: {e}", r.party);
    }
}

/// A client without labels is refused naming the input and the party.
#[test]
fn client_data_without_labels_is_refused() {
    let h = Harness::new(computing());
    let gdf = csv(&h.computing, "breast_homo_guest.csv");
    let mut unlabelled = csv(&h.computing, "breast_homo_host.csv");
    unlabelled.schema.label_name = None;
    let out = train(
        &h,
        &breast_params(),
        vec![
            (guest(), h.table("t", "g", &gdf)),
            (host(), h.table("t", "h", &unlabelled)),
        ],
    );
    let e = party(&out, &host())
        .result
        .as_ref()
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("train_data") && e.contains("label") && e.contains("10000"),
        "{e}"
    );
    assert!(
        out.iter().all(|r| r.result.is_err()),
        "the other parties must not keep waiting"
    );
}

/// FATE's AUC range on breast_homo (0.9666-0.9927, median 0.9756) is over unseeded runs: the
/// `random` init differs per run (and FATE shuffles batches). Over 31 init seeds the median of
/// the guest's train AUC (what FATE's benchmark evaluates) is inside FATE's range and no run
/// fails to learn.
#[test]
fn breast_homo_auc_over_init_seeds_matches_fates_range() {
    let h = Harness::new(computing());
    let gdf = csv(&h.computing, "breast_homo_guest.csv");
    let hdf = csv(&h.computing, "breast_homo_host.csv");
    let g = h.table("t", "g", &gdf);
    let ho = h.table("t", "h", &hdf);
    let mut aucs = Vec::new();
    for seed in 0..31u64 {
        let mut params = breast_params();
        params["init_param"]["random_state"] = json!(seed);
        let out = train(
            &h,
            &params,
            vec![(guest(), g.clone()), (host(), ho.clone())],
        );
        assert_ok(&out);
        aucs.push(auc_of(
            &output_rows(&h, party(&out, &guest()), "train_output_data").1,
        ));
    }
    aucs.sort_by(f64::total_cmp);
    let median = aucs[aucs.len() / 2];
    eprintln!(
        "homo_lr breast_homo guest train AUC over 31 init seeds: min {:.4}, median {median:.4}, max {:.4} (FATE 0.9666-0.9927, median 0.9756)",
        aucs[0],
        aucs[aucs.len() - 1]
    );
    assert!(
        (0.9666..=0.9927).contains(&median),
        "median AUC {median} is outside FATE's 0.9666-0.9927: {aucs:?}"
    );
    // A single seed spreads wider than FATE's few runs did (31 seeds: 0.94-0.99): with
    // FATE's weight decay of 1.0 the random init still weighs in after ten epochs.
    assert!(
        aucs[0] > 0.93,
        "seed AUC {} is far below FATE's range: {aucs:?}",
        aucs[0]
    );
}

/// An arbiter that hands out FedAvg weights other than `n_i / Σn` (all the weight to the guest,
/// next to none to the host, which would make the masked sum the guest's model) is refused by
/// both clients before either sends a model: each computes its own weight from the sample
/// counts the other clients sent it with their keys.
#[test]
fn an_arbiter_that_skews_the_weights_is_refused_before_any_model_is_sent() {
    struct SkewingArbiter;
    impl Component for SkewingArbiter {
        fn spec(&self) -> fate_types::component::ComponentSpec {
            HomoLr.spec()
        }
        fn run(&self, ctx: &fate_runtime::Ctx) -> Result<(), fate_runtime::ComponentError> {
            if ctx.role() != Role::Arbiter {
                return HomoLr.run(ctx);
            }
            let clients = [guest(), host()];
            let _: Vec<fate_components::homo_lr::Announce> =
                ctx.federation.get(names::LOCAL_WEIGHT, "train", &clients)?;
            ctx.federation
                .remote(names::AGG_WEIGHT, "train", &[guest()], &1.0f64)?;
            ctx.federation
                .remote(names::AGG_WEIGHT, "train", &[host()], &1e-15f64)?;
            // Waits for models that never come, until the clients' refusal ends the task.
            let _: Vec<Vec<u64>> = ctx.federation.get(names::LOCAL_MODEL, "never", &clients)?;
            Ok(())
        }
    }
    let transcript = Transcript::new();
    let h = Harness::new(computing()).with_observer(transcript.clone());
    let gdf = csv(&h.computing, "breast_homo_guest.csv");
    let hdf = csv(&h.computing, "breast_homo_host.csv");
    let runs = vec![
        PartyRun::new(guest(), breast_params()).input("train_data", h.table("t", "g", &gdf)),
        PartyRun::new(host(), breast_params()).input("train_data", h.table("t", "h", &hdf)),
        PartyRun::new(arbiter(), breast_params()),
    ];
    let out = h.run("homo_lr_0", &SkewingArbiter, runs);
    // Each client refuses its share, unless the other's refusal ended the task first.
    let refused = |e: &str| {
        e.contains(names::AGG_WEIGHT) && e.contains("refused") && e.contains("arbiter:10000")
    };
    let errors: Vec<String> = [guest(), host()]
        .iter()
        .map(|who| party(&out, who).result.as_ref().unwrap_err().to_string())
        .collect();
    assert!(errors.iter().any(|e| refused(e)), "{errors:?}");
    assert!(
        errors.iter().all(|e| refused(e) || e.contains("canceled")),
        "{errors:?}"
    );
    let to_arbiter: BTreeSet<String> = transcript
        .received_by(&arbiter())
        .iter()
        .map(|e| e.name.clone())
        .collect();
    assert_eq!(
        to_arbiter,
        BTreeSet::from([names::LOCAL_WEIGHT.to_string()]),
        "no model reached the arbiter"
    );
}
