//! `psi` run through `fate_runtime::testing::Harness`: intersections of FATE's breast data and
//! of synthetic id sets (partial overlap, several hosts, duplicate ids), the errors FATE raises,
//! and transcript checks of what each party receives.

use fate_components::psi::Psi;
use fate_components::upload::{UploadMeta, parse_csv};
use fate_computing::{Computing, ComputingConfig};
use fate_federation::testing::Transcript;
use fate_federation::wire::{Head, decode_head, decode_value};
use fate_runtime::testing::{Harness, PartyResult, PartyRun, frame};
use fate_runtime::{DataFrame, InputArtifact, Row};
use fate_types::{Party, Role};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn computing() -> Computing {
    fate_components::testing::computing(ComputingConfig {
        cores: 2,
        default_partitions: 4,
        data_dir: None,
    })
}

fn guest() -> Party {
    Party::new(Role::Guest, "9999")
}

fn host(id: &str) -> Party {
    Party::new(Role::Host, id)
}

/// A synthetic frame: rows `(sample_id, match_id)` with one feature, the row's position.
fn ids_frame(c: &Computing, ids: &[(String, String)], label: bool) -> DataFrame {
    ids_frame_in(c, ids, label, 3)
}

fn ids_frame_in(
    c: &Computing,
    ids: &[(String, String)],
    label: bool,
    partitions: usize,
) -> DataFrame {
    let rows = ids
        .iter()
        .enumerate()
        .map(|(i, (sid, mid))| {
            let row = Row {
                match_id: mid.clone(),
                label: label.then_some((i % 2) as f64),
                weight: None,
                features: vec![i as f64],
            };
            (sid.clone(), row)
        })
        .collect();
    frame(c, &["x0"], label, rows, partitions)
}

/// Sample id = match id = `u{i:05}`.
fn id_range(r: std::ops::Range<usize>) -> Vec<(String, String)> {
    r.map(|i| (format!("u{i:05}"), format!("u{i:05}")))
        .collect()
}

fn csv_frame(c: &Computing, file: &str, label: bool, extend_sid: bool) -> DataFrame {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/data")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let meta = UploadMeta {
        match_id_name: Some("id".into()),
        label_name: label.then(|| "y".into()),
        ..Default::default()
    };
    let (schema, rows) = parse_csv(&text, true, &meta, extend_sid).unwrap();
    DataFrame {
        schema,
        table: c.parallelize(rows, 4),
    }
}

/// Runs psi with `frames[0]` at the guest and `frames[i]` at host `hosts[i - 1]`.
fn run(
    h: &Harness,
    params: serde_json::Value,
    guest_df: &DataFrame,
    hosts: &[(Party, &DataFrame)],
) -> Vec<PartyResult> {
    let input = |name: &str, df: &DataFrame| -> InputArtifact { h.table("psi_test", name, df) };
    let mut runs =
        vec![PartyRun::new(guest(), params.clone()).input("input_data", input("guest", guest_df))];
    for (p, df) in hosts {
        runs.push(
            PartyRun::new(p.clone(), params.clone())
                .input("input_data", input(&format!("host_{}", p.party_id), df)),
        );
    }
    h.run("psi_0", &Psi, runs)
}

fn result<'a>(out: &'a [PartyResult], p: &Party) -> &'a PartyResult {
    out.iter().find(|r| &r.party == p).unwrap()
}

fn output(h: &Harness, r: &PartyResult) -> Vec<(String, Row)> {
    assert!(r.result.is_ok(), "{}: {:?}", r.party, r.result);
    match r.data_artifact("output_data").expect("output_data") {
        InputArtifact::Data {
            namespace, name, ..
        } => h
            .computing
            .load::<String, Row>(&namespace, &name)
            .unwrap()
            .collect(usize::MAX)
            .unwrap(),
        other => panic!("{other:?}"),
    }
}

