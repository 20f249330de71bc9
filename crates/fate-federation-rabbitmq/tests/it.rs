//! The RabbitMQ backend against two real brokers (Debian's rabbitmq-server, one per party):
//! the conformance suite in client and replication mode, frames over 1 MiB, cleanup, and
//! errors for bad route-table entries.

mod broker;

use std::sync::Arc;
use std::time::{Duration, Instant};

use fate_federation::testing::conformance;
use fate_federation::{CancelToken, Federation, FederationConfig, MessageKey, Transport, wire};
use fate_federation_rabbitmq::{Mode, RabbitConfig, RabbitTransport, RouteTable};
use fate_types::{Party, Role};

/// Parties of the conformance suite: guest 9999 and host 10001 on broker A, host/arbiter
/// 10000 and hosts 10002, 10003 on broker B, so every case crosses brokers.
const PARTIES: [&str; 5] = ["9999", "10000", "10001", "10002", "10003"];

fn routes(password: &str) -> RouteTable {
    let (a, b) = broker::brokers();
    let entry = |port: u16, mng: u16| {
        format!(
            "{{host: 127.0.0.1, port: {port}, mng_port: {mng}, user: guest, password: {password}}}"
        )
    };
    RouteTable::parse(&format!(
        "9999: {}\n10000: {}\n10001: {}\n10002: {}\n10003: {}\n",
        entry(a.amqp_port, a.mng_port),
        entry(b.amqp_port, b.mng_port),
        entry(a.amqp_port, a.mng_port),
        entry(b.amqp_port, b.mng_port),
        entry(a.amqp_port, a.mng_port),
    ))
    .unwrap()
}

fn transport(mode: Mode) -> Arc<RabbitTransport> {
    let mut config = RabbitConfig::new(
        routes("guest"),
        PARTIES.iter().map(|p| p.to_string()).collect(),
        mode,
    );
    config.send_timeout = Duration::from_secs(60);
    RabbitTransport::start(config).unwrap_or_else(|e| panic!("start the transport: {e}"))
}

fn run_conformance(mode: Mode) {
    let t = transport(mode);
    let started = Instant::now();
    conformance(&|| t.clone() as Arc<dyn Transport>);
    eprintln!(
        "rabbitmq conformance, {mode:?} mode: {:.1?}",
        started.elapsed()
    );
}

#[test]
fn conformance_in_client_mode() {
    run_conformance(Mode::Client);
}

#[test]
fn conformance_in_replication_mode() {
    run_conformance(Mode::Replication);
}

fn guest() -> Party {
    Party::new(Role::Guest, "9999")
}

fn host() -> Party {
    Party::new(Role::Host, "10000")
}

fn session(case: &str) -> String {
    format!("rmq_{case}_{}_{}", std::process::id(), fastrand())
}

fn fastrand() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
}

#[test]
fn frames_over_one_mib_cross_federated_brokers() {
    let t = transport(Mode::Replication);
    let sid = session("large");
    let config = FederationConfig {
        timeout: Duration::from_secs(60),
        ..FederationConfig::default()
    };
    let g = Federation::new(t.clone(), &sid, guest(), config.clone(), CancelToken::new());
    let h = Federation::new(t.clone(), &sid, host(), config, CancelToken::new());
    // Sliced by the federation at 1 MiB.
    let big: Vec<u8> = (0..(3 << 20) + 123).map(|i| (i % 251) as u8).collect();
    g.remote("big", "t", &[host()], &big).unwrap();
    let got: Vec<u8> = h.get_one("big", "t", &guest()).unwrap();
    assert_eq!(got, big);
    // One transport frame of 4 MiB (a federation with max_message_size 4 MiB): within the
    // broker's message limit, carried in several AMQP frames.
    let key = MessageKey {
        session_id: sid.clone(),
        name: "raw".into(),
        tag: "t".into(),
        src: host(),
        dst: guest(),
    };
    let frame: Vec<u8> = (0..4 << 20).map(|i| (i % 253) as u8).collect();
    assert!(frame.len() <= wire::max_frame_len(16 << 20));
    let started = Instant::now();
    t.send(&key, frame.clone()).unwrap();
    let back = t
        .recv(
            &key,
            Instant::now() + Duration::from_secs(60),
            &CancelToken::new(),
        )
        .unwrap();
    eprintln!(
        "4 MiB frame across two federated brokers: {:.1?}",
        started.elapsed()
    );
    assert_eq!(back, frame);
    t.cleanup(&sid);
}

