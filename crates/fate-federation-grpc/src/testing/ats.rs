//! Apache Traffic Server as the seeds' SNI proxy in tests: [`TrafficServer::start`] writes
//! the configuration of [`crate::sni`] into a temporary directory and runs `traffic_server`
//! in the foreground, as the calling user, on a loopback port.

use crate::sni::write_config;
pub use crate::sni::{AtsConfig, AtsError, Tunnel, binary};
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Longest wait for `traffic_server` to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running `traffic_server`; dropping it kills the process and deletes its directory.
#[derive(Debug)]
pub struct TrafficServer {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl TrafficServer {
    /// Starts Traffic Server on a free port of 127.0.0.1 with one tunnel per entry of
    /// `config.tunnels` and waits until it accepts connections.
    pub fn start(config: &AtsConfig) -> Result<TrafficServer, AtsError> {
        let binary = binary()?;
        let err = |what: &str, e: &dyn std::fmt::Display| AtsError::Start(format!("{what}: {e}"));
        // The port is picked free and then released, so another process may take it before
        // ATS binds it: try again with another one.
        let mut last = None;
        for _ in 0..3 {
            let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .and_then(|l| l.local_addr())
                .map_err(|e| err("cannot find a free port", &e))?
                .port();
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            let dir = tempfile::Builder::new()
                .prefix("fate-ats-")
                .tempdir()
                .map_err(|e| err("cannot create a directory", &e))?;
            write_config(dir.path(), &binary, addr, config)?;
            let out = |name: &str| {
                std::fs::File::create(dir.path().join(name))
                    .map(Stdio::from)
                    .map_err(|e| err(&format!("cannot create {name}"), &e))
            };
            let child = Command::new(&binary)
                .env("TS_RUNROOT", dir.path().join("runroot.yaml"))
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .stdout(out("stdout.log")?)
                .stderr(out("stderr.log")?)
                .spawn()
                .map_err(|e| err(&format!("cannot run {}", binary.display()), &e))?;
            let mut server = TrafficServer { child, addr, dir };
            match server.wait_ready() {
                Ok(()) => return Ok(server),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("at least one attempt"))
    }

    /// [`TrafficServer::start`] for a test: `None` after printing why the test skips when
    /// `traffic_server` is not installed (a panic instead under CI, see
    /// [`super::unavailable`]); panics on any other failure.
    pub fn for_test(test: &str, config: &AtsConfig) -> Option<TrafficServer> {
        match TrafficServer::start(config) {
            Ok(ats) => Some(ats),
            Err(err @ AtsError::NotInstalled) => {
                super::unavailable(test, &err.to_string());
                None
            }
            Err(err) => panic!("{test}: {err}"),
        }
    }

    /// Where it accepts TLS connections.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The configuration directory (`records.config`, `sni.yaml`, ...).
    pub fn config_dir(&self) -> PathBuf {
        self.dir.path().join("etc")
    }

    /// The end of Traffic Server's diagnostics log and standard error, for failure messages.
    pub fn diagnostics(&self) -> String {
        let mut text = String::new();
        for name in ["log/diags.log", "stderr.log"] {
            let content = std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
            let lines: Vec<&str> = content.lines().collect();
            let tail = &lines[lines.len().saturating_sub(20)..];
            let _ = writeln!(text, "--- {name} (last {} lines)", tail.len());
            for line in tail {
                let _ = writeln!(text, "{line}");
            }
        }
        text
    }

    fn wait_ready(&mut self) -> Result<(), AtsError> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(AtsError::Start(format!(
                    "traffic_server exited during start-up ({status}) on {}:\n{}",
                    self.addr,
                    self.diagnostics()
                )));
            }
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(AtsError::Start(format!(
                    "traffic_server did not accept connections on {} within {START_TIMEOUT:?}:\n{}",
                    self.addr,
                    self.diagnostics()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for TrafficServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
