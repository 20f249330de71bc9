//! The router: a gRPC server speaking eggroll's `DataTransferService` that delivers pushes for
//! this site's parties into a [`Mailbox`] or forwards them to the next hop of the route table,
//! packet by packet (cut-through), as rollsite and OSX do (fate-spec §2.3-§2.5).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use fate_types::Party;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status, Streaming};

use crate::client::{Client, ClientOptions, describe};
use crate::command::{self, Commands};
use crate::envelope::{Envelope, MAX_HOPS, set_hops};
use crate::osx::{OsxConfig, OsxService};
use crate::proto::data_transfer_service_server::{DataTransferService, DataTransferServiceServer};
use crate::proto::{Metadata, Packet, PollingFrame};
use crate::route::{RouteTable, Routes};
use crate::tls::{self, TlsConfig};
use crate::{GrpcError, Limits};
use fate_federation::mailbox::{Admit, Mailbox, Refusal};

/// Concurrent calls per connection (OSX's `grpc.server.max.concurrent.call.per.connection`).
const MAX_CONCURRENT_STREAMS: u32 = 1000;

/// gRPC metadata key counting the routers a `unaryCall` passed (pushes count hops in their
/// transfer header).
const HOPS_METADATA: &str = "x-fate-rs-hops";

/// Settings of a [`Router`].
#[derive(Clone, Debug)]
pub struct RouterConfig {
    /// Address to listen on; port 0 picks a free port (see [`Router::local_addr`]).
    pub listen: SocketAddr,
    /// The route table (with `self_party`).
    pub routes: Routes,
    /// TLS with client certificates for the server and for forwarding; `None` for plaintext.
    pub tls: Option<TlsConfig>,
    /// Size limits.
    pub limits: Limits,
    /// Forwarding connections.
    pub client: ClientOptions,
    /// Threads of the router's own runtime ([`Router::start`]).
    pub worker_threads: usize,
    /// FATE 2.x OSX queues (the router's `PrivateTransferTransport`, see [`crate::osx`]).
    pub osx: OsxConfig,
}

impl RouterConfig {
    /// Plaintext router on `listen` with default limits.
    pub fn new(listen: SocketAddr, routes: Routes) -> Self {
        RouterConfig {
            listen,
            routes,
            tls: None,
            limits: Limits::default(),
            client: ClientOptions::default(),
            worker_threads: 2,
            osx: OsxConfig::default(),
        }
    }
}

/// A running router on its own runtime. Dropping it stops it abruptly, like [`Router::kill`].
#[derive(Debug)]
pub struct Router {
    addr: SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
    stop: Option<oneshot::Sender<()>>,
    done: Option<oneshot::Receiver<()>>,
}

impl Router {
    /// Binds `config.listen` and serves on a runtime of its own; packets for `self_party` are
    /// forwarded by the route table (a site's router), the usual case. Call it outside any
    /// async runtime (it blocks while binding); inside one, use [`Router::serve`].
    pub fn start(config: RouterConfig) -> Result<Router, GrpcError> {
        Self::start_inner(config, None, None)
    }

