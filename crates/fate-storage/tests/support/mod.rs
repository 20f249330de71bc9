//! Real servers for the tests: runs `scripts/services/<name>.sh run ...`, waits for its
//! `READY <address>` line, and stops the whole process group when dropped.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long a server may take to install (cold cache) and start.
const READY_TIMEOUT: Duration = Duration::from_secs(600);

/// A running server; killed (its process group) on drop.
pub struct Server {
    child: Child,
    /// What the script printed after `READY `.
    pub address: String,
    /// Where its output goes.
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

/// A free loopback port (bound and released; the script binds it right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../scripts/services")
        .join(format!("{name}.sh"))
}

impl Server {
    /// Starts `scripts/services/<name>.sh run <args...>`; `args` may use `{dir}`, a fresh
    /// directory of the server's own. Panics naming the log file if it is not ready in time.
    pub fn start(name: &str, args: &[&str]) -> Server {
        let dir = tempfile::tempdir().expect("server directory");
        let log = dir.path().join(format!("{name}.log"));
        let log_file = std::fs::File::create(&log).expect("server log");
        let args: Vec<String> = args
            .iter()
            .map(|a| a.replace("{dir}", &dir.path().join("data").display().to_string()))
            .collect();
        let started = std::time::Instant::now();
        let mut child = {
            use std::os::unix::process::CommandExt;
            Command::new(script(name))
                .arg("run")
                .args(&args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(log_file)
                // Its own process group, so drop stops the script and what it started.
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| panic!("could not start {}: {e}", script(name).display()))
        };
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("READY ") {
                    let _ = tx.send(addr.trim().to_string());
                }
            }
        });
        let mut server = Server {
            child,
            address: String::new(),
            log,
            _dir: dir,
        };
        match rx.recv_timeout(READY_TIMEOUT) {
            Ok(address) => server.address = address,
            Err(_) => {
                let status = server.child.try_wait().ok().flatten();
                let tail = std::fs::read_to_string(&server.log).unwrap_or_default();
                let tail: String = tail.lines().rev().take(20).collect::<Vec<_>>().join("\n");
                panic!(
                    "{name} server not ready within {READY_TIMEOUT:?} (exit: {status:?}); log {}:\n{tail}",
                    server.log.display()
                );
            }
        }
        eprintln!(
            "{name} server ready at {} after {:.1} s (log {})",
            server.address,
            started.elapsed().as_secs_f64(),
            server.log.display()
        );
        server
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        for _ in 0..100 {
            if self.child.try_wait().ok().flatten().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}