#[test]
fn cleanup_leaves_no_session_vhost_queue_or_user_on_either_broker() {
    for mode in [Mode::Replication, Mode::Client] {
        let t = transport(mode);
        let sid = session("cleanup");
        let config = FederationConfig {
            timeout: Duration::from_secs(60),
            ..FederationConfig::default()
        };
        let g = Federation::new(t.clone(), &sid, guest(), config.clone(), CancelToken::new());
        let h = Federation::new(t.clone(), &sid, host(), config, CancelToken::new());
        g.remote("x", "t", &[host()], &1u32).unwrap();
        h.remote("y", "t", &[guest()], &2u32).unwrap();
        assert_eq!(h.get_one::<u32>("x", "t", &guest()).unwrap(), 1);
        assert_eq!(g.get_one::<u32>("y", "t", &host()).unwrap(), 2);
        // A frame nobody reads is still on a broker: cleanup must take it too.
        g.remote("unread", "t", &[host()], &3u32).unwrap();
        let brokers = [
            t.management("9999").unwrap(),
            t.management("10000").unwrap(),
        ];
        let before: usize = brokers
            .iter()
            .map(|m| {
                m.vhosts()
                    .unwrap()
                    .iter()
                    .filter(|v| v.starts_with(&sid))
                    .count()
            })
            .sum();
        assert_eq!(before, 2, "{mode:?}: one vhost of the pair on each broker");
        assert!(
            brokers.iter().all(|m| m.users().unwrap().contains(&sid)),
            "{mode:?}: the session's user is on both brokers"
        );
        g.cleanup();
        for m in brokers {
            let vhosts = m.vhosts().unwrap();
            assert!(
                !vhosts.iter().any(|v| v.starts_with(&sid)),
                "{mode:?} {m:?}: vhosts left: {vhosts:?}"
            );
            let queues = m.queues().unwrap();
            assert!(
                !queues.iter().any(|q| q.contains(&sid)),
                "{mode:?} {m:?}: queues left: {queues:?}"
            );
            assert!(
                !m.users().unwrap().contains(&sid),
                "{mode:?} {m:?}: the session's user is left"
            );
        }
    }
}

#[test]
fn bad_route_entries_name_the_party_and_the_field() {
    // A wrong admin password.
    let config = RabbitConfig::new(routes("wrong"), vec!["10000".into()], Mode::Replication);
    let err = RabbitTransport::start(config).unwrap_err().to_string();
    assert!(
        err.contains("party 10000") && err.contains("`password`") && err.contains("401"),
        "{err}"
    );
    // No admin credentials for a party this node serves.
    let (a, _) = broker::brokers();
    let table = RouteTable::parse(&format!(
        "9999: {{host: 127.0.0.1, port: {}, mng_port: {}}}",
        a.amqp_port, a.mng_port
    ))
    .unwrap();
    let err = RabbitTransport::start(RabbitConfig::new(table, vec!["9999".into()], Mode::Client))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("party 9999") && err.contains("`user`"),
        "{err}"
    );
    // A management port where no broker listens.
    let table = RouteTable::parse(&format!(
        "9999: {{host: 127.0.0.1, port: {}, mng_port: 1, user: guest, password: guest}}",
        a.amqp_port
    ))
    .unwrap();
    let err = RabbitTransport::start(RabbitConfig::new(table, vec!["9999".into()], Mode::Client))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("party 9999") && err.contains("`mng_port`") && err.contains("127.0.0.1:1"),
        "{err}"
    );
    // A peer the route table does not list.
    let t = transport(Mode::Replication);
    let sid = session("unknown");
    let g = Federation::new(
        t.clone(),
        &sid,
        guest(),
        FederationConfig::default(),
        CancelToken::new(),
    );
    let stranger = Party::new(Role::Host, "20000");
    let err = g
        .remote("x", "t", &[stranger], &1u8)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("party 20000") && err.contains("rabbitmq_route_table.yaml"),
        "{err}"
    );
    // Nothing was created for it on either broker.
    assert_session_gone(&t, &sid, "a peer not listed");
    // A wrong AMQP port for the sender's own broker (its management port is right): the
    // send names that broker and the party once it gives up.
    let (a, b) = broker::brokers();
    let table = RouteTable::parse(&format!(
        "9999: {{host: 127.0.0.1, port: 1, mng_port: {}, user: guest, password: guest}}\n\
         10000: {{host: 127.0.0.1, port: {}}}\n",
        a.mng_port, b.amqp_port
    ))
    .unwrap();
    let mut config = RabbitConfig::new(table, vec!["9999".into()], Mode::Client);
    config.send_timeout = Duration::from_secs(2);
    let t = RabbitTransport::start(config).unwrap();
    let key = MessageKey {
        session_id: session("badport"),
        name: "x".into(),
        tag: "t".into(),
        src: guest(),
        dst: host(),
    };
    let err = t.send(&key, vec![1, 2, 3]).unwrap_err().to_string();
    assert!(
        err.contains("broker 127.0.0.1:1 of party 9999") && err.contains("host:10000"),
        "{err}"
    );
    t.cleanup(&key.session_id);
    // The failed session leaves nothing on its broker once its job has cleaned up.
    assert_session_gone(&t, &key.session_id, "a wrong AMQP port");
}

