//! Throughput of the routed path against raw gRPC on loopback (for `fate bench federation`).
//!
//! Routed: a [`GrpcTransport`] for guest 9999 pushes one object, framed and sliced at
//! `max_message_size` by the federation's own wire format, through 9999's router and 10000's
//! router (direct mode) to 10000's transport, with mutual TLS on every hop (or plaintext); the
//! clock runs from the first `send` until the receiver has taken the last frame from its
//! mailbox, in order, as `Federation::get` takes them. After the clock stops the received
//! frames are joined by the federation's [`wire::Reassembler`] (which checks the sender's
//! CRC-32 of the whole object, as `get` does) and a checksum of the joined object is compared
//! with the checksum of the object sent.
//!
//! Raw: one plaintext tonic client stream carrying the same number of bytes in packets of the
//! same size into a server that only counts them, measured twice: as this benchmark always
//! did (tonic's HTTP/2 defaults but 8 MiB stream windows, TCP_NODELAY, tokio's default
//! runtime of one worker per core), the baseline of [`BenchReport::ratio`]; and tuned (the
//! routed path's HTTP/2 settings, one worker thread), the fastest raw stream found on a 2-core
//! machine. Optionally the first over TLS as a second baseline. Every run is in this process,
//! one after the other, so the ratios compare figures measured under the same load.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub use fate_federation::bench::checksum;
use fate_federation::bench::pattern;
use fate_federation::{CancelToken, DEFAULT_MAX_MESSAGE_SIZE, MessageKey, Transport, wire};
use fate_types::{Party, Role};
use tonic::{Request, Response, Status, Streaming};

use crate::certs::CertAuthority;
use crate::client::ClientOptions;
use crate::proto::data_transfer_service_client::DataTransferServiceClient;
use crate::proto::data_transfer_service_server::{DataTransferService, DataTransferServiceServer};
use crate::proto::{Data, Metadata, Packet, PollingFrame};
use crate::route::{Route, RouteTable, Routes};
use crate::{GrpcError, GrpcTransport, Router, RouterConfig, TlsConfig, TransportConfig};

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Size of the object (and of each raw run).
    pub bytes: usize,
    /// The federation's `max_message_size`: the object is cut into slices of this size, and
    /// the raw stream into packets of this size.
    pub max_message_size: usize,
    /// Mutual TLS on the routed path (every hop).
    pub mtls: bool,
    /// Also time the raw stream over TLS (a second baseline).
    pub raw_tls: bool,
    /// Connection settings of every hop of the routed path; the raw runs use the same HTTP/2
    /// settings.
    pub client: ClientOptions,
    /// Worker threads of each transport's runtime.
    pub worker_threads: usize,
    /// Worker threads of each router's runtime.
    pub router_worker_threads: usize,
    /// Slices of the object pushed at once by the sending transport.
    pub max_in_flight: usize,
}

impl BenchOptions {
    /// `bytes` in FATE's default 1 MiB slices, with mutual TLS and the default connection
    /// settings. The four nodes (two transports, two routers) share this machine, so each runs
    /// on a single worker thread: with two per node on a 2-core machine the hand-offs between
    /// threads cost about a fifth more CPU per byte and the routed path is slower.
    pub fn new(bytes: usize) -> Self {
        let transport = TransportConfig::new(localhost(), Routes::new(RouteTable::default()));
        BenchOptions {
            bytes,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            mtls: true,
            raw_tls: false,
            client: transport.client,
            worker_threads: 1,
            router_worker_threads: 1,
            max_in_flight: transport.max_in_flight,
        }
    }
}

