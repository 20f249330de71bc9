//! Sites on separate hosts, emulated with network namespaces (`testing::netns`): routers and
//! transports each in a namespace of their own with their own address, links rate-limited by
//! `tbf`, and latency added by the delay proxy (`testing::delay`).
//!
//! The namespace tests need root and iproute2; they skip with the reason otherwise, and fail
//! under CI (env `CI`), which runs as root. The loopback delay test always runs.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fate_federation::testing::conformance;
use fate_federation::{CancelToken, Federation, FederationConfig, MessageKey, Transport};
use fate_federation_grpc::certs::CertAuthority;
use fate_federation_grpc::proto::data_transfer_service_client::DataTransferServiceClient;
use fate_federation_grpc::proto::{Metadata, Packet, Topic};
use fate_federation_grpc::testing::Sites;
use fate_federation_grpc::testing::delay::{DelayConfig, DelayProxy};
use fate_federation_grpc::testing::netns::{Direction, Network};
use fate_federation_grpc::{
    ClientOptions, GrpcTransport, RetryPolicy, RouteTable, Router, RouterConfig, Routes, TlsConfig,
    TransportConfig,
};
use fate_types::{Party, Role};
use serde_json::{Value, json};

const DOMAIN: &str = "fate.org";
const SITE_A: &[&str] = &["9999"];
const SITE_B: &[&str] = &["10000", "10001", "10002", "10003"];

