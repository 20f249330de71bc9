//! Parties on separate processes: `fate deploy local` starts a node and a site router per party
//! (and an exchange), then jobs run across them through the routers, with and without mutual
//! TLS. Faults: a party's node killed mid-job, a wrong certificate, an unknown party and a
//! missing route, each answered with an error that names the party and the hop.

mod common;
// Real RabbitMQ brokers, shared with the RabbitMQ transport's own tests.
#[path = "../../fate-federation-rabbitmq/tests/broker/mod.rs"]
mod rabbitmq_broker;
// Real Pulsar standalone brokers, shared with the Pulsar transport's own tests.
#[path = "../../fate-federation-pulsar/tests/broker/mod.rs"]
mod pulsar_broker;

use common::{Deployment, SERIAL, fate, job_of, latest_job_id, text, upload, wait_end};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn toy_runs_across_processes_in_direct_mode() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = Deployment::start("9999,10000", &[]);
    let job_id = d.toy_ok("9999", "10000");
    let (ok, report) = d.doctor("9999", &[]);
    assert!(ok, "{report}");
    assert_eq!(report["checks"].as_array().unwrap().len(), 3, "{report}");

    // Partner calls reach a node only through its router: the client API does not serve
    // them, whatever header a local process sends (before, `x-fate-src-party: 9999` let any
    // local process stop or create jobs at 10000 in 9999's name).
    let before = job_of(&d, "10000", &job_id);
    for path in [
        "/v2/partner/job/stop",
        "/v2/partner/job/create",
        "/v2/partner/job/collect",
    ] {
        let r = ureq::post(&format!("{}{path}", d.api("10000")))
            .set("x-fate-src-party", "9999")
            .send_json(serde_json::json!({"job_id": job_id}));
        match r {
            Err(ureq::Error::Status(404, _)) => {}
            other => panic!("{path} answered on the client API: {other:?}"),
        }
    }
    assert_eq!(job_of(&d, "10000", &job_id)["status"], before["status"]);

    // A FATE 1.x job asking for SPARK at the host, whose node has no Spark Connect server:
    // the host refuses it when the initiator creates it there, the submit fails naming the
    // host and the field, and the job exists at neither node.
    let refused: Value = ureq::post(&format!("{}/v1/job/submit", d.api("9999")))
        .send_json(serde_json::json!({
            "dsl": {"components": {"secure_add_0": {"module": "SecureAddExample"}}},
            "runtime_conf": {
                "dsl_version": 2,
                "initiator": {"role": "guest", "party_id": 9999},
                "role": {"guest": [9999], "host": [10000]},
                "job_parameters": {"common": {"computing_engine": "STANDALONE"},
                                   "role": {"host": {"0": {"computing_engine": "SPARK"}}}},
            }
        }))
        .unwrap()
        .into_json()
        .unwrap();
    let msg = refused["retmsg"].as_str().unwrap_or_default();
    assert_ne!(refused["retcode"], 0, "{refused}");
    for words in [
        "party 10000",
        "dag.party_tasks.host_10000.conf.computing_engine",
        "(party host 10000)",
        "has none configured",
    ] {
        assert!(msg.contains(words), "{words:?} not in {msg}");
    }
    // FATE 1.x `federation_engine` PULSAR (or RABBITMQ) on nodes whose data goes through
    // their routers: refused at submit naming the party and the field, and nothing created.
    for engine in ["PULSAR", "RABBITMQ"] {
        let refused: Value = ureq::post(&format!("{}/v1/job/submit", d.api("9999")))
            .send_json(serde_json::json!({
                "dsl": {"components": {"secure_add_0": {"module": "SecureAddExample"}}},
                "runtime_conf": {
                    "dsl_version": 2,
                    "initiator": {"role": "guest", "party_id": 9999},
                    "role": {"guest": [9999], "host": [10000]},
                    "job_parameters": {"common": {"federation_engine": engine}},
                }
            }))
            .unwrap()
            .into_json()
            .unwrap();
        assert_ne!(refused["retcode"], 0, "{refused}");
        let msg = refused["retmsg"].as_str().unwrap_or_default();
        for words in [
            "federation_engine",
            "(party guest 9999)",
            "through its site router",
            "`federation: pulsar`",
        ] {
            assert!(msg.contains(words), "{engine}: {words:?} not in {msg}");
        }
    }
    for party in ["9999", "10000"] {
        assert_eq!(
            latest_job_id(&d, party).as_deref(),
            Some(job_id.as_str()),
            "a refused job was left at {party}"
        );
    }
}

#[test]
fn toy_runs_through_an_exchange_with_mutual_tls_for_two_and_three_parties() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = Deployment::start("9999,10000,8888", &["--exchange", "--tls"]);
    assert!(d.path().join("certs/exchange.crt").exists());
    d.toy_ok("9999", "10000");
    d.toy_ok("9999", "10000,8888");
    // Behind the exchange the site route tables list no peer: `fate doctor` checks the peers
    // the deployment wrote into node.yaml, each through the exchange.
    let (ok, report) = d.doctor("10000", &[]);
    assert!(ok, "{report}");
    let hops: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["hop"].as_str().unwrap())
        .collect();
    assert!(
        hops.contains(&"route to party 9999") && hops.contains(&"route to party 8888"),
        "{report}"
    );
    // Without `peers:` nothing names a peer: doctor fails and says what to pass.
    let node_yaml = d.path().join("8888/node.yaml");
    let text_before = std::fs::read_to_string(&node_yaml).unwrap();
    let without: String = {
        let mut v: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text_before).unwrap();
        v.as_mapping_mut().unwrap().remove("peers");
        serde_yaml_ng::to_string(&v).unwrap()
    };
    std::fs::write(&node_yaml, without).unwrap();
    let (ok, report) = d.doctor("8888", &[]);
    assert!(!ok, "{report}");
    assert!(report.to_string().contains("pass --party"), "{report}");
    std::fs::write(&node_yaml, text_before).unwrap();
}

#[test]
fn toy_runs_directly_with_mutual_tls_for_three_parties() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = Deployment::start("9999,10000,8888", &["--tls"]);
    d.toy_ok("9999", "10000,8888");
    let (ok, report) = d.doctor("10000", &[]);
    assert!(ok, "{report}");
}

