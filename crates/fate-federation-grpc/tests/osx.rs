//! FATE 2.x OSX queue mode through fate-rs routers (fate-spec §2.4): tonic clients play FATE's
//! python OSX client (`fate/arch/federation/backends/osx/_mq_channel.py`: its metadata, topic
//! naming and `osx.Message` payloads) against routers 9999 and 10000, directly, through an
//! exchange, in plaintext and with mutual TLS; one plays an OSX broker forwarding by
//! `PrivateTransferProtocol.invoke`. All servers listen on 127.0.0.1 with OS-assigned ports.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fate_federation_grpc::certs::CertAuthority;
use fate_federation_grpc::osx::{FORWARD_PUSH_URI, code, header};
use fate_federation_grpc::ptp::private_transfer_protocol_client::PrivateTransferProtocolClient;
use fate_federation_grpc::ptp::private_transfer_transport_client::PrivateTransferTransportClient;
use fate_federation_grpc::ptp::{
    Inbound, Message, PeekInbound, PopInbound, PushInbound, ReleaseInbound, TransportOutbound,
};
use fate_federation_grpc::{
    ClientOptions, Limits, OsxConfig, RouteTable, Router, RouterConfig, Routes, TlsConfig,
};
use prost::Message as _;
use serde_json::{Value, json};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

const DOMAIN: &str = "fate.org";
/// A federation session id as FATE-Flow makes it: `{job_id}_{task_name}_{task_version}`.
const SID: &str = "202406011200000000_psi_0_0";
const GUEST: (&str, &str) = ("guest", "9999");
const HOST: (&str, &str) = ("host", "10000");

// ---------------------------------------------------------------------------------------------
// Sites.

fn localhost() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn endpoint(addr: SocketAddr, secure: bool) -> Value {
    json!({"ip": addr.ip().to_string(), "port": addr.port(), "is_secure": secure})
}

fn table(entries: &[(&str, Value)], self_party: &[&str], default_allow: bool) -> RouteTable {
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

fn tls(ca: &CertAuthority, names: &[&str], relays: &[&str]) -> TlsConfig {
    let cert = ca.issue(names).unwrap();
    TlsConfig {
        cert_chain_pem: cert.cert_pem.into_bytes(),
        private_key_pem: cert.key_pem.into_bytes(),
        ca_pem: ca.cert_pem().as_bytes().to_vec(),
        domain: DOMAIN.to_string(),
        trusted_relays: relays.iter().map(|r| format!("{r}.{DOMAIN}")).collect(),
    }
}

fn start_router(routes: &Routes, tls: Option<TlsConfig>, limits: Limits, osx: OsxConfig) -> Router {
    Router::start(RouterConfig {
        tls,
        limits,
        osx,
        client: ClientOptions {
            connect_timeout: Duration::from_secs(2),
            ..ClientOptions::default()
        },
        ..RouterConfig::new(localhost(), routes.clone())
    })
    .unwrap()
}

/// Routers of party 9999 (`a`) and 10000 (`b`) routing to each other.
struct Pair {
    a: Router,
    b: Router,
    routes_a: Routes,
    ca: Option<CertAuthority>,
}

fn pair(secure: bool, limits: Limits, osx: OsxConfig) -> Pair {
    let ca = secure.then(|| CertAuthority::new(DOMAIN).unwrap());
    let (routes_a, routes_b) = (
        Routes::new(RouteTable::default()),
        Routes::new(RouteTable::default()),
    );
    let site_tls = |names: &[&str]| ca.as_ref().map(|ca| tls(ca, names, &[]));
    let a = start_router(&routes_a, site_tls(&["9999"]), limits.clone(), osx.clone());
    let b = start_router(&routes_b, site_tls(&["10000"]), limits, osx);
    routes_a.set(table(
        &[("10000", endpoint(b.local_addr(), secure))],
        &["9999"],
        false,
    ));
    routes_b.set(table(
        &[("9999", endpoint(a.local_addr(), secure))],
        &["10000"],
        false,
    ));
    Pair { a, b, routes_a, ca }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn channel(addr: SocketAddr, identity: Option<(&CertAuthority, &str)>) -> Channel {
    match identity {
        None => Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap(),
        Some((ca, party)) => {
            // The client's own certificate for `party`; the router's is checked by the CA.
            let cert = ca.issue(&[party]).unwrap();
            let server_name = {
                // Routers are named by the party they serve; a client reaches only its own.
                format!("{party}.{DOMAIN}")
            };
            Endpoint::from_shared(format!("https://{addr}"))
                .unwrap()
                .tls_config(
                    ClientTlsConfig::new()
                        .ca_certificate(Certificate::from_pem(ca.cert_pem()))
                        .identity(Identity::from_pem(cert.cert_pem, cert.key_pem))
                        .domain_name(server_name),
                )
                .unwrap()
                .connect()
                .await
                .unwrap()
        }
    }
}

/// A client connecting to a router named for `router_party` while presenting a certificate
/// for `client_party` (for spoofing).
async fn channel_as(
    addr: SocketAddr,
    ca: &CertAuthority,
    router_party: &str,
    client_party: &str,
) -> Channel {
    let cert = ca.issue(&[client_party]).unwrap();
    Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(ca.cert_pem()))
                .identity(Identity::from_pem(cert.cert_pem, cert.key_pem))
                .domain_name(format!("{router_party}.{DOMAIN}")),
        )
        .unwrap()
        .connect()
        .await
        .unwrap()
}

