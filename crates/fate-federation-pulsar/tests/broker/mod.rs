//! Real Pulsar brokers for the tests: `scripts/services/pulsar.sh run` (Pulsar standalone from
//! Maven Central) on loopback ports chosen here, two per test binary (parties split between
//! them, so a sender produces on its peer's broker), started on first use and stopped when the
//! test process exits (the script watches its stdin, which this process holds open). A broker
//! that cannot start fails the test with its log.

use std::io::Read;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long a broker may take to be ready (measured: about 21 s alone on 2 cores).
const START_TIMEOUT: Duration = Duration::from_secs(240);

pub struct Broker {
    pub port: u16,
    pub web_port: u16,
    /// Its data, config and logs (`logs/pulsar.log`).
    #[allow(dead_code)] // read by the tests of the `fate` binary
    pub dir: PathBuf,
    _stdin: Mutex<ChildStdin>,
    _child: Mutex<Child>,
}

/// A free loopback port.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/services/pulsar.sh")
}

/// The two shared brokers, started (in parallel) on first call.
pub fn brokers() -> &'static (Broker, Broker) {
    static BROKERS: OnceLock<(Broker, Broker)> = OnceLock::new();
    BROKERS.get_or_init(|| {
        remove_dirs_of_dead_runs();
        let status = Command::new(script())
            .arg("install")
            .status()
            .expect("run scripts/services/pulsar.sh install");
        assert!(
            status.success(),
            "scripts/services/pulsar.sh install failed"
        );
        let a = std::thread::spawn(|| start("a"));
        let b = std::thread::spawn(|| start("b"));
        (a.join().unwrap(), b.join().unwrap())
    })
}

/// The brokers of a test process live until it exits, so their directories cannot be removed
/// by it: each run removes those of earlier runs whose process is gone.
fn remove_dirs_of_dead_runs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("fate-pulsar-test-") else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn start(name: &str) -> Broker {
    let (port, web_port) = (free_port(), free_port());
    let dir = std::env::temp_dir().join(format!(
        "fate-pulsar-test-{}-{name}-{port}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("run.log");
    let log_file = std::fs::File::create(&log).unwrap();
    let started = Instant::now();
    let mut child = Command::new(script())
        .args([
            "run",
            &dir.display().to_string(),
            &port.to_string(),
            &web_port.to_string(),
        ])
        .env("PULSAR_SH_EXIT_ON_EOF", "1")
        .stdin(Stdio::piped())
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file)
        .spawn()
        .expect("run scripts/services/pulsar.sh run");
    let stdin = child.stdin.take().unwrap();
    let read_log = || {
        let mut text = String::new();
        std::fs::File::open(&log)
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        let broker_log = dir.join("logs/pulsar.log");
        if let Ok(more) = std::fs::read_to_string(&broker_log) {
            let tail: Vec<&str> = more.lines().rev().take(40).collect();
            text.push_str("\n--- broker output (last lines) ---\n");
            for line in tail.into_iter().rev() {
                text.push_str(line);
                text.push('\n');
            }
        }
        text
    };
    loop {
        let text = read_log();
        if text.contains("pulsar ready") {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "Pulsar broker `{name}` (port {port}, web {web_port}) exited \
                 ({status}) before it was ready:\n{text}"
            );
        }
        if started.elapsed() > START_TIMEOUT {
            let _ = child.kill();
            panic!(
                "Pulsar broker `{name}` was not ready within {START_TIMEOUT:?}:\n{}",
                read_log()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let started_in = started.elapsed();
    eprintln!("pulsar broker {name}: ready in {started_in:.1?} (port {port}, web {web_port})");
    Broker {
        port,
        web_port,
        dir,
        _stdin: Mutex::new(stdin),
        _child: Mutex::new(child),
    }
}
