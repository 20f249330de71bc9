//! The seeds' SNI star network (fate-spec §2.6) with a real Apache Traffic Server: both sites'
//! routers know only the proxy's address, and reach `<party>.fate.org` through it by the TLS
//! server name; `sni.yaml` tunnels each name to that party's router. The TLS session, client
//! certificate included, runs end to end between the routers.
//!
//! Needs `traffic_server` (Debian package `trafficserver`, installed by scripts/setup.sh): the
//! tests skip with the reason when it is missing, and fail under CI.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fate_federation::testing::conformance;
use fate_federation::{
    CancelToken, Federation, FederationConfig, FederationError, MessageKey, Transport,
};
use fate_federation_grpc::certs::{self, CertAuthority, CertFiles};
use fate_federation_grpc::testing::Sites;
use fate_federation_grpc::testing::ats::{AtsConfig, TrafficServer, Tunnel};
use fate_federation_grpc::{
    ClientOptions, GrpcTransport, Limits, RetryPolicy, RouteTable, Router, RouterConfig, Routes,
    TlsConfig, TransportConfig,
};
use fate_types::{Party, Role};
use serde_json::{Value, json};

const DOMAIN: &str = "fate.org";
const SITE_A: &[&str] = &["9999"];
const SITE_B: &[&str] = &["10000", "10001", "10002", "10003"];

fn localhost() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

fn fast_client() -> ClientOptions {
    ClientOptions {
        connect_timeout: Duration::from_secs(2),
        retry: RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(100),
        },
        ..ClientOptions::default()
    }
}

/// A secure route endpoint; `hostname` is the TLS server name (and so the proxy's tunnel).
fn endpoint(addr: SocketAddr, hostname: Option<&str>) -> Value {
    let mut e = json!({"ip": addr.ip().to_string(), "port": addr.port(), "is_secure": true});
    if let Some(h) = hostname {
        e["hostname"] = json!(h);
    }
    e
}

/// A FATE-shaped table: each entry is `party -> {"default": [endpoint]}`; the `default` party
/// entry is allowed when there is one.
fn table(entries: &[(&str, Value)], self_party: &[&str]) -> RouteTable {
    let default_allow = entries.iter().any(|(party, _)| *party == "default");
    let mut route_table = serde_json::Map::new();
    for (party, ep) in entries {
        route_table.insert(party.to_string(), json!({"default": [ep]}));
    }
    let text = json!({
        "route_table": route_table,
        "permission": {"default_allow": default_allow},
        "self_party": self_party,
    })
    .to_string();
    RouteTable::from_json(&text, None).unwrap()
}

fn site_tls(files: &CertFiles) -> TlsConfig {
    TlsConfig::from_files(
        &files.cert_chain_file,
        &files.private_key_file,
        &files.ca_file,
        DOMAIN,
    )
    .unwrap()
}

fn start_router(routes: &Routes, tls: TlsConfig) -> Router {
    Router::start(RouterConfig {
        tls: Some(tls),
        client: fast_client(),
        ..RouterConfig::new(localhost(), routes.clone())
    })
    .unwrap()
}

fn start_transport(routes: &Routes, tls: TlsConfig) -> Arc<GrpcTransport> {
    GrpcTransport::start(TransportConfig {
        tls: Some(tls),
        client: fast_client(),
        limits: Limits::default(),
        send_timeout: Duration::from_secs(60),
        ..TransportConfig::new(localhost(), routes.clone())
    })
    .unwrap()
}

/// Two sites, each a transport behind its own router, joined only through Traffic Server.
struct Star {
    dir: tempfile::TempDir,
    ats: TrafficServer,
    ra: Router,
    a: Arc<GrpcTransport>,
    b: Arc<GrpcTransport>,
    ra_routes: Routes,
    _rb: Router,
}

impl Star {
    /// `None` when the test skips (no Traffic Server).
    fn start(test: &str) -> Option<Star> {
        Self::start_with(test, Duration::from_secs(300))
    }

