//! The `fate` binary as a user runs it: the in-process toy, a standalone node driven by the CLI,
//! and a restart of that node.

mod common;

use serde_json::Value;
use std::io::{BufRead, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

fn fate() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_fate"));
    c.env_remove("FATE_API")
        .env_remove("FATE_HOME")
        .env("FATE_LOG", "warn");
    c
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn run_ok(args: &[&str], api: &str) -> String {
    let out = fate().args(args).args(["--api", api]).output().unwrap();
    assert!(
        out.status.success(),
        "fate {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A `fate standalone` process on an OS-chosen port, killed on drop.
struct NodeProcess {
    child: Child,
    url: String,
}

impl NodeProcess {
    fn start(data_dir: &Path) -> Self {
        Self::start_with(data_dir, &[])
    }

    fn start_with(data_dir: &Path, extra: &[&str]) -> Self {
        let mut cmd = fate();
        cmd.args(["standalone", "--port", "0"])
            .args(extra)
            .arg("--data-dir")
            .arg(data_dir)
            // The example upload confs read FATE's shared data.
            .arg("--data-root")
            .arg(repo().join("examples/data"));
        Self::spawn(cmd)
    }

    /// Runs `cmd` (a `fate standalone`) and waits for the line naming its API (a node with
    /// authentication on first names its admin file).
    fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
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
            .unwrap_or_else(|| panic!("no URL in `{line}`"))
            .to_string();
        NodeProcess { child, url }
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn toy_in_process_prints_the_secure_sum() {
    let out = fate()
        .args(["toy", "--guest", "9999", "--host", "10000"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("success to calculate secure_sum, it is 2000.0"),
        "{stdout}"
    );
}

#[test]
fn a_standalone_node_driven_by_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(dir.path());
    let api = node.url.as_str();

    // flow test toy: the 2.x toy_example through the REST API.
    let out = run_ok(
        &["toy", "--guest", "9999", "--host", "10000", "--json"],
        api,
    );
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["status"], "success", "{out}");
    let job_id = v["job_id"].as_str().unwrap().to_string();

    // The same DAG from a file, then query, tasks and logs of the first job.
    let dag = repo().join("examples/toy/toy_example.yaml");
    let out = run_ok(
        &[
            "job",
            "submit",
            "-c",
            dag.to_str().unwrap(),
            "--wait",
            "--json",
        ],
        api,
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["status"], "success", "{out}");
    let out = run_ok(&["job", "query", "-j", &job_id], api);
    assert!(
        out.contains("success") && out.contains("9999") && out.contains("10000"),
        "{out}"
    );
    let out = run_ok(&["job", "tasks", "-j", &job_id, "--json"], api);
    let tasks: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(tasks.as_array().unwrap().len(), 2);
    let out = run_ok(&["job", "logs", "-j", &job_id], api);
    assert!(out.contains("toy_example finished"), "{out}");

    // 1.x DSL + conf through the CLI.
    let examples = repo().join("examples/dsl");
    let out = run_ok(
        &[
            "job",
            "submit",
            "-c",
            examples.join("secure_add_conf.json").to_str().unwrap(),
            "-d",
            examples.join("secure_add_dsl.json").to_str().unwrap(),
            "--wait",
            "--json",
        ],
        api,
    );
    assert!(out.contains("\"success\""), "{out}");

    // Upload FATE's breast data (server path and multipart) and query the tables.
    let conf = repo().join("examples/upload/breast_hetero_guest.json");
    let out = run_ok(&["data", "upload", "-c", conf.to_str().unwrap()], api);
    assert!(out.contains("569 rows"), "{out}");
    let conf = repo().join("examples/upload/breast_hetero_host.json");
    let out = run_ok(&["data", "upload-file", "-c", conf.to_str().unwrap()], api);
    assert!(out.contains("569 rows"), "{out}");
    let out = run_ok(
        &[
            "table",
            "query",
            "--namespace",
            "experiment",
            "--name",
            "breast_hetero_host",
            "--json",
        ],
        api,
    );
    let t: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(t["count"], 569);

    // FATE's breast PSI + LR pipeline: `--wait` ends with every party's status and the AUC and
    // KS at the initiator; `fate output metrics` shows the same.
    let lr = repo().join("examples/pipeline/breast_psi_lr.yaml");
    let out = run_ok(
        &["job", "submit", "-c", lr.to_str().unwrap(), "--wait"],
        api,
    );
    for party in ["guest", "host", "arbiter"] {
        assert!(
            out.lines()
                .any(|l| l.contains(party) && l.contains("success")),
            "{party} status: {out}"
        );
    }
    let metric = |out: &str, name: &str| -> f64 {
        out.lines()
            .find_map(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                (cols.len() == 4 && cols[0] == "lr_0" && cols[1] == "train_set" && cols[2] == name)
                    .then(|| cols[3].parse().unwrap())
            })
            .unwrap_or_else(|| panic!("no {name} row: {out}"))
    };
    assert!(out.contains("evaluation at guest 9999"), "{out}");
    assert_eq!(format!("{:.6}", metric(&out, "auc")), "0.994411", "{out}");
    let ks = metric(&out, "ks");
    assert!(ks > 0.9 && ks <= 1.0, "{out}");
    let lr_job = out
        .lines()
        .find_map(|l| {
            l.split_whitespace()
                .next()
                .filter(|w| w.len() == 21 && w.chars().all(|c| c.is_ascii_digit()))
        })
        .expect("the job id in the status table")
        .to_string();
    let m = run_ok(
        &[
            "output",
            "metrics",
            "-j",
            &lr_job,
            "-r",
            "guest",
            "-p",
            "9999",
            "-t",
            "evaluation_0",
        ],
        api,
    );
    assert_eq!(format!("{:.6}", metric(&m, "auc")), "0.994411", "{m}");
    assert_eq!(metric(&m, "ks"), ks, "{m}");
    // Re-attaching to the (finished) job prints the same results; the JSON form carries them.
    let again = run_ok(&["job", "wait", "-j", &lr_job, "--json"], api);
    let v: Value = serde_json::from_str(&again).unwrap();
    assert_eq!(v["status"], "success", "{again}");
    assert!(
        v["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["metric"] == "auc"),
        "{again}"
    );
    // Model summary, output data preview and download, log download.
    let out = run_ok(
        &[
            "output", "model", "-j", &lr_job, "-r", "guest", "-p", "9999", "-t", "lr_0",
        ],
        api,
    );
    assert!(out.contains("coordinated_lr"), "{out}");
    let out = run_ok(
        &[
            "output", "data", "-j", &lr_job, "-r", "guest", "-p", "9999", "-t", "lr_0", "--rows",
            "3",
        ],
        api,
    );
    assert!(out.contains("train_output_data:"), "{out}");
    let dl = dir.path().join("dl");
    let out = run_ok(
        &[
            "output",
            "data",
            "-j",
            &lr_job,
            "-r",
            "guest",
            "-p",
            "9999",
            "-t",
            "lr_0",
            "--download",
            dl.to_str().unwrap(),
        ],
        api,
    );
    let csv = std::fs::read_to_string(out.lines().next().unwrap().trim()).unwrap();
    assert_eq!(csv.lines().count(), 570, "{csv:.200}");
    assert!(csv.lines().nth(1).unwrap().ends_with(",train_set"));
    let out = run_ok(
        &["output", "logs", "-j", &lr_job, "-o", dl.to_str().unwrap()],
        api,
    );
    assert!(out.contains("log files under"), "{out}");
    assert!(dl.join(&lr_job).is_dir());

    // Errors a user sees: an unknown job and an upload over an existing table.
    let out = fate()
        .args(["job", "query", "-j", "202001010000000000000", "--api", api])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found (code 1001)"));
    let conf = repo().join("examples/upload/breast_hetero_guest.json");
    let out = fate()
        .args(["data", "upload", "-c", conf.to_str().unwrap(), "--api", api])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("code 7002"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Restart the node on the same data dir: tables and jobs are still there.
    drop(node);
    let node = NodeProcess::start(dir.path());
    let out = run_ok(
        &[
            "table",
            "query",
            "--namespace",
            "experiment",
            "--name",
            "breast_hetero_guest",
            "--json",
        ],
        &node.url,
    );
    let t: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(t["count"], 569);
    let out = run_ok(&["job", "query", "-j", &job_id, "--json"], &node.url);
    assert!(out.contains("\"success\""));
}

/// Hostile configuration (issue #10): a bad data root, size limit or node.yaml field stops the
/// node at start with an error naming it, before it listens.
#[test]
fn bad_data_roots_and_limits_are_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a_file");
    std::fs::write(&file, "x").unwrap();
    let data = dir.path().join("data");
    let standalone = |extra: &[&std::ffi::OsStr]| {
        let out = fate()
            .args(["standalone", "--port", "0", "--data-dir"])
            .arg(&data)
            .args(extra)
            .stdout(Stdio::null())
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let os = |s: &str| std::ffi::OsString::from(s);
    let cases: Vec<(Vec<std::ffi::OsString>, &str)> = vec![
        (vec![os("--data-root"), os("/")], "file system root"),
        (
            vec![os("--data-root"), file.clone().into_os_string()],
            "data root",
        ),
        (vec![os("--data-root"), os("")], "data-root"),
        (
            vec![os("--data-root"), os("/proc/self/nonexistent/x")],
            "data root",
        ),
        (vec![os("--max-upload-bytes"), os("0")], "max_upload_bytes"),
        (
            vec![os("--max-upload-bytes=-5"), os("--port=0")],
            "max-upload-bytes",
        ),
        (
            vec![os("--max-upload-bytes"), os("lots")],
            "max-upload-bytes",
        ),
    ];
    let n = cases.len();
    for (args, needle) in cases {
        let refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        let (ok, err) = standalone(&refs);
        assert!(!ok, "{args:?} was accepted");
        assert!(
            err.contains(needle),
            "{args:?}: the error should name `{needle}`: {err}"
        );
    }
    // node.yaml fields.
    let base = "party_ids: [\"9999\"]\napi: 127.0.0.1:0\ngrpc: 127.0.0.1:0\nroute_table: rt.json\ndata_dir: data\n";
    let yaml_cases = [
        ("data_roots: 5\n", "data_roots"),
        ("data_roots: [[1]]\n", "data_roots"),
        ("max_upload_bytes: -1\n", "max_upload_bytes"),
        ("max_upload_bytes: big\n", "max_upload_bytes"),
        ("data_root: [import]\n", "data_root"),
    ];
    for (extra, needle) in yaml_cases {
        let path = dir.path().join("node.yaml");
        std::fs::write(&path, format!("{base}{extra}")).unwrap();
        let out = fate().args(["node", "-c"]).arg(&path).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{extra:?} was accepted");
        assert!(
            err.contains(needle),
            "{extra:?}: the error should name `{needle}`: {err}"
        );
    }
    println!("hostile config cases: {}", n + yaml_cases.len());
}

/// A node with client authentication on: the CLI signs with FATE_APP_ID and FATE_APP_TOKEN
/// (or `--app-id`/`--app-token`) and is refused without them, naming what to do.
#[test]
fn the_cli_signs_its_requests_for_a_node_with_authentication_on() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start_with(dir.path(), &["--auth", "on"]);
    let admin_file = dir.path().join("admin-app.json");
    let admin: Value =
        serde_json::from_str(&std::fs::read_to_string(&admin_file).unwrap()).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&admin_file).unwrap().permissions().mode();
    assert_eq!(
        mode & 0o077,
        0,
        "the admin file is readable by others: {mode:o}"
    );
    let out = fate()
        .args(["job", "list", "--api", &node.url])
        .env_remove("FATE_APP_ID")
        .env_remove("FATE_APP_TOKEN")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("appId") && err.contains("5001"), "{err}");
    let out = fate()
        .args(["job", "list", "--api", &node.url, "--app-id"])
        .arg(admin["app_id"].as_str().unwrap())
        .args(["--app-token", "wrong"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("5003"));
    // `fate app create` adds an app offline; the CLI signs with it from the environment.
    let made = fate()
        .args(["app", "create", "--json", "--name", "bank_a", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let app: Value = serde_json::from_slice(&made.stdout).unwrap();
    let out = fate()
        .args([
            "toy", "--guest", "9999", "--host", "10000", "--api", &node.url,
        ])
        .env("FATE_APP_ID", app["app_id"].as_str().unwrap())
        .env("FATE_APP_TOKEN", app["app_token"].as_str().unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn query(url: &str, path: &str, job_id: &str) -> Value {
    ureq::get(&format!("{url}{path}"))
        .query("job_id", job_id)
        .call()
        .unwrap()
        .into_json()
        .unwrap()
}

/// SIGTERM (what docker and systemd send) ends a standalone node within its grace time, and
/// the job it was running is recorded as ended by the shutdown, with no task left running.
/// Before, `fate standalone` ignored SIGTERM.
#[test]
fn sigterm_ends_a_standalone_node_and_records_its_jobs_end() {
    let dir = tempfile::tempdir().unwrap();
    // An upload a crash left behind (no job names it) is removed at start.
    let leftover = dir.path().join("uploads/20260101000000000000_1_0.csv");
    std::fs::create_dir_all(leftover.parent().unwrap()).unwrap();
    std::fs::write(&leftover, "id,x\n1,2\n").unwrap();
    let mut node = NodeProcess::start(dir.path());
    assert!(!leftover.exists(), "a crash's upload survived the start");
    let toy = fate()
        .args([
            "toy",
            "--json",
            "--timeout",
            "120",
            "--data-num",
            "4000000",
            "--api",
            &node.url,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let job_id = loop {
        let v: Value = ureq::get(&format!("{}/v2/job/list/query", node.url))
            .call()
            .unwrap()
            .into_json()
            .unwrap();
        let running = v["data"]["data"]
            .as_array()
            .or(v["data"].as_array())
            .and_then(|jobs| jobs.iter().find(|j| j["status"] == "running"))
            .and_then(|j| j["job_id"].as_str().map(String::from));
        if let Some(id) = running {
            break id;
        }
        assert!(std::time::Instant::now() < deadline, "the toy never ran");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let signalled = std::time::Instant::now();
    let term = Command::new("kill")
        .args(["-TERM", &node.child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = loop {
        if let Some(s) = node.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            signalled.elapsed() < std::time::Duration::from_secs(30),
            "the node still runs 30 s after SIGTERM"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(status.success(), "the node exited with {status}");
    drop(toy);
    // Restarted, the node shows the job ended by the shutdown, not by the restart.
    let node = NodeProcess::start(dir.path());
    let job = &query(&node.url, "/v2/job/query", &job_id)["data"][0];
    assert!(
        ["canceled", "failed"].contains(&job["status"].as_str().unwrap_or("")),
        "{job}"
    );
    let tasks = query(&node.url, "/v2/job/task/query", &job_id);
    let tasks = tasks["data"].as_array().unwrap();
    assert!(!tasks.is_empty());
    for t in tasks {
        let s = t["status"].as_str().unwrap_or("");
        assert!(
            ["canceled", "failed", "success"].contains(&s),
            "task left {s}: {t}"
        );
    }
    let text = job.to_string();
    assert!(
        text.contains("shut down"),
        "the job does not say it was shut down: {job}"
    );
}

mod board;
#[allow(dead_code)]
#[path = "../../fate-computing-spark/tests/server/mod.rs"]
mod spark_server;

/// The metrics a `job submit --wait --json` printed, as `task/data_set/metric -> value`.
fn metrics_of(out: &str) -> std::collections::BTreeMap<String, f64> {
    let v: Value = serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["status"], "success", "{out}");
    v["metrics"]
        .as_array()
        .unwrap_or_else(|| panic!("no metrics: {out}"))
        .iter()
        .filter_map(|m| {
            let key = format!("{}/{}/{}", m["task"], m["data_set"], m["metric"]);
            m["value"].as_f64().map(|v| (key, v))
        })
        .collect()
}

/// The Spark tests share one server and count its jobs and failed tasks (Spark's REST API is
/// per application, not per session): they run one at a time, or one counts another's work.
static SPARK_SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// FATE's breast and default_credit PSI + CoordinatedLR and PSI + HeteroSecureBoost, and the toy, with every
/// party computing on a real Spark (Spark Connect, `local[2]`, the kernels run by this `fate`
/// binary on the executors): the same metrics as a node on the local engine, to 1e-6, and
/// Spark's own REST API shows that the work ran there.
#[test]
fn jobs_on_spark_give_the_local_engines_numbers() {
    let _serial = SPARK_SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let spark = spark_server::spark();
    let (local_dir, spark_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let local = NodeProcess::start(local_dir.path());
    let url = spark.url();
    let on_spark = NodeProcess::start_with(
        spark_dir.path(),
        &[
            "--computing-engine",
            "spark",
            "--spark-connect",
            &url,
            "--spark-executor",
            env!("CARGO_BIN_EXE_fate"),
        ],
    );
    let before = spark.succeeded_jobs();
    let out = run_ok(
        &["toy", "--guest", "9999", "--host", "10000", "--json"],
        &on_spark.url,
    );
    assert!(out.contains("\"success\""), "{out}");
    let after_toy = spark.succeeded_jobs();
    assert!(
        after_toy > before,
        "the toy ran no Spark job: {before} -> {after_toy}"
    );
    for api in [&local.url, &on_spark.url] {
        for (data, rows) in [("breast", "569 rows"), ("default_credit", "30000 rows")] {
            for side in ["guest", "host"] {
                let conf = repo().join(format!("examples/upload/{data}_hetero_{side}.json"));
                let out = run_ok(&["data", "upload", "-c", conf.to_str().unwrap()], api);
                assert!(out.contains(rows), "{out}");
            }
        }
    }
    // FATE's breast and default_credit jobs (issue 12's must-hold), each on both nodes.
    for pipeline in [
        "breast_psi_lr",
        "breast_psi_sbt",
        "default_credit_psi_lr",
        "default_credit_psi_sbt",
    ] {
        let dag = repo().join(format!("examples/pipeline/{pipeline}.yaml"));
        let submit = |api: &str| {
            run_ok(
                &[
                    "job",
                    "submit",
                    "-c",
                    dag.to_str().unwrap(),
                    "--wait",
                    "--json",
                ],
                api,
            )
        };
        let started = std::time::Instant::now();
        let want = metrics_of(&submit(&local.url));
        let local_took = started.elapsed();
        let started = std::time::Instant::now();
        let got = metrics_of(&submit(&on_spark.url));
        eprintln!(
            "{pipeline}: local {:.1} s, spark {:.1} s",
            local_took.as_secs_f64(),
            started.elapsed().as_secs_f64()
        );
        assert!(want.keys().any(|k| k.contains("auc")), "{want:?}");
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>()
        );
        for (k, w) in &want {
            assert!(
                (got[k] - w).abs() <= 1e-6,
                "{pipeline} {k}: spark {} local {w}",
                got[k]
            );
        }
    }
    assert!(spark.succeeded_jobs() > after_toy);
}

/// Per-job engines on one node that has the local engine and a Spark Connect server: breast
/// PSI + CoordinatedLR with `computing_engine: STANDALONE` runs no Spark job at all, and the
/// same DAG with the guest on SPARK (a session setting of its own, and a cluster setting equal
/// to the server's) gives the same metrics to 1e-6 while Spark's REST API shows jobs; a
/// `spark_run` contradicting the cluster is refused at submit naming the party and the field.
#[test]
fn a_job_picks_each_partys_engine_on_a_node_with_spark() {
    let _serial = SPARK_SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let spark = spark_server::spark();
    let dir = tempfile::tempdir().unwrap();
    let url = spark.url();
    let node = NodeProcess::start_with(
        dir.path(),
        &[
            "--spark-connect",
            &url,
            "--spark-executor",
            env!("CARGO_BIN_EXE_fate"),
        ],
    );
    for side in ["guest", "host"] {
        let conf = repo().join(format!("examples/upload/breast_hetero_{side}.json"));
        let out = run_ok(&["data", "upload", "-c", conf.to_str().unwrap()], &node.url);
        assert!(out.contains("569 rows"), "{out}");
    }
    let yaml = std::fs::read_to_string(repo().join("examples/pipeline/breast_psi_lr.yaml"))
        .unwrap()
        .replace("dag:\n", "dag:\n  conf: {computing_engine: STANDALONE}\n");
    let with_guest_conf = |conf: &str| {
        let text = yaml.replace(
            "    guest_9999:\n",
            &format!("    guest_9999:\n      conf: {conf}\n"),
        );
        let path = dir.path().join("dag.yaml");
        std::fs::write(&path, text).unwrap();
        path
    };
    let submit = |dag: &Path| {
        fate()
            .args(["job", "submit", "--wait", "--json", "-c"])
            .arg(dag)
            .args(["--api", &node.url])
            .output()
            .unwrap()
    };
    let before = spark.succeeded_jobs();
    let local = submit(&with_guest_conf("{}"));
    let want = metrics_of(&String::from_utf8_lossy(&local.stdout));
    assert!(want.keys().any(|k| k.contains("auc")), "{want:?}");
    assert_eq!(
        spark.succeeded_jobs(),
        before,
        "parties on STANDALONE ran Spark jobs"
    );

    let mixed = submit(&with_guest_conf(
        "{computing_engine: SPARK, engine_run: {master: 'local[2,4]', \
         conf: {spark.sql.shuffle.partitions: 3}}}",
    ));
    let got = metrics_of(&String::from_utf8_lossy(&mixed.stdout));
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    for (k, w) in &want {
        assert!(
            (got[k] - w).abs() <= 1e-6,
            "{k}: guest on spark {} local {w}",
            got[k]
        );
    }
    let after = spark.succeeded_jobs();
    assert!(
        after > before,
        "the guest ran no Spark job: {before} -> {after}"
    );

    let refused = submit(&with_guest_conf(
        "{computing_engine: spark, engine_run: {master: yarn}}",
    ));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&refused.stdout),
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(!refused.status.success(), "{text}");
    for words in [
        "dag.party_tasks.guest_9999.conf.engine_run.master",
        "(party guest 9999)",
        "fixed by the Spark cluster",
    ] {
        assert!(text.contains(words), "{words:?} not in {text}");
    }
    assert_eq!(spark.succeeded_jobs(), after);
}

/// Starts `fate standalone` on `data_dir` with `extra` options, waits for the line naming its
/// API, stops it and returns (that line, its stderr).
fn standalone_briefly(data_dir: &Path, extra: &[&str]) -> (String, String) {
    let mut child = fate()
        .env("FATE_LOG", "info")
        .args(["standalone", "--port", "0", "--data-dir"])
        .arg(data_dir)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("API at http://") {
        line.clear();
        if out.read_line(&mut line).unwrap() == 0 {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (line, err)
}

/// A node's log goes to `<data-dir>/logs/fate.log`, without colour codes, instead of flooding
/// the terminal of `fate standalone &` (issue 11); `--log-stderr` keeps it on stderr, without
/// colour codes when stderr is not a terminal.
#[test]
fn standalone_logs_to_a_file_under_the_data_dir_without_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let (line, err) = standalone_briefly(dir.path(), &[]);
    let log = dir.path().join("logs/fate.log");
    assert!(line.contains("API at http://"), "not started: {line}{err}");
    assert!(
        line.contains(&log.display().to_string()),
        "the start line does not name the log file: {line}"
    );
    let text = std::fs::read_to_string(&log)
        .unwrap_or_else(|e| panic!("no {}: {e}; stderr: {err}", log.display()));
    assert!(text.contains("Standalone node started"), "{text}");
    assert!(
        !text.contains("\x1b["),
        "colour codes in the log file: {text:?}"
    );
    assert!(
        !err.contains("Standalone node started"),
        "the log also went to stderr: {err}"
    );

    let other = tempfile::tempdir().unwrap();
    let (line, err) = standalone_briefly(other.path(), &["--log-stderr"]);
    assert!(line.contains("API at http://"), "not started: {line}{err}");
    assert!(err.contains("Standalone node started"), "{err}");
    assert!(!err.contains("\x1b["), "colour codes on a pipe: {err:?}");
    assert!(!other.path().join("logs/fate.log").exists());
}

/// The logs `fate deploy local` keeps for every node and router hold no colour codes.
#[test]
fn deploy_local_logs_hold_no_colour_codes() {
    let _serial = common::SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = common::Deployment::start("9999,10000", &[]);
    for party in ["9999", "10000"] {
        for file in ["node.log", "router.log"] {
            let path = d.path().join(party).join(file);
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(!text.trim().is_empty(), "{} is empty", path.display());
            assert!(
                !text.contains("\x1b["),
                "colour codes in {}: {text:?}",
                path.display()
            );
        }
    }
}

/// `--api 127.0.0.1:9380` (no scheme, as FATE's `flow init --ip --port` names a node) means
/// `http://`; it failed with `RelativeUrlWithoutBase`.
#[test]
fn an_api_address_without_a_scheme_is_http() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(dir.path());
    let bare = node.url.trim_start_matches("http://").to_string();
    let out = run_ok(&["job", "list", "--json"], &bare);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["count"], 0, "{out}");
    let out = run_ok(&["toy", "--json"], &format!("{bare}/"));
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["status"], "success", "{out}");
}

/// `fate toy` reads `FATE_API` as every other client command does (it ran in process instead),
/// and takes FATE's `-gid`/`-hid` (`flow test toy -gid 9999 -hid 10000`), which were refused.
#[test]
fn toy_honours_fate_api_and_fates_gid_hid() {
    let out = fate()
        .args(["toy", "-gid", "9999", "-hid=10000"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("secure_sum, it is 2000.0"), "{stdout}");

    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(dir.path());
    let out = fate()
        .args(["toy", "-gid", "9999", "-hid", "10000", "--json"])
        .env("FATE_API", &node.url)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["status"], "success", "{stdout}");
    let job_id = v["job_id"].as_str().unwrap();
    let jobs = query(&node.url, "/v2/job/query", job_id);
    let parties: Vec<&str> = jobs["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|j| j["party_id"].as_str())
        .collect();
    assert!(
        parties.contains(&"9999") && parties.contains(&"10000"),
        "the toy did not run on the node named by FATE_API: {jobs}"
    );
}

/// A second node on a data dir another node holds says so once, naming the dir (it said
/// `Database already open` twice); a start that fails (a bad option value, a port in use)
/// removes the data dir it created, and keeps one that was there.
#[test]
fn a_held_data_dir_is_named_and_a_failed_start_leaves_no_new_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let held = dir.path().join("held");
    let _node = NodeProcess::start(&held);
    let standalone = |data: &Path, extra: &[&str]| {
        let port = if extra.contains(&"--port") {
            &[][..]
        } else {
            &["--port", "0"][..]
        };
        let out = fate()
            .arg("standalone")
            .args(port)
            .arg("--data-dir")
            .arg(data)
            .args(extra)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{extra:?} started");
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let err = standalone(&held, &[]);
    assert!(
        err.contains("another fate node (pid ")
            && err.contains(&format!("holds the data dir {}", held.display())),
        "{err}"
    );
    assert_eq!(err.matches("another fate node").count(), 1, "{err}");
    assert!(!err.contains("Database already open"), "{err}");
    assert!(
        held.join("fate_flow.sqlite").exists(),
        "the held dir was touched"
    );

    let fresh = dir.path().join("fresh");
    let err = standalone(&fresh, &["--max-upload-bytes", "0"]);
    assert!(err.contains("max_upload_bytes"), "{err}");
    assert!(!fresh.exists(), "a failed start left {}", fresh.display());
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let err = standalone(&fresh, &["--port", &port]);
    assert!(err.contains("cannot listen"), "{err}");
    assert!(!fresh.exists(), "a failed start left {}", fresh.display());
    // A data dir that was there stays, with what it held.
    std::fs::create_dir_all(&fresh).unwrap();
    std::fs::write(fresh.join("keep"), "x").unwrap();
    let err = standalone(&fresh, &["--port", &port]);
    assert!(err.contains("cannot listen"), "{err}");
    assert!(fresh.join("keep").exists());
}

/// A FATE 1.x DSL given as `-c` (it said `missing field dag`) is refused with a hint to pass it
/// as `-d` with its conf as `-c`; DSL and conf swapped are named as such.
#[test]
fn a_dsl_given_as_the_conf_hints_at_dsl_and_conf() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(dir.path());
    let examples = repo().join("examples/dsl");
    let dsl = examples.join("secure_add_dsl.json");
    let conf = examples.join("secure_add_conf.json");
    let submit = |args: &[&Path]| {
        let mut c = fate();
        c.args(["job", "submit", "--api", &node.url]);
        for (flag, path) in ["-c", "-d"].iter().zip(args) {
            c.arg(flag).arg(path);
        }
        let out = c.output().unwrap();
        assert!(!out.status.success(), "{args:?} was accepted");
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let err = submit(&[&dsl]);
    assert!(
        err.contains("1.x DSL")
            && err.contains(&format!("-d {}", dsl.display()))
            && err.contains("-c"),
        "{err}"
    );
    let err = submit(&[&dsl, &conf]);
    assert!(err.contains("swap"), "{err}");
    let jobs = run_ok(&["job", "list", "--json"], &node.url);
    let v: Value = serde_json::from_str(&jobs).unwrap();
    assert_eq!(v["count"], 0, "{jobs}");
}

/// `job list --limit 2` shows two jobs (it counted party rows: one toy is two rows); `job logs`
/// prints the scheduler's and the tasks' lines in time order, and a task the job does not have
/// is an error naming it (it printed nothing).
#[test]
fn job_list_counts_jobs_and_job_logs_are_in_time_order() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(dir.path());
    let api = node.url.as_str();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let out = run_ok(&["toy", "--json", "--data-num", "64"], api);
        let v: Value = serde_json::from_str(out.trim()).unwrap();
        ids.push(v["job_id"].as_str().unwrap().to_string());
    }
    let out = run_ok(&["job", "list", "--limit", "2", "--json"], api);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["count"], 2, "{out}");
    let mut listed: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|j| j["job_id"].as_str())
        .collect();
    listed.dedup();
    assert_eq!(listed.len(), 2, "{out}");
    let out = run_ok(&["job", "list", "--limit", "2"], api);
    let shown: std::collections::BTreeSet<&str> = out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| ids.iter().any(|id| id == w))
        .collect();
    assert_eq!(shown.len(), 2, "{out}");

    let out = run_ok(&["job", "logs", "-j", &ids[0]], api);
    let stamps: Vec<&str> = out
        .lines()
        .filter_map(|l| l.split_once("] [").and_then(|(_, r)| r.split_once(']')))
        .map(|(stamp, _)| stamp)
        .collect();
    assert!(stamps.len() > 3, "{out}");
    assert!(
        stamps.windows(2).all(|w| w[0] <= w[1]),
        "job logs out of time order:\n{out}"
    );
    assert!(out.contains("toy_example finished"), "{out}");
    let err = fate()
        .args([
            "job",
            "logs",
            "-j",
            &ids[0],
            "--task-name",
            "no_such_task",
            "--api",
            api,
        ])
        .output()
        .unwrap();
    assert!(!err.status.success());
    let text = String::from_utf8_lossy(&err.stderr);
    assert!(
        text.contains("no_such_task") && text.contains("toy_example_0"),
        "{text}"
    );
}

/// The id of the first running job at the node, waiting up to 60 s.
fn running_job(url: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let v: Value = ureq::get(&format!("{url}/v2/job/list/query"))
            .call()
            .unwrap()
            .into_json()
            .unwrap();
        if let Some(id) = v["data"]["data"]
            .as_array()
            .and_then(|jobs| jobs.iter().find(|j| j["status"] == "running"))
            .and_then(|j| j["job_id"].as_str())
        {
            return id.to_string();
        }
        assert!(std::time::Instant::now() < deadline, "no job ran");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// After `fate job stop`, `fate job rerun` reruns the job (a stopped job is canceled and
/// rerunnable, as in FATE); it failed saying the job was running, since the stop had only
/// been requested.
#[test]
fn a_stopped_job_can_be_rerun() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(dir.path());
    let api = node.url.as_str();
    let mut toy = fate()
        .args(["toy", "--json", "--timeout", "120", "--data-num", "4000000"])
        .args(["--api", api])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let job_id = running_job(api);
    let out = run_ok(&["job", "stop", "-j", &job_id], api);
    assert!(out.contains(&job_id), "{out}");
    let job = &query(api, "/v2/job/query", &job_id)["data"];
    for party in job.as_array().unwrap() {
        assert_eq!(party["status"], "canceled", "after the stop: {job}");
    }
    let out = run_ok(&["job", "rerun", "-j", &job_id], api);
    assert!(out.contains("rerun started"), "{out}");
    let status = query(api, "/v2/job/query", &job_id)["data"][0]["status"].clone();
    assert!(
        ["waiting", "running", "success"].contains(&status.as_str().unwrap_or("")),
        "after the rerun: {status}"
    );
    // Through the REST API as fate_client does it (`flow job stop` then `flow job rerun`, no
    // polling between): the stop answers once the job has ended, so the rerun is accepted.
    // Before, `/v2/job/stop` answered while the runner was still ending the job and the
    // rerun was refused as running.
    let rerun_job = running_job(api);
    assert_eq!(rerun_job, job_id);
    let post = |path: &str| -> Value {
        ureq::post(&format!("{api}{path}"))
            .send_json(serde_json::json!({"job_id": job_id}))
            .unwrap()
            .into_json()
            .unwrap()
    };
    let stopped = post("/v2/job/stop");
    assert_eq!(stopped["code"], 0, "{stopped}");
    let rerun = post("/v2/job/rerun");
    assert_eq!(rerun["code"], 0, "rerun right after the REST stop: {rerun}");
    // End the rerun too, so the node stops at once.
    let _ = fate()
        .args(["job", "stop", "-j", &job_id, "--api", api])
        .output();
    let _ = toy.kill();
    let _ = toy.wait();
}

fn pid_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| !stat.contains(") Z "))
}

/// `fate deploy local --stop` says which processes were already dead ("not running"; it
/// counted them as stopped) and also stops a node started again by hand on the deployment's
/// node.yaml; the generated dir, which holds the CA key, is ignored by git.
#[test]
fn deploy_local_stop_names_dead_and_restarted_processes_and_keys_stay_out_of_git() {
    let _serial = common::SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = common::Deployment::start("9999,10000", &["--tls"]);
    assert!(d.path().join("certs/ca.key").exists());
    let ignore = std::fs::read_to_string(d.path().join(".gitignore")).unwrap();
    assert!(ignore.lines().any(|l| l.trim() == "*"), "{ignore}");
    let ignore = std::fs::read_to_string(d.path().join("certs/.gitignore")).unwrap();
    assert!(ignore.lines().any(|l| l.trim() == "*"), "{ignore}");

    let router = d.pid("router of 10000");
    let node = d.pid("node of 10000");
    for (pid, sig) in [(router, "-KILL"), (node, "-TERM")] {
        assert!(
            Command::new("kill")
                .args([sig, &pid.to_string()])
                .status()
                .unwrap()
                .success()
        );
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while pid_alive(router) || pid_alive(node) {
        assert!(
            std::time::Instant::now() < deadline,
            "the killed processes live on"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // The node of 10000 started again by hand, as after a crash.
    let mut again = fate()
        .args(["node", "-c"])
        .arg(d.node_config("10000"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("{}/v2/job/list/query", d.api("10000"));
    while ureq::get(&url).call().is_err() {
        assert!(
            again.try_wait().unwrap().is_none(),
            "the node started by hand exited"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "the node started by hand did not answer"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let out = fate()
        .args(["deploy", "local", "--stop", "--dir"])
        .arg(d.path())
        .output()
        .unwrap();
    let text = common::text(&out);
    assert!(out.status.success(), "{text}");
    let line = |name: &str, pid: u32| {
        text.lines()
            .find(|l| l.starts_with(&format!("{name} (pid {pid}")))
            .unwrap_or_else(|| panic!("no line for {name} {pid}: {text}"))
            .to_string()
    };
    assert!(
        line("router of 10000", router).ends_with(": not running"),
        "{text}"
    );
    assert!(
        line("node of 10000", node).ends_with(": not running"),
        "{text}"
    );
    assert!(
        line("router of 9999", d.pid("router of 9999")).ends_with(": stopped"),
        "{text}"
    );
    assert!(
        line("node of 9999", d.pid("node of 9999")).ends_with(": stopped"),
        "{text}"
    );
    let by_hand = line("node of 10000", again.id());
    assert!(
        by_hand.ends_with(": stopped") && by_hand.contains("by hand"),
        "{text}"
    );
    assert!(text.contains("2 not running"), "{text}");
    let status = loop {
        if let Some(s) = again.try_wait().unwrap() {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline + std::time::Duration::from_secs(15),
            "the node started by hand still runs"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(status.success() || status.code().is_none(), "{status}");
}

/// The README's "Five minutes to a model", command for command, from a directory outside the
/// repository (`FATE_API` stands in for the default port): upload, train breast PSI + LR and
/// see its AUC, predict with the trained model, download the predictions, stop the node.
#[test]
fn five_minutes_to_a_model_from_any_directory() {
    let cwd = tempfile::tempdir().unwrap();
    let repo = repo().canonicalize().unwrap();
    let ex = |p: &str| repo.join(p).to_str().unwrap().to_string();
    let mut cmd = fate();
    cmd.args(["standalone", "--port", "0", "--data-dir", "./fate-data"])
        .current_dir(cwd.path());
    let mut node = NodeProcess::spawn(cmd);
    let run = |args: &[&str]| -> String {
        let out = fate()
            .args(args)
            .env("FATE_API", &node.url)
            .current_dir(cwd.path())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "fate {args:?}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    let job_id = |out: &str| -> String {
        out.lines()
            .find_map(|l| {
                l.split_whitespace()
                    .next()
                    .filter(|w| w.len() == 21 && w.chars().all(|c| c.is_ascii_digit()))
            })
            .unwrap_or_else(|| panic!("no job id: {out}"))
            .to_string()
    };
    for side in ["guest", "host"] {
        let conf = ex(&format!("examples/upload/breast_hetero_{side}.json"));
        let out = run(&["data", "upload-file", "-c", &conf]);
        assert!(out.contains("569 rows"), "{out}");
    }
    let out = run(&[
        "job",
        "submit",
        "-c",
        &ex("examples/pipeline/breast_psi_lr.yaml"),
        "--wait",
    ]);
    assert!(
        out.lines().any(|l| l.split_whitespace().collect::<Vec<_>>()
            == ["lr_0", "train_set", "auc", "0.994411"]),
        "{out}"
    );
    let train = job_id(&out);
    let out = run(&[
        "job",
        "submit",
        "-c",
        &ex("examples/pipeline/breast_psi_lr_predict.yaml"),
        "--model-id",
        &train,
        "--wait",
    ]);
    let predict = job_id(&out);
    assert_ne!(predict, train);
    let out = run(&[
        "output",
        "data",
        "-j",
        &predict,
        "-r",
        "guest",
        "-p",
        "9999",
        "-t",
        "lr_0",
        "--download",
        "./predicted",
    ]);
    let csv = std::fs::read_to_string(cwd.path().join(out.lines().next().unwrap().trim())).unwrap();
    let mut lines = csv.lines();
    let header = lines.next().unwrap();
    assert!(header.contains("predict_score"), "{header}");
    assert_eq!(lines.clone().count(), 569);
    assert!(lines.all(|l| l.ends_with(",test_set")), "{csv:.300}");
    // Stop: `kill %1` sends SIGTERM.
    let term = Command::new("kill")
        .args(["-TERM", &node.child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = node.child.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(cwd.path().join("fate-data/logs/fate.log").exists());
}

/// An executor process killed (SIGKILL) mid-task while PSI runs on Spark: Spark retries the
/// task (as a cluster does, `local[2,4]`), the job succeeds, the intersection is whole, and
/// Spark's REST API records the failed attempt.
#[test]
fn an_executor_killed_mid_task_is_retried_and_the_job_succeeds() {
    let _serial = SPARK_SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let spark = spark_server::spark();
    let dir = tempfile::tempdir().unwrap();
    let url = spark.url();
    let node = NodeProcess::start_with(
        &dir.path().join("node"),
        &[
            "--computing-engine",
            "spark",
            "--spark-connect",
            &url,
            "--spark-executor",
            env!("CARGO_BIN_EXE_fate"),
        ],
    );
    let rows = 20_000u64;
    let (mut guest, mut host) = (String::from("id,y,x0\n"), String::from("id,x1\n"));
    for i in 0..rows {
        guest.push_str(&format!("id{i},{},{}.5\n", i % 2, i % 7));
        host.push_str(&format!("id{i},{}.25\n", i % 5));
    }
    for (side, csv, meta) in [
        (
            "guest",
            &guest,
            r#"{"delimiter": ",", "label_name": "y", "match_id_name": "id"}"#,
        ),
        (
            "host",
            &host,
            r#"{"delimiter": ",", "match_id_name": "id"}"#,
        ),
    ] {
        std::fs::write(dir.path().join(format!("{side}.csv")), csv).unwrap();
        let conf = dir.path().join(format!("{side}.json"));
        std::fs::write(
            &conf,
            format!(
                r#"{{"file": "{side}.csv", "head": true, "partitions": 4, "extend_sid": true,
                    "meta": {meta}, "namespace": "experiment", "name": "kill_{side}"}}"#
            ),
        )
        .unwrap();
        let out = run_ok(
            &["data", "upload-file", "-c", conf.to_str().unwrap()],
            &node.url,
        );
        assert!(out.contains(&format!("{rows} rows")), "{out}");
    }
    let dag = dir.path().join("psi.yaml");
    std::fs::write(
        &dag,
        r#"
dag:
  parties:
  - {party_id: ['9999'], role: guest}
  - {party_id: ['10000'], role: host}
  party_tasks:
    guest_9999:
      parties: [{party_id: ['9999'], role: guest}]
      tasks: {reader_0: {parameters: {name: kill_guest, namespace: experiment}}}
    host_10000:
      parties: [{party_id: ['10000'], role: host}]
      tasks: {reader_0: {parameters: {name: kill_host, namespace: experiment}}}
  stage: train
  tasks:
    reader_0: {component_ref: reader, parameters: {}}
    psi_0:
      component_ref: psi
      dependent_tasks: [reader_0]
      inputs:
        data:
          input_data:
            task_output_artifact:
              output_artifact_key: output_data
              producer_task: reader_0
              parties: [{party_id: ['9999'], role: guest}, {party_id: ['10000'], role: host}]
      parameters: {}
schema_version: 2.2.0
"#,
    )
    .unwrap();
    let failed_before = spark.failed_tasks();
    let out = run_ok(
        &["job", "submit", "-c", dag.to_str().unwrap(), "--json"],
        &node.url,
    );
    let v: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    let job_id = v["job_id"]
        .as_str()
        .unwrap_or_else(|| panic!("{out}"))
        .to_string();
    // Kill the first kernel process seen (they run for a fraction of a second each).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let killed = loop {
        let found = Command::new("pgrep")
            .args(["-f", "spark-executor --op"])
            .output()
            .unwrap();
        let pids = String::from_utf8_lossy(&found.stdout).to_string();
        if let Some(pid) = pids.split_whitespace().next() {
            let status = Command::new("kill").args(["-9", pid]).status().unwrap();
            if status.success() {
                break pid.to_string();
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no executor process was seen in 120 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    let out = run_ok(&["job", "wait", "-j", &job_id, "--json"], &node.url);
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(
        v["status"], "success",
        "after killing executor {killed}: {out}"
    );
    assert!(
        spark.failed_tasks() > failed_before,
        "Spark recorded no failed task after executor {killed} was killed"
    );
    // The whole intersection survived the retry.
    let m = run_ok(
        &[
            "output", "metrics", "-j", &job_id, "-r", "guest", "-p", "9999", "-t", "psi_0",
            "--json",
        ],
        &node.url,
    );
    assert!(
        m.contains("intersect_count") && m.contains(&format!("{rows}")),
        "{m}"
    );
}

/// `fate k8s render` of KubeFATE's cluster.yaml: the examples under `deploy/k8s/examples`
/// (two parties in direct mode with mutual TLS; an exchange and two parties behind it) give
/// manifests that `kubernetes-validate --strict` (PyPI) accepts file by file and that
/// `kubectl kustomize` builds (and validate again); the parties' route tables point at each
/// other's NodePorts; a wrong field is an error naming it. No cluster runs here.
mod k8s {
    use super::*;

    /// The validator, pinned: the cache key of its venv.
    const VALIDATE: &str = "kubernetes-validate==1.37.0";

    fn examples() -> PathBuf {
        repo().join("deploy/k8s/examples")
    }

    /// `kubernetes-validate` in a venv under `${FATE_CACHE:-$HOME/.cache/fate-rs}/venv-k8s-1.37.0`,
    /// made once (built beside its name and renamed into place, as the fate_client venv).
    /// The test fails, not skips, when it cannot be made.
    fn validator() -> PathBuf {
        let root = match std::env::var_os("FATE_CACHE") {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => PathBuf::from(std::env::var_os("HOME").expect("HOME or FATE_CACHE"))
                .join(".cache/fate-rs"),
        };
        let dir = root.join(format!("venv-k8s-{}", VALIDATE.rsplit('=').next().unwrap()));
        let python = dir.join("bin/python");
        if python.exists() {
            return python;
        }
        std::fs::create_dir_all(&root).unwrap();
        let building = root.join(format!(".venv-k8s-building-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&building);
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&building)
            .status()
            .expect("python3 on PATH")
            .success();
        assert!(ok, "python3 -m venv failed");
        let out = Command::new(building.join("bin/python"))
            .args([
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                VALIDATE,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pip install {VALIDATE} failed (the manifests cannot be validated): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if std::fs::rename(&building, &dir).is_err() {
            assert!(python.exists(), "cannot place {dir:?}");
            let _ = std::fs::remove_dir_all(&building);
        }
        python
    }

    fn render(file: &Path, out: &Path, ca: &Path) -> Value {
        let o = fate()
            .args(["k8s", "render", "--json", "-f"])
            .arg(file)
            .arg("-o")
            .arg(out)
            .arg("--ca-dir")
            .arg(ca)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "render {file:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        serde_json::from_slice(&o.stdout).unwrap()
    }

    /// `kubernetes-validate --strict` over `files`; panics with its report when one fails.
    fn validate(files: &[PathBuf]) {
        let o = Command::new(validator())
            .args(["-m", "kubernetes_validate", "--strict", "--quiet"])
            .args(files)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "kubernetes-validate --strict refused: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }

    /// Validates every manifest of `dir`, then `kubectl kustomize dir`'s output.
    fn check_dir(dir: &Path) -> Vec<Value> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.extension().is_some_and(|e| e == "yaml")
                    && p.file_name().unwrap() != "kustomization.yaml"
            })
            .collect();
        files.sort();
        assert!(files.len() >= 4, "{dir:?} holds {files:?}");
        validate(&files);
        let o = Command::new("kubectl")
            .arg("kustomize")
            .arg(dir)
            .output()
            .expect("kubectl (for `kubectl kustomize`) on PATH");
        assert!(
            o.status.success(),
            "kubectl kustomize {dir:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let built = dir.with_extension("built.yaml");
        std::fs::write(&built, &o.stdout).unwrap();
        validate(std::slice::from_ref(&built));
        // Every document, as kustomize built them.
        let text = String::from_utf8(o.stdout).unwrap();
        let docs: Vec<Value> = text
            .split("\n---\n")
            .map(|d| serde_yaml_ng::from_str(d).unwrap())
            .collect();
        assert_eq!(docs.len(), files.len(), "kustomize dropped a resource");
        docs
    }

    fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
        docs.iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name}"))
    }

    fn route_table(docs: &[Value]) -> Value {
        let cm = find(docs, "ConfigMap", "router");
        serde_json::from_str(cm["data"]["route_table.json"].as_str().unwrap()).unwrap()
    }

    fn router_node_port(docs: &[Value]) -> u64 {
        find(docs, "Service", "router")["spec"]["ports"][0]["nodePort"]
            .as_u64()
            .unwrap()
    }

    #[test]
    fn kubefate_cluster_yamls_render_to_manifests_that_validate() {
        let tmp = tempfile::tempdir().unwrap();
        let ca = tmp.path().join("ca");
        // Direct mode, mutual TLS from one CA.
        let mut direct = BTreeMapOf::new();
        for party in ["9999", "10000"] {
            let out = tmp.path().join(format!("direct-{party}"));
            let file = examples().join(format!("direct/party-{party}.yaml"));
            let summary = render(&file, &out, &ca);
            assert_eq!(summary["party_id"], party);
            let not_needed: Vec<&str> = summary["not_needed"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["module"].as_str().unwrap())
                .collect();
            assert!(not_needed.contains(&"clustermanager"), "{summary}");
            direct.insert(party, check_dir(&out));
        }
        for (me, peer) in [("9999", "10000"), ("10000", "9999")] {
            let table = route_table(&direct[me]);
            let hop = &table["route_table"][peer]["default"][0];
            assert_eq!(
                hop["port"].as_u64().unwrap(),
                router_node_port(&direct[peer]),
                "{me}'s route to {peer} is not {peer}'s router NodePort: {table}"
            );
            assert_eq!(hop["is_secure"], true);
            assert_eq!(table["route_table"][me]["fateflow"][0]["ip"], "node");
            assert_eq!(table["permission"]["default_allow"], false);
            // The node's own table: everything through its router's Service.
            let node_cm = find(&direct[me], "ConfigMap", "node");
            let node_table: Value =
                serde_json::from_str(node_cm["data"]["node_route_table.json"].as_str().unwrap())
                    .unwrap();
            assert_eq!(
                node_table["route_table"]["default"]["default"][0]["ip"],
                "router"
            );
            let node_yaml: Value =
                serde_yaml_ng::from_str(node_cm["data"]["node.yaml"].as_str().unwrap()).unwrap();
            assert_eq!(node_yaml["party_ids"][0], me);
            assert_eq!(node_yaml["tls"]["cert"], format!("/tls/{me}.crt"));
            // Keys only in the Secret, and never the CA's.
            for d in &direct[me] {
                let text = serde_json::to_string(d).unwrap();
                let is_tls_secret = d["kind"] == "Secret" && d["metadata"]["name"] == "tls";
                assert_eq!(
                    text.contains("PRIVATE KEY"),
                    is_tls_secret,
                    "{} {}",
                    d["kind"],
                    d["metadata"]["name"]
                );
            }
            let ca_key = std::fs::read_to_string(ca.join("ca.key")).unwrap();
            let secret = serde_json::to_string(find(&direct[me], "Secret", "tls")).unwrap();
            let ca_body = ca_key.lines().nth(1).unwrap();
            assert!(!secret.contains(ca_body), "the CA key is in {me}'s Secret");
        }
        // 9999 deploys KubeFATE's MySQL; 10000 uses an external one: the URL with its
        // password percent-encoded is in a Secret, the node reads it from there.
        let db = find(&direct["10000"], "Secret", "database");
        assert_eq!(
            db["stringData"]["url"],
            "mysql://fate:s3cret%3Awith%40chars@mysql.db.example.com:3306/fate_flow"
        );
        find(&direct["9999"], "Deployment", "mysql");
        find(&direct["9999"], "PersistentVolumeClaim", "node-data");
        let node = find(&direct["9999"], "Deployment", "node");
        let env = &node["spec"]["template"]["spec"]["containers"][0]["env"];
        assert!(
            env.as_array()
                .unwrap()
                .iter()
                .any(|e| e["name"] == "FATE_DATABASE_URL"
                    && e["valueFrom"]["secretKeyRef"]["name"] == "database"),
            "{env}"
        );
        let board = find(&direct["10000"], "Ingress", "fateboard");
        assert_eq!(
            board["spec"]["rules"][0]["host"],
            "10000.fateboard.fate.org"
        );
        assert_eq!(
            board["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"],
            "node"
        );

        // The exchange and two parties behind it.
        let ex_out = tmp.path().join("exchange");
        render(&examples().join("exchange/exchange.yaml"), &ex_out, &ca);
        let ex = check_dir(&ex_out);
        assert!(
            !ex.iter().any(|d| d["metadata"]["name"] == "node"),
            "an exchange has no node"
        );
        let ex_table = route_table(&ex);
        for party in ["9999", "10000"] {
            let out = tmp.path().join(format!("behind-{party}"));
            render(
                &examples().join(format!("exchange/party-{party}.yaml")),
                &out,
                &ca,
            );
            let docs = check_dir(&out);
            let table = route_table(&docs);
            assert_eq!(
                table["route_table"]["default"]["default"][0]["port"]
                    .as_u64()
                    .unwrap(),
                router_node_port(&ex),
                "{party} does not route to the exchange's NodePort: {table}"
            );
            assert_eq!(table["permission"]["default_allow"], true);
            assert_eq!(
                ex_table["route_table"][party]["default"][0]["port"]
                    .as_u64()
                    .unwrap(),
                router_node_port(&docs),
                "the exchange does not route {party} to its NodePort: {ex_table}"
            );
        }
    }

    type BTreeMapOf = std::collections::BTreeMap<&'static str, Vec<Value>>;

    /// `federation: RabbitMQ|Pulsar`: the brokers' route tables from the rabbitmq/pulsar
    /// blocks, RabbitMQ's (it holds the admin password) in a Secret, Pulsar's in the
    /// ConfigMap; the manifests validate.
    #[test]
    fn broker_federations_get_their_route_tables() {
        let tmp = tempfile::tempdir().unwrap();
        let ca = tmp.path().join("ca");
        let out = tmp.path().join("rabbitmq");
        render(
            &examples().join("brokers/party-9999-rabbitmq.yaml"),
            &out,
            &ca,
        );
        let docs = check_dir(&out);
        let node_cm = find(&docs, "ConfigMap", "node");
        let node_yaml: Value =
            serde_yaml_ng::from_str(node_cm["data"]["node.yaml"].as_str().unwrap()).unwrap();
        assert_eq!(node_yaml["federation"], "rabbitmq");
        assert_eq!(
            node_yaml["rabbitmq_route_table"],
            "/federation/rabbitmq_route_table.yaml"
        );
        assert!(!serde_json::to_string(node_cm).unwrap().contains("password"));
        let secret = find(&docs, "Secret", "federation");
        let table: Value = serde_yaml_ng::from_str(
            secret["stringData"]["rabbitmq_route_table.yaml"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(table["9999"]["mng_port"], 15672);
        assert_eq!(table["9999"]["password"], "fate");
        assert_eq!(table["10000"]["port"], 30104);

        let out = tmp.path().join("pulsar");
        render(
            &examples().join("brokers/party-9999-pulsar.yaml"),
            &out,
            &ca,
        );
        let docs = check_dir(&out);
        let node_cm = find(&docs, "ConfigMap", "node");
        let node_yaml: Value =
            serde_yaml_ng::from_str(node_cm["data"]["node.yaml"].as_str().unwrap()).unwrap();
        assert_eq!(node_yaml["federation"], "pulsar");
        assert_eq!(node_yaml["pulsar_cluster"], "standalone");
        let table: Value =
            serde_yaml_ng::from_str(node_cm["data"]["pulsar_route_table.yaml"].as_str().unwrap())
                .unwrap();
        assert_eq!(table["9999"]["mng_port"], 8080);
        assert_eq!(table["10000"]["sslPort"], 30109);
    }

    /// The validator is strict: a mistyped field of a manifest fails it (so the checks above
    /// can fail).
    #[test]
    fn the_validator_refuses_a_mistyped_manifest() {
        let tmp = tempfile::tempdir().unwrap();
        let bad = tmp.path().join("bad.yaml");
        std::fs::write(
            &bad,
            "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {ports: [{port: 1, nodePrt: 30001}]}\n",
        )
        .unwrap();
        let o = Command::new(validator())
            .args(["-m", "kubernetes_validate", "--strict", "--quiet"])
            .arg(&bad)
            .output()
            .unwrap();
        assert!(
            !o.status.success(),
            "kubernetes-validate --strict accepted nodePrt"
        );
        assert!(String::from_utf8_lossy(&o.stdout).contains("nodePrt"));
    }

    #[test]
    fn a_wrong_field_in_cluster_yaml_is_an_error_naming_it_and_writes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let good = std::fs::read_to_string(examples().join("direct/party-9999.yaml")).unwrap();
        for (from, to, named) in [
            (
                "partyPort: 30101",
                "partyPort: thirty",
                "osx.partyList[0].partyPort",
            ),
            ("partyPort: 30101", "partyPrt: 30101", "partyPrt"),
            ("httpNodePort: 30097", "httpNodePrt: 30097", "python"),
            ("computing: Eggroll", "computing: Egroll", "computing"),
            ("nodePort: 30091", "nodePort: 8080", "osx.nodePort"),
            (
                "partyId: 10000",
                "partyId: 9999",
                "osx.partyList[0].partyId",
            ),
        ] {
            assert!(good.contains(from), "{from}");
            let file = tmp.path().join("cluster.yaml");
            std::fs::write(&file, good.replacen(from, to, 1)).unwrap();
            let out = tmp.path().join("out");
            let o = fate()
                .args(["k8s", "render", "-f"])
                .arg(&file)
                .arg("-o")
                .arg(&out)
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(!o.status.success(), "{to} was accepted");
            assert!(
                err.contains(named),
                "{to}: the error does not name {named}: {err}"
            );
            assert!(!out.exists(), "{to}: a refused cluster.yaml wrote {out:?}");
        }
    }
}

/// FATE's breast_homo HomoLR job (reader, homo_lr with FATE's benchmark parameters, evaluation
/// at each client) through a standalone node's REST API: both clients' AUCs are within FATE's
/// range, and a bad `homo_lr` parameter is refused at submit naming the task and the field,
/// recording no job (issue 16).
#[test]
fn breast_homo_lr_through_a_standalone_node() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(dir.path());
    for (side, rows) in [("guest", "227 rows"), ("host", "228 rows")] {
        let conf = repo().join(format!("examples/upload/breast_homo_{side}.json"));
        let out = run_ok(&["data", "upload", "-c", conf.to_str().unwrap()], &node.url);
        assert!(out.contains(rows), "{out}");
    }
    let dag = repo().join("examples/pipeline/breast_homo_lr.yaml");
    let started = std::time::Instant::now();
    let out = run_ok(
        &[
            "job",
            "submit",
            "-c",
            dag.to_str().unwrap(),
            "--wait",
            "--json",
        ],
        &node.url,
    );
    let took = started.elapsed();
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["status"], "success", "{out}");
    let aucs: Vec<f64> = v["metrics"]
        .as_array()
        .unwrap_or_else(|| panic!("no metrics: {out}"))
        .iter()
        .filter(|m| m["metric"] == "auc")
        .filter_map(|m| m["value"].as_f64())
        .collect();
    eprintln!(
        "breast_homo_lr: {:.1} s submit to success (FATE 63 s), AUCs {aucs:?}",
        took.as_secs_f64()
    );
    assert!(!aucs.is_empty(), "no auc: {out}");
    for a in &aucs {
        assert!(*a > 0.95 && *a <= 1.0, "auc {a}: {out}");
    }

    let text = std::fs::read_to_string(&dag)
        .unwrap()
        .replace("batch_size: 16", "batch_size: -5");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, text).unwrap();
    let jobs_before: Value =
        serde_json::from_str(&run_ok(&["job", "list", "--json"], &node.url)).unwrap();
    let out = fate()
        .args([
            "job",
            "submit",
            "-c",
            bad.to_str().unwrap(),
            "--api",
            &node.url,
        ])
        .output()
        .unwrap();
    assert!(!out.status.success(), "a bad batch_size was accepted");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("homo_lr_0") && err.contains("batch_size"),
        "the error names neither the task nor the field: {err}"
    );
    let jobs_after: Value =
        serde_json::from_str(&run_ok(&["job", "list", "--json"], &node.url)).unwrap();
    assert_eq!(
        jobs_after["count"], jobs_before["count"],
        "a refused job was recorded"
    );
}
