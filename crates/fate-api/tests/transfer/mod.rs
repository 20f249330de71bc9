//! Files in and out of a node, as fate_client 2.2 moves them: `/table/bind/path`,
//! `/output/model/download`, `/model/export` + `/model/import` (round trip into a predict job
//! that reads the imported models through `model_warehouse`), `/job/log/download`.

use super::{Node, node_at, shared_data, toy_dag};
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Request};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::Read;
use tower::ServiceExt;

impl Node {
    /// The raw answer: content type and body.
    async fn raw(&self, req: Request<Body>) -> (HeaderMap, Bytes) {
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let headers = resp.headers().clone();
        (
            headers,
            axum::body::to_bytes(resp.into_body(), 1 << 28)
                .await
                .unwrap(),
        )
    }

    async fn raw_get(&self, uri: &str) -> (HeaderMap, Bytes) {
        self.raw(Request::get(uri).body(Body::empty()).unwrap())
            .await
    }

    async fn raw_post(&self, uri: &str, body: Value) -> (HeaderMap, Bytes) {
        self.raw(
            Request::post(uri)
                .header("content-type", "application/json")
                .body(Body::from(body.to_string()))
                .unwrap(),
        )
        .await
    }

    /// `POST /v2/model/import` as fate_client sends it: form fields and the zip as `file`.
    async fn import_model(&self, fields: &[(&str, &str)], file: Option<&[u8]>) -> Value {
        let (body, content_type) = super::multipart_body(
            "XMODELBOUNDARYX",
            fields.iter().copied(),
            file.map(|bytes| ("file", "m.zip", bytes)),
        );
        let (_, bytes) = self
            .raw(
                Request::post("/v2/model/import")
                    .header("content-type", content_type)
                    .body(Body::from(body))
                    .unwrap(),
            )
            .await;
        serde_json::from_slice(&bytes).unwrap()
    }

    async fn submit_ok(&self, dag: Value) -> String {
        let v = self.post("/v2/job/submit", dag).await;
        assert_eq!(v["code"], 0, "{v}");
        let job_id = v["job_id"].as_str().unwrap().to_string();
        let jobs = self.wait(&job_id).await;
        assert!(
            jobs.iter().all(|j| j["status"] == "success"),
            "{job_id}: {jobs:?}"
        );
        job_id
    }

    /// Rows of a task's output table at one party.
    async fn output_count(&self, job_id: &str, role: &str, party: &str, task: &str) -> i64 {
        let data = self
            .get(&format!(
                "/v2/output/data/table?job_id={job_id}&role={role}&party_id={party}&task_name={task}"
            ))
            .await;
        let (key, refs) = data["data"]
            .as_object()
            .and_then(|m| m.iter().next())
            .unwrap_or_else(|| panic!("no output data: {data}"));
        let t = &refs[0];
        let table = self
            .get(&format!(
                "/v2/table/query?namespace={}&name={}",
                t["namespace"].as_str().unwrap(),
                t["name"].as_str().unwrap()
            ))
            .await;
        table["data"]["count"]
            .as_i64()
            .unwrap_or_else(|| panic!("{key}: {table}"))
    }
}

fn json_of(bytes: &Bytes) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(bytes)))
}

fn content_type(h: &HeaderMap) -> &str {
    h.get("content-type").unwrap().to_str().unwrap()
}

/// The files of a tar.
fn untar(bytes: &[u8]) -> HashMap<String, Vec<u8>> {
    let mut out = HashMap::new();
    for e in tar::Archive::new(bytes).entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().to_string();
        let mut buf = Vec::new();
        e.read_to_end(&mut buf).unwrap();
        out.insert(path, buf);
    }
    out
}

fn assert_param_error(v: &Value, field: &str) {
    assert_eq!(v["code"], 5001, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains(field),
        "message should name `{field}`: {v}"
    );
    assert!(v["data"].get(field).is_some(), "{v}");
}

