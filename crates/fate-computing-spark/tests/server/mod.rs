//! One real Spark Connect server per test binary: `scripts/services/spark.sh run` on
//! loopback ports chosen here, started on first use and stopped when the test process exits
//! (the script watches its stdin, which this process holds open).

use std::io::Read;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long the server may take to be ready (measured: about 20 s idle, more under load).
const START_TIMEOUT: Duration = Duration::from_secs(240);

pub struct SparkServer {
    pub port: u16,
    pub ui_port: u16,
    pub dir: PathBuf,
    /// Held open: the server stops when it closes (at process exit).
    _stdin: Mutex<ChildStdin>,
    _child: Mutex<Child>,
}

impl SparkServer {
    pub fn url(&self) -> String {
        format!("sc://127.0.0.1:{}", self.port)
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Failed task attempts over every stage of the server's application (Spark's REST API).
    pub fn failed_tasks(&self) -> u64 {
        let url = format!("{}/stages", self.application_url());
        let stages: serde_json::Value = ureq::get(&url)
            .call()
            .unwrap_or_else(|e| panic!("GET {url}: {e}"))
            .into_json()
            .unwrap();
        stages
            .as_array()
            .expect("a list of stages")
            .iter()
            .filter_map(|stage| stage["numFailedTasks"].as_u64())
            .sum()
    }

    fn application_url(&self) -> String {
        let base = format!("http://127.0.0.1:{}/api/v1/applications", self.ui_port);
        let apps: serde_json::Value = ureq::get(&base)
            .call()
            .unwrap_or_else(|e| panic!("GET {base}: {e}"))
            .into_json()
            .unwrap();
        let app_id = apps[0]["id"].as_str().expect("one application").to_owned();
        format!("{base}/{app_id}")
    }

    /// The number of succeeded jobs of the server's application, from Spark's REST API.
    pub fn succeeded_jobs(&self) -> usize {
        let url = format!("{}/jobs", self.application_url());
        let jobs: serde_json::Value = ureq::get(&url)
            .call()
            .unwrap_or_else(|e| panic!("GET {url}: {e}"))
            .into_json()
            .unwrap();
        jobs.as_array()
            .expect("a list of jobs")
            .iter()
            .filter(|job| job["status"] == "SUCCEEDED")
            .count()
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/services/spark.sh")
}

/// The shared server, started on first call.
pub fn spark() -> &'static SparkServer {
    static SERVER: OnceLock<SparkServer> = OnceLock::new();
    SERVER.get_or_init(start)
}

fn start() -> SparkServer {
    start_with(&[])
}

/// A server of its own with extra server configuration (`key=value`), stopped when the
/// returned value drops (its stdin closes).
pub fn start_with(conf: &[&str]) -> SparkServer {
    let (port, ui_port) = (free_port(), free_port());
    let dir = std::env::temp_dir().join(format!("fate-spark-test-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("server.log");
    let log_file = std::fs::File::create(&log).unwrap();
    let started = Instant::now();
    // Installing (cold: about 90 s) is not part of the start timeout.
    let status = Command::new(script())
        .arg("install")
        .status()
        .expect("run scripts/services/spark.sh install");
    assert!(status.success(), "scripts/services/spark.sh install failed");
    let installed = started.elapsed();
    let mut child = Command::new(script())
        .args([
            "run",
            &dir.display().to_string(),
            &port.to_string(),
            &ui_port.to_string(),
        ])
        .env("SPARK_SH_EXIT_ON_EOF", "1")
        .env("SPARK_SH_CONF", conf.join(" "))
        .stdin(Stdio::piped())
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file)
        .spawn()
        .expect("run scripts/services/spark.sh run");
    let stdin = child.stdin.take().unwrap();
    let ready_at = Instant::now();
    loop {
        let mut text = String::new();
        std::fs::File::open(&log)
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        if text.contains("spark-connect ready") {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "the Spark Connect server exited ({status}) before it was ready; see {}",
                log.display()
            );
        }
        if ready_at.elapsed() > START_TIMEOUT {
            let _ = child.kill();
            panic!(
                "the Spark Connect server was not ready in {START_TIMEOUT:?}; see {}",
                log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!(
        "spark: install check {:.1} s, ready in {:.1} s on port {port}, UI {ui_port}, log {}",
        installed.as_secs_f64(),
        ready_at.elapsed().as_secs_f64(),
        log.display()
    );
    SparkServer {
        port,
        ui_port,
        dir,
        _stdin: Mutex::new(stdin),
        _child: Mutex::new(child),
    }
}