    pub(crate) fn start_inner(
        config: RouterConfig,
        mailbox: Option<Arc<Mailbox>>,
        commands: Option<Commands>,
    ) -> Result<Router, GrpcError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.worker_threads.max(1))
            .thread_name("fate-grpc")
            .enable_all()
            .build()
            .map_err(|e| GrpcError::Runtime(e.to_string()))?;
        let (stop, stopped) = oneshot::channel::<()>();
        let (finished, done) = oneshot::channel::<()>();
        let (addr, serve) = runtime.block_on(bind(config, mailbox, commands, async {
            let _ = stopped.await;
        }))?;
        runtime.spawn(async move {
            if let Err(err) = serve.await {
                tracing::error!(error = %err, "Router stopped with an error.");
            }
            let _ = finished.send(());
        });
        Ok(Router {
            addr,
            runtime: Some(runtime),
            stop: Some(stop),
            done: Some(done),
        })
    }

    /// Serves on the caller's runtime until `shutdown` completes (for a router process).
    pub async fn serve(
        config: RouterConfig,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), GrpcError> {
        let (addr, serve) = bind(config, None, None, shutdown).await?;
        tracing::info!(%addr, "Router listening.");
        serve.await
    }

    /// Runs `task` on the router's runtime.
    pub(crate) fn spawn(
        &self,
        task: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), GrpcError> {
        match &self.runtime {
            Some(runtime) => {
                runtime.spawn(task);
                Ok(())
            }
            None => Err(GrpcError::Runtime("the runtime has stopped".to_string())),
        }
    }

    /// The address the router listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets running pushes finish (at most `grace`), then stops.
    pub fn shutdown(mut self, grace: Duration) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let (Some(runtime), Some(done)) = (self.runtime.as_ref(), self.done.take()) {
            let _ = runtime.block_on(async { tokio::time::timeout(grace, done).await });
        }
        self.kill_now();
    }

    /// Stops at once, dropping every connection and push in progress (a crashed process).
    pub fn kill(mut self) {
        self.kill_now();
    }

    fn kill_now(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            // Waits for the worker threads, so the port is free when this returns.
            runtime.shutdown_timeout(Duration::from_secs(5));
        }
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

type ServeFuture = std::pin::Pin<Box<dyn Future<Output = Result<(), GrpcError>> + Send>>;

/// Binds the listener and returns its address and the future that serves it.
pub(crate) async fn bind(
    config: RouterConfig,
    mailbox: Option<Arc<Mailbox>>,
    commands: Option<Commands>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(SocketAddr, ServeFuture), GrpcError> {
    config.limits.check()?;
    config.osx.check(&config.limits)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| GrpcError::Bind {
            addr: config.listen,
            reason: e.to_string(),
        })?;
    let addr = listener.local_addr().map_err(|e| GrpcError::Bind {
        addr: config.listen,
        reason: e.to_string(),
    })?;
    let client = Client::new(
        config.tls.clone(),
        config.client.clone(),
        config.limits.max_packet_size,
    );
    let (osx_transport, osx_protocol) = OsxService::new(
        config.osx.clone(),
        &config.limits,
        client.clone(),
        config.routes.clone(),
        config.tls.clone(),
        addr,
    )
    .servers();
    if let Some(mailbox) = &mailbox {
        // Frames nobody asks for leave even when no push or recv comes to sweep them.
        let weak = Arc::downgrade(mailbox);
        let every = mailbox.limits().sweep_interval();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(mailbox) = weak.upgrade() else { break };
                mailbox.expire();
            }
        });
    }
    let service = RouterService {
        client,
        routes: config.routes,
        tls: config.tls.clone(),
        limits: config.limits.clone(),
        mailbox,
        commands,
        addr,
        rpc_timeout: config.client.rpc_timeout,
    };
    let mut server = config
        .client
        .server_builder()
        .http2_keepalive_interval(Some(Duration::from_secs(60)))
        .max_concurrent_streams(Some(MAX_CONCURRENT_STREAMS))
        // No server-wide timeout: an OSX pop waits as long as its request says (FATE asks
        // for hours). DataTransferService calls are bounded by `rpc_timeout` in their
        // handlers instead.
        ;
    if let Some(tls) = &config.tls {
        server = server
            .tls_config(tls.server_config())
            .map_err(|e| GrpcError::Tls {
                reason: crate::client::chain(&e),
            })?;
    }
    let svc = DataTransferServiceServer::new(service)
        .max_decoding_message_size(config.limits.max_packet_size)
        .max_encoding_message_size(config.limits.max_packet_size);
    let incoming = TcpListenerStream::new(listener).map(|conn| {
        if let Ok(stream) = &conn {
            let _ = stream.set_nodelay(true);
        }
        conn
    });
    let router = server
        .add_service(svc)
        .add_service(osx_transport)
        .add_service(osx_protocol);
    let serve = async move {
        router
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await
            .map_err(|e| GrpcError::Serve(crate::client::chain(&e)))
    };
    Ok((addr, Box::pin(serve)))
}