fn count(r: &PartyResult) -> u64 {
    r.metric("intersect_count").expect("intersect_count")["intersect_count"]
        .as_u64()
        .unwrap()
}

fn error(r: &PartyResult) -> String {
    r.result
        .as_ref()
        .expect_err("the party should fail")
        .to_string()
}

#[test]
fn spec_is_fates() {
    let spec = fate_components::registry()
        .get("psi")
        .expect("registered")
        .spec();
    assert_eq!(spec.roles, [Role::Guest, Role::Host]);
    assert_eq!(
        spec.param("protocol").unwrap().default,
        Some(json!("ecdh_psi"))
    );
    assert_eq!(
        spec.param("curve_type").unwrap().default,
        Some(json!("curve25519"))
    );
    assert!(spec.input("input_data").is_some() && spec.output("output_data").is_some());
    assert_eq!(spec.legacy_modules, ["Intersection"]);
}

/// Breast: 569 ids at each side, all shared. The host's sample ids are generated (extend_sid),
/// so its output must be re-keyed by the guest's sample ids.
#[test]
fn breast_full_overlap_rekeys_the_host_by_guest_sample_ids() {
    let h = Harness::new(computing());
    let g = csv_frame(&h.computing, "breast_hetero_guest.csv", true, false);
    let hd = csv_frame(&h.computing, "breast_hetero_host.csv", false, true);
    let out = run(&h, json!({}), &g, &[(host("10000"), &hd)]);
    let (go, ho) = (
        output(&h, result(&out, &guest())),
        output(&h, result(&out, &host("10000"))),
    );
    assert_eq!(count(result(&out, &guest())), 569);
    assert_eq!(count(result(&out, &host("10000"))), 569);
    let summary = result(&out, &guest()).metric("summary").unwrap();
    assert_eq!(
        (
            summary["input_count"].as_u64(),
            summary["intersect_rate"].as_f64()
        ),
        (Some(569), Some(1.0))
    );
    assert_eq!(
        go,
        g.table.collect(usize::MAX).unwrap(),
        "the guest keeps its rows unchanged"
    );
    let gkeys: Vec<&String> = go.iter().map(|(k, _)| k).collect();
    let hkeys: Vec<&String> = ho.iter().map(|(k, _)| k).collect();
    assert_eq!(gkeys, hkeys);
    let host_rows: BTreeMap<String, Row> = hd
        .table
        .collect(usize::MAX)
        .unwrap()
        .into_iter()
        .map(|(_, r)| (r.match_id.clone(), r))
        .collect();
    for (k, r) in &ho {
        // The guest's sample id is its match id; the host row under it is the one with that id.
        assert_eq!(&r.match_id, k);
        assert_eq!(r, &host_rows[k]);
        assert_eq!(r.features.len(), 20);
    }
}

#[test]
fn partial_overlap_keeps_only_shared_ids() {
    let h = Harness::new(computing());
    // Guest sample ids differ from match ids, so keys and ids cannot be confused.
    let g_ids: Vec<(String, String)> = (0..1000)
        .map(|i| (format!("g{i}"), format!("u{i:05}")))
        .collect();
    let g = ids_frame(&h.computing, &g_ids, true);
    let hd = ids_frame(&h.computing, &id_range(500..1500), false);
    let out = run(
        &h,
        json!({"protocol": "ecdh_psi", "curve_type": "curve25519"}),
        &g,
        &[(host("10000"), &hd)],
    );
    let (go, ho) = (
        output(&h, result(&out, &guest())),
        output(&h, result(&out, &host("10000"))),
    );
    assert_eq!(count(result(&out, &guest())), 500);
    let expected: BTreeSet<String> = (500..1000).map(|i| format!("g{i}")).collect();
    assert_eq!(
        go.iter().map(|(k, _)| k.clone()).collect::<BTreeSet<_>>(),
        expected
    );
    assert_eq!(ho.len(), 500);
    for ((gk, gr), (hk, hr)) in go.iter().zip(&ho) {
        assert_eq!(gk, hk);
        assert_eq!(gr.match_id, hr.match_id);
        // Feature x0 is the row's position in its own input: guest i, host i - 500.
        assert_eq!(gr.features[0] - 500.0, hr.features[0]);
    }
}

