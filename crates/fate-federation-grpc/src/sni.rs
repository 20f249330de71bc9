//! Apache Traffic Server (ATS 9.2, Debian package `trafficserver`) as the SNI proxy of the
//! seeds' star network (fate-spec §2.6): parties reach `<party>.<domain>` through one TLS
//! port whose `sni.yaml` maps each name to `tunnel_route: <ip>:<port>`. A tunnel route is a
//! blind TCP tunnel chosen from the ClientHello's server name, so the TLS session, client
//! certificates included, runs end to end between the routers; ATS holds no certificate.
//! A router reaches a peer through it with a route `{ip, port} = ATS, is_secure: true,
//! hostname: "<peer>.<domain>"`.
//!
//! [`write_config`] writes a complete configuration for `traffic_server` run in the
//! foreground (no `traffic_manager`) with `TS_RUNROOT=<dir>/runroot.yaml`. What it needs,
//! learnt the hard way:
//! - The layout comes from a `runroot.yaml` named by `TS_RUNROOT`: config (`sysconfdir`),
//!   runtime (lock files), log and cache directories all point into the directory.
//! - ATS 9.2 reads `records.config` (`records.yaml` is ATS 10).
//! - `proxy.config.http.server_ports` `<port>:ssl:ip-in=<ip>` makes a TLS port; with
//!   `tunnel_route` entries only, an empty `ssl_multicert.config` is enough. A name without
//!   an entry then fails the handshake (alert `handshake_failure`): ATS has no certificate.
//! - `proxy.config.http.connect_ports` must list the tunnels' destination ports. Its default
//!   is 443 only, and a tunnel to another port is refused by writing an HTML error page in
//!   clear text into the TLS connection, which a TLS client reports as a corrupt message.
//! - `proxy.config.admin.user_id` `#-1` keeps the user (root would otherwise switch to the
//!   package's `trafficserver` user, which cannot write the directory), and
//!   `proxy.config.crash_log_helper` `NULL` stops it from leaving a `traffic_crashlog`
//!   process behind.
//! - Tunnels idle longer than `transaction_no_activity_timeout_in/out` (30 s by default)
//!   are closed ([`AtsConfig::idle_timeout`], 300 s here); a router's channel through ATS
//!   connects again on its next push.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

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

/// Writes the runroot layout and the configuration files into `dir`.
pub fn write_config(
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
    // Any client address may connect: the tunnels carry mutual TLS end to end.
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
