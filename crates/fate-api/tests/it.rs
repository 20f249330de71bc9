//! REST API tests against a real standalone node (SQLite metadata, redb tables, in-process
//! federation) driven through the router, as FATE's client would drive it.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use fate_computing::{Computing, ComputingConfig};
use fate_federation::local::LocalTransport;
use fate_federation::{FederationConfig, Transport};
use fate_scheduler::{Scheduler, SchedulerConfig};
use fate_store::MetaStore;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower::ServiceExt;

mod auth;
mod board;
mod hostile;
mod shapes;
mod transfer;

struct Node {
    app: Router,
}

async fn node_at(dir: &Path) -> Node {
    node_with_transport(dir, LocalTransport::new()).await
}

async fn node_with_transport(dir: &Path, transport: Arc<dyn Transport>) -> Node {
    let computing = Computing::new(ComputingConfig {
        cores: 2,
        default_partitions: 4,
        data_dir: Some(dir.join("tables")),
    })
    .unwrap();
    let store = MetaStore::open_sqlite(&dir.join("fate_flow.sqlite"))
        .await
        .unwrap();
    let federation = FederationConfig {
        timeout: Duration::from_secs(30),
        ..FederationConfig::default()
    };
    let scheduler = Scheduler::new(
        store,
        computing,
        transport,
        fate_components::registry(),
        SchedulerConfig {
            logs_dir: dir.join("logs"),
            federation,
            site: None,
            // The test dir (files the tests write), FATE's shared example data and the uploads
            // dir are the node's data roots.
            data_roots: {
                let uploads = dir.join("uploads");
                std::fs::create_dir_all(&uploads).unwrap();
                let roots = [dir.to_path_buf(), shared_data(""), uploads];
                fate_runtime::DataRoots::new(roots.into_iter().filter(|d| d.is_dir()), 1 << 30)
                    .unwrap()
            },
            engines: None,
        },
    )
    .await
    .unwrap();
    let app = fate_api::router(fate_api::ApiState {
        scheduler,
        upload_dir: dir.join("uploads"),
        address: "127.0.0.1:9380".into(),
        auth: None,
        board: None,
        serving: Default::default(),
    });
    Node { app }
}

impl Node {
    async fn call(&self, method: &str, uri: &str, body: Option<String>) -> (StatusCode, Value) {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json")
            .body(body.map(Body::from).unwrap_or_else(Body::empty))
            .unwrap();
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24)
            .await
            .unwrap();
        let v: Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!("{uri}: not JSON ({e}): {}", String::from_utf8_lossy(&bytes))
        });
        (status, v)
    }

    async fn get(&self, uri: &str) -> Value {
        self.call("GET", uri, None).await.1
    }

    async fn post(&self, uri: &str, body: Value) -> Value {
        self.call("POST", uri, Some(body.to_string())).await.1
    }

    /// Polls `/v2/job/query` until every party's record has ended.
    async fn wait(&self, job_id: &str) -> Vec<Value> {
        for _ in 0..3000 {
            let v = self.get(&format!("/v2/job/query?job_id={job_id}")).await;
            assert_eq!(v["code"], 0, "{v}");
            let jobs = v["data"].as_array().unwrap().clone();
            if jobs.iter().all(|j| {
                matches!(
                    j["status"].as_str(),
                    Some("success" | "failed" | "canceled" | "timeout")
                )
            }) {
                return jobs;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("job {job_id} did not end");
    }

    async fn job_count(&self) -> i64 {
        self.get("/v2/job/list/query?limit=1000").await["data"]["count"]
            .as_i64()
            .unwrap_or(0)
    }

    async fn upload(&self, file: &Path, namespace: &str, name: &str, extra: Value) -> Value {
        let mut body = json!({
            "file": file.to_string_lossy(), "head": true, "partitions": 4,
            "meta": {"delimiter": ",", "label_name": "y", "match_id_name": "id"},
            "namespace": namespace, "name": name,
        });
        if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
            b.extend(e);
        }
        self.post("/v2/data/component/upload", body).await
    }
}

/// A `multipart/form-data` body with `boundary`: text `fields`, then `files` as
/// (field, filename, bytes). Returns the body and its content type.
fn multipart_body<'a>(
    boundary: &str,
    fields: impl IntoIterator<Item = (&'a str, &'a str)>,
    files: impl IntoIterator<Item = (&'a str, &'a str, &'a [u8])>,
) -> (Vec<u8>, String) {
    let mut body = Vec::new();
    for (k, v) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    for (k, filename, bytes) in files {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"; filename=\"{filename}\"\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (body, format!("multipart/form-data; boundary={boundary}"))
}

fn shared_data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/data")
        .join(name)
}