/// The output is the intersection across all hosts; every host's output has the same keys.
#[test]
fn two_hosts_intersect_across_both() {
    let h = Harness::new(computing());
    let g = ids_frame(&h.computing, &id_range(0..1000), true);
    let h1 = ids_frame(&h.computing, &id_range(500..1500), false);
    let h2: Vec<(String, String)> = (0..700)
        .chain(900..950)
        .map(|i| (format!("s{i}"), format!("u{i:05}")))
        .collect();
    let h2 = ids_frame(&h.computing, &h2, false);
    let out = run(
        &h,
        json!({}),
        &g,
        &[(host("10000"), &h1), (host("10001"), &h2)],
    );
    let expected: Vec<String> = (500..700)
        .chain(900..950)
        .map(|i| format!("u{i:05}"))
        .collect();
    for p in [guest(), host("10000"), host("10001")] {
        let rows = output(&h, result(&out, &p));
        assert_eq!(
            rows.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
            expected,
            "{p}"
        );
        assert!(
            rows.iter().all(|(k, r)| &r.match_id == k),
            "{p}: rows are re-keyed by their own match id"
        );
        assert_eq!(count(result(&out, &p)), 250);
    }
}

/// FATE allows duplicate guest ids: each guest sample with a shared id is in the output, and
/// the host's row appears once under each of them.
#[test]
fn duplicate_guest_ids_each_match() {
    let h = Harness::new(computing());
    let mut g_ids = id_range(0..10);
    g_ids.push(("u00003_b".into(), "u00003".into()));
    g_ids.push(("u00007_b".into(), "u00007".into()));
    let g = ids_frame(&h.computing, &g_ids, true);
    let hd = ids_frame(&h.computing, &id_range(3..20), false);
    let out = run(&h, json!({}), &g, &[(host("10000"), &hd)]);
    let ho = output(&h, result(&out, &host("10000")));
    assert_eq!(count(result(&out, &guest())), 9);
    assert_eq!(count(result(&out, &host("10000"))), 9);
    let keys: Vec<&str> = ho.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "u00003", "u00003_b", "u00004", "u00005", "u00006", "u00007", "u00007_b", "u00008",
            "u00009"
        ]
    );
    assert_eq!(
        ho[0].1, ho[1].1,
        "both guest samples of u00003 get the host's u00003 row"
    );
    assert_eq!(ho[0].1.match_id, "u00003");
}

#[test]
fn duplicate_host_ids_fail_naming_the_host() {
    let h = Harness::new(computing());
    let g = ids_frame(&h.computing, &id_range(0..10), true);
    let mut h_ids = id_range(0..10);
    h_ids.push(("x".into(), "u00004".into()));
    let hd = ids_frame(&h.computing, &h_ids, false);
    let out = run(&h, json!({}), &g, &[(host("10000"), &hd)]);
    let e = error(result(&out, &host("10000")));
    assert!(
        e.contains("duplicate match_id detect") && e.contains("host 10000") && e.contains("u00004"),
        "{e}"
    );
    assert!(result(&out, &guest()).result.is_err());
}

#[test]
fn empty_intersection_fails_clearly_at_every_party() {
    let h = Harness::new(computing());
    let g = ids_frame(&h.computing, &id_range(0..50), true);
    let hd = ids_frame(&h.computing, &id_range(50..100), false);
    let out = run(&h, json!({}), &g, &[(host("10000"), &hd)]);
    for p in [guest(), host("10000")] {
        let e = error(result(&out, &p));
        assert!(
            e.contains("empty intersection between guest 9999 and host 10000"),
            "{p}: {e}"
        );
    }
}

