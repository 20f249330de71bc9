//! Apache Traffic Server (ATS 9.2, Debian package `trafficserver`) as the SNI proxy of the
//! seeds' star network (fate-spec §2.6): parties reach `<party>.<domain>` through one TLS
//! port whose `sni.yaml` maps each name to `tunnel_route: <ip>:<port>`. A tunnel route is a
//! blind TCP tunnel chosen from the ClientHello's server name, so the TLS session, client
//! certificates included, runs end to end between the routers; ATS holds no certificate.
//!
//! [`TrafficServer::start`] writes a complete configuration into a temporary directory and
//! runs `traffic_server` in the foreground (no `traffic_manager`), as the calling user, on a
//! loopback port. What it needs, learnt the hard way:
//! - The layout comes from a `runroot.yaml` named by `TS_RUNROOT`: config (`sysconfdir`),
//!   runtime (lock files), log and cache directories all point into the temporary directory.
//! - ATS 9.2 reads `records.config` (`records.yaml` is ATS 10).
//! - `proxy.config.http.server_ports` `<port>:ssl:ip-in=<ip>` makes a TLS port; with
//!   `tunnel_route` entries only, an empty `ssl_multicert.config` is enough. A name without
//!   an entry then fails the handshake (alert `handshake_failure`): ATS has no certificate.
//! - `proxy.config.http.connect_ports` must list the tunnels' destination ports. Its default
//!   is 443 only, and a tunnel to another port is refused by writing an HTML error page in
//!   clear text into the TLS connection, which a TLS client reports as a corrupt message.
//! - `proxy.config.admin.user_id` `#-1` keeps the user (root would otherwise switch to the
//!   package's `trafficserver` user, which cannot write the temporary directory), and
//!   `proxy.config.crash_log_helper` `NULL` stops it from leaving a `traffic_crashlog`
//!   process behind.
//! - Tunnels idle longer than `transaction_no_activity_timeout_in/out` (30 s by default)
//!   are closed ([`AtsConfig::idle_timeout`], 300 s here); a router's channel through ATS
//!   connects again on its next push (tests/sni.rs checks this).

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Longest wait for `traffic_server` to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Why Traffic Server could not be started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AtsError {
    /// `traffic_server` is not installed: tests skip on this outside CI.
    #[error(
        "traffic_server (Apache Traffic Server, Debian package `trafficserver`) is not \
         installed: run scripts/setup.sh"
    )]
    NotInstalled,
    /// Writing the configuration or starting the process failed.
    #[error("Traffic Server: {0}")]
    Start(String),
}

/// One `sni.yaml` entry: TLS connections whose server name is `fqdn` are tunnelled to `to`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tunnel {
    /// The server name, e.g. `10000.fate.org`.
    pub fqdn: String,
    /// Where the connection goes (a router's TLS port).
    pub to: SocketAddr,
}

impl Tunnel {
    /// `fqdn` → `to`.
    pub fn new(fqdn: impl Into<String>, to: SocketAddr) -> Self {
        Tunnel {
            fqdn: fqdn.into(),
            to,
        }
    }
}

/// What [`TrafficServer::start`] configures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AtsConfig {
    /// The `sni.yaml` entries.
    pub tunnels: Vec<Tunnel>,
    /// How long a tunnel may be idle before ATS closes it (whole seconds, at least 1).
    pub idle_timeout: Duration,
}

impl AtsConfig {
    /// `tunnels`, closed after 300 s idle.
    pub fn new(tunnels: Vec<Tunnel>) -> Self {
        AtsConfig {
            tunnels,
            idle_timeout: Duration::from_secs(300),
        }
    }
}

/// A running `traffic_server`; dropping it kills the process and deletes its directory.
#[derive(Debug)]
pub struct TrafficServer {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

/// The `traffic_server` binary: on `PATH`, else where Debian installs it.
pub fn binary() -> Result<PathBuf, AtsError> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("traffic_server"))
            .find(|p| p.is_file())
    });
    on_path
        .or_else(|| Some(PathBuf::from("/usr/bin/traffic_server")).filter(|p| p.is_file()))
        .ok_or(AtsError::NotInstalled)
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

