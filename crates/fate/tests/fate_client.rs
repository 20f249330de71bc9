//! FATE's own client against fate-rs: fate_client 2.2.0 from PyPI (`flow` CLI and the pipeline
//! SDK), unchanged, driving a `fate standalone` process. The virtualenv (only what the client
//! imports, no torch) is created once under `${FATE_CACHE:-$HOME/.cache/fate-rs}` and reused.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// What the client needs, pinned (installed with `--no-deps`): the cache key of the venv.
const REQUIREMENTS: &str = include_str!("sdk/requirements.txt");

/// FNV-1a, 64 bits: a cache key stable across Rust versions (std's hasher is not).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn cache_dir() -> PathBuf {
    match std::env::var_os("FATE_CACHE") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(std::env::var_os("HOME").expect("HOME or FATE_CACHE"))
            .join(".cache/fate-rs"),
    }
}

/// A virtualenv with fate_client 2.2.0 and exactly what its `flow` CLI and pipeline SDK import
/// (`tests/sdk/requirements.txt`: the versions FATE 2.2 ran with, no torch), cached under
/// `${FATE_CACHE:-$HOME/.cache/fate-rs}/fate-client-venv-<key of that list>` and reused. It is
/// built beside its final name and renamed into place, so a run that stops half way leaves no
/// venv that looks complete, and two runs racing both end with one.
fn venv() -> PathBuf {
    let python_version = Command::new("python3")
        .arg("--version")
        .output()
        .expect("python3 on PATH");
    let mut key = REQUIREMENTS.as_bytes().to_vec();
    key.extend_from_slice(&python_version.stdout);
    let root = cache_dir();
    let dir = root.join(format!("fate-client-venv-{:016x}", fnv1a(&key)));
    if dir.join("bin/python").exists() {
        return dir;
    }
    std::fs::create_dir_all(&root).unwrap();
    let building = root.join(format!(".fate-client-venv-building-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&building);
    let ok = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&building)
        .status()
        .unwrap()
        .success();
    assert!(ok, "python3 -m venv failed");
    let requirements = building.join("requirements.txt");
    std::fs::write(&requirements, REQUIREMENTS).unwrap();
    let out = Command::new(building.join("bin/python"))
        .args([
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "--no-deps",
            "-r",
        ])
        .arg(&requirements)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pip install fate_client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    if std::fs::rename(&building, &dir).is_err() {
        // Another run finished first: use its venv.
        assert!(dir.join("bin/python").exists(), "cannot place {dir:?}");
        let _ = std::fs::remove_dir_all(&building);
    }
    dir
}

/// `flow init` and `pipeline init` write their settings into the installed package, so each run
/// gets its own copy of the package (1.9 MB), ahead of the shared venv on `PYTHONPATH`.
struct Client {
    venv: PathBuf,
    pythonpath: tempfile::TempDir,
}

fn client() -> Client {
    let venv = venv();
    let pythonpath = tempfile::tempdir().unwrap();
    private_client(&venv, pythonpath.path());
    Client { venv, pythonpath }
}

fn private_client(venv: &Path, into: &Path) {
    let site = std::fs::read_dir(venv.join("lib"))
        .unwrap()
        .map(|e| e.unwrap().path().join("site-packages"))
        .find(|p| p.join("fate_client").is_dir())
        .expect("fate_client in the venv");
    let dest = into.join("fate_client");
    copy_tree(&site.join("fate_client"), &dest);
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            if entry.file_name() != "__pycache__" {
                copy_tree(&entry.path(), &target);
            }
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

struct NodeProcess {
    child: Child,
    port: u16,
}

impl NodeProcess {
    fn start(data_dir: &Path) -> Self {
        Self::start_with(data_dir, &[])
    }

    fn start_with(data_dir: &Path, extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_fate"))
            .args(["standalone", "--port", "0"])
            .args(extra)
            .arg("--data-dir")
            .arg(data_dir)
            // FATE's shared data (uploads, binds) and the test dir (model exports).
            .arg("--data-root")
            .arg(shared_data(""))
            .arg("--data-root")
            .arg(data_dir)
            .env("FATE_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // The line naming the API (a node with authentication on first names its admin file).
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        while !line.contains("API at http://") {
            line.clear();
            assert!(
                out.read_line(&mut line).unwrap() > 0,
                "fate standalone ended"
            );
        }
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap()
            .to_string();
        let port = url
            .rsplit(':')
            .next()
            .unwrap()
            .trim_end_matches('/')
            .parse()
            .unwrap();
        NodeProcess { child, port }
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(client: &Client, program: &str, args: &[&str], cwd: &Path) -> String {
    let venv = &client.venv;
    // Console scripts run through the venv's own python: their shebang names the directory the
    // venv was created in, which is another one when a target directory was copied.
    let python = venv.join("bin/python");
    let mut cmd = Command::new(&python);
    if program != "python" {
        cmd.arg(venv.join("bin").join(program));
    }
    let out = cmd
        .args(args)
        .current_dir(cwd)
        .env("PYTHONPATH", client.pythonpath.path())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{program} {args:?} failed:\n{text}");
    text
}

/// Runs `flow` and reads the JSON it prints (fate_client's `prettify`).
fn flow(venv: &Client, args: &[&str], cwd: &Path) -> serde_json::Value {
    let out = run(venv, "flow", args, cwd);
    let start = out
        .find('{')
        .unwrap_or_else(|| panic!("flow {args:?}: no JSON:\n{out}"));
    let mut de = serde_json::Deserializer::from_str(&out[start..]).into_iter();
    match de.next() {
        Some(Ok(v)) => v,
        _ => panic!("flow {args:?}: no JSON:\n{out}"),
    }
}

/// `flow` must answer FATE's success code.
fn flow_ok(venv: &Client, args: &[&str], cwd: &Path) -> serde_json::Value {
    let v = flow(venv, args, cwd);
    assert_eq!(v["code"], 0, "flow {args:?}: {v}");
    v
}

/// FATE's predict DAG (FATE-Flow examples/lr/predict_lr.yaml) for the LR pipeline, the model
/// from the model warehouse, the host's rows from `host_table`.
fn lr_predict_dag(model_id: &str, model_version: &str, host_table: &str) -> serde_json::Value {
    let gh = serde_json::json!([{"role": "guest", "party_id": ["9999"]}, {"role": "host", "party_id": ["10000"]}]);
    serde_json::json!({"dag": {
        "conf": {"model_warehouse": {"model_id": model_id, "model_version": model_version}},
        "parties": [{"role": "guest", "party_id": ["9999"]}, {"role": "host", "party_id": ["10000"]},
                    {"role": "arbiter", "party_id": ["10000"]}],
        "party_tasks": {
            "guest_9999": {"parties": [{"role": "guest", "party_id": ["9999"]}],
                "tasks": {"reader_0": {"parameters": {"namespace": "experiment", "name": "breast_hetero_guest"}}}},
            "host_10000": {"parties": [{"role": "host", "party_id": ["10000"]}],
                "tasks": {"reader_0": {"parameters": {"namespace": "experiment", "name": host_table}}}}},
        "stage": "predict",
        "tasks": {
            "reader_0": {"component_ref": "reader", "parameters": {}, "parties": gh, "stage": "default"},
            "psi_0": {"component_ref": "psi", "dependent_tasks": ["reader_0"], "parties": gh, "stage": "default",
                "inputs": {"data": {"input_data": {"task_output_artifact":
                    {"producer_task": "reader_0", "output_artifact_key": "output_data", "parties": gh}}}}},
            "lr_0": {"component_ref": "coordinated_lr", "dependent_tasks": ["psi_0"], "parameters": {},
                "inputs": {
                    "data": {"test_data": {"task_output_artifact":
                        {"producer_task": "psi_0", "output_artifact_key": "output_data", "parties": gh}}},
                    "model": {"input_model": {"model_warehouse":
                        {"producer_task": "lr_0", "output_artifact_key": "output_model"}}}}}}},
        "schema_version": "2.2.0"})
}

fn shared_data(name: &str) -> PathBuf {
    std::fs::canonicalize(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples/data")
            .join(name),
    )
    .unwrap()
}

#[test]
fn flow_cli_and_pipeline_sdk_run_unchanged() {
    let venv = client();
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(dir.path());
    let port = node.port.to_string();
    let out = run(
        &venv,
        "flow",
        &["init", "--ip", "127.0.0.1", "--port", &port],
        dir.path(),
    );
    assert!(out.contains("\"code\": 0"), "{out}");
    let out = run(
        &venv,
        "flow",
        &["test", "toy", "-gid", "9999", "-hid", "10000"],
        dir.path(),
    );
    assert!(out.contains("is success"), "{out}");
    for (name, label) in [("breast_hetero_guest", true), ("breast_hetero_host", false)] {
        let meta = if label {
            r#"{"delimiter": ",", "label_name": "y", "match_id_name": "id"}"#
        } else {
            r#"{"delimiter": ",", "match_id_name": "id"}"#
        };
        let conf = format!(
            r#"{{"file": "{}", "head": true, "partitions": 4, "extend_sid": true, "meta": {meta}, "namespace": "experiment", "name": "{name}"}}"#,
            shared_data(&format!("{name}.csv")).display()
        );
        let conf_path = dir.path().join(format!("{name}.json"));
        std::fs::write(&conf_path, conf).unwrap();
        let out = run(
            &venv,
            "flow",
            &["data", "upload", "-c", conf_path.to_str().unwrap()],
            dir.path(),
        );
        assert!(out.contains("\"code\": 0"), "{out}");
    }
    // The upload is a job; flow's table query sees the table once it has run.
    let mut count = String::new();
    for _ in 0..100 {
        count = run(
            &venv,
            "flow",
            &[
                "table",
                "query",
                "--namespace",
                "experiment",
                "--name",
                "breast_hetero_host",
            ],
            dir.path(),
        );
        if count.contains("\"count\": 569") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(count.contains("\"count\": 569"), "{count}");

    // The pipeline SDK: PSI + CoordinatedLR + evaluation and PSI + SecureBoost + evaluation,
    // AUC read through the SDK, then a predict pipeline from each deployed model.
    let out = run(
        &venv,
        "pipeline",
        &["init", "--ip", "127.0.0.1", "--port", &port],
        dir.path(),
    );
    assert!(out.contains("configuration succeeded"), "{out}");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/vfl_pipelines.py");
    let out = run(&venv, "python", &[script.to_str().unwrap()], dir.path());
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| panic!("no RESULT line:\n{out}"));
    let r: serde_json::Value = serde_json::from_str(line).unwrap();
    assert!(r["lr_auc"].as_f64().unwrap() >= 0.994, "{r}");
    assert!(r["sbt_auc"].as_f64().unwrap() >= 0.997, "{r}");
    assert_eq!(r["lr_predict_rows"], 569, "{r}");
    assert_eq!(r["sbt_predict_rows"], 569, "{r}");

    // flow's file commands (issue #6): bind a CSV path as a table, download a task's model,
    // export the LR model of every party, import them under a new model id, predict from the
    // imported models with a DAG submitted by `flow job submit`, download that job's logs.
    let cwd = dir.path();
    let host_csv = shared_data("breast_hetero_host.csv");
    let v = flow_ok(
        &venv,
        &[
            "table",
            "bind",
            "--namespace",
            "experiment",
            "--name",
            "bound_host",
            "--path",
            host_csv.to_str().unwrap(),
        ],
        cwd,
    );
    println!("flow table bind: {v}");
    let v = flow_ok(
        &venv,
        &["table", "query", "-ns", "experiment", "-n", "bound_host"],
        cwd,
    );
    assert_eq!(v["data"]["count"], 569, "{v}");

    let lr_job = r["lr_job_id"].as_str().unwrap();
    let (model_id, model_version) = (
        r["lr_model_id"].as_str().unwrap(),
        r["lr_model_version"].as_str().unwrap(),
    );
    let models_dir = cwd.join("models");
    let v = flow_ok(
        &venv,
        &[
            "output",
            "download-model",
            "-j",
            lr_job,
            "-r",
            "guest",
            "-p",
            "9999",
            "-tn",
            "lr_0",
            "-o",
            models_dir.to_str().unwrap(),
        ],
        cwd,
    );
    println!("flow output download-model: {v}");
    let got = models_dir.join(format!("output_model_{lr_job}_guest_9999_lr_0"));
    let model: serde_json::Value =
        serde_json::from_slice(&std::fs::read(got.join("json_model")).unwrap()).unwrap();
    assert!(model.is_object(), "{model}");
    assert!(got.join("json_model.meta.yaml").is_file());

    let exported = cwd.join("exported");
    for (role, party) in [("guest", "9999"), ("host", "10000"), ("arbiter", "10000")] {
        let v = flow_ok(
            &venv,
            &[
                "model",
                "export",
                "--model-id",
                model_id,
                "--model-version",
                model_version,
                "-p",
                party,
                "-r",
                role,
                "-o",
                exported.to_str().unwrap(),
            ],
            cwd,
        );
        println!("flow model export {role}: {v}");
        let zip = exported.join(format!("{model_id}_{model_version}_{role}_{party}.zip"));
        assert!(zip.is_file(), "{}", zip.display());
        let v = flow_ok(
            &venv,
            &[
                "model",
                "import",
                "--model-id",
                "imported_lr",
                "--model-version",
                "1",
                "-i",
                zip.to_str().unwrap(),
            ],
            cwd,
        );
        println!("flow model import {role}: {v}");
    }
    let dag_path = cwd.join("predict_imported.yaml");
    std::fs::write(
        &dag_path,
        lr_predict_dag("imported_lr", "1", "bound_host").to_string(),
    )
    .unwrap();
    let v = flow_ok(
        &venv,
        &["job", "submit", "-c", dag_path.to_str().unwrap()],
        cwd,
    );
    let predict_job = v["job_id"].as_str().unwrap().to_string();
    let mut statuses = Vec::new();
    for _ in 0..600 {
        let v = flow_ok(&venv, &["job", "query", "-j", &predict_job], cwd);
        statuses = v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["status"].as_str().unwrap_or_default().to_string())
            .collect();
        if statuses
            .iter()
            .all(|s| matches!(s.as_str(), "success" | "failed" | "canceled" | "timeout"))
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(
        statuses.iter().all(|s| s == "success"),
        "predict from imported models: {statuses:?}"
    );
    let logs_dir = cwd.join("logs");
    let v = flow_ok(
        &venv,
        &[
            "job",
            "download-log",
            "-j",
            &predict_job,
            "-o",
            logs_dir.to_str().unwrap(),
        ],
        cwd,
    );
    println!("flow job download-log: {v}");
    let guest_log = logs_dir.join(format!("{predict_job}_logs/guest/9999/lr_0.log"));
    let text = std::fs::read_to_string(&guest_log).unwrap();
    assert!(text.contains(&predict_job), "{text}");

    // Client authentication: a node with it on refuses flow until `flow init` is given an app
    // id and token, then flow works unchanged (FATE-Flow 2.x `client_authentication`).
    let auth_dir = tempfile::tempdir().unwrap();
    let secured = NodeProcess::start_with(auth_dir.path(), &["--auth", "on"]);
    let sport = secured.port.to_string();
    let admin: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(auth_dir.path().join("admin-app.json")).unwrap(),
    )
    .unwrap();
    let (app_id, token) = (
        admin["app_id"].as_str().unwrap(),
        admin["app_token"].as_str().unwrap(),
    );
    // `flow init`, with an app id and token when given.
    let init = |port: &str, app: Option<(&str, &str)>| {
        let mut args = vec!["init", "--ip", "127.0.0.1", "--port", port];
        if let Some((id, token)) = app {
            args.extend(["--app-id", id, "--app-token", token]);
        }
        run(&venv, "flow", &args, cwd);
    };
    // Unsigned: refused naming the header. (Checked without flow: `flow init` without an app
    // id keeps the one a previous init stored in the virtualenv.)
    let unsigned: serde_json::Value =
        ureq::get(&format!("http://127.0.0.1:{sport}/v2/job/query?job_id=1"))
            .call()
            .unwrap()
            .into_json()
            .unwrap();
    assert_eq!(unsigned["code"], 5001, "{unsigned}");
    init(&sport, Some((app_id, "wrong")));
    let refused = flow(&venv, &["job", "query", "-j", "1"], cwd);
    assert_eq!(refused["code"], 5003, "{refused}");
    init(&sport, Some((app_id, token)));
    let out = run(
        &venv,
        "flow",
        &["test", "toy", "-gid", "9999", "-hid", "10000"],
        cwd,
    );
    assert!(out.contains("is success"), "{out}");
    let created = flow_ok(
        &venv,
        &["client", "create-client", "--app-name", "bank_b"],
        cwd,
    );
    assert!(created["data"]["app_token"].is_string(), "{created}");
    // Leave flow pointing at the first node (which ignores the stored credentials).
    init(&port, None);
    drop(secured);
}
