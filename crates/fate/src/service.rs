//! `fate service start|stop|status|restart all|node|router -c node.yaml`: one party's services
//! on a bare-metal host, as FATE's ansible deployment manages them with supervisor
//! (`service.sh start|stop|status`). Each service runs under a small supervisor process
//! (`fate service supervise`, hidden) that restarts it when it exits without being asked
//! (after 1 s; it gives up after 5 crashes within a minute). Pid files and state live in
//! `<data_dir>/service/`, output in `<data_dir>/logs/service/<name>.log`; `stop` asks the
//! supervisor through a stop file, so no signal handling is needed.

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Subcommand)]
pub enum ServiceCommand {
    /// Start the services under their supervisors (the router before the node).
    Start(ServiceArgs),
    /// Stop the services and their supervisors (the node before the router).
    Stop(ServiceArgs),
    /// Each service's state, pid, restarts and log.
    Status(ServiceArgs),
    /// Stop, then start.
    Restart(ServiceArgs),
    /// Write systemd unit files for the node and its router (for hosts that use systemd
    /// instead of `fate service start`): Restart=on-failure, FATE's limits of 65535.
    Units(UnitsArgs),
    /// Run one service and restart it when it crashes (started by `fate service start`).
    #[command(hide = true)]
    Supervise(SuperviseArgs),
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Which {
    /// The node and its site router.
    All,
    /// The node (`fate node`).
    Node,
    /// The site router (`fate router`, node.yaml's `router_config`).
    Router,
}

#[derive(Args)]
pub struct ServiceArgs {
    /// Which services.
    #[arg(value_enum, default_value = "all")]
    pub which: Which,
    /// The node's configuration; the router's is its `router_config`.
    #[arg(long, short)]
    pub config: PathBuf,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct UnitsArgs {
    /// The node's configuration; the router's is its `router_config`.
    #[arg(long, short)]
    pub config: PathBuf,
    /// Directory for the unit files (install them into /etc/systemd/system).
    #[arg(long, short = 'o', value_name = "DIR", default_value = ".")]
    pub out: PathBuf,
    /// The user the services run as (default: systemd's, root).
    #[arg(long)]
    pub user: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct SuperviseArgs {
    /// `node` or `router`.
    pub name: String,
    /// The node's configuration.
    #[arg(long, short)]
    pub config: PathBuf,
}

/// `<name>.json`: what the supervisor reports.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct State {
    supervisor: u32,
    child: Option<u32>,
    restarts: u32,
    /// Set when it gave up restarting.
    gave_up: Option<String>,
}

const MAX_CRASHES_PER_MINUTE: usize = 5;

struct Paths {
    /// The service's own configuration file.
    config: PathBuf,
    node_config: PathBuf,
    dir: PathBuf,
    log: PathBuf,
}

fn paths(node_config: &Path, name: &str) -> Result<Paths> {
    let node_config = node_config
        .canonicalize()
        .with_context(|| format!("{}: no such file", node_config.display()))?;
    let (node, base) = crate::site::NodeConfig::load(&node_config)?;
    let config = match name {
        "node" => node_config.clone(),
        _ => match &node.router_config {
            Some(r) => base.join(r),
            None => bail!(
                "{}: no router_config, so there is no router service to manage",
                node_config.display()
            ),
        },
    };
    let data = base.join(&node.data_dir);
    Ok(Paths {
        config,
        node_config,
        dir: data.join("service"),
        log: data
            .join("logs")
            .join("service")
            .join(format!("{name}.log")),
    })
}

fn names(which: Which) -> &'static [&'static str] {
    match which {
        Which::All => &["router", "node"],
        Which::Node => &["node"],
        Which::Router => &["router"],
    }
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

/// Whether `pid` is the supervisor of `name` (a recycled pid is never signalled).
fn is_supervisor(pid: u32, name: &str) -> bool {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let args: Vec<String> = String::from_utf8_lossy(&cmdline)
        .split('\0')
        .map(String::from)
        .collect();
    alive(pid)
        && args.get(1).is_some_and(|a| a == "service")
        && args.get(2).is_some_and(|a| a == "supervise")
        && args.get(3).is_some_and(|a| a == name)
}

/// Whether `pid` is `fate <name> --config <config>`, the child a supervisor started (a
/// recycled pid is never signalled).
fn is_child(pid: u32, name: &str, config: &Path) -> bool {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let args: Vec<String> = String::from_utf8_lossy(&cmdline)
        .split('\0')
        .map(String::from)
        .collect();
    alive(pid)
        && args.get(1).is_some_and(|a| a == name)
        && args.get(2).is_some_and(|a| a == "--config")
        && args.get(3).is_some_and(|a| Path::new(a) == config)
}

fn read_state(p: &Paths, name: &str) -> Option<State> {
    let text = std::fs::read_to_string(p.dir.join(format!("{name}.json"))).ok()?;
    serde_json::from_str(&text).ok()
}

fn write_state(p: &Paths, name: &str, s: &State) -> Result<()> {
    let path = p.dir.join(format!("{name}.json"));
    let tmp = p.dir.join(format!("{name}.json.tmp"));
    std::fs::write(&tmp, serde_json::to_string(s)?)?;
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))
}

