//! Real RabbitMQ brokers for the tests: `scripts/services/rabbitmq.sh run` on loopback ports
//! chosen here, two per test binary (one per party, as FATE deploys them), started on first
//! use and stopped when the test process exits (the script watches its stdin, which this
//! process holds open). A broker that cannot start fails the test with its log.

use std::io::Read;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long a broker may take to be ready (measured: about 10 s idle).
const START_TIMEOUT: Duration = Duration::from_secs(120);

pub struct Broker {
    name: String,
    pub amqp_port: u16,
    pub mng_port: u16,
    /// Its node name, mnesia and logs (`log/fate-<amqp_port>@localhost.log`).
    #[allow(dead_code)] // read by the tests of the `fate` binary
    pub dir: PathBuf,
    _stdin: Mutex<ChildStdin>,
    _child: Mutex<Child>,
}

/// A free loopback port below 45536, so that the broker's distribution port (AMQP + 20000)
/// is a valid port too.
/// Never one this process handed out before (the kernel may give a just-released port again).
fn free_port() -> u16 {
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap();
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if port < 45536
            && !given.contains(&port)
            && !given.contains(&(port + 20000))
            && TcpListener::bind(("127.0.0.1", port + 20000)).is_ok()
        {
            given.extend([port, port + 20000]);
            return port;
        }
    }
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/services/rabbitmq.sh")
}

/// The two shared brokers, started (in parallel) on first call.
pub fn brokers() -> &'static (Broker, Broker) {
    static BROKERS: OnceLock<(Broker, Broker)> = OnceLock::new();
    BROKERS.get_or_init(|| {
        remove_dirs_of_dead_runs();
        let status = Command::new(script())
            .arg("install")
            .status()
            .expect("run scripts/services/rabbitmq.sh install");
        assert!(
            status.success(),
            "scripts/services/rabbitmq.sh install failed"
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
        let Some(rest) = name.strip_prefix("fate-rabbitmq-test-") else {
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
    let (amqp_port, mng_port) = (free_port(), free_port());
    let dir = std::env::temp_dir().join(format!(
        "fate-rabbitmq-test-{}-{name}-{amqp_port}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let (child, stdin) = run(name, &dir, amqp_port, mng_port);
    Broker {
        name: name.to_string(),
        amqp_port,
        mng_port,
        dir,
        _stdin: Mutex::new(stdin),
        _child: Mutex::new(child),
    }
}

#[allow(dead_code)] // used by the tests of the `fate` binary
impl Broker {
    /// Stops the broker (SIGTERM: RabbitMQ shuts down cleanly, as an operator's restart
    /// does) and waits until it is gone and its AMQP port is closed.
    pub fn stop(&self) {
        let mut child = self._child.lock().unwrap();
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "cannot signal broker {}", self.name);
        let deadline = Instant::now() + START_TIMEOUT;
        while child.try_wait().unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "broker {} did not stop",
                self.name
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        while std::net::TcpStream::connect(("127.0.0.1", self.amqp_port)).is_ok() {
            assert!(
                Instant::now() < deadline,
                "broker {} still listens",
                self.name
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("rabbitmq broker {}: stopped", self.name);
    }

    /// Starts the broker again on the same directory (its mnesia: vhosts, users, durable
    /// queues and their messages) and ports.
    pub fn start_again(&self) {
        let (child, stdin) = run(&self.name, &self.dir, self.amqp_port, self.mng_port);
        *self._child.lock().unwrap() = child;
        // The old stdin's watcher ends with it; the broker it watched is gone already.
        *self._stdin.lock().unwrap() = stdin;
    }
}

/// Runs `rabbitmq.sh run` and waits until the broker is ready.
fn run(name: &str, dir: &std::path::Path, amqp_port: u16, mng_port: u16) -> (Child, ChildStdin) {
    let dir = dir.to_path_buf();
    let log = dir.join("run.log");
    let log_file = std::fs::File::create(&log).unwrap();
    let started = Instant::now();
    let mut child = Command::new(script())
        .args([
            "run",
            &dir.display().to_string(),
            &amqp_port.to_string(),
            &mng_port.to_string(),
        ])
        .env("RABBITMQ_SH_EXIT_ON_EOF", "1")
        .stdin(Stdio::piped())
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file)
        .spawn()
        .expect("run scripts/services/rabbitmq.sh run");
    let stdin = child.stdin.take().unwrap();
    let read_log = || {
        let mut text = String::new();
        std::fs::File::open(&log)
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        let broker_log = dir.join("log/stdout.log");
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
        if text.contains("rabbitmq ready") {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "RabbitMQ broker `{name}` (amqp {amqp_port}, management {mng_port}) exited \
                 ({status}) before it was ready:\n{text}"
            );
        }
        if started.elapsed() > START_TIMEOUT {
            let _ = child.kill();
            panic!(
                "RabbitMQ broker `{name}` was not ready within {START_TIMEOUT:?}:\n{}",
                read_log()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let started_in = started.elapsed();
    eprintln!(
        "rabbitmq broker {name}: ready in {started_in:.1?} (amqp {amqp_port}, management {mng_port})"
    );
    (child, stdin)
}