fn osx_client(channel: Channel) -> PrivateTransferTransportClient<Channel> {
    PrivateTransferTransportClient::new(channel).max_decoding_message_size(64 << 20)
}

// ---------------------------------------------------------------------------------------------
// FATE's client, as `_mq_channel.py` and `_federation.py` write it.

/// `build_trace_id()`: `{unix seconds}_{random below 10000}`.
fn trace_id() -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    format!("{}_{}", now.as_secs(), now.subsec_nanos() % 10_000)
}

/// `_maybe_create_topic_and_replication`: `{sid}-{role}-{pid}-{peer_role}-{peer_pid}-{suffix}`.
fn topic(session: &str, from: (&str, &str), to: (&str, &str), suffix: &str) -> String {
    format!("{session}-{}-{}-{}-{}-{suffix}", from.0, from.1, to.0, to.1)
}

fn put(request: &mut tonic::metadata::MetadataMap, key: &'static str, value: &str) {
    request.insert(key, value.parse().unwrap());
}

/// `MQChannel.produce`: `push(PushInbound{topic: send topic, payload: osx.Message})` with
/// `prepare_metadata()`.
fn fate_push(
    session: &str,
    me: (&str, &str),
    peer: (&str, &str),
    suffix: &str,
    payload: Vec<u8>,
) -> tonic::Request<PushInbound> {
    let mut request = tonic::Request::new(PushInbound {
        topic: topic(session, me, peer, suffix),
        payload: payload.into(),
        metadata: Default::default(),
    });
    let md = request.metadata_mut();
    put(md, header::TRACE_ID, &trace_id());
    put(md, header::SESSION_ID, session);
    put(md, header::TARGET_NODE_ID, peer.1);
    put(md, header::FROM_NODE_ID, me.1);
    put(md, header::TECH_PROVIDER_CODE, "FATE");
    request
}

/// `MQChannel.consume`: `pop(PopInbound{topic: receive topic, timeout})` with
/// `prepare_metadata_consume()` (no target).
fn fate_pop(
    session: &str,
    me: (&str, &str),
    peer: (&str, &str),
    suffix: &str,
    timeout_ms: i32,
) -> tonic::Request<PopInbound> {
    let mut request = tonic::Request::new(PopInbound {
        topic: topic(session, peer, me, suffix),
        timeout: timeout_ms,
    });
    let md = request.metadata_mut();
    put(md, header::SESSION_ID, session);
    put(md, header::FROM_NODE_ID, me.1);
    put(md, header::TECH_PROVIDER_CODE, "FATE");
    put(md, header::TRACE_ID, &trace_id());
    request
}

fn peek(
    session: &str,
    me: (&str, &str),
    peer: (&str, &str),
    suffix: &str,
) -> tonic::Request<PeekInbound> {
    let mut request = tonic::Request::new(PeekInbound {
        topic: topic(session, peer, me, suffix),
    });
    put(request.metadata_mut(), header::SESSION_ID, session);
    request
}

/// `OSXFederation._destroy`: `release(ReleaseInbound())` with only session, provider, trace.
fn fate_release(session: &str) -> tonic::Request<ReleaseInbound> {
    let mut request = tonic::Request::new(ReleaseInbound::default());
    let md = request.metadata_mut();
    put(md, header::TRACE_ID, &trace_id());
    put(md, header::SESSION_ID, session);
    put(md, header::TECH_PROVIDER_CODE, "FATE");
    request
}