/// What [`bench`] measured.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchReport {
    /// Bytes of the object (and of each raw run).
    pub bytes: usize,
    /// Slice (and raw packet) size.
    pub max_message_size: usize,
    /// Whether the routed path used mutual TLS.
    pub mtls: bool,
    /// Time through two routers.
    pub routed: Duration,
    /// Time of the raw plaintext client stream as this benchmark always measured it: tonic's
    /// HTTP/2 defaults but 8 MiB stream windows, tokio's default runtime (one worker per core).
    pub raw: Duration,
    /// Time of the raw stream with the routed path's HTTP/2 settings on a single worker thread
    /// (no hand-offs between threads): the fastest raw figure on a 2-core machine.
    pub raw_tuned: Duration,
    /// Time of the raw stream over TLS, if measured.
    pub raw_tls: Option<Duration>,
    /// CPU time of this process during the routed and the raw run (Linux only).
    pub routed_cpu: Option<Duration>,
    /// See `routed_cpu`.
    pub raw_cpu: Option<Duration>,
    /// Checksum of the object sent.
    pub sent_checksum: u64,
    /// Checksum of the object the receiver reassembled.
    pub received_checksum: u64,
    /// Bytes of the object the receiver reassembled.
    pub received_bytes: usize,
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

    /// Raw gRPC over TLS throughput in GiB/s, if measured.
    pub fn raw_tls_gib_per_s(&self) -> Option<f64> {
        self.raw_tls.map(|t| gib_per_s(self.bytes, t))
    }

    /// Tuned raw throughput in GiB/s.
    pub fn raw_tuned_gib_per_s(&self) -> f64 {
        gib_per_s(self.bytes, self.raw_tuned)
    }

    /// Routed throughput as a fraction of raw plaintext gRPC.
    pub fn ratio(&self) -> f64 {
        self.raw.as_secs_f64() / self.routed.as_secs_f64().max(f64::MIN_POSITIVE)
    }

    /// Routed throughput as a fraction of the tuned raw stream.
    pub fn ratio_to_tuned_raw(&self) -> f64 {
        self.raw_tuned.as_secs_f64() / self.routed.as_secs_f64().max(f64::MIN_POSITIVE)
    }

    /// Whether the receiver got the object sent, byte for byte.
    pub fn checksum_ok(&self) -> bool {
        self.received_bytes == self.bytes && self.received_checksum == self.sent_checksum
    }
}

fn gib_per_s(bytes: usize, time: Duration) -> f64 {
    bytes as f64 / (1u64 << 30) as f64 / time.as_secs_f64().max(f64::MIN_POSITIVE)
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:.0} MiB in {} KiB slices: routed (2 routers, {}) {:.2} GiB/s in {:.2?}; raw \
             gRPC stream {:.2} GiB/s in {:.2?}",
            self.bytes as f64 / (1 << 20) as f64,
            self.max_message_size >> 10,
            if self.mtls { "mTLS" } else { "plaintext" },
            self.routed_gib_per_s(),
            self.routed,
            self.raw_gib_per_s(),
            self.raw,
        )?;
        if let Some(tls) = self.raw_tls_gib_per_s() {
            write!(f, "; raw over TLS {tls:.2} GiB/s")?;
        }
        write!(
            f,
            "; tuned raw {:.2} GiB/s; ratio {:.2} ({:.2} to tuned raw); checksum {:016x} {}",
            self.raw_tuned_gib_per_s(),
            self.ratio(),
            self.ratio_to_tuned_raw(),
            self.received_checksum,
            if self.checksum_ok() {
                "equal"
            } else {
                "DIFFERENT"
            }
        )
    }
}

/// Moves `bytes` through two routers with mutual TLS and through a raw gRPC stream, and
/// reports both throughputs (slices of FATE's default 1 MiB `max_message_size`).
pub fn bench_throughput(bytes: usize) -> Result<BenchReport, GrpcError> {
    bench(&BenchOptions::new(bytes))
}

/// [`bench_throughput`] with another slice size.
pub fn bench_throughput_with(
    bytes: usize,
    max_message_size: usize,
) -> Result<BenchReport, GrpcError> {
    bench(&BenchOptions {
        max_message_size,
        ..BenchOptions::new(bytes)
    })
}

/// Runs the routed path, then the raw stream(s), as `options` says.
pub fn bench(options: &BenchOptions) -> Result<BenchReport, GrpcError> {
    let max_message_size = options.max_message_size.clamp(1024, 16 << 20);
    let payload = bytes::Bytes::from(pattern(options.bytes));
    let sent_checksum = checksum(&payload);
    let (routed, routed_cpu, received) = routed_run(&payload, max_message_size, options)?;
    let received = reassemble(&received)?;
    let received_checksum = checksum(&received);
    let received_bytes = received.len();
    drop(received);
    // The raw stream as this benchmark measured it before its settings were tuned.
    let plain = ClientOptions {
        window_size: 8 << 20,
        max_frame_size: 16 << 10,
        ..ClientOptions::default()
    };
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let cpu = cpu_time();
    let raw = raw_run(&payload, max_message_size, false, cores, &plain)?;
    let raw_cpu = cpu_time().zip(cpu).map(|(after, before)| after - before);
    let raw_tuned = raw_run(&payload, max_message_size, false, 1, &options.client)?;
    let raw_tls = if options.raw_tls {
        Some(raw_run(&payload, max_message_size, true, cores, &plain)?)
    } else {
        None
    };
    Ok(BenchReport {
        bytes: options.bytes,
        max_message_size,
        mtls: options.mtls,
        routed,
        raw,
        raw_tuned,
        raw_tls,
        routed_cpu,
        raw_cpu,
        sent_checksum,
        received_checksum,
        received_bytes,
    })
}