    /// With Traffic Server closing tunnels idle for `idle_timeout`.
    fn start_with(test: &str, idle_timeout: Duration) -> Option<Star> {
        let dir = tempfile::tempdir().unwrap();
        // A CA and one certificate per site named `<party>.fate.org`, as files.
        let files = certs::generate(dir.path(), DOMAIN, &[SITE_A, SITE_B]).unwrap();
        let (tls_a, tls_b) = (site_tls(&files[0]), site_tls(&files[1]));
        let (ra_routes, rb_routes) = (
            Routes::new(table(&[], SITE_A)),
            Routes::new(table(&[], SITE_B)),
        );
        let ra = start_router(&ra_routes, tls_a.clone());
        let rb = start_router(&rb_routes, tls_b.clone());
        // The proxy's sni.yaml: every party's name tunnels to its site's router.
        let mut tunnels = vec![Tunnel::new("9999.fate.org", ra.local_addr())];
        tunnels.extend(
            SITE_B
                .iter()
                .map(|p| Tunnel::new(format!("{p}.{DOMAIN}"), rb.local_addr())),
        );
        let config = AtsConfig {
            idle_timeout,
            ..AtsConfig::new(tunnels)
        };
        let ats = TrafficServer::for_test(test, &config)?;
        let proxy = ats.addr();

        // Each transport pushes to its own router; the routers know the peer only as the
        // proxy. Party 10000's route names its server name explicitly; 10001-10003 use the
        // default name `<party>.<domain>`, which is also what the proxy tunnels on.
        let a = start_transport(
            &Routes::new(table(
                &[("default", endpoint(ra.local_addr(), None))],
                SITE_A,
            )),
            tls_a,
        );
        let b = start_transport(
            &Routes::new(table(
                &[("default", endpoint(rb.local_addr(), None))],
                SITE_B,
            )),
            tls_b,
        );
        let mut a_entries = vec![
            ("9999", endpoint(a.local_addr(), None)),
            ("10000", endpoint(proxy, Some("10000.fate.org"))),
        ];
        a_entries.extend(SITE_B[1..].iter().map(|p| (*p, endpoint(proxy, None))));
        ra_routes.set(table(&a_entries, SITE_A));
        let mut b_entries = vec![("9999", endpoint(proxy, Some("9999.fate.org")))];
        b_entries.extend(SITE_B.iter().map(|p| (*p, endpoint(b.local_addr(), None))));
        rb_routes.set(table(&b_entries, SITE_B));
        Some(Star {
            dir,
            ats,
            ra,
            a,
            b,
            ra_routes,
            _rb: rb,
        })
    }

    fn shared(&self) -> Arc<dyn Transport> {
        Arc::new(Sites(vec![
            (SITE_A, self.a.clone()),
            (SITE_B, self.b.clone()),
        ]))
    }
}

#[test]
fn conformance_through_traffic_server_sni_tunnels() {
    let Some(star) = Star::start("conformance_through_traffic_server_sni_tunnels") else {
        return;
    };
    let t = star.shared();
    let start = Instant::now();
    conformance(&|| t.clone());
    eprintln!(
        "conformance through Traffic Server at {}: {:?}",
        star.ats.addr(),
        start.elapsed()
    );
}

#[test]
fn a_large_object_crosses_the_proxy_both_ways() {
    let Some(star) = Star::start("a_large_object_crosses_the_proxy_both_ways") else {
        return;
    };
    let t = star.shared();
    let session = format!("sni_large_{}", std::process::id());
    let config = || FederationConfig {
        timeout: Duration::from_secs(120),
        ..FederationConfig::default()
    };
    let guest = Party::new(Role::Guest, "9999");
    let host = Party::new(Role::Host, "10000");
    let g = Federation::new(
        t.clone(),
        session.clone(),
        guest.clone(),
        config(),
        CancelToken::new(),
    );
    let h = Federation::new(t, session, host.clone(), config(), CancelToken::new());
    let object: Vec<u8> = (0..(48u32 << 20))
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let start = Instant::now();
    g.remote("big", "0", std::slice::from_ref(&host), &object)
        .unwrap();
    let got: Vec<u8> = h.get_one("big", "0", &guest).unwrap();
    let forth = start.elapsed();
    assert!(got == object, "the object changed in transit");
    let start = Instant::now();
    h.remote("big", "1", std::slice::from_ref(&guest), &got)
        .unwrap();
    let back: Vec<u8> = g.get_one("big", "1", &host).unwrap();
    let back_took = start.elapsed();
    assert!(back == object, "the object changed on the way back");
    let mib = object.len() as f64 / (1 << 20) as f64;
    eprintln!(
        "{mib:.0} MiB through Traffic Server: 9999 -> 10000 {forth:?} ({:.0} MiB/s), \
         10000 -> 9999 {back_took:?} ({:.0} MiB/s)",
        mib / forth.as_secs_f64(),
        mib / back_took.as_secs_f64()
    );
}

fn key(name: &str, src: &str, dst: &str) -> MessageKey {
    MessageKey {
        session_id: format!("sni_{name}_{}", std::process::id()),
        name: name.to_string(),
        tag: "t".to_string(),
        src: Party::new(Role::Guest, src),
        dst: Party::new(Role::Host, dst),
    }
}