/// Neither broker of `t`'s route table holds a vhost, queue or user of session `sid`.
fn assert_session_gone(t: &RabbitTransport, sid: &str, case: &str) {
    for party in ["9999", "10000"] {
        let Some(m) = t.management(party) else {
            continue;
        };
        let vhosts = m.vhosts().unwrap();
        assert!(
            !vhosts.iter().any(|v| v.starts_with(sid)),
            "{case}: vhosts left half-created at {party}: {vhosts:?}"
        );
        let queues = m.queues().unwrap();
        assert!(
            !queues.iter().any(|q| q.contains(sid)),
            "{case}: queues left half-created at {party}: {queues:?}"
        );
        assert!(
            !m.users().unwrap().iter().any(|u| u == sid),
            "{case}: the session's user is left at {party}"
        );
    }
}

#[test]
fn hostile_messages_are_rejected_without_being_kept() {
    use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
    use lapin::types::{AMQPValue, FieldTable};
    use lapin::{BasicProperties, Connection, ConnectionProperties};

    let mut config = RabbitConfig::new(
        routes("guest"),
        PARTIES.iter().map(|p| p.to_string()).collect(),
        Mode::Client,
    );
    config.max_frame_size = 64 << 10;
    let t = RabbitTransport::start(config).unwrap();
    let sid = session("hostile");
    let key = |name: &str| MessageKey {
        session_id: sid.clone(),
        name: name.into(),
        tag: "t".into(),
        src: host(),
        dst: guest(),
    };
    let soon = || Instant::now() + Duration::from_secs(30);
    // The host's side (vhost, user, queue on broker B) exists once it sent something.
    t.send(&key("first"), vec![1]).unwrap();
    assert_eq!(
        t.recv(&key("first"), soon(), &CancelToken::new()).unwrap(),
        vec![1]
    );
    // Anyone who knows the session id can log in as its user (FATE's convention) and
    // publish into the guest's incoming queue: a message without fate headers, one with
    // an oversized name, and one over max_frame_size.
    let (_, b) = broker::brokers();
    let vhost = RabbitTransport::vhost(&sid, &guest(), &host());
    let queue = format!("{sid}-host-10000-guest-9999");
    let uri = format!(
        "amqp://{sid}:{sid}@127.0.0.1:{}/{}",
        b.amqp_port,
        vhost.replace('/', "%2F")
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let conn = Connection::connect(&uri, ConnectionProperties::default())
            .await
            .unwrap();
        let ch = conn.create_channel().await.unwrap();
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        let headers = |name: &str| {
            let mut h = FieldTable::default();
            h.insert("fate-name".into(), AMQPValue::LongString(name.into()));
            h.insert("fate-tag".into(), AMQPValue::LongString("t".into()));
            h
        };
        let long_name = "n".repeat(5000);
        for (props, body) in [
            (BasicProperties::default(), vec![0u8; 10]),
            (
                BasicProperties::default().with_headers(headers(&long_name)),
                vec![0u8; 10],
            ),
            (
                BasicProperties::default().with_headers(headers("huge")),
                vec![0u8; 1 << 20],
            ),
        ] {
            ch.basic_publish(
                "".into(),
                queue.as_str().into(),
                BasicPublishOptions::default(),
                &body,
                props,
            )
            .await
            .unwrap()
            .await
            .unwrap();
        }
        conn.close(200, "done".into()).await.unwrap();
    });
    // A well-formed message after them still arrives; nothing of the others is kept, in the
    // mailbox or (requeued) on the broker.
    t.send(&key("after"), vec![2]).unwrap();
    assert_eq!(
        t.recv(&key("after"), soon(), &CancelToken::new()).unwrap(),
        vec![2]
    );
    assert_eq!(t.mailbox().pending_frames(), 0);
    let err = t
        .recv(
            &key("huge"),
            Instant::now() + Duration::from_millis(500),
            &CancelToken::new(),
        )
        .unwrap_err();
    assert!(err.to_string().contains("huge"), "{err}");
    let url = format!(
        "http://127.0.0.1:{}/api/queues/{}/{}",
        b.mng_port,
        vhost.replace('/', "%2F"),
        queue
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let q: serde_json::Value = ureq::get(&url)
            .set("Authorization", "Basic Z3Vlc3Q6Z3Vlc3Q=")
            .call()
            .unwrap()
            .into_json()
            .unwrap();
        // The management API's counts lag by its statistics interval.
        if q["messages"].as_u64() == Some(0) {
            break;
        }
        assert!(Instant::now() < deadline, "messages left in {queue}: {q}");
        std::thread::sleep(Duration::from_millis(500));
    }
    t.cleanup(&sid);
}

