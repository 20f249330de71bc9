//! The Pulsar backend against two real brokers (Pulsar standalone from Maven Central, parties
//! split between them): the conformance suite, frames over 1 MiB, cleanup, hostile messages
//! and errors for bad route-table entries.

mod broker;

use std::sync::Arc;
use std::time::{Duration, Instant};

use fate_federation::testing::conformance;
use fate_federation::{CancelToken, Federation, FederationConfig, MessageKey, Transport, wire};
use fate_federation_pulsar::{
    Admin, DEFAULT_TENANT, Mode, PulsarConfig, PulsarTransport, RouteTable,
};
use fate_types::{Party, Role};

/// Parties of the conformance suite: guest 9999 and hosts 10001, 10003 on broker A,
/// host/arbiter 10000 and host 10002 on broker B, so every case crosses brokers.
const PARTIES: [&str; 5] = ["9999", "10000", "10001", "10002", "10003"];

fn routes() -> RouteTable {
    let (a, b) = broker::brokers();
    let entry = |port: u16, web: u16| format!("{{host: 127.0.0.1, port: {port}, mng_port: {web}}}");
    RouteTable::parse(&format!(
        "9999: {}\n10000: {}\n10001: {}\n10002: {}\n10003: {}\n",
        entry(a.port, a.web_port),
        entry(b.port, b.web_port),
        entry(a.port, a.web_port),
        entry(b.port, b.web_port),
        entry(a.port, a.web_port),
    ))
    .unwrap()
}

fn config() -> PulsarConfig {
    let mut config = PulsarConfig::new(routes(), PARTIES.iter().map(|p| p.to_string()).collect());
    config.send_timeout = Duration::from_secs(60);
    config
}

fn transport() -> Arc<PulsarTransport> {
    PulsarTransport::start(config()).unwrap_or_else(|e| panic!("start the transport: {e}"))
}

fn guest() -> Party {
    Party::new(Role::Guest, "9999")
}

fn host() -> Party {
    Party::new(Role::Host, "10000")
}

fn session(case: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("pulsar_{case}_{}_{nanos}", std::process::id())
}

/// The session namespaces on both brokers.
fn namespaces_of(sid: &str) -> Vec<String> {
    let routes = routes();
    ["9999", "10000"]
        .iter()
        .flat_map(|p| {
            Admin::new(p, &routes.broker(p).unwrap())
                .namespaces(DEFAULT_TENANT)
                .unwrap()
        })
        .filter(|ns| ns.ends_with(&format!("/{sid}")))
        .collect()
}

#[test]
fn conformance_in_client_mode() {
    let t = transport();
    let started = Instant::now();
    conformance(&|| t.clone() as Arc<dyn Transport>);
    eprintln!("pulsar conformance, client mode: {:.1?}", started.elapsed());
}

#[test]
fn frames_over_one_mib_cross_brokers() {
    let t = transport();
    let sid = session("large");
    let config = FederationConfig {
        timeout: Duration::from_secs(60),
        ..FederationConfig::default()
    };
    let g = Federation::new(t.clone(), &sid, guest(), config.clone(), CancelToken::new());
    let h = Federation::new(t.clone(), &sid, host(), config, CancelToken::new());
    // Sliced by the federation at 1 MiB.
    let big: Vec<u8> = (0..(3 << 20) + 123).map(|i| (i % 251) as u8).collect();
    let started = Instant::now();
    g.remote("big", "t", &[host()], &big).unwrap();
    let got: Vec<u8> = h.get_one("big", "t", &guest()).unwrap();
    eprintln!("3 MiB object in 1 MiB slices: {:.1?}", started.elapsed());
    assert_eq!(got, big);
    // One transport frame of a 4 MiB slice: within the broker's 5 MiB maxMessageSize.
    let key = MessageKey {
        session_id: sid.clone(),
        name: "raw".into(),
        tag: "t".into(),
        src: host(),
        dst: guest(),
    };
    let frame: Vec<u8> = (0..4 << 20).map(|i| (i % 253) as u8).collect();
    assert!(frame.len() <= wire::max_frame_len(4 << 20));
    let started = Instant::now();
    t.send(&key, frame.clone()).unwrap();
    let back = t
        .recv(
            &key,
            Instant::now() + Duration::from_secs(60),
            &CancelToken::new(),
        )
        .unwrap();
    eprintln!("4 MiB frame across two brokers: {:.1?}", started.elapsed());
    assert_eq!(back, frame);
    // A frame over max_frame_size is refused before it reaches a broker.
    let err = t
        .send(&key, vec![0; wire::max_frame_len(4 << 20) + 1])
        .unwrap_err()
        .to_string();
    assert!(err.contains("max_frame_size"), "{err}");
    t.cleanup(&sid);
}

