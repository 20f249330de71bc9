//! `fate doctor --preflight`: the checks FATE's ansible deployment guide runs on a host before
//! it installs a party (open files and processes limits, the service ports, disk, swap,
//! leftover processes), each failed one with how to fix it. With `-c node.yaml` the ports
//! are that node's (API, gRPC, its router's) and the disk is its data dir's.

use anyhow::Result;
use serde_json::{Value, json};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};

/// FATE's guide: `ulimit -n` and `ulimit -u` of 65535 for the services' user.
const MIN_LIMIT: u64 = 65535;
/// Free space below which the data dir's disk fails the check.
const MIN_FREE_GIB: u64 = 10;

struct Check {
    name: String,
    ok: bool,
    detail: String,
    fix: String,
}

/// A soft limit from /proc/self/limits (`None`: unlimited).
fn soft_limit(limits: &str, what: &str) -> Option<Option<u64>> {
    let line = limits.lines().find(|l| l.starts_with(what))?;
    let soft = line[what.len()..].split_whitespace().next()?;
    if soft == "unlimited" {
        Some(None)
    } else {
        soft.parse().ok().map(Some)
    }
}

fn limit_check(limits: &str, what: &str, name: &str, ulimit: &str, conf: &str) -> Check {
    match soft_limit(limits, what) {
        Some(None) => Check {
            name: name.into(),
            ok: true,
            detail: "unlimited".into(),
            fix: String::new(),
        },
        Some(Some(n)) => Check {
            name: name.into(),
            ok: n >= MIN_LIMIT,
            detail: format!("{n} (at least {MIN_LIMIT})"),
            fix: format!(
                "raise it for the user running fate: `ulimit {ulimit} {MIN_LIMIT}` in its shell, \
                 `* soft {conf} {MIN_LIMIT}` and `* hard {conf} {MIN_LIMIT}` in \
                 /etc/security/limits.conf, or Limit{}={MIN_LIMIT} in its systemd unit",
                if conf == "nofile" { "NOFILE" } else { "NPROC" }
            ),
        },
        None => Check {
            name: name.into(),
            ok: false,
            detail: format!("no \"{what}\" line in /proc/self/limits"),
            fix: "run preflight on Linux".into(),
        },
    }
}

fn port_check(addr: SocketAddr, what: &str) -> Check {
    match TcpListener::bind(addr) {
        Ok(_) => Check {
            name: format!("port {}", addr.port()),
            ok: true,
            detail: format!("{addr} free ({what})"),
            fix: String::new(),
        },
        Err(e) => Check {
            name: format!("port {}", addr.port()),
            ok: false,
            detail: format!("{addr} ({what}): {e}"),
            fix: format!(
                "find what holds it with `ss -ltnp 'sport = :{}'` and stop it, or give {what} \
                 another port",
                addr.port()
            ),
        },
    }
}

/// Free bytes on `dir`'s file system, from `df -Pk` (no libc binding needed).
fn free_bytes(dir: &Path) -> Result<u64, String> {
    let out = std::process::Command::new("df")
        .arg("-Pk")
        .arg(dir)
        .output()
        .map_err(|e| format!("cannot run df: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|k| k.parse::<u64>().ok())
        .map(|k| k * 1024)
        .ok_or_else(|| format!("cannot read df's output: {text}"))
}

/// `fate node`/`fate router`/`fate standalone` processes other than this one.
fn fate_processes() -> Vec<(u32, String)> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let args: Vec<String> = String::from_utf8_lossy(&cmdline)
            .split('\0')
            .filter(|a| !a.is_empty())
            .map(String::from)
            .collect();
        let is_fate = args.first().is_some_and(|a| {
            Path::new(a)
                .file_name()
                .is_some_and(|f| f.to_string_lossy() == "fate")
        });
        if is_fate
            && args
                .get(1)
                .is_some_and(|w| ["node", "router", "standalone"].contains(&w.as_str()))
        {
            found.push((pid, args.join(" ")));
        }
    }
    found.sort();
    found
}