/// The status a router returns for a failed next hop: the same code (so senders retry what
/// is transient), except that a TLS handshake failure becomes `FAILED_PRECONDITION`.
fn downstream_error(
    client: &Client,
    hop: &crate::route::Hop,
    dst: &dyn std::fmt::Display,
    dst_party_id: &str,
    self_party: &[String],
    status: &Status,
) -> Status {
    let code = if describe(status).1 {
        tonic::Code::FailedPrecondition
    } else {
        status.code()
    };
    Status::new(
        code,
        client.hop_error(hop, dst, dst_party_id, self_party, status),
    )
}

struct RouterService {
    client: Arc<Client>,
    routes: Routes,
    tls: Option<TlsConfig>,
    limits: Limits,
    mailbox: Option<Arc<Mailbox>>,
    /// The node's handler of relayed fate_flow commands (a transport's server has one).
    commands: Option<Commands>,
    addr: SocketAddr,
    /// Longest a push or relayed command may take (a push holds its mailbox reservation).
    rpc_timeout: Duration,
}

fn ack(env: &Envelope, note: &str) -> Metadata {
    let mut header = env.packet(bytes::Bytes::new()).header.unwrap_or_default();
    header.ack = env.frame_len as i64;
    header.operator = note.to_string();
    header.ext.clear();
    header
}

impl RouterService {
    async fn deliver(
        &self,
        mailbox: &Arc<Mailbox>,
        env: Envelope,
        first: Packet,
        mut stream: Streaming<Packet>,
    ) -> Result<Response<Metadata>, Status> {
        let key = &env.key;
        let len = env.frame_len as usize;
        let reservation = match mailbox.reserve(key, len) {
            Ok(Admit::Fresh(reservation)) => reservation,
            Ok(Admit::Duplicate) => {
                tracing::debug!(%key, "Ignored a frame delivered before.");
                return Ok(Response::new(ack(&env, "duplicate")));
            }
            Err(Refusal::Full {
                pending,
                incoming,
                budget,
            }) => {
                return Err(Status::resource_exhausted(format!(
                    "mailbox of party {} at {} is full: {pending} bytes pending, {incoming} \
                     more would exceed its budget of {budget} bytes",
                    key.dst.party_id, self.addr
                )));
            }
            Err(Refusal::Over(over)) => {
                return Err(Status::resource_exhausted(format!(
                    "mailbox of party {} at {}: {over}",
                    key.dst.party_id, self.addr
                )));
            }
            Err(Refusal::InFlight) => {
                return Err(Status::aborted(format!(
                    "another push of {key} is still being received at {}",
                    self.addr
                )));
            }
        };
        let mut frame = Vec::with_capacity(len);
        if let Some(body) = first.body {
            frame.extend_from_slice(&body.value);
        }
        while let Some(packet) = stream.message().await? {
            let chunk = packet.body.map(|b| b.value).unwrap_or_default();
            if frame.len() + chunk.len() > len {
                return Err(Status::invalid_argument(format!(
                    "frame for {key} is longer than the {len} bytes its header declares"
                )));
            }
            frame.extend_from_slice(&chunk);
        }
        if frame.len() != len {
            return Err(Status::invalid_argument(format!(
                "frame for {key} ended after {} of the {len} bytes its header declares",
                frame.len()
            )));
        }
        reservation.commit(frame);
        Ok(Response::new(ack(&env, "delivered")))
    }

