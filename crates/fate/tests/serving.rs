//! Online serving (issue 15) across two real nodes, each behind its site router, the routers
//! linked by mutual TLS: breast PSI + CoordinatedLR trained, published with `fate serving`,
//! then scored through FATE-Serving's API (`/federation/v1/inference`, `batchInference`) at
//! the guest, which asks the host for its partial scores through the routers.

mod common;

use common::{Deployment, SERIAL, fate, text, upload};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const SERVICE: &str = "breast-lr";
const MODEL_ID: &str = "breast_lr";

fn example(rel: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

/// The guest's rows of breast: id → feature name → value, in file order.
fn guest_rows() -> Vec<(String, serde_json::Map<String, Value>)> {
    let text = std::fs::read_to_string(example("examples/data/breast_hetero_guest.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    lines
        .map(|l| {
            let cells: Vec<&str> = l.split(',').collect();
            let mut f = serde_json::Map::new();
            for (name, v) in header.iter().zip(&cells).skip(2) {
                f.insert(name.to_string(), json!(v.parse::<f64>().unwrap()));
            }
            (cells[0].to_string(), f)
        })
        .collect()
}

/// Trains breast PSI + CoordinatedLR at the guest as model `MODEL_ID` version `version`
/// (`epochs` epochs, so two versions score differently) and returns the job id.
fn train(d: &Deployment, dir: &Path, version: &str, epochs: u64) -> String {
    let text = std::fs::read_to_string(example("examples/pipeline/breast_psi_lr.yaml")).unwrap();
    let mut v: Value = serde_yaml_ng::from_str(&text).unwrap();
    v["dag"]["conf"] = json!({"model_id": MODEL_ID, "model_version": version});
    v["dag"]["tasks"]["lr_0"]["parameters"]["epochs"] = json!(epochs);
    let file = dir.join(format!("train_{version}.yaml"));
    std::fs::write(&file, serde_yaml_ng::to_string(&v).unwrap()).unwrap();
    submit(d, &file, &[])
}

fn submit(d: &Deployment, file: &Path, extra: &[&str]) -> String {
    let out = fate()
        .args(["job", "submit", "--wait", "--json", "-c"])
        .arg(file)
        .args(extra)
        .args(["--api", &d.api("9999")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}: {}", file.display(), text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "success", "{v}");
    v["job_id"].as_str().unwrap().to_string()
}

/// The guest's predictions of a job's `lr_0` (output `key`): match id → score.
fn scores(d: &Deployment, dir: &Path, job_id: &str) -> HashMap<String, f64> {
    let into = dir.join(format!("out_{job_id}"));
    let out = fate()
        .args([
            "output", "data", "-j", job_id, "-r", "guest", "-p", "9999", "-t", "lr_0",
        ])
        .arg("--download")
        .arg(&into)
        .args(["--api", &d.api("9999")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let file = stdout.lines().next().unwrap().trim().to_string();
    let csv = std::fs::read_to_string(&file).unwrap();
    let mut lines = csv.lines();
    let header = lines.next().unwrap();
    assert!(header.contains("predict_score"), "{header}");
    let s: HashMap<String, f64> = lines
        .map(|l| {
            let c: Vec<&str> = l.splitn(6, ',').collect();
            (c[1].to_string(), c[4].parse::<f64>().unwrap())
        })
        .collect();
    assert_eq!(s.len(), 569, "{file}");
    s
}

fn post(url: &str, body: &Value) -> Value {
    match ureq::post(url).send_json(body.clone()) {
        Ok(r) => r.into_json().unwrap(),
        Err(ureq::Error::Status(_, r)) => r.into_json().unwrap(),
        Err(e) => panic!("{url}: {e}"),
    }
}

fn cli(d: &Deployment, args: &[&str]) -> String {
    let out = fate()
        .arg("serving")
        .args(args)
        .args(["--api", &d.api("9999")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "fate serving {args:?}: {}",
        text(&out)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn single(id: &str, f: &serde_json::Map<String, Value>) -> Value {
    json!({"head": {"serviceId": SERVICE}, "body": {"featureData": f, "sendToRemoteFeatureData": {"id": id}}})
}

#[test]
fn breast_lr_served_online_equals_the_predict_job_swaps_under_load_and_names_a_dead_host() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = Deployment::start("9999,10000", &["--tls"]);
    let work = tempfile::tempdir().unwrap();
    upload(&d, "9999", "breast_hetero_guest.json");
    upload(&d, "10000", "breast_hetero_host.json");
    let v1 = train(&d, work.path(), "1", 20);
    let v2 = train(&d, work.path(), "2", 3);
    let predict = submit(
        &d,
        &example("examples/pipeline/breast_psi_lr_predict.yaml"),
        &["--model-id", MODEL_ID, "--model-version", "1"],
    );
    let want1 = scores(&d, work.path(), &predict);
    // Version 2's scores of the same rows: its training job's own predictions (train set).
    let want2 = scores(&d, work.path(), &v2);
    assert_ne!(
        want1, want2,
        "two versions must score differently for the swap test"
    );
    let _ = v1;

    // Publish with the CLI: load (the host loads its part), bind, list.
    let loaded: Value = serde_json::from_str(&cli(
        &d,
        &[
            "load",
            "--json",
            "--model-id",
            MODEL_ID,
            "--model-version",
            "1",
        ],
    ))
    .unwrap();
    assert_eq!(loaded["role"], "guest", "{loaded}");
    assert_eq!(loaded["hosts"], json!(["10000"]), "{loaded}");
    let host_part = &loaded["host_parts"][0];
    assert_eq!(host_part["role"], "host", "{loaded}");
    assert_eq!(host_part["party_id"], "10000", "{loaded}");
    assert_eq!(host_part["feature_rows"], 569, "{loaded}");
    let table = cli(
        &d,
        &["load", "--model-id", MODEL_ID, "--model-version", "2"],
    );
    assert!(table.starts_with("MODEL_ID"), "{table}");
    assert!(table.contains("guest") && table.contains("host"), "{table}");
    cli(
        &d,
        &[
            "bind",
            "--service-id",
            SERVICE,
            "--model-id",
            MODEL_ID,
            "--model-version",
            "1",
        ],
    );
    let list = cli(&d, &["list"]);
    assert!(
        list.lines()
            .any(|l| l.split_whitespace().take(3).collect::<Vec<_>>() == [SERVICE, MODEL_ID, "1"]),
        "{list}"
    );

    let api = d.api("9999");
    let inference = format!("{api}/federation/v1/inference");
    let batch = format!("{api}/federation/v1/batchInference");
    let rows = guest_rows();
    assert_eq!(rows.len(), 569);

    // Every row, single: the predict job's score to 1e-9, and the model named.
    let started = Instant::now();
    for (id, f) in &rows {
        let r = post(&inference, &single(id, f));
        assert_eq!(r["retcode"], 0, "{id}: {r}");
        assert_eq!(r["data"]["modelVersion"], "1", "{r}");
        assert_eq!(r["data"]["modelId"], MODEL_ID, "{r}");
        let got = r["data"]["score"].as_f64().unwrap();
        assert!(
            (got - want1[id]).abs() <= 1e-9,
            "{id}: online {got}, predict job {}",
            want1[id]
        );
    }
    eprintln!("569 single inferences in {:?}", started.elapsed());

    // Every row in one batch.
    let list: Vec<Value> = rows
        .iter()
        .enumerate()
        .map(|(i, (id, f))| json!({"index": i, "featureData": f, "sendToRemoteFeatureData": {"id": id}}))
        .collect();
    let r = post(
        &batch,
        &json!({"head": {"serviceId": SERVICE}, "body": {"batchDataList": list}}),
    );
    assert_eq!(r["retcode"], 0, "{r}");
    let out = r["batchDataList"].as_array().unwrap();
    assert_eq!(out.len(), 569);
    for (i, (id, _)) in rows.iter().enumerate() {
        assert_eq!(out[i]["index"], i);
        assert_eq!(out[i]["retcode"], 0, "{}", out[i]);
        let got = out[i]["data"]["score"].as_f64().unwrap();
        assert!(
            (got - want1[id]).abs() <= 1e-9,
            "batch {id}: {got} vs {}",
            want1[id]
        );
    }
    // A batch over the limit is refused naming the field.
    let big: Vec<Value> = (0..1001).map(|_| list[0].clone()).collect();
    let r = post(
        &batch,
        &json!({"head": {"serviceId": SERVICE}, "body": {"batchDataList": big}}),
    );
    assert_eq!(r["retcode"], 100, "{r}");
    assert!(
        r["retmsg"].as_str().unwrap().contains("body.batchDataList"),
        "{r}"
    );

    // Malformed requests: a code and a message naming the field; nothing crashes.
    let (id0, f0) = rows[0].clone();
    let (id0, f0) = (&id0, &f0);
    let mut no_x3 = f0.clone();
    no_x3.remove("x3");
    for (req, code, field) in [
        (json!({"body": {}}), 100, "head.serviceId"),
        (
            json!({"head": {"serviceId": "nope"}, "body": {}}),
            122,
            "head.serviceId",
        ),
        (
            json!({"head": {"serviceId": SERVICE}, "body": {"sendToRemoteFeatureData": {"id": id0}}}),
            100,
            "body.featureData",
        ),
        (single(id0, &no_x3), 102, "body.featureData.x3"),
        (
            json!({"head": {"serviceId": SERVICE}, "body": {"featureData": f0}}),
            100,
            "body.sendToRemoteFeatureData",
        ),
        (single("no-such-id", f0), 113, "no-such-id"),
    ] {
        let r = post(&inference, &req);
        assert_eq!(r["retcode"], code, "{req}: {r}");
        assert!(
            r["retmsg"].as_str().unwrap().contains(field),
            "{field}: {r}"
        );
    }
    let r = match ureq::post(&inference)
        .set("content-type", "application/json")
        .send_string("{not json")
    {
        Ok(r) => r.into_json::<Value>().unwrap(),
        Err(ureq::Error::Status(_, r)) => r.into_json::<Value>().unwrap(),
        Err(e) => panic!("{e}"),
    };
    assert_eq!(r["retcode"], 100, "{r}");
    assert!(
        r["retmsg"]
            .as_str()
            .unwrap()
            .contains("body: malformed JSON"),
        "{r}"
    );

    // Swap and roll back under load: a loopback load generator keeps scoring while the
    // service moves between versions; no request fails and each response's score is the
    // score of the version it names.
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let rows = Arc::new(rows);
    let want = Arc::new(
        [("1".to_string(), want1.clone()), ("2".to_string(), want2)]
            .into_iter()
            .collect::<HashMap<String, HashMap<String, f64>>>(),
    );
    let mut workers = Vec::new();
    for w in 0..4 {
        let (stop, served, rows, want, inference) = (
            stop.clone(),
            served.clone(),
            rows.clone(),
            want.clone(),
            inference.clone(),
        );
        workers.push(std::thread::spawn(move || {
            let mut versions = std::collections::BTreeSet::new();
            let mut i = w * 97;
            while !stop.load(Ordering::Relaxed) {
                let (id, f) = &rows[i % rows.len()];
                let r = post(&inference, &single(id, f));
                assert_eq!(r["retcode"], 0, "under swap: {r}");
                let version = r["data"]["modelVersion"].as_str().unwrap().to_string();
                let got = r["data"]["score"].as_f64().unwrap();
                let expected = want[&version][id];
                assert!(
                    (got - expected).abs() <= 1e-9,
                    "{id}: version {version} answered {got}, its score is {expected}"
                );
                versions.insert(version);
                served.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
            versions
        }));
    }
    std::thread::sleep(Duration::from_millis(300));
    for round in 0..6 {
        if round % 2 == 0 {
            cli(
                &d,
                &[
                    "bind",
                    "--service-id",
                    SERVICE,
                    "--model-id",
                    MODEL_ID,
                    "--model-version",
                    "2",
                ],
            );
        } else {
            let r: Value =
                serde_json::from_str(&cli(&d, &["rollback", "--json", "--service-id", SERVICE]))
                    .unwrap();
            assert_eq!(r["model_version"], "1", "{r}");
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    stop.store(true, Ordering::Relaxed);
    let mut seen = std::collections::BTreeSet::new();
    for w in workers {
        seen.extend(w.join().expect("a load generator thread failed"));
    }
    let n = served.load(Ordering::Relaxed);
    eprintln!("{n} requests served during 6 swaps");
    assert!(n > 50, "the load generator served only {n} requests");
    assert_eq!(seen.len(), 2, "both versions served under load: {seen:?}");

    // Metrics: Prometheus text with the counts, the errors by retcode and the latency.
    let metrics = ureq::get(&format!("{api}/v2/serving/metrics"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    let count = |prefix: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {prefix}: {metrics}"))
    };
    assert!(count("fate_serving_requests_total{endpoint=\"inference\"}") >= (569 + n) as f64);
    assert_eq!(
        count("fate_serving_errors_total{endpoint=\"inference\",retcode=\"122\"}"),
        1.0
    );
    assert!(
        count("fate_serving_request_duration_seconds_count{endpoint=\"batchInference\"}") >= 2.0
    );

    // The host's node frozen (slow: it takes the call and never answers): the guest answers
    // within its deadline (3 s), naming the host; once it runs again, serving resumes.
    let host_node = d.pid("node of 10000").to_string();
    let signal = |sig: &str| {
        assert!(
            std::process::Command::new("kill")
                .args([sig, &host_node])
                .status()
                .unwrap()
                .success()
        );
    };
    signal("-STOP");
    let asked = Instant::now();
    let r = post(&inference, &single(id0, f0));
    let took = asked.elapsed();
    signal("-CONT");
    assert_eq!(r["retcode"], 105, "{r}");
    assert!(r["retmsg"].as_str().unwrap().contains("host 10000"), "{r}");
    assert!(
        took >= Duration::from_millis(2500) && took < Duration::from_secs(5),
        "a frozen host answered after {took:?}"
    );
    let r = post(&inference, &single(id0, f0));
    assert_eq!(r["retcode"], 0, "after the host resumed: {r}");

    // The host's node killed: the guest answers within its deadline (3 s), naming the host.
    std::process::Command::new("kill")
        .args(["-9", &d.pid("node of 10000").to_string()])
        .status()
        .unwrap();
    let asked = Instant::now();
    let r = post(&inference, &single(id0, f0));
    let took = asked.elapsed();
    assert_eq!(r["retcode"], 105, "{r}");
    assert!(r["retmsg"].as_str().unwrap().contains("host 10000"), "{r}");
    assert!(took < Duration::from_secs(5), "answered after {took:?}");
    // And the guest still serves its other endpoints.
    let list = cli(&d, &["list", "--json"]);
    assert!(list.contains(SERVICE), "{list}");
}
