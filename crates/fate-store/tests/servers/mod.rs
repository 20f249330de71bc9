//! Real database servers for the tests: `scripts/services/mariadb.sh run` and
//! `scripts/services/postgres.sh run` on loopback ports chosen here, one of each per test binary,
//! started on first use and stopped when the test process exits (each script watches its stdin,
//! which this process holds open). A server that cannot start fails the test with its log.
//! Every test gets a database of its own ([`Server::fresh_database`]).

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long a server may take to be ready (measured: MariaDB about 5 s with its first
/// `mysql_install_db`, PostgreSQL about 3 s with `initdb`).
const START_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    MariaDb,
    Postgres,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::MariaDb => "mariadb",
            Kind::Postgres => "postgres",
        }
    }
}

pub struct Server {
    pub kind: Kind,
    pub port: u16,
    /// Its data directory and logs.
    #[allow(dead_code)]
    pub dir: PathBuf,
    _stdin: Mutex<ChildStdin>,
    _child: Mutex<Child>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn script(kind: Kind) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../scripts/services")
        .join(format!("{}.sh", kind.name()))
}

/// The shared MariaDB server, started on first call.
pub fn mariadb() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| start(Kind::MariaDb))
}

/// The shared PostgreSQL server, started on first call.
pub fn postgres() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| start(Kind::Postgres))
}

/// The servers of a test process live until it exits, so their directories cannot be removed
/// by it: each run removes those of earlier runs whose process is gone.
fn remove_dirs_of_dead_runs(kind: Kind) {
    let prefix = format!("fate-{}-test-", kind.name());
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(&prefix) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn start(kind: Kind) -> Server {
    remove_dirs_of_dead_runs(kind);
    let port = free_port();
    let dir = std::env::temp_dir().join(format!(
        "fate-{}-test-{}-{port}",
        kind.name(),
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let log = std::env::temp_dir().join(format!(
        "fate-{}-run-{}-{port}.log",
        kind.name(),
        std::process::id()
    ));
    let log_file = std::fs::File::create(&log).unwrap();
    let started = Instant::now();
    let mut child = Command::new(script(kind))
        .args(["run", &dir.display().to_string(), &port.to_string()])
        .env("MARIADB_SH_EXIT_ON_EOF", "1")
        .env("POSTGRES_SH_EXIT_ON_EOF", "1")
        .stdin(Stdio::piped())
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script(kind).display()));
    let stdin = child.stdin.take().unwrap();
    let read_log = || {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(&log) {
            let _ = f.read_to_string(&mut text);
        }
        text
    };
    let ready = format!("{} ready", kind.name());
    loop {
        let text = read_log();
        if text.contains(&ready) {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "{} on 127.0.0.1:{port} exited ({status}) before it was ready:\n{text}",
                kind.name()
            );
        }
        if started.elapsed() > START_TIMEOUT {
            let _ = child.kill();
            panic!(
                "{} on 127.0.0.1:{port} was not ready within {START_TIMEOUT:?}:\n{}",
                kind.name(),
                read_log()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!(
        "{} on 127.0.0.1:{port}: ready in {:.1?}",
        kind.name(),
        started.elapsed()
    );
    Server {
        kind,
        port,
        dir,
        _stdin: Mutex::new(stdin),
        _child: Mutex::new(child),
    }
}

impl Server {
    /// The URL of database `name` as user `fate` (password `fate`).
    pub fn url(&self, name: &str) -> String {
        match self.kind {
            Kind::MariaDb => format!("mysql://fate:fate@127.0.0.1:{}/{name}", self.port),
            Kind::Postgres => format!("postgres://fate:fate@127.0.0.1:{}/{name}", self.port),
        }
    }

    /// Creates a new, empty database named after `label` and returns its URL.
    pub fn fresh_database(&self, label: &str) -> String {
        static N: AtomicUsize = AtomicUsize::new(0);
        let label: String = label
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .take(40)
            .collect();
        let name = format!("t{}_{label}", N.fetch_add(1, Ordering::SeqCst));
        self.sql(&format!("CREATE DATABASE {name}"));
        self.url(&name)
    }

    /// Runs `statement` as the server's admin user with the server's own client.
    pub fn sql(&self, statement: &str) {
        let out = match self.kind {
            Kind::MariaDb => Command::new("mariadb")
                .args(["--no-defaults", "-h", "127.0.0.1", "-P"])
                .arg(self.port.to_string())
                .args(["-u", "fate", "-pfate", "-e", statement])
                .output(),
            Kind::Postgres => Command::new(psql())
                .args(["-h", "127.0.0.1", "-p"])
                .arg(self.port.to_string())
                .args([
                    "-U",
                    "fate",
                    "-d",
                    "postgres",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-c",
                ])
                .arg(statement)
                .env("PGPASSWORD", "fate")
                .output(),
        }
        .unwrap_or_else(|e| panic!("cannot run the {} client: {e}", self.kind.name()));
        assert!(
            out.status.success(),
            "{} `{statement}` failed: {}",
            self.kind.name(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn psql() -> PathBuf {
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        for e in entries.flatten() {
            let p = e.path().join("bin/psql");
            if p.exists() {
                return p;
            }
        }
    }
    PathBuf::from("psql")
}
