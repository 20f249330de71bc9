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
    name: String,
    pub port: u16,
    pub web_port: u16,
    /// Its data, config and logs (`logs/pulsar.log`).
    #[allow(dead_code)] // read by the tests of the `fate` binary
    pub dir: PathBuf,
    env: Vec<(String, String)>,
    /// The script running it and the pipe it watches (closed when this process exits).
    process: Mutex<Option<(Child, ChildStdin)>>,
}

/// A free loopback port, never one this process handed out before: the kernel may give a
/// just-released port again, and two brokers told the same web port both report ready while
/// one of them serves the other's admin API.
fn free_port() -> u16 {
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap();
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
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
    start_with(name, (free_port(), free_port()), &[])
}

/// A broker on `port` (binary) and `web_port` (admin REST), with `scripts/services/pulsar.sh`'s
/// optional environment (`PULSAR_SH_CLUSTER`, `PULSAR_SH_CONF`, `PULSAR_SH_HOSTS`).
fn start_with(name: &str, (port, web_port): (u16, u16), env: &[(&str, String)]) -> Broker {
    let dir = std::env::temp_dir().join(format!(
        "fate-pulsar-test-{}-{name}-{port}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let broker = Broker {
        name: name.to_string(),
        port,
        web_port,
        dir,
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
        process: Mutex::new(None),
    };
    broker.start_again();
    broker
}

impl Broker {
    /// Starts the broker (again, on its directory and ports) and waits until it is ready.
    pub fn start_again(&self) {
        let mut process = self.process.lock().unwrap();
        assert!(process.is_none(), "broker {} is running", self.name);
        let (name, port, web_port, dir) = (&self.name, self.port, self.web_port, &self.dir);
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
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
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
        eprintln!(
            "pulsar broker {name}: ready in {:.1?} (port {port}, web {web_port})",
            started.elapsed()
        );
        *process = Some((child, stdin));
    }

    /// Stops the broker as an operator does (SIGTERM: the script stops the JVM) and waits
    /// until its ports are closed.
    #[allow(dead_code)] // not every test binary restarts a broker
    pub fn stop(&self) {
        let Some((mut child, stdin)) = self.process.lock().unwrap().take() else {
            return;
        };
        let _ = Command::new("kill").arg(child.id().to_string()).status();
        let _ = child.wait();
        drop(stdin);
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            assert!(
                Instant::now() < deadline,
                "broker {} did not stop",
                self.name
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// One party's broker of the [`star`].
#[allow(dead_code)] // not every test binary reads every field
pub struct StarBroker {
    pub party: &'static str,
    pub broker: Broker,
    pub ssl_port: u16,
    pub web_ssl_port: u16,
}

/// FATE's Pulsar star network (fate-spec §2.6) on loopback: parties 9999 and 10000, each with
/// its own broker (cluster named after the party, TLS with a certificate `<party>.fate.org`
/// from fate-rs's CA, the code `fate cert` runs), and Apache Traffic Server in front of both
/// tunnelling TLS by SNI (`<party>.fate.org` to that broker's TLS port).
///
/// Each broker advertises its loopback address to local clients (listener `internal`) and its
/// site name to replicating brokers (listener `sni`); the brokers' JVMs resolve the site names
/// to loopback through a hosts file of their own, as DNS would resolve them to the proxy.
#[allow(dead_code)] // not every test binary reads every field
pub struct Star {
    pub a: StarBroker,
    pub b: StarBroker,
    pub proxy_port: u16,
    /// `ca.pem`, `<party>.crt`, `<party>.key`.
    pub certs: PathBuf,
    /// The proxy's directory (`log/`).
    pub proxy_dir: PathBuf,
    _proxy_stdin: Mutex<ChildStdin>,
    _proxy: Mutex<Child>,
}

#[allow(dead_code)] // not every test binary uses the star
pub fn star() -> &'static Star {
    static STAR: OnceLock<Star> = OnceLock::new();
    STAR.get_or_init(|| {
        remove_dirs_of_dead_runs();
        let status = Command::new(script())
            .arg("install")
            .status()
            .expect("run scripts/services/pulsar.sh install");
        assert!(
            status.success(),
            "scripts/services/pulsar.sh install failed"
        );
        let base = std::env::temp_dir().join(format!(
            "fate-pulsar-test-{}-star-{}",
            std::process::id(),
            free_port()
        ));
        let certs = base.join("certs");
        fate_federation_grpc::certs::generate(&certs, "fate.org", &[&["9999"], &["10000"]])
            .expect("issue the brokers' certificates");
        let hosts = base.join("hosts");
        std::fs::write(
            &hosts,
            "127.0.0.1 localhost 9999.fate.org 10000.fate.org 10001.fate.org\n",
        )
        .unwrap();
        let ports = |_: ()| (free_port(), free_port(), free_port(), free_port());
        let (pa, wa, sa, wsa) = ports(());
        let (pb, wb, sb, wsb) = ports(());
        let conf = |party: &str, port: u16, ssl: u16, web_ssl: u16| {
            let file = base.join(format!("{party}.conf"));
            let c = certs.display();
            std::fs::write(
                &file,
                format!(
                    "brokerServicePortTls={ssl}\nwebServicePortTls={web_ssl}\n\
                     tlsCertificateFilePath={c}/{party}.crt\ntlsKeyFilePath={c}/{party}.key\n\
                     tlsTrustCertsFilePath={c}/ca.pem\ntlsAllowInsecureConnection=false\n\
                     advertisedListeners=internal:pulsar://127.0.0.1:{port},\
                     internal:pulsar+ssl://127.0.0.1:{ssl},sni:pulsar://{party}.fate.org:{port},\
                     sni:pulsar+ssl://{party}.fate.org:{ssl}\ninternalListenerName=internal\n"
                ),
            )
            .unwrap();
            vec![
                ("PULSAR_SH_CLUSTER", party.to_string()),
                ("PULSAR_SH_CONF", file.display().to_string()),
                ("PULSAR_SH_HOSTS", hosts.display().to_string()),
            ]
        };
        let env_a = conf("9999", pa, sa, wsa);
        let env_b = conf("10000", pb, sb, wsb);
        let a = std::thread::spawn(move || start_with("star-9999", (pa, wa), &env_a));
        let b = std::thread::spawn(move || start_with("star-10000", (pb, wb), &env_b));
        let proxy_port = free_port();
        let proxy_dir = base.join("proxy");
        let (proxy, proxy_stdin) = start_proxy(
            &proxy_dir,
            proxy_port,
            &[("9999.fate.org".into(), sa), ("10000.fate.org".into(), sb)],
        );
        Star {
            a: StarBroker {
                party: "9999",
                broker: a.join().unwrap(),
                ssl_port: sa,
                web_ssl_port: wsa,
            },
            b: StarBroker {
                party: "10000",
                broker: b.join().unwrap(),
                ssl_port: sb,
                web_ssl_port: wsb,
            },
            proxy_port,
            certs,
            proxy_dir,
            _proxy_stdin: Mutex::new(proxy_stdin),
            _proxy: Mutex::new(proxy),
        }
    })
}

/// Traffic Server with the SNI tunnels `routes` (`fqdn`, broker TLS address), configured by
/// fate-rs's own writer (`fate_federation_grpc::sni`, the one `fate deploy local --sni` uses)
/// and run under a shell that stops it when this test process exits (the shell watches its
/// stdin, which this process holds open).
fn start_proxy(dir: &std::path::Path, port: u16, routes: &[(String, u16)]) -> (Child, ChildStdin) {
    use fate_federation_grpc::sni::{AtsConfig, Tunnel, binary, write_config};
    std::fs::create_dir_all(dir).unwrap();
    let binary = binary().expect("Traffic Server (scripts/setup.sh installs it)");
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let tunnels = routes
        .iter()
        .map(|(fqdn, to)| {
            Tunnel::new(
                fqdn.clone(),
                std::net::SocketAddr::from(([127, 0, 0, 1], *to)),
            )
        })
        .collect();
    write_config(dir, &binary, addr, &AtsConfig::new(tunnels)).expect("write ATS's configuration");
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "TS_RUNROOT={dir}/runroot.yaml {bin} > {dir}/stdout.log 2>&1 & pid=$!; \
             trap 'kill $pid 2>/dev/null' EXIT; cat > /dev/null",
            dir = dir.display(),
            bin = binary.display()
        ))
        .current_dir(dir)
        .stdin(Stdio::piped())
        .spawn()
        .expect("run traffic_server");
    let stdin = child.stdin.take().unwrap();
    let started = Instant::now();
    while std::net::TcpStream::connect(addr).is_err() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("Traffic Server's shell exited ({status}) before it was ready");
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "Traffic Server was not ready within 60 s: {}",
            std::fs::read_to_string(dir.join("log/diags.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, stdin)
}