fn kill(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([signal, &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

pub fn run(cmd: ServiceCommand) -> Result<()> {
    match cmd {
        ServiceCommand::Start(a) => {
            for name in names(a.which) {
                start(&a, name)?;
            }
            status(&a)
        }
        ServiceCommand::Stop(a) => {
            for name in names(a.which).iter().rev() {
                stop(&a, name)?;
            }
            status(&a)
        }
        ServiceCommand::Restart(a) => {
            for name in names(a.which).iter().rev() {
                stop(&a, name)?;
            }
            for name in names(a.which) {
                start(&a, name)?;
            }
            status(&a)
        }
        ServiceCommand::Status(a) => status(&a),
        ServiceCommand::Units(a) => units(&a),
        ServiceCommand::Supervise(a) => supervise(&a),
    }
}

/// `fate-<name>-<party>.service` for each service of the node.yaml.
fn units(a: &UnitsArgs) -> Result<()> {
    let node = paths(&a.config, "node")?;
    let (config, _) = crate::site::NodeConfig::load(&node.node_config)?;
    let party = config.party_ids.join("-");
    if let Some(u) = &a.user
        && (u.is_empty()
            || !u
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c)))
    {
        bail!("--user {u:?}: not a user name");
    }
    let exe = std::env::current_exe().context("cannot find the fate binary")?;
    let mut services = vec![("node", node)];
    if config.router_config.is_some() {
        services.insert(0, ("router", paths(&a.config, "router")?));
    }
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create {}", a.out.display()))?;
    let plain = |p: &Path| {
        let s = p.to_string_lossy();
        !s.chars()
            .any(|c| c.is_whitespace() || c.is_control() || "\"'\\%$;".contains(c))
    };
    for p in std::iter::once(exe.as_path()).chain(services.iter().map(|(_, p)| p.config.as_path()))
    {
        if !plain(p) {
            bail!(
                "{}: a path with spaces, quotes, `%`, `$` or `;` cannot go into a unit's \
                 ExecStart unquoted; move it",
                p.display()
            );
        }
    }
    let mut written = Vec::new();
    for (name, p) in &services {
        let after = if *name == "node" && services.len() == 2 {
            format!(" fate-router-{party}.service")
        } else {
            String::new()
        };
        let extra = if *name == "node" { " --log-stderr" } else { "" };
        let text = format!(
            "# Generated by `fate service units`: party {party}'s {name}.\n\
             [Unit]\n\
             Description=fate-rs {name} of party {party}\n\
             After=network-online.target{after}\n\
             Wants=network-online.target\n\
             \n\
             [Service]\n\
             {user}\
             ExecStart={exe} {name} --config {config}{extra}\n\
             Environment=FATE_LOG=info\n\
             Restart=on-failure\n\
             RestartSec=1\n\
             LimitNOFILE=65535\n\
             LimitNPROC=65535\n\
             TimeoutStopSec=30\n\
             \n\
             [Install]\n\
             WantedBy=multi-user.target\n",
            user = a
                .user
                .as_ref()
                .map(|u| format!("User={u}\n"))
                .unwrap_or_default(),
            exe = exe.display(),
            config = p.config.display(),
        );
        let path = a.out.join(format!("fate-{name}-{party}.service"));
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        written.push(path);
    }
    if a.json {
        println!("{}", json!({"units": written}));
    } else {
        for w in &written {
            println!("{}", w.display());
        }
        println!(
            "install: cp {} /etc/systemd/system/ && systemctl daemon-reload && systemctl enable --now {}",
            written
                .iter()
                .map(|w| w.display().to_string())
                .collect::<Vec<_>>()
                .join(" "),
            written
                .iter()
                .filter_map(|w| w.file_name().map(|f| f.to_string_lossy().to_string()))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    Ok(())
}

fn start(a: &ServiceArgs, name: &str) -> Result<()> {
    use std::os::unix::process::CommandExt as _;
    let p = paths(&a.config, name)?;
    if let Some(s) = read_state(&p, name)
        && is_supervisor(s.supervisor, name)
    {
        if !a.json {
            println!("{name}: already running (supervisor pid {})", s.supervisor);
        }
        return Ok(());
    }
    std::fs::create_dir_all(&p.dir)
        .with_context(|| format!("cannot create {}", p.dir.display()))?;
    let _ = std::fs::remove_file(p.dir.join(format!("{name}.stop")));
    let _ = std::fs::remove_file(p.dir.join(format!("{name}.json")));
    if let Some(dir) = p.log.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&p.log)
        .with_context(|| format!("cannot open {}", p.log.display()))?;
    let exe = std::env::current_exe().context("cannot find the fate binary")?;
    let mut sup = Command::new(exe)
        .args(["service", "supervise", name, "--config"])
        .arg(&p.node_config)
        .env_remove("FATE_DATABASE_URL")
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .process_group(0)
        .spawn()
        .context("cannot start the supervisor")?;
    // Up once the supervisor reports a live child.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(s) = read_state(&p, name)
            && s.child.is_some_and(alive)
        {
            return Ok(());
        }
        if let Some(status) = sup.try_wait()? {
            bail!(
                "{name}: its supervisor exited ({status}); see {}",
                p.log.display()
            );
        }
        if Instant::now() > deadline {
            bail!("{name}: not started within 15 s; see {}", p.log.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn stop(a: &ServiceArgs, name: &str) -> Result<()> {
    let p = paths(&a.config, name)?;
    let Some(s) = read_state(&p, name) else {
        return Ok(());
    };
    if is_supervisor(s.supervisor, name) {
        std::fs::write(p.dir.join(format!("{name}.stop")), "")?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while is_supervisor(s.supervisor, name) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if is_supervisor(s.supervisor, name) {
            kill(s.supervisor, "-KILL");
        }
    }
    // Whatever the supervisor left (it was killed, say).
    if let Some(child) = read_state(&p, name).and_then(|s| s.child)
        && is_child(child, name, &p.config)
    {
        kill(child, "-KILL");
    }
    let _ = std::fs::remove_file(p.dir.join(format!("{name}.stop")));
    Ok(())
}

fn status(a: &ServiceArgs) -> Result<()> {
    let mut rows = Vec::new();
    for name in names(a.which) {
        let p = paths(&a.config, name)?;
        let s = read_state(&p, name);
        let sup = s
            .as_ref()
            .map(|s| s.supervisor)
            .filter(|pid| is_supervisor(*pid, name));
        let child = s.as_ref().and_then(|s| s.child).filter(|pid| alive(*pid));
        let state = match (&s, sup, child) {
            (_, Some(_), Some(_)) => "running",
            (_, Some(_), None) => "restarting",
            (Some(s), None, _) if s.gave_up.is_some() => "crashed",
            _ => "stopped",
        };
        rows.push(json!({
            "service": name,
            "state": state,
            "pid": child,
            "supervisor": sup,
            "restarts": s.as_ref().map(|s| s.restarts).unwrap_or(0),
            "gave_up": s.as_ref().and_then(|s| s.gave_up.clone()),
            "log": p.log,
        }));
    }
    if a.json {
        println!("{}", json!({"services": rows}));
    } else {
        println!(
            "{:<8} {:<11} {:<8} {:<9} LOG",
            "SERVICE", "STATE", "PID", "RESTARTS"
        );
        for r in &rows {
            println!(
                "{:<8} {:<11} {:<8} {:<9} {}",
                r["service"].as_str().unwrap_or(""),
                r["state"].as_str().unwrap_or(""),
                r["pid"]
                    .as_u64()
                    .map(|p| p.to_string())
                    .unwrap_or("-".into()),
                r["restarts"].as_u64().unwrap_or(0),
                r["log"].as_str().unwrap_or("")
            );
            if let Some(why) = r["gave_up"].as_str() {
                println!("         gave up: {why}");
            }
        }
    }
    Ok(())
}

fn spawn_child(name: &str, p: &Paths) -> Result<Child> {
    let exe = std::env::current_exe().context("cannot find the fate binary")?;
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&p.log)?;
    let mut cmd = Command::new(exe);
    cmd.arg(name).arg("--config").arg(&p.config);
    if name == "node" {
        cmd.arg("--log-stderr");
    }
    cmd.env(
        "FATE_LOG",
        std::env::var("FATE_LOG").unwrap_or_else(|_| "info".into()),
    )
    .stdin(Stdio::null())
    .stdout(out.try_clone()?)
    .stderr(out)
    .spawn()
    .with_context(|| format!("cannot start `fate {name}`"))
}

/// The supervisor: runs the service, restarts it when it exits unasked, stops it when the
/// stop file appears.
fn supervise(a: &SuperviseArgs) -> Result<()> {
    let name = a.name.as_str();
    if name != "node" && name != "router" {
        bail!("{name}: not a service (node, router)");
    }
    let p = paths(&a.config, name)?;
    let stop_file = p.dir.join(format!("{name}.stop"));
    let mut state = State {
        supervisor: std::process::id(),
        ..State::default()
    };
    let mut crashes: Vec<Instant> = Vec::new();
    loop {
        let mut child = spawn_child(name, &p)?;
        state.child = Some(child.id());
        write_state(&p, name, &state)?;
        let status = loop {
            if stop_file.exists() {
                kill(child.id(), "-TERM");
                let deadline = Instant::now() + Duration::from_secs(10);
                while child.try_wait()?.is_none() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(50));
                }
                let _ = child.kill();
                let _ = child.wait();
                state.child = None;
                write_state(&p, name, &state)?;
                return Ok(());
            }
            if let Some(status) = child.try_wait()? {
                break status;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        eprintln!(
            "fate service: {name} (pid {}) exited ({status}); restarting in 1 s",
            child.id()
        );
        let now = Instant::now();
        crashes.retain(|t| now.duration_since(*t) < Duration::from_secs(60));
        crashes.push(now);
        if crashes.len() >= MAX_CRASHES_PER_MINUTE {
            state.child = None;
            state.gave_up = Some(format!(
                "{} exits within a minute, the last {status}; see {}",
                crashes.len(),
                p.log.display()
            ));
            write_state(&p, name, &state)?;
            bail!(
                "{name}: gave up after {} exits within a minute",
                crashes.len()
            );
        }
        state.restarts += 1;
        state.child = None;
        write_state(&p, name, &state)?;
        std::thread::sleep(Duration::from_secs(1));
    }
}
