//! `fate`: the fate-rs binary. It parses the command line, wires the backends the
//! configuration names (the only place that does), and runs a node or a client command.

mod auth;
mod bench;
mod bench_spark;
mod client;
mod compose;
mod demo;
mod deploy;
mod k8s;
mod node;
mod output;
mod preflight;
mod results;
mod service;
mod serving;
mod site;
mod toy;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "fate",
    version,
    about = "FATE (Federated AI Technology Enabler) in one fast binary",
    long_about = "fate-rs runs FATE's federated jobs: the same party ids, roles (guest, host, arbiter), DAGs, REST API and components as FATE, in one process.\n\nStart a node hosting any number of parties with `fate standalone`, then upload data and submit jobs with `fate data upload` and `fate job submit`, or run `fate toy` to check that everything works."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct ApiArgs {
    /// Base URL of the node's REST API.
    #[arg(
        long,
        env = "FATE_API",
        default_value = "http://127.0.0.1:9380",
        global = true
    )]
    api: String,
    /// Print JSON for scripts instead of human-readable tables.
    #[arg(long, global = true)]
    json: bool,
    /// App id to sign requests with, for a node with client authentication on (FATE's
    /// `flow init --app-id`).
    #[arg(long, env = "FATE_APP_ID", global = true, hide_env_values = true)]
    app_id: Option<String>,
    /// The app's token (FATE's `flow init --app-token`).
    #[arg(long, env = "FATE_APP_TOKEN", global = true, hide_env_values = true)]
    app_token: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node hosting every party in one process, with embedded defaults (SQLite metadata,
    /// local table storage, in-process federation). Prints the API URL.
    Standalone(node::StandaloneArgs),
    /// Run the toy example between a guest and a host: FATE 1.x `secure_add_example` in this
    /// process (prints the secure sum), or with `--api` FATE 2.x `toy_example` on a node, like
    /// `flow test toy`.
    Toy(toy::ToyArgs),
    /// The demo, in this process: the toy, then FATE's benchmark jobs on the breast dataset
    /// (PSI + CoordinatedLR and PSI + SecureBoost with evaluation), each with its time and AUC
    /// next to FATE 2.2's.
    Demo(demo::DemoArgs),
    /// Upload data to a node (an upload is a job, as in FATE).
    #[command(subcommand)]
    Data(client::DataCommand),
    /// Submit, query, stop and rerun jobs; read their logs.
    #[command(subcommand)]
    Job(client::JobCommand),
    /// What a task produced, as `flow output`: metrics (AUC, KS, ...), models, output data
    /// (preview or download), job logs.
    #[command(subcommand)]
    Output(results::OutputCommand),
    /// Query or delete stored tables.
    #[command(subcommand)]
    Table(client::TableCommand),
    /// Run one party's node of a federation: REST API, scheduler and the gRPC link to its site
    /// router (configuration from `fate deploy local` or written by hand).
    Node(site::NodeArgs),
    /// Run a site router (FATE's rollsite/OSX) or an exchange: forwards by FATE's
    /// route_table.json, reloaded when it changes; mutual TLS with `tls`.
    Router(site::RouterArgs),
    /// Create a federation CA and per-party certificates named `<party>.<domain>` (replaces
    /// the openssl steps of FATE's deployment guides).
    Cert(site::CertArgs),
    /// Check every hop from this node to its peers (node API, site router, each peer's router
    /// and node) and say which failed and why.
    Doctor(site::DoctorArgs),
    /// Generate and start a federation of separate processes on this machine (FATE's
    /// docker-compose deployment, for one machine).
    #[command(subcommand)]
    Deploy(deploy::DeployCommand),
    /// Kubernetes, KubeFATE's way: render a KubeFATE cluster.yaml into manifests for fate-rs
    /// (node, site router, Services, Ingress, ConfigMaps, Secrets, PVCs, kustomization.yaml).
    #[command(subcommand)]
    K8s(k8s::K8sCommand),
    /// docker-compose, FATE's way: render FATE's parties.conf into per-party confs-<party>.tar
    /// (docker-compose.yml, node and router configuration, certificates) and deploy them to
    /// the parties' hosts, or as processes on this machine (`--local`).
    #[command(subcommand)]
    Compose(compose::ComposeCommand),
    /// Bare metal, as FATE's ansible deployment: start, stop, restart and report one party's
    /// node and site router, each under a supervisor that restarts it after a crash.
    #[command(subcommand)]
    Service(service::ServiceCommand),
    /// Benchmarks with an in-run baseline and FATE's figure beside ours.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Apps that may call a node with client authentication on (FATE's `/v2/app/client/*`).
    #[command(subcommand)]
    App(AppCommand),
    /// Online inference: load a trained model, bind it to a service id, roll back, list
    /// (FATE's `flow model load/bind`; inference is FATE-Serving's `/federation/v1/inference`).
    #[command(subcommand)]
    Serving(serving::ServingCommand),
}