/// Joins the received frames as `Federation::get` does (see
/// [`fate_federation::bench::reassemble`]).
fn reassemble(frames: &[Vec<u8>]) -> Result<Vec<u8>, GrpcError> {
    fate_federation::bench::reassemble(frames).map_err(GrpcError::Serve)
}

/// CPU time (user + system) of this process so far, from `/proc/self/stat` (Linux).
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may contain spaces) in parentheses.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // USER_HZ is 100 on every Linux platform Rust supports.
    Some(Duration::from_millis((utime + stime) * 10))
}

const DOMAIN: &str = "fate.org";

fn localhost() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn route(addr: SocketAddr, secure: bool) -> Vec<Route> {
    vec![Route {
        ip: addr.ip().to_string(),
        port: addr.port(),
        is_secure: secure,
        is_polling: false,
        hostname: None,
        cert_chain_file: None,
        private_key_file: None,
        ca_file: None,
    }]
}

fn table(entries: &[(&str, SocketAddr)], self_party: &str, secure: bool) -> RouteTable {
    let entries: BTreeMap<String, BTreeMap<String, Vec<Route>>> = entries
        .iter()
        .map(|(party, addr)| {
            (
                party.to_string(),
                BTreeMap::from([("default".to_string(), route(*addr, secure))]),
            )
        })
        .collect();
    RouteTable::from_parts(entries, true, vec![self_party.to_string()])
}

/// Time, CPU time (if known) and the frames the receiver took, in order.
type RoutedRun = (Duration, Option<Duration>, Vec<Vec<u8>>);

/// Sends `payload` from 9999 to 10000 through both routers, framed as `Federation::remote`
/// frames it; returns the time, the CPU time and the frames the receiver took, in order.
///
/// A smaller object crosses first, untimed: the raw runs connect before their clock starts, so
/// the routed run's connections (three TLS handshakes) are made before its clock starts too,
/// and the process's allocator has seen buffers of the sizes the transfer uses, as in a
/// long-running node.
fn routed_run(
    payload: &[u8],
    max_message_size: usize,
    options: &BenchOptions,
) -> Result<RoutedRun, GrpcError> {
    let frame = |payload: &[u8]| {
        wire::encode_frames(payload, max_message_size)
            .map_err(|e| GrpcError::Config(format!("cannot frame {} bytes: {e}", payload.len())))
    };
    let ca = CertAuthority::new(DOMAIN)?;
    let tls = |party: &str| -> Result<Option<TlsConfig>, GrpcError> {
        if !options.mtls {
            return Ok(None);
        }
        let cert = ca.issue(&[party])?;
        Ok(Some(TlsConfig {
            cert_chain_pem: cert.cert_pem.into_bytes(),
            private_key_pem: cert.key_pem.into_bytes(),
            ca_pem: ca.cert_pem().as_bytes().to_vec(),
            domain: DOMAIN.to_string(),
            trusted_relays: Vec::new(),
        }))
    };
    let (tls_g, tls_h) = (tls("9999")?, tls("10000")?);
    let max_frame = wire::max_frame_len(max_message_size.min(payload.len()));
    let limits = crate::Limits {
        max_frame_size: max_frame.max(1024),
        max_packet_size: crate::DEFAULT_MAX_PACKET_SIZE.max(max_frame + 4096),
        ..Default::default()
    };
    let routes = || Routes::new(RouteTable::default());
    let (ra_routes, rb_routes, a_routes, b_routes) = (routes(), routes(), routes(), routes());
    let router = |routes: &Routes, tls: &Option<TlsConfig>| {
        Router::start(RouterConfig {
            tls: tls.clone(),
            limits: limits.clone(),
            client: options.client.clone(),
            worker_threads: options.router_worker_threads,
            ..RouterConfig::new(localhost(), routes.clone())
        })
    };
    let ra = router(&ra_routes, &tls_g)?;
    let rb = router(&rb_routes, &tls_h)?;
    let transport = |routes: &Routes, tls: &Option<TlsConfig>| {
        GrpcTransport::start(TransportConfig {
            tls: tls.clone(),
            limits: limits.clone(),
            client: options.client.clone(),
            worker_threads: options.worker_threads,
            max_in_flight: options.max_in_flight,
            ..TransportConfig::new(localhost(), routes.clone())
        })
    };
    let a = transport(&a_routes, &tls_g)?;
    let b = transport(&b_routes, &tls_h)?;
    let secure = options.mtls;
    a_routes.set(table(&[("default", ra.local_addr())], "9999", secure));
    ra_routes.set(table(
        &[("9999", a.local_addr()), ("10000", rb.local_addr())],
        "9999",
        secure,
    ));
    rb_routes.set(table(
        &[("10000", b.local_addr()), ("9999", ra.local_addr())],
        "10000",
        secure,
    ));
    b_routes.set(table(&[("default", rb.local_addr())], "10000", secure));

    let session = format!("bench_{}", std::process::id());
    let warm_up = &payload[..payload.len().min(32 * max_message_size)];
    transfer(&a, &b, &session, "warm_up", frame(warm_up)?)?;
    let frames = frame(payload)?;
    let cpu = cpu_time();
    let (elapsed, received) = transfer(&a, &b, &session, "object", frames)?;
    let cpu = cpu_time().zip(cpu).map(|(after, before)| after - before);
    b.cleanup(&session);
    Ok((elapsed, cpu, received))
}