    async fn forward(
        &self,
        table: &RouteTable,
        env: Envelope,
        mut first: Packet,
        mut stream: Streaming<Packet>,
    ) -> Result<Response<Metadata>, Status> {
        let dst: &Party = &env.key.dst;
        let hop = table
            .lookup(dst.party_id.as_str(), dst.role.as_str())
            .map_err(|e| Status::failed_precondition(format!("router at {}: {e}", self.addr)))?;
        if env.hops >= MAX_HOPS {
            return Err(Status::failed_precondition(format!(
                "routing loop: {} passed {MAX_HOPS} routers; last at {} would send it to {} ({})",
                env.key,
                self.addr,
                hop.route.address(),
                hop.describe()
            )));
        }
        set_hops(&mut first, env.hops + 1);
        let channel = self
            .client
            .channel(&hop, dst.party_id.as_str(), table.self_party())
            .map_err(|e| Status::failed_precondition(format!("router at {}: {e}", self.addr)))?;
        let mut grpc = self.client.grpc(channel);
        let (tx, rx) = mpsc::channel::<Packet>(16);
        let first_len = first.body.as_ref().map_or(0, |b| b.value.len());
        // Cannot fail: the receiver is alive.
        let _ = tx.send(first).await;
        let declared = env.frame_len;
        let key = env.key.clone();
        let pump = async move {
            let mut seen = first_len as u64;
            while let Some(packet) = stream.message().await? {
                seen += packet.body.as_ref().map_or(0, |b| b.value.len() as u64);
                if seen > declared {
                    return Err(Status::invalid_argument(format!(
                        "frame for {key} is longer than the {declared} bytes its header declares"
                    )));
                }
                if tx.send(packet).await.is_err() {
                    break; // The downstream push ended; its result says why.
                }
            }
            drop(tx);
            Ok::<(), Status>(())
        };
        let downstream = grpc.push(ReceiverStream::new(rx));
        tokio::pin!(pump, downstream);
        let mut pumped = false;
        loop {
            tokio::select! {
                result = &mut downstream => {
                    return match result {
                        Ok(response) => Ok(response),
                        Err(status) => Err(downstream_error(
                            &self.client,
                            &hop,
                            dst,
                            dst.party_id.as_str(),
                            table.self_party(),
                            &status,
                        )),
                    };
                }
                result = &mut pump, if !pumped => {
                    result?;
                    pumped = true;
                }
            }
        }
    }
}

impl RouterService {
    /// Runs a call for at most `rpc_timeout`.
    async fn bounded<T>(
        &self,
        what: &str,
        call: impl Future<Output = Result<T, Status>>,
    ) -> Result<T, Status> {
        let limit = self.rpc_timeout;
        tokio::time::timeout(limit, call).await.unwrap_or_else(|_| {
            Err(Status::deadline_exceeded(format!(
                "{what} did not complete within {limit:?} at {}",
                self.addr
            )))
        })
    }