fn reader_dag(namespace: &str, name: &str) -> Value {
    json!({"dag_schema": {"dag": {
        "parties": [{"role": "guest", "party_id": ["9999"]}],
        "tasks": {"reader_0": {"component_ref": "reader", "parameters": {"namespace": namespace, "name": name}}}
    }, "schema_version": "2.2.0"}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bound_csv_is_a_table_the_reader_reads() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_at(dir.path()).await;
    let file = shared_data("breast_hetero_host.csv");
    let v = node
        .post(
            "/v2/table/bind/path",
            json!({"namespace": "experiment", "name": "bound", "path": file.to_string_lossy()}),
        )
        .await;
    assert_eq!(v["code"], 0, "{v}");
    assert_eq!(
        v["data"]["count"], 569,
        "the table is there when bind returns: {v}"
    );
    let t = node
        .get("/v2/table/query?namespace=experiment&name=bound")
        .await;
    assert_eq!(t["data"]["count"], 569, "{t}");
    let canonical = std::fs::canonicalize(&file).unwrap();
    assert_eq!(t["data"]["path"], json!(canonical.to_string_lossy()), "{t}");
    assert_eq!(
        t["data"]["meta"]["match_id_name"], "id",
        "first column is the id: {t}"
    );
    assert_eq!(
        t["data"]["meta"]["feature_names"].as_array().unwrap().len(),
        20
    );
    let job_id = node.submit_ok(reader_dag("experiment", "bound")).await;
    assert_eq!(
        node.output_count(&job_id, "guest", "9999", "reader_0")
            .await,
        569
    );

    // Upload's meta fields pass through: a label column.
    let v = node
        .post(
            "/v2/table/bind/path",
            json!({"namespace": "experiment", "name": "labelled", "path": shared_data("breast_hetero_guest.csv").to_string_lossy(),
                   "meta": {"label_name": "y", "match_id_name": "id"}}),
        )
        .await;
    assert_eq!(v["code"], 0, "{v}");
    let t = node
        .get("/v2/table/query?namespace=experiment&name=labelled")
        .await;
    assert_eq!(t["data"]["meta"]["label_name"], "y", "{t}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_binds_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_at(dir.path()).await;
    let v = node
        .post(
            "/v2/table/bind/path",
            json!({"namespace": "experiment", "name": "x"}),
        )
        .await;
    assert_param_error(&v, "path");
    let missing = dir.path().join("nope.csv");
    let v = node
        .post(
            "/v2/table/bind/path",
            json!({"namespace": "experiment", "name": "x", "path": missing.to_string_lossy()}),
        )
        .await;
    assert_eq!(v["code"], 8001, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .starts_with("No found file or dir: path["),
        "{v}"
    );
    let v = node
        .post(
            "/v2/table/bind/path",
            json!({"namespace": "experiment", "name": "x", "path": dir.path().to_string_lossy()}),
        )
        .await;
    assert_param_error(&v, "path");
    let ragged = dir.path().join("ragged.csv");
    std::fs::write(&ragged, "id,x0\n1,0.5\n2\n").unwrap();
    let v = node
        .post(
            "/v2/table/bind/path",
            json!({"namespace": "experiment", "name": "x", "path": ragged.to_string_lossy()}),
        )
        .await;
    assert_param_error(&v, "path");
    assert!(v["message"].as_str().unwrap().contains("line 3"), "{v}");
    let t = node
        .get("/v2/table/query?namespace=experiment&name=x")
        .await;
    assert_eq!(t["code"], 7001, "no table after refused binds: {t}");

    let good = dir.path().join("good.csv");
    std::fs::write(&good, "id,x0\n1,0.5\n2,0.7\n").unwrap();
    let body = json!({"namespace": "experiment", "name": "x", "path": good.to_string_lossy()});
    assert_eq!(
        node.post("/v2/table/bind/path", body.clone()).await["code"],
        0
    );
    let v = node.post("/v2/table/bind/path", body).await;
    assert_eq!(v["code"], 7002, "binding over a table needs overwrite: {v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_download_is_the_task_model_package() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_at(dir.path()).await;
    let job_id = node.submit_ok(toy_dag()).await;
    let (h, bytes) = node
        .raw_get(&format!(
            "/v2/output/model/download?job_id={job_id}&role=guest&party_id=9999&task_name=toy_example_0"
        ))
        .await;
    assert_eq!(content_type(&h), "application/x-tar");
    let files = untar(&bytes);
    let model: Value = serde_json::from_slice(&files["json_model"]).unwrap();
    assert_eq!(model, json!({"test_role": "guest"}));
    let meta: Value = serde_yaml_ng::from_slice(&files["json_model.meta.yaml"]).unwrap();
    assert_eq!(meta["model_key"], "json_model", "{meta}");
    assert_eq!(meta["source"]["task_name"], "toy_example_0", "{meta}");
    assert_eq!(meta["source"]["component"], "toy_example", "{meta}");
    assert_eq!(
        meta["source"]["output_artifact_key"], "json_model_output",
        "{meta}"
    );

    let (_, bytes) = node
        .raw_get(&format!(
            "/v2/output/model/download?job_id={job_id}&role=guest&party_id=9999"
        ))
        .await;
    assert_param_error(&json_of(&bytes), "task_name");
    let (h, bytes) = node
        .raw_get(&format!(
            "/v2/output/model/download?job_id={job_id}&role=guest&party_id=9999&task_name=nope"
        ))
        .await;
    assert_eq!(content_type(&h), "application/json");
    let v = json_of(&bytes);
    assert_eq!(v["code"], 2000, "FATE's NoFoundTask: {v}");
    assert_eq!(
        v["message"],
        format!("No found task: job_id[{job_id}],role[guest],party_id[9999],task_name[nope]")
    );
}

fn parties3() -> Value {
    json!([{"role": "guest", "party_id": ["9999"]}, {"role": "host", "party_id": ["10000"]},
           {"role": "arbiter", "party_id": ["10000"]}])
}

fn party_readers() -> Value {
    json!({
        "guest_9999": {"parties": [{"role": "guest", "party_id": ["9999"]}],
            "tasks": {"reader_0": {"parameters": {"namespace": "experiment", "name": "breast_hetero_guest"}}}},
        "host_10000": {"parties": [{"role": "host", "party_id": ["10000"]}],
            "tasks": {"reader_0": {"parameters": {"namespace": "experiment", "name": "breast_hetero_host"}}}},
    })
}

fn reader_psi() -> Value {
    let gh =
        json!([{"role": "guest", "party_id": ["9999"]}, {"role": "host", "party_id": ["10000"]}]);
    json!({
        "reader_0": {"component_ref": "reader", "parameters": {}, "parties": gh, "stage": "default"},
        "psi_0": {"component_ref": "psi", "dependent_tasks": ["reader_0"], "parties": gh, "stage": "default",
            "inputs": {"data": {"input_data": {"task_output_artifact":
                {"producer_task": "reader_0", "output_artifact_key": "output_data", "parties": gh}}}}},
    })
}

fn lr_train_dag() -> Value {
    let mut tasks = reader_psi();
    tasks["lr_0"] = json!({"component_ref": "coordinated_lr", "dependent_tasks": ["psi_0"],
        "inputs": {"data": {"train_data": {"task_output_artifact": {"producer_task": "psi_0", "output_artifact_key": "output_data",
            "parties": [{"role": "guest", "party_id": ["9999"]}, {"role": "host", "party_id": ["10000"]}]}}}},
        "parameters": {"epochs": 2, "batch_size": 300,
            "init_param": {"fit_intercept": true, "method": "random_uniform", "random_state": 42}}});
    json!({"dag_schema": {"dag": {"parties": parties3(), "party_tasks": party_readers(), "stage": "train", "tasks": tasks},
        "schema_version": "2.2.0"}})
}

/// FATE's predict DAG (examples/lr/predict_lr.yaml): the model from the model warehouse.
fn lr_predict_dag(model_id: &str, model_version: &str) -> Value {
    let mut tasks = reader_psi();
    tasks["lr_0"] = json!({"component_ref": "coordinated_lr", "dependent_tasks": ["psi_0"],
        "inputs": {
            "data": {"test_data": {"task_output_artifact": {"producer_task": "psi_0", "output_artifact_key": "output_data",
                "parties": [{"role": "guest", "party_id": ["9999"]}, {"role": "host", "party_id": ["10000"]}]}}},
            "model": {"input_model": {"model_warehouse": {"producer_task": "lr_0", "output_artifact_key": "output_model"}}}},
        "parameters": {}});
    json!({"dag_schema": {"dag": {
        "conf": {"model_warehouse": {"model_id": model_id, "model_version": model_version}},
        "parties": parties3(), "party_tasks": party_readers(), "stage": "predict", "tasks": tasks},
        "schema_version": "2.2.0"}})
}

async fn upload_breast(node: &Node) {
    for (name, meta) in [
        (
            "breast_hetero_guest",
            json!({"delimiter": ",", "label_name": "y", "match_id_name": "id"}),
        ),
        (
            "breast_hetero_host",
            json!({"delimiter": ",", "match_id_name": "id"}),
        ),
    ] {
        let v = node
            .upload(
                &shared_data(&format!("{name}.csv")),
                "experiment",
                name,
                json!({"meta": meta}),
            )
            .await;
        assert_eq!(v["code"], 0, "{v}");
        node.wait(v["job_id"].as_str().unwrap()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exported_models_import_under_a_new_id_and_predict() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_at(dir.path()).await;
    upload_breast(&node).await;
    let train = node.submit_ok(lr_train_dag()).await;
    let out = dir.path().join("exported");
    // A symlink planted where the export writes its temporary file is replaced, not followed
    // (before, the zip was written through it into the file it pointed at).
    std::fs::create_dir_all(&out).unwrap();
    let victim = dir.path().join("victim.txt");
    std::fs::write(&victim, "keep").unwrap();
    std::os::unix::fs::symlink(&victim, out.join(format!("{train}_0_guest_9999.zip.part")))
        .unwrap();
    let mut zips = Vec::new();
    for (role, party) in [("guest", "9999"), ("host", "10000"), ("arbiter", "10000")] {
        let v = node
            .post(
                "/v2/model/export",
                json!({"model_id": train, "model_version": "0", "role": role, "party_id": party, "path": out.to_string_lossy()}),
            )
            .await;
        assert_eq!(v["code"], 0, "{v}");
        let file = out.join(format!("{train}_0_{role}_{party}.zip"));
        assert_eq!(v["data"]["path"], json!(file.to_string_lossy()), "{v}");
        let mut zip = zip::ZipArchive::new(std::fs::File::open(&file).unwrap()).unwrap();
        let names: Vec<String> = zip.file_names().map(|n| n.unwrap().to_string()).collect();
        let key = format!("{train}/0/{role}/{party}/lr_0/output_model");
        assert!(names.contains(&key), "{names:?}");
        let mut package = Vec::new();
        zip.by_name(&key)
            .unwrap()
            .read_to_end(&mut package)
            .unwrap();
        assert!(untar(&package).contains_key("json_model.meta.yaml"));
        zips.push(std::fs::read(&file).unwrap());
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
    }

    // Nothing is stored under the new id yet: a predict job from it fails.
    let v = node
        .post("/v2/job/submit", lr_predict_dag("imported_lr", "7"))
        .await;
    let jobs = node.wait(v["job_id"].as_str().unwrap()).await;
    assert!(jobs.iter().any(|j| j["status"] == "failed"), "{jobs:?}");

    for zip in &zips {
        let v = node
            .import_model(
                &[("model_id", "imported_lr"), ("model_version", "7")],
                Some(zip),
            )
            .await;
        assert_eq!(v["code"], 0, "{v}");
        assert_eq!(v["data"]["models"][0]["task_name"], "lr_0", "{v}");
    }
    let predict = node.submit_ok(lr_predict_dag("imported_lr", "7")).await;
    assert_eq!(
        node.output_count(&predict, "guest", "9999", "lr_0").await,
        569
    );
    // The imported guest model is the trained one.
    let trained = node
        .get(&format!(
            "/v2/output/model/query?job_id={train}&role=guest&party_id=9999&task_name=lr_0"
        ))
        .await;
    let (_, bytes) = node
        .raw_post(
            "/v2/model/export",
            json!({"model_id": "imported_lr", "model_version": "7", "role": "guest", "party_id": "9999",
                   "path": dir.path().join("again").to_string_lossy()}),
        )
        .await;
    assert_eq!(json_of(&bytes)["code"], 0);
    let again = dir.path().join("again/imported_lr_7_guest_9999.zip");
    let mut zip = zip::ZipArchive::new(std::fs::File::open(again).unwrap()).unwrap();
    let mut package = Vec::new();
    zip.by_name("imported_lr/7/guest/9999/lr_0/output_model")
        .unwrap()
        .read_to_end(&mut package)
        .unwrap();
    let model: Value = serde_json::from_slice(&untar(&package)["json_model"]).unwrap();
    assert_eq!(model, trained["data"]["output_model"]["data"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_exports_and_imports_answer_fates_codes() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_at(dir.path()).await;
    let path = dir.path().join("out");
    let v = node
        .post(
            "/v2/model/export",
            json!({"model_id": "nope", "model_version": "0", "role": "guest", "party_id": "9999", "path": path.to_string_lossy()}),
        )
        .await;
    assert_eq!(v["code"], 2005, "FATE's NoFoundModelOutput: {v}");
    assert_eq!(
        v["message"],
        "No found output model: model_id[nope],model_version[0],role[guest],party_id[9999]"
    );
    assert!(!path.exists(), "a refused export writes nothing");
    let v = node
        .post(
            "/v2/model/export",
            json!({"model_id": "nope", "model_version": "0", "role": "guest", "party_id": "9999"}),
        )
        .await;
    assert_param_error(&v, "path");

    let v = node
        .import_model(&[("model_version", "0")], Some(b"PK"))
        .await;
    assert_param_error(&v, "model_id");
    let v = node
        .import_model(&[("model_id", "m"), ("model_version", "0")], None)
        .await;
    assert_eq!(v["code"], 5007, "FATE's NoFoundFile: {v}");
    let v = node
        .import_model(
            &[("model_id", "m"), ("model_version", "0")],
            Some(b"not a zip"),
        )
        .await;
    assert_param_error(&v, "file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_logs_download_as_fates_tar_gz() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_at(dir.path()).await;
    let job_id = node.submit_ok(toy_dag()).await;
    let (h, bytes) = node
        .raw_post("/v2/job/log/download", json!({"job_id": job_id}))
        .await;
    assert_eq!(content_type(&h), "application/gzip");
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(&bytes[..])
        .read_to_end(&mut tar)
        .unwrap();
    let files = untar(&tar);
    let guest = String::from_utf8(files["guest/9999/toy_example_0.log"].clone()).unwrap();
    assert!(guest.contains("toy_example finished"), "{guest}");
    assert!(
        files.contains_key("host/10000/toy_example_0.log"),
        "{:?}",
        files.keys()
    );
    // Same lines as /v2/log/query.
    let logs = node
        .get(&format!(
            "/v2/log/query?job_id={job_id}&role=guest&party_id=9999&task_name=toy_example_0"
        ))
        .await;
    assert_eq!(
        guest.lines().count(),
        logs["data"].as_array().unwrap().len()
    );

    let v = node.post("/v2/job/log/download", json!({})).await;
    assert_param_error(&v, "job_id");
    let v = node
        .post(
            "/v2/job/log/download",
            json!({"job_id": "202001010000000000000"}),
        )
        .await;
    assert_eq!(v["code"], 8001, "{v}");
    assert_eq!(
        v["message"],
        "No found file or dir: job_id[202001010000000000000]"
    );
}