#[test]
fn cleanup_leaves_no_session_namespace_on_either_broker() {
    let t = transport();
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
    let before = namespaces_of(&sid);
    assert_eq!(
        before,
        vec![format!("{DEFAULT_TENANT}/{sid}"); 2],
        "the session's namespace on each broker"
    );
    // Topics named as FATE names them, in the namespace.
    let routes = routes();
    let topics: Vec<String> = ureq::get(&format!(
        "{}/admin/v2/namespaces/{DEFAULT_TENANT}/{sid}/topics",
        routes.broker("10000").unwrap().admin_url()
    ))
    .call()
    .unwrap()
    .into_json()
    .unwrap();
    assert!(
        topics.contains(&format!(
            "persistent://{DEFAULT_TENANT}/{sid}/guest-9999-host-10000-federation"
        )),
        "{topics:?}"
    );
    g.cleanup();
    let after = namespaces_of(&sid);
    assert!(after.is_empty(), "namespaces left: {after:?}");
    // The session can be used again after its cleanup (its namespace is created anew).
    g.remote("z", "t", &[host()], &4u32).unwrap();
    assert_eq!(h.get_one::<u32>("z", "t", &guest()).unwrap(), 4);
    h.cleanup();
    assert!(namespaces_of(&sid).is_empty());
}

