//! Fault suite (issue #10): a node killed at an exact point (`FATE_FAULT`, which aborts the
//! process there as `kill -9` would) and a site router frozen (SIGSTOP) mid-job. After the
//! killed node restarts, every party's state is checked: no half-written table, no job or task
//! left `running`/`waiting`, the failure named, and the same work succeeding again.

mod common;

use common::{Deployment, SERIAL, fate, text, upload};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const SIGABRT: i32 = 6;

const ENDED: [&str; 5] = ["success", "failed", "canceled", "timeout", "pass"];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// GET with FATE's envelope, also when the answer is an HTTP error; `None` while the node does
/// not answer at all.
fn try_get(url: &str, query: &[(&str, &str)]) -> Option<Value> {
    let mut req = ureq::get(url).timeout(Duration::from_secs(10));
    for (k, v) in query {
        req = req.query(k, v);
    }
    match req.call() {
        Ok(r) => r.into_json().ok(),
        Err(ureq::Error::Status(_, r)) => r.into_json().ok(),
        Err(_) => None,
    }
}

fn get(url: &str, query: &[(&str, &str)]) -> Value {
    try_get(url, query).unwrap_or_else(|| panic!("{url} did not answer"))
}

/// Every job of a node, through its API at `api`.
fn jobs(api: &str) -> Vec<Value> {
    let v = get(&format!("{api}/v2/job/list/query"), &[("limit", "1000")]);
    v["data"]["data"]
        .as_array()
        .or(v["data"].as_array())
        .cloned()
        .unwrap_or_else(|| panic!("no job list from {api}: {v}"))
}

fn tasks(api: &str, job_id: &str) -> Vec<Value> {
    let v = get(&format!("{api}/v2/job/task/query"), &[("job_id", job_id)]);
    v["data"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("no tasks of job {job_id} from {api}: {v}"))
}

