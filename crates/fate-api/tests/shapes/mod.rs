//! FATE-Flow 2.2's response structures replayed (issue #11): every endpoint fate_client calls
//! answers with the keys and JSON types FATE-Flow's source gives it
//! (`tests/fixtures/fate_flow_2.2_responses.json`, each entry naming its source file). One
//! node runs FATE's breast PSI + CoordinatedLR + evaluation pipeline, then each endpoint is
//! called and its answer matched against the template.

use super::{Node, node_at, shared_data};
use serde_json::{Value, json};

const FIXTURE: &str = include_str!("../fixtures/fate_flow_2.2_responses.json");

/// Where `value` breaks `template` (see the fixture's `about`), as `path: reason` lines.
fn mismatches(template: &Value, value: &Value, path: &str, out: &mut Vec<String>) {
    match template {
        Value::String(t) => {
            let ok = t.split('|').any(|t| match t {
                "string" => value.is_string(),
                "number" => value.is_number(),
                "boolean" => value.is_boolean(),
                "object" => value.is_object(),
                "array" => value.is_array(),
                "null" => value.is_null(),
                "any" => true,
                other => panic!("fixture: unknown type {other} at {path}"),
            });
            if !ok {
                out.push(format!("{path}: expected {t}, got {value}"));
            }
        }
        Value::Object(keys) => match value.as_object() {
            None => out.push(format!("{path}: expected an object, got {value}")),
            Some(m) => {
                for (k, t) in keys {
                    match m.get(k) {
                        None => out.push(format!("{path}.{k}: missing")),
                        Some(v) => mismatches(t, v, &format!("{path}.{k}"), out),
                    }
                }
            }
        },
        Value::Array(items) => match value.as_array() {
            None => out.push(format!("{path}: expected an array, got {value}")),
            Some(vs) => {
                let t = items
                    .first()
                    .expect("fixture: an array template has one element");
                for (i, v) in vs.iter().enumerate() {
                    mismatches(t, v, &format!("{path}[{i}]"), out);
                }
            }
        },
        other => panic!("fixture: bad template {other} at {path}"),
    }
}

fn template(endpoint: &str) -> Value {
    let fixture: Value = serde_json::from_str(FIXTURE).unwrap();
    fixture["endpoints"][endpoint]["response"].clone()
}

#[track_caller]
fn check(endpoint: &str, got: &Value, failures: &mut Vec<String>, seen: &mut Vec<String>) {
    let t = template(endpoint);
    assert!(!t.is_null(), "fixture has no entry for {endpoint}");
    seen.push(endpoint.to_string());
    let mut out = Vec::new();
    mismatches(&t, got, "", &mut out);
    for m in out {
        let answer: String = got.to_string().chars().take(400).collect();
        failures.push(format!("{endpoint}: {m}\n  answer: {answer}"));
    }
}

/// A GET answered with bytes (tar downloads): status, content type and body.
async fn get_raw(node: &Node, uri: &str) -> (u16, String, Vec<u8>) {
    use tower::ServiceExt;
    let req = axum::http::Request::builder()
        .uri(uri)
        .body(axum::body::Body::empty())
        .unwrap();
    let resp = node.app.clone().oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 26)
        .await
        .unwrap();
    (status, ct, bytes.to_vec())
}