    async fn push_inner(
        &self,
        request: Request<Streaming<Packet>>,
    ) -> Result<Response<Metadata>, Status> {
        let peer_cert = tls::peer_leaf(&request);
        let mut stream = request.into_inner();
        let first = stream
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("empty push: the stream carried no packet"))?;
        let env = Envelope::decode(&first).map_err(Status::invalid_argument)?;
        let table = self.routes.current();
        if let Some(tls) = &self.tls {
            tls::check_peer(
                tls,
                peer_cert.as_ref(),
                env.key.src.party_id.as_str(),
                table.self_party(),
            )
            .map_err(Status::permission_denied)?;
        }
        let max = self.limits.max_frame_size as u64;
        if env.frame_len > max {
            return Err(Status::invalid_argument(format!(
                "frame for {} declares {} bytes, over the limit of {max} bytes (max_frame_size) \
                 at {}",
                env.key, env.frame_len, self.addr
            )));
        }
        let first_len = first.body.as_ref().map_or(0, |b| b.value.len() as u64);
        if first_len > env.frame_len {
            return Err(Status::invalid_argument(format!(
                "frame for {} is longer than the {} bytes its header declares",
                env.key, env.frame_len
            )));
        }
        match &self.mailbox {
            Some(mailbox) if table.is_self(env.key.dst.party_id.as_str()) => {
                self.deliver(mailbox, env, first, stream).await
            }
            _ => self.forward(&table, env, first, stream).await,
        }
    }

    async fn unary_call_inner(&self, request: Request<Packet>) -> Result<Response<Packet>, Status> {
        // The fate_flow command relay (fate-spec §2.3): a node's server runs it; a router
        // forwards it by the route table (for its own party: to the `fateflow` route, i.e. the
        // node).
        let peer_cert = tls::peer_leaf(&request);
        let hops: u8 = request
            .metadata()
            .get(HOPS_METADATA)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let limit = call_limit(request.metadata(), request.get_ref(), self.rpc_timeout);
        let packet = request.into_inner();
        let header = packet
            .header
            .as_ref()
            .ok_or_else(|| Status::invalid_argument("unaryCall packet has no header"))?;
        let (Some(src), Some(dst)) = (header.src.as_ref(), header.dst.as_ref()) else {
            return Err(Status::invalid_argument(
                "unaryCall packet lacks header.src or header.dst",
            ));
        };
        let table = self.routes.current();
        if let Some(tls) = &self.tls {
            tls::check_peer(tls, peer_cert.as_ref(), &src.party_id, table.self_party())
                .map_err(Status::permission_denied)?;
        }
        let (role, party_id) = (dst.role.clone(), dst.party_id.clone());
        if table.is_self(&party_id) && self.commands.is_none() && self.mailbox.is_some() {
            return Err(Status::unimplemented(format!(
                "unaryCall for {role}:{party_id} reached the node of party {party_id} at {}, \
                 which takes no relayed commands",
                self.addr
            )));
        }
        if table.is_self(&party_id)
            && let Some(commands) = &self.commands
        {
            let (cmd, header) = command::parse(packet).map_err(Status::invalid_argument)?;
            let path = cmd.path.clone();
            tracing::debug!(src = %cmd.src_party, dst = %cmd.dst_party, %path, "Relayed command.");
            return match tokio::time::timeout(limit, commands.0.handle(cmd)).await {
                Ok(Ok(body)) => Ok(Response::new(command::reply_packet(header, &path, body))),
                Ok(Err(e)) => Err(Status::internal(format!(
                    "node of party {party_id} at {} could not run {path}: {e}",
                    self.addr
                ))),
                Err(_) => Err(Status::deadline_exceeded(format!(
                    "node of party {party_id} at {} did not finish {path} within the caller's \
                     deadline of {} ms",
                    self.addr,
                    limit.as_millis()
                ))),
            };
        }
        let hop = table
            .lookup(&party_id, &role)
            .map_err(|e| Status::failed_precondition(format!("router at {}: {e}", self.addr)))?;
        if hops >= MAX_HOPS {
            return Err(Status::failed_precondition(format!(
                "routing loop: unaryCall to {role}:{party_id} passed {MAX_HOPS} routers; last at \
                 {} would send it to {} ({})",
                self.addr,
                hop.route.address(),
                hop.describe()
            )));
        }
        let dst_party = format!("{role}:{party_id}");
        let channel = self
            .client
            .channel(&hop, &party_id, table.self_party())
            .map_err(|e| Status::failed_precondition(format!("router at {}: {e}", self.addr)))?;
        let mut forward = Request::new(packet);
        forward.metadata_mut().insert(
            HOPS_METADATA,
            tonic::metadata::MetadataValue::from(u32::from(hops) + 1),
        );
        // The caller's deadline travels on (as `grpc-timeout`; the packet keeps its
        // `overall_timeout`) and bounds this hop too, so a stalled next hop holds this
        // router no longer than the caller waits.
        forward.set_timeout(limit);
        let mut grpc = self.client.grpc(channel);
        let started = tokio::time::Instant::now();
        let expired = || {
            Status::deadline_exceeded(format!(
                "no answer within the caller's deadline of {} ms",
                limit.as_millis()
            ))
        };
        let status = match tokio::time::timeout(limit, grpc.unary_call(forward)).await {
            Ok(Ok(reply)) => return Ok(reply),
            // tonic's own enforcement of `grpc-timeout` answers CANCELLED ("Timeout expired").
            Ok(Err(status))
                if status.code() == tonic::Code::Cancelled && started.elapsed() >= limit =>
            {
                expired()
            }
            Ok(Err(status)) => status,
            Err(_) => expired(),
        };
        Err(downstream_error(
            &self.client,
            &hop,
            &dst_party,
            &party_id,
            table.self_party(),
            &status,
        ))
    }
}

