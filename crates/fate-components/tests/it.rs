//! Components run at every party in one process through `fate_runtime::testing::Harness`.

use fate_computing::{Computing, ComputingConfig};
use fate_federation::Direction;
use fate_federation::testing::Transcript;
use fate_federation::wire::{Head, decode_head, decode_value};
use fate_runtime::testing::{Harness, PartyRun};
use fate_types::{Party, Role};
use serde_json::json;

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

fn host() -> Party {
    Party::new(Role::Host, "10000")
}

#[test]
fn secure_add_gives_the_guest_twice_data_num() {
    let h = Harness::new(computing());
    let c = fate_components::secure_add::SecureAddExample;
    let params = json!({"data_num": 1000, "partition": 4});
    let out = h.run(
        "secure_add_0",
        &c,
        vec![
            PartyRun::new(guest(), params.clone()),
            PartyRun::new(host(), params),
        ],
    );
    for r in &out {
        assert!(r.result.is_ok(), "{}: {:?}", r.party, r.result);
    }
    let g = out.iter().find(|r| r.party == guest()).unwrap();
    assert_eq!(g.metric("secure_sum").unwrap()["secure_sum"], 2000.0);
}

/// Privacy: each party receives only random shares of the other's values, never the values.
#[test]
fn secure_add_transcript_shows_only_shares() {
    let transcript = Transcript::new();
    let h = Harness::new(computing()).with_observer(transcript.clone());
    let c = fate_components::secure_add::SecureAddExample;
    let params = json!({"data_num": 200, "partition": 2});
    let out = h.run(
        "secure_add_0",
        &c,
        vec![
            PartyRun::new(guest(), params.clone()),
            PartyRun::new(host(), params),
        ],
    );
    assert!(out.iter().all(|r| r.result.is_ok()));

    let received = |p: &Party| -> Vec<_> {
        transcript
            .received_by(p)
            .into_iter()
            .filter(|e| e.direction == Direction::Recv)
            .collect()
    };
    let host_names: std::collections::BTreeSet<String> =
        received(&host()).iter().map(|e| e.name.clone()).collect();
    assert!(
        host_names.iter().all(|n| n.starts_with("guest_share")),
        "host received {host_names:?}"
    );
    let guest_names: std::collections::BTreeSet<String> =
        received(&guest()).iter().map(|e| e.name.clone()).collect();
    assert!(
        guest_names
            .iter()
            .all(|n| n.starts_with("host_share") || n == "host_sum"),
        "guest received {guest_names:?}"
    );

    // Every value the host received is a share v - r with r random, so none is the raw 1.0.
    let mut values = 0;
    for e in received(&host()) {
        if !e.name.contains("__table_persistent_") {
            continue;
        }
        let Ok(Head::Inline(payload)) = decode_head(&e.frame, 1 << 30) else {
            panic!("expected inline frames")
        };
        let part: Vec<(u64, f64)> = decode_value(payload).unwrap();
        for (_, v) in part {
            values += 1;
            assert!(v != 1.0 && v > 0.0 && v < 2.0, "share {v} is not masked");
        }
    }
    assert_eq!(values, 200, "the host received one share per guest row");
}

#[test]
fn toy_example_matches_every_row_with_two_hosts() {
    let h = Harness::new(computing());
    let c = fate_components::toy::ToyExample;
    let params = json!({"data_num": 1024, "partition": 4});
    let hosts = [host(), Party::new(Role::Host, "10001")];
    let mut runs = vec![PartyRun::new(guest(), params.clone())];
    runs.extend(
        hosts
            .iter()
            .map(|p| PartyRun::new(p.clone(), params.clone())),
    );
    let out = h.run("toy_example_0", &c, runs);
    for r in &out {
        assert!(r.result.is_ok(), "{}: {:?}", r.party, r.result);
        assert_eq!(r.outputs.data[0].count, 1024);
        assert_eq!(
            r.outputs.models[0].1,
            json!({"test_role": r.party.role.as_str()})
        );
    }
}

#[test]
fn a_failing_party_ends_the_others_instead_of_leaving_them_waiting() {
    let mut h = Harness::new(computing());
    h.federation.timeout = std::time::Duration::from_secs(60);
    let c = fate_components::toy::ToyExample;
    let start = std::time::Instant::now();
    // The host has no partition parameter: it fails at once; the guest must not wait 60 s.
    let out = h.run(
        "toy_example_0",
        &c,
        vec![
            PartyRun::new(guest(), json!({"data_num": 10, "partition": 1})),
            PartyRun::new(host(), json!({"data_num": 10})),
        ],
    );
    let host_err = out
        .iter()
        .find(|r| r.party == host())
        .unwrap()
        .result
        .as_ref()
        .unwrap_err()
        .to_string();
    assert!(host_err.contains("partition"), "{host_err}");
    assert!(
        out.iter()
            .find(|r| r.party == guest())
            .unwrap()
            .result
            .is_err()
    );
    assert!(
        start.elapsed() < std::time::Duration::from_secs(10),
        "took {:?}",
        start.elapsed()
    );
}

/// Whatever the suite's engine, the toy, secure_add and a PSI also run on the encoded engine,
/// where an unregistered or non-round-tripping kernel fails the run; the run's output is the
/// local engine's.
#[test]
fn components_run_on_the_encoded_engine() {
    let cfg = ComputingConfig {
        cores: 2,
        default_partitions: 4,
        data_dir: None,
    };
    let h = Harness::new(fate_components::testing::encoded(cfg));
    assert_eq!(h.computing.engine_name(), "encoded");
    let params = json!({"data_num": 300, "partition": 3});
    let runs = || {
        vec![
            PartyRun::new(guest(), params.clone()),
            PartyRun::new(host(), params.clone()),
        ]
    };
    let out = h.run("toy_example_0", &fate_components::toy::ToyExample, runs());
    for r in &out {
        assert!(r.result.is_ok(), "{}: {:?}", r.party, r.result);
        assert_eq!(r.outputs.data[0].count, 300);
    }
    let out = h.run(
        "secure_add_0",
        &fate_components::secure_add::SecureAddExample,
        runs(),
    );
    let g = out.iter().find(|r| r.party == guest()).unwrap();
    assert!(g.result.is_ok(), "{:?}", g.result);
    assert_eq!(g.metric("secure_sum").unwrap()["secure_sum"], 600.0);
}

/// Every kernel name is registered once.
#[test]
fn kernel_names_are_unique() {
    let mut r = fate_computing::KernelRegistry::new();
    fate_components::register_kernels(&mut r).unwrap();
    assert!(r.names().iter().all(|n| n.starts_with("fate_components.")));
    assert!(r.contains("fate_components.psi.first_sign"));
    let err = fate_components::register_kernels(&mut r).unwrap_err();
    assert!(err.to_string().contains("registered twice"), "{err}");
}
