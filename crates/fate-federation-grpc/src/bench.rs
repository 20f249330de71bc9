//! Throughput of the routed path against raw gRPC on loopback (for `fate bench`).
//!
//! Routed: a [`GrpcTransport`] for guest 9999 pushes a large object, sliced into
//! `max_message_size` frames as the federation layer does, through 9999's router and 10000's
//! router (direct mode) to 10000's transport, all with mutual TLS; the clock stops when the
//! receiver has taken the last frame from its mailbox. Raw: one plaintext tonic client stream
//! of the same bytes in packets of the same size into a server that only counts them. Both
//! run in the same process, one after the other.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use fate_federation::{CancelToken, DEFAULT_MAX_MESSAGE_SIZE, MessageKey, Transport, wire};
use fate_types::{Party, Role};
use tonic::{Request, Response, Status, Streaming};

use crate::certs::CertAuthority;
use crate::proto::data_transfer_service_client::DataTransferServiceClient;
use crate::proto::data_transfer_service_server::{DataTransferService, DataTransferServiceServer};
use crate::proto::{Data, Metadata, Packet, PollingFrame};
use crate::route::{Route, RouteTable, Routes};
use crate::{GrpcError, GrpcTransport, Router, RouterConfig, TlsConfig, TransportConfig};

/// What [`bench_throughput`] measured.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchReport {
    /// Bytes moved in each run.
    pub bytes: usize,
    /// Frame (and raw packet) size.
    pub frame_size: usize,
    /// Time through two routers with mutual TLS.
    pub routed: Duration,
    /// Time of the raw plaintext client stream.
    pub raw: Duration,
}

impl BenchReport {
    /// Routed throughput in GiB/s.
    pub fn routed_gib_per_s(&self) -> f64 {
        gib_per_s(self.bytes, self.routed)
    }

    /// Raw gRPC throughput in GiB/s.
    pub fn raw_gib_per_s(&self) -> f64 {
        gib_per_s(self.bytes, self.raw)
    }

    /// Routed throughput as a fraction of raw.
    pub fn ratio(&self) -> f64 {
        self.raw.as_secs_f64() / self.routed.as_secs_f64().max(f64::MIN_POSITIVE)
    }
}

fn gib_per_s(bytes: usize, time: Duration) -> f64 {
    bytes as f64 / (1u64 << 30) as f64 / time.as_secs_f64().max(f64::MIN_POSITIVE)
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:.0} MiB in {} KiB frames: routed (2 routers, mTLS) {:.2} GiB/s in {:.2?}; raw \
             gRPC stream {:.2} GiB/s in {:.2?}; ratio {:.2}",
            self.bytes as f64 / (1 << 20) as f64,
            self.frame_size >> 10,
            self.routed_gib_per_s(),
            self.routed,
            self.raw_gib_per_s(),
            self.raw,
            self.ratio()
        )
    }
}

/// Moves `bytes` through two routers with mutual TLS and through a raw gRPC stream, and
/// reports both throughputs (frames of FATE's default 1 MiB `max_message_size`).
pub fn bench_throughput(bytes: usize) -> Result<BenchReport, GrpcError> {
    bench_throughput_with(bytes, DEFAULT_MAX_MESSAGE_SIZE)
}

/// [`bench_throughput`] with another frame size.
pub fn bench_throughput_with(
    bytes: usize,
    max_message_size: usize,
) -> Result<BenchReport, GrpcError> {
    let max_message_size = max_message_size.clamp(1024, 16 << 20);
    let payload: Vec<u8> = (0..bytes).map(|i| (i % 251) as u8).collect();
    let frames = wire::encode_frames(&payload, max_message_size)
        .map_err(|e| GrpcError::Config(format!("cannot frame {bytes} bytes: {e}")))?;
    drop(payload);
    let routed = routed_run(frames)?;
    let raw = raw_run(bytes, max_message_size)?;
    Ok(BenchReport {
        bytes,
        frame_size: max_message_size,
        routed,
        raw,
    })
}

const DOMAIN: &str = "fate.org";

fn localhost() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn secure(addr: SocketAddr) -> Vec<Route> {
    vec![Route {
        ip: addr.ip().to_string(),
        port: addr.port(),
        is_secure: true,
        is_polling: false,
        hostname: None,
        cert_chain_file: None,
        private_key_file: None,
        ca_file: None,
    }]
}

fn table(entries: &[(&str, SocketAddr)], self_party: &str) -> RouteTable {
    let entries: BTreeMap<String, BTreeMap<String, Vec<Route>>> = entries
        .iter()
        .map(|(party, addr)| {
            (
                party.to_string(),
                BTreeMap::from([("default".to_string(), secure(*addr))]),
            )
        })
        .collect();
    RouteTable::from_parts(entries, true, vec![self_party.to_string()])
}

