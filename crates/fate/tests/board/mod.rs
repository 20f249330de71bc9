//! The board in a real headless browser (issue 14): Debian's Chromium driven by playwright-core
//! (`board.mjs`, pinned by `package.json`/`package-lock.json` beside this file) against a
//! `fate standalone` that ran breast PSI + CoordinatedLR and PSI + SecureBoost and has a third
//! job running, and against the board `fate demo` prints. Screenshots of each view go to
//! `target/board-screenshots/{node,demo}/`.
//!
//! Node.js, npm and Chromium are required (scripts/setup.sh installs them with
//! FATE_SETUP=tests): the test fails, never skips, when one is missing. The npm cache and
//! node_modules live under `~/.cache/fate-rs/npm` so reruns install nothing.

use super::{NodeProcess, fate, repo, run_ok};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;

fn here() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/board")
}

/// node_modules with playwright-core at the lock file's version, installed once under
/// `~/.cache/fate-rs/npm/board` (reinstalled when the committed lock file changes).
fn node_modules() -> PathBuf {
    for tool in ["node", "npm"] {
        let ok = Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            ok,
            "{tool} is missing: the board's browser test needs Node.js and npm \
             (FATE_SETUP=tests scripts/setup.sh installs them)"
        );
    }
    let home = std::env::var("HOME").expect("HOME");
    let cache = PathBuf::from(home).join(".cache/fate-rs/npm");
    let dir = cache.join("board");
    std::fs::create_dir_all(&dir).unwrap();
    let lock = std::fs::read(here().join("package-lock.json")).unwrap();
    let same = std::fs::read(dir.join("package-lock.json")).is_ok_and(|l| l == lock)
        && dir
            .join("node_modules/playwright-core/package.json")
            .exists();
    if !same {
        for f in ["package.json", "package-lock.json"] {
            std::fs::copy(here().join(f), dir.join(f)).unwrap();
        }
        let out = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--cache"])
            .arg(cache.join("cache"))
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "npm ci (playwright-core) failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    dir.join("node_modules")
}

/// The AUC the metric API answers for a job's evaluation at the guest.
fn auc(url: &str, job: &str) -> f64 {
    let v: Value = ureq::get(&format!(
        "{url}/v2/output/metric/query?job_id={job}&role=guest&party_id=9999&task_name=evaluation_0"
    ))
    .call()
    .unwrap()
    .into_json()
    .unwrap();
    v["data"]
        .as_array()
        .and_then(|ms| ms.iter().find(|m| m["name"] == "auc"))
        .and_then(|m| m["data"]["auc"].as_f64())
        .unwrap_or_else(|| panic!("no auc for {job}: {v}"))
}

/// Every scalar metric of a job's evaluation at the guest, by name, as the metric API answers.
fn metric_values(url: &str, job: &str) -> Value {
    let v: Value = ureq::get(&format!(
        "{url}/v2/output/metric/query?job_id={job}&role=guest&party_id=9999&task_name=evaluation_0"
    ))
    .call()
    .unwrap()
    .into_json()
    .unwrap();
    let mut out = serde_json::Map::new();
    for m in v["data"].as_array().into_iter().flatten() {
        let name = m["name"].as_str().unwrap_or_default();
        if let Some(x) = m["data"][name].as_f64() {
            out.insert(name.to_string(), json!(x));
        }
    }
    Value::Object(out)
}

/// Debian's Chromium (or FATE_CHROMIUM); the test fails when it is missing.
fn chromium() -> String {
    let chromium = std::env::var("FATE_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} is missing: the board's browser test needs Debian's Chromium \
         (FATE_SETUP=tests scripts/setup.sh installs it)"
    );
    chromium
}