/// `fate bench federation --backend rabbitmq` at 8 MiB on the two brokers, in both modes: the
/// object crosses our two nodes' transports and lapin alone unchanged, both rates are
/// positive, and neither run leaves a vhost or user behind. Not a timed test.
#[test]
fn the_bench_moves_the_object_through_ours_and_raw_lapin_unchanged() {
    use fate_federation_rabbitmq::{Management, bench};
    let routes = routes("guest");
    for mode in [Mode::Replication, Mode::Client] {
        let options = bench::BenchOptions {
            mode,
            ..bench::BenchOptions::new(routes.clone(), 8 << 20)
        };
        let r = bench::bench(&options).unwrap_or_else(|e| panic!("{mode:?}: {e}"));
        eprintln!(
            "bench {mode:?}, 8 MiB: ours {:.3} GiB/s, raw {:.3} GiB/s",
            r.ours_gib_per_s(),
            r.raw_gib_per_s()
        );
        assert!(r.checksum_ok(), "{mode:?}: {r:?}");
        assert_eq!(
            r.frames,
            1 + 8,
            "{mode:?}: split header and eight 1 MiB slices"
        );
        assert_eq!((r.received_bytes, r.raw_bytes), (8 << 20, 8 << 20));
        for rate in [r.ours_gib_per_s(), r.raw_gib_per_s(), r.ratio()] {
            assert!(rate.is_finite() && rate > 0.0, "{mode:?}: {r:?}");
        }
        for party in ["9999", "10000"] {
            let m = Management::new(party, routes.broker(party).unwrap()).unwrap();
            let vhosts = m.vhosts().unwrap();
            assert!(
                !vhosts.iter().any(|v| v.starts_with("bench_")),
                "{mode:?}, broker of {party}: vhosts left: {vhosts:?}"
            );
            let users = m.users().unwrap();
            assert!(
                !users.iter().any(|u| u.starts_with("bench_")),
                "{mode:?}, broker of {party}: users left: {users:?}"
            );
        }
    }
    // An object of nothing is refused before any broker is touched.
    let err = bench::bench(&bench::BenchOptions::new(routes, 0)).unwrap_err();
    assert!(err.to_string().contains("empty"), "{err}");
}

/// A job's `rabbitmq_run.connection.heartbeat` (given per party by the scheduler) is the
/// heartbeat of that party's connections in the session: guest 7 s on its broker, host 11 s on
/// its own.
#[test]
fn a_jobs_rabbitmq_run_sets_the_heartbeat_of_the_sessions_connections() {
    let t = transport(Mode::Replication);
    let sid = session("heartbeat");
    let run = |h: u16| fate_types::BrokerRun {
        heartbeat_secs: Some(h),
        ..Default::default()
    };
    t.configure_session(&sid, &guest(), &run(7));
    t.configure_session(&sid, &host(), &run(11));
    let config = FederationConfig {
        timeout: Duration::from_secs(60),
        ..FederationConfig::default()
    };
    let g = Federation::new(t.clone(), &sid, guest(), config.clone(), CancelToken::new());
    let h = Federation::new(t.clone(), &sid, host(), config, CancelToken::new());
    g.remote("x", "t", &[host()], &1u32).unwrap();
    h.remote("y", "t", &[guest()], &2u32).unwrap();
    assert_eq!(h.get_one::<u32>("x", "t", &guest()).unwrap(), 1);
    assert_eq!(g.get_one::<u32>("y", "t", &host()).unwrap(), 2);
    let vhost = RabbitTransport::vhost(&sid, &guest(), &host());
    for (party, want) in [("9999", 7), ("10000", 11)] {
        let m = t.management(party).unwrap();
        // The management API's connection stats lag a few seconds.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let beats = m.heartbeats(&vhost).unwrap();
            if beats.contains(&want) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no connection with a {want} s heartbeat at {party}: {beats:?}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    g.cleanup();
}
