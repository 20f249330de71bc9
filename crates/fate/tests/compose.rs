//! `fate compose` (issue 17): FATE's parties.conf rendered into per-party docker-compose
//! directories and tars, the compose files checked by Debian's `docker-compose config`, and the
//! same rendered files run as processes on this machine (`deploy --local`), each party on its
//! own loopback address, with the toy and breast PSI + CoordinatedLR across them.

mod common;

use common::{SERIAL, fate, text};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;

/// FATE 2.2's parties.conf for three parties on 127.0.0.21-23 (each its own "host").
fn three_parties(exchange: &str) -> String {
    format!(
        "#!/bin/bash\n\
         \n\
         user=fate\n\
         dir=/data/projects/fate\n\
         party_list=(9999 10000 8888)\n\
         party_ip_list=(127.0.0.21 127.0.0.22 127.0.0.23)\n\
         serving_ip_list=(127.0.0.21 127.0.0.22 127.0.0.23)\n\
         \n\
         # Engines:\n\
         computing=Eggroll\n\
         federation=OSX\n\
         storage=Eggroll\n\
         algorithm=Basic\n\
         device=CPU\n\
         compute_core=2\n\
         gpu_count=1\n\
         \n\
         exchangeip={exchange}\n\
         \n\
         # modify if you are going to use an external db\n\
         mysql_ip=mysql\n\
         mysql_user=fate\n\
         mysql_password='s3cret;p$w'\n\
         mysql_db=fate_flow\n\
         serverTimezone=UTC\n\
         \n\
         fateboard_username=admin\n\
         fateboard_password=admin\n\
         notebook_hashed_password=\n"
    )
}

fn run(args: &[&str], paths: &[&Path]) -> Output {
    let mut c = fate();
    c.args(args);
    for p in paths {
        c.arg(p);
    }
    c.output().unwrap()
}

fn ok_json(out: &Output, what: &str) -> Value {
    assert!(out.status.success(), "{what} failed: {}", text(out));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{what} printed no JSON ({e}): {}", text(out)))
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The entry names of a rendered `confs-<name>.tar` (gzip, as generate_config.sh's `tar -czf`).
fn tar_entries(tar: &Path) -> Vec<String> {
    let f = std::fs::File::open(tar).unwrap();
    let mut a = tar::Archive::new(flate2::read::GzDecoder::new(f));
    a.entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().to_string())
        .collect()
}

/// Debian's docker-compose (1.29) validating a compose file offline, as `docker compose config`
/// does. The test fails, not skips, when the client is missing (scripts/setup.sh installs it
/// under FATE_SETUP=tests).
fn docker_compose_config(dir: &Path) {
    let out = std::process::Command::new("docker-compose")
        .args(["config", "-q"])
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "docker-compose is needed ({e}): apt-get install --no-install-recommends \
                 docker-compose, or FATE_SETUP=tests scripts/setup.sh"
            )
        });
    assert!(
        out.status.success(),
        "docker-compose config refused {}: {}",
        dir.join("docker-compose.yml").display(),
        text(&out)
    );
}

/// A `deploy --local` run, deleted on drop (also when the test fails midway).
struct Local {
    conf: PathBuf,
    out: PathBuf,
    dir: PathBuf,
}

impl Local {
    fn deploy(&self, targets: &[&str], extra: &[&str]) -> Output {
        let mut c = fate();
        c.args(["compose", "deploy"])
            .args(targets)
            .args(extra)
            .arg("-c")
            .arg(&self.conf)
            .arg("-o")
            .arg(&self.out)
            .arg("--dir")
            .arg(&self.dir);
        c.output().unwrap()
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        let _ = self.deploy(&["all"], &["--local", "--delete"]);
    }
}