#[derive(Subcommand)]
enum AppCommand {
    /// Create an app in a node's store (run on the node's machine) and print its id and token.
    Create(auth::AppCreateArgs),
}

fn env_filter(default_level: &str) -> tracing_subscriber::EnvFilter {
    tracing_subscriber::EnvFilter::try_from_env("FATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level))
}

/// Logs to stderr, coloured only when stderr is a terminal (never in a redirected file).
fn init_tracing(default_level: &str) {
    use std::io::IsTerminal as _;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(env_filter(default_level))
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

/// Where a node's log goes (`fate standalone`, `fate node`).
#[derive(Args, Clone, Default)]
struct LogArgs {
    /// Write the node's log to stderr instead of `<data-dir>/logs/fate.log`.
    #[arg(long)]
    log_stderr: bool,
}

/// A node's log: appended to `<data_dir>/logs/fate.log` without colour codes, or with
/// `--log-stderr` to stderr (coloured only on a terminal). Returns the file, if one.
fn init_node_tracing(log: &LogArgs, data_dir: &std::path::Path) -> Result<Option<PathBuf>> {
    use anyhow::Context as _;
    if log.log_stderr {
        init_tracing("info");
        return Ok(None);
    }
    let dir = data_dir.join("logs");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join("fate.log");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("cannot open the log file {}", path.display()))?;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(env_filter("info"))
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(file))
        .try_init();
    Ok(Some(path))
}

/// `, log in <file>` for the line a node prints when it starts.
fn log_note(file: Option<&std::path::Path>) -> String {
    file.map(|f| format!(", log in {}", f.display()))
        .unwrap_or_default()
}

/// FATE's `flow test toy -gid 9999 -hid 10000`: clap has no multi-letter short options (it
/// reads `-gid` as `-g id`), so after `toy` the words `-gid` and `-hid` become `--gid` and
/// `--hid`, the aliases of `--guest` and `--host`.
fn fate_aliases(args: impl IntoIterator<Item = std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = args.into_iter().collect();
    if args.get(1).is_some_and(|a| a == "toy") {
        for arg in args.iter_mut().skip(2) {
            let Some(s) = arg.to_str() else { continue };
            if ["-gid", "-hid"]
                .iter()
                .any(|short| s == *short || s.starts_with(&format!("{short}=")))
            {
                *arg = format!("-{s}").into();
            }
        }
    }
    args
}