/// The files of a tar: (path, text).
fn untar(bytes: &[u8]) -> Vec<(String, String)> {
    let mut a = tar::Archive::new(bytes);
    a.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let path = e.path().unwrap().to_string_lossy().to_string();
            let mut text = String::new();
            std::io::Read::read_to_string(&mut e, &mut text).unwrap();
            (path, text)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fate_flow_endpoints_answer_fate_flows_structures() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_at(dir.path()).await;
    let (mut failures, mut seen) = (Vec::new(), Vec::new());

    let up = node
        .upload(
            &shared_data("breast_hetero_guest.csv"),
            "experiment",
            "breast_hetero_guest",
            json!({"extend_sid": true}),
        )
        .await;
    check(
        "POST /v2/data/component/upload",
        &up,
        &mut failures,
        &mut seen,
    );
    node.wait(up["job_id"].as_str().unwrap()).await;
    let host = node
        .post(
            "/v2/data/component/upload",
            json!({"file": shared_data("breast_hetero_host.csv").to_string_lossy(), "head": true,
                   "partitions": 4, "extend_sid": true, "meta": {"delimiter": ",", "match_id_name": "id"},
                   "namespace": "experiment", "name": "breast_hetero_host"}),
        )
        .await;
    assert_eq!(host["code"], 0, "{host}");
    node.wait(host["job_id"].as_str().unwrap()).await;

    let yaml = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples/pipeline/breast_psi_lr.yaml"),
    )
    .unwrap();
    let (_, submit) = node.call("POST", "/v2/job/submit", Some(yaml)).await;
    check("POST /v2/job/submit", &submit, &mut failures, &mut seen);
    let job_id = submit["job_id"].as_str().expect("job_id").to_string();
    let jobs = node.wait(&job_id).await;
    assert!(
        jobs.iter().all(|j| j["status"] == "success"),
        "the LR job must succeed: {jobs:?}"
    );
    let q = |path: &str| format!("{path}?job_id={job_id}&role=guest&party_id=9999");

    let get = [
        (
            "GET /v2/job/query",
            format!("/v2/job/query?job_id={job_id}"),
        ),
        ("GET /v2/job/list/query", "/v2/job/list/query".to_string()),
        (
            "GET /v2/job/task/query",
            format!("/v2/job/task/query?job_id={job_id}"),
        ),
        (
            "GET /v2/job/task/list/query",
            format!("/v2/job/task/list/query?job_id={job_id}"),
        ),
        ("GET /v2/job/dag/dependency", q("/v2/job/dag/dependency")),
        (
            "GET /v2/output/metric/key/query",
            q("/v2/output/metric/key/query") + "&task_name=evaluation_0",
        ),
        (
            "GET /v2/output/metric/query",
            q("/v2/output/metric/query") + "&task_name=evaluation_0",
        ),
        (
            "GET /v2/output/model/query",
            q("/v2/output/model/query") + "&task_name=lr_0",
        ),
        (
            "GET /v2/output/data/table",
            q("/v2/output/data/table") + "&task_name=lr_0",
        ),
        (
            "GET /v2/table/query",
            "/v2/table/query?namespace=experiment&name=breast_hetero_guest".to_string(),
        ),
        ("GET /v2/provider/query", "/v2/provider/query".to_string()),
        (
            "GET /v2/log/count",
            format!("/v2/log/count?job_id={job_id}"),
        ),
        (
            "GET /v2/log/query",
            format!("/v2/log/query?job_id={job_id}"),
        ),
        ("GET /v2/app/site/query", "/v2/app/site/query".to_string()),
        (
            "GET /v2/job/query (unknown job)",
            "/v2/job/query?job_id=202001010000000000000".to_string(),
        ),
    ];
    for (endpoint, uri) in &get {
        let v = node.get(uri).await;
        check(endpoint, &v, &mut failures, &mut seen);
    }

    // The evaluation metric keyed by the evaluated task and its data set, with AUC and KS.
    let metrics = node
        .get(&(q("/v2/output/metric/query") + "&task_name=evaluation_0"))
        .await;
    let evaluation: Vec<Value> = metrics["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["name"] == "evaluation")
        .cloned()
        .collect();
    assert_eq!(evaluation.len(), 1, "{metrics}");
    check(
        "GET /v2/output/metric/query (evaluation)",
        &json!({"code": metrics["code"], "message": metrics["message"], "data": evaluation}),
        &mut failures,
        &mut seen,
    );
    let train_set = evaluation[0]["data"]["lr_0"]["train_set"]
        .as_array()
        .unwrap();
    let auc = train_set
        .iter()
        .find(|m| m["metric"] == "auc")
        .and_then(|m| m["val"].as_f64())
        .expect("auc in train_set");
    assert!(auc > 0.98, "breast LR AUC {auc}");
    assert!(
        train_set
            .iter()
            .flat_map(|m| m.as_array().cloned().unwrap_or_default())
            .any(|m| m["metric"] == "ks"),
        "ks in train_set: {train_set:?}"
    );

    // The prediction's `type` column names the data set (FATE's predict_tools.py TRAIN_SET).
    let (status, ct, tar) =
        get_raw(&node, &(q("/v2/output/data/download") + "&task_name=lr_0")).await;
    assert_eq!((status, ct.as_str()), (200, "application/x-tar"));
    let files = untar(&tar);
    let (_, csv) = &files[0];
    assert!(csv.lines().next().unwrap().ends_with(",type"), "{csv}");
    assert!(
        csv.lines().skip(1).all(|l| l.ends_with(",train_set")),
        "{csv}"
    );
    // A table downloads as a tar too (`/v2/data/download`, flow data download).
    let (status, ct, tar) = get_raw(
        &node,
        "/v2/data/download?namespace=experiment&name=breast_hetero_guest",
    )
    .await;
    assert_eq!((status, ct.as_str()), (200, "application/x-tar"));
    let files = untar(&tar);
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].1.lines().count(), 570, "header and 569 rows");

    // Housekeeping endpoints.
    let v = node
        .post(
            "/v2/job/notes/add",
            json!({"job_id": job_id, "role": "guest", "party_id": "9999", "notes": "first run"}),
        )
        .await;
    check("POST /v2/job/notes/add", &v, &mut failures, &mut seen);
    let v = node
        .get(&format!("/v2/job/query?job_id={job_id}&role=guest"))
        .await;
    assert_eq!(v["data"][0]["description"], "first run", "{v}");
    let v = node.post("/v2/job/queue/clean", json!({})).await;
    check("POST /v2/job/queue/clean", &v, &mut failures, &mut seen);
    let body =
        json!({"job_id": job_id, "role": "guest", "party_id": "9999", "task_name": "evaluation_0"});
    let v = node.post("/v2/output/metric/delete", body.clone()).await;
    check(
        "POST /v2/output/metric/delete",
        &v,
        &mut failures,
        &mut seen,
    );
    assert_eq!(v["data"], true, "{v}");
    let v = node
        .get(&(q("/v2/output/metric/query") + "&task_name=evaluation_0"))
        .await;
    assert_eq!(v["data"], json!([]), "metrics deleted: {v}");
    let model_version = submit["data"]["model_version"].clone();
    let model_id = submit["data"]["model_id"].clone();
    let v = node
        .post(
            "/v2/output/model/delete",
            json!({"job_id": job_id, "role": "host", "party_id": "10000", "task_name": "lr_0"}),
        )
        .await;
    check("POST /v2/output/model/delete", &v, &mut failures, &mut seen);
    let v = node
        .post(
            "/v2/model/delete",
            json!({"model_id": model_id, "model_version": model_version, "role": "guest"}),
        )
        .await;
    check("POST /v2/model/delete", &v, &mut failures, &mut seen);
    assert!(v["data"]["count"].as_i64().unwrap() >= 1, "{v}");
    let v = node
        .get(&(q("/v2/output/model/query") + "&task_name=lr_0"))
        .await;
    assert_eq!(v["data"], json!({}), "guest models deleted: {v}");
    let v = node.post("/v2/job/clean", json!({"job_id": job_id})).await;
    check("POST /v2/job/clean", &v, &mut failures, &mut seen);

    // Stop, then rerun: a stopped task is canceled, and the job reruns.
    let (_, toy) = node
        .call("POST", "/v2/job/submit", Some(super::toy_dag().to_string()))
        .await;
    let toy_id = toy["job_id"].as_str().unwrap().to_string();
    let v = node.post("/v2/job/stop", json!({"job_id": toy_id})).await;
    check("POST /v2/job/stop", &v, &mut failures, &mut seen);
    let ended = node.wait(&toy_id).await;
    assert!(ended.iter().all(|j| j["status"] == "canceled"), "{ended:?}");
    let tasks = node
        .get(&format!("/v2/job/task/query?job_id={toy_id}"))
        .await;
    assert!(
        tasks["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["status"] == "canceled"),
        "stopped tasks are canceled: {tasks}"
    );
    let v = node.post("/v2/job/rerun", json!({"job_id": toy_id})).await;
    check("POST /v2/job/rerun", &v, &mut failures, &mut seen);
    assert_eq!(v["code"], 0, "rerun after stop: {v}");
    let ended = node.wait(&toy_id).await;
    assert!(ended.iter().all(|j| j["status"] == "success"), "{ended:?}");

    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Every fixture entry was replayed.
    let fixture: Value = serde_json::from_str(FIXTURE).unwrap();
    let replayed: std::collections::BTreeSet<&str> = seen.iter().map(String::as_str).collect();
    let not: Vec<&String> = fixture["endpoints"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| !replayed.contains(k.as_str()))
        .collect();
    assert!(not.is_empty(), "fixture entries not replayed: {not:?}");
}
