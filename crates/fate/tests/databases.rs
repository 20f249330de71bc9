//! A node whose metadata lives on a real MariaDB and on a real PostgreSQL server (started by the
//! test on loopback, `scripts/services/{mariadb,postgres}.sh`): the toy and FATE's breast
//! PSI + LR job succeed, nothing is written to SQLite, and a node killed with SIGKILL mid-job
//! restarts as it does on SQLite (the job failed with the restart's reason, nothing left
//! running, a rerun succeeds).

mod common;

#[allow(dead_code)]
#[path = "../../fate-store/tests/servers/mod.rs"]
mod servers;

use common::{fate, text};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ENDED: [&str; 5] = ["success", "failed", "canceled", "timeout", "pass"];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A `fate standalone` on `--database-url url`, on an OS-chosen port, killed on drop.
struct Node {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Node {
    fn start(data_dir: &Path, database: &str, log: PathBuf) -> Self {
        let mut child = fate()
            .args(["standalone", "--port", "0", "--data-dir"])
            .arg(data_dir)
            .arg("--data-root")
            .arg(repo().join("examples/data"))
            .args(["--database-url", database])
            // The node's own log (under the data dir) at info: it names the database.
            .env("FATE_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        while !line.contains("API at http://") {
            line.clear();
            assert!(
                out.read_line(&mut line).unwrap() > 0,
                "fate standalone on {database} ended before it listened: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no URL in `{line}`"))
            .to_string();
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        Node { child, url, log }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run_ok(args: &[&str], api: &str) -> String {
    let out = fate().args(args).args(["--api", api]).output().unwrap();
    assert!(out.status.success(), "fate {args:?} failed: {}", text(&out));
    String::from_utf8(out.stdout).unwrap()
}

fn get(url: &str, query: &[(&str, &str)]) -> Value {
    let mut req = ureq::get(url).timeout(Duration::from_secs(10));
    for (k, v) in query {
        req = req.query(k, v);
    }
    match req.call() {
        Ok(r) => r.into_json().unwrap(),
        Err(ureq::Error::Status(_, r)) => r.into_json().unwrap(),
        Err(e) => panic!("{url}: {e}"),
    }
}

fn tasks(api: &str, job_id: &str) -> Vec<Value> {
    get(&format!("{api}/v2/job/task/query"), &[("job_id", job_id)])["data"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn jobs(api: &str, job_id: &str) -> Vec<Value> {
    get(&format!("{api}/v2/job/query"), &[("job_id", job_id)])["data"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The AUC that `job submit --wait --json` printed for lr_0's training set.
fn auc(out: &str) -> f64 {
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["status"], "success", "{out}");
    v["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["task"] == "lr_0" && m["data_set"] == "train_set" && m["metric"] == "auc")
        .and_then(|m| m["value"].as_f64())
        .unwrap_or_else(|| panic!("no AUC of lr_0: {out}"))
}

/// Everything the issue asks of a node on `server`'s database.
fn node_on(server: &servers::Server, what: &str) {
    let database = server.fresh_database("node");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let started = Instant::now();
    let node = Node::start(&data, &database, dir.path().join("first.log"));
    let api = node.url.clone();

    // The toy and FATE's breast PSI + LR pipeline.
    let out = run_ok(
        &["toy", "--guest", "9999", "--host", "10000", "--json"],
        &api,
    );
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["status"], "success", "{what}: {out}");
    for side in ["guest", "host"] {
        let conf = repo().join(format!("examples/upload/breast_hetero_{side}.json"));
        let out = run_ok(&["data", "upload", "-c", conf.to_str().unwrap()], &api);
        assert!(out.contains("569 rows"), "{what}: {out}");
    }
    let lr = repo().join("examples/pipeline/breast_psi_lr.yaml");
    let out = run_ok(
        &[
            "job",
            "submit",
            "-c",
            lr.to_str().unwrap(),
            "--wait",
            "--json",
        ],
        &api,
    );
    assert_eq!(format!("{:.6}", auc(&out)), "0.994411", "{what}: {out}");
    let flows = started.elapsed();

    // The metadata is on the server: no SQLite file, and the log names the URL without its
    // password.
    assert!(
        !data.join("fate_flow.sqlite").exists(),
        "{what}: the node wrote SQLite metadata although it was given {database}"
    );
    let log = std::fs::read_to_string(data.join("logs/fate.log")).unwrap_or_default()
        + &std::fs::read_to_string(&node.log).unwrap();
    assert!(
        log.contains("fate:***@127.0.0.1") && !log.contains("fate:fate@"),
        "{what}: the log does not name the database without its password:\n{log}"
    );

    // kill -9 while LR runs; the restarted node fails the job (as on SQLite), leaves nothing
    // running, and the rerun succeeds.
    let submitted: Value = ureq::post(&format!("{api}/v2/job/submit"))
        .send_string(&std::fs::read_to_string(&lr).unwrap())
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(submitted["code"], 0, "{what}: {submitted}");
    let job_id = submitted["job_id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !tasks(&api, &job_id)
        .iter()
        .any(|t| t["task_name"] == "lr_0" && t["status"] == "running")
    {
        assert!(
            jobs(&api, &job_id)
                .iter()
                .all(|j| !ENDED.contains(&j["status"].as_str().unwrap_or(""))),
            "{what}: job {job_id} ended before LR ran"
        );
        assert!(Instant::now() < deadline, "{what}: lr_0 never ran");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut node = node;
    let killed = Command::new("kill")
        .args(["-9", &node.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    node.child.wait().unwrap();
    drop(node);

    let node = Node::start(&data, &database, dir.path().join("second.log"));
    let api = node.url.clone();
    for j in jobs(&api, &job_id) {
        assert_eq!(
            j["status"], "failed",
            "{what}: job {job_id} after the kill and restart: {j}"
        );
        assert!(
            j["error"].as_str().unwrap_or("").contains("restart"),
            "{what}: the job does not say the node restarted: {j}"
        );
    }
    for t in tasks(&api, &job_id) {
        let s = t["status"].as_str().unwrap_or("");
        assert!(
            ENDED.contains(&s),
            "{what}: task {} left `{s}` after the restart: {t}",
            t["task_name"]
        );
    }
    run_ok(&["job", "rerun", "-j", &job_id], &api);
    let out = run_ok(&["job", "wait", "-j", &job_id, "--json"], &api);
    assert_eq!(format!("{:.6}", auc(&out)), "0.994411", "{what}: {out}");
    eprintln!(
        "{what}: toy + upload + PSI/LR in {flows:.1?}, all with the kill and rerun in {:.1?}",
        started.elapsed()
    );
}

#[test]
fn a_node_on_mariadb_runs_its_jobs_and_recovers_from_kill_9() {
    node_on(servers::mariadb(), "mariadb");
}

#[test]
fn a_node_on_postgres_runs_its_jobs_and_recovers_from_kill_9() {
    node_on(servers::postgres(), "postgres");
}

/// A bad `--database-url` or an unreachable server stops the node at start, naming
/// `database.url` and never the password.
#[test]
fn a_bad_or_unreachable_database_url_stops_the_node_naming_it() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for url in [
        "oracle://fate:s3cret@db/fate".to_string(),
        "mysql://fate:s3cret@127.0.0.1".to_string(),
        format!("postgres://fate:s3cret@127.0.0.1:{port}/fate"),
        format!("mysql://fate:s3cret@127.0.0.1:{port}/fate"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = fate()
            .args(["standalone", "--port", "0", "--data-dir"])
            .arg(dir.path())
            .args(["--database-url", &url])
            .output()
            .unwrap();
        let text = text(&out);
        assert!(!out.status.success(), "{url}: the node started: {text}");
        assert!(
            text.contains("database.url") && !text.contains("s3cret"),
            "{url}: {text}"
        );
    }
}