#[test]
fn bad_route_entries_name_the_party_and_the_field() {
    let (a, b) = broker::brokers();
    // An admin port where no broker listens.
    let table = RouteTable::parse(&format!(
        "9999: {{host: 127.0.0.1, port: {}, mng_port: 1}}",
        a.port
    ))
    .unwrap();
    let err = PulsarTransport::start(PulsarConfig::new(table, vec!["9999".into()]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("party 9999") && err.contains("`mng_port`") && err.contains("127.0.0.1:1"),
        "{err}"
    );
    // A party served here without an entry, and a `default` without `domain`.
    let table = RouteTable::parse("default: {proxy: \"proxy.fate.org:443\"}").unwrap();
    let err = PulsarTransport::start(PulsarConfig::new(table, vec!["9999".into()]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("party 9999") && err.contains("`default.domain`"),
        "{err}"
    );
    // A max_frame_size the broker's maxMessageSize cannot carry.
    let mut config = config();
    config.max_frame_size = wire::max_frame_len(8 << 20);
    let err = PulsarTransport::start(config).unwrap_err().to_string();
    assert!(
        err.contains("party 9999") && err.contains("maxMessageSize of 5242880"),
        "{err}"
    );
    // A peer the route table does not list.
    let t = transport();
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
        err.contains("party 20000") && err.contains("pulsar_route_table.yaml"),
        "{err}"
    );
    // Nothing was created for it on either broker.
    assert_eq!(namespaces_of(&sid), Vec::<String>::new(), "half-created");
    // A wrong binary-protocol port for the peer's broker (its admin port is right): the
    // send names that broker and the party once it gives up.
    let table = RouteTable::parse(&format!(
        "9999: {{host: 127.0.0.1, port: {}, mng_port: {}}}\n\
         10000: {{host: 127.0.0.1, port: 1, mng_port: {}}}\n",
        a.port, a.web_port, b.web_port
    ))
    .unwrap();
    let mut config = PulsarConfig::new(table, vec!["9999".into()]);
    config.send_timeout = Duration::from_secs(3);
    let t = PulsarTransport::start(config).unwrap();
    let key = MessageKey {
        session_id: session("badport"),
        name: "x".into(),
        tag: "t".into(),
        src: guest(),
        dst: host(),
    };
    let started = Instant::now();
    let err = t.send(&key, vec![1, 2, 3]).unwrap_err().to_string();
    assert!(
        err.contains("broker 127.0.0.1:1 of party 10000") && err.contains("host:10000"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    t.cleanup(&key.session_id);
    // The failed session leaves nothing on the sender's own broker once its job has cleaned
    // up. (What it created on the peer's broker, where the peer receives, is the peer node's
    // to delete when its own job ends: a sender must not take what its peer still reads.)
    let own: Vec<String> = Admin::new("9999", &routes().broker("9999").unwrap())
        .namespaces(DEFAULT_TENANT)
        .unwrap()
        .into_iter()
        .filter(|ns| ns.ends_with(&format!("/{}", key.session_id)))
        .collect();
    assert_eq!(
        own,
        Vec::<String>::new(),
        "left half-created on 9999's broker"
    );
    // A session id Pulsar cannot name a namespace after.
    let t = transport();
    let key = MessageKey {
        session_id: "a/b".into(),
        ..key
    };
    let err = t.send(&key, vec![1]).unwrap_err().to_string();
    assert!(err.contains("session id") && err.contains("a/b"), "{err}");
}

#[test]
fn hostile_messages_are_dropped_without_being_kept() {
    use pulsar::{Pulsar, TokioExecutor};

    let mut config = config();
    config.max_frame_size = 64 << 10;
    let t = PulsarTransport::start(config).unwrap();
    let sid = session("hostile");
    let key = |name: &str| MessageKey {
        session_id: sid.clone(),
        name: name.into(),
        tag: "t".into(),
        src: host(),
        dst: guest(),
    };
    let soon = || Instant::now() + Duration::from_secs(30);
    t.send(&key("first"), vec![1]).unwrap();
    assert_eq!(
        t.recv(&key("first"), soon(), &CancelToken::new()).unwrap(),
        vec![1]
    );
    // Anyone who can reach the guest's broker can produce on its incoming topic: a message
    // without fate properties, one with an oversized name, one over max_frame_size.
    let (a, _) = broker::brokers();
    let topic = format!("persistent://{DEFAULT_TENANT}/{sid}/host-10000-guest-9999-federation");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = Pulsar::builder(format!("pulsar://127.0.0.1:{}", a.port), TokioExecutor)
            .build()
            .await
            .unwrap();
        let mut producer = client.producer().with_topic(&topic).build().await.unwrap();
        let long_name = "n".repeat(5000);
        for (name, body) in [
            (None, vec![0u8; 10]),
            (Some(long_name.as_str()), vec![0u8; 10]),
            (Some("huge"), vec![0u8; 1 << 20]),
        ] {
            let mut m = producer.create_message().with_content(body);
            if let Some(name) = name {
                m = m
                    .with_property("fate-name", name)
                    .with_property("fate-tag", "t");
            }
            m.send_non_blocking().await.unwrap().await.unwrap();
        }
        producer.close().await.unwrap();
    });
    // A well-formed message after them still arrives; nothing of the others is kept.
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
    // Nothing is left unacknowledged on the subscription.
    let stats_url = format!(
        "http://127.0.0.1:{}/admin/v2/persistent/{DEFAULT_TENANT}/{sid}/host-10000-guest-9999-federation/stats",
        a.web_port
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let stats: serde_json::Value = ureq::get(&stats_url).call().unwrap().into_json().unwrap();
        let backlog = stats["subscriptions"]["unique"]["msgBacklog"].as_u64();
        if backlog == Some(0) {
            break;
        }
        assert!(Instant::now() < deadline, "backlog left: {stats}");
        std::thread::sleep(Duration::from_millis(500));
    }
    t.cleanup(&sid);
}

fn replication_config() -> PulsarConfig {
    let mut config = config();
    config.mode = Mode::Replication;
    config
}

/// Replication mode, FATE's default, on the two shared brokers (both cluster `standalone`,
/// FATE's name): a frame to a party on the other broker is produced on the sender's own broker
/// and reaches the receiver's by Pulsar geo-replication of its topic; two parties on one broker
/// need none.
#[test]
fn conformance_in_replication_mode() {
    let t = PulsarTransport::start(replication_config())
        .unwrap_or_else(|e| panic!("start the transport: {e}"));
    let started = Instant::now();
    conformance(&|| t.clone() as Arc<dyn Transport>);
    eprintln!(
        "pulsar conformance, replication mode: {:.1?}",
        started.elapsed()
    );
}

/// The star's tests one at a time: one of them stops a broker.
static STAR_SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The transports of the star's two nodes (replication through the SNI proxy over TLS).
fn star_nodes(star: &broker::Star) -> (Arc<PulsarTransport>, Arc<PulsarTransport>) {
    let proxy = format!("127.0.0.1:{}", star.proxy_port);
    // Each node's route table: its own broker on loopback, the peer by site name behind the
    // proxy (the brokers resolve site names; the node never connects to the peer).
    let table = |me: &broker::StarBroker, peer: &broker::StarBroker| {
        RouteTable::parse(&format!(
            "{}: {{host: 127.0.0.1, port: {}, mng_port: {}}}\n\
             {}: {{host: {}.fate.org, port: {}, sslPort: {}, mng_port: {}, mng_ssl_port: {}, \
             proxy: \"{proxy}\"}}\n",
            me.party,
            me.broker.port,
            me.broker.web_port,
            peer.party,
            peer.party,
            peer.broker.port,
            peer.ssl_port,
            peer.broker.web_port,
            peer.web_ssl_port,
        ))
        .unwrap()
    };
    let node = |me: &broker::StarBroker, peer: &broker::StarBroker| {
        let mut c = PulsarConfig::new(table(me, peer), vec![me.party.to_string()]);
        c.mode = Mode::Replication;
        c.cluster = me.party.to_string();
        c.listener_name = Some("sni".into());
        c.broker_trust_certs = Some(star.certs.join("ca.pem").display().to_string());
        c.send_timeout = Duration::from_secs(240);
        PulsarTransport::start(c).unwrap_or_else(|e| panic!("start {}'s transport: {e}", me.party))
    };
    (node(&star.a, &star.b), node(&star.b, &star.a))
}

/// The host's broker stopped (as an operator restarts it) in the middle of a session and
/// started again on its data 20 s later: what the guest sent meanwhile waits on the guest's
/// broker and replicates once the host's is back; the host's own sends retry until its broker
/// answers; nothing is lost or duplicated.
#[test]
fn a_broker_restarted_mid_session_loses_nothing() {
    let _serial = STAR_SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let star = broker::star();
    let (ta, tb) = star_nodes(star);
    let sid = session("restart");
    let config = FederationConfig {
        timeout: Duration::from_secs(300),
        ..FederationConfig::default()
    };
    let g = Federation::new(
        ta.clone(),
        &sid,
        guest(),
        config.clone(),
        CancelToken::new(),
    );
    let h = Federation::new(tb.clone(), &sid, host(), config, CancelToken::new());
    g.remote("before", "t", &[host()], &1u32).unwrap();
    assert_eq!(h.get_one::<u32>("before", "t", &guest()).unwrap(), 1);
    let started = Instant::now();
    star.b.broker.stop();
    // While it is down: the guest's frames go to the guest's own broker.
    for i in 0..5u32 {
        g.remote(&format!("during{i}"), "t", &[host()], &i).unwrap();
    }
    let big: Vec<u8> = (0..(2 << 20) + 5).map(|i| (i % 241) as u8).collect();
    g.remote("big", "t", &[host()], &big).unwrap();
    std::thread::sleep(Duration::from_secs(20).saturating_sub(started.elapsed()));
    let restart = std::thread::spawn(|| broker::star().b.broker.start_again());
    // The host's send retries until its broker is back.
    let back = h.remote("back", "t", &[guest()], &7u32);
    restart.join().unwrap();
    back.unwrap();
    for i in 0..5u32 {
        assert_eq!(
            h.get_one::<u32>(&format!("during{i}"), "t", &guest())
                .unwrap(),
            i
        );
    }
    assert_eq!(h.get_one::<Vec<u8>>("big", "t", &guest()).unwrap(), big);
    assert_eq!(g.get_one::<u32>("back", "t", &host()).unwrap(), 7);
    eprintln!(
        "across a restart of the host's broker: {:.1?}",
        started.elapsed()
    );
    assert_eq!(
        tb.mailbox().pending_frames(),
        0,
        "a frame left over (a duplicate?)"
    );
    g.cleanup();
    h.cleanup();
}

/// The topic's stats on `broker` (admin REST), or `None` if it does not exist there.
fn topic_stats(admin_url: &str, sid: &str, topic: &str) -> Option<serde_json::Value> {
    ureq::get(&format!(
        "{admin_url}/admin/v2/persistent/{DEFAULT_TENANT}/{sid}/{topic}/stats"
    ))
    .call()
    .ok()?
    .into_json()
    .ok()
}

/// FATE's star network: guest 9999 and host 10000 each on their own broker, one node (here:
/// one transport) per party, each knowing only its own broker's address and the other
/// party's site name behind the SNI proxy. Frames travel broker to broker through Traffic
/// Server over TLS (certificates `<party>.fate.org`), both ways, sliced objects included;
/// cleanup removes the session's namespaces.
#[test]
fn replication_through_the_sni_proxy_with_tls() {
    let _serial = STAR_SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let star = broker::star();
    let (ta, tb) = star_nodes(star);
    let sid = session("star");
    let config = FederationConfig {
        timeout: Duration::from_secs(120),
        ..FederationConfig::default()
    };
    let g = Federation::new(
        ta.clone(),
        &sid,
        guest(),
        config.clone(),
        CancelToken::new(),
    );
    let h = Federation::new(tb.clone(), &sid, host(), config, CancelToken::new());
    let started = Instant::now();
    g.remote("hello", "t", &[host()], &"from guest".to_string())
        .unwrap();
    assert_eq!(
        h.get_one::<String>("hello", "t", &guest()).unwrap(),
        "from guest"
    );
    let first = started.elapsed();
    let big: Vec<u8> = (0..(2 << 20) + 77).map(|i| (i % 249) as u8).collect();
    h.remote("big", "t", &[guest()], &big).unwrap();
    assert_eq!(g.get_one::<Vec<u8>>("big", "t", &host()).unwrap(), big);
    eprintln!(
        "star through the SNI proxy: first frame {first:.1?}, 2 MiB back {:.1?}",
        started.elapsed() - first
    );
    // The guest's frames were produced on its own broker and replicated to the host's, over
    // the proxy: the replicator of the topic is connected there.
    let topic = "guest-9999-host-10000-federation";
    let a_admin = format!("http://127.0.0.1:{}", star.a.broker.web_port);
    let b_admin = format!("http://127.0.0.1:{}", star.b.broker.web_port);
    let stats = topic_stats(&a_admin, &sid, topic).expect("the guest's topic on its broker");
    assert_eq!(
        stats["replication"]["10000"]["connected"], true,
        "replicator of {topic}: {stats}"
    );
    assert!(topic_stats(&b_admin, &sid, topic).is_some());
    g.cleanup();
    h.cleanup();
    for admin in [&a_admin, &b_admin] {
        let namespaces: Vec<String> =
            ureq::get(&format!("{admin}/admin/v2/namespaces/{DEFAULT_TENANT}"))
                .call()
                .unwrap()
                .into_json()
                .unwrap();
        assert!(
            !namespaces.iter().any(|ns| ns.ends_with(&sid)),
            "{admin}: {namespaces:?}"
        );
    }
}

/// The proxy hop of the star, as `fate doctor` checks it: the SNI route of each party leads
/// to a broker certified for its site name by the site's CA; a name the proxy has no route
/// for (Traffic Server then fails the handshake: it holds no certificate) is an error naming
/// the proxy and the name. And a send to such a party does not hang: it is on the sender's broker
/// at once (replication carries it when the route exists).
#[test]
fn a_missing_sni_route_is_an_error_naming_the_hop() {
    use fate_federation_pulsar::sni::check_sni_route;

    let _serial = STAR_SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let star = broker::star();
    let proxy = format!("127.0.0.1:{}", star.proxy_port);
    let ca = star.certs.join("ca.pem");
    let t = Duration::from_secs(10);
    check_sni_route(&proxy, "9999.fate.org", &ca, t).unwrap();
    check_sni_route(&proxy, "10000.fate.org", &ca, t).unwrap();
    let err = check_sni_route(&proxy, "10001.fate.org", &ca, t).unwrap_err();
    assert!(
        err.contains(&format!("SNI proxy {proxy}")) && err.contains("`10001.fate.org`"),
        "{err}"
    );
    // Nothing listens there.
    let err = check_sni_route("127.0.0.1:1", "9999.fate.org", &ca, t).unwrap_err();
    assert!(
        err.contains("127.0.0.1:1") && err.contains("connect"),
        "{err}"
    );

    let (a, b) = (&star.a, &star.b);
    let table = RouteTable::parse(&format!(
        "9999: {{host: 127.0.0.1, port: {}, mng_port: {}}}\n\
         10001: {{host: 10001.fate.org, port: {}, sslPort: {}, mng_port: {}, mng_ssl_port: {}, \
         proxy: \"{proxy}\"}}\n",
        a.broker.port,
        a.broker.web_port,
        b.broker.port,
        b.ssl_port,
        b.broker.web_port,
        b.web_ssl_port,
    ))
    .unwrap();
    let mut c = PulsarConfig::new(table, vec!["9999".into()]);
    c.mode = Mode::Replication;
    c.cluster = "9999".into();
    c.listener_name = Some("sni".into());
    c.broker_trust_certs = Some(ca.display().to_string());
    let tr = PulsarTransport::start(c).unwrap();
    let key = MessageKey {
        session_id: session("nosni"),
        name: "x".into(),
        tag: "t".into(),
        src: guest(),
        dst: Party::new(Role::Host, "10001"),
    };
    let started = Instant::now();
    tr.send(&key, vec![1, 2, 3]).unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "{:?}",
        started.elapsed()
    );
    tr.cleanup(&key.session_id);
}