fn main() -> std::process::ExitCode {
    // Spark's executors run this binary as `fate spark-executor ...` under SELECT TRANSFORM:
    // stdin/stdout are the pipe, so neither clap's help nor logging may touch them.
    let mut raw = std::env::args().skip(1);
    if raw.next().as_deref() == Some("spark-executor") {
        return node::spark_executor(raw.collect());
    }
    let cli = Cli::parse_from(fate_aliases(std::env::args_os()));
    let result: Result<()> = match cli.command {
        Command::Standalone(args) => node::standalone(args),
        Command::Toy(args) => {
            init_tracing("warn");
            toy::run(args)
        }
        Command::Demo(args) => {
            init_tracing("warn");
            demo::run(args)
        }
        Command::Data(cmd) => {
            init_tracing("warn");
            client::data(cmd)
        }
        Command::Job(cmd) => {
            init_tracing("warn");
            client::job(cmd)
        }
        Command::Output(cmd) => results::run(cmd),
        Command::Table(cmd) => {
            init_tracing("warn");
            client::table(cmd)
        }
        Command::Node(args) => site::node(args),
        Command::Router(args) => {
            init_tracing("info");
            site::router(args)
        }
        Command::Cert(args) => {
            init_tracing("warn");
            site::cert(args)
        }
        Command::Doctor(args) => {
            init_tracing("error");
            site::doctor(args)
        }
        Command::Deploy(cmd) => {
            init_tracing("warn");
            deploy::run(cmd)
        }
        Command::K8s(cmd) => {
            init_tracing("warn");
            k8s::run(cmd)
        }
        Command::Compose(cmd) => {
            init_tracing("warn");
            compose::run(cmd)
        }
        Command::Service(cmd) => {
            init_tracing("warn");
            service::run(cmd)
        }
        Command::Bench(cmd) => {
            init_tracing("warn");
            bench::run(cmd)
        }
        Command::App(AppCommand::Create(args)) => {
            init_tracing("warn");
            auth::create(args)
        }
        Command::Serving(cmd) => {
            init_tracing("warn");
            serving::run(cmd)
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Default data directory: `$FATE_HOME` or `./fate-data`.
fn default_data_dir() -> PathBuf {
    std::env::var_os("FATE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("fate-data"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    /// `--host` means one thing: the address a node listens on (FATE-Flow's `host`). The toy's
    /// host party is `--host-party-id` as in FATE's `flow test toy` (issue 11: `--host` was a
    /// listen address on `standalone` and a party on `toy`).
    #[test]
    fn host_names_a_listen_address_only() {
        fn walk(cmd: &clap::Command, path: &str, found: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                if arg.get_long() == Some("host") {
                    found.push(path.to_string());
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), found);
            }
        }
        let mut found = Vec::new();
        walk(&Cli::command(), "fate", &mut found);
        assert_eq!(found, ["fate standalone"]);
        let toy = Cli::try_parse_from(["fate", "toy", "--host", "10000", "--guest", "9999"]);
        assert!(toy.is_ok(), "the old toy spellings still parse");
    }

    /// Every option, argument and command of `fate` says what it is for in `--help` (issue
    /// 11: many options had no description). Names each one that does not.
    #[test]
    fn every_option_and_command_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                if arg.is_hide_set() || arg.get_help().is_some() || arg.get_long_help().is_some() {
                    continue;
                }
                let name = match (arg.get_long(), arg.get_short()) {
                    (Some(long), _) => format!("--{long}"),
                    (None, Some(short)) => format!("-{short}"),
                    (None, None) => format!("<{}>", arg.get_id()),
                };
                missing.push(format!("{path} {name}"));
            }
            for sub in cmd.get_subcommands() {
                let sub_path = format!("{path} {}", sub.get_name());
                if sub.get_about().is_none() && sub.get_long_about().is_none() {
                    missing.push(format!("{sub_path} (the command)"));
                }
                walk(sub, &sub_path, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "fate", &mut missing);
        assert!(
            missing.is_empty(),
            "{} without help text:\n{}",
            missing.len(),
            missing.join("\n")
        );
    }

    #[test]
    fn fate_s_gid_and_hid_become_long_options_after_toy_only() {
        let args = |v: &[&str]| -> Vec<String> {
            fate_aliases(v.iter().map(std::ffi::OsString::from))
                .into_iter()
                .map(|a| a.to_string_lossy().to_string())
                .collect()
        };
        assert_eq!(
            args(&["fate", "toy", "-gid", "9999", "-hid=10000"]),
            ["fate", "toy", "--gid", "9999", "--hid=10000"]
        );
        assert_eq!(args(&["fate", "job", "-gid"]), ["fate", "job", "-gid"]);
    }
}