fn client() -> ClientOptions {
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

fn endpoint(addr: SocketAddr, secure: bool) -> Value {
    json!({"ip": addr.ip().to_string(), "port": addr.port(), "is_secure": secure})
}

/// A FATE-shaped table: each entry is `party -> {"default": [endpoint]}`.
fn table(entries: &[(&str, Value)], self_party: &[&str]) -> RouteTable {
    let mut route_table = serde_json::Map::new();
    for (party, ep) in entries {
        route_table.insert(party.to_string(), json!({"default": [ep]}));
    }
    let default_allow = entries.iter().any(|(party, _)| *party == "default");
    let text = json!({
        "route_table": route_table,
        "permission": {"default_allow": default_allow},
        "self_party": self_party,
    })
    .to_string();
    RouteTable::from_json(&text, None).unwrap()
}

fn tls(ca: &CertAuthority, names: &[&str]) -> TlsConfig {
    let cert = ca.issue(names).unwrap();
    TlsConfig {
        cert_chain_pem: cert.cert_pem.into_bytes(),
        private_key_pem: cert.key_pem.into_bytes(),
        ca_pem: ca.cert_pem().as_bytes().to_vec(),
        domain: DOMAIN.to_string(),
        trusted_relays: Vec::new(),
    }
}

fn start_router(listen: IpAddr, routes: &Routes, tls: TlsConfig) -> Router {
    Router::start(RouterConfig {
        tls: Some(tls),
        client: client(),
        ..RouterConfig::new(SocketAddr::new(listen, 0), routes.clone())
    })
    .unwrap()
}

fn start_transport(listen: IpAddr, routes: &Routes, tls: Option<TlsConfig>) -> Arc<GrpcTransport> {
    GrpcTransport::start(TransportConfig {
        tls,
        client: client(),
        send_timeout: Duration::from_secs(120),
        ..TransportConfig::new(SocketAddr::new(listen, 0), routes.clone())
    })
    .unwrap()
}

/// Node indexes of [`Hosts`].
const TRANSPORT_A: usize = 0;
const ROUTER_A: usize = 1;
const ROUTER_B: usize = 2;
const TRANSPORT_B: usize = 3;

/// Four hosts with mutual TLS: transport A, router A, router B, transport B, each in its own
/// namespace; the routers list each other (direct mode).
struct Hosts {
    a: Arc<GrpcTransport>,
    b: Arc<GrpcTransport>,
    _routers: Vec<Router>,
    // Last: the namespaces outlive what runs in them.
    net: Network,
}

impl Hosts {
    fn start(test: &str) -> Option<Hosts> {
        let net = Network::for_test(test, 4)?;
        let ip = |i: usize| IpAddr::V4(net.addr(i));
        let ca = CertAuthority::new(DOMAIN).unwrap();
        let (ra_routes, rb_routes) = (
            Routes::new(table(&[], SITE_A)),
            Routes::new(table(&[], SITE_B)),
        );
        let ra = net.run(ROUTER_A, || {
            start_router(ip(ROUTER_A), &ra_routes, tls(&ca, SITE_A))
        });
        let rb = net.run(ROUTER_B, || {
            start_router(ip(ROUTER_B), &rb_routes, tls(&ca, SITE_B))
        });
        let a_routes = Routes::new(table(
            &[("default", endpoint(ra.local_addr(), true))],
            SITE_A,
        ));
        let b_routes = Routes::new(table(
            &[("default", endpoint(rb.local_addr(), true))],
            SITE_B,
        ));
        let a = net.run(TRANSPORT_A, || {
            start_transport(ip(TRANSPORT_A), &a_routes, Some(tls(&ca, SITE_A)))
        });
        let b = net.run(TRANSPORT_B, || {
            start_transport(ip(TRANSPORT_B), &b_routes, Some(tls(&ca, SITE_B)))
        });
        for (i, addr) in [
            (ROUTER_A, ra.local_addr()),
            (ROUTER_B, rb.local_addr()),
            (TRANSPORT_A, a.local_addr()),
            (TRANSPORT_B, b.local_addr()),
        ] {
            assert_eq!(
                addr.ip(),
                ip(i),
                "each part listens on its own host's address"
            );
        }
        let mut ra_entries = vec![("9999", endpoint(a.local_addr(), true))];
        ra_entries.extend(SITE_B.iter().map(|p| (*p, endpoint(rb.local_addr(), true))));
        ra_routes.set(table(&ra_entries, SITE_A));
        let mut rb_entries = vec![("9999", endpoint(ra.local_addr(), true))];
        rb_entries.extend(SITE_B.iter().map(|p| (*p, endpoint(b.local_addr(), true))));
        rb_routes.set(table(&rb_entries, SITE_B));
        Some(Hosts {
            a,
            b,
            _routers: vec![ra, rb],
            net,
        })
    }

    fn shared(&self) -> Arc<dyn Transport> {
        Arc::new(Sites(vec![
            (SITE_A, self.a.clone()),
            (SITE_B, self.b.clone()),
        ]))
    }

    /// Sends `object` from guest 9999 to host 10000 and returns how long until it was read.
    fn transfer(&self, session: &str, object: &[u8]) -> Duration {
        let t = self.shared();
        let config = || FederationConfig {
            timeout: Duration::from_secs(120),
            ..FederationConfig::default()
        };
        let guest = Party::new(Role::Guest, "9999");
        let host = Party::new(Role::Host, "10000");
        let g = Federation::new(
            t.clone(),
            session,
            guest.clone(),
            config(),
            CancelToken::new(),
        );
        let h = Federation::new(t, session, host.clone(), config(), CancelToken::new());
        let start = Instant::now();
        g.remote("object", "0", std::slice::from_ref(&host), &object.to_vec())
            .unwrap();
        let got: Vec<u8> = h.get_one("object", "0", &guest).unwrap();
        let took = start.elapsed();
        assert!(got == object, "the object changed in transit");
        took
    }
}

#[test]
fn conformance_between_four_namespaces() {
    let Some(hosts) = Hosts::start("conformance_between_four_namespaces") else {
        return;
    };
    // The hosts cannot reach each other through the machine's own loopback: router A is only
    // at its namespace's address.
    let t = hosts.shared();
    let start = Instant::now();
    conformance(&|| t.clone());
    eprintln!("conformance between namespaces: {:?}", start.elapsed());
}

/// `Sent <n> bytes` of `tc -s qdisc show`.
fn qdisc_sent_bytes(stats: &str) -> u64 {
    stats
        .split_once("Sent ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no `Sent <n> bytes` in {stats}"))
}

