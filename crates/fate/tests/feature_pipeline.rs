//! FATE's data and feature components in a pipeline across separate processes (issue 16):
//! `fate deploy local` with mutual TLS, breast uploaded at each party, then
//! `examples/pipeline/breast_psi_scale_split_lr.yaml` (PSI, statistics, feature_scale,
//! data_split, CoordinatedLR with validate_data, evaluation) submitted with the CLI.

mod common;

use common::{Deployment, fate, text, upload};
use serde_json::Value;
use std::path::Path;

#[test]
fn psi_statistics_scale_split_lr_runs_across_two_nodes() {
    let d = Deployment::start("9999,10000", &["--tls"]);
    upload(&d, "9999", "breast_hetero_guest.json");
    upload(&d, "10000", "breast_hetero_host.json");
    let dag = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/pipeline/breast_psi_scale_split_lr.yaml");
    let out = fate()
        .args(["job", "submit", "--wait", "--json", "-c"])
        .arg(&dag)
        .args(["--api", &d.api("9999")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "success", "{v}");
    let job_id = v["job_id"].as_str().unwrap().to_string();
    let auc = v["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["metric"] == "auc")
        .and_then(|m| m["value"].as_f64())
        .unwrap_or_else(|| panic!("no auc in {v}"));
    eprintln!("breast psi+scale+split+lr: train auc {auc}");
    assert!(auc > 0.95, "auc {auc}");

    // Each party's tasks succeeded, and data_split's summary is the same at both: 455 train
    // and 114 validate rows of the 569 PSI found.
    for party in ["9999", "10000"] {
        let role = if party == "9999" { "guest" } else { "host" };
        let metrics = d.get(
            party,
            "/v2/output/metric/query",
            &[
                ("job_id", &job_id),
                ("role", role),
                ("party_id", party),
                ("task_name", "split_0"),
            ],
        );
        let summary = metrics["data"]
            .as_array()
            .and_then(|a| a.iter().find(|m| m["name"] == "summary"))
            .unwrap_or_else(|| panic!("no split summary at {party}: {metrics}"));
        let data = &summary["data"];
        let data = if data.is_array() { &data[0] } else { data };
        let s = if data.get("original_count").is_some() {
            data
        } else {
            &data["value"]
        };
        assert_eq!(s["original_count"], 569, "{summary}");
        assert_eq!(s["train_count"], 455, "{summary}");
        assert_eq!(s["validate_count"], 114, "{summary}");
    }
}