fn checks(config: Option<&Path>) -> Result<Vec<Check>> {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let mut out = vec![
        limit_check(&limits, "Max open files", "ulimit nofile", "-n", "nofile"),
        limit_check(&limits, "Max processes", "ulimit nproc", "-u", "nproc"),
    ];
    let data_dir: PathBuf;
    match config {
        Some(path) => {
            let (node, base) = crate::site::NodeConfig::load(path)?;
            out.push(port_check(node.api, "the node's API (node.yaml api)"));
            out.push(port_check(node.grpc, "the node's gRPC (node.yaml grpc)"));
            if let Some(router) = &node.router_config {
                let router = base.join(router);
                let text = std::fs::read_to_string(&router).unwrap_or_default();
                if let Ok(file) = serde_yaml_ng::from_str::<crate::site::RouterFile>(&text) {
                    out.push(port_check(
                        file.listen,
                        "the site router (router.yaml listen)",
                    ));
                }
            }
            data_dir = base.join(&node.data_dir);
        }
        None => {
            for (port, what) in [
                (9360, "FATE-Flow's gRPC"),
                (9370, "the site router (OSX/rollsite)"),
                (9380, "FATE-Flow's HTTP API and the board"),
                (8080, "FATE-Board's port"),
            ] {
                out.push(port_check(SocketAddr::from(([0, 0, 0, 0], port)), what));
            }
            data_dir = PathBuf::from(".");
        }
    }
    // The data dir may not exist yet: its nearest existing parent holds it.
    let mut at = data_dir.as_path();
    while !at.exists() {
        at = at.parent().unwrap_or(Path::new("/"));
    }
    out.push(match free_bytes(at) {
        Ok(b) => Check {
            name: "disk".into(),
            ok: b >= MIN_FREE_GIB << 30,
            detail: format!(
                "{:.1} GiB free at {} (at least {MIN_FREE_GIB} GiB)",
                b as f64 / (1u64 << 30) as f64,
                at.display()
            ),
            fix: format!(
                "free space on {}'s file system or put data_dir on a larger disk",
                at.display()
            ),
        },
        Err(e) => Check {
            name: "disk".into(),
            ok: false,
            detail: e,
            fix: "check that df works on the data dir".into(),
        },
    });
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let swap_kib = meminfo
        .lines()
        .find(|l| l.starts_with("SwapTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok());
    out.push(match swap_kib {
        Some(k) if k > 0 => Check {
            name: "swap".into(),
            ok: true,
            detail: format!("{} MiB", k / 1024),
            fix: String::new(),
        },
        _ => Check {
            name: "swap".into(),
            ok: false,
            detail: "no swap".into(),
            fix: "add swap so that a party under memory pressure slows instead of being \
                  killed: `fallocate -l 16G /swapfile && chmod 600 /swapfile && mkswap \
                  /swapfile && swapon /swapfile` (and a line in /etc/fstab)"
                .into(),
        },
    });
    let procs = fate_processes();
    out.push(Check {
        name: "leftover processes".into(),
        ok: procs.is_empty(),
        detail: if procs.is_empty() {
            "no fate node, router or standalone runs".into()
        } else {
            procs
                .iter()
                .map(|(pid, cmd)| format!("pid {pid}: {cmd}"))
                .collect::<Vec<_>>()
                .join("; ")
        },
        fix: format!(
            "stop them first (`fate deploy local --stop --dir DIR`, `fate compose deploy \
             --delete --local ...`, or `kill {}`)",
            procs
                .iter()
                .map(|(p, _)| p.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        ),
    });
    Ok(out)
}

/// Runs the checks, prints them (a table, or JSON) and fails when one failed.
pub fn preflight(config: Option<&Path>, json_out: bool) -> Result<()> {
    let checks = checks(config)?;
    let failed = checks.iter().filter(|c| !c.ok).count();
    if json_out {
        let rows: Vec<Value> = checks
            .iter()
            .map(|c| {
                json!({
                    "check": c.name,
                    "ok": c.ok,
                    "detail": c.detail,
                    "fix": if c.ok { None } else { Some(&c.fix) },
                })
            })
            .collect();
        println!("{}", json!({"ok": failed == 0, "checks": rows}));
    } else {
        println!("{:<20} {:<6} DETAIL", "CHECK", "STATE");
        for c in &checks {
            println!(
                "{:<20} {:<6} {}",
                c.name,
                if c.ok { "ok" } else { "FAILED" },
                c.detail
            );
            if !c.ok {
                println!("{:<27} fix: {}", "", c.fix);
            }
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} preflight check(s) failed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_read_from_proc_self_limits() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max processes             4096                 4096                 processes\n\
                      Max open files            1024                 1048576              files\n";
        let c = limit_check(limits, "Max open files", "ulimit nofile", "-n", "nofile");
        assert!(!c.ok);
        assert_eq!(c.detail, "1024 (at least 65535)");
        assert!(c.fix.contains("ulimit -n 65535"), "{}", c.fix);
        let c = limit_check(
            &limits.replace("4096  ", "unlimited"),
            "Max processes",
            "ulimit nproc",
            "-u",
            "nproc",
        );
        assert!(c.ok, "{}", c.detail);
    }
}