/// One host shares nothing with the guest: the guest names it, and every host fails with the
/// empty-intersection message rather than a cancellation.
#[test]
fn empty_intersection_with_one_of_two_hosts() {
    let h = Harness::new(computing());
    let g = ids_frame(&h.computing, &id_range(0..50), true);
    let h1 = ids_frame(&h.computing, &id_range(0..50), false);
    let h2 = ids_frame(&h.computing, &id_range(50..100), false);
    let out = run(
        &h,
        json!({}),
        &g,
        &[(host("10000"), &h1), (host("10001"), &h2)],
    );
    let e = error(result(&out, &guest()));
    assert!(
        e.contains("empty intersection between guest 9999 and host 10001"),
        "{e}"
    );
    for p in [host("10000"), host("10001")] {
        let e = error(result(&out, &p));
        assert!(
            e.contains("empty intersection between guest 9999 and hosts 10000, 10001"),
            "{p}: {e}"
        );
    }
}

#[test]
fn unsupported_protocol_or_curve_is_a_parameter_error() {
    let h = Harness::new(computing());
    let g = ids_frame(&h.computing, &id_range(0..5), true);
    let hd = ids_frame(&h.computing, &id_range(0..5), false);
    for (params, field) in [
        (json!({"protocol": "rsa_psi"}), "protocol"),
        (json!({"curve_type": "secp256k1"}), "curve_type"),
    ] {
        let out = run(&h, params, &g, &[(host("10000"), &hd)]);
        for r in &out {
            let e = error(r);
            assert!(
                e.starts_with(&format!("parameter `{field}`")) && e.contains("not implemented"),
                "{e}"
            );
        }
    }
}

/// The payloads of the partition objects of table `name` among `frames`.
fn table_parts<T: serde::de::DeserializeOwned>(
    frames: &[fate_federation::testing::TranscriptEntry],
    name: &str,
) -> Vec<T> {
    let prefix = format!("{name}__table_persistent_");
    frames
        .iter()
        .filter(|e| e.name.starts_with(&prefix))
        .map(|e| {
            let Ok(Head::Inline(payload)) = decode_head(&e.frame, 1 << 30) else {
                panic!("{}: expected an inline frame", e.name)
            };
            decode_value(payload).unwrap()
        })
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Privacy (fate-spec §4.2): the host receives only 32-byte points and, at the end, an indexer
/// of the intersecting rows; the guest receives only points. Neither sees the other's raw ids.
#[test]
fn transcript_shows_only_points_and_the_final_indexer() {
    let transcript = Transcript::new();
    let h = Harness::new(computing()).with_observer(transcript.clone());
    let g = ids_frame(&h.computing, &id_range(0..1000), true);
    let hd = ids_frame(&h.computing, &id_range(500..1500), false);
    let out = run(&h, json!({}), &g, &[(host("10000"), &hd)]);
    assert!(out.iter().all(|r| r.result.is_ok()));

    let to_host = transcript.received_by(&host("10000"));
    let names: BTreeSet<&str> = to_host
        .iter()
        .map(|e| e.name.split("__").next().unwrap())
        .collect();
    assert_eq!(names, BTreeSet::from(["guest_first_sign", "host_indexer"]));
    let blocks: Vec<Vec<(u64, Vec<[u8; 32]>)>> = table_parts(&to_host, "guest_first_sign");
    assert_eq!(
        blocks
            .iter()
            .flatten()
            .map(|(_, pts)| pts.len())
            .sum::<usize>(),
        1000,
        "one point per guest row"
    );
    let indexer: Vec<(String, u64)> =
        table_parts::<Vec<(String, u64)>>(&to_host, "host_indexer").concat();
    assert_eq!(indexer.len(), 500, "one indexer entry per intersecting row");
    assert!(
        indexer
            .iter()
            .all(|(sid, _)| (500..1000).map(|i| format!("u{i:05}")).any(|s| &s == sid))
    );
    for i in [0, 1, 123, 250, 499] {
        let id = format!("u{i:05}");
        assert!(
            !to_host.iter().any(|e| contains(&e.frame, id.as_bytes())),
            "the host saw guest-only id {id}"
        );
    }

    let to_guest = transcript.received_by(&guest());
    let names: BTreeSet<&str> = to_guest
        .iter()
        .map(|e| e.name.split("__").next().unwrap())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(["host_first_sign", "guest_second_sign"])
    );
    let blocks: Vec<Vec<(u64, Vec<[u8; 32]>)>> = table_parts(&to_guest, "host_first_sign");
    assert_eq!(
        blocks
            .iter()
            .flatten()
            .map(|(_, pts)| pts.len())
            .sum::<usize>(),
        1000
    );
    let second: Vec<([u8; 32], Vec<u64>)> =
        table_parts::<Vec<([u8; 32], Vec<u64>)>>(&to_guest, "guest_second_sign").concat();
    assert_eq!(
        second.len(),
        1000,
        "one double-signed point per distinct guest id"
    );
    for i in [500, 777, 999, 1000, 1234, 1499] {
        let id = format!("u{i:05}");
        assert!(
            !to_guest.iter().any(|e| contains(&e.frame, id.as_bytes())),
            "the guest saw host id {id}"
        );
    }
}