/// Runs board.mjs's `scenario` against the board at `url`; screenshots go to `shots`.
fn browse(
    url: &str,
    password: &str,
    facts_file: &Path,
    shots: &Path,
    scenario: &str,
    modules: &Path,
    chromium: &str,
) {
    let _ = std::fs::remove_dir_all(shots);
    let out = Command::new("node")
        .arg(here().join("board.mjs"))
        .env("FATE_BOARD_URL", url)
        .env("FATE_BOARD_PASSWORD", password)
        .env("FATE_BOARD_SHOTS", shots)
        .env("FATE_BOARD_FACTS", facts_file)
        .env("FATE_BOARD_SCENARIO", scenario)
        .env("FATE_BOARD_NODE_MODULES", modules)
        .env("FATE_CHROMIUM", chromium)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "board.mjs ({scenario}) failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_board_in_a_browser_shows_jobs_dags_logs_curves_and_models() {
    let chromium = chromium();
    let modules = node_modules();
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(dir.path());
    let url = node.url.as_str();

    // No password configured: the node generated one, readable by its user only.
    let file = dir.path().join("board-password");
    let password = std::fs::read_to_string(&file).unwrap().trim().to_string();
    assert!(password.len() >= 20, "{password}");
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let mut upload_job = String::new();
    for side in ["guest", "host"] {
        let conf = repo().join(format!("examples/upload/breast_hetero_{side}.json"));
        let out = run_ok(&["data", "upload", "-c", conf.to_str().unwrap()], url);
        assert!(out.contains("569 rows"), "{out}");
        // "... 569 rows in 4 partitions (job <id>)"
        upload_job = out
            .split(|c: char| !c.is_ascii_digit())
            .find(|w| w.len() == 21)
            .unwrap_or_else(|| panic!("no job id: {out}"))
            .to_string();
    }
    let submit = |conf: &Path, wait: bool| -> String {
        let mut args = vec!["job", "submit", "-c", conf.to_str().unwrap(), "--json"];
        if wait {
            args.push("--wait");
        }
        let out = run_ok(&args, url);
        let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        if wait {
            assert_eq!(v["status"], "success", "{}: {out}", conf.display());
        }
        v["job_id"]
            .as_str()
            .unwrap_or_else(|| panic!("no job id: {out}"))
            .to_string()
    };
    let pipeline = |name: &str| repo().join(format!("examples/pipeline/{name}.yaml"));
    let lr_job = submit(&pipeline("breast_psi_lr"), true);
    let sbt_job = submit(&pipeline("breast_psi_sbt"), true);
    // A regression SecureBoost (the 0/1 label as a value) whose evaluation gives regression
    // metrics: the board shows them in its summary table.
    let regression = std::fs::read_to_string(pipeline("breast_psi_sbt"))
        .unwrap()
        .replace("objective: binary:bce", "objective: regression:l2")
        .replace("num_trees: 10", "num_trees: 3")
        .replace("metrics: [auc, ks]", "metrics: [rmse, mse, mae, r2_score]");
    assert!(regression.contains("regression:l2") && regression.contains("r2_score"));
    let regression_conf = dir.path().join("regression_sbt.yaml");
    std::fs::write(&regression_conf, regression).unwrap();
    let regression_job = submit(&regression_conf, true);
    // The job whose logs the browser watches grow: the same LR with 15 times the epochs, so it
    // runs for minutes (the browser stops it).
    let long = std::fs::read_to_string(pipeline("breast_psi_lr"))
        .unwrap()
        .replace("epochs: 20", "epochs: 300");
    assert!(long.contains("epochs: 300"));
    let long_conf = dir.path().join("long_lr.yaml");
    std::fs::write(&long_conf, long).unwrap();
    let running_job = submit(&long_conf, false);
    // A job that fails at the host (its reader names a table the host does not have).
    let broken = std::fs::read_to_string(pipeline("breast_psi_lr"))
        .unwrap()
        .replace("name: breast_hetero_host", "name: no_such_table");
    assert!(broken.contains("no_such_table"));
    let broken_conf = dir.path().join("broken_lr.yaml");
    std::fs::write(&broken_conf, broken).unwrap();
    let failed_job = {
        let out = fate()
            .args([
                "job",
                "submit",
                "-c",
                broken_conf.to_str().unwrap(),
                "--json",
                "--wait",
            ])
            .args(["--api", url])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        assert_eq!(v["status"], "failed", "{text}");
        v["job_id"].as_str().unwrap().to_string()
    };
    let facts = json!({
        "lr_job": lr_job, "sbt_job": sbt_job, "running_job": running_job, "failed_job": failed_job,
        "upload_job": upload_job,
        "lr_auc": auc(url, &lr_job), "sbt_auc": auc(url, &sbt_job),
        "regression_job": regression_job,
        "regression_metrics": metric_values(url, &regression_job),
    });
    let facts_file = dir.path().join("facts.json");
    std::fs::write(&facts_file, facts.to_string()).unwrap();
    let shots = repo().join("target/board-screenshots/node");
    browse(
        url,
        &password,
        &facts_file,
        &shots,
        "node",
        &modules,
        &chromium,
    );
    for name in [
        "01-login",
        "02-running",
        "03-dashboard-live",
        "04-history",
        "05-dashboard-lr",
        "06-evaluation-lr",
        "07-lr-guest",
        "09-sbt-guest",
        "12-evaluation-regression",
    ] {
        let f = shots.join(format!("{name}.png"));
        assert!(
            std::fs::metadata(&f).is_ok_and(|m| m.len() > 1000),
            "no screenshot {}",
            f.display()
        );
    }
    // The browser stopped the running job: every party's row ends canceled.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let v: Value = ureq::get(&format!("{url}/v2/job/query?job_id={running_job}"))
            .call()
            .unwrap()
            .into_json()
            .unwrap();
        let rows = v["data"].as_array().unwrap();
        if rows.iter().all(|j| j["status"] == "canceled") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not canceled: {v}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// Issue 14's first must-hold, as a new user meets it: `fate demo`, run from an empty
/// directory with the breast CSVs built into the binary, reaches FATE's AUCs, prints a board URL
/// with its login, and keeps the board up; in a browser, that URL shows the jobs, each DAG with
/// its tasks' states, the logs, the ROC and KS curves with the AUC the metric API gives, the LR
/// weights, the loss curve and the SecureBoost trees. Ctrl-C then ends the demo cleanly.
#[test]
fn the_demo_prints_a_board_url_that_shows_its_jobs() {
    use std::io::BufRead as _;
    let chromium = chromium();
    let modules = node_modules();
    let dir = tempfile::tempdir().unwrap();
    let mut child = fate()
        .args(["demo", "--port", "0"])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    let mut lines: Vec<String> = Vec::new();
    while !lines
        .iter()
        .any(|l| l.starts_with("the board stays up at "))
    {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => lines.push(l),
            Err(e) => {
                let _ = child.kill();
                let mut err = String::new();
                let _ = std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err);
                panic!(
                    "the demo did not reach its end ({e}):\n{}\n{err}",
                    lines.join("\n")
                );
            }
        }
    }
    let text = lines.join("\n");
    assert!(
        text.contains("success to calculate secure_sum, it is 2000.0"),
        "{text}"
    );
    // PSI + CoordinatedLR and PSI + SecureBoost on breast reach FATE 2.2's AUCs. A job's row
    // ends with our AUC, FATE's AUC and our KS.
    for (job, auc) in [
        ("PSI + CoordinatedLR", "0.994411"),
        ("PSI + HeteroSecureBoost", "0.999194"),
    ] {
        let row = lines
            .iter()
            .find(|l| l.starts_with(job))
            .unwrap_or_else(|| panic!("no row for {job}: {text}"));
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cols[cols.len() - 3], auc, "{row}");
    }
    // "board at http://127.0.0.1:PORT/ (log in as admin, password P): ..."
    let board = lines
        .iter()
        .find_map(|l| l.strip_prefix("board at "))
        .unwrap_or_else(|| panic!("no board line: {text}"));
    let (url, rest) = board.split_once(" (log in as admin, password ").unwrap();
    let password = rest.split_once("):").unwrap().0;
    assert!(password.len() >= 20, "{board}");
    let url = url.trim_end_matches('/');
    // "  http://.../board/#/job/<id>/guest/9999   PSI + CoordinatedLR + evaluation (breast)"
    let job_of = |name: &str| -> String {
        let link = lines
            .iter()
            .filter(|l| l.contains(name))
            .find_map(|l| l.trim().strip_prefix(&format!("{url}/board/#/job/")))
            .unwrap_or_else(|| panic!("no board link for {name}: {text}"));
        link.split('/').next().unwrap().to_string()
    };
    let (lr_job, sbt_job) = (
        job_of("PSI + CoordinatedLR"),
        job_of("PSI + HeteroSecureBoost"),
    );
    let facts = json!({
        "lr_job": lr_job, "sbt_job": sbt_job,
        "lr_auc": auc(url, &lr_job), "sbt_auc": auc(url, &sbt_job),
    });
    let facts_file = dir.path().join("facts.json");
    std::fs::write(&facts_file, facts.to_string()).unwrap();
    let shots = repo().join("target/board-screenshots/demo");
    browse(
        url,
        password,
        &facts_file,
        &shots,
        "demo",
        &modules,
        &chromium,
    );
    assert!(
        std::fs::metadata(shots.join("06-evaluation-lr.png")).is_ok_and(|m| m.len() > 1000),
        "no screenshot in {}",
        shots.display()
    );

    // Ctrl-C ends the demo, and its board with it.
    let int = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(int.success());
    let end = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            std::time::Instant::now() < end,
            "the demo still runs 30 s after Ctrl-C"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(status.success(), "{status}");
    assert!(
        ureq::get(&format!("{url}/board/login")).call().is_err(),
        "the board still answers after the demo ended"
    );
}