/// Sends `frames` as object `name` from `a` (guest 9999) and takes them at `b` (host 10000)
/// in order; returns the time from the first send to the last frame taken.
fn transfer(
    a: &std::sync::Arc<GrpcTransport>,
    b: &std::sync::Arc<GrpcTransport>,
    session: &str,
    name: &str,
    frames: Vec<Vec<u8>>,
) -> Result<(Duration, Vec<Vec<u8>>), GrpcError> {
    let key = {
        let (session, name) = (session.to_string(), name.to_string());
        move |i: usize| MessageKey {
            session_id: session.clone(),
            name: if i == 0 {
                name.clone()
            } else {
                wire::slice_name(&name, (i - 1) as u32)
            },
            tag: "bench".to_string(),
            src: Party::new(Role::Guest, "9999"),
            dst: Party::new(Role::Host, "10000"),
        }
    };
    let n = frames.len();
    let bytes: usize = frames.iter().map(Vec::len).sum();
    let start = Instant::now();
    let sender = {
        let (a, key) = (a.clone(), key.clone());
        std::thread::spawn(move || -> Result<(), String> {
            for (i, frame) in frames.into_iter().enumerate() {
                a.send(&key(i), frame).map_err(|e| e.to_string())?;
            }
            Ok(())
        })
    };
    // Generous (10 MiB/s at worst), but a lost slice fails the run instead of hanging it.
    let deadline = start + Duration::from_secs(60 + (bytes >> 20) as u64 / 10);
    let cancel = CancelToken::new();
    let mut received = Vec::with_capacity(n);
    for i in 0..n {
        let frame = b
            .recv(&key(i), deadline, &cancel)
            .map_err(|e| GrpcError::Serve(format!("receiving {name}: {e}")))?;
        received.push(frame);
    }
    let elapsed = start.elapsed();
    sender
        .join()
        .map_err(|_| GrpcError::Serve("the sending thread panicked".to_string()))?
        .map_err(GrpcError::Serve)?;
    Ok((elapsed, received))
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

/// One client stream of `data` in `packet_size` packets into a [`Sink`] on a runtime of
/// `workers` threads, with the routed path's HTTP/2 settings, over TLS if `tls`.
fn raw_run(
    data: &bytes::Bytes,
    packet_size: usize,
    tls: bool,
    workers: usize,
    h2: &ClientOptions,
) -> Result<Duration, GrpcError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers.max(1))
        .enable_all()
        .build()
        .map_err(|e| GrpcError::Runtime(e.to_string()))?;
    let data = data.clone();
    let bytes = data.len();
    let identity = if tls {
        let ca = CertAuthority::new(DOMAIN)?;
        let cert = ca.issue(&["sink"])?;
        Some(TlsConfig {
            cert_chain_pem: cert.cert_pem.into_bytes(),
            private_key_pem: cert.key_pem.into_bytes(),
            ca_pem: ca.cert_pem().as_bytes().to_vec(),
            domain: DOMAIN.to_string(),
            trusted_relays: Vec::new(),
        })
    } else {
        None
    };
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
        let mut server = h2.server_builder();
        if let Some(tls) = &identity {
            server = server
                .tls_config(tls.server_config())
                .map_err(|e| GrpcError::Tls {
                    reason: crate::client::chain(&e),
                })?;
        }
        let server = server
            .add_service(
                DataTransferServiceServer::new(Sink).max_decoding_message_size(packet_size + 4096),
            )
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener));
        let server = tokio::spawn(server);
        let scheme = if identity.is_some() { "https" } else { "http" };
        let mut endpoint = tonic::transport::Endpoint::from_shared(format!("{scheme}://{addr}"))
            .map_err(|e| GrpcError::Config(e.to_string()))?;
        endpoint = h2.tune(endpoint);
        if let Some(tls) = &identity {
            endpoint = endpoint
                .tls_config(tls.client_config("sink.fate.org"))
                .map_err(|e| GrpcError::Tls {
                    reason: crate::client::chain(&e),
                })?;
        }
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| GrpcError::Serve(crate::client::chain(&e)))?;
        let mut client = DataTransferServiceClient::new(channel);
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