/// Writes the runroot layout and the configuration files into `dir`.
fn write_config(
    dir: &Path,
    binary: &Path,
    addr: SocketAddr,
    config: &AtsConfig,
) -> Result<(), AtsError> {
    let tunnels = &config.tunnels;
    let write = |path: &Path, text: &str| {
        std::fs::write(path, text)
            .map_err(|e| AtsError::Start(format!("cannot write {}: {e}", path.display())))
    };
    let sub = |name: &str| -> Result<PathBuf, AtsError> {
        let path = dir.join(name);
        std::fs::create_dir_all(&path)
            .map_err(|e| AtsError::Start(format!("cannot create {}: {e}", path.display())))?;
        Ok(path)
    };
    let (etc, run, log, cache, lib) = (
        sub("etc")?,
        sub("run")?,
        sub("log")?,
        sub("cache")?,
        sub("lib")?,
    );
    let bindir = binary.parent().unwrap_or(Path::new("/usr/bin"));
    let runroot = format!(
        "prefix: {dir}\nexec_prefix: {dir}\nbindir: {bin}\nsbindir: {bin}\nsysconfdir: {etc}\n\
         datadir: {dir}\nincludedir: {dir}\nlibdir: {lib}\nlibexecdir: {lib}\n\
         localstatedir: {run}\nruntimedir: {run}\nlogdir: {log}\ncachedir: {cache}\n",
        dir = dir.display(),
        bin = bindir.display(),
        etc = etc.display(),
        lib = lib.display(),
        run = run.display(),
        log = log.display(),
        cache = cache.display(),
    );
    write(&dir.join("runroot.yaml"), &runroot)?;

    let mut ports: Vec<u16> = tunnels.iter().map(|t| t.to.port()).collect();
    ports.sort_unstable();
    ports.dedup();
    let connect_ports = if ports.is_empty() {
        "443".to_string()
    } else {
        ports
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    };
    let records = format!(
        "CONFIG proxy.config.http.server_ports STRING {port}:ssl:ip-in={ip}\n\
         CONFIG proxy.config.http.connect_ports STRING {connect_ports}\n\
         CONFIG proxy.config.admin.user_id STRING #-1\n\
         CONFIG proxy.config.crash_log_helper STRING NULL\n\
         CONFIG proxy.config.http.cache.http INT 0\n\
         CONFIG proxy.config.http.wait_for_cache INT 0\n\
         CONFIG proxy.config.log.logging_enabled INT 0\n\
         CONFIG proxy.config.net.connections_throttle INT 1000\n\
         CONFIG proxy.config.http.transaction_no_activity_timeout_in INT {idle}\n\
         CONFIG proxy.config.http.transaction_no_activity_timeout_out INT {idle}\n\
         CONFIG proxy.config.exec_thread.autoconfig INT 0\n\
         CONFIG proxy.config.exec_thread.limit INT 2\n\
         CONFIG proxy.config.task_threads INT 1\n",
        port = addr.port(),
        ip = addr.ip(),
        idle = config.idle_timeout.as_secs().max(1),
    );
    write(&etc.join("records.config"), &records)?;

    let mut sni = String::from("sni:\n");
    for tunnel in tunnels {
        let _ = write!(
            sni,
            "- fqdn: \"{}\"\n  tunnel_route: \"{}\"\n",
            tunnel.fqdn, tunnel.to
        );
    }
    write(&etc.join("sni.yaml"), &sni)?;
    // A test proxy: any client address may connect.
    write(
        &etc.join("ip_allow.yaml"),
        "ip_allow:\n- apply: in\n  ip_addrs: 0/0\n  action: allow\n  methods: ALL\n\
         - apply: in\n  ip_addrs: ::/0\n  action: allow\n  methods: ALL\n",
    )?;
    for empty in [
        "ssl_multicert.config",
        "storage.config",
        "volume.config",
        "remap.config",
        "plugin.config",
        "cache.config",
        "parent.config",
        "hosting.config",
    ] {
        write(&etc.join(empty), "")?;
    }
    Ok(())
}