/// `fate bench federation --backend pulsar` at 8 MiB on the two brokers, in both modes: the
/// object crosses our two nodes' transports and the pulsar crate alone unchanged, both rates
/// are positive, and the raw run's namespace is gone after. Not a timed test.
#[test]
fn the_bench_moves_the_object_through_ours_and_the_raw_client_unchanged() {
    use fate_federation_pulsar::bench;
    for mode in [Mode::Replication, Mode::Client] {
        let options = bench::BenchOptions {
            mode,
            ..bench::BenchOptions::new(routes(), 8 << 20)
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
        let routes = routes();
        let left: Vec<String> = ["9999", "10000"]
            .iter()
            .flat_map(|p| {
                Admin::new(p, &routes.broker(p).unwrap())
                    .namespaces(DEFAULT_TENANT)
                    .unwrap()
            })
            .filter(|ns| ns.contains("/bench_") && ns.ends_with("_raw"))
            .collect();
        assert!(left.is_empty(), "{mode:?}: raw namespaces left: {left:?}");
    }
    let err = bench::bench(&bench::BenchOptions::new(routes(), 0)).unwrap_err();
    assert!(err.to_string().contains("empty"), "{err}");
}

/// A job's `pulsar_run` (given per party by the scheduler): `topic_ttl` becomes the TTL of the
/// session's namespace on the party's broker, and `producer.compression_type` the compression
/// of what the party produces (NONE: the bytes as sent; ZSTD: a few for zeros).
#[test]
fn a_jobs_pulsar_run_sets_the_namespace_ttl_and_the_producer_compression() {
    let (a, b) = broker::brokers();
    let t = PulsarTransport::start(replication_config()).unwrap();
    let sid = session("run");
    let run = |ttl: u32, c: fate_types::BrokerCompression| fate_types::BrokerRun {
        topic_ttl_minutes: Some(ttl),
        compression: Some(c),
        ..Default::default()
    };
    t.configure_session(&sid, &guest(), &run(7, fate_types::BrokerCompression::None));
    t.configure_session(&sid, &host(), &run(9, fate_types::BrokerCompression::Zstd));
    let config = FederationConfig {
        timeout: Duration::from_secs(120),
        ..FederationConfig::default()
    };
    let g = Federation::new(t.clone(), &sid, guest(), config.clone(), CancelToken::new());
    let h = Federation::new(t.clone(), &sid, host(), config, CancelToken::new());
    let zeros = vec![0u8; 512 << 10];
    g.remote("z", "t", &[host()], &zeros).unwrap();
    h.remote("z", "t", &[guest()], &zeros).unwrap();
    assert_eq!(h.get_one::<Vec<u8>>("z", "t", &guest()).unwrap(), zeros);
    assert_eq!(g.get_one::<Vec<u8>>("z", "t", &host()).unwrap(), zeros);
    for (broker, ttl_minutes) in [(a, 7), (b, 9)] {
        let url = format!(
            "http://127.0.0.1:{}/admin/v2/namespaces/{DEFAULT_TENANT}/{sid}/messageTTL",
            broker.web_port
        );
        let ttl: u64 = ureq::get(&url).call().unwrap().into_json().unwrap();
        assert_eq!(ttl, ttl_minutes * 60, "{url}");
    }
    let bytes_in = |port: u16, src: &Party, dst: &Party| {
        let topic = PulsarTransport::topic(src, dst, "federation");
        let stats = topic_stats(&format!("http://127.0.0.1:{port}"), &sid, &topic)
            .unwrap_or_else(|| panic!("no topic {topic}"));
        stats["bytesInCounter"].as_u64().unwrap()
    };
    let plain = bytes_in(a.web_port, &guest(), &host());
    let packed = bytes_in(b.web_port, &host(), &guest());
    assert!(plain >= zeros.len() as u64, "NONE stored {plain} bytes");
    assert!(
        packed < zeros.len() as u64 / 20,
        "ZSTD stored {packed} bytes"
    );
    g.cleanup();
    h.cleanup();
}