/// An object message as FATE's message-queue federation frames it: `osx.Message{head: JSON
/// properties, body}`.
fn object_message(dst_party: &str, name: &str, tag: &str, body: Vec<u8>) -> Vec<u8> {
    let head = json!({
        "content_type": "text/plain",
        "app_id": dst_party,
        "message_id": name,
        "correlation_id": tag,
    });
    Message {
        msg_id: String::new(),
        head: serde_json::to_vec(&head).unwrap().into(),
        body: body.into(),
    }
    .encode_to_vec()
}

fn ok(out: TransportOutbound) -> TransportOutbound {
    assert_eq!(out.code, code::SUCCESS, "{}", out.message);
    out
}

fn refused(out: &TransportOutbound, want_code: &str, parts: &[&str]) {
    assert_eq!(out.code, want_code, "{}", out.message);
    for part in parts {
        assert!(
            out.message.contains(part),
            "message lacks {part:?}: {}",
            out.message
        );
    }
}

fn body(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Tests.

/// Guest 9999 pushes at its router; host 10000 pops at its own: a pop waiting before the push,
/// then several messages in order, sessions kept apart.
fn round_trip(secure: bool) {
    let sites = pair(secure, Limits::default(), OsxConfig::default());
    let rt = runtime();
    let ca = sites.ca.as_ref();
    let (mut guest, mut host) = rt.block_on(async {
        (
            osx_client(channel(sites.a.local_addr(), ca.map(|ca| (ca, "9999"))).await),
            osx_client(channel(sites.b.local_addr(), ca.map(|ca| (ca, "10000"))).await),
        )
    });

    // A pop that waits, then the push that answers it.
    let first = object_message(
        "10000",
        "psi.ids",
        "default.iterations-0",
        body(300 << 10, 1),
    );
    let waiting = {
        let mut host = host.clone();
        rt.spawn(async move {
            host.pop(fate_pop(SID, HOST, GUEST, "psi.ids", 20_000))
                .await
                .unwrap()
                .into_inner()
        })
    };
    std::thread::sleep(Duration::from_millis(100));
    let pushed = rt
        .block_on(guest.push(fate_push(SID, GUEST, HOST, "psi.ids", first.clone())))
        .unwrap()
        .into_inner();
    assert_eq!(ok(pushed).message, "success");
    let popped = ok(rt.block_on(waiting).unwrap());
    assert_eq!(popped.payload, first, "the payload arrives unchanged");
    let message = Message::decode(popped.payload).unwrap();
    let head: Value = serde_json::from_slice(&message.head).unwrap();
    assert_eq!(head["correlation_id"], "default.iterations-0");
    assert_eq!(message.body.len(), 300 << 10);

    // Several messages on one topic come out in order; another session's queue of the same
    // topic name stays apart.
    let messages: Vec<Vec<u8>> = (0..3)
        .map(|i| object_message("10000", "w", &format!("t.{i}"), body(1000 + i, i as u8)))
        .collect();
    for m in &messages {
        ok(rt
            .block_on(guest.push(fate_push(SID, GUEST, HOST, "w", m.clone())))
            .unwrap()
            .into_inner());
    }
    let mut other = fate_push(SID, GUEST, HOST, "w", b"other session".to_vec());
    put(other.metadata_mut(), header::SESSION_ID, "another_session");
    ok(rt.block_on(guest.push(other)).unwrap().into_inner());
    for m in &messages {
        let out = ok(rt
            .block_on(host.pop(fate_pop(SID, HOST, GUEST, "w", 5_000)))
            .unwrap()
            .into_inner());
        assert_eq!(&out.payload, m);
    }
    let mut pop_other = fate_pop("another_session", HOST, GUEST, "w", 5_000);
    pop_other.get_mut().topic = topic(SID, GUEST, HOST, "w");
    let out = ok(rt.block_on(host.pop(pop_other)).unwrap().into_inner());
    assert_eq!(out.payload, &b"other session"[..]);
}

#[test]
fn a_fate_push_at_one_site_is_popped_at_the_other() {
    round_trip(false);
}

#[test]
fn a_fate_push_is_popped_at_the_other_site_over_mutual_tls() {
    round_trip(true);
}

#[test]
fn a_pop_without_message_times_out_with_fates_code() {
    let sites = pair(false, Limits::default(), OsxConfig::default());
    let rt = runtime();
    let mut host = rt.block_on(async { osx_client(channel(sites.b.local_addr(), None).await) });
    let start = Instant::now();
    let out = rt
        .block_on(host.pop(fate_pop(SID, HOST, GUEST, "never", 300)))
        .unwrap()
        .into_inner();
    let waited = start.elapsed();
    // `_federation.py` `_get_consume_message`: this code raises LookupError.
    refused(
        &out,
        "E0000000601",
        &[
            "CONSUME_MSG_TIMEOUT",
            &topic(SID, GUEST, HOST, "never"),
            "within 300 ms",
        ],
    );
    assert!(out.payload.is_empty());
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
}

#[test]
fn peek_does_not_consume_and_release_drops_the_session() {
    let sites = pair(false, Limits::default(), OsxConfig::default());
    let rt = runtime();
    let (mut guest, mut host) = rt.block_on(async {
        (
            osx_client(channel(sites.a.local_addr(), None).await),
            osx_client(channel(sites.b.local_addr(), None).await),
        )
    });
    let m = object_message("10000", "x", "t", body(5000, 7));
    ok(rt
        .block_on(guest.push(fate_push(SID, GUEST, HOST, "x", m.clone())))
        .unwrap()
        .into_inner());
    for _ in 0..2 {
        let out = ok(rt
            .block_on(host.peek(peek(SID, HOST, GUEST, "x")))
            .unwrap()
            .into_inner());
        assert_eq!(out.payload, m, "peek shows the message without taking it");
    }
    let out = ok(rt
        .block_on(host.pop(fate_pop(SID, HOST, GUEST, "x", 1_000)))
        .unwrap()
        .into_inner());
    assert_eq!(out.payload, m);
    let out = ok(rt
        .block_on(host.peek(peek(SID, HOST, GUEST, "x")))
        .unwrap()
        .into_inner());
    assert!(out.payload.is_empty(), "pop took it");

    // Two topics of the session and one of another session; a pop waits on a third topic.
    for suffix in ["y", "z"] {
        ok(rt
            .block_on(guest.push(fate_push(SID, GUEST, HOST, suffix, b"drop me".to_vec())))
            .unwrap()
            .into_inner());
    }
    ok(rt
        .block_on(guest.push(fate_push(
            "kept_session",
            GUEST,
            HOST,
            "y",
            b"keep".to_vec(),
        )))
        .unwrap()
        .into_inner());
    let waiting = {
        let mut host = host.clone();
        rt.spawn(async move {
            host.pop(fate_pop(SID, HOST, GUEST, "w", 20_000))
                .await
                .unwrap()
                .into_inner()
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    ok(rt
        .block_on(host.release(fate_release(SID)))
        .unwrap()
        .into_inner());
    refused(
        &rt.block_on(waiting).unwrap(),
        "138",
        &["PARTY_10000:", "released", SID],
    );
    for suffix in ["y", "z"] {
        let out = rt
            .block_on(host.pop(fate_pop(SID, HOST, GUEST, suffix, 200)))
            .unwrap()
            .into_inner();
        refused(&out, code::TIMEOUT, &[]);
    }
    let out = ok(rt
        .block_on(host.pop(fate_pop("kept_session", HOST, GUEST, "y", 1_000)))
        .unwrap()
        .into_inner());
    assert_eq!(out.payload, &b"keep"[..], "other sessions are not released");

    // Release of one topic.
    for m in [&b"1"[..], b"2"] {
        ok(rt
            .block_on(guest.push(fate_push(SID, GUEST, HOST, "v", m.to_vec())))
            .unwrap()
            .into_inner());
    }
    let mut one = fate_release(SID);
    one.get_mut().topic = topic(SID, GUEST, HOST, "v");
    ok(rt.block_on(host.release(one)).unwrap().into_inner());
    let out = rt
        .block_on(host.peek(peek(SID, HOST, GUEST, "v")))
        .unwrap()
        .into_inner();
    assert!(ok(out).payload.is_empty());
}

#[test]
fn a_wrong_or_unreachable_target_is_refused_naming_the_hop() {
    let sites = pair(false, Limits::default(), OsxConfig::default());
    let rt = runtime();
    let mut guest = rt.block_on(async { osx_client(channel(sites.a.local_addr(), None).await) });
    let (a, b) = (sites.a.local_addr(), sites.b.local_addr());
    let push_to = |guest: &mut PrivateTransferTransportClient<Channel>, party: &str| {
        rt.block_on(guest.push(fate_push(SID, GUEST, ("host", party), "x", b"m".to_vec())))
            .unwrap()
            .into_inner()
    };

    // No route at the first router.
    let out = push_to(&mut guest, "10001");
    refused(
        &out,
        "130",
        &[
            "PARTY_9999:",
            &format!("router of 9999 at {a}"),
            "no route to party 10001 (route_table has 10000; no default entry)",
        ],
    );

    // A route to a router that is down.
    let dead = std::net::TcpListener::bind(localhost()).unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    sites.routes_a.set(table(
        &[
            ("10000", endpoint(b, false)),
            ("10001", endpoint(dead_addr, false)),
            ("default", endpoint(b, false)),
        ],
        &["9999"],
        true,
    ));
    let out = push_to(&mut guest, "10001");
    refused(
        &out,
        "E0000000607",
        &[&format!(
            "route to party 10001 via {dead_addr} (router of 10001): connection refused"
        )],
    );

    // The default route leads to router 10000, which does not know party 10002.
    let out = push_to(&mut guest, "10002");
    refused(
        &out,
        "130",
        &[
            &format!("PARTY_9999:route to party 10002 via {b} (default route): PARTY_10000:"),
            &format!("router of 10000 at {b}: no route to party 10002"),
        ],
    );

    // A push without a destination.
    let mut bare = fate_push(SID, GUEST, HOST, "x", b"m".to_vec());
    bare.metadata_mut().remove(header::TARGET_NODE_ID);
    let out = rt.block_on(guest.push(bare)).unwrap().into_inner();
    refused(&out, "E0000000400", &["x-ptp-target-node-id"]);
}

#[test]
fn oversized_payloads_and_full_queues_are_refused() {
    let limits = Limits {
        max_frame_size: 64 << 10,
        max_packet_size: 64 << 10,
        mailbox_bytes: 256 << 10,
        ..Limits::default()
    };
    let osx = OsxConfig {
        queue_bytes: 128 << 10,
        ..OsxConfig::default()
    };
    let sites = pair(false, limits, osx);
    let rt = runtime();
    let (mut guest, mut host) = rt.block_on(async {
        (
            osx_client(channel(sites.a.local_addr(), None).await),
            osx_client(channel(sites.b.local_addr(), None).await),
        )
    });

    // Over max_frame_size: refused at the first router, before it is queued or forwarded.
    let out = rt
        .block_on(guest.push(fate_push(SID, GUEST, HOST, "big", vec![1; (64 << 10) + 1])))
        .unwrap()
        .into_inner();
    refused(
        &out,
        "E0000000413",
        &[
            "payload of 65537 bytes",
            "over the limit of 65536 bytes (max_frame_size)",
            &format!("router of 9999 at {}", sites.a.local_addr()),
        ],
    );
    // Far over it: the decoder refuses the request from its length prefix.
    let status = rt
        .block_on(guest.push(fate_push(SID, GUEST, HOST, "big", vec![1; 1 << 20])))
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::OutOfRange, "{status:?}");
    assert!(status.message().contains("too large"), "{status:?}");

    // A queue holds at most queue_bytes; all queues at most mailbox_bytes.
    let chunk = vec![2; 60 << 10];
    for _ in 0..2 {
        ok(rt
            .block_on(guest.push(fate_push(SID, GUEST, HOST, "q1", chunk.clone())))
            .unwrap()
            .into_inner());
    }
    let out = rt
        .block_on(guest.push(fate_push(SID, GUEST, HOST, "q1", chunk.clone())))
        .unwrap()
        .into_inner();
    refused(
        &out,
        "E0000000700",
        &[
            "PARTY_10000:",
            "is full: it holds 122880 bytes",
            "limit of 131072 bytes (queue_bytes)",
        ],
    );
    for suffix in ["q2", "q3"] {
        ok(rt
            .block_on(guest.push(fate_push(SID, GUEST, HOST, suffix, chunk.clone())))
            .unwrap()
            .into_inner());
    }
    let out = rt
        .block_on(guest.push(fate_push(SID, GUEST, HOST, "q4", chunk.clone())))
        .unwrap()
        .into_inner();
    refused(
        &out,
        "E0000000700",
        &["queues are full", "budget of 262144 bytes (mailbox_bytes)"],
    );
    // Popping frees room.
    ok(rt
        .block_on(host.pop(fate_pop(SID, HOST, GUEST, "q1", 1_000)))
        .unwrap()
        .into_inner());
    ok(rt
        .block_on(guest.push(fate_push(SID, GUEST, HOST, "q4", chunk)))
        .unwrap()
        .into_inner());
}

#[test]
fn spoofed_sources_and_foreign_readers_are_refused_under_mutual_tls() {
    let sites = pair(true, Limits::default(), OsxConfig::default());
    let ca = sites.ca.as_ref().unwrap();
    let rt = runtime();
    let (a, b) = (sites.a.local_addr(), sites.b.local_addr());

    // Party 10000's certificate at router 9999, claiming to be 9999.
    let mut impostor = rt.block_on(async { osx_client(channel_as(a, ca, "9999", "10000").await) });
    let out = rt
        .block_on(impostor.push(fate_push(SID, GUEST, HOST, "s", b"forged".to_vec())))
        .unwrap()
        .into_inner();
    refused(
        &out,
        "E0000000403",
        &["TLS: certificate for 10000.fate.org presented where 9999 was claimed"],
    );

    // The claim and the topic disagree.
    let mut guest = rt.block_on(async { osx_client(channel(a, Some((ca, "9999"))).await) });
    let mut forged = fate_push(SID, GUEST, HOST, "s", b"forged".to_vec());
    forged.get_mut().topic = topic(SID, ("guest", "8888"), HOST, "s");
    let out = rt.block_on(guest.push(forged)).unwrap().into_inner();
    refused(
        &out,
        "E0000000403",
        &["x-ptp-from-node-id 9999 differs from the source party 8888"],
    );

    // No claim at all, and a topic naming another party: refused at router 10000, which
    // sees router 9999's certificate.
    let mut forged = fate_push(SID, GUEST, HOST, "s", b"forged".to_vec());
    forged.metadata_mut().remove(header::FROM_NODE_ID);
    forged.get_mut().topic = topic(SID, ("guest", "8888"), HOST, "s");
    let out = rt.block_on(guest.push(forged)).unwrap().into_inner();
    refused(
        &out,
        "E0000000403",
        &[
            &format!("route to party 10000 via {b} (router of 10000): PARTY_10000:"),
            "certificate for 9999.fate.org presented where 8888 was claimed",
        ],
    );

    // Party 9999 may not read router 10000's queues.
    let mut reader = rt.block_on(async { osx_client(channel_as(b, ca, "10000", "9999").await) });
    ok(rt
        .block_on(guest.push(fate_push(SID, GUEST, HOST, "s", b"real".to_vec())))
        .unwrap()
        .into_inner());
    for out in [
        rt.block_on(reader.pop(fate_pop(SID, HOST, GUEST, "s", 200))),
        rt.block_on(reader.peek(peek(SID, HOST, GUEST, "s"))),
        rt.block_on(reader.release(fate_release(SID))),
    ] {
        refused(
            &out.unwrap().into_inner(),
            "E0000000403",
            &["certificate for 9999.fate.org may not read this site's queues"],
        );
    }
    // Only the genuine message arrived.
    let mut host = rt.block_on(async { osx_client(channel(b, Some((ca, "10000"))).await) });
    let out = ok(rt
        .block_on(host.pop(fate_pop(SID, HOST, GUEST, "s", 1_000)))
        .unwrap()
        .into_inner());
    assert_eq!(out.payload, &b"real"[..]);
    let mut forged_topic = fate_pop(SID, HOST, GUEST, "s", 200);
    forged_topic.get_mut().topic = topic(SID, ("guest", "8888"), HOST, "s");
    let out = rt.block_on(host.pop(forged_topic)).unwrap().into_inner();
    refused(&out, code::TIMEOUT, &[]);
}

#[test]
fn a_push_through_an_exchange_arrives() {
    // Star topology with mutual TLS: each site's default route is the exchange, which lists
    // both sites; sites trust the exchange's certificate to relay any source party.
    let ca = CertAuthority::new(DOMAIN).unwrap();
    let (routes_a, routes_x, routes_b) = (
        Routes::new(RouteTable::default()),
        Routes::new(RouteTable::default()),
        Routes::new(RouteTable::default()),
    );
    let (limits, osx) = (Limits::default(), OsxConfig::default());
    let a = start_router(
        &routes_a,
        Some(tls(&ca, &["9999"], &["exchange"])),
        limits.clone(),
        osx.clone(),
    );
    let x = start_router(
        &routes_x,
        Some(tls(&ca, &["exchange"], &[])),
        limits.clone(),
        osx.clone(),
    );
    let b = start_router(
        &routes_b,
        Some(tls(&ca, &["10000"], &["exchange"])),
        limits,
        osx,
    );
    let to_exchange = |routes: &Routes, me: &str| {
        let mut route = endpoint(x.local_addr(), true);
        route["hostname"] = json!(format!("exchange.{DOMAIN}"));
        routes.set(table(&[("default", route)], &[me], true));
    };
    to_exchange(&routes_a, "9999");
    to_exchange(&routes_b, "10000");
    routes_x.set(table(
        &[
            ("9999", endpoint(a.local_addr(), true)),
            ("10000", endpoint(b.local_addr(), true)),
        ],
        &[],
        false,
    ));

    let rt = runtime();
    let (mut guest, mut host) = rt.block_on(async {
        (
            osx_client(channel(a.local_addr(), Some((&ca, "9999"))).await),
            osx_client(channel(b.local_addr(), Some((&ca, "10000"))).await),
        )
    });
    let m = object_message("10000", "via", "exchange", body(100 << 10, 3));
    ok(rt
        .block_on(guest.push(fate_push(SID, GUEST, HOST, "via", m.clone())))
        .unwrap()
        .into_inner());
    let out = ok(rt
        .block_on(host.pop(fate_pop(SID, HOST, GUEST, "via", 5_000)))
        .unwrap()
        .into_inner());
    assert_eq!(out.payload, m);
    // And back.
    ok(rt
        .block_on(host.push(fate_push(SID, HOST, GUEST, "back", b"reply".to_vec())))
        .unwrap()
        .into_inner());
    let out = ok(rt
        .block_on(guest.pop(fate_pop(SID, GUEST, HOST, "back", 5_000)))
        .unwrap()
        .into_inner());
    assert_eq!(out.payload, &b"reply"[..]);
}

#[test]
fn an_osx_broker_forwarding_by_invoke_is_queued() {
    // OSX forwards a push between sites as `PrivateTransferProtocol.invoke(Inbound{payload:
    // PushInbound})` with `x-ptp-source-node-id` and `x-ptp-uri` (`TransferUtil.redirect`).
    let sites = pair(false, Limits::default(), OsxConfig::default());
    let rt = runtime();
    let b = sites.b.local_addr();
    let (mut broker, mut host) = rt.block_on(async {
        (
            PrivateTransferProtocolClient::new(channel(b, None).await),
            osx_client(channel(b, None).await),
        )
    });
    let push = PushInbound {
        topic: topic(SID, GUEST, HOST, "osx"),
        payload: b"from an OSX broker".to_vec().into(),
        metadata: Default::default(),
    };
    let invoke = |uri: &str| {
        let mut request = tonic::Request::new(Inbound {
            metadata: Default::default(),
            payload: push.encode_to_vec().into(),
        });
        let md = request.metadata_mut();
        put(md, header::URI, uri);
        put(md, header::TARGET_NODE_ID, "10000");
        put(md, header::SOURCE_NODE_ID, "9999");
        put(md, header::SESSION_ID, SID);
        put(md, header::TOPIC, &push.topic);
        put(md, header::TECH_PROVIDER_CODE, "FATE");
        put(md, header::TRACE_ID, &trace_id());
        request
    };
    let out = rt
        .block_on(broker.invoke(invoke(FORWARD_PUSH_URI)))
        .unwrap()
        .into_inner();
    assert_eq!(
        (out.code.as_str(), out.message.as_str()),
        (code::SUCCESS, "success")
    );
    let out = ok(rt
        .block_on(host.pop(fate_pop(SID, HOST, GUEST, "osx", 1_000)))
        .unwrap()
        .into_inner());
    assert_eq!(out.payload, &b"from an OSX broker"[..]);

    let out = rt
        .block_on(broker.invoke(invoke("/org.fedai.osx.proxy/unary")))
        .unwrap()
        .into_inner();
    assert_eq!(out.code, "E0000000404", "{}", out.message);
    assert!(
        out.message
            .contains("only /org.ppc.ptp.PrivateTransferTransport/push")
    );
}
