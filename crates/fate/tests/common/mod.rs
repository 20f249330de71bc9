//! What the tests of the real binary share: running `fate`, and a `fate deploy local`
//! deployment of one node and one site router per party.
#![allow(dead_code)] // each test binary uses its own part

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub fn fate() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_fate"));
    c.env_remove("FATE_API")
        .env_remove("FATE_HOME")
        .env("FATE_LOG", "warn");
    c
}

pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A running `fate deploy local`, stopped on drop.
pub struct Deployment {
    pub dir: tempfile::TempDir,
    pub info: Value,
}

/// One deployment at a time: they share the machine's two cores and its free ports (a router
/// restarted by one test could otherwise take a port another deployment just picked).
pub static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Deployment {
    pub fn start(parties: &str, extra: &[&str]) -> Self {
        Self::start_with_partner_timeout(parties, 5, extra)
    }

    /// As `start`, with the seconds a node waits for an unreachable peer before failing its
    /// jobs (`start` uses 5 so that tests of dead parties end fast).
    pub fn start_with_partner_timeout(parties: &str, partner_timeout: u64, extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let out = fate()
            .args(["deploy", "local", "--json", "--partner-timeout"])
            .arg(partner_timeout.to_string())
            // The example upload confs read FATE's shared data.
            .arg("--data-root")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/data"))
            .args(["--parties", parties, "--dir"])
            .arg(dir.path())
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "deploy failed: {}", text(&out));
        let info: Value = serde_json::from_slice(&out.stdout).unwrap();
        Deployment { dir, info }
    }

    pub fn party(&self, id: &str) -> &Value {
        self.info["parties"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["party_id"] == id)
            .unwrap_or_else(|| panic!("party {id} not deployed"))
    }

    pub fn api(&self, id: &str) -> String {
        self.party(id)["api"].as_str().unwrap().to_string()
    }

    pub fn node_config(&self, id: &str) -> PathBuf {
        PathBuf::from(self.party(id)["node_config"].as_str().unwrap())
    }

    pub fn pid(&self, name: &str) -> u32 {
        self.info["processes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .and_then(|p| p["pid"].as_u64())
            .unwrap_or_else(|| panic!("no process {name}")) as u32
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn toy(&self, guest: &str, hosts: &str, data_num: u64) -> Output {
        fate()
            .args([
                "toy",
                "--json",
                "--timeout",
                "120",
                "--guest",
                guest,
                "--host",
                hosts,
            ])
            .args([
                "--data-num",
                &data_num.to_string(),
                "--api",
                &self.api(guest),
            ])
            .output()
            .unwrap()
    }

    pub fn toy_ok(&self, guest: &str, hosts: &str) -> String {
        let out = self.toy(guest, hosts, 1024);
        assert!(
            out.status.success(),
            "toy {guest} -> {hosts} failed: {}",
            text(&out)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["status"], "success", "{v}");
        // Every party's rows reached the initiator's store with the hosts' own statuses.
        let job_id = v["job_id"].as_str().unwrap();
        let tasks = self.get(guest, "/v2/job/task/query", &[("job_id", job_id)]);
        let rows = tasks["data"].as_array().unwrap();
        for host in hosts.split(',') {
            let row = rows
                .iter()
                .find(|t| t["party_id"] == host && t["role"] == "host")
                .unwrap_or_else(|| panic!("no task row of host {host}: {tasks}"));
            assert_eq!(row["status"], "success", "{row}");
        }
        // ... and each host's node ran its own part.
        for host in hosts.split(',') {
            let jobs = self.get(host, "/v2/job/query", &[("job_id", job_id)]);
            assert_eq!(jobs["data"][0]["status"], "success", "host {host}: {jobs}");
            assert_eq!(jobs["data"][0]["party_id"], host);
        }
        job_id.to_string()
    }

    pub fn get(&self, party: &str, path: &str, query: &[(&str, &str)]) -> Value {
        let url = format!("{}{path}", self.api(party));
        let mut req = ureq::get(&url);
        for (k, v) in query {
            req = req.query(k, v);
        }
        req.call().unwrap().into_json().unwrap()
    }

    pub fn doctor(&self, party: &str, extra: &[&str]) -> (bool, Value) {
        let out = fate()
            .args(["doctor", "--json", "-c"])
            .arg(self.node_config(party))
            .args(extra)
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("doctor printed no JSON ({e}): {}", text(&out)));
        (out.status.success(), v)
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        let _ = fate()
            .args(["deploy", "local", "--stop", "--dir"])
            .arg(self.dir.path())
            .output();
    }
}

pub fn job_of(d: &Deployment, party: &str, job_id: &str) -> Value {
    d.get(party, "/v2/job/query", &[("job_id", job_id)])["data"][0].clone()
}

pub fn latest_job_id(d: &Deployment, party: &str) -> Option<String> {
    let v = d.get(party, "/v2/job/list/query", &[]);
    v["data"]["data"]
        .as_array()
        .or(v["data"].as_array())
        .and_then(|jobs| {
            jobs.iter()
                .filter_map(|j| j["job_id"].as_str())
                .max()
                .map(String::from)
        })
}

pub fn upload(d: &Deployment, party: &str, conf: &str) {
    let conf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/upload")
        .join(conf);
    let out = fate()
        .args(["data", "upload", "--json", "-c"])
        .arg(&conf)
        .args(["--api", &d.api(party)])
        .output()
        .unwrap();
    assert!(out.status.success(), "upload at {party}: {}", text(&out));
}

pub fn wait_end(d: &Deployment, party: &str, job_id: &str) -> Value {
    wait_end_within(d, party, job_id, Duration::from_secs(120))
}

/// The job's row at `party` once it has ended, failing the test after `bound`.
pub fn wait_end_within(d: &Deployment, party: &str, job_id: &str, bound: Duration) -> Value {
    let deadline = Instant::now() + bound;
    loop {
        let job = job_of(d, party, job_id);
        if ["success", "failed", "canceled", "timeout"]
            .contains(&job["status"].as_str().unwrap_or(""))
        {
            return job;
        }
        assert!(
            Instant::now() < deadline,
            "job {job_id} did not end at {party}: {job}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