/// The rows of job `job_id` that `party`'s node keeps for `party` itself (an initiator also
/// keeps copies of the other parties' rows; a node may play several roles).
fn own_rows(d: &Deployment, party: &str, job_id: &str) -> Vec<Value> {
    let v = get(
        &format!("{}/v2/job/query", d.api(party)),
        &[("job_id", job_id)],
    );
    let rows: Vec<Value> = v["data"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .filter(|r| r["party_id"] == party)
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    assert!(
        !rows.is_empty(),
        "party {party} has no row of job {job_id}: {v}"
    );
    rows
}

/// `party`'s own rows of the job once all of them have ended, failing the test after `bound`.
fn wait_end(d: &Deployment, party: &str, job_id: &str, bound: Duration) -> Vec<Value> {
    let deadline = Instant::now() + bound;
    loop {
        let rows = own_rows(d, party, job_id);
        if rows
            .iter()
            .all(|r| ENDED.contains(&r["status"].as_str().unwrap_or("")))
        {
            return rows;
        }
        assert!(
            Instant::now() < deadline,
            "party {party}: job {job_id} did not end within {bound:?}: {rows:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A compact view of a job row for failure messages (the DAG is left out).
fn brief(row: &Value) -> String {
    format!(
        "{}:{} {} (error: {})",
        row["role"].as_str().unwrap_or("?"),
        row["party_id"].as_str().unwrap_or("?"),
        row["status"].as_str().unwrap_or("?"),
        row["error"].as_str().unwrap_or("")
    )
}

/// No job and no task (of any party row the node keeps) is left unfinished at `who`.
fn assert_nothing_unfinished(who: &str, api: &str) {
    let jobs = jobs(api);
    for job in &jobs {
        let id = job["job_id"].as_str().unwrap();
        let status = job["status"].as_str().unwrap_or("");
        assert!(
            ENDED.contains(&status),
            "{who}: job {id} of {}:{} left `{status}` after the restart: {job}",
            job["role"],
            job["party_id"]
        );
        for t in tasks(api, id) {
            let s = t["status"].as_str().unwrap_or("");
            assert!(
                ENDED.contains(&s),
                "{who}: task {} of job {id} at {}:{} left `{s}` after the restart: {t}",
                t["task_name"],
                t["role"],
                t["party_id"]
            );
        }
    }
}

/// Waits for a process we started to end, failing the test after `bound`.
fn wait_exit(child: &mut Child, what: &str, bound: Duration) -> ExitStatus {
    let deadline = Instant::now() + bound;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "{what} still runs after {bound:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The process ended by its fault point: SIGABRT, and the point's line in its log.
fn assert_aborted_at(status: ExitStatus, log: &Path, point: &str, what: &str) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    assert_eq!(
        status.signal(),
        Some(SIGABRT),
        "{what} did not abort at {point} (exit {status}); its log:\n{text}"
    );
    assert!(
        text.contains(&format!("aborting at fault point {point}")),
        "{what} aborted, but not at {point}; its log:\n{text}"
    );
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pid} failed");
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| !stat.contains(") Z "))
}

// ---------------------------------------------------------------------------------------
// a. standalone

/// A `fate standalone` process on an OS-chosen port; its stdout and stderr go to `log`.
struct Standalone {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Standalone {
    fn start(data_dir: &Path, fault: Option<&str>, log: PathBuf) -> Self {
        let mut cmd = fate();
        cmd.args(["standalone", "--port", "0", "--data-dir"])
            .arg(data_dir)
            .arg("--data-root")
            .arg(repo().join("examples/data"))
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap());
        match fault {
            Some(f) => cmd.env("FATE_FAULT", f),
            None => cmd.env_remove("FATE_FAULT"),
        };
        let mut child = cmd.spawn().unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        while !line.contains("API at http://") {
            line.clear();
            assert!(
                out.read_line(&mut line).unwrap() > 0,
                "fate standalone ended before it listened: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no URL in `{line}`"))
            .to_string();
        // Keep reading its stdout so that the node never writes into a closed pipe.
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        Standalone { child, url, log }
    }
}

impl Drop for Standalone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn upload_guest(api: &str) -> std::process::Output {
    let conf = repo().join("examples/upload/breast_hetero_guest.json");
    fate()
        .args(["data", "upload", "--json", "-c"])
        .arg(conf)
        .args(["--api", api])
        .output()
        .unwrap()
}

/// Killed after an upload saved its data and before the table's metadata row is written, a
/// standalone node restarts with no half table, no unfinished job, and the same upload works.
#[test]
fn standalone_killed_between_an_uploads_data_and_its_row_leaves_no_orphan_table() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut node = Standalone::start(
        &data,
        Some("upload.data_written"),
        dir.path().join("first.log"),
    );
    let out = upload_guest(&node.url);
    assert!(
        !out.status.success(),
        "the upload succeeded although the node was to abort: {}",
        text(&out)
    );
    let status = wait_exit(&mut node.child, "fate standalone", Duration::from_secs(60));
    assert_aborted_at(status, &node.log, "upload.data_written", "fate standalone");

    let node = Standalone::start(&data, None, dir.path().join("second.log"));
    let table = get(
        &format!("{}/v2/table/query", node.url),
        &[("namespace", "experiment"), ("name", "breast_hetero_guest")],
    );
    // Either the half table is gone (recovery removed its data) or it is whole.
    let orphan_gone = table["code"] != 0 && table.to_string().contains("not found");
    let complete = table["code"] == 0 && table["data"]["count"] == 569;
    assert!(
        orphan_gone || complete,
        "standalone: table experiment.breast_hetero_guest is neither absent nor complete after the restart: {table}"
    );
    if orphan_gone {
        // No data half either: a delete removes whichever half exists, so "not found" means
        // the restart removed the data the aborted upload had saved.
        let deleted: Value = match ureq::post(&format!("{}/v2/table/delete", node.url)).send_json(
            serde_json::json!({"namespace": "experiment", "name": "breast_hetero_guest"}),
        ) {
            Ok(r) => r.into_json().unwrap(),
            Err(ureq::Error::Status(_, r)) => r.into_json().unwrap(),
            Err(e) => panic!("standalone: table delete did not answer: {e}"),
        };
        assert!(
            deleted["code"] != 0 && deleted.to_string().contains("not found"),
            "standalone: the aborted upload's data outlived the restart without its row (delete found it): {deleted}"
        );
    }
    // The upload job was recorded and ended by the restart; nothing is left running.
    let all = jobs(&node.url);
    assert!(
        !all.is_empty(),
        "standalone: the aborted upload left no job row"
    );
    assert_nothing_unfinished("standalone", &node.url);

    let out = upload_guest(&node.url);
    assert!(
        out.status.success(),
        "standalone: re-uploading experiment.breast_hetero_guest after the restart failed: {}",
        text(&out)
    );
    let table = get(
        &format!("{}/v2/table/query", node.url),
        &[("namespace", "experiment"), ("name", "breast_hetero_guest")],
    );
    assert_eq!(
        table["data"]["count"], 569,
        "standalone: the re-uploaded table is not whole: {table}"
    );
}

// ---------------------------------------------------------------------------------------
// b. a host node killed mid-job

/// A `fate node` this test started for one party of a deployment (in place of the one
/// `fate deploy local` started), killed on drop.
struct Node {
    child: Child,
    log: PathBuf,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts party's node from its node.yaml, with `FATE_FAULT=fault` if given, and waits until
/// its API answers.
fn start_node(d: &Deployment, party: &str, fault: Option<&str>, log: &str) -> Node {
    let log = d.path().join(party).join(log);
    let file = std::fs::File::create(&log).unwrap();
    let mut cmd = fate();
    cmd.args(["node", "-c"])
        .arg(d.node_config(party))
        .stdout(file.try_clone().unwrap())
        .stderr(file);
    match fault {
        Some(f) => cmd.env("FATE_FAULT", f),
        None => cmd.env_remove("FATE_FAULT"),
    };
    let mut node = Node {
        child: cmd.spawn().unwrap(),
        log,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let url = format!("{}/v2/job/list/query", d.api(party));
    while try_get(&url, &[]).is_none() {
        if let Some(s) = node.child.try_wait().unwrap() {
            panic!(
                "node of {party} exited at start ({s}): {}",
                std::fs::read_to_string(&node.log).unwrap_or_default()
            );
        }
        assert!(Instant::now() < deadline, "node of {party} did not start");
        std::thread::sleep(Duration::from_millis(200));
    }
    node
}

/// Stops the node `fate deploy local` started for `party` (SIGTERM, as an operator would).
fn stop_deployed_node(d: &Deployment, party: &str) {
    let pid = d.pid(&format!("node of {party}"));
    signal(pid, "-TERM");
    let deadline = Instant::now() + Duration::from_secs(30);
    while alive(pid) {
        assert!(
            Instant::now() < deadline,
            "node of {party} still runs 30 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn submit(d: &Deployment, party: &str, dag: &str) -> String {
    let submitted: Value = ureq::post(&format!("{}/v2/job/submit", d.api(party)))
        .send_string(dag)
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(submitted["code"], 0, "submit at {party}: {submitted}");
    submitted["job_id"].as_str().unwrap().to_string()
}

fn psi_lr_dag(epochs: u32) -> String {
    let dag = std::fs::read_to_string(repo().join("examples/pipeline/breast_psi_lr.yaml")).unwrap();
    assert!(dag.contains("        epochs: 20\n"));
    dag.replace(
        "        epochs: 20\n",
        &format!("        epochs: {epochs}\n"),
    )
}

/// A federation of 9999 (guest) and 10000 (host, arbiter) with both breast tables uploaded,
/// whose nodes wait for an unreachable peer as long as the federation does (600 s).
fn breast_federation() -> Deployment {
    let d = Deployment::start_with_partner_timeout("9999,10000", 600, &[]);
    upload(&d, "9999", "breast_hetero_guest.json");
    upload(&d, "10000", "breast_hetero_host.json");
    d
}

/// The host's node aborts at `fault` during PSI + LR; restarted, every party shows the job
/// failed, naming 10000 at the initiator, nothing unfinished, and a rerun succeeds.
fn host_killed_at(fault: &str) {
    let d = breast_federation();
    stop_deployed_node(&d, "10000");
    let mut host = start_node(&d, "10000", Some(fault), "faulty.log");
    let job_id = submit(&d, "9999", &psi_lr_dag(20));
    let status = wait_exit(&mut host.child, "node of 10000", Duration::from_secs(180));
    assert_aborted_at(
        status,
        &host.log,
        fault.split('@').next().unwrap(),
        "node of 10000",
    );
    let _host = start_node(&d, "10000", None, "restarted.log");

    let bound = Duration::from_secs(120);
    for party in ["9999", "10000"] {
        for row in wait_end(&d, party, &job_id, bound) {
            let status = row["status"].as_str().unwrap_or("");
            assert!(
                ["failed", "canceled"].contains(&status),
                "party {party}: job {job_id} ended as {} after the host died at {fault}",
                brief(&row)
            );
        }
    }
    for row in own_rows(&d, "9999", &job_id) {
        assert!(
            row["error"].as_str().unwrap_or("").contains("10000"),
            "party 9999: the error of job {job_id} does not name party 10000 (killed at {fault}): {}",
            brief(&row)
        );
    }
    // The initiator's copies of the host's rows follow by its polls: give them a moment.
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline
        && tasks(&d.api("9999"), &job_id)
            .iter()
            .any(|t| !ENDED.contains(&t["status"].as_str().unwrap_or("")))
    {
        std::thread::sleep(Duration::from_millis(300));
    }
    for party in ["9999", "10000"] {
        assert_nothing_unfinished(&format!("party {party}"), &d.api(party));
    }

    // The same job, rerun at the initiator, now succeeds everywhere.
    let out = fate()
        .args(["job", "rerun", "-j", &job_id, "--api", &d.api("9999")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "rerun of {job_id} at 9999 after the host died at {fault}: {}",
        text(&out)
    );
    for party in ["9999", "10000"] {
        wait_success(
            &d,
            party,
            &job_id,
            &format!("the rerun after the host died at {fault}"),
        );
    }
}

/// Waits until `party`'s own rows of the job are all `success`; fails the test if they end
/// otherwise once the job ran again (or stay ended otherwise for 30 s), or after 300 s.
fn wait_success(d: &Deployment, party: &str, job_id: &str, what: &str) {
    let start = Instant::now();
    let mut restarted = false;
    loop {
        let rows = own_rows(d, party, job_id);
        if rows.iter().all(|r| r["status"] == "success") {
            return;
        }
        let ended = rows
            .iter()
            .all(|r| ENDED.contains(&r["status"].as_str().unwrap_or("")));
        restarted |= !ended;
        let view: Vec<String> = rows.iter().map(brief).collect();
        assert!(
            !(ended && (restarted || start.elapsed() > Duration::from_secs(30))),
            "party {party}: job {job_id} did not succeed ({what}): {view:?}"
        );
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "party {party}: job {job_id} still runs after 300 s ({what}): {view:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_host_killed_after_the_first_psi_exchange_fails_the_job_everywhere_and_a_rerun_succeeds() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    host_killed_at("psi.exchanged");
}

#[test]
fn a_host_killed_after_the_second_lr_epoch_fails_the_job_everywhere_and_a_rerun_succeeds() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    host_killed_at("lr.epoch@2");
}

// ---------------------------------------------------------------------------------------
// c. partitions

/// The host's site router frozen (SIGSTOP) for 5, 25 and 60 s while LR runs: once it thaws,
/// the job succeeds at both parties (the pushes are retried, the waits and the scheduler's
/// polls outlast the pause).
#[test]
fn jobs_survive_the_hosts_router_frozen_for_5_25_and_60_seconds() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = breast_federation();
    let router = d.pid("router of 10000");
    for pause in [5u64, 25, 60] {
        let job_id = submit(&d, "9999", &psi_lr_dag(30));
        // Freeze the router once LR runs at the host.
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let running = tasks(&d.api("10000"), &job_id)
                .iter()
                .any(|t| t["task_name"] == "lr_0" && t["status"] == "running");
            if running {
                break;
            }
            for row in own_rows(&d, "9999", &job_id) {
                assert!(
                    !ENDED.contains(&row["status"].as_str().unwrap_or("")),
                    "party 9999: job {job_id} ended before LR ran at 10000: {}",
                    brief(&row)
                );
            }
            assert!(
                Instant::now() < deadline,
                "lr_0 never ran at 10000 (pause {pause} s)"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        signal(router, "-STOP");
        let frozen = Instant::now();
        let lr_running = tasks(&d.api("10000"), &job_id)
            .iter()
            .any(|t| t["task_name"] == "lr_0" && t["status"] == "running");
        std::thread::sleep(Duration::from_secs(pause).saturating_sub(frozen.elapsed()));
        signal(router, "-CONT");
        assert!(
            lr_running,
            "the {pause} s pause missed the job: lr_0 had ended at 10000 when the router froze"
        );
        for party in ["9999", "10000"] {
            wait_success(
                &d,
                party,
                &job_id,
                &format!("after the router of 10000 was frozen {pause} s"),
            );
        }
        eprintln!(
            "router of 10000 frozen {pause} s: job {job_id} succeeded {:.0} s after the freeze",
            frozen.elapsed().as_secs_f64()
        );
    }
}