fn toy_dag() -> Value {
    json!({"dag_schema": {"dag": {
        "parties": [{"role": "guest", "party_id": ["9999"]}, {"role": "host", "party_id": ["10000"]}],
        "tasks": {"toy_example_0": {"component_ref": "toy_example", "parameters": {"data_num": 1024, "partition": 4}}}
    }, "schema_version": "2.2.0"}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn toy_dag_reaches_success_with_outputs_and_logs() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_at(dir.path()).await;
    let v = node.post("/v2/job/submit", toy_dag()).await;
    assert_eq!(v["code"], 0, "{v}");
    let job_id = v["job_id"].as_str().unwrap().to_string();
    assert_eq!(v["data"]["model_id"], job_id);
    assert_eq!(v["data"]["model_version"], "0");
    let jobs = node.wait(&job_id).await;
    assert_eq!(jobs.len(), 2);
    for j in &jobs {
        assert_eq!(j["status"], "success", "{j}");
        assert_eq!(j["progress"], 100);
    }
    let tasks = node
        .get(&format!("/v2/job/task/query?job_id={job_id}"))
        .await;
    let tasks = tasks["data"].as_array().unwrap();
    assert_eq!(tasks.len(), 2);
    assert!(tasks.iter().all(|t| t["status"] == "success"));
    let model = node.get(&format!("/v2/output/model/query?job_id={job_id}&role=guest&party_id=9999&task_name=toy_example_0")).await;
    assert_eq!(
        model["data"]["json_model_output"]["data"],
        json!({"test_role": "guest"}),
        "{model}"
    );
    let data = node
        .get(&format!(
            "/v2/output/data/table?job_id={job_id}&role=host&party_id=10000&task_name=toy_example_0"
        ))
        .await;
    let out = &data["data"]["output_data"][0];
    let table = node
        .get(&format!(
            "/v2/table/query?namespace={}&name={}",
            out["namespace"].as_str().unwrap(),
            out["name"].as_str().unwrap()
        ))
        .await;
    assert_eq!(table["data"]["count"], 1024, "{table}");
    let logs = node
        .get(&format!(
            "/v2/log/query?job_id={job_id}&role=guest&party_id=9999"
        ))
        .await;
    let lines = logs["data"].as_array().unwrap();
    assert!(
        lines.iter().any(|l| l["content"]
            .as_str()
            .unwrap()
            .contains("toy_example finished")),
        "{logs}"
    );
    assert!(
        lines
            .iter()
            .all(|l| l["content"].as_str().unwrap().contains(&job_id)),
        "every log line names the job"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_job_frees_its_federation_sessions() {
    // Issue #10: the scheduler cleaned up "session" `{job_id}`, which names no session, so
    // frames of finished jobs were never freed.
    let dir = tempfile::tempdir().unwrap();
    let hub = LocalTransport::new();
    let recorder = fate_federation::faulty::FaultyTransport::new(hub.clone());
    let node = node_with_transport(dir.path(), recorder.clone()).await;
    let v = node.post("/v2/job/submit", toy_dag()).await;
    assert_eq!(v["code"], 0, "{v}");
    let job_id = v["job_id"].as_str().unwrap().to_string();
    node.wait(&job_id).await;
    let session = format!("{job_id}_toy_example_0_0");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !recorder.cleaned().contains(&session) {
        assert!(
            Instant::now() < deadline,
            "session {session} was never cleaned up; cleaned: {:?}",
            recorder.cleaned()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(hub.pending_frames(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_makes_a_table_that_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let node = node_at(dir.path()).await;
        let v = node
            .upload(
                &shared_data("breast_hetero_guest.csv"),
                "experiment",
                "breast_hetero_guest",
                json!({}),
            )
            .await;
        assert_eq!(v["code"], 0, "{v}");
        assert_eq!(
            v["data"],
            json!({"name": "breast_hetero_guest", "namespace": "experiment"})
        );
        let jobs = node.wait(v["job_id"].as_str().unwrap()).await;
        assert_eq!(jobs[0]["status"], "success", "{jobs:?}");
        assert_eq!(jobs[0]["role"], "local");
        assert_eq!(jobs[0]["party_id"], "0");
        let t = node
            .get("/v2/table/query?namespace=experiment&name=breast_hetero_guest")
            .await;
        assert_eq!(t["data"]["count"], 569, "{t}");
        assert_eq!(t["data"]["partitions"], 4);
        // FATE's table meta: the store's engine and the table's address in it.
        assert_eq!(t["data"]["engine"], "standalone", "{t}");
        assert_eq!(
            t["data"]["address"], "experiment/breast_hetero_guest",
            "{t}"
        );
        assert_eq!(t["data"]["meta"]["label_name"], "y");
        assert_eq!(
            t["data"]["meta"]["feature_names"].as_array().unwrap().len(),
            10
        );
    }
    // A new node on the same data dir: metadata and rows are still there.
    let node = node_at(dir.path()).await;
    let t = node
        .get("/v2/table/query?namespace=experiment&name=breast_hetero_guest")
        .await;
    assert_eq!(t["data"]["count"], 569, "{t}");
    let computing = Computing::new(ComputingConfig {
        cores: 1,
        default_partitions: 4,
        data_dir: Some(dir.path().join("tables")),
    })
    .unwrap();
    let table: fate_computing::Table<String, fate_runtime::Row> =
        computing.load("experiment", "breast_hetero_guest").unwrap();
    assert_eq!(table.count().unwrap(), 569);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_upload_of_a_client_file() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_at(dir.path()).await;
    let csv = std::fs::read(shared_data("breast_hetero_host.csv")).unwrap();
    let (body, content_type) = multipart_body(
        "XBOUNDARYX",
        [
            ("namespace", "experiment"),
            ("name", "breast_hetero_host"),
            ("head", "true"),
            ("partitions", "4"),
            ("meta", r#"{"match_id_name": "id"}"#),
        ],
        [("file", "h.csv", csv.as_slice())],
    );
    let req = Request::builder()
        .method("POST")
        .uri("/v2/data/component/upload/file")
        .header("content-type", content_type)
        .body(Body::from(body))
        .unwrap();
    let resp = node.app.clone().oneshot(req).await.unwrap();
    let v: Value = serde_json::from_slice(
        &axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(v["code"], 0, "{v}");
    let jobs = node.wait(v["job_id"].as_str().unwrap()).await;
    assert_eq!(jobs[0]["status"], "success", "{jobs:?}");
    let t = node
        .get("/v2/table/query?namespace=experiment&name=breast_hetero_host")
        .await;
    assert_eq!(t["data"]["count"], 569, "{t}");
    assert_eq!(
        t["data"]["meta"]["feature_names"].as_array().unwrap().len(),
        20
    );
}

/// Submits a bad DAG: FATE's job-parameter code, a message naming `needle`, and no job created.
async fn assert_dag_refused(node: &Node, body: String, needle: &str) {
    let before = node.job_count().await;
    let (_, v) = node.call("POST", "/v2/job/submit", Some(body)).await;
    assert_eq!(v["code"], 1000, "{v}");
    let msg = v["message"].as_str().unwrap();
    assert!(
        msg.contains(needle),
        "message `{msg}` should name `{needle}`"
    );
    assert_eq!(
        node.job_count().await,
        before,
        "a refused DAG creates no job"
    );
}

fn dag_with(tasks: Value, parties: Value) -> String {
    json!({"dag_schema": {"dag": {"parties": parties, "tasks": tasks}, "schema_version": "2.2.0"}})
        .to_string()
}

fn two_parties() -> Value {
    json!([{"role": "guest", "party_id": ["9999"]}, {"role": "host", "party_id": ["10000"]}])
}

#[tokio::test]
async fn dag_with_a_cycle_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_at(dir.path()).await;
    let p = json!({"data_num": 10, "partition": 1});
    let tasks = json!({
        "a": {"component_ref": "toy_example", "dependent_tasks": ["b"], "parameters": p},
        "b": {"component_ref": "toy_example", "dependent_tasks": ["a"], "parameters": p},
    });
    assert_dag_refused(&node, dag_with(tasks, two_parties()), "cycle").await;
}

#[tokio::test]
async fn dag_with_an_unknown_component_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_at(dir.path()).await;
    let tasks = json!({"t": {"component_ref": "no_such_component", "parameters": {}}});
    assert_dag_refused(&node, dag_with(tasks, two_parties()), "no_such_component").await;
}

#[tokio::test]
async fn dag_with_a_task_party_outside_the_job_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_at(dir.path()).await;
    let tasks = json!({"toy": {"component_ref": "toy_example", "parameters": {"data_num": 10, "partition": 1},
        "parties": [{"role": "host", "party_id": ["7777"]}]}});
    assert_dag_refused(&node, dag_with(tasks, two_parties()), "7777").await;
}

#[tokio::test]
async fn dag_missing_a_required_parameter_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_at(dir.path()).await;
    let tasks = json!({"toy": {"component_ref": "toy_example", "parameters": {"partition": 1}}});
    assert_dag_refused(&node, dag_with(tasks, two_parties()), "data_num").await;
}

#[tokio::test]
async fn malformed_yaml_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_at(dir.path()).await;
    let before = node.job_count().await;
    let (_, v) = node
        .call(
            "POST",
            "/v2/job/submit",
            Some("dag:\n  parties: [\n  tasks: {".into()),
        )
        .await;
    assert_eq!(v["code"], 1000, "{v}");
    assert!(!v["message"].as_str().unwrap().is_empty());
    assert_eq!(node.job_count().await, before);
}

/// Uploads `csv`: the upload job fails with a message naming `needle`, and no table is made.
async fn assert_csv_refused(csv: &str, needle: &str) {
    let dir = tempfile::tempdir().unwrap();
    let node = node_at(dir.path()).await;
    let file = dir.path().join("bad.csv");
    std::fs::write(&file, csv).unwrap();
    let v = node.upload(&file, "experiment", "bad", json!({})).await;
    assert_eq!(v["code"], 0, "{v}");
    let jobs = node.wait(v["job_id"].as_str().unwrap()).await;
    assert_eq!(jobs[0]["status"], "failed");
    let err = jobs[0]["error"].as_str().unwrap();
    assert!(
        err.contains(needle),
        "error `{err}` should contain `{needle}`"
    );
    let t = node
        .get("/v2/table/query?namespace=experiment&name=bad")
        .await;
    assert_eq!(t["code"], 7001, "a refused upload leaves no table: {t}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_with_ragged_rows_is_refused() {
    assert_csv_refused("id,y,x0,x1\n1,0,0.1,0.2\n2,1,0.3\n", "line 3").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_with_a_non_numeric_feature_is_refused() {
    assert_csv_refused("id,y,x0,x1\n1,0,0.1,0.2\n2,1,0.3,oops\n", "`x1`").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_with_duplicate_ids_is_refused() {
    assert_csv_refused("id,y,x0\n1,0,0.1\n1,1,0.3\n", "duplicate id").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_over_an_existing_table_replaces_it_as_fate_does() {
    // FATE-Flow 2.2 components/upload.py destroys a table of the same name before writing, and
    // fate_client's upload sends no `overwrite`; an explicit `overwrite: false` keeps it.
    let dir = tempfile::tempdir().unwrap();
    let node = node_at(dir.path()).await;
    let small = dir.path().join("small.csv");
    std::fs::write(&small, "id,y,x0\n1,0,0.1\n2,1,0.3\n").unwrap();
    let v = node
        .upload(
            &shared_data("breast_hetero_guest.csv"),
            "experiment",
            "t",
            json!({}),
        )
        .await;
    node.wait(v["job_id"].as_str().unwrap()).await;
    let before = node.job_count().await;
    let v = node
        .upload(&small, "experiment", "t", json!({"overwrite": false}))
        .await;
    assert_eq!(v["code"], 7002, "{v}");
    assert!(v["message"].as_str().unwrap().contains("experiment.t"));
    assert_eq!(node.job_count().await, before, "no upload job was created");
    let t = node
        .get("/v2/table/query?namespace=experiment&name=t")
        .await;
    assert_eq!(t["data"]["count"], 569, "the existing table is unchanged");
    let v = node.upload(&small, "experiment", "t", json!({})).await;
    assert_eq!(v["code"], 0, "{v}");
    node.wait(v["job_id"].as_str().unwrap()).await;
    let t = node
        .get("/v2/table/query?namespace=experiment&name=t")
        .await;
    assert_eq!(t["data"]["count"], 2);
}

#[tokio::test]
async fn unknown_job_and_unknown_endpoint_answer_in_fates_envelope() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_at(dir.path()).await;
    let v = node.get("/v2/job/query?job_id=202001010000000000000").await;
    assert_eq!(v["code"], 1001, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("202001010000000000000")
    );
    let (status, v) = node.call("POST", "/v2/model/load", Some("{}".into())).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        v["message"].as_str().unwrap().contains("/v2/model/load"),
        "{v}"
    );
    let (_, v) = node
        .call("POST", "/v2/job/stop", Some("not json".into()))
        .await;
    assert_eq!(v["code"], 5001, "{v}");
    let v = node.get("/v2/site/info/query").await;
    assert_eq!(v["code"], 3000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_job_reruns_after_its_cause_is_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_at(dir.path()).await;
    let dag = json!({"dag_schema": {"dag": {
        "parties": [{"role": "guest", "party_id": ["9999"]}],
        "tasks": {"reader_0": {"component_ref": "reader", "parameters": {"namespace": "experiment", "name": "later"}}}
    }}});
    let v = node.post("/v2/job/submit", dag).await;
    let job_id = v["job_id"].as_str().unwrap().to_string();
    let jobs = node.wait(&job_id).await;
    assert_eq!(jobs[0]["status"], "failed");
    assert!(
        jobs[0]["error"]
            .as_str()
            .unwrap()
            .contains("experiment.later"),
        "{jobs:?}"
    );
    let v = node
        .upload(
            &shared_data("breast_hetero_guest.csv"),
            "experiment",
            "later",
            json!({}),
        )
        .await;
    node.wait(v["job_id"].as_str().unwrap()).await;
    let v = node.post("/v2/job/rerun", json!({"job_id": job_id})).await;
    assert_eq!(v["code"], 0, "{v}");
    let jobs = node.wait(&job_id).await;
    assert_eq!(jobs[0]["status"], "success", "{jobs:?}");
    let tasks = node
        .get(&format!(
            "/v2/job/task/query?job_id={job_id}&task_version=1"
        ))
        .await;
    assert_eq!(tasks["data"][0]["status"], "success", "{tasks}");
    let v = node.post("/v2/job/rerun", json!({"job_id": job_id})).await;
    assert_eq!(v["code"], 1003, "a successful job is not rerun: {v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fate_1x_dsl_and_conf_run_the_secure_add_toy() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_at(dir.path()).await;
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/dsl");
    let dsl: Value = serde_json::from_str(
        &std::fs::read_to_string(examples.join("secure_add_dsl.json")).unwrap(),
    )
    .unwrap();
    let conf: Value = serde_json::from_str(
        &std::fs::read_to_string(examples.join("secure_add_conf.json")).unwrap(),
    )
    .unwrap();
    let v = node
        .post("/v1/job/submit", json!({"dsl": dsl, "runtime_conf": conf}))
        .await;
    assert_eq!(v["retcode"], 0, "{v}");
    let job_id = v["jobId"].as_str().unwrap().to_string();
    let jobs = node.wait(&job_id).await;
    assert!(jobs.iter().all(|j| j["status"] == "success"), "{jobs:?}");
    let m = node
        .get(&format!(
            "/v2/output/metric/query?job_id={job_id}&role=guest&party_id=9999"
        ))
        .await;
    assert_eq!(m["data"][0]["data"]["secure_sum"], 2000.0, "{m}");
    let bad = node
        .post(
            "/v1/job/submit",
            json!({"dsl": {"components": {"x": {"module": "NoSuchModule"}}}, "runtime_conf": conf}),
        )
        .await;
    assert_eq!(bad["retcode"], 101, "{bad}");
    assert!(
        bad["retmsg"].as_str().unwrap().contains("NoSuchModule"),
        "{bad}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_a_running_job_cancels_it_at_every_party() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_at(dir.path()).await;
    // Large enough to still be running when the stop arrives.
    let dag = json!({"dag_schema": {"dag": {
        "parties": [{"role": "guest", "party_id": ["9999"]}, {"role": "host", "party_id": ["10000"]}],
        "tasks": {"big": {"component_ref": "secure_add_example", "parameters": {"data_num": 3000000, "partition": 4}}}
    }}});
    let v = node.post("/v2/job/submit", dag).await;
    let job_id = v["job_id"].as_str().unwrap().to_string();
    let v = node.post("/v2/job/stop", json!({"job_id": job_id})).await;
    assert_eq!(v["code"], 0, "{v}");
    let start = std::time::Instant::now();
    let jobs = node.wait(&job_id).await;
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "stop took {:?}",
        start.elapsed()
    );
    for j in &jobs {
        assert_eq!(j["status"], "canceled", "{j}");
    }
    let tasks = node
        .get(&format!("/v2/job/task/query?job_id={job_id}"))
        .await;
    for t in tasks["data"].as_array().unwrap() {
        assert_ne!(t["status"], "success", "{t}");
        assert_ne!(t["status"], "running", "{t}");
    }
    let v = node.post("/v2/job/stop", json!({"job_id": job_id})).await;
    assert_eq!(v["code"], 1003, "an ended job cannot be stopped: {v}");
}