/// Every run draws fresh secrets: the points a party sends differ between two runs.
#[test]
fn secrets_are_fresh_per_run() {
    let transcript = Transcript::new();
    let h = Harness::new(computing()).with_observer(transcript.clone());
    let g = ids_frame(&h.computing, &id_range(0..20), true);
    let hd = ids_frame(&h.computing, &id_range(0..20), false);
    let mut runs = Vec::new();
    for _ in 0..2 {
        transcript.clear();
        let out = run(&h, json!({}), &g, &[(host("10000"), &hd)]);
        assert!(out.iter().all(|r| r.result.is_ok()));
        let blocks: Vec<Vec<(u64, Vec<[u8; 32]>)>> =
            table_parts(&transcript.received_by(&host("10000")), "guest_first_sign");
        let mut points: Vec<[u8; 32]> = blocks.into_iter().flatten().flat_map(|(_, p)| p).collect();
        points.sort();
        runs.push(points);
    }
    assert_eq!(runs[0].len(), 20);
    assert!(runs[0].iter().all(|p| runs[1].binary_search(p).is_err()));
}

/// Partitions larger than one block (4096 rows): locations in later blocks of a partition
/// resolve to the right rows at both parties.
#[test]
fn multi_block_partitions() {
    let h = Harness::new(computing());
    let g: Vec<(String, String)> = (0..5000)
        .map(|i| (format!("g{i}"), format!("u{i:05}")))
        .collect();
    let g = ids_frame_in(&h.computing, &g, true, 1);
    // Every third guest id, in a single host partition of 4600 rows.
    let hd: Vec<(String, String)> = (0..4600)
        .map(|i| (format!("h{i}"), format!("u{:05}", i * 3)))
        .collect();
    let hd = ids_frame_in(&h.computing, &hd, false, 1);
    let out = run(&h, json!({}), &g, &[(host("10000"), &hd)]);
    let (go, ho) = (
        output(&h, result(&out, &guest())),
        output(&h, result(&out, &host("10000"))),
    );
    assert_eq!(count(result(&out, &guest())), 1667);
    assert_eq!(go.len(), ho.len());
    for ((gk, gr), (hk, hr)) in go.iter().zip(&ho) {
        assert_eq!((gk, &gr.match_id), (hk, &hr.match_id));
        // x0 is the row's position: guest id i is at i, host id 3j at j.
        assert_eq!(gr.features[0], 3.0 * hr.features[0]);
    }
}