#[test]
fn a_rate_limited_link_bounds_a_large_transfer() {
    let Some(hosts) = Hosts::start("a_rate_limited_link_bounds_a_large_transfer") else {
        return;
    };
    let object: Vec<u8> = (0..(32u32 << 20))
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    let session = format!("netns_rate_{}", std::process::id());
    let unshaped = hosts.transfer(&format!("{session}_free"), &object);

    // Router A's sending side, the link every byte from site A to site B crosses.
    let rate_bits: u64 = 100_000_000;
    hosts
        .net
        .limit_rate(ROUTER_A, Direction::FromNode, rate_bits)
        .unwrap();
    let before = qdisc_sent_bytes(&hosts.net.qdisc(ROUTER_A, Direction::FromNode).unwrap());
    let shaped = hosts.transfer(&format!("{session}_shaped"), &object);
    let stats = hosts.net.qdisc(ROUTER_A, Direction::FromNode).unwrap();
    let through_qdisc = qdisc_sent_bytes(&stats) - before;

    let ideal = Duration::from_secs_f64(object.len() as f64 * 8.0 / rate_bits as f64);
    eprintln!(
        "32 MiB from router A to router B: unshaped {unshaped:?}, at 100 mbit {shaped:?} \
         (ideal {ideal:?}, {:.1} Mbit/s); qdisc: {}",
        object.len() as f64 * 8.0 / shaped.as_secs_f64() / 1e6,
        stats.trim().replace('\n', " | ")
    );
    assert!(
        through_qdisc >= object.len() as u64,
        "only {through_qdisc} bytes went through the tbf qdisc: {stats}"
    );
    assert!(
        shaped >= ideal.mul_f64(0.8),
        "32 MiB crossed a 100 mbit link in {shaped:?}, faster than 80% of the ideal {ideal:?}: \
         the rate limit is not applied"
    );
    // And the limit can be lifted again.
    hosts.net.clear_rate(ROUTER_A, Direction::FromNode).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Latency.

fn key(name: &str) -> MessageKey {
    MessageKey {
        session_id: format!("netns_{name}_{}", std::process::id()),
        name: name.to_string(),
        tag: "t".to_string(),
        src: Party::new(Role::Guest, "9999"),
        dst: Party::new(Role::Host, "10000"),
    }
}

/// A unaryCall to party 10000's fateflow, answered by the server it reaches (which declines).
fn unary_round_trip(addr: SocketAddr) -> Duration {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let channel = rt
        .block_on(
            tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
                .unwrap()
                .tcp_nodelay(true)
                .connect(),
        )
        .unwrap();
    let mut client = DataTransferServiceClient::new(channel);
    let call = || Packet {
        header: Some(Metadata {
            src: Some(Topic {
                party_id: "9999".into(),
                role: "fateflow".into(),
                ..Default::default()
            }),
            dst: Some(Topic {
                party_id: "10000".into(),
                role: "fateflow".into(),
                ..Default::default()
            }),
            operator: "POST".into(),
            ..Default::default()
        }),
        body: None,
    };
    // The first call also sets up HTTP/2; time the second, on the open connection.
    let _ = rt.block_on(client.unary_call(call()));
    let start = Instant::now();
    let status = rt.block_on(client.unary_call(call())).unwrap_err();
    let took = start.elapsed();
    assert_eq!(status.code(), tonic::Code::Unimplemented, "{status:?}");
    assert!(
        status.message().contains("reached the node of party 10000"),
        "{status:?}"
    );
    took
}

/// Transport A pushes to transport B's server through `proxy`; returns the time of a second
/// (acknowledged) send, on the open connection.
fn acknowledged_send(a_listen: IpAddr, b: &GrpcTransport, proxy: SocketAddr) -> Duration {
    let a = start_transport(
        a_listen,
        &Routes::new(table(&[("10000", endpoint(proxy, false))], SITE_A)),
        None,
    );
    let (k1, k2) = (key("warm"), key("timed"));
    a.send(&k1, vec![1; 100]).unwrap();
    let start = Instant::now();
    a.send(&k2, vec![2; 100]).unwrap();
    let took = start.elapsed();
    let far = Instant::now() + Duration::from_secs(10);
    assert_eq!(b.recv(&k2, far, &CancelToken::new()).unwrap(), vec![2; 100]);
    took
}

#[test]
fn the_delay_proxy_adds_its_delay_to_each_round_trip() {
    let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let b = start_transport(localhost, &Routes::new(table(&[], SITE_B)), None);
    let direct = unary_round_trip(b.local_addr());
    let delay = Duration::from_millis(50);
    let proxy = DelayProxy::start(SocketAddr::new(localhost, 0), b.local_addr(), delay).unwrap();
    let unary = unary_round_trip(proxy.local_addr());
    let send = acknowledged_send(localhost, &b, proxy.local_addr());
    eprintln!(
        "unary round trip: direct {direct:?}, through a 50 ms delay proxy {unary:?}; \
         acknowledged send through it {send:?}"
    );
    assert!(unary >= 2 * delay, "unary round trip took only {unary:?}");
    assert!(send >= 2 * delay, "acknowledged send took only {send:?}");
    assert!(proxy.connections() >= 2 && proxy.bytes() > 0);
}

#[test]
fn the_delay_proxy_joins_two_namespaces() {
    let Some(net) = Network::for_test("the_delay_proxy_joins_two_namespaces", 2) else {
        return;
    };
    let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
    // Transport B listens on the loopback of namespace 1 only.
    let b = net.run(1, || {
        start_transport(localhost, &Routes::new(table(&[], SITE_B)), None)
    });
    // The proxy accepts on namespace 0's loopback and connects from namespace 1: a wire with
    // 50 ms each way between two hosts that share no route.
    let listener = net.run(0, || {
        std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap()
    });
    let delay = Duration::from_millis(50);
    let proxy = net.run(1, || {
        DelayProxy::start_with(listener, b.local_addr(), DelayConfig::new(delay)).unwrap()
    });
    let send = net.run(0, || acknowledged_send(localhost, &b, proxy.local_addr()));
    eprintln!("acknowledged send from namespace 0 to 1 through the delay proxy: {send:?}");
    assert!(send >= 2 * delay, "acknowledged send took only {send:?}");
    assert!(proxy.connections() >= 1);
    drop(proxy);
    drop(b);
}

#[test]
fn code_runs_inside_a_namespace_and_namespaces_go_even_on_panic() {
    let Some(net) = Network::for_test(
        "code_runs_inside_a_namespace_and_namespaces_go_even_on_panic",
        2,
    ) else {
        return;
    };
    let (a, b) = (net.addr(0), net.addr(1));
    // Node 0's address exists inside node 0 only.
    let inside = net.run(0, || std::net::TcpListener::bind((a, 0)).map(|_| ()));
    assert!(inside.is_ok(), "bind in node 0: {inside:?}");
    let outside = std::net::TcpListener::bind((a, 0));
    assert!(outside.is_err(), "node 0's address is visible outside it");
    // Node 0 reaches node 1 over the bridge.
    let listener = net.run(1, || std::net::TcpListener::bind((b, 0)).unwrap());
    let to = listener.local_addr().unwrap();
    net.run(0, || {
        std::net::TcpStream::connect_timeout(&to, Duration::from_secs(5))
    })
    .unwrap();

    let names: Vec<String> = (0..net.len())
        .map(|i| net.namespace(i).to_string())
        .collect();
    let listed = || {
        let out = std::process::Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(names.iter().all(|n| listed().contains(n.as_str())));
    // A panic inside the namespace unwinds through the test, which drops the network.
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        net.run(0, || panic!("a test failing inside a namespace"));
    }));
    assert!(panicked.is_err());
    drop(listener);
    let left = listed();
    assert!(
        names.iter().all(|n| !left.contains(n.as_str())),
        "namespaces left behind: {left}"
    );
}