fn alive(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

fn toy(api: &str, guest: &str, hosts: &str) -> Value {
    let out = fate()
        .args([
            "toy",
            "--json",
            "--timeout",
            "120",
            "--guest",
            guest,
            "--host",
            hosts,
        ])
        .args(["--data-num", "1024", "--api", api])
        .output()
        .unwrap();
    let v = ok_json(&out, &format!("toy {guest} -> {hosts}"));
    assert_eq!(v["status"], "success", "toy {guest} -> {hosts}: {v}");
    v
}

#[test]
fn three_parties_from_parties_conf_run_the_toy_and_breast_psi_lr_as_processes() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let conf = tmp.path().join("parties.conf");
    std::fs::write(&conf, three_parties("")).unwrap();
    let out = tmp.path().join("outputs");
    let v = ok_json(
        &run(
            &["compose", "render", "--json", "-c"],
            &[&conf, Path::new("-o"), &out],
        ),
        "render",
    );
    assert_eq!(v["tls"], true, "{v}");
    let names: Vec<&str> = v["confs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["9999", "10000", "8888"]);
    let notes = v["notes"].to_string();
    assert!(notes.contains("serving_ip_list: not used"), "{notes}");
    assert!(notes.contains("fateboard_password=admin"), "{notes}");

    // The route tables: each router sends a peer to the peer's host:9370 over TLS, its own
    // party's commands and frames to its node on 9360; the node goes through its router.
    let ips = [
        ("9999", "127.0.0.21"),
        ("10000", "127.0.0.22"),
        ("8888", "127.0.0.23"),
    ];
    for (party, ip) in ips {
        let confs = out.join(format!("confs-{party}"));
        let rt = read_json(&confs.join("confs/router/route_table.json"));
        assert_eq!(rt["self_party"], serde_json::json!([party]), "{rt}");
        assert_eq!(
            rt["route_table"][party]["fateflow"][0],
            serde_json::json!({"ip": ip, "port": 9360, "is_secure": true}),
            "{rt}"
        );
        for (peer, peer_ip) in ips.iter().filter(|(p, _)| *p != party) {
            assert_eq!(
                rt["route_table"][peer]["default"][0],
                serde_json::json!({"ip": peer_ip, "port": 9370, "is_secure": true}),
                "{party} -> {peer}: {rt}"
            );
        }
        assert!(
            rt["route_table"].get("default").is_none(),
            "direct mode: {rt}"
        );
        let nrt = read_json(&confs.join("confs/node/node_route_table.json"));
        assert_eq!(
            nrt["route_table"]["default"]["default"][0],
            serde_json::json!({"ip": ip, "port": 9370, "is_secure": true})
        );
        let node_yaml = std::fs::read_to_string(confs.join("confs/node/node.yaml")).unwrap();
        assert!(
            node_yaml.contains(&format!("api: {ip}:9380")),
            "{node_yaml}"
        );
        assert!(node_yaml.contains("cores: 2"), "{node_yaml}");
        assert!(
            node_yaml.contains("url: mysql://fate:s3cret%3Bp%24w@127.0.0.1:3306/fate_flow"),
            "{node_yaml}"
        );
        let compose = std::fs::read_to_string(confs.join("docker-compose.yml")).unwrap();
        assert!(compose.contains("mysql:8.0.28"), "{compose}");
        docker_compose_config(&confs);
        // Compose interpolates `$`: the password MySQL gets is the one in node.yaml's URL.
        let resolved = std::process::Command::new("docker-compose")
            .arg("config")
            .current_dir(&confs)
            .output()
            .unwrap();
        // (`config` prints the interpolated file escaped again, so a literal `$` shows as `$$`;
        // an unescaped `$w` would print `s3cret;p` and warn that `w` is not set.)
        let shown = text(&resolved);
        assert!(
            shown.contains("MYSQL_PASSWORD: s3cret;p$$w") && !shown.contains("not set"),
            "{shown}"
        );
        // The tar carries the party's own key and the CA certificate, never the CA's key or
        // another party's key.
        let entries = tar_entries(&out.join(format!("confs-{party}.tar")));
        for want in [
            format!("confs-{party}/docker-compose.yml"),
            format!("confs-{party}/confs/node/node.yaml"),
            format!("confs-{party}/confs/router/route_table.json"),
            format!("confs-{party}/confs/certs/ca.pem"),
            format!("confs-{party}/confs/certs/{party}.key"),
        ] {
            assert!(entries.contains(&want), "{want} not in {entries:?}");
        }
        assert!(
            !entries.iter().any(|e| e.ends_with("ca.key")
                || (e.ends_with(".key") && !e.ends_with(&format!("/{party}.key")))),
            "{entries:?}"
        );
    }
    assert!(out.join("ca/ca.key").is_file());

    // The same files as processes, each party on its own loopback address.
    let local = Local {
        conf: conf.clone(),
        out: out.clone(),
        dir: tmp.path().join("run"),
    };
    let d = ok_json(
        &local.deploy(&["all"], &["--local", "--json"]),
        "deploy --local",
    );
    let procs = d["deployment"]["processes"].as_array().unwrap().clone();
    assert_eq!(procs.len(), 6, "{d}");
    assert!(d["notes"].to_string().contains("SQLite"), "{d}");
    let api = |party: &str| {
        d["deployment"]["parties"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["party_id"] == party)
            .and_then(|p| p["api"].as_str())
            .unwrap_or_else(|| panic!("no party {party}: {d}"))
            .to_string()
    };
    assert_eq!(api("10000"), "http://127.0.0.22:9380");
    // What runs is the unpacked tar's node.yaml.
    let node_yaml = local.dir.join("confs-9999/confs/node/node.yaml");
    assert_eq!(
        std::fs::read(&node_yaml).unwrap(),
        std::fs::read(out.join("confs-9999/confs/node/node.yaml")).unwrap()
    );

    toy(&api("9999"), "9999", "10000");
    toy(&api("8888"), "8888", "9999,10000");

    // Breast PSI + CoordinatedLR across guest 9999 and host/arbiter 10000: the AUC and KS of
    // the standalone run.
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    for (party, conf) in [
        ("9999", "breast_hetero_guest.json"),
        ("10000", "breast_hetero_host.json"),
    ] {
        let out = fate()
            .args(["data", "upload-file", "--json", "-c"])
            .arg(examples.join("upload").join(conf))
            .args(["--api", &api(party)])
            .output()
            .unwrap();
        assert!(out.status.success(), "upload at {party}: {}", text(&out));
    }
    let v = ok_json(
        &fate()
            .args(["job", "submit", "--wait", "--json", "-c"])
            .arg(examples.join("pipeline/breast_psi_lr.yaml"))
            .args(["--api", &api("9999")])
            .output()
            .unwrap(),
        "breast_psi_lr",
    );
    assert_eq!(v["status"], "success", "{v}");
    let metric = |name: &str| {
        v["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["metric"] == name)
            .and_then(|m| m["value"].as_f64())
            .unwrap_or_else(|| panic!("no {name}: {v}"))
    };
    let (auc, ks) = (metric("auc"), metric("ks"));
    assert!(
        (auc - 0.994411).abs() <= 1e-6 && (ks - 0.936909).abs() <= 1e-6,
        "auc {auc} ks {ks}; the standalone run gives 0.994411 0.936909"
    );

    // fate doctor over the rendered node.yaml: every hop to both peers answers.
    let out = fate()
        .args(["doctor", "--json", "-c"])
        .arg(&node_yaml)
        .output()
        .unwrap();
    assert!(out.status.success(), "doctor: {}", text(&out));

    // --delete stops every process of the deployment.
    let out = local.deploy(&["all"], &["--local", "--delete", "--json"]);
    let v = ok_json(&out, "deploy --delete --local");
    let stopped = v["stopped"].as_array().unwrap();
    assert_eq!(stopped.len(), 6, "{v}");
    assert!(stopped.iter().all(|s| s["state"] == "stopped"), "{v}");
    for p in &procs {
        assert!(
            !alive(p["pid"].as_u64().unwrap()),
            "{} still runs",
            p["name"]
        );
    }
}

#[test]
fn an_exchange_setup_renders_the_exchange_and_runs_the_toy_through_it() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let conf = tmp.path().join("parties.conf");
    std::fs::write(&conf, three_parties("127.0.0.20")).unwrap();
    let out = tmp.path().join("outputs");
    let v = ok_json(
        &run(
            &["compose", "render", "--json", "-c"],
            &[&conf, Path::new("-o"), &out],
        ),
        "render",
    );
    let names: Vec<&str> = v["confs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["9999", "10000", "8888", "exchange"]);
    for name in &names {
        docker_compose_config(&out.join(format!("confs-{name}")));
    }
    // Parties send everything else to the exchange (9371, its certificate's name); the
    // exchange lists every party's router.
    let rt = read_json(&out.join("confs-9999/confs/router/route_table.json"));
    assert_eq!(
        rt["route_table"]["default"]["default"][0],
        serde_json::json!({"ip": "127.0.0.20", "port": 9371, "is_secure": true, "hostname": "exchange.fate.org"}),
        "{rt}"
    );
    assert!(rt["route_table"].get("10000").is_none(), "{rt}");
    let ex = read_json(&out.join("confs-exchange/confs/router/route_table.json"));
    assert_eq!(
        ex["route_table"]["8888"]["default"][0],
        serde_json::json!({"ip": "127.0.0.23", "port": 9370, "is_secure": true}),
        "{ex}"
    );
    let local = Local {
        conf: conf.clone(),
        out: out.clone(),
        dir: tmp.path().join("run"),
    };
    // One party at a time, as docker_deploy.sh <party>; then the exchange.
    for target in ["9999", "10000", "exchange"] {
        let o = local.deploy(&[target], &["--local", "--json"]);
        assert!(o.status.success(), "deploy {target}: {}", text(&o));
    }
    toy("http://127.0.0.21:9380", "9999", "10000");
}

#[test]
fn a_bad_parties_conf_is_an_error_naming_variable_and_line_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let good = three_parties("");
    let cases: Vec<(String, &str)> = vec![
        (
            good.replace("computing=Eggroll", "computing=Spark"),
            ":10: computing=Spark: not supported by `fate compose` yet",
        ),
        (
            good.replace("federation=OSX", "federation=Pulsar"),
            ":11: federation=Pulsar: not supported",
        ),
        (
            good.replace("device=CPU", "device=TPU"),
            ":14: device=TPU: not one of CPU",
        ),
        (
            good.replace("dir=/data/projects/fate", "dir=$(pwd)/fate"),
            ":4: dir: `$`",
        ),
        (good.replace("user=fate", "user=`whoami`"), ":3: user: ```"),
        (
            good.replace("compute_core=2", "compute_cores=2"),
            ":15: compute_cores: unknown variable",
        ),
        (
            good.replace(
                "party_ip_list=(127.0.0.21 127.0.0.22 127.0.0.23)",
                "party_ip_list=(127.0.0.21 127.0.0.22)",
            ),
            ":6: party_ip_list: 2 addresses for the 3 parties of party_list (line 5)",
        ),
        (
            good.replace("127.0.0.23)\nserving", "host-c)\nserving"),
            ":6: party_ip_list[2]=\"host-c\" (party 8888): not an IP address",
        ),
        (
            good.replace("exchangeip=", "exchangeip=$EXCHANGE"),
            ":18: exchangeip: `$`",
        ),
        (
            good.replace("serverTimezone=UTC", "serverTimezone=Asia/Shanghai"),
            ":25: serverTimezone=Asia/Shanghai",
        ),
        (
            format!("{good}eval rm -rf /\n"),
            ":30: `eval rm -rf /` is not a variable assignment",
        ),
    ];
    for (i, (text_, want)) in cases.iter().enumerate() {
        let conf = tmp.path().join(format!("bad-{i}.conf"));
        std::fs::write(&conf, text_).unwrap();
        let out = tmp.path().join(format!("out-{i}"));
        let o = run(
            &["compose", "render", "-c"],
            &[&conf, Path::new("-o"), &out],
        );
        assert!(!o.status.success(), "case {i} rendered");
        let err = text(&o);
        let expected = format!("{}{want}", conf.display());
        assert!(
            err.contains(&expected),
            "case {i}: want {expected:?} in {err}"
        );
        assert!(!out.exists(), "case {i}: {} was written", out.display());
    }
}

#[test]
fn deploy_to_hosts_does_what_docker_deploy_sh_does() {
    let tmp = tempfile::tempdir().unwrap();
    let conf = tmp.path().join("parties.conf");
    // Documentation addresses (TEST-NET-3): never this machine's.
    std::fs::write(
        &conf,
        "user=deployer\ndir=/opt/fate\nparty_list=(9999 10000)\nparty_ip_list=(203.0.113.1 203.0.113.2)\n",
    )
    .unwrap();
    let out = tmp.path().join("outputs");
    let o = run(
        &["compose", "render", "-c"],
        &[&conf, Path::new("-o"), &out],
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = run(
        &[
            "compose",
            "deploy",
            "10000",
            "--dry-run",
            "--ssh-port",
            "2222",
            "-c",
        ],
        &[&conf, Path::new("-o"), &out],
    );
    assert!(o.status.success(), "{}", text(&o));
    let printed = String::from_utf8_lossy(&o.stdout).to_string();
    let tar = out.join("confs-10000.tar");
    assert!(
        printed.contains(&format!(
            "scp -P 2222 {} deployer@203.0.113.2:~/",
            tar.display()
        )),
        "{printed}"
    );
    assert!(
        printed.contains("ssh -p 2222 deployer@203.0.113.2 "),
        "{printed}"
    );
    assert!(
        printed.contains("cd /opt/fate && tar -xzf confs-10000.tar"),
        "{printed}"
    );
    assert!(printed.contains("$C up -d"), "{printed}");
    assert!(!printed.contains("203.0.113.1"), "only 10000: {printed}");
    let o = run(
        &["compose", "deploy", "all", "--delete", "--dry-run", "-c"],
        &[&conf, Path::new("-o"), &out],
    );
    let printed = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success(), "{}", text(&o));
    assert!(!printed.contains("scp"), "{printed}");
    assert_eq!(
        printed.matches("cd /opt/fate/confs-").count(),
        2,
        "{printed}"
    );
    assert!(printed.contains("$C down"), "{printed}");
    // A party not in party_list, and an exchange parties.conf does not have, are named.
    let o = run(
        &["compose", "deploy", "7777", "--dry-run", "-c"],
        &[&conf, Path::new("-o"), &out],
    );
    assert!(!o.status.success());
    assert!(
        text(&o).contains("7777: not a party of party_list (9999 10000)"),
        "{}",
        text(&o)
    );
    let o = run(
        &["compose", "deploy", "exchange", "--dry-run", "-c"],
        &[&conf, Path::new("-o"), &out],
    );
    assert!(
        text(&o).contains("exchange: parties.conf sets no exchangeip"),
        "{}",
        text(&o)
    );
}

/// `fate doctor --preflight` (issue 17, the ansible guide's host checks): every check has a
/// verdict, a failed one says how to fix it, and the exit status is the verdict. Against the
/// rendered node.yaml of a party on 127.0.0.41, a port the test holds and a router it left
/// running are named.
#[test]
fn preflight_names_each_failed_check_and_how_to_fix_it() {
    let tmp = tempfile::tempdir().unwrap();
    let conf = tmp.path().join("parties.conf");
    std::fs::write(
        &conf,
        "party_list=(9999 10000)\nparty_ip_list=(127.0.0.41 127.0.0.42)\n",
    )
    .unwrap();
    let out = tmp.path().join("outputs");
    let o = run(
        &["compose", "render", "-c"],
        &[&conf, Path::new("-o"), &out],
    );
    assert!(o.status.success(), "{}", text(&o));
    let node_yaml = out.join("confs-9999/confs/node/node.yaml");
    let preflight = || {
        let o = run(&["doctor", "--preflight", "--json", "-c"], &[&node_yaml]);
        let v: Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("preflight printed no JSON ({e}): {}", text(&o)));
        let checks = v["checks"].as_array().unwrap().clone();
        let failed = checks.iter().filter(|c| c["ok"] == false).count();
        assert_eq!(o.status.success(), failed == 0, "{v}");
        assert_eq!(v["ok"], failed == 0, "{v}");
        for c in &checks {
            if c["ok"] == false {
                assert!(
                    c["fix"].as_str().is_some_and(|f| f.len() > 10),
                    "no fix for {c}"
                );
            }
        }
        checks
    };
    let find = |checks: &[Value], name: &str| -> Value {
        checks
            .iter()
            .find(|c| c["check"] == name)
            .unwrap_or_else(|| panic!("no check {name}: {checks:?}"))
            .clone()
    };
    let checks = preflight();
    let names: Vec<&str> = checks
        .iter()
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    for want in [
        "ulimit nofile",
        "ulimit nproc",
        "port 9380",
        "port 9360",
        "port 9370",
        "disk",
        "swap",
        "leftover processes",
    ] {
        assert!(names.contains(&want), "{want} not in {names:?}");
    }
    assert_eq!(find(&checks, "port 9380")["ok"], true, "{checks:?}");
    // Hold the node's API port and leave its router running: both are named.
    let _held = std::net::TcpListener::bind("127.0.0.41:9380").unwrap();
    let mut router = fate()
        .args(["router", "-c"])
        .arg(out.join("confs-9999/confs/router/router.yaml"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::net::TcpStream::connect("127.0.0.41:9370").is_err() {
        assert!(std::time::Instant::now() < deadline, "router did not start");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let checks = preflight();
    let _ = router.kill();
    let _ = router.wait();
    let api = find(&checks, "port 9380");
    assert_eq!(api["ok"], false, "{api}");
    assert!(
        api["detail"].as_str().unwrap().contains("127.0.0.41:9380"),
        "{api}"
    );
    assert!(
        api["fix"]
            .as_str()
            .unwrap()
            .contains("ss -ltnp 'sport = :9380'"),
        "{api}"
    );
    assert_eq!(find(&checks, "port 9370")["ok"], false, "{checks:?}");
    let left = find(&checks, "leftover processes");
    assert_eq!(left["ok"], false, "{left}");
    assert!(
        left["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("pid {}", router.id())),
        "{left}"
    );
    assert!(
        left["fix"]
            .as_str()
            .unwrap()
            .contains(&router.id().to_string()),
        "{left}"
    );
}

/// `fate service` (issue 17, bare metal): a party's node and router from its rendered
/// node.yaml start under supervisors, the node comes back after `kill -9`, `restart router`
/// gives a new router, and `stop` leaves nothing running.
#[test]
fn service_starts_restarts_after_a_crash_stops_and_reports_status() {
    let tmp = tempfile::tempdir().unwrap();
    let conf = tmp.path().join("parties.conf");
    std::fs::write(
        &conf,
        "party_list=(9999 10000)\nparty_ip_list=(127.0.0.51 127.0.0.52)\n",
    )
    .unwrap();
    let out = tmp.path().join("outputs");
    let o = run(
        &["compose", "render", "-c"],
        &[&conf, Path::new("-o"), &out],
    );
    assert!(o.status.success(), "{}", text(&o));
    let node_yaml = out.join("confs-9999/confs/node/node.yaml");
    struct Stop(PathBuf);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = fate()
                .args(["service", "stop", "all", "-c"])
                .arg(&self.0)
                .output();
        }
    }
    let _stop = Stop(node_yaml.clone());
    let service = |args: &[&str]| -> Value {
        let o = run(
            &[&["service"], args, &["--json", "-c"]].concat(),
            &[&node_yaml],
        );
        ok_json(&o, &format!("service {args:?}"))
    };
    let row = |v: &Value, name: &str| -> Value {
        v["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["service"] == name)
            .unwrap_or_else(|| panic!("no {name}: {v}"))
            .clone()
    };
    let api_answers = || {
        ureq::get("http://127.0.0.51:9380/v2/site/info/query")
            .timeout(std::time::Duration::from_secs(2))
            .call()
            .is_ok()
    };
    let wait = |what: &str, f: &dyn Fn() -> bool| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !f() {
            assert!(std::time::Instant::now() < deadline, "{what}");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    };
    let v = service(&["start", "all"]);
    for name in ["node", "router"] {
        assert_eq!(row(&v, name)["state"], "running", "{v}");
    }
    wait("the node's API did not answer", &api_answers);
    let node_pid = row(&v, "node")["pid"].as_u64().unwrap();
    let node_sup = row(&v, "node")["supervisor"].as_u64().unwrap();
    // A second start changes nothing.
    let again = service(&["start", "node"]);
    assert_eq!(row(&again, "node")["pid"], node_pid, "{again}");

    // kill -9: the supervisor starts it again.
    assert!(
        std::process::Command::new("kill")
            .args(["-KILL", &node_pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    wait("the node was not restarted", &|| {
        let v = service(&["status", "node"]);
        let r = row(&v, "node");
        r["state"] == "running" && r["pid"].as_u64() != Some(node_pid) && r["restarts"] == 1
    });
    wait("the restarted node's API did not answer", &api_answers);
    let v = service(&["status", "node"]);
    assert_eq!(row(&v, "node")["supervisor"], node_sup, "{v}");

    let router_pid = row(&service(&["status", "router"]), "router")["pid"].clone();
    let v = service(&["restart", "router"]);
    assert_eq!(row(&v, "router")["state"], "running", "{v}");
    assert_ne!(row(&v, "router")["pid"], router_pid, "{v}");
    assert!(!alive(router_pid.as_u64().unwrap()));

    let before = service(&["status", "all"]);
    let pids: Vec<u64> = ["node", "router"]
        .iter()
        .flat_map(|n| {
            let r = row(&before, n);
            [
                r["pid"].as_u64().unwrap(),
                r["supervisor"].as_u64().unwrap(),
            ]
        })
        .collect();
    let v = service(&["stop", "all"]);
    for name in ["node", "router"] {
        assert_eq!(row(&v, name)["state"], "stopped", "{v}");
    }
    for pid in pids {
        assert!(!alive(pid), "pid {pid} still runs");
    }
    assert!(!api_answers());

    // Hosts with systemd: unit files that `systemd-analyze verify` accepts without a word.
    let units = tmp.path().join("units");
    let v = service(&["units", "-o", units.to_str().unwrap()]);
    let files: Vec<PathBuf> = v["units"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| PathBuf::from(u.as_str().unwrap()))
        .collect();
    assert_eq!(files.len(), 2, "{v}");
    let node_unit = std::fs::read_to_string(units.join("fate-node-9999.service")).unwrap();
    assert!(
        node_unit.contains("After=network-online.target fate-router-9999.service"),
        "{node_unit}"
    );
    assert!(node_unit.contains("Restart=on-failure"), "{node_unit}");
    assert!(
        node_unit.contains(&format!(
            "--config {}",
            node_yaml.canonicalize().unwrap().display()
        )),
        "{node_unit}"
    );
    let o = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .args(&files)
        .output()
        .expect("systemd-analyze is needed (Debian's systemd; scripts/setup.sh FATE_SETUP=tests)");
    assert!(
        o.status.success() && o.stdout.is_empty() && o.stderr.is_empty(),
        "systemd-analyze verify: {}",
        text(&o)
    );
}