fn routed_run(frames: Vec<Vec<u8>>) -> Result<Duration, GrpcError> {
    let ca = CertAuthority::new(DOMAIN)?;
    let tls = |party: &str| -> Result<TlsConfig, GrpcError> {
        let cert = ca.issue(&[party])?;
        Ok(TlsConfig {
            cert_chain_pem: cert.cert_pem.into_bytes(),
            private_key_pem: cert.key_pem.into_bytes(),
            ca_pem: ca.cert_pem().as_bytes().to_vec(),
            domain: DOMAIN.to_string(),
            trusted_relays: Vec::new(),
        })
    };
    let (tls_g, tls_h) = (tls("9999")?, tls("10000")?);
    let max_frame = frames.iter().map(Vec::len).max().unwrap_or(0);
    let limits = crate::Limits {
        max_frame_size: max_frame.max(1024),
        ..Default::default()
    };
    let routes = |_: ()| Routes::new(RouteTable::default());
    let (ra_routes, rb_routes, a_routes, b_routes) =
        (routes(()), routes(()), routes(()), routes(()));
    let router = |routes: &Routes, tls: &TlsConfig| {
        Router::start(RouterConfig {
            tls: Some(tls.clone()),
            limits: limits.clone(),
            ..RouterConfig::new(localhost(), routes.clone())
        })
    };
    let ra = router(&ra_routes, &tls_g)?;
    let rb = router(&rb_routes, &tls_h)?;
    let transport = |routes: &Routes, tls: &TlsConfig| {
        GrpcTransport::start(TransportConfig {
            tls: Some(tls.clone()),
            limits: limits.clone(),
            ..TransportConfig::new(localhost(), routes.clone())
        })
    };
    let a = transport(&a_routes, &tls_g)?;
    let b = transport(&b_routes, &tls_h)?;
    a_routes.set(table(&[("default", ra.local_addr())], "9999"));
    ra_routes.set(table(
        &[("9999", a.local_addr()), ("10000", rb.local_addr())],
        "9999",
    ));
    rb_routes.set(table(
        &[("10000", b.local_addr()), ("9999", ra.local_addr())],
        "10000",
    ));
    b_routes.set(table(&[("default", rb.local_addr())], "10000"));

    let key = |i: usize| MessageKey {
        session_id: format!("bench_{}", std::process::id()),
        name: if i == 0 {
            "object".to_string()
        } else {
            wire::slice_name("object", (i - 1) as u32)
        },
        tag: "bench".to_string(),
        src: Party::new(Role::Guest, "9999"),
        dst: Party::new(Role::Host, "10000"),
    };
    let n = frames.len();
    let start = Instant::now();
    let sender = {
        let a = a.clone();
        std::thread::spawn(move || -> Result<(), String> {
            for (i, frame) in frames.into_iter().enumerate() {
                a.send(&key(i), frame).map_err(|e| e.to_string())?;
            }
            Ok(())
        })
    };
    let deadline = start + Duration::from_secs(3600);
    let cancel = CancelToken::new();
    let mut received = 0usize;
    for i in 0..n {
        let frame = b
            .recv(&key(i), deadline, &cancel)
            .map_err(|e| GrpcError::Serve(e.to_string()))?;
        received += frame.len();
    }
    let elapsed = start.elapsed();
    sender
        .join()
        .map_err(|_| GrpcError::Serve("the sending thread panicked".to_string()))?
        .map_err(GrpcError::Serve)?;
    tracing::debug!(received, "Routed run done.");
    Ok(elapsed)
}

/// A server that counts the bytes pushed to it.
struct Sink;

#[tonic::async_trait]
impl DataTransferService for Sink {
    async fn push(
        &self,
        request: Request<Streaming<Packet>>,
    ) -> Result<Response<Metadata>, Status> {
        let mut stream = request.into_inner();
        let mut total = 0i64;
        while let Some(packet) = stream.message().await? {
            total += packet.body.map_or(0, |b| b.value.len() as i64);
        }
        Ok(Response::new(Metadata {
            ack: total,
            ..Default::default()
        }))
    }

    type pullStream = tokio_stream::Empty<Result<Packet, Status>>;

    async fn pull(&self, _: Request<Metadata>) -> Result<Response<Self::pullStream>, Status> {
        Err(Status::unimplemented("sink"))
    }

    async fn unary_call(&self, _: Request<Packet>) -> Result<Response<Packet>, Status> {
        Err(Status::unimplemented("sink"))
    }

    type pollingStream = tokio_stream::Empty<Result<PollingFrame, Status>>;

    async fn polling(
        &self,
        _: Request<Streaming<PollingFrame>>,
    ) -> Result<Response<Self::pollingStream>, Status> {
        Err(Status::unimplemented("sink"))
    }
}

fn raw_run(bytes: usize, packet_size: usize) -> Result<Duration, GrpcError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| GrpcError::Runtime(e.to_string()))?;
    let window = crate::ClientOptions::default().window_size;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(localhost())
            .await
            .map_err(|e| GrpcError::Bind {
                addr: localhost(),
                reason: e.to_string(),
            })?;
        let addr = listener.local_addr().map_err(|e| GrpcError::Bind {
            addr: localhost(),
            reason: e.to_string(),
        })?;
        let server = tonic::transport::Server::builder()
            .initial_stream_window_size(window)
            .initial_connection_window_size(window.saturating_mul(2))
            .add_service(
                DataTransferServiceServer::new(Sink).max_decoding_message_size(packet_size + 4096),
            )
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener));
        let server = tokio::spawn(server);
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| GrpcError::Config(e.to_string()))?
            .initial_stream_window_size(window)
            .initial_connection_window_size(window.saturating_mul(2))
            .tcp_nodelay(true)
            .connect()
            .await
            .map_err(|e| GrpcError::Serve(crate::client::chain(&e)))?;
        let mut client = DataTransferServiceClient::new(channel);
        let data = bytes::Bytes::from((0..bytes).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
        let packets = (0..bytes)
            .step_by(packet_size.max(1))
            .map(move |start| Packet {
                header: None,
                body: Some(Data {
                    key: String::new(),
                    value: data.slice(start..(start + packet_size).min(bytes)),
                }),
            });
        let start = Instant::now();
        let ack = client
            .push(tokio_stream::iter(packets))
            .await
            .map_err(|s| GrpcError::Serve(s.to_string()))?
            .into_inner();
        let elapsed = start.elapsed();
        server.abort();
        if ack.ack != bytes as i64 {
            return Err(GrpcError::Serve(format!(
                "raw sink counted {} of {bytes} bytes",
                ack.ack
            )));
        }
        Ok(elapsed)
    })
}