#[test]
fn a_party_killed_mid_job_ends_the_job_everywhere_naming_it() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = Deployment::start("9999,10000,8888", &[]);
    // A toy big enough to be running when the node of 8888 dies.
    let toy = {
        let mut c = fate();
        c.args(["toy", "--json", "--timeout", "120", "--guest", "9999"])
            .args(["--host", "10000,8888", "--data-num", "3000000", "--api"])
            .arg(d.api("9999"));
        c.spawn().unwrap()
    };
    // Wait until the job runs at 8888, then kill its node.
    let deadline = Instant::now() + Duration::from_secs(60);
    let job_id = loop {
        if let Some(id) = latest_job_id(&d, "8888")
            && job_of(&d, "8888", &id)["status"] == "running"
        {
            break id;
        }
        assert!(Instant::now() < deadline, "the job never ran at 8888");
        std::thread::sleep(Duration::from_millis(100));
    };
    std::thread::sleep(Duration::from_millis(500));
    let killed = Instant::now();
    Command::new("kill")
        .args(["-9", &d.pid("node of 8888").to_string()])
        .status()
        .unwrap();
    let out = toy.wait_with_output().unwrap();
    assert!(!out.status.success(), "the toy succeeded without 8888");
    // Every surviving party ends the job within a bounded time.
    let bound = Duration::from_secs(40);
    for party in ["9999", "10000"] {
        loop {
            let job = job_of(&d, party, &job_id);
            let status = job["status"].as_str().unwrap_or("").to_string();
            if ["failed", "canceled"].contains(&status.as_str()) {
                break;
            }
            assert!(
                killed.elapsed() < bound,
                "party {party} still has the job {status} {:?} after the kill",
                killed.elapsed()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    // The initiator says which party failed and why.
    let job = job_of(&d, "9999", &job_id);
    assert_eq!(job["status"], "failed", "{job}");
    let error = job["error"].as_str().unwrap();
    assert!(
        error.contains("8888"),
        "the error does not name 8888: {error}"
    );
    assert!(
        error.contains("refused") || error.contains("unreachable"),
        "the error does not say why: {error}"
    );
    // And the surviving host was stopped by the initiator.
    let host = job_of(&d, "10000", &job_id);
    assert!(
        host["error"].as_str().unwrap_or("").contains("9999"),
        "host 10000's error does not name who stopped it: {host}"
    );
}

#[test]
fn unknown_parties_missing_routes_and_wrong_certificates_are_named() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = Deployment::start("9999,10000", &["--tls"]);
    // Unknown party: the job is refused at submission, naming the party and the hop.
    let out = d.toy("9999", "7777", 16);
    assert!(!out.status.success());
    let msg = text(&out);
    assert!(
        msg.contains("party 7777") && msg.contains("no route to party 7777"),
        "{msg}"
    );
    assert!(
        msg.contains("via 127.0.0.1:"),
        "the hop is not named: {msg}"
    );

    // Missing route: 9999's router forgets 10000 (the table is reloaded on change).
    let table_path = d.path().join("9999/route_table.json");
    let original = std::fs::read_to_string(&table_path).unwrap();
    let mut table: Value = serde_json::from_str(&original).unwrap();
    table["route_table"]
        .as_object_mut()
        .unwrap()
        .remove("10000");
    std::fs::write(&table_path, table.to_string()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let report = loop {
        let (ok, report) = d.doctor("9999", &["--party", "10000"]);
        if !ok {
            break report;
        }
        assert!(
            Instant::now() < deadline,
            "the route table was not reloaded"
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    let check = &report["checks"][2];
    assert_eq!(check["kind"], "missing route", "{report}");
    assert!(
        check["detail"]
            .as_str()
            .unwrap()
            .contains("no route to party 10000"),
        "{report}"
    );
    std::fs::write(&table_path, &original).unwrap();

    // Wrong certificate: 10000's router presents a certificate of another CA.
    let other = tempfile::tempdir().unwrap();
    let out = fate()
        .args(["cert", "--parties", "10000", "--dir"])
        .arg(other.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    for f in ["10000.crt", "10000.key"] {
        std::fs::copy(other.path().join(f), d.path().join("certs").join(f)).unwrap();
    }
    // Restart 10000's router so it serves the new certificate.
    let router_pid = d.pid("router of 10000");
    Command::new("kill")
        .args(["-9", &router_pid.to_string()])
        .status()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let log = std::fs::File::create(d.path().join("10000/router2.log")).unwrap();
    let mut router = fate()
        .args(["router", "-c"])
        .arg(d.path().join("10000/router.yaml"))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let report = loop {
        let (ok, report) = d.doctor("9999", &["--party", "10000"]);
        let check = &report["checks"][2];
        if !ok && check["kind"] == "TLS/certificate" {
            break report;
        }
        assert!(
            Instant::now() < deadline,
            "no certificate error reported: {report}"
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    let detail = report["checks"][2]["detail"].as_str().unwrap().to_string();
    assert!(
        detail.contains("router of 10000") && detail.contains("certificate"),
        "{detail}"
    );
    let _ = router.kill();
    let _ = router.wait();
}

const READER_PSI: &str = r#"
dag:
  parties:
  - {party_id: ['9999'], role: guest}
  - {party_id: ['10000'], role: host}
  conf: {initiator_party_id: '9999', scheduler_party_id: '9999'}
  party_tasks:
    guest_9999:
      parties: [{party_id: ['9999'], role: guest}]
      tasks: {reader_0: {parameters: {name: breast_hetero_guest, namespace: experiment}}}
    host_10000:
      parties: [{party_id: ['10000'], role: host}]
      tasks: {reader_0: {parameters: {name: breast_hetero_host, namespace: experiment}}}
  stage: train
  tasks:
    reader_0: {component_ref: reader, parameters: {}, stage: default}
    psi_0:
      component_ref: psi
      dependent_tasks: [reader_0]
      inputs:
        data:
          input_data:
            task_output_artifact:
              output_artifact_key: output_data
              parties:
              - {party_id: ['9999'], role: guest}
              - {party_id: ['10000'], role: host}
              producer_task: reader_0
      parameters: {}
      parties:
      - {party_id: ['9999'], role: guest}
      - {party_id: ['10000'], role: host}
      stage: default
schema_version: 2.2.0
"#;

#[test]
fn a_host_failure_reaches_the_initiator_and_a_rerun_and_a_stop_reach_every_party() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = Deployment::start("9999,10000", &[]);
    // An upload is a `local` job on one node; it needs no other party.
    upload(&d, "9999", "breast_hetero_guest.json");
    // The host has not uploaded its table: its reader fails, and the initiator says so.
    let submitted: Value = ureq::post(&format!("{}/v2/job/submit", d.api("9999")))
        .send_string(READER_PSI)
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(submitted["code"], 0, "{submitted}");
    let job_id = submitted["job_id"].as_str().unwrap().to_string();
    let job = wait_end(&d, "9999", &job_id);
    assert_eq!(job["status"], "failed", "{job}");
    let error = job["error"].as_str().unwrap();
    assert!(
        error.contains("host:10000") && error.contains("breast_hetero_host"),
        "the initiator's error does not carry the host's: {error}"
    );
    assert_eq!(wait_end(&d, "10000", &job_id)["status"], "failed");
    // The initiator's board lists every party's tasks from its task list (issue 14): the
    // host's failed reader is there, copied from the host's node, with the host's error.
    let tasks = d.get(
        "9999",
        "/v2/job/task/list/query",
        &[("job_id", &job_id), ("limit", "100")],
    );
    let host_reader = tasks["data"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["task_name"] == "reader_0" && t["role"] == "host" && t["party_id"] == "10000")
        .unwrap_or_else(|| panic!("no host reader_0 row at the initiator: {tasks}"))
        .clone();
    assert_eq!(host_reader["status"], "failed", "{host_reader}");
    assert!(
        host_reader["error"]
            .as_str()
            .is_some_and(|e| e.contains("breast_hetero_host")),
        "the initiator's row of the host's task lacks its error: {host_reader}"
    );

    // After the host uploads, a rerun at the initiator reruns the failed tasks everywhere.
    upload(&d, "10000", "breast_hetero_host.json");
    let out = fate()
        .args(["job", "rerun", "-j", &job_id, "--api", &d.api("9999")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    for party in ["9999", "10000"] {
        let job = wait_end(&d, party, &job_id);
        assert_eq!(job["status"], "success", "at {party}: {job}");
    }
    let tasks = d.get("10000", "/v2/job/task/query", &[("job_id", &job_id)]);
    let psi = tasks["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["task_name"] == "psi_0" && t["status"] == "success")
        .map(|t| t["task_version"].as_i64().unwrap())
        .max();
    assert_eq!(
        psi,
        Some(1),
        "psi_0 reran as version 1 at the host: {tasks}"
    );

    // A stop at the initiator reaches the host.
    let toy = {
        let mut c = fate();
        c.args([
            "toy",
            "--json",
            "--timeout",
            "120",
            "--guest",
            "9999",
            "--host",
            "10000",
        ])
        .args(["--data-num", "3000000", "--api"])
        .arg(d.api("9999"));
        c.spawn().unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let toy_id = loop {
        if let Some(id) = latest_job_id(&d, "10000")
            && id != job_id
            && job_of(&d, "10000", &id)["status"] == "running"
        {
            break id;
        }
        assert!(Instant::now() < deadline, "the toy never ran at 10000");
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = fate()
        .args(["job", "stop", "-j", &toy_id, "--api", &d.api("9999")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let _ = toy.wait_with_output();
    let host = wait_end(&d, "10000", &toy_id);
    assert_eq!(host["status"], "canceled", "{host}");
    assert!(
        host["error"]
            .as_str()
            .unwrap_or("")
            .contains("stopped by party 9999"),
        "{host}"
    );
    assert_eq!(wait_end(&d, "9999", &toy_id)["status"], "canceled");
}

#[test]
fn toy_runs_through_the_sni_star_of_traffic_server() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if let Err(e) = fate_federation_grpc::sni::binary() {
        let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
        assert!(!ci, "cannot run under CI: {e}");
        eprintln!("skipping toy_runs_through_the_sni_star_of_traffic_server: {e}");
        return;
    }
    let d = Deployment::start("9999,10000,8888", &["--tls", "--sni"]);
    let sni = d.info["sni"]
        .as_str()
        .expect("an SNI proxy address")
        .to_string();
    // Every router reaches its peers only through the proxy, by name.
    let table: Value = serde_json::from_str(
        &std::fs::read_to_string(d.path().join("9999/route_table.json")).unwrap(),
    )
    .unwrap();
    let route = &table["route_table"]["10000"]["default"][0];
    assert_eq!(
        format!("{}:{}", route["ip"].as_str().unwrap(), route["port"]),
        sni
    );
    assert_eq!(route["hostname"], "10000.fate.org");
    d.toy_ok("9999", "10000,8888");
    let (ok, report) = d.doctor("8888", &[]);
    assert!(ok, "{report}");
}

#[test]
fn bad_node_and_router_configurations_are_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let node = dir.path().join("node.yaml");
    std::fs::write(
        &node,
        "party_id: 9999\napi: 127.0.0.1:0\ngrpc: 127.0.0.1:0\nroute_table: r.json\ndata_dir: d\n",
    )
    .unwrap();
    let out = fate().args(["node", "-c"]).arg(&node).output().unwrap();
    assert!(!out.status.success());
    let msg = text(&out);
    assert!(
        msg.contains("node.yaml") && msg.contains("party_id"),
        "{msg}"
    );

    std::fs::write(
        &node,
        "party_ids: ['9999']\napi: 127.0.0.1:0\ngrpc: 127.0.0.1:0\nroute_table: r.json\ndata_dir: d\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("r.json"),
        r#"{"route_table": {"default": {"default": [{"ip": "127.0.0.1", "port": "x"}]}}}"#,
    )
    .unwrap();
    let out = fate().args(["node", "-c"]).arg(&node).output().unwrap();
    assert!(!out.status.success());
    let msg = text(&out);
    assert!(
        msg.contains(r#"route_table["default"]["default"][0].port"#),
        "{msg}"
    );

    // `federation: rabbitmq` needs FATE's RabbitMQ route table, and a known mode.
    let base = "party_ids: ['9999']\napi: 127.0.0.1:0\ngrpc: 127.0.0.1:0\nroute_table: r.json\n\
                data_dir: d\nfederation: rabbitmq\n";
    for (extra, field) in [
        ("", "rabbitmq_route_table"),
        (
            "rabbitmq_route_table: q.yaml\nrabbitmq_mode: mirror\n",
            "rabbitmq_mode",
        ),
    ] {
        std::fs::write(&node, format!("{base}{extra}")).unwrap();
        let out = fate().args(["node", "-c"]).arg(&node).output().unwrap();
        assert!(!out.status.success());
        let msg = text(&out);
        assert!(msg.contains("node.yaml") && msg.contains(field), "{msg}");
    }
    // So does `federation: pulsar`, with FATE's Pulsar route table and a known mode.
    let base = "party_ids: ['9999']\napi: 127.0.0.1:0\ngrpc: 127.0.0.1:0\nroute_table: r.json\n\
                data_dir: d\nfederation: pulsar\n";
    for (extra, field, words) in [
        (
            "",
            "pulsar_route_table",
            "required with `federation: pulsar`",
        ),
        (
            "pulsar_route_table: p.yaml\npulsar_mode: mirror\n",
            "pulsar_mode",
            "neither `replication` nor `client`",
        ),
    ] {
        std::fs::write(&node, format!("{base}{extra}")).unwrap();
        let out = fate().args(["node", "-c"]).arg(&node).output().unwrap();
        assert!(!out.status.success());
        let msg = text(&out);
        assert!(
            msg.contains("node.yaml") && msg.contains(field) && msg.contains(words),
            "{msg}"
        );
    }
    // A replication cluster name Pulsar cannot take: refused at start naming the setting
    // (before any broker is contacted: none listens on these ports).
    std::fs::write(
        dir.path().join("r.json"),
        r#"{"route_table": {"default": {"default": [{"ip": "127.0.0.1", "port": 9}]}}}"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("p.yaml"),
        "9999: {host: 127.0.0.1, port: 9, mng_port: 9}\n",
    )
    .unwrap();
    std::fs::write(
        &node,
        format!("{base}pulsar_route_table: p.yaml\npulsar_cluster: a/b\n"),
    )
    .unwrap();
    let out = fate().args(["node", "-c"]).arg(&node).output().unwrap();
    assert!(!out.status.success());
    let msg = text(&out);
    assert!(
        msg.contains("pulsar_cluster") && msg.contains("`a/b`"),
        "{msg}"
    );
    // `fate deploy local --federation pulsar` needs the route table too.
    let out = fate()
        .args([
            "deploy",
            "local",
            "--parties",
            "9999,10000",
            "--federation",
            "pulsar",
        ])
        .arg("--dir")
        .arg(dir.path().join("deployment"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let msg = text(&out);
    assert!(msg.contains("--pulsar-route-table"), "{msg}");

    let router = dir.path().join("router.yaml");
    std::fs::write(&router, "listen: nowhere\nroute_table: r.json\n").unwrap();
    let out = fate().args(["router", "-c"]).arg(&router).output().unwrap();
    assert!(!out.status.success());
    let msg = text(&out);
    assert!(
        msg.contains("router.yaml") && msg.contains("listen"),
        "{msg}"
    );
}

/// SIGTERM to a host's node mid-job: the node records the end of its tasks, tells the
/// initiator, and exits; the initiator ends the job at once (not after the partner timeout),
/// naming the party. Before, `fate node` closed its API but left its tasks running and
/// unrecorded (the host said success, the initiator failed).
#[test]
fn sigterm_to_a_node_mid_job_ends_the_job_at_every_party() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = Deployment::start("9999,10000", &[]);
    let toy = {
        let mut c = fate();
        c.args(["toy", "--json", "--timeout", "120", "--guest", "9999"])
            .args(["--host", "10000", "--data-num", "4000000", "--api"])
            .arg(d.api("9999"));
        c.spawn().unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let job_id = loop {
        if let Some(id) = latest_job_id(&d, "10000")
            && job_of(&d, "10000", &id)["status"] == "running"
        {
            break id;
        }
        assert!(Instant::now() < deadline, "the job never ran at 10000");
        std::thread::sleep(Duration::from_millis(100));
    };
    let pid = d.pid("node of 10000");
    let signalled = Instant::now();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    // The node exits within its grace time.
    while Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
    {
        assert!(
            signalled.elapsed() < Duration::from_secs(30),
            "node of 10000 still runs 30 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = toy.wait_with_output().unwrap();
    assert!(!out.status.success(), "the toy succeeded without 10000");
    // The initiator ended the job well before its partner timeout (600 s), naming 10000.
    let job = job_of(&d, "9999", &job_id);
    assert!(
        ["failed", "canceled"].contains(&job["status"].as_str().unwrap_or("")),
        "{job}"
    );
    assert!(signalled.elapsed() < Duration::from_secs(60));
    assert!(job.to_string().contains("10000"), "{job}");
    // Restarted, the host shows the job ended by its shutdown, with no task left running.
    let log = d.path().join("10000/restart.log");
    let mut node = fate()
        .args(["node", "-c"])
        .arg(d.node_config("10000"))
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let host = loop {
        if let Ok(r) = ureq::get(&format!("{}/v2/job/query", d.api("10000")))
            .query("job_id", &job_id)
            .call()
        {
            break r.into_json::<Value>().unwrap()["data"][0].clone();
        }
        assert!(Instant::now() < deadline, "node of 10000 did not restart");
        std::thread::sleep(Duration::from_millis(200));
    };
    let tasks = d.get("10000", "/v2/job/task/query", &[("job_id", &job_id)]);
    let _ = node.kill();
    let _ = node.wait();
    assert!(host.to_string().contains("shut down"), "{host}");
    for t in tasks["data"].as_array().unwrap() {
        let s = t["status"].as_str().unwrap_or("");
        assert!(
            ["canceled", "failed", "success"].contains(&s),
            "task left {s}: {t}"
        );
    }
}

#[allow(dead_code)]
#[path = "../../fate-computing-spark/tests/server/mod.rs"]
mod spark_server;

/// One node per party, only the guest computing on a real Spark (FATE on Spark for one site,
/// the host on the local engine): the toy, and FATE's breast and default_credit PSI +
/// CoordinatedLR and PSI + HeteroSecureBoost give the local engine's AUC and KS, and Spark's
/// REST API shows the guest's work ran there.
#[test]
fn jobs_with_only_the_guest_on_spark() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let spark = spark_server::spark();
    let url = spark.url();
    let d = Deployment::start(
        "9999,10000",
        &[
            "--spark-connect",
            &url,
            "--spark-parties",
            "9999",
            "--spark-executor",
            env!("CARGO_BIN_EXE_fate"),
        ],
    );
    let node_yaml = |party: &str| std::fs::read_to_string(d.node_config(party)).unwrap();
    let settings = |party: &str| -> Vec<String> {
        node_yaml(party)
            .lines()
            .filter(|l| l.starts_with("computing_engine:") || l.starts_with("spark_"))
            .map(String::from)
            .collect()
    };
    assert_eq!(settings("9999").len(), 3, "{:?}", settings("9999"));
    assert!(settings("9999").contains(&"computing_engine: spark".to_string()));
    assert!(settings("10000").is_empty(), "{:?}", settings("10000"));
    let before = spark.succeeded_jobs();
    d.toy_ok("9999", "10000");
    let after_toy = spark.succeeded_jobs();
    assert!(after_toy > before, "the guest's toy ran no Spark job");
    for data in ["breast", "default_credit"] {
        upload(&d, "9999", &format!("{data}_hetero_guest.json"));
        upload(&d, "10000", &format!("{data}_hetero_host.json"));
    }
    // The local engine's figures (cli.rs checks the same jobs on a local node and on an
    // all-Spark node agree to 1e-6; these are that run's, as printed by `fate job submit`).
    for (pipeline, want_auc, want_ks) in [
        ("breast_psi_lr", 0.994411, 0.936909),
        ("breast_psi_sbt", 0.999194, 0.980247),
        ("default_credit_psi_lr", 0.712496, 0.375464),
        ("default_credit_psi_sbt", 0.768773, 0.420338),
    ] {
        let dag = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("../../examples/pipeline/{pipeline}.yaml"));
        let jobs_before = spark.succeeded_jobs();
        let out = fate()
            .args(["job", "submit", "--wait", "--json", "-c"])
            .arg(&dag)
            .args(["--api", &d.api("9999")])
            .output()
            .unwrap();
        assert!(out.status.success(), "{pipeline}: {}", text(&out));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["status"], "success", "{pipeline}: {v}");
        let metric = |name: &str| {
            v["metrics"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["metric"] == name)
                .and_then(|m| m["value"].as_f64())
                .unwrap_or_else(|| panic!("{pipeline}: no {name}: {v}"))
        };
        let (auc, ks) = (metric("auc"), metric("ks"));
        // The printed figures have 6 decimals: equal to 1e-6 once rounded.
        assert!(
            (auc - want_auc).abs() <= 1e-6 && (ks - want_ks).abs() <= 1e-6,
            "{pipeline}: auc {auc} ks {ks}, the local engine gives {want_auc} {want_ks}"
        );
        assert!(
            spark.succeeded_jobs() > jobs_before,
            "{pipeline}: the guest ran no Spark job"
        );
    }
}

/// Whether a broker's log says a client logged in to a vhost of job `job_id` (the session
/// user of one of its tasks).
fn broker_served_job(broker: &rabbitmq_broker::Broker, job_id: &str) -> bool {
    let log = broker
        .dir
        .join(format!("log/fate-{}@localhost.log", broker.amqp_port));
    std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains(&format!("granted access to vhost '{job_id}_"))
}

/// FATE 1.x's secure_add job for guest 9999 and host 10000 submitted to the guest's node with
/// `federation_engine: engine`; the node's answer.
fn submit_secure_add_with_engine(d: &Deployment, engine: &str) -> Value {
    ureq::post(&format!("{}/v1/job/submit", d.api("9999")))
        .send_json(serde_json::json!({
            "dsl": {"components": {"secure_add_0": {"module": "SecureAddExample"}}},
            "runtime_conf": {
                "dsl_version": 2,
                "initiator": {"role": "guest", "party_id": 9999},
                "role": {"guest": [9999], "host": [10000]},
                "job_parameters": {"common": {"federation_engine": engine}},
            }
        }))
        .unwrap()
        .into_json()
        .unwrap()
}

fn vhosts(mng_port: u16) -> Vec<String> {
    let v: Value = ureq::get(&format!("http://127.0.0.1:{mng_port}/api/vhosts"))
        .set("Authorization", "Basic Z3Vlc3Q6Z3Vlc3Q=")
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["name"].as_str().map(String::from))
        .collect()
}

/// Nodes of 9999 and 10000 whose data frames go through the shared brokers a and b (the
/// route table's directory lives as long as the deployment).
fn rabbitmq_deployment() -> (tempfile::TempDir, Deployment) {
    let (a, b) = rabbitmq_broker::brokers();
    let tables = tempfile::tempdir().unwrap();
    let table = tables.path().join("rabbitmq_route_table.yaml");
    std::fs::write(
        &table,
        format!(
            "9999: {{host: 127.0.0.1, port: {}, mng_port: {}, user: guest, password: guest}}\n\
             10000: {{host: 127.0.0.1, port: {}, mng_port: {}, user: guest, password: guest}}\n",
            a.amqp_port, a.mng_port, b.amqp_port, b.mng_port
        ),
    )
    .unwrap();
    let d = Deployment::start(
        "9999,10000",
        &[
            "--federation",
            "rabbitmq",
            "--rabbitmq-route-table",
            table.to_str().unwrap(),
        ],
    );
    (tables, d)
}

/// Submits `examples/pipeline/{pipeline}.yaml` at 9999, waits for it and checks the AUC and
/// KS that `fate job submit --wait --json` prints.
fn assert_pipeline_metrics(d: &Deployment, pipeline: &str, want_auc: f64, want_ks: f64) {
    let dag = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../../examples/pipeline/{pipeline}.yaml"));
    let out = fate()
        .args(["job", "submit", "--wait", "--json", "-c"])
        .arg(&dag)
        .args(["--api", &d.api("9999")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{pipeline}: {}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "success", "{pipeline}: {v}");
    let metric = |name: &str| {
        v["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["metric"] == name)
            .and_then(|m| m["value"].as_f64())
            .unwrap_or_else(|| panic!("{pipeline}: no {name}: {v}"))
    };
    let (auc, ks) = (metric("auc"), metric("ks"));
    assert!(
        (auc - want_auc).abs() <= 1e-6 && (ks - want_ks).abs() <= 1e-6,
        "{pipeline}: auc {auc} ks {ks}, the gRPC run gives {want_auc} {want_ks}"
    );
}

#[test]
fn toy_runs_across_processes_with_its_data_through_two_federated_rabbitmq_brokers() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (a, b) = rabbitmq_broker::brokers();
    let (tables, d) = rabbitmq_deployment();
    let node_yaml = std::fs::read_to_string(d.node_config("9999")).unwrap();
    assert!(node_yaml.contains("federation: rabbitmq"), "{node_yaml}");
    let job_id = d.toy_ok("9999", "10000");
    // Both parties' brokers carried the job's sessions (the broker writes its log file a
    // moment after the login: wait for the line).
    for (name, broker) in [("a (9999)", a), ("b (10000)", b)] {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !broker_served_job(broker, &job_id) {
            assert!(
                Instant::now() < deadline,
                "broker {name} logged no session of job {job_id}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    // The job's end cleans its sessions up on both brokers.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left: Vec<String> = [a.mng_port, b.mng_port]
            .into_iter()
            .flat_map(vhosts)
            .filter(|v| v.starts_with(&job_id))
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "vhosts of job {job_id} left after it ended: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // FATE 1.x `federation_engine`: RABBITMQ is what these nodes do and runs; EGGROLL (their
    // site routers carry only commands here) is refused at submit naming the field.
    let submit_with = |engine: &str| submit_secure_add_with_engine(&d, engine);
    let refused = submit_with("EGGROLL");
    assert_ne!(refused["retcode"], 0, "{refused}");
    let msg = refused["retmsg"].as_str().unwrap_or_default();
    assert!(
        msg.contains("federation_engine") && msg.contains("use RABBITMQ"),
        "{refused}"
    );
    let accepted = submit_with("RABBITMQ");
    assert_eq!(accepted["retcode"], 0, "{accepted}");
    let secure_add = accepted["jobId"]
        .as_str()
        .or_else(|| accepted["job_id"].as_str())
        .unwrap_or_else(|| panic!("no job id: {accepted}"))
        .to_string();
    let ended = wait_end(&d, "9999", &secure_add);
    assert_eq!(ended["status"], "success", "{ended}");
    // `fate doctor` checks both brokers (AMQP and management API) and the own broker's admin
    // login, a row each naming the party.
    let (ok, report) = d.doctor("9999", &[]);
    assert!(ok, "{report}");
    let rows = report["checks"].as_array().unwrap();
    let row = |hop: &str| {
        rows.iter()
            .find(|c| c["hop"] == hop)
            .unwrap_or_else(|| panic!("no row {hop}: {report}"))
            .clone()
    };
    for hop in [
        "rabbitmq AMQP of own party 9999",
        "rabbitmq management of own party 9999",
        "rabbitmq admin login of party 9999",
        "rabbitmq AMQP of party 10000",
        "rabbitmq management of party 10000",
    ] {
        assert_eq!(row(hop)["ok"], true, "{hop}: {report}");
    }
    assert!(
        row("rabbitmq AMQP of party 10000")["detail"]
            .as_str()
            .unwrap()
            .contains("RabbitMQ"),
        "{report}"
    );
    assert_eq!(
        row("rabbitmq AMQP of party 10000")["target"],
        format!("127.0.0.1:{}", b.amqp_port)
    );
    // A wrong admin password of the own broker: that row alone fails, naming the party and
    // the field.
    let table = tables.path().join("rabbitmq_route_table.yaml");
    let original = std::fs::read_to_string(&table).unwrap();
    let wrong = original.replacen("password: guest", "password: wrong", 1);
    assert_ne!(wrong, original);
    std::fs::write(&table, &wrong).unwrap();
    let (ok, report) = d.doctor("9999", &[]);
    std::fs::write(&table, &original).unwrap();
    assert!(!ok, "{report}");
    assert_eq!(report["failed"], 1, "{report}");
    let rows = report["checks"].as_array().unwrap();
    let failed = rows.iter().find(|c| c["ok"] == false).unwrap();
    assert_eq!(
        failed["hop"], "rabbitmq admin login of party 9999",
        "{report}"
    );
    assert_eq!(failed["kind"], "credentials", "{report}");
    let detail = failed["detail"].as_str().unwrap();
    assert!(
        detail.contains("party 9999")
            && detail.contains("`password`")
            && detail.contains(&format!("127.0.0.1:{}", a.mng_port)),
        "{detail}"
    );

    // FATE's breast PSI + CoordinatedLR through the brokers: the gRPC run's AUC and KS (as
    // `jobs_with_only_the_guest_on_spark` and cli.rs have them).
    upload(&d, "9999", "breast_hetero_guest.json");
    upload(&d, "10000", "breast_hetero_host.json");
    assert_pipeline_metrics(&d, "breast_psi_lr", 0.994411, 0.936909);
}

/// The broker of the host stopped mid-job (cleanly, as an operator restarts it) and started
/// again on the same directory and ports 20 s later: durable queues keep the frames, the
/// federation links, consumers and publishers reconnect, and the job succeeds at both parties.
#[test]
fn a_rabbitmq_broker_down_for_20_s_mid_job_heals_without_failing_the_job() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (_, b) = rabbitmq_broker::brokers();
    let (_tables, d) = rabbitmq_deployment();
    toy_across_a_20_s_broker_outage(&d, || b.stop(), || b.start_again());
}

/// The same outage of the host's Pulsar broker in replication mode (FATE's default): the
/// guest's broker keeps the replication backlog, the host's broker keeps its topics on its
/// data dir, and the job succeeds at both parties once it is back.
#[test]
fn a_pulsar_broker_down_for_20_s_mid_job_heals_without_failing_the_job() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (_, b) = pulsar_broker::brokers();
    let (_tables, d) = pulsar_deployment_in(&[]);
    toy_across_a_20_s_broker_outage(&d, || b.stop(), || b.start_again());
}

/// Runs a toy big enough to be running when `stop` takes the host's broker down, keeps it down
/// for 20 s (neither party may end the job meanwhile), `start`s it again and checks that the
/// job succeeds at both parties.
fn toy_across_a_20_s_broker_outage(d: &Deployment, stop: impl Fn(), start: impl Fn()) {
    let mut toy = {
        let mut c = fate();
        c.args(["toy", "--json", "--timeout", "300", "--guest", "9999"])
            .args(["--host", "10000", "--data-num", "2000000", "--api"])
            .arg(d.api("9999"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        c.spawn().unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let job_id = loop {
        if let Some(id) = latest_job_id(d, "10000")
            && job_of(d, "10000", &id)["status"] == "running"
        {
            break id;
        }
        assert!(Instant::now() < deadline, "the job never ran at 10000");
        std::thread::sleep(Duration::from_millis(100));
    };
    stop();
    let stopped = Instant::now();
    std::thread::sleep(Duration::from_secs(20));
    // The outage was mid-job: neither party has ended it while the broker was down.
    if toy.try_wait().unwrap().is_some() {
        let out = toy.wait_with_output().unwrap();
        panic!("the toy ended during the outage: {}", text(&out));
    }
    for party in ["9999", "10000"] {
        let job = job_of(d, party, &job_id);
        assert_eq!(
            job["status"], "running",
            "at {party} during the outage: {job}"
        );
    }
    start();
    let out = toy.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the toy failed across the outage: {}",
        text(&out)
    );
    for party in ["9999", "10000"] {
        let job = wait_end(d, party, &job_id);
        assert_eq!(job["status"], "success", "at {party}: {job}");
    }
    eprintln!(
        "job {job_id} succeeded {:.1?} after its host's broker stopped",
        stopped.elapsed()
    );
}

/// The session namespaces of FATE's tenant on a Pulsar broker (none when it has no tenant).
fn pulsar_namespaces(web_port: u16) -> Vec<String> {
    match ureq::get(&format!(
        "http://127.0.0.1:{web_port}/admin/v2/namespaces/fl-tenant"
    ))
    .call()
    {
        Ok(r) => r.into_json().unwrap(),
        Err(ureq::Error::Status(404, _)) => Vec::new(),
        Err(e) => panic!("admin REST of the broker on web port {web_port}: {e}"),
    }
}

/// Whether a Pulsar broker's log names a namespace or topic of job `job_id`.
fn pulsar_served_job(broker: &pulsar_broker::Broker, job_id: &str) -> bool {
    std::fs::read_to_string(broker.dir.join("logs/pulsar.log"))
        .unwrap_or_default()
        .contains(&format!("fl-tenant/{job_id}"))
}

/// Waits (10 s) until every broker's log shows a session of `job_id`.
fn wait_pulsar_served(brokers: &[(&str, &pulsar_broker::Broker)], job_id: &str) {
    for (name, broker) in brokers {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !pulsar_served_job(broker, job_id) {
            assert!(
                Instant::now() < deadline,
                "broker {name} logged no session of job {job_id}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// Nodes of 9999 and 10000 whose data frames go through the shared Pulsar brokers a and b
/// (client mode; the route table's directory lives as long as the deployment).
fn pulsar_deployment() -> (tempfile::TempDir, Deployment) {
    pulsar_deployment_in(&["--pulsar-mode", "client"])
}

/// Two nodes on the shared brokers, `extra` given to `fate deploy local`.
fn pulsar_deployment_in(extra: &[&str]) -> (tempfile::TempDir, Deployment) {
    let (a, b) = pulsar_broker::brokers();
    let tables = tempfile::tempdir().unwrap();
    let table = tables.path().join("pulsar_route_table.yaml");
    std::fs::write(
        &table,
        format!(
            "9999: {{host: 127.0.0.1, port: {}, mng_port: {}}}\n\
             10000: {{host: 127.0.0.1, port: {}, mng_port: {}}}\n",
            a.port, a.web_port, b.port, b.web_port
        ),
    )
    .unwrap();
    let mut args = vec![
        "--federation",
        "pulsar",
        "--pulsar-route-table",
        table.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let d = Deployment::start("9999,10000", &args);
    (tables, d)
}

/// Pulsar's replication mode, FATE's default and the node's (no `pulsar_mode`): each party
/// produces on its own broker, which replicates the topic to the receiver's broker (both
/// named `standalone`, as FATE's brokers are). The toy and FATE's breast PSI+CoordinatedLR
/// across two processes give the gRPC run's AUC and KS.
#[test]
fn toy_and_breast_psi_lr_run_across_processes_with_pulsar_replicating_between_brokers() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (a, b) = pulsar_broker::brokers();
    let (_tables, d) = pulsar_deployment_in(&[]);
    let node_yaml = std::fs::read_to_string(d.node_config("9999")).unwrap();
    assert!(!node_yaml.contains("pulsar_mode"), "{node_yaml}");
    let job_id = d.toy_ok("9999", "10000");
    wait_pulsar_served(&[("a (9999)", a), ("b (10000)", b)], &job_id);
    upload(&d, "9999", "breast_hetero_guest.json");
    upload(&d, "10000", "breast_hetero_host.json");
    assert_pipeline_metrics(&d, "breast_psi_lr", 0.994411, 0.936909);
}

/// A free loopback port nothing listens on (for a broker that is not running).
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn toy_and_breast_psi_lr_run_across_processes_with_their_data_through_two_pulsar_brokers() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (a, b) = pulsar_broker::brokers();
    let (tables, d) = pulsar_deployment();
    let node_yaml = std::fs::read_to_string(d.node_config("9999")).unwrap();
    assert!(
        node_yaml.contains("federation: pulsar") && node_yaml.contains("pulsar_mode: client"),
        "{node_yaml}"
    );
    let job_id = d.toy_ok("9999", "10000");
    // Both parties' brokers carried the job's sessions (client mode: each party's frames are
    // produced on its peer's broker).
    wait_pulsar_served(&[("a (9999)", a), ("b (10000)", b)], &job_id);
    // The job's end cleans its sessions up on both brokers.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left: Vec<String> = [a.web_port, b.web_port]
            .into_iter()
            .flat_map(pulsar_namespaces)
            .filter(|ns| ns.starts_with(&format!("fl-tenant/{job_id}")))
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "namespaces of job {job_id} left after it ended: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // FATE 1.x `federation_engine`: PULSAR is what these nodes do and runs; EGGROLL and
    // RABBITMQ are refused at submit naming the party and the field.
    let submit_with = |engine: &str| submit_secure_add_with_engine(&d, engine);
    for engine in ["EGGROLL", "RABBITMQ"] {
        let refused = submit_with(engine);
        assert_ne!(refused["retcode"], 0, "{refused}");
        let msg = refused["retmsg"].as_str().unwrap_or_default();
        assert!(
            msg.contains("federation_engine")
                && msg.contains("(party guest 9999)")
                && msg.contains("`federation: pulsar`): use PULSAR"),
            "{engine}: {refused}"
        );
    }
    let accepted = submit_with("PULSAR");
    assert_eq!(accepted["retcode"], 0, "{accepted}");
    let secure_add = accepted["jobId"]
        .as_str()
        .or_else(|| accepted["job_id"].as_str())
        .unwrap_or_else(|| panic!("no job id: {accepted}"))
        .to_string();
    let ended = wait_end(&d, "9999", &secure_add);
    assert_eq!(ended["status"], "success", "{ended}");
    // `fate doctor` checks both brokers (the binary protocol and the admin REST), a row each
    // naming the party.
    let (ok, report) = d.doctor("9999", &[]);
    assert!(ok, "{report}");
    let rows = report["checks"].as_array().unwrap();
    let row = |hop: &str| {
        rows.iter()
            .find(|c| c["hop"] == hop)
            .unwrap_or_else(|| panic!("no row {hop}: {report}"))
            .clone()
    };
    for (hop, target) in [
        ("pulsar binary of own party 9999", a.port),
        ("pulsar admin of own party 9999", a.web_port),
        ("pulsar binary of party 10000", b.port),
        ("pulsar admin of party 10000", b.web_port),
    ] {
        assert_eq!(row(hop)["ok"], true, "{hop}: {report}");
        assert_eq!(
            row(hop)["target"],
            format!("127.0.0.1:{target}"),
            "{report}"
        );
    }
    let binary = row("pulsar binary of party 10000")["detail"].clone();
    assert!(binary.as_str().unwrap().contains("Pulsar"), "{report}");
    let admin = row("pulsar admin of party 10000")["detail"].clone();
    assert!(
        admin.as_str().unwrap().contains("standalone")
            && admin.as_str().unwrap().contains("fl-tenant"),
        "{report}"
    );
    // The broker of 10000 not running (the route table points at ports nothing listens on):
    // its two rows fail, naming the party and `host:port`; the own broker's rows pass.
    let table = tables.path().join("pulsar_route_table.yaml");
    let original = std::fs::read_to_string(&table).unwrap();
    let (port, web) = (closed_port(), closed_port());
    let stopped = original
        .replacen(&format!("port: {},", b.port), &format!("port: {port},"), 1)
        .replacen(
            &format!("mng_port: {}}}", b.web_port),
            &format!("mng_port: {web}}}"),
            1,
        );
    assert_ne!(stopped, original);
    std::fs::write(&table, &stopped).unwrap();
    let (ok, report) = d.doctor("9999", &[]);
    std::fs::write(&table, &original).unwrap();
    assert!(!ok, "{report}");
    assert_eq!(report["failed"], 2, "{report}");
    let rows = report["checks"].as_array().unwrap();
    for (hop, target, field) in [
        ("pulsar binary of party 10000", port, "`port`"),
        ("pulsar admin of party 10000", web, "`mng_port`"),
    ] {
        let r = rows.iter().find(|c| c["hop"] == hop).unwrap();
        assert_eq!(r["ok"], false, "{hop}: {report}");
        assert_eq!(r["kind"], "refused", "{hop}: {report}");
        let detail = r["detail"].as_str().unwrap();
        assert!(
            detail.contains("party 10000")
                && detail.contains(field)
                && detail.contains(&format!("127.0.0.1:{target}")),
            "{hop}: {detail}"
        );
    }

    // FATE's breast PSI + CoordinatedLR through the brokers: the gRPC run's AUC and KS (as
    // `jobs_with_only_the_guest_on_spark` and cli.rs have them).
    upload(&d, "9999", "breast_hetero_guest.json");
    upload(&d, "10000", "breast_hetero_host.json");
    assert_pipeline_metrics(&d, "breast_psi_lr", 0.994411, 0.936909);
}

/// A `fate node` this test started for one party in place of the one `fate deploy local`
/// started, killed on drop.
struct OwnNode(std::process::Child);

impl Drop for OwnNode {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Stops the node `fate deploy local` started for `party` (SIGTERM) and starts it again from
/// its node.yaml once `edit` has changed it; waits until its API answers.
fn restart_node_with(d: &Deployment, party: &str, edit: impl FnOnce(&mut String)) -> OwnNode {
    let pid = d.pid(&format!("node of {party}"));
    Command::new("kill").arg(pid.to_string()).status().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    // (Exited: gone, or a zombie its parent has yet to reap.)
    while Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
    {
        assert!(
            Instant::now() < deadline,
            "node of {party} still runs after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let file = d.node_config(party);
    let mut yaml = std::fs::read_to_string(&file).unwrap();
    edit(&mut yaml);
    std::fs::write(&file, yaml).unwrap();
    let log = d.path().join(party).join("own-node.log");
    let child = fate()
        .args(["node", "-c"])
        .arg(&file)
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(d.path().join(party).join("own-node.err")).unwrap())
        .spawn()
        .unwrap();
    let mut node = OwnNode(child);
    let deadline = Instant::now() + Duration::from_secs(120);
    while ureq::get(&format!("{}/v2/job/list/query", d.api(party)))
        .call()
        .is_err()
    {
        if let Some(s) = node.0.try_wait().unwrap() {
            panic!(
                "node of {party} exited at start ({s}): {}",
                std::fs::read_to_string(d.path().join(party).join("own-node.err"))
                    .unwrap_or_default()
            );
        }
        assert!(Instant::now() < deadline, "node of {party} did not start");
        std::thread::sleep(Duration::from_millis(200));
    }
    node
}

/// FATE's Pulsar star across processes: guest 9999 and host 10000, each node on its own broker
/// (TLS certificates `<party>.fate.org` from `fate cert`'s CA, clusters named after the
/// parties), replicating to each other through Traffic Server tunnelling by SNI. Each node's
/// route table knows its own broker and the peer by site name behind the proxy. The toy and
/// FATE's breast PSI+CoordinatedLR give the gRPC run's AUC and KS; `fate doctor` checks the
/// peer's SNI route through the proxy against the site CA.
#[test]
fn toy_and_breast_psi_lr_through_pulsar_brokers_replicating_over_the_sni_proxy_with_tls() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let star = pulsar_broker::star();
    let proxy = format!("127.0.0.1:{}", star.proxy_port);
    let d = Deployment::start("9999,10000", &[]);
    let ca = star.certs.join("ca.pem");
    let table = |me: &pulsar_broker::StarBroker, peer: &pulsar_broker::StarBroker| {
        let file = d
            .path()
            .join(format!("pulsar_route_table_{}.yaml", me.party));
        std::fs::write(
            &file,
            format!(
                "{}: {{host: 127.0.0.1, port: {}, mng_port: {}}}\n\
                 {}: {{host: {}.fate.org, port: {}, sslPort: {}, mng_port: {}, \
                 mng_ssl_port: {}, proxy: \"{proxy}\"}}\n",
                me.party,
                me.broker.port,
                me.broker.web_port,
                peer.party,
                peer.party,
                peer.broker.port,
                peer.ssl_port,
                peer.broker.web_port,
                peer.web_ssl_port,
            ),
        )
        .unwrap();
        file
    };
    let mut nodes = Vec::new();
    for (me, peer) in [(&star.a, &star.b), (&star.b, &star.a)] {
        let file = table(me, peer);
        nodes.push(restart_node_with(&d, me.party, |yaml| {
            yaml.push_str(&format!(
                "\nfederation: pulsar\npulsar_route_table: {}\npulsar_cluster: \"{}\"\n\
                 pulsar_broker_ca: {}\npulsar_listener: sni\n",
                file.display(),
                me.party,
                ca.display()
            ));
        }));
    }
    d.toy_ok("9999", "10000");
    // The guest's broker replicated to the host's through the proxy.
    let log = std::fs::read_to_string(star.a.broker.dir.join("logs/pulsar.log")).unwrap();
    assert!(
        log.contains("9999-->10000") && log.contains("Created replicator producer"),
        "no replicator from 9999's broker to 10000's"
    );
    upload(&d, "9999", "breast_hetero_guest.json");
    upload(&d, "10000", "breast_hetero_host.json");
    assert_pipeline_metrics(&d, "breast_psi_lr", 0.994411, 0.936909);
    let (_, report) = d.doctor("9999", &[]);
    let rows = report["checks"].as_array().unwrap();
    let sni = rows
        .iter()
        .find(|c| c["hop"] == "pulsar SNI route of party 10000")
        .unwrap_or_else(|| panic!("no SNI row: {report}"));
    assert_eq!(sni["ok"], true, "{report}");
    assert_eq!(sni["target"], proxy, "{report}");
    drop(nodes);
}
