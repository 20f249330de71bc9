//! Several hosts on one machine: Linux network namespaces joined by a bridge, with rate limits
//! on their links.
//!
//! A [`Network`] of `n` nodes is `n + 1` namespaces: node `i` (address `10.200.0.<i+1>/24` on
//! its `eth0`) and a switch namespace holding the bridge `br0` and the other end of every
//! node's veth pair (`p<i>`). Nothing is created in the machine's own namespace, and every
//! network has its own switch, so networks of tests running at once cannot see each other
//! (they may all use the same addresses). Dropping the network deletes its namespaces, also
//! when a test panics; namespaces left by a killed test process are deleted by the next
//! [`Network::new`].
//!
//! Code runs inside a node with [`Network::run`] or [`Network::spawn`]: a thread of its own
//! enters the namespace (`setns`), so the sockets it opens, and the threads it starts (a
//! tokio runtime's workers), live there. A router or transport started inside node `i`
//! listens on `i`'s address and reaches the others over the bridge.
//!
//! Rates come from `tc qdisc ... tbf` ([`Network::limit_rate`]): this machine's kernel has no
//! `netem`, so latency comes from [`super::delay::DelayProxy`] instead.
//!
//! Needs root (`CAP_SYS_ADMIN` and `CAP_NET_ADMIN`) and iproute2's `ip` and `tc`;
//! [`Network::for_test`] turns their absence into a skip (or a CI failure).

use std::fmt;
use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::JoinHandle;

/// Prefix of every namespace this module creates: `fatet-<pid>-<network>-<node|sw>`.
const PREFIX: &str = "fatet-";

/// Why a network could not be built or changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NetnsError {
    /// The machine or the user cannot create namespaces (not root, `ip` missing, no bridge
    /// support): tests skip on this outside CI.
    #[error("network namespaces are unavailable: {0}")]
    Unavailable(String),
    /// A command failed on a machine where namespaces work.
    #[error("`{command}` failed: {reason}")]
    Command {
        /// The command line.
        command: String,
        /// Its standard error, or why it could not run.
        reason: String,
    },
    /// A thread could not enter a node's namespace.
    #[error("cannot enter namespace {namespace}: {reason}")]
    Enter {
        /// The namespace.
        namespace: String,
        /// The operating system's message.
        reason: String,
    },
}

/// Which way a rate limit applies on node `i`'s link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Traffic the node sends (the qdisc of the node's `eth0`).
    FromNode,
    /// Traffic the node receives (the qdisc of the switch's port `p<i>`).
    ToNode,
}

/// Namespaces on a private bridge (see the module docs).
pub struct Network {
    switch: String,
    nodes: Vec<String>,
}

impl fmt::Debug for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Network")
            .field("switch", &self.switch)
            .field("nodes", &self.nodes)
            .finish()
    }
}