fn send_err(t: &GrpcTransport, key: &MessageKey) -> String {
    match t.send(key, vec![1, 2, 3]) {
        Err(err @ FederationError::Transport { .. }) => err.to_string(),
        other => panic!("send of {key} gave {other:?}, not a transport error"),
    }
}

#[test]
fn a_name_the_proxy_does_not_tunnel_and_a_wrong_certificate_are_named() {
    let test = "a_name_the_proxy_does_not_tunnel_and_a_wrong_certificate_are_named";
    let Some(star) = Star::start(test) else {
        return;
    };
    let proxy = star.ats.addr();
    let ra = star.ra.local_addr();

    // Router A routes party 7777 to the proxy, which has no sni.yaml entry for 7777.fate.org.
    let mut table_a = star.ra_routes.current().as_ref().clone();
    let extra = table(&[("7777", endpoint(proxy, None))], SITE_A);
    table_a = merge(table_a, &extra);
    star.ra_routes.set(table_a);
    let err = send_err(&star.a, &key("untunnelled", "9999", "7777"));
    assert!(
        err.contains(&format!(
            "route to host:7777 via {ra} (default route): route to host:7777 via {proxy} \
             (router of 7777): TLS handshake failed"
        )),
        "{err}\n{}",
        star.ats.diagnostics()
    );
    assert!(
        err.contains("7777.fate.org"),
        "names the server name: {err}"
    );
    assert!(!err.contains("gave up after"), "not retried: {err}");

    // The TLS session is end to end: router B itself sees the client certificate. A site
    // whose certificate is for 7777 but which claims to send for 9999 is refused by router B,
    // through the proxy.
    let ca = CertAuthority::load(star.dir.path(), DOMAIN).unwrap();
    let impostor_cert = ca.issue(&["7777"]).unwrap();
    let impostor_files = impostor_cert.write(star.dir.path()).unwrap();
    let impostor = start_transport(
        &Routes::new(table(
            &[("10000", endpoint(proxy, Some("10000.fate.org")))],
            SITE_A,
        )),
        site_tls(&impostor_files),
    );
    let err = send_err(&impostor, &key("impostor", "9999", "10000"));
    assert!(
        err.contains(&format!("via {proxy} (router of 10000)"))
            && err.contains("TLS: certificate for 7777.fate.org presented where 9999 was claimed"),
        "{err}"
    );
    assert_eq!(
        star.b.mailbox().pending_frames(),
        0,
        "nothing was delivered"
    );
}

/// `base` with the entries of `extra` added.
fn merge(base: RouteTable, extra: &RouteTable) -> RouteTable {
    let mut entries = std::collections::BTreeMap::new();
    for table in [&base, extra] {
        for party in table.parties() {
            entries.insert(party.to_string(), table.roles(party).unwrap().clone());
        }
    }
    RouteTable::from_parts(entries, base.default_allow(), base.self_party().to_vec())
}

/// Connections from site A's router to the proxy, by `ss`.
fn established_to(addr: SocketAddr) -> usize {
    let out = std::process::Command::new("ss")
        .args(["-Htn", "state", "established"])
        .arg(format!("( dport = :{} )", addr.port()))
        .output()
        .expect("ss (iproute2) runs");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).lines().count()
}

#[test]
fn a_tunnel_the_proxy_closed_when_idle_is_opened_again() {
    let test = "a_tunnel_the_proxy_closed_when_idle_is_opened_again";
    let Some(star) = Star::start_with(test, Duration::from_secs(1)) else {
        return;
    };
    let proxy = star.ats.addr();
    star.a
        .send(&key("before_idle", "9999", "10000"), vec![1; 10])
        .unwrap();
    assert_eq!(established_to(proxy), 1, "router A holds one tunnel");
    // ATS checks its inactivity timeouts every few seconds, not to the millisecond.
    let deadline = Instant::now() + Duration::from_secs(20);
    while established_to(proxy) > 0 {
        assert!(
            Instant::now() < deadline,
            "the proxy never closed the idle tunnel"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let k = key("after_idle", "9999", "10000");
    star.a.send(&k, vec![2; 10]).unwrap();
    let far = Instant::now() + Duration::from_secs(10);
    assert_eq!(
        star.b.recv(&k, far, &CancelToken::new()).unwrap(),
        vec![2; 10]
    );
    assert_eq!(established_to(proxy), 1, "a new tunnel");
}
