//! FATE's own client against fate-rs: fate_client 2.2.0 from PyPI (`flow` CLI and the pipeline
//! SDK), unchanged, driving a `fate standalone` process. The virtualenv is created once under
//! the target directory and reused.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

fn target_dir() -> PathBuf {
    // CARGO_BIN_EXE_fate is <target>/<profile>/fate.
    Path::new(env!("CARGO_BIN_EXE_fate"))
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A virtualenv with fate_client 2.2.0 and the versions FATE 2.2 itself ran with
/// (platform.md: its SDK needs ruamel.yaml < 0.18 and pydantic 1).
fn venv() -> PathBuf {
    let dir = target_dir().join("fate-client-venv");
    let python = dir.join("bin/python");
    let marker = dir.join(".fate_client-2.2.0");
    if marker.exists() {
        return dir;
    }
    let ok = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&dir)
        .status()
        .unwrap()
        .success();
    assert!(ok, "python3 -m venv failed");
    let out = Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "fate_client==2.2.0",
            "ruamel.yaml<0.18",
            "pydantic==1.10.12",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pip install fate_client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(&marker, "").unwrap();
    dir
}

struct NodeProcess {
    child: Child,
    port: u16,
}

impl NodeProcess {
    fn start(data_dir: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_fate"))
            .args(["standalone", "--port", "0", "--data-dir"])
            .arg(data_dir)
            .env("FATE_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
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

fn run(venv: &Path, program: &str, args: &[&str], cwd: &Path) -> String {
    let out = Command::new(venv.join("bin").join(program))
        .args(args)
        .current_dir(cwd)
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

fn shared_data(name: &str) -> PathBuf {
    std::fs::canonicalize(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/data")
            .join(name),
    )
    .unwrap()
}

#[test]
fn flow_cli_and_pipeline_sdk_run_unchanged() {
    let venv = venv();
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
}