impl Network {
    /// Builds a network of `nodes` namespaces (1 to 250). Returns
    /// [`NetnsError::Unavailable`] when namespaces cannot be created here at all.
    pub fn new(nodes: usize) -> Result<Network, NetnsError> {
        if !(1..=250).contains(&nodes) {
            return Err(NetnsError::Command {
                command: format!("Network::new({nodes})"),
                reason: "a network has 1 to 250 nodes".to_string(),
            });
        }
        if !rustix::process::geteuid().is_root() {
            return Err(NetnsError::Unavailable(
                "not running as root (creating network namespaces needs CAP_SYS_ADMIN)".to_string(),
            ));
        }
        match Command::new("ip").arg("-V").output() {
            Ok(out) if out.status.success() => {}
            Ok(out) => {
                return Err(NetnsError::Unavailable(format!(
                    "`ip -V` failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
            Err(e) => {
                return Err(NetnsError::Unavailable(format!(
                    "iproute2's `ip` cannot run ({e}); install the Debian package iproute2"
                )));
            }
        }
        remove_stale();
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let id = format!(
            "{PREFIX}{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut net = Network {
            switch: format!("{id}-sw"),
            nodes: Vec::new(),
        };
        // The first namespace and the bridge tell whether this machine can do it at all.
        ip(&["netns", "add", &net.switch]).map_err(unavailable)?;
        ip(&["-n", &net.switch, "link", "add", "br0", "type", "bridge"]).map_err(unavailable)?;
        ip(&["-n", &net.switch, "link", "set", "br0", "up"])?;
        ip(&["-n", &net.switch, "link", "set", "lo", "up"])?;
        for i in 0..nodes {
            let node = format!("{id}-{i}");
            ip(&["netns", "add", &node])?;
            // Pushed before the links exist so that Drop deletes it if a later step fails.
            net.nodes.push(node.clone());
            let port = format!("p{i}");
            ip(&[
                "-n",
                &net.switch,
                "link",
                "add",
                &port,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                &node,
            ])?;
            ip(&[
                "-n",
                &net.switch,
                "link",
                "set",
                &port,
                "master",
                "br0",
                "up",
            ])?;
            let addr = format!("{}/24", net.addr(i));
            ip(&["-n", &node, "addr", "add", &addr, "dev", "eth0"])?;
            ip(&["-n", &node, "link", "set", "eth0", "up"])?;
            ip(&["-n", &node, "link", "set", "lo", "up"])?;
        }
        Ok(net)
    }

    /// [`Network::new`] for a test: `None` after printing why the test skips when namespaces
    /// are unavailable (a panic instead under CI, see [`super::unavailable`]); panics on
    /// any other failure.
    pub fn for_test(test: &str, nodes: usize) -> Option<Network> {
        match Network::new(nodes) {
            Ok(net) => Some(net),
            Err(NetnsError::Unavailable(reason)) => {
                super::unavailable(
                    test,
                    &format!("network namespaces are unavailable: {reason}"),
                );
                None
            }
            Err(err) => panic!("{test}: cannot build a network of {nodes} namespaces: {err}"),
        }
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the network has no nodes (never: [`Network::new`] refuses that).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Node `i`'s address: `10.200.0.<i+1>`.
    pub fn addr(&self, i: usize) -> Ipv4Addr {
        let host = u8::try_from(i + 1).expect("at most 250 nodes");
        Ipv4Addr::new(10, 200, 0, host)
    }

    /// Node `i`'s namespace name (for `ip netns exec <name> ...`).
    pub fn namespace(&self, i: usize) -> &str {
        &self.nodes[i]
    }

    /// Runs `f` on a new thread inside node `i`'s namespace and returns its result (a panic
    /// in `f` is resumed here). Threads `f` starts stay in the namespace.
    pub fn run<T, F>(&self, i: usize, f: F) -> T
    where
        T: Send,
        F: FnOnce() -> T + Send,
    {
        let path = self.path(i);
        let namespace = self.nodes[i].clone();
        std::thread::scope(|scope| {
            let handle = std::thread::Builder::new()
                .name(format!("netns-{i}"))
                .spawn_scoped(scope, move || {
                    enter(&path, &namespace).unwrap_or_else(|e| panic!("{e}"));
                    f()
                })
                .expect("spawning a thread");
            handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// Starts `f` on a new thread inside node `i`'s namespace.
    pub fn spawn<T, F>(&self, i: usize, f: F) -> Result<JoinHandle<T>, NetnsError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let path = self.path(i);
        let namespace = self.nodes[i].clone();
        // Enter before running f, and report a failure to enter to the caller.
        let (entered_tx, entered_rx) = std::sync::mpsc::sync_channel(1);
        let handle = std::thread::Builder::new()
            .name(format!("netns-{i}"))
            .spawn(move || {
                let entered = enter(&path, &namespace);
                let ok = entered.is_ok();
                let _ = entered_tx.send(entered);
                if !ok {
                    panic!("did not enter the namespace");
                }
                f()
            })
            .map_err(|e| NetnsError::Enter {
                namespace: self.nodes[i].clone(),
                reason: format!("cannot spawn a thread: {e}"),
            })?;
        match entered_rx.recv() {
            Ok(Ok(())) => Ok(handle),
            Ok(Err(err)) => Err(err),
            Err(_) => Err(NetnsError::Enter {
                namespace: self.nodes[i].clone(),
                reason: "the thread ended before entering".to_string(),
            }),
        }
    }

    /// A command run inside node `i` (`ip netns exec <namespace> <program>`).
    pub fn command(&self, i: usize, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.nodes[i], program]);
        cmd
    }

    /// Limits the rate of node `i`'s link in `direction` to `bits_per_second` with a token
    /// bucket (`tc qdisc replace ... root tbf`). The bucket holds 10 ms of traffic, at least
    /// 64 KiB so that one segment of TCP segmentation offload fits; the queue holds 50 ms.
    pub fn limit_rate(
        &self,
        i: usize,
        direction: Direction,
        bits_per_second: u64,
    ) -> Result<(), NetnsError> {
        let (namespace, dev) = self.link(i, direction);
        let burst = (bits_per_second / 8 / 100).max(64 << 10);
        tc(&[
            "-n",
            &namespace,
            "qdisc",
            "replace",
            "dev",
            &dev,
            "root",
            "tbf",
            "rate",
            &format!("{bits_per_second}bit"),
            "burst",
            &burst.to_string(),
            "latency",
            "50ms",
        ])
        .map(drop)
    }

    /// Removes a rate limit set by [`Network::limit_rate`].
    pub fn clear_rate(&self, i: usize, direction: Direction) -> Result<(), NetnsError> {
        let (namespace, dev) = self.link(i, direction);
        tc(&["-n", &namespace, "qdisc", "del", "dev", &dev, "root"]).map(drop)
    }

    /// `tc -s qdisc show` of node `i`'s link in `direction`: the qdisc and its counters.
    pub fn qdisc(&self, i: usize, direction: Direction) -> Result<String, NetnsError> {
        let (namespace, dev) = self.link(i, direction);
        tc(&["-s", "-n", &namespace, "qdisc", "show", "dev", &dev])
    }

    fn link(&self, i: usize, direction: Direction) -> (String, String) {
        match direction {
            Direction::FromNode => (self.nodes[i].clone(), "eth0".to_string()),
            Direction::ToNode => (self.switch.clone(), format!("p{i}")),
        }
    }

    fn path(&self, i: usize) -> String {
        format!("/run/netns/{}", self.nodes[i])
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        // Deleting a namespace removes its end of each veth pair, and with it the other end.
        for namespace in self.nodes.iter().chain(std::iter::once(&self.switch)) {
            if let Err(err) = ip(&["netns", "del", namespace]) {
                eprintln!("netns: {err}");
            }
        }
    }
}

fn unavailable(err: NetnsError) -> NetnsError {
    match err {
        NetnsError::Command { command, reason } => {
            NetnsError::Unavailable(format!("`{command}` failed: {reason}"))
        }
        other => other,
    }
}

fn enter(path: &str, namespace: &str) -> Result<(), NetnsError> {
    let err = |reason: String| NetnsError::Enter {
        namespace: namespace.to_string(),
        reason,
    };
    let file = File::open(path).map_err(|e| err(format!("cannot open {path}: {e}")))?;
    rustix::thread::move_into_link_name_space(
        file.as_fd(),
        Some(rustix::thread::LinkNameSpaceType::Network),
    )
    .map_err(|e| err(format!("setns: {e}")))
}

fn ip(args: &[&str]) -> Result<String, NetnsError> {
    run("ip", args)
}

fn tc(args: &[&str]) -> Result<String, NetnsError> {
    run("tc", args)
}

fn run(program: &str, args: &[&str]) -> Result<String, NetnsError> {
    let command = format!("{program} {}", args.join(" "));
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| NetnsError::Command {
            command: command.clone(),
            reason: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(NetnsError::Command {
            command,
            reason: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Deletes namespaces of this module whose process is gone (a test killed mid-run).
fn remove_stale() {
    let Ok(list) = ip(&["netns", "list"]) else {
        return;
    };
    for line in list.lines() {
        // Lines are `name` or `name (id: N)`.
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = ip(&["netns", "del", name]);
        }
    }
}