/// How long a relayed call may take at this hop: the shortest of the caller's deadline as
/// FATE sends it (the packet's `conf.overall_timeout`, milliseconds, fate-spec §2.3), the
/// `grpc-timeout` an earlier hop set, and this router's own `rpc_timeout`.
fn call_limit(
    metadata: &tonic::metadata::MetadataMap,
    packet: &Packet,
    rpc_timeout: Duration,
) -> Duration {
    let overall = packet
        .header
        .as_ref()
        .and_then(|h| h.conf.as_ref())
        .map(|c| c.overall_timeout)
        .filter(|ms| *ms > 0)
        .map(|ms| Duration::from_millis(ms as u64));
    let header = metadata
        .get("grpc-timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_grpc_timeout);
    [Some(rpc_timeout), overall, header]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(rpc_timeout)
}

/// A `grpc-timeout` value (gRPC over HTTP/2: at most 8 digits and a unit of H, M, S, m, u
/// or n); `None` when malformed.
fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[tonic::async_trait]
impl DataTransferService for RouterService {
    async fn push(
        &self,
        request: Request<Streaming<Packet>>,
    ) -> Result<Response<Metadata>, Status> {
        self.bounded("push", self.push_inner(request)).await
    }

    type pullStream = tokio_stream::Empty<Result<Packet, Status>>;

    async fn pull(
        &self,
        _request: Request<Metadata>,
    ) -> Result<Response<Self::pullStream>, Status> {
        Err(Status::unimplemented(
            "pull is not supported by fate-rs routers: frames are pushed to the receiving site",
        ))
    }

    async fn unary_call(&self, request: Request<Packet>) -> Result<Response<Packet>, Status> {
        self.bounded("unaryCall", self.unary_call_inner(request))
            .await
    }

    type pollingStream = tokio_stream::Empty<Result<PollingFrame, Status>>;

    async fn polling(
        &self,
        _request: Request<Streaming<PollingFrame>>,
    ) -> Result<Response<Self::pollingStream>, Status> {
        Err(Status::unimplemented(
            "polling (is_polling routes) is not supported by fate-rs routers: give the party an \
             ip and port in the route table",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse_as_the_grpc_spec_writes_them() {
        assert_eq!(
            parse_grpc_timeout("1500m"),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(
            parse_grpc_timeout("99999999n"),
            Some(Duration::from_nanos(99_999_999))
        );
        for bad in ["", "m", "123456789S", "12x", "-1S", "1.5S"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_call_is_limited_by_the_shortest_deadline_it_carries() {
        let packet = |ms: i64| Packet {
            header: Some(Metadata {
                conf: Some(crate::proto::Conf {
                    overall_timeout: ms,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            body: None,
        };
        let mut md = tonic::metadata::MetadataMap::new();
        let rpc = Duration::from_secs(60);
        assert_eq!(call_limit(&md, &packet(0), rpc), rpc);
        assert_eq!(
            call_limit(&md, &packet(1500), rpc),
            Duration::from_millis(1500)
        );
        assert_eq!(call_limit(&md, &packet(120_000), rpc), rpc);
        md.insert("grpc-timeout", "700m".parse().unwrap());
        assert_eq!(
            call_limit(&md, &packet(1500), rpc),
            Duration::from_millis(700)
        );
        md.insert("grpc-timeout", "bogus".parse().unwrap());
        assert_eq!(call_limit(&md, &packet(0), rpc), rpc);
    }
}
